//! What every `<reconcile/>` sender needs, whichever set it reconciles (XEP §Answers that Do
//! Not Fit): the size of an entry, a budget that keeps a stanza within the limits (PS-30), the
//! hand-back of a node whose responses do not fit (PS-31), and the replacement of an `<ids/>`
//! that is too long by a `<split/>` (PS-82). Shared by [`super::presence_sync`] and
//! [`super::edge_sync`].

use std::collections::{HashSet, VecDeque};

use crate::digest::Prefix;
use crate::digest::descent::{self, DescentView, Step};
use crate::digest::prefix::MAX_DEPTH;
use crate::digest::sketch::{self, CELL_BYTES, Sketch};
use crate::engine::edge_sync::DescentError;
use crate::wire::{
    ChildFingerprints, IdList, Ids, Limits, Reconcile, ReconcileEntry, SketchNode, Split,
    WireElement,
};

/// Bytes kept free in every stanza for the `<iq/>` and `<reconcile/>` around the entries.
pub(crate) const ENVELOPE_BYTES: usize = 320;

/// Upper bound of the serialised size of a hand-back (a split with 16 fingerprints).
pub(crate) const HANDBACK_BYTES: usize = 40 + 8 + 344;

/// The prefix of a node entry (`<split/>` or `<ids/>`); None for other entries.
pub(crate) fn node_prefix(entry: &ReconcileEntry) -> Option<Prefix> {
    match entry {
        ReconcileEntry::Split(s) => Some(s.prefix),
        ReconcileEntry::Ids(i) => Some(i.prefix),
        ReconcileEntry::Sketch(k) => Some(k.prefix),
        _ => None,
    }
}

/// Upper bound of the serialised size of an entry (exact for items).
pub(crate) fn entry_bytes(entry: &ReconcileEntry) -> usize {
    let b64 = |bytes: usize| bytes.div_ceil(3) * 4;
    match entry {
        ReconcileEntry::Split(s) => 40 + s.prefix.len() as usize + b64(256),
        ReconcileEntry::Ids(i) => 32 + i.prefix.len() as usize + b64(8 * i.ids.0.len()),
        ReconcileEntry::Sketch(k) => 36 + k.prefix.len() as usize + b64(CELL_BYTES * k.data.len()),
        ReconcileEntry::Lack(l) => 20 + b64(8 * l.ids.0.len()),
        ReconcileEntry::Gone(g) => 20 + b64(8 * g.ids.0.len()),
        ReconcileEntry::Item(item) => item.to_xml_bytes().map_or(usize::MAX / 4, |b| b.len()),
        // `<edge xmlns='…' publisher='…' subscriber='…' state='pending'/>` is 84 bytes and the
        // two JIDs: bare JIDs hold no character that XML escapes (RFC 7622 §3.3.1).
        ReconcileEntry::Edge(e) => 96 + e.publisher.as_str().len() + e.subscriber.as_str().len(),
    }
}

/// The cells of a sketch that starts a descent of a set of `count` items (XEP §Sketches),
/// if one is worth sending: the hellos tell how many `changes` the two sides made apart
/// (each changes up to two ids: the old and the new), the set is larger than leaf-items, the
/// sketch is smaller than the ids it stands for and takes at most half a stanza, and the
/// `item_bytes` each change brings back should fit one answer. Otherwise the descent starts
/// as without sketches.
pub(crate) fn sketch_cells(
    changes: Option<u64>,
    count: u64,
    item_bytes: u64,
    limits: &Limits,
) -> Option<usize> {
    let changes = changes?;
    if count <= u64::from(limits.leaf_items) {
        return None;
    }
    let cells = sketch::cells_for(changes.saturating_mul(2));
    let bytes = (cells * CELL_BYTES) as u64;
    let fits = bytes.div_ceil(3) * 4 + 64 <= answer_room(limits) / 2
        && fits_one_answer(changes, item_bytes, limits)
        && bytes < count.saturating_mul(8);
    fits.then_some(cells)
}

/// The bytes an answer has for its responses.
fn answer_room(limits: &Limits) -> u64 {
    u64::from(limits.max_bytes).saturating_sub((ENVELOPE_BYTES + HANDBACK_BYTES) as u64)
}

/// True if the items of `changes` changes, `item_bytes` each, should fit one answer.
fn fits_one_answer(changes: u64, item_bytes: u64, limits: &Limits) -> bool {
    changes.saturating_mul(item_bytes) <= answer_room(limits)
}

/// True for the node children (`<split/>`, `<ids/>`, `<sketch/>`).
pub(crate) fn is_node(entry: &ReconcileEntry) -> bool {
    matches!(
        entry,
        ReconcileEntry::Split(_) | ReconcileEntry::Ids(_) | ReconcileEntry::Sketch(_)
    )
}

/// The exact difference under the node of an `<ids/>` (PS-25, PS-26) or a decodable
/// `<sketch/>` (XEP §Sketches) received in a query; None for a sketch that does not decode
/// (the node is then handed back as a split, and the requester descends as without it) and
/// for the other children.
pub(crate) fn node_difference(
    set: &mut impl DescentView,
    entry: &ReconcileEntry,
) -> Option<descent::Difference> {
    match entry {
        ReconcileEntry::Ids(i) => Some(descent::answer_ids(set, i.prefix, &i.ids.0)),
        ReconcileEntry::Sketch(k) => descent::answer_sketch(set, k.prefix, &k.data),
        _ => None,
    }
}

/// Accumulates the entries of one `<reconcile/>` within the limits (XEP PS-30).
#[derive(Debug)]
pub(crate) struct Budget {
    nodes: usize,
    items: usize,
    bytes: usize,
    max_items: usize,
    /// [`max_query_nodes`] of the limits, for the error of [`Budget::respond`].
    max_query_nodes: usize,
}

impl Budget {
    /// Answers one node child `prefix` of a query (PS-31): its `responses` if they fit and
    /// leave room for the hand-backs of the `later` nodes, else (and for None: a sketch that
    /// did not decode) the node's hand-back, once per prefix. `prefixes` holds the prefixes the
    /// answer names so far. True if the responses went in; if not even the hand-back fits, the
    /// query's `query_nodes` node children were too many for the limits.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn respond(
        &mut self,
        set: &mut impl DescentView,
        prefix: Prefix,
        responses: Option<Vec<ReconcileEntry>>,
        prefixes: &mut HashSet<Prefix>,
        later: Reserve,
        out: &mut Vec<ReconcileEntry>,
        query_nodes: usize,
    ) -> Result<bool, DescentError> {
        if let Some(mut responses) = responses {
            let mut seen = prefixes.clone();
            drop_repeated(&mut responses, &mut seen);
            if self.take_keeping(&responses, later) {
                *prefixes = seen;
                out.extend(responses);
                return Ok(true);
            }
        }
        if prefixes.insert(prefix) {
            let back = hand_back(set, prefix);
            if !self.take_keeping(std::slice::from_ref(&back), later) {
                return Err(DescentError::TooManyNodes {
                    count: query_nodes,
                    max: self.max_query_nodes,
                });
            }
            out.push(back);
        }
        Ok(false)
    }

    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            nodes: 0,
            items: 0,
            bytes: (limits.max_bytes as usize).saturating_sub(ENVELOPE_BYTES),
            max_items: limits.max_items as usize,
            max_query_nodes: max_query_nodes(limits),
        }
    }

    /// Takes room for `entries` if all of them fit; false (and nothing taken) otherwise.
    pub(crate) fn take(&mut self, entries: &[ReconcileEntry]) -> bool {
        self.take_keeping(entries, Reserve::default())
    }

    /// Like [`Budget::take`], but leaves room for the hand-backs of the nodes still to answer
    /// (PS-31): their count and their bytes ([`Reserve`]).
    pub(crate) fn take_keeping(&mut self, entries: &[ReconcileEntry], later: Reserve) -> bool {
        let Reserve {
            nodes: handbacks,
            bytes: handback_bytes,
        } = later;
        let nodes = entries.iter().filter(|e| is_node(e)).count();
        let items = entries
            .iter()
            .filter(|e| matches!(e, ReconcileEntry::Item(_) | ReconcileEntry::Edge(_)))
            .count();
        let bytes: usize = entries.iter().map(entry_bytes).sum();
        if self.nodes + nodes + handbacks > self.max_items
            || self.items + items > self.max_items
            || bytes + handback_bytes > self.bytes
        {
            return false;
        }
        self.nodes += nodes;
        self.items += items;
        self.bytes -= bytes;
        true
    }
}

/// What an answer keeps free for the hand-backs of the nodes it has still to answer (PS-31).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reserve {
    /// Nodes still to answer.
    pub(crate) nodes: usize,
    /// The bytes of their hand-backs.
    pub(crate) bytes: usize,
}

/// The bytes of the hand-back of node `prefix` of `set` (PS-31): a split of 16 fingerprints,
/// or at the deepest level the ids under it (one in practice: 8 nibbles are 2^32 buckets).
pub(crate) fn handback_bytes(set: &mut impl DescentView, prefix: Prefix) -> usize {
    if prefix.len() < MAX_DEPTH {
        HANDBACK_BYTES
    } else {
        entry_bytes(&ReconcileEntry::Ids(Ids {
            prefix,
            ids: IdList(set.ids_under(prefix)),
        }))
    }
}

/// For each node child of a query, in order, the [`Reserve`] of the nodes after it: what its
/// responses must leave free so that every later node can still be handed back (PS-31).
pub(crate) fn reserves(set: &mut impl DescentView, nodes: &[&ReconcileEntry]) -> Vec<Reserve> {
    let mut out = vec![Reserve::default(); nodes.len()];
    let mut after = Reserve::default();
    for (i, entry) in nodes.iter().enumerate().rev() {
        out[i] = after;
        if let Some(p) = node_prefix(entry) {
            after.nodes += 1;
            after.bytes += handback_bytes(set, p);
        }
    }
    out
}

/// The share of max-bytes a node child of a query claims for its hand-back (PS-31): 512
/// bytes, and 64 for an `<ids/>` at the deepest level, whose hand-back lists the ids of the
/// one publisher or edge such a prefix holds in practice.
pub(crate) fn node_weight(prefix: Prefix) -> usize {
    if prefix.len() < MAX_DEPTH {
        NODE_WEIGHT
    } else {
        DEEP_NODE_WEIGHT
    }
}

/// [`node_weight`] of a split, or of an `<ids/>` above the deepest level.
pub(crate) const NODE_WEIGHT: usize = 512;

/// [`node_weight`] of an `<ids/>` at the deepest level (8 nibbles): its hand-back with one id
/// is 52 bytes, with two 64.
pub(crate) const DEEP_NODE_WEIGHT: usize = 64;

/// The node children a requester puts in one query (PS-31): at most max-items, and at most
/// max-bytes of [`node_weight`]s, so that an answer made only of hand-backs fits; the first
/// node always goes. A requester that expects items under its nodes (bucket pulls) also keeps
/// the expected items within max-items, and their bytes within max-bytes: an answer that
/// overflows hands nodes back, which costs a round trip.
#[derive(Debug)]
pub(crate) struct NodeAllowance {
    nodes: usize,
    /// Bytes claimed.
    weight: usize,
    /// Items expected, in sixteenths.
    items16: u64,
    max_nodes: usize,
    max_weight: usize,
}

/// What a node child claims of its query's answer: bytes (at least its [`node_weight`]), and
/// the items expected under it, in sixteenths of an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) bytes: usize,
    pub(crate) items16: u64,
}

impl NodeAllowance {
    pub(crate) fn new(limits: &Limits) -> NodeAllowance {
        NodeAllowance {
            nodes: 0,
            weight: 0,
            items16: 0,
            max_nodes: limits.max_items as usize,
            max_weight: limits.max_bytes as usize,
        }
    }

    /// Counts a node with this claim if the query has room for it; false (nothing counted)
    /// if not.
    pub(crate) fn admit(&mut self, claim: Claim) -> bool {
        let weight = self.weight.saturating_add(claim.bytes);
        let items16 = self.items16.saturating_add(claim.items16);
        if self.nodes > 0
            && (self.nodes >= self.max_nodes
                || weight > self.max_weight
                || items16.div_ceil(16) > self.max_nodes as u64)
        {
            return false;
        }
        self.nodes += 1;
        self.weight = weight;
        self.items16 = items16;
        true
    }
}

/// The wire form of a descent step.
pub(crate) fn wire_step(step: Step) -> ReconcileEntry {
    match step {
        Step::Split { prefix, fps } => ReconcileEntry::Split(Split {
            prefix,
            fps: ChildFingerprints(*fps),
        }),
        Step::Ids { prefix, ids } => ReconcileEntry::Ids(Ids {
            prefix,
            ids: IdList(ids),
        }),
    }
}

/// The node handed back when the responses to a child do not fit (XEP PS-31): a split of the
/// same prefix, or its ids at the deepest level.
pub(crate) fn hand_back(set: &mut impl DescentView, prefix: Prefix) -> ReconcileEntry {
    if prefix.len() < MAX_DEPTH {
        let algo = set.algo();
        let fps = std::array::from_fn(|i| {
            let child = prefix.child(i as u8).expect("below the deepest level");
            set.node(child).fingerprint(algo)
        });
        ReconcileEntry::Split(Split {
            prefix,
            fps: ChildFingerprints(fps),
        })
    } else {
        ReconcileEntry::Ids(Ids {
            prefix,
            ids: IdList(set.ids_under(prefix)),
        })
    }
}

/// A node entry that fits a stanza on its own: an `<ids/>` whose list would be longer than
/// max-items ids (PS-82) or too long for max-bytes is described by a `<split/>` of the same
/// prefix instead (PS-24 allows either at or below the sender's depth), except at the deepest
/// level.
pub(crate) fn fit_node(
    set: &mut impl DescentView,
    entry: ReconcileEntry,
    limits: &Limits,
) -> ReconcileEntry {
    match entry {
        ReconcileEntry::Ids(ref ids)
            if ids.prefix.len() < MAX_DEPTH
                && (ids.ids.0.len() > limits.max_items as usize
                    || entry_bytes(&entry) + HANDBACK_BYTES + ENVELOPE_BYTES
                        > limits.max_bytes as usize) =>
        {
            hand_back(set, ids.prefix)
        }
        other => other,
    }
}

/// The most splits (or `<ids/>` above the deepest level) a query should carry so that an answer
/// made only of hand-backs fits (PS-31: ⌊max-bytes / 512⌋, and at most max-items); queries of
/// deepest-level `<ids/>` may carry more ([`NodeAllowance`]).
pub(crate) fn max_query_nodes(limits: &Limits) -> usize {
    (limits.max_items as usize).min((limits.max_bytes as usize / 512).max(1))
}

/// How a waiting node is described when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// By the descent rules: its ids if small or at the end of the tree, else a split
    /// ([`descent::describe`], fitted by [`fit_node`]).
    Describe,
    /// As a split whatever its size (a node of a deep start, PS-35).
    Split,
    /// As its ids whatever its size (a priority pull, PS-53), fitted by [`fit_node`].
    Ids,
    /// As a sketch of this many cells (XEP §Sketches): the start of a descent when the
    /// difference is expected to be small.
    Sketch(usize),
}

/// The queue of nodes a reconciler is to send: prefixes only, each once, at most `cap`
/// (XEP §Resource Exhaustion, [`super::bounds`]). A node's `<split/>` or `<ids/>` is computed
/// from the set when it is sent ([`PendingNodes::materialize`]), so a queued node costs its
/// prefix, and describes the set as it is then.
#[derive(Clone, Debug)]
pub(crate) struct PendingNodes {
    queue: VecDeque<(Prefix, NodeKind)>,
    queued: HashSet<Prefix>,
    cap: usize,
}

/// A [`PendingNodes`] is full: the peer made the descent wider than any honest one can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueFull(pub usize);

impl Default for PendingNodes {
    fn default() -> PendingNodes {
        PendingNodes::with_cap(usize::MAX)
    }
}

impl PendingNodes {
    pub(crate) fn with_cap(cap: usize) -> PendingNodes {
        PendingNodes {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
        self.queued.clear();
    }

    /// Queues `prefix` last, unless it is already queued (PS-21: a prefix once per reconcile,
    /// and a node once per descent step); an error if the queue is full.
    pub(crate) fn push_back(&mut self, prefix: Prefix, kind: NodeKind) -> Result<(), QueueFull> {
        if self.queued.contains(&prefix) {
            return Ok(());
        }
        if self.queue.len() >= self.cap {
            return Err(QueueFull(self.cap));
        }
        self.queued.insert(prefix);
        self.queue.push_back((prefix, kind));
        Ok(())
    }

    /// Puts back a node just taken with [`PendingNodes::pop_front`] (it did not fit).
    pub(crate) fn push_front(&mut self, prefix: Prefix, kind: NodeKind) {
        if self.queued.insert(prefix) {
            self.queue.push_front((prefix, kind));
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<(Prefix, NodeKind)> {
        let (prefix, kind) = self.queue.pop_front()?;
        self.queued.remove(&prefix);
        Some((prefix, kind))
    }

    /// The entry that describes node `prefix` of `set` now.
    pub(crate) fn materialize(
        set: &mut impl DescentView,
        prefix: Prefix,
        kind: NodeKind,
        limits: &Limits,
    ) -> ReconcileEntry {
        match kind {
            NodeKind::Describe => {
                let step = descent::describe(set, prefix, limits.leaf_items as u64);
                fit_node(set, wire_step(step), limits)
            }
            NodeKind::Split => hand_back(set, prefix),
            NodeKind::Ids => {
                let ids = ReconcileEntry::Ids(Ids {
                    prefix,
                    ids: IdList(set.ids_under(prefix)),
                });
                fit_node(set, ids, limits)
            }
            NodeKind::Sketch(cells) => ReconcileEntry::Sketch(SketchNode {
                prefix,
                data: Sketch::of(cells, &set.ids_under(prefix)),
            }),
        }
    }
}

/// The prefixes of the node children of `query`: what its answer may name (PS-31: each node
/// of an answer is a node of the query, handed back, or one of its children).
pub(crate) fn queried_prefixes(query: &Reconcile) -> Vec<Prefix> {
    query.entries.iter().filter_map(node_prefix).collect()
}

/// The first node of `answer` that answers none of the `queried` prefixes (it is neither one
/// of them nor a child of one): an answer to another question, which a requester discards
/// (XEP §Reconciliation).
pub(crate) fn unrelated_node(answer: &Reconcile, queried: &[Prefix]) -> Option<Prefix> {
    answer.entries.iter().filter_map(node_prefix).find(|p| {
        !queried
            .iter()
            .any(|q| q == p || (p.len() == q.len() + 1 && q.contains(*p)))
    })
}

/// Removes from `responses` every node whose prefix `answered` already holds, and records the
/// others: an answer names a prefix once (PS-21), even when the query named nested ones.
pub(crate) fn drop_repeated(responses: &mut Vec<ReconcileEntry>, answered: &mut HashSet<Prefix>) {
    responses.retain(|e| node_prefix(e).is_none_or(|p| answered.insert(p)));
}
