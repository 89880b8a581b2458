//! Reduced presence states (XEP §Items, PS-41): every item a server publishes fits, with the
//! stanza around it, within the effective max-bytes of the session. When a presence state
//! would be too large, the published state is a reduced one: extension elements are dropped
//! first, largest first, then `<status/>` texts, largest first, until the item fits. The
//! reduced state *is* the published state: it is hashed, compared and sent like any other, so
//! the peer caches and shows exactly it, and its users see less of that one publisher
//! instead of the synchronization of the pair failing.
//!
//! Measuring an item exactly means serialising it; [`size_bound`] is a cheap upper bound
//! (no allocation) that settles almost every state, and only states above it are measured.

use jid::BareJid;
use minidom::{Element, Node};

use super::budget::ENVELOPE_BYTES;
use crate::model::PublisherPresence;
use crate::wire::{Item, Limits, MAX_PAYLOAD_DEPTH, WireElement};

/// The nesting depth of a payload (1 for an element without children), measured without
/// recursion.
pub fn payload_depth(e: &Element) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    deepest
}

/// `state` without the extension payloads nested deeper than a peer accepts (XEP §Items,
/// [`MAX_PAYLOAD_DEPTH`]): what a server publishes of a local user whose client sent one.
pub fn shallow(mut state: PublisherPresence) -> PublisherPresence {
    for rp in state.resources.values_mut() {
        rp.extensions
            .retain(|e| payload_depth(e) <= MAX_PAYLOAD_DEPTH);
    }
    state
}

/// The largest item (its serialised `<item/>`, in bytes) that fits a stanza of `max_bytes`:
/// what is left after the iq and `<batch/>` or `<reconcile/>` around it.
pub fn item_limit(max_bytes: u32) -> usize {
    (max_bytes as usize).saturating_sub(ENVELOPE_BYTES)
}

/// The smallest [`item_limit`] of any session (max-bytes is at least 4096): a state whose
/// [`size_bound`] is within it never needs reducing.
pub fn min_item_limit() -> usize {
    item_limit(*Limits::MAX_BYTES.start())
}

/// Worst-case growth of text written in XML (`&quot;` for `"`).
const ESCAPE: usize = 6;

fn element_bound(e: &Element) -> usize {
    let mut n = 2 * e.name().len() + ESCAPE * e.ns().len() + 24;
    for ((ns, name), value) in e.attrs().iter() {
        // A namespaced attribute may need a prefix declaration of its own.
        n += ESCAPE * ns.as_str().len() + name.len() + ESCAPE * value.len() + 24;
    }
    for node in e.nodes() {
        n += match node {
            Node::Element(c) => element_bound(c),
            Node::Text(t) => ESCAPE * t.len(),
        };
    }
    n
}

/// An upper bound of the serialised size of the item of `publisher` with `state`, computed
/// without serialising.
pub fn size_bound(publisher: &BareJid, state: &PublisherPresence) -> usize {
    let jid = publisher.as_str().len();
    let mut n = 64 + ESCAPE * jid;
    for (resource, rp) in &state.resources {
        // <presence xmlns='jabber:server' from='jid/resource'>, show, priority.
        n += 96 + ESCAPE * (jid + 1 + resource.len());
        for (lang, text) in &rp.statuses {
            n += 48 + ESCAPE * (lang.len() + text.len());
        }
        n += rp.extensions.iter().map(element_bound).sum::<usize>();
    }
    n + state
        .except
        .iter()
        .map(|e| 32 + ESCAPE * e.as_str().len())
        .sum::<usize>()
}

/// The exact serialised size of the item of `publisher` with `state` (`usize::MAX` if it
/// cannot be built: a resource that is not a JID resourcepart).
pub fn item_size(publisher: &BareJid, state: &PublisherPresence) -> usize {
    Item::from_model(publisher, state)
        .ok()
        .and_then(|i| i.to_xml_bytes().ok())
        .map_or(usize::MAX, |b| b.len())
}

/// True if the item of `publisher` with `state` is at most `limit` bytes.
pub fn fits(publisher: &BareJid, state: &PublisherPresence, limit: usize) -> bool {
    size_bound(publisher, state) <= limit || item_size(publisher, state) <= limit
}

/// The state to publish for `publisher` when items may not exceed `limit` bytes (PS-41):
/// `state` if its item fits; otherwise `state` without its extension elements, largest
/// (serialised) first, then without its status texts, largest first, each removed only
/// while the item does not fit. Ties go to the first resource, then the first language or
/// position. A state made only of resources without statuses or extensions is returned as
/// it is reduced so far, even if it still does not fit (the XEP allows no further reduction;
/// no client produces such a state).
pub fn reduce(publisher: &BareJid, state: &PublisherPresence, limit: usize) -> PublisherPresence {
    let mut out = state.clone();
    while !fits(publisher, &out, limit) {
        if !drop_largest_extension(&mut out) && !drop_largest_status(&mut out) {
            break;
        }
    }
    out
}

fn drop_largest_extension(state: &mut PublisherPresence) -> bool {
    let mut best: Option<(usize, String, usize)> = None;
    for (resource, rp) in &state.resources {
        for (i, e) in rp.extensions.iter().enumerate() {
            let size = String::from(e).len();
            if best.as_ref().is_none_or(|(s, _, _)| size > *s) {
                best = Some((size, resource.clone(), i));
            }
        }
    }
    let Some((_, resource, i)) = best else {
        return false;
    };
    if let Some(rp) = state.resources.get_mut(&resource) {
        rp.extensions.remove(i);
    }
    true
}

fn drop_largest_status(state: &mut PublisherPresence) -> bool {
    let mut best: Option<(usize, String, String)> = None;
    for (resource, rp) in &state.resources {
        for (lang, text) in &rp.statuses {
            if best.as_ref().is_none_or(|(s, _, _)| text.len() > *s) {
                best = Some((text.len(), resource.clone(), lang.clone()));
            }
        }
    }
    let Some((_, resource, lang)) = best else {
        return false;
    };
    if let Some(rp) = state.resources.get_mut(&resource) {
        rp.statuses.remove(&lang);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResourcePresence;

    fn jid() -> BareJid {
        BareJid::new("juliet@a.example").unwrap()
    }

    fn state(statuses: &[(&str, usize)], extensions: &[usize]) -> PublisherPresence {
        let mut p = PublisherPresence::default();
        let rp = ResourcePresence {
            statuses: statuses
                .iter()
                .map(|(l, n)| ((*l).to_owned(), "s".repeat(*n)))
                .collect(),
            extensions: extensions
                .iter()
                .map(|n| {
                    Element::builder("x", "urn:example")
                        .append("e".repeat(*n))
                        .build()
                })
                .collect(),
            ..ResourcePresence::default()
        };
        p.resources.insert("balcony".into(), rp);
        p.resources
            .insert("phone".into(), ResourcePresence::default());
        p
    }

    #[test]
    fn the_bound_is_an_upper_bound() {
        for s in [
            state(&[], &[]),
            state(&[("", 10), ("en", 3000)], &[5, 500]),
            state(&[("fr", 70_000)], &[]),
        ] {
            assert!(size_bound(&jid(), &s) >= item_size(&jid(), &s));
        }
    }

    #[test]
    fn small_states_are_unchanged() {
        let s = state(&[("", 100)], &[50]);
        assert_eq!(reduce(&jid(), &s, item_limit(4096)), s);
    }

    #[test]
    fn extensions_go_first_then_the_largest_statuses() {
        let limit = item_limit(4096);
        // The large extension alone is too much: it goes, the statuses stay.
        let s = state(&[("", 100), ("en", 200)], &[20, 5000]);
        let r = reduce(&jid(), &s, limit);
        assert_eq!(r.resources["balcony"].extensions.len(), 1);
        assert_eq!(r.resources["balcony"].statuses.len(), 2);
        // A huge status: every extension goes first (even small ones), then the huge status;
        // the small status stays.
        let s = state(&[("", 100_000), ("en", 5)], &[20]);
        let r = reduce(&jid(), &s, limit);
        assert!(r.resources["balcony"].extensions.is_empty());
        assert_eq!(
            r.resources["balcony"].statuses.keys().collect::<Vec<_>>(),
            ["en"]
        );
        assert!(item_size(&jid(), &r) <= limit);
        assert!(r.resources.contains_key("phone"));
    }
}
