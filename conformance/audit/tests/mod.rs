//! Every check of the audit can fail: hand-built records with one violating stanza each, and
//! end-to-end runs of reference servers (with a legacy one) through link losses, crashes,
//! repairs of mismatches and clean shutdowns, which pass every check they exercise.

use super::*;
use crate::conformance::record::Recorder;
use crate::model::{NamedState, ResourcePresence, Subscription};
use crate::server::{Flavour, Server, SyncSetup};
use crate::sim::{Host, LinkConfig, Net};

const H: &str = "a.example";
const P: &str = "b.example";
const L: &str = "c.example";
const NS: &str = PRESENCE_SYNC;
const FP: &str = "AAAAAAAAAAAAAAAAAAAAAA==";
const E1: &str = "0123456789abcdef";
const E2: &str = "fedcba9876543210";
const E3: &str = "00000000000000e3";
const JULIET: &str = "juliet@a.example";
const JULIET_R: &str = "juliet@a.example/r";
const ROMEO: &str = "romeo@b.example";

fn el(xml: &str) -> Element {
    xml.parse().unwrap_or_else(|e| panic!("{xml}: {e}"))
}

fn at(ms: u64, kind: RecordKind) -> Record {
    let time = SimTime::from_millis(ms);
    Record { time, kind }
}

fn out_to(ms: u64, peer: &str, xml: &str) -> Record {
    let (peer, stanza) = (peer.to_owned(), el(xml));
    at(ms, RecordKind::Out { peer, stanza })
}

fn out(ms: u64, xml: &str) -> Record {
    out_to(ms, P, xml)
}

fn inn(ms: u64, xml: &str) -> Record {
    let (peer, stanza) = (P.to_owned(), el(xml));
    at(ms, RecordKind::In { peer, stanza })
}

fn down(ms: u64) -> Record {
    at(ms, RecordKind::LinkDown { peer: P.to_owned() })
}

fn feature(algos: &[&str]) -> Element {
    let hashes: String = algos
        .iter()
        .map(|a| format!("<hash algo='{a}'/>"))
        .collect();
    el(&format!(
        "<presence-sync xmlns='{NS}'>{hashes}</presence-sync>"
    ))
}

fn up(ms: u64, peer: &str, sync: bool) -> Record {
    let both = || vec![feature(&["blake3", "sha-256"])];
    let (peer, own_features) = (peer.to_owned(), both());
    let features = if sync { both() } else { vec![] };
    at(
        ms,
        RecordKind::LinkUp {
            peer,
            features,
            own_features,
        },
    )
}

/// An iq of the host to P (`outbound`) or of P to the host.
fn iq(outbound: bool, ty: &str, id: &str, payload: &str) -> String {
    let (from, to) = if outbound { (H, P) } else { (P, H) };
    format!(
        "<iq xmlns='jabber:server' type='{ty}' id='{id}' from='{from}' to='{to}'>{payload}</iq>"
    )
}

fn hello(epoch: &str, peer_epoch: Option<&str>, cached: u64) -> String {
    let pe = peer_epoch
        .map(|e| format!(" peer-epoch='{e}'"))
        .unwrap_or_default();
    format!(
        "<hello xmlns='{NS}' epoch='{epoch}'{pe} hash='blake3'>\
         <root set='edges' count='0' fp='{FP}'/><root set='published' count='0' fp='{FP}'/>\
         <root set='cached' count='{cached}' fp='{FP}'/></hello>"
    )
}

fn reconcile(set: &str, children: &str) -> String {
    format!("<reconcile xmlns='{NS}' set='{set}'>{children}</reconcile>")
}

fn item(jid: &str, inner: &str) -> String {
    format!("<item xmlns='{NS}' jid='{jid}'>{inner}</item>")
}

fn avail(from: &str, extra: &str) -> String {
    format!("<presence xmlns='jabber:server' from='{from}'>{extra}</presence>")
}

fn batch(items: &str) -> String {
    format!("<batch xmlns='{NS}' epoch='{E1}'>{items}</batch>")
}

/// A batch of the peer (its epoch, one of its users).
fn peer_batch() -> String {
    batch(&item(ROMEO, "")).replace(E1, E2)
}

fn presence(ty: Option<&str>, from: &str, to: &str, payload: &str) -> String {
    let ty = ty.map(|t| format!(" type='{t}'")).unwrap_or_default();
    format!("<presence xmlns='jabber:server'{ty} from='{from}' to='{to}'>{payload}</presence>")
}

fn marker(name: &str) -> String {
    format!("<{name} xmlns='{NS}'/>")
}

fn shutdown(epoch: &str) -> String {
    let s = format!("<shutdown xmlns='{NS}' epoch='{epoch}'/>");
    format!("<message xmlns='jabber:server' from='{H}' to='{P}'>{s}</message>")
}

/// Link ups (P a sync peer, L legacy), and a session with P established by the host's hello.
fn prefix() -> Vec<Record> {
    vec![
        up(0, P, true),
        up(0, L, false),
        out(1, &iq(true, "set", "h1", &hello(E1, None, 0))),
        inn(2, &iq(false, "result", "h1", &hello(E2, Some(E1), 0))),
    ]
}

/// One stanza of every kind the checks look at, all correct.
fn middle() -> Vec<Record> {
    let juliet = item(JULIET, &avail(JULIET_R, "<show>away</show>"));
    let query = reconcile("presence", "<ids prefix='' ids=''/>");
    let nurse = batch(&item("nurse@a.example", ""));
    let repair = presence(Some("subscribe"), JULIET, ROMEO, &marker("repair"));
    let probe = presence(Some("probe"), ROMEO, JULIET, "");
    let lack = reconcile("presence", "<lack ids='AAAAAAAAAAE='/>");
    vec![
        inn(3, &iq(false, "set", "h2", &hello(E2, Some(E1), 0))),
        out(3, &iq(true, "result", "h2", &hello(E1, Some(E2), 0))),
        inn(4, &iq(false, "set", "r1", &query)),
        out(
            4,
            &iq(true, "result", "r1", &reconcile("presence", &juliet)),
        ),
        out(5, &iq(true, "set", "b1", &nurse)),
        inn(6, &iq(false, "result", "b1", "")),
        inn(6, &iq(false, "set", "b2", &peer_batch())),
        out(6, &iq(true, "result", "b2", "")),
        out(6, &iq(true, "set", "q1", &query)),
        inn(7, &iq(false, "result", "q1", &reconcile("presence", ""))),
        // An id lacked, not answered, and asked again in a query of its own (PS-84).
        out(7, &iq(true, "set", "q2", &lack)),
        inn(7, &iq(false, "result", "q2", &reconcile("presence", ""))),
        out(7, &iq(true, "set", "q3", &lack)),
        inn(7, &iq(false, "result", "q3", &reconcile("presence", ""))),
        out(7, &presence(None, JULIET_R, P, &marker("fanout"))),
        out(8, &repair),
        out_to(9, L, &presence(None, JULIET_R, "escalus@c.example", "")),
        inn(10, &probe),
        out(10, &presence(None, JULIET_R, ROMEO, "")),
    ]
}

/// A clean stop announced to P, a restart with a new epoch and a new session.
fn suffix() -> Vec<Record> {
    vec![
        at(20, RecordKind::Shutdown),
        out(20, &shutdown(E1)),
        at(30, RecordKind::Restart),
        up(30, P, true),
        out(31, &iq(true, "set", "h3", &hello(E3, Some(E2), 0))),
        inn(32, &iq(false, "result", "h3", &hello(E2, Some(E3), 0))),
    ]
}

fn with(extra: Vec<Record>) -> Vec<Record> {
    [prefix(), extra].concat()
}

fn run(records: &[Record]) -> Vec<Finding> {
    audit(H, records, &AuditContext::default())
}

fn outcome(records: &[Record], id: CheckId) -> Outcome {
    outcome_with(records, &AuditContext::default(), id)
}

fn outcome_with(records: &[Record], ctx: &AuditContext, id: CheckId) -> Outcome {
    audit(H, records, ctx).swap_remove(id as usize).outcome
}

fn show(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("{f}\n")).collect()
}

/// The audit of `records` with `ctx` fails `id` with a violation of `req`.
fn fails_with(records: &[Record], ctx: &AuditContext, id: CheckId, req: &str) {
    let findings = audit(H, records, ctx);
    let f = &findings[id as usize];
    let named = f.violations().iter().any(|v| v.requirement == req);
    assert!(
        named,
        "{} should fail with {req}:\n{}",
        id.check().name,
        show(&findings)
    );
}

/// The prefix then `extra` fail `id` with a violation of `req`.
fn fails(extra: Vec<Record>, id: CheckId, req: &str) {
    fails_with(&with(extra), &AuditContext::default(), id, req);
}

#[test]
fn the_table_is_indexed_by_check_id() {
    for (i, c) in CHECKS.iter().enumerate() {
        assert_eq!(c.id as usize, i, "{}", c.name);
        assert!(!c.requirements.is_empty());
    }
}

#[test]
fn correct_records_pass_every_check() {
    let findings = run(&[prefix(), middle(), suffix()].concat());
    assert!(
        findings.iter().all(|f| f.outcome == Outcome::Pass),
        "{}",
        show(&findings)
    );
}

#[test]
fn nothing_examined_is_not_exercised() {
    let findings = run(&[]);
    let none = |f: &Finding| f.outcome == Outcome::NotExercised && f.examined == 0;
    assert!(findings.iter().all(none));
    assert_eq!(findings.len(), CHECKS.len());
}

#[test]
fn stream_feature_without_sha_256() {
    let mut bad = up(0, P, true);
    if let RecordKind::LinkUp { own_features, .. } = &mut bad.kind {
        *own_features = vec![feature(&["blake3"])];
    }
    fails_with(
        &[bad],
        &AuditContext::default(),
        CheckId::StreamFeature,
        "PS-3",
    );
}

#[test]
fn strict_syntax() {
    let attr = presence(None, JULIET_R, P, &format!("<fanout xmlns='{NS}' x='1'/>"));
    fails(vec![out(5, &attr)], CheckId::StrictSyntax, "PS-72");
    let frob = format!(
        "<message xmlns='jabber:server'>{}</message>",
        marker("frob")
    );
    fails(vec![out(5, &frob)], CheckId::StrictSyntax, "PS-72");
    let upper = iq(true, "set", "h9", &hello("0123456789ABCDEF", Some(E2), 0));
    fails(vec![out(5, &upper)], CheckId::StrictSyntax, "PS-73");
    let gone_in_query = reconcile("presence", "<gone ids='AAAAAAAAAAA='/>");
    let q = iq(true, "set", "r9", &gone_in_query);
    fails(vec![out(5, &q)], CheckId::StrictSyntax, "PS-21");
    let q = iq(true, "set", "r9", &reconcile("edges", "<lack ids=''/>"));
    fails(vec![out(5, &q)], CheckId::StrictSyntax, "PS-21");
}

#[test]
fn limits() {
    let limits = Limits {
        max_items: 2,
        max_bytes: 4096,
        ..Limits::DEFAULT
    };
    let ctx = AuditContext {
        limits,
        ..AuditContext::default()
    };
    let check = |extra: Record, req| fails_with(&with(vec![extra]), &ctx, CheckId::Limits, req);
    let ids: String = (0..3)
        .map(|i| format!("<ids prefix='{i}' ids=''/>"))
        .collect();
    check(
        out(5, &iq(true, "set", "r9", &reconcile("edges", &ids))),
        "PS-30",
    );
    // Three 8-byte ids: 24 bytes, 32 characters of base64.
    let lack = format!("<lack ids='{}'/>", "A".repeat(32));
    check(
        out(5, &iq(true, "set", "r9", &reconcile("edges", &lack))),
        "PS-82",
    );
    let items: String = ["x", "y", "z"]
        .iter()
        .map(|u| item(&format!("{u}@{H}"), ""))
        .collect();
    check(out(5, &iq(true, "set", "b9", &batch(&items))), "PS-42");
    let status = format!("<status>{}</status>{}", "x".repeat(5000), marker("fanout"));
    check(out(5, &presence(None, JULIET_R, P, &status)), "PS-41");
    // The peer's hello lowers the effective limit below the context's.
    let small_hello = hello(E2, Some(E1), 0).replace("hash=", "max-items='1' hash=");
    let two = reconcile("edges", "<ids prefix='0' ids=''/><ids prefix='1' ids=''/>");
    let extra = vec![
        inn(3, &iq(false, "set", "h2", &small_hello)),
        out(3, &iq(true, "result", "h2", &hello(E1, Some(E2), 0))),
        out(5, &iq(true, "set", "r9", &two)),
    ];
    fails(extra, CheckId::Limits, "PS-30");
}

#[test]
fn batch_with_a_publisher_twice() {
    let two = [item("x@a.example", ""), item("x@a.example", "")].concat();
    let b = iq(true, "set", "b9", &batch(&two));
    fails(vec![out(5, &b)], CheckId::BatchPublishers, "PS-42");
}

#[test]
fn items_and_edges_of_the_wrong_domains() {
    let foreign = iq(true, "set", "b9", &batch(&item(ROMEO, "")));
    fails(vec![out(5, &foreign)], CheckId::ItemEdgeDomains, "PS-39");
    let except = format!("{}<except jid='nurse@{H}'/>", avail("x@a.example/r", ""));
    let b = iq(true, "set", "b9", &batch(&item("x@a.example", &except)));
    fails(vec![out(5, &b)], CheckId::ItemEdgeDomains, "PS-39");
    let alien = item("x@a.example", &avail("y@a.example/r", ""));
    let b = iq(true, "set", "b9", &batch(&alien));
    fails(vec![out(5, &b)], CheckId::ItemEdgeDomains, "PS-39");
    let edge = format!("<edge publisher='{JULIET}' subscriber='escalus@{L}'/>");
    let q = iq(true, "set", "r9", &reconcile("edges", &edge));
    fails(vec![out(5, &q)], CheckId::ItemEdgeDomains, "PS-74");
}

#[test]
fn item_with_a_delay_stamp_or_a_marker() {
    let delay = "<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/>";
    for extra in [delay.to_owned(), marker("fanout")] {
        let stamped = item("x@a.example", &avail("x@a.example/r", &extra));
        let b = iq(true, "set", "b9", &batch(&stamped));
        fails(vec![out(5, &b)], CheckId::ItemContent, "PS-8");
    }
}

#[test]
fn domain_presence() {
    let live = presence(None, JULIET_R, P, &marker("fanout"));
    let probe = presence(Some("probe"), JULIET_R, P, &marker("fanout"));
    fails(vec![out(5, &probe)], CheckId::DomainPresence, "PS-46");
    let to_user = presence(None, JULIET_R, ROMEO, &marker("fanout"));
    fails(vec![out(5, &to_user)], CheckId::DomainPresence, "PS-46");
    // Before the hello exchange completes, and after the link went down.
    let early = vec![up(0, P, true), out(1, &live)];
    fails_with(
        &early,
        &AuditContext::default(),
        CheckId::DomainPresence,
        "PS-46",
    );
    fails(
        vec![down(5), out(6, &live)],
        CheckId::DomainPresence,
        "PS-46",
    );
    // An error answering a request of the session ends it too.
    let query = reconcile("edges", "<ids prefix='' ids=''/>");
    let extra = vec![
        inn(3, &iq(false, "set", "r1", &query)),
        out(3, &iq(true, "error", "r1", "<error type='modify'/>")),
        out(4, &live),
    ];
    fails(extra, CheckId::DomainPresence, "PS-46");
}

#[test]
fn hello_with_a_cache_but_no_peer_epoch() {
    let h = iq(true, "set", "h9", &hello(E1, None, 5));
    let records = [up(0, P, true), out(1, &h)];
    fails_with(
        &records,
        &AuditContext::default(),
        CheckId::HelloCachedRoot,
        "PS-18",
    );
}

/// On the wire, the host's stanzas recorded within the in-flight allowance after the answer
/// that established the session may have crossed it; later ones may not.
#[test]
fn on_the_wire_presence_that_crossed_the_session_answer_is_no_finding() {
    let probe = presence(Some("probe"), JULIET, ROMEO, "");
    let wire = AuditContext::wire();
    let in_flight_ms = WIRE_IN_FLIGHT_US / 1000;
    // The session's answer is received at 2 ms (`prefix`).
    let crossing = with(vec![out(2 + in_flight_ms - 1, &probe)]);
    assert_eq!(
        outcome_with(&crossing, &wire, CheckId::NoPerUserPresence),
        Outcome::NotExercised
    );
    let after = with(vec![out(2 + in_flight_ms, &probe)]);
    fails_with(&after, &wire, CheckId::NoPerUserPresence, "PS-66");
    // In simulation the records are the host's own: no allowance.
    fails(vec![out(3, &probe)], CheckId::NoPerUserPresence, "PS-66");
    // A session the host established by its own answer is known to it at once.
    let theirs = vec![
        up(0, P, true),
        inn(1, &iq(false, "set", "h7", &hello(E2, None, 0))),
        out(2, &iq(true, "result", "h7", &hello(E1, Some(E2), 0))),
        out(3, &probe),
    ];
    fails_with(&theirs, &wire, CheckId::NoPerUserPresence, "PS-66");
}

/// A host whose request went unanswered for the request timeout may have ended the session
/// (PS-51) and fallen back to RFC 6121 (PS-58): its probes are no finding until a new hello
/// exchange starts a new session.
#[test]
fn after_a_lapsed_request_probes_wait_for_the_next_session() {
    let probe = presence(Some("probe"), JULIET, ROMEO, "");
    let query = out(
        3,
        &iq(
            true,
            "set",
            "r1",
            &reconcile("cached", "<split prefix=''/>"),
        ),
    );
    let lapsed = with(vec![query.clone(), out(60_003, &probe)]);
    assert_eq!(
        outcome(&lapsed, CheckId::NoPerUserPresence),
        Outcome::NotExercised
    );
    let early = with(vec![query.clone(), out(60_002, &probe)]);
    fails_with(
        &early,
        &AuditContext::default(),
        CheckId::NoPerUserPresence,
        "PS-66",
    );
    let again = with(vec![
        query,
        out(70_000, &iq(true, "set", "h2", &hello(E1, Some(E2), 0))),
        inn(70_001, &iq(false, "result", "h2", &hello(E2, Some(E1), 0))),
        out(70_002, &probe),
    ]);
    fails_with(
        &again,
        &AuditContext::default(),
        CheckId::NoPerUserPresence,
        "PS-66",
    );
}

/// PS-32, PS-84: an id asked for again goes in a query of its own; an edge id is asked for at
/// most twice within one descent (a hello ends it).
#[test]
fn re_asks_go_alone_and_at_most_once() {
    const ID1: &str = "AAAAAAAAAAE=";
    let ask = |ms, set: &str, id: &str, with_node: bool| {
        let node = if with_node {
            "<ids prefix='0' ids=''/>"
        } else {
            ""
        };
        let query = reconcile(set, &format!("{node}<lack ids='{ID1}'/>"));
        out(ms, &iq(true, "set", id, &query))
    };
    let answer = |ms, id: &str| inn(ms, &iq(false, "result", id, ""));
    let first = [ask(3, "edges", "r1", true), answer(4, "r1")];
    assert_eq!(
        outcome(&with(first.to_vec()), CheckId::ReAsks),
        Outcome::NotExercised
    );
    let alone = [first.to_vec(), vec![ask(5, "edges", "r2", false)]].concat();
    assert_eq!(
        outcome(&with(alone.clone()), CheckId::ReAsks),
        Outcome::Pass
    );
    let mixed = [first.to_vec(), vec![ask(5, "edges", "r2", true)]].concat();
    fails(mixed, CheckId::ReAsks, "PS-84");
    let third = [
        alone.clone(),
        vec![answer(6, "r2"), ask(7, "edges", "r3", false)],
    ]
    .concat();
    fails(third, CheckId::ReAsks, "PS-32");
    // Only the edge set is held to one re-ask.
    let presence = |ms, id| ask(ms, "presence", id, false);
    let thrice = vec![presence(3, "p1"), presence(5, "p2"), presence(7, "p3")];
    assert_eq!(outcome(&with(thrice), CheckId::ReAsks), Outcome::Pass);
    // A hello ends the descent: the next ask is a first one.
    let hello_between = [
        alone,
        vec![
            answer(6, "r2"),
            out(7, &iq(true, "set", "h2", &hello(E1, Some(E2), 0))),
            inn(8, &iq(false, "result", "h2", &hello(E2, Some(E1), 0))),
            ask(9, "edges", "r3", true),
        ],
    ]
    .concat();
    assert_eq!(
        outcome(&with(hello_between), CheckId::ReAsks),
        Outcome::Pass
    );
}

/// On the wire, a request received within the in-flight allowance before the records end may
/// not have reached the host: it is not counted as unanswered.
#[test]
fn on_the_wire_a_request_at_the_end_of_the_records_is_in_flight() {
    let wire = AuditContext::wire();
    let in_flight_ms = WIRE_IN_FLIGHT_US / 1000;
    let request = || inn(3, &iq(false, "set", "h9", &hello(E2, Some(E1), 0)));
    let chat = |ms| out(ms, "<message xmlns='jabber:server' type='chat'/>");
    let just_before = with(vec![request(), chat(3 + in_flight_ms - 1)]);
    assert_eq!(
        outcome_with(&just_before, &wire, CheckId::HelloAnswered),
        Outcome::Pass
    );
    let later = with(vec![request(), chat(3 + in_flight_ms)]);
    fails_with(&later, &wire, CheckId::HelloAnswered, "PS-17");
}

#[test]
fn hellos_must_be_answered() {
    let request = || inn(3, &iq(false, "set", "h9", &hello(E2, Some(E1), 0)));
    fails(vec![request()], CheckId::HelloAnswered, "PS-17");
    let empty = out(3, &iq(true, "result", "h9", ""));
    fails(vec![request(), empty], CheckId::HelloAnswered, "PS-17");
    let sha = hello(E1, Some(E2), 0).replace("blake3", "sha-256");
    let other_algo = out(3, &iq(true, "result", "h9", &sha));
    fails(vec![request(), other_algo], CheckId::HelloAnswered, "PS-17");
    // A link loss before the answer is no failure.
    assert_eq!(
        outcome(&with(vec![request(), down(4)]), CheckId::HelloAnswered),
        Outcome::Pass
    );
}

#[test]
fn batches_are_answered_with_an_empty_result() {
    let request = || inn(3, &iq(false, "set", "b9", &peer_batch()));
    // Dropped: never answered.
    fails(vec![request()], CheckId::BatchAnswered, "PS-43");
    // Answered with something in the result.
    let full = out(3, &iq(true, "result", "b9", &peer_batch()));
    fails(vec![request(), full], CheckId::BatchAnswered, "PS-43");
    // An error is an answer (a stale epoch, PS-43), and so is an empty result.
    let error = out(
        3,
        &iq(
            true,
            "error",
            "b9",
            &format!("<error type='cancel'><stale-epoch xmlns='{NS}'/></error>"),
        ),
    );
    assert_eq!(
        outcome(&with(vec![request(), error]), CheckId::BatchAnswered),
        Outcome::Pass
    );
    let empty = out(3, &iq(true, "result", "b9", ""));
    assert_eq!(
        outcome(&with(vec![request(), empty]), CheckId::BatchAnswered),
        Outcome::Pass
    );
    // A link loss right after the batch arrived is no failure; one long after it, with the
    // batch still unanswered, is (the host dropped it).
    assert_eq!(
        outcome(&with(vec![request(), down(4)]), CheckId::BatchAnswered),
        Outcome::Pass
    );
    fails(
        vec![request(), down(2_000)],
        CheckId::BatchAnswered,
        "PS-43",
    );
    fails(
        vec![request(), at(5_000, RecordKind::Crash)],
        CheckId::BatchAnswered,
        "PS-43",
    );
}

#[test]
fn reconcile_queries_are_answered_once() {
    let request = || {
        inn(
            3,
            &iq(
                false,
                "set",
                "r9",
                &reconcile("edges", "<ids prefix='' ids=''/>"),
            ),
        )
    };
    let ok = || out(3, &iq(true, "result", "r9", &reconcile("edges", "")));
    fails(vec![request()], CheckId::ReconcileAnswered, "PS-23");
    fails(
        vec![request(), ok(), ok()],
        CheckId::ReconcileAnswered,
        "PS-23",
    );
    let wrong_set = out(3, &iq(true, "result", "r9", &reconcile("presence", "")));
    fails(
        vec![request(), wrong_set],
        CheckId::ReconcileAnswered,
        "PS-23",
    );
    let records = with(vec![request(), ok()]);
    assert_eq!(outcome(&records, CheckId::ReconcileAnswered), Outcome::Pass);
}

#[test]
fn query_nodes() {
    // max-bytes 4096: at most 8 splits or shallow ids in a query (PS-31), whatever max-items
    // allows.
    let ctx = AuditContext {
        limits: Limits {
            max_bytes: 4096,
            ..Limits::DEFAULT
        },
        ..AuditContext::default()
    };
    let query = |n: usize, ty: &str| {
        let ids: String = (0..n)
            .map(|i| format!("<ids prefix='{i:x}' ids=''/>"))
            .collect();
        out(5, &iq(true, ty, "r9", &reconcile("edges", &ids)))
    };
    fails_with(
        &with(vec![query(9, "set")]),
        &ctx,
        CheckId::QueryNodes,
        "PS-31",
    );
    let records = with(vec![query(8, "set")]);
    let findings = audit(H, &records, &ctx);
    assert_eq!(
        findings[CheckId::QueryNodes as usize].outcome,
        Outcome::Pass
    );
    // An <ids/> of 8 nibbles claims 64 bytes: 64 of them fit 4096, or 7 nodes and 8 of them.
    let deep = |n: usize, shallow: usize| {
        let ids: String = (0..n)
            .map(|i| format!("<ids prefix='{i:08x}' ids=''/>"))
            .chain((0..shallow).map(|i| format!("<ids prefix='{i:x}' ids=''/>")))
            .collect();
        out(5, &iq(true, "set", "r9", &reconcile("presence", &ids)))
    };
    for (n, shallow) in [(64, 0), (8, 7)] {
        let findings = audit(H, &with(vec![deep(n, shallow)]), &ctx);
        let outcome = &findings[CheckId::QueryNodes as usize].outcome;
        assert_eq!(*outcome, Outcome::Pass, "{n} deep, {shallow} shallow");
    }
    for (n, shallow) in [(65, 0), (9, 7)] {
        fails_with(
            &with(vec![deep(n, shallow)]),
            &ctx,
            CheckId::QueryNodes,
            "PS-31",
        );
    }
}

#[test]
fn window() {
    let query = reconcile("edges", "<ids prefix='' ids=''/>");
    let q = |i: u64| out(3 + i, &iq(true, "set", &format!("r{i}"), &query));
    let answer = |i: u64| inn(3 + i, &iq(false, "result", &format!("r{i}"), ""));
    fails((0..5).map(q).collect(), CheckId::Window, "PS-50");
    // Four outstanding at most: fine.
    let records = with(vec![q(0), q(1), q(2), q(3), answer(0), q(4)]);
    assert_eq!(outcome(&records, CheckId::Window), Outcome::Pass);
    // Outstanding requests vanish with the link.
    let records = with(vec![q(0), q(1), q(2), q(3), down(9), up(10, P, true), q(5)]);
    assert_eq!(outcome(&records, CheckId::Window), Outcome::Pass);
}

#[test]
fn nothing_of_the_namespace_to_a_legacy_peer() {
    let live = presence(None, JULIET_R, L, &marker("fanout"));
    fails(vec![out_to(5, L, &live)], CheckId::LegacySilence, "PS-5");
}

#[test]
fn a_peer_that_advertises_the_extension_by_disco_is_no_legacy_peer() {
    let disco = "http://jabber.org/protocol/disco#info";
    let feature = format!("<query xmlns='{disco}'><feature var='{NS}'/></query>");
    let live = presence(None, JULIET_R, L, &marker("fanout"));
    let answer = at(
        4,
        RecordKind::In {
            peer: L.to_owned(),
            stanza: el(&iq(false, "result", "d1", &feature)),
        },
    );
    let records = with(vec![answer, out_to(5, L, &live)]);
    assert_eq!(
        outcome(&records, CheckId::LegacySilence),
        Outcome::NotExercised
    );
}

#[test]
fn no_probes_and_no_per_user_presence_in_a_session() {
    let probe = presence(Some("probe"), JULIET, ROMEO, "");
    fails(vec![out(5, &probe)], CheckId::NoPerUserPresence, "PS-66");
    let broadcast = presence(None, JULIET_R, ROMEO, "");
    fails(
        vec![out(5, &broadcast)],
        CheckId::NoPerUserPresence,
        "PS-66",
    );
    let gone = presence(Some("unavailable"), JULIET_R, ROMEO, "");
    fails(vec![out(5, &gone)], CheckId::NoPerUserPresence, "PS-66");
    // An answer to a probe is fine, but only at the time of the first answer.
    let asked = inn(5, &presence(Some("probe"), ROMEO, JULIET, ""));
    let findings = run(&with(vec![asked, out(5, &broadcast), out(9, &broadcast)]));
    let f = &findings[CheckId::NoPerUserPresence as usize];
    assert!(
        matches!(f.outcome, Outcome::Fail { count: 1, .. }),
        "{}",
        show(&findings)
    );
    assert_eq!(f.violations()[0].time, SimTime::from_millis(9));
}

#[test]
fn repairs() {
    let repair = |ty, from, to| presence(Some(ty), from, to, &marker("repair"));
    fails(
        vec![out(5, &repair("subscribe", JULIET_R, ROMEO))],
        CheckId::Repairs,
        "PS-61",
    );
    fails(
        vec![out(5, &repair("unsubscribed", JULIET, P))],
        CheckId::Repairs,
        "PS-61",
    );
    let available = presence(None, JULIET, ROMEO, &marker("repair"));
    fails(vec![out(5, &available)], CheckId::Repairs, "PS-60");
    let full = format!("<repair xmlns='{NS}' n='1'/>");
    let not_empty = presence(Some("subscribe"), JULIET, ROMEO, &full);
    fails(vec![out(5, &not_empty)], CheckId::Repairs, "PS-60");
    // subscribe and unsubscribe from juliet to romeo repair the same pair (romeo, juliet).
    let sub = repair("subscribe", JULIET, ROMEO);
    let unsub = repair("unsubscribe", JULIET, ROMEO);
    fails(
        vec![out(5, &sub), out(6, &unsub)],
        CheckId::Repairs,
        "PS-83",
    );
    // ... but unsubscribed from juliet to romeo is the pair (juliet, romeo), and a new
    // session may repair a pair again.
    let records = with(vec![
        out(5, &sub),
        out(6, &repair("unsubscribed", JULIET, ROMEO)),
        down(7),
        up(8, P, true),
        out(9, &iq(true, "set", "h5", &hello(E1, Some(E2), 0))),
        inn(10, &iq(false, "result", "h5", &hello(E2, Some(E1), 0))),
        out(11, &sub),
    ]);
    assert_eq!(outcome(&records, CheckId::Repairs), Outcome::Pass);
}

#[test]
fn shutdown_messages() {
    let stop = || at(20, RecordKind::Shutdown);
    fails(vec![stop()], CheckId::Shutdown, "PS-54");
    let twice = vec![stop(), out(20, &shutdown(E1)), out(20, &shutdown(E1))];
    fails(twice, CheckId::Shutdown, "PS-54");
    fails(
        vec![stop(), out(20, &shutdown(E2))],
        CheckId::Shutdown,
        "PS-54",
    );
    fails(vec![out(5, &shutdown(E1))], CheckId::Shutdown, "PS-54");
    // Without a session, or with a request unanswered for 60 s (PS-51), nothing is owed.
    let records = [up(0, P, true), at(20, RecordKind::Shutdown)];
    assert_eq!(outcome(&records, CheckId::Shutdown), Outcome::NotExercised);
    let b = iq(true, "set", "b9", &batch(&item("x@a.example", "")));
    let lapsed = with(vec![out(5, &b), at(60_005, RecordKind::Shutdown)]);
    assert_eq!(outcome(&lapsed, CheckId::Shutdown), Outcome::NotExercised);
}

#[test]
fn epochs() {
    let changed = out(5, &iq(true, "set", "h9", &hello(E3, Some(E2), 0)));
    fails(vec![changed], CheckId::Epochs, "PS-12");
    let stale_batch = batch(&item("x@a.example", "")).replace(E1, E3);
    fails(
        vec![out(5, &iq(true, "set", "b9", &stale_batch))],
        CheckId::Epochs,
        "PS-12",
    );
    let crash = [at(5, RecordKind::Crash), at(6, RecordKind::Restart)];
    fails(
        [crash.to_vec(), prefix()].concat(),
        CheckId::Epochs,
        "PS-12",
    );
}

#[test]
fn hello_while_another_is_unanswered() {
    let hello = |ms, id| out(ms, &iq(true, "set", id, &hello(E1, None, 0)));
    let records = [up(0, P, true), hello(1, "h1"), hello(2, "h2")];
    fails_with(
        &records,
        &AuditContext::default(),
        CheckId::HelloPacing,
        "PS-20",
    );
    // A hello unanswered for 60 s has failed (PS-51) and holds nothing back.
    let records = [up(0, P, true), hello(1, "h1"), hello(60_001, "h2")];
    assert_eq!(outcome(&records, CheckId::HelloPacing), Outcome::Pass);
}

#[test]
fn stanzas_of_a_crashed_host_are_ignored() {
    let live = presence(None, JULIET_R, P, &marker("fanout"));
    let records = with(vec![at(5, RecordKind::Crash), out(5, &live)]);
    assert_eq!(
        outcome(&records, CheckId::DomainPresence),
        Outcome::NotExercised
    );
}

mod end_to_end;
