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
use super::people::{Change, change_each};
use super::world::Wire;

/// How long a check that needs a session waits for one ([`Wire::session_after`]): well over
/// the suite's peer's wait before its own hello (PS-16).
const SESSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
use crate::conformance::check::{Check, Outcome};
use crate::conformance::record::RecordKind;
use crate::conformance::scenarios::truth_reqs;
use crate::conformance::world::Phase;
use crate::wire::ns::PRESENCE_SYNC;

mod changes;
mod subscriptions;

pub use changes::changes_during_sync;
pub use subscriptions::{blocking, mismatch};

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

/// Every wire scenario, in the order they run. A server may size the tree of a peer's cache
/// when it fills an empty cache (XEP §Bucket Parameters), which the reference does with the
/// count in the peer's hello: its caches from the set-up, filled as the subscriptions were
/// made, have the shallowest tree, and the first link losses list the root's ids (the
/// authoritative side answers with items and gones, PS-29). The restarts follow, the one of
/// both servers first: after a restart of one server while the other's users are online,
/// its cache is sized for all of them, and with enough users (over 32 for the reference) the
/// link losses after the restarts split the root and answer with ids and lacks (PS-27,
/// PS-28).
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
        name: "both-restart",
        about: "the server under test and the suite's peer crash together, start again, and all their users log in at once",
        needs: Needs::Crash,
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
/// holder), PS-95 for a `<sketch/>` (XEP §Sketches), PS-27 for a presence `<ids/>` in an answer (from the authoritative server), PS-28
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
                ("sketch", true, _) => rules.insert("PS-95"),
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
    change_each(&mut w.ours, |i| match i % 3 {
        0 => Some(Change::Unavailable),
        1 => Some(Change::Available(Some(Show::Dnd))),
        _ => None,
    })?;
    change_each(&mut w.theirs, |i| match i % 3 {
        1 => Some(Change::Unavailable),
        2 => Some(Change::Available(Some(Show::Xa))),
        _ => None,
    })?;
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
    let restarted = kept_cache_restart(w).await?;
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
    if restarted {
        w.subject.crash().await?;
        w.event(RecordKind::Crash);
        w.event(RecordKind::Restart);
        w.subject.start().await?;
        w.log_in_ours().await?;
    }
    let back = w.mark();
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
    let kept = if restarted {
        let presented = first_hello_cache(w, &back);
        Check::with(
            format!(
                "a cache of the peer kept at a graceful stop is deleted after the grace period ({} s) without a session: a crash and start later, the first hello presents none",
                grace.as_secs()
            ),
            &["PS-81"],
            match presented {
                Some(0) => Outcome::Pass,
                Some(n) => Outcome::Fail(format!("the hello presented a cache of {n} entries")),
                None => Outcome::NotExercised(
                    "no hello of the subject crossed once the link was back".into(),
                ),
            },
        )
    } else {
        kept_cache_not_exercised(w)
    };
    b.check("kept-cache-deleted", kept);
    b.phase = Some(w.phase_since(&mark));
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
    let (phase, diffs) = w.converged_phase(&mark, started).await?;
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
    let (phase, diffs) = w.converged_phase(&mark, started).await?;
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
    let restarted = w.mark();
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
    w.keeps_caches = first_hello_cache(w, &restarted).map(|count| count > 0);
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

/// The count of the cache of the peer that the subject's first hello since `mark` presented
/// (its `cached` root, with a `peer-epoch`; 0 if it named none), if a hello of the subject
/// crossed: a request on its stream or its answer to the peer's.
fn first_hello_cache(w: &Wire, mark: &super::records::Mark) -> Option<u64> {
    let outgoing = w.outgoing.stats();
    let hello = outgoing
        .captured
        .iter()
        .skip(mark.outgoing_index())
        .filter(|c| c.dir == super::relay::Direction::Forward && c.element.name() == "iq")
        .find_map(|c| c.element.get_child("hello", PRESENCE_SYNC))?;
    if hello.attr("peer-epoch").is_none() {
        return Some(0);
    }
    let cached = hello
        .children()
        .find(|r| r.name() == "root" && r.attr("set") == Some("cached"))?;
    cached.attr("count").and_then(|c| c.parse().ok())
}

/// PS-81 in `long-outage`, for a subject that keeps caches across a graceful restart (as
/// `graceful-restart` found) and can be stopped and crashed: while the link is refused, the
/// subject stops gracefully (it keeps its cache of the peer) and starts again; after the grace
/// period and 3 s more without a session it is killed and started again, and its first hello
/// once the link is back must present no cache: the kept one was deleted within the grace
/// period. True if it restarted the subject (then `long_outage` does the rest after the wait).
async fn kept_cache_restart(w: &mut Wire) -> Result<bool> {
    let can = w.keeps_caches == Some(true)
        && w.target.control.cannot_stop().is_none()
        && w.target.control.cannot_crash().is_none();
    if !can {
        return Ok(false);
    }
    w.event(RecordKind::Shutdown);
    w.subject.stop().await?;
    w.event(RecordKind::Restart);
    w.subject.start().await?;
    w.log_in_ours().await?;
    Ok(true)
}

fn kept_cache_not_exercised(w: &Wire) -> Check {
    let why = match w.keeps_caches {
        None => "graceful-restart did not run, so whether the subject keeps caches is unknown".to_owned(),
        Some(false) => "the subject presented no cache of the peer after its graceful restart: it does not keep caches".to_owned(),
        Some(true) => "the target gives no way to stop and to crash the server".to_owned(),
    };
    Check::with(
        "a kept cache of the peer is deleted after the grace period without a session",
        &["PS-81"],
        Outcome::NotExercised(why),
    )
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
