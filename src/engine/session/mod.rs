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
//! - A cache holder whose cache is empty (a restart) pulls first, with `<ids/>` (PS-35,
//!   PS-53), the publishers its [`Directory::wanted`] names: those of rank 0 (the contacts of
//!   active users) each alone, at the deepest prefix, then the buckets of the others; one
//!   whose cache is
//!   populated (a link loss) descends from the root at once, because equal subtrees are then
//!   skipped and a bucket pull would resend what matches.
//! - A cache holder whose cache holds at least [`crate::engine::presence_sync::deep_start`]
//!   entries starts its descent with splits of the 16 children of the root (PS-35), a round
//!   trip less than a split of the root.
//! - The small-peer threshold of PS-93 is [`Config::small_peer`], the XEP's default 40
//!   ([`SMALL_PEER`]): with a peer that shares at most that many edges and of which nothing is
//!   cached, the session stays in [`Mode::Small`] (RFC 6121, [`Event::SmallPeer`]) until the
//!   edges grow past it or the peer's hello arrives.
//! - Received requests are answered at once, so the window of incoming requests is never
//!   exceeded here (PS-86 lets only a receiver that queues requests refuse them); the
//!   window this side keeps is its own (PS-50).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::message::{Message, MessageType};
use xmpp_parsers::presence::{Presence, Type as PresenceType};

use super::bounds::{Bounds, EPOCHS_PER_MINUTE, Footprint, HELLO_INTERVAL, SUPERSEDED_KEPT};
use super::edge_set::EdgeSet;
use super::edge_sync::{DescentError, EdgeReconciler, is_edge_driver};
use super::presence_set::PresenceSet;
use super::presence_sync::{Puller, answer};
use super::reduce;
use super::repair::{Holder, RepairStanza, plan, repairs_suspended};
use crate::digest::prefix::MAX_DEPTH;
use crate::digest::{Fingerprint, HashAlgo, NodeValue, PairHasher, depth_for};
use crate::engine::time::Time;
use crate::model::{Edge, Epoch, PublisherPresence};
use crate::wire::{
    Batch, Direction, Domains, Fanout, Hello, Item, ItemPresence, Limits, Reconcile, ReconcileSet,
    Root, ServerNs, SetName, ShallowPresence, Shutdown, StreamFeature, WireElement, WireError,
    check_outgoing, ns,
};

mod cache;
mod config;
mod directory;
mod hello;
use hello::Apart;
mod receive;
mod send;

use config::SECOND;
pub use config::{Config, LIMITS, Mutation, SMALL_PEER};
pub use directory::{ActiveFirst, Directory, PriorityPolicy};

/// Hellos of the peer accepted at once on a link: the first, and a verification and a
/// re-verification for each of the three descents a session may make (PS-20, PS-36, PS-38).
/// The budget refills by one every [`HELLO_INTERVAL`].
const HELLO_BURST: u32 = 7;

/// The mode of the server towards the peer (XEP §Sessions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A session is established.
    Synchronized,
    /// The peer supports the extension, no session is established.
    Suspended,
    /// RFC 6121 unchanged: the peer lacks the extension, or sessions kept failing.
    Legacy,
    /// RFC 6121 with a small peer (PS-93): the pair shares at most [`Config::small_peer`]
    /// edges and nothing is cached, so this side starts no session; a hello of the peer, or
    /// the edges growing past the threshold, starts one.
    Small,
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
    /// The edge set could not be verified: this many descents in a row found a difference
    /// the one before had found (PS-38). The driver reports its descents in the session.
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
    /// The peer is small (PS-93): RFC 6121 applies to it until a session starts
    /// ([`Event::SessionStarted`]). Nothing of the peer is cached or shown from a cache; if
    /// the server had been replacing RFC 6121 towards it, it probes and broadcasts as if its
    /// users had just logged in (as for PS-58).
    SmallPeer {
        /// The edges the pair shares.
        edges: u64,
    },
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
    /// A stanza of ours failed the check every outgoing stanza passes
    /// ([`crate::wire::check_outgoing`]) and was not sent: a fault of this implementation,
    /// reported so that it is seen. A request withheld ends the session; an answer withheld
    /// is replaced by the error it would have caused.
    Withheld(WireError),
}

/// An unanswered request of ours.
#[derive(Clone, Debug)]
enum Request {
    /// A hello; the request as sent.
    Hello(Box<Hello>, Time),
    /// A reconcile query of the edge set.
    Edges(Time),
    /// A reconcile query of the peer's published set.
    Presence(Time),
    /// A batch.
    Batch(Time),
}

impl Request {
    fn sent(&self) -> Time {
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
    /// Descents of the edge set started in this session.
    descents: u32,
    /// Completed descents in a row that each found a difference the one before also found,
    /// or found too many to record: a difference that resists repair (PS-38). Differences
    /// that are subscription changes still in flight are gone by the next descent, so
    /// churn does not count.
    stuck: u32,
    /// The pairs (publisher, subscriber) whose edges the last completed descent found
    /// differing (at most the descent's bound on differences).
    last_found: BTreeSet<(BareJid, BareJid)>,
    /// The edge descent in progress (either side).
    edge: Option<EdgeReconciler>,
    /// The driver's descent is complete and its verification hello is due (PS-36).
    verify_due: bool,
    /// Pairs (publisher, subscriber) repaired in this session (PS-83).
    repaired: BTreeSet<(BareJid, BareJid)>,
    suspended_repairs: bool,
    /// The edge count of the peer's latest hello: the edge sets differ in at least as many
    /// edges as the two counts do (PS-65).
    peer_edges: u64,
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
    /// The peer's epochs before that, the latest [`SUPERSEDED_KEPT`] (a late shutdown of one
    /// is ignored, PS-55).
    superseded: VecDeque<Epoch>,
    /// When the peer presented each new epoch in the last minute (at most
    /// [`EPOCHS_PER_MINUTE`], XEP §Resource Exhaustion).
    recent_epochs: VecDeque<Time>,
    /// The peer's hellos this side may still accept at once on the current link, and when
    /// that budget was last refilled (PS-20).
    hello_budget: (u32, Time),
    /// What local users have been released to see of the peer's publishers.
    shown: BTreeMap<BareJid, PublisherPresence>,
    /// The edge set is verified (in the current session, or the last one while suspended
    /// within the grace period): the gate of PS-37.
    edges_verified: bool,
    live: Option<Live>,
    /// Sessions established so far with this peer in this run.
    sessions_started: u32,
    /// Local publishers changed while our hello was unanswered (PS-44).
    pre_dirty: BTreeSet<BareJid>,
    /// Changes made since the last session ended, announced in the hello (XEP §Sketches).
    apart: Apart,
    /// The largest item the effective max-bytes allows (PS-41): the published states are
    /// reduced to it.
    item_limit: usize,
    /// The unreduced states of the local publishers large enough to need reducing under some
    /// max-bytes (PS-41), to reduce again when the effective max-bytes changes.
    full: BTreeMap<BareJid, PublisherPresence>,
    requests: BTreeMap<String, Request>,
    next_id: u64,
    failures: u32,
    /// Why the session is in the legacy mode, if it is.
    fallback: Option<FallbackReason>,
    grace_deadline: Option<Time>,
    retry_at: Option<Time>,
    hello_at: Option<Time>,
    /// When the driver's verification hello may go, once the repairs it just sent are
    /// applied to its roster (PS-36).
    verify_at: Option<Time>,
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
        // PS-41: published states are reduced to fit our own max-bytes until a hello tells the
        // effective one.
        let item_limit = super::reduce::item_limit(config.limits.max_bytes);
        let mut full = BTreeMap::new();
        let published: Vec<(BareJid, PublisherPresence)> = published
            .into_iter()
            .map(|(p, s)| {
                let s = send::fit_state(&mut full, item_limit, &p, s);
                (p, s)
            })
            .collect();
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
            superseded: VecDeque::new(),
            recent_epochs: VecDeque::new(),
            hello_budget: (HELLO_BURST, Time::ZERO),
            shown: BTreeMap::new(),
            edges_verified: false,
            live: None,
            sessions_started: 0,
            pre_dirty: BTreeSet::new(),
            apart: Apart::default(),
            item_limit,
            full,
            requests: BTreeMap::new(),
            next_id: 0,
            failures: 0,
            fallback: None,
            grace_deadline: None,
            retry_at: None,
            hello_at: None,
            verify_at: None,
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

    /// The configuration the session was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The hash algorithm in use (PS-4).
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// This server's epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The limits in effect: negotiated in the session, else this server's own.
    pub fn limits(&self) -> Limits {
        self.live.as_ref().map_or(self.config.limits, |l| l.limits)
    }

    /// The bound of every structure the peer can make grow, for the current edge set and
    /// limits (XEP §Resource Exhaustion, [`crate::engine::bounds`]).
    pub fn bounds(&self) -> Bounds {
        Bounds::new(self.edges.len(), &self.limits()).sending_within(&self.config.limits)
    }

    /// The sizes of the structures the peer can make grow, now: always within
    /// [`Session::bounds`].
    pub fn footprint(&self) -> Footprint {
        let live = self.live.as_ref();
        let (descent_ids, descent_nodes) = live
            .and_then(|l| l.edge.as_ref())
            .map_or((0, 0), EdgeReconciler::footprint);
        let (pull_ids, pull_nodes) = live
            .and_then(|l| l.puller.as_ref())
            .map_or((0, 0), Puller::footprint);
        Footprint {
            requests: self.requests.len(),
            superseded: self.superseded.len(),
            recent_epochs: self.recent_epochs.len(),
            cache: self.cache.len() as usize,
            shown: self.shown.len(),
            descent_ids,
            descent_nodes,
            pull_ids,
            pull_nodes,
            repaired: live.map_or(0, |l| l.repaired.len()),
        }
    }

    /// True while the server must not probe the peer's users nor send them per-edge
    /// broadcasts (PS-66): in the synchronized and suspended modes.
    pub fn replaces_rfc6121(&self) -> bool {
        !matches!(self.mode, Mode::Legacy | Mode::Small)
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

    /// The peer epoch the cache belongs to (None: no cache): what a server persists with the
    /// cache (XEP §Persistence of Epochs and Caches).
    pub fn cache_epoch(&self) -> Option<Epoch> {
        self.cache_epoch
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
    pub fn poll_timeout(&self) -> Option<Time> {
        let oldest = self
            .requests
            .values()
            .map(|r| r.sent().plus_micros(self.config.request_timeout))
            .min();
        [
            self.grace_deadline,
            self.retry_at,
            self.hello_at,
            self.verify_at,
            oldest,
        ]
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
    pub fn link_up(&mut self, now: Time, features: &[Element]) {
        self.link_up = true;
        self.failures = 0;
        // New streams: the peer may send its hellos at once again (PS-20).
        self.hello_budget = (HELLO_BURST, now);
        if self.mode == Mode::Legacy {
            // PS-58: failed sessions make the peer legacy only until the streams are
            // re-established; a peer without the extension stays legacy (PS-5).
            if !matches!(self.fallback, Some(FallbackReason::Failures(_))) {
                return;
            }
            self.mode = Mode::Suspended;
            self.fallback = None;
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
        self.start_hello(now);
    }

    /// The first hello of a link (PS-16): the edge driver's at once, the other server's after
    /// `hello_wait` if none arrived; none with a small peer (PS-93), which gets RFC 6121
    /// until the edges grow past the threshold ([`Session::update_edges`]).
    fn start_hello(&mut self, now: Time) {
        if self.is_small() {
            if self.mode != Mode::Small {
                self.mode = Mode::Small;
                self.events.push_back(Event::SmallPeer {
                    edges: self.edges.len(),
                });
            }
            return;
        }
        // A session is wanted: no more RFC 6121 towards the peer (PS-66), the suspended mode
        // until the exchange completes.
        if self.mode == Mode::Small {
            self.mode = Mode::Suspended;
        }
        if self.driver {
            self.send_hello(now);
        } else {
            self.hello_at = Some(now.plus_micros(self.config.hello_wait));
        }
    }

    /// True if the peer is small (PS-93): the pair shares at most [`Config::small_peer`] edges
    /// and this side holds no cached presence of the peer to verify.
    pub fn is_small(&self) -> bool {
        self.edges.len() <= self.config.small_peer && self.cache.is_empty() && self.shown.is_empty()
    }

    /// The s2s link to the peer is lost: the session ends, the caches stay, unverified, for
    /// the grace period (PS-56).
    pub fn link_down(&mut self, now: Time) {
        self.link_up = false;
        self.hello_at = None;
        self.retry_at = None;
        if self.mode == Mode::Small {
            // RFC 6121 has nothing to do on a link loss; a hello in flight is forgotten.
            self.requests.clear();
            self.pre_dirty.clear();
            return;
        }
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
            self.emit(xso::transform(&ServerNs(m)).expect("a message serialises"));
        }
        self.live = None;
        self.requests.clear();
    }

    // ---- local changes ----

    /// A roster change of a local user towards the peer: `removed` edges are no longer
    /// projected, `added` are (XEP §Sets and Roles, PS-6).
    /// A small peer whose edges grow past the threshold with the link up gets its hello
    /// exchange now (PS-93).
    pub fn update_edges(&mut self, now: Time, removed: &[Edge], added: &[Edge]) {
        let was_small = self.is_small();
        for e in removed {
            self.edges.remove(e);
        }
        for e in added {
            self.edges.insert(e.clone());
        }
        if self.live.is_none() {
            self.apart.count_edges((removed.len() + added.len()) as u64);
        }
        let waiting = self.hello_at.is_some()
            || self.retry_at.is_some()
            || self
                .requests
                .values()
                .any(|r| matches!(r, Request::Hello(..)));
        let startable = matches!(self.mode, Mode::Suspended | Mode::Small);
        let grew = was_small && !self.is_small();
        if grew && self.link_up && self.live.is_none() && startable && !waiting {
            self.start_hello(now);
        }
    }

    /// The published state of local `user` for the peer is now `state` (None: not in the
    /// published set, PS-7). While a session is established the change crosses the link as
    /// one domain-level presence when it is one resource's change of a publisher already
    /// published, and as an item in a batch otherwise (PS-44, PS-45, PS-47). A state whose
    /// item would not fit the effective max-bytes is published reduced (PS-41,
    /// [`super::reduce`]).
    pub fn publish(&mut self, now: Time, user: &BareJid, state: Option<PublisherPresence>) {
        let state = match state.filter(|s| !s.is_unavailable()) {
            // PS-41: the published state is the reduced one if the full one does not fit.
            Some(s) => Some(send::fit_state(&mut self.full, self.item_limit, user, s)),
            None => {
                self.full.remove(user);
                None
            }
        };
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
            self.apart.count_published();
            return; // found by the next hello's comparison
        }
        let behind_bulk =
            self.config.mutation == Some(Mutation::LiveBehindBulk) && self.bulk_outstanding();
        if established
            && !behind_bulk
            && let Some(live) = &self.live
            && !live.dirty.contains(user)
            && let Some(presence) = self.fanout_of(user, old.as_ref(), state.as_ref())
        {
            self.emit(presence);
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
    /// activity): they move to the front of the pull in progress (PS-53), each alone if
    /// `urgent` (a user became active), else with its bucket.
    pub fn want(&mut self, publishers: &[BareJid], urgent: bool) {
        let Some(live) = &mut self.live else {
            return;
        };
        let Some(puller) = &mut live.puller else {
            return;
        };
        // During a restart's pull the cache is still filling: its buckets are those of the
        // count the peer published, as the pull's own were (session/hello.rs).
        let count = self.cache.len().max(puller.expected()).max(1);
        let len = bucket_len(count, self.config.limits.leaf_items);
        if len == 0 {
            return; // one bucket: the descent from the root is the pull
        }
        let len = if urgent { MAX_DEPTH } else { len };
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
    pub fn handle_stanza(&mut self, now: Time, stanza: &Element, dir: &dyn Directory) {
        if self.mode == Mode::Legacy {
            self.refuse_as_legacy(stanza);
            return;
        }
        match stanza.name() {
            "iq" => self.handle_iq(now, stanza, dir),
            "presence" => self.handle_fanout(now, stanza),
            "message" => self.handle_shutdown(now, stanza),
            _ => {}
        }
        self.pump_with(now, dir);
    }

    /// The timer: grace period, retries, the non-driver's hello, request timeouts.
    pub fn handle_timeout(&mut self, now: Time, dir: &dyn Directory) {
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
        if self.verify_at.is_some_and(|t| t <= now) {
            self.verify_at = None;
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

/// The error of a refused reconcile message: what the descent said, as the XEP's condition
/// (XEP §Resource Exhaustion, PS-31).
fn descent_error(e: DescentError) -> WireError {
    match e {
        DescentError::Unrelated(p) => WireError::Malformed {
            element: "reconcile",
            reason: crate::wire::Malformed::Structure(format!(
                "answer names prefix '{p}', which its query did not ask about"
            )),
        },
        DescentError::Exhausted(bound) => WireError::Exhausted {
            element: "reconcile",
            what: "waiting nodes",
            bound,
        },
        DescentError::TooManyNodes { count, max } => WireError::TooManyItems {
            element: "reconcile",
            what: "split and ids (more than fit an answer of max-bytes)",
            count,
            max: u32::try_from(max).unwrap_or(u32::MAX),
        },
    }
}

fn fp_count(h: &Hello, set: SetName) -> u64 {
    h.root(set).map_or(0, |r| r.count)
}

fn parse_checked<T: WireElement>(
    element: &Element,
    limits: &Limits,
    domains: &Domains,
    mutation: Option<Mutation>,
) -> Result<T, WireError> {
    let value = T::parse_element(element)?;
    match value.validate(limits, domains) {
        Err(WireError::ForeignJid { .. }) if mutation == Some(Mutation::TrustForeignJid) => {}
        other => other?,
    }
    Ok(value)
}
