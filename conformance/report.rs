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
    /// True if a MUST that no check exercised fails the run (a full run, or
    /// `--require-all`); false for a subset run, whose verdict covers only what it ran.
    pub strict: bool,
    /// When the run started, RFC 3339 in UTC ([`rfc3339`]).
    pub timestamp: String,
    /// The commit the binary was built from, if known ([`commit`]).
    pub commit: Option<String>,
}

/// The version of the JSON report's format (`format_version`): raised when a field is removed
/// or changes meaning; fields may be added without raising it. `conformance/report.schema.json`
/// documents it.
pub const FORMAT_VERSION: u32 = 1;

/// How many directions of a phase the JSON report lists without `--json-full` (the largest
/// by stanzas); the rest are summed up.
pub const DIRECTIONS_SHOWN: usize = 8;

/// The XEP the suite checks against, as its `<header>` gives it.
const XEP: &str = include_str!("../xep/presence-sync.xml");

/// The version of the XEP (the newest `<revision>`'s), e.g. `0.0.4`.
pub fn xep_version() -> &'static str {
    XEP.split_once("<version>")
        .and_then(|(_, rest)| rest.split_once("</version>"))
        .map_or("unknown", |(v, _)| v.trim())
}

/// The commit this crate was built from: `PRESENCE_SYNC_COMMIT` at build time if set, else
/// `git describe --always --dirty --abbrev=40` in the crate's source directory if it is still
/// there and a git checkout; `None` otherwise.
pub fn commit() -> Option<String> {
    if let Some(c) = option_env!("PRESENCE_SYNC_COMMIT") {
        return Some(c.to_owned());
    }
    let out = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR")])
        .args(["describe", "--always", "--dirty", "--abbrev=40"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

/// `t` as RFC 3339 in UTC, to the second (`2026-12-06T03:21:52Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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

    /// True if every scenario passed, no requirement failed, every MUST is covered (only
    /// if [`Report::strict`]) and, if the broken variants were run, each was caught.
    pub fn passed(&self) -> bool {
        self.runs.iter().all(Run::passed)
            && self.coverage().iter().all(|(r, s, _)| match s {
                Status::Pass => true,
                Status::Fail => false,
                Status::NotCovered => !(self.strict && r.level == "MUST"),
            })
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
            "presence-sync conformance: {}\nworkload: preset {}, {} users per domain, {} cross-domain edges,\n          \
             {:.0}% online, {:.0}% active, d = {}, hub with {} peers, seed {}\n",
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
        // The name column fits the longest name (the wire's `peer-graceful-restart`), at
        // least 20 wide.
        let width = self
            .runs
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(0)
            .max(20);
        let _ = writeln!(
            out,
            "{:<width$} {:<6} {:>6} {:>8} {:>9} {:>4} {:>8} {:>9} | {:>9} {:>9}",
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
        let _ = writeln!(out, "{}", "-".repeat(99 + width - 20));
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
                "{:<width$} {:<6} {:>6} {:>8} {:>9} {:>4} {:>8} {:>9} | {:>9} {:>9}",
                run.name,
                if !run.passed() {
                    "FAIL"
                } else if run
                    .checks
                    .iter()
                    .all(|c| matches!(c.outcome, Outcome::NotExercised(_)))
                {
                    "n/a"
                } else {
                    "pass"
                },
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
        if w.preset == "wire" {
            let _ = writeln!(
                out,
                "\nstanzas and bytes between the server under test and the suite's peer during the\n\
                 measured phase, counted on the wire; RTT: the longest chain of stanzas each sent\n\
                 after one from the other side arrived, halved (an upper bound); conv: wall-clock\n\
                 ms from the restart to every view right. A scenario that could not run shows its\n\
                 reason below as n/a."
            );
        } else {
            let _ = writeln!(
                out,
                "\nstanzas, bytes and round trips (RTT) of the measured phase; simulated ms until every\n\
                 view (conv) and every active user's view (active) was right; RFC 6121: the same\n\
                 phase between two Prosody-like servers (* = stale or missing presence left)."
            );
        }
        for run in self.runs.iter().filter(|r| !r.buckets.is_empty()) {
            let _ = writeln!(
                out,
                "\n{}: by the edges each peer shares with the hub (both directions)\n\
                 {:<10} {:>6} {:>8} {:>8} {:>10} | {:>9} {:>10} {:>7}",
                run.name,
                "peer edges",
                "peers",
                "edges",
                "stanzas",
                "bytes",
                "RFC 6121",
                "bytes",
                "ratio"
            );
            for b in &run.buckets {
                let _ = writeln!(
                    out,
                    "{:<10} {:>6} {:>8} {:>8} {:>10} | {:>9} {:>10} {:>7.2}",
                    b.label,
                    b.peers,
                    b.edges,
                    b.ours.0,
                    b.ours.1,
                    b.rfc6121.0,
                    b.rfc6121.1,
                    b.byte_ratio()
                );
            }
            let _ = writeln!(out, "ratio: bytes of the implementation over RFC 6121's.");
        }
        for run in &self.runs {
            for c in &run.checks {
                if c.failed() || verbose {
                    let _ = writeln!(out, "{:<22} {c}", run.name);
                }
            }
            if let (false, Some(path)) = (run.passed(), &run.trace) {
                let _ = writeln!(
                    out,
                    "{:<22} the stanzas of this run: {}",
                    run.name,
                    path.display()
                );
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
        let uncovered_musts = count("MUST", Status::NotCovered);
        if !self.strict && uncovered_musts > 0 {
            let _ = writeln!(
                out,
                "  (a subset run: the {uncovered_musts} MUSTs its scenarios do not exercise are\n   \
                 not covered, not failed; --require-all fails on them)"
            );
        }
        for (r, s, scenarios) in &coverage {
            let listed = *s == Status::Fail
                || (self.strict && *s == Status::NotCovered && r.level == "MUST");
            if verbose || listed {
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
                    "  {:<24} {:<8} breaks {}; fails {} of {} scenarios: {}",
                    m.name,
                    if m.caught { "caught" } else { "MISSED" },
                    m.breaks.join(", "),
                    m.failed_scenarios.len(),
                    m.scenarios,
                    m.failed_scenarios.join(", ")
                );
                for (s, c, r) in m.failing.iter().take(if verbose { usize::MAX } else { 2 }) {
                    let _ = writeln!(out, "    {s}: {c} [{}]", r.join(", "));
                }
            }
        }
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let scope = if self.strict {
            String::new()
        } else if w.preset == "wire" {
            " (over the wire: only what ran is judged; --require-all judges every MUST)".to_owned()
        } else {
            format!(
                " (subset: {} of {} scenarios, only what ran is judged)",
                self.runs.len(),
                super::scenarios::all().len()
            )
        };
        let _ = writeln!(out, "\nconformance: {verdict}{scope}");
        out
    }

    /// The machine-readable report (documented by `conformance/report.schema.json`). Without
    /// `full`, a phase lists its [`DIRECTIONS_SHOWN`] largest directions and sums up the
    /// rest (the hub scenario has two per peer domain); with it, every direction.
    pub fn json(&self, full: bool) -> Value {
        let w = &self.workload;
        let directions = |p: &Phase| {
            let all: Vec<Value> = p
                .directions
                .iter()
                .map(|(f, t, s, b)| json!({"from": f, "to": t, "stanzas": s, "bytes": b}))
                .collect();
            if full || p.directions.len() <= DIRECTIONS_SHOWN {
                return (all, None);
            }
            let mut order: Vec<usize> = (0..p.directions.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(p.directions[i].2));
            let (shown, rest) = order.split_at(DIRECTIONS_SHOWN);
            let mut shown = shown.to_vec();
            shown.sort_unstable();
            let sum = |f: fn(&(String, String, u64, u64)) -> u64| {
                rest.iter().map(|&i| f(&p.directions[i])).sum::<u64>()
            };
            (
                shown.iter().map(|&i| all[i].clone()).collect(),
                Some(json!({
                    "directions": rest.len(),
                    "stanzas": sum(|d| d.2),
                    "bytes": sum(|d| d.3),
                })),
            )
        };
        let phase = |p: &Phase| {
            let (dirs, others) = directions(p);
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
                "directions": dirs,
                "other_directions": others,
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
                    "trace": r.trace.as_ref().map(|p| p.display().to_string()),
                    "checks": r.checks.iter().map(|c| json!({
                        "id": c.id,
                        "name": c.name,
                        "requirements": c.requirements,
                        "status": match &c.outcome { Outcome::Pass => "pass", Outcome::Fail(_) => "fail", Outcome::NotExercised(_) => "not-exercised" },
                        "detail": match &c.outcome { Outcome::Pass => None, Outcome::Fail(d) | Outcome::NotExercised(d) => Some(d) },
                    })).collect::<Vec<_>>(),
                    "wall_seconds": r.seconds,
                    "peer_buckets": r.buckets.iter().map(|b| json!({
                        "peer_edges": b.label,
                        "peers": b.peers,
                        "edges": b.edges,
                        "stanzas": b.ours.0,
                        "bytes": b.ours.1,
                        "rfc6121_stanzas": b.rfc6121.0,
                        "rfc6121_bytes": b.rfc6121.1,
                    })).collect::<Vec<_>>(),
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
            "format_version": FORMAT_VERSION,
            "xep": {"namespace": crate::wire::ns::PRESENCE_SYNC, "version": xep_version()},
            "suite": {"name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION")},
            "commit": self.commit,
            "timestamp": self.timestamp,
            "strict": self.strict,
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
                            "failed_scenarios": m.failed_scenarios,
                            "scenarios": m.scenarios,
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
