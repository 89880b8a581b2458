//! Between wire items and the model's presence state (XEP §Items, XEP §Canonical Encodings).
//!
//! An [`Item`] and a [`PublisherPresence`] hold the same information: per available resource
//! its show, priority, statuses by language and extension payloads, plus the except list. The
//! conversions are exact both ways, so the receiver of an item hashes exactly what the sender
//! hashed.

use jid::{BareJid, Jid};
use xmpp_parsers::message::Lang;
use xmpp_parsers::presence::{Presence, Show as WireShow};

use crate::model::{PublisherPresence, ResourcePresence, Show};
use crate::wire::item::{Except, Item};
use crate::wire::presence::ItemPresence;

/// The `<show/>` of a model availability (`None`: plainly available).
pub(crate) fn wire_show(show: Show) -> Option<WireShow> {
    match show {
        Show::Available => None,
        Show::Away => Some(WireShow::Away),
        Show::Chat => Some(WireShow::Chat),
        Show::Dnd => Some(WireShow::Dnd),
        Show::Xa => Some(WireShow::Xa),
    }
}

/// The model availability of a `<show/>` (absent: plainly available).
pub(crate) fn model_show(show: Option<&WireShow>) -> Show {
    match show {
        None => Show::Available,
        Some(WireShow::Away) => Show::Away,
        Some(WireShow::Chat) => Show::Chat,
        Some(WireShow::Dnd) => Show::Dnd,
        Some(WireShow::Xa) => Show::Xa,
    }
}

impl Item {
    /// The item carrying `presence` of `publisher` (resources in the model's order). Fails
    /// only if a resource name is not a valid JID resource.
    pub fn from_model(
        publisher: &BareJid,
        presence: &PublisherPresence,
    ) -> Result<Item, jid::Error> {
        let mut presences = Vec::with_capacity(presence.resources.len());
        for (resource, rp) in &presence.resources {
            let from = publisher.with_resource_str(resource)?;
            let mut p = Presence::available()
                .with_from(Jid::from(from))
                .with_priority(rp.priority);
            p.show = wire_show(rp.show);
            p.statuses = rp
                .statuses
                .iter()
                .map(|(l, t)| (Lang(l.clone()), t.clone()))
                .collect();
            p.payloads = rp.extensions.clone();
            presences.push(ItemPresence(p));
        }
        Ok(Item {
            jid: publisher.clone(),
            presences,
            excepts: presence
                .except
                .iter()
                .map(|jid| Except { jid: jid.clone() })
                .collect(),
        })
    }

    /// The model's presence state of the item's publisher (unavailable if no presence).
    /// Presences without a resource are skipped: parsing never yields them.
    pub fn to_model(&self) -> PublisherPresence {
        let mut out = PublisherPresence::default();
        for p in &self.presences {
            let Some(resource) = p.from.as_ref().and_then(|f| f.resource()) else {
                continue;
            };
            out.resources.insert(
                resource.as_str().to_owned(),
                ResourcePresence {
                    show: model_show(p.show.as_ref()),
                    priority: p.priority.0,
                    statuses: p
                        .statuses
                        .iter()
                        .map(|(l, t)| (l.0.clone(), t.clone()))
                        .collect(),
                    extensions: p.payloads.clone(),
                },
            );
        }
        out.except = self.excepts.iter().map(|e| e.jid.clone()).collect();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presence::encode_leaf;
    use crate::wire::WireElement;
    use minidom::Element;

    #[test]
    fn model_round_trip_keeps_the_leaf() {
        let juliet = BareJid::new("juliet@a.example").unwrap();
        let mut presence = PublisherPresence::default();
        presence.resources.insert(
            "balcony".into(),
            ResourcePresence {
                show: Show::Away,
                priority: -5,
                statuses: [
                    ("".into(), "gone fishing".into()),
                    ("fr".into(), "à la pêche".into()),
                ]
                .into_iter()
                .collect(),
                extensions: vec![
                    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
                        .parse::<Element>()
                        .unwrap(),
                ],
            },
        );
        presence
            .resources
            .insert("phone".into(), ResourcePresence::default());
        presence
            .except
            .insert(BareJid::new("tybalt@b.example").unwrap());

        let item = Item::from_model(&juliet, &presence).unwrap();
        let bytes = item.to_xml_bytes().unwrap();
        let received = Item::parse_bytes(&bytes).unwrap();
        assert_eq!(received, item);
        let back = received.to_model();
        assert_eq!(back, presence);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_leaf(&juliet, &presence, &mut a);
        encode_leaf(&received.jid, &back, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn unavailable() {
        let benvolio = BareJid::new("benvolio@a.example").unwrap();
        let item = Item::from_model(&benvolio, &PublisherPresence::default()).unwrap();
        assert_eq!(item, Item::unavailable(benvolio));
        assert!(item.to_model().is_unavailable());
    }
}
