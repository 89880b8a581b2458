//! A digest of a map whose entries are placed by a hash of their key (the presence map).
//!
//! The leaf of an entry covers key and value, so a changed value changes the leaf but not the
//! bucket. Each entry keeps its leaf hash, so updating or removing an entry needs only its key.

use super::hash::{LeafHash, ShortId};
use super::node::NodeValue;
use super::prefix::Prefix;
use super::tree::BucketTree;

#[derive(Clone, Debug)]
struct Entry<K> {
    key: K,
    placement: u64,
    leaf: LeafHash,
}

/// Tree plus per-bucket entries (key, placement, leaf).
#[derive(Clone, Debug)]
pub struct DigestMap<K> {
    tree: BucketTree,
    buckets: Vec<Vec<Entry<K>>>,
}

impl<K: Clone + Eq> DigestMap<K> {
    /// An empty map digest with the given tree.
    pub fn new(tree: BucketTree) -> DigestMap<K> {
        let buckets = (0..tree.buckets()).map(|_| Vec::new()).collect();
        DigestMap { tree, buckets }
    }

    /// The tree.
    pub fn tree(&self) -> &BucketTree {
        &self.tree
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree.root().count()
    }

    /// True if the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the entry of `key` (placed at `placement`) to `leaf`, replacing any previous leaf:
    /// O(depth + bucket size). Returns the previous leaf.
    pub fn upsert(&mut self, key: K, placement: u64, leaf: LeafHash) -> Option<LeafHash> {
        let b = self.tree.bucket_of(placement);
        let old = match self.buckets[b].iter_mut().find(|e| e.key == key) {
            Some(e) => Some(std::mem::replace(&mut e.leaf, leaf)),
            None => {
                self.buckets[b].push(Entry {
                    key,
                    placement,
                    leaf,
                });
                None
            }
        };
        if let Some(old) = &old {
            if *old == leaf {
                return Some(leaf);
            }
            self.tree.remove(placement, old);
        }
        self.tree.add(placement, &leaf);
        old
    }

    /// Removes the entry of `key`: O(depth + bucket size). Returns its leaf.
    pub fn remove(&mut self, key: &K, placement: u64) -> Option<LeafHash> {
        let b = self.tree.bucket_of(placement);
        let i = self.buckets[b].iter().position(|e| &e.key == key)?;
        let e = self.buckets[b].swap_remove(i);
        self.tree.remove(placement, &e.leaf);
        Some(e.leaf)
    }

    /// The leaf of `key`, if present.
    pub fn get(&self, key: &K, placement: u64) -> Option<&LeafHash> {
        self.buckets[self.tree.bucket_of(placement)]
            .iter()
            .find(|e| &e.key == key)
            .map(|e| &e.leaf)
    }

    /// Entries (key, short id) under `prefix`, sorted by short id.
    pub fn entries_under(&self, prefix: Prefix) -> Vec<(&K, ShortId)> {
        let range = self.tree.buckets_under(prefix);
        let mut out: Vec<(&K, ShortId)> = self.buckets[range]
            .iter()
            .flatten()
            .filter(|e| prefix.contains(Prefix::of_hash(e.placement, prefix.len())))
            .map(|e| (&e.key, e.leaf.short_id()))
            .collect();
        out.sort_unstable_by_key(|(_, id)| *id);
        out
    }

    /// The node value at any `prefix` down to [`MAX_DEPTH`](super::prefix::MAX_DEPTH) (XEP
    /// PS-15): from the tree within its depth, else summed from the entries of the bucket that
    /// contains the prefix.
    pub fn node_value(&self, prefix: Prefix) -> NodeValue {
        if let Some(v) = self.tree.node(prefix) {
            return *v;
        }
        let b = prefix.truncate(self.tree.depth()).bits() as usize;
        let mut v = NodeValue::EMPTY;
        for e in &self.buckets[b] {
            if prefix.contains(Prefix::of_hash(e.placement, prefix.len())) {
                v.add(&e.leaf);
            }
        }
        v
    }

    /// Rebuilds the tree at another depth: O(n).
    pub fn set_depth(&mut self, depth: u8) {
        let mut tree = BucketTree::new(self.tree.algo(), depth);
        let mut buckets: Vec<Vec<Entry<K>>> = (0..tree.buckets()).map(|_| Vec::new()).collect();
        for e in std::mem::take(&mut self.buckets).into_iter().flatten() {
            let b = tree.bucket_of(e.placement);
            tree.add_to_bucket(b, &e.leaf);
            buckets[b].push(e);
        }
        tree.rebuild_inner();
        *self = DigestMap { tree, buckets };
    }
}
