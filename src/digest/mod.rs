//! Merkle-hashed bucket digests (XEP §Digests).
//!
//! Layers, bottom up: [`hash`] (algorithms, per-pair keys, leaf hashes, fingerprints),
//! [`node`] (additive node values), [`tree`] (all node values to a depth, O(depth) updates,
//! comparison), [`set`] and [`map`] (trees plus item lists), and the two protocol digests:
//! [`edges::EdgeDigest`] and [`presence::PresenceDigest`]. Edge leaves are hashed eight at a
//! time where the CPU allows it (`multi`: the same values as one at a time).
pub mod descent;
pub mod edges;
pub mod hash;
pub mod map;
mod multi;
pub mod node;
pub mod prefix;
pub mod presence;
pub mod set;
pub mod sketch;
pub mod tree;

pub use edges::{EdgeDigest, EdgeHasher, EdgeRef};
pub use hash::{Fingerprint, HashAlgo, LeafHash, PairHasher, ShortId};
pub use node::NodeValue;
pub use prefix::Prefix;
pub use presence::PresenceDigest;
pub use tree::{BucketTree, depth_for};
