//! `changes-during-sync`: presence and subscription changes while a resync is held in flight
//! by the relays: what the suite's peer sends the subject waits, what the subject sends
//! crosses at once.

use std::collections::{BTreeMap, BTreeSet};

use super::super::people::{Change, change_each};
use super::super::relay::{Captured, Direction};
use super::subscriptions::{one_sided, rosters};
use super::*;

/// Whether `el` is a reconcile query of either set (XEP §Reconciliation).
fn is_sync_query(el: &minidom::Element) -> bool {
    el.name() == "iq"
        && matches!(el.attr("type"), Some("get" | "set"))
        && el.has_child("reconcile", PRESENCE_SYNC)
}

/// Whether `el` carries a `<reconcile/>` (a query or its answer).
fn is_reconcile(el: &minidom::Element) -> bool {
    el.name() == "iq" && el.has_child("reconcile", PRESENCE_SYNC)
}

/// Whether `el` carries a live change of `user`'s published state (XEP §Domain-Level
/// Presence): a domain-level presence from one of its resources, or a batch with its item.
fn carries(el: &minidom::Element, user: &BareJid) -> bool {
    let from_user = el
        .attr("from")
        .and_then(|f| Jid::new(f).ok())
        .is_some_and(|j| j.to_bare() == *user);
    match el.name() {
        "presence" => from_user && el.has_child("fanout", PRESENCE_SYNC),
        "iq" => el.get_child("batch", PRESENCE_SYNC).is_some_and(|b| {
            b.children()
                .any(|i| i.name() == "item" && i.attr("jid") == Some(user.as_str()))
        }),
        _ => false,
    }
}

/// PS-52 from what the subject sent on its stream since the resync began (`sent`, in order)
/// and what it received (`received`), the suite's traffic to it having been held from the
/// resync's first reconcile stanza until `released`, while the subject's users in `changed`
/// changed presence. The subject's own traffic was not held, so a reconcile query it sent
/// after `released` was made after every one of those changes (they were made 500 ms
/// earlier); the stanza carrying a change must come before it. The check is exercised only
/// if the subject's resync was under way across the changes: a query of the subject was
/// outstanding when they were made (its answer crossed after the release), and it sent
/// another after the release, so that a live change and bulk work competed for its stream.
fn live_first(
    sent: &[Captured],
    received: &[Captured],
    changed: &[BareJid],
    released: Instant,
) -> Check {
    let name = "live changes made while the subject's reconcile queries wait for answers cross before any later query";
    let asked: BTreeSet<&str> = sent
        .iter()
        .filter(|c| c.at < released && is_sync_query(&c.element))
        .filter_map(|c| c.element.attr("id"))
        .collect();
    let outstanding = received
        .iter()
        .filter(|c| c.at >= released && c.element.attr("type") == Some("result"))
        .filter_map(|c| c.element.attr("id"))
        .any(|id| asked.contains(id));
    let later = sent
        .iter()
        .any(|c| c.at >= released && is_sync_query(&c.element));
    let mut carried = 0;
    let mut late = BTreeMap::new();
    for user in changed {
        let Some(at) = sent.iter().position(|c| carries(&c.element, user)) else {
            continue; // its published state did not change: nothing to send
        };
        carried += 1;
        if let Some(query) = sent[..at]
            .iter()
            .find(|c| c.at >= released && is_sync_query(&c.element))
        {
            late.insert(
                user.to_string(),
                query.element.attr("id").unwrap_or("?").to_owned(),
            );
        }
    }
    let outcome = if carried == 0 || !outstanding || !later {
        Outcome::NotExercised(format!(
            "{carried} live changes crossed; a query of the subject outstanding during them: \
             {outstanding}; a query of the subject after them: {later}"
        ))
    } else if late.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "{} of {carried} changes crossed after a later reconcile query: {}",
            late.len(),
            late.iter()
                .take(3)
                .map(|(u, q)| format!("{u} after {q}"))
                .collect::<Vec<_>>()
                .join(", ")
                + if late.len() > 3 { ", …" } else { "" }
        ))
    };
    Check::with(format!("{name} ({carried} changes)"), &["PS-52"], outcome)
}

/// `changes-during-sync`: the resync after a link loss is held in flight (the suite's relays
/// stop forwarding the suite's traffic to the subject right after the first reconcile stanza
/// of the suite has crossed) while users on both sides change presence, ask for new
/// subscriptions and end others; then the link is released. The subject's live changes must
/// cross ahead of its later queries (PS-52).
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
    // The suite's traffic to the subject is held from its first reconcile stanza on (a query
    // of the suite's peer, or the answer to one of the subject's): the subject's queries
    // then wait for answers while its users change presence.
    let held = w.incoming.lane(Direction::Forward).clone();
    held.close_after(is_reconcile);
    w.kick()?;
    let Some(query) = held.wait_tripped(SESSION_WAIT * 2).await else {
        held.open();
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
    // The link is held: the stanza crossed, what follows it has not. Changes now happen at
    // both servers while the sync is in flight.
    let changed: Vec<BareJid> = (0..n)
        .filter(|i| i % 3 < 2)
        .map(|i| w.ours[i].bare())
        .collect();
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
    let held_for = held
        .tripped()
        .map_or(std::time::Duration::ZERO, |(at, _)| at.elapsed());
    let released = Instant::now();
    held.open();
    for &pair in &asks {
        w.approve(pair).await?;
    }
    let diffs = w.converge().await?;
    w.settle().await;
    let phase = w.phase_since(&mark);
    let (outgoing, incoming) = (w.outgoing.stats(), w.incoming.stats());
    let forward = |stats: &super::super::relay::RelayStats, from: usize| -> Vec<Captured> {
        stats
            .captured
            .iter()
            .skip(from)
            .filter(|c| c.dir == Direction::Forward)
            .cloned()
            .collect()
    };
    let sent = forward(&outgoing, mark.outgoing_index());
    let received = forward(&incoming, mark.incoming_index());
    b.check(
        "live-changes-first",
        live_first(&sent, &received, &changed, released),
    );
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
