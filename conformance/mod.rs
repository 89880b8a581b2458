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
pub mod progress;
pub mod record;
pub mod report;
pub mod scenarios;
pub mod subject;
pub mod trace;
#[cfg(feature = "wire")]
pub mod wire;
pub mod workload;
pub mod world;

use report::{Report, Workload};
use scenarios::{Ctx, Run};
use subject::{Implementation, Reference};
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
    /// Judge a subset run as strictly as a full one: a MUST that no selected scenario
    /// exercises fails the run. A full run (`scenarios: None`) is always strict.
    pub require_all: bool,
    /// Write each scenario's stanza trace into this directory ([`trace`]).
    pub trace: Option<std::path::PathBuf>,
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
            require_all: false,
            trace: None,
        }
    }
}

/// The largest `users` per domain the suite accepts: ten times the `huge` preset (10⁷ edges,
/// tens of GB); beyond it a run would end in an out-of-memory abort, not a report.
pub const MAX_USERS: u32 = 1_000_000;
/// The largest hub the suite accepts.
pub const MAX_HUB_PEERS: usize = 100_000;
/// The largest number of outage changes (d) the suite accepts.
pub const MAX_CHANGES: usize = 1_000_000;

impl Options {
    /// The reference implementation for this workload: the XEP's defaults, except with the
    /// `tiny` preset, whose pairs share a dozen edges, below the default small-peer threshold
    /// (XEP PS-93): its scenarios test sessions, so the reference starts them there (threshold
    /// 0, [`Reference::for_small_worlds`]).
    pub fn reference(&self) -> Reference {
        if self.preset == Preset::Tiny {
            Reference::for_small_worlds()
        } else {
            Reference::default()
        }
    }

    /// Checks every parameter a user can give (the command line's flags): scenario names,
    /// workload overrides, hub size and d. A run on options that pass never panics on them.
    ///
    /// # Errors
    /// What is wrong, in a sentence naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(names) = &self.scenarios {
            let all = scenarios::all();
            if names.is_empty() {
                return Err("--scenarios: no scenario named".to_owned());
            }
            for n in names {
                if !all.iter().any(|s| s.name == n) {
                    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
                    return Err(format!(
                        "--scenarios: unknown scenario {n:?}; known: {}",
                        known.join(", ")
                    ));
                }
            }
        }
        if let Some(u) = self.users {
            if u == 0 || u > MAX_USERS {
                return Err(format!(
                    "--users {u}: users per domain must be between 1 and {MAX_USERS}"
                ));
            }
        }
        if let Some(o) = self.online {
            if !(0.0..=1.0).contains(&o) {
                return Err(format!(
                    "--online {o}: the fraction of users online must be between 0 and 1"
                ));
            }
        }
        if self.hub_peers == 0 || self.hub_peers > MAX_HUB_PEERS {
            return Err(format!(
                "--hub-peers {}: the hub needs between 1 and {MAX_HUB_PEERS} peer domains",
                self.hub_peers
            ));
        }
        if self.changes > MAX_CHANGES {
            return Err(format!(
                "--changes {}: at most {MAX_CHANGES} changes during an outage",
                self.changes
            ));
        }
        self.spec().validate()
    }

    /// True if a MUST that no check exercised fails the run: a full run, or `require_all`.
    pub fn strict(&self) -> bool {
        self.require_all || self.scenarios.is_none()
    }

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
/// Options that [`Options::validate`] rejects, or a trace that cannot be written.
pub fn run_suite(
    imp: &dyn Implementation,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Report, String> {
    opts.validate()?;
    let timestamp = report::rfc3339(std::time::SystemTime::now());
    let spec = opts.spec();
    let fed = spec.generate(&[scenarios::A, scenarios::B]);
    let runs = run_on(imp, opts, &spec, &fed, progress)?;
    Ok(Report {
        implementation: imp.name(),
        workload: workload_of(opts, &spec, &fed),
        runs,
        mutants: None,
        strict: opts.strict(),
        timestamp,
        commit: report::commit(),
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
        trace::set_recording_peers(opts.trace.is_some());
        let run = scenarios::run(s, &ctx, opts.trace.as_deref());
        trace::set_recording_peers(false);
        let run = run?;
        progress(Progress::Done(&run));
        runs.push(run);
    }
    Ok(runs)
}

/// Runs the selected scenarios against every broken variant of [`mutants::all`] and judges
/// each (added to `report`).
///
/// # Errors
/// Options that [`Options::validate`] rejects.
pub fn run_mutants(
    report: &mut Report,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    opts.validate()?;
    // The traces are of the implementation under test, not of its broken variants.
    let opts = &Options {
        trace: None,
        ..opts.clone()
    };
    let spec = opts.spec();
    let fed = spec.generate(&[scenarios::A, scenarios::B]);
    let mut results = Vec::new();
    for m in mutants::all_with_small_peer(opts.reference().small_peer()) {
        progress(m.name);
        let runs = run_on(m.implementation.as_ref(), opts, &spec, &fed, &mut |_| {})?;
        results.push(mutants::MutantResult::judge(&m, &runs));
    }
    report.mutants = Some(results);
    Ok(())
}
