//! `presence-sync serve`: the reference implementation as an XMPP server (issue 13).
//!
//! [`storage`] keeps what survives a restart (accounts, rosters, block lists, the boot
//! epoch); [`auth`] authenticates c2s clients (SASL) and registers accounts (XEP-0077).
//! Neither does network I/O.
pub mod auth;
pub mod storage;
