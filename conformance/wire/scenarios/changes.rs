//! `changes-during-sync`: presence and subscription changes while a resync is held in flight
//! by the relays' gate.

use super::super::people::{Change, change_each};
use super::subscriptions::{one_sided, rosters};
use super::*;

/// Whether `el` is a reconcile query of either set (XEP §Reconciliation).
fn is_sync_query(el: &minidom::Element) -> bool {
    el.name() == "iq"
        && matches!(el.attr("type"), Some("get" | "set"))
        && el.has_child("reconcile", PRESENCE_SYNC)
}

/// `changes-during-sync`: the resync after a link loss is held in flight (the suite's relays
/// stop forwarding right after its first reconcile query has crossed) while users on both
/// sides change presence, ask for new subscriptions and end others; then the link is released.
/// Every view and both rosters of every pair must come out right (XEP §Domain-Level Presence:
/// changes during a session are transmitted; §Relation to RFC 6121: the subscription flows
/// are unchanged).
pub async fn changes_during_sync(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let n = w.ours.len();
    if n < 6 {
        b.check(
            "held-sync",
            Check::with(
                "changes made while a resync is in flight",
                &["PS-44", "PS-49"],
                Outcome::NotExercised(format!(
                    "the scenario's subscription changes need 6 users a side, the run has {n}"
                )),
            ),
        );
        return Ok(b);
    }
    w.cut().await;
    let mark = w.mark();
    // Changes during the outage, so that the resync has presence to pull both ways.
    change_each(&mut w.ours, |i| {
        (i % 2 == 1).then_some(Change::Available(Some(Show::Xa)))
    })?;
    change_each(&mut w.theirs, |i| {
        (i % 2 == 0).then_some(Change::Available(Some(Show::Dnd)))
    })?;
    w.gate.close_after(is_sync_query);
    w.kick()?;
    let Some(query) = w.gate.wait_tripped(SESSION_WAIT * 2).await else {
        w.gate.open();
        b.check(
            "held-sync",
            Check::with(
                "changes made while a resync is in flight",
                &["PS-44", "PS-49"],
                Outcome::NotExercised(format!(
                    "no reconcile query crossed within {:?} of the link's return",
                    SESSION_WAIT * 2
                )),
            ),
        );
        return Ok(b);
    };
    // The link is held: the query crossed, its answer has not. Changes now happen at both
    // servers while the sync is in flight.
    let mut changes = change_each(&mut w.ours, |i| match i % 3 {
        0 => Some(Change::Unavailable),
        1 => Some(Change::Available(Some(Show::Chat))),
        _ => None,
    })? + change_each(&mut w.theirs, |i| match i % 3 {
        1 => Some(Change::Unavailable),
        2 => Some(Change::Available(Some(Show::Away))),
        _ => None,
    })?;
    // New subscriptions (set-up edges: ours i <-> theirs i, ours i -> theirs i+1, theirs i ->
    // ours i+2), one asked from each side, and one ended from each side (an unsubscribe by
    // the follower, an unsubscribed by the followed): between users who stay online, so that
    // the views show what the change must (PS-49), and away from the pairs that the mismatch
    // and blocking scenarios edit.
    let asks = [
        (true, 2, 5),  // ours[2] asks theirs[5]
        (false, 4, 3), // theirs[3] asks ours[4]
    ];
    for &pair in &asks {
        w.ask(pair)?;
    }
    w.theirs[3].client.unsubscribe(&w.ours[5].bare())?; // theirs[3] followed ours[5]
    w.ours[2].client.unsubscribed(&w.theirs[0].bare())?; // theirs[0] followed ours[2]
    changes += asks.len() + 2;
    // Give the servers the changes (c2s is not held) before the link goes on.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let held_for = w
        .gate
        .tripped()
        .map_or(std::time::Duration::ZERO, |(at, _)| at.elapsed());
    w.gate.open();
    for &pair in &asks {
        w.approve(pair).await?;
    }
    let diffs = w.converge().await?;
    w.settle().await;
    let phase = w.phase_since(&mark);
    b.check(
        "truth",
        truth(
            &format!(
                "{changes} presence and subscription changes made while the resync's first query ({}) was held {} ms: every user sees exactly its contacts' presence",
                query.attr("id").unwrap_or("?"),
                held_for.as_millis()
            ),
            &[
                &with_live(w, &mark, &["PS-19", "PS-44", "PS-49", "PS-67"])[..],
                &rules_applied(w, &mark),
            ]
            .concat(),
            &diffs,
        ),
    );
    let after = rosters(w).await?;
    let differing = one_sided(&after, &w.target.domain);
    b.check(
        "edge-sets-equal",
        Check::empty(
            "subscriptions asked and ended during the resync leave both sides' rosters mirroring each other",
            &["PS-63", "PS-67"],
            &differing,
        ),
    );
    // Users come back online while the session stands: the subject's logins must cost no
    // probe and no presence addressed to a peer user (PS-66).
    let relogin = w.mark();
    let mut logins = 0;
    for (i, p) in w.people().into_iter().enumerate() {
        if !p.online {
            p.available(None)?;
            logins += usize::from(i < n);
        }
    }
    let back = w.converge().await?;
    w.settle().await;
    let per_user: Vec<String> = w
        .outgoing
        .stats()
        .captured
        .iter()
        .skip(relogin.outgoing_index())
        .filter(|c| {
            c.dir == super::super::relay::Direction::Forward && c.element.name() == "presence"
        })
        .filter(|c| !c.element.has_child("fanout", PRESENCE_SYNC))
        .filter(|c| {
            let to_user = c
                .element
                .attr("to")
                .and_then(|t| Jid::new(t).ok())
                .is_some_and(|j| j.node().is_some());
            match c.element.attr("type") {
                Some("probe") => true,
                None | Some("unavailable") => to_user,
                _ => false,
            }
        })
        .map(|c| String::from(&c.element))
        .collect();
    b.check(
        "no-probes-at-login",
        Check::with(
            format!(
                "{logins} users of the subject log in again during the session: no probe and no presence addressed to a peer user"
            ),
            &["PS-66"],
            match (logins, per_user.first()) {
                (0, _) => Outcome::NotExercised("no user of the subject logged in again".into()),
                (_, None) => Outcome::Pass,
                (_, Some(first)) => {
                    Outcome::Fail(format!("{} such stanzas, first: {first}", per_user.len()))
                }
            },
        ),
    );
    b.check(
        "truth-after",
        truth(
            "users back online are shown again on both sides",
            &with_live(w, &relogin, &["PS-44"]),
            &back,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}
