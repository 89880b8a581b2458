//! Link losses: with and without changes, cut again at every message of the resync, crashes
//! and changes in the middle of a sync, an outage longer than the grace period, and sessions
//! that keep failing.

use std::time::Duration;

use super::{A, B, Body, Ctx, Scenario, lose_every, truth, truth_reqs};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::record::{Record, RecordKind};
use crate::conformance::workload::{Change, Churn};
use crate::conformance::world::{Phase, World};
use crate::server::Flavour;
use crate::sim::Verdict;
use jid::BareJid;
use minidom::Element;
use std::collections::{BTreeMap, BTreeSet};

use crate::wire::ns::PRESENCE_SYNC;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "link-loss",
            about: "the link is lost and comes back without a restart; d changes (presence, subscriptions, blocks) happened on both sides meanwhile",
            run: link_loss,
        },
        Scenario {
            name: "link-loss-unchanged",
            about: "the link is lost and comes back; nothing changed",
            run: link_loss_unchanged,
        },
        Scenario {
            name: "drop-at-every-index",
            about: "the resync after a link loss with changes is cut after its i-th message, for every i; the link then comes back",
            run: drop_at_every_index,
        },
        Scenario {
            name: "crash-mid-sync",
            about: "during the pull after a restart, either side crashes, restarts and logs in again",
            run: crash_mid_sync,
        },
        Scenario {
            name: "changes-during-sync",
            about: "presence, subscription and block changes arrive on both sides in the middle of a resync",
            run: changes_during_sync,
        },
        Scenario {
            name: "long-outage",
            about: "the peer stays down for longer than the grace period, then restarts",
            run: long_outage,
        },
        Scenario {
            name: "failing-sessions",
            about: "every hello is lost: sessions time out, are retried and finally fall back to RFC 6121",
            run: failing_sessions,
        },
    ]
}

/// Partition, `changes` on both sides, then the measured repair of the link.
fn link_loss_with(w: &mut World, changes: &[Change]) -> Phase {
    w.net.partition(A, B);
    apply(w, changes);
    w.net.drive();
    w.measure_plain(|w| w.net.repair(A, B))
}

fn apply(w: &mut World, changes: &[Change]) {
    for c in changes {
        let d = c.domain().to_owned();
        w.act(&d, |s| c.apply(s));
    }
}

/// The requirements a resync after a link loss exercises: the hello and its comparisons,
/// the descent rules, verification, and the transmission of changes.
const RESYNC: [&str; 13] = [
    "PS-16", "PS-19", "PS-23", "PS-24", "PS-25", "PS-26", "PS-27", "PS-28", "PS-29", "PS-33",
    "PS-34", "PS-36", "PS-37",
];

fn link_loss(ctx: &Ctx<'_>) -> Body {
    let changes = ctx.fed.churn(ctx.changes, ctx.seed);
    let mut w = ctx.pair();
    let from = w.net.host(A).records().len();
    let phase = link_loss_with(&mut w, &changes);
    let mut base = ctx.baseline(Flavour::Prosody);
    let baseline = link_loss_with(&mut base, &changes);
    let mut body = Body::default();
    let mut reqs = truth_reqs(&RESYNC);
    reqs.extend(["PS-44", "PS-49", "PS-63", "PS-67"]);
    body.check("truth", truth(
        "after the link is back every user sees exactly its contacts' presence (RFC 6121 leaves stale presence here)",
        &reqs,
        &phase,
    ));
    let d = changes.len() as u64;
    let bound = 6 + 3 * d;
    body.check("cost-proportional", Check::new(
        format!(
            "the resync costs in proportion to the {d} changes (at most 6 + 3d = {bound} stanzas)"
        ),
        &["PS-24", "PS-25", "PS-26"],
        phase.stanzas <= bound,
        || format!("{} stanzas", phase.stanzas),
    ));
    let truth_holds = !body
        .checks
        .iter()
        .any(|c| matches!(c.outcome, Outcome::Fail(_)));
    body.checks
        .extend(sketch_checks(&w.net.host(A).records()[from..], truth_holds));
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// XEP §Sketches after a link loss with changes, from the subject's records: its hellos give
/// the changes of its edge and published sets (PS-96); the first edge query it sends as the
/// edge driver and its first presence query start with a sketch of the root (PS-97: one of
/// them at least, since a set whose ids are fewer than a sketch's cells is better described
/// by them, and one whose changes would not fit an answer by a split), each of which the
/// peer decodes (a cost check: a sketch sized as PS-97 says fails about once in 700 decodes,
/// so a fixed workload passes or fails for good, and a subject whose sketches are too small
/// or wrong fails); and it answered every
/// sketch it received, the end state being right (PS-95). A subject that announces no
/// changes (one without sketches) leaves PS-96 and PS-97 not exercised.
fn sketch_checks(records: &[Record], truth_holds: bool) -> Vec<Check> {
    let payload = |st: &Element, name: &str| st.get_child(name, PRESENCE_SYNC).cloned();
    let mut hellos = 0;
    let mut announced = 0;
    let mut first_queries: BTreeMap<String, String> = BTreeMap::new();
    let mut sketches_in: BTreeSet<String> = BTreeSet::new();
    let mut answered = 0;
    // The subject's sketch queries, and those the peer handed back (a split of the node: the
    // sketch did not decode).
    let mut sketches_out: BTreeSet<String> = BTreeSet::new();
    let mut handed_back = 0;
    for r in records {
        match &r.kind {
            RecordKind::Out { stanza, .. } => {
                if let Some(h) = payload(stanza, "hello") {
                    hellos += 1;
                    let given = h
                        .children()
                        .filter(|c| matches!(c.attr("set"), Some("edges" | "published")))
                        .all(|c| c.attr("changes").is_some());
                    announced += usize::from(given);
                }
                if stanza.attr("type") == Some("set")
                    && let Some(q) = payload(stanza, "reconcile")
                {
                    let set = q.attr("set").unwrap_or_default().to_owned();
                    let first = q.children().next().map(|c| c.name().to_owned());
                    if q.children().any(|c| c.name() == "sketch") {
                        sketches_out.insert(stanza.attr("id").unwrap_or_default().to_owned());
                    }
                    first_queries
                        .entry(set)
                        .or_insert(first.unwrap_or_default());
                }
                if stanza.attr("type") == Some("result")
                    && sketches_in.contains(stanza.attr("id").unwrap_or_default())
                {
                    answered += 1;
                }
            }
            RecordKind::In { stanza, .. } => {
                let sketch = payload(stanza, "reconcile")
                    .is_some_and(|q| q.children().any(|c| c.name() == "sketch"));
                if sketch && stanza.attr("type") == Some("set") {
                    sketches_in.insert(stanza.attr("id").unwrap_or_default().to_owned());
                }
                if stanza.attr("type") == Some("result")
                    && sketches_out.contains(stanza.attr("id").unwrap_or_default())
                    && payload(stanza, "reconcile")
                        .is_some_and(|a| a.children().any(|c| c.name() == "split"))
                {
                    handed_back += 1;
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    // A subject without sketches gives no changes at all: PS-96 and PS-97 are SHOULDs, so
    // that is "not exercised", as for the other optional features; giving them in some
    // hellos only is a failure.
    let name = "the subject's hellos give the changes of its edge and published sets";
    out.push(
        if announced == 0 {
            Check::with(
                name,
                &["PS-96"],
                Outcome::NotExercised(format!("none of its {hellos} hellos gives them")),
            )
        } else {
            Check::new(name, &["PS-96"], announced == hellos, || {
                format!("{announced} of {hellos} hellos give both")
            })
        }
        .with_id("changes-announced"),
    );
    let starts: Vec<String> = first_queries
        .iter()
        .map(|(set, first)| format!("{set}: {first}"))
        .collect();
    let name = "the subject starts a descent with a sketch of the root, which the peer decodes";
    let sketched = first_queries.values().any(|f| f == "sketch");
    let split = first_queries.values().any(|f| f == "split");
    out.push(
        if announced == 0 || (!sketched && !split) {
            Check::with(
                name,
                &["PS-97"],
                Outcome::NotExercised(if announced == 0 {
                    "the subject announces no changes: it sends no sketches".to_owned()
                } else {
                    format!(
                        "no descent started with a split or a sketch ({})",
                        starts.join(", ")
                    )
                }),
            )
        } else {
            Check::new(name, &["PS-97"], sketched && handed_back == 0, || {
                if sketched {
                    format!(
                        "{handed_back} of its {} sketches did not decode at the peer \
                         (handed back as splits): sized below the changes announced",
                        sketches_out.len()
                    )
                } else {
                    format!("first children: {}", starts.join(", "))
                }
            })
        }
        .with_id("sketch-first"),
    );
    let name = "every sketch the subject received was answered, and the end state is right";
    out.push(
        if sketches_in.is_empty() {
            Check::with(
                name,
                &["PS-95"],
                Outcome::NotExercised("the peer sent no sketch".into()),
            )
        } else {
            Check::new(
                name,
                &["PS-95"],
                answered == sketches_in.len() && truth_holds,
                || format!("{answered} of {} sketches answered", sketches_in.len()),
            )
        }
        .with_id("sketch-answered"),
    );
    out
}

fn link_loss_unchanged(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    let phase = link_loss_with(&mut w, &[]);
    let mut base = ctx.baseline(Flavour::Prosody);
    let baseline = link_loss_with(&mut base, &[]);
    let mut body = Body::default();
    body.check(
        "one-hello-exchange",
        Check::new(
            "equal state after a link loss costs one hello exchange: 2 stanzas, 1 round trip",
            &["PS-10", "PS-17", "PS-19"],
            phase.stanzas <= 2 && phase.round_trips <= 1,
            || {
                format!(
                    "{} stanzas, {} round trips: {:?}",
                    phase.stanzas, phase.round_trips, phase.kinds
                )
            },
        ),
    );
    body.check(
        "truth",
        truth(
            "after the link is back every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-19"]),
            &phase,
        ),
    );
    // A hello lost inside the grace period: the other side's hello (after its wait, PS-16) or
    // the retry (PS-57) starts the session, with the caches kept meanwhile (PS-56), so the
    // state is still equal and nothing is pulled. Timers fire here while no session is live,
    // which the first outage never does.
    w.net.partition(A, B);
    w.net.drive();
    let mut dropped = false;
    w.net.set_filter(move |e| {
        if !dropped && e.stanza.children().any(|c| c.name() == "hello") {
            dropped = true;
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let retried = w.measure_for(Duration::from_secs(120), |w| w.net.repair(A, B));
    w.net.clear_filter();
    let pulled = retried.stanzas_of(|k| k.contains("reconcile") || k.contains("batch"));
    body.check(
        "lost-hello-keeps-cache",
        Check::new(
            "a hello lost within the grace period: the session that follows finds the caches \
             kept and equal, and pulls nothing",
            &["PS-56", "PS-57"],
            pulled == 0 && retried.diff.is_empty(),
            || format!("{pulled} reconcile and batch stanzas: {:?}", retried.kinds),
        ),
    );
    body.check("flap-inside-hello-wait", flap_inside_hello_wait(&mut w));
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// PS-16, PS-20: the link comes back, the driver's hello is lost, and the link drops again
/// within the other side's 2-second wait (a flapping link). A hello sent when that wait ends
/// would go into a link that is down and hold every later hello back until it times out
/// (PS-51). When the link is back for good, one hello exchange starts the session at once and
/// it stays: one hello request and one answer in 120 s, nothing pulled.
fn flap_inside_hello_wait(w: &mut World) -> Check {
    w.net.partition(A, B);
    w.net.drive();
    w.net.set_filter(lose_every("hello"));
    w.net.repair(A, B);
    w.net.drive_for(Duration::from_millis(1000));
    w.net.partition(A, B);
    w.net.drive_for(Duration::from_secs(5));
    w.net.clear_filter();
    let back = w.measure_for(Duration::from_secs(120), |w| w.net.repair(A, B));
    let hellos = back.stanzas_of(|k| k.starts_with("iq/set/hello"));
    let answers = back.stanzas_of(|k| k.starts_with("iq/result/hello"));
    let pulled = back.stanzas_of(|k| k.contains("reconcile") || k.contains("batch"));
    Check::new(
        "a link that drops within the 2-second hello wait: once it is back, one hello exchange starts a session that stays, and nothing is pulled",
        &["PS-16", "PS-20", "PS-56"],
        hellos == 1 && answers == 1 && pulled == 0 && back.diff.is_empty(),
        || {
            format!(
                "{hellos} hello requests, {answers} answers, {pulled} reconcile and batch stanzas: {:?}",
                back.kinds
            )
        },
    )
}

/// True if one of `records` is a stanza the host sent carrying `publisher`'s presence: a
/// domain-level presence from one of its resources, or a batch with an item for it.
fn carries(records: &[Record], publisher: &BareJid) -> bool {
    records.iter().any(|r| match &r.kind {
        RecordKind::Out { stanza, .. } => {
            let from_publisher = stanza
                .attr("from")
                .and_then(|f| f.split('/').next())
                .is_some_and(|f| f == publisher.as_str());
            stanza.children().any(|ch| {
                (ch.name() == "fanout" && from_publisher)
                    || (ch.name() == "batch"
                        && ch
                            .children()
                            .any(|item| item.attr("jid") == Some(publisher.as_str())))
            })
        }
        _ => false,
    })
}

/// Lets timers run (retries, the non-driver's hello) until the network is quiet for good.
fn settle(w: &mut World) {
    w.net.drive();
    w.net.drive_for(Duration::from_secs(120));
}

fn drop_at_every_index(ctx: &Ctx<'_>) -> Body {
    let changes = ctx.fed.churn(ctx.changes, ctx.seed);
    let mut w = ctx.pair();
    let n = link_loss_with(&mut w, &changes).stanzas;
    let mut failures = Vec::new();
    let mut body = Body::default();
    for i in 0..n {
        let mut w = ctx.pair();
        w.net.partition(A, B);
        apply(&mut w, &changes);
        w.net.drive();
        let cut = w.net.sent_count() + i;
        w.net.set_filter(move |e| {
            if e.index == cut {
                Verdict::DropLinkAfter
            } else {
                Verdict::Deliver
            }
        });
        w.net.repair(A, B);
        w.net.drive();
        w.net.clear_filter();
        w.net.drive_for(Duration::from_secs(1));
        if !w.net.is_link_up(A, B) {
            w.net.repair(A, B);
        }
        settle(&mut w);
        let diff = w.diff();
        if !diff.is_empty() {
            failures.push(format!(
                "cut after message {i}: {} differences, first {}",
                diff.len(),
                diff[0]
            ));
        }
        body.worlds.push(w);
    }
    body.check(
        "cut-anywhere-converges",
        Check::new(
            format!("a resync cut after any of its {n} messages converges once the link is back"),
            &["PS-16", "PS-19", "PS-36", "PS-37", "PS-44", "PS-56"],
            failures.is_empty() && n > 0,
            || {
                if n == 0 {
                    "the resync sent nothing".into()
                } else {
                    failures.join("; ")
                }
            },
        ),
    );
    body
}

/// Runs `w` event by event until `k` more stanzas were delivered (or it is quiet).
fn run_until_stanzas(w: &mut World, k: u64) {
    let target = w.net.stats().total().stanzas + k;
    while w.net.stats().total().stanzas < target {
        if w.net.drive_bounded(1).is_ok() {
            break;
        }
    }
}

fn crash_mid_sync(ctx: &Ctx<'_>) -> Body {
    let mut body = Body::default();
    for victim in [A, B] {
        // How long the pull after a cold restart of A is.
        let mut w = ctx.pair();
        w.net.crash(A);
        w.net.drive_for(Duration::from_secs(5));
        let full = w.measure_plain(|w| {
            w.net.restart(A);
            w.log_in(ctx.fed, A);
        });
        let mut w = ctx.pair();
        w.net.crash(A);
        w.net.drive_for(Duration::from_secs(5));
        w.net.reset_stats();
        w.net.restart(A);
        w.log_in(ctx.fed, A);
        run_until_stanzas(&mut w, full.stanzas / 2);
        w.net.crash(victim);
        w.net.drive_for(Duration::from_secs(5));
        let phase = w.measure_plain(|w| {
            w.net.restart(victim);
            w.log_in(ctx.fed, victim);
        });
        let mut w2 = w;
        settle(&mut w2);
        let diff = w2.diff();
        body.check(if victim == A { "crash-mid-pull-subject-converges" } else { "crash-mid-pull-peer-converges" }, Check::empty(
            format!(
                "{victim} crashes after {} of the {} stanzas of a pull, restarts: every user then sees exactly its contacts' presence",
                full.stanzas / 2,
                full.stanzas
            ),
            &truth_reqs(&["PS-12", "PS-13", "PS-19", "PS-56"]),
            &diff,
        ));
        if victim == A {
            body.phase = Some(phase);
        }
        body.worlds.push(w2);
    }
    body
}

fn changes_during_sync(ctx: &Ctx<'_>) -> Body {
    let changes = ctx.fed.churn(ctx.changes, ctx.seed);
    let during = ctx
        .fed
        .churn_with(ctx.changes, &Churn::default(), ctx.seed ^ 0xd0);
    let mut w = ctx.pair();
    let n = link_loss_with(&mut w, &changes).stanzas;
    let mut w = ctx.pair();
    w.net.partition(A, B);
    apply(&mut w, &changes);
    w.net.drive();
    let mut body_checks = Vec::new();
    // Live presence changes of A's publishers made while the resync's bulk is under way:
    // each must leave at once, ahead of the queued bulk (PS-52).
    let mut live = 0;
    let mut waiting: Vec<(BareJid, usize, String)> = Vec::new();
    let phase = w.measure_plain(|w| {
        w.net.repair(A, B);
        run_until_stanzas(w, n / 3);
        for c in &during {
            let publisher = match c {
                Change::Presence { user, .. } if c.domain() == A => Some(user.clone()),
                _ => None,
            };
            let before = w.net.host(A).records().len();
            apply(w, std::slice::from_ref(c));
            if let Some(user) = publisher {
                let now = w.net.host(A).records().len();
                if carries(&w.net.host(A).records()[before..now], &user) {
                    live += 1;
                } else {
                    waiting.push((user, now, format!("{c:?}")));
                }
            }
        }
    });
    // A change that was not sent at once but later was held back behind the bulk; one that
    // was never sent needed no transmission (its published state did not change).
    let records = w.net.host(A).records();
    let late: Vec<String> = waiting
        .into_iter()
        .filter(|(user, from, _)| carries(&records[*from..], user))
        .map(|(_, _, c)| c)
        .collect();
    live += late.len();
    body_checks.push(
        if live == 0 {
        Check::with(
            "live changes during a resync leave at once",
            &["PS-52"],
            Outcome::NotExercised("no live change of a publisher during the resync".into()),
        )
    } else {
        Check::new(
            format!("{live} live presence changes made during the resync are sent at once, ahead of the queued bulk"),
            &["PS-52"],
            late.is_empty(),
            || format!("held back: {}", late.join("; ")),
        )
    }
        .with_id("live-changes-first"),
    );
    let mut w2 = w;
    settle(&mut w2);
    let mut body = Body {
        checks: body_checks,
        ..Body::default()
    };
    let mut reqs = truth_reqs(&RESYNC);
    reqs.extend(["PS-44", "PS-49", "PS-63", "PS-67"]);
    body.check("changes-during-sync-converge", Check::empty(
        format!(
            "{} changes made after {} of the resync's {n} stanzas: every user then sees exactly its contacts' presence",
            during.len(),
            n / 3
        ),
        &reqs,
        &w2.diff(),
    ));
    body.phase = Some(phase);
    body.worlds.push(w2);
    body
}

fn long_outage(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    w.net.crash(B);
    w.net.drive_for(Duration::from_secs(310));
    let mut body = Body::default();
    let shown = super::restart::shown_of(&w, A, B);
    body.check(
        "grace-period-withdraws",
        Check::empty(
            "after 300 s without the peer, its users' presence is no longer shown",
            &["PS-56"],
            &shown,
        ),
    );
    let phase = w.measure_plain(|w| {
        w.net.restart(B);
        w.log_in(ctx.fed, B);
    });
    body.check(
        "truth",
        truth(
            "after the peer's restart every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-19", "PS-34", "PS-56"]),
            &phase,
        ),
    );
    body.phase = Some(phase);
    body.worlds.push(w);
    body
}

fn failing_sessions(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    w.net.partition(A, B);
    w.net.drive();
    w.net.set_filter(lose_every("hello"));
    let phase = w.measure_for(Duration::from_secs(600), |w| w.net.repair(A, B));
    let probes = phase.stanzas_of(|k| k == "presence/probe");
    let mut body = Body::default();
    body.check(
        "fallback-to-legacy",
        Check::new(
            "after three failed sessions the peer is treated as legacy: RFC 6121 probes go out",
            &["PS-51", "PS-57", "PS-58"],
            probes > 0,
            || format!("no probe in {:?}", phase.kinds),
        ),
    );
    body.check(
        "truth-after-fallback",
        Check::empty(
            "after the fallback every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-58"]),
            &phase.diff,
        ),
    );
    // PS-58: legacy only until the streams are re-established. With hellos delivered again,
    // new streams bring a session and the views stay right.
    w.net.clear_filter();
    w.net.partition(A, B);
    w.net.drive();
    let from = w.net.host(A).records().len();
    w.net.repair(A, B);
    w.net.drive_for(Duration::from_secs(10));
    let hellos = w.net.host(A).records()[from..]
        .iter()
        .filter(|r| match &r.kind {
            RecordKind::Out { stanza, .. } | RecordKind::In { stanza, .. } => {
                stanza.name() == "iq" && stanza.has_child("hello", crate::wire::ns::PRESENCE_SYNC)
            }
            _ => false,
        })
        .count();
    let mut problems = w.diff();
    if hellos < 2 {
        problems.insert(
            0,
            format!("{hellos} hello stanzas on the new streams, not an exchange"),
        );
    }
    body.check(
        "retry-on-new-streams",
        Check::empty(
            "after the fallback, re-established streams bring a new hello exchange, and every user sees exactly its contacts' presence",
            &["PS-58", "PS-16"],
            &problems,
        ),
    );
    // PS-58 counts failed sessions, not failed hellos: sessions whose hellos are answered but
    // whose pulls never are (changes on both sides during an outage, every reconcile query
    // lost) fail too, and three in a row bring the fallback.
    w.net.partition(A, B);
    apply(&mut w, &ctx.fed.churn(ctx.changes, ctx.seed ^ 0x58));
    w.net.drive();
    w.net.set_filter(lose_every("reconcile"));
    let pulls = w.measure_for(Duration::from_secs(600), |w| w.net.repair(A, B));
    w.net.clear_filter();
    let probes = pulls.stanzas_of(|k| k == "presence/probe");
    let mut problems = pulls.diff.clone();
    if probes == 0 {
        problems.insert(0, format!("no probe in {:?}", pulls.kinds));
    }
    body.check(
        "fallback-after-failed-pulls",
        Check::empty(
            "sessions that are established but whose pulls are never answered count as failed: after three the peer is treated as legacy, and every user sees exactly its contacts' presence",
            &["PS-51", "PS-58"],
            &problems,
        ),
    );
    body.phase = Some(phase);
    body.worlds.push(w);
    body
}
