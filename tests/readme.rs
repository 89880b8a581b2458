//! The figures in README.md that a command prints or that the code defines cannot go stale:
//! the sample report is the output of the default run (`tools/readme-sample.sh` writes it),
//! and the counts in the prose are those of the XEP, the suite and its audit.

use presence_sync::conformance::report::{requirements, xep_version};
use presence_sync::conformance::subject::Reference;
use presence_sync::conformance::{self, Options, audit, mutants, scenarios};

const README: &str = include_str!("../README.md");
const XEP: &str = include_str!("../xep/presence-sync.xml");

/// The text between `begin` and `end` in the README.
fn between<'a>(begin: &str, end: &str) -> &'a str {
    let i = README
        .find(begin)
        .unwrap_or_else(|| panic!("no {begin:?} in README.md"))
        + begin.len();
    let j = README[i..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} after {begin:?}"));
    &README[i..i + j]
}

/// The number just before `after` in the README (`"92 requirements"` → 92 for `" requirements"`),
/// at its first occurrence after `anchor`.
fn number_before(anchor: &str, after: &str) -> u64 {
    let start = README
        .find(anchor)
        .unwrap_or_else(|| panic!("no {anchor:?} in README.md"));
    let rest = &README[start..];
    let at = rest
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} after {anchor:?}"));
    let digits: String = rest[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {after:?}"))
}

#[test]
fn the_sample_report_is_what_the_default_run_prints() {
    let report = conformance::run_suite(&Reference::default(), &Options::default(), &mut |_| {})
        .expect("the default run");
    let sample = between(
        "<!-- sample: conformance (tools/readme-sample.sh) -->\n```text\n",
        "\n```\n<!-- /sample -->",
    );
    // What the command prints: the report and the newline of `println!`.
    let printed = report.text(false);
    assert!(
        sample == printed.trim_end_matches('\n'),
        "README.md's sample report is stale: run tools/readme-sample.sh\n--- README\n{sample}\n--- now\n{printed}"
    );
    // And the prose's count of edges is the default workload's.
    assert_eq!(
        number_before("preset `small`: 100 users per domain, ", " cross-domain"),
        report.workload.edges
    );
}

#[test]
fn the_counts_in_the_prose_are_current() {
    assert_eq!(
        number_before("complete ProtoXEP (", " requirements"),
        requirements().len() as u64
    );
    assert_eq!(
        number_before("complete ProtoXEP (", " examples"),
        XEP.matches("<example").count() as u64
    );
    assert!(README.contains(&format!("complete ProtoXEP ({}):", xep_version())));
    assert_eq!(
        number_before(
            "| conformance suite (`conformance/`) | done: ",
            " scenarios"
        ),
        scenarios::all().len() as u64
    );
    assert_eq!(
        number_before(
            "| conformance suite (`conformance/`) | done: ",
            " deliberately broken"
        ),
        mutants::all().len() as u64
    );
    assert_eq!(
        number_before("**Proof that it can fail.**", " deliberately broken"),
        mutants::all().len() as u64
    );
    assert_eq!(
        number_before("- **Audit.**", " checks,"),
        audit::CHECKS.len() as u64
    );
}
