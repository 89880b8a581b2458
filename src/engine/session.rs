//! The per-peer session (XEP §Sessions to §Link Loss, Resumption and Fallback): the code a
//! server embeds to run the extension with one peer domain, sans-IO in the style of
//! quinn-proto.
//!
//! # Contract
//!
//! A [`Session`] holds everything the extension keeps about one peer: the edge set, the
//! published set for the peer, the cache of the peer's published set, the epochs, the
//! reconciliations in progress, the window. It never reads a clock (every input carries the
//! time) and never touches a socket. The server feeds it:
//!
//! - link events: [`Session::link_up`] with the peer's stream features (XEP §Stream Feature),
//!   [`Session::link_down`];
//! - every stanza of the extension received from the peer: [`Session::handle_stanza`] (the
//!   server asks [`Session::claims`] which ones those are);
//! - local changes: [`Session::update_edges`] when a roster item towards the peer changes,
//!   [`Session::publish`] when the published state of a local user changes (the server
//!   computes it: XEP §Sets and Roles, PS-7 to PS-9), [`Session::want`] when local users
//!   become interested in some of the peer's publishers (a login, activity: XEP §Priority
//!   Ordering);
//! - timers: [`Session::handle_timeout`] at [`Session::poll_timeout`];
//! - shutdown: [`Session::shutdown`].
//!
//! and polls, after every input, [`Session::poll_transmit`] (stanzas for the peer, in order,
//! already in `jabber:server`) and [`Session::poll_event`] ([`Event`]s: presence to deliver to
//! local users, repairs sent, session milestones, errors, fallback to legacy).
//!
//! The server's own data (rosters, who is online and active) is reached through the
//! [`Directory`] it passes to the inputs that need it.
//!
//! # Data flow
//!
//! ```text
//!  link_up(features) ──► hello (iq set) ──► peer        peer's hello ──► answer (iq result)
//!                              │ both hellos known: three comparisons (PS-19)
//!        edges differ ─────────┼──► EdgeReconciler (driver starts, PS-33) ──► repairs (PS-61)
//!                              │       └─ done: verification hello (PS-36)
//!        peer published ≠ cache┼──► Puller (priority buckets, then the root, PS-34/PS-53)
//!                              ▼
//!   publish() ──► <fanout/> presence (PS-45) or dirty ──► <batch/> (PS-42), window-bound
//!   received items, fanouts, answers ──► cache ──► gate (PS-37) ──► Event::Deliver
//! ```
//!
//! # Choices where the XEP leaves room (all documented in the XEP's implementation notes)
//!
//! - The hello is sent first by the edge driver as soon as the link is up; the other side
//!   sends its own only if none arrived within [`Config::hello_wait`] (PS-16 says the
//!   initiator of the s2s connection, which the simulated link does not name).
//! - A cache holder whose cache is empty (a restart) pulls the buckets of the publishers its
//!   [`Directory::wanted`] names first, with `<ids/>` (PS-35, PS-53); one whose cache is
//!   populated (a link loss) descends from the root at once, because equal subtrees are then
//!   skipped and a bucket pull would resend what matches.
//! - Received requests are answered at once, so the window of incoming requests is never
//!   exceeded here; the check of PS-50 applies to stanza limits.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::presence::{Presence, Type as PresenceType};

use super::edge_set::EdgeSet;
use super::edge_sync::{EdgeReconciler, is_edge_driver};
use super::presence_set::PresenceSet;
use super::presence_sync::{Puller, answer};
use super::repair::{Holder, RepairStanza, plan, repairs_suspended};
use crate::digest::{Fingerprint, HashAlgo, NodeValue, PairHasher, depth_for};
use crate::model::{Edge, Epoch, PublisherPresence, Subscription};
use crate::sim::SimTime;
use crate::wire::{
    Batch, Direction, Domains, Fanout, Hello, Item, ItemPresence, Limits, Reconcile, ReconcileSet,
    Root, ServerNs, SetName, Shutdown, StreamFeature, WireElement, WireError, ns,
};

/// One second in [`SimTime`] units (microseconds).
const SECOND: u64 = 1_000_000;

/// Tunables of a session (XEP defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Hash algorithms this server supports, preferred first (PS-1: sha-256 is mandatory).
    pub algos: Vec<HashAlgo>,
    /// The limits this server announces in its hellos (XEP §Hello).
    pub limits: Limits,
    /// How long a cache of a peer stays usable in the suspended mode (PS-56), µs.
    pub grace: u64,
    /// After how long an unanswered request ends the session (PS-51), µs.
    pub request_timeout: u64,
    /// The first retry delay after a failed session (PS-57), µs; doubled after each failure.
    pub retry: u64,
    /// Failed sessions in a row after which the peer is treated as legacy (PS-58).
    pub max_failures: u32,
    /// Descents of the edge set in one session after which the peer is treated as legacy
    /// (PS-38).
    pub max_descents: u32,
    /// How long the side that is not the edge driver waits for the driver's hello before
    /// sending its own (PS-16), µs.
    pub hello_wait: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            algos: vec![HashAlgo::Blake3, HashAlgo::Sha256],
            limits: Limits::DEFAULT,
            grace: 300 * SECOND,
            request_timeout: 60 * SECOND,
            retry: 10 * SECOND,
            max_failures: 3,
            max_descents: 3,
            hello_wait: 2 * SECOND,
        }
    }
}

/// What a session needs to know about the server's own users.
pub trait Directory {
    /// The current roster item of local user `user` for `contact` (PS-63: repairs are decided
    /// against the state at the time of acting).
    fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Option<Subscription>;
    /// Publishers of `peer` whose presence local users want now, most wanted first (the
    /// server's priority policy, XEP §Priority Ordering).
    fn wanted(&self, peer: &str) -> Vec<BareJid>;
}

/// The order in which a cache holder wants the presence of the peer's publishers (XEP
/// §Priority Ordering, PS-53): a rank for each local user, from whether the user is online and
/// active now. Contacts of users with a lower rank are pulled first; users without a rank add
/// nothing to the front of the queue (their contacts come with the descent from the root).
pub trait PriorityPolicy: fmt::Debug + Send + Sync {
    /// The rank of a local user, or None if its contacts need no priority.
    fn rank(&self, online: bool, active: bool) -> Option<u8>;
}

/// The default policy of PS-53: the contacts of users who are online and active first (rank
/// 0), then those of online users (rank 1), then the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveFirst;

impl PriorityPolicy for ActiveFirst {
    fn rank(&self, online: bool, active: bool) -> Option<u8> {
        match (online, active) {
            (true, true) => Some(0),
            (true, false) => Some(1),
            _ => None,
        }
    }
}

/// The mode of the server towards the peer (XEP §Sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A session is established.
    Synchronized,
    /// The peer supports the extension, no session is established.
    Suspended,
    /// RFC 6121 unchanged: the peer lacks the extension, or sessions kept failing.
    Legacy,
}

/// Why the session fell back to RFC 6121.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// The peer advertises neither the disco feature nor the stream feature (PS-5).
    NotSupported,
    /// No hash algorithm in common (cannot happen with a conforming peer: sha-256 is
    /// mandatory).
    NoCommonHash,
    /// This many sessions failed in a row (PS-58).
    Failures(u32),
    /// The edge set could not be verified after this many descents (PS-38).
    Unverifiable(u32),
}

/// Why a cache of the peer was voided (XEP §Epochs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoidReason {
    /// A hello carried a new epoch of the peer (PS-13, PS-19).
    NewEpoch,
    /// The peer announced a shutdown (PS-55).
    Shutdown,
    /// The grace period of the suspended mode ended (PS-56).
    GraceExpired,
    /// The session fell back to RFC 6121 (PS-58).
    Fallback,
}

/// What a session tells its server.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Deliver the change of `publisher`'s presence to the local users entitled to it
    /// (PS-40, PS-45): `old` is what they were shown, `new` what they must be shown.
    Deliver {
        /// The peer's publisher.
        publisher: BareJid,
        /// Shown before (None: unavailable).
        old: Option<PublisherPresence>,
        /// To show now (None: unavailable).
        new: Option<PublisherPresence>,
    },
    /// A repair stanza was sent (PS-60, PS-61); the server applies its local part
    /// ([`super::repair::apply_locally`], PS-64) and pushes the roster item.
    Repaired(RepairStanza),
    /// A hello exchange completed: a session is established (or re-verified).
    SessionStarted,
    /// Both the edge set and the cache of the peer are verified (XEP §Verification).
    Synchronized,
    /// The peer restarted: its epoch changed.
    PeerRestarted,
    /// The cache of the peer was voided.
    CacheVoided(VoidReason),
    /// The session ended (link loss, error, timeout, shutdown); the server is suspended.
    SessionEnded(String),
    /// RFC 6121 from now on: the server voids nothing more, probes and broadcasts as if its
    /// users had just logged in (PS-58).
    Fallback(FallbackReason),
    /// More mismatches than the threshold of PS-65: repairs are suspended, the operator is
    /// alerted.
    RepairsSuspended {
        /// Differing pairs found.
        mismatches: u64,
    },
    /// An edge of the peer with JIDs not in normalised form: not acted on (PS-62).
    NotNormalized(Edge),
    /// A stanza of the peer was refused with this error (or, for answers and presence,
    /// discarded, PS-70).
    Rejected(WireError),
}

/// An unanswered request of ours.
#[derive(Clone, Debug)]
enum Request {
    /// A hello; the request as sent.
    Hello(Box<Hello>, SimTime),
    /// A reconcile query of the edge set.
    Edges(SimTime),
    /// A reconcile query of the peer's published set.
    Presence(SimTime),
    /// A batch.
    Batch(SimTime),
}

impl Request {
    fn sent(&self) -> SimTime {
        match self {
            Request::Hello(_, t) | Request::Edges(t) | Request::Presence(t) | Request::Batch(t) => {
                *t
            }
        }
    }

    fn windowed(&self) -> bool {
        !matches!(self, Request::Hello(..))
    }
}

/// An established session (XEP §Sessions).
#[derive(Clone, Debug)]
struct Live {
    limits: Limits,
    peer_epoch: Epoch,
    /// Descents of the edge set started in this session (PS-38).
    descents: u32,
    /// The edge descent in progress (either side).
    edge: Option<EdgeReconciler>,
    /// The driver's descent is complete and its verification hello is due (PS-36).
    verify_due: bool,
    /// Pairs (publisher, subscriber) repaired in this session (PS-83).
    repaired: BTreeSet<(BareJid, BareJid)>,
    suspended_repairs: bool,
    /// The pull of the peer's published set in progress.
    puller: Option<Puller>,
    cache_verified: bool,
    /// Local publishers whose item is due in a batch (PS-42, PS-44, PS-47).
    dirty: BTreeSet<BareJid>,
    synchronized_reported: bool,
}

/// One peer domain, seen from one server. See the [module documentation](self).
#[derive(Clone)]
pub struct Session {
    local: String,
    peer: String,
    domains: Domains,
    config: Config,
    epoch: Epoch,
    algo: HashAlgo,
    driver: bool,
    mode: Mode,
    link_up: bool,
    edges: EdgeSet,
    published: PresenceSet,
    cache: PresenceSet,
    /// The peer epoch the cache belongs to (None: no cache).
    cache_epoch: Option<Epoch>,
    /// The peer epoch before that (a late shutdown of it is ignored, PS-55).
    superseded: BTreeSet<Epoch>,
    /// What local users have been released to see of the peer's publishers.
    shown: BTreeMap<BareJid, PublisherPresence>,
    /// The edge set is verified (in the current session, or the last one while suspended
    /// within the grace period): the gate of PS-37.
    edges_verified: bool,
    live: Option<Live>,
    /// Local publishers changed while our hello was unanswered (PS-44).
    pre_dirty: BTreeSet<BareJid>,
    requests: BTreeMap<String, Request>,
    next_id: u64,
    failures: u32,
    grace_deadline: Option<SimTime>,
    retry_at: Option<SimTime>,
    hello_at: Option<SimTime>,
    out: VecDeque<Element>,
    events: VecDeque<Event>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("mode", &self.mode)
            .field("epoch", &self.epoch)
            .field("edges", &self.edges.len())
            .field("published", &self.published.len())
            .field("cache", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// Is the stanza one of ours? Iq with our payload (or a result/error to one of our ids),
/// presence with `<fanout/>`, message with `<shutdown/>`.
fn payload_of(stanza: &Element) -> Option<&Element> {
    stanza.children().find(|c| c.ns() == ns::PRESENCE_SYNC)
}

fn iq_element(iq: Iq) -> Element {
    // xmpp-parsers writes every Iq it can hold.
    xso::transform(&ServerNs(iq)).expect("an iq serialises")
}

impl Session {
    /// A session of `local` with `peer`, in the suspended mode with the link down, holding
    /// the given edges and published states; `epoch` is the server's current epoch (PS-12).
    ///
    /// # Panics
    /// If `local` or `peer` is not a domain.
    pub fn new(
        local: &str,
        peer: &str,
        epoch: Epoch,
        config: Config,
        edges: impl IntoIterator<Item = Edge>,
        published: impl IntoIterator<Item = (BareJid, PublisherPresence)>,
    ) -> Session {
        let domains = Domains::new(local, peer).expect("two domains");
        let algo = config.algos.first().copied().unwrap_or(HashAlgo::Sha256);
        let hasher = PairHasher::new(algo, local, peer);
        let edges: Vec<Edge> = edges.into_iter().collect();
        let published: Vec<(BareJid, PublisherPresence)> = published.into_iter().collect();
        let edge_set = EdgeSet::with_edges(hasher.clone(), depth_for(edges.len() as u64), edges);
        let mut pub_set = PresenceSet::new(hasher.clone(), depth_for(published.len() as u64));
        for (p, state) in published {
            pub_set.set(&p, state);
        }
        Session {
            local: local.to_owned(),
            peer: peer.to_owned(),
            domains,
            driver: is_edge_driver(local, peer),
            config,
            epoch,
            algo,
            mode: Mode::Suspended,
            link_up: false,
            edges: edge_set,
            published: pub_set,
            cache: PresenceSet::new(hasher, 0),
            cache_epoch: None,
            superseded: BTreeSet::new(),
            shown: BTreeMap::new(),
            edges_verified: false,
            live: None,
            pre_dirty: BTreeSet::new(),
            requests: BTreeMap::new(),
            next_id: 0,
            failures: 0,
            grace_deadline: None,
            retry_at: None,
            hello_at: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// The peer domain.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// True while the server must not probe the peer's users nor send them per-edge
    /// broadcasts (PS-66): in the synchronized and suspended modes.
    pub fn replaces_rfc6121(&self) -> bool {
        self.mode != Mode::Legacy
    }

    /// True once both the edge set and the cache are verified in the current session.
    pub fn is_synchronized(&self) -> bool {
        self.edges_verified && self.live.as_ref().is_some_and(|l| l.cache_verified)
    }

    /// True if the gate of PS-37 is open: cached presence may be delivered.
    pub fn edges_verified(&self) -> bool {
        self.edges_verified
    }

    /// The presence of the peer's `publisher` that local users may be shown now (released
    /// through the gate of PS-37).
    pub fn shown(&self, publisher: &BareJid) -> Option<&PublisherPresence> {
        self.shown.get(publisher)
    }

    /// The cached presence of the peer's publishers (verified or not).
    pub fn cache(&self) -> &PresenceSet {
        &self.cache
    }

    /// The published set for the peer.
    pub fn published(&self) -> &PresenceSet {
        &self.published
    }

    /// The edge set.
    pub fn edges(&self) -> &EdgeSet {
        &self.edges
    }

    /// The next stanza to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Element> {
        self.out.pop_front()
    }

    /// The next event for the server.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<SimTime> {
        let oldest = self
            .requests
            .values()
            .map(|r| r.sent().plus_micros(self.config.request_timeout))
            .min();
        [self.grace_deadline, self.retry_at, self.hello_at, oldest]
            .into_iter()
            .flatten()
            .min()
    }

    /// True if `stanza` from the peer belongs to the extension and must go to
    /// [`Session::handle_stanza`]: an iq carrying an element of our namespace, a result or
    /// error for one of our requests, a presence with `<fanout/>`, a message with
    /// `<shutdown/>`. A subscription stanza with `<repair/>` is not: it is processed as RFC
    /// 6121 (PS-60).
    pub fn claims(&self, stanza: &Element) -> bool {
        match stanza.name() {
            "iq" => {
                payload_of(stanza).is_some()
                    || stanza
                        .attr("id")
                        .is_some_and(|id| self.requests.contains_key(id))
            }
            "presence" => stanza.has_child("fanout", ns::PRESENCE_SYNC),
            "message" => stanza.has_child("shutdown", ns::PRESENCE_SYNC),
            _ => false,
        }
    }

    // ---- link events ----

    /// The s2s link to the peer is up; `features` are the peer's stream features (the
    /// `<presence-sync/>` element, if any, XEP §Stream Feature).
    pub fn link_up(&mut self, now: SimTime, features: &[Element]) {
        self.link_up = true;
        self.failures = 0;
        if self.mode == Mode::Legacy {
            return;
        }
        let feature = features
            .iter()
            .filter(|f| f.is("presence-sync", ns::PRESENCE_SYNC))
            .find_map(|f| StreamFeature::parse_element(f).ok());
        let Some(feature) = feature else {
            self.fall_back(FallbackReason::NotSupported);
            return;
        };
        // PS-4: blake3 if both have it, else sha-256.
        let Some(algo) = feature.choose(&self.config.algos) else {
            self.fall_back(FallbackReason::NoCommonHash);
            return;
        };
        self.set_algo(algo);
        if self.driver {
            self.send_hello(now);
        } else {
            self.hello_at = Some(now.plus_micros(self.config.hello_wait));
        }
    }

    /// The s2s link to the peer is lost: the session ends, the caches stay, unverified, for
    /// the grace period (PS-56).
    pub fn link_down(&mut self, now: SimTime) {
        self.link_up = false;
        self.hello_at = None;
        self.retry_at = None;
        if self.mode == Mode::Legacy {
            return;
        }
        if self.live.is_some() || !self.requests.is_empty() {
            self.end_session(now, "link lost".into(), false);
        }
        self.mode = Mode::Suspended;
        if self.grace_deadline.is_none() && self.cache_epoch.is_some() {
            self.grace_deadline = Some(now.plus_micros(self.config.grace));
        }
    }

    /// The server stops and loses its user sessions: one `<shutdown/>` message (PS-54), and
    /// the session is over.
    pub fn shutdown(&mut self, restart: bool) {
        if self.live.is_some() {
            let shutdown = Shutdown {
                epoch: self.epoch,
                restart: restart.then_some(true),
            };
            let mut m = Message::new(Some(Jid::from(self.peer_jid())));
            m.from = Some(Jid::from(self.local_jid()));
            m.type_ = MessageType::Normal;
            let m = m.with_payload(shutdown);
            self.out
                .push_back(xso::transform(&ServerNs(m)).expect("a message serialises"));
        }
        self.live = None;
        self.requests.clear();
    }

    // ---- local changes ----

    /// A roster change of a local user towards the peer: `removed` edges are no longer
    /// projected, `added` are (XEP §Sets and Roles, PS-6).
    pub fn update_edges(&mut self, removed: &[Edge], added: &[Edge]) {
        for e in removed {
            self.edges.remove(e);
        }
        for e in added {
            self.edges.insert(e.clone());
        }
    }

    /// The published state of local `user` for the peer is now `state` (None: not in the
    /// published set, PS-7). While a session is established the change crosses the link as
    /// one domain-level presence when it is one resource's change of a publisher already
    /// published, and as an item in a batch otherwise (PS-44, PS-45, PS-47).
    pub fn publish(&mut self, now: SimTime, user: &BareJid, state: Option<PublisherPresence>) {
        let state = state.filter(|s| !s.is_unavailable());
        let old = self.published.get(user).cloned();
        if old == state {
            return;
        }
        self.published.set(user, state.clone().unwrap_or_default());
        let established = self.live.is_some();
        let hello_pending = self
            .requests
            .values()
            .any(|r| matches!(r, Request::Hello(..)));
        if !established && !hello_pending {
            return; // found by the next hello's comparison
        }
        if established
            && let Some(live) = &self.live
            && !live.dirty.contains(user)
            && let Some(presence) = self.fanout_of(user, old.as_ref(), state.as_ref())
        {
            self.out.push_back(presence);
            return;
        }
        match &mut self.live {
            Some(live) => {
                live.dirty.insert(user.clone());
            }
            // Changes after the hello's root was computed are sent once the session is
            // established (PS-44).
            None => {
                self.pre_dirty.insert(user.clone());
            }
        }
        self.pump(now);
    }

    /// Local users want the presence of these publishers of the peer now (a login, or
    /// activity): their buckets move to the front of the pull in progress (PS-53).
    pub fn want(&mut self, publishers: &[BareJid]) {
        let count = self.cache.len().max(1);
        let len = bucket_len(count, self.config.limits.leaf_items);
        let Some(live) = &mut self.live else {
            return;
        };
        if len == 0 {
            return; // one bucket: the descent from the root is the pull
        }
        let Some(puller) = &mut live.puller else {
            return;
        };
        let mut seen = BTreeSet::new();
        for p in publishers.iter().rev() {
            let prefix = self.cache.prefix_of(p, len);
            if seen.insert(prefix) {
                puller.prioritize(prefix);
            }
        }
    }

    // ---- received stanzas ----

    /// A stanza from the peer that [`Session::claims`]. Never panics: malformed input is
    /// answered with the error the XEP specifies (PS-69) or discarded (PS-70), and ends the
    /// session.
    pub fn handle_stanza(&mut self, now: SimTime, stanza: &Element, dir: &dyn Directory) {
        if self.mode == Mode::Legacy {
            return;
        }
        match stanza.name() {
            "iq" => self.handle_iq(now, stanza, dir),
            "presence" => self.handle_fanout(now, stanza, dir),
            "message" => self.handle_shutdown(now, stanza),
            _ => {}
        }
        self.pump_with(now, dir);
    }

    /// The timer: grace period, retries, the non-driver's hello, request timeouts.
    pub fn handle_timeout(&mut self, now: SimTime, dir: &dyn Directory) {
        if self.grace_deadline.is_some_and(|t| t <= now) && self.live.is_none() {
            self.grace_deadline = None;
            self.edges_verified = false;
            self.void_cache(VoidReason::GraceExpired);
            self.cache_epoch = None;
        }
        if self.hello_at.is_some_and(|t| t <= now) {
            self.hello_at = None;
            if self.link_up && self.live.is_none() && self.mode != Mode::Legacy {
                self.send_hello(now);
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.link_up && self.live.is_none() && self.mode != Mode::Legacy {
                self.send_hello(now);
            }
        }
        let expired = self
            .requests
            .values()
            .any(|r| r.sent().plus_micros(self.config.request_timeout) <= now);
        if expired {
            self.end_session(now, "request timed out (PS-51)".into(), true);
        }
        self.pump_with(now, dir);
    }

    // ---- internals: hello ----

    fn local_jid(&self) -> BareJid {
        BareJid::new(&self.local).expect("a domain")
    }

    fn peer_jid(&self) -> BareJid {
        BareJid::new(&self.peer).expect("a domain")
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("ps-{kind}-{}", self.next_id)
    }

    fn set_algo(&mut self, algo: HashAlgo) {
        if algo == self.algo {
            return;
        }
        self.algo = algo;
        let hasher = PairHasher::new(algo, &self.local, &self.peer);
        let edges: Vec<Edge> = self.edges.iter().cloned().collect();
        self.edges = EdgeSet::with_edges(hasher.clone(), depth_for(edges.len() as u64), edges);
        let rebuild = |set: &PresenceSet| {
            let mut new = PresenceSet::new(hasher.clone(), depth_for(set.len()));
            for (p, s) in set.iter() {
                new.set(p, s.clone());
            }
            new
        };
        self.published = rebuild(&self.published);
        self.cache = rebuild(&self.cache);
    }

    fn empty_fp(&self) -> Fingerprint {
        NodeValue::EMPTY.fingerprint(self.algo)
    }

    fn my_hello(&self, peer_epoch_for_answer: Option<Epoch>) -> Hello {
        let root = |set: SetName, (fp, count): (Fingerprint, u64)| Root { set, fp, count };
        let peer_epoch = peer_epoch_for_answer.or(self.cache_epoch);
        let cached = if peer_epoch.is_some() {
            self.cache.root()
        } else {
            (self.empty_fp(), 0)
        };
        Hello::new(
            self.epoch,
            peer_epoch,
            self.algo,
            &self.config.limits,
            root(SetName::Edges, self.edges.root()),
            root(SetName::Published, self.published.root()),
            root(SetName::Cached, cached),
        )
    }

    fn send_hello(&mut self, now: SimTime) {
        if self
            .requests
            .values()
            .any(|r| matches!(r, Request::Hello(..)))
        {
            return; // PS-20: one unanswered hello at a time
        }
        let hello = self.my_hello(None);
        let id = self.next_id("hello");
        let iq = Iq::Set {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.clone(),
            payload: hello.to_element().expect("a hello serialises"),
        };
        self.out.push_back(iq_element(iq));
        self.requests
            .insert(id, Request::Hello(Box::new(hello), now));
    }

    /// Both hellos are known: epochs, then the three comparisons (XEP §Hello).
    fn exchange_complete(
        &mut self,
        now: SimTime,
        request: &Hello,
        answer: &Hello,
        we_asked: bool,
        dir: &dyn Directory,
    ) {
        let (mine, theirs) = if we_asked {
            (request, answer)
        } else {
            (answer, request)
        };
        let limits = request.limits().negotiate(&answer.limits());
        let empty = self.empty_fp();
        // PS-19: a cached root of the wrong epoch counts as the empty set, on both sides.
        let cached_fp = |h: &Hello, other: &Hello| {
            let c = h
                .root(SetName::Cached)
                .expect("parsed hellos have three roots");
            if h.peer_epoch == Some(other.epoch) {
                c.fp
            } else {
                empty
            }
        };
        let fp = |h: &Hello, s| h.root(s).expect("three roots").fp;
        let edges_equal = fp(mine, SetName::Edges) == fp(theirs, SetName::Edges);
        let my_cache_equal = cached_fp(mine, theirs) == fp(theirs, SetName::Published);
        self.grace_deadline = None;
        self.retry_at = None;
        self.hello_at = None;
        self.mode = Mode::Synchronized;
        let first = self.live.is_none();
        let live = self.live.get_or_insert_with(|| Live {
            limits,
            peer_epoch: theirs.epoch,
            descents: 0,
            edge: None,
            verify_due: false,
            repaired: BTreeSet::new(),
            suspended_repairs: false,
            puller: None,
            cache_verified: false,
            dirty: BTreeSet::new(),
            synchronized_reported: false,
        });
        live.limits = limits;
        live.peer_epoch = theirs.epoch;
        if first {
            self.events.push_back(Event::SessionStarted);
            // Changes made while our hello was in flight (PS-44).
            let dirty = std::mem::take(&mut self.pre_dirty);
            if let Some(live) = &mut self.live {
                live.dirty.extend(dirty);
            }
        }
        let live = self.live.as_mut().expect("just set");
        // Edges.
        let was_verified = self.edges_verified;
        if edges_equal {
            self.edges_verified = true;
            live.edge = None;
            live.verify_due = false;
        } else {
            self.edges_verified = false;
            let busy = live.edge.as_ref().is_some_and(|e| !e.is_done());
            if self.driver && !busy {
                let current = self.edges.root().0;
                if we_asked && current == fp(theirs, SetName::Edges) {
                    // Repairs of the peer arrived after our hello's root was computed: verify
                    // again rather than descend (XEP §Starting and Ending a Descent).
                    live.verify_due = true;
                } else if live.descents >= self.config.max_descents {
                    let n = live.descents;
                    self.fall_back(FallbackReason::Unverifiable(n));
                    return;
                } else {
                    live.descents += 1;
                    live.verify_due = false;
                    let mut reconciler = EdgeReconciler::new();
                    if let Some(q) = reconciler.start(&mut self.edges, &live.limits) {
                        live.edge = Some(reconciler);
                        let id = self.next_id("edges");
                        self.send_query(id, q, Request::Edges(now));
                    } else {
                        live.edge = Some(reconciler);
                    }
                }
            }
        }
        // Our cache of the peer's published set.
        let live = self.live.as_mut().expect("still established");
        if my_cache_equal {
            live.puller = None;
            live.cache_verified = true;
        } else if live.puller.is_none() {
            live.cache_verified = false;
            let count = fp_count(theirs, SetName::Published);
            let priority = if self.cache.is_empty() {
                // Restart: pull the wanted buckets first (PS-53), then the root.
                if self.cache.digest().tree().depth() == 0 {
                    self.cache.set_depth(depth_for(count));
                }
                let len = bucket_len(count, live.limits.leaf_items);
                let mut seen = BTreeSet::new();
                // With one bucket, the descent from the root is the pull.
                let wanted = if len == 0 {
                    Vec::new()
                } else {
                    dir.wanted(&self.peer)
                };
                wanted
                    .iter()
                    .map(|p| self.cache.prefix_of(p, len))
                    .filter(|p| seen.insert(*p))
                    .collect()
            } else {
                Vec::new()
            };
            live.puller = Some(Puller::new(priority));
        }
        if self.edges_verified && !was_verified {
            self.release_all();
        }
    }

    // ---- internals: sending ----

    fn send_query(&mut self, id: String, q: Reconcile, kind: Request) {
        let iq = Iq::Set {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.clone(),
            payload: q.to_element().expect("a reconcile serialises"),
        };
        self.out.push_back(iq_element(iq));
        self.requests.insert(id, kind);
    }

    fn send_result(&mut self, id: &str, payload: Option<Element>) {
        let iq = Iq::Result {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.to_owned(),
            payload,
        };
        self.out.push_back(iq_element(iq));
    }

    fn send_error(&mut self, id: &str, error: &WireError) {
        if let Some(se) = error.stanza_error() {
            let iq = Iq::Error {
                from: Some(Jid::from(self.local_jid())),
                to: Some(Jid::from(self.peer_jid())),
                id: id.to_owned(),
                error: se,
                payload: None,
            };
            self.out.push_back(iq_element(iq));
        }
    }

    fn window_free(&self) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        let used = self.requests.values().filter(|r| r.windowed()).count();
        used < live.limits.window as usize
    }

    /// Sends what the window allows, live batches first (PS-52), then edge queries, then
    /// presence queries; notices completions.
    fn pump_with(&mut self, now: SimTime, dir: &dyn Directory) {
        self.plan_repairs(dir);
        self.pump(now);
    }

    fn pump(&mut self, now: SimTime) {
        if self.live.is_none() {
            return;
        }
        while self.window_free() && self.live.as_ref().is_some_and(|l| !l.dirty.is_empty()) {
            self.send_batch(now);
        }
        while self.window_free() {
            let live = self.live.as_mut().expect("checked");
            let Some(edge) = &mut live.edge else { break };
            let Some(q) = edge.next_query(&mut self.edges, &live.limits) else {
                break;
            };
            let id = self.next_id("edges");
            self.send_query(id, q, Request::Edges(now));
        }
        while self.window_free() {
            let live = self.live.as_mut().expect("checked");
            let Some(puller) = &mut live.puller else {
                break;
            };
            let Some(q) = puller.next_query(&mut self.cache, &live.limits) else {
                break;
            };
            let id = self.next_id("presence");
            self.send_query(id, q, Request::Presence(now));
        }
        let live = self.live.as_mut().expect("checked");
        if live.puller.as_ref().is_some_and(Puller::is_done) {
            live.puller = None;
            live.cache_verified = true;
        }
        // PS-36: the driver's descent is complete: verify with a new hello.
        let edge_idle = live.edge.as_ref().is_some_and(EdgeReconciler::is_done);
        if self.driver && edge_idle {
            live.edge = None;
            live.verify_due = true;
        }
        if live.verify_due
            && !self
                .requests
                .values()
                .any(|r| matches!(r, Request::Hello(..)))
        {
            live.verify_due = false;
            self.send_hello(now);
        }
        let live = self.live.as_mut().expect("checked");
        if self.edges_verified && live.cache_verified && !live.synchronized_reported {
            live.synchronized_reported = true;
            self.failures = 0;
            self.events.push_back(Event::Synchronized);
        }
    }

    fn send_batch(&mut self, now: SimTime) {
        let live = self.live.as_mut().expect("checked by caller");
        let limits = live.limits;
        let mut batch = Batch {
            epoch: self.epoch,
            items: Vec::new(),
        };
        // Item contents are computed now, not when the change was queued (XEP §Batches).
        let mut size = 200;
        while let Some(user) = live.dirty.first().cloned() {
            let state = self.published.get(&user).cloned().unwrap_or_default();
            let Ok(item) = Item::from_model(&user, &state) else {
                live.dirty.remove(&user);
                continue;
            };
            let bytes = item.to_xml_bytes().map_or(0, |b| b.len());
            if !batch.items.is_empty()
                && (batch.items.len() >= limits.max_items as usize
                    || size + bytes > limits.max_bytes as usize)
            {
                break;
            }
            size += bytes;
            live.dirty.remove(&user);
            batch.items.push(item);
        }
        if batch.items.is_empty() {
            return;
        }
        let id = self.next_id("batch");
        let iq = Iq::Set {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.clone(),
            payload: batch.to_element().expect("a batch serialises"),
        };
        self.out.push_back(iq_element(iq));
        self.requests.insert(id, Request::Batch(now));
    }

    /// The domain-level presence for a change from `old` to `new` of `user`'s published
    /// state, if the change is one resource's (PS-45; a new publisher or a changed except
    /// list needs an item, PS-47).
    fn fanout_of(
        &self,
        user: &BareJid,
        old: Option<&PublisherPresence>,
        new: Option<&PublisherPresence>,
    ) -> Option<Element> {
        let old = old?;
        let empty = PublisherPresence::default();
        let new_ref = new.unwrap_or(&empty);
        if new.is_some() && old.except != new_ref.except {
            return None;
        }
        let mut changed = old
            .resources
            .keys()
            .chain(new_ref.resources.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|r| old.resources.get(*r) != new_ref.resources.get(*r));
        let resource = changed.next()?.clone();
        if changed.next().is_some() {
            return None;
        }
        let full = user.with_resource_str(&resource).ok()?;
        let mut presence = match new_ref.resources.get(&resource) {
            Some(rp) => {
                let one = PublisherPresence {
                    resources: [(resource.clone(), rp.clone())].into_iter().collect(),
                    except: BTreeSet::new(),
                };
                let item = Item::from_model(user, &one).ok()?;
                item.presences.into_iter().next()?.0
            }
            None => Presence::new(PresenceType::Unavailable).with_from(Jid::from(full)),
        };
        presence.to = Some(Jid::from(self.peer_jid()));
        presence.payloads.push(Element::from(Fanout));
        Some(xso::transform(&ServerNs(presence)).expect("a presence serialises"))
    }

    // ---- internals: receiving ----

    fn handle_iq(&mut self, now: SimTime, stanza: &Element, dir: &dyn Directory) {
        let id = stanza.attr("id").unwrap_or_default().to_owned();
        match stanza.attr("type") {
            Some("set") => self.handle_request(now, &id, stanza, dir),
            Some("result") => {
                let Some(request) = self.requests.remove(&id) else {
                    return; // an answer of an earlier session
                };
                let payload = stanza.children().next();
                self.handle_answer(now, request, payload, dir);
            }
            Some("error") if self.requests.remove(&id).is_some() => {
                let reason = payload_of(
                    stanza
                        .get_child("error", ns::JABBER_SERVER)
                        .unwrap_or(stanza),
                )
                .map_or("error".to_owned(), |c| c.name().to_owned());
                self.end_session(now, format!("peer answered with an error: {reason}"), true);
            }
            _ => {}
        }
    }

    fn reject(&mut self, now: SimTime, id: &str, error: WireError) {
        self.send_error(id, &error);
        let text = error.to_string();
        self.events.push_back(Event::Rejected(error));
        self.end_session(now, format!("request refused: {text}"), true);
    }

    fn handle_request(&mut self, now: SimTime, id: &str, stanza: &Element, dir: &dyn Directory) {
        let Some(payload) = payload_of(stanza) else {
            return;
        };
        if let Err(e) = self.domains.check_from(
            stanza
                .attr("from")
                .and_then(|f| f.parse::<Jid>().ok())
                .as_ref(),
        ) {
            self.reject(now, id, e);
            return;
        }
        match payload.name() {
            "hello" => match Hello::parse_element(payload) {
                Ok(hello) => self.handle_hello(now, id, hello, dir),
                Err(e) => self.reject(now, id, e),
            },
            "reconcile" => {
                let Some(live) = &self.live else {
                    return self.reject(now, id, out_of_order("reconcile"));
                };
                let limits = live.limits;
                let q = match parse_checked::<Reconcile>(payload, &limits, &self.domains)
                    .and_then(|q| q.check_direction(Direction::Query).map(|()| q))
                {
                    Ok(q) => q,
                    Err(e) => return self.reject(now, id, e),
                };
                let reply = match q.set {
                    ReconcileSet::Edges => {
                        let live = self.live.as_mut().expect("checked");
                        let edge = live.edge.get_or_insert_with(EdgeReconciler::new);
                        edge.answer(&mut self.edges, &q, &limits)
                    }
                    ReconcileSet::Presence => answer(&mut self.published, &q, &limits),
                };
                self.send_result(id, Some(reply.to_element().expect("serialises")));
                let _ = dir;
            }
            "batch" => {
                let Some(live) = &self.live else {
                    return self.reject(now, id, out_of_order("batch"));
                };
                let (limits, peer_epoch) = (live.limits, live.peer_epoch);
                let batch = match parse_checked::<Batch>(payload, &limits, &self.domains) {
                    Ok(b) => b,
                    Err(e) => return self.reject(now, id, e),
                };
                if batch.epoch != peer_epoch {
                    // PS-43: nothing of a stale batch is applied.
                    return self.reject(
                        now,
                        id,
                        WireError::StaleEpoch {
                            element: "batch",
                            got: batch.epoch,
                            current: peer_epoch,
                        },
                    );
                }
                for item in &batch.items {
                    self.apply_item(item);
                }
                self.send_result(id, None);
            }
            name => {
                let e = WireError::Malformed {
                    element: "iq",
                    reason: crate::wire::Malformed::Structure(format!(
                        "<{name}/> is not a request of this protocol"
                    )),
                };
                self.reject(now, id, e);
            }
        }
    }

    fn handle_hello(&mut self, now: SimTime, id: &str, request: Hello, dir: &dyn Directory) {
        if !self.config.algos.contains(&request.hash) {
            // PS-17.
            let e = WireError::UnsupportedHash {
                element: "hello",
                algo: request.hash.name().to_owned(),
            };
            self.send_error(id, &e);
            return;
        }
        self.set_algo(request.hash);
        // PS-13, the first rule of XEP §Hello: a new epoch voids the cache first.
        if self.cache_epoch != Some(request.epoch) {
            if let Some(old) = self.cache_epoch {
                self.superseded.insert(old);
                self.events.push_back(Event::PeerRestarted);
                self.void_cache(VoidReason::NewEpoch);
            }
            self.cache_epoch = Some(request.epoch);
            self.live = None; // a new run of the peer: a new session
        }
        let answer = self.my_hello(Some(request.epoch));
        self.send_result(id, Some(answer.to_element().expect("a hello serialises")));
        // A crossing hello of ours is answered too; this exchange is the one that counts.
        self.exchange_complete(now, &request, &answer, false, dir);
    }

    fn handle_answer(
        &mut self,
        now: SimTime,
        request: Request,
        payload: Option<&Element>,
        dir: &dyn Directory,
    ) {
        let limits = self
            .live
            .as_ref()
            .map(|l| l.limits)
            .unwrap_or(self.config.limits);
        match request {
            Request::Hello(sent, _) => {
                let hello = match payload.map(Hello::parse_element) {
                    Some(Ok(h)) => h,
                    Some(Err(e)) => return self.discard(now, e),
                    None => return self.discard(now, missing("hello")),
                };
                if hello.hash != sent.hash {
                    return self.discard(now, missing("hello with the hash of the request"));
                }
                // PS-19: an answer from another epoch than our cache's voids it.
                if sent.peer_epoch != Some(hello.epoch) {
                    if self.cache_epoch.is_some() {
                        if let Some(old) = self.cache_epoch {
                            self.superseded.insert(old);
                        }
                        self.events.push_back(Event::PeerRestarted);
                        self.void_cache(VoidReason::NewEpoch);
                    }
                    self.cache_epoch = Some(hello.epoch);
                }
                if self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.peer_epoch != hello.epoch)
                {
                    self.live = None;
                }
                self.exchange_complete(now, &sent, &hello, true, dir);
            }
            Request::Edges(_) => {
                let answer =
                    match payload.map(|p| parse_checked::<Reconcile>(p, &limits, &self.domains)) {
                        Some(Ok(a)) if a.set == ReconcileSet::Edges => a,
                        Some(Err(e)) => return self.discard(now, e),
                        _ => return self.discard(now, missing("reconcile set='edges'")),
                    };
                if let Some(live) = &mut self.live
                    && let Some(edge) = &mut live.edge
                {
                    edge.handle_answer(&mut self.edges, &answer, &live.limits);
                }
            }
            Request::Presence(_) => {
                let answer = match payload.map(|p| {
                    parse_checked::<Reconcile>(p, &limits, &self.domains)
                        .and_then(|a| a.check_direction(Direction::Answer).map(|()| a))
                }) {
                    Some(Ok(a)) if a.set == ReconcileSet::Presence => a,
                    Some(Err(e)) => return self.discard(now, e),
                    _ => return self.discard(now, missing("reconcile set='presence'")),
                };
                let Some(live) = &mut self.live else { return };
                let Some(puller) = &mut live.puller else {
                    return;
                };
                let changes = puller.handle_answer(&mut self.cache, &answer, &live.limits);
                for c in changes {
                    self.release(&c.publisher);
                }
            }
            Request::Batch(_) => {}
        }
    }

    /// A bad answer or presence: nothing can be returned (PS-70); the session ends.
    fn discard(&mut self, now: SimTime, error: WireError) {
        let text = error.to_string();
        self.events.push_back(Event::Rejected(error));
        self.end_session(now, format!("discarded: {text}"), true);
    }

    fn handle_fanout(&mut self, now: SimTime, stanza: &Element, dir: &dyn Directory) {
        let _ = dir;
        if self.live.is_none() {
            return; // PS-46: ignored without a session
        }
        let presence = match xso::transform::<ServerNs<Presence>, _>(stanza) {
            Ok(p) => p.into_inner(),
            Err(e) => return self.discard(now, WireError::from_xso("presence", e)),
        };
        if let Err(e) = Fanout::check_presence(&presence, &self.domains) {
            return self.discard(now, e);
        }
        let Some(from) = presence.from.clone() else {
            return;
        };
        let publisher = from.to_bare();
        let Some(resource) = from.resource().map(|r| r.as_str().to_owned()) else {
            return;
        };
        let Some(mut state) = self.cache.get(&publisher).cloned() else {
            // PS-48: no entry: deliver nothing, reconcile the bucket.
            let len = bucket_len(self.cache.len().max(1), self.config.limits.leaf_items);
            let prefix = self.cache.prefix_of(&publisher, len);
            if let Some(live) = &mut self.live {
                live.cache_verified = false;
                live.synchronized_reported = false;
                live.puller
                    .get_or_insert_with(|| Puller::new(std::iter::empty()))
                    .prioritize(prefix);
            }
            return;
        };
        if presence.type_ == PresenceType::Unavailable {
            state.resources.remove(&resource);
        } else {
            let mut p = presence;
            p.to = None;
            p.payloads.retain(|e| !e.is("fanout", ns::PRESENCE_SYNC));
            let item = Item {
                jid: publisher.clone(),
                presences: vec![ItemPresence(p)],
                excepts: Vec::new(),
            };
            match item.to_model().resources.into_iter().next() {
                Some((_, rp)) => {
                    state.resources.insert(resource, rp);
                }
                None => return,
            }
        }
        self.cache.set(&publisher, state);
        self.release(&publisher);
    }

    fn handle_shutdown(&mut self, now: SimTime, stanza: &Element) {
        let Some(element) = stanza.get_child("shutdown", ns::PRESENCE_SYNC) else {
            return;
        };
        let shutdown = match Shutdown::parse_element(element) {
            Ok(s) => s,
            Err(e) => return self.discard(now, e),
        };
        if self.superseded.contains(&shutdown.epoch) {
            return; // PS-55: a late announcement of an earlier run
        }
        if self.cache_epoch == Some(shutdown.epoch) {
            self.superseded.insert(shutdown.epoch);
            self.void_cache(VoidReason::Shutdown);
            self.cache_epoch = None;
            self.edges_verified = false;
        }
        self.end_session(now, "peer shut down".into(), false);
        self.grace_deadline = None;
    }

    fn apply_item(&mut self, item: &Item) {
        let state = item.to_model();
        self.cache.set(&item.jid, state);
        self.release(&item.jid);
    }

    // ---- internals: repairs ----

    /// Decides and sends the repairs of the differing edges learnt so far, once this side's
    /// part of the descent is idle (PS-61, PS-63, PS-65, PS-83).
    fn plan_repairs(&mut self, dir: &dyn Directory) {
        let Some(live) = &mut self.live else { return };
        let Some(edge) = &live.edge else { return };
        if !edge.is_done() {
            return;
        }
        let diff = edge.diff();
        let differing: Vec<(&Edge, Holder)> = diff
            .only_mine
            .iter()
            .map(|e| (e, Holder::Mine))
            .chain(diff.only_theirs.iter().map(|e| (e, Holder::Theirs)))
            .collect();
        let pairs: BTreeSet<(&BareJid, &BareJid)> = differing
            .iter()
            .map(|(e, _)| (&e.publisher, &e.subscriber))
            .collect();
        let mismatches = pairs.len() as u64;
        if repairs_suspended(mismatches, self.edges.len()) {
            if !live.suspended_repairs {
                live.suspended_repairs = true;
                self.events
                    .push_back(Event::RepairsSuspended { mismatches });
            }
            return;
        }
        let fresh: Vec<(&Edge, Holder)> = differing
            .into_iter()
            .filter(|(e, _)| {
                !live
                    .repaired
                    .contains(&(e.publisher.clone(), e.subscriber.clone()))
            })
            .collect();
        if fresh.is_empty() {
            return;
        }
        let (stanzas, refused) = plan(
            &self.local,
            |u, c| dir.roster_item(u, c),
            fresh.iter().copied(),
        );
        for (e, _) in &fresh {
            live.repaired
                .insert((e.publisher.clone(), e.subscriber.clone()));
        }
        for e in refused {
            self.events.push_back(Event::NotNormalized(e));
        }
        for s in stanzas {
            self.out.push_back(s.to_element());
            self.events.push_back(Event::Repaired(s));
        }
    }

    // ---- internals: cache and gate ----

    /// Releases the cached state of `publisher` to local users if the gate is open (PS-37).
    fn release(&mut self, publisher: &BareJid) {
        if !self.edges_verified {
            return;
        }
        let new = self.cache.get(publisher).cloned();
        let old = self.shown.get(publisher).cloned();
        if old == new {
            return;
        }
        match &new {
            Some(s) => self.shown.insert(publisher.clone(), s.clone()),
            None => self.shown.remove(publisher),
        };
        self.events.push_back(Event::Deliver {
            publisher: publisher.clone(),
            old,
            new,
        });
    }

    fn release_all(&mut self) {
        let publishers: BTreeSet<BareJid> = self
            .cache
            .iter()
            .map(|(p, _)| p.clone())
            .chain(self.shown.keys().cloned())
            .collect();
        for p in publishers {
            self.release(&p);
        }
    }

    /// Voids the cache: every publisher shown becomes unavailable locally (PS-13).
    fn void_cache(&mut self, reason: VoidReason) {
        self.cache.clear();
        for (publisher, old) in std::mem::take(&mut self.shown) {
            self.events.push_back(Event::Deliver {
                publisher,
                old: Some(old),
                new: None,
            });
        }
        if let Some(live) = &mut self.live {
            live.puller = None;
            live.cache_verified = false;
        }
        self.events.push_back(Event::CacheVoided(reason));
    }

    // ---- internals: ending ----

    fn end_session(&mut self, now: SimTime, reason: String, failed: bool) {
        let had = self.live.is_some() || !self.requests.is_empty();
        self.live = None;
        self.requests.clear();
        self.pre_dirty.clear();
        if self.mode == Mode::Legacy {
            return;
        }
        self.mode = Mode::Suspended;
        if had {
            self.events.push_back(Event::SessionEnded(reason));
        }
        if self.cache_epoch.is_some() && self.grace_deadline.is_none() {
            self.grace_deadline = Some(now.plus_micros(self.config.grace));
        }
        if failed {
            self.failures += 1;
            if self.failures >= self.config.max_failures {
                let n = self.failures;
                self.fall_back(FallbackReason::Failures(n));
                return;
            }
            // PS-57: at least 10 s, doubling.
            let delay = self.config.retry << (self.failures - 1).min(16);
            if self.link_up {
                self.retry_at = Some(now.plus_micros(delay));
            }
        }
    }

    fn fall_back(&mut self, reason: FallbackReason) {
        self.live = None;
        self.requests.clear();
        self.mode = Mode::Legacy;
        self.grace_deadline = None;
        self.retry_at = None;
        self.hello_at = None;
        self.edges_verified = false;
        if self.cache_epoch.is_some() || !self.shown.is_empty() {
            self.void_cache(VoidReason::Fallback);
        }
        self.cache_epoch = None;
        self.events.push_back(Event::Fallback(reason));
    }
}

/// The prefix length whose buckets hold about leaf-items entries of a set of `count`.
fn bucket_len(count: u64, leaf_items: u32) -> u8 {
    let mut len = 0u8;
    let mut per = count;
    while per > leaf_items.max(1) as u64 && len < crate::digest::prefix::MAX_DEPTH {
        per /= 16;
        len += 1;
    }
    len
}

fn fp_count(h: &Hello, set: SetName) -> u64 {
    h.root(set).map_or(0, |r| r.count)
}

fn parse_checked<T: WireElement>(
    element: &Element,
    limits: &Limits,
    domains: &Domains,
) -> Result<T, WireError> {
    let value = T::parse_element(element)?;
    value.validate(limits, domains)?;
    Ok(value)
}

fn out_of_order(element: &'static str) -> WireError {
    WireError::OutOfOrder {
        element,
        reason: "no hello exchange on the current streams".into(),
    }
}

fn missing(what: &str) -> WireError {
    WireError::Malformed {
        element: "iq",
        reason: crate::wire::Malformed::Structure(format!("the answer lacks a {what}")),
    }
}
