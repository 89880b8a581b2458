//! What the server writes on a stream besides stanzas (RFC 6120 §4): stream headers, stream
//! features, stream errors, the closing tag. Stanzas are minidom elements written with their
//! namespace declared on them, which is equivalent XML to inheriting the stream's.

use minidom::Element;

/// `http://etherx.jabber.org/streams`.
pub const STREAMS: &str = "http://etherx.jabber.org/streams";
/// `jabber:server`.
pub const SERVER: &str = "jabber:server";
/// `jabber:client`.
pub const CLIENT: &str = "jabber:client";
/// `jabber:server:dialback` (XEP-0220).
pub const DIALBACK: &str = "jabber:server:dialback";
/// The dialback stream feature (XEP-0220 §2.4).
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// `urn:ietf:params:xml:ns:xmpp-streams` (stream error conditions).
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// `urn:ietf:params:xml:ns:xmpp-sasl`.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// `urn:ietf:params:xml:ns:xmpp-bind`.
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// `urn:ietf:params:xml:ns:xmpp-tls`.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// `urn:ietf:params:xml:ns:xmpp-stanzas`.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Escapes `value` for an attribute in single quotes.
fn attr(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// A stream header (RFC 6120 §4.7) in `content` (`jabber:server` or `jabber:client`), with
/// `xmlns:db` declared on server streams (XEP-0220 §2.1).
pub fn header(content: &str, from: Option<&str>, to: Option<&str>, id: Option<&str>) -> String {
    let mut h =
        format!("<?xml version='1.0'?><stream:stream xmlns='{content}' xmlns:stream='{STREAMS}'");
    if content == SERVER {
        h.push_str(&format!(" xmlns:db='{DIALBACK}'"));
    }
    for (name, value) in [("from", from), ("to", to), ("id", id)] {
        if let Some(v) = value {
            h.push_str(&format!(" {name}='{}'", attr(v)));
        }
    }
    h.push_str(" version='1.0'>");
    h
}

/// `</stream:stream>`.
pub const CLOSE: &str = "</stream:stream>";

/// `<stream:features/>` with `children`.
pub fn features(children: Vec<Element>) -> Element {
    let mut f = el("features", STREAMS).build();
    for c in children {
        f.append_child(c);
    }
    f
}

/// A stream error (RFC 6120 §4.9) with `condition` and an optional text, followed by nothing:
/// the caller closes the stream after it.
pub fn stream_error(condition: &str, text: Option<&str>) -> Element {
    let mut e = el("error", STREAMS)
        .append(el(condition, STREAM_ERRORS).build())
        .build();
    if let Some(t) = text {
        e.append_child(el("text", STREAM_ERRORS).lang("en").append(t).build());
    }
    e
}

/// The bytes of `element` as written on a stream.
pub fn bytes(element: &Element) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail on I/O; minidom only fails on names it could not have
    // parsed or built.
    if element.write_to(&mut out).is_err() {
        out.clear();
    }
    out
}

/// A fresh random id (stream ids, dialback, generated resources): 16 hex digits.
pub fn random_id() -> String {
    let mut b = [0u8; 8];
    // The operating system's generator; an id needs no more than best effort.
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// True if `element` is `<stream:error/>`.
pub fn is_stream_error(element: &Element) -> bool {
    element.is("error", STREAMS)
}

/// The condition of a stream error.
pub fn stream_error_condition(element: &Element) -> Option<String> {
    element
        .children()
        .find(|c| c.ns() == STREAM_ERRORS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// An element under construction, with attribute names as plain strings (they are the
/// protocol's own, always valid names).
pub struct Builder(Element);

/// Starts an element `name` in namespace `ns`.
pub fn el(name: &str, ns: &str) -> Builder {
    Builder(Element::bare(name, ns))
}

/// Sets attribute `name` (no namespace) of `element`.
pub fn set(element: &mut Element, name: &'static str, value: impl Into<String>) {
    let name = rxml::NcName::try_from(name).expect("attribute names of the protocol are valid");
    element.set_attr(rxml::Namespace::NONE, name, value.into());
}

impl Builder {
    /// Sets attribute `name`.
    pub fn attr(mut self, name: &'static str, value: impl Into<String>) -> Builder {
        set(&mut self.0, name, value);
        self
    }

    /// Sets `xml:lang`.
    pub fn lang(mut self, lang: &str) -> Builder {
        let name = rxml::NcName::try_from("lang").expect("a valid name");
        self.0
            .set_attr(rxml::Namespace::xml().clone(), name, lang.to_owned());
        self
    }

    /// Appends a child element or text.
    pub fn append(mut self, node: impl Into<minidom::Node>) -> Builder {
        self.0.append_node(node.into());
        self
    }

    /// Appends every child.
    pub fn append_all(mut self, nodes: impl IntoIterator<Item = Element>) -> Builder {
        for n in nodes {
            self.0.append_child(n);
        }
        self
    }

    /// The element.
    pub fn build(self) -> Element {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamEvent, StreamLimits, StreamReader};

    #[test]
    fn header_and_features_read_back() {
        let mut r = StreamReader::new(StreamLimits::DEFAULT);
        let mut input = header(SERVER, Some("a.test"), Some("b.test"), Some("x1")).into_bytes();
        input.extend(bytes(&features(vec![
            el("dialback", DIALBACK_FEATURE).build(),
        ])));
        input.extend(bytes(&stream_error("host-unknown", Some("no such host"))));
        input.extend(CLOSE.as_bytes());
        let events = r.feed(&input).unwrap();
        let StreamEvent::Header(h) = &events[0] else {
            panic!()
        };
        assert_eq!(h.attr("id"), Some("x1"));
        let StreamEvent::Stanza(f) = &events[1] else {
            panic!()
        };
        assert!(f.is("features", STREAMS));
        assert!(f.has_child("dialback", DIALBACK_FEATURE));
        let StreamEvent::Stanza(e) = &events[2] else {
            panic!()
        };
        assert!(is_stream_error(e));
        assert_eq!(stream_error_condition(e).as_deref(), Some("host-unknown"));
        assert_eq!(events[3], StreamEvent::End);
    }
}
