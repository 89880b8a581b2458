//! Hash functions and the values they produce (XEP §Digests, "Hashing").
//!
//! Every hash in the protocol goes through [`PairHasher`], built once per (hash algorithm,
//! domain pair). It derives one key per purpose from the pair, so that
//!
//! - edge leaves, presence keys and presence leaves are domain-separated (an edge can never hash
//!   like a presence entry), and
//! - bucket placement is keyed: it is stable for the two domains but cannot be chosen by a third
//!   party that does not know which pair the items belong to in advance.
//!
//! The algorithm is an enum, not a generic, so that the peer's choice can be honoured at run
//! time: BLAKE3 is the default, SHA-256 the mandatory-to-implement fallback (XEP §Hash Agility).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// Context string of edge leaves.
pub const CTX_EDGE_LEAF: &str = "urn:xmpp:presence-sync:0 edge leaf";
/// Context string of the placement hash of a presence key (the publisher's bare JID).
pub const CTX_PRESENCE_KEY: &str = "urn:xmpp:presence-sync:0 presence key";
/// Context string of presence leaves (publisher and its presence).
pub const CTX_PRESENCE_LEAF: &str = "urn:xmpp:presence-sync:0 presence leaf";
/// Context string of node fingerprints.
pub const CTX_FINGERPRINT: &str = "urn:xmpp:presence-sync:0 fingerprint";

/// A hash algorithm both servers can use, named as in the XEP-0300 registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HashAlgo {
    /// BLAKE3 (`blake3`), the default; registered for XEP-0300 by this XEP.
    #[default]
    Blake3,
    /// SHA-256 (`sha-256`), mandatory to implement.
    Sha256,
}

impl HashAlgo {
    /// All algorithms this implementation supports, most preferred first.
    pub const ALL: [HashAlgo; 2] = [HashAlgo::Blake3, HashAlgo::Sha256];

    /// The XEP-0300 name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Blake3 => "blake3",
            HashAlgo::Sha256 => "sha-256",
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The text is not the name of a supported hash algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHashAlgo(pub String);

impl fmt::Display for UnknownHashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported hash algorithm {:?}", self.0)
    }
}

impl std::error::Error for UnknownHashAlgo {}

impl FromStr for HashAlgo {
    type Err = UnknownHashAlgo;
    fn from_str(s: &str) -> Result<HashAlgo, UnknownHashAlgo> {
        match s {
            "blake3" => Ok(HashAlgo::Blake3),
            "sha-256" => Ok(HashAlgo::Sha256),
            other => Err(UnknownHashAlgo(other.to_owned())),
        }
    }
}

/// The 256-bit hash of one item (an edge, or a publisher with its presence).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafHash(pub [u8; 32]);

impl LeafHash {
    /// Where the item sits in a tree whose placement is the leaf itself (edge sets): the first
    /// eight bytes, big-endian, so that the leading nibbles of the hash are the prefix.
    pub fn placement(&self) -> u64 {
        u64::from_be_bytes(self.0[..8].try_into().expect("8 of 32 bytes"))
    }

    /// The short identifier of the item used in item lists (bytes 24..32, disjoint from the
    /// placement bytes so that items of one bucket still differ in all 64 bits).
    pub fn short_id(&self) -> ShortId {
        ShortId(self.0[24..].try_into().expect("8 of 32 bytes"))
    }
}

impl fmt::Debug for LeafHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeafHash({})", hex(&self.0[..8]))
    }
}

/// The 128-bit fingerprint of a tree node as exchanged on the wire: a hash of the node's sum
/// and count, truncated to 16 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex(&self.0))
    }
}

/// The 64-bit short identifier of an item (see [`LeafHash::short_id`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortId(pub [u8; 8]);

impl fmt::Debug for ShortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShortId({})", hex(&self.0))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub use crate::model::encoding::put_lp;

/// The pair material keys are derived from: `lp(lo) || lp(hi)`, the two domains sorted
/// byte-wise.
pub fn pair_material(a: &str, b: &str) -> Vec<u8> {
    let (lo, hi) = if a.as_bytes() <= b.as_bytes() {
        (a, b)
    } else {
        (b, a)
    };
    let mut pair = Vec::with_capacity(8 + lo.len() + hi.len());
    put_lp(&mut pair, lo.as_bytes());
    put_lp(&mut pair, hi.as_bytes());
    pair
}

/// Per-pair keys of one hash algorithm: computes every hash of the protocol for the items
/// exchanged between two given domains.
#[derive(Clone)]
pub struct PairHasher {
    algo: HashAlgo,
    edge_leaf: [u8; 32],
    presence_key: [u8; 32],
    presence_leaf: [u8; 32],
}

impl fmt::Debug for PairHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairHasher")
            .field("algo", &self.algo)
            .finish_non_exhaustive()
    }
}

impl PairHasher {
    /// Keys for the pair `{a, b}` (order does not matter: both servers get the same keys).
    /// The domains must be the normalised domain parts of the two servers' JIDs.
    pub fn new(algo: HashAlgo, a: &str, b: &str) -> PairHasher {
        let pair = pair_material(a, b);
        let key = |ctx: &str| -> [u8; 32] {
            match algo {
                HashAlgo::Blake3 => blake3::derive_key(ctx, &pair),
                HashAlgo::Sha256 => {
                    let mut h = Sha256::new();
                    h.update(ctx.as_bytes());
                    h.update([0u8]);
                    h.update(&pair);
                    h.finalize().into()
                }
            }
        };
        PairHasher {
            algo,
            edge_leaf: key(CTX_EDGE_LEAF),
            presence_key: key(CTX_PRESENCE_KEY),
            presence_leaf: key(CTX_PRESENCE_LEAF),
        }
    }

    /// The three derived keys (edge leaf, presence key, presence leaf), for checking the
    /// XEP's test vectors.
    pub fn derived_keys(&self) -> [[u8; 32]; 3] {
        [self.edge_leaf, self.presence_key, self.presence_leaf]
    }

    /// The full keyed hash of a presence key encoding (its first 8 bytes are the placement).
    pub fn presence_key_hash(&self, canonical_key: &[u8]) -> [u8; 32] {
        self.keyed(&self.presence_key, canonical_key)
    }

    /// The edge-leaf key when the algorithm is BLAKE3 (whose keyed hash takes it as is), for
    /// hashing several edges at once ([`super::multi`]).
    pub(crate) fn edge_leaf_key(&self) -> Option<&[u8; 32]> {
        (self.algo == HashAlgo::Blake3).then_some(&self.edge_leaf)
    }

    /// The algorithm in use.
    pub fn algo(&self) -> HashAlgo {
        self.algo
    }

    fn keyed(&self, key: &[u8; 32], input: &[u8]) -> [u8; 32] {
        match self.algo {
            HashAlgo::Blake3 => *blake3::keyed_hash(key, input).as_bytes(),
            HashAlgo::Sha256 => {
                let mut h = Sha256::new();
                h.update(key);
                h.update(input);
                h.finalize().into()
            }
        }
    }

    /// Leaf hash of an edge, from its canonical encoding (see `model::Edge::encode`).
    pub fn edge_leaf(&self, canonical: &[u8]) -> LeafHash {
        LeafHash(self.keyed(&self.edge_leaf, canonical))
    }

    /// Placement of a presence entry: the first 8 bytes (big-endian) of the keyed hash of the
    /// canonical encoding of its key (the publisher's bare JID).
    pub fn presence_placement(&self, canonical_key: &[u8]) -> u64 {
        let h = self.presence_key_hash(canonical_key);
        u64::from_be_bytes(h[..8].try_into().expect("8 of 32 bytes"))
    }

    /// Leaf hash of a presence entry, from the canonical encoding of publisher and presence.
    pub fn presence_leaf(&self, canonical: &[u8]) -> LeafHash {
        LeafHash(self.keyed(&self.presence_leaf, canonical))
    }

    /// Fingerprint of a node from its sum (256-bit little-endian) and item count.
    pub fn fingerprint(&self, sum: &[u8; 32], count: u64) -> Fingerprint {
        fingerprint(self.algo, sum, count)
    }
}

/// Fingerprint of a node (not keyed: it only condenses sum and count).
pub fn fingerprint(algo: HashAlgo, sum: &[u8; 32], count: u64) -> Fingerprint {
    let full: [u8; 32] = match algo {
        HashAlgo::Blake3 => {
            let mut h = blake3::Hasher::new_derive_key(CTX_FINGERPRINT);
            h.update(sum);
            h.update(&count.to_le_bytes());
            *h.finalize().as_bytes()
        }
        HashAlgo::Sha256 => {
            let mut h = Sha256::new();
            h.update(CTX_FINGERPRINT.as_bytes());
            h.update([0u8]);
            h.update(sum);
            h.update(count.to_le_bytes());
            h.finalize().into()
        }
    };
    Fingerprint(full[..16].try_into().expect("16 of 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_keys_are_symmetric_and_separated() {
        for algo in HashAlgo::ALL {
            let ab = PairHasher::new(algo, "a.example", "b.example");
            let ba = PairHasher::new(algo, "b.example", "a.example");
            let ac = PairHasher::new(algo, "a.example", "c.example");
            let input = b"same bytes";
            assert_eq!(ab.edge_leaf(input), ba.edge_leaf(input));
            assert_ne!(ab.edge_leaf(input), ac.edge_leaf(input));
            assert_ne!(ab.edge_leaf(input), ab.presence_leaf(input));
        }
        let b3 = PairHasher::new(HashAlgo::Blake3, "a", "b");
        let s2 = PairHasher::new(HashAlgo::Sha256, "a", "b");
        assert_ne!(b3.edge_leaf(b"x"), s2.edge_leaf(b"x"));
    }

    #[test]
    fn algo_names() {
        for algo in HashAlgo::ALL {
            assert_eq!(algo.name().parse::<HashAlgo>().unwrap(), algo);
        }
        assert!("md5".parse::<HashAlgo>().is_err());
    }

    #[test]
    fn short_id_and_placement_are_disjoint() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0xab;
        bytes[31] = 0x01;
        let leaf = LeafHash(bytes);
        assert_eq!(leaf.placement() >> 56, 0xab);
        assert_eq!(leaf.short_id().0[7], 0x01);
    }
}
