//! proptest strategies generating valid values of every top-level element (between the
//! domains `a.example`, the peer, and `b.example`, us).

use std::collections::{BTreeMap, BTreeSet};

use jid::{BareJid, Jid};
use minidom::Element;
use presence_sync::digest::sketch::Sketch;
use presence_sync::digest::{Fingerprint, HashAlgo, Prefix, ShortId};
use presence_sync::model::Epoch;
use presence_sync::wire::{
    Batch, ChildFingerprints, Condition, Edge, EdgeState, Except, Fanout, FeatureHash, Gone, Hello,
    IdList, Ids, Item, ItemPresence, Lack, Reconcile, ReconcileEntry, ReconcileSet, Repair, Root,
    SetName, Shutdown, SketchNode, Split, StreamFeature, SyncElement,
};
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use xmpp_parsers::message::Lang;
use xmpp_parsers::presence::{Presence, Show};

/// The peer domain (publishers of items).
pub const PEER: &str = "a.example";
/// Our domain (excepts).
pub const LOCAL: &str = "b.example";

fn node() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9]{0,7}"
}

fn bare(domain: &'static str) -> impl Strategy<Value = BareJid> {
    node().prop_map(move |n| BareJid::new(&format!("{n}@{domain}")).expect("valid node"))
}

fn epoch() -> impl Strategy<Value = Epoch> {
    any::<u64>().prop_map(Epoch)
}

fn fingerprint() -> impl Strategy<Value = Fingerprint> {
    any::<[u8; 16]>().prop_map(Fingerprint)
}

fn prefix(max_len: u8) -> impl Strategy<Value = Prefix> {
    (0..=max_len, any::<u32>()).prop_map(|(len, bits)| {
        let bits = if len >= 8 {
            bits
        } else {
            bits & ((1u32 << (4 * u32::from(len))) - 1)
        };
        Prefix::new(bits, len).expect("masked to len nibbles")
    })
}

fn id_list(min: usize) -> impl Strategy<Value = IdList> {
    btree_set(any::<[u8; 8]>(), min..6).prop_map(|ids| ids.into_iter().map(ShortId).collect())
}

fn hash_algo() -> impl Strategy<Value = HashAlgo> {
    prop_oneof![Just(HashAlgo::Blake3), Just(HashAlgo::Sha256)]
}

/// `<presence-sync/>` stream features.
pub fn stream_feature() -> impl Strategy<Value = StreamFeature> {
    // sha-256 is mandatory (XEP §Stream Feature [PS-3]); others are optional, in any order.
    btree_set(
        prop_oneof![Just("blake3"), Just("sha3-256"), Just("x-unknown")],
        0..3,
    )
    .prop_flat_map(|others| {
        let mut algos: Vec<&str> = others.into_iter().collect();
        algos.push("sha-256");
        Just(algos).prop_shuffle()
    })
    .prop_map(|algos| StreamFeature {
        hashes: algos
            .into_iter()
            .map(|a| FeatureHash { algo: a.to_owned() })
            .collect(),
    })
}

/// `<hello/>`s with the three roots in any order and any subset of the limits stated.
pub fn hello() -> impl Strategy<Value = Hello> {
    (
        (epoch(), proptest::option::of(epoch()), hash_algo()),
        (
            proptest::option::of(1u32..=4096),
            proptest::option::of(4096u32..=1_048_576),
            proptest::option::of(1u32..=64),
            proptest::option::of(1u32..=256),
        ),
        vec((any::<u64>(), fingerprint()), 3),
        Just(SetName::ALL.to_vec()).prop_shuffle(),
    )
        .prop_map(
            |((epoch, peer_epoch, hash), (mi, mb, w, li), roots, sets)| Hello {
                epoch,
                peer_epoch,
                hash,
                max_items: mi,
                max_bytes: mb,
                window: w,
                leaf_items: li,
                roots: sets
                    .into_iter()
                    .zip(roots)
                    .map(|(set, (count, fp))| {
                        // Without peer-epoch the cache is empty (XEP §Hello [PS-18]).
                        let empty = set == SetName::Cached && peer_epoch.is_none();
                        Root {
                            set,
                            count: if empty { 0 } else { count },
                            fp,
                            changes: None,
                        }
                    })
                    .collect(),
            },
        )
}

fn edge() -> impl Strategy<Value = Edge> {
    (bare(PEER), bare(LOCAL), any::<bool>(), any::<bool>()).prop_map(|(a, b, flip, pending)| {
        let (publisher, subscriber) = if flip { (b, a) } else { (a, b) };
        let state = if pending {
            EdgeState::Pending
        } else {
            EdgeState::Subscribed
        };
        Edge {
            publisher,
            subscriber,
            state,
        }
    })
}

fn caps() -> Element {
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://a.example/caps' \
     ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
        .parse()
        .expect("well-formed")
}

fn presence(publisher: BareJid, resource: String) -> impl Strategy<Value = ItemPresence> {
    let show = proptest::option::of(prop_oneof![
        Just(Show::Away),
        Just(Show::Chat),
        Just(Show::Dnd),
        Just(Show::Xa)
    ]);
    let statuses = proptest::collection::btree_map(
        prop_oneof![Just(""), Just("en"), Just("de")],
        "[a-zA-Z][a-zA-Z0-9 .,!?'\"<>&]{0,15}",
        0..3,
    );
    (show, statuses, any::<i8>(), any::<bool>()).prop_map(move |(show, statuses, prio, c)| {
        let from = Jid::new(&format!("{publisher}/{resource}")).expect("valid resource");
        let mut p = Presence::available().with_from(from).with_priority(prio);
        p.show = show;
        p.statuses = statuses
            .into_iter()
            .map(|(lang, text)| (Lang(lang.to_owned()), text))
            .collect::<BTreeMap<_, _>>();
        if c {
            p.payloads.push(caps());
        }
        ItemPresence(p)
    })
}

/// `<item/>`s of a publisher of the peer domain.
pub fn item() -> impl Strategy<Value = Item> {
    (
        bare(PEER),
        btree_set("[a-z0-9]{1,8}", 0..3),
        btree_set(bare(LOCAL), 0..3),
    )
        .prop_flat_map(
            |(jid, resources, excepts): (BareJid, BTreeSet<String>, BTreeSet<BareJid>)| {
                let presences: Vec<_> = resources
                    .into_iter()
                    .map(|r| presence(jid.clone(), r))
                    .collect();
                let excepts: Vec<Except> = excepts.into_iter().map(|jid| Except { jid }).collect();
                (Just(jid), presences, Just(excepts)).prop_map(|(jid, presences, excepts)| Item {
                    jid,
                    presences,
                    excepts,
                })
            },
        )
}

fn unique_items(items: Vec<Item>) -> Vec<Item> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.jid.clone()))
        .collect()
}

/// `<batch/>`es of 1..6 items.
pub fn batch() -> impl Strategy<Value = Batch> {
    (epoch(), vec(item(), 1..6)).prop_map(|(epoch, items)| Batch {
        epoch,
        items: unique_items(items),
    })
}

fn entry(set: ReconcileSet) -> BoxedStrategy<ReconcileEntry> {
    let split = (prefix(7), vec(fingerprint(), 16)).prop_map(|(prefix, fps)| {
        let fps: [Fingerprint; 16] = fps.try_into().expect("16 generated");
        ReconcileEntry::Split(Split {
            prefix,
            fps: ChildFingerprints(fps),
        })
    });
    let ids =
        (prefix(8), id_list(0)).prop_map(|(prefix, ids)| ReconcileEntry::Ids(Ids { prefix, ids }));
    let lack = id_list(1).prop_map(|ids| ReconcileEntry::Lack(Lack { ids }));
    let sketch = (prefix(8), id_list(0), 1usize..40).prop_map(|(prefix, ids, cells)| {
        ReconcileEntry::Sketch(SketchNode {
            prefix,
            data: Sketch::of(cells, ids.iter()),
        })
    });
    match set {
        ReconcileSet::Edges => prop_oneof![
            split,
            ids,
            sketch,
            lack,
            edge().prop_map(ReconcileEntry::Edge)
        ]
        .boxed(),
        ReconcileSet::Presence => prop_oneof![
            split,
            ids,
            sketch,
            lack,
            id_list(1).prop_map(|ids| ReconcileEntry::Gone(Gone { ids })),
            item().prop_map(ReconcileEntry::Item),
        ]
        .boxed(),
    }
}

fn unique_entries(entries: Vec<ReconcileEntry>) -> Vec<ReconcileEntry> {
    let mut keys = BTreeSet::new();
    entries
        .into_iter()
        .filter(|e| match e {
            ReconcileEntry::Split(Split { prefix, .. })
            | ReconcileEntry::Ids(Ids { prefix, .. })
            | ReconcileEntry::Sketch(SketchNode { prefix, .. }) => {
                keys.insert(format!("prefix {prefix}"))
            }
            ReconcileEntry::Edge(edge) => keys.insert(format!("edge {}", edge.label())),
            ReconcileEntry::Item(item) => keys.insert(format!("item {}", item.jid)),
            ReconcileEntry::Lack(_) | ReconcileEntry::Gone(_) => true,
        })
        .collect()
}

/// `<reconcile/>`s of either set with 0..8 valid, unique children in any order.
pub fn reconcile() -> impl Strategy<Value = Reconcile> {
    prop_oneof![Just(ReconcileSet::Edges), Just(ReconcileSet::Presence)].prop_flat_map(|set| {
        vec(entry(set), 0..8).prop_map(move |entries| Reconcile {
            set,
            entries: unique_entries(entries),
        })
    })
}

/// `<shutdown/>`s.
pub fn shutdown() -> impl Strategy<Value = Shutdown> {
    (epoch(), proptest::option::of(any::<bool>()))
        .prop_map(|(epoch, restart)| Shutdown { epoch, restart })
}

/// Any top-level element.
pub fn sync_element() -> impl Strategy<Value = SyncElement> {
    prop_oneof![
        1 => stream_feature().prop_map(SyncElement::Feature),
        1 => hello().prop_map(SyncElement::Hello),
        3 => reconcile().prop_map(SyncElement::Reconcile),
        2 => batch().prop_map(SyncElement::Batch),
        1 => item().prop_map(SyncElement::Item),
        1 => Just(SyncElement::Fanout(Fanout)),
        1 => Just(SyncElement::Repair(Repair)),
        1 => shutdown().prop_map(SyncElement::Shutdown),
        1 => proptest::sample::select(Condition::ALL.to_vec()).prop_map(SyncElement::Condition),
    ]
}
