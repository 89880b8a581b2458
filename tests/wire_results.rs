//! The wire bench's table (`cargo bench --bench wire`, a copy of one run in
//! `benches/results/wire.md`) is quoted in the README and in the implementation report between
//! `<!-- BEGIN wire -->` and `<!-- END wire -->`: the quotes must be the recorded run, verbatim,
//! so that no number drifts from the run that produced it.

use std::fs;
use std::path::Path;

fn quoted(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let begin = text
        .find("<!-- BEGIN wire -->")
        .unwrap_or_else(|| panic!("{}: no BEGIN wire marker", path.display()));
    let end = text
        .find("<!-- END wire -->")
        .unwrap_or_else(|| panic!("{}: no END wire marker", path.display()));
    let block = &text[begin + "<!-- BEGIN wire -->".len()..end];
    block.trim().to_owned()
}

#[test]
fn the_quoted_wire_tables_are_the_recorded_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let recorded =
        fs::read_to_string(root.join("benches/results/wire.md")).expect("benches/results/wire.md");
    let recorded = recorded.trim();
    assert!(recorded.lines().count() > 2, "the recorded table has rows");
    for doc in ["README.md", "xep/implementation-report.md"] {
        assert_eq!(
            quoted(&root.join(doc)),
            recorded,
            "{doc} quotes another table than benches/results/wire.md"
        );
    }
}
