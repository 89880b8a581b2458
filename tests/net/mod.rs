//! Loopback test infrastructure shared by every network test (`mod net;` in a test file):
//! real server processes on their own 127.0.0.x address, a real XMPP client, and a relay the
//! test controls between two servers.
//!
//! ```text
//!  test ──lease()──► Lease 127.0.0.x ─────────────┐ (one address per server or relay)
//!   │                                             ▼
//!   ├─ Prosody::builder(domain, lease) ──► Process (child by PID, logs in TestDir)
//!   │        hosts file: peer domain ──► peer's (or a relay's) address, port 5269
//!   ├─ Relay::start(lease, target) ──► counts bytes and elements per direction, cut()
//!   └─ Client::register / login ──► c2s on 127.0.0.x:5222 (tokio-xmpp), Recorder + wait_until
//! ```
//!
//! Rules every helper keeps (and every test using them gets for free):
//! - **Loopback only, never DNS.** Servers listen on a leased 127.0.0.x address; a Prosody
//!   resolves peer domains through a private hosts file and a dead forwarder
//!   ([`prosody`]); clients connect to an address, not a name ([`client`]).
//! - **No collisions between tests running at once**, in one `cargo test` or in two test
//!   binaries: each server gets its own address, leased by binding a UDP socket on it
//!   ([`addr`], which argues the choice against ports taken from port 0).
//! - **Every wait is bounded** ([`wait`]) and says what it waited for when it gives up.
//! - **Every process is stopped by its PID**, never by name: SIGTERM, then SIGKILL after a
//!   bounded grace ([`process::Process`]); its stdout, stderr and log files stay in the
//!   test's directory and their tails are printed when the test fails.
//!
//! The module knows nothing of `presence-sync serve` beyond [`serve::Serve`], which starts any
//! binary with a TOML file written into the test's directory.
// Each test binary compiles the whole module and uses part of it.
#![allow(dead_code, unused_imports)]

pub mod addr;
pub mod process;
pub mod prosody;
pub mod serve;

// The client, the relay and the bounded waits are the wire conformance suite's own parts
// (`presence_sync::conformance::wire`), used here as they are.
pub use presence_sync::conformance::wire::{client, relay, wait};

pub use addr::{C2S_PORT, Lease, S2S_PORT, lease};
pub use client::{Client, Received, Recorder};
pub use process::{Process, TestDir};
pub use prosody::Prosody;
pub use relay::{Direction, Relay, RelayStats};
pub use serve::Serve;
pub use wait::{wait_for_port, wait_until};

/// The error and result types of the helpers and of the tests that use them: those of the
/// wire suite, whose parts the helpers share.
pub use presence_sync::conformance::wire::{Error, Result};
