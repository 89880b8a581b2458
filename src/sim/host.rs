//! The contract between a simulated server and the deterministic network driver.
//!
//! A [`Host`] is a sans-IO server: it never reads a clock or touches a socket. The driver gives
//! it the time with every call, delivers the stanzas that reach it from peers, tells it when an
//! s2s link to a peer comes up or goes down, fires its timer, and collects what it wants to
//! send. In the style of quinn-proto, a driver calls, after every input, `poll_transmit` until
//! it returns `None`, then `poll_timeout` to learn the next timer.
//!
//! An s2s "link" between two domains stands for the pair of s2s streams between them: stanzas
//! in each direction arrive in the order they were sent, or not at all once the link is down.

use minidom::Element;

/// Simulated time in microseconds since the start of the simulation: the engine's
/// [`crate::engine::Time`], under the name the simulator has always used.
pub use crate::engine::Time as SimTime;

/// The namespace of `<stream:error/>` (RFC 6120 §4.9).
pub const STREAMS_NS: &str = "http://etherx.jabber.org/streams";

/// The kind under which the driver counts stream errors ([`crate::sim::Stats`]).
pub const STREAM_ERROR_KIND: &str = "stream-error";

/// True if `element` is a stream error, `<error xmlns='http://etherx.jabber.org/streams'/>`
/// (see [`Transmit`]).
pub fn is_stream_error(element: &Element) -> bool {
    element.is("error", STREAMS_NS)
}

/// A stanza a host wants to send to a peer domain.
///
/// A host closes its s2s link to the peer with a stream error (RFC 6120 §4.9: for example
/// `<invalid-from/>` for a stanza whose `from` is not of the authenticated peer domain, RFC
/// 6120 §4.9.3.9) by transmitting the `<error xmlns='http://etherx.jabber.org/streams'/>`
/// element, with its condition in `urn:ietf:params:xml:ns:xmpp-streams`, as the stanza
/// ([`is_stream_error`]). It travels behind what the host sent before it; when it arrives,
/// the driver counts it under the kind [`STREAM_ERROR_KIND`] (it is not given to the peer's
/// [`Host::handle_stanza`]: it is not a stanza) and partitions the link, as
/// `Net::partition` does: both ends get [`Host::handle_link_down`], whatever was in flight
/// is lost, and the link stays down until the script repairs it (`Net::repair`), as a real
/// peer reconnects only when it decides to. Anything the host sends on the link after the
/// stream error is lost with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transmit {
    /// The peer domain (the s2s link it goes over).
    pub peer: String,
    /// The stanza (`<iq/>`, `<message/>` or `<presence/>` in `jabber:server`).
    pub stanza: Element,
}

/// A simulated XMPP server as the driver sees it.
pub trait Host {
    /// The domain this host serves.
    fn domain(&self) -> &str;

    /// The stream features this host offers its peers (RFC 6120 §4.3.2), e.g. the
    /// `<presence-sync/>` feature of the extension. Stream negotiation is not counted as
    /// stanzas by the driver. None by default.
    fn stream_features(&self) -> Vec<Element> {
        Vec::new()
    }

    /// The s2s link to `peer` is established (both streams up, peer authenticated);
    /// `features` are the peer's [`Host::stream_features`].
    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]);

    /// The s2s link to `peer` is gone; stanzas in flight on it are lost.
    fn handle_link_down(&mut self, now: SimTime, peer: &str);

    /// A stanza from `peer` arrived over the link.
    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element);

    /// A stanza this host sent to `peer` could not be delivered (the link was down when it was
    /// sent, or went down before it arrived). Real servers bounce it as an error or drop it;
    /// the default does nothing.
    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        let _ = (now, peer, stanza);
    }

    /// The timer returned by [`Host::poll_timeout`] expired (`now` is at or after it).
    fn handle_timeout(&mut self, now: SimTime);

    /// The next stanza to send, if any.
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// When the host next needs [`Host::handle_timeout`], if ever.
    fn poll_timeout(&self) -> Option<SimTime>;

    /// The server process dies now: volatile state (sessions, presence, anything not
    /// persisted) is lost, nothing more is sent. The driver takes its links down without
    /// telling it; it is dead until [`Host::restart`].
    fn crash(&mut self, now: SimTime);

    /// The server stops cleanly: it may queue last stanzas (drained by the driver with
    /// `poll_transmit` and delivered if the links are up), then it is down until
    /// [`Host::restart`].
    fn shutdown(&mut self, now: SimTime);

    /// The server boots again after [`Host::crash`] or [`Host::shutdown`], from its persistent
    /// state only (rosters, block lists, and whatever its protocol says may be persisted).
    /// The driver then brings its links up again.
    fn restart(&mut self, now: SimTime);
}

/// A boxed host (e.g. `Box<dyn Subject>` in the conformance suite) is a host.
impl<H: Host + ?Sized> Host for Box<H> {
    fn domain(&self) -> &str {
        (**self).domain()
    }
    fn stream_features(&self) -> Vec<Element> {
        (**self).stream_features()
    }
    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        (**self).handle_link_up(now, peer, features)
    }
    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        (**self).handle_link_down(now, peer)
    }
    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        (**self).handle_stanza(now, peer, stanza)
    }
    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        (**self).handle_undeliverable(now, peer, stanza)
    }
    fn handle_timeout(&mut self, now: SimTime) {
        (**self).handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        (**self).poll_transmit()
    }
    fn poll_timeout(&self) -> Option<SimTime> {
        (**self).poll_timeout()
    }
    fn crash(&mut self, now: SimTime) {
        (**self).crash(now)
    }
    fn shutdown(&mut self, now: SimTime) {
        (**self).shutdown(now)
    }
    fn restart(&mut self, now: SimTime) {
        (**self).restart(now)
    }
}
