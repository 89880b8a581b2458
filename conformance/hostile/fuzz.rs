//! The bodies of the coverage-guided fuzz targets (`fuzz/`, run with `cargo fuzz`), kept in
//! the library so that `cargo test` replays their committed corpora on the stable toolchain
//! (`tests/fuzz_corpus.rs`). Each body panics exactly when an invariant breaks; any other
//! input, however malformed, returns.
//!
//! - [`wire`]: every element parser of the XEP, then validation, then a round trip: what
//!   parses serialises to something that parses to the same value.
//! - [`session`]: a [`Probe`] (one established session) fed a sequence of stanzas, each read
//!   through the bounded stream parser; after each, the probe's invariants
//!   ([`Probe::check`]).
//! - [`stream`]: the XML stream layer fed the input in chunks; its bounds hold at every step.

use std::cell::RefCell;
use std::collections::HashMap;

use minidom::Element;

use super::probe::{PEER, Probe, Setup};
use crate::stream::{StreamLimits, StreamReader, parse_element};
use crate::wire::{
    Batch, Condition, Domains, Fanout, Hello, Item, Limits, Reconcile, Repair, ShallowPresence,
    Shutdown, StreamFeature, SyncElement, WireElement,
};

/// Limits chosen by one byte: the defaults, the smallest, or the largest the XEP allows.
fn limits_of(b: u8) -> Limits {
    match b % 3 {
        0 => Limits::DEFAULT,
        1 => Limits {
            max_items: 1,
            max_bytes: 4096,
            window: 1,
            leaf_items: 1,
        },
        _ => Limits {
            max_items: 4096,
            max_bytes: 1_048_576,
            window: 64,
            leaf_items: 256,
        },
    }
}

fn round_trip<T: WireElement + PartialEq + std::fmt::Debug>(data: &[u8], limits: &Limits) {
    let Ok(value) = T::parse_bytes(data) else {
        return;
    };
    let domains = Domains::new("a.example", "b.example").expect("two domains");
    let _ = value.validate(limits, &domains);
    let bytes = value.to_xml_bytes().expect("a parsed value serialises");
    let again = T::parse_bytes(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} does not parse again: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
    // The serialisation is a fixed point. (Not the parsed values: the tokenizer may split one
    // text into adjacent text nodes, `a` and `>b`, which serialise to the same bytes and which
    // the canonical encoding of presence joins before hashing; found by the fuzzer.)
    let bytes_again = again.to_xml_bytes().expect("a parsed value serialises");
    assert_eq!(
        String::from_utf8_lossy(&bytes_again),
        String::from_utf8_lossy(&bytes),
        "round trip of {}",
        String::from_utf8_lossy(data)
    );
}

/// The `wire` target: byte 0 picks the element and the limits, the rest is its XML.
pub fn wire(data: &[u8]) {
    let Some((&selector, xml)) = data.split_first() else {
        return;
    };
    let limits = limits_of(selector >> 4);
    match selector % 10 {
        0 => round_trip::<Hello>(xml, &limits),
        1 => round_trip::<Reconcile>(xml, &limits),
        2 => round_trip::<Batch>(xml, &limits),
        3 => round_trip::<Item>(xml, &limits),
        4 => round_trip::<StreamFeature>(xml, &limits),
        5 => round_trip::<Fanout>(xml, &limits),
        6 => round_trip::<Repair>(xml, &limits),
        7 => round_trip::<Shutdown>(xml, &limits),
        8 => round_trip::<Condition>(xml, &limits),
        _ => {
            // The element path: a tree from the bounded stream parser, then every dispatch a
            // session makes on it.
            let Ok(element) = parse_element(xml, StreamLimits::DEFAULT) else {
                return;
            };
            let _ = SyncElement::parse_element(&element);
            for child in element.children() {
                let _ = SyncElement::parse_element(child);
            }
            if let Ok(p) = xso::transform::<ShallowPresence, _>(&element) {
                let domains = Domains::new("a.example", "b.example").expect("two domains");
                let _ = Fanout::check_presence(&p.0, &domains);
            }
        }
    }
}

/// Replaces the placeholders a corpus uses to reach states a blind fuzzer could not name:
/// `$E` the peer's epoch, `$S` the session's epoch, `$L` its domain, `$P` the peer's,
/// `$I` the id of its latest request.
fn expand(probe: &Probe, xml: &str) -> String {
    let latest = probe
        .sent
        .iter()
        .rev()
        .find(|s| s.name() == "iq" && s.attr("type") == Some("set"))
        .and_then(|s| s.attr("id"))
        .unwrap_or("none")
        .to_owned();
    xml.replace("$E", &probe.peer_epoch().to_string())
        .replace("$S", &probe.session.epoch().to_string())
        .replace("$L", probe.local())
        .replace("$P", PEER)
        .replace("$I", &latest)
}

thread_local! {
    /// Established probes by setup, made once and cloned for each input (building one
    /// costs a hello exchange and two digests: most of an input's time otherwise).
    static PROBES: RefCell<HashMap<u8, Probe>> = RefCell::new(HashMap::new());
}

/// A session established with the setup `flags` names (see [`session`]).
fn established(flags: u8) -> Probe {
    PROBES.with(|probes| {
        probes
            .borrow_mut()
            .entry(flags)
            .or_insert_with(|| {
                let config = crate::engine::Config {
                    // Keep the session alive through refusals, to reach deeper states.
                    max_failures: 1_000,
                    ..Default::default()
                };
                Probe::established(Setup {
                    driver: flags & 1 == 0,
                    peer_limits: limits_of((flags >> 1) & 3),
                    peer_published: if flags & 8 != 0 { 3_000 } else { 0 },
                    edges_differ: flags & 16 != 0,
                    edges: 300,
                    published: 100,
                    config,
                    ..Setup::default()
                })
            })
            .clone()
    })
}

/// The `session` target: byte 0 chooses the setup; then stanzas separated by NUL bytes, each
/// preceded by a byte that says how much time passes before it (its square in ms).
pub fn session(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut probe = established(flags & 0x1f);
    for segment in rest.split(|b| *b == 0).take(64) {
        let Some((&wait, xml)) = segment.split_first() else {
            continue;
        };
        let advance = u64::from(wait) * u64::from(wait) * 1_000;
        let Ok(text) = std::str::from_utf8(xml) else {
            continue;
        };
        let text = expand(&probe, text);
        let out = match parse_element(text.as_bytes(), StreamLimits::DEFAULT) {
            Ok(stanza) => probe.feed(&stanza, advance),
            Err(_) => {
                probe.now = probe.now.plus_micros(advance);
                probe.timers()
            }
        };
        if let Err(v) = probe.check(&out) {
            panic!("invariant broken: {} (after {text})", v.0);
        }
    }
}

/// The `stream` target: bytes 0 and 1 pick the chunk size and the limits; the rest is read as
/// a stream in chunks. The bounds hold after every chunk: no stanza longer or deeper than
/// allowed is ever delivered, and the reader never holds more than a stanza's worth.
pub fn stream(data: &[u8]) {
    let [chunk, small, rest @ ..] = data else {
        return;
    };
    let limits = if small % 2 == 0 {
        StreamLimits {
            max_stanza_bytes: 512,
            max_depth: 4,
            max_header_bytes: 256,
        }
    } else {
        StreamLimits::DEFAULT
    };
    let mut reader = StreamReader::new(limits);
    for piece in rest.chunks(usize::from(*chunk).max(1)) {
        match reader.feed(piece) {
            Ok(events) => {
                assert!(
                    reader.pending_bytes() <= limits.max_stanza_bytes.max(limits.max_header_bytes)
                );
                for event in events {
                    if let crate::stream::StreamEvent::Stanza(s) = event {
                        assert!(
                            depth(&s) <= limits.max_depth,
                            "a stanza deeper than the limit"
                        );
                    }
                }
            }
            Err(_) => return,
        }
    }
}

/// The nesting depth of `e` (1 for an element without children), without recursion.
fn depth(e: &Element) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    deepest
}
