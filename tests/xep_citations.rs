//! The requirement map of the XEP's implementation report (`xep/implementation-report.md`)
//! cites the tests that check each requirement ("file (test, test)"). This test keeps those
//! citations true: every cited file exists and defines every cited test function.

use std::path::Path;

#[test]
fn every_cited_test_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("xep/implementation-report.md"))
        .expect("the implementation report");
    let mut cited = 0;
    let mut rows = 0;
    for row in map.lines().filter(|l| l.starts_with("| PS-")) {
        let cells: Vec<&str> = row
            .trim_start_matches("| ")
            .trim_end_matches(" |")
            .split(" | ")
            .collect();
        let [id, _level, _section, cell] = cells[..] else {
            panic!("a row of the requirement map has not 4 cells: {row}");
        };
        rows += 1;
        for citation in cell
            .split("; ")
            .filter(|c| !c.starts_with("conformance:") && *c != "—")
        {
            let (file, names) = citation
                .split_once(" (")
                .unwrap_or_else(|| panic!("{id}: citation {citation:?} is not 'file (tests)'"));
            let source = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|_| panic!("{id}: cited file {file} does not exist"));
            for name in names.trim_end_matches(')').split(", ") {
                assert!(
                    source.contains(&format!("fn {name}(")),
                    "{id}: {file} has no test {name}"
                );
                cited += 1;
            }
        }
    }
    assert!(rows >= 87, "expected a row per requirement, found {rows}");
    assert!(cited >= 17, "expected the map to cite tests, found {cited}");
}
