//! The conformance suite against the reference implementation and against its deliberately
//! broken variants (issue 5): the reference passes every scenario with every MUST of the XEP
//! covered, each broken variant is caught by a failing check that names a requirement it
//! breaks, and the requirement map of the XEP's implementation report names the scenarios that
//! cover each requirement.

use presence_sync::conformance::report::{Report, Status, requirements};
use presence_sync::conformance::subject::Reference;
use presence_sync::conformance::{self, Options};

/// The default workload, with a smaller hub to keep CI short (the command's default is 1000
/// peer domains).
fn options() -> Options {
    Options {
        hub_peers: 100,
        ..Options::default()
    }
}

fn reference_report() -> Report {
    conformance::run_suite(&Reference::default(), &options(), &mut |_| {}).expect("scenarios")
}

#[test]
fn the_reference_passes_and_every_must_is_covered() {
    let report = reference_report();
    let failed: Vec<String> = report
        .runs
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| c.failed())
                .map(move |c| format!("{}: {c}", r.name))
        })
        .collect();
    assert!(failed.is_empty(), "failing checks: {failed:#?}");
    let uncovered: Vec<String> = report
        .coverage()
        .into_iter()
        .filter(|(r, s, _)| r.level == "MUST" && *s != Status::Pass)
        .map(|(r, s, _)| format!("{} {}", r.id, s.as_str()))
        .collect();
    assert!(uncovered.is_empty(), "MUSTs not covered: {uncovered:?}");
    assert!(report.passed());
    // The JSON report has the fields the issue asks for.
    let json = report.json(false);
    for key in ["implementation", "workload", "scenarios", "requirements"] {
        assert!(json.get(key).is_some(), "no {key}");
    }
    let s = &json["scenarios"][0];
    for key in [
        "name",
        "passed",
        "requirements",
        "stanzas",
        "bytes",
        "round_trips",
        "sim_ms_to_converge",
        "sim_ms_to_active_synced",
        "baseline",
    ] {
        assert!(s.get(key).is_some(), "no scenarios[0].{key}");
    }
}

/// Preset tiny (3 users per domain, every pair of online users related already) still
/// exercises every MUST: `live` changes an except list on an existing subscription when no
/// unrelated pair is left to subscribe (PS-47).
#[test]
fn a_tiny_run_passes_and_covers_every_must() {
    let options = Options {
        preset: conformance::workload::Preset::Tiny,
        hub_peers: 100,
        ..Options::default()
    };
    let report = conformance::run_suite(&Reference::for_small_worlds(), &options, &mut |_| {})
        .expect("scenarios");
    let failed: Vec<String> = report
        .runs
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| c.failed())
                .map(move |c| format!("{}: {c}", r.name))
        })
        .collect();
    assert!(failed.is_empty(), "failing checks: {failed:#?}");
    let uncovered: Vec<String> = report
        .coverage()
        .into_iter()
        .filter(|(r, s, _)| r.level == "MUST" && *s != Status::Pass)
        .map(|(r, s, _)| format!("{} {}", r.id, s.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "MUSTs not covered with preset tiny: {uncovered:?}"
    );
    assert!(report.passed());
}

#[test]
fn every_broken_variant_is_caught_by_a_check_naming_what_it_breaks() {
    let mut report = reference_report();
    conformance::run_mutants(&mut report, &options(), &mut |_| {}).expect("scenarios");
    let mutants = report.mutants.as_ref().expect("run");
    assert!(mutants.len() >= 8);
    assert!(mutants.iter().any(|m| m.name == "drop-all-batches"));
    for m in mutants {
        assert!(
            m.caught,
            "{} (breaks {:?}) was not caught; failing checks: {:#?}",
            m.name, m.breaks, m.failing
        );
    }
    assert!(
        report.json(false)["mutants"]
            .as_array()
            .is_some_and(|m| m.len() == mutants.len())
    );
}

#[test]
fn the_requirement_map_names_the_covering_scenarios() {
    let report = reference_report();
    let wrong: Vec<String> = report
        .coverage()
        .into_iter()
        .zip(requirements())
        .filter_map(|((req, _, scenarios), row)| {
            let want = conformance::report::citation(&scenarios);
            let have = row
                .checked_by
                .split("; ")
                .find(|c| c.starts_with("conformance:"))
                .unwrap_or("");
            (have != want).then(|| format!("{}: map says {have:?}, the suite {want:?}", req.id))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "run `cargo run --release -- conformance --write-xep` to update the requirement map of \
         xep/implementation-report.md: {wrong:#?}"
    );

    // Every requirement of the map is one of the report's rows, in the order of the numbers.
    let rows = requirements();
    let numbers: Vec<u32> = rows
        .iter()
        .map(|r| r.id["PS-".len()..].parse().expect("PS-n"))
        .collect();
    assert!(
        !numbers.is_empty() && numbers.windows(2).all(|w| w[0] < w[1]),
        "{numbers:?}"
    );
    let ids: Vec<String> = report
        .coverage()
        .into_iter()
        .map(|(r, _, _)| r.id)
        .collect();
    assert_eq!(ids, rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>());

    // `--write-xep` on a current map changes nothing; on a map with a stale "conformance:"
    // part it restores exactly that cell and keeps the tests cited beside it.
    let original = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/xep/implementation-report.md"
    ))
    .expect("the implementation report");
    let path = std::env::temp_dir().join(format!("requirement-map-{}.md", std::process::id()));
    std::fs::write(&path, &original).expect("write a copy");
    let write = |path: &std::path::Path| {
        conformance::report::write_requirement_map(&report, path).expect("rewrite the copy")
    };
    assert_eq!(write(&path), 0);
    let row = original
        .lines()
        .find(|l| l.starts_with("| PS-61 |"))
        .expect("the row of PS-61");
    assert!(row.contains("tests/edge_reconcile.rs ("), "{row}");
    let (tests, _) = row
        .split_once("; conformance:")
        .expect("a conformance part");
    let stale = original.replacen(row, &format!("{tests}; conformance: stale |"), 1);
    std::fs::write(&path, &stale).expect("write the stale copy");
    assert_eq!(write(&path), 1);
    assert_eq!(std::fs::read_to_string(&path).expect("read back"), original);
    std::fs::remove_file(&path).ok();
}

/// Report of a run of `names` only (a subset run).
fn subset(names: &[&str], require_all: bool) -> Report {
    let opts = Options {
        scenarios: Some(names.iter().map(|n| (*n).to_owned()).collect()),
        require_all,
        ..options()
    };
    conformance::run_suite(&Reference::default(), &opts, &mut |_| {}).expect("scenarios")
}

#[test]
fn a_subset_run_judges_only_what_it_ran_unless_asked_for_all() {
    let report = subset(&["live"], false);
    assert!(report.runs.iter().all(|r| r.passed()));
    let uncovered = report
        .coverage()
        .into_iter()
        .filter(|(r, s, _)| r.level == "MUST" && *s == Status::NotCovered)
        .count();
    assert!(uncovered > 0, "live alone cannot cover every MUST");
    assert!(!report.strict);
    assert!(report.passed(), "{}", report.text(false));
    let text = report.text(false);
    assert!(text.contains("conformance: PASS (subset"), "{text}");
    assert!(text.contains(&format!("the {uncovered} MUSTs")), "{text}");

    let strict = subset(&["live"], true);
    assert!(strict.strict);
    assert!(!strict.passed());
    assert!(strict.text(false).contains("conformance: FAIL"));
}

/// A failing check of a subset run still fails it: the subset's verdict is not lenient about
/// what it ran.
#[test]
fn a_subset_run_fails_on_a_failing_check() {
    use presence_sync::conformance::mutants::DropBatches;
    let opts = Options {
        scenarios: Some(vec!["live".to_owned()]),
        ..options()
    };
    let report = conformance::run_suite(&DropBatches(Reference::default()), &opts, &mut |_| {})
        .expect("run");
    assert!(!report.strict);
    assert!(!report.passed(), "{}", report.text(true));
}

#[test]
fn check_ids_are_stable_words_and_unique() {
    let report = reference_report();
    let mut seen = std::collections::BTreeSet::new();
    for r in &report.runs {
        for c in &r.checks {
            assert!(
                c.id.starts_with(&format!("{}/", r.name)),
                "{} does not start with its scenario",
                c.id
            );
            assert!(
                c.id.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '-' || ch == '/'),
                "{} has figures or other characters",
                c.id
            );
            assert!(seen.insert(c.id.clone()), "{} twice", c.id);
        }
    }
    // The same ids on another workload: they name checks, not figures.
    let other = conformance::run_suite(
        &Reference::default(),
        &Options {
            seed: 7,
            changes: 5,
            scenarios: Some(vec!["link-loss".into(), "drop-at-every-index".into()]),
            ..options()
        },
        &mut |_| {},
    )
    .expect("run");
    for r in &other.runs {
        for c in &r.checks {
            assert!(
                seen.contains(&c.id),
                "{} is not an id of the default run",
                c.id
            );
        }
    }
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conformance/report.schema.json"
    ))
    .expect("the schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("a valid JSON Schema")
}

#[test]
fn the_json_report_follows_its_schema() {
    let mut report = reference_report();
    conformance::run_mutants(&mut report, &options(), &mut |_| {}).expect("scenarios");
    let validator = schema();
    for full in [false, true] {
        let json = report.json(full);
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .take(5)
            .collect();
        assert!(errors.is_empty(), "full = {full}: {errors:#?}");
    }
    let json = report.json(false);
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["suite"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["xep"]["version"], conformance::report::xep_version());
    assert!(
        json["xep"]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("0."))
    );

    // The schema is not a rubber stamp: what it forbids is refused.
    let mut broken = json.clone();
    broken
        .as_object_mut()
        .expect("an object")
        .remove("format_version");
    assert!(!validator.is_valid(&broken));
    let mut broken = json.clone();
    broken["scenarios"][0]["checks"][0]["id"] = "after 42 stanzas".into();
    assert!(!validator.is_valid(&broken));
    let mut broken = json.clone();
    broken["timestamp"] = "yesterday".into();
    assert!(!validator.is_valid(&broken));

    // The hub's per-peer detail is summed up unless asked for in full.
    let hub = |v: &serde_json::Value| {
        v["scenarios"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "hub"))
            .expect("the hub scenario")["phase"]
            .clone()
    };
    let short = hub(&json);
    let long = hub(&report.json(true));
    let shown = short["directions"].as_array().expect("directions").len();
    assert_eq!(shown, conformance::report::DIRECTIONS_SHOWN);
    let all = long["directions"].as_array().expect("directions").len();
    assert!(all > 2 * 90, "{all} directions with 100 peers");
    assert_eq!(short["other_directions"]["directions"], all - shown);
    let sum = |v: &serde_json::Value| {
        v["directions"]
            .as_array()
            .expect("directions")
            .iter()
            .map(|d| d["stanzas"].as_u64().expect("a count"))
            .sum::<u64>()
    };
    assert_eq!(
        sum(&short)
            + short["other_directions"]["stanzas"]
                .as_u64()
                .expect("a count"),
        sum(&long)
    );
}

#[test]
fn a_trace_shows_both_sides_and_a_failing_scenario_names_its_trace() {
    use presence_sync::conformance::mutants::DropBatches;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opts = Options {
        scenarios: Some(vec!["live".to_owned()]),
        trace: Some(dir.path().to_owned()),
        ..options()
    };
    let report = conformance::run_suite(&Reference::default(), &opts, &mut |_| {}).expect("run");
    let path = report.runs[0].trace.clone().expect("a trace");
    assert_eq!(path, dir.path().join("live.log"));
    let text = std::fs::read_to_string(&path).expect("the trace");
    for want in [
        "a.example  sent      b.example  <",
        "a.example  received  b.example  <",
        "b.example  sent      a.example  <",
        "b.example  received  a.example  <",
        "a.example  link-up   b.example",
    ] {
        assert!(text.contains(want), "no {want:?} in the trace");
    }
    // Time order within a world.
    let times: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            l.split_whitespace()
                .next()
                .expect("a time")
                .parse()
                .expect("ms")
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // A passing run does not point at its trace; a failing one does.
    assert!(!report.text(false).contains("live.log"));
    let failing = conformance::run_suite(&DropBatches(Reference::default()), &opts, &mut |_| {})
        .expect("run");
    assert!(!failing.passed());
    assert!(
        failing
            .text(false)
            .contains(&format!("the stanzas of this run: {}", path.display())),
        "{}",
        failing.text(false)
    );
}
