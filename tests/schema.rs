//! The XML Schema of the XEP (`xep/presence-sync.xsd`) accepts what the XEP shows and what
//! the crate writes.
//!
//! Validation runs `xmllint --noout --schema` (Debian package libxml2-utils), many documents
//! per call. If xmllint is missing the tests fail, unless `PRESENCE_SYNC_SKIP_XMLLINT=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::strategies::sync_element;
use presence_sync::wire::SyncElement;
use proptest::collection::vec;
use proptest::prelude::*;

const SKIP_VAR: &str = "PRESENCE_SYNC_SKIP_XMLLINT";

/// `false` if the tests must be skipped (`PRESENCE_SYNC_SKIP_XMLLINT=1`); panics if xmllint is
/// missing otherwise. Probed once per test binary.
fn xmllint_available() -> bool {
    static AVAILABLE: OnceLock<Result<bool, String>> = OnceLock::new();
    let probe = AVAILABLE.get_or_init(|| {
        if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
            eprintln!("{SKIP_VAR}=1: schema validation skipped");
            return Ok(false);
        }
        match Command::new("xmllint").arg("--version").output() {
            Ok(out) if out.status.success() => Ok(true),
            other => Err(format!(
                "xmllint is needed to validate against the XEP schema but could not be run \
                 ({other:?}); install it (Debian: apt-get install -y libxml2-utils) or set \
                 {SKIP_VAR}=1"
            )),
        }
    });
    match probe {
        Ok(available) => *available,
        Err(message) => panic!("{message}"),
    }
}

fn scratch_dir() -> PathBuf {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "presence-sync-schema-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// Validates each `(label, document)` against `xsd` with one xmllint call; returns one
/// message per document that does not validate.
fn validate(xsd: &Path, documents: &[(String, String)]) -> Vec<String> {
    assert!(xsd.exists(), "schema {} not found", xsd.display());
    if documents.is_empty() {
        return Vec::new();
    }
    let dir = scratch_dir();
    let files: Vec<PathBuf> = documents
        .iter()
        .enumerate()
        .map(|(i, (_, xml))| {
            let path = dir.join(format!("{i:04}.xml"));
            std::fs::write(&path, xml).expect("write scratch document");
            path
        })
        .collect();
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(xsd)
        .args(&files)
        .output()
        .expect("run xmllint");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut failures = Vec::new();
    for ((label, xml), path) in documents.iter().zip(&files) {
        let name = path.display().to_string();
        if stderr.lines().any(|l| l == format!("{name} validates")) {
            continue;
        }
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&name)).collect();
        failures.push(format!(
            "{label}: {}\n  document: {xml}",
            errors.join("\n  ")
        ));
    }
    if failures.is_empty() {
        std::fs::remove_dir_all(&dir).ok();
    }
    failures
}

/// Every top-level element of our namespace in the examples of `xep`, as written in the
/// example and as re-serialised by the crate.
fn example_documents(xep: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(xep)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", xep.display()));
    let examples = common::extract_examples(&text);
    assert!(!examples.is_empty(), "{} has no <example/>", xep.display());
    let mut documents = Vec::new();
    for example in &examples {
        let tree = common::example_tree(example).unwrap_or_else(|e| panic!("{e}"));
        for (element, _) in common::our_elements(&tree) {
            let label = format!("{}: <{}/>", example.label(), element.name());
            documents.push((format!("{label} as written"), common::show(element)));
            if let Ok(written) = common::round_trip(element) {
                documents.push((
                    format!("{label} as the crate writes it"),
                    common::show(&written),
                ));
            }
        }
    }
    assert!(
        !documents.is_empty(),
        "no element of our namespace in the examples of {}",
        xep.display()
    );
    documents
}

#[test]
fn xep_examples_validate() {
    if !xmllint_available() {
        return;
    }
    let documents = example_documents(&common::xep_path());
    let failures = validate(&common::xsd_path(), &documents);
    assert!(
        failures.is_empty(),
        "{} of {} fail:\n{}",
        failures.len(),
        documents.len(),
        failures.join("\n")
    );
}

#[test]
fn fixture_examples_validate_against_fixture_schema() {
    if !xmllint_available() {
        return;
    }
    let documents = example_documents(&common::fixture_path());
    assert_eq!(documents.len(), 16);
    let xsd = common::fixture_path().with_file_name("presence-sync.xsd");
    let failures = validate(&xsd, &documents);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let bad = vec![(
        "out of range".to_owned(),
        "<shutdown xmlns='urn:xmpp:presence-sync:0' epoch='0123'/>".to_owned(),
    )];
    let failures = validate(&xsd, &bad);
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("Schemas validity error"),
        "{}",
        failures[0]
    );
}

fn serialise(element: &SyncElement) -> String {
    String::from_utf8(xso::to_vec(element).expect("serialise")).expect("UTF-8")
}

/// 24 cases of 4..12 elements by default (about 200 generated elements, one xmllint call per
/// case); `PROPTEST_CASES` overrides the number of cases.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Generated elements round-trip through the crate and their serialisation validates
    /// against the XEP schema.
    #[test]
    fn generated_elements_round_trip_and_validate(elements in vec(sync_element(), 4..12)) {
        let mut documents = Vec::new();
        for (i, element) in elements.iter().enumerate() {
            let xml = serialise(element);
            let parsed: SyncElement = xso::from_bytes(xml.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{xml}: {e}")))?;
            prop_assert_eq!(&parsed, element, "{}", xml);
            documents.push((format!("generated {i} <{}/>", element.name()), xml));
        }
        if xmllint_available() {
            let failures = validate(&common::xsd_path(), &documents);
            prop_assert!(failures.is_empty(), "{}", failures.join("\n"));
        }
    }
}
