//! The edge digest between two domains (XEP §Edge Set Digest).

use super::hash::{LeafHash, PairHasher, ShortId};
use super::node::NodeValue;
use super::prefix::Prefix;
use super::set::DigestSet;
use super::tree::{BucketTree, depth_for};
use crate::model::edge::{Edge, EdgeState, encode_edge};

/// An edge given by borrowed parts (JIDs as normalised bare-JID strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeRef<'a> {
    /// Whose presence flows.
    pub publisher: &'a str,
    /// Who receives it.
    pub subscriber: &'a str,
    /// Subscribed or pending.
    pub state: EdgeState,
}

impl<'a> From<&'a Edge> for EdgeRef<'a> {
    fn from(e: &'a Edge) -> EdgeRef<'a> {
        EdgeRef {
            publisher: e.publisher.as_str(),
            subscriber: e.subscriber.as_str(),
            state: e.state,
        }
    }
}

/// Hashes edges with a reusable buffer (one allocation for any number of edges).
#[derive(Clone, Debug)]
pub struct EdgeHasher {
    hasher: PairHasher,
    buf: Vec<u8>,
}

impl EdgeHasher {
    /// A hasher for the pair keys in `hasher`.
    pub fn new(hasher: PairHasher) -> EdgeHasher {
        EdgeHasher {
            hasher,
            buf: Vec::with_capacity(128),
        }
    }

    /// The leaf hash of `edge`.
    pub fn leaf(&mut self, edge: EdgeRef<'_>) -> LeafHash {
        self.buf.clear();
        encode_edge(edge.publisher, edge.subscriber, edge.state, &mut self.buf);
        self.hasher.edge_leaf(&self.buf)
    }

    /// The pair hasher.
    pub fn pair(&self) -> &PairHasher {
        &self.hasher
    }
}

/// Digest of the canonical edge set between two domains, items keyed by `K`.
#[derive(Clone, Debug)]
pub struct EdgeDigest<K> {
    hasher: EdgeHasher,
    set: DigestSet<K>,
}

impl<K: Clone + Eq> EdgeDigest<K> {
    /// An empty digest of the given depth.
    pub fn new(hasher: PairHasher, depth: u8) -> EdgeDigest<K> {
        let tree = BucketTree::new(hasher.algo(), depth);
        EdgeDigest {
            hasher: EdgeHasher::new(hasher),
            set: DigestSet::new(tree),
        }
    }

    /// Builds the digest of `edges` with the depth [`depth_for`] their number (`expected`, a
    /// hint; the depth can be changed later with [`Self::set_depth`]).
    pub fn build<'a>(
        hasher: PairHasher,
        expected: u64,
        edges: impl IntoIterator<Item = (K, EdgeRef<'a>)>,
    ) -> EdgeDigest<K> {
        let tree = BucketTree::new(hasher.algo(), depth_for(expected));
        let mut eh = EdgeHasher::new(hasher);
        let set = DigestSet::build(tree, edges.into_iter().map(|(k, e)| (k, eh.leaf(e))));
        EdgeDigest { hasher: eh, set }
    }

    /// The underlying set digest (tree, counts, fingerprints).
    pub fn set(&self) -> &DigestSet<K> {
        &self.set
    }

    /// The tree.
    pub fn tree(&self) -> &BucketTree {
        self.set.tree()
    }

    /// Number of edges.
    pub fn len(&self) -> u64 {
        self.set.len()
    }

    /// True if there is no edge.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The leaf hash of an edge under this pair's keys.
    pub fn leaf(&mut self, edge: EdgeRef<'_>) -> LeafHash {
        self.hasher.leaf(edge)
    }

    /// Adds an edge (not already present): O(depth).
    pub fn insert(&mut self, key: K, edge: EdgeRef<'_>) {
        let leaf = self.hasher.leaf(edge);
        self.set.insert(key, &leaf);
    }

    /// Removes an edge; false if it was not present.
    pub fn remove(&mut self, key: &K, edge: EdgeRef<'_>) -> bool {
        let leaf = self.hasher.leaf(edge);
        self.set.remove(key, &leaf)
    }

    /// Keys of the edges under `prefix`.
    pub fn keys_under(&self, prefix: Prefix) -> impl Iterator<Item = &K> {
        self.set.keys_under(prefix)
    }

    /// Sorted short ids of the edges under `prefix`. `leaf_of` resolves a key to its edge and
    /// hashes it with the hasher it is given (`|k, h| h.leaf(edge_of(k))`).
    pub fn short_ids_under(
        &self,
        prefix: Prefix,
        mut leaf_of: impl FnMut(&K, &mut EdgeHasher) -> LeafHash,
    ) -> Vec<ShortId> {
        let mut eh = self.hasher.clone();
        self.set.short_ids_under(prefix, |k| leaf_of(k, &mut eh))
    }

    /// The node value at any prefix down to 8 nibbles (XEP PS-15); `leaf_of` as in
    /// [`Self::short_ids_under`].
    pub fn node_value(
        &self,
        prefix: Prefix,
        mut leaf_of: impl FnMut(&K, &mut EdgeHasher) -> LeafHash,
    ) -> NodeValue {
        let mut eh = self.hasher.clone();
        self.set.node_value(prefix, |k| leaf_of(k, &mut eh))
    }

    /// Changes the tree depth (O(n)); `leaf_of` as in [`Self::short_ids_under`].
    pub fn set_depth(
        &mut self,
        depth: u8,
        mut leaf_of: impl FnMut(&K, &mut EdgeHasher) -> LeafHash,
    ) {
        let mut eh = self.hasher.clone();
        self.set.set_depth(depth, |k| leaf_of(k, &mut eh));
    }
}
