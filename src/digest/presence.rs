//! Presence digests: a server's published presence towards one peer, or its cache of the
//! peer's (XEP §Presence Digests).

use jid::BareJid;

use super::hash::{LeafHash, PairHasher, ShortId};
use super::map::DigestMap;
use super::node::NodeValue;
use super::prefix::Prefix;
use super::tree::BucketTree;
use crate::model::presence::{PublisherPresence, encode_key, encode_leaf};

/// Digest of a presence map (publisher → presence); an unavailable publisher is absent.
#[derive(Clone, Debug)]
pub struct PresenceDigest {
    hasher: PairHasher,
    map: DigestMap<BareJid>,
    buf: Vec<u8>,
}

impl PresenceDigest {
    /// An empty digest of the given depth.
    pub fn new(hasher: PairHasher, depth: u8) -> PresenceDigest {
        let map = DigestMap::new(BucketTree::new(hasher.algo(), depth));
        PresenceDigest {
            hasher,
            map,
            buf: Vec::with_capacity(256),
        }
    }

    /// The tree.
    pub fn tree(&self) -> &BucketTree {
        self.map.tree()
    }

    /// Number of available publishers.
    pub fn len(&self) -> u64 {
        self.map.len()
    }

    /// True if no publisher is available.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The placement hash of a publisher.
    pub fn placement(&mut self, publisher: &BareJid) -> u64 {
        self.buf.clear();
        encode_key(publisher, &mut self.buf);
        self.hasher.presence_placement(&self.buf)
    }

    /// The leaf hash of a publisher with its presence.
    pub fn leaf(&mut self, publisher: &BareJid, presence: &PublisherPresence) -> LeafHash {
        self.buf.clear();
        encode_leaf(publisher, presence, &mut self.buf);
        self.hasher.presence_leaf(&self.buf)
    }

    /// Records the presence of `publisher`; an unavailable presence removes it. O(depth).
    /// Returns true if the digest changed.
    pub fn set(&mut self, publisher: &BareJid, presence: &PublisherPresence) -> bool {
        let before = *self.map.tree().root();
        self.upsert(publisher, presence);
        *self.map.tree().root() != before
    }

    /// Records the presence of `publisher` like [`Self::set`] and returns the short id of its
    /// new entry (`None` when the presence is unavailable and the entry is gone).
    pub fn upsert(&mut self, publisher: &BareJid, presence: &PublisherPresence) -> Option<ShortId> {
        let placement = self.placement(publisher);
        if presence.is_unavailable() {
            self.map.remove(publisher, placement);
            return None;
        }
        let leaf = self.leaf(publisher, presence);
        self.map.upsert(publisher.clone(), placement, leaf);
        Some(leaf.short_id())
    }

    /// Removes `publisher` (it became unavailable). Returns true if it was present.
    pub fn remove(&mut self, publisher: &BareJid) -> bool {
        let placement = self.placement(publisher);
        self.map.remove(publisher, placement).is_some()
    }

    /// Removes every entry (a void epoch) keeping the depth.
    pub fn clear(&mut self) {
        self.map = DigestMap::new(BucketTree::new(self.hasher.algo(), self.map.tree().depth()));
    }

    /// Publishers and short ids under `prefix`, sorted by short id.
    pub fn entries_under(&self, prefix: Prefix) -> Vec<(&BareJid, ShortId)> {
        self.map.entries_under(prefix)
    }

    /// The node value at any prefix down to 8 nibbles (XEP PS-15).
    pub fn node_value(&self, prefix: Prefix) -> NodeValue {
        self.map.node_value(prefix)
    }

    /// Changes the tree depth: O(n).
    pub fn set_depth(&mut self, depth: u8) {
        self.map.set_depth(depth);
    }
}
