//! A presence set with its digest (XEP §Sets and Roles): a server's published set towards one
//! peer, or its cache of the peer's published set. Both sides need the same things: the
//! presence of each publisher, the digest over it, and the way back from a short id to the
//! publisher it names.

use std::collections::{BTreeMap, HashMap};

use jid::BareJid;

use crate::digest::descent::DescentView;
use crate::digest::{
    Fingerprint, HashAlgo, NodeValue, PairHasher, Prefix, PresenceDigest, ShortId,
};
use crate::model::PublisherPresence;

/// Publisher → presence, with the digest and a short-id index. Unavailable publishers are
/// absent.
#[derive(Clone, Debug)]
pub struct PresenceSet {
    digest: PresenceDigest,
    states: BTreeMap<BareJid, (PublisherPresence, ShortId)>,
    by_id: HashMap<ShortId, BareJid>,
}

impl PresenceSet {
    /// An empty set whose tree has the given depth.
    pub fn new(hasher: PairHasher, depth: u8) -> PresenceSet {
        PresenceSet {
            digest: PresenceDigest::new(hasher, depth),
            states: BTreeMap::new(),
            by_id: HashMap::new(),
        }
    }

    /// Sets the presence of `publisher` (an unavailable presence removes it). Returns the
    /// previous presence, if it was available.
    pub fn set(
        &mut self,
        publisher: &BareJid,
        presence: PublisherPresence,
    ) -> Option<PublisherPresence> {
        let old = self.states.remove(publisher).map(|(p, id)| {
            self.by_id.remove(&id);
            p
        });
        if let Some(id) = self.digest.upsert(publisher, &presence) {
            self.by_id.insert(id, publisher.clone());
            self.states.insert(publisher.clone(), (presence, id));
        }
        old
    }

    /// Removes `publisher`, returning its presence if it was available.
    pub fn remove(&mut self, publisher: &BareJid) -> Option<PublisherPresence> {
        self.set(publisher, PublisherPresence::default())
    }

    /// Empties the set (a voided cache), keeping the tree depth.
    pub fn clear(&mut self) {
        self.digest.clear();
        self.states.clear();
        self.by_id.clear();
    }

    /// The presence of `publisher`, if available.
    pub fn get(&self, publisher: &BareJid) -> Option<&PublisherPresence> {
        self.states.get(publisher).map(|(p, _)| p)
    }

    /// The short id of `publisher`'s current entry.
    pub fn id_of(&self, publisher: &BareJid) -> Option<ShortId> {
        self.states.get(publisher).map(|(_, id)| *id)
    }

    /// The publisher whose current entry has short id `id`.
    pub fn publisher_of(&self, id: &ShortId) -> Option<&BareJid> {
        self.by_id.get(id)
    }

    /// All entries, by publisher.
    pub fn iter(&self) -> impl Iterator<Item = (&BareJid, &PublisherPresence)> {
        self.states.iter().map(|(j, (p, _))| (j, p))
    }

    /// Number of available publishers.
    pub fn len(&self) -> u64 {
        self.digest.len()
    }

    /// True if no publisher is available.
    pub fn is_empty(&self) -> bool {
        self.digest.is_empty()
    }

    /// The root fingerprint and count (the `<root/>` of a hello).
    pub fn root(&self) -> (Fingerprint, u64) {
        let v = self.digest.node_value(Prefix::ROOT);
        (v.fingerprint(self.digest.tree().algo()), v.count())
    }

    /// Number of entries under `prefix`.
    pub fn ids_under_count(&self, prefix: Prefix) -> usize {
        self.digest.node_value(prefix).count() as usize
    }

    /// Changes the depth of the tree (O(n); meant for an empty set about to be filled).
    pub fn set_depth(&mut self, depth: u8) {
        self.digest.set_depth(depth);
    }

    /// The digest.
    pub fn digest(&self) -> &PresenceDigest {
        &self.digest
    }

    /// The prefix (at `len` nibbles) of the bucket `publisher` is placed in.
    pub fn prefix_of(&mut self, publisher: &BareJid, len: u8) -> Prefix {
        Prefix::of_hash(self.digest.placement(publisher), len)
    }
}

impl DescentView for PresenceSet {
    fn algo(&self) -> HashAlgo {
        self.digest.tree().algo()
    }

    fn depth(&self) -> u8 {
        self.digest.tree().depth()
    }

    fn node(&self, prefix: Prefix) -> NodeValue {
        self.digest.node_value(prefix)
    }

    fn ids_under(&mut self, prefix: Prefix) -> Vec<ShortId> {
        self.digest
            .entries_under(prefix)
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }
}
