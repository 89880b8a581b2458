//! The scenarios of a wire run, in the order they run on one federation ([`super::world`]).
//!
//! Each returns its checks and the cost of its measured phase; [`super::run`] adds the audit
//! of the subject's stanzas. A scenario that needs what the target does not give (a way to
//! restart the server) or what the server does not implement (the extension) is not run,
//! with the reason.

use std::time::Instant;

use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::Show;
use tokio_xmpp::parsers::roster::Subscription;

use super::Result;
use super::world::Wire;

/// How long a check that needs a session waits for one ([`Wire::session_after`]): well over
/// the suite's peer's wait before its own hello (PS-16).
const SESSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::conformance::check::{Check, Outcome};
use crate::conformance::record::RecordKind;
use crate::conformance::scenarios::truth_reqs;
use crate::conformance::world::Phase;
use crate::wire::ns::PRESENCE_SYNC;

/// What a scenario needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing beyond a running server.
    Nothing,
    /// The extension.
    Sync,
    /// The extension and a way to crash and start the server.
    Crash,
    /// The extension and a way to stop and start the server.
    Stop,
    /// The extension and a grace period short enough to wait out
    /// ([`super::target::LONGEST_GRACE`]).
    ShortGrace,
}

/// A scenario of the wire run.
pub struct Scenario {
    /// Its name (as in `--scenarios`).
    pub name: &'static str,
    /// What it does.
    pub about: &'static str,
    /// What it needs.
    pub needs: Needs,
}

/// Every wire scenario, in the order they run.
pub const ALL: [Scenario; 14] = [
    Scenario {
        name: "discovery",
        about: "stream feature and service discovery; the set-up's subscriptions and login storms converge",
        needs: Needs::Nothing,
    },
    Scenario {
        name: "link-loss",
        about: "the suite cuts the s2s link; nothing changes meanwhile; traffic brings it back",
        needs: Needs::Sync,
    },
    Scenario {
        name: "link-loss-changes",
        about: "the suite cuts the s2s link; users on both sides change presence meanwhile",
        needs: Needs::Sync,
    },
    Scenario {
        name: "changes-during-sync",
        about: "the suite holds the link while the resync after a link loss is in flight; users on both sides change presence and subscriptions meanwhile",
        needs: Needs::Sync,
    },
    Scenario {
        name: "long-outage",
        about: "the link stays down past the server's grace period: its users stop being shown the peer's users; then the link comes back",
        needs: Needs::ShortGrace,
    },
    Scenario {
        name: "cold-restart",
        about: "the server under test is killed (SIGKILL), started again, and its users log in at once",
        needs: Needs::Crash,
    },
    Scenario {
        name: "graceful-restart",
        about: "the server under test is stopped gracefully, started again, and its users log in",
        needs: Needs::Stop,
    },
    Scenario {
        name: "both-restart",
        about: "the server under test and the suite's peer crash together, start again, and all their users log in at once",
        needs: Needs::Crash,
    },
    Scenario {
        name: "peer-graceful-restart",
        about: "the suite's peer stops gracefully (its shutdown announcement) and starts again",
        needs: Needs::Sync,
    },
    Scenario {
        name: "peer-crash",
        about: "the suite's peer crashes and starts again with a new epoch; its users log in",
        needs: Needs::Sync,
    },
    Scenario {
        name: "mismatch",
        about: "the suite's peer loses subscription state (its roster edited while it is down): the descent finds it and the repairs agree",
        needs: Needs::Sync,
    },
    Scenario {
        name: "blocking",
        about: "users block contacts of the other domain (XEP-0191) and unblock them, with presence at domain level",
        needs: Needs::Sync,
    },
    Scenario {
        name: "hostile",
        about: "the suite, as the peer domain on s2s streams of its own (dialback), sends malformed, oversized, spoofed, too-deep inputs and floods, and holds stalled connections; unauthenticated streams try to synchronize",
        needs: Needs::Sync,
    },
    Scenario {
        name: "legacy",
        about: "the suite's peer restarts without the extension: RFC 6121 towards a legacy peer",
        needs: Needs::Nothing,
    },
];

/// The outcome of one scenario body.
#[derive(Default)]
pub struct Body {
    /// Its checks (the audit's are added by the runner).
    pub checks: Vec<Check>,
    /// The measured phase.
    pub phase: Option<Phase>,
}

impl Body {
    /// Adds `c` under the stable id `id`.
    pub(super) fn check(&mut self, id: &str, c: Check) {
        self.checks.push(c.with_id(id));
    }
}

/// The hash algorithms of the subject's `<presence-sync/>` stream feature, on the streams
/// the suite's peer opened to it; `None` if it offered none.
fn stream_algos(w: &Wire) -> Option<std::collections::BTreeSet<String>> {
    w.incoming
        .stats()
        .captured
        .iter()
        .filter(|c| c.dir == super::relay::Direction::Backward && c.element.name() == "features")
        .find_map(|c| c.element.get_child("presence-sync", PRESENCE_SYNC).cloned())
        .map(|f| {
            f.children()
                .filter(|h| h.name() == "hash")
                .filter_map(|h| h.attr("algo").map(str::to_owned))
                .collect()
        })
}

/// The subject's answer to a disco#info query of its domain, asked by its first user.
async fn disco_info(w: &mut Wire) -> Result<Iq> {
    let Some(person) = w.ours.first_mut() else {
        return Err("no user to ask with".into());
    };
    let domain = Jid::new(&w.target.domain).map_err(|e| format!("domain: {e}"))?;
    let iq = Iq::from_get("disco", DiscoInfoQuery { node: None }).with_to(domain);
    person.client.iq(iq).await
}

/// Whether the subject advertises the extension: (on its streams, in service discovery).
pub async fn advertised(w: &mut Wire) -> Result<(bool, bool)> {
    let on_stream = stream_algos(w).is_some();
    let in_disco = match disco_info(w).await? {
        Iq::Result {
            payload: Some(p), ..
        } => DiscoInfoResult::try_from(p)
            .map(|r| r.features.iter().any(|f| f == PRESENCE_SYNC))
            .unwrap_or(false),
        _ => false,
    };
    Ok((on_stream, in_disco))
}

/// PS-1 and PS-4 of an implementing subject: its disco#info lists the extension with a
/// hash-function feature per algorithm of its stream feature; every hello it sent chose
/// blake3 if it offers it (the suite's peer offers blake3 and sha-256), sha-256 otherwise.
async fn discovery_details(w: &mut Wire, b: &mut Body) -> Result<()> {
    use crate::conformance::hostile::{disco_verdict, hash_verdict, hellos};
    let algos = stream_algos(w).unwrap_or_default();
    let answer = minidom::Element::from(disco_info(w).await?);
    b.check(
        "disco-hash-features",
        Check::with(
            "disco#info advertises the extension and a hash-function feature for each algorithm of the stream feature",
            &["PS-1"],
            disco_verdict(Some(&answer), &algos),
        ),
    );
    let sent: Vec<minidom::Element> = w
        .outgoing
        .stats()
        .captured
        .into_iter()
        .filter(|c| c.dir == super::relay::Direction::Forward)
        .map(|c| c.element)
        .filter(|e| e.attr("type") == Some("set"))
        .collect();
    let chosen: Vec<_> = hellos(&sent).iter().map(|h| h.hash).collect();
    let expected = if algos.contains("blake3") {
        crate::digest::HashAlgo::Blake3
    } else {
        crate::digest::HashAlgo::Sha256
    };
    b.check(
        "hello-hash-choice",
        Check::with(
            format!(
                "every hello the subject sent chose {} (both sides advertise {:?} and the peer blake3 and sha-256)",
                expected.name(),
                algos
            ),
            &["PS-4"],
            if chosen.is_empty() {
                Outcome::NotExercised("the subject sent no hello request".into())
            } else {
                hash_verdict(&chosen, expected, &[])
            },
        ),
    );
    Ok(())
}

fn truth(name: &str, reqs: &[&'static str], diffs: &[String]) -> Check {
    Check::empty(name, &truth_reqs(reqs), diffs)
}

/// `discovery`: what the subject advertises, and the set-up's end state.
pub async fn discovery(w: &mut Wire, setup_diffs: &[String]) -> Result<Body> {
    let mut b = Body::default();
    let (on_stream, in_disco) = advertised(w).await?;
    b.check(
        "advertised-consistently",
        Check::with(
            "the stream feature and the service discovery feature say the same",
            &["PS-2"],
            match (on_stream, in_disco) {
                (true, true) => Outcome::Pass,
                (false, false) => Outcome::NotExercised(format!(
                    "{} does not implement {PRESENCE_SYNC} (neither feature is advertised)",
                    w.target.domain
                )),
                (s, d) => Outcome::Fail(format!(
                    "stream feature {}, disco#info feature {}",
                    if s { "offered" } else { "absent" },
                    if d { "listed" } else { "absent" }
                )),
            },
        ),
    );
    if on_stream && in_disco {
        discovery_details(w, &mut b).await?;
    }
    b.check(
        "setup-truth",
        truth(
            "after the subscriptions and both login storms every user sees exactly its contacts' presence",
            &["PS-43", "PS-44"],
            setup_diffs,
        ),
    );
    Ok(b)
}

fn sync_stanzas(phase: &Phase) -> u64 {
    phase
        .kinds
        .iter()
        .filter(|(k, _, _)| !k.starts_with("message/chat"))
        .map(|(_, n, _)| n)
        .sum()
}

/// The processing rules of XEP §Reconciliation that the subject had to apply since `mark`,
/// from the reconcile children it received: PS-23 for any query, PS-24 for a `<split/>`,
/// PS-25 for an edge `<ids/>`, PS-26 for a presence `<ids/>` in a query (from the cache
/// holder), PS-27 for a presence `<ids/>` in an answer (from the authoritative server), PS-28
/// for a `<lack/>`, PS-29 for a `<gone/>`. A truth check after a resync judges these rules
/// only where the subject applied them.
fn rules_applied(w: &Wire, mark: &super::records::Mark) -> Vec<&'static str> {
    let stats = w.incoming.stats();
    let mut rules = std::collections::BTreeSet::new();
    for c in stats.captured.iter().skip(mark.incoming_index()) {
        if c.dir != super::relay::Direction::Forward || c.element.name() != "iq" {
            continue;
        }
        let Some(r) = c.element.get_child("reconcile", PRESENCE_SYNC) else {
            continue;
        };
        let query = matches!(c.element.attr("type"), Some("get" | "set"));
        let edges = r.attr("set") == Some("edges");
        if query {
            rules.insert("PS-23");
        }
        for child in r.children() {
            match (child.name(), query, edges) {
                ("split", true, _) => rules.insert("PS-24"),
                ("ids", _, true) => rules.insert("PS-25"),
                ("ids", true, false) => rules.insert("PS-26"),
                ("ids", false, false) => rules.insert("PS-27"),
                ("lack", _, _) => rules.insert("PS-28"),
                ("gone", _, false) => rules.insert("PS-29"),
                _ => false,
            };
        }
    }
    rules.into_iter().collect()
}

/// `reqs`, with PS-45 if the subject received domain-level presence since `mark` (the truth
/// then judges how it applied them to its cache) and PS-47 if it sent batch items (entries
/// entering its published set, or except lists that changed, whose effect the truth judges).
fn with_live(w: &Wire, mark: &super::records::Mark, reqs: &[&'static str]) -> Vec<&'static str> {
    let incoming = w.incoming.stats();
    let received_fanout = incoming
        .captured
        .iter()
        .skip(mark.incoming_index())
        .any(|c| {
            c.dir == super::relay::Direction::Forward
                && c.element.name() == "presence"
                && c.element.has_child("fanout", PRESENCE_SYNC)
        });
    let outgoing = w.outgoing.stats();
    let sent_items = outgoing
        .captured
        .iter()
        .skip(mark.outgoing_index())
        .any(|c| {
            c.dir == super::relay::Direction::Forward
                && c.element.name() == "iq"
                && c.element
                    .get_child("batch", PRESENCE_SYNC)
                    .is_some_and(|b| b.children().any(|i| i.name() == "item"))
        });
    let mut out = reqs.to_vec();
    if received_fanout {
        out.push("PS-45");
    }
    if sent_items {
        out.push("PS-47");
    }
    out
}

/// `link-loss`: a cut with nothing changed costs one hello exchange.
pub async fn link_loss(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    w.cut().await;
    let mark = w.mark();
    w.kick()?;
    let diffs = w.converge().await?;
    // Let the session's exchange finish before it is counted.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let phase = w.phase_since(&mark);
    let sync = sync_stanzas(&phase);
    b.check(
        "one-hello-exchange",
        Check::new(
            "equal state after a link loss costs one hello exchange: 2 stanzas besides the traffic that brought the link back",
            &["PS-10", "PS-17", "PS-19"],
            sync <= 2,
            || format!("{sync} stanzas: {:?}", phase.kinds),
        ),
    );
    b.check(
        "truth",
        truth(
            "after the link is back every user sees exactly its contacts' presence",
            &["PS-19"],
            &diffs,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}

/// `link-loss-changes`: changes on both sides while the link is down reach the other side,
/// and nothing stale remains.
pub async fn link_loss_changes(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    w.cut().await;
    let mark = w.mark();
    let n = w.ours.len();
    for (i, p) in w.ours.iter_mut().enumerate() {
        match i % 3 {
            0 => p.unavailable()?,
            1 => p.available(Some(Show::Dnd))?,
            _ => {}
        }
    }
    for (i, p) in w.theirs.iter_mut().enumerate() {
        match i % 3 {
            1 => p.unavailable()?,
            2 => p.available(Some(Show::Xa))?,
            _ => {}
        }
    }
    w.kick()?;
    let diffs = w.converge().await?;
    let phase = w.phase_since(&mark);
    b.check(
        "truth",
        truth(
            &format!("changes of {n} users a side made during the outage reach the other side, nothing stale stays"),
            &[&["PS-19", "PS-44"][..], &rules_applied(w, &mark)].concat(),
            &diffs,
        ),
    );
    // Back to everyone online for the next scenarios.
    for p in w.people() {
        if !p.online {
            p.available(None)?;
        }
    }
    let back = w.converge().await?;
    b.check(
        "truth-after",
        truth(
            "users back online are shown again on both sides",
            &["PS-44"],
            &back,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}

/// `long-outage`: the relays refuse the link for the subject's grace period and 3 s more;
/// the subject must then have voided its cache of the peer (PS-56): its users are shown none
/// of the peer's users, who are still online. Then the link comes back.
pub async fn long_outage(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let grace = std::time::Duration::from_secs(w.target.grace());
    let mark = w.mark();
    w.outgoing.set_refusing(true);
    w.incoming.set_refusing(true);
    w.cut().await;
    tokio::time::sleep(grace + std::time::Duration::from_secs(3)).await;
    // Only the subject's users: the peer's, absent from the truth, must be shown to none.
    let voided = super::people::converge(
        &mut w.ours.iter_mut().collect::<Vec<_>>(),
        super::world::CONVERGE,
    )
    .await?;
    b.check(
        "cache-voided",
        truth(
            &format!(
                "after {} s without the link (the grace period, {} s, and 3 s), the subject's users are shown none of the peer's users",
                grace.as_secs() + 3,
                grace.as_secs()
            ),
            &["PS-56"],
            &voided,
        ),
    );
    w.outgoing.set_refusing(false);
    w.incoming.set_refusing(false);
    w.kick()?;
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "after the link is back every user sees exactly its contacts' presence",
            &["PS-19"],
            &diffs,
        ),
    );
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

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
    for (i, p) in w.ours.iter_mut().enumerate() {
        if i % 2 == 1 {
            p.available(Some(Show::Xa))?;
        }
    }
    for (i, p) in w.theirs.iter_mut().enumerate() {
        if i % 2 == 0 {
            p.available(Some(Show::Dnd))?;
        }
    }
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
    let mut changes = 0;
    for (i, p) in w.ours.iter_mut().enumerate() {
        match i % 3 {
            0 => p.unavailable()?,
            1 => p.available(Some(Show::Chat))?,
            _ => continue,
        }
        changes += 1;
    }
    for (i, p) in w.theirs.iter_mut().enumerate() {
        match i % 3 {
            1 => p.unavailable()?,
            2 => p.available(Some(Show::Away))?,
            _ => continue,
        }
        changes += 1;
    }
    // New subscriptions (set-up edges: ours i <-> theirs i, ours i -> theirs i+1, theirs i ->
    // ours i+2), one asked from each side, and one ended from each side (an unsubscribe by
    // the follower, an unsubscribed by the followed): between users who stay online, so that
    // the views show what the change must (PS-49), and away from the pairs that the mismatch
    // and blocking scenarios edit.
    let asks = [
        (true, 2, 5),  // ours[2] asks theirs[5]
        (false, 4, 3), // theirs[3] asks ours[4]
    ];
    for &(ours_asks, o, t) in &asks {
        if ours_asks {
            w.ours[o].client.subscribe(&w.theirs[t].bare())?;
        } else {
            w.theirs[t].client.subscribe(&w.ours[o].bare())?;
        }
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
    for &(ours_asks, o, t) in &asks {
        let (asker, contact) = if ours_asks {
            (w.ours[o].bare(), &w.theirs[t])
        } else {
            (w.theirs[t].bare(), &w.ours[o])
        };
        contact
            .client
            .recorder()
            .wait_until(
                &format!("the subscription request from {asker}"),
                super::world::CONVERGE,
                |log| {
                    log.iter().any(|(_, r)| {
                        matches!(r, super::client::Received::Presence(p)
                            if p.type_ == tokio_xmpp::parsers::presence::Type::Subscribe
                                && p.from.as_ref().is_some_and(|f| f.to_bare() == asker))
                    })
                },
            )
            .await?;
        contact.client.subscribed(&asker)?;
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
        .filter(|c| c.dir == super::relay::Direction::Forward && c.element.name() == "presence")
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

/// `cold-restart`: SIGKILL, start, login storm.
pub async fn cold_restart(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    w.subject.crash().await?;
    w.event(RecordKind::Crash);
    let mark = w.mark();
    // Recorded as the start command runs: the new boot's first stanzas may cross before
    // the suite sees it listen.
    w.event(RecordKind::Restart);
    w.subject.start().await?;
    let started = Instant::now();
    w.log_in_ours().await?;
    w.kick()?;
    let diffs = w.converge().await?;
    let mut phase = w.phase_since(&mark);
    phase.converged = diffs.is_empty();
    phase.sim_ms_to_converge = phase
        .converged
        .then(|| started.elapsed().as_millis() as u64);
    phase.diff = diffs.clone();
    b.check(
        "truth",
        truth(
            "after the crash, the restart and the login storm every user sees exactly its contacts' presence",
            &["PS-12", "PS-19", "PS-34", "PS-44"],
            &diffs,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}

/// `both-restart`: both servers crash (new epochs on both sides, no cache worth keeping),
/// start again, and both login storms run at once.
pub async fn both_restart(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    w.subject.crash().await?;
    w.peer.crash().await;
    w.event(RecordKind::Crash);
    let mark = w.mark();
    w.event(RecordKind::Restart);
    w.subject.start().await?;
    w.peer.start(super::peer::Mode::Sync).await?;
    let started = Instant::now();
    w.log_in_ours().await?;
    w.log_in_theirs().await?;
    w.kick()?;
    let diffs = w.converge().await?;
    let mut phase = w.phase_since(&mark);
    phase.converged = diffs.is_empty();
    phase.sim_ms_to_converge = phase
        .converged
        .then(|| started.elapsed().as_millis() as u64);
    phase.diff = diffs.clone();
    b.check(
        "truth",
        truth(
            "after both servers crash and restart with their login storms, every user sees exactly its contacts' presence",
            &["PS-12", "PS-13", "PS-19", "PS-34", "PS-44"],
            &diffs,
        ),
    );
    b.phase = Some(phase);
    Ok(b)
}

/// `graceful-restart`: stop (the shutdown announcement), start, login.
pub async fn graceful_restart(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    // The check below needs a session: one the subject started after its last start, or, if it
    // is small for the suite's peer, the one that the peer's hello starts (PS-93, PS-16).
    let last_start = w.last_start();
    w.session_after(last_start, SESSION_WAIT).await;
    let mark = w.mark();
    w.event(RecordKind::Shutdown);
    w.subject.stop().await?;
    let announced = w
        .outgoing
        .stats()
        .captured
        .iter()
        .filter(|c| {
            c.at >= mark.at
                && c.dir == super::relay::Direction::Forward
                && c.element.name() == "message"
                && c.element.has_child("shutdown", PRESENCE_SYNC)
        })
        .count();
    b.check(
        "one-shutdown-message",
        Check::new(
            "a graceful stop sends one shutdown message to the synchronized peer before closing",
            &["PS-54"],
            announced == 1,
            || format!("{announced} shutdown messages crossed"),
        ),
    );
    // Recorded as the start command runs: the new boot's first stanzas may cross before
    // the suite sees it listen.
    w.event(RecordKind::Restart);
    w.subject.start().await?;
    w.log_in_ours().await?;
    w.kick()?;
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "after its graceful restart every user sees exactly its contacts' presence",
            &["PS-12", "PS-54"],
            &diffs,
        ),
    );
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// `peer-graceful-restart`: the subject voids its cache of the peer at the announcement.
pub async fn peer_graceful_restart(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let mark = w.mark();
    w.peer.stop().await;
    for p in &mut w.theirs {
        p.online = false;
    }
    let voided = super::people::converge(
        &mut w.ours.iter_mut().collect::<Vec<_>>(),
        super::world::CONVERGE,
    )
    .await?;
    b.check(
        "cache-voided",
        truth(
            "when the peer announces its shutdown, the subject's users are shown none of the peer's users",
            &["PS-55"],
            &voided,
        ),
    );
    w.peer.start(super::peer::Mode::Sync).await?;
    w.log_in_theirs().await?;
    w.kick()?;
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "after the peer's restart every user sees exactly its contacts' presence",
            &["PS-13", "PS-19"],
            &diffs,
        ),
    );
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// `peer-crash`: a new epoch from the peer voids the subject's cache of it.
pub async fn peer_crash(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let mark = w.mark();
    w.peer.crash().await;
    w.peer.start(super::peer::Mode::Sync).await?;
    // Half of the peer's users come back online; the others log in without presence, so
    // that nothing but the new epoch (XEP §Epochs) can end what the subject showed of them.
    let half = w.theirs.len() / 2;
    w.log_in_theirs_but(half).await?;
    w.kick()?;
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "after the peer's crash and restart (new epoch) every user sees exactly its contacts' presence, nothing stale",
            &["PS-13", "PS-19", "PS-34"],
            &diffs,
        ),
    );
    for p in w.theirs.iter_mut().take(half) {
        p.available(None)?;
    }
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// `legacy`: the peer without the extension; RFC 6121 as before, and no element of the
/// namespace reaches it (the audit's legacy-silence).
pub async fn legacy(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let mark = w.mark();
    w.peer.stop().await;
    w.peer.start(super::peer::Mode::Legacy).await?;
    w.log_in_theirs().await?;
    w.kick()?;
    let diffs = w.converge().await?;
    b.check(
        "truth",
        truth(
            "with a legacy peer, RFC 6121 presence gives every user exactly its contacts' presence",
            &["PS-5"],
            &diffs,
        ),
    );
    // A change on each side crosses as RFC 6121 presence.
    if let Some(p) = w.ours.first_mut() {
        p.available(Some(Show::Away))?;
    }
    if let Some(p) = w.theirs.first_mut() {
        p.available(Some(Show::Away))?;
    }
    let changed = w.converge().await?;
    b.check(
        "truth-live",
        truth(
            "with a legacy peer, live presence changes reach the contacts on the other side",
            &["PS-5"],
            &changed,
        ),
    );
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// Every roster item of every person, fetched from its server: (user, contact) → state.
async fn rosters(
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
fn one_sided(
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
    let restarted = Instant::now();
    w.peer.start(super::peer::Mode::Sync).await?;
    w.log_in_theirs().await?;
    w.kick()?;
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
            c.dir == super::relay::Direction::Forward
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
                            |(_, r)| matches!(r, super::client::Received::Presence(pr) if exact(pr)),
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
