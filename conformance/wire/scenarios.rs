//! The scenarios of a wire run, in the order they run on one federation ([`super::world`]).
//!
//! Each returns its checks and the cost of its measured phase; [`super::run`] adds the audit
//! of the subject's stanzas. A scenario that needs what the target does not give (a way to
//! restart the server) or what the server does not implement (the extension) is not run,
//! with the reason.

use std::time::Instant;

use tokio_xmpp::jid::Jid;
use tokio_xmpp::parsers::disco::{DiscoInfoQuery, DiscoInfoResult};
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::presence::Show;

use super::Result;
use super::world::Wire;
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
pub const ALL: [Scenario; 8] = [
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
    fn check(&mut self, id: &str, c: Check) {
        self.checks.push(c.with_id(id));
    }
}

/// Whether the subject advertises the extension: (on its streams, in service discovery).
pub async fn advertised(w: &mut Wire) -> Result<(bool, bool)> {
    let on_stream = w.incoming.stats().captured.iter().any(|c| {
        c.dir == super::relay::Direction::Backward
            && c.element.name() == "features"
            && c.element.has_child("presence-sync", PRESENCE_SYNC)
    });
    let Some(person) = w.ours.first_mut() else {
        return Err("no user to ask with".into());
    };
    let domain = Jid::new(&w.target.domain).map_err(|e| format!("domain: {e}"))?;
    let iq = Iq::from_get("disco", DiscoInfoQuery { node: None }).with_to(domain);
    let in_disco = match person.client.iq(iq).await? {
        Iq::Result {
            payload: Some(p), ..
        } => DiscoInfoResult::try_from(p)
            .map(|r| r.features.iter().any(|f| f == PRESENCE_SYNC))
            .unwrap_or(false),
        _ => false,
    };
    Ok((on_stream, in_disco))
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
            &["PS-19", "PS-44"],
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

/// `graceful-restart`: stop (the shutdown announcement), start, login.
pub async fn graceful_restart(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
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
    let voided = {
        let started = Instant::now();
        loop {
            let diffs =
                super::people::differences(&mut w.ours.iter_mut().collect::<Vec<_>>(), &[]).await?;
            if diffs.is_empty() || started.elapsed() > super::world::CONVERGE {
                break diffs;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
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
