//! The value of a tree node: an additive multiset hash (XEP §Bucket Tree).
//!
//! A node holds the sum modulo 2^256 of the leaf hashes below it and their count. Sums make
//! every update O(1) per node, independent of order, and let an inner node be the sum of its
//! children; the count is folded into the fingerprint so that sets whose sums collide by
//! accident still differ unless their sizes agree too. The construction is the one negentropy
//! uses for its range fingerprints. It is not collision resistant against someone who chooses
//! the items (see XEP §Security Considerations): digests are for synchronisation, not
//! authentication.

use super::hash::{Fingerprint, HashAlgo, LeafHash, fingerprint};

/// Sum of leaf hashes (mod 2^256, four little-endian 64-bit limbs) and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct NodeValue {
    sum: [u64; 4],
    count: u64,
}

fn limbs(leaf: &LeafHash) -> [u64; 4] {
    let b = &leaf.0;
    std::array::from_fn(|i| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes")))
}

fn add_limbs(a: &mut [u64; 4], b: &[u64; 4]) {
    let mut carry = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (s1, c1) = x.overflowing_add(*y);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        *x = s2;
        carry = c1 | c2;
    }
}

fn sub_limbs(a: &mut [u64; 4], b: &[u64; 4]) {
    let mut borrow = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(*y);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        *x = d2;
        borrow = b1 | b2;
    }
}

impl NodeValue {
    /// The value of an empty node.
    pub const EMPTY: NodeValue = NodeValue {
        sum: [0; 4],
        count: 0,
    };

    /// Number of items below the node.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True if no item is below the node.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The sum as 32 little-endian bytes (the form hashed into the fingerprint).
    pub fn sum_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.sum.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Adds one leaf.
    pub fn add(&mut self, leaf: &LeafHash) {
        add_limbs(&mut self.sum, &limbs(leaf));
        self.count += 1;
    }

    /// Removes one leaf (which must have been added).
    pub fn remove(&mut self, leaf: &LeafHash) {
        debug_assert!(self.count > 0, "removing from an empty node");
        sub_limbs(&mut self.sum, &limbs(leaf));
        self.count -= 1;
    }

    /// Adds every leaf of another node (used to build inner nodes from their children).
    pub fn merge(&mut self, other: &NodeValue) {
        add_limbs(&mut self.sum, &other.sum);
        self.count += other.count;
    }

    /// The wire fingerprint of this node under `algo`.
    pub fn fingerprint(&self, algo: HashAlgo) -> Fingerprint {
        fingerprint(algo, &self.sum_bytes(), self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_wraps_and_restores() {
        let big = LeafHash([0xff; 32]);
        let one = LeafHash({
            let mut b = [0; 32];
            b[0] = 1;
            b
        });
        let mut n = NodeValue::EMPTY;
        n.add(&big);
        n.add(&one);
        assert_eq!(n.sum_bytes(), [0; 32], "2^256 - 1 + 1 wraps to 0");
        assert_eq!(n.count(), 2);
        n.remove(&big);
        assert_eq!(n.sum_bytes(), one.0);
        n.remove(&one);
        assert_eq!(n, NodeValue::EMPTY);
    }

    #[test]
    fn count_is_part_of_the_fingerprint() {
        let mut a = NodeValue::EMPTY;
        a.add(&LeafHash([0; 32]));
        assert_eq!(a.sum_bytes(), NodeValue::EMPTY.sum_bytes());
        assert_ne!(
            a.fingerprint(HashAlgo::Blake3),
            NodeValue::EMPTY.fingerprint(HashAlgo::Blake3)
        );
    }
}
