//! Checks that need the session: negotiated limits and the two domains (XEP §Flow Control
//! and Limits, XEP §Spoofed JIDs, XEP §Business Rules).
//!
//! Parsing already rejects everything that is wrong in isolation (see the element types).
//! What remains depends on the session: counts and sizes against the negotiated [`Limits`],
//! and JIDs against the [`Domains`]: items of the peer's publishers, excepts of our users,
//! edges with one end in each domain.

use crate::wire::edge::Edge;
use crate::wire::error::WireError;
use crate::wire::hello::{Hello, StreamFeature};
use crate::wire::item::{Batch, Item};
use crate::wire::limits::{Domains, Limits};
use crate::wire::markers::{Fanout, Repair, Shutdown};
use crate::wire::reconcile::{Reconcile, ReconcileEntry};
use crate::wire::{Condition, Direction, SyncElement, WireElement, ns};
use minidom::Element;

fn check_item(element: &'static str, item: &Item, domains: &Domains) -> Result<(), WireError> {
    if !domains.is_peer(&item.jid) {
        return Err(WireError::ForeignJid {
            element,
            role: "item jid",
            jid: item.jid.to_string(),
            expected: domains.peer().to_owned(),
        });
    }
    if let Some(except) = item.excepts.iter().find(|e| !domains.is_local(&e.jid)) {
        return Err(WireError::ForeignJid {
            element,
            role: "except jid",
            jid: except.jid.to_string(),
            expected: domains.local().to_owned(),
        });
    }
    Ok(())
}

fn check_edge(element: &'static str, edge: &Edge, domains: &Domains) -> Result<(), WireError> {
    let (p, s) = (&edge.publisher, &edge.subscriber);
    let crosses =
        (domains.is_local(p) && domains.is_peer(s)) || (domains.is_peer(p) && domains.is_local(s));
    if !crosses {
        return Err(WireError::ForeignJid {
            element,
            role: "edge",
            jid: edge.label(),
            expected: format!("{} and {}", domains.local(), domains.peer()),
        });
    }
    Ok(())
}

fn check_encoded_size<T: WireElement>(value: &T, limits: &Limits) -> Result<(), WireError> {
    let bytes = value
        .to_xml_bytes()
        .map_err(|e| WireError::from_xso(T::NAME, e))?;
    limits.check_size(T::NAME, bytes.len())
}

impl WireElement for Reconcile {
    const NAME: &'static str = "reconcile";

    /// At most max-items `<split/>`+`<ids/>`, max-items `<item/>`+`<edge/>` and max-items ids
    /// in any one list; items of the
    /// peer's publishers with excepts of our users; edges between the two domains; at most
    /// max-bytes serialised.
    fn validate(&self, limits: &Limits, domains: &Domains) -> Result<(), WireError> {
        limits.check_items(Self::NAME, "split and ids", self.node_count())?;
        limits.check_items(Self::NAME, "items and edges", self.item_count())?;
        for entry in &self.entries {
            match entry {
                ReconcileEntry::Item(item) => check_item(Self::NAME, item, domains)?,
                ReconcileEntry::Edge(edge) => check_edge(Self::NAME, edge, domains)?,
                // XEP PS-82: an id list holds at most max-items ids (parsers bound the length
                // of an attribute value; 256 ids are 2 732 base64 characters).
                ReconcileEntry::Ids(ids) => {
                    limits.check_items(Self::NAME, "ids in one list", ids.ids.0.len())?
                }
                ReconcileEntry::Lack(lack) => {
                    limits.check_items(Self::NAME, "ids in one list", lack.ids.0.len())?
                }
                ReconcileEntry::Gone(gone) => {
                    limits.check_items(Self::NAME, "ids in one list", gone.ids.0.len())?
                }
                ReconcileEntry::Split(_) | ReconcileEntry::Sketch(_) => {}
            }
        }
        check_encoded_size(self, limits)
    }
}

impl WireElement for Batch {
    const NAME: &'static str = "batch";

    /// At most max-items items, of the peer's publishers with excepts of our users; at most
    /// max-bytes serialised. (Whether the epoch is current is the session's check:
    /// [`WireError::StaleEpoch`].)
    fn validate(&self, limits: &Limits, domains: &Domains) -> Result<(), WireError> {
        limits.check_items(Self::NAME, "items", self.items.len())?;
        for item in &self.items {
            check_item(Self::NAME, item, domains)?;
        }
        check_encoded_size(self, limits)
    }
}

impl WireElement for Item {
    const NAME: &'static str = "item";

    /// The publisher is in the peer domain, the excepts in ours.
    fn validate(&self, _limits: &Limits, domains: &Domains) -> Result<(), WireError> {
        check_item(Self::NAME, self, domains)
    }
}

impl WireElement for Hello {
    const NAME: &'static str = "hello";
}

impl WireElement for StreamFeature {
    const NAME: &'static str = "presence-sync";
}

impl WireElement for Shutdown {
    const NAME: &'static str = "shutdown";
}

impl WireElement for Fanout {
    const NAME: &'static str = "fanout";
}

impl WireElement for Repair {
    const NAME: &'static str = "repair";
}

impl WireElement for Condition {
    const NAME: &'static str = "error condition";
}

/// Checks a stanza this server is about to send to the peer of `domains` (ours first) under
/// the session's effective `limits`, exactly as the peer will check it on receipt: its size
/// against max-bytes, and every element of our namespace it carries parsed strictly and
/// validated with the domains seen from the peer (items of our publishers, excepts of the
/// peer's users), a `<reconcile/>` also against the rules of its direction. A sender calls it
/// on every stanza it emits, in release builds too: a stanza that fails is never sent (XEP
/// §Flow Control and Limits).
pub fn check_outgoing(
    stanza: &Element,
    limits: &Limits,
    domains: &Domains,
) -> Result<(), WireError> {
    let bytes = stanza_bytes(stanza);
    let element = stanza
        .children()
        .find(|c| c.ns() == ns::PRESENCE_SYNC)
        .map_or("stanza", |c| element_name(c.name()));
    limits.check_size(element, bytes)?;
    let theirs = domains.mirrored();
    for child in stanza.children().filter(|c| c.ns() == ns::PRESENCE_SYNC) {
        let Some(parsed) = SyncElement::parse_element(child)? else {
            continue;
        };
        match &parsed {
            SyncElement::Reconcile(r) => {
                r.validate(limits, &theirs)?;
                let direction = match stanza.attr("type") {
                    Some("result") => Direction::Answer,
                    _ => Direction::Query,
                };
                r.check_direction(direction)?;
            }
            SyncElement::Batch(b) => b.validate(limits, &theirs)?,
            SyncElement::Item(i) => i.validate(limits, &theirs)?,
            _ => {}
        }
    }
    Ok(())
}

/// The serialised size of a stanza in bytes (with every namespace declaration it writes: at
/// least what a receiver counts on its stream).
pub fn stanza_bytes(stanza: &Element) -> usize {
    let mut out = Count(0);
    // Counting cannot fail on I/O; minidom only fails on names it could not have parsed or
    // built in the first place.
    match stanza.write_to(&mut out) {
        Ok(()) => out.0,
        Err(_) => usize::MAX,
    }
}

/// A writer that only counts the bytes written to it.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn element_name(name: &str) -> &'static str {
    match name {
        "hello" => "hello",
        "reconcile" => "reconcile",
        "batch" => "batch",
        "shutdown" => "shutdown",
        "fanout" => "fanout",
        "repair" => "repair",
        _ => "stanza",
    }
}

#[cfg(test)]
mod tests {
    use crate::digest::{Fingerprint, Prefix, ShortId};
    use crate::wire::{
        ChildFingerprints, Domains, IdList, Ids, Limits, Reconcile, ReconcileEntry, Split,
        WireElement, WireError,
    };

    use crate::wire::reconcile::tests::{edges_xml, presence_xml};

    #[test]
    fn validate_limits_and_domains() {
        let domains = Domains::new("b.example", "a.example").unwrap();
        let r = Reconcile::parse_bytes(edges_xml().as_bytes()).unwrap();
        r.validate(&Limits::DEFAULT, &domains).unwrap();
        let tight = Limits {
            max_items: 2,
            ..Limits::DEFAULT
        };
        assert_eq!(
            r.validate(&tight, &domains).unwrap_err().to_string(),
            "reconcile: 3 split and ids exceed max-items 2"
        );
        let tight = Limits {
            max_items: 1,
            ..Limits::DEFAULT
        };
        let mut only_edges = r.clone();
        only_edges
            .entries
            .retain(|e| matches!(e, ReconcileEntry::Edge(_)));
        assert_eq!(
            only_edges
                .validate(&tight, &domains)
                .unwrap_err()
                .to_string(),
            "reconcile: 2 items and edges exceed max-items 1"
        );
        let small = Limits {
            max_bytes: 4096,
            ..Limits::DEFAULT
        };
        let mut big = r.clone();
        for i in 0..40u8 {
            let prefix = Prefix::new(u32::from(i), 2).unwrap();
            big.entries.push(ReconcileEntry::Ids(Ids {
                prefix,
                ids: IdList(vec![ShortId([i; 8])]),
            }));
            big.entries.push(ReconcileEntry::Split(Split {
                prefix: Prefix::new(u32::from(i), 3).unwrap(),
                fps: ChildFingerprints([Fingerprint([i; 16]); 16]),
            }));
        }
        let WireError::TooLarge {
            bytes, max: 4096, ..
        } = big.validate(&small, &domains).unwrap_err()
        else {
            panic!()
        };
        assert!(bytes > 4096);
        let foreign = edges_xml().replace("juliet@a.example", "juliet@c.example");
        let foreign = Reconcile::parse_bytes(foreign.as_bytes()).unwrap();
        let e = foreign.validate(&Limits::DEFAULT, &domains).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reconcile: edge juliet@c.example -> romeo@b.example is not in b.example and a.example"
        );
        let inner = edges_xml().replace("juliet@a.example", "juliet@b.example");
        let inner = Reconcile::parse_bytes(inner.as_bytes()).unwrap();
        assert!(inner.validate(&Limits::DEFAULT, &domains).is_err());
        let p = Reconcile::parse_bytes(presence_xml().as_bytes()).unwrap();
        p.validate(&Limits::DEFAULT, &domains).unwrap();
        assert_eq!(
            p.validate(
                &Limits::DEFAULT,
                &Domains::new("a.example", "b.example").unwrap()
            )
            .unwrap_err()
            .to_string(),
            "reconcile: item jid juliet@a.example is not in b.example"
        );
    }
}
