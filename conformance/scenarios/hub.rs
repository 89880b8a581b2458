//! The hub scenario: one server restarting with many peer domains of every size, its costs
//! per peer-size bucket against RFC 6121, and the small-peer path of XEP PS-93.

use std::collections::BTreeMap;
use std::time::Duration;

use jid::BareJid;

use super::{Body, Ctx, truth, truth_reqs};
use crate::conformance::check::Check;
use crate::conformance::record::RecordKind;
use crate::conformance::subject::{Implementation, Reference, legacy};
use crate::conformance::world::{Phase, World};
use crate::model::Subscription;
use crate::model::edge::project;
use crate::server::Flavour;
use crate::wire::ns;

/// The hub's domain.
const HUB: &str = "hub.example";

pub(super) fn hub(ctx: &Ctx<'_>) -> Body {
    let fed = ctx.spec.clone().generate_hub(HUB, ctx.hub_peers);
    let script = |w: &mut World| -> Phase {
        w.log_in_all(&fed);
        w.net.crash(HUB);
        w.net.drive_for(Duration::from_secs(5));
        w.measure_plain(|w| {
            w.net.restart(HUB);
            w.log_in(&fed, HUB);
        })
    };
    let mut w = World::new(&fed, &[HUB], |d| {
        if d == HUB {
            ctx.imp.server(d, ctx.seed)
        } else {
            Reference::default().server(d, ctx.seed ^ 0x5eed)
        }
    });
    let phase = script(&mut w);
    let mut base = World::new(&fed, &[], |d| legacy(d, Flavour::Prosody));
    let baseline = script(&mut base);
    let mut body = Body::default();
    body.check("truth", truth(
        format!(
            "the hub restarts with {} peer domains ({} edges): every user sees exactly its contacts' presence",
            ctx.hub_peers,
            fed.edges()
        ),
        &truth_reqs(&["PS-10", "PS-11", "PS-12", "PS-19", "PS-34"]),
        &phase,
    ));
    let shared = fed.edges_with(HUB);
    body.buckets = peer_buckets(&shared, HUB, &phase, &baseline);
    let threshold = ctx.imp.small_peer();
    body.check(
        "no-hello-to-small-peers",
        hellos_to_small_peers(&w, &shared, threshold),
    );
    body.check(
        "small-peer-grows",
        small_peer_grows(&mut w, &shared, threshold),
    );
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// The peer-size buckets of the hub's costs: peers with 1 shared edge, 2 to 10, 11 to 100,
/// 101 to 10^4 and more.
const BUCKETS: [(u64, u64, &str); 5] = [
    (1, 1, "1"),
    (2, 10, "2-10"),
    (11, 100, "11-100"),
    (101, 10_000, "101-10^4"),
    (10_001, u64::MAX, ">10^4"),
];

/// The costs of one peer-size bucket of the hub scenario: both directions between the hub and
/// each peer of the bucket, for the implementation and for RFC 6121.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerBucket {
    /// The bucket's label (`2-10`: peers sharing 2 to 10 edges with the hub).
    pub label: &'static str,
    /// Its peers.
    pub peers: u64,
    /// Their edges with the hub.
    pub edges: u64,
    /// Stanzas and bytes of the implementation under test.
    pub ours: (u64, u64),
    /// Stanzas and bytes of RFC 6121 (Prosody-like).
    pub rfc6121: (u64, u64),
}

impl PeerBucket {
    /// Bytes of the implementation over RFC 6121's (the tables' `ratio`).
    pub fn byte_ratio(&self) -> f64 {
        self.ours.1 as f64 / self.rfc6121.1.max(1) as f64
    }
}

/// The costs per peer-size bucket: `edges` gives each peer's shared edges with `hub`.
pub fn peer_buckets(
    edges: &BTreeMap<String, u64>,
    hub: &str,
    ours: &Phase,
    rfc6121: &Phase,
) -> Vec<PeerBucket> {
    let bucket = |n: u64| {
        BUCKETS
            .iter()
            .position(|&(lo, hi, _)| (lo..=hi).contains(&n))
    };
    let mut out: Vec<PeerBucket> = BUCKETS
        .iter()
        .map(|&(_, _, label)| PeerBucket {
            label,
            ..PeerBucket::default()
        })
        .collect();
    for &n in edges.values() {
        if let Some(i) = bucket(n) {
            out[i].peers += 1;
            out[i].edges += n;
        }
    }
    let add =
        |phase: &Phase, pick: fn(&mut PeerBucket) -> &mut (u64, u64), out: &mut Vec<PeerBucket>| {
            for (from, to, stanzas, bytes) in &phase.directions {
                let peer = if from == hub {
                    to
                } else if to == hub {
                    from
                } else {
                    continue;
                };
                if let Some(i) = edges.get(peer).copied().and_then(bucket) {
                    let c = pick(&mut out[i]);
                    c.0 += stanzas;
                    c.1 += bytes;
                }
            }
        };
    add(ours, |b| &mut b.ours, &mut out);
    add(rfc6121, |b| &mut b.rfc6121, &mut out);
    out.retain(|b| b.peers > 0);
    out
}

/// Whether `stanza` is a hello request or answer.
fn is_hello(stanza: &minidom::Element) -> bool {
    stanza.name() == "iq" && stanza.has_child("hello", ns::PRESENCE_SYNC)
}

/// PS-93: the hub sends no hello to its small peers (those that share at most `threshold`
/// edges with it, the subject's threshold; `shared` lists the peers that share any), in its
/// whole run, restarts included.
fn hellos_to_small_peers(w: &World, shared: &BTreeMap<String, u64>, threshold: u64) -> Check {
    let small = |peer: &str| shared.get(peer).copied().unwrap_or(0) <= threshold;
    let count = w
        .domains()
        .iter()
        .filter(|d| d.as_str() != HUB && small(d))
        .count();
    let sent: Vec<String> = w
        .net
        .host(HUB)
        .records()
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Out { peer, stanza, .. } if small(peer) && is_hello(stanza) => {
                Some(format!(
                    "at {}: a hello to {peer}, which shares {} edges",
                    r.time,
                    shared.get(peer).copied().unwrap_or(0)
                ))
            }
            _ => None,
        })
        .collect();
    let name =
        format!("no hello to the {count} peers that share at most {threshold} edges with the hub");
    if count == 0 {
        return Check::with(
            name,
            &["PS-93"],
            crate::conformance::check::Outcome::NotExercised(
                "every peer shares more edges with the hub".into(),
            ),
        );
    }
    Check::empty(name, &["PS-93"], &sent)
}

/// PS-93 and PS-16 with a small peer (at most `threshold` shared edges, the subject's
/// threshold): the smallest peer that shares edges with the hub and has an online user
/// (emptied first if even it shares more than the threshold). The link
/// between them is cut and restored: no hello crosses it. Then users of the two domains
/// subscribe to each other, pair by pair: no hello while the pair shares at most the
/// threshold of edges, a hello exchange once it shares more, after which an online user of
/// each is shown the other's presence.
fn small_peer_grows(w: &mut World, shared: &BTreeMap<String, u64>, threshold: u64) -> Check {
    let name = format!(
        "a small peer gets no hello until it shares more than {threshold} edges, which starts a session"
    );
    let reqs = ["PS-16", "PS-93"];
    let not_exercised = |why: &str| {
        Check::with(
            name.clone(),
            &reqs,
            crate::conformance::check::Outcome::NotExercised(why.into()),
        )
    };
    let online_user = |w: &World, d: &str| w.server(d).online().keys().next().cloned();
    let Some(u) = online_user(w, HUB) else {
        return not_exercised("no online user of the hub");
    };
    let Some((peer, &n)) = shared
        .iter()
        .filter(|(d, _)| online_user(w, d).is_some())
        .min_by_key(|&(_, n)| *n)
    else {
        return not_exercised("no peer with an online user");
    };
    let peer = peer.clone();
    if n > threshold {
        empty_pair(w, HUB, &peer);
    }
    let Some(q) = online_user(w, &peer) else {
        return not_exercised("no online user of the peer");
    };
    let hello_with = |w: &World, from: usize| {
        w.net.host(HUB).records()[from..].iter().any(|r| {
            matches!(&r.kind, RecordKind::Out { peer: p, stanza, .. } | RecordKind::In { peer: p, stanza }
                if *p == peer && is_hello(stanza))
        })
    };
    let mut problems = Vec::new();
    let relinked = w.net.host(HUB).records().len();
    w.net.partition(HUB, &peer);
    w.net.drive();
    w.net.repair(HUB, &peer);
    w.net.drive();
    w.net.drive_for(Duration::from_secs(5));
    if hello_with(w, relinked) {
        problems.push(format!(
            "a hello crossed between {HUB} and {peer}, a small peer, when their link came back"
        ));
    }
    // Pairs of users with nothing between them, the online pair first.
    let users =
        |w: &World, d: &str| -> Vec<BareJid> { w.server(d).accounts().keys().cloned().collect() };
    let (hub_users, peer_users) = (users(w, HUB), users(w, &peer));
    let unrelated = |w: &World, a: &BareJid, b: &BareJid| {
        w.server(HUB)
            .accounts()
            .get(a)
            .is_some_and(|x| x.roster.get(b).is_none())
            && w.server(&peer)
                .accounts()
                .get(b)
                .is_some_and(|x| x.roster.get(a).is_none())
    };
    let mut pairs = vec![(u.clone(), q.clone())];
    for a in &hub_users {
        for b in &peer_users {
            if pairs.len() > threshold as usize {
                break;
            }
            if (a, b) != (&u, &q) && unrelated(w, a, b) {
                pairs.push((a.clone(), b.clone()));
            }
        }
    }
    if !unrelated(w, &u, &q) {
        return not_exercised("the online users already share a roster item");
    }
    let edges = |w: &World| {
        let accounts = w.server(HUB).accounts();
        project(accounts.iter().map(|(u, acc)| (u, &acc.roster)), &peer).count() as u64
    };
    let mut grown = false;
    for (a, b) in pairs {
        let from = w.net.host(HUB).records().len();
        let before = edges(w);
        w.act(HUB, |s| s.subscribe(&a, &b));
        w.net.drive();
        w.act(&peer, |s| s.approve(&b, &a));
        w.net.drive();
        w.act(&peer, |s| s.subscribe(&b, &a));
        w.net.drive();
        w.act(HUB, |s| s.approve(&a, &b));
        w.net.drive();
        w.net.drive_for(Duration::from_secs(5));
        let after = edges(w);
        let hello = hello_with(w, from);
        if after <= threshold && hello {
            problems.push(format!(
                "a hello crossed between {HUB} and {peer} at {after} shared edges (from {before})"
            ));
        }
        if after > threshold {
            if !hello && before <= threshold {
                problems.push(format!(
                    "no hello between {HUB} and {peer} when their shared edges grew from {before} to {after}"
                ));
            }
            grown = true;
            break;
        }
    }
    if !grown {
        return not_exercised("not enough unrelated users to grow the peer past the threshold");
    }
    if !w.server(HUB).view(&u).is_some_and(|v| v.contains_key(&q)) {
        problems.push(format!("{u} is not shown {q}'s presence"));
    }
    if !w.server(&peer).view(&q).is_some_and(|v| v.contains_key(&u)) {
        problems.push(format!("{q} is not shown {u}'s presence"));
    }
    Check::empty(name, &reqs, &problems)
}

/// Cancels every subscription and request between users of `a` and users of `b`, both
/// ways, through RFC 6121 (`unsubscribe` for a subscription or request of the user,
/// `unsubscribed` for one to it, §3.2 and §3.3): afterwards the pair projects no edge.
fn empty_pair(w: &mut World, a: &str, b: &str) {
    for (x, y) in [(a, b), (b, a)] {
        let items: Vec<(BareJid, BareJid, Subscription)> = w
            .server(x)
            .accounts()
            .iter()
            .flat_map(|(u, acc)| {
                acc.roster
                    .iter()
                    .filter(|(c, _)| c.domain().as_str() == y)
                    .map(|(c, sub)| (u.clone(), c.clone(), *sub))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (u, c, sub) in items {
            if sub.to() || sub.pending_out() {
                w.act(x, |s| s.unsubscribe(&u, &c));
            }
            if sub.from() || sub.pending_in() {
                w.act(x, |s| s.deny(&u, &c));
            }
        }
        w.net.drive();
    }
}
