//! The smallest limits: a peer that declares the least max-bytes the XEP allows, so that every
//! batch, query and answer of a large resync must be cut to size (XEP §Flow Control and
//! Limits, §Answers that Do Not Fit, §Batches).

use std::time::Duration;

use minidom::Element;

use super::{A, B, Body, Ctx, Scenario, truth, truth_reqs};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::record::{Record, RecordKind};
use crate::conformance::subject::{Implementation, Reference};
use crate::conformance::world::World;
use crate::wire::{Hello, Limits, WireElement, ns, stanza_bytes};

pub(super) fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "small-limits",
        about: "the peer declares the least max-bytes the XEP allows (4096) in a larger federation: login storms, a link loss with many changes and a cold restart, every stanza within it",
        run: small_limits,
    }]
}

/// Users per domain of the scenario (at least): enough publishers that the presence and edge
/// sets are two levels deep and that a batch of a login storm, a query and an answer all
/// need more than 4096 bytes.
const USERS: u32 = 2000;

/// The peer's max-bytes: the least a hello may declare (XEP §Flow Control and Limits).
const MAX_BYTES: u32 = *Limits::MAX_BYTES.start();

/// Changes on both sides during the link loss (at least).
const CHANGES: usize = 200;

/// One-sided subscription mismatches repaired after a partition: well below the threshold at
/// which repairs are suspended (PS-65: 1000 for this edge set).
const MISMATCHES: usize = 400;

/// Bytes of a batch stanza around its items (the `<iq/>` and the `<batch/>` with its epoch
/// take about 200): a sender that fills batches fits ⌊(max-bytes − this) / item⌋ items.
const BATCH_ENVELOPE: u32 = 512;

fn small_limits(ctx: &Ctx<'_>) -> Body {
    // The preset's roster shape with more users, so that the sets are deep enough for every
    // stanza to need cutting (tiny's shape, with its many blocks, found a repair that only
    // PS-85 on the answers of repairs completes).
    let spec = ctx.spec.clone().with_users(ctx.spec.users.max(USERS));
    let fed = spec.generate(&[A, B]);
    let mut peer = Reference::peer();
    peer.setup.config.limits.max_bytes = MAX_BYTES;
    let mut w = World::new(&fed, &[A], |d| {
        if d == A {
            ctx.imp.server(d, ctx.seed)
        } else {
            peer.server(d, ctx.seed ^ 0x5eed)
        }
    });
    let linked = w.net.host(A).records().len();
    w.log_in_all(&fed);
    w.mark_setup();
    let mut body = Body::default();
    body.audit.limits.max_bytes = MAX_BYTES;
    let setup = w.net.host(A).records();
    body.check("login-storm-batches", batches_check(setup, linked));
    // A link loss with many changes on both sides: the descent of both sets, with lacks,
    // splits and owed edges in queries that must be cut to max-bytes (PS-28, PS-30, PS-31).
    let changes = fed.churn(ctx.changes.max(CHANGES), ctx.seed);
    w.net.partition(A, B);
    for c in &changes {
        let d = c.domain().to_owned();
        w.act(&d, |s| c.apply(s));
    }
    w.net.drive();
    let loss = w.measure_plain(|w| w.net.repair(A, B));
    body.check(
        "truth-link-loss",
        truth(
            format!(
                "with the peer's max-bytes of {MAX_BYTES}, after a link loss with {} changes \
                 every user sees exactly its contacts' presence",
                changes.len()
            ),
            &truth_reqs(&["PS-28", "PS-30", "PS-31", "PS-41"]),
            &loss,
        ),
    );
    // Many one-sided subscription mismatches on both sides (below the threshold of PS-65):
    // the edge descent finds hundreds of edges each side lacks, so that its queries carry
    // lacks, owed edges and splits together, each cut to max-bytes (PS-28, PS-30).
    let mismatches = fed.mismatches(MISMATCHES, ctx.seed);
    w.net.partition(A, B);
    for m in &mismatches {
        w.act(m.domain(), |s| m.apply(s));
    }
    w.net.drive();
    let repaired = w.measure_plain(|w| {
        w.net.repair(A, B);
        w.net.drive();
        w.net.drive_for(Duration::from_secs(30));
    });
    let (ea, eb) = super::peers::edge_sets(&w);
    let differing: Vec<String> = ea
        .symmetric_difference(&eb)
        .take(5)
        .map(|e| format!("{e:?}"))
        .collect();
    body.check(
        "edge-sets-equal",
        Check::empty(
            format!(
                "with the peer's max-bytes of {MAX_BYTES}, after {} mismatches both servers \
                 project the same edge set",
                mismatches.len()
            ),
            &["PS-28", "PS-30", "PS-61"],
            &differing,
        ),
    );
    body.check(
        "truth-mismatches",
        truth(
            format!(
                "with the peer's max-bytes of {MAX_BYTES}, after the repairs every user sees \
                 exactly its contacts' presence"
            ),
            &truth_reqs(&["PS-63"]),
            &repaired,
        ),
    );
    // A cold restart of the subject: its cache is pulled again, within max-bytes.
    w.net.crash(A);
    w.net.drive_for(Duration::from_secs(5));
    let restart = w.measure_plain(|w| {
        w.net.restart(A);
        w.log_in(&fed, A);
    });
    body.check(
        "truth-cold-restart",
        truth(
            format!(
                "with the peer's max-bytes of {MAX_BYTES}, after a cold restart every user sees \
                 exactly its contacts' presence"
            ),
            &truth_reqs(&["PS-30", "PS-31", "PS-35"]),
            &restart,
        ),
    );
    body.phase = Some(loss.then(repaired).then(restart));
    body.worlds.push(w);
    body
}

/// The latest hello of each direction in `records`: (the host's, the peer's).
fn hellos(records: &[Record]) -> (Option<Hello>, Option<Hello>) {
    let hello = |stanza: &Element| {
        stanza
            .get_child("hello", ns::PRESENCE_SYNC)
            .and_then(|h| Hello::parse_element(h).ok())
    };
    let (mut own, mut peer) = (None, None);
    for r in records {
        match &r.kind {
            RecordKind::Out { stanza, .. } => own = hello(stanza).or(own),
            RecordKind::In { stanza, .. } => peer = hello(stanza).or(peer),
            _ => {}
        }
    }
    (own, peer)
}

/// XEP §Batches: "batches coalesce changes that come faster than they can be sent (a login
/// storm)". In the subject's login storm, with its session up, every user entering its
/// published set is an item (PS-47) and every change must reach the peer (PS-44); a sender
/// that coalesces needs at most `window` batches sent before the first acknowledgement, then
/// one per ⌊(max-bytes − 512) / item⌋ items (or max-items), where `item` is the largest item
/// it sent. A sender that cuts its batches short of both limits sends many more stanzas for the
/// same items. `records` are the subject's up to the end of the login storms, which began at
/// `storm` (after the session was established).
fn batches_check(records: &[Record], storm: usize) -> Check {
    let name = "a login storm in a session crosses the link in batches filled to the limits";
    let reqs = ["PS-44", "PS-47"];
    let (Some(own), Some(peer)) = hellos(records) else {
        return Check::with(
            name,
            &reqs,
            Outcome::NotExercised("no hello exchange before the login storm".into()),
        );
    };
    let limits = own.limits().negotiate(&peer.limits());
    let (mut batches, mut items, mut largest) = (0u64, 0u64, 0usize);
    for r in &records[storm..] {
        let RecordKind::Out { stanza, .. } = &r.kind else {
            continue;
        };
        let Some(batch) = stanza.get_child("batch", ns::PRESENCE_SYNC) else {
            continue;
        };
        batches += 1;
        for item in batch.children().filter(|c| c.name() == "item") {
            items += 1;
            largest = largest.max(stanza_bytes(item));
        }
    }
    if items == 0 {
        return Check::with(
            name,
            &reqs,
            Outcome::NotExercised("no batch was sent in the login storm".into()),
        );
    }
    let by_bytes = (limits.max_bytes.saturating_sub(BATCH_ENVELOPE) as usize / largest).max(1);
    let per_batch = (limits.max_items as u64).min(by_bytes as u64);
    let bound = u64::from(limits.window) + items.div_ceil(per_batch);
    Check::new(
        format!(
            "a login storm in a session crosses the link in batches filled to the limits (max-bytes \
             {}, max-items {}, window {}: at most {bound} batches for its {items} items)",
            limits.max_bytes, limits.max_items, limits.window
        ),
        &reqs,
        batches <= bound,
        || {
            format!(
                "{batches} batches for {items} items of at most {largest} bytes, {:.1} items \
                 each",
                items as f64 / batches as f64
            )
        },
    )
}
