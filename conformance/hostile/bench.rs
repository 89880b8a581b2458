//! The test bench of the hostile-peer checks: the implementation under test at [`A`] and a
//! reference peer at [`B`] on a deterministic network, each wrapped in a [`Tap`] that records
//! its traffic, with a small world of users, and a way to make [`B`] send anything.
//!
//! A hostile stanza is *injected* at [`B`]'s tap: it leaves [`B`] on the s2s link like any
//! stanza [`B`] sends, in order after them, and reaches the subject only through its
//! [`Host::handle_stanza`]. Answers to injected requests (ids starting with [`HOSTILE`]) are
//! recorded at [`B`]'s tap and not given to the reference, which never sent them.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Deref;
use std::time::Duration;

use jid::BareJid;
use minidom::Element;

use crate::conformance::subject::{Implementation, Reference, Subject};
use crate::conformance::world::{shown_of, truth_of};
use crate::model::truth::{View, differences};
use crate::model::{Account, NamedState, ResourcePresence, Show, Subscription};
use crate::sim::{Host, LinkConfig, Net, SimTime, Transmit};
use crate::wire::{Hello, Limits, WireElement, ns};

/// The domain of the implementation under test.
pub const A: &str = "a.example";
/// The domain of the reference peer (the hostile side).
pub const B: &str = "b.example";
/// A third domain, never connected: JIDs of it are foreign to the session.
pub const C: &str = "c.example";
/// The prefix of the ids of injected requests.
pub const HOSTILE: &str = "hostile-";

/// A bare JID (the bench's JIDs are valid).
pub fn jid(s: &str) -> BareJid {
    BareJid::new(s).expect("a valid JID")
}

/// A server with its traffic recorded, and stanzas to send on its behalf.
pub struct Tap {
    inner: Box<dyn Subject>,
    /// (time, peer, stanza) of everything this host transmitted, stream errors included, in
    /// order; injected stanzas too.
    pub sent: Vec<(SimTime, String, Element)>,
    /// (time, peer, stanza) of everything that reached it.
    pub received: Vec<(SimTime, String, Element)>,
    inject: VecDeque<Transmit>,
    /// The hostile side: answers to injected requests are kept from the wrapped server.
    hostile: bool,
    now: SimTime,
}

impl Tap {
    fn new(inner: Box<dyn Subject>, hostile: bool) -> Tap {
        Tap {
            inner,
            sent: Vec::new(),
            received: Vec::new(),
            inject: VecDeque::new(),
            hostile,
            now: SimTime::ZERO,
        }
    }

    /// The wrapped server.
    pub fn subject(&self) -> &dyn Subject {
        &*self.inner
    }

    /// The wrapped server, for local actions.
    pub fn subject_mut(&mut self) -> &mut dyn Subject {
        &mut *self.inner
    }
}

impl Deref for Tap {
    type Target = dyn Subject;
    fn deref(&self) -> &(dyn Subject + 'static) {
        &*self.inner
    }
}

impl Host for Tap {
    fn domain(&self) -> &str {
        self.inner.domain()
    }
    fn stream_features(&self) -> Vec<Element> {
        self.inner.stream_features()
    }
    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        self.now = now;
        self.inner.handle_link_up(now, peer, features)
    }
    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        self.now = now;
        self.inner.handle_link_down(now, peer)
    }
    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.now = now;
        self.received.push((now, peer.to_owned(), stanza.clone()));
        // Answers to the injected requests are the bench's, not the wrapped server's.
        let injected = stanza.attr("id").is_some_and(|id| id.starts_with(HOSTILE));
        if !(self.hostile && injected) {
            self.inner.handle_stanza(now, peer, stanza)
        }
    }
    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.now = now;
        self.inner.handle_undeliverable(now, peer, stanza)
    }
    fn handle_timeout(&mut self, now: SimTime) {
        self.now = now;
        self.inner.handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self
            .inner
            .poll_transmit()
            .or_else(|| self.inject.pop_front())?;
        self.sent.push((self.now, t.peer.clone(), t.stanza.clone()));
        Some(t)
    }
    fn poll_timeout(&self) -> Option<SimTime> {
        self.inner.poll_timeout()
    }
    fn crash(&mut self, now: SimTime) {
        self.inner.crash(now)
    }
    fn shutdown(&mut self, now: SimTime) {
        self.inner.shutdown(now)
    }
    fn restart(&mut self, now: SimTime) {
        self.inner.restart(now)
    }
}

/// Both ends' hellos as [`B`] saw them: what the session was negotiated with.
#[derive(Clone, Debug)]
pub struct Negotiated {
    /// The subject's latest hello (request or answer).
    pub subject: Hello,
    /// The reference's latest hello.
    pub peer: Hello,
}

impl Negotiated {
    /// The effective limits (the minimum of both hellos').
    pub fn limits(&self) -> Limits {
        self.subject.limits().negotiate(&self.peer.limits())
    }
}

/// The hellos among `stanzas` (as iq requests or results), oldest first.
pub fn hellos<'a>(stanzas: impl IntoIterator<Item = &'a Element>) -> Vec<Hello> {
    stanzas
        .into_iter()
        .filter(|s| s.name() == "iq")
        .filter_map(|s| s.get_child("hello", ns::PRESENCE_SYNC))
        .filter_map(|h| Hello::parse_element(h).ok())
        .collect()
}

/// Presence of one resource.
pub fn presence(show: Show, statuses: &[(&str, &str)]) -> ResourcePresence {
    ResourcePresence {
        show,
        statuses: statuses
            .iter()
            .map(|(l, t)| ((*l).to_owned(), (*t).to_owned()))
            .collect(),
        ..ResourcePresence::default()
    }
}

/// Events one quiet-down or one period of [`Bench`] may take: far more than the bench's
/// small world needs, so that more means a livelock.
pub const MAX_EVENTS: u64 = 200_000;

/// The two servers, the world on them, and the script's handles.
pub struct Bench {
    /// The network (public for faults; drive it with [`Bench::settle`] and [`Bench::run_for`],
    /// which give up on a livelock).
    pub net: Net<Tap>,
    /// Set when driving gave up: the servers kept exchanging stanzas without end.
    pub stuck: Option<String>,
    next_id: u64,
}

/// How long the bench waits after linking for the peer's hello when the subject sends none:
/// the peer's wait for the edge driver's hello (PS-16, [`crate::engine::Config::hello_wait`]),
/// and a second more.
const HELLO_WAIT: Duration = Duration::from_secs(3);

/// Users of [`A`] and of [`B`].
pub const A_USERS: [&str; 3] = ["alice@a.example", "anne@a.example", "amy@a.example"];
/// Users of [`B`].
pub const B_USERS: [&str; 3] = ["bob@b.example", "ben@b.example", "bea@b.example"];

impl Bench {
    /// The subject made by `imp` at [`A`] and `peer` at [`B`], with the world: `both`
    /// subscriptions alice–bob, alice–ben, alice–bea, anne–bob, anne–ben, amy–bob; alice also
    /// subscribed to carol@c.example (a domain never connected); ben blocks anne (XEP-0191).
    /// Linked, then alice (away, "reading"), anne, bob (dnd, "busy") and ben log in; amy
    /// and bea stay offline. The network is quiet at the end.
    pub fn new(imp: &dyn Implementation, peer: &Reference, seed: u64) -> Bench {
        Bench::sized(imp, peer, seed, 0)
    }

    /// [`Bench::new`] with `extra` more `both` subscriptions between offline users
    /// (`x{i}@a.example`–`y{i}@b.example`): with more than [`crate::engine::SMALL_PEER`] / 2
    /// of them the pair is no small peer (PS-93), so the subject itself starts the session.
    pub fn sized(imp: &dyn Implementation, peer: &Reference, seed: u64, extra: usize) -> Bench {
        let mut net = Net::new(seed);
        net.add_host(Tap::new(imp.server(A, seed), false));
        net.add_host(Tap::new(peer.server(B, seed ^ 0x5eed), true));
        let both = Subscription::named(NamedState::Both);
        let pairs = [
            ("alice", "bob"),
            ("alice", "ben"),
            ("alice", "bea"),
            ("anne", "bob"),
            ("anne", "ben"),
            ("amy", "bob"),
        ];
        for (domain, users) in [(A, A_USERS), (B, B_USERS)] {
            net.with_host(domain, |t, _| {
                let s = t.subject_mut();
                for u in users {
                    s.add_user(&jid(u));
                }
                for (a, b) in pairs {
                    let (a, b) = (jid(&format!("{a}@{A}")), jid(&format!("{b}@{B}")));
                    if domain == A {
                        s.set_roster_item(&a, &b, both);
                    } else {
                        s.set_roster_item(&b, &a, both);
                    }
                }
                for i in 0..extra {
                    let (x, y) = (jid(&format!("x{i}@{A}")), jid(&format!("y{i}@{B}")));
                    if domain == A {
                        s.add_user(&x);
                        s.set_roster_item(&x, &y, both);
                    } else {
                        s.add_user(&y);
                        s.set_roster_item(&y, &x, both);
                    }
                }
                if domain == A {
                    let to = Subscription::named(NamedState::To);
                    s.set_roster_item(&jid("alice@a.example"), &jid("carol@c.example"), to);
                } else {
                    s.block(&jid("ben@b.example"), &jid("anne@a.example"));
                }
            });
        }
        net.connect(A, B, LinkConfig::default());
        let mut bench = Bench {
            net,
            stuck: None,
            next_id: 0,
        };
        bench.settle();
        // A subject that keeps RFC 6121 with this small peer (PS-93) sends no hello; the
        // peer's comes after its wait for the edge driver's (PS-16).
        bench.run_for(HELLO_WAIT);
        bench.login(
            "alice@a.example",
            "home",
            presence(Show::Away, &[("", "reading")]),
        );
        bench.login("anne@a.example", "phone", presence(Show::Available, &[]));
        bench.login(
            "bob@b.example",
            "desk",
            presence(Show::Dnd, &[("", "busy")]),
        );
        bench.login("ben@b.example", "laptop", presence(Show::Available, &[]));
        bench.settle();
        bench
    }

    /// Runs the network until it is quiet (see [`Net::drive`]), giving up after
    /// [`MAX_EVENTS`] events (then [`Bench::stuck`] says so).
    pub fn settle(&mut self) {
        if let Err(e) = self.net.drive_bounded(MAX_EVENTS) {
            self.stuck
                .get_or_insert(format!("the servers never went quiet: {e}"));
        }
    }

    /// Runs every event for `duration` of simulated time, timers included (see
    /// [`Net::drive_for`]), giving up after [`MAX_EVENTS`] events.
    pub fn run_for(&mut self, duration: Duration) {
        let until = self.net.now().plus_micros(duration.as_micros() as u64);
        let mut events = 0;
        while self.net.step_until(until) {
            events += 1;
            if events > MAX_EVENTS {
                let e = format!("still busy after {events} events, at {}", self.net.now());
                self.stuck
                    .get_or_insert(format!("the servers never went quiet: {e}"));
                return;
            }
        }
    }

    /// `user` logs in (or changes its presence) on `resource`.
    pub fn login(&mut self, user: &str, resource: &str, p: ResourcePresence) {
        let user = jid(user);
        let domain = user.domain().as_str().to_owned();
        self.net.with_host(&domain, |t, _| {
            t.subject_mut().set_presence(&user, resource, p)
        });
    }

    /// Logs `user`'s `resource` out.
    pub fn logout(&mut self, user: &str, resource: &str) {
        let user = jid(user);
        let domain = user.domain().as_str().to_owned();
        self.net
            .with_host(&domain, |t, _| t.subject_mut().logout(&user, resource));
    }

    /// The server of `domain`.
    pub fn server(&self, domain: &str) -> &dyn Subject {
        self.net.host(domain).subject()
    }

    /// A fresh id for an injected request.
    pub fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{HOSTILE}{}", self.next_id)
    }

    /// Sends `stanza` from [`B`] to the subject (after whatever [`B`] has queued).
    pub fn inject(&mut self, stanza: Element) {
        self.net.with_host(B, |t, _| {
            t.inject.push_back(Transmit {
                peer: A.to_owned(),
                stanza,
            })
        });
    }

    /// How many stanzas the subject has sent so far (a mark for [`Bench::sent_since`]).
    pub fn mark(&self) -> usize {
        self.net.host(A).sent.len()
    }

    /// What the subject sent since `mark`.
    pub fn sent_since(&self, mark: usize) -> Vec<&Element> {
        self.net.host(A).sent[mark..]
            .iter()
            .map(|(_, _, s)| s)
            .collect()
    }

    /// The subject's answer to the injected request `id`, if it sent one.
    pub fn answer(&self, id: &str) -> Option<&Element> {
        self.net
            .host(A)
            .sent
            .iter()
            .map(|(_, _, s)| s)
            .find(|s| s.name() == "iq" && s.attr("id") == Some(id))
    }

    /// The latest hellos of both sides, if a hello exchange was seen.
    pub fn negotiated(&self) -> Option<Negotiated> {
        let b = self.net.host(B);
        let subject = hellos(b.received.iter().map(|(_, _, s)| s)).pop()?;
        let peer = hellos(b.sent.iter().map(|(_, _, s)| s)).pop()?;
        Some(Negotiated { subject, peer })
    }

    /// Accounts of the subject's users (to see that nothing changed them).
    pub fn accounts(&self) -> BTreeMap<BareJid, Account> {
        self.server(A).accounts().clone()
    }

    /// The ground truth for the online users of both servers.
    pub fn truth(&self) -> View {
        truth_of(&[self.server(A), self.server(B)])
    }

    /// What the online users of both servers are shown.
    pub fn shown(&self) -> View {
        shown_of(&[self.server(A), self.server(B)])
    }

    /// The differences between what users are shown and the truth.
    pub fn diff(&self) -> Vec<String> {
        differences(&self.truth(), &self.shown())
    }

    /// After a hostile input: repairs the link if it was closed, lets retries happen, then
    /// makes one presence change on each side and returns the differences from the truth
    /// once the network is quiet (empty: the session, or RFC 6121, still works).
    pub fn recover(&mut self) -> Vec<String> {
        if !self.net.is_link_up(A, B) {
            self.net.repair(A, B);
        }
        self.run_for(Duration::from_secs(40));
        self.login(
            "bob@b.example",
            "desk",
            presence(Show::Chat, &[("", "back")]),
        );
        self.login(
            "alice@a.example",
            "home",
            presence(Show::Dnd, &[("", "later")]),
        );
        self.run_for(Duration::from_secs(40));
        self.settle();
        match &self.stuck {
            Some(why) => vec![why.clone()],
            None => self.diff(),
        }
    }
}
