//! Reconciliation of the edge set (XEP §Reconciliation) and the repairs that follow it (XEP
//! §Repair of Subscription Mismatches), every message passed through the wire format: random
//! edge sets with differences of every kind (including the same pair subscribed on one side
//! and pending on the other), random depths per side, tight and default limits, windows of 1
//! and 4. Each side learns exactly the symmetric difference, mirrored; the cost grows with the
//! differences, not the size; and the repairs, applied through RFC 6121, make both projections
//! equal while keeping pre-approvals.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jid::BareJid;
use presence_sync::digest::{HashAlgo, PairHasher, depth_for};
use presence_sync::engine::repair::{apply_locally, repair_threshold, repairs_suspended};
use presence_sync::engine::{
    Decision, EdgeDiff, EdgeReconciler, EdgeSet, Holder, RepairStanza, decide, is_edge_driver, plan,
};
use presence_sync::model::edge::project;
use presence_sync::model::{Edge, EdgeState, NamedState, Roster, Subscription, SubscriptionStanza};
use presence_sync::wire::{Direction, Domains, Limits, Reconcile, WireElement, ns};
use presence_sync::workload::SplitMix64;
use proptest::prelude::*;

const A: &str = "a.example";
const B: &str = "b.example";

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn pair() -> PairHasher {
    PairHasher::new(HashAlgo::Blake3, A, B)
}

fn tight(window: u32) -> Limits {
    Limits {
        max_items: 8,
        max_bytes: 4096,
        window,
        leaf_items: 4,
    }
}

/// Edge `i` of a family: its own publisher, alternating between the two domains.
fn edge(family: &str, i: u64, state: EdgeState) -> Edge {
    let (p, s) = if i % 2 == 0 {
        (format!("{family}{i}@{A}"), format!("v{}@{B}", i / 7))
    } else {
        (format!("{family}{i}@{B}"), format!("u{}@{A}", i / 7))
    };
    Edge::new(jid(&p), jid(&s), state)
}

/// A's and B's edges: `n` shared, then `d_a` and `d_b` held by one side only, and `flips` pairs
/// subscribed on one side and pending on the other.
fn edge_sets(n: u64, d_a: u64, d_b: u64, flips: u64, seed: u64) -> (Vec<Edge>, Vec<Edge>) {
    let mut rng = SplitMix64::new(seed);
    let mut state = || {
        if rng.below(4) == 0 {
            EdgeState::Pending
        } else {
            EdgeState::Subscribed
        }
    };
    let shared: Vec<Edge> = (0..n).map(|i| edge("c", i, state())).collect();
    let (mut a, mut b) = (shared.clone(), shared);
    a.extend((0..d_a).map(|i| edge("x", i, state())));
    b.extend((0..d_b).map(|i| edge("y", i, state())));
    for i in 0..flips {
        a.push(edge("f", i, EdgeState::Subscribed));
        b.push(edge("f", i, EdgeState::Pending));
    }
    (a, b)
}

/// Serialises `r`, parses it back and runs the receiver's checks: direction (PS-22), limits
/// (PS-30, PS-82) and domains (edges between the two domains). `to_b`: B receives it.
fn through_wire(r: &Reconcile, direction: Direction, limits: &Limits, to_b: bool) -> Reconcile {
    let bytes = r.to_xml_bytes().expect("serialises");
    assert!(
        bytes.len() <= limits.max_bytes as usize,
        "{} bytes",
        bytes.len()
    );
    let parsed = Reconcile::parse_bytes(&bytes).expect("parses back");
    parsed
        .check_direction(direction)
        .expect("allowed in this direction");
    let domains = if to_b {
        Domains::new(B, A)
    } else {
        Domains::new(A, B)
    }
    .unwrap();
    parsed
        .validate(limits, &domains)
        .expect("within the limits and domains");
    assert_eq!(&parsed, r);
    parsed
}

/// Two servers' edge sets and reconcilers.
struct Side {
    set: EdgeSet,
    sync: EdgeReconciler,
    answers: VecDeque<Reconcile>,
}

/// Runs the descent, A driving (it sorts first), with up to `window` queries in flight per
/// side; returns both diffs and the number of messages (queries and answers).
fn run(a: &mut EdgeSet, b: &mut EdgeSet, limits: &Limits) -> (EdgeDiff, EdgeDiff, usize) {
    assert!(is_edge_driver(A, B) && !is_edge_driver(B, A));
    let side = |set: &EdgeSet| Side {
        set: set.clone(),
        sync: EdgeReconciler::new(),
        answers: VecDeque::new(),
    };
    let mut sides = [side(a), side(b)];
    let mut messages = 0;
    let mut first = sides[0].sync.start(&mut sides[0].set, limits);
    for _ in 0..1_000_000 {
        let mut progress = false;
        for from in 0..2 {
            while sides[from].sync.outstanding() < limits.window as usize || first.is_some() {
                let [x, y] = &mut sides;
                let (me, peer) = if from == 0 { (x, y) } else { (y, x) };
                let q = match first.take() {
                    Some(q) => q,
                    None => match me.sync.next_query(&mut me.set, limits) {
                        Some(q) => q,
                        None => break,
                    },
                };
                let q = through_wire(&q, Direction::Query, limits, from == 0);
                let ans = peer
                    .sync
                    .answer(&mut peer.set, &q, limits)
                    .expect("an answer fits");
                me.answers
                    .push_back(through_wire(&ans, Direction::Answer, limits, from == 1));
                messages += 2;
            }
        }
        for s in &mut sides {
            if let Some(ans) = s.answers.pop_front() {
                s.sync
                    .handle_answer(&mut s.set, &ans)
                    .expect("a related answer");
                progress = true;
            }
        }
        if !progress {
            assert!(sides.iter().all(|s| s.sync.is_done()), "stuck");
            return (sides[0].sync.diff(), sides[1].sync.diff(), messages);
        }
    }
    panic!("the descent did not end");
}

fn set_of(edges: &[Edge]) -> BTreeSet<Edge> {
    edges.iter().cloned().collect()
}

/// Both diffs are the true symmetric difference, mirrored.
fn check_diffs(a: &[Edge], b: &[Edge], da: &EdgeDiff, db: &EdgeDiff) {
    let (sa, sb) = (set_of(a), set_of(b));
    let a_only: BTreeSet<Edge> = sa.difference(&sb).cloned().collect();
    let b_only: BTreeSet<Edge> = sb.difference(&sa).cloned().collect();
    assert_eq!(set_of(&da.only_mine), a_only);
    assert_eq!(set_of(&da.only_theirs), b_only);
    assert_eq!(set_of(&db.only_mine), b_only);
    assert_eq!(set_of(&db.only_theirs), a_only);
}

fn reconcile(a: &[Edge], b: &[Edge], depths: (u8, u8), limits: &Limits) -> usize {
    let mut sa = EdgeSet::with_edges(pair(), depths.0, a.iter().cloned());
    let mut sb = EdgeSet::with_edges(pair(), depths.1, b.iter().cloned());
    let (da, db, messages) = run(&mut sa, &mut sb, limits);
    check_diffs(a, b, &da, &db);
    messages
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn each_side_learns_the_difference_mirrored(
        n in 0u64..3_000,
        d in (0u64..80, 0u64..80, 0u64..30),
        seed in any::<u64>(),
        depths in (0u8..4, 0u8..4),
        is_tight in any::<bool>(),
        window in prop_oneof![Just(1u32), Just(4u32)],
    ) {
        let (a, b) = edge_sets(n, d.0, d.1, d.2, seed);
        let limits = if is_tight { tight(window) } else { Limits { window, ..Limits::default() } };
        reconcile(&a, &b, depths, &limits);
    }
}

#[test]
fn equal_sets_cost_one_exchange_and_empty_sides_work() {
    let (a, _) = edge_sets(500, 0, 0, 0, 1);
    assert_eq!(reconcile(&a, &a, (2, 1), &Limits::default()), 2);
    assert!(reconcile(&a, &[], (2, 0), &tight(1)) > 2);
    reconcile(&[], &a, (0, 2), &tight(4));
}

#[test]
fn messages_grow_with_differences_not_size() {
    // d = 30 differing edges (10 only in A, 10 only in B, 5 pairs in different states), the
    // same at n = 10^4 and n = 10^5, with each side's tree at the depth for n. Ten times the
    // edges add at most one level, which costs a round trip per query's worth of differing
    // nodes (PS-31: at most ⌊max-bytes / 512⌋ nodes per query, 8 with the tight limits).
    for (limits, expected, level) in [(Limits::default(), [6, 6], 2), (tight(4), [24, 30], 8)] {
        let mut counts = Vec::new();
        for n in [10_000u64, 100_000] {
            let (a, b) = edge_sets(n, 10, 10, 5, 3);
            let depth = depth_for(n);
            counts.push(reconcile(&a, &b, (depth, depth), &limits));
        }
        println!("{limits:?}: messages for n = 10^4, 10^5 with d = 30: {counts:?}");
        assert!(counts[1] <= counts[0] + level, "messages {counts:?}");
        assert_eq!(counts, expected);
    }
}

// ---- Repairs (XEP §Repair of Subscription Mismatches) ----

/// p = juliet@a.example publishes to s = romeo@b.example; A is p's server, B is s's.
fn p() -> BareJid {
    jid("juliet@a.example")
}
fn s() -> BareJid {
    jid("romeo@b.example")
}

fn e(state: EdgeState) -> Edge {
    Edge::new(p(), s(), state)
}

/// The stanzas each server sends for one row: A's item of p for s is `at_p`, B's item of s for
/// p is `at_s`; the differing edges come from the descent itself.
fn row(at_p: Subscription, at_s: Subscription) -> (Vec<RepairStanza>, Vec<RepairStanza>) {
    let rosters = |user: BareJid, contact: BareJid, sub| {
        let mut r = Roster::new();
        r.set(contact, sub);
        BTreeMap::from([(user, r)])
    };
    let (ra, rb) = (rosters(p(), s(), at_p), rosters(s(), p(), at_s));
    let a: Vec<Edge> = project(ra.iter(), B).collect();
    let b: Vec<Edge> = project(rb.iter(), A).collect();
    let mut sa = EdgeSet::with_edges(pair(), 1, a);
    let mut sb = EdgeSet::with_edges(pair(), 1, b);
    let (da, db, _) = run(&mut sa, &mut sb, &Limits::default());
    let repairs = |domain, rosters: &BTreeMap<BareJid, Roster>, d: &EdgeDiff| {
        let item = |u: &BareJid, c: &BareJid| rosters.get(u).and_then(|r| r.get(c)).copied();
        let diff = d.only_mine.iter().map(|e| (e, Holder::Mine));
        let diff = diff.chain(d.only_theirs.iter().map(|e| (e, Holder::Theirs)));
        let (stanzas, refused) = plan(domain, item, diff);
        assert!(refused.is_empty());
        stanzas
    };
    (repairs(A, &ra, &da), repairs(B, &rb, &db))
}

/// The exact stanza: type, from, to, and an empty `<repair/>` (PS-60, PS-61).
fn assert_stanza(stanzas: &[RepairStanza], kind: &str, from: &BareJid, to: &BareJid) {
    assert_eq!(stanzas.len(), 1, "{stanzas:?}");
    let el = stanzas[0].to_element();
    assert_eq!(el.name(), "presence");
    assert_eq!(el.attr("type"), Some(kind));
    assert_eq!(el.attr("from"), Some(from.as_str()));
    assert_eq!(el.attr("to"), Some(to.as_str()));
    let children: Vec<_> = el.children().collect();
    assert_eq!(children.len(), 1);
    assert!(children[0].is("repair", ns::PRESENCE_SYNC));
    assert!(children[0].attrs().is_empty() && children[0].children().next().is_none());
}

fn named(n: NamedState) -> Subscription {
    Subscription::named(n)
}

#[test]
fn row_1_subscribed_at_p_nothing_at_s() {
    let (at_a, at_b) = row(named(NamedState::From), named(NamedState::None));
    assert!(at_a.is_empty());
    assert_stanza(&at_b, "unsubscribe", &s(), &p());
}

#[test]
fn row_2_subscribed_at_p_pending_at_s_sent_once() {
    let (at_a, at_b) = row(named(NamedState::From), named(NamedState::NonePendingOut));
    assert!(at_a.is_empty());
    assert_stanza(&at_b, "subscribe", &s(), &p());
}

#[test]
fn row_3_nothing_at_p_pending_at_s() {
    let (at_a, at_b) = row(named(NamedState::None), named(NamedState::NonePendingOut));
    assert!(at_a.is_empty());
    assert_stanza(&at_b, "subscribe", &s(), &p());
}

#[test]
fn row_4_nothing_at_p_subscribed_at_s() {
    let approved = named(NamedState::None).with_approval().unwrap();
    let (at_a, at_b) = row(approved, named(NamedState::To));
    assert!(at_b.is_empty());
    assert_stanza(&at_a, "unsubscribed", &p(), &s());
    // PS-64: the repair does not cancel p's pre-approval.
    let mut sub = approved;
    apply_locally(&at_a[0], &mut sub);
    assert_eq!(sub, approved);
}

#[test]
fn row_5_pending_at_p_subscribed_at_s_sent_once() {
    let (at_a, at_b) = row(named(NamedState::NonePendingIn), named(NamedState::To));
    assert!(at_b.is_empty());
    assert_stanza(&at_a, "unsubscribed", &p(), &s());
    let mut sub = named(NamedState::NonePendingIn);
    apply_locally(&at_a[0], &mut sub);
    assert_eq!(sub, named(NamedState::None), "the stale request is dropped");
}

#[test]
fn row_6_pending_at_p_nothing_at_s() {
    let (at_a, at_b) = row(named(NamedState::NonePendingIn), named(NamedState::None));
    assert!(at_b.is_empty());
    assert_stanza(&at_a, "unsubscribed", &p(), &s());
}

#[test]
fn current_state_is_checked_and_thresholds_hold() {
    use EdgeState::{Pending, Subscribed};
    let to = named(NamedState::To);
    let from = named(NamedState::From);
    // PS-63: a stanza crossed the descent; the current state no longer calls for the repair.
    assert_eq!(
        decide(B, Some(&to), &e(Subscribed), Holder::Theirs),
        Decision::Nothing
    );
    assert_eq!(
        decide(B, None, &e(Pending), Holder::Mine),
        Decision::Nothing
    );
    assert_eq!(
        decide(A, Some(&from), &e(Subscribed), Holder::Theirs),
        Decision::Nothing
    );
    assert_eq!(
        decide(A, Some(&from), &e(Pending), Holder::Mine),
        Decision::Nothing
    );
    // Not our pair at all.
    assert_eq!(
        decide("c.example", None, &e(Subscribed), Holder::Theirs),
        Decision::Nothing
    );
    assert!(presence_sync::engine::repair::is_normalized(&p()));
    // PS-65: the larger of 1000 and 1% of the edge set.
    assert_eq!(repair_threshold(10_000), 1000);
    assert_eq!(repair_threshold(1_000_000), 10_000);
    assert!(!repairs_suspended(1000, 50_000) && repairs_suspended(1001, 50_000));
    assert!(repairs_suspended(10_001, 1_000_000) && !repairs_suspended(10_000, 1_000_000));
}

type Rosters = BTreeMap<BareJid, Roster>;

/// Random rosters on both sides for users u0..k of A and v0..k of B: each side's item for
/// each pair is drawn independently (so the sides disagree in every way the table lists),
/// with pre-approvals where RFC 6121 allows them.
fn rosters(k: u64, seed: u64) -> (Rosters, Rosters) {
    let mut rng = SplitMix64::new(seed);
    let (mut ra, mut rb) = (Rosters::new(), Rosters::new());
    for i in 0..k {
        for j in 0..k {
            if rng.below(3) != 0 {
                continue;
            }
            let (u, v) = (jid(&format!("u{i}@{A}")), jid(&format!("v{j}@{B}")));
            for (r, user, contact) in [(&mut ra, &u, &v), (&mut rb, &v, &u)] {
                let mut sub = named(NamedState::ALL[rng.below(9) as usize]);
                if rng.below(3) == 0 {
                    sub = sub.with_approval().unwrap_or(sub);
                }
                r.entry(user.clone()).or_default().set(contact.clone(), sub);
            }
        }
    }
    (ra, rb)
}

fn approvals(r: &Rosters) -> BTreeSet<(BareJid, BareJid)> {
    let all = r
        .iter()
        .flat_map(|(u, r)| r.iter().map(move |(c, s)| (u, c, s)));
    all.filter(|(_, _, s)| s.approved())
        .map(|(u, c, _)| (u.clone(), c.clone()))
        .collect()
}

/// Sends `stanzas` from the side with rosters `own` to the side with rosters `peer`, through
/// RFC 6121 (auto-replies go back the same way). Returns the (user, contact) pairs of `peer`
/// that received a `subscribe`.
fn deliver(
    stanzas: &[RepairStanza],
    own: &mut Rosters,
    peer: &mut Rosters,
) -> Vec<(BareJid, BareJid)> {
    let mut subscribed = Vec::new();
    for st in stanzas {
        apply_locally(
            st,
            own.entry(st.from.clone()).or_default().entry(st.to.clone()),
        );
        let item = peer
            .entry(st.to.clone())
            .or_default()
            .entry(st.from.clone());
        let t = item.inbound(st.kind);
        if st.kind == SubscriptionStanza::Subscribe {
            subscribed.push((st.to.clone(), st.from.clone()));
        }
        if let Some(reply) = t.auto_reply {
            own.entry(st.from.clone())
                .or_default()
                .entry(st.to.clone())
                .inbound(reply);
        }
    }
    subscribed
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn repairs_make_the_projections_equal_and_keep_pre_approvals(
        k in 1u64..12,
        seed in any::<u64>(),
        is_tight in any::<bool>(),
    ) {
        let (mut ra, mut rb) = rosters(k, seed);
        let (ea, eb): (Vec<Edge>, Vec<Edge>) =
            (project(ra.iter(), B).collect(), project(rb.iter(), A).collect());
        let mut sa = EdgeSet::with_edges(pair(), 1, ea.iter().cloned());
        let mut sb = EdgeSet::with_edges(pair(), 0, eb.iter().cloned());
        let limits = if is_tight { tight(2) } else { Limits::default() };
        let (da, db, _) = run(&mut sa, &mut sb, &limits);
        check_diffs(&ea, &eb, &da, &db);
        let mismatches = (da.only_mine.len() + da.only_theirs.len()) as u64;
        prop_assert!(!repairs_suspended(mismatches, sa.len()));
        let plan_for = |domain, r: &Rosters, d: &EdgeDiff| {
            let item = |u: &BareJid, c: &BareJid| r.get(u).and_then(|r| r.get(c)).copied();
            let diff = d.only_mine.iter().map(|e| (e, Holder::Mine));
            plan(domain, item, diff.chain(d.only_theirs.iter().map(|e| (e, Holder::Theirs)))).0
        };
        let (from_a, from_b) = (plan_for(A, &ra, &da), plan_for(B, &rb, &db));
        let before = (approvals(&ra), approvals(&rb));
        let mut consumed = deliver(&from_a, &mut ra, &mut rb);
        consumed.extend(deliver(&from_b, &mut rb, &mut ra));
        let ea: BTreeSet<Edge> = project(ra.iter(), B).collect();
        let eb: BTreeSet<Edge> = project(rb.iter(), A).collect();
        prop_assert_eq!(ea, eb);
        // PS-64: every pre-approval stays, unless a repeated request used it as RFC 6121 §3.4
        // intends (the contact is then subscribed).
        for (r, kept) in [(&ra, &before.0), (&rb, &before.1)] {
            for (user, contact) in kept {
                let sub = r[user].get(contact).unwrap();
                let used = consumed.contains(&(user.clone(), contact.clone()));
                prop_assert!(sub.approved() || (used && sub.from()), "{user} {contact}");
            }
        }
    }
}
