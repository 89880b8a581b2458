//! Restarts: cold (crash) and graceful, of either side and of both.

use std::collections::BTreeSet;
use std::time::Duration;

use jid::BareJid;

use super::{A, B, Body, Ctx, Scenario, truth, truth_reqs};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::record::{Record, RecordKind};
use crate::conformance::subject::{Implementation, Reference, Subject};
use crate::conformance::workload::Federation;
use crate::conformance::world::{MAX_EVENTS, Phase, World, hellos_received};
use crate::server::Flavour;
use crate::wire::ns;

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "cold-restart",
            about: "a.example crashes and restarts without its user sessions; its users log in at once (login storm)",
            run: cold_restart,
        },
        Scenario {
            name: "peer-cold-restart",
            about: "the peer crashes and restarts with a new epoch; half its users log in again at once; no presence of its previous run may be shown once its hello is in",
            run: peer_cold_restart,
        },
        Scenario {
            name: "priority",
            about: "a.example restarts cold in a larger federation, its peer answering 16 items at a time: its active users' contacts must be synchronized first",
            run: priority,
        },
        Scenario {
            name: "graceful-restart",
            about: "each side in turn shuts down with an announcement, restarts and its users log in",
            run: graceful_restart,
        },
        Scenario {
            name: "both-restart",
            about: "both servers crash, restart and go through login storms at the same time",
            run: both_restart,
        },
    ]
}

/// Crash of `domain`, 5 s down, then the measured restart with its login storm.
fn crash_and_restart(w: &mut World, fed: &Federation, domain: &str) -> Phase {
    w.net.crash(domain);
    w.net.drive_for(Duration::from_secs(5));
    w.measure_plain(|w| {
        w.net.restart(domain);
        w.log_in(fed, domain);
    })
}

fn cold_restart(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    let seen = w.net.host(A).records().len();
    let phase = crash_and_restart(&mut w, ctx.fed, A);
    let resent = resent_requests(&w.net.host(A).records()[seen..], B);
    let mut base = ctx.baseline(Flavour::Prosody);
    let baseline = crash_and_restart(&mut base, ctx.fed, A);
    let mut body = Body::default();
    body.check(
        "truth",
        truth(
            "after the restart and the login storm every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-12", "PS-19", "PS-34", "PS-44"]),
            &phase,
        ),
    );
    body.check("domain-level-presence", Check::new(
        "presence of the restarted server's users reaches the peer at domain level, not per edge",
        &["PS-44", "PS-66"],
        phase.stanzas < baseline.stanzas.max(2),
        || {
            format!(
                "{} stanzas, RFC 6121 needs {}",
                phase.stanzas, baseline.stanzas
            )
        },
    ));
    let pending = pending_requests(w.server(A), B);
    body.check("no-resent-requests", Check::with(
        "no pending subscription request is sent again to the peer at login",
        &["PS-87"],
        match (pending, resent) {
            (0, _) => Outcome::NotExercised(format!("no online user of {A} has a pending request to {B}")),
            (_, 0) => Outcome::Pass,
            (p, r) => Outcome::Fail(format!(
                "{r} subscription requests (not repairs) sent to {B} during the login storm; the online users hold {p} pending ones there"
            )),
        },
    ));
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// `subscribe` stanzas in `records` sent to `peer` that are not repairs: in a login storm
/// without subscription actions, re-sent pending requests (PS-87).
fn resent_requests(records: &[Record], peer: &str) -> usize {
    records
        .iter()
        .filter(|r| match &r.kind {
            RecordKind::Out { peer: p, stanza } => {
                p == peer
                    && stanza.name() == "presence"
                    && stanza.attr("type") == Some("subscribe")
                    && !stanza.has_child("repair", ns::PRESENCE_SYNC)
            }
            _ => false,
        })
        .count()
}

/// Pending outbound subscription requests of `s`'s online users towards `peer`.
fn pending_requests(s: &dyn Subject, peer: &str) -> usize {
    let accounts = s.accounts();
    s.online()
        .keys()
        .filter_map(|u| accounts.get(u))
        .flat_map(|a| a.roster.iter())
        .filter(|(c, sub)| c.domain().as_str() == peer && sub.pending_out())
        .count()
}

/// Users of `peer` and their resources that are online at `peer` now.
fn online_resources(w: &World, peer: &str) -> BTreeSet<(BareJid, String)> {
    let s = w.server(peer);
    s.online()
        .iter()
        .flat_map(|(u, r)| r.keys().map(move |res| (u.clone(), res.clone())))
        .collect()
}

/// Resources of `peer`'s users that some user of `local` is shown but that are not in
/// `allowed`.
fn shown_outside(
    w: &World,
    local: &str,
    peer: &str,
    allowed: &BTreeSet<(BareJid, String)>,
) -> Vec<String> {
    let s = w.server(local);
    let mut out = Vec::new();
    for user in s.online().keys() {
        let Some(view) = s.view(user) else { continue };
        for (contact, resources) in view {
            if contact.domain().as_str() != peer {
                continue;
            }
            for r in resources.keys() {
                if !allowed.contains(&(contact.clone(), r.clone())) {
                    out.push(format!("{user} is shown {contact}/{r}"));
                }
            }
        }
    }
    out
}

fn peer_cold_restart(ctx: &Ctx<'_>) -> Body {
    let mut w = ctx.pair();
    w.net.crash(B);
    w.net.drive_for(Duration::from_secs(5));
    // Once the subject has received a hello of the peer's new run, every presence it shows
    // of the peer's users must come from that run (PS-13, PS-19).
    let mut published: BTreeSet<(BareJid, String)> = BTreeSet::new();
    let hellos_before = hellos_received(w.net.host(A), B);
    let phase = w.measure(
        |w| {
            w.net.restart(B);
            w.log_in_half(ctx.fed, B);
        },
        |w| {
            published.extend(online_resources(w, B));
            if hellos_received(w.net.host(A), B) == hellos_before {
                return None;
            }
            let stale = shown_outside(w, A, B, &published);
            (!stale.is_empty()).then(|| format!("at {}: {}", w.net.now(), stale.join("; ")))
        },
    );
    let mut base = ctx.baseline(Flavour::Prosody);
    base.net.crash(B);
    base.net.drive_for(Duration::from_secs(5));
    let baseline = base.measure_plain(|w| {
        w.net.restart(B);
        w.log_in_half(ctx.fed, B);
    });
    let mut body = Body::default();
    body.check(
        "no-stale-epoch-presence",
        Check::empty(
            "once the peer's new epoch is known, no presence of its previous run is shown",
            &["PS-13", "PS-19"],
            &phase.complaints,
        ),
    );
    body.check(
        "truth",
        truth(
            "after the peer's restart every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-13", "PS-19", "PS-34", "PS-66"]),
            &phase,
        ),
    );
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// Graceful shutdown of `domain`, measured, then its restart and login storm, measured.
fn shutdown_and_restart(w: &mut World, fed: &Federation, domain: &str) -> (Phase, Phase) {
    let down = w.measure_plain(|w| w.net.shutdown(domain));
    let up = w.measure_plain(|w| {
        w.net.restart(domain);
        w.log_in(fed, domain);
    });
    (down, up)
}

/// Users of `local` shown any presence of `peer`'s users.
pub(super) fn shown_of(w: &World, local: &str, peer: &str) -> Vec<String> {
    shown_outside(w, local, peer, &BTreeSet::new())
}

fn graceful_restart(ctx: &Ctx<'_>) -> Body {
    let mut body = Body::default();
    let mut w = ctx.pair();
    // The implementation under test stops: one announcement per synchronized peer.
    let (down, up) = shutdown_and_restart(&mut w, ctx.fed, A);
    let from_a = down
        .directions
        .iter()
        .filter(|d| d.0 == A)
        .map(|d| d.2)
        .sum::<u64>();
    body.check("one-shutdown-message", Check::new(
        "a graceful shutdown sends one shutdown message to the synchronized peer, and nothing per edge",
        &["PS-54"],
        from_a == 1,
        || format!("{from_a} stanzas from {A} at shutdown: {:?}", down.kinds),
    ));
    body.check(
        "truth-own-restart",
        truth(
            "after its graceful restart every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-12", "PS-54"]),
            &up,
        ),
    );
    // The peer stops: the subject voids its cache at once.
    w.measure_plain(|w| w.net.shutdown(B));
    let shown = shown_of(&w, A, B);
    body.check(
        "shutdown-withdraws",
        Check::empty(
            "on the peer's shutdown message, its users' presence is withdrawn at once",
            &["PS-55"],
            &shown,
        ),
    );
    let up_b = w.measure_plain(|w| {
        w.net.restart(B);
        w.log_in(ctx.fed, B);
    });
    body.check(
        "truth-peer-restart",
        truth(
            "after the peer's graceful restart every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-12", "PS-13", "PS-55"]),
            &up_b,
        ),
    );
    let mut base = ctx.baseline(Flavour::Prosody);
    let (base_down, base_up) = shutdown_and_restart(&mut base, ctx.fed, A);
    body.phase = Some(down.then(up));
    body.baseline = Some(base_down.then(base_up));
    body.worlds.push(w);
    body
}

fn both_restart(ctx: &Ctx<'_>) -> Body {
    let script = |w: &mut World| {
        w.net.crash(A);
        w.net.crash(B);
        w.net.drive_for(Duration::from_secs(5));
        w.measure_plain(|w| {
            w.net.restart(A);
            w.net.restart(B);
            w.log_in(ctx.fed, A);
            w.log_in(ctx.fed, B);
        })
    };
    let mut w = ctx.pair();
    let phase = script(&mut w);
    let mut base = ctx.baseline(Flavour::Prosody);
    let baseline = script(&mut base);
    let mut body = Body::default();
    body.check(
        "truth",
        truth(
            "after both restarted every user sees exactly its contacts' presence",
            &truth_reqs(&["PS-12", "PS-13", "PS-19", "PS-34"]),
            &phase,
        ),
    );
    body.phase = Some(phase);
    body.baseline = Some(baseline);
    body.worlds.push(w);
    body
}

/// Users per domain of the priority scenario (at least).
const PRIORITY_USERS: u32 = 2000;

/// Fraction of users active in the priority scenario: few enough that their contacts are a
/// small part of the peer's published set, as on a large server at night.
const PRIORITY_ACTIVE: f64 = 0.01;

/// The peer's max-items in the priority scenario: a pull of many answers, each reduced to fit
/// (PS-31).
const PRIORITY_MAX_ITEMS: u32 = 16;

fn priority(ctx: &Ctx<'_>) -> Body {
    let spec = ctx
        .spec
        .clone()
        .with_users(ctx.spec.users.max(PRIORITY_USERS))
        .with_active(PRIORITY_ACTIVE);
    let fed = spec.generate(&[A, B]);
    let mut peer = Reference::peer();
    peer.setup.config.limits.max_items = PRIORITY_MAX_ITEMS;
    let mut w = World::new(&fed, &[A], |d| {
        if d == A {
            ctx.imp.server(d, ctx.seed)
        } else {
            peer.server(d, ctx.seed ^ 0x5eed)
        }
    });
    w.log_in_all(&fed);
    w.mark_setup();
    let phase = crash_and_restart(&mut w, &fed, A);
    let mut body = Body::default();
    body.check("truth-reduced-answers", truth(
        format!("with the peer's max-items of {PRIORITY_MAX_ITEMS}, answers are reduced to fit and the pull still ends with every user seeing exactly its contacts' presence"),
        &truth_reqs(&["PS-30", "PS-31", "PS-34", "PS-35"]),
        &phase,
    ));
    body.audit.limits.max_items = PRIORITY_MAX_ITEMS;
    let (to_active, all) = (
        phase.reconcile_stanzas_to_active_synced,
        phase.reconcile_stanzas,
    );
    body.check("active-users-first", Check::new(
        format!(
            "the active users' contacts are right after at most half of the pull's {all} reconcile stanzas"
        ),
        &["PS-53"],
        to_active.is_some_and(|n| n * 2 <= all),
        || format!("right only after {to_active:?} of {all}"),
    ));
    body.check("late-login-first", late_login_first(ctx, &fed));
    body.phase = Some(phase);
    body.worlds.push(w);
    body
}

/// The peer's window in the `late-login-first` check: two requests at a time, so that a user
/// who logs in early in the subject's pull finds most of it still queued.
const LATE_LOGIN_WINDOW: u32 = 2;

/// PS-53's second clause: a user who logs in while a restart's pull is under way has the
/// buckets of its contacts moved to the front of the queue. In the priority workload, with
/// the peer's window at [`LATE_LOGIN_WINDOW`], A restarts and every user of A logs in except
/// one: of those shown at most one answer's worth of contacts of B before the crash
/// ([`PRIORITY_MAX_ITEMS`]), the one shown the most; once the pull has exchanged a few
/// reconcile stanzas, that user logs in (active). Its view must be right within the first half
/// of the reconcile stanzas the pull still exchanges after its login: its contacts' buckets
/// would otherwise come where the queue had them, anywhere in the rest of the pull.
fn late_login_first(ctx: &Ctx<'_>, fed: &Federation) -> Check {
    let name = format!(
        "a user who logs in during the pull (the peer's window {LATE_LOGIN_WINDOW}) sees its contacts within the first half of the reconcile stanzas left"
    );
    let mut peer = Reference::peer();
    peer.setup.config.limits.max_items = PRIORITY_MAX_ITEMS;
    peer.setup.config.limits.window = LATE_LOGIN_WINDOW;
    let mut w = World::new(fed, &[A], |d| {
        if d == A {
            ctx.imp.server(d, ctx.seed)
        } else {
            peer.server(d, ctx.seed ^ 0x5eed)
        }
    });
    w.log_in_all(fed);
    let shown_from_b = |u: &BareJid| {
        w.server(A)
            .view(u)
            .map_or(0, |v| v.keys().filter(|c| c.domain().as_str() == B).count())
    };
    let Some(late) = w
        .server(A)
        .online()
        .keys()
        .filter(|u| shown_from_b(u) <= PRIORITY_MAX_ITEMS as usize)
        .max_by_key(|u| (shown_from_b(u), std::cmp::Reverse((*u).clone())))
        .filter(|u| shown_from_b(u) > 0)
        .cloned()
    else {
        return Check::with(
            name,
            &["PS-53"],
            Outcome::NotExercised("no user of A is shown a contact of B".into()),
        );
    };
    let (late_sessions, others): (Vec<_>, Vec<_>) =
        fed.sessions(A).iter().partition(|s| s.user == late);
    w.net.crash(A);
    w.net.drive_for(Duration::from_secs(5));
    w.net.restart(A);
    let active: Vec<BareJid> = fed.active_users(A).cloned().collect();
    w.act(A, |s| {
        for x in &others {
            s.login(&x.user, &x.resource, x.presence.clone());
        }
        for u in active.iter().filter(|u| **u != late) {
            s.set_active(u, true);
        }
    });
    // The pull under way: a few reconcile stanzas exchanged.
    let mut events = 0u64;
    while w.reconcile_stanzas() < 4 && events < MAX_EVENTS {
        events += 1;
        if w.net.drive_bounded(1).is_ok() {
            break;
        }
    }
    let at_login = w.reconcile_stanzas();
    w.act(A, |s| {
        for x in &late_sessions {
            s.login(&x.user, &x.resource, x.presence.clone());
        }
        s.set_active(&late, true);
    });
    // Each change of its view, with the reconcile stanzas delivered by then; judged against
    // the truth at the end (nothing changes after its login).
    let view_of = |w: &World| w.server(A).view(&late).cloned().unwrap_or_default();
    let mut changes = vec![(w.reconcile_stanzas(), view_of(&w))];
    loop {
        events += 1;
        let quiet = w.net.drive_bounded(1).is_ok();
        let now = view_of(&w);
        if changes.last().is_some_and(|(_, v)| *v != now) {
            changes.push((w.reconcile_stanzas(), now));
        }
        if quiet || events >= MAX_EVENTS {
            break;
        }
    }
    let want = w.truth().get(&late).cloned().unwrap_or_default();
    let right_at = changes.last().filter(|(_, v)| *v == want).map(|(n, _)| *n);
    let left = w.reconcile_stanzas() - at_login;
    let converged = w.diff().is_empty();
    match right_at {
        Some(n) if converged => {
            let to_late = n - at_login;
            Check::new(name, &["PS-53"], to_late * 2 <= left, || {
                format!(
                    "{late} right only after {to_late} of the {left} reconcile stanzas left at its login"
                )
            })
        }
        _ => Check::new(name, &["PS-53"], false, || {
            format!("{late} or another user not right at the end (converged: {converged})")
        }),
    }
}
