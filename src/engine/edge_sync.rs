//! Reconciliation of the edge set (XEP §Reconciliation), symmetric and sans-IO.
//!
//! Both servers run an [`EdgeReconciler`]. The edge driver (the domain that sorts first,
//! [`is_edge_driver`]) starts the descent with [`EdgeReconciler::start`] when the edge roots of
//! a hello exchange differ (PS-33); from then on each side answers the other's queries with
//! [`EdgeReconciler::answer`] and turns the responses an answer produces into new queries
//! ([`EdgeReconciler::handle_answer`], then [`EdgeReconciler::next_query`]) (PS-23). The order
//! of calls for a driver: `start`, then repeatedly `next_query` (up to the window) and
//! `handle_answer` for each answer, in the order the queries were sent; and `answer` for each
//! query of the peer, whenever it arrives.
//!
//! Rules implemented: PS-24 (split), PS-25 (ids: an `<edge/>` for each own edge the peer did
//! not list, one `<lack/>` for the listed ids it does not hold), PS-28 (lack: the full edges),
//! PS-30/PS-31 (limits; a node whose responses do not fit an answer is handed back as a split,
//! or its own ids at 8 nibbles), PS-32 (a lacked id missing from the answer is asked for again
//! once, alone in a query so that its answer fits), PS-82 (at most max-items ids per list).
//! Responses that go into queries never need to be dropped: they wait for the next query.
//!
//! Resources (XEP §Resource Exhaustion, [`super::bounds`]): waiting nodes are prefixes, each
//! queued once, at most the cap the session gives ([`EdgeReconciler::bounded`]); an answer
//! that names a node its query did not ask about is refused ([`DescentError::Unrelated`]), and
//! one that would overfill the queue too ([`DescentError::Exhausted`]). The ids of differing
//! edges it records are capped at the session's difference budget (the repair threshold of
//! PS-65, plus one): past it the reconciler stops recording, drops what it still meant to ask
//! and send, and reports [`EdgeReconciler::overflowed`], so that repairs are suspended.
//!
//! The outcome is an [`EdgeDiff`] on each side: every edge it holds that the peer lacks (sent
//! in full) and every edge the peer holds that it lacks (received in full). Since each side
//! records an edge exactly when it puts it in a message and the other when it receives it, the
//! two diffs are mirror images once both sides are done. The repair decisions follow from the
//! diff ([`super::repair`]); the hello that ends the descent (PS-36) is the session's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;

use super::budget::{
    Budget, Claim, NodeAllowance, NodeKind, PendingNodes, QueueFull, fit_node, is_node,
    node_difference, node_prefix, node_weight, queried_prefixes, reserves, sketch_cells,
    unrelated_node, wire_step,
};
use super::edge_set::EdgeSet;
use crate::digest::descent;
use crate::digest::{Prefix, ShortId};
use crate::model::Edge;
use crate::wire::{self, IdList, Lack, Limits, Reconcile, ReconcileEntry, ReconcileSet};

/// True if `local` is the edge driver towards `peer`: its name sorts first byte-wise as UTF-8
/// (XEP §Sets and Roles).
pub fn is_edge_driver(local: &str, peer: &str) -> bool {
    local.as_bytes() < peer.as_bytes()
}

/// What one side learnt from a descent of the edge set (XEP PS-25, PS-28).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeDiff {
    /// Edges this side holds and the peer lacks (sent to the peer in full).
    pub only_mine: Vec<Edge>,
    /// Edges the peer holds and this side lacks (received in full).
    pub only_theirs: Vec<Edge>,
}

/// Why a reconciler refused a message of the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescentError {
    /// An answer names a node that its query did not ask about (neither a node of the query
    /// nor one of its children).
    Unrelated(Prefix),
    /// The answer would make more nodes wait than the bound allows.
    Exhausted(usize),
    /// Even the replacement of a node of the query does not fit the answer (PS-31): the query
    /// claimed more than max-bytes for hand-backs (more than `max` splits, or 8 times as many
    /// 8-nibble `<ids/>`), or an 8-nibble node holds more ids than fit.
    TooManyNodes {
        /// Node children of the query.
        count: usize,
        /// ⌊max-bytes / 512⌋ splits, at most max-items.
        max: usize,
    },
}

impl fmt::Display for DescentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescentError::Unrelated(p) => {
                write!(
                    f,
                    "answer names prefix '{p}', which its query did not ask about"
                )
            }
            DescentError::Exhausted(cap) => {
                write!(f, "answer would make more than {cap} nodes wait")
            }
            DescentError::TooManyNodes { count, max } => write!(
                f,
                "{count} node children whose answers cannot fit max-bytes (at most {max} splits)"
            ),
        }
    }
}

impl From<QueueFull> for DescentError {
    fn from(full: QueueFull) -> DescentError {
        DescentError::Exhausted(full.0)
    }
}

/// One unanswered query: the ids it lacked, the nodes it asked about.
#[derive(Clone, Debug, Default)]
struct InFlight {
    lacked: Vec<ShortId>,
    nodes: Vec<Prefix>,
}

/// One side of a descent of the edge set.
#[derive(Clone, Debug)]
pub struct EdgeReconciler {
    /// Nodes (split/ids) to send in queries.
    nodes: PendingNodes,
    /// Own edges owed to the peer, sent in queries.
    owed: BTreeSet<ShortId>,
    /// Ids to ask for a first time.
    lack: BTreeSet<ShortId>,
    /// Ids to ask for a second and last time (PS-32).
    reask: BTreeSet<ShortId>,
    /// How often each id not received yet was asked for.
    asked: HashMap<ShortId, u8>,
    /// The unanswered queries, oldest first.
    in_flight: VecDeque<InFlight>,
    only_mine: BTreeMap<ShortId, Edge>,
    only_theirs: BTreeMap<ShortId, Edge>,
    /// Every id found to differ in this descent (the others are subsets of it).
    known: HashSet<ShortId>,
    /// The most ids `known` may hold.
    max_differences: usize,
    overflow: bool,
    queries: usize,
}

impl Default for EdgeReconciler {
    fn default() -> EdgeReconciler {
        EdgeReconciler::bounded(usize::MAX, usize::MAX)
    }
}

impl EdgeReconciler {
    /// A side with nothing to do yet (the non-driver, until the driver's first query), with no
    /// bound on what it keeps (tests and tools; a session uses [`EdgeReconciler::bounded`]).
    pub fn new() -> EdgeReconciler {
        EdgeReconciler::default()
    }

    /// A side that records at most `differences` differing ids and keeps at most `nodes` nodes
    /// waiting (the session's bounds, [`super::bounds::Bounds`]).
    pub fn bounded(differences: usize, nodes: usize) -> EdgeReconciler {
        EdgeReconciler {
            nodes: PendingNodes::with_cap(nodes),
            owed: BTreeSet::new(),
            lack: BTreeSet::new(),
            reask: BTreeSet::new(),
            asked: HashMap::new(),
            in_flight: VecDeque::new(),
            only_mine: BTreeMap::new(),
            only_theirs: BTreeMap::new(),
            known: HashSet::new(),
            max_differences: differences,
            overflow: false,
            queries: 0,
        }
    }

    /// What one differing edge is assumed to bring back in an answer (an `<edge/>` of two JIDs),
    /// to size a sketch ([`sketch_cells`]).
    const EDGE_BYTES: u64 = 160;

    /// The edge driver's first query after unequal edge roots (XEP PS-33): `<ids prefix=''/>`
    /// if its set holds at most leaf-items edges, else `<split prefix=''/>` with its 16 root
    /// children.
    pub fn start(&mut self, set: &mut EdgeSet, limits: &Limits) -> Option<Reconcile> {
        self.open(set, limits, None);
        self.next_query(set, limits)
    }

    /// Queues the root as [`EdgeReconciler::start`] does, without building the query: the
    /// caller sends it with [`EdgeReconciler::next_query`] once its window has room (PS-50).
    /// With the `changes` both sides made apart (their hellos), a sketch of the root when
    /// one is worth sending (XEP §Sketches).
    pub fn open(&mut self, set: &EdgeSet, limits: &Limits, changes: Option<u64>) {
        let kind = if let Some(cells) = sketch_cells(changes, set.len(), Self::EDGE_BYTES, limits) {
            NodeKind::Sketch(cells)
        } else if set.len() <= limits.leaf_items as u64 {
            NodeKind::Describe
        } else {
            NodeKind::Split
        };
        self.nodes.push_front(Prefix::ROOT, kind);
    }

    /// Queries sent so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Queries sent and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    /// True when this side has nothing to send and awaits no answer. The descent is complete
    /// when both sides are done (the driver then sends the hello of PS-36).
    pub fn is_done(&self) -> bool {
        self.nodes.is_empty()
            && self.owed.is_empty()
            && self.lack.is_empty()
            && self.reask.is_empty()
            && self.in_flight.is_empty()
    }

    /// True if the descent found more differences than its budget and stopped recording
    /// them: its diff is incomplete, and repairs must be suspended (PS-65).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The ids this side keeps (every structure counted) and the nodes waiting: its part of
    /// the session's [`super::bounds::Footprint`].
    pub fn footprint(&self) -> (usize, usize) {
        let in_flight: usize = self.in_flight.iter().map(|q| q.lacked.len()).sum();
        let ids = self.owed.len()
            + self.lack.len()
            + self.reask.len()
            + self.asked.len()
            + in_flight
            + self.only_mine.len()
            + self.only_theirs.len()
            + self.known.len();
        (ids, self.nodes.len())
    }

    /// What this side has learnt so far (complete once both sides are done).
    pub fn diff(&self) -> EdgeDiff {
        EdgeDiff {
            only_mine: self.only_mine.values().cloned().collect(),
            only_theirs: self.only_theirs.values().cloned().collect(),
        }
    }

    /// Records `id` as differing; false (and the descent winds down) if the budget is spent.
    fn note(&mut self, id: ShortId) -> bool {
        if self.known.contains(&id) {
            return true;
        }
        if self.known.len() >= self.max_differences {
            if !self.overflow {
                self.overflow = true;
                // Nothing more is asked or sent: the edge set cannot be verified anyway.
                self.nodes.clear();
                self.lack.clear();
                self.reask.clear();
                self.owed.clear();
            }
            return false;
        }
        self.known.insert(id);
        true
    }

    /// The next query, if there is anything to say now. The caller sends it in an
    /// `<iq type='set'/>` and passes the answer to [`EdgeReconciler::handle_answer`]; it may
    /// call this again before the answer arrives, up to its window.
    pub fn next_query(&mut self, set: &mut EdgeSet, limits: &Limits) -> Option<Reconcile> {
        let max_ids = limits.max_items as usize;
        let mut q = Reconcile::new(ReconcileSet::Edges);
        if !self.reask.is_empty() {
            // PS-32: the last ask goes alone, so that its answer holds only edges and fits.
            let ids = take_first(&mut self.reask, max_ids);
            q.entries.push(self.lack_entry(&ids));
            return Some(self.sent(q, ids));
        }
        let mut budget = Budget::new(limits);
        let ids = take_first(&mut self.lack, max_ids);
        if !ids.is_empty() {
            let entry = self.lack_entry(&ids);
            budget.take(std::slice::from_ref(&entry));
            q.entries.push(entry);
        }
        while let Some(&id) = self.owed.first() {
            let Some(edge) = set.edge_of(&id).cloned() else {
                self.owed.remove(&id); // removed meanwhile: nothing to send
                continue;
            };
            let entry = ReconcileEntry::Edge(wire::Edge::from(&edge));
            if !budget.take(std::slice::from_ref(&entry)) {
                break;
            }
            self.owed.remove(&id);
            self.only_mine.insert(id, edge);
            q.entries.push(entry);
        }
        let mut allowance = NodeAllowance::new(limits);
        while let Some((prefix, kind)) = self.nodes.pop_front() {
            let claim = Claim {
                bytes: node_weight(prefix),
                items16: 0,
            };
            if !allowance.admit(claim) {
                self.nodes.push_front(prefix, kind);
                break;
            }
            let entry = PendingNodes::materialize(set, prefix, kind, limits);
            if !budget.take(std::slice::from_ref(&entry)) {
                self.nodes.push_front(prefix, kind);
                break;
            }
            q.entries.push(entry);
        }
        (!q.entries.is_empty()).then(|| self.sent(q, ids))
    }

    /// Answers a query of the peer (XEP PS-23): node children first, each keeping room for the
    /// hand-backs of those after it (PS-31), then the edges lacked, as many as fit (PS-28; the
    /// peer asks again for the others). A prefix is named once even when the query names
    /// nested ones (PS-21). An error if even the hand-backs do not fit: the query carried more
    /// nodes than PS-31 allows for max-bytes, to be refused with `<too-many-items/>`.
    pub fn answer(
        &mut self,
        set: &mut EdgeSet,
        query: &Reconcile,
        limits: &Limits,
    ) -> Result<Reconcile, DescentError> {
        let leaf_items = limits.leaf_items as u64;
        let mut budget = Budget::new(limits);
        let mut out = Reconcile::new(ReconcileSet::Edges);
        let mut sent: HashSet<ShortId> = HashSet::new();
        let mut answered: HashSet<Prefix> = HashSet::new();
        for edge in query.edges() {
            self.received(set, edge);
        }
        let nodes: Vec<&ReconcileEntry> = query.entries.iter().filter(|e| is_node(e)).collect();
        let reserves = reserves(set, &nodes);
        for (entry, later) in nodes.iter().zip(reserves) {
            let prefix = node_prefix(entry).expect("a node entry");
            // None: a sketch that does not decode, handed back below (XEP §Sketches).
            let responded = match entry {
                ReconcileEntry::Split(s) => {
                    let steps = descent::answer_split(set, s.prefix, &s.fps.0, leaf_items);
                    let r = steps
                        .into_iter()
                        .map(|s| fit_node(set, wire_step(s), limits));
                    Some((r.collect(), Vec::new()))
                }
                ReconcileEntry::Ids(_) | ReconcileEntry::Sketch(_) => {
                    node_difference(set, entry).map(|d| {
                        let edges: Vec<(ShortId, Edge)> = d
                            .mine_only
                            .iter()
                            // Already sent in this descent (the node was handed back and compared
                            // again): the peer has it, in its diff if not in its set.
                            .filter(|id| !sent.contains(id) && !self.only_mine.contains_key(id))
                            .filter_map(|id| set.edge_of(id).map(|e| (*id, e.clone())))
                            .collect();
                        let lacked: Vec<ShortId> = d
                            .theirs_only
                            .into_iter()
                            .filter(|id| !self.only_theirs.contains_key(id))
                            .collect();
                        let mut r: Vec<ReconcileEntry> = edges
                            .iter()
                            .map(|(_, e)| ReconcileEntry::Edge(e.into()))
                            .collect();
                        r.extend(lacked.chunks(limits.max_items as usize).map(lack_of));
                        (r, edges)
                    })
                }
                _ => unreachable!("filtered to nodes"),
            };
            let (responses, edges) = responded.unzip();
            let taken = budget.respond(
                set,
                prefix,
                responses,
                &mut answered,
                later,
                &mut out.entries,
                nodes.len(),
            )?;
            if taken {
                for (id, edge) in edges.into_iter().flatten() {
                    sent.insert(id);
                    if self.note(id) {
                        self.only_mine.insert(id, edge);
                    }
                }
            }
        }
        for entry in &query.entries {
            let ReconcileEntry::Lack(l) = entry else {
                continue;
            };
            for id in &l.ids.0 {
                let Some(edge) = set.edge_of(id).cloned() else {
                    continue; // no longer held: the hello after the descent tells (PS-32)
                };
                let entry = ReconcileEntry::Edge(wire::Edge::from(&edge));
                if !sent.contains(id) && budget.take(std::slice::from_ref(&entry)) {
                    sent.insert(*id);
                    if self.note(*id) {
                        self.only_mine.insert(*id, edge);
                    }
                    out.entries.push(entry);
                }
            }
        }
        Ok(out)
    }

    /// Processes the answer to the oldest unanswered query (answers arrive in order, PS-11);
    /// its responses are queued for the next queries (PS-23). An error if the answer names a
    /// node the query did not ask about, or would make more nodes wait than the bound: the
    /// caller discards it and ends the session (PS-70).
    pub fn handle_answer(
        &mut self,
        set: &mut EdgeSet,
        answer: &Reconcile,
    ) -> Result<(), DescentError> {
        let InFlight { lacked, nodes } = self.in_flight.pop_front().unwrap_or_default();
        if let Some(p) = unrelated_node(answer, &nodes) {
            return Err(DescentError::Unrelated(p));
        }
        for entry in &answer.entries {
            match entry {
                ReconcileEntry::Split(s) => {
                    if self.overflow {
                        continue;
                    }
                    for child in descent::differing(set, s.prefix, &s.fps.0) {
                        self.nodes.push_back(child, NodeKind::Describe)?;
                    }
                }
                ReconcileEntry::Ids(i) => {
                    let d = descent::answer_ids(set, i.prefix, &i.ids.0);
                    for id in d.mine_only {
                        if !self.only_mine.contains_key(&id) && self.note(id) {
                            self.owed.insert(id);
                        }
                    }
                    for id in d.theirs_only {
                        if !self.only_theirs.contains_key(&id) && self.note(id) {
                            self.lack.insert(id);
                        }
                    }
                }
                ReconcileEntry::Lack(l) => {
                    for id in &l.ids.0 {
                        if set.edge_of(id).is_some() && self.note(*id) {
                            self.owed.insert(*id);
                        }
                    }
                }
                ReconcileEntry::Edge(edge) => self.received(set, edge),
                // Not in answers: the wire layer rejects them (`Reconcile::check_direction`).
                ReconcileEntry::Sketch(_) | ReconcileEntry::Gone(_) | ReconcileEntry::Item(_) => {}
            }
        }
        // PS-32: ids lacked in that query and not answered are asked for once more (not
        // those this side now holds: a repair of the peer, sent before this answer, added
        // them).
        for id in lacked {
            if !self.overflow
                && !self.only_theirs.contains_key(&id)
                && set.edge_of(&id).is_none()
                && self.asked.get(&id).copied() < Some(2)
            {
                self.reask.insert(id);
            }
        }
        Ok(())
    }

    fn received(&mut self, set: &mut EdgeSet, edge: &wire::Edge) {
        let edge = Edge::from(edge.clone());
        let id = set.id_of(&edge);
        if set.edge_of(&id) != Some(&edge) {
            self.lack.remove(&id);
            self.reask.remove(&id);
            self.asked.remove(&id);
            if self.note(id) {
                self.only_theirs.insert(id, edge);
            }
        }
    }

    fn lack_entry(&mut self, ids: &[ShortId]) -> ReconcileEntry {
        for id in ids {
            *self.asked.entry(*id).or_default() += 1;
        }
        lack_of(ids)
    }

    fn sent(&mut self, q: Reconcile, lacked: Vec<ShortId>) -> Reconcile {
        self.in_flight.push_back(InFlight {
            lacked,
            nodes: queried_prefixes(&q),
        });
        self.queries += 1;
        q
    }
}

fn lack_of(ids: &[ShortId]) -> ReconcileEntry {
    ReconcileEntry::Lack(Lack {
        ids: IdList(ids.to_vec()),
    })
}

fn take_first(ids: &mut BTreeSet<ShortId>, n: usize) -> Vec<ShortId> {
    let taken: Vec<ShortId> = ids.iter().take(n).copied().collect();
    for id in &taken {
        ids.remove(id);
    }
    taken
}
