//! The sync engine (XEP §Protocol), sans-IO: being built piece by piece.
//!
//! Present so far: presence sets with their digests ([`presence_set`]) and the reconciliation
//! of one presence set between the cache holder and the authoritative server
//! ([`presence_sync`]). The per-peer session (hello, epochs, edge descent and repair, batches,
//! domain-level presence, priorities, windows) builds on these.
pub mod presence_set;
pub mod presence_sync;

pub use presence_set::PresenceSet;
pub use presence_sync::{CacheChange, Puller, answer};
