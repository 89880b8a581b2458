//! A digest of a map whose entries are placed by a hash of their key (the presence map).
//!
//! The leaf of an entry covers key and value, so a changed value changes the leaf but not the
//! bucket. Each entry keeps its leaf hash, so updating or removing an entry needs only its key.
//! An index from key to position in its bucket makes finding an entry O(1) whatever the
//! bucket's size: a tree is sized when its set is created (a server's published set at boot,
//! with nobody online yet, has depth 0), so one bucket can hold every entry of a large set.

use std::collections::HashMap;
use std::hash::Hash;

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

/// Tree plus per-bucket entries (key, placement, leaf), and the position of each key's entry
/// in its bucket. A key must be given the same placement at every call (its keyed hash).
#[derive(Clone, Debug)]
pub struct DigestMap<K> {
    tree: BucketTree,
    buckets: Vec<Vec<Entry<K>>>,
    /// Key → index of its entry in `buckets[bucket_of(placement)]`. Only looked up, never
    /// iterated: the order of entries is the buckets' alone.
    index: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash> DigestMap<K> {
    /// An empty map digest with the given tree.
    pub fn new(tree: BucketTree) -> DigestMap<K> {
        let buckets = (0..tree.buckets()).map(|_| Vec::new()).collect();
        DigestMap {
            tree,
            buckets,
            index: HashMap::new(),
        }
    }

    /// The position of `key`'s entry in bucket `b` (where its placement puts it), if present.
    fn position(&self, key: &K, b: usize) -> Option<usize> {
        let i = *self.index.get(key)? as usize;
        debug_assert!(self.buckets[b][i].key == *key, "index out of step");
        Some(i)
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
        let old = match self.position(&key, b) {
            Some(i) => Some(std::mem::replace(&mut self.buckets[b][i].leaf, leaf)),
            None => {
                let i = u32::try_from(self.buckets[b].len()).expect("below 2^32 entries");
                self.index.insert(key.clone(), i);
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
        let i = self.position(key, b)?;
        self.index.remove(key);
        let e = self.buckets[b].swap_remove(i);
        if let Some(moved) = self.buckets[b].get(i) {
            // The bucket's last entry took the removed one's place.
            *self.index.get_mut(&moved.key).expect("indexed") = i as u32;
        }
        self.tree.remove(placement, &e.leaf);
        Some(e.leaf)
    }

    /// The leaf of `key`, if present.
    pub fn get(&self, key: &K, placement: u64) -> Option<&LeafHash> {
        let b = self.tree.bucket_of(placement);
        let i = self.position(key, b)?;
        Some(&self.buckets[b][i].leaf)
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
        let mut index = std::mem::take(&mut self.index);
        for e in std::mem::take(&mut self.buckets).into_iter().flatten() {
            let b = tree.bucket_of(e.placement);
            tree.add_to_bucket(b, &e.leaf);
            *index.get_mut(&e.key).expect("indexed") = buckets[b].len() as u32;
            buckets[b].push(e);
        }
        tree.rebuild_inner();
        *self = DigestMap {
            tree,
            buckets,
            index,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::HashAlgo;

    fn leaf(key: u32, version: u32) -> LeafHash {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&key.to_le_bytes());
        bytes[4..].copy_from_slice(&version.to_le_bytes());
        LeafHash(*blake3::hash(&bytes).as_bytes())
    }

    fn placement(key: u32) -> u64 {
        leaf(key, u32::MAX).placement()
    }

    /// Random upserts and removals in few buckets (many swaps inside one bucket), then a depth
    /// change, against a plain map: every lookup, and the tree equal to one built afresh.
    #[test]
    fn index_follows_swaps_and_depth_changes() {
        // Randomness from hashing the step number: the digest module has no generator.
        let rand = |step: u32, n: u64| placement(step.wrapping_add(1 << 31)) % n;
        let mut map = DigestMap::new(BucketTree::new(HashAlgo::Blake3, 1));
        let mut model = std::collections::BTreeMap::new();
        for step in 0..20_000u32 {
            let key = rand(step, 300) as u32;
            if rand(step ^ 0x5555, 3) == 0 {
                let had = model.remove(&key);
                assert_eq!(map.remove(&key, placement(key)), had);
            } else {
                let l = leaf(key, step);
                let had = model.insert(key, l);
                assert_eq!(map.upsert(key, placement(key), l), had);
            }
            if step == 10_000 {
                map.set_depth(2);
            }
        }
        for key in 0..300 {
            assert_eq!(map.get(&key, placement(key)), model.get(&key));
        }
        let mut fresh = BucketTree::new(HashAlgo::Blake3, 2);
        for (k, l) in &model {
            fresh.add(placement(*k), l);
        }
        assert_eq!(map.tree(), &fresh);
        assert_eq!(map.len(), model.len() as u64);
    }
}
