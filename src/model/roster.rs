//! Rosters and block lists of local users (RFC 6121 §2, XEP-0191).

use std::collections::{BTreeMap, BTreeSet};

use jid::BareJid;

use super::subscription::Subscription;

/// One user's roster: contact → subscription state. Names and groups are not modelled: they
/// never affect presence routing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    items: BTreeMap<BareJid, Subscription>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Roster {
        Roster::default()
    }

    /// The state of the item for `contact`, if the roster has one.
    pub fn get(&self, contact: &BareJid) -> Option<&Subscription> {
        self.items.get(contact)
    }

    /// The state of the item for `contact`, creating a "None" item if needed (RFC 6121 §3.1.2:
    /// an outbound subscription request creates the item).
    pub fn entry(&mut self, contact: BareJid) -> &mut Subscription {
        self.items.entry(contact).or_default()
    }

    /// Sets the item for `contact`.
    pub fn set(&mut self, contact: BareJid, sub: Subscription) {
        self.items.insert(contact, sub);
    }

    /// Removes the item for `contact` (RFC 6121 §2.5), returning its last state.
    pub fn remove(&mut self, contact: &BareJid) -> Option<Subscription> {
        self.items.remove(contact)
    }

    /// All items, ordered by contact.
    pub fn iter(&self) -> impl Iterator<Item = (&BareJid, &Subscription)> {
        self.items.iter()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if the roster has no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// One user's block list (XEP-0191). An entry is a bare JID or a domain; blocking a contact
/// stops the user's presence reaching it and its presence reaching the user, whatever the
/// subscription says (XEP-0191 §3.3 and RFC 6121 §11 privacy rules).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockList {
    items: BTreeSet<BareJid>,
}

impl BlockList {
    /// An empty block list.
    pub fn new() -> BlockList {
        BlockList::default()
    }

    /// Blocks `jid` (a bare JID, or a domain-only JID to block a whole domain).
    pub fn block(&mut self, jid: BareJid) -> bool {
        self.items.insert(jid)
    }

    /// Unblocks `jid`.
    pub fn unblock(&mut self, jid: &BareJid) -> bool {
        self.items.remove(jid)
    }

    /// True if `contact` is blocked, by its bare JID or by its domain.
    pub fn blocks(&self, contact: &BareJid) -> bool {
        if self.items.is_empty() {
            return false;
        }
        if self.items.contains(contact) {
            return true;
        }
        contact.node().is_some()
            && self
                .items
                .contains(&BareJid::from_parts(None, contact.domain()))
    }

    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = &BareJid> {
        self.items.iter()
    }
}

/// Everything the server stores about one local user that survives a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// The user's roster.
    pub roster: Roster,
    /// The user's block list.
    pub blocked: BlockList,
}

impl Account {
    /// The presence state this user publishes to domain `peer` while its available
    /// resources are `resources` (XEP §Sets and Roles, PS-7 to PS-9): the resources and the
    /// except list (subscribed contacts at `peer` it blocks), if it has at least one
    /// subscriber there it does not block; `None` otherwise.
    pub fn published_to(
        &self,
        peer: &str,
        resources: &BTreeMap<String, super::ResourcePresence>,
    ) -> Option<super::PublisherPresence> {
        if resources.is_empty() {
            return None;
        }
        let mut entitled = false;
        let mut except = BTreeSet::new();
        for (c, sub) in self.roster.iter() {
            if c.domain().as_str() != peer || c.node().is_none() || !sub.from() {
                continue;
            }
            if self.blocked.blocks(c) {
                except.insert(c.clone());
            } else {
                entitled = true;
            }
        }
        entitled.then(|| super::PublisherPresence {
            resources: resources.clone(),
            except,
        })
    }

    /// True if presence of this user may flow to `contact` under RFC 6121 and XEP-0191: the
    /// contact has a subscription (`from`) and is not blocked.
    pub fn publishes_to(&self, contact: &BareJid) -> bool {
        self.roster.get(contact).is_some_and(Subscription::from) && !self.blocked.blocks(contact)
    }

    /// True if this user may see presence of `contact`: subscription `to`, and the contact is
    /// not blocked by the user.
    pub fn sees(&self, contact: &BareJid) -> bool {
        self.roster.get(contact).is_some_and(Subscription::to) && !self.blocked.blocks(contact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::subscription::NamedState;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    #[test]
    fn blocking_by_jid_and_domain() {
        let mut b = BlockList::new();
        assert!(!b.blocks(&jid("romeo@b.example")));
        b.block(jid("b.example"));
        assert!(b.blocks(&jid("romeo@b.example")));
        assert!(!b.blocks(&jid("romeo@c.example")));
        b.unblock(&jid("b.example"));
        b.block(jid("tybalt@b.example"));
        assert!(b.blocks(&jid("tybalt@b.example")));
        assert!(!b.blocks(&jid("romeo@b.example")));
    }

    #[test]
    fn publication_needs_subscription_and_no_block() {
        let mut a = Account::default();
        a.roster.set(
            jid("romeo@b.example"),
            Subscription::named(NamedState::Both),
        );
        a.roster.set(
            jid("nurse@b.example"),
            Subscription::named(NamedState::NonePendingIn),
        );
        assert!(a.publishes_to(&jid("romeo@b.example")));
        assert!(a.sees(&jid("romeo@b.example")));
        assert!(
            !a.publishes_to(&jid("nurse@b.example")),
            "pending requests get no presence"
        );
        a.blocked.block(jid("romeo@b.example"));
        assert!(!a.publishes_to(&jid("romeo@b.example")));
        assert!(!a.sees(&jid("romeo@b.example")));
    }
}
