//! One [`Session`] of the reference engine, alone, driven stanza by stanza by a scripted peer:
//! the harness of the hardening regression tests and of the `session` fuzz target.
//!
//! The probe plays the peer domain itself: it answers the session's hello, so that a session is
//! established, and from then on the caller feeds it any stanza ([`Probe::feed`]). After every
//! input the probe drains what the session sent and checks the invariants a hostile peer must
//! never break ([`Probe::check`]):
//!
//! - every stanza the session sent is valid against the limits the peer announced
//!   ([`crate::wire::check_outgoing`]): size, counts, syntax, domains; and the session never
//!   had to withhold one of its own ([`Event::Withheld`]): its stanzas are valid by
//!   construction, the check is only the last guard;
//! - peer input never changed the session's edge set nor its published set (only local
//!   changes do; repairs go through the server's rosters);
//! - every structure the peer can make grow is within its bound ([`Session::footprint`]
//!   against [`crate::engine::Bounds`]).
//!
//! ```text
//!  Probe ── link_up(feature) ──► Session (a.example) ──► hello ──► Probe answers (b.example)
//!    feed(stanza) ──► handle_stanza ──► drain poll_transmit / poll_event ──► check()
//! ```

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::iq::Iq;

use crate::digest::{Fingerprint, HashAlgo, NodeValue};
use crate::engine::session::{Config, Directory, Event, Session};
use crate::model::{Edge, EdgeState, Epoch, PublisherPresence, ResourcePresence, Subscription};
use crate::sim::SimTime;
use crate::wire::{
    Domains, Hello, Limits, Root, ServerNs, SetName, StreamFeature, WireElement, check_outgoing,
};

/// The peer domain the probe plays.
pub const PEER: &str = "b.example";
/// The domain of the session under test when it is the edge driver (sorts before [`PEER`]).
pub const DRIVER: &str = "a.example";
/// The domain of the session under test when it is not the edge driver (sorts after [`PEER`]).
pub const NON_DRIVER: &str = "c.example";

/// A directory without users: repairs are decided against no roster, nobody wants anything.
#[derive(Debug, Default)]
pub struct NoUsers;

impl Directory for NoUsers {
    fn roster_item(&self, _user: &BareJid, _contact: &BareJid) -> Option<Subscription> {
        None
    }

    fn wanted(&self, _peer: &str) -> Vec<(BareJid, u8)> {
        Vec::new()
    }
}

/// What the probe's session starts with.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Edges between the two domains the session holds.
    pub edges: usize,
    /// Local publishers in its published set.
    pub published: usize,
    /// The session's own configuration.
    pub config: Config,
    /// The limits the probe (the peer) announces.
    pub peer_limits: Limits,
    /// The peer's epoch.
    pub peer_epoch: Epoch,
    /// Whether the session under test is the edge driver ([`DRIVER`]) or not ([`NON_DRIVER`]).
    pub driver: bool,
    /// The count the peer's hello gives its published set, with a fingerprint that matches
    /// nothing: a pull starts and waits for answers the probe never sends unless fed them
    /// (0: an empty published set, nothing to pull).
    pub peer_published: u64,
    /// The peer's edge root differs from the session's: a descent starts (the driver sends
    /// its first query at once).
    pub edges_differ: bool,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            edges: 64,
            published: 16,
            config: Config::default(),
            peer_limits: Limits::DEFAULT,
            peer_epoch: Epoch(0xb0b0_0000_0000_0001),
            driver: true,
            peer_published: 0,
            edges_differ: false,
        }
    }
}

/// `user{i}@domain`.
pub fn user(i: usize, domain: &str) -> BareJid {
    BareJid::new(&format!("user{i}@{domain}")).expect("a valid JID")
}

/// The edges of [`Setup::edges`] of a session of `local`: local user i subscribed to peer user
/// i and the reverse, alternately.
pub fn edges(local: &str, n: usize) -> Vec<Edge> {
    (0..n)
        .map(|i| {
            let (mine, theirs) = (user(i / 2, local), user(i / 2, PEER));
            let (publisher, subscriber) = if i % 2 == 0 {
                (mine, theirs)
            } else {
                (theirs, mine)
            };
            Edge {
                publisher,
                subscriber,
                state: EdgeState::Subscribed,
            }
        })
        .collect()
}

/// One available resource.
pub fn available() -> PublisherPresence {
    let mut p = PublisherPresence::default();
    p.resources
        .insert("phone".into(), ResourcePresence::default());
    p
}

/// A violated invariant, with what was observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// The session under test and its scripted peer.
#[derive(Clone)]
pub struct Probe {
    /// The session (a.example's side).
    pub session: Session,
    /// The time of the last input.
    pub now: SimTime,
    /// Everything the session sent, in order.
    pub sent: Vec<Element>,
    /// Every event it reported, in order.
    pub events: Vec<Event>,
    local: &'static str,
    peer_published: u64,
    edges_differ: bool,
    peer_epoch: Epoch,
    peer_limits: Limits,
    domains: Domains,
    edge_root: (Fingerprint, u64),
    published_root: (Fingerprint, u64),
    next_id: u64,
}

impl Probe {
    /// A session of [`DRIVER`] (or [`NON_DRIVER`]) with [`PEER`], established: the link is up
    /// with the extension's feature, and one hello exchange took place with roots equal to the
    /// session's own, so that nothing is left to reconcile. The edge driver sends its hello at
    /// once and the probe answers it; otherwise the probe sends the hello.
    pub fn established(setup: Setup) -> Probe {
        let local = if setup.driver { DRIVER } else { NON_DRIVER };
        let published = (0..setup.published).map(|i| (user(i, local), available()));
        let session = Session::new(
            local,
            PEER,
            Epoch(0xa0a0_0000_0000_0001),
            setup.config.clone(),
            edges(local, setup.edges),
            published,
        );
        let empty = NodeValue::EMPTY.fingerprint(HashAlgo::Blake3);
        let mut probe = Probe {
            session,
            now: SimTime::from_millis(1_000),
            sent: Vec::new(),
            events: Vec::new(),
            local,
            peer_published: setup.peer_published,
            edges_differ: setup.edges_differ,
            peer_epoch: setup.peer_epoch,
            peer_limits: setup.peer_limits,
            domains: Domains::new(local, PEER).expect("two domains"),
            edge_root: (empty, 0),
            published_root: (empty, 0),
            next_id: 0,
        };
        let feature = StreamFeature::new(&setup.config.algos);
        let feature = xso::transform(&feature).expect("a feature serialises");
        probe.session.link_up(probe.now, &[feature]);
        let sent = probe.drain();
        let stanza = match sent.iter().find(|s| s.name() == "iq") {
            Some(request) => probe.answer_hello(request),
            None => probe.hello_request(),
        };
        probe.input(|s, now, dir| s.handle_stanza(now, &stanza, dir));
        probe.edge_root = probe.session.edges().root();
        probe.published_root = probe.session.published().root();
        probe
    }

    /// The peer's hello for the session's current state: equal edges, an empty published
    /// set, a cache equal to the session's published set; `peer_epoch` is the session's epoch
    /// the cache belongs to.
    pub fn hello(&self, epoch: Epoch, peer_epoch: Epoch) -> Hello {
        let (mut edges_fp, edges_count) = self.session.edges().root();
        let (pub_fp, pub_count) = self.session.published().root();
        let algo = self.session.algo();
        if self.edges_differ {
            edges_fp = Fingerprint([0x5a; 16]);
        }
        let published = match self.peer_published {
            0 => NodeValue::EMPTY.fingerprint(algo),
            _ => Fingerprint([0xa5; 16]),
        };
        Hello::new(
            epoch,
            Some(peer_epoch),
            algo,
            &self.peer_limits,
            Root {
                set: SetName::Edges,
                count: edges_count,
                fp: edges_fp,
                changes: None,
            },
            Root {
                set: SetName::Published,
                count: self.peer_published,
                fp: published,
                changes: None,
            },
            Root {
                set: SetName::Cached,
                count: pub_count,
                fp: pub_fp,
                changes: None,
            },
        )
    }

    /// The peer's hello request for the session's current state, with the peer's epoch.
    pub fn hello_request(&mut self) -> Element {
        let hello = self.hello(self.peer_epoch, self.session.epoch());
        let xml = String::from(&hello.to_element().expect("a hello serialises"));
        self.request(&xml).parse().expect("well-formed")
    }

    /// The peer's answer to the session's hello `iq`: the session's own roots, the probe's
    /// limits and epoch.
    fn answer_hello(&self, iq: &Element) -> Element {
        let request = iq
            .children()
            .next()
            .map(Hello::parse_element)
            .and_then(Result::ok)
            .expect("a hello");
        let hello = self.hello(self.peer_epoch, request.epoch);
        let result = Iq::Result {
            from: Some(Jid::from(BareJid::new(PEER).expect("a domain"))),
            to: Some(Jid::from(BareJid::new(self.local).expect("a domain"))),
            id: iq.attr("id").unwrap_or_default().to_owned(),
            payload: Some(hello.to_element().expect("a hello serialises")),
        };
        xso::transform(&ServerNs(result)).expect("an iq serialises")
    }

    /// The domain of the session under test.
    pub fn local(&self) -> &'static str {
        self.local
    }

    /// The peer's epoch.
    pub fn peer_epoch(&self) -> Epoch {
        self.peer_epoch
    }

    /// The limits in effect: those of the session's latest hello exchange (the peer may
    /// announce others in a new hello), else ours and the probe's first ones, negotiated.
    pub fn limits(&self) -> Limits {
        if self.session.mode() == crate::engine::Mode::Synchronized {
            return self.session.limits();
        }
        self.session.config().limits.negotiate(&self.peer_limits)
    }

    /// A fresh id for a request of the peer.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        format!("probe-{}", self.next_id)
    }

    /// `<iq type='set'/>` from the peer carrying `payload` (XML text).
    pub fn request(&mut self, payload: &str) -> String {
        let id = self.id();
        let local = self.local;
        format!(
            "<iq xmlns='jabber:server' from='{PEER}' to='{local}' id='{id}' type='set'>{payload}</iq>"
        )
    }

    /// Runs one input on the session, then drains and checks what it produced.
    fn input(&mut self, f: impl FnOnce(&mut Session, SimTime, &dyn Directory)) -> Vec<Element> {
        f(&mut self.session, self.now, &NoUsers);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        while let Some(s) = self.session.poll_transmit() {
            out.push(s);
        }
        while let Some(e) = self.session.poll_event() {
            self.events.push(e);
        }
        self.sent.extend(out.iter().cloned());
        out
    }

    /// Feeds one stanza of the peer (if the session claims it) at the current time plus
    /// `advance_micros`, fires the timers due by then, and returns what the session sent.
    pub fn feed(&mut self, stanza: &Element, advance_micros: u64) -> Vec<Element> {
        self.now = self.now.plus_micros(advance_micros);
        let mut out = self.timers();
        if self.session.claims(stanza) {
            out.extend(self.input(|s, now, dir| s.handle_stanza(now, stanza, dir)));
        }
        out
    }

    /// Fires the session's timers due by now.
    pub fn timers(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        // Each firing moves or clears the timers it handled; bounded all the same.
        for _ in 0..16 {
            match self.session.poll_timeout() {
                Some(t) if t <= self.now => {
                    out.extend(self.input(|s, now, dir| s.handle_timeout(now, dir)));
                }
                _ => break,
            }
        }
        out
    }

    /// Checks the invariants on everything `out` holds (see the module documentation).
    pub fn check(&mut self, out: &[Element]) -> Result<(), Violation> {
        let limits = self.limits();
        for stanza in out {
            check_outgoing(stanza, &limits, &self.domains).map_err(|e| {
                Violation(format!(
                    "invalid stanza sent ({e}): {}",
                    String::from(stanza)
                ))
            })?;
        }
        if self.session.edges().root() != self.edge_root {
            return Err(Violation("peer input changed the edge set".into()));
        }
        if self.session.published().root() != self.published_root {
            return Err(Violation("peer input changed the published set".into()));
        }
        if let Some(Event::Withheld(e)) =
            self.events.iter().find(|e| matches!(e, Event::Withheld(_)))
        {
            return Err(Violation(format!(
                "the session built an invalid stanza: {e}"
            )));
        }
        let footprint = self.session.footprint();
        let bounds = self.session.bounds();
        footprint
            .within(&bounds)
            .map_err(|what| Violation(format!("{what}: {footprint:?} against {bounds:?}")))
    }
}
