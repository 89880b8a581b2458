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
    let json = report.json();
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

#[test]
fn every_broken_variant_is_caught_by_a_check_naming_what_it_breaks() {
    let mut report = reference_report();
    conformance::run_mutants(&mut report, &options(), &mut |_| {}).expect("scenarios");
    let mutants = report.mutants.as_ref().expect("run");
    assert!(mutants.len() >= 7);
    for m in mutants {
        assert!(
            m.caught,
            "{} (breaks {:?}) was not caught; failing checks: {:#?}",
            m.name, m.breaks, m.failing
        );
    }
    assert!(
        report.json()["mutants"]
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
