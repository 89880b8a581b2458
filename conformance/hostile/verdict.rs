//! Verdicts of the hostile-peer checks: plain functions of what the implementation under test
//! sent and showed, so that each can be shown to fail on a wrong answer.

use std::collections::BTreeMap;

use jid::BareJid;
use minidom::Element;
use xmpp_parsers::iq::Iq;

use crate::conformance::check::Outcome;
use crate::model::Account;
use crate::sim::is_stream_error;
use crate::wire::{Condition, ServerNs, SyncElement};

/// A short rendering of a stanza for failure details (at most 300 characters).
pub fn show(e: &Element) -> String {
    let s = String::from(e);
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// The answer to a request that must be refused with `expected`: an iq of type `error`
/// carrying the defined condition, the error type and the application-specific condition of
/// the XEP §Error Handling table (PS-69).
pub fn error_answer(answer: Option<&Element>, expected: Condition) -> Outcome {
    let Some(answer) = answer else {
        return Outcome::Fail(format!("no answer; expected <{}/>", expected.name()));
    };
    let Ok(ServerNs(iq)) = xso::transform::<ServerNs<Iq>, _>(answer) else {
        return Outcome::Fail(format!("the answer is not an iq: {}", show(answer)));
    };
    let Iq::Error { error, .. } = iq else {
        return Outcome::Fail(format!(
            "accepted ({}); expected <{}/>",
            show(answer),
            expected.name()
        ));
    };
    let app = error
        .other
        .as_ref()
        .and_then(|o| SyncElement::parse_element(o).ok().flatten());
    let mut wrong = Vec::new();
    if app != Some(SyncElement::Condition(expected)) {
        let got = error
            .other
            .as_ref()
            .map_or("none".into(), |o| o.name().to_owned());
        wrong.push(format!(
            "application condition {got}, expected {}",
            expected.name()
        ));
    }
    if error.defined_condition != expected.defined_condition() {
        wrong.push(format!(
            "defined condition {:?}, expected {:?}",
            error.defined_condition,
            expected.defined_condition()
        ));
    }
    if error.type_ != expected.error_type() {
        wrong.push(format!(
            "type {:?}, expected {:?}",
            error.type_,
            expected.error_type()
        ));
    }
    if wrong.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(wrong.join("; "))
    }
}

/// The answer to a request that must be processed: an iq of type `result`; its payload.
pub fn result_answer(answer: Option<&Element>) -> Result<Option<Element>, String> {
    let Some(answer) = answer else {
        return Err("no answer".into());
    };
    match answer.attr("type") {
        Some("result") if answer.name() == "iq" => Ok(answer.children().next().cloned()),
        _ => Err(format!("not a result: {}", show(answer))),
    }
}

/// The answers to a flood of requests (XEP §Resource Exhaustion): every request answered,
/// with a result or an error carrying one of `refusals` (with its defined condition and
/// type, PS-69). A server may refuse what exceeds its rates; it may not leave a request
/// unanswered.
pub fn all_answered<'a>(
    answers: impl IntoIterator<Item = (&'a str, Option<&'a Element>)>,
    refusals: &[Condition],
) -> Outcome {
    let mut total = 0;
    for (id, answer) in answers {
        total += 1;
        if result_answer(answer).is_ok() {
            continue;
        }
        let refused = refusals
            .iter()
            .any(|c| error_answer(answer, *c) == Outcome::Pass);
        if !refused {
            let got = answer.map_or("no answer".to_owned(), show);
            return Outcome::Fail(format!("request {id}: {got}"));
        }
    }
    if total == 0 {
        return Outcome::NotExercised("no request was sent".into());
    }
    Outcome::Pass
}

/// What a server sent after an input it must discard (PS-70): no error reply (an iq,
/// presence or message of type `error`). A stream error is not a reply (the stream may be
/// closed for a foreign `from`, PS-71).
pub fn discarded(sent: &[&Element]) -> Outcome {
    match sent.iter().find(|s| s.attr("type") == Some("error")) {
        None => Outcome::Pass,
        Some(s) => Outcome::Fail(format!("answered with an error: {}", show(s))),
    }
}

/// The stream close of PS-71: among what the server sent, a stream error whose condition is
/// `condition` (in `urn:ietf:params:xml:ns:xmpp-streams`), no iq answer to `id`, and the
/// link down afterwards.
pub fn stream_closed(sent: &[&Element], condition: &str, id: &str, link_up: bool) -> Outcome {
    const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    if let Some(answer) = sent.iter().find(|s| s.attr("id") == Some(id)) {
        return Outcome::Fail(format!(
            "answered the spoofed stanza instead of closing the stream: {}",
            show(answer)
        ));
    }
    let Some(error) = sent.iter().find(|s| is_stream_error(s)) else {
        return Outcome::Fail(format!("no stream error; expected <{condition}/>"));
    };
    if !error.has_child(condition, STREAMS) {
        return Outcome::Fail(format!(
            "stream error {}, expected <{condition}/>",
            show(error)
        ));
    }
    if link_up {
        return Outcome::Fail("the stream is still up after the stream error".into());
    }
    Outcome::Pass
}

/// The users whose roster items or block lists differ between `before` and `after`.
pub fn roster_changes(
    before: &BTreeMap<BareJid, Account>,
    after: &BTreeMap<BareJid, Account>,
) -> Vec<String> {
    let users: std::collections::BTreeSet<&BareJid> = before.keys().chain(after.keys()).collect();
    users
        .into_iter()
        .filter(|u| before.get(*u) != after.get(*u))
        .map(|u| format!("the account of {u} changed"))
        .collect()
}

/// Nothing of a hostile input was applied: every online user is shown exactly what it is
/// entitled to (`diff` from the truth is empty) and no roster changed.
pub fn intact(diff: &[String], roster_changes: &[String]) -> Outcome {
    let all: Vec<&str> = diff
        .iter()
        .chain(roster_changes)
        .map(String::as_str)
        .collect();
    if all.is_empty() {
        return Outcome::Pass;
    }
    let first: Vec<&str> = all.iter().take(3).copied().collect();
    Outcome::Fail(format!(
        "{} differences, first: {}",
        all.len(),
        first.join("; ")
    ))
}
