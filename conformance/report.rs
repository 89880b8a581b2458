//! The report: scenarios with their figures beside the RFC 6121 baseline, then every
//! requirement of the XEP with its status; as text for a terminal and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::check::Outcome;
use super::mutants::MutantResult;
use super::scenarios::Run;
use super::world::Phase;

/// The requirement map of the XEP's implementation report (`xep/implementation-report.md`):
/// one row per requirement identifier of the XEP, kept in step with the XEP's text by
/// `xep/tools/req-index.py --check`.
const REQUIREMENT_MAP: &str = include_str!("../xep/implementation-report.md");

/// One requirement of the XEP's Requirements Index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// `PS-n`.
    pub id: String,
    /// MUST, SHOULD or MAY.
    pub level: String,
    /// The section it is stated in.
    pub section: String,
    /// The "Checked by" cell of the implementation report's requirement map.
    pub checked_by: String,
}

/// The cells of a row `| PS-n | level | section | checked by |` of the requirement map.
fn map_row(line: &str) -> Option<[&str; 4]> {
    let inner = line.strip_prefix("| PS-")?.strip_suffix(" |")?;
    let mut cells = inner.split(" | ");
    let row = [cells.next()?, cells.next()?, cells.next()?, cells.next()?];
    cells.next().is_none().then_some(row)
}

/// The requirements of the XEP, in the order of their numbers, read from the requirement map
/// of the implementation report (retired identifiers are left out).
pub fn requirements() -> Vec<Requirement> {
    REQUIREMENT_MAP
        .lines()
        .filter_map(map_row)
        .filter(|[_, level, _, _]| *level != "retired")
        .map(|[n, level, section, checked_by]| Requirement {
            id: format!("PS-{n}"),
            level: level.to_owned(),
            section: section.to_owned(),
            checked_by: checked_by.to_owned(),
        })
        .collect()
}

/// The status of a requirement in a run of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// At least one check exercised it, and none of them failed.
    Pass,
    /// A check that exercises it failed.
    Fail,
    /// No check exercised it.
    NotCovered,
}

impl Status {
    /// As printed and in the JSON report.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotCovered => "not-covered",
        }
    }
}

/// The workload a report was made on.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Preset name.
    pub preset: String,
    /// Users per domain.
    pub users: u32,
    /// Cross-domain subscription edges between the two domains.
    pub edges: u64,
    /// Fraction of users online.
    pub online: f64,
    /// Fraction of users active.
    pub active: f64,
    /// Changes during an outage (d).
    pub changes: usize,
    /// Peer domains of the hub scenario.
    pub hub_peers: usize,
    /// Seed.
    pub seed: u64,
}

/// A run of the suite.
pub struct Report {
    /// The implementation under test.
    pub implementation: String,
    /// The workload.
    pub workload: Workload,
    /// The scenarios run, in order.
    pub runs: Vec<Run>,
    /// The broken variants, if they were run.
    pub mutants: Option<Vec<MutantResult>>,
}

impl Report {
    /// Every requirement with its status and the scenarios whose checks exercise it.
    pub fn coverage(&self) -> Vec<(Requirement, Status, Vec<&'static str>)> {
        let mut by_req: BTreeMap<&str, (bool, Vec<&'static str>)> = BTreeMap::new();
        for run in &self.runs {
            for c in &run.checks {
                if matches!(c.outcome, Outcome::NotExercised(_)) {
                    continue;
                }
                for r in &c.requirements {
                    let e = by_req.entry(r).or_default();
                    e.0 |= c.failed();
                    if !e.1.contains(&run.name) {
                        e.1.push(run.name);
                    }
                }
            }
        }
        requirements()
            .into_iter()
            .map(|req| {
                let (status, scenarios) = match by_req.get(req.id.as_str()) {
                    None => (Status::NotCovered, Vec::new()),
                    Some((true, s)) => (Status::Fail, s.clone()),
                    Some((false, s)) => (Status::Pass, s.clone()),
                };
                (req, status, scenarios)
            })
            .collect()
    }

    /// True if every scenario passed, every MUST is covered and, if the broken variants were
    /// run, each was caught.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(Run::passed)
            && self
                .coverage()
                .iter()
                .all(|(r, s, _)| *s == Status::Pass || (r.level != "MUST" && *s != Status::Fail))
            && self
                .mutants
                .as_ref()
                .is_none_or(|m| m.iter().all(|m| m.caught))
    }

    /// The report for a terminal.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let w = &self.workload;
        let _ = writeln!(
            out,
            "presence-sync conformance: {}\nworkload: preset {}, {} users per domain, {} cross-domain edges, {:.0}% online, {:.0}% active, d = {}, hub with {} peers, seed {}\n",
            self.implementation,
            w.preset,
            w.users,
            w.edges,
            w.online * 100.0,
            w.active * 100.0,
            w.changes,
            w.hub_peers,
            w.seed
        );
        let _ = writeln!(
            out,
            "{:<22} {:<6} {:>6} {:>9} {:>10} {:>4} {:>9} {:>9} | {:>9} {:>11}",
            "scenario",
            "result",
            "checks",
            "stanzas",
            "bytes",
            "RTT",
            "conv ms",
            "active ms",
            "RFC 6121",
            "bytes"
        );
        let _ = writeln!(out, "{}", "-".repeat(108));
        for run in &self.runs {
            let failed = run.checks.iter().filter(|c| c.failed()).count();
            let n = run.checks.len();
            let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
            let (st, by, rt, conv, act) = match &run.phase {
                Some(p) => (
                    p.stanzas.to_string(),
                    p.bytes.to_string(),
                    p.round_trips.to_string(),
                    opt(p.sim_ms_to_converge),
                    opt(p.sim_ms_to_active_synced),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            let (bst, bby) = match &run.baseline {
                Some(b) => {
                    let stale = if b.converged { "" } else { "*" };
                    (format!("{}{stale}", b.stanzas), b.bytes.to_string())
                }
                None => ("-".into(), "-".into()),
            };
            let _ = writeln!(
                out,
                "{:<22} {:<6} {:>6} {:>9} {:>10} {:>4} {:>9} {:>9} | {:>9} {:>11}",
                run.name,
                if run.passed() { "pass" } else { "FAIL" },
                format!("{}/{}", n - failed, n),
                st,
                by,
                rt,
                conv,
                act,
                bst,
                bby
            );
        }
        let _ = writeln!(
            out,
            "\nstanzas, bytes and round trips (RTT) of the measured phase, simulated ms until every view and every active user's view was right; RFC 6121: the same phase between two Prosody-like servers (* = stale or missing presence left).\n"
        );
        for run in &self.runs {
            for c in &run.checks {
                if c.failed() || verbose {
                    let _ = writeln!(out, "{:<22} {c}", run.name);
                }
            }
        }
        let coverage = self.coverage();
        let count = |level: &str, s: Status| {
            coverage
                .iter()
                .filter(|(r, st, _)| r.level == level && *st == s)
                .count()
        };
        let _ = writeln!(out, "\nrequirements:");
        for level in ["MUST", "SHOULD", "MAY"] {
            let _ = writeln!(
                out,
                "  {level:<6} {} pass, {} fail, {} not covered",
                count(level, Status::Pass),
                count(level, Status::Fail),
                count(level, Status::NotCovered)
            );
        }
        for (r, s, scenarios) in &coverage {
            if verbose || *s == Status::Fail || (*s == Status::NotCovered && r.level == "MUST") {
                let _ = writeln!(
                    out,
                    "  {:<6} {:<6} {:<11} {}  ({})",
                    r.id,
                    r.level,
                    s.as_str(),
                    scenarios.join(", "),
                    r.section
                );
            }
        }
        if let Some(mutants) = &self.mutants {
            let _ = writeln!(out, "\nbroken variants (each must be caught):");
            for m in mutants {
                let _ = writeln!(
                    out,
                    "  {:<24} {:<8} breaks {}; failing: {}",
                    m.name,
                    if m.caught { "caught" } else { "MISSED" },
                    m.breaks.join(", "),
                    m.failing
                        .iter()
                        .take(3)
                        .map(|(s, c, r)| format!("{s}: {c} [{}]", r.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
        }
        let _ = writeln!(
            out,
            "\n{}",
            if self.passed() {
                "conformance: PASS"
            } else {
                "conformance: FAIL"
            }
        );
        out
    }

    /// The machine-readable report.
    pub fn json(&self) -> Value {
        let w = &self.workload;
        let phase = |p: &Phase| {
            json!({
                "stanzas": p.stanzas,
                "bytes": p.bytes,
                "round_trips": p.round_trips,
                "converged": p.converged,
                "sim_ms_to_converge": p.sim_ms_to_converge,
                "sim_ms_to_active_synced": p.sim_ms_to_active_synced,
                "stanzas_to_active_synced": p.stanzas_to_active_synced,
                "reconcile_stanzas": p.reconcile_stanzas,
                "reconcile_stanzas_to_active_synced": p.reconcile_stanzas_to_active_synced,
                "directions": p.directions.iter().map(|(f, t, s, b)| json!({"from": f, "to": t, "stanzas": s, "bytes": b})).collect::<Vec<_>>(),
                "kinds": p.kinds.iter().map(|(k, s, b)| json!({"kind": k, "stanzas": s, "bytes": b})).collect::<Vec<_>>(),
            })
        };
        let scenarios: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                let p = r.phase.as_ref();
                json!({
                    "name": r.name,
                    "description": r.about,
                    "passed": r.passed(),
                    "requirements": r.requirements(),
                    "stanzas": p.map(|p| p.stanzas),
                    "bytes": p.map(|p| p.bytes),
                    "round_trips": p.map(|p| p.round_trips),
                    "sim_ms_to_converge": p.and_then(|p| p.sim_ms_to_converge),
                    "sim_ms_to_active_synced": p.and_then(|p| p.sim_ms_to_active_synced),
                    "phase": p.map(phase),
                    "baseline": r.baseline.as_ref().map(|b| json!({
                        "implementation": "RFC 6121, Prosody-like",
                        "stanzas": b.stanzas,
                        "bytes": b.bytes,
                        "round_trips": b.round_trips,
                        "converged": b.converged,
                        "stale_or_missing": b.diff.len(),
                    })),
                    "checks": r.checks.iter().map(|c| json!({
                        "name": c.name,
                        "requirements": c.requirements,
                        "status": match &c.outcome { Outcome::Pass => "pass", Outcome::Fail(_) => "fail", Outcome::NotExercised(_) => "not-exercised" },
                        "detail": match &c.outcome { Outcome::Pass => None, Outcome::Fail(d) | Outcome::NotExercised(d) => Some(d) },
                    })).collect::<Vec<_>>(),
                    "wall_seconds": r.seconds,
                })
            })
            .collect();
        let requirements: Vec<Value> = self
            .coverage()
            .iter()
            .map(|(r, s, sc)| {
                json!({"id": r.id, "level": r.level, "section": r.section, "status": s.as_str(), "scenarios": sc})
            })
            .collect();
        let mut v = json!({
            "implementation": self.implementation,
            "workload": {
                "preset": w.preset, "users_per_domain": w.users, "edges": w.edges,
                "online": w.online, "active": w.active, "changes": w.changes,
                "hub_peers": w.hub_peers, "seed": w.seed,
            },
            "passed": self.passed(),
            "scenarios": scenarios,
            "requirements": requirements,
        });
        if let Some(m) = &self.mutants {
            v["mutants"] = Value::Array(
                m.iter()
                    .map(|m| {
                        json!({
                            "name": m.name,
                            "breaks": m.breaks,
                            "caught": m.caught,
                            "failing": m.failing.iter().map(|(s, c, r)| json!({"scenario": s, "check": c, "requirements": r})).collect::<Vec<_>>(),
                        })
                    })
                    .collect(),
            );
        }
        v
    }
}

/// The "conformance: …" citation of the requirement map for a requirement covered by
/// `scenarios`.
pub fn citation(scenarios: &[&str]) -> String {
    if scenarios.is_empty() {
        "conformance: none".to_owned()
    } else {
        format!("conformance: {}", scenarios.join(", "))
    }
}

/// Rewrites the "conformance: …" part of the "Checked by" cells of the requirement map in the
/// implementation report at `path` with the scenarios that cover each requirement in
/// `report`; returns how many rows changed.
///
/// # Errors
/// The file cannot be read or written.
pub fn write_requirement_map(report: &Report, path: &std::path::Path) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(path)?;
    let cited: BTreeMap<String, String> = report
        .coverage()
        .into_iter()
        .map(|(r, _, s)| (r.id, citation(&s)))
        .collect();
    let mut changed = 0;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches('\n');
        let Some([n, level, section, cell]) = map_row(body) else {
            out.push_str(line);
            continue;
        };
        let Some(cite) = cited.get(&format!("PS-{n}")) else {
            out.push_str(line);
            continue;
        };
        let mut parts: Vec<&str> = cell
            .split("; ")
            .filter(|p| !p.is_empty() && !p.starts_with("conformance:") && *p != "—")
            .collect();
        parts.push(cite);
        let new = format!("| PS-{n} | {level} | {section} | {} |", parts.join("; "));
        if new != body {
            changed += 1;
        }
        out.push_str(&new);
        out.push_str(&line[body.len()..]);
    }
    std::fs::write(path, out)?;
    Ok(changed)
}
