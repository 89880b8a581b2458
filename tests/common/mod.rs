//! Shared by `tests/xep_examples.rs` and `tests/schema.rs`: extracting the examples of the XEP
//! and round-tripping the elements of our namespace they contain.
#![allow(dead_code)]

pub mod strategies;

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use minidom::{Element, Node};
use presence_sync::wire::{Except, FeatureHash, ReconcileEntry, Root, ServerNs, SyncElement, ns};
use xmpp_parsers::iq::Iq;
use xmpp_parsers::message::Message;
use xmpp_parsers::presence::Presence;
use xso::{AsXml, FromXml};

/// The XEP document.
pub fn xep_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("xep")
        .join("presence-sync.xml")
}

/// The XML Schema of the XEP.
pub fn xsd_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("xep")
        .join("presence-sync.xsd")
}

/// The local fixture the tests are also run against (so that they never depend on the XEP
/// alone for coverage of the extraction code).
pub fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("xep-examples.xml")
}

/// One `<example/>` of a XEP document.
#[derive(Debug, Clone)]
pub struct Example {
    /// 1-based position in the document.
    pub index: usize,
    /// Its caption (empty if none).
    pub caption: String,
    /// The example's XML text (CDATA content, or unescaped text).
    pub text: String,
}

impl Example {
    /// `example 3 ("Hello")`, for messages.
    pub fn label(&self) -> String {
        format!("example {} ({:?})", self.index, self.caption)
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        let key = format!("{name}={quote}");
        if let Some(start) = tag.find(&key) {
            let rest = &tag[start + key.len()..];
            let end = rest.find(quote)?;
            return Some(unescape(&rest[..end]));
        }
    }
    None
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Every `<example>` of a XEP document, in document order.
pub fn extract_examples(xep: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut rest = xep;
    while let Some(start) = rest.find("<example") {
        let after = &rest[start..];
        // `<example` followed by a tag end or whitespace (not `<examples>`).
        let next = after[8..].chars().next();
        if !matches!(next, Some('>' | ' ' | '\n' | '\t' | '\r')) {
            rest = &after[8..];
            continue;
        }
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let tag = &after[..tag_end];
        let Some(close) = after.find("</example>") else {
            break;
        };
        let body = &after[tag_end + 1..close];
        let text = match (body.find("<![CDATA["), body.rfind("]]>")) {
            (Some(s), Some(e)) if s < e => body[s + 9..e].to_owned(),
            _ => unescape(body),
        };
        examples.push(Example {
            index: examples.len() + 1,
            caption: attribute(tag, "caption").unwrap_or_default(),
            text,
        });
        rest = &after[close + 10..];
    }
    examples
}

fn strip_between(text: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(s) = rest.find(open) {
        out.push_str(&rest[..s]);
        match rest[s..].find(close) {
            Some(e) => rest = &rest[s + e + close.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The example's XML as one element: comments and XML declarations removed, unclosed
/// `<stream:stream>` headers dropped, wrapped in a root that declares `jabber:server` as the
/// default namespace and the usual stream prefixes.
pub fn example_tree(example: &Example) -> Result<Element, String> {
    let text = strip_between(&example.text, "<!--", "-->");
    let mut text = strip_between(&text, "<?xml", "?>");
    if text.contains("<stream:stream") && !text.contains("</stream:stream>") {
        text = strip_between(&text, "<stream:stream", ">");
    }
    let wrapped = format!(
        "<examples xmlns='{}' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback'>{text}</examples>",
        ns::JABBER_SERVER
    );
    wrapped
        .parse::<Element>()
        .map_err(|e| format!("{}: not well-formed XML: {e}", example.label()))
}

/// The elements of our namespace not nested in another one of ours, with the element that
/// contains each (the wrapper for top-level ones).
pub fn our_elements(root: &Element) -> Vec<(&Element, &Element)> {
    fn walk<'a>(parent: &'a Element, out: &mut Vec<(&'a Element, &'a Element)>) {
        for child in parent.children() {
            if child.ns() == ns::PRESENCE_SYNC {
                out.push((child, parent));
            } else {
                walk(child, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

/// The stanzas (children of the wrapper in `jabber:server`) of an example.
pub fn stanzas(root: &Element) -> Vec<&Element> {
    root.children()
        .filter(|c| c.ns() == ns::JABBER_SERVER)
        .collect()
}

/// Parses a `jabber:server` stanza with xmpp-parsers (through [`ServerNs`]).
pub fn parse_stanza(stanza: &Element) -> Result<(), String> {
    let result = match stanza.name() {
        "iq" => xso::transform::<ServerNs<Iq>, _>(stanza).map(|_| ()),
        "message" => xso::transform::<ServerNs<Message>, _>(stanza).map(|_| ()),
        "presence" => xso::transform::<ServerNs<Presence>, _>(stanza).map(|_| ()),
        _ => return Ok(()),
    };
    result.map_err(|e| format!("<{}/> stanza does not parse: {e}", stanza.name()))
}

/// Text of an element for messages.
pub fn show(element: &Element) -> String {
    String::from(element)
}

/// Drops whitespace-only text and the default forms the crate writes differently
/// (`state='subscribed'` on an edge, `<priority>0</priority>` in a presence), so that two
/// trees can be compared for XML equivalence.
pub fn canonical(element: &Element) -> Element {
    let mut out = Element::builder(element.name(), element.ns()).build();
    *out.attrs_mut() = element.attrs().clone();
    if element.ns() == ns::PRESENCE_SYNC
        && element.name() == "edge"
        && element.attr("state") == Some("subscribed")
    {
        out.attrs_mut()
            .remove(xso::exports::rxml::Namespace::none(), "state");
    }
    for node in element.nodes() {
        match node {
            Node::Text(t) if t.trim().is_empty() => {}
            Node::Text(t) => out.append_text_node(t.clone()),
            Node::Element(child) => {
                let default_priority = element.name() == "presence"
                    && child.name() == "priority"
                    && child.ns() == element.ns()
                    && child.text() == "0";
                if !default_priority {
                    out.append_child(canonical(child));
                }
            }
        }
    }
    out
}

fn round_trip_as<T: FromXml + AsXml + PartialEq + Debug>(
    element: &Element,
    parse: impl Fn(&Element) -> Result<T, String>,
) -> Result<Element, String> {
    let value = parse(element)?;
    let written: Element =
        xso::transform(&value).map_err(|e| format!("cannot serialise {value:?}: {e}"))?;
    let again =
        parse(&written).map_err(|e| format!("re-parsing {} failed: {e}", show(&written)))?;
    if again != value {
        return Err(format!(
            "round trip changed the value: {value:?} became {again:?}"
        ));
    }
    Ok(written)
}

fn transform<T: FromXml>(element: &Element) -> Result<T, String> {
    xso::transform(element).map_err(|e| e.to_string())
}

/// Parses an element of our namespace with the crate (as a top-level element, or as one of
/// the child-only elements standing alone), serialises it, re-parses it, and checks that the
/// value is unchanged and the serialised form is XML-equivalent to the original. Returns the
/// serialised element.
pub fn round_trip(element: &Element) -> Result<Element, String> {
    let written = match element.name() {
        "split" | "ids" | "lack" | "gone" | "edge" => {
            round_trip_as::<ReconcileEntry>(element, transform)?
        }
        "root" => round_trip_as::<Root>(element, transform)?,
        "hash" => round_trip_as::<FeatureHash>(element, transform)?,
        "except" => round_trip_as::<Except>(element, transform)?,
        _ => round_trip_as::<SyncElement>(element, |e| match SyncElement::parse_element(e) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(format!("<{}/> is not an element of the protocol", e.name())),
            Err(err) => Err(err.to_string()),
        })?,
    };
    let (a, b) = (canonical(element), canonical(&written));
    if a != b {
        return Err(format!(
            "serialised form differs from the original:\n  original: {}\n  written:  {}",
            show(&a),
            show(&b)
        ));
    }
    Ok(written)
}
