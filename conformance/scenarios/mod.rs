//! The scenarios: each a named case, run on a workload against an [`Implementation`], with
//! checks that name the XEP requirements they exercise.
//!
//! In the two-domain scenarios the implementation under test serves `a.example` (the edge
//! driver) and the reference serves `b.example`; every fault that matters is applied to each
//! side in turn, so the implementation is tested in both roles. The traffic of the
//! implementation under test is audited after every scenario ([`super::audit`]). Scenarios
//! with a baseline run the same script again with two RFC 6121 servers (Prosody-like) and
//! report its cost beside the extension's.

use std::path::Path;
use std::time::Instant;

use super::audit;
use super::check::{Check, Outcome};
use super::subject::{Implementation, Reference, legacy};
use super::workload::{Federation, Spec};
use super::world::{Phase, World};
use crate::server::Flavour;

mod hub;
pub use hub::PeerBucket;
mod limits;
mod outage;
mod peers;
mod restart;

/// The implementation under test's domain in two-domain scenarios (the edge driver).
pub const A: &str = "a.example";
/// The reference peer's domain.
pub const B: &str = "b.example";

/// What a scenario runs on.
pub struct Ctx<'a> {
    /// The implementation under test.
    pub imp: &'a dyn Implementation,
    /// The two-domain federation (`a.example`, `b.example`).
    pub fed: &'a Federation,
    /// The workload parameters (the hub scenario generates its own federation from them).
    pub spec: &'a Spec,
    /// Peer domains of the hub scenario.
    pub hub_peers: usize,
    /// Changes during the outage of the link-loss scenarios.
    pub changes: usize,
    /// Seed of everything random in the scenarios.
    pub seed: u64,
}

impl Ctx<'_> {
    /// The two servers, logged in and synchronized: the implementation under test at
    /// [`A`], the reference at [`B`].
    pub fn pair(&self) -> World {
        let mut w = World::new(self.fed, &[A], |d| {
            if d == A {
                self.imp.server(d, self.seed)
            } else {
                Reference::peer().server(d, self.seed ^ 0x5eed)
            }
        });
        w.log_in_all(self.fed);
        w.mark_setup();
        w
    }

    /// The same two domains served by RFC 6121 servers of `flavour` (the baseline).
    pub fn baseline(&self, flavour: Flavour) -> World {
        let mut w = World::new(self.fed, &[], |d| legacy(d, flavour));
        w.log_in_all(self.fed);
        w
    }
}

/// A scenario of the suite.
pub struct Scenario {
    /// Its name (for `--scenarios`).
    pub name: &'static str,
    /// What it does, in a sentence.
    pub about: &'static str,
    /// Runs it.
    pub run: fn(&Ctx<'_>) -> Body,
}

/// What a scenario function returns: its checks and its measured phase, with the baseline's.
#[derive(Default)]
pub struct Body {
    /// Checks, in order (the audit's are added by [`run`]).
    pub checks: Vec<Check>,
    /// The measured phase of the implementation under test.
    pub phase: Option<Phase>,
    /// The same phase with RFC 6121 servers (Prosody-like).
    pub baseline: Option<Phase>,
    /// The worlds the implementation ran in, for the audit.
    pub worlds: Vec<World>,
    /// What the audit of these worlds must know (the effective limits, if a peer lowered
    /// them).
    pub audit: audit::AuditContext,
    /// The measured phase's costs per peer-size bucket (the hub scenario).
    pub buckets: Vec<PeerBucket>,
}

impl Body {
    /// Adds a check under the stable identifier `id` (unique within the scenario).
    pub fn check(&mut self, id: &str, c: Check) {
        self.checks.push(c.with_id(id));
    }
}

/// The result of a scenario.
pub struct Run {
    /// The scenario's name.
    pub name: &'static str,
    /// What it does.
    pub about: &'static str,
    /// Every check, the audit's included.
    pub checks: Vec<Check>,
    /// The measured phase of the implementation under test, if the scenario measures one.
    pub phase: Option<Phase>,
    /// The baseline's phase.
    pub baseline: Option<Phase>,
    /// The measured phase's costs per peer-size bucket, for a scenario with many peers.
    pub buckets: Vec<PeerBucket>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The file its stanza trace was written to (`--trace DIR`).
    pub trace: Option<std::path::PathBuf>,
}

impl Run {
    /// True if no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    /// The requirements its checks exercise, sorted, without repeats.
    pub fn requirements(&self) -> Vec<&'static str> {
        let mut r: Vec<&'static str> = self
            .checks
            .iter()
            .filter(|c| !matches!(c.outcome, Outcome::NotExercised(_)))
            .flat_map(|c| c.requirements.iter().copied())
            .collect();
        r.sort_by_key(|id| id.trim_start_matches("PS-").parse::<u32>().unwrap_or(0));
        r.dedup();
        r
    }
}

/// Runs `scenario` on `ctx`, audits the traffic of the implementation under test and, with
/// `trace`, writes the stanza trace of its worlds into that directory ([`super::trace`]).
///
/// # Errors
/// The trace cannot be written.
pub fn run(scenario: &Scenario, ctx: &Ctx<'_>, trace: Option<&Path>) -> Result<Run, String> {
    let started = Instant::now();
    let mut body = (scenario.run)(ctx);
    let audits = body.worlds.iter().flat_map(|world| {
        world
            .subjects
            .iter()
            .map(|d| audit::audit(d, world.net.host(d).records(), &body.audit))
    });
    body.checks.extend(merge_audits(audits));
    body.checks.extend(setup_check(&body.worlds));
    for c in &mut body.checks {
        c.id = format!("{}/{}", scenario.name, c.id);
    }
    let trace = match trace {
        Some(dir) => Some(super::trace::write(
            dir,
            scenario.name,
            scenario.about,
            &body.worlds,
        )?),
        None => None,
    };
    Ok(Run {
        name: scenario.name,
        about: scenario.about,
        checks: body.checks,
        phase: body.phase,
        baseline: body.baseline,
        buckets: body.buckets,
        seconds: started.elapsed().as_secs_f64(),
        trace,
    })
}

/// The check of the state every scenario starts from ([`World::mark_setup`]): after both login
/// storms, with the session up, every user sees exactly its contacts' presence. Each side's
/// users log in in turn, so each side's published set changes while the session is up and
/// reaches the other as batches and live presence, which the implementation under test must
/// apply and answer (PS-43, PS-44). None if no world recorded its set-up.
fn setup_check(worlds: &[World]) -> Option<Check> {
    let diffs: Vec<&Vec<String>> = worlds
        .iter()
        .filter_map(|w| w.setup_diff.as_ref())
        .collect();
    if diffs.is_empty() {
        return None;
    }
    let problems: Vec<String> = diffs.into_iter().flatten().cloned().collect();
    Some(
        Check::empty(
            "before any fault, after both login storms, every user sees exactly its contacts' \
             presence",
            &truth_reqs(&["PS-43", "PS-44"]),
            &problems,
        )
        .with_id("setup-truth"),
    )
}

/// One [`Check`] per audit check, over the audits of every world of a scenario: failed if it
/// failed in one, passed if it passed in one, else not exercised.
pub fn merge_audits(audits: impl Iterator<Item = Vec<audit::Finding>>) -> Vec<Check> {
    let mut merged: Vec<(&'static audit::Check, bool, Option<String>)> =
        audit::CHECKS.iter().map(|c| (c, false, None)).collect();
    for findings in audits {
        for f in findings {
            let slot = &mut merged[f.check.id as usize];
            slot.1 |= f.outcome == audit::Outcome::Pass;
            if slot.2.is_none() && f.outcome.is_fail() {
                slot.2 = Some(f.to_string());
            }
        }
    }
    merged
        .into_iter()
        .map(|(c, passed, failure)| {
            let outcome = match failure {
                Some(detail) => Outcome::Fail(detail),
                None if passed => Outcome::Pass,
                None => Outcome::NotExercised("nothing to examine".into()),
            };
            Check::with(
                format!("audit {}: {}", c.name, c.description),
                c.requirements,
                outcome,
            )
            .with_id(format!("audit/{}", super::check::slug(c.name)))
        })
        .collect()
}

/// Every scenario, in the order of the report.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();
    v.extend(restart::scenarios());
    v.extend(outage::scenarios());
    v.extend(peers::scenarios());
    v.extend(limits::scenarios());
    v
}

/// The check every scenario ends with: each online user is shown exactly what it is
/// entitled to (and the phase ended: no livelock).
pub fn truth(name: impl Into<String>, requirements: &[&'static str], phase: &Phase) -> Check {
    let mut problems = phase.diff.clone();
    problems.extend(
        phase
            .complaints
            .iter()
            .filter(|c| c.contains("livelock"))
            .cloned(),
    );
    Check::empty(name, requirements, &problems)
}

/// The requirements the end-state truth exercises in every scenario: the published set and
/// except lists (PS-7, PS-9), local delivery (PS-40), blocking (PS-79), except lists used
/// only to restrict delivery (PS-80).
pub const TRUTH: [&str; 5] = ["PS-7", "PS-9", "PS-40", "PS-79", "PS-80"];

/// A network filter that loses every stanza with a child element named `child` (a hello, a
/// reconcile, a repair marker) and delivers the rest.
pub(crate) fn lose_every(
    child: &'static str,
) -> impl FnMut(&crate::sim::Envelope<'_>) -> crate::sim::Verdict + 'static {
    move |e| {
        if e.stanza.children().any(|c| c.name() == child) {
            crate::sim::Verdict::Drop
        } else {
            crate::sim::Verdict::Deliver
        }
    }
}

/// `TRUTH` plus `more`.
pub fn truth_reqs(more: &[&'static str]) -> Vec<&'static str> {
    let mut v = TRUTH.to_vec();
    v.extend_from_slice(more);
    v
}
