//! The report as JUnit XML (`conformance --junit FILE`), so that a server project's CI shows
//! each scenario as a test case: a failed check is a `<failure>`, a scenario that could not
//! run is `<skipped>` with the reason. The document is built with minidom, never by hand.

use crate::serve::xml::el;

use crate::conformance::check::Outcome;
use crate::conformance::report::Report;

/// The JUnit XML of `report`, one `<testsuite>` with one `<testcase>` per scenario.
pub fn junit(report: &Report) -> String {
    let failures = report.runs.iter().filter(|r| !r.passed()).count();
    let skipped = report
        .runs
        .iter()
        .filter(|r| super::not_run(r).is_some())
        .count();
    let time: f64 = report.runs.iter().map(|r| r.seconds).sum();
    let mut suite = el("testsuite", "")
        .attr("name", "presence-sync conformance")
        .attr("tests", report.runs.len().to_string())
        .attr("failures", failures.to_string())
        .attr("skipped", skipped.to_string())
        .attr("errors", "0")
        .attr("time", format!("{time:.3}"))
        .attr("timestamp", report.timestamp.clone())
        .build();
    let mut props = el("properties", "").build();
    for (name, value) in [
        ("implementation", report.implementation.clone()),
        (
            "xep-version",
            crate::conformance::report::xep_version().to_owned(),
        ),
        (
            "verdict",
            if report.passed() { "pass" } else { "fail" }.to_owned(),
        ),
    ] {
        props.append_child(
            el("property", "")
                .attr("name", name)
                .attr("value", value)
                .build(),
        );
    }
    suite.append_child(props);
    for run in &report.runs {
        let mut case = el("testcase", "")
            .attr("classname", "presence-sync")
            .attr("name", run.name)
            .attr("time", format!("{:.3}", run.seconds))
            .build();
        if let Some(why) = super::not_run(run) {
            case.append_child(el("skipped", "").attr("message", why).build());
        }
        for c in run.checks.iter().filter(|c| c.failed()) {
            let Outcome::Fail(detail) = &c.outcome else {
                continue;
            };
            let message = format!("{} [{}]", c.id, c.requirements.join(", "));
            case.append_child(
                el("failure", "")
                    .attr("message", message)
                    .attr("type", "check")
                    .append(format!("{}\n{detail}", c.name))
                    .build(),
            );
        }
        let passed: Vec<String> = run
            .checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Pass))
            .map(|c| format!("pass {} [{}]", c.id, c.requirements.join(", ")))
            .collect();
        if !passed.is_empty() {
            case.append_child(el("system-out", "").append(passed.join("\n")).build());
        }
        suite.append_child(case);
    }
    let mut out = Vec::new();
    // Writing to a Vec cannot fail on I/O; the names above are valid XML names.
    let _ = suite.write_to_decl(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
