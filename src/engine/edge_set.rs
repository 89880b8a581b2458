//! The projected edge set of one server towards one peer, with its digest (XEP §Sets and
//! Roles, XEP §Leaves, Placements and Short Ids).
//!
//! Each server projects E(A,B) from its own rosters (PS-6, [`crate::model::edge::project`]) and
//! keeps it here: the [`EdgeDigest`] over it (placement = leaf, PS-15 node values at any
//! depth) and the way back from a short id to the edge it names, which the descent needs to
//! answer a `<lack/>` (PS-28) and to turn the ids of an `<ids/>` into full `<edge/>`s (PS-25).
//!
//! Memory: the digest's buckets hold only the 8-byte short id of each edge; the side table
//! holds the [`Edge`] (two bare JIDs) and its 32-byte leaf, so that listing ids and computing
//! deep node values do not rehash. That is about 8 + 32 + 2 × (JID size + allocation) bytes
//! per edge on top of the tree, more than the XEP's estimate for a server that keys edges by
//! roster row (§Memory per Edge); a server can key `EdgeDigest` by such a row id instead.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::digest::descent::DescentView;
use crate::digest::{
    EdgeDigest, EdgeHasher, EdgeRef, Fingerprint, HashAlgo, LeafHash, NodeValue, PairHasher,
    Prefix, ShortId,
};
use crate::model::Edge;

/// The edges of one server towards one peer, with digest and short-id index.
#[derive(Clone, Debug)]
pub struct EdgeSet {
    digest: EdgeDigest<ShortId>,
    edges: HashMap<ShortId, (Edge, LeafHash)>,
}

impl EdgeSet {
    /// An empty set whose tree has the given depth.
    pub fn new(hasher: PairHasher, depth: u8) -> EdgeSet {
        EdgeSet {
            digest: EdgeDigest::new(hasher, depth),
            edges: HashMap::new(),
        }
    }

    /// A set holding `edges`, with a tree of the given depth: the set [`Self::insert`] would
    /// make of them one by one (the first of two edges with the same short id kept), each
    /// edge hashed once and the tree built in bulk.
    pub fn with_edges(
        hasher: PairHasher,
        depth: u8,
        edges: impl IntoIterator<Item = Edge>,
    ) -> Self {
        let edges = edges.into_iter();
        let mut table: HashMap<ShortId, (Edge, LeafHash)> =
            HashMap::with_capacity(edges.size_hint().0);
        let mut leaves: Vec<(ShortId, LeafHash)> = Vec::with_capacity(edges.size_hint().0);
        let mut eh = EdgeHasher::new(hasher.clone());
        // A batch at a time, so that the hasher can hash several edges at once.
        const BATCH: usize = 64;
        let mut edges = edges.peekable();
        let mut batch: Vec<Edge> = Vec::with_capacity(BATCH);
        let mut batch_leaves: Vec<LeafHash> = Vec::with_capacity(BATCH);
        while edges.peek().is_some() {
            batch.extend(edges.by_ref().take(BATCH));
            let refs: Vec<EdgeRef<'_>> = batch.iter().map(EdgeRef::from).collect();
            batch_leaves.clear();
            eh.leaves(&refs, &mut batch_leaves);
            drop(refs);
            for (e, leaf) in batch.drain(..).zip(batch_leaves.iter().copied()) {
                let id = leaf.short_id();
                if let Entry::Vacant(slot) = table.entry(id) {
                    slot.insert((e, leaf));
                    leaves.push((id, leaf));
                }
            }
        }
        EdgeSet {
            digest: EdgeDigest::from_leaves(hasher, depth, leaves),
            edges: table,
        }
    }

    /// The short id of `edge` under this pair's keys (whether or not the set holds it).
    pub fn id_of(&mut self, edge: &Edge) -> ShortId {
        self.digest.leaf(EdgeRef::from(edge)).short_id()
    }

    /// Adds `edge`; false if it was already present. An edge set holds at most one edge per
    /// (publisher, subscriber) pair (XEP §Sets and Roles); keeping it so is the caller's part
    /// (the projection does). Two edges whose 64-bit short ids collide cannot both be held:
    /// the second is refused (false), which only crafted data can cause (XEP §Keyed
    /// Placement and Crafted Collisions).
    pub fn insert(&mut self, edge: Edge) -> bool {
        let leaf = self.digest.leaf(EdgeRef::from(&edge));
        let id = leaf.short_id();
        let Entry::Vacant(slot) = self.edges.entry(id) else {
            return false;
        };
        slot.insert((edge, leaf));
        self.digest.insert_leaf(id, &leaf);
        true
    }

    /// Removes `edge`; false if it was not present.
    pub fn remove(&mut self, edge: &Edge) -> bool {
        let leaf = self.digest.leaf(EdgeRef::from(edge));
        let id = leaf.short_id();
        match self.edges.get(&id) {
            Some((e, _)) if e == edge => {}
            _ => return false,
        }
        self.digest.remove_leaf(&id, &leaf);
        self.edges.remove(&id);
        true
    }

    /// True if the set holds `edge` (same pair and state).
    pub fn contains(&mut self, edge: &Edge) -> bool {
        let id = self.id_of(edge);
        self.edges.get(&id).is_some_and(|(e, _)| e == edge)
    }

    /// The edge whose short id is `id`.
    pub fn edge_of(&self, id: &ShortId) -> Option<&Edge> {
        self.edges.get(id).map(|(e, _)| e)
    }

    /// All edges, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Edge> {
        self.edges.values().map(|(e, _)| e)
    }

    /// Number of edges.
    pub fn len(&self) -> u64 {
        self.digest.len()
    }

    /// True if there is no edge.
    pub fn is_empty(&self) -> bool {
        self.digest.is_empty()
    }

    /// The root fingerprint and count (the edge `<root/>` of a hello).
    pub fn root(&self) -> (Fingerprint, u64) {
        let v = self.node(Prefix::ROOT);
        (v.fingerprint(self.algo()), v.count())
    }

    /// The digest.
    pub fn digest(&self) -> &EdgeDigest<ShortId> {
        &self.digest
    }
}

impl DescentView for EdgeSet {
    fn algo(&self) -> HashAlgo {
        self.digest.tree().algo()
    }

    fn depth(&self) -> u8 {
        self.digest.tree().depth()
    }

    fn node(&self, prefix: Prefix) -> NodeValue {
        let edges = &self.edges;
        self.digest.node_value(prefix, |id, _| edges[id].1)
    }

    fn ids_under(&mut self, prefix: Prefix) -> Vec<ShortId> {
        let edges = &self.edges;
        self.digest.short_ids_under(prefix, |id, _| edges[id].1)
    }
}

#[cfg(test)]
mod tests {
    use jid::BareJid;

    use super::*;
    use crate::model::EdgeState;

    fn edge(p: &str, s: &str, state: EdgeState) -> Edge {
        Edge::new(BareJid::new(p).unwrap(), BareJid::new(s).unwrap(), state)
    }

    /// The root of a set fingerprints with the algorithm the pair negotiated (XEP §Choosing
    /// the Hash Algorithm): under SHA-256 an empty set's root is SHA-256's empty fingerprint,
    /// not BLAKE3's.
    #[test]
    fn the_root_fingerprints_with_the_negotiated_algorithm() {
        use crate::digest::NodeValue;
        for algo in HashAlgo::ALL {
            let set = EdgeSet::new(PairHasher::new(algo, "a.example", "b.example"), 1);
            assert_eq!(
                set.root(),
                (NodeValue::EMPTY.fingerprint(algo), 0),
                "{algo:?}"
            );
        }
        assert_ne!(
            NodeValue::EMPTY.fingerprint(HashAlgo::Sha256),
            NodeValue::EMPTY.fingerprint(HashAlgo::Blake3)
        );
    }

    #[test]
    fn insert_remove_and_lookup() {
        let pair = PairHasher::new(HashAlgo::Blake3, "a.example", "b.example");
        let mut set = EdgeSet::new(pair.clone(), 1);
        let e = edge("u@a.example", "v@b.example", EdgeState::Subscribed);
        let p = edge("u@a.example", "v@b.example", EdgeState::Pending);
        assert!(set.insert(e.clone()) && !set.insert(e.clone()));
        assert!(set.contains(&e) && !set.contains(&p));
        let id = set.id_of(&e);
        assert_eq!(set.edge_of(&id), Some(&e));
        assert_eq!(set.ids_under(Prefix::ROOT), vec![id]);
        let other = EdgeSet::with_edges(pair, 3, [e.clone()]);
        assert_eq!(
            other.root(),
            set.root(),
            "the root does not depend on depth"
        );
        assert!(!set.remove(&p) && set.remove(&e) && set.is_empty());
    }
}
