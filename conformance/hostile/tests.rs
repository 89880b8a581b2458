//! The hostile-peer, discovery and oversized checks can fail: each verdict is fed a wrong
//! answer, broken implementations are caught, and the reference passes everything.

use std::collections::BTreeSet;

use minidom::Element;

use super::cases::ids;
use super::discovery::{disco_verdict, feature_verdict, hash_verdict, stream_feature};
use super::oversized::{expected_view, fits_verdict, shown_verdict};
use super::verdict::*;
use crate::conformance::check::{Check, Outcome};
use crate::conformance::subject::{Implementation, Reference, Subject, legacy};
use crate::digest::HashAlgo;
use crate::engine::session::Mutation;
use crate::model::truth::View;
use crate::model::{ResourcePresence, Show};
use crate::server::Flavour;
use crate::wire::{Condition, WireError, ns};

fn el(xml: &str) -> Element {
    xml.parse().unwrap()
}

fn failed(o: &Outcome) -> bool {
    matches!(o, Outcome::Fail(_))
}

fn error_iq(condition: Condition) -> Element {
    let e = WireError::OutOfOrder {
        element: "batch",
        reason: "x".into(),
    };
    let mut se = e.stanza_error().unwrap();
    se.other = Some(Element::from(condition));
    let iq = xmpp_parsers::iq::Iq::Error {
        from: None,
        to: None,
        id: "hostile-1".into(),
        error: se,
        payload: None,
    };
    xso::transform(&crate::wire::ServerNs(iq)).unwrap()
}

#[test]
fn error_answers_are_judged_by_condition_type_and_app_condition() {
    let ok = error_iq(Condition::OutOfOrder);
    assert_eq!(
        error_answer(Some(&ok), Condition::OutOfOrder),
        Outcome::Pass
    );
    // Wrong app condition (defined condition and type are out-of-order's).
    let o = error_answer(Some(&error_iq(Condition::BadFormat)), Condition::OutOfOrder);
    assert!(failed(&o), "{o:?}");
    // Right app condition, wrong defined condition and type.
    let o = error_answer(Some(&ok), Condition::ForeignJid);
    let Outcome::Fail(why) = o else { panic!() };
    assert!(
        why.contains("defined condition") && why.contains("type"),
        "{why}"
    );
    // Accepted, or not answered.
    let result = el("<iq xmlns='jabber:server' id='hostile-1' type='result'/>");
    assert!(failed(&error_answer(Some(&result), Condition::ForeignJid)));
    assert!(failed(&error_answer(None, Condition::ForeignJid)));
    assert!(result_answer(Some(&result)).is_ok());
    assert!(result_answer(Some(&ok)).is_err());
    assert!(result_answer(None).is_err());
}

#[test]
fn discards_stream_closes_and_state_are_judged() {
    let error = el("<presence xmlns='jabber:server' type='error'/>");
    let fine = el("<presence xmlns='jabber:server'/>");
    assert_eq!(discarded(&[&fine]), Outcome::Pass);
    assert!(failed(&discarded(&[&fine, &error])));
    let close = el("<error xmlns='http://etherx.jabber.org/streams'>\
        <invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>");
    let other = el("<error xmlns='http://etherx.jabber.org/streams'>\
        <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>");
    let answer = el("<iq xmlns='jabber:server' id='h' type='error'/>");
    assert_eq!(
        stream_closed(&[&close], "invalid-from", "h", false),
        Outcome::Pass
    );
    assert!(failed(&stream_closed(&[&close], "invalid-from", "h", true)));
    assert!(failed(&stream_closed(
        &[&other],
        "invalid-from",
        "h",
        false
    )));
    assert!(failed(&stream_closed(&[], "invalid-from", "h", false)));
    assert!(failed(&stream_closed(
        &[&answer, &close],
        "invalid-from",
        "h",
        false
    )));
    assert_eq!(intact(&[], &[]), Outcome::Pass);
    assert!(failed(&intact(&["x sees y".into()], &[])));
    assert!(failed(&intact(&[], &["the account of x changed".into()])));
}

#[test]
fn discovery_verdicts_fail_on_wrong_answers() {
    let algos: BTreeSet<String> = ["blake3", "sha-256"].map(String::from).into();
    let info = |features: &[&str]| {
        let f: String = features
            .iter()
            .map(|f| format!("<feature var='{f}'/>"))
            .collect();
        el(&format!(
            "<iq xmlns='jabber:server' id='h' type='result'><query \
             xmlns='http://jabber.org/protocol/disco#info'><identity category='server' \
             type='im'/>{f}</query></iq>"
        ))
    };
    let hf = |n: &str| format!("urn:xmpp:hash-function-text-names:{n}");
    let (b3, sha) = (hf("blake3"), hf("sha-256"));
    let good = info(&[ns::PRESENCE_SYNC, &b3, &sha]);
    assert_eq!(disco_verdict(Some(&good), &algos), Outcome::Pass);
    assert!(failed(&disco_verdict(Some(&info(&[&b3, &sha])), &algos)));
    assert!(failed(&disco_verdict(
        Some(&info(&[ns::PRESENCE_SYNC, &sha])),
        &algos
    )));
    assert!(failed(&disco_verdict(None, &algos)));
    let feature = stream_feature(&[el(
        "<presence-sync xmlns='urn:xmpp:presence-sync:0'><hash algo='blake3'/></presence-sync>",
    )]);
    assert!(failed(&feature_verdict(feature.as_ref())));
    assert!(failed(&feature_verdict(None)));
    let (s, b) = (HashAlgo::Sha256, HashAlgo::Blake3);
    assert_eq!(hash_verdict(&[s, s], s, &[]), Outcome::Pass);
    assert!(failed(&hash_verdict(&[s, b], s, &[])));
    assert!(failed(&hash_verdict(&[], s, &[])));
    assert!(failed(&hash_verdict(&[s], s, &["a misses b".into()])));
}

#[test]
fn oversized_verdicts_fail_on_a_full_state() {
    let huge = "x".repeat(100);
    let mut rp = ResourcePresence {
        show: Show::Xa,
        ..ResourcePresence::default()
    };
    rp.statuses.insert(String::new(), huge.clone());
    rp.statuses.insert("en".into(), "short".into());
    let jid = |s: &str| jid::BareJid::new(s).unwrap();
    let mut truth = View::new();
    truth
        .entry(jid("bob@b.example"))
        .or_default()
        .insert(jid("anne@a.example"), [("phone".to_owned(), rp)].into());
    let expected = expected_view(&truth, &huge);
    let reduced = &expected[&jid("bob@b.example")][&jid("anne@a.example")]["phone"];
    assert_eq!(reduced.statuses.len(), 1);
    assert_eq!(shown_verdict(&expected, &expected), Outcome::Pass);
    assert!(failed(&shown_verdict(&expected, &truth)));
    assert_eq!(fits_verdict(&[10, 4096], 4096), Outcome::Pass);
    assert!(failed(&fits_verdict(&[4097], 4096)));
}

#[test]
fn id_lists_are_canonical_and_distinct() {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD
        .decode(ids(3))
        .unwrap();
    assert_eq!(b.len(), 24);
    assert_ne!(b[..8], b[8..16]);
}

fn failures(checks: &[Check]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.failed() || matches!(c.outcome, Outcome::NotExercised(_)))
        .map(|c| c.to_string())
        .collect()
}

#[test]
fn the_reference_passes_every_check() {
    let r = Reference::default();
    let hostile = super::checks(&r, 1);
    assert!(hostile.len() > 40, "{}", hostile.len());
    assert_eq!(failures(&hostile), Vec::<String>::new());
    assert_eq!(
        failures(&super::discovery_checks(&r, 1)),
        Vec::<String>::new()
    );
    assert_eq!(
        failures(&super::oversized_checks(&r, 1)),
        Vec::<String>::new()
    );
}

#[test]
fn trusting_foreign_jids_is_caught() {
    let checks = super::checks(&Reference::mutated(Mutation::TrustForeignJid), 1);
    let caught: Vec<&Check> = checks
        .iter()
        .filter(|c| c.failed() && c.requirements.contains(&"PS-39"))
        .collect();
    assert!(
        caught.iter().any(|c| c.name.contains("third domain")),
        "{checks:#?}"
    );
}

/// A server without the extension, as an implementation: every discovery check fails.
struct Legacy;

impl Implementation for Legacy {
    fn name(&self) -> String {
        "legacy".into()
    }
    fn server(&self, domain: &str, _seed: u64) -> Box<dyn Subject> {
        legacy(domain, Flavour::Prosody)
    }
}

#[test]
fn a_server_without_the_extension_fails_discovery_and_exercises_no_hostile_case() {
    let checks = super::discovery_checks(&Legacy, 1);
    assert!(checks.iter().all(Check::failed), "{checks:#?}");
    let hostile = super::checks(&Legacy, 1);
    assert!(
        hostile
            .iter()
            .filter(|c| c.name.contains(": answer"))
            .all(|c| matches!(c.outcome, Outcome::NotExercised(_))),
        "{hostile:#?}"
    );
}

#[test]
fn states_are_reduced_to_the_effective_max_bytes_of_the_peer() {
    // The peer accepts 4096 bytes, the subject 65536: a 6000-byte status is reduced (PS-41)
    // before and during the session, and every stanza fits.
    use super::bench::{A, B, Bench, presence};
    let mut small = Reference::peer();
    small.setup.config.limits.max_bytes = 4096;
    let huge = "y".repeat(6000);
    let full = || presence(Show::Away, &[("", huge.as_str()), ("en", "short")]);
    let mut bench = Bench::new(&Reference::default(), &small, 3);
    bench.net.partition(A, B);
    bench.login("alice@a.example", "home", full());
    bench.net.repair(A, B);
    bench.settle();
    bench.login("anne@a.example", "phone", full());
    bench.settle();
    assert!(bench.stuck.is_none());
    let expected = expected_view(&bench.truth(), &huge);
    assert_eq!(shown_verdict(&expected, &bench.shown()), Outcome::Pass);
    let sizes: Vec<u64> = bench
        .net
        .host(A)
        .sent
        .iter()
        .map(|(_, _, s)| crate::sim::wire_len(s))
        .collect();
    assert_eq!(fits_verdict(&sizes, 4096), Outcome::Pass);
}
