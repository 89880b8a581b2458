//! Reconciliation of one presence set (XEP §Reconciliation), both roles, sans-IO.
//!
//! The **cache holder** drives ([`Puller`]): it sends `<reconcile set='presence'/>` queries
//! (first `<ids/>` of the buckets its priority policy names, then a descent from the root) and
//! applies the answers to its cache, reporting every change so that the server can fan it out
//! to local users. The **authoritative** server answers each query with [`answer`], from its
//! published set.
//!
//! Rules implemented here: PS-24 (split), PS-26 (ids at the authoritative server), PS-27 (ids at
//! the cache holder, with stale entries removed only once every lacked id under the prefix is
//! answered, so a changed publisher never flaps to unavailable and back), PS-28 (lack), PS-29
//! (gone), PS-30 and PS-31 (limits, and an answer that would not fit handed back as a split of
//! the same prefix), PS-35 (pulls by prefix, in any order).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use jid::BareJid;

use super::budget::{
    Budget, Claim, HANDBACK_BYTES, NODE_WEIGHT, NodeAllowance, NodeKind, PendingNodes, fit_node,
    is_node, node_difference, node_prefix, node_weight, reserves, sketch_cells, unrelated_node,
    wire_step,
};
use super::edge_sync::DescentError;
use super::presence_set::PresenceSet;
use crate::digest::descent;
use crate::digest::prefix::MAX_DEPTH;
use crate::digest::{Fingerprint, Prefix, ShortId};
use crate::model::PublisherPresence;
use crate::wire::{
    Gone, IdList, Item, Lack, Limits, Reconcile, ReconcileEntry, ReconcileSet, WireElement,
};

fn item_of(set: &PresenceSet, publisher: &BareJid) -> ReconcileEntry {
    let presence = set.get(publisher).cloned().unwrap_or_default();
    // Resources in a presence set come from valid full JIDs, so this cannot fail.
    let item = Item::from_model(publisher, &presence).expect("resources are valid JID parts");
    ReconcileEntry::Item(item)
}

/// The authoritative server's answer to a presence query about its `published` set.
/// Children of the query that are not meant for it (items, gone) are ignored here; the wire
/// layer rejects them before (`Reconcile::check_direction`). An error if even the hand-backs
/// do not fit (PS-31): the query is refused with `<too-many-items/>`.
pub fn answer(
    published: &mut PresenceSet,
    query: &Reconcile,
    limits: &Limits,
) -> Result<Reconcile, DescentError> {
    let leaf_items = limits.leaf_items as u64;
    let mut budget = Budget::new(limits);
    let mut out = Reconcile::new(ReconcileSet::Presence);
    // Node children first, each keeping room for the hand-backs of those after it, so that
    // every node of the query gets a response (PS-31); lacked items fill what is left, and the
    // requester asks again for those that did not fit (PS-28).
    // A query may name nested prefixes (PS-21 only forbids naming one twice), but an answer
    // names a prefix once, and carries an id once at most: in one item, or in one <gone/>.
    let mut answered: BTreeSet<ShortId> = BTreeSet::new();
    let mut prefixes: HashSet<Prefix> = HashSet::new();
    let nodes: Vec<&ReconcileEntry> = query.entries.iter().filter(|e| is_node(e)).collect();
    let reserves = reserves(published, &nodes);
    for (entry, later) in nodes.iter().zip(reserves) {
        let prefix = node_prefix(entry).expect("a node entry");
        // None: a sketch that does not decode, handed back below (XEP §Sketches).
        let responded: Option<(Vec<ReconcileEntry>, Vec<ShortId>)> = match entry {
            ReconcileEntry::Split(s) => {
                let steps = descent::answer_split(published, s.prefix, &s.fps.0, leaf_items);
                let responses = steps
                    .into_iter()
                    .map(|step| fit_node(published, wire_step(step), limits))
                    .collect();
                Some((responses, Vec::new()))
            }
            ReconcileEntry::Ids(_) | ReconcileEntry::Sketch(_) => node_difference(published, entry)
                .map(|d| {
                    let fresh = |ids: Vec<ShortId>| -> Vec<ShortId> {
                        ids.into_iter()
                            .filter(|id| !answered.contains(id))
                            .collect()
                    };
                    let (mine, gone) = (fresh(d.mine_only), fresh(d.theirs_only));
                    let mut r: Vec<ReconcileEntry> = mine
                        .iter()
                        .filter_map(|id| published.publisher_of(id).cloned())
                        .map(|p| item_of(published, &p))
                        .collect();
                    r.extend(gone_entries(gone.clone(), limits));
                    (r, mine.into_iter().chain(gone).collect())
                }),
            _ => unreachable!("filtered to nodes"),
        };
        let (responses, ids) = responded.unzip();
        let taken = budget.respond(
            published,
            prefix,
            responses,
            &mut prefixes,
            later,
            &mut out.entries,
            nodes.len(),
        )?;
        if taken {
            answered.extend(ids.into_iter().flatten());
        }
    }
    let mut gone = Vec::new();
    for entry in &query.entries {
        // Items and gone in a query are not for the authoritative server: the wire layer
        // rejects them before (`Reconcile::check_direction`).
        let ReconcileEntry::Lack(l) = entry else {
            continue;
        };
        for id in &l.ids.0 {
            if answered.contains(id) {
                continue;
            }
            match published.publisher_of(id).cloned() {
                Some(p) => {
                    let item = item_of(published, &p);
                    if budget.take(std::slice::from_ref(&item)) {
                        answered.insert(*id);
                        out.entries.push(item);
                    }
                }
                None => {
                    answered.insert(*id);
                    gone.push(*id);
                }
            }
        }
    }
    // As many of the gone ids as fit; the requester asks again for the others (PS-28).
    let mut rest: &[ShortId] = &gone;
    let mut chunk = limits.max_items as usize;
    while !rest.is_empty() && chunk > 0 {
        let n = chunk.min(rest.len());
        let entry = ReconcileEntry::Gone(Gone {
            ids: IdList(rest[..n].to_vec()),
        });
        if budget.take(std::slice::from_ref(&entry)) {
            out.entries.push(entry);
            rest = &rest[n..];
        } else {
            chunk = n / 2;
        }
    }
    Ok(out)
}

/// From how many entries of its cache a cache holder starts its descent one level below the
/// root: when the nodes two levels down would still hold leaf-items entries on average, so
/// that the descent takes at least three exchanges anyway.
pub fn deep_start(limits: &Limits) -> u64 {
    16 * 16 * u64::from(limits.leaf_items)
}

/// `<gone/>` children listing `ids`, at most max-items ids each (PS-82).
fn gone_entries(ids: Vec<ShortId>, limits: &Limits) -> Vec<ReconcileEntry> {
    ids.chunks(limits.max_items as usize)
        .map(|chunk| {
            ReconcileEntry::Gone(Gone {
                ids: IdList(chunk.to_vec()),
            })
        })
        .collect()
}

/// A change the cache holder applied to its cache: what its local fan-out must deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheChange {
    /// The publisher.
    pub publisher: BareJid,
    /// Its cached presence before (None: it was unavailable).
    pub old: Option<PublisherPresence>,
    /// Its cached presence now (None: unavailable).
    pub new: Option<PublisherPresence>,
}

/// Stale entries under one prefix, removed once every id lacked there is answered (PS-27).
#[derive(Clone, Debug)]
struct StaleGroup {
    waiting: BTreeSet<ShortId>,
    stale: Vec<(BareJid, ShortId)>,
}

/// The cache holder's side of one presence-set reconciliation.
#[derive(Clone, Debug)]
pub struct Puller {
    /// Prefixes to pull first, in priority order (XEP §Priority Ordering), each once.
    priority: VecDeque<Prefix>,
    prioritized: HashSet<Prefix>,
    /// Nodes (split/ids) to send.
    nodes: PendingNodes,
    /// Ids to ask for (lack).
    lack: BTreeSet<ShortId>,
    stale: Vec<StaleGroup>,
    root_started: bool,
    /// Each unanswered query, oldest first.
    in_flight: VecDeque<Flight>,
    /// For each prefix, how many node prefixes of unanswered queries lie at or under it: a
    /// bucket pull over one of them waits for its answer, so that no item comes twice.
    in_flight_cover: HashMap<Prefix, u32>,
    /// Priority prefixes waiting for the answers of the queries in flight under them, in
    /// priority order: they go back to the front of the priority queue when those are in.
    awaiting_cover: Vec<Prefix>,
    queries: usize,
    /// The most prefixes waiting (priority and nodes together), and the most entries the
    /// cache and the lacked ids may reach (XEP §Resource Exhaustion).
    max_nodes: usize,
    max_entries: usize,
    /// The peer's published count from its hello (0: unknown), for the expected size of the
    /// answer to a bucket pull.
    expected_count: u64,
    /// Bytes and count of the items sampled from answers so far.
    item_bytes: (u64, u64),
    /// The entries the peer changed since the last session, from its hello (None: unknown).
    changes: Option<u64>,
    /// Pulls of 8-nibble buckets answered so far, and the items they brought: the share of
    /// wanted publishers the peer publishes (the others are offline), for their claims.
    deep_hits: (u64, u64),
    /// The peer's published root in the hello that started this reconciliation.
    target: Option<Fingerprint>,
    /// Priority prefixes not sent yet that pull the contacts of active users: their queries
    /// go before live changes (PS-52).
    urgent: HashSet<Prefix>,
    /// Some of the ids in `lack` were handed back by the answer to such a query: asking for
    /// them finishes those pulls, so it goes before live changes too.
    urgent_lack: bool,
    /// Some of the ids in `lack` are asked for again (an answer did not bring them): the
    /// query that asks for them carries nothing else (PS-84).
    lack_again: bool,
}

/// A query of the puller that is not answered yet.
#[derive(Clone, Debug)]
struct Flight {
    /// Its node prefixes.
    prefixes: Vec<Prefix>,
    /// It pulled contacts of active users (PS-52).
    urgent: bool,
}

/// The size assumed for an item before any answer has shown one.
const ITEM_BYTES_GUESS: u64 = 512;

/// How many answered pulls of one publisher the prior of [`Puller::following`] counts as.
const PRIOR_PULLS: u64 = 64;

/// Items of each answer sampled for the average item size.
const ITEMS_SAMPLED: usize = 16;

impl Puller {
    /// A reconciliation that first pulls the buckets `priority` names (each as an `<ids/>` of
    /// what the cache holds there), then descends from the root. Unbounded (tests and tools; a
    /// session uses [`Puller::bounded`]).
    pub fn new(priority: impl IntoIterator<Item = Prefix>) -> Puller {
        Puller::bounded(priority, usize::MAX, usize::MAX)
    }

    /// Like [`Puller::new`], keeping at most `max_nodes` prefixes waiting and refusing answers
    /// that would make the cache and the lacked ids exceed `max_entries` (the session's
    /// bounds, [`super::bounds::Bounds`]).
    pub fn bounded(
        priority: impl IntoIterator<Item = Prefix>,
        max_nodes: usize,
        max_entries: usize,
    ) -> Puller {
        let mut puller = Puller {
            priority: VecDeque::new(),
            prioritized: HashSet::new(),
            nodes: PendingNodes::with_cap(max_nodes),
            lack: BTreeSet::new(),
            stale: Vec::new(),
            root_started: false,
            in_flight: VecDeque::new(),
            in_flight_cover: HashMap::new(),
            awaiting_cover: Vec::new(),
            queries: 0,
            max_nodes,
            max_entries,
            expected_count: 0,
            item_bytes: (0, 0),
            changes: None,
            deep_hits: (0, 0),
            target: None,
            urgent: HashSet::new(),
            urgent_lack: false,
            lack_again: false,
        };
        for p in priority {
            if puller.prioritized.insert(p) {
                puller.priority.push_back(p);
            }
        }
        puller
    }

    /// Sizes the queries of bucket pulls by the answers they should bring (PS-31 and XEP
    /// §Priority Ordering): the peer publishes about `count` entries (its hello), so a bucket
    /// of an empty cache at prefix length k holds about count / 16^k of them. Without it, each
    /// bucket pull claims the 512 bytes of a split, and a query of them can ask for many times
    /// what its answer can carry: the responder then hands most of them back.
    pub fn expecting(mut self, count: u64) -> Puller {
        self.expected_count = count;
        self
    }

    /// Sets the expected share of pulls of one publisher (8 nibbles) that bring an item: the
    /// peer publishes `count` entries and this side's users follow `followed` of its
    /// publishers, so about count / followed of them are published (the others are offline).
    /// It counts as [`PRIOR_PULLS`] answered pulls; the answers refine it.
    pub fn following(mut self, followed: u64) -> Puller {
        if followed > 0 && self.expected_count > 0 {
            let found = (PRIOR_PULLS * self.expected_count / followed).min(PRIOR_PULLS);
            self.deep_hits = (PRIOR_PULLS, found);
        }
        self
    }

    /// The peer's published root in the hello exchange: once the pulls have made the cache
    /// equal to it, no descent from the root is needed (XEP §Starting and Ending a Descent),
    /// since every change after that hello reaches the cache live (PS-44).
    pub fn verifying(mut self, root: Fingerprint) -> Puller {
        self.target = Some(root);
        self
    }

    /// Marks the priority `prefixes` that pull the contacts of active users after a restart
    /// (rank 0 of XEP §Priority Ordering): the queries holding them may go before live
    /// changes (PS-52), so that the peer answers them while the restart's login storm is
    /// still on its way. Prefixes not in the priority list are ignored.
    pub fn urgent(mut self, prefixes: impl IntoIterator<Item = Prefix>) -> Puller {
        self.urgent = prefixes
            .into_iter()
            .filter(|p| self.prioritized.contains(p))
            .collect();
        self
    }

    /// Whether a pull of [`Self::urgent`] is still to be sent, or the ids an answer to one
    /// handed back (PS-31) are still to be asked for.
    pub fn has_urgent(&self) -> bool {
        !self.urgent.is_empty() || (self.urgent_lack && !self.lack.is_empty())
    }

    /// Starts the descent with a sketch of the cache when the peer's hello told how many
    /// entries it `changes`d since the last session (XEP §Sketches, [`sketch_cells`]).
    pub fn sketching(mut self, changes: Option<u64>) -> Puller {
        self.changes = changes;
        self
    }

    /// The room in its answer that a node child claims (PS-31): [`node_weight`], or for an
    /// `<ids/>` pull, [`Self::pull_claim`].
    fn claim(&self, entry: &ReconcileEntry) -> Claim {
        match entry {
            ReconcileEntry::Ids(i) => self.pull_claim(i.prefix, i.ids.0.len()),
            e => Claim {
                bytes: node_prefix(e).map_or(NODE_WEIGHT, node_weight),
                items16: 0,
            },
        }
    }

    /// The claim of an `<ids/>` of `prefix` listing `listed` cached ids, once the peer's
    /// published count is known: for the pull of a bucket, the items expected under it that
    /// the cache lacks and a hand-back (the responder keeps one free for each node after it);
    /// for the pull of one wanted publisher (8 nibbles, nothing cached), its item if the peer
    /// publishes it, in the share the answers so far have shown (half an item before any).
    fn pull_claim(&self, prefix: Prefix, listed: usize) -> Claim {
        let weight = Claim {
            bytes: node_weight(prefix),
            items16: 0,
        };
        if self.expected_count == 0 {
            return weight;
        }
        let bytes_of = |items16: u64| {
            usize::try_from(items16.saturating_mul(self.item_size()) / 16).unwrap_or(usize::MAX)
        };
        if prefix.len() < MAX_DEPTH {
            // In sixteenths of an item: a bucket often holds one or two.
            let per_bucket16 = ((self.expected_count << 4) >> (4 * u32::from(prefix.len())))
                .saturating_sub((listed as u64) << 4);
            Claim {
                bytes: NODE_WEIGHT.max(bytes_of(per_bucket16).saturating_add(HANDBACK_BYTES)),
                items16: per_bucket16,
            }
        } else if listed == 0 {
            let (asked, found) = self.deep_hits;
            let per16 = ((found << 4) + 8) / (asked + 1);
            Claim {
                bytes: weight.bytes.max(bytes_of(per16)),
                items16: per16,
            }
        } else {
            weight
        }
    }

    /// The average size of the items sampled from answers so far (a guess before any).
    fn item_size(&self) -> u64 {
        let (bytes, n) = self.item_bytes;
        bytes.checked_div(n).unwrap_or(ITEM_BYTES_GUESS)
    }

    /// The bytes claimed by the nodes that could go in a query now (waiting nodes and priority
    /// pulls not held back by a query in flight), counted up to `cap`.
    fn ready_weight(&self, cache: &PresenceSet, cap: usize) -> usize {
        let mut weight = self.nodes.len().saturating_mul(NODE_WEIGHT);
        for p in &self.priority {
            if weight >= cap {
                break;
            }
            if !self.in_flight_cover.contains_key(p) {
                let claim = self.pull_claim(*p, cache.ids_under_count(*p));
                weight = weight.saturating_add(claim.bytes);
            }
        }
        weight
    }

    /// Counts the node `prefixes` of a query sent (`add`) or answered in [`Self::in_flight_cover`]:
    /// each prefix and every prefix above it.
    fn cover(&mut self, prefixes: &[Prefix], add: bool) {
        for p in prefixes {
            for len in 0..=p.len() {
                let at = p.truncate(len);
                if add {
                    *self.in_flight_cover.entry(at).or_default() += 1;
                } else if let Some(n) = self.in_flight_cover.get_mut(&at) {
                    *n -= 1;
                    if *n == 0 {
                        self.in_flight_cover.remove(&at);
                    }
                }
            }
        }
    }

    /// Pulls `prefix` next, before anything not yet sent (a user became active, or a
    /// domain-level presence named a publisher the cache lacks, PS-48). A prefix already
    /// waiting moves to the front; one more than the bound is dropped (the descent from the
    /// root covers it anyway).
    pub fn prioritize(&mut self, prefix: Prefix) {
        if self.prioritized.contains(&prefix) {
            if let Some(i) = self.priority.iter().position(|p| *p == prefix) {
                self.priority.remove(i);
            } else if let Some(i) = self.awaiting_cover.iter().position(|p| *p == prefix) {
                // Still waiting for an answer under it: it goes first once that is in.
                let p = self.awaiting_cover.remove(i);
                self.awaiting_cover.insert(0, p);
                return;
            }
        } else if self.priority.len() + self.nodes.len() + self.awaiting_cover.len()
            >= self.max_nodes
        {
            return;
        } else {
            self.prioritized.insert(prefix);
        }
        self.priority.push_front(prefix);
    }

    /// The peer's published count that sizes the pulls ([`Puller::expecting`]; 0: unknown).
    pub fn expected(&self) -> u64 {
        self.expected_count
    }

    /// Queries sent so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Queries sent and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    /// The ids waiting (lacked, and stale entries waiting for them) and the prefixes waiting:
    /// its part of the session's [`super::bounds::Footprint`].
    pub fn footprint(&self) -> (usize, usize) {
        let stale: usize = self
            .stale
            .iter()
            .map(|g| g.waiting.len() + g.stale.len())
            .sum();
        (
            self.lack.len() + stale,
            self.priority.len() + self.nodes.len() + self.awaiting_cover.len(),
        )
    }

    /// True when the reconciliation is complete: nothing left to send, nothing awaited.
    pub fn is_done(&self) -> bool {
        self.root_started
            && self.priority.is_empty()
            && self.awaiting_cover.is_empty()
            && self.nodes.is_empty()
            && self.lack.is_empty()
            && self.stale.is_empty()
            && self.in_flight.is_empty()
    }

    /// The next query to send, if there is anything to say now. The caller sends it in an
    /// `<iq type='set'/>` and passes the answer to [`Puller::handle_answer`]; it may call this
    /// again before the answer arrives, up to its window.
    pub fn next_query(&mut self, cache: &mut PresenceSet, limits: &Limits) -> Option<Reconcile> {
        if self.lack.is_empty()
            && !self.in_flight.is_empty()
            && !self.awaiting_cover.is_empty()
            && self.ready_weight(cache, limits.max_bytes as usize / 2)
                < limits.max_bytes as usize / 2
        {
            // The answers in flight release the bucket pulls waiting for them: a query of the
            // few pulls ready now would take a place in the window half empty.
            return None;
        }
        let mut budget = Budget::new(limits);
        // A query leaves room for the hand-backs of its answer (PS-31).
        let mut allowance = NodeAllowance::new(limits);
        let mut q = Reconcile::new(ReconcileSet::Presence);
        // The query pulls contacts of active users (PS-52).
        let mut urgent_query = false;
        if !self.lack.is_empty() {
            // At most max-items ids per list (PS-82); the rest go in the next query.
            let ids: Vec<ShortId> = self
                .lack
                .iter()
                .take(limits.max_items as usize)
                .copied()
                .collect();
            for id in &ids {
                self.lack.remove(id);
            }
            urgent_query |= self.urgent_lack;
            let again = self.lack_again;
            if self.lack.is_empty() {
                self.urgent_lack = false;
                self.lack_again = false;
            }
            let entry = ReconcileEntry::Lack(Lack { ids: IdList(ids) });
            // A lack always fits: ids are 8 bytes and max-items bounds what we received.
            budget.take(std::slice::from_ref(&entry));
            q.entries.push(entry);
            if again {
                // PS-84: ids asked for again go in a query of their own.
                self.launch(Vec::new(), urgent_query);
                return Some(q);
            }
        }
        let mut deferred = Vec::new();
        // The node prefixes of this query so far.
        let mut listed: Vec<Prefix> = Vec::new();
        loop {
            let mut this_urgent = false;
            let (prefix, kind) = if let Some(node) = self.nodes.pop_front() {
                node
            } else if let Some(p) = self.priority.pop_front() {
                self.prioritized.remove(&p);
                this_urgent = self.urgent.remove(&p);
                // PS-21: a prefix at most once per query. A prefix under one already in the
                // query is covered by it; one over a prefix already in the query waits for
                // the next query, so that the answer brings no item twice.
                if listed.iter().any(|other| other.contains(p)) {
                    urgent_query |= this_urgent;
                    continue;
                }
                if listed.iter().any(|other| p.contains(*other)) {
                    deferred.push(p);
                    continue;
                }
                // A bucket pull over a prefix of an unanswered query waits for that answer,
                // so that no item comes twice.
                if self.in_flight_cover.contains_key(&p) {
                    self.prioritized.insert(p);
                    self.awaiting_cover.push(p);
                    continue;
                }
                (p, NodeKind::Ids)
            } else if !self.root_started && self.in_flight.is_empty() && q.entries.is_empty() {
                // The descent from the root goes last, once the priority pulls are answered
                // (and the items they handed back asked for and received), so that it finds
                // their buckets already equal and brings nothing before them.
                self.root_started = true;
                if !cache.is_empty() && self.target == Some(cache.root().0) {
                    // The pulls brought the peer's whole set as of its hello.
                    continue;
                }
                let item = self.item_size();
                let sketch = (!cache.is_empty())
                    .then(|| sketch_cells(self.changes, cache.len(), item, limits))
                    .flatten();
                if let Some(cells) = sketch {
                    // The peer told how many entries it changed since the last session:
                    // one sketch of the whole cache finds them in one exchange (XEP
                    // §Sketches); if it does not decode, the root comes back as a split.
                    (Prefix::ROOT, NodeKind::Sketch(cells))
                } else if cache.len() >= deep_start(limits) {
                    // A large set: the 16 children of the root are split at once (PS-35), a
                    // round trip less; the answer to a split of the root would have sent
                    // their fingerprints back anyway once more than a few differ.
                    for i in 0..16 {
                        let child = Prefix::ROOT.child(i).expect("the root has 16 children");
                        // 16 prefixes fit any bound (N_p >= 16 * 17).
                        let _ = self.nodes.push_back(child, NodeKind::Split);
                    }
                    continue;
                } else {
                    (Prefix::ROOT, NodeKind::Describe)
                }
            } else {
                break;
            };
            let entry = PendingNodes::materialize(cache, prefix, kind, limits);
            if !allowance.admit(self.claim(&entry)) {
                self.nodes.push_front(prefix, kind);
                break;
            }
            if !budget.take(std::slice::from_ref(&entry)) {
                self.nodes.push_front(prefix, kind);
                break;
            }
            q.entries.push(entry);
            listed.push(prefix);
            urgent_query |= this_urgent;
        }
        for p in deferred.into_iter().rev() {
            if self.prioritized.insert(p) {
                self.priority.push_front(p);
            }
        }
        if q.entries.is_empty() {
            return None;
        }
        self.launch(listed, urgent_query);
        Some(q)
    }

    /// Counts a query of the node prefixes `listed` as sent and in flight.
    fn launch(&mut self, listed: Vec<Prefix>, urgent: bool) {
        self.cover(&listed, true);
        self.in_flight.push_back(Flight {
            prefixes: listed,
            urgent,
        });
        self.queries += 1;
    }

    /// Applies an answer to the cache; returns the changes in the order they were applied. An
    /// error, and nothing applied, if the answer names a node its query did not ask about, or
    /// would make the cache, the lacked ids or the waiting nodes exceed their bounds: the
    /// caller discards it and ends the session (PS-70).
    pub fn handle_answer(
        &mut self,
        cache: &mut PresenceSet,
        answer: &Reconcile,
    ) -> Result<Vec<CacheChange>, DescentError> {
        let (queried, urgent_answer) = self
            .in_flight
            .pop_front()
            .map_or((Vec::new(), false), |f| (f.prefixes, f.urgent));
        self.cover(&queried, false);
        if !self.awaiting_cover.is_empty() {
            let cover = &self.in_flight_cover;
            let (ready, still): (Vec<Prefix>, Vec<Prefix>) =
                std::mem::take(&mut self.awaiting_cover)
                    .into_iter()
                    .partition(|p| !cover.contains_key(p));
            self.awaiting_cover = still;
            for p in ready.into_iter().rev() {
                self.priority.push_front(p);
            }
        }
        if let Some(p) = unrelated_node(answer, &queried) {
            return Err(DescentError::Unrelated(p));
        }
        let new_entries = answer
            .items()
            .filter(|item| cache.get(&item.jid).is_none())
            .count();
        let lacked: usize = answer
            .entries
            .iter()
            .map(|e| match e {
                ReconcileEntry::Ids(i) => i.ids.0.len(),
                _ => 0,
            })
            .sum();
        let (ids, _) = self.footprint();
        if cache.len() as usize + new_entries + ids + lacked > self.max_entries {
            return Err(DescentError::Exhausted(self.max_entries));
        }
        let deep: HashSet<Prefix> = queried
            .iter()
            .filter(|p| p.len() == MAX_DEPTH)
            .copied()
            .collect();
        if !deep.is_empty() {
            let handed_back = answer
                .entries
                .iter()
                .filter(|e| node_prefix(e).is_some_and(|p| deep.contains(&p)))
                .count() as u64;
            let found = answer
                .items()
                .filter(|item| deep.contains(&cache.prefix_of(&item.jid, MAX_DEPTH)))
                .count() as u64;
            self.deep_hits.0 += (deep.len() as u64).saturating_sub(handed_back);
            self.deep_hits.1 += found;
        }
        for item in answer.items().take(ITEMS_SAMPLED) {
            let bytes = item.to_xml_bytes().map_or(0, |b| b.len());
            self.item_bytes.0 = self.item_bytes.0.saturating_add(bytes as u64);
            self.item_bytes.1 += 1;
        }
        let mut changes = Vec::new();
        let mut answered: BTreeSet<ShortId> = BTreeSet::new();
        for entry in &answer.entries {
            match entry {
                ReconcileEntry::Split(s) => {
                    for child in descent::differing(cache, s.prefix, &s.fps.0) {
                        self.nodes.push_back(child, NodeKind::Describe)?;
                    }
                }
                ReconcileEntry::Ids(i) => {
                    let d = descent::answer_ids(cache, i.prefix, &i.ids.0);
                    let stale: Vec<(BareJid, ShortId)> = d
                        .mine_only
                        .iter()
                        .filter_map(|id| cache.publisher_of(id).map(|p| (p.clone(), *id)))
                        .collect();
                    if !d.theirs_only.is_empty() {
                        self.lack.extend(d.theirs_only.iter().copied());
                        self.urgent_lack |= urgent_answer;
                    }
                    self.stale.push(StaleGroup {
                        waiting: d.theirs_only.into_iter().collect(),
                        stale,
                    });
                }
                ReconcileEntry::Item(item) => {
                    let new = item.to_model();
                    let old = cache.set(&item.jid, new.clone());
                    if let Some(id) = cache.id_of(&item.jid) {
                        answered.insert(id);
                    }
                    let new = (!new.is_unavailable()).then_some(new);
                    if old != new {
                        changes.push(CacheChange {
                            publisher: item.jid.clone(),
                            old,
                            new,
                        });
                    }
                }
                ReconcileEntry::Gone(g) => {
                    for id in &g.ids.0 {
                        answered.insert(*id);
                        if let Some(p) = cache.publisher_of(id).cloned() {
                            let old = cache.remove(&p);
                            changes.push(CacheChange {
                                publisher: p,
                                old,
                                new: None,
                            });
                        }
                    }
                }
                // Not in answers: the wire layer rejects them (`Reconcile::check_direction`).
                ReconcileEntry::Sketch(_) | ReconcileEntry::Lack(_) | ReconcileEntry::Edge(_) => {}
            }
        }
        // Ids lacked earlier and now answered; those still missing are asked for again.
        for group in &mut self.stale {
            group.waiting.retain(|id| !answered.contains(id));
        }
        let still_lacking: BTreeSet<ShortId> = self
            .stale
            .iter()
            .flat_map(|g| g.waiting.iter().copied())
            .filter(|id| !self.lack.contains(id))
            .collect();
        if self.in_flight.is_empty() && !still_lacking.is_empty() {
            self.lack.extend(still_lacking);
            self.lack_again = true;
        }
        // Groups whose lacks are all answered drop their stale entries, unless an item has
        // replaced them meanwhile (the entry then has another id).
        let (done, waiting): (Vec<StaleGroup>, Vec<StaleGroup>) = std::mem::take(&mut self.stale)
            .into_iter()
            .partition(|g| g.waiting.is_empty());
        self.stale = waiting;
        for (publisher, id) in done.into_iter().flat_map(|g| g.stale) {
            if cache.id_of(&publisher) == Some(id) {
                let old = cache.remove(&publisher);
                changes.push(CacheChange {
                    publisher,
                    old,
                    new: None,
                });
            }
        }
        Ok(changes)
    }
}
