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
//! The outcome is an [`EdgeDiff`] on each side: every edge it holds that the peer lacks (sent
//! in full) and every edge the peer holds that it lacks (received in full). Since each side
//! records an edge exactly when it puts it in a message and the other when it receives it, the
//! two diffs are mirror images once both sides are done. The repair decisions follow from the
//! diff ([`super::repair`]); the hello that ends the descent (PS-36) is the session's.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::budget::{
    Budget, fit_node, hand_back, is_node, max_query_nodes, node_prefix, wire_step,
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

/// One side of a descent of the edge set.
#[derive(Clone, Debug, Default)]
pub struct EdgeReconciler {
    /// Node entries (split/ids) to send in queries.
    nodes: VecDeque<ReconcileEntry>,
    /// Own edges owed to the peer, sent in queries.
    owed: BTreeSet<ShortId>,
    /// Ids to ask for a first time.
    lack: BTreeSet<ShortId>,
    /// Ids to ask for a second and last time (PS-32).
    reask: BTreeSet<ShortId>,
    /// How often each id was asked for.
    asked: HashMap<ShortId, u8>,
    /// The ids lacked in each unanswered query, oldest first.
    in_flight: VecDeque<Vec<ShortId>>,
    only_mine: BTreeMap<ShortId, Edge>,
    only_theirs: BTreeMap<ShortId, Edge>,
    queries: usize,
}

impl EdgeReconciler {
    /// A side with nothing to do yet (the non-driver, until the driver's first query).
    pub fn new() -> EdgeReconciler {
        EdgeReconciler::default()
    }

    /// The edge driver's first query after unequal edge roots (XEP PS-33): `<ids prefix=''/>`
    /// if its set holds at most leaf-items edges, else `<split prefix=''/>` with its 16 root
    /// children.
    pub fn start(&mut self, set: &mut EdgeSet, limits: &Limits) -> Option<Reconcile> {
        let root = if set.len() <= limits.leaf_items as u64 {
            let ids = wire_step(descent::describe(
                set,
                Prefix::ROOT,
                limits.leaf_items as u64,
            ));
            fit_node(set, ids, limits)
        } else {
            hand_back(set, Prefix::ROOT)
        };
        self.nodes.push_front(root);
        self.next_query(set, limits)
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

    /// What this side has learnt so far (complete once both sides are done).
    pub fn diff(&self) -> EdgeDiff {
        EdgeDiff {
            only_mine: self.only_mine.values().cloned().collect(),
            only_theirs: self.only_theirs.values().cloned().collect(),
        }
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
        let mut prefixes = HashSet::new();
        let mut later = Vec::new();
        while prefixes.len() < max_query_nodes(limits) {
            let Some(entry) = self.nodes.pop_front() else {
                break;
            };
            let prefix = node_prefix(&entry).expect("a node entry");
            if prefixes.contains(&prefix) {
                later.push(entry); // PS-21: a prefix once per reconcile
                continue;
            }
            if !budget.take(std::slice::from_ref(&entry)) {
                self.nodes.push_front(entry);
                break;
            }
            prefixes.insert(prefix);
            q.entries.push(entry);
        }
        for entry in later.into_iter().rev() {
            self.nodes.push_front(entry);
        }
        (!q.entries.is_empty()).then(|| self.sent(q, ids))
    }

    /// Answers a query of the peer (XEP PS-23): node children first, each keeping room for the
    /// hand-backs of those after it (PS-31), then the edges lacked, as many as fit (PS-28; the
    /// peer asks again for the others).
    pub fn answer(&mut self, set: &mut EdgeSet, query: &Reconcile, limits: &Limits) -> Reconcile {
        let leaf_items = limits.leaf_items as u64;
        let mut budget = Budget::new(limits);
        let mut out = Reconcile::new(ReconcileSet::Edges);
        let mut sent: HashSet<ShortId> = HashSet::new();
        for edge in query.edges() {
            self.received(set, edge);
        }
        let nodes: Vec<&ReconcileEntry> = query.entries.iter().filter(|e| is_node(e)).collect();
        for (i, entry) in nodes.iter().enumerate() {
            let later = nodes.len() - i - 1;
            let prefix = node_prefix(entry).expect("a node entry");
            let (responses, edges, lacked) = match entry {
                ReconcileEntry::Split(s) => {
                    let steps = descent::answer_split(set, s.prefix, &s.fps.0, leaf_items);
                    let r = steps
                        .into_iter()
                        .map(|s| fit_node(set, wire_step(s), limits));
                    (r.collect(), Vec::new(), Vec::new())
                }
                ReconcileEntry::Ids(i) => {
                    let d = descent::answer_ids(set, i.prefix, &i.ids.0);
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
                    (r, edges, lacked)
                }
                _ => unreachable!("filtered to nodes"),
            };
            if budget.take_keeping(&responses, later) {
                out.entries.extend(responses);
                for (id, edge) in edges {
                    sent.insert(id);
                    self.only_mine.insert(id, edge);
                }
                for id in lacked {
                    *self.asked.entry(id).or_default() += 1;
                }
            } else {
                let back = hand_back(set, prefix);
                let fits = budget.take_keeping(std::slice::from_ref(&back), later);
                debug_assert!(fits, "room for hand-backs is kept");
                out.entries.push(back);
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
                    self.only_mine.insert(*id, edge);
                    out.entries.push(entry);
                }
            }
        }
        out
    }

    /// Processes the answer to the oldest unanswered query (answers arrive in order, PS-11);
    /// its responses are queued for the next queries (PS-23).
    pub fn handle_answer(&mut self, set: &mut EdgeSet, answer: &Reconcile, limits: &Limits) {
        let asked = self.in_flight.pop_front().unwrap_or_default();
        let leaf_items = limits.leaf_items as u64;
        for entry in &answer.entries {
            match entry {
                ReconcileEntry::Split(s) => {
                    for step in descent::answer_split(set, s.prefix, &s.fps.0, leaf_items) {
                        let node = fit_node(set, wire_step(step), limits);
                        self.nodes.push_back(node);
                    }
                }
                ReconcileEntry::Ids(i) => {
                    let d = descent::answer_ids(set, i.prefix, &i.ids.0);
                    let unsent = d.mine_only.into_iter();
                    self.owed
                        .extend(unsent.filter(|id| !self.only_mine.contains_key(id)));
                    let new = d.theirs_only.into_iter();
                    self.lack
                        .extend(new.filter(|id| !self.only_theirs.contains_key(id)));
                }
                ReconcileEntry::Lack(l) => {
                    let held = l.ids.0.iter().filter(|id| set.edge_of(id).is_some());
                    self.owed.extend(held);
                }
                ReconcileEntry::Edge(edge) => self.received(set, edge),
                ReconcileEntry::Gone(_) | ReconcileEntry::Item(_) => {}
            }
        }
        // PS-32: ids lacked in that query and not answered are asked for once more (not
        // those this side now holds: a repair of the peer, sent before this answer, added
        // them).
        for id in asked {
            if !self.only_theirs.contains_key(&id)
                && set.edge_of(&id).is_none()
                && self.asked.get(&id).copied() < Some(2)
            {
                self.reask.insert(id);
            }
        }
    }

    fn received(&mut self, set: &mut EdgeSet, edge: &wire::Edge) {
        let edge = Edge::from(edge.clone());
        let id = set.id_of(&edge);
        if set.edge_of(&id) != Some(&edge) {
            self.lack.remove(&id);
            self.reask.remove(&id);
            self.only_theirs.insert(id, edge);
        }
    }

    fn lack_entry(&mut self, ids: &[ShortId]) -> ReconcileEntry {
        for id in ids {
            *self.asked.entry(*id).or_default() += 1;
        }
        lack_of(ids)
    }

    fn sent(&mut self, q: Reconcile, lacked: Vec<ShortId>) -> Reconcile {
        self.in_flight.push_back(lacked);
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
