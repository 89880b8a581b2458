//! The XEP's requirements index cites the tests that check each requirement
//! ("file (test, test)"). This test keeps those citations true: every cited file exists and
//! defines every cited test function.

use std::path::Path;

#[test]
fn every_cited_test_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let xep = std::fs::read_to_string(root.join("xep/presence-sync.xml")).expect("the XEP");
    let mut cited = 0;
    for row in xep.lines().filter(|l| l.starts_with("    <tr><td>PS-")) {
        let id = &row[12..row[12..].find('<').unwrap() + 12];
        let cell = row
            .rsplit("<td>")
            .next()
            .unwrap()
            .trim_end_matches("</td></tr>");
        for citation in cell.split("; ").filter(|c| !c.starts_with("conformance:")) {
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
    assert!(
        cited >= 17,
        "expected the index to cite tests, found {cited}"
    );
}
