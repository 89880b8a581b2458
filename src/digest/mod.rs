//! Merkle-hashed bucket digests (XEP §Digests).
pub mod hash;
pub mod prefix;

pub use hash::{Fingerprint, HashAlgo, LeafHash, PairHasher, ShortId};
pub use prefix::Prefix;
