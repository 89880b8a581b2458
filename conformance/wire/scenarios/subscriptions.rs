//! The scenarios about subscription state and blocks: `mismatch` (one-sided state repaired),
//! `blocking` (XEP-0191 across the domains, and status texts that must cross unaltered).

use super::super::relay::{Direction, Gate};
use super::*;

/// Every roster item of every person, fetched from its server: (user, contact) → state.
pub(super) async fn rosters(
    w: &mut Wire,
) -> Result<std::collections::BTreeMap<(BareJid, BareJid), Subscription>> {
    let mut all = std::collections::BTreeMap::new();
    for p in w.people() {
        let me = p.bare();
        for item in p.client.roster().await? {
            all.insert((me.clone(), item.jid.clone()), item.subscription);
        }
    }
    Ok(all)
}

/// The other side's view of an edge: `to` on one side is `from` on the other.
fn mirror(s: &Subscription) -> Subscription {
    match s {
        Subscription::To => Subscription::From,
        Subscription::From => Subscription::To,
        other => other.clone(),
    }
}

/// Cross-domain pairs whose two roster items do not mirror each other (an absent item counts
/// as `none`).
pub(super) fn one_sided(
    items: &std::collections::BTreeMap<(BareJid, BareJid), Subscription>,
    domain: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for ((user, contact), sub) in items {
        if user.domain().as_str() != domain || contact.domain().as_str() == domain {
            continue;
        }
        let back = items
            .get(&(contact.clone(), user.clone()))
            .cloned()
            .unwrap_or(Subscription::None);
        let (a, b) = (normal(sub), normal(&mirror(&back)));
        if a != b {
            out.push(format!(
                "{user} has {sub:?} for {contact}, who has {back:?}"
            ));
        }
    }
    for ((user, contact), sub) in items {
        if user.domain().as_str() == domain || contact.domain().as_str() != domain {
            continue;
        }
        if !items.contains_key(&(contact.clone(), user.clone()))
            && normal(sub) != Subscription::None
        {
            out.push(format!("{user} has {sub:?} for {contact}, who has no item"));
        }
    }
    out
}

fn normal(s: &Subscription) -> Subscription {
    match s {
        Subscription::Remove => Subscription::None,
        other => other.clone(),
    }
}

/// `mismatch`: one-sided subscription state on the suite's side, made by editing the peer's
/// database while it is down (as a restored backup or a lost write would): after the restart
/// the edge digests differ, the descent finds the edges and the repairs make both sides agree.
pub async fn mismatch(w: &mut Wire) -> Result<Body> {
    use crate::model::{NamedState, Subscription as Sub};
    let mut b = Body::default();
    let before = rosters(w).await?;
    let n = w.ours.len();
    // (peer user, subject user, the peer's state for it afterwards; None removes the item)
    let edits: Vec<(BareJid, BareJid, Option<NamedState>)> = vec![
        (w.theirs[0].bare(), w.ours[0].bare(), Some(NamedState::From)),
        (w.theirs[1].bare(), w.ours[1].bare(), Some(NamedState::To)),
        (w.theirs[2].bare(), w.ours[(2 + 2) % n].bare(), None),
        // A subscription the subject's user never approved (no item on the subject's side):
        // the subject is the side that repairs it (XEP §Repair, the publisher's row).
        (
            w.theirs[3 % n].bare(),
            w.ours[0].bare(),
            Some(NamedState::To),
        ),
    ];
    let touched: std::collections::BTreeSet<(BareJid, BareJid)> = edits
        .iter()
        .flat_map(|(t, o, _)| [(t.clone(), o.clone()), (o.clone(), t.clone())])
        .collect();
    let mark = w.mark();
    w.peer.stop().await;
    {
        let path = w.peer.database();
        let mut store = crate::serve::storage::Storage::open(&path)
            .map_err(|e| format!("the peer's database: {e}"))?;
        let accounts = store
            .load()
            .map_err(|e| format!("the peer's database: {e}"))?;
        for stored in accounts {
            let mut account = stored.account.clone();
            let mut changed = false;
            for (t, o, state) in &edits {
                if *t != stored.user {
                    continue;
                }
                let o = jid::BareJid::new(o.as_str()).map_err(|e| format!("{e}"))?;
                match state {
                    Some(s) => account.roster.set(o, Sub::named(*s)),
                    None => {
                        account.roster.remove(&o);
                    }
                }
                changed = true;
            }
            if changed {
                store
                    .save_account(&stored.user, &account)
                    .map_err(|e| format!("the peer's database: {e}"))?;
            }
        }
    }
    // The subject's outgoing traffic is held from its first hello stanza on: its session
    // starts (the peer answers or is answered) but its edge descent cannot end, so its edge
    // set stays unverified while the peer's first user goes online (PS-37).
    let held = w.outgoing.lane(Direction::Forward).clone();
    held.close_after(|el| el.name() == "iq" && el.has_child("hello", PRESENCE_SYNC));
    let restarted = Instant::now();
    let unverified = async {
        w.peer.start(super::super::peer::Mode::Sync).await?;
        w.log_in_theirs_but(1).await?;
        w.kick()?;
        unverified_window(w, &held).await
    }
    .await;
    held.open();
    b.check("unverified-not-shown", unverified?);
    w.converge().await?;
    // The edge descent runs in a session; RFC 6121 may have set the views right before a
    // subject small for the peer (PS-93) gets the peer's hello (PS-16).
    w.session_after(restarted, SESSION_WAIT).await;
    w.settle().await;
    let after = rosters(w).await?;
    let phase = w.phase_since(&mark);
    let reconciles = phase.reconcile_stanzas;
    let differing = one_sided(&after, &w.target.domain);
    b.check(
        "edge-sets-equal",
        Check::with(
            format!(
                "{} one-sided edges made on the peer's side: both sides agree afterwards",
                edits.len()
            ),
            &[
                &[
                    "PS-6", "PS-14", "PS-33", "PS-36", "PS-59", "PS-60", "PS-61", "PS-63", "PS-85",
                ][..],
                &rules_applied(w, &mark),
            ]
            .concat(),
            match (reconciles, differing.is_empty()) {
                (_, false) => Outcome::Fail(format!(
                    "{} pairs differ, first: {}",
                    differing.len(),
                    differing
                        .iter()
                        .take(3)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
                (0, true) => Outcome::Fail(
                    "no reconcile crossed: the edge mismatch was not looked for".into(),
                ),
                (_, true) => Outcome::Pass,
            },
        ),
    );
    let collateral: Vec<String> = before
        .iter()
        .filter(|(k, _)| !touched.contains(*k))
        .filter(|(k, v)| after.get(*k).map(normal) != Some(normal(v)))
        .map(|((u, c), v)| {
            format!(
                "{u}'s item for {c} changed from {v:?} to {:?}",
                after.get(&(u.clone(), c.clone()))
            )
        })
        .collect();
    // The subject's own repairs (PS-64 judges what the acting server changes in its roster).
    let subject_repaired = w
        .outgoing
        .stats()
        .captured
        .iter()
        .skip(mark.outgoing_index())
        .any(|c| {
            c.dir == super::super::relay::Direction::Forward
                && c.element.name() == "presence"
                && c.element.has_child("repair", PRESENCE_SYNC)
        });
    let mut reqs = vec!["PS-59", "PS-85"];
    if subject_repaired {
        reqs.push("PS-64");
    }
    b.check(
        "no-collateral-roster-change",
        Check::empty(
            "no roster item outside the mismatched edges changed",
            &reqs,
            &collateral,
        ),
    );
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "after the repairs every user sees exactly what its roster entitles it to",
            &["PS-59"],
            &diffs,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}

/// While the subject's outgoing traffic is held after its first hello stanza, the peer's
/// first user, logged in but unavailable, becomes available: the subject receives its item
/// and, its edge set unverified, must show it to none of its users (PS-37). Not exercised if
/// the subject sent no hello or no item of that user reached it.
async fn unverified_window(w: &mut Wire, held: &Gate) -> Result<Check> {
    const NAME: &str = "a presence item received while the edge set is unverified is shown to no user until it is verified";
    let not_exercised = |why: String| Check::with(NAME, &["PS-37"], Outcome::NotExercised(why));
    let Some(hello) = held.wait_tripped(SESSION_WAIT * 2).await else {
        return Ok(not_exercised("the subject sent no hello".into()));
    };
    let late = w.theirs[0].bare();
    let from = Instant::now();
    w.theirs[0].available(None)?;
    let item_crossed = || {
        w.incoming.stats().captured.iter().any(|c| {
            c.at >= from
                && c.dir == Direction::Forward
                && c.element.name() == "iq"
                && c.element
                    .get_child("batch", PRESENCE_SYNC)
                    .is_some_and(|b| {
                        b.children()
                            .any(|i| i.name() == "item" && i.attr("jid") == Some(late.as_str()))
                    })
        })
    };
    let started = Instant::now();
    while !item_crossed() && started.elapsed() < SESSION_WAIT {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !item_crossed() {
        return Ok(not_exercised(format!(
            "no item of {late} reached the subject while its hello ({}) was held",
            hello.attr("type").unwrap_or("?")
        )));
    }
    // Time for a subject that delivers at once to do it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let shown: Vec<String> = w
        .ours
        .iter()
        .filter(|p| {
            p.client.recorder().snapshot().iter().any(|(at, r)| {
                *at >= from
                    && matches!(r, super::super::client::Received::Presence(pr)
                        if pr.type_ == tokio_xmpp::parsers::presence::Type::None
                            && pr.from.as_ref().is_some_and(|f| f.to_bare() == late))
            })
        })
        .map(|p| p.bare().to_string())
        .collect();
    Ok(Check::empty(
        NAME,
        &["PS-37"],
        &shown
            .iter()
            .map(|u| format!("{u} was shown {late} available before the edge set was verified"))
            .collect::<Vec<_>>(),
    ))
}

/// `blocking`: blocks across the domains hide presence both ways (XEP-0191 §3.3), also
/// where presence crosses at domain level (the except lists, PS-79, PS-80); unblocking
/// shows it again.
pub async fn blocking(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let mark = w.mark();
    let (o0, t0) = (w.ours[0].bare(), w.theirs[0].bare());
    let t1 = w.theirs[1].bare();
    w.ours[0].block(&t0).await?;
    w.theirs[1].block(&w.ours[1].bare()).await?;
    let blocked = w.converge().await?;
    b.check(
        "blocked",
        truth(
            &format!("{o0} blocks {t0} and {t1} blocks a user of the subject: neither side is shown the other"),
            &with_live(w, &mark, &["PS-79", "PS-80"]),
            &blocked,
        ),
    );
    // A change while blocked: the blocked contact still is not shown it.
    let live = w.mark();
    w.ours[0].available(Some(Show::Dnd))?;
    w.theirs[0].available(Some(Show::Away))?;
    let changed = w.converge().await?;
    b.check(
        "blocked-change",
        truth(
            "presence changes while blocked reach only the entitled watchers",
            &with_live(w, &live, &["PS-79", "PS-80"]),
            &changed,
        ),
    );
    for p in [&mut w.ours[0], &mut w.theirs[1]] {
        let all: Vec<BareJid> = p.blocked.iter().cloned().collect();
        let jids: Vec<Jid> = all.iter().cloned().map(Jid::from).collect();
        p.client.unblock(&jids).await?;
        p.blocked.clear();
    }
    let unblocked = w.converge().await?;
    b.check(
        "unblocked",
        truth(
            "after unblocking, both sides are shown each other again",
            &["PS-79"],
            &unblocked,
        ),
    );
    status_texts(w, &mut b).await?;
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// A status text that Unicode normalization would change (a combining accent, a ligature, the
/// Ohm sign), with a language: it must reach every watcher byte for byte (PS-76).
const STATUS: &str = "Cafe\u{301} \u{fb01}n \u{2126}";

/// PS-76 both ways: a user of each side publishes [`STATUS`]; each watcher on the other side
/// must be shown exactly that text (the subject caches the peer's and publishes its own).
async fn status_texts(w: &mut Wire, b: &mut Body) -> Result<()> {
    use tokio_xmpp::parsers::presence::{Presence, Type as PresenceType};
    let senders = [
        w.theirs[2 % w.theirs.len()].bare(),
        w.ours[2 % w.ours.len()].bare(),
    ];
    let mut marks = Vec::new();
    for p in w.people() {
        marks.push(p.client.recorder().snapshot().len());
    }
    for p in w
        .people()
        .into_iter()
        .filter(|p| senders.contains(&p.bare()))
    {
        let mut presence = Presence::new(PresenceType::None);
        presence.statuses.insert(
            tokio_xmpp::parsers::message::Lang::from("fr"),
            STATUS.to_owned(),
        );
        p.client.send(presence.into())?;
        p.online = true;
        p.show = None;
    }
    let mut wrong = Vec::new();
    let mut watchers = 0;
    for (p, since) in w.people().into_iter().zip(marks) {
        if !p.online {
            continue;
        }
        let me = p.bare();
        let roster = p.client.roster().await?;
        for sender in senders.iter().filter(|s| s.domain() != me.domain()) {
            let sees = roster.iter().any(|i| {
                i.jid == *sender && matches!(i.subscription, Subscription::To | Subscription::Both)
            });
            if !sees {
                continue;
            }
            watchers += 1;
            let exact = |pr: &tokio_xmpp::parsers::presence::Presence| {
                pr.type_ == PresenceType::None
                    && pr.from.as_ref().is_some_and(|f| f.to_bare() == *sender)
                    && pr.statuses.values().any(|t| t == STATUS)
            };
            let got = p
                .client
                .recorder()
                .wait_until(
                    &format!("presence of {sender} with the status text"),
                    std::time::Duration::from_secs(5),
                    |log| {
                        log.iter().skip(since).any(
                            |(_, r)| matches!(r, super::super::client::Received::Presence(pr) if exact(pr)),
                        )
                    },
                )
                .await;
            let last = p.client.recorder().last_presence_from(sender);
            if got.is_err() {
                wrong.push(format!(
                    "{me} was shown {sender} with status {:?}",
                    last.map(|l| l.statuses)
                ));
            }
        }
    }
    b.check(
        "status-text-unaltered",
        Check::with(
            format!("a status text that Unicode normalization would change reaches {watchers} watchers on both sides byte for byte"),
            &["PS-76"],
            match (watchers, wrong.first()) {
                (0, _) => Outcome::NotExercised("no watcher of the two publishers".into()),
                (_, None) => Outcome::Pass,
                (_, Some(first)) => Outcome::Fail(format!("{} wrong, first: {first}", wrong.len())),
            },
        ),
    );
    Ok(())
}
