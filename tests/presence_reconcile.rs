//! Reconciliation of a presence set between a cache holder and the authoritative server
//! (XEP §Reconciliation), every message passed through the wire format: random sets, random
//! differences of every kind, tight and default limits, windows of 1 and 4. Always converges
//! to the published set, never flaps a publisher that stays available, and costs messages in
//! proportion to the differences.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jid::BareJid;
use presence_sync::digest::{HashAlgo, PairHasher, Prefix};
use presence_sync::engine::{CacheChange, PresenceSet, Puller, answer};
use presence_sync::model::{PublisherPresence, ResourcePresence, Show};
use presence_sync::wire::{
    Direction, Domains, IdList, Ids, Limits, Reconcile, ReconcileEntry, ReconcileSet, WireElement,
};
use presence_sync::workload::SplitMix64;
use proptest::prelude::*;

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn pair() -> PairHasher {
    PairHasher::new(HashAlgo::Blake3, "a.example", "b.example")
}

fn presence(rng: &mut SplitMix64) -> PublisherPresence {
    let mut p = PublisherPresence::default();
    let shows = [Show::Available, Show::Away, Show::Chat, Show::Dnd, Show::Xa];
    for r in 0..1 + rng.below(2) {
        let mut rp = ResourcePresence {
            show: shows[rng.below(5) as usize],
            priority: rng.below(10) as i8,
            ..Default::default()
        };
        if rng.below(3) == 0 {
            rp.statuses
                .insert(String::new(), format!("status {}", rng.below(1000)));
        }
        p.resources.insert(format!("r{r}"), rp);
    }
    if rng.below(20) == 0 {
        p.except
            .insert(jid(&format!("blocked{}@b.example", rng.below(5))));
    }
    p
}

/// A published set of `n` publishers and a cache that differs from it in `d` ways (a third
/// changed, a third missing, a third stale extras).
fn sets(n: u64, d: u64, seed: u64, depth_pub: u8, depth_cache: u8) -> (PresenceSet, PresenceSet) {
    let mut rng = SplitMix64::new(seed);
    let mut published = PresenceSet::new(pair(), depth_pub);
    let mut cache = PresenceSet::new(pair(), depth_cache);
    for i in 0..n {
        let p = jid(&format!("u{i}@a.example"));
        let state = presence(&mut rng);
        published.set(&p, state.clone());
        cache.set(&p, state);
    }
    for k in 0..d {
        let i = rng.below(n.max(1));
        let p = jid(&format!("u{i}@a.example"));
        match k % 3 {
            0 => {
                cache.set(&p, presence(&mut rng));
            }
            1 => {
                cache.remove(&p);
            }
            _ => {
                cache.set(&jid(&format!("gone{k}@a.example")), presence(&mut rng));
            }
        }
    }
    (published, cache)
}

/// Serialises `r`, parses it back and runs the receiver's checks: direction, limits (PS-30,
/// PS-82) and domains (publishers of a.example, excepts of b.example).
fn through_wire(r: &Reconcile, direction: Direction, limits: &Limits) -> Reconcile {
    let bytes = r.to_xml_bytes().expect("serialises");
    let parsed = Reconcile::parse_bytes(&bytes).expect("parses back");
    parsed
        .check_direction(direction)
        .expect("allowed in this direction");
    let (local, peer) = match direction {
        Direction::Query => ("a.example", "b.example"),
        Direction::Answer => ("b.example", "a.example"),
    };
    let domains = Domains::new(local, peer).unwrap();
    parsed
        .validate(limits, &domains)
        .expect("within the limits and domains");
    assert_eq!(&parsed, r);
    parsed
}

struct Outcome {
    queries: usize,
    changes: Vec<CacheChange>,
}

/// Runs the reconciliation with up to `window` queries in flight, answers in order.
fn run(
    published: &mut PresenceSet,
    cache: &mut PresenceSet,
    limits: &Limits,
    window: usize,
    priority: Vec<Prefix>,
) -> Outcome {
    run_puller(published, cache, limits, window, Puller::new(priority))
}

/// [`run`] with a puller set up by the caller.
fn run_puller(
    published: &mut PresenceSet,
    cache: &mut PresenceSet,
    limits: &Limits,
    window: usize,
    mut puller: Puller,
) -> Outcome {
    let mut in_flight: VecDeque<Reconcile> = VecDeque::new();
    let mut changes = Vec::new();
    for _ in 0..100_000 {
        while in_flight.len() < window {
            match puller.next_query(cache, limits) {
                Some(q) => {
                    let bytes = q.to_xml_bytes().unwrap().len();
                    assert!(bytes <= limits.max_bytes as usize, "query of {bytes} bytes");
                    let q = through_wire(&q, Direction::Query, limits);
                    let a = answer(published, &q, limits).expect("an answer fits");
                    let bytes = a.to_xml_bytes().unwrap().len();
                    assert!(
                        bytes <= limits.max_bytes as usize,
                        "answer of {bytes} bytes"
                    );
                    in_flight.push_back(through_wire(&a, Direction::Answer, limits));
                }
                None => break,
            }
        }
        match in_flight.pop_front() {
            Some(a) => changes.extend(puller.handle_answer(cache, &a).expect("a related answer")),
            None => {
                assert!(
                    puller.is_done(),
                    "nothing to send, nothing in flight, yet not done: {puller:?}"
                );
                return Outcome {
                    queries: puller.queries(),
                    changes,
                };
            }
        }
    }
    panic!("the reconciliation did not end");
}

fn contents(s: &PresenceSet) -> BTreeMap<BareJid, PublisherPresence> {
    s.iter().map(|(j, p)| (j.clone(), p.clone())).collect()
}

fn check_converged(
    published: &PresenceSet,
    cache: &PresenceSet,
    before: &BTreeMap<BareJid, PublisherPresence>,
    changes: &[CacheChange],
) {
    assert_eq!(cache.root(), published.root());
    assert_eq!(contents(cache), contents(published));
    // No flapping: a publisher available before and after is never reported unavailable.
    for c in changes {
        if c.new.is_none() {
            assert!(
                published.get(&c.publisher).is_none() || !before.contains_key(&c.publisher),
                "{} flapped to unavailable",
                c.publisher
            );
        }
    }
    // Every change is real: replaying them on the old cache gives the new one.
    let mut replay = before.clone();
    for c in changes {
        assert_eq!(
            replay.get(&c.publisher),
            c.old.as_ref(),
            "change of {} starts from the state it had",
            c.publisher
        );
        match &c.new {
            Some(p) => replay.insert(c.publisher.clone(), p.clone()),
            None => replay.remove(&c.publisher),
        };
    }
    assert_eq!(replay, contents(published));
}

#[test]
fn equal_sets_need_no_query_beyond_the_root() {
    let (mut published, mut cache) = sets(500, 0, 1, 2, 2);
    assert_eq!(published.root(), cache.root());
    let out = run(&mut published, &mut cache, &Limits::default(), 1, vec![]);
    // The session would not start a descent at all; if asked to, it costs one exchange.
    assert_eq!(out.queries, 1);
    assert!(out.changes.is_empty());
}

#[test]
fn empty_cache_is_filled_and_priority_buckets_come_first() {
    let (mut published, _) = sets(3_000, 0, 2, 2, 2);
    let mut cache = PresenceSet::new(pair(), 2);
    let wanted = jid("u17@a.example");
    let bucket = cache.prefix_of(&wanted, 2);
    let out = run(
        &mut published,
        &mut cache,
        &Limits::default(),
        4,
        vec![bucket],
    );
    check_converged(&published, &cache, &BTreeMap::new(), &out.changes);
    let first = out
        .changes
        .iter()
        .position(|c| c.publisher == wanted)
        .unwrap();
    let bucket_size = published.ids_under_count(bucket);
    assert!(
        first < bucket_size,
        "u17 arrived as change {first}, its bucket holds {bucket_size}"
    );
}

#[test]
fn nested_prefixes_in_one_query_bring_each_item_once() {
    // PS-21 forbids naming a prefix twice in a query, not nesting one in another: the
    // answer must still carry each publisher in one item only.
    let (mut published, _) = sets(3_000, 0, 3, 2, 2);
    let cache = PresenceSet::new(pair(), 2);
    let wanted = jid("u17@a.example");
    let mut q = Reconcile::new(ReconcileSet::Presence);
    for len in [2, 8, 5] {
        q.entries.push(ReconcileEntry::Ids(Ids {
            prefix: published.prefix_of(&wanted, len),
            ids: IdList(Vec::new()),
        }));
    }
    let q = through_wire(&q, Direction::Query, &Limits::default());
    let a = answer(&mut published, &q, &Limits::default()).unwrap();
    let a = through_wire(&a, Direction::Answer, &Limits::default());
    let prefix = published.prefix_of(&wanted, 2);
    let bucket = published.ids_under_count(prefix);
    assert_eq!(
        a.entries.len(),
        bucket,
        "one item per publisher of the bucket"
    );
    assert!(cache.is_empty());
}

#[test]
fn exact_priority_pulls_come_first_and_nested_buckets_wait() {
    // The most urgent publishers are pulled alone, at 8 nibbles (XEP §Priority Ordering),
    // and the bucket of one of them is pulled later, not in the same query.
    let (mut published, _) = sets(3_000, 0, 4, 2, 2);
    let mut cache = PresenceSet::new(pair(), 2);
    let urgent = [jid("u17@a.example"), jid("u2900@a.example")];
    let mut priority: Vec<Prefix> = urgent.iter().map(|u| cache.prefix_of(u, 8)).collect();
    priority.push(cache.prefix_of(&urgent[0], 2));
    let out = run(&mut published, &mut cache, &Limits::default(), 4, priority);
    check_converged(&published, &cache, &BTreeMap::new(), &out.changes);
    let first: Vec<&BareJid> = out.changes.iter().take(2).map(|c| &c.publisher).collect();
    assert_eq!(first, urgent.iter().collect::<Vec<_>>());
}

#[test]
fn urgent_publishers_go_many_to_a_query_and_what_does_not_fit_is_handed_back() {
    // PS-31 counts an <ids/> of 8 nibbles at 64 bytes, a split at 512: a restarted server
    // pulls the contacts of its active users up to max-items to a query, not ⌊max-bytes / 512⌋,
    // and a responder whose items for them do not all fit hands the others back as their ids.
    for max_bytes in [65_536u32, 16_384] {
        let limits = Limits {
            max_bytes,
            ..Limits::default()
        };
        let (mut published, _) = sets(3_000, 0, 5, 2, 2);
        let present: Vec<BareJid> = (0..1_000)
            .map(|i| jid(&format!("u{}@a.example", 3 * i)))
            .collect();
        let absent = (0..500).map(|i| jid(&format!("away{i}@a.example")));
        let wanted: Vec<BareJid> = present.iter().cloned().chain(absent).collect();
        let mut cache = PresenceSet::new(pair(), 2);
        let urgent: Vec<Prefix> = wanted.iter().map(|j| cache.prefix_of(j, 8)).collect();

        let mut puller = Puller::new(urgent.clone());
        let q = puller.next_query(&mut cache, &limits).expect("a query");
        let most = (max_bytes as usize / 64).min(limits.max_items as usize);
        assert_eq!(q.entries.len(), most, "max-bytes {max_bytes}");
        assert!(q.entries.len() > max_bytes as usize / 512);
        let a = answer(&mut published, &q, &limits).expect("an answer of hand-backs fits");
        let handed_back = a
            .entries
            .iter()
            .filter(|e| matches!(e, ReconcileEntry::Ids(_)))
            .count();
        let items = a.items().count();
        assert!(items > 0, "max-bytes {max_bytes}");
        if max_bytes == 16_384 {
            assert!(
                handed_back > 0,
                "{items} items in 16 KB: some must be handed back"
            );
        }

        let out = run(&mut published, &mut cache, &limits, 4, urgent);
        check_converged(&published, &cache, &BTreeMap::new(), &out.changes);
        // Every urgent publisher arrives before any other (hand-backs are asked for with a
        // lack before the descent from the root brings the rest).
        let first: BTreeSet<&BareJid> = out
            .changes
            .iter()
            .take(present.len())
            .map(|c| &c.publisher)
            .collect();
        assert_eq!(first, present.iter().collect(), "max-bytes {max_bytes}");
    }
}

#[test]
fn the_hand_backs_of_an_urgent_pull_are_urgent_too() {
    // PS-52: a restart's pulls of active users' contacts go before its live changes; when an
    // answer hands some of them back (PS-31), asking for those finishes the same pulls, so it
    // goes first as well, and no further.
    let limits = Limits {
        max_bytes: 16_384,
        ..Limits::default()
    };
    let (mut published, _) = sets(3_000, 0, 5, 2, 2);
    let wanted: Vec<BareJid> = (0..200)
        .map(|i| jid(&format!("u{}@a.example", 3 * i)))
        .chain((0..50).map(|i| jid(&format!("away{i}@a.example"))))
        .collect();
    let mut cache = PresenceSet::new(pair(), 2);
    let urgent: Vec<Prefix> = wanted.iter().map(|j| cache.prefix_of(j, 8)).collect();
    let mut puller = Puller::new(urgent.clone()).urgent(urgent);
    assert!(puller.has_urgent());
    let q = puller.next_query(&mut cache, &limits).expect("a query");
    assert_eq!(
        q.entries.len(),
        wanted.len(),
        "one query holds every urgent pull"
    );
    assert!(!puller.has_urgent(), "every urgent pull is sent");
    let a = answer(&mut published, &q, &limits).expect("an answer");
    let handed_back = a
        .entries
        .iter()
        .filter(|e| matches!(e, ReconcileEntry::Ids(_)))
        .count();
    assert!(handed_back > 0, "200 items do not fit in 16 KB");
    puller
        .handle_answer(&mut cache, &a)
        .expect("a valid answer");
    assert!(
        puller.has_urgent(),
        "the handed-back ids are still to be asked for"
    );
    let q = puller.next_query(&mut cache, &limits).expect("the lack");
    assert!(matches!(q.entries[0], ReconcileEntry::Lack(_)), "{q:?}");
    assert!(!puller.has_urgent(), "asked for");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn converges_without_flapping(
        n in 0u64..3_000,
        d in 0u64..200,
        seed in any::<u64>(),
        depths in (0u8..4, 0u8..4),
        tight in any::<bool>(),
        window in prop_oneof![Just(1usize), Just(4usize)],
    ) {
        let (mut published, mut cache) = sets(n, d, seed, depths.0, depths.1);
        let before = contents(&cache);
        let limits = if tight {
            Limits { max_items: 8, max_bytes: 4096, window: window as u32, leaf_items: 4 }
        } else {
            Limits::default()
        };
        let out = run(&mut published, &mut cache, &limits, window, vec![]);
        check_converged(&published, &cache, &before, &out.changes);
    }
}

#[test]
fn cost_grows_with_differences_not_with_size() {
    let mut counts = Vec::new();
    for n in [10_000u64, 100_000] {
        let (mut published, mut cache) = sets(n, 30, 9, 3, 3);
        let before = contents(&cache);
        let out = run(&mut published, &mut cache, &Limits::default(), 4, vec![]);
        check_converged(&published, &cache, &before, &out.changes);
        counts.push(out.queries);
    }
    // Ten times the publishers, same differences: at most one more level of descent.
    assert!(counts[1] <= counts[0] + 2, "queries {counts:?}");
}

/// XEP §Sketches: a cache holder told how many entries the peer changed starts with a sketch
/// of its whole cache, which decodes: one query brings every difference (5000 entries, 30
/// changes). Told too few, the sketch does not decode, the root comes back as a split and
/// the descent finds the rest; either way the cache ends equal, without flapping.
#[test]
fn a_sketch_finds_the_difference_in_one_query_and_a_short_one_falls_back_to_the_descent() {
    let limits = Limits::default();
    for (n, told, most_queries) in [(5000, 30, 1), (5000, 1, usize::MAX)] {
        let (mut published, mut cache) = sets(n, 30, 11, 3, 3);
        let before = contents(&cache);
        let puller = Puller::new(vec![]).sketching(Some(told));
        let out = run_puller(&mut published, &mut cache, &limits, 4, puller);
        check_converged(&published, &cache, &before, &out.changes);
        assert!(
            out.queries <= most_queries,
            "{n} entries, told {told}: {} queries",
            out.queries
        );
        if told == 1 {
            assert!(
                out.queries > 2,
                "the undersized sketch fell back: {} queries",
                out.queries
            );
        }
    }
}

#[test]
fn pulls_of_one_publisher_are_sized_by_the_share_the_peer_publishes() {
    // A restarted server pulls its users' contacts one by one; most are offline and their
    // pulls bring nothing. Told that the peer publishes a third of the publishers its users
    // follow, it puts about three times as many of them in a query (up to max-items), and the
    // answer still fits without a hand-back.
    let limits = Limits {
        max_items: 512,
        ..Limits::default()
    };
    let (mut published, _) = sets(3_000, 0, 5, 2, 2);
    let offline = (0..6_000).map(|i| jid(&format!("away{i}@a.example")));
    let wanted: Vec<BareJid> = (0..3_000)
        .map(|i| jid(&format!("u{i}@a.example")))
        .chain(offline)
        .collect();
    let mut order = SplitMix64::new(7);
    let mut wanted = wanted;
    for i in (1..wanted.len()).rev() {
        wanted.swap(i, order.below(i as u64 + 1) as usize);
    }
    let mut cache = PresenceSet::new(pair(), 2);
    let urgent: Vec<Prefix> = wanted.iter().map(|j| cache.prefix_of(j, 8)).collect();
    let mut sized = Puller::new(urgent.clone())
        .expecting(3_000)
        .following(9_000);
    let mut guessing = Puller::new(urgent.clone()).expecting(3_000);
    let q = sized.next_query(&mut cache, &limits).expect("a query");
    let g = guessing.next_query(&mut cache, &limits).expect("a query");
    assert!(
        2 * q.entries.len() > 3 * g.entries.len(),
        "told the share: {} pulls; not told: {}",
        q.entries.len(),
        g.entries.len()
    );
    let a = answer(&mut published, &q, &limits).expect("an answer fits");
    assert!(
        !a.entries
            .iter()
            .any(|e| matches!(e, ReconcileEntry::Ids(_))),
        "nothing handed back"
    );
    assert!(a.items().count() > 100, "{} items", a.items().count());
    let mut changes = sized
        .handle_answer(&mut cache, &a)
        .expect("a related answer");
    let out = run_puller(&mut published, &mut cache, &limits, 4, sized);
    changes.extend(out.changes);
    check_converged(&published, &cache, &BTreeMap::new(), &changes);
}

#[test]
fn a_cache_filled_by_pulls_needs_no_descent_from_the_root() {
    // Pulls of every publisher's bucket fill an empty cache; once it equals the published
    // root of the hello, the descent from the root would only confirm it (XEP §Starting and
    // Ending a Descent): told that root, the cache holder sends one query fewer.
    let limits = Limits::default();
    for n in [40u64, 3_000] {
        let (mut published, _) = sets(n, 0, 11, 2, 2);
        let root = published.root().0;
        let mut cache = PresenceSet::new(pair(), 2);
        let buckets: BTreeSet<Prefix> = published
            .iter()
            .map(|(j, _)| j.clone())
            .collect::<Vec<_>>()
            .iter()
            .map(|j| cache.prefix_of(j, 2))
            .collect();
        let pulls: Vec<Prefix> = buckets.into_iter().collect();
        let mut other = PresenceSet::new(pair(), 2);
        let plain = run(&mut published, &mut other, &limits, 4, pulls.clone());
        check_converged(&published, &other, &BTreeMap::new(), &plain.changes);
        let told = run_puller(
            &mut published,
            &mut cache,
            &limits,
            4,
            Puller::new(pulls).expecting(n).verifying(root),
        );
        check_converged(&published, &cache, &BTreeMap::new(), &told.changes);
        // The descent from the root is a query of its own (a sketch, or splits and ids).
        assert!(
            told.queries < plain.queries,
            "n = {n}: {} and {}",
            told.queries,
            plain.queries
        );
    }
}
