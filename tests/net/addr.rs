//! Loopback addresses for servers and relays: one 127.0.0.x per process, leased for the
//! lifetime of a [`Lease`] value, so that tests running in parallel never collide.
//!
//! # Why addresses and not ports
//!
//! Every server and relay gets an address of its own and listens on the standard ports there
//! (c2s [`C2S_PORT`] 5222, s2s [`S2S_PORT`] 5269). Two reasons:
//!
//! - **Peers find each other without DNS or SRV records.** A server that federates with
//!   `b.test` resolves `_xmpp-server._tcp.b.test` and, finding no record, connects to the
//!   address of `b.test` on port 5269 (RFC 6120 §3.2.1 fallback; Prosody 0.12 does exactly
//!   this in `net.resolvers.service` with `default_port = 5269`). A hosts file can name an
//!   address but not a port, and Prosody 0.12 has no option that maps a remote domain to an
//!   address and port, so the s2s port must be 5269 and the address must differ per server.
//! - **No race between choosing and using.** Taking a port from a bind to port 0 and closing
//!   the socket before the server binds it leaves a window in which any other test, or any
//!   outgoing connection picking an ephemeral source port, can take it. A lease instead holds
//!   a UDP socket bound to `(address, LEASE_PORT)` for as long as the test uses the address:
//!   `bind(2)` is atomic in the kernel, so of two tests (threads of one `cargo test` or two
//!   test binaries) trying the same address exactly one wins, and the loser moves on to the
//!   next address. The kernel closes the socket when the process dies, even by SIGKILL, so
//!   there is no lock file to go stale. UDP does not collide with the TCP ports the servers
//!   use on the same address.
//!
//! Before a lease is granted, the TCP ports 5222 and 5269 of the address are checked free by
//! binding them once (a listener that never accepted leaves no TIME_WAIT). This skips an
//! address still held by a server that a killed test run left behind.
//!
//! On Linux the whole 127.0.0.0/8 is routed to the loopback interface, so these addresses
//! need no configuration. 127.0.0.1 is left out (other software and the dead DNS forwarder
//! of [`super::prosody`] use it).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};

use super::Result;

/// The c2s port every server listens on, at its own address (RFC 6120 §3.2.1).
pub const C2S_PORT: u16 = 5222;
/// The s2s port every server and relay listens on, at its own address (RFC 6120 §3.2.1).
pub const S2S_PORT: u16 = 5269;
/// The UDP port whose binding on an address is the lease of that address.
pub const LEASE_PORT: u16 = 5270;

/// The addresses leases are taken from, in order: 127.0.0.2 to 127.0.0.254. A test alone on
/// the machine therefore gets 127.0.0.2, 127.0.0.3, ... in the order it asks.
const FIRST: u8 = 2;
const LAST: u8 = 254;

/// An address of 127.0.0.0/8 that this process alone uses while the value lives.
#[derive(Debug)]
pub struct Lease {
    addr: Ipv4Addr,
    _socket: UdpSocket,
}

impl Lease {
    /// The leased address.
    pub fn ip(&self) -> Ipv4Addr {
        self.addr
    }

    /// The c2s endpoint at the leased address.
    pub fn c2s(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.addr, C2S_PORT))
    }

    /// The s2s endpoint at the leased address.
    pub fn s2s(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.addr, S2S_PORT))
    }
}

/// Leases the first free address of 127.0.0.2–127.0.0.254 (see the module documentation).
pub fn lease() -> Result<Lease> {
    for last in FIRST..=LAST {
        let addr = Ipv4Addr::new(127, 0, 0, last);
        // Another lease holder (this process or another) has it: bind fails at once.
        let Ok(socket) = UdpSocket::bind((addr, LEASE_PORT)) else {
            continue;
        };
        // A leftover server from a killed run may still listen here.
        if ports_free(addr) {
            return Ok(Lease {
                addr,
                _socket: socket,
            });
        }
    }
    Err(format!(
        "no free loopback address in 127.0.0.{FIRST}-127.0.0.{LAST} (every one is leased by a \
         running test or has port {C2S_PORT} or {S2S_PORT} taken)"
    )
    .into())
}

/// Whether nothing listens on the c2s and s2s ports of `addr`.
fn ports_free(addr: Ipv4Addr) -> bool {
    [C2S_PORT, S2S_PORT]
        .iter()
        .all(|&port| TcpListener::bind((addr, port)).is_ok())
}
