//! Peers of every kind: live changes in an established session, subscription mismatches,
//! legacy peers, a hub with many peer domains (its scenario is in [`super::hub`]), and a
//! hostile peer.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jid::BareJid;

use super::hub::hub;
use super::{A, B, Body, Ctx, Scenario, truth, truth_reqs};
use crate::conformance::check::Check;
use crate::conformance::hostile;
use crate::conformance::record::RecordKind;
use crate::conformance::subject::legacy;
use crate::conformance::workload::Mismatch;
use crate::conformance::world::{Phase, World};
use crate::model::edge::{Edge, project};
use crate::model::{ResourcePresence, Show, Subscription};
use crate::server::Flavour;
use crate::wire::ns;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "live",
            about: "in an established session: a presence change, a new subscription, a block, an untouched non-NFC status",
            run: live,
        },
        Scenario {
            name: "mismatch",
            about: "subscription mismatches on both sides (lost subscription stanzas, a roster restored from an old backup) are found and repaired",
            run: mismatch,
        },
        Scenario {
            name: "legacy-prosody",
            about: "the peer is a Prosody-like RFC 6121 server: each side restarts cold with a login storm",
            run: legacy_prosody,
        },
        Scenario {
            name: "legacy-ejabberd",
            about: "the peer is an ejabberd-like RFC 6121 server with XEP-0033 grouping: each side restarts cold with a login storm",
            run: legacy_ejabberd,
        },
        Scenario {
            name: "hub",
            about: "one server federated with many peer domains restarts cold with a login storm",
            run: hub,
        },
        Scenario {
            name: "discovery",
            about: "service discovery, the stream feature and the choice of the hash algorithm",
            run: |ctx| checks_only(hostile::discovery_checks(ctx.imp, ctx.seed)),
        },
        Scenario {
            name: "hostile-peer",
            about: "a peer sends malformed, oversized, out-of-order and spoofed stanzas",
            run: |ctx| checks_only(hostile::checks(ctx.imp, ctx.seed)),
        },
        Scenario {
            name: "oversized-presence",
            about: "a presence state too large for max-bytes is published reduced",
            run: |ctx| checks_only(hostile::oversized_checks(ctx.imp, ctx.seed)),
        },
    ]
}

fn checks_only(checks: Vec<Check>) -> Body {
    Body {
        checks,
        ..Body::default()
    }
}

/// The online user of `domain` with the most subscribers at `peer`.
fn busiest_publisher(w: &World, domain: &str, peer: &str) -> Option<(BareJid, String)> {
    let s = w.server(domain);
    s.online()
        .iter()
        .filter_map(|(u, res)| {
            let subs = s
                .accounts()
                .get(u)?
                .roster
                .iter()
                .filter(|(c, sub)| c.domain().as_str() == peer && sub.from())
                .count();
            Some((subs, u.clone(), res.keys().next()?.clone()))
        })
        .max_by_key(|(n, _, _)| *n)
        .filter(|(n, _, _)| *n > 1)
        .map(|(_, u, r)| (u, r))
}

fn live(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    let mut body = Body::default();
    let Some((user, resource)) = busiest_publisher(&w, A, B) else {
        body.check(
            "live-change-sent",
            Check::with(
                "live change",
                &["PS-44"],
                crate::conformance::check::Outcome::NotExercised(
                    "no online user with two subscribers at the peer".into(),
                ),
            ),
        );
        return body;
    };
    // A status in decomposed form (e + combining acute): it must arrive unaltered (PS-76).
    let presence = ResourcePresence {
        show: Show::Dnd,
        statuses: [(String::new(), "cafe\u{301} — back soon".to_string())].into(),
        ..Default::default()
    };
    let phase = w.measure_plain(|w| w.act(A, |s| s.set_presence(&user, &resource, presence)));
    let to_b: u64 = phase
        .directions
        .iter()
        .filter(|d| d.0 == A)
        .map(|d| d.2)
        .sum();
    body.check("change-crosses-once", Check::new(
        format!(
            "a presence change of {user} crosses the link once, whatever its number of subscribers"
        ),
        &["PS-44", "PS-45", "PS-66"],
        to_b == 1,
        || format!("{to_b} stanzas from {A}: {:?}", phase.kinds),
    ));
    body.check("truth", truth(
        "after the change every user sees exactly its contacts' presence, status text unaltered",
        &truth_reqs(&["PS-45", "PS-76"]),
        &phase,
    ));
    // A new subscription during the session: the subscriber sees the publisher at once.
    let fresh = new_pair(&w);
    if let Some((sub, publisher)) = &fresh {
        let sub_phase = w.measure_plain(|w| {
            w.act(B, |s| s.subscribe(sub, publisher));
            w.net.drive();
            w.act(A, |s| s.approve(publisher, sub));
        });
        body.check(
            "subscribe-approve-follows",
            truth(
                format!(
                    "{sub} subscribes to {publisher}, who approves: presence follows the \
                     subscription"
                ),
                &truth_reqs(&["PS-47", "PS-49", "PS-67"]),
                &sub_phase,
            ),
        );
    }
    // A block and an unblock: the except list changes (an item, PS-47). The pair just
    // subscribed, or else (in a federation so small that every pair of online users is
    // related already, as preset tiny) a subscription the workload has.
    let Some((sub, publisher)) = fresh.or_else(|| subscribed_pair(&w)) else {
        body.phase = Some(phase);
        body.worlds.push(w);
        return body;
    };
    let block_phase = w.measure_plain(|w| {
        w.act(A, |s| s.block(&publisher, &sub));
    });
    body.check(
        "block-withdraws",
        truth(
            format!("{publisher} blocks {sub}: the presence is withdrawn"),
            &truth_reqs(&["PS-47", "PS-9"]),
            &block_phase,
        ),
    );
    let unblock_phase = w.measure_plain(|w| w.act(A, |s| s.unblock(&publisher, &sub)));
    body.check(
        "unblock-shows",
        truth(
            format!("{publisher} unblocks {sub}: the presence is shown again"),
            &truth_reqs(&["PS-47"]),
            &unblock_phase,
        ),
    );
    // The same in the other direction: a publisher of the peer enters its published set and
    // its except list changes, each sent as an item in a batch (PS-47) that the
    // implementation under test must apply and answer (PS-43) so that every change of the
    // peer's published set takes effect (PS-44).
    if let Some((sub, publisher)) = new_pair_between(&w, A, B) {
        let sub_phase = w.measure_plain(|w| {
            w.act(A, |s| s.subscribe(&sub, &publisher));
            w.net.drive();
            w.act(B, |s| s.approve(&publisher, &sub));
        });
        body.check("peer-batch-applied", truth(
            format!(
                "{sub} subscribes to {publisher} of the peer, who approves: the peer's batch is \
                 applied and the presence shown"
            ),
            &truth_reqs(&["PS-43", "PS-44"]),
            &sub_phase,
        ));
        let block_phase = w.measure_plain(|w| w.act(B, |s| s.block(&publisher, &sub)));
        body.check(
            "peer-except-applied",
            truth(
                format!(
                    "{publisher} of the peer blocks {sub}: the peer's batch is applied and the \
                 presence withdrawn"
                ),
                &truth_reqs(&["PS-43", "PS-44"]),
                &block_phase,
            ),
        );
    }
    body.phase = Some(phase);
    body.worlds.push(w);
    body
}

/// An online user of B subscribed to an online user of A (a `to` item, and a `from` item
/// the other way).
fn subscribed_pair(w: &World) -> Option<(BareJid, BareJid)> {
    let (a, b) = (w.server(A), w.server(B));
    a.online().keys().find_map(|p| {
        a.accounts()[p].roster.iter().find_map(|(s, item)| {
            let theirs = b.accounts().get(s)?.roster.get(p)?;
            (item.from() && theirs.to() && b.online().contains_key(s))
                .then(|| (s.clone(), p.clone()))
        })
    })
}

/// An online user of B and an online user of A with no roster item for each other.
fn new_pair(w: &World) -> Option<(BareJid, BareJid)> {
    new_pair_between(w, B, A)
}

/// An online user of `sub_domain` and an online user of `pub_domain` with no roster item for
/// each other.
fn new_pair_between(w: &World, sub_domain: &str, pub_domain: &str) -> Option<(BareJid, BareJid)> {
    let (a, b) = (w.server(pub_domain), w.server(sub_domain));
    for s in b.online().keys() {
        let roster = &b.accounts()[s].roster;
        if let Some(p) = a
            .online()
            .keys()
            .find(|p| roster.get(p).is_none() && a.accounts()[*p].roster.get(s).is_none())
        {
            return Some((s.clone(), p.clone()));
        }
    }
    None
}

/// The cross-domain edges each side projects towards the other.
pub(super) fn edge_sets(w: &World) -> (BTreeSet<Edge>, BTreeSet<Edge>) {
    let a = w.server(A);
    let b = w.server(B);
    let ea = project(a.accounts().iter().map(|(u, acc)| (u, &acc.roster)), B).collect();
    let eb = project(b.accounts().iter().map(|(u, acc)| (u, &acc.roster)), A).collect();
    (ea, eb)
}

/// The first differences between the edge sets the two servers project, as problems.
fn edge_set_differences(w: &World) -> Vec<String> {
    let (ea, eb) = edge_sets(w);
    ea.symmetric_difference(&eb)
        .take(5)
        .map(|e| format!("edge sets differ afterwards: {e:?}"))
        .collect()
}

/// Every roster item of every user of the world.
fn items(w: &World) -> BTreeMap<(BareJid, BareJid), Subscription> {
    let mut out = BTreeMap::new();
    for d in [A, B] {
        for (u, acc) in w.server(d).accounts() {
            for (c, sub) in acc.roster.iter() {
                out.insert((u.clone(), c.clone()), *sub);
            }
        }
    }
    out
}

fn mismatch(ctx: &Ctx<'_>) -> Body {
    let mismatches = ctx.fed.mismatches(ctx.changes.max(6), ctx.seed);
    let touched: BTreeSet<(BareJid, BareJid)> =
        mismatches.iter().flat_map(Mismatch::items).collect();
    let script = |w: &mut World| -> Phase {
        w.net.partition(A, B);
        for m in &mismatches {
            w.act(m.domain(), |s| m.apply(s));
        }
        w.net.drive();
        w.measure_plain(|w| {
            w.net.repair(A, B);
            w.net.drive();
            w.net.drive_for(Duration::from_secs(30));
        })
    };
    let mut w = ctx.pair();
    let before = items(&w);
    let phase = script(&mut w);
    let mut base = ctx.baseline(Flavour::Prosody);
    let baseline = script(&mut base);
    let mut body = Body::default();
    let (ea, eb) = edge_sets(&w);
    let differing: Vec<String> = ea
        .symmetric_difference(&eb)
        .take(5)
        .map(|e| format!("{e:?}"))
        .collect();
    body.check(
        "edge-sets-equal",
        Check::empty(
            format!(
                "{} mismatches ({} kinds): both servers project the same edge set afterwards",
                mismatches.len(),
                mismatches
                    .iter()
                    .map(|m| m.kind)
                    .collect::<BTreeSet<_>>()
                    .len()
            ),
            &[
                "PS-6", "PS-14", "PS-33", "PS-36", "PS-59", "PS-60", "PS-61", "PS-63", "PS-85",
            ],
            &differing,
        ),
    );
    let after = items(&w);
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, _)| !touched.contains(*k))
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|((u, c), v)| {
            format!(
                "{u}'s item for {c} changed from {v:?} to {:?}",
                after.get(&(u.clone(), c.clone()))
            )
        })
        .collect();
    body.check(
        "no-collateral-roster-change",
        Check::empty(
            "no roster item outside the mismatched pairs changed",
            &["PS-61", "PS-64"],
            &changed,
        ),
    );
    body.check(
        "truth",
        truth(
            "after the repairs every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-37", "PS-63"]),
            &phase,
        ),
    );
    body.check(
        "cancelled-request-not-repaired",
        cancelled_during_descent(&mut w),
    );
    body.check("repair-reply-to-blocker", reply_to_blocker(&mut w));
    body.check("unrepairable-falls-back", unrepairable(ctx, &mismatches));
    body.check("mass-mismatch-suspends-repairs", mass_mismatch(ctx));
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// PS-65: more mismatches than the default threshold (the larger of 1000 and 1% of the edge
/// set), as a restored backup makes. During an outage A gains a pending subscription request
/// to B for that many pairs with no relation (requests B never received: each calls for a
/// repair `subscribe` from A, XEP §Repair of Subscription Mismatches). When the link is back,
/// repairs must be suspended: no `<repair/>` crosses the link. (The edge counts of the two
/// hellos already differ by more than the threshold, so a server need not finish a descent to
/// know. The edge roots stay different, so the peer ends up legacy, PS-38, and RFC 6121 may
/// then send the pending requests again: those are not repairs.)
fn mass_mismatch(ctx: &Ctx<'_>) -> Check {
    let name = "more mismatches than the threshold (a restored backup): repairs are suspended";
    let mut w = ctx.pair();
    let (ea, _) = edge_sets(&w);
    let threshold = 1000.max((ea.len() as u64).div_ceil(100));
    let n = (threshold + threshold / 5) as usize;
    let pairs = unrelated_pairs(&w, n);
    if pairs.len() < n {
        return Check::with(
            name,
            &["PS-65"],
            crate::conformance::check::Outcome::NotExercised(format!(
                "{} pairs of users with no relation, fewer than {n}",
                pairs.len()
            )),
        );
    }
    let mut pending = Subscription::NONE;
    pending.outbound(crate::model::SubscriptionStanza::Subscribe);
    w.net.partition(A, B);
    w.act(A, |srv| {
        for (s, p) in &pairs {
            srv.set_roster_item(s, p, pending);
        }
    });
    w.net.drive();
    let phase = w.measure_for(Duration::from_secs(600), |w| w.net.repair(A, B));
    let count = phase.stanzas_of(|k| k.ends_with("/repair"));
    Check::new(
        format!(
            "{n} mismatches (pending requests a restored backup lost), more than the threshold {threshold}: repairs are suspended, no <repair/> is sent"
        ),
        &["PS-65"],
        count == 0,
        || format!("{count} repairs: {:?}", phase.kinds),
    )
}

/// PS-38: the same mismatches, but every repair is lost, so the edge roots still differ after
/// each descent (as when the two servers normalize some JID differently). After three
/// descents the subject must end the session and treat the peer as legacy: RFC 6121 probes
/// go out.
fn unrepairable(ctx: &Ctx<'_>, mismatches: &[Mismatch]) -> Check {
    let mut w = ctx.pair();
    w.net.partition(A, B);
    for m in mismatches {
        w.act(m.domain(), |s| m.apply(s));
    }
    w.net.drive();
    w.net.set_filter(super::lose_every("repair"));
    let phase = w.measure_for(Duration::from_secs(600), |w| w.net.repair(A, B));
    w.net.clear_filter();
    let probes = phase.stanzas_of(|k| k == "presence/probe");
    let hellos = phase.stanzas_of(|k| k == "iq/set/hello");
    Check::new(
        "edge roots that still differ after three descents (every repair lost) end the session: the peer is treated as legacy and RFC 6121 probes go out",
        &["PS-38"],
        probes > 0,
        || format!("no probe in 600 s ({hellos} hellos): {:?}", phase.kinds),
    )
}

/// A user of A and a user of B with no roster item for each other (online or not).
fn unrelated_pair(w: &World) -> Option<(BareJid, BareJid)> {
    unrelated_pairs(w, 1).pop()
}

/// Up to `n` pairs of a user of A and a user of B with no roster item for each other.
fn unrelated_pairs(w: &World, n: usize) -> Vec<(BareJid, BareJid)> {
    let (a, b) = (w.server(A).accounts(), w.server(B).accounts());
    a.iter()
        .flat_map(|(s, acc)| {
            b.iter()
                .filter(|(p, other)| acc.roster.get(p).is_none() && other.roster.get(s).is_none())
                .map(|(p, _)| (s.clone(), p.clone()))
        })
        .take(n)
        .collect()
}

/// PS-63 (XEP §Repair of Subscription Mismatches): a server evaluates each repair against its
/// roster when it is about to act. During a partition a user `s` of A asks `p` of B for a
/// subscription and the request is lost (A holds the pending edge, B does not: the third row
/// of the repair table, which calls for A to send `subscribe` again). Once the link is back,
/// the subject's edge descent sends that edge to the peer in full (PS-28); right then `s`
/// cancels the request (`unsubscribe`). When the descent ends, the pending edge is still in
/// the diff but no longer in `s`'s roster: the subject must not send the repair `subscribe`,
/// which would raise a request `s` has withdrawn (PS-61, PS-63). Afterwards both sides
/// project the same edge set.
fn cancelled_during_descent(w: &mut World) -> Check {
    let name = "a request cancelled while the descent that found it runs is not repaired";
    let reqs = ["PS-61", "PS-63"];
    let not_exercised = |why: String| {
        Check::with(
            name,
            &reqs,
            crate::conformance::check::Outcome::NotExercised(why),
        )
    };
    let Some((s, p)) = unrelated_pair(w) else {
        return not_exercised(format!(
            "every user of {A} has a roster item for every user of {B}"
        ));
    };
    let mut pending = Subscription::NONE;
    pending.outbound(crate::model::SubscriptionStanza::Subscribe);
    w.net.partition(A, B);
    w.act(A, |srv| srv.set_roster_item(&s, &p, pending));
    w.net.drive();
    let from = w.net.host(A).records().len();
    w.net.repair(A, B);
    // Event by event until the subject sends the edge (p, s) in an edge reconcile.
    let sends_edge = |w: &World, from: usize| {
        w.net.host(A).records()[from..]
            .iter()
            .any(|r| match &r.kind {
                RecordKind::Out { stanza, .. } => stanza
                    .get_child("reconcile", ns::PRESENCE_SYNC)
                    .is_some_and(|rec| {
                        rec.children().any(|e| {
                            e.name() == "edge"
                                && e.attr("publisher") == Some(p.as_str())
                                && e.attr("subscriber") == Some(s.as_str())
                        })
                    }),
                _ => false,
            })
    };
    let mut seen = false;
    loop {
        if sends_edge(w, from) {
            seen = true;
            break;
        }
        if w.net.drive_bounded(1).is_ok() {
            break;
        }
    }
    if !seen {
        w.net.drive_for(Duration::from_secs(30));
        return not_exercised(format!(
            "the subject never sent the edge ({p}, {s}) it holds and the peer lacks"
        ));
    }
    let cancelled = w.net.host(A).records().len();
    w.act(A, |srv| srv.unsubscribe(&s, &p));
    w.net.drive();
    w.net.drive_for(Duration::from_secs(30));
    let mut problems: Vec<String> = w.net.host(A).records()[cancelled..]
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Out { stanza, .. }
                if stanza.name() == "presence"
                    && stanza.attr("type") == Some("subscribe")
                    && stanza.has_child("repair", ns::PRESENCE_SYNC)
                    && stanza.attr("from") == Some(s.as_str())
                    && stanza.attr("to") == Some(p.as_str()) =>
            {
                Some(format!(
                    "at {}: repair subscribe from {s} to {p} after {s} cancelled the request",
                    r.time
                ))
            }
            _ => None,
        })
        .collect();
    problems.extend(edge_set_differences(w));
    Check::empty(name, &reqs, &problems)
}

/// PS-85 (XEP §Repair of Subscription Mismatches), the reply of a repair. A user `s` of the
/// peer asked `p` of A for a subscription and blocked `p`; `p`'s approval never reached `s`
/// (XEP-0191 drops it). A restored backup leaves the pair as the second row of the repair
/// table: A holds the subscribed edge (`p` has `from`), the peer the pending one. The peer sends
/// the repair `subscribe` from `s`; the subject answers it as RFC 6121 §3.1.3 prescribes for a
/// contact already subscribed, with `subscribed`. Unless that answer carries `<repair/>` too,
/// the peer drops it for the block, `s` stays pending and the mismatch is found again at every
/// verification. Afterwards both sides project the same edge set.
fn reply_to_blocker(w: &mut World) -> Check {
    let name = "the answer to a repair subscribe reaches a sender that blocks the user";
    let reqs = ["PS-61", "PS-85"];
    // Any pair will do, since both items are overwritten: an unrelated one leaves the others'
    // relations alone.
    let any_pair = || {
        let first = |d| w.server(d).accounts().keys().next().cloned();
        first(A).zip(first(B))
    };
    let Some((p, s)) = unrelated_pair(w).or_else(any_pair) else {
        return Check::with(
            name,
            &reqs,
            crate::conformance::check::Outcome::NotExercised(format!("{A} or {B} has no user")),
        );
    };
    let mut pending = Subscription::NONE;
    pending.outbound(crate::model::SubscriptionStanza::Subscribe);
    let approved = Subscription::named(crate::model::NamedState::From);
    w.act(B, |srv| srv.block(&s, &p));
    w.net.drive();
    w.net.partition(A, B);
    w.act(A, |srv| srv.set_roster_item(&p, &s, approved));
    w.act(B, |srv| srv.set_roster_item(&s, &p, pending));
    w.net.drive();
    w.net.repair(A, B);
    w.net.drive();
    w.net.drive_for(Duration::from_secs(30));
    let mut problems = Vec::new();
    let theirs = w.server(B).accounts()[&s].roster.get(&p).copied();
    if !theirs.is_some_and(|t| t.to() && !t.pending_out()) {
        problems.push(format!(
            "{s} (blocking {p}) holds {theirs:?} for {p}, not a subscription: the subject's \
             answer to the repair did not reach it"
        ));
    }
    problems.extend(edge_set_differences(w));
    Check::empty(name, &reqs, &problems)
}

/// The subject at A and an RFC 6121 server of `flavour` at B; each restarts cold.
fn with_legacy(ctx: &Ctx<'_>, flavour: Flavour) -> Body {
    let script = |w: &mut World| -> Phase {
        let mut phase = Phase::default();
        for d in [A, B] {
            w.net.crash(d);
            w.net.drive_for(Duration::from_secs(5));
            let p = w.measure_plain(|w| {
                w.net.restart(d);
                w.log_in(ctx.fed, d);
            });
            phase = std::mem::take(&mut phase).then(p);
        }
        phase
    };
    let mut w = World::new(ctx.fed, &[A], |d| {
        if d == A {
            ctx.imp.server(d, ctx.seed)
        } else {
            legacy(d, flavour)
        }
    });
    w.log_in_all(ctx.fed);
    let mut body = Body::default();
    body.check("truth-legacy-login", Check::empty(
        "with the legacy peer, every user sees exactly its contacts' presence once everyone is logged in",
        &truth_reqs(&["PS-5"]),
        &w.diff(),
    ));
    let phase = script(&mut w);
    body.check(
        "truth",
        truth(
            "after each side's restart every user sees exactly its contacts' presence (RFC 6121)",
            &truth_reqs(&["PS-5"]),
            &phase,
        ),
    );
    // The baseline: the same script with an RFC 6121 server (Prosody-like) at A.
    let mut base = World::new(ctx.fed, &[], |d| {
        legacy(d, if d == A { Flavour::Prosody } else { flavour })
    });
    base.log_in_all(ctx.fed);
    let baseline = script(&mut base);
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

fn legacy_prosody(ctx: &Ctx<'_>) -> Body {
    with_legacy(ctx, Flavour::Prosody)
}

fn legacy_ejabberd(ctx: &Ctx<'_>) -> Body {
    with_legacy(ctx, Flavour::Ejabberd { multicast: true })
}
