//! The runner of the hostile cases: each on a fresh [`Bench`], its answer judged by what the
//! case expects, then whether the world converges again.

use minidom::Element;

use super::super::bench::{A, B, Bench};
use super::super::verdict::{self, show};
use super::{Case, Ctx, Expect, Names, all};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::subject::{Implementation, Reference};
use crate::wire::{Condition, ns};

use Condition::*;

/// The checks of one case, and the differences left after the recovery (empty: recovered);
/// `None` for the latter if the case could not run.
fn run(case: &Case, imp: &dyn Implementation, seed: u64) -> (Vec<Check>, Option<Vec<String>>) {
    let name = |what: &str| format!("hostile: {}: {what}", case.name);
    let mut bench = Bench::new(imp, &Reference::peer(), seed);
    let not_run = |why: String| {
        let checks = vec![
            Check::with(
                name("answer"),
                case.reqs,
                Outcome::NotExercised(why.clone()),
            ),
            Check::with(
                name("nothing applied"),
                case.state_reqs,
                Outcome::NotExercised(why),
            ),
        ];
        (checks, None)
    };
    if let Some(why) = bench.stuck.clone() {
        let checks = vec![
            Check::with(name("answer"), case.reqs, Outcome::Fail(why.clone())),
            Check::with(name("nothing applied"), case.state_reqs, Outcome::Fail(why)),
        ];
        return (checks, None);
    }
    let Some(neg) = bench.negotiated() else {
        return not_run("no hello exchange was seen: no session to attack".into());
    };
    let before = bench.diff();
    if !before.is_empty() {
        return not_run(format!("the world did not converge first: {}", before[0]));
    }
    (case.before)(&mut bench);
    let ctx = Ctx {
        id: bench.fresh_id(),
        neg,
        names: Names::bench(),
    };
    let (xml, expect) = (case.build)(&ctx);
    let wrapped = format!("<flood xmlns='jabber:server'>{xml}</flood>");
    let stanzas: Vec<Element> = wrapped
        .parse::<Element>()
        .expect("the bench writes well-formed stanzas")
        .children()
        .cloned()
        .collect();
    let requests: Vec<String> = stanzas
        .iter()
        .filter(|s| s.name() == "iq" && s.attr("type") == Some("set"))
        .filter_map(|s| s.attr("id").map(str::to_owned))
        .collect();
    let accounts = bench.accounts();
    let mark = bench.mark();
    for stanza in stanzas {
        bench.inject(stanza);
    }
    bench.settle();
    if let Some(why) = bench.stuck.clone() {
        let checks = vec![
            Check::with(name("answer"), case.reqs, Outcome::Fail(why.clone())),
            Check::with(
                name("nothing applied"),
                case.state_reqs,
                Outcome::Fail(why.clone()),
            ),
        ];
        return (checks, Some(vec![why]));
    }
    let sent = bench.sent_since(mark);
    let mut changes = verdict::roster_changes(&accounts, &bench.accounts());
    let answer = judge(
        &expect,
        &ctx.id,
        &requests,
        |id| bench.answer(id),
        &sent,
        bench.net.is_link_up(A, B),
        &mut changes,
    );
    let answer_reqs = answer_requirements(case, &expect);
    let mut checks = vec![Check::with(name("answer"), &answer_reqs, answer)];
    if !case.state_reqs.is_empty() {
        let state = verdict::intact(&bench.diff(), &changes);
        checks.push(Check::with(name("nothing applied"), case.state_reqs, state));
    }
    (checks, Some(bench.recover()))
}

/// The requirements the answer check of `case` names: the case's, and PS-69 when the
/// answer must be an iq error.
pub(crate) fn answer_requirements(case: &Case, expect: &Expect) -> Vec<&'static str> {
    let mut reqs = case.reqs.to_vec();
    if matches!(expect, Expect::Error(_)) {
        reqs.push("PS-69");
    }
    reqs
}

/// The verdict on what the subject did with a hostile input whose request (if any) has id
/// `id`, and which carried the requests `requests` (a flood): `answer` gives the subject's
/// answer to a request id, `sent` is everything the subject sent since the input (stream
/// errors included), `link_up` whether the stream the input came on is still up. A repair the
/// subject sent for an input it must not act on is added to `changes` (for the state check).
/// Shared by the simulation's bench and the wire suite (`conformance::wire::hostile`).
pub(crate) fn judge<'a>(
    expect: &Expect,
    id: &str,
    requests: &[String],
    answer: impl Fn(&str) -> Option<&'a Element>,
    sent: &[&'a Element],
    link_up: bool,
    changes: &mut Vec<String>,
) -> Outcome {
    match expect {
        Expect::Error(c) => verdict::error_answer(answer(id), *c),
        Expect::Ignored => match answer(id) {
            None => Outcome::Pass,
            Some(a) => Outcome::Fail(format!("answered: {}", show(a))),
        },
        Expect::Result(test) => test(answer(id)),
        Expect::NotActedOn => {
            if let Some(r) = sent
                .iter()
                .find(|s| s.has_child("repair", ns::PRESENCE_SYNC))
            {
                changes.push(format!("a repair was sent: {}", show(r)));
            }
            match verdict::result_answer(answer(id)) {
                Ok(_) => Outcome::Pass,
                Err(_) => verdict::error_answer(answer(id), BadFormat),
            }
        }
        Expect::Discarded => verdict::discarded(sent),
        Expect::Stream(condition) => verdict::stream_closed(sent, condition, id, link_up),
        Expect::Answered(refusals) => verdict::all_answered(
            requests.iter().map(|id| (id.as_str(), answer(id))),
            refusals,
        ),
        Expect::Refused(refusal) => {
            // A refusal may end the session: what follows it is then out of order.
            let answers: Vec<_> = requests
                .iter()
                .map(|id| (id.as_str(), answer(id)))
                .collect();
            let refused = answers
                .iter()
                .any(|(_, a)| verdict::error_answer(*a, *refusal) == Outcome::Pass);
            match verdict::all_answered(answers.iter().copied(), &[*refusal, OutOfOrder]) {
                Outcome::Pass if !refused => Outcome::Fail(format!(
                    "none of {} requests refused with <{}/> past the bound",
                    answers.len(),
                    refusal.name()
                )),
                other => other,
            }
        }
    }
}

/// Every case on a fresh bench, then one check that the subject recovered after each.
pub(in crate::conformance::hostile) fn run_all(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut not_recovered = Vec::new();
    let mut ran = 0;
    for case in all() {
        let (c, left) = run(&case, imp, seed);
        checks.extend(c);
        if let Some(left) = left {
            ran += 1;
            if let Some(first) = left.first() {
                not_recovered.push(format!("after {:?}: {first}", case.name));
            }
        }
    }
    let name = "hostile: presence converges again after each hostile input";
    let outcome = if ran == 0 {
        Outcome::NotExercised("no case could run".into())
    } else if not_recovered.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(format!(
            "{} of {ran} cases: {}",
            not_recovered.len(),
            not_recovered.join("; ")
        ))
    };
    checks.push(Check::with(name, &["PS-40", "PS-44"], outcome));
    checks
}
