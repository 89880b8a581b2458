//! Locating and exchanging differences: the reconcile element and its children
//! (XEP §Reconciliation).

use std::collections::HashSet;
use std::fmt;

use xso::error::Error;
use xso::{AsXml, AsXmlText, FromXml, FromXmlText};

use crate::digest::Prefix;
use crate::digest::prefix::MAX_DEPTH;
use crate::digest::sketch::Sketch;
use crate::wire::codec::{ChildFingerprints, IdList};
use crate::wire::edge::Edge;
use crate::wire::error::WireError;
use crate::wire::item::Item;
use crate::wire::malformed::Malformed;
use crate::wire::ns;

/// Which set a reconcile is about (XEP §Reconciliation, `set` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReconcileSet {
    /// `edges`: the edge set, driven by the domain whose name sorts first.
    Edges,
    /// `presence`: in a query, the presence set of the recipient's publishers (the sender
    /// holds the cache); in an answer, the sender's.
    Presence,
}

impl ReconcileSet {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            ReconcileSet::Edges => "edges",
            ReconcileSet::Presence => "presence",
        }
    }
}

impl fmt::Display for ReconcileSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromXmlText for ReconcileSet {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        match text.as_str() {
            "edges" => Ok(ReconcileSet::Edges),
            "presence" => Ok(ReconcileSet::Presence),
            _ => Err(Error::text_parse_error(Malformed::UnknownValue {
                attr: "set",
                value: text,
            })),
        }
    }
}

impl AsXmlText for ReconcileSet {
    fn as_xml_text(&self) -> Result<std::borrow::Cow<'_, str>, Error> {
        Ok(self.name().into())
    }
}

/// Whether a [`Reconcile`] is a query (in an `<iq type='set'/>`) or the answer to one (in the
/// `<iq type='result'/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// In an `<iq type='set'/>`.
    Query,
    /// In an `<iq type='result'/>`.
    Answer,
}

impl Direction {
    /// `"query"` or `"answer"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Query => "query",
            Direction::Answer => "answer",
        }
    }
}

/// XEP §Reconciliation: `<split prefix='P' fps='...'/>`, "my node P differs; here are the
/// fingerprints of its 16 children".
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "split",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Split::check
)]
pub struct Split {
    /// The node being split (shorter than the maximum depth: it has children).
    #[xml(attribute)]
    pub prefix: Prefix,
    /// Fingerprints of its children `prefix+0` .. `prefix+f`.
    #[xml(attribute)]
    pub fps: ChildFingerprints,
}

impl Split {
    fn check(&mut self) -> Result<(), Error> {
        if self.prefix.len() >= MAX_DEPTH {
            return Err(Error::text_parse_error(Malformed::Structure(format!(
                "split prefix '{}' is at the maximum depth {MAX_DEPTH} and has no children",
                self.prefix
            ))));
        }
        Ok(())
    }
}

/// XEP §Reconciliation: `<ids prefix='P' ids='...'/>`, "my node P holds exactly these items"
/// (`ids=''`: none, "send me everything under P").
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "ids", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Ids {
    /// The node.
    #[xml(attribute)]
    pub prefix: Prefix,
    /// Short ids of all its items.
    #[xml(attribute)]
    pub ids: IdList,
}

/// XEP §Sketches: `<sketch prefix='P' data='...'/>` (queries only), "my node P holds exactly
/// the items whose ids this sketch codes": an `<ids/>` in the size of the expected
/// difference, which the receiver decodes against its own ids under P.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "sketch", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct SketchNode {
    /// The node.
    #[xml(attribute)]
    pub prefix: Prefix,
    /// The cells.
    #[xml(attribute)]
    pub data: Sketch,
}

/// XEP §Reconciliation: `<lack ids='...'/>`, "I lack these items of yours: send them" (at least one
/// id).
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "lack",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Lack::check
)]
pub struct Lack {
    /// Short ids of the wanted items.
    #[xml(attribute)]
    pub ids: IdList,
}

/// XEP §Reconciliation: `<gone ids='...'/>` (presence only), "your cached entries with these ids
/// are stale or absent here" (at least one id).
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "gone",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Gone::check
)]
pub struct Gone {
    /// Short ids of the stale entries.
    #[xml(attribute)]
    pub ids: IdList,
}

impl Lack {
    fn check(&mut self) -> Result<(), Error> {
        non_empty(&self.ids, "id in <lack/>")
    }
}

impl Gone {
    fn check(&mut self) -> Result<(), Error> {
        non_empty(&self.ids, "id in <gone/>")
    }
}

fn non_empty(ids: &IdList, what: &'static str) -> Result<(), Error> {
    if ids.is_empty() {
        return Err(Error::text_parse_error(Malformed::Missing(what)));
    }
    Ok(())
}

/// One child of a [`Reconcile`]; the children form one ordered list.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml()]
pub enum ReconcileEntry {
    /// `<split/>`
    #[xml(transparent)]
    Split(Split),
    /// `<ids/>`
    #[xml(transparent)]
    Ids(Ids),
    /// `<sketch/>` (queries only)
    #[xml(transparent)]
    Sketch(SketchNode),
    /// `<lack/>`
    #[xml(transparent)]
    Lack(Lack),
    /// `<gone/>` (presence only)
    #[xml(transparent)]
    Gone(Gone),
    /// `<edge/>` (edges only)
    #[xml(transparent)]
    Edge(Edge),
    /// `<item/>` (presence only)
    #[xml(transparent)]
    Item(Item),
}

impl ReconcileEntry {
    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            ReconcileEntry::Split(_) => "split",
            ReconcileEntry::Ids(_) => "ids",
            ReconcileEntry::Sketch(_) => "sketch",
            ReconcileEntry::Lack(_) => "lack",
            ReconcileEntry::Gone(_) => "gone",
            ReconcileEntry::Edge(_) => "edge",
            ReconcileEntry::Item(_) => "item",
        }
    }
}

/// XEP §Reconciliation: a query (`<iq type='set'/>`) or its answer (`<iq type='result'/>`) of the
/// reconciliation of one set: an ordered list of [`ReconcileEntry`]s.
///
/// The children are kept in the order received and written in the order stored; the XEP
/// imposes none. Parsing guarantees: `<gone/>` and `<item/>` only in `set='presence'`, `<edge/>`
/// only in `set='edges'`; no prefix twice among `<split/>`/`<ids/>`; no edge (publisher,
/// subscriber) twice; no item jid twice; no id twice within a list; every `fps` 256 bytes.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "reconcile",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Reconcile::check
)]
pub struct Reconcile {
    /// The set.
    #[xml(attribute)]
    pub set: ReconcileSet,
    /// The children, in order.
    #[xml(child(n = ..))]
    pub entries: Vec<ReconcileEntry>,
}

impl Reconcile {
    /// An empty reconcile of `set`.
    pub fn new(set: ReconcileSet) -> Reconcile {
        Reconcile {
            set,
            entries: Vec::new(),
        }
    }

    /// Number of `<split/>`, `<ids/>` and `<sketch/>` children (bounded by max-items).
    pub fn node_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ReconcileEntry::Split(_) | ReconcileEntry::Ids(_) | ReconcileEntry::Sketch(_)
                )
            })
            .count()
    }

    /// Number of `<item/>` and `<edge/>` children (bounded by max-items).
    pub fn item_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e, ReconcileEntry::Item(_) | ReconcileEntry::Edge(_)))
            .count()
    }

    /// The `<edge/>` children.
    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.entries.iter().filter_map(|e| match e {
            ReconcileEntry::Edge(edge) => Some(edge),
            _ => None,
        })
    }

    /// The `<item/>` children.
    pub fn items(&self) -> impl Iterator<Item = &Item> {
        self.entries.iter().filter_map(|e| match e {
            ReconcileEntry::Item(item) => Some(item),
            _ => None,
        })
    }

    /// The direction rules of XEP §Reconciliation, Children [PS-23], which parsing cannot
    /// check because they depend on the iq around the element: `<sketch/>` only in queries;
    /// in the presence set, `<lack/>` only in queries, `<gone/>` and `<item/>` only in
    /// answers. (The edge set allows every other child both ways.) A violation is
    /// `bad-format`.
    pub fn check_direction(&self, direction: Direction) -> Result<(), WireError> {
        let presence = self.set == ReconcileSet::Presence;
        let wrong = self.entries.iter().find(|e| match direction {
            Direction::Query => {
                presence && matches!(e, ReconcileEntry::Gone(_) | ReconcileEntry::Item(_))
            }
            Direction::Answer => {
                matches!(e, ReconcileEntry::Sketch(_))
                    || (presence && matches!(e, ReconcileEntry::Lack(_)))
            }
        });
        match wrong {
            None => Ok(()),
            Some(entry) => Err(WireError::Malformed {
                element: "reconcile",
                reason: Malformed::WrongDirection {
                    child: entry.name(),
                    set: self.set.name(),
                    direction: direction.name(),
                },
            }),
        }
    }

    fn check(&mut self) -> Result<(), Error> {
        let fail = |m: Malformed| Err(Error::text_parse_error(m));
        let mut prefixes = HashSet::new();
        let mut edges = HashSet::new();
        let mut items = HashSet::new();
        for entry in &self.entries {
            let misplaced = matches!(
                (self.set, entry),
                (
                    ReconcileSet::Edges,
                    ReconcileEntry::Gone(_) | ReconcileEntry::Item(_)
                ) | (ReconcileSet::Presence, ReconcileEntry::Edge(_))
            );
            if misplaced {
                return fail(Malformed::Misplaced {
                    child: entry.name(),
                    set: self.set.name(),
                });
            }
            match entry {
                ReconcileEntry::Split(Split { prefix, .. })
                | ReconcileEntry::Ids(Ids { prefix, .. })
                | ReconcileEntry::Sketch(SketchNode { prefix, .. }) => {
                    if !prefixes.insert(*prefix) {
                        return fail(Malformed::Duplicate {
                            what: "prefix",
                            key: format!("'{prefix}'"),
                        });
                    }
                }
                ReconcileEntry::Edge(edge) => {
                    if !edges.insert((&edge.publisher, &edge.subscriber)) {
                        return fail(Malformed::Duplicate {
                            what: "edge",
                            key: edge.label(),
                        });
                    }
                }
                ReconcileEntry::Item(item) => {
                    if !items.insert(&item.jid) {
                        return fail(Malformed::Duplicate {
                            what: "item",
                            key: item.jid.to_string(),
                        });
                    }
                }
                ReconcileEntry::Lack(_) | ReconcileEntry::Gone(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::{Fingerprint, ShortId};
    use crate::model;
    use crate::wire::{EdgeState, WireElement};
    use minidom::Element;

    fn fps_b64() -> String {
        "AAAA".repeat(85) + "AA=="
    }

    /// A reconcile with one child of each kind of the edge set (shared with validate's tests).
    pub(crate) fn edges_xml() -> String {
        format!(
            "<reconcile xmlns='urn:xmpp:presence-sync:0' set='edges'>\
             <split prefix='3a' fps='{}'/>\
             <ids prefix='3a7' ids='AQIDBAUGBwgJCgsMDQ4PEA=='/>\
             <ids prefix='' ids=''/>\
             <lack ids='AQIDBAUGBwg='/>\
             <edge publisher='juliet@a.example' subscriber='romeo@b.example'/>\
             <edge publisher='nurse@a.example' subscriber='romeo@b.example' state='pending'/>\
             </reconcile>",
            fps_b64()
        )
    }

    /// A presence answer with a gone and two items (shared with validate's tests).
    pub(crate) fn presence_xml() -> &'static str {
        "<reconcile xmlns='urn:xmpp:presence-sync:0' set='presence'>\
         <gone ids='AQIDBAUGBwg='/>\
         <item jid='juliet@a.example'>\
         <presence xmlns='jabber:server' from='juliet@a.example/balcony'><show>away</show></presence>\
         <except jid='tybalt@b.example'/></item>\
         <item jid='benvolio@a.example'/>\
         </reconcile>"
    }

    fn err(xml: &str) -> String {
        Reconcile::parse_bytes(xml.as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parse_edges() {
        let r = Reconcile::parse_bytes(edges_xml().as_bytes()).unwrap();
        assert_eq!(r.set, ReconcileSet::Edges);
        assert_eq!(r.entries.len(), 6);
        assert_eq!((r.node_count(), r.item_count()), (3, 2));
        let ReconcileEntry::Split(split) = &r.entries[0] else {
            panic!("{:?}", r.entries[0])
        };
        assert_eq!(split.prefix.to_string(), "3a");
        assert_eq!(split.fps, ChildFingerprints([Fingerprint([0; 16]); 16]));
        let ReconcileEntry::Ids(ids) = &r.entries[1] else {
            panic!()
        };
        assert_eq!(
            ids.ids.0,
            vec![
                ShortId([1, 2, 3, 4, 5, 6, 7, 8]),
                ShortId([9, 10, 11, 12, 13, 14, 15, 16])
            ]
        );
        let ReconcileEntry::Ids(root) = &r.entries[2] else {
            panic!()
        };
        assert!(root.prefix.is_root() && root.ids.is_empty());
        let edges: Vec<_> = r.edges().collect();
        assert_eq!(edges[0].state, EdgeState::Subscribed);
        assert_eq!(edges[1].state, EdgeState::Pending);
        assert_eq!(edges[1].label(), "nurse@a.example -> romeo@b.example");
        let model: model::Edge = edges[1].clone().into();
        assert_eq!(Edge::from(&model), *edges[1]);
    }

    #[test]
    fn serialise_keeps_order() {
        for xml in [edges_xml().as_str(), presence_xml()] {
            let r = Reconcile::parse_bytes(xml.as_bytes()).unwrap();
            assert_eq!(r.to_element().unwrap(), xml.parse::<Element>().unwrap());
            let again = Reconcile::parse_bytes(&r.to_xml_bytes().unwrap()).unwrap();
            assert_eq!(again, r);
        }
        let explicit = edges_xml().replace(
            "romeo@b.example'/>",
            "romeo@b.example' state='subscribed'/>",
        );
        let r = Reconcile::parse_bytes(explicit.as_bytes()).unwrap();
        assert_eq!(r, Reconcile::parse_bytes(edges_xml().as_bytes()).unwrap());
    }

    #[test]
    fn parse_presence() {
        let r = Reconcile::parse_bytes(presence_xml().as_bytes()).unwrap();
        let items: Vec<_> = r.items().collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].presences.len(), 1);
        assert_eq!(items[0].excepts[0].jid.as_str(), "tybalt@b.example");
        assert!(items[1].is_unavailable());
        assert_eq!(r.item_count(), 2);
    }

    #[test]
    fn malformed_lists() {
        let xml = edges_xml();
        assert_eq!(
            err(&xml.replace(&fps_b64(), &"AAAA".repeat(85))),
            "reconcile: fps: 255 bytes, expected 256"
        );
        assert_eq!(
            err(&xml.replace("AQIDBAUGBwgJCgsMDQ4PEA==", "AQIDBAUGBwgJCgsM")),
            "reconcile: ids: 12 bytes, expected a multiple of 8"
        );
        assert_eq!(
            err(&xml.replace("AQIDBAUGBwgJCgsMDQ4PEA==", "AQIDBAUGBwgBAgMEBQYHCA==")),
            "reconcile: ids: duplicate id 0102030405060708"
        );
        assert_eq!(
            err(&xml.replace("lack ids='AQIDBAUGBwg='", "lack ids='AQIDBAUGBwg'")),
            "reconcile: ids: invalid base64: Invalid padding"
        );
        assert_eq!(
            err(&xml.replace("lack ids='AQIDBAUGBwg='", "lack ids=''")),
            "reconcile: no id in <lack/>"
        );
        assert_eq!(
            err(&presence_xml().replace("gone ids='AQIDBAUGBwg='", "gone ids=''")),
            "reconcile: no id in <gone/>"
        );
        assert_eq!(
            err(&xml.replace("prefix='3a7'", "prefix='3A7'")),
            "reconcile: prefix character 'A' is not lowercase hex"
        );
        assert_eq!(
            err(&xml.replace("prefix='3a7'", "prefix='3a7000000'")),
            "reconcile: prefix of 9 nibbles exceeds 8"
        );
        assert_eq!(
            err(&xml.replace("prefix='3a'", "prefix='3a000000'")),
            "reconcile: split prefix '3a000000' is at the maximum depth 8 and has no children"
        );
    }

    #[test]
    fn duplicates_and_misplaced() {
        let xml = edges_xml();
        assert_eq!(
            err(&xml.replace("prefix='3a7'", "prefix='3a'")),
            "reconcile: duplicate prefix '3a'"
        );
        assert_eq!(
            err(&xml.replace("nurse@", "juliet@")),
            "reconcile: duplicate edge juliet@a.example -> romeo@b.example"
        );
        assert_eq!(
            err(&xml.replace("<lack", "<gone")),
            "reconcile: <gone/> not allowed in set='edges'"
        );
        assert_eq!(
            err(&xml.replace("set='edges'", "set='presence'")),
            "reconcile: <edge/> not allowed in set='presence'"
        );
        assert_eq!(
            err(&xml.replace("set='edges'", "set='all'")),
            "reconcile: set \"all\" is not defined"
        );
        assert_eq!(
            err(&xml.replace("state='pending'", "state='both'")),
            "reconcile: state \"both\" is not defined"
        );
        assert_eq!(
            err(&presence_xml().replace("benvolio@", "juliet@")),
            "reconcile: duplicate item juliet@a.example"
        );
        assert_eq!(
            err(&presence_xml().replace("set='presence'", "set='edges'")),
            "reconcile: <gone/> not allowed in set='edges'"
        );
    }

    #[test]
    fn directions() {
        let presence = Reconcile::parse_bytes(presence_xml().as_bytes()).unwrap();
        presence.check_direction(Direction::Answer).unwrap();
        assert_eq!(
            presence
                .check_direction(Direction::Query)
                .unwrap_err()
                .to_string(),
            "reconcile: <gone/> not allowed in a presence query"
        );
        let mut query = presence.clone();
        query.entries = vec![ReconcileEntry::Lack(Lack {
            ids: IdList(vec![ShortId([1; 8])]),
        })];
        query.check_direction(Direction::Query).unwrap();
        let e = query.check_direction(Direction::Answer).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reconcile: <lack/> not allowed in a presence answer"
        );
        let edges = Reconcile::parse_bytes(edges_xml().as_bytes()).unwrap();
        edges.check_direction(Direction::Query).unwrap();
        edges.check_direction(Direction::Answer).unwrap();
    }

    #[test]
    fn strict() {
        let xml = edges_xml();
        assert_eq!(
            err(&xml.replace("<lack ids", "<lack prefix='3' ids")),
            "reconcile: Unknown attribute in Lack element."
        );
        assert_eq!(
            err(&xml.replace("</reconcile>", "<hello/></reconcile>")),
            "reconcile: Unknown child in Reconcile element."
        );
        assert_eq!(
            err(&xml.replace("state='pending'/>", "state='pending'><x/></edge>")),
            "reconcile: Unknown child in Edge element."
        );
        assert_eq!(
            err(&xml.replace(
                "subscriber='romeo@b.example' state",
                "subscriber='romeo@b.example/x' state"
            )),
            "reconcile: subscriber \"romeo@b.example/x\" is invalid: resource found while parsing a bare JID"
        );
        assert_eq!(
            err(&xml.replace("<ids prefix='' ids=''/>", "<ids prefix=''/>")),
            "reconcile: Required attribute field 'ids' on Ids element missing."
        );
    }
}
