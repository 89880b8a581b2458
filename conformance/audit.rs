//! The protocol audit: what ONE host (the implementation under test) sent, checked
//! requirement by requirement from its [`Record`]s.
//!
//! [`audit`] replays the records of a [`super::record::Recorder`] once and returns one
//! [`Finding`] per check of [`CHECKS`], in that order: the check, the XEP requirements it
//! exercises, how many stanzas (or advertisements) it examined, and its [`Outcome`]. A check
//! that examined nothing is [`Outcome::NotExercised`], never a pass. Each [`Violation`] names
//! the requirement it breaks, the time, the peer and the stanza (kind and id).
//!
//! # What the audit infers, and how
//!
//! - **Sync and legacy peers**: a peer is a sync peer if the features of its latest
//!   `LinkUp` include `<presence-sync/>` in `urn:xmpp:presence-sync:0` (XEP §Stream
//!   Feature), or if it has since answered a disco#info query with the feature
//!   `urn:xmpp:presence-sync:0` (XEP §Service Discovery; either suffices, PS-2), and legacy
//!   otherwise; before its first `LinkUp` it is neither.
//! - **Sessions** (XEP §Sessions): one is established with a peer by the completion of a
//!   hello exchange (an iq result carrying a hello, to a hello request, in either
//!   direction); a later exchange does not start a new one (PS-10). It ends at link down,
//!   crash or restart, when the host sends its `<shutdown/>` to the peer or receives one
//!   carrying the peer's current epoch, and when the host sends or receives an iq error
//!   answering a request of the protocol (XEP §Error Handling: "Sending or receiving such an
//!   error ends the session"). A clean shutdown does not end sessions by itself: the
//!   host's last stanzas go out on them, and its `<shutdown/>` ends each.
//! - **Limits**: the effective limits of a session are the minimum of
//!   [`AuditContext::limits`] and of the limits of the latest hellos of both sides on the
//!   current link (an absent attribute counting as its default). `AuditContext::limits` is
//!   therefore an upper bound: the limits the suite's peer announces (lower them where a
//!   scenario's peer announces less).
//! - **Boots**: `Restart` records separate boots. Stanzas a crashed host queues (which the
//!   driver discards) are ignored.
//! - **Requests** are matched with their answers by iq id, per peer; requests in flight when
//!   the link goes down (or the host crashes, stops or restarts) are forgotten. The window
//!   counts the host's reconcile and batch requests, not its hellos (XEP §Flow Control and
//!   Limits: "The hello is not counted"). A request unanswered for 60 seconds may have ended
//!   the session without a stanza (PS-51): no shutdown message is owed on such a session,
//!   and such a hello no longer holds the next one back.
//!
//! The checks of each stanza the host sends are in `checks.rs` (`Auditor::outbound`);
//! this file holds the results, the state the replay keeps, and the inputs.
//!
//! # Limits of the audit
//!
//! It sees stanzas, not intentions: directed presence (RFC 6121 §4.6) to a user of a
//! synchronized peer looks like broadcast presence and is reported under PS-66 (the model
//! servers send none); the 10-second spacing of hellos (PS-20) is not checked, because its
//! exception (the hello that ends a descent) is not visible on the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jid::{BareJid, Jid};
use minidom::Element;

use super::record::{Record, RecordKind};
use crate::digest::ShortId;
use crate::model::Epoch;
use crate::sim::{SimTime, stanza_kind, wire_len};
use crate::wire::ns::PRESENCE_SYNC;
use crate::wire::{
    Direction, Hello, Limits, Malformed, Reconcile, ReconcileEntry, ReconcileSet, Repair, Shutdown,
    StreamFeature, SyncElement, WireElement, WireError,
};

mod checks;
#[cfg(test)]
mod tests;

/// What the audit cannot infer from the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditContext {
    /// Upper bound of the effective limits of every session (see the module docs); by
    /// default the limits the suite's peer (the reference) announces.
    pub limits: Limits,
    /// How long a stanza the records show as received may still be on its way to the host,
    /// in microseconds: 0 in simulation, where the records are the host's own; on the wire
    /// ([`AuditContext::wire`]) the suite records what it sends when it sends it, and the
    /// host reads it later, so the host's own stanzas recorded within this time after a
    /// received one may have been sent before it read that one.
    pub in_flight_us: u64,
}

impl Default for AuditContext {
    fn default() -> Self {
        AuditContext {
            limits: crate::engine::LIMITS,
            in_flight_us: 0,
        }
    }
}

impl AuditContext {
    /// The context of an audit of records taken on the wire: a stanza received may be in
    /// flight for [`WIRE_IN_FLIGHT_US`].
    pub fn wire() -> Self {
        AuditContext {
            in_flight_us: WIRE_IN_FLIGHT_US,
            ..AuditContext::default()
        }
    }
}

/// How long the suite allows, on the wire, between sending a stanza to the server under test
/// and that server acting on it: 1 s, against well under a millisecond on an idle loopback,
/// so that a loaded machine does not turn a crossing into a finding.
pub const WIRE_IN_FLIGHT_US: u64 = 1_000_000;

/// The description of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub id: CheckId,
    /// Its short name (kebab-case, stable).
    pub name: &'static str,
    /// The XEP requirements it exercises.
    pub requirements: &'static [&'static str],
    /// What it checks, in one sentence.
    pub description: &'static str,
}

/// Declares [`CheckId`] and [`CHECKS`] from one table.
macro_rules! checks {
    ($($id:ident $name:literal [$($r:literal),*] $d:literal;)*) => {
        /// The checks of the audit, in the order of [`CHECKS`] and of [`audit`]'s findings.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CheckId {
            $(#[doc = concat!("The `", $name, "` check (", $($r, " ",)* "); its description is in [`CHECKS`].")] $id,)*
        }

        /// Every check, indexed by `CheckId as usize`.
        pub static CHECKS: &[Check] = &[$(Check {
            id: CheckId::$id, name: $name, requirements: &[$($r),*], description: $d,
        },)*];
    };
}

checks! {
    StreamFeature "stream-feature" ["PS-3"]
        "the <presence-sync/> stream feature the host offers parses and lists sha-256";
    StrictSyntax "strict-syntax" ["PS-21", "PS-72", "PS-73"]
        "every element of the namespace the host sends parses with the strict parsers, and \
         every <reconcile/> obeys the direction rules of its iq";
    Limits "limits" ["PS-30", "PS-41", "PS-42", "PS-82"]
        "reconciles and batches stay within max-items (children, items, ids per list) and \
         every stanza carrying the namespace within max-bytes";
    BatchPublishers "batch-publishers" ["PS-42"]
        "no batch carries two items of the same publisher";
    ItemEdgeDomains "item-edge-domains" ["PS-39", "PS-74"]
        "items name publishers of the host's domain, their resources and excepts the right \
         JIDs, and edges have one end in each domain of the pair";
    ItemContent "item-content" ["PS-8"]
        "presence inside items carries no XEP-0203 <delay/> and no marker of the namespace";
    DomainPresence "domain-presence" ["PS-46"]
        "a presence with <fanout/> is available or unavailable, from a full JID of the host \
         to the peer domain, and only sent with an established session";
    HelloCachedRoot "hello-cached-root" ["PS-18"]
        "a hello without peer-epoch carries a cached root of count 0";
    HelloAnswered "hello-answered" ["PS-17"]
        "every hello request received is answered by a result with a hello of the same \
         algorithm, or by an error";
    ReconcileAnswered "reconcile-answered" ["PS-23"]
        "every reconcile query received is answered exactly once, by a result carrying a \
         reconcile of the same set or by an error";
    BatchAnswered "batch-answered" ["PS-43"]
        "every batch received is answered, by an empty result (its items applied) or by an \
         error";
    Window "window" ["PS-50"]
        "the host never has more reconcile and batch requests outstanding to a peer than the \
         effective window";
    LegacySilence "legacy-silence" ["PS-5"]
        "no element of the namespace is sent to a legacy peer";
    NoPerUserPresence "no-per-user-presence" ["PS-66"]
        "no probe and no per-user available or unavailable presence to a synchronized peer, \
         except answers to its probes";
    Repairs "repairs" ["PS-60", "PS-61", "PS-83"]
        "repairs are subscription stanzas with an empty <repair/>, between bare JIDs of the \
         two domains' users, at most one per (publisher, subscriber) per session";
    Shutdown "shutdown" ["PS-54"]
        "a clean stop sends exactly one <shutdown/> with the boot's epoch to each peer with a \
         session, and none is sent while running";
    Epochs "epochs" ["PS-12"]
        "the epoch of hellos and batches is constant within a boot and new after a restart";
    HelloPacing "hello-pacing" ["PS-20"]
        "no hello to a peer while another hello to it is unanswered (SHOULD)";
    QueryNodes "query-nodes" ["PS-31"]
        "a reconcile query's <split/> and <ids/> nodes claim at most max-bytes for their \
         hand-backs (512 bytes a node, 64 an 8-nibble <ids/>), so that an answer of \
         hand-backs always fits (SHOULD)";
    AnswerNodes "answer-nodes" ["PS-90"]
        "every <split/> and <ids/> of a reconcile answer names a node of its query or a child \
         of one";
    ReAsks "re-asks" ["PS-32", "PS-84"]
        "an id the host lacked and asks for again goes in a query with no <split/> or <ids/>, \
         and no id of the edge set is asked for a third time within one descent (SHOULD)";
}

impl CheckId {
    /// The description of this check.
    pub fn check(self) -> &'static Check {
        &CHECKS[self as usize]
    }
}

/// One breach of a requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The requirement broken (one of the check's).
    pub requirement: &'static str,
    /// When the stanza was sent (or the obligation arose).
    pub time: SimTime,
    /// The peer concerned, if any.
    pub peer: Option<String>,
    /// What exactly: the stanza and what is wrong with it.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] at {}", self.requirement, self.time)?;
        if let Some(peer) = &self.peer {
            write!(f, " to {peer}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Something was examined and nothing was wrong.
    Pass,
    /// Nothing the check applies to happened.
    NotExercised,
    /// `count` violations; the first [`Outcome::SHOWN`] of them.
    Fail {
        /// How many violations in all.
        count: usize,
        /// The first ones, in record order.
        first: Vec<Violation>,
    },
}

impl Outcome {
    /// How many violations an [`Outcome::Fail`] keeps.
    pub const SHOWN: usize = 16;

    /// True for [`Outcome::Fail`].
    pub fn is_fail(&self) -> bool {
        matches!(self, Outcome::Fail { .. })
    }
}

/// What [`audit`] found for one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The check.
    pub check: &'static Check,
    /// How many stanzas (for PS-3: advertisements) it examined.
    pub examined: usize,
    /// Its outcome.
    pub outcome: Outcome,
}

impl Finding {
    /// The violations kept (none unless failed).
    pub fn violations(&self) -> &[Violation] {
        match &self.outcome {
            Outcome::Fail { first, .. } => first,
            _ => &[],
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.check;
        let reqs = c.requirements.join(", ");
        match &self.outcome {
            Outcome::Pass => write!(f, "pass  {} [{reqs}]: {} examined", c.name, self.examined),
            Outcome::NotExercised => write!(f, "n/e   {} [{reqs}]: not exercised", c.name),
            Outcome::Fail { count, first } => {
                write!(
                    f,
                    "FAIL  {} [{reqs}]: {count} of {} examined",
                    c.name, self.examined
                )?;
                for v in first {
                    write!(f, "\n      {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Audits what the host of `domain` sent, from its `records` (oldest first): one finding per
/// check of [`CHECKS`], in that order.
pub fn audit(domain: &str, records: &[Record], ctx: &AuditContext) -> Vec<Finding> {
    let mut a = Auditor {
        domain,
        ctx,
        peers: BTreeMap::new(),
        crashed: false,
        stop: None,
        boot_epoch: None,
        earlier_epochs: Vec::new(),
        tally: vec![Tally::default(); CHECKS.len()],
        end: SimTime::ZERO,
    };
    for r in records {
        a.end = r.time;
        a.record(r);
    }
    a.finish();
    CHECKS
        .iter()
        .zip(a.tally)
        .map(|(check, t)| Finding {
            check,
            examined: t.examined,
            outcome: match (t.examined, t.count) {
                (_, n) if n > 0 => Outcome::Fail {
                    count: n,
                    first: t.first,
                },
                (0, _) => Outcome::NotExercised,
                _ => Outcome::Pass,
            },
        })
        .collect()
}

#[derive(Clone, Default)]
struct Tally {
    examined: usize,
    count: usize,
    first: Vec<Violation>,
}

/// What the audit knows of one peer.
#[derive(Default)]
struct Peer {
    /// A `LinkUp` was seen.
    known: bool,
    /// The peer advertised the extension at its latest `LinkUp`.
    sync: bool,
    /// Since when a session is established.
    session: Option<SimTime>,
    /// Since when the host surely knows of that session: when it sent the stanza that
    /// established it, or the in-flight allowance after it was sent the one that did.
    aware: SimTime,
    /// Limits of the latest hellos of the host and of the peer on this link.
    host_limits: Option<Limits>,
    peer_limits: Option<Limits>,
    /// The peer's epoch from its latest hello.
    peer_epoch: Option<Epoch>,
    /// The host's hello requests not yet answered: id -> time sent.
    hellos_out: BTreeMap<String, SimTime>,
    /// The host's reconcile and batch requests not yet answered: id -> time sent.
    requests_out: BTreeMap<String, SimTime>,
    /// Hello requests received, not yet answered: id -> (time, hash).
    hellos_in: BTreeMap<String, (SimTime, String)>,
    /// Reconcile queries received, not yet answered: id -> (time, set).
    queries_in: BTreeMap<String, (SimTime, String)>,
    /// The node prefixes of each reconcile query received and not answered yet (PS-90).
    query_nodes: BTreeMap<String, Vec<String>>,
    /// Batches received, not yet answered: id -> time.
    batches_in: BTreeMap<String, SimTime>,
    /// Reconcile queries received and answered on this link.
    answered: BTreeSet<String>,
    /// Probes received on this link: (prober, probed) -> time of the first answer.
    probes: BTreeMap<(BareJid, BareJid), Option<SimTime>>,
    /// Repairs sent since the latest session began: (publisher, subscriber).
    repairs: BTreeSet<(BareJid, BareJid)>,
    /// How often the host has asked for each id in a `<lack/>` since the latest hello, per
    /// set (PS-32, PS-84): a hello ends a descent.
    lacked: BTreeMap<(ReconcileSet, ShortId), u32>,
}

impl Peer {
    /// The link is gone (or the host crashed or restarted): sessions and requests end.
    fn reset_link(&mut self) {
        let (known, sync, epoch) = (self.known, self.sync, self.peer_epoch);
        let repairs = std::mem::take(&mut self.repairs);
        *self = Peer {
            known,
            sync,
            peer_epoch: epoch,
            repairs,
            ..Peer::default()
        };
    }

    /// A session is established at `t`; the host knows of it from `aware` on. A session
    /// whose request had lapsed by then was ended by the host (PS-51): this is a new one,
    /// and the lapsed requests are gone with the old.
    fn establish(&mut self, t: SimTime, aware: SimTime) {
        if self.lapsed(t) {
            let live = |sent: &SimTime| sent.plus_micros(REQUEST_TIMEOUT_US) > t;
            self.hellos_out.retain(|_, sent| live(sent));
            self.requests_out.retain(|_, sent| live(sent));
            self.session = None;
        }
        if self.session.is_none() {
            self.session = Some(t);
            self.aware = aware;
            self.repairs.clear();
        }
    }

    /// Whether a request of the host has been unanswered for the request timeout, so that
    /// the host may have ended the session without a stanza (PS-51).
    fn lapsed(&self, now: SimTime) -> bool {
        let oldest = self
            .hellos_out
            .values()
            .chain(self.requests_out.values())
            .min();
        oldest.is_some_and(|sent| sent.plus_micros(REQUEST_TIMEOUT_US) <= now)
    }

    fn limits(&self, ctx: &AuditContext) -> Limits {
        [self.host_limits, self.peer_limits]
            .into_iter()
            .flatten()
            .fold(ctx.limits, |l, h| l.negotiate(&h))
    }
}

/// The namespace of XEP-0030 information queries.
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// The request timeout of XEP §Flow Control and Limits (PS-51): 60 seconds.
const REQUEST_TIMEOUT_US: u64 = 60_000_000;

/// How long a host may take to answer a batch before a link loss, crash or stop that
/// follows counts as leaving it unanswered (PS-43): 1 s of simulated time, fifty hops of the
/// default link; the driver gives a host its input and drains its output at the same time, so
/// an implementation that applies and answers does so at once.
const ANSWER_GRACE_US: u64 = 1_000_000;

/// A clean stop in progress: the peers owed a shutdown message, and those sent.
struct Stop {
    time: SimTime,
    owed: BTreeSet<String>,
    sent: BTreeMap<String, usize>,
}

/// The replay: the state of every peer and boot, and the tally of every check.
struct Auditor<'a> {
    domain: &'a str,
    ctx: &'a AuditContext,
    peers: BTreeMap<String, Peer>,
    crashed: bool,
    stop: Option<Stop>,
    boot_epoch: Option<Epoch>,
    earlier_epochs: Vec<Epoch>,
    tally: Vec<Tally>,
    end: SimTime,
}

/// The namespace's child `name` of `el`.
fn child<'e>(el: &'e Element, name: &str) -> Option<&'e Element> {
    el.get_child(name, PRESENCE_SYNC)
}

/// The elements of the namespace at the top of a stanza, and inside the `<error/>` of an iq
/// error (application conditions).
fn our_elements(st: &Element) -> Vec<&Element> {
    let mut out: Vec<&Element> = st.children().filter(|c| c.ns() == PRESENCE_SYNC).collect();
    for error in st.children().filter(|c| c.name() == "error") {
        out.extend(error.children().filter(|c| c.ns() == PRESENCE_SYNC));
    }
    out
}

/// Whether any element of the namespace occurs anywhere in `el`.
fn contains_ours(el: &Element) -> bool {
    el.ns() == PRESENCE_SYNC || el.children().any(contains_ours)
}

/// `iq/set/reconcile id 'q1'`, `presence/unavailable from 'x' to 'y'`, ...
fn describe(st: &Element) -> String {
    let mut s = stanza_kind(st);
    if let Some(id) = st.attr("id") {
        s.push_str(&format!(" id '{id}'"));
    }
    if st.name() != "iq" {
        let (from, to) = (st.attr("from").unwrap_or(""), st.attr("to").unwrap_or(""));
        s.push_str(&format!(" from '{from}' to '{to}'"));
    }
    s
}

fn bare(s: Option<&str>) -> Option<BareJid> {
    BareJid::new(s?).ok()
}

/// A bare JID of a user (with a local part) of `domain`.
fn user_of(s: Option<&str>, domain: &str) -> Option<BareJid> {
    bare(s).filter(|j| j.node().is_some() && j.domain().as_str() == domain)
}

/// The number of 8-byte ids in a base64 `ids` attribute.
fn id_count(ids: &str) -> usize {
    let pad = ids.bytes().rev().take_while(|&b| b == b'=').count();
    (ids.len() / 4 * 3).saturating_sub(pad) / 8
}

/// The requirement a parse error of an element we sent breaks.
fn syntax_requirement(e: &WireError) -> &'static str {
    match e {
        WireError::Malformed { reason, .. } => match reason {
            Malformed::Structure(_)
            | Malformed::PresenceAttribute { .. }
            | Malformed::Presence { .. }
            | Malformed::MissingRoot(_) => "PS-72",
            Malformed::DuplicateId { .. }
            | Malformed::Duplicate { .. }
            | Malformed::Missing(_)
            | Malformed::Misplaced { .. }
            | Malformed::WrongDirection { .. } => "PS-21",
            _ => "PS-73",
        },
        _ => "PS-73",
    }
}

impl Auditor<'_> {
    fn saw(&mut self, id: CheckId) {
        self.tally[id as usize].examined += 1;
    }

    fn fail(&mut self, id: CheckId, req: &'static str, t: SimTime, peer: &str, detail: String) {
        debug_assert!(id.check().requirements.contains(&req), "{req} in {id:?}");
        let tally = &mut self.tally[id as usize];
        tally.count += 1;
        if tally.first.len() < Outcome::SHOWN {
            let peer = (!peer.is_empty()).then(|| peer.to_owned());
            let (requirement, time) = (req, t);
            tally.first.push(Violation {
                requirement,
                time,
                peer,
                detail,
            });
        }
    }

    /// [`Auditor::fail`] for stanza `st`: the detail names it, then says `why`.
    fn flag(
        &mut self,
        id: CheckId,
        req: &'static str,
        t: SimTime,
        peer: &str,
        st: &Element,
        why: impl fmt::Display,
    ) {
        self.fail(id, req, t, peer, format!("{}: {why}", describe(st)));
    }

    fn peer(&mut self, peer: &str) -> &mut Peer {
        self.peers.entry(peer.to_owned()).or_default()
    }

    fn record(&mut self, r: &Record) {
        let t = r.time;
        match &r.kind {
            RecordKind::Out { peer, stanza } if !self.crashed => self.outbound(t, peer, stanza),
            RecordKind::Out { .. } => {}
            RecordKind::In { peer, stanza } => self.inbound(t, peer, stanza),
            RecordKind::Undeliverable { peer, stanza } => {
                let id = stanza.attr("id").unwrap_or_default();
                let p = self.peer(peer);
                p.hellos_out.remove(id);
                p.requests_out.remove(id);
            }
            RecordKind::LinkUp {
                peer,
                features,
                own_features,
            } => {
                let sync = features
                    .iter()
                    .any(|f| f.is("presence-sync", PRESENCE_SYNC));
                let p = self.peer(peer);
                p.reset_link();
                (p.known, p.sync) = (true, sync);
                for f in own_features.iter().filter(|f| f.ns() == PRESENCE_SYNC) {
                    self.saw(CheckId::StreamFeature);
                    if let Err(e) = StreamFeature::parse_element(f) {
                        let detail = format!("own stream feature offered at link up: {e}");
                        self.fail(CheckId::StreamFeature, "PS-3", t, peer, detail);
                    }
                }
            }
            RecordKind::LinkDown { peer } => {
                self.batches_left(t, Some(peer));
                self.peer(peer).reset_link()
            }
            RecordKind::Crash => {
                self.batches_left(t, None);
                self.crashed = true;
                self.peers.values_mut().for_each(Peer::reset_link);
            }
            RecordKind::Shutdown => {
                self.batches_left(t, None);
                let owed = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.session.is_some() && !p.lapsed(t));
                let owed = owed.map(|(d, _)| d.clone()).collect();
                self.stop = Some(Stop {
                    time: t,
                    owed,
                    sent: BTreeMap::new(),
                });
            }
            RecordKind::Restart => {
                self.finish_stop();
                self.crashed = false;
                self.peers.values_mut().for_each(Peer::reset_link);
                self.earlier_epochs.extend(self.boot_epoch.take());
            }
        }
    }

    /// A stanza from the peer: requests to answer, answers to the host's requests, probes,
    /// the peer's shutdown.
    fn inbound(&mut self, t: SimTime, peer: &str, st: &Element) {
        let id = st.attr("id").unwrap_or_default().to_owned();
        let in_flight = self.ctx.in_flight_us;
        match (st.name(), st.attr("type")) {
            ("iq", Some("set")) => {
                if let Some(h) = child(st, "hello") {
                    self.saw(CheckId::HelloAnswered);
                    let hash = h.attr("hash").unwrap_or_default().to_owned();
                    let p = self.peer(peer);
                    p.lacked.clear();
                    p.hellos_in.insert(id, (t, hash));
                    note_peer_hello(p, h);
                } else if let Some(r) = child(st, "reconcile") {
                    self.saw(CheckId::ReconcileAnswered);
                    let set = r.attr("set").unwrap_or_default().to_owned();
                    let p = self.peer(peer);
                    p.answered.remove(&id); // a new query that reuses an id
                    let nodes = r
                        .children()
                        .filter(|c| matches!(c.name(), "split" | "ids" | "sketch"))
                        .filter_map(|c| c.attr("prefix").map(str::to_owned))
                        .collect();
                    p.query_nodes.insert(id.clone(), nodes);
                    p.queries_in.insert(id, (t, set));
                } else if child(st, "batch").is_some() {
                    self.saw(CheckId::BatchAnswered);
                    self.peer(peer).batches_in.insert(id, t);
                }
            }
            ("iq", Some("result")) => {
                let p = self.peer(peer);
                if let Some(q) = st.get_child("query", DISCO_INFO) {
                    let var = |f: &Element| {
                        f.is("feature", DISCO_INFO) && f.attr("var") == Some(PRESENCE_SYNC)
                    };
                    p.sync |= q.children().any(var);
                }
                let hello = child(st, "hello");
                if let Some(h) = hello {
                    note_peer_hello(p, h);
                    p.lacked.clear();
                }
                if p.hellos_out.remove(&id).is_some() && hello.is_some() {
                    p.establish(t, t.plus_micros(in_flight));
                }
                p.requests_out.remove(&id);
            }
            ("iq", Some("error")) => {
                let p = self.peer(peer);
                let hello = p.hellos_out.remove(&id).is_some();
                if p.requests_out.remove(&id).is_some() || hello {
                    p.session = None;
                }
            }
            ("presence", Some("probe")) => {
                if let (Some(from), Some(to)) = (bare_of(st, "from"), bare_of(st, "to")) {
                    self.peer(peer).probes.insert((from, to), None);
                }
            }
            ("message", _) => {
                let announced = child(st, "shutdown").and_then(|s| Shutdown::parse_element(s).ok());
                let p = self.peer(peer);
                if announced.is_some_and(|s| Some(s.epoch) == p.peer_epoch) {
                    p.session = None;
                }
            }
            _ => {}
        }
    }

    /// The link to `peer` (every link if `None`) ends at `t`, by a link loss, a crash or a
    /// stop: a batch received more than [`ANSWER_GRACE_US`] earlier and still unanswered was
    /// dropped (PS-43), not cut short by the event.
    fn batches_left(&mut self, t: SimTime, peer: Option<&str>) {
        let mut dropped = Vec::new();
        for (d, p) in &self.peers {
            if peer.is_some_and(|x| x != d) {
                continue;
            }
            for (id, at) in &p.batches_in {
                if at.plus_micros(ANSWER_GRACE_US) <= t {
                    dropped.push((d.clone(), id.clone(), *at));
                }
            }
        }
        for (d, id, at) in dropped {
            let detail = format!("batch '{id}' received at {at} still unanswered at {t}");
            self.fail(CheckId::BatchAnswered, "PS-43", at, &d, detail);
        }
    }

    /// The end of a clean stop: every peer with a session got its shutdown message.
    fn finish_stop(&mut self) {
        let Some(stop) = self.stop.take() else { return };
        for peer in stop.owed.iter().filter(|p| !stop.sent.contains_key(*p)) {
            self.saw(CheckId::Shutdown);
            let detail = "clean stop without a shutdown message to a peer with a session";
            self.fail(
                CheckId::Shutdown,
                "PS-54",
                stop.time,
                peer,
                detail.to_owned(),
            );
        }
    }

    /// The end of the records: requests the running host never answered (those received
    /// within [`AuditContext::in_flight_us`] of the end excepted).
    fn finish(&mut self) {
        if self.crashed || self.stop.is_some() {
            return self.finish_stop();
        }
        let mut late = Vec::new();
        for (d, p) in &self.peers {
            let hellos = p
                .hellos_in
                .iter()
                .map(|r| (CheckId::HelloAnswered, "PS-17", r));
            let queries = p
                .queries_in
                .iter()
                .map(|r| (CheckId::ReconcileAnswered, "PS-23", r));
            for (check, req, (id, (t, _))) in hellos.chain(queries) {
                late.push((check, req, *t, d.clone(), id.clone()));
            }
            for (id, t) in &p.batches_in {
                late.push((CheckId::BatchAnswered, "PS-43", *t, d.clone(), id.clone()));
            }
        }
        let end = self.end;
        // A request received within the in-flight allowance before the end may not have
        // reached the host yet.
        late.retain(|(_, _, t, _, _)| t.plus_micros(self.ctx.in_flight_us) <= end);
        for (check, req, t, peer, id) in late {
            let detail = format!("request '{id}' still unanswered when the records end at {end}");
            self.fail(check, req, t, &peer, detail);
        }
    }
}

fn bare_of(st: &Element, attr: &str) -> Option<BareJid> {
    st.attr(attr)
        .and_then(|j| Jid::new(j).ok())
        .map(|j| j.to_bare())
}

/// The limits and epoch of a hello of the peer.
fn note_peer_hello(p: &mut Peer, h: &Element) {
    if let Ok(hello) = Hello::parse_element(h) {
        p.peer_limits = Some(hello.limits());
    }
    if let Some(epoch) = h.attr("epoch").and_then(|e| e.parse().ok()) {
        p.peer_epoch = Some(epoch);
    }
}
