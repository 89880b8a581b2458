//! Properties of the digests (foundation issue): order independence, incremental = rebuild,
//! exact localisation of differences, sensitivity to every change, and equal projections of
//! mirrored rosters.

use std::collections::{BTreeMap, BTreeSet};

use jid::BareJid;
use presence_sync::digest::{
    BucketTree, EdgeDigest, EdgeRef, HashAlgo, PairHasher, Prefix, PresenceDigest,
};
use presence_sync::model::edge::project;
use presence_sync::model::{
    Edge, EdgeState, PublisherPresence, ResourcePresence, Roster, Show, Subscription,
};
use proptest::prelude::*;

const A: &str = "a.example";
const B: &str = "b.example";

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn user(domain: &str, i: u16) -> String {
    format!("u{i}@{domain}")
}

/// An edge between user `p` of A and user `s` of B, direction chosen by `a_publishes`.
fn edge_strings(p: u16, s: u16, a_publishes: bool, pending: bool) -> (String, String, EdgeState) {
    let state = if pending {
        EdgeState::Pending
    } else {
        EdgeState::Subscribed
    };
    if a_publishes {
        (user(A, p), user(B, s), state)
    } else {
        (user(B, s), user(A, p), state)
    }
}

type RawEdge = (u16, u16, bool, bool);

fn edge_set() -> impl Strategy<Value = BTreeSet<RawEdge>> {
    proptest::collection::btree_set((0u16..64, 0u16..64, any::<bool>(), any::<bool>()), 0..300)
}

fn algo() -> impl Strategy<Value = HashAlgo> {
    prop_oneof![Just(HashAlgo::Blake3), Just(HashAlgo::Sha256)]
}

fn digest_of(
    algo: HashAlgo,
    depth: u8,
    edges: impl IntoIterator<Item = RawEdge>,
) -> EdgeDigest<RawEdge> {
    let mut d = EdgeDigest::new(PairHasher::new(algo, A, B), depth);
    for e in edges {
        let (p, s, st) = edge_strings(e.0, e.1, e.2, e.3);
        d.insert(
            e,
            EdgeRef {
                publisher: &p,
                subscriber: &s,
                state: st,
            },
        );
    }
    d
}

fn bucket_of(d: &mut EdgeDigest<RawEdge>, e: RawEdge, depth: u8) -> Prefix {
    let (p, s, st) = edge_strings(e.0, e.1, e.2, e.3);
    let leaf = d.leaf(EdgeRef {
        publisher: &p,
        subscriber: &s,
        state: st,
    });
    Prefix::of_hash(leaf.placement(), depth)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn digest_does_not_depend_on_insertion_order(set in edge_set(), seed in any::<u64>(), algo in algo()) {
        let forward: Vec<RawEdge> = set.iter().copied().collect();
        let mut shuffled = forward.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = digest_of(algo, 2, forward);
        let b = digest_of(algo, 2, shuffled);
        prop_assert_eq!(a.tree(), b.tree());
    }

    #[test]
    fn incremental_updates_equal_a_rebuild(
        ops in proptest::collection::vec((any::<bool>(), (0u16..32, 0u16..32, any::<bool>(), any::<bool>())), 0..400),
        depth in 0u8..4,
    ) {
        let mut inc = digest_of(HashAlgo::Blake3, depth, []);
        let mut truth = BTreeSet::new();
        for (add, e) in ops {
            let (p, s, st) = edge_strings(e.0, e.1, e.2, e.3);
            let r = EdgeRef { publisher: &p, subscriber: &s, state: st };
            if add && truth.insert(e) {
                inc.insert(e, r);
            } else if !add {
                prop_assert_eq!(inc.remove(&e, r), truth.remove(&e));
            }
        }
        let rebuilt = digest_of(HashAlgo::Blake3, depth, truth.iter().copied());
        prop_assert_eq!(inc.tree(), rebuilt.tree());
        // The bulk build path gives the same tree too.
        let strings: Vec<(RawEdge, (String, String, EdgeState))> =
            truth.iter().map(|e| (*e, edge_strings(e.0, e.1, e.2, e.3))).collect();
        let bulk = EdgeDigest::build(
            PairHasher::new(HashAlgo::Blake3, A, B),
            0,
            strings.iter().map(|(k, (p, s, st))| (*k, EdgeRef { publisher: p, subscriber: s, state: *st })),
        );
        let mut bulk = bulk;
        bulk.set_depth(depth, |k, h| {
            let (_, (p, s, st)) = strings.iter().find(|(e, _)| e == k).unwrap();
            h.leaf(EdgeRef { publisher: p, subscriber: s, state: *st })
        });
        prop_assert_eq!(bulk.tree(), rebuilt.tree());
    }

    #[test]
    fn comparison_finds_exactly_the_differing_buckets(
        base in edge_set(),
        only_a in proptest::collection::btree_set((64u16..80, 0u16..64, any::<bool>(), any::<bool>()), 0..12),
        only_b in proptest::collection::btree_set((80u16..96, 0u16..64, any::<bool>(), any::<bool>()), 0..12),
        depth_a in 0u8..4,
        depth_b in 0u8..4,
    ) {
        let a = digest_of(HashAlgo::Blake3, depth_a, base.iter().chain(&only_a).copied());
        let b = digest_of(HashAlgo::Blake3, depth_b, base.iter().chain(&only_b).copied());
        let depth = depth_a.min(depth_b);
        let mut probe = digest_of(HashAlgo::Blake3, depth, []);
        let expected: BTreeSet<Prefix> =
            only_a.iter().chain(&only_b).map(|e| bucket_of(&mut probe, *e, depth)).collect();
        let found: BTreeSet<Prefix> = a.tree().diff(b.tree()).into_iter().collect();
        prop_assert_eq!(found, expected);
    }

    #[test]
    fn any_single_edge_change_changes_the_root(set in edge_set(), pick in any::<prop::sample::Index>(), what in 0u8..3) {
        prop_assume!(!set.is_empty());
        let e = *pick.get(&set.iter().collect::<Vec<_>>());
        let changed = match what {
            0 => (e.0, e.1, e.2, !e.3),          // state
            1 => (e.0, e.1, !e.2, e.3),          // direction (publisher and subscriber swap)
            _ => (e.0 + 100, e.1, e.2, e.3),     // another user
        };
        let before = digest_of(HashAlgo::Blake3, 2, set.iter().copied());
        let mut after_set = set.clone();
        after_set.remove(e);
        after_set.insert(changed);
        let after = digest_of(HashAlgo::Blake3, 2, after_set.iter().copied());
        prop_assert_ne!(before.tree().fingerprint(Prefix::ROOT), after.tree().fingerprint(Prefix::ROOT));
        // Removal alone changes it too.
        let mut removed = set.clone();
        removed.remove(e);
        let removed = digest_of(HashAlgo::Blake3, 2, removed);
        prop_assert_ne!(before.tree().root(), removed.tree().root());
    }

    #[test]
    fn any_single_presence_change_changes_the_root(
        n in 1usize..40,
        pick in any::<prop::sample::Index>(),
        what in 0u8..6,
        algo in algo(),
    ) {
        let pubs: Vec<(BareJid, PublisherPresence)> = (0..n)
            .map(|i| {
                let mut p = PublisherPresence::default();
                p.resources.insert("r".into(), ResourcePresence { priority: (i % 7) as i8, ..Default::default() });
                (jid(&user(A, i as u16)), p)
            })
            .collect();
        let build = |pubs: &[(BareJid, PublisherPresence)]| {
            let mut d = PresenceDigest::new(PairHasher::new(algo, A, B), 1);
            for (j, p) in pubs {
                d.set(j, p);
            }
            d
        };
        let before = build(&pubs);
        let mut changed = pubs.clone();
        let i = pick.index(n);
        let p = &mut changed[i].1;
        match what {
            0 => p.resources.get_mut("r").unwrap().show = Show::Xa,
            1 => p.resources.get_mut("r").unwrap().priority = 100,
            2 => { p.resources.get_mut("r").unwrap().statuses.insert("en".into(), "hi".into()); }
            3 => { p.except.insert(jid("tybalt@b.example")); }
            4 => { p.resources.insert("second".into(), ResourcePresence::default()); }
            _ => { p.resources.clear(); } // unavailable: leaves the map
        }
        let after = build(&changed);
        prop_assert_ne!(before.tree().fingerprint(Prefix::ROOT), after.tree().fingerprint(Prefix::ROOT));
        // And the incremental update of `before` reaches the same tree as the rebuild.
        let mut inc = before.clone();
        inc.set(&changed[i].0, &changed[i].1);
        prop_assert_eq!(inc.tree(), after.tree());
    }

    #[test]
    fn mirrored_rosters_project_equal_edge_sets(
        relations in proptest::collection::btree_map((0u16..24, 0u16..24), (0u8..9, any::<bool>()), 0..120),
    ) {
        // Each relation between a@A and b@B is one of RFC 6121's nine states as seen from a
        // (b's item for a is its mirror image), with an optional pre-approval on one side and
        // a block, neither of which may change the projection.
        let states = presence_sync::model::NamedState::ALL;
        let mut rosters_a: BTreeMap<BareJid, Roster> = BTreeMap::new();
        let mut rosters_b: BTreeMap<BareJid, Roster> = BTreeMap::new();
        for (&(a, b), &(state, approve)) in &relations {
            let ja = jid(&user(A, a));
            let jb = jid(&user(B, b));
            let sa = Subscription::named(states[state as usize]);
            let sb = mirror(sa);
            let sa = if approve { sa.with_approval().unwrap_or(sa) } else { sa };
            rosters_a.entry(ja.clone()).or_default().set(jb.clone(), sa);
            rosters_b.entry(jb).or_default().set(ja, sb);
        }
        let ea: BTreeSet<Edge> = project(rosters_a.iter(), B).collect();
        let eb: BTreeSet<Edge> = project(rosters_b.iter(), A).collect();
        prop_assert_eq!(&ea, &eb);
        let da = EdgeDigest::build(PairHasher::new(HashAlgo::Blake3, A, B), ea.len() as u64, ea.iter().map(|e| (e.clone(), e.into())));
        let db = EdgeDigest::build(PairHasher::new(HashAlgo::Blake3, B, A), eb.len() as u64, eb.iter().map(|e| (e.clone(), e.into())));
        prop_assert_eq!(da.tree().fingerprint(Prefix::ROOT), db.tree().fingerprint(Prefix::ROOT));
    }
}

/// The state the contact's roster holds when the user's roster holds `s` and both agree.
fn mirror(s: Subscription) -> Subscription {
    use presence_sync::model::NamedState::*;
    let (to, from, po, pi) = (s.to(), s.from(), s.pending_out(), s.pending_in());
    let named = match (from, to, pi, po) {
        // contact's to = user's from; contact's pending_out = user's pending_in.
        (false, false, false, false) => None,
        (false, false, true, false) => NonePendingOut,
        (false, false, false, true) => NonePendingIn,
        (false, false, true, true) => NonePendingOutIn,
        (true, false, false, false) => To,
        (true, false, false, true) => ToPendingIn,
        (false, true, false, false) => From,
        (false, true, true, false) => FromPendingOut,
        (true, true, false, false) => Both,
        _ => unreachable!(),
    };
    Subscription::named(named)
}

#[test]
fn one_sided_roster_differences_show_up() {
    // A "ghost contact": A's user believes b is subscribed, b's roster says nothing.
    let mut ra = Roster::new();
    ra.set(
        jid("u1@b.example"),
        Subscription::named(presence_sync::model::NamedState::From),
    );
    let users_a = [(jid("u0@a.example"), ra)];
    let ea: Vec<Edge> = project(users_a.iter().map(|(u, r)| (u, r)), B).collect();
    assert_eq!(
        ea,
        vec![Edge::new(
            jid("u0@a.example"),
            jid("u1@b.example"),
            EdgeState::Subscribed
        )]
    );
    let empty = EdgeDigest::<Edge>::new(PairHasher::new(HashAlgo::Blake3, A, B), 1);
    let da = EdgeDigest::build(
        PairHasher::new(HashAlgo::Blake3, A, B),
        1,
        ea.iter().map(|e| (e.clone(), e.into())),
    );
    assert_eq!(empty.tree().diff(&rebuilt_depth(&da, 1)).len(), 1);
}

fn rebuilt_depth(d: &EdgeDigest<Edge>, depth: u8) -> BucketTree {
    let mut d = d.clone();
    d.set_depth(depth, |e, h| h.leaf(e.into()));
    d.tree().clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// XEP PS-15: any node down to 8 nibbles has a value, equal to what a deeper tree holds.
    #[test]
    fn nodes_below_the_tree_depth_are_computed(set in edge_set(), prefix_bits in any::<u32>(), len in 0u8..=8) {
        let shallow = digest_of(HashAlgo::Blake3, 1, set.iter().copied());
        let deep = digest_of(HashAlgo::Blake3, 3, set.iter().copied());
        let prefix = Prefix::of_hash((prefix_bits as u64) << 32, len);
        let leaf_of = |k: &RawEdge, h: &mut presence_sync::digest::EdgeHasher| {
            let (p, s, st) = edge_strings(k.0, k.1, k.2, k.3);
            h.leaf(EdgeRef { publisher: &p, subscriber: &s, state: st })
        };
        let a = shallow.node_value(prefix, leaf_of);
        let b = deep.node_value(prefix, leaf_of);
        prop_assert_eq!(a, b);
        if let Some(v) = deep.tree().node(prefix) {
            prop_assert_eq!(&a, v);
        }
        // And it counts exactly the items under the prefix.
        let mut probe = digest_of(HashAlgo::Blake3, 0, []);
        let under = set.iter().filter(|e| prefix.contains(bucket_of(&mut probe, **e, len))).count();
        prop_assert_eq!(a.count(), under as u64);
    }
}
