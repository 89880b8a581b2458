//! Every example of the XEP round-trips through the crate (XEP §Examples are normative for
//! the wire module).
//!
//! Each `<example/>` of `xep/presence-sync.xml` is parsed (wrapped in a root declaring
//! `jabber:server`); every element of `urn:xmpp:presence-sync:0` in it is parsed with the
//! crate, serialised, re-parsed and compared (value equality, and XML equivalence modulo
//! attribute order, insignificant whitespace and the crate's canonical omissions), and every
//! stanza must parse with xmpp-parsers in `jabber:server`. A failure names the example's
//! caption. The same checks run on a local fixture so the harness itself is tested.

mod common;

use common::{Example, example_tree, extract_examples, our_elements, parse_stanza, round_trip};

/// Outcome of checking one document.
#[derive(Default)]
struct Report {
    examples: usize,
    elements: usize,
    failures: Vec<String>,
}

fn check_example(example: &Example, report: &mut Report) {
    let tree = match example_tree(example) {
        Ok(tree) => tree,
        Err(e) => {
            report.failures.push(e);
            return;
        }
    };
    for stanza in common::stanzas(&tree) {
        if let Err(e) = parse_stanza(stanza) {
            report.failures.push(format!("{}: {e}", example.label()));
        }
    }
    for (element, _parent) in our_elements(&tree) {
        report.elements += 1;
        if let Err(e) = round_trip(element) {
            report.failures.push(format!(
                "{}: <{}/> does not round-trip: {e}\n  element: {}",
                example.label(),
                element.name(),
                common::show(element)
            ));
        }
    }
}

fn check_document(text: &str) -> Report {
    let mut report = Report::default();
    for example in extract_examples(text) {
        report.examples += 1;
        check_example(&example, &mut report);
    }
    report
}

fn assert_document(path: &std::path::Path) -> Report {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let report = check_document(&text);
    assert!(report.examples > 0, "{} has no <example/>", path.display());
    assert!(
        report.elements > 0,
        "{}: no example contains an element of urn:xmpp:presence-sync:0",
        path.display()
    );
    assert!(
        report.failures.is_empty(),
        "{} of {} elements in {} examples of {} fail:\n{}",
        report.failures.len(),
        report.elements,
        report.examples,
        path.display(),
        report.failures.join("\n")
    );
    report
}

#[test]
fn xep_examples_round_trip() {
    let path = common::xep_path();
    let report = assert_document(&path);
    eprintln!(
        "{}: {} examples, {} elements",
        path.display(),
        report.examples,
        report.elements
    );
}

#[test]
fn fixture_examples_round_trip() {
    let report = assert_document(&common::fixture_path());
    assert_eq!((report.examples, report.elements), (8, 8));
}

#[test]
fn extraction() {
    let doc = "<xep><examples/><example caption='A &amp; B'><![CDATA[<iq/>]]></example>\
               <example>&lt;presence/&gt;</example>\
               <example caption=\"Third\"><![CDATA[ <message/> ]]></example></xep>";
    let examples = extract_examples(doc);
    let got: Vec<_> = examples
        .iter()
        .map(|e| (e.index, e.caption.as_str(), e.text.trim()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "A & B", "<iq/>"),
            (2, "", "<presence/>"),
            (3, "Third", "<message/>")
        ]
    );
    assert!(extract_examples("<xep><p>none</p></xep>").is_empty());
}

#[test]
fn stream_headers_and_comments_are_tolerated() {
    let example = Example {
        index: 1,
        caption: "stream".into(),
        text: "<?xml version='1.0'?><stream:stream xmlns='jabber:server' to='b.example'>\
               <!-- features --><stream:features><presence-sync xmlns='urn:xmpp:presence-sync:0'>\
               <hash algo='sha-256'/></presence-sync></stream:features>"
            .into(),
    };
    let mut report = Report::default();
    check_example(&example, &mut report);
    assert_eq!(
        (report.elements, report.failures.len()),
        (1, 0),
        "{:?}",
        report.failures
    );
}

#[test]
fn broken_examples_are_reported_with_their_caption() {
    let doc = "<xep><example caption='Bad hello'><![CDATA[<iq type='set' id='1'>\
               <hello xmlns='urn:xmpp:presence-sync:0' epoch='0123456789abcdef' hash='blake3' \
               window='0'/></iq>]]></example>\
               <example caption='Unknown'><![CDATA[<iq type='set' id='2'>\
               <frobnicate xmlns='urn:xmpp:presence-sync:0'/></iq>]]></example>\
               <example caption='No id'><![CDATA[<iq type='get'><x xmlns='urn:example'/></iq>]]></example>\
               <example caption='Placeholder'><![CDATA[<iq type='set' id='3'>\
               <lack xmlns='urn:xmpp:presence-sync:0' ids='...'/></iq>]]></example></xep>";
    let report = check_document(doc);
    assert_eq!(report.examples, 4);
    assert_eq!(report.failures.len(), 4, "{:#?}", report.failures);
    assert!(report.failures[0].starts_with("example 1 (\"Bad hello\"): <hello/> does not round-trip: hello: window 0 out of range 1..=64"), "{}", report.failures[0]);
    assert!(report.failures[1].contains("<frobnicate/> is not an element of the protocol"));
    assert!(report.failures[2].starts_with("example 3 (\"No id\"): <iq/> stanza does not parse"));
    assert!(
        report.failures[3].contains("ids: invalid base64"),
        "{}",
        report.failures[3]
    );
}

/// Every iq error of the examples carries the defined condition and type that the crate maps
/// its application condition to (XEP §Error Handling), and every condition has an example.
#[test]
fn xep_error_examples_match_the_crate_mapping() {
    use presence_sync::wire::{Condition, ServerNs, SyncElement, WireError};
    use xmpp_parsers::iq::Iq;

    let text = std::fs::read_to_string(common::xep_path()).expect("read the XEP");
    let mut seen = Vec::new();
    let mut stream_errors = 0;
    for example in extract_examples(&text) {
        let tree = example_tree(&example).expect("well-formed example");
        for stanza in tree.children() {
            if stanza.is("error", "http://etherx.jabber.org/streams") {
                let expected = WireError::InvalidFrom {
                    from: String::new(),
                    expected: String::new(),
                }
                .stream_error()
                .expect("a stream error");
                let condition = stanza.children().next().expect("a condition");
                assert_eq!(
                    condition.name(),
                    expected.condition.to_string(),
                    "{}",
                    example.label()
                );
                stream_errors += 1;
                continue;
            }
            if !(stanza.name() == "iq" && stanza.attr("type") == Some("error")) {
                continue;
            }
            let Ok(ServerNs(Iq::Error { error, .. })) = xso::transform::<ServerNs<Iq>, _>(stanza)
            else {
                panic!("{}: error iq does not parse", example.label());
            };
            let Some(other) = &error.other else { continue };
            let Ok(Some(SyncElement::Condition(condition))) = SyncElement::parse_element(other)
            else {
                panic!(
                    "{}: unknown application condition {}",
                    example.label(),
                    common::show(other)
                );
            };
            assert_eq!(
                (&error.type_, &error.defined_condition),
                (&condition.error_type(), &condition.defined_condition()),
                "{}: <{}/>",
                example.label(),
                condition.name()
            );
            seen.push(condition);
        }
    }
    for condition in Condition::ALL {
        assert!(
            seen.contains(&condition),
            "no example of <{}/>",
            condition.name()
        );
    }
    assert!(
        stream_errors > 0,
        "no example of the invalid-from stream error"
    );
}
