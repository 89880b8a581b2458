//! Presence of a publisher, and its canonical encoding for hashing (XEP §Canonical Encodings).
//!
//! A publisher's presence as the peer caches it is the set of its available resources (each
//! with show, priority, statuses by language and extension payloads such as XEP-0115 caps) plus
//! the `except` list: subscribers of the peer domain the publisher has blocked (XEP-0191), who
//! must not receive it even though the peer's fan-out would otherwise reach them. A publisher
//! without available resources is simply absent from the presence map ("unavailable").
//!
//! The canonical encoding is versioned and independent of insertion order, so two servers that
//! hold equal presence hash it equally.

use std::collections::{BTreeMap, BTreeSet};

use jid::BareJid;
use minidom::{Element, Node};

use super::edge::ENCODING_VERSION;
use crate::model::encoding::put_lp;

/// Kind byte of a presence-key encoding (the publisher alone, for bucket placement).
pub const KIND_PRESENCE_KEY: u8 = 0x02;
/// Kind byte of a presence-leaf encoding (publisher and presence).
pub const KIND_PRESENCE_LEAF: u8 = 0x03;

/// The `<show/>` of an available presence (RFC 6121 §4.7.2.1); `Available` when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Show {
    /// No `<show/>`: plainly available.
    #[default]
    Available,
    /// `away`
    Away,
    /// `chat`
    Chat,
    /// `dnd`
    Dnd,
    /// `xa`
    Xa,
}

impl Show {
    /// The byte used in the canonical encoding.
    pub fn byte(self) -> u8 {
        match self {
            Show::Available => 0,
            Show::Away => 1,
            Show::Chat => 2,
            Show::Dnd => 3,
            Show::Xa => 4,
        }
    }
}

/// Presence of one available resource.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResourcePresence {
    /// Availability sub-state.
    pub show: Show,
    /// Priority (RFC 6121 §4.7.2.3, -128..=127).
    pub priority: i8,
    /// Status texts by `xml:lang` (`""` for none).
    pub statuses: BTreeMap<String, String>,
    /// Extension payloads carried with the presence (e.g. XEP-0115 `<c/>`).
    pub extensions: Vec<Element>,
}

/// The presence of one publisher as published to one peer domain.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct PublisherPresence {
    /// Available resources by resource part.
    pub resources: BTreeMap<String, ResourcePresence>,
    /// Subscribers in the peer domain that must not receive this presence (blocked by the
    /// publisher, XEP-0191).
    pub except: BTreeSet<BareJid>,
}

impl PublisherPresence {
    /// True if no resource is available (the publisher is absent from the presence map).
    pub fn is_unavailable(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Appends the canonical presence-key encoding: `0x00 0x02 lp(publisher)`.
pub fn encode_key(publisher: &BareJid, out: &mut Vec<u8>) {
    out.push(ENCODING_VERSION);
    out.push(KIND_PRESENCE_KEY);
    put_lp(out, publisher.as_str().as_bytes());
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    let n = u32::try_from(n).expect("canonical lists are below 2^32 entries");
    out.extend_from_slice(&n.to_be_bytes());
}

/// Appends the canonical presence-leaf encoding of `publisher` with `presence`
/// (XEP §Canonical Encodings): resources sorted by name; statuses sorted by language;
/// extensions sorted by their canonical bytes; except list sorted.
pub fn encode_leaf(publisher: &BareJid, presence: &PublisherPresence, out: &mut Vec<u8>) {
    out.push(ENCODING_VERSION);
    out.push(KIND_PRESENCE_LEAF);
    put_lp(out, publisher.as_str().as_bytes());
    put_count(out, presence.resources.len());
    for (resource, rp) in &presence.resources {
        put_lp(out, resource.as_bytes());
        out.push(rp.show.byte());
        out.push(rp.priority as u8);
        put_count(out, rp.statuses.len());
        for (lang, text) in &rp.statuses {
            put_lp(out, lang.as_bytes());
            put_lp(out, text.as_bytes());
        }
        let mut exts: Vec<Vec<u8>> = rp
            .extensions
            .iter()
            .map(|e| {
                let mut v = Vec::new();
                encode_element(e, &mut v);
                v
            })
            .collect();
        exts.sort();
        put_count(out, exts.len());
        for e in exts {
            out.extend_from_slice(&e);
        }
    }
    put_count(out, presence.except.len());
    for jid in &presence.except {
        put_lp(out, jid.as_str().as_bytes());
    }
}

/// Appends the canonical encoding of an XML element: `'E' lp(ns) lp(name) u32(#attrs)
/// [lp(name) lp(value)]* u32(#children) [child]*`, attributes sorted by name (a namespaced
/// attribute is named `{ns}name`), children in document order, text as `'T' lp(text)`,
/// whitespace-only text omitted.
pub fn encode_element(e: &Element, out: &mut Vec<u8>) {
    out.push(b'E');
    put_lp(out, e.ns().as_bytes());
    put_lp(out, e.name().as_bytes());
    let mut attrs: Vec<(String, &str)> = e
        .attrs()
        .iter()
        .map(|((ns, name), value)| {
            let ns = ns.as_str();
            let name = if ns.is_empty() {
                name.to_string()
            } else {
                format!("{{{ns}}}{name}")
            };
            (name, value.as_str())
        })
        .collect();
    attrs.sort();
    put_count(out, attrs.len());
    for (name, value) in attrs {
        put_lp(out, name.as_bytes());
        put_lp(out, value.as_bytes());
    }
    // Adjacent text nodes are one text; whitespace-only texts are dropped (XEP §Canonical
    // Encodings), so that how a parser split or indented the payload does not matter.
    enum Child<'a> {
        Element(&'a Element),
        Text(String),
    }
    let mut children: Vec<Child<'_>> = Vec::new();
    for node in e.nodes() {
        match node {
            Node::Element(c) => children.push(Child::Element(c)),
            Node::Text(t) => match children.last_mut() {
                Some(Child::Text(prev)) => prev.push_str(t),
                _ => children.push(Child::Text(t.clone())),
            },
        }
    }
    children.retain(|c| !matches!(c, Child::Text(t) if t.trim().is_empty()));
    put_count(out, children.len());
    for child in children {
        match child {
            Child::Element(c) => encode_element(c, out),
            Child::Text(t) => {
                out.push(b'T');
                put_lp(out, t.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn leaf(p: &PublisherPresence) -> Vec<u8> {
        let mut v = Vec::new();
        encode_leaf(&jid("juliet@a.example"), p, &mut v);
        v
    }

    #[test]
    fn encoding_is_exact() {
        let mut p = PublisherPresence::default();
        p.resources.insert(
            "balcony".into(),
            ResourcePresence {
                show: Show::Away,
                priority: -1,
                ..Default::default()
            },
        );
        let mut want = vec![0x00, 0x03, 0, 0, 0, 16];
        want.extend_from_slice(b"juliet@a.example");
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        want.extend_from_slice(b"balcony");
        want.extend_from_slice(&[1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(leaf(&p), want);
    }

    #[test]
    fn attribute_order_and_whitespace_do_not_matter() {
        let a: Element =
            "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
                .parse()
                .unwrap();
        let b: Element =
            "<c xmlns='http://jabber.org/protocol/caps' ver='v' node='n' hash='sha-1'>\n </c>"
                .parse()
                .unwrap();
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_element(&a, &mut ea);
        encode_element(&b, &mut eb);
        assert_eq!(ea, eb);
        let c: Element =
            "<c xmlns='http://jabber.org/protocol/caps' ver='w' node='n' hash='sha-1'/>"
                .parse()
                .unwrap();
        let mut ec = Vec::new();
        encode_element(&c, &mut ec);
        assert_ne!(ea, ec);
    }

    #[test]
    fn adjacent_texts_are_one_text() {
        let mut split = Element::builder("photo", "vcard-temp:x:update").build();
        split.append_text_node("ab");
        split.append_text_node("cd");
        let whole: Element = "<photo xmlns='vcard-temp:x:update'>abcd</photo>"
            .parse()
            .unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_element(&split, &mut a);
        encode_element(&whole, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn every_field_changes_the_encoding() {
        let mut base = PublisherPresence::default();
        base.resources
            .insert("r".into(), ResourcePresence::default());
        type Change = Box<dyn Fn(&mut PublisherPresence)>;
        let variants: Vec<Change> = vec![
            Box::new(|p| p.resources.get_mut("r").unwrap().show = Show::Dnd),
            Box::new(|p| p.resources.get_mut("r").unwrap().priority = 5),
            Box::new(|p| {
                p.resources
                    .get_mut("r")
                    .unwrap()
                    .statuses
                    .insert(String::new(), "x".into());
            }),
            Box::new(|p| {
                p.resources
                    .get_mut("r")
                    .unwrap()
                    .extensions
                    .push("<x xmlns='urn:x'/>".parse().unwrap());
            }),
            Box::new(|p| {
                p.except.insert(jid("tybalt@b.example"));
            }),
            Box::new(|p| {
                p.resources.insert("s".into(), ResourcePresence::default());
            }),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut p = base.clone();
            change(&mut p);
            assert_ne!(leaf(&p), leaf(&base), "variant {i}");
        }
    }
}
