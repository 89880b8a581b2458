//! What the `presence-sync serve` network tests share: two servers federating through relays
//! the test controls, people (a client and the presence the test made it send), and the
//! ground-truth check of every online person's view.
#![allow(dead_code)]

pub mod replica;

use std::net::SocketAddr;
use std::time::Duration;

use crate::net::serve::Serve;
use crate::net::{Lease, Relay, Result, TestDir, lease};
use tokio_xmpp::jid::{BareJid, Jid};

/// The bound of every wait for something to cross the federation.
pub const WAIT: Duration = Duration::from_secs(20);

/// A bare JID from a literal.
pub fn jid(s: &str) -> BareJid {
    // The literals of the tests are valid bare JIDs.
    BareJid::new(s).expect("valid JID literal")
}

/// The binary under test.
pub fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_presence-sync"))
}

/// The TOML of a server for `domain` on `lease`, reaching `peer` at `peer_addr`.
pub fn config(
    domain: &str,
    lease: &Lease,
    peer: &str,
    peer_addr: SocketAddr,
    extra: &str,
) -> String {
    format!(
        "domain = '{domain}'\nc2s = '{}'\ns2s = '{}'\ndatabase = 'data.sqlite'\n\
         registration = true\nlog = 'presence_sync=debug'\n{extra}\n[sync]\nsmall-peer = 0\n\
         [peers]\n'{peer}' = '{peer_addr}'\n",
        lease.c2s(),
        lease.s2s()
    )
}

/// a.test and b.test, each reaching the other through its own relay: `ab` carries what a.test
/// sends to b.test (a.test's outgoing stream, and the dialback verifications it makes), `ba`
/// the other way.
pub struct Federation {
    /// a.test's address.
    pub a_lease: Lease,
    /// b.test's address.
    pub b_lease: Lease,
    /// a.test.
    pub a: Server,
    /// b.test.
    pub b: Server,
    /// a.test → b.test.
    pub ab: Relay,
    /// b.test → a.test.
    pub ba: Relay,
    _relay_leases: (Lease, Lease),
}

/// One running server and its address.
pub struct Server {
    /// The process.
    pub serve: Serve,
    c2s: SocketAddr,
}

impl Server {
    /// Its c2s address.
    pub fn c2s(&self) -> SocketAddr {
        self.c2s
    }
}

impl Federation {
    /// Starts both servers (with `extra` TOML lines each) and their relays.
    pub async fn start_with(dir: &TestDir, extra: &str) -> Result<Federation> {
        let (a_lease, b_lease) = (lease()?, lease()?);
        let (ab_lease, ba_lease) = (lease()?, lease()?);
        let ab = Relay::new(ab_lease.s2s(), b_lease.s2s()).await?;
        let ba = Relay::new(ba_lease.s2s(), a_lease.s2s()).await?;
        let a_toml = config("a.test", &a_lease, "b.test", ab_lease.s2s(), extra);
        let b_toml = config("b.test", &b_lease, "a.test", ba_lease.s2s(), extra);
        let ports_a = [a_lease.c2s(), a_lease.s2s()];
        let ports_b = [b_lease.c2s(), b_lease.s2s()];
        let a = Serve::start(bin(), "a.test", dir, &a_toml, &ports_a, WAIT).await?;
        let b = Serve::start(bin(), "b.test", dir, &b_toml, &ports_b, WAIT).await?;
        Ok(Federation {
            a: Server {
                serve: a,
                c2s: a_lease.c2s(),
            },
            b: Server {
                serve: b,
                c2s: b_lease.c2s(),
            },
            a_lease,
            b_lease,
            ab,
            ba,
            _relay_leases: (ab_lease, ba_lease),
        })
    }

    /// Every element that crossed the relays, in order per relay, one line each (for the
    /// message of a failing test).
    pub fn wire(&self) -> String {
        let mut out = String::new();
        for (name, relay) in [("a.test→b.test", &self.ab), ("b.test→a.test", &self.ba)] {
            out.push_str(&format!("--- the stream {name} and its answers ---\n"));
            for crate::net::relay::Captured {
                dir, element: e, ..
            } in relay.stats().captured
            {
                let arrow = match dir {
                    crate::net::Direction::Forward => ">>",
                    crate::net::Direction::Backward => "<<",
                };
                let text = String::from(&e);
                let cut: String = text.chars().take(300).collect();
                out.push_str(&format!("{arrow} {cut}\n"));
            }
        }
        out
    }

    /// Starts both servers with the default configuration.
    pub async fn start(dir: &TestDir) -> Result<Federation> {
        Federation::start_with(dir, "").await
    }
}

// People, their views and the ground-truth check are the wire conformance suite's own (each
// test file uses part of them).
#[allow(unused_imports)]
pub use presence_sync::conformance::wire::people::{
    Person, Stale, View, shown, views_match, views_match_with,
};

/// The bare JID of a full or bare JID.
pub fn bare(j: &Jid) -> BareJid {
    j.to_bare()
}
