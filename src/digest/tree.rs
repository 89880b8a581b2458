//! The bucket tree: node values of every prefix down to a chosen depth (XEP §Bucket Tree).
//!
//! Level `l` has `16^l` nodes, stored densely; the leaves (level `depth`) are the buckets.
//! Adding or removing an item updates the `depth + 1` nodes on its path. Fanout is fixed at 16
//! by the protocol; depth is a local choice ([`depth_for`]), because prefixes name the same node
//! in trees of any depth.

use super::hash::{Fingerprint, HashAlgo, LeafHash};
use super::node::NodeValue;
use super::prefix::{FANOUT, MAX_DEPTH, Prefix};

/// The deepest tree this implementation builds on its own (16^6 = 16.7M buckets).
pub const MAX_AUTO_DEPTH: u8 = 6;

/// Average items per bucket aimed at by [`depth_for`].
pub const TARGET_BUCKET_ITEMS: u64 = 32;

/// The depth this implementation uses for a set of `n` items: the smallest depth at which
/// buckets hold at most [`TARGET_BUCKET_ITEMS`] items on average, capped at
/// [`MAX_AUTO_DEPTH`]. (10^5 items: 3; 10^6: 4; 10^7: 5.)
pub fn depth_for(n: u64) -> u8 {
    let mut depth = 0u8;
    while depth < MAX_AUTO_DEPTH && n > TARGET_BUCKET_ITEMS << (4 * depth as u32) {
        depth += 1;
    }
    depth
}

/// Node values for every prefix of length `0..=depth`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketTree {
    algo: HashAlgo,
    depth: u8,
    levels: Vec<Vec<NodeValue>>,
}

impl BucketTree {
    /// An empty tree of the given depth (at most [`MAX_DEPTH`]; memory is 40 bytes × 16^depth).
    pub fn new(algo: HashAlgo, depth: u8) -> BucketTree {
        assert!(depth <= MAX_DEPTH, "depth {depth} exceeds {MAX_DEPTH}");
        let levels = (0..=depth)
            .map(|l| vec![NodeValue::EMPTY; 1 << (4 * l as u32)])
            .collect();
        BucketTree {
            algo,
            depth,
            levels,
        }
    }

    /// Hash algorithm of the fingerprints.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    /// Depth of the leaves (buckets).
    pub fn depth(&self) -> u8 {
        self.depth
    }

    /// Number of buckets (16^depth).
    pub fn buckets(&self) -> usize {
        self.levels[self.depth as usize].len()
    }

    /// Bucket index of a placement hash.
    pub fn bucket_of(&self, placement: u64) -> usize {
        Prefix::of_hash(placement, self.depth).bits() as usize
    }

    /// The prefix of bucket `index`.
    pub fn bucket_prefix(&self, index: usize) -> Prefix {
        Prefix::new(index as u32, self.depth).expect("bucket index below 16^depth")
    }

    /// The indexes of the buckets under `prefix`; for a prefix deeper than the tree, the one
    /// bucket that contains it (callers filter its items by placement).
    pub fn buckets_under(&self, prefix: Prefix) -> std::ops::Range<usize> {
        if prefix.len() <= self.depth {
            let shift = 4 * (self.depth - prefix.len()) as u32;
            let start = (prefix.bits() as usize) << shift;
            start..start + (1usize << shift)
        } else {
            let b = prefix.truncate(self.depth).bits() as usize;
            b..b + 1
        }
    }

    /// Adds a leaf on the path of `placement`: O(depth).
    pub fn add(&mut self, placement: u64, leaf: &LeafHash) {
        let mut idx = self.bucket_of(placement);
        for level in self.levels.iter_mut().rev() {
            level[idx].add(leaf);
            idx >>= 4;
        }
    }

    /// Removes a leaf from the path of `placement`: O(depth).
    pub fn remove(&mut self, placement: u64, leaf: &LeafHash) {
        let mut idx = self.bucket_of(placement);
        for level in self.levels.iter_mut().rev() {
            level[idx].remove(leaf);
            idx >>= 4;
        }
    }

    /// Adds a leaf to a bucket only, leaving inner nodes stale until [`Self::rebuild_inner`]
    /// (for bulk builds: one node update per item instead of `depth + 1`).
    pub fn add_to_bucket(&mut self, bucket: usize, leaf: &LeafHash) {
        self.levels[self.depth as usize][bucket].add(leaf);
    }

    /// Hints the CPU to load bucket `bucket`'s node value into cache (bulk builds issue this a
    /// few items ahead of [`Self::add_to_bucket`], since scattering into 10^5+ buckets is
    /// bound by memory latency, not hashing). A no-op on other architectures.
    #[inline]
    pub fn prefetch_bucket(&self, bucket: usize) {
        prefetch_ptr(&self.levels[self.depth as usize][bucket]);
    }

    /// Recomputes every inner node from the buckets.
    pub fn rebuild_inner(&mut self) {
        for l in (0..self.depth as usize).rev() {
            let (upper, lower) = self.levels.split_at_mut(l + 1);
            let (parents, children) = (&mut upper[l], &lower[0]);
            for (i, parent) in parents.iter_mut().enumerate() {
                let mut v = NodeValue::EMPTY;
                for child in &children[i * FANOUT..(i + 1) * FANOUT] {
                    v.merge(child);
                }
                *parent = v;
            }
        }
    }

    /// The value of the node at `prefix`; `None` if the prefix is deeper than this tree.
    pub fn node(&self, prefix: Prefix) -> Option<&NodeValue> {
        self.levels
            .get(prefix.len() as usize)
            .map(|level| &level[prefix.bits() as usize])
    }

    /// The root value (sum and count of the whole set).
    pub fn root(&self) -> &NodeValue {
        &self.levels[0][0]
    }

    /// The fingerprint of the node at `prefix`, if the tree reaches that deep.
    pub fn fingerprint(&self, prefix: Prefix) -> Option<Fingerprint> {
        self.node(prefix).map(|v| v.fingerprint(self.algo))
    }

    /// The fingerprints of the 16 children of `prefix` (the content of a `<split/>`), if the
    /// tree has a level below it.
    pub fn child_fingerprints(&self, prefix: Prefix) -> Option<[Fingerprint; FANOUT]> {
        if prefix.len() >= self.depth {
            return None;
        }
        let level = &self.levels[prefix.len() as usize + 1];
        let first = (prefix.bits() as usize) * FANOUT;
        Some(std::array::from_fn(|i| {
            level[first + i].fingerprint(self.algo)
        }))
    }

    /// The prefixes, at the shallower of the two depths, of every node whose value differs
    /// between `self` and `other`, found by descending only into differing nodes. Empty when the
    /// roots are equal. Both trees must use the same algorithm and placement.
    pub fn diff(&self, other: &BucketTree) -> Vec<Prefix> {
        let depth = self.depth.min(other.depth);
        let mut frontier = vec![Prefix::ROOT];
        for level in 0..=depth {
            frontier.retain(|p| self.node(*p) != other.node(*p));
            if level == depth || frontier.is_empty() {
                break;
            }
            frontier = frontier
                .iter()
                .flat_map(|p| (0..FANOUT as u8).map(move |i| p.child(i).expect("above max depth")))
                .collect();
        }
        frontier
    }

    /// Bytes of memory held by the node arrays.
    pub fn memory_bytes(&self) -> usize {
        self.levels
            .iter()
            .map(|l| l.capacity() * std::mem::size_of::<NodeValue>())
            .sum()
    }
}

/// Prefetch hint for the cache line at `ptr` (x86-64 only; elsewhere nothing). Any address is
/// allowed, even one past the end of an allocation: a prefetch never faults.
#[inline]
pub(crate) fn prefetch_ptr<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86-64 baseline, so the instruction exists; a prefetch is
        // only a hint: it never faults and reads nothing into the program.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_choice() {
        assert_eq!(depth_for(0), 0);
        assert_eq!(depth_for(32), 0);
        assert_eq!(depth_for(33), 1);
        assert_eq!(depth_for(100_000), 3);
        assert_eq!(depth_for(1_000_000), 4);
        assert_eq!(depth_for(10_000_000), 5);
        assert_eq!(depth_for(u64::MAX), MAX_AUTO_DEPTH);
    }

    #[test]
    fn bulk_build_equals_incremental() {
        let leaves: Vec<LeafHash> = (0u32..500)
            .map(|i| LeafHash(*blake3::hash(&i.to_le_bytes()).as_bytes()))
            .collect();
        let mut inc = BucketTree::new(HashAlgo::Blake3, 2);
        let mut bulk = BucketTree::new(HashAlgo::Blake3, 2);
        for l in &leaves {
            inc.add(l.placement(), l);
            bulk.add_to_bucket(bulk.bucket_of(l.placement()), l);
        }
        bulk.rebuild_inner();
        assert_eq!(inc, bulk);
        assert_eq!(inc.root().count(), 500);
        for l in &leaves {
            inc.remove(l.placement(), l);
        }
        assert_eq!(inc, BucketTree::new(HashAlgo::Blake3, 2));
    }
}
