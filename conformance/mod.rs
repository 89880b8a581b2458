//! The conformance suite: an implementation of the XEP driven through restart, crash,
//! partition and hostile-peer scenarios on generated workloads, each end state checked
//! against the ground truth, reported requirement by requirement.
//!
//! ```text
//!  workload::Spec ──generate──► Federation (users, rosters, blocks, sessions, churn)
//!        │
//!  Implementation ──server(domain)──► Box<dyn Subject> ─┐   Reference peers, RFC 6121 baselines
//!                                                       ▼
//!  scenarios::all() ── World (Net of recorded Subjects) ── faults, logins, changes
//!        │ measure: stanzas, bytes, round trips, time to converge and to active synced
//!        │ checks: end state vs truth (model::truth), invariants, exact costs, audit
//!        ▼
//!  report::Report ── text table + requirement coverage ── JSON (--json FILE)
//! ```
//!
//! [`run_suite`] runs the scenarios against an [`subject::Implementation`]; [`run_mutants`]
//! runs them against the deliberately broken variants of [`mutants`] and judges whether each
//! was caught. The `presence-sync conformance` command prints the report.
pub mod audit;
pub mod check;
pub mod hostile;
pub mod mutants;
pub mod record;
pub mod report;
pub mod scenarios;
pub mod subject;
pub mod workload;
pub mod world;

use report::{Report, Workload};
use scenarios::{Ctx, Run};
use subject::Implementation;
use workload::{Federation, Preset, Spec};

/// What the suite runs on.
#[derive(Clone, Debug)]
pub struct Options {
    /// The workload preset.
    pub preset: Preset,
    /// Users per domain, overriding the preset's.
    pub users: Option<u32>,
    /// Fraction of users online, overriding the preset's.
    pub online: Option<f64>,
    /// Seed of the workload and the scenarios.
    pub seed: u64,
    /// Changes during an outage (d).
    pub changes: usize,
    /// Peer domains of the hub scenario.
    pub hub_peers: usize,
    /// Scenarios to run (all if `None`).
    pub scenarios: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            preset: Preset::Small,
            users: None,
            online: None,
            seed: 1,
            changes: 20,
            hub_peers: 1000,
            scenarios: None,
        }
    }
}

impl Options {
    /// The workload parameters.
    pub fn spec(&self) -> Spec {
        let mut spec = Spec::preset(self.preset).with_seed(self.seed);
        if let Some(u) = self.users {
            spec = spec.with_users(u);
        }
        if let Some(o) = self.online {
            spec = spec.with_online(o);
        }
        spec
    }
}

/// Progress of a run, for a terminal.
pub enum Progress<'a> {
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

/// Runs the selected scenarios against `imp`.
///
/// # Errors
/// An unknown scenario name.
pub fn run_suite(
    imp: &dyn Implementation,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, String> {
    let spec = opts.spec();
    let fed = spec.generate(&[scenarios::A, scenarios::B]);
    let runs = run_on(imp, opts, &spec, &fed, progress)?;
    Ok(Report {
        implementation: imp.name(),
        workload: workload_of(opts, &spec, &fed),
        runs,
        mutants: None,
    })
}

fn workload_of(opts: &Options, spec: &Spec, fed: &Federation) -> Workload {
    Workload {
        preset: opts.preset.name().to_owned(),
        users: spec.users,
        edges: fed.edges(),
        online: spec.online,
        active: spec.active,
        changes: opts.changes,
        hub_peers: opts.hub_peers,
        seed: opts.seed,
    }
}

fn run_on(
    imp: &dyn Implementation,
    opts: &Options,
    spec: &Spec,
    fed: &Federation,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<Run>, String> {
    let all = scenarios::all();
    let selected: Vec<&scenarios::Scenario> = match &opts.scenarios {
        None => all.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                all.iter().find(|s| s.name == n).ok_or_else(|| {
                    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
                    format!("unknown scenario {n:?}; known: {}", known.join(", "))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let ctx = Ctx {
        imp,
        fed,
        spec,
        hub_peers: opts.hub_peers,
        changes: opts.changes,
        seed: opts.seed,
    };
    let total = selected.len();
    let mut runs = Vec::new();
    for (i, s) in selected.into_iter().enumerate() {
        progress(Progress::Start {
            index: i + 1,
            total,
            name: s.name,
        });
        let run = scenarios::run(s, &ctx);
        progress(Progress::Done(&run));
        runs.push(run);
    }
    Ok(runs)
}

/// Runs the selected scenarios against every broken variant of [`mutants::all`] and judges
/// each (added to `report`).
///
/// # Errors
/// An unknown scenario name.
pub fn run_mutants(
    report: &mut Report,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let spec = opts.spec();
    let fed = spec.generate(&[scenarios::A, scenarios::B]);
    let mut results = Vec::new();
    for m in mutants::all() {
        progress(m.name);
        let runs = run_on(m.implementation.as_ref(), opts, &spec, &fed, &mut |_| {})?;
        results.push(mutants::MutantResult::judge(&m, &runs));
    }
    report.mutants = Some(results);
    Ok(())
}
