//! Presence state on the wire: item, except and batch (XEP §Items, XEP §Batches).

use std::collections::HashSet;

use jid::BareJid;
use xso::error::Error;
use xso::{AsXml, FromXml};

use crate::model::Epoch;
use crate::wire::codec::BareJidAttr;
use crate::wire::malformed::Malformed;
use crate::wire::ns;
use crate::wire::presence::ItemPresence;

/// XEP §Items: `<except jid='...'/>`, a subscriber of the receiving domain whom the publisher
/// blocks (XEP-0191) and who must not receive the presence.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq, Hash)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "except", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Except {
    /// The excluded subscriber.
    #[xml(attribute(codec = BareJidAttr("except jid")))]
    pub jid: BareJid,
}

/// XEP §Items: the complete presence state of one publisher; absolute and idempotent, it
/// replaces the receiver's cached entry. No `<presence/>` means unavailable (remove).
///
/// Parsing guarantees that every `<presence/>` is an [`ItemPresence`] (qualified by
/// `jabber:server`, available, no attribute but a normalised `from`, distinct status
/// languages) from a full JID whose bare part is [`Item::jid`], and that resources and excepts
/// are unique. The domains of `jid` and of the excepts depend
/// on the session and are checked by validation (see [`super::WireElement::validate`]).
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "item",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Item::check
)]
pub struct Item {
    /// The publisher (bare JID of the sending domain).
    #[xml(attribute(codec = BareJidAttr("item jid")))]
    pub jid: BareJid,
    /// One available presence per resource.
    #[xml(child(n = ..))]
    pub presences: Vec<ItemPresence>,
    /// Subscribers who must not receive it.
    #[xml(child(n = ..))]
    pub excepts: Vec<Except>,
}

impl Item {
    /// The item of an unavailable publisher (no presence, no excepts).
    pub fn unavailable(jid: BareJid) -> Item {
        Item {
            jid,
            presences: Vec::new(),
            excepts: Vec::new(),
        }
    }

    /// True if the item says the publisher is unavailable.
    pub fn is_unavailable(&self) -> bool {
        self.presences.is_empty()
    }

    fn check(&mut self) -> Result<(), Error> {
        let bad = |reason: String| {
            Err(Error::text_parse_error(Malformed::Presence {
                jid: self.jid.to_string(),
                reason,
            }))
        };
        let mut resources = HashSet::new();
        for presence in &self.presences {
            let from = match &presence.from {
                None => return bad("no from".into()),
                Some(from) => from,
            };
            let Some(resource) = from.resource() else {
                return bad(format!("from {from} is not a full JID"));
            };
            if from.to_bare() != self.jid {
                return bad(format!("from {from} is not a resource of the item jid"));
            }
            if !resources.insert(resource.as_str()) {
                return Err(Error::text_parse_error(Malformed::Duplicate {
                    what: "resource",
                    key: from.to_string(),
                }));
            }
        }
        let mut excepts = HashSet::new();
        for except in &self.excepts {
            if !excepts.insert(&except.jid) {
                return Err(Error::text_parse_error(Malformed::Duplicate {
                    what: "except",
                    key: except.jid.to_string(),
                }));
            }
        }
        Ok(())
    }
}

/// XEP §Batches: an unsolicited push of items by the authoritative side (coalesced live
/// updates, or the bulk after a restart), in an `<iq type='set'/>` acknowledged by an empty
/// result. Parsing guarantees at least one item and each publisher at most once.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "batch",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Batch::check
)]
pub struct Batch {
    /// The sender's current epoch.
    #[xml(attribute)]
    pub epoch: Epoch,
    /// The items, at most max-items.
    #[xml(child(n = ..))]
    pub items: Vec<Item>,
}

impl Batch {
    fn check(&mut self) -> Result<(), Error> {
        if self.items.is_empty() {
            return Err(Error::text_parse_error(Malformed::Missing("<item/>")));
        }
        let mut seen = HashSet::new();
        for item in &self.items {
            if !seen.insert(&item.jid) {
                return Err(Error::text_parse_error(Malformed::Duplicate {
                    what: "item",
                    key: item.jid.to_string(),
                }));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Domains, Limits, WireElement, WireError};
    use minidom::Element;
    use xmpp_parsers::presence::Show;

    const ITEM: &str = "<item xmlns='urn:xmpp:presence-sync:0' jid='juliet@a.example'>\
        <presence xmlns='jabber:server' from='juliet@a.example/balcony'>\
        <show>away</show><status>gone fishing</status><priority>5</priority>\
        <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://a.example' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>\
        </presence>\
        <presence xmlns='jabber:server' from='juliet@a.example/phone'/>\
        <except jid='tybalt@b.example'/></item>";

    fn err(xml: &str) -> String {
        Item::parse_bytes(xml.as_bytes()).unwrap_err().to_string()
    }

    fn batch(items: &str) -> String {
        format!("<batch xmlns='urn:xmpp:presence-sync:0' epoch='0123456789abcdef'>{items}</batch>")
    }

    #[test]
    fn parse() {
        let item = Item::parse_bytes(ITEM.as_bytes()).unwrap();
        assert_eq!(item.jid.as_str(), "juliet@a.example");
        assert_eq!(item.presences.len(), 2);
        let balcony = &item.presences[0];
        assert_eq!(balcony.show, Some(Show::Away));
        assert_eq!(balcony.priority.0, 5);
        assert_eq!(balcony.statuses.values().next().unwrap(), "gone fishing");
        assert_eq!(balcony.payloads[0].name(), "c");
        assert_eq!(item.presences[1].priority.0, 0);
        assert_eq!(
            item.excepts,
            vec![Except {
                jid: BareJid::new("tybalt@b.example").unwrap()
            }]
        );
        assert!(!item.is_unavailable());
    }

    #[test]
    fn serialise() {
        let item = Item::parse_bytes(ITEM.as_bytes()).unwrap();
        assert_eq!(item.to_element().unwrap(), ITEM.parse::<Element>().unwrap());
        let empty = Item::unavailable(BareJid::new("benvolio@a.example").unwrap());
        assert_eq!(
            empty.to_element().unwrap(),
            "<item xmlns='urn:xmpp:presence-sync:0' jid='benvolio@a.example'/>"
                .parse::<Element>()
                .unwrap()
        );
    }

    #[test]
    fn bad_presence_children() {
        let from = "from='juliet@a.example/phone'";
        for (replacement, msg) in [
            ("", "no from"),
            (
                "from='juliet@a.example'",
                "from juliet@a.example is not a full JID",
            ),
            (
                "from='romeo@a.example/phone'",
                "from romeo@a.example/phone is not a resource of the item jid",
            ),
        ] {
            assert_eq!(
                err(&ITEM.replace(from, replacement)),
                format!("item: presence of juliet@a.example: {msg}"),
                "{replacement}"
            );
        }
        for (attrs, msg) in [
            ("type='unavailable'", "type='unavailable'"),
            ("to='romeo@b.example'", "to='romeo@b.example'"),
            ("id='x'", "id='x'"),
        ] {
            assert_eq!(
                err(&ITEM.replace(from, &format!("{from} {attrs}"))),
                format!("item: presence attribute {msg} not allowed (only from)")
            );
        }
        assert_eq!(
            err(&ITEM.replace(from, "from='juliet@a.example/Phone\u{0301}'")),
            format!(
                "item: presence from {:?} is not in normalized form ({:?})",
                "juliet@a.example/Phone\u{0301}", "juliet@a.example/Phon\u{e9}"
            )
        );
        assert_eq!(
            err(&ITEM.replace("/phone", "/balcony")),
            "item: duplicate resource juliet@a.example/balcony"
        );
        assert_eq!(
            err(&ITEM.replace(
                "<except jid='tybalt@b.example'/>",
                "<except jid='tybalt@b.example'/><except jid='tybalt@b.example'/>"
            )),
            "item: duplicate except tybalt@b.example"
        );
        assert_eq!(
            err(&ITEM.replace("<show>away</show>", "<show>online</show>")),
            "item: Invalid value for show."
        );
        assert_eq!(
            err(&ITEM.replace(
                "<presence xmlns='jabber:server' from='juliet@a.example/phone'/>",
                "<presence xmlns='jabber:client' from='juliet@a.example/phone'/>"
            )),
            "item: Unknown child in Item element."
        );
        assert_eq!(
            err(&ITEM.replace(
                "<except jid='tybalt@b.example'/>",
                "<except jid='tybalt@b.example' reason='x'/>"
            )),
            "item: Unknown attribute in Except element."
        );
    }

    #[test]
    fn batch_parse_and_check() {
        let xml = batch(&format!(
            "{ITEM}<item xmlns='urn:xmpp:presence-sync:0' jid='benvolio@a.example'/>"
        ));
        let b = Batch::parse_bytes(xml.as_bytes()).unwrap();
        assert_eq!(b.epoch, Epoch(0x0123456789abcdef));
        assert_eq!(b.items.len(), 2);
        assert_eq!(b.to_element().unwrap(), xml.parse::<Element>().unwrap());
        let twice = batch(&format!("{ITEM}{ITEM}"));
        assert_eq!(
            Batch::parse_bytes(twice.as_bytes())
                .unwrap_err()
                .to_string(),
            "batch: duplicate item juliet@a.example"
        );
        assert_eq!(
            Batch::parse_bytes(batch("").as_bytes())
                .unwrap_err()
                .to_string(),
            "batch: no <item/>"
        );
        let bad_epoch = xml.replace("0123456789abcdef", "123");
        assert_eq!(
            Batch::parse_bytes(bad_epoch.as_bytes())
                .unwrap_err()
                .to_string(),
            "batch: epoch \"123\" is not 16 lowercase hexadecimal digits"
        );
    }

    #[test]
    fn batch_validate() {
        let domains = Domains::new("b.example", "a.example").unwrap();
        let items: String = (0..5)
            .map(|i| format!("<item xmlns='urn:xmpp:presence-sync:0' jid='u{i}@a.example'/>"))
            .collect();
        let xml = batch(&items);
        let b = Batch::receive(xml.as_bytes(), &Limits::DEFAULT, &domains).unwrap();
        assert_eq!(b.items.len(), 5);
        let four = Limits {
            max_items: 4,
            ..Limits::DEFAULT
        };
        let e = Batch::receive(xml.as_bytes(), &four, &domains).unwrap_err();
        assert_eq!(e.to_string(), "batch: 5 items exceed max-items 4");
        let tiny = Limits {
            max_bytes: 100,
            ..Limits::DEFAULT
        };
        assert_eq!(
            Batch::receive(xml.as_bytes(), &tiny, &domains).unwrap_err(),
            WireError::TooLarge {
                element: "batch",
                bytes: xml.len(),
                max: 100
            }
        );
        let foreign = xml.replace("u3@a.example", "u3@c.example");
        assert_eq!(
            Batch::receive(foreign.as_bytes(), &Limits::DEFAULT, &domains)
                .unwrap_err()
                .to_string(),
            "batch: item jid u3@c.example is not in a.example"
        );
        let except = batch(&ITEM.replace("tybalt@b.example", "tybalt@a.example"));
        assert_eq!(
            Batch::receive(except.as_bytes(), &Limits::DEFAULT, &domains)
                .unwrap_err()
                .to_string(),
            "batch: except jid tybalt@a.example is not in b.example"
        );
    }
}
