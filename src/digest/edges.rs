//! The edge digest between two domains (XEP §Edge Set Digest).

use super::hash::{LeafHash, PairHasher, ShortId};
use super::multi;
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

    /// The leaf hashes of `edges`, in order, appended to `out`: [`Self::leaf`] of each, the
    /// same values, computed eight at a time where the CPU allows it ([`super::multi`]: BLAKE3
    /// on AVX2, for encodings of one block).
    pub fn leaves(&mut self, edges: &[EdgeRef<'_>], out: &mut Vec<LeafHash>) {
        let key = match self.hasher.edge_leaf_key() {
            Some(key) if multi::available() => *key,
            _ => {
                out.extend(edges.iter().map(|e| self.leaf(*e)));
                return;
            }
        };
        let mut groups = edges.chunks_exact(multi::LANES);
        let mut blocks = multi::Blocks::default();
        for group in groups.by_ref() {
            let start = out.len();
            let mut long = [false; multi::LANES];
            for (lane, e) in group.iter().enumerate() {
                self.buf.clear();
                encode_edge(e.publisher, e.subscriber, e.state, &mut self.buf);
                long[lane] = self.buf.len() > multi::MAX_INPUT;
                if !long[lane] {
                    blocks.set(lane, &self.buf);
                }
            }
            let hashes = multi::keyed_hash_8(&key, &blocks).expect("available, checked above");
            out.extend(hashes.iter().map(|h| LeafHash(*h)));
            for (lane, e) in group.iter().enumerate() {
                if long[lane] {
                    out[start + lane] = self.leaf(*e);
                }
            }
        }
        out.extend(groups.remainder().iter().map(|e| self.leaf(*e)));
    }
}

/// The items of `items` with their leaves computed by [`EdgeHasher::leaves`], a batch at a
/// time.
fn with_leaves<'a, 'h, K, I>(
    eh: &'h mut EdgeHasher,
    mut items: I,
) -> impl Iterator<Item = (K, LeafHash)> + 'h
where
    K: 'h,
    'a: 'h,
    I: Iterator<Item = (K, EdgeRef<'a>)> + 'h,
{
    const BATCH: usize = 64;
    let mut keys: Vec<K> = Vec::with_capacity(BATCH);
    let mut refs: Vec<EdgeRef<'a>> = Vec::with_capacity(BATCH);
    let mut leaves: Vec<LeafHash> = Vec::with_capacity(BATCH);
    let mut ready: std::vec::IntoIter<(K, LeafHash)> = Vec::new().into_iter();
    std::iter::from_fn(move || {
        if let Some(next) = ready.next() {
            return Some(next);
        }
        for (k, e) in items.by_ref().take(BATCH) {
            keys.push(k);
            refs.push(e);
        }
        leaves.clear();
        eh.leaves(&refs, &mut leaves);
        refs.clear();
        ready = keys
            .drain(..)
            .zip(leaves.iter().copied())
            .collect::<Vec<_>>()
            .into_iter();
        ready.next()
    })
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
        let set =
            DigestSet::build_expecting(tree, expected, with_leaves(&mut eh, edges.into_iter()));
        EdgeDigest { hasher: eh, set }
    }

    /// Builds the digest of edges whose leaves are already computed (`leaf` of each edge under
    /// this pair's keys, as [`Self::leaf`] gives it), in a tree of the given depth: the same
    /// digest, buckets in the same order, as inserting them one by one.
    pub fn from_leaves(
        hasher: PairHasher,
        depth: u8,
        leaves: impl IntoIterator<Item = (K, LeafHash)>,
    ) -> EdgeDigest<K> {
        let tree = BucketTree::new(hasher.algo(), depth);
        EdgeDigest {
            hasher: EdgeHasher::new(hasher),
            set: DigestSet::build(tree, leaves),
        }
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

    /// Adds an edge (not already present) by its leaf, computed by the caller with
    /// [`Self::leaf`]: [`Self::insert`] without hashing again.
    pub fn insert_leaf(&mut self, key: K, leaf: &LeafHash) {
        self.set.insert(key, leaf);
    }

    /// Removes an edge by its leaf, computed by the caller with [`Self::leaf`]:
    /// [`Self::remove`] without hashing again.
    pub fn remove_leaf(&mut self, key: &K, leaf: &LeafHash) -> bool {
        self.set.remove(key, leaf)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlgo;

    /// Batches of every length up to 20 mixing one-block encodings with longer ones (which
    /// the batch path hands back to the one-at-a-time hash), for both algorithms: the same
    /// leaves as [`EdgeHasher::leaf`].
    #[test]
    fn batched_leaves_equal_single_leaves() {
        let names: Vec<String> = (0..40)
            .map(|i| {
                let node = "x".repeat(if i % 3 == 0 { 40 } else { 1 + i % 7 });
                format!("{node}{i}@{}.example", if i % 2 == 0 { "a" } else { "b" })
            })
            .collect();
        for algo in HashAlgo::ALL {
            let mut eh = EdgeHasher::new(PairHasher::new(algo, "a.example", "b.example"));
            for n in 0..=20 {
                let edges: Vec<EdgeRef<'_>> = (0..n)
                    .map(|i| EdgeRef {
                        publisher: &names[i],
                        subscriber: &names[(i * 7 + 3) % names.len()],
                        state: if i % 4 == 0 {
                            EdgeState::Pending
                        } else {
                            EdgeState::Subscribed
                        },
                    })
                    .collect();
                let mut batched = Vec::new();
                eh.leaves(&edges, &mut batched);
                let single: Vec<LeafHash> = edges.iter().map(|e| eh.leaf(*e)).collect();
                assert_eq!(batched, single, "{algo}, {n} edges");
            }
        }
    }
}
