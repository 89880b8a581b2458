//! The conformance suite over the network: a running XMPP server, in any language, tested
//! through its sockets (`presence-sync conformance --target FILE`).
//!
//! # Contract
//!
//! The server under test (the *subject*) is described by a target file ([`target`]): its
//! domain and addresses, the peer domain the suite plays and where the suite listens for it,
//! how test accounts are made, and how the server is restarted. The suite then plays:
//!
//! - **the peer domain's server**: this crate's reference server (the `serve` code) in this
//!   process ([`peer`]), federating with the subject over s2s with XEP-0220 dialback through
//!   two relays ([`relay`]) that capture every element and can cut the link; and, in the
//!   `hostile` scenario, a hostile peer of the same domain on s2s streams of the suite's own
//!   ([`hostile`]);
//! - **the subject's users and the peer's users**: real c2s clients ([`client`]) that register
//!   or log in, subscribe through the RFC 6121 flows, go online and offline, and record every
//!   presence they are shown ([`people`]).
//!
//! ```text
//!  Target ─► Wire::new: relays, the suite's peer, the subject ready
//!     │      Wire::set_up: accounts, logins, RFC 6121 subscriptions, views converge
//!     ▼
//!  scenarios::ALL ─► each: faults (cut, SIGKILL, stop, peer restart), logins, changes
//!     │                checks: every view against the truth (rosters fetched, people's
//!     │                presence), scenario-specific counts on the wire
//!     │              ─► audit::audit of the subject's records (records::records) since the
//!     │                link that was up when the scenario began
//!     ▼
//!  Report (the simulation's: text, JSON, requirement coverage) + JUnit XML (junit)
//! ```
//!
//! Ground truth never comes from the extension: a watcher must be shown exactly the online
//! resources of the contacts its roster (as the server returns it) says it is subscribed to,
//! minus blocks. Costs (stanzas, bytes, round trips, time to converge) are counted on the
//! wire by the relays.

pub mod admin;
pub mod client;
pub mod control;
pub mod hostile;
pub mod junit;
pub mod peer;
pub mod people;
pub mod records;
pub mod relay;
pub mod scenarios;
pub mod target;
pub mod wait;
pub mod world;

use std::path::PathBuf;
use std::time::Instant;

use crate::conformance::audit::{self, AuditContext};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::report::{self, Report, Workload};
use crate::conformance::scenarios::Run;
use scenarios::{ALL, Body, Needs};
use target::Target;
use world::Wire;

/// PS-11 over what a scenario made the subject send to the suite's peer: its stanzas crossed
/// on one outbound stream at a time, i.e. once a newer connection carried a stanza, no older
/// one carried another. None if it sent no stanza on the link since `mark`.
fn one_outbound_stream(w: &Wire, mark: &records::Mark) -> Option<Check> {
    let stats = w.outgoing.stats();
    let mut newest: Option<u64> = None;
    let mut back = Vec::new();
    let mut stanzas = 0;
    for c in stats.captured.iter().skip(mark.outgoing_index()) {
        let stanza = ["presence", "message", "iq"].contains(&c.element.name());
        if c.dir != relay::Direction::Forward || !stanza {
            continue;
        }
        stanzas += 1;
        match newest {
            Some(n) if c.connection < n => back.push(format!(
                "a <{}/> on connection {} after connection {n} carried stanzas",
                c.element.name(),
                c.connection
            )),
            _ => newest = Some(c.connection.max(newest.unwrap_or(0))),
        }
    }
    (stanzas > 0).then(|| {
        Check::empty(
            format!(
                "the subject's {stanzas} stanzas to the peer crossed one outbound stream at a time"
            ),
            &["PS-11"],
            &back,
        )
        .with_id("one-outbound-stream")
    })
}

/// The error type of the wire suite's parts: a message saying what failed and, for a wait,
/// what was seen instead.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The result type of the wire suite's parts.
pub type Result<T> = std::result::Result<T, Error>;

/// What a wire run does.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Users on each side; `None`: [`Options::users_for`] the target.
    pub users: Option<usize>,
    /// Scenarios to run (all if `None`).
    pub scenarios: Option<Vec<String>>,
    /// Fail the run on a MUST that no check exercised (a wire run judges only what it ran
    /// otherwise: its scenarios do not exercise every MUST yet).
    pub require_all: bool,
    /// Where the suite's peer keeps its database and the start command its log (a new
    /// directory under the system's temporary directory if `None`).
    pub work: Option<PathBuf>,
    /// Where each scenario's trace goes ([`records::trace`]), one file per scenario.
    pub trace: Option<PathBuf>,
}

/// The most users a side the suite makes.
pub const MAX_USERS: usize = 200;

/// The fewest users a side the suite makes by default.
pub const MIN_USERS: usize = 6;

/// Edges the set-up makes per user of a side ([`world`]: each subject user shares a mutual
/// subscription with one peer user, follows a second and is followed by a third).
pub const EDGES_PER_USER: usize = 4;

impl Options {
    /// Users on each side against `target`: the given number, or by default the fewest (at
    /// least [`MIN_USERS`]) whose world shares more edges with the server than its
    /// small-peer threshold (XEP PS-93), so that the server runs the extension with the
    /// suite's peer instead of keeping RFC 6121 with it (40, the XEP's default: 11 users, 44
    /// edges), at most [`MAX_USERS`].
    pub fn users_for(&self, target: &Target) -> usize {
        self.users.unwrap_or_else(|| {
            let needed = target.small_peer() / EDGES_PER_USER as u64 + 1;
            usize::try_from(needed)
                .unwrap_or(MAX_USERS)
                .clamp(MIN_USERS, MAX_USERS)
        })
    }

    /// Checks the options.
    ///
    /// # Errors
    /// What is wrong, naming the flag.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(users) = self.users {
            if !(3..=MAX_USERS).contains(&users) {
                return Err(format!(
                    "--users {users}: a wire run needs between 3 and {MAX_USERS} users a side"
                ));
            }
        }
        if let Some(names) = &self.scenarios {
            for n in names {
                if !ALL.iter().any(|s| s.name == n) {
                    let known: Vec<&str> = ALL.iter().map(|s| s.name).collect();
                    return Err(format!(
                        "--scenarios: unknown wire scenario {n:?}; known: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Progress of a wire run, for a terminal.
pub enum Progress<'a> {
    /// A step of the set-up.
    SetUp(&'a str),
    /// Scenario `index` of `total` starts.
    Start {
        /// From 1.
        index: usize,
        /// Scenarios in the run.
        total: usize,
        /// Its name.
        name: &'a str,
    },
    /// It ended.
    Done(&'a Run),
}

/// The check of a scenario that did not run, with the reason.
pub const NOT_RUN: &str = "not-run";

/// True if `run` was not run (see [`NOT_RUN`]).
pub fn not_run(run: &Run) -> Option<&str> {
    run.checks.iter().find_map(|c| match &c.outcome {
        Outcome::NotExercised(why) if c.id.ends_with(NOT_RUN) => Some(why.as_str()),
        _ => None,
    })
}

/// Runs the wire scenarios against the server of `target`.
///
/// # Errors
/// Bad options, or a failure of the set-up (the server does not listen, accounts cannot be
/// made, the subscriptions do not go through): nothing can be judged then.
pub async fn run(
    target: &Target,
    opts: &Options,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> std::result::Result<Report, String> {
    opts.validate()?;
    let timestamp = report::rfc3339(std::time::SystemTime::now());
    let tag = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() % 0xff_ffff)
            .unwrap_or(0)
    );
    let work = match &opts.work {
        Some(w) => w.clone(),
        None => {
            std::env::temp_dir().join(format!("presence-sync-wire-{}-{tag}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&work)
        .map_err(|e| format!("work directory {}: {e}", work.display()))?;
    progress(Progress::SetUp("starting the suite's peer and relays"));
    let mut w = Wire::new(target, &work).await.map_err(|e| e.to_string())?;
    progress(Progress::SetUp("accounts, logins and subscriptions"));
    let setup_mark = w.mark();
    let users = opts.users_for(target);
    let setup_diffs = match w.set_up(users, &tag).await {
        Ok(_) => Vec::new(),
        Err(e) if e.to_string().contains("views differ") => vec![e.to_string()],
        Err(e) => return Err(format!("set-up: {e}")),
    };
    let (on_stream, in_disco) = scenarios::advertised(&mut w)
        .await
        .map_err(|e| e.to_string())?;
    let implements = on_stream || in_disco;
    let selected: Vec<&scenarios::Scenario> = ALL
        .iter()
        .filter(|s| {
            opts.scenarios
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n == s.name))
        })
        .collect();
    let total = selected.len();
    let mut runs = Vec::new();
    for (i, s) in selected.into_iter().enumerate() {
        progress(Progress::Start {
            index: i + 1,
            total,
            name: s.name,
        });
        let started = Instant::now();
        let why_not = match s.needs {
            _ if !implements && s.needs != Needs::Nothing => Some(format!(
                "{} does not implement {}",
                target.domain,
                crate::wire::ns::PRESENCE_SYNC
            )),
            Needs::Crash => target.control.cannot_crash().map(str::to_owned),
            Needs::Stop => target.control.cannot_stop().map(str::to_owned),
            Needs::ShortGrace if target.grace() > target::LONGEST_GRACE => Some(format!(
                "the grace period is {} s (the target's `grace`); the suite waits out at most {} s",
                target.grace(),
                target::LONGEST_GRACE
            )),
            _ => None,
        };
        let mark = if s.name == "discovery" {
            setup_mark
        } else {
            w.mark()
        };
        let (mut checks, phase) = match why_not {
            Some(why) => (
                vec![
                    Check::with(
                        format!("{} could be run", s.name),
                        &[],
                        Outcome::NotExercised(why),
                    )
                    .with_id(NOT_RUN),
                ],
                None,
            ),
            None => {
                let body = match s.name {
                    "discovery" => scenarios::discovery(&mut w, &setup_diffs).await,
                    "link-loss" => scenarios::link_loss(&mut w).await,
                    "link-loss-changes" => scenarios::link_loss_changes(&mut w).await,
                    "changes-during-sync" => scenarios::changes_during_sync(&mut w).await,
                    "long-outage" => scenarios::long_outage(&mut w).await,
                    "cold-restart" => scenarios::cold_restart(&mut w).await,
                    "graceful-restart" => scenarios::graceful_restart(&mut w).await,
                    "both-restart" => scenarios::both_restart(&mut w).await,
                    "peer-graceful-restart" => scenarios::peer_graceful_restart(&mut w).await,
                    "peer-crash" => scenarios::peer_crash(&mut w).await,
                    "mismatch" => scenarios::mismatch(&mut w).await,
                    "blocking" => scenarios::blocking(&mut w).await,
                    "hostile" => hostile::hostile(&mut w).await,
                    "legacy" => scenarios::legacy(&mut w).await,
                    other => Err(format!("no body for {other}").into()),
                };
                let body = body.unwrap_or_else(|e| Body {
                    checks: vec![
                        Check::with(
                            format!("{} ran to its end", s.name),
                            &[],
                            Outcome::Fail(e.to_string()),
                        )
                        .with_id("completed"),
                    ],
                    phase: None,
                });
                w.settle().await;
                let records = w.records_since(&mark);
                let findings = audit::audit(&target.domain, &records, &AuditContext::wire());
                let mut checks = body.checks;
                if implements {
                    checks.extend(one_outbound_stream(&w, &mark));
                }
                checks.extend(crate::conformance::scenarios::merge_audits(
                    std::iter::once(findings),
                ));
                (checks, body.phase)
            }
        };
        for c in &mut checks {
            c.id = format!("{}/{}", s.name, c.id);
        }
        let trace = match &opts.trace {
            Some(dir) => {
                let path = dir.join(format!("{}.log", s.name));
                let text = records::trace(
                    w.start,
                    &target.domain,
                    &target.peer.domain,
                    &mark,
                    &w.outgoing.stats(),
                    &w.incoming.stats(),
                    &w.events,
                );
                std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&path, text))
                    .map_err(|e| format!("trace {}: {e}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let run = Run {
            name: s.name,
            about: s.about,
            checks,
            phase,
            baseline: None,
            buckets: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
            trace,
        };
        progress(Progress::Done(&run));
        runs.push(run);
    }
    let edges = (users * EDGES_PER_USER) as u64;
    Ok(Report {
        implementation: format!(
            "{} over the wire ({}: {})",
            target.name(),
            crate::wire::ns::PRESENCE_SYNC,
            if implements {
                "implemented"
            } else {
                "not implemented"
            }
        ),
        workload: Workload {
            preset: "wire".to_owned(),
            users: users as u32,
            edges,
            online: 1.0,
            active: 0.0,
            changes: 0,
            hub_peers: 1,
            seed: 0,
        },
        runs,
        mutants: None,
        // The wire scenarios do not yet exercise every MUST (the simulation's do): a wire run
        // judges coverage only when asked to (--require-all).
        strict: opts.require_all,
        timestamp,
        commit: report::commit(),
    })
}
