//! Presence states too large for a stanza (XEP §Items, PS-41): the publisher publishes a
//! reduced state (extension elements dropped first, then status texts, largest first, until
//! the item fits), and the peer shows exactly that.
//!
//! A user of the implementation under test gets a status longer than the effective
//! max-bytes, next to a short status in another language, on three paths: a live change of a
//! publisher already published (a domain-level presence), a new publisher (an item in a
//! batch), and a change during a link loss (an item in a reconcile answer). The reduced
//! state is the presence without the long status; the reference peer must show it to the
//! subject's subscribers, and nothing the subject sends may exceed max-bytes. Then the order
//! of the reduction: two users of the subject get extension elements, one of which is too
//! large (alone, or only with its attribute), beside a small one and short statuses: only the
//! large one may go. Last, the reference publishes a state too large, and the subject must
//! show the reduced state it gets.

use super::bench::{A, B, Bench, presence};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::subject::{Implementation, Reference};
use crate::model::truth::{View, differences};
use crate::model::{ResourcePresence, Show};
use crate::sim::wire_len;
use minidom::Element;

/// The view the XEP promises when `huge` is the only status that makes a state too large:
/// the truth without that status text, in every view of a contact of another domain.
pub fn expected_view(truth: &View, huge: &str) -> View {
    across_domains(truth, |rp| rp.statuses.retain(|_, text| text != huge))
}

/// The view the XEP promises when the extension elements of namespace `dropped` are the
/// largest ones of their publishers' states, and dropping them is enough for each state to fit:
/// the truth without them in every view of a contact of another domain.
pub fn without_extensions(truth: &View, dropped: &[&str]) -> View {
    across_domains(truth, |rp| {
        rp.extensions
            .retain(|e| !dropped.contains(&e.ns().as_str()))
    })
}

/// `truth` with `reduce` applied to every resource a viewer is shown of a contact of another
/// domain (what crosses the link, PS-41).
fn across_domains(truth: &View, reduce: impl Fn(&mut ResourcePresence)) -> View {
    let mut view = truth.clone();
    for (viewer, contacts) in view.iter_mut() {
        for (contact, resources) in contacts.iter_mut() {
            if contact.domain() == viewer.domain() {
                continue;
            }
            resources.values_mut().for_each(&reduce);
        }
    }
    view
}

/// An extension element `<x xmlns='urn:example:{name}'/>` with `text`, and `value` in its
/// attribute `v` unless empty.
fn extension(name: &str, value: &str, text: &str) -> Element {
    let mut e = Element::builder("x", format!("urn:example:{name}")).append(text);
    if !value.is_empty() {
        let v = rxml::NcName::try_from("v").expect("a valid attribute name");
        e = e.attr(v, value);
    }
    e.build()
}

/// PS-41, the sender's side: stanzas of `sizes` (bytes) all within `max_bytes`.
pub fn fits_verdict(sizes: &[u64], max_bytes: u32) -> Outcome {
    match sizes.iter().max() {
        Some(&m) if m > max_bytes as u64 => Outcome::Fail(format!(
            "a stanza of {m} bytes exceeds the effective max-bytes {max_bytes}"
        )),
        _ => Outcome::Pass,
    }
}

/// PS-41, what the peer shows: `shown` equals `expected`.
pub fn shown_verdict(expected: &View, shown: &View) -> Outcome {
    let diff = differences(expected, shown);
    match diff.first() {
        None => Outcome::Pass,
        Some(_) => {
            let first: Vec<&str> = diff.iter().take(2).map(String::as_str).collect();
            let mut text = first.join("; ");
            if let Some((i, _)) = text.char_indices().nth(400) {
                text.truncate(i);
                text.push('…');
            }
            Outcome::Fail(format!("{} differences: {text}", diff.len()))
        }
    }
}

/// The sizes (bytes) of the stanzas the subject sent to the peer since `mark`.
fn sizes_to_peer(bench: &Bench, mark: usize) -> Vec<u64> {
    let sent = bench.net.host(A).sent.iter().skip(mark);
    sent.filter(|(_, peer, _)| peer == B)
        .map(|(_, _, s)| wire_len(s))
        .collect()
}

/// A failure if the bench gave up on a livelock, else `verdict()`.
fn stuck_or(bench: &Bench, verdict: impl FnOnce() -> Outcome) -> Outcome {
    match &bench.stuck {
        Some(why) => Outcome::Fail(why.clone()),
        None => verdict(),
    }
}

/// The oversized-presence checks (see [`super::oversized_checks`]).
pub(super) fn checks(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    let mut bench = Bench::new(imp, &Reference::peer(), seed);
    let Some(neg) = bench.negotiated() else {
        let why = Outcome::NotExercised("no hello exchange was seen".into());
        return vec![Check::with("oversized: no session", &["PS-41"], why)];
    };
    let max_bytes = neg.limits().max_bytes;
    let huge = "x".repeat(max_bytes as usize + 1000);
    let full = |show| presence(show, &[("", huge.as_str()), ("en", "short")]);
    let mut out = Vec::new();
    // (path, user, resource, during a link loss)
    let paths = [
        ("a live change", "anne@a.example", "phone", false),
        ("a new publisher", "amy@a.example", "pad", false),
        (
            "a change during a link loss",
            "alice@a.example",
            "home",
            true,
        ),
    ];
    for (path, user, resource, link_loss) in paths {
        let mark = bench.mark();
        if link_loss {
            bench.net.partition(A, B);
        }
        bench.login(user, resource, full(Show::Xa));
        if link_loss {
            bench.net.repair(A, B);
        }
        bench.settle();
        let sizes = sizes_to_peer(&bench, mark);
        out.push(Check::with(
            format!("oversized: {path}: every stanza fits max-bytes"),
            &["PS-41", "PS-30"],
            fits_verdict(&sizes, max_bytes),
        ));
        let expected = expected_view(&bench.truth(), &huge);
        out.push(Check::with(
            format!("oversized: {path}: the peer shows the reduced state"),
            &["PS-41"],
            stuck_or(&bench, || shown_verdict(&expected, &bench.shown())),
        ));
        if bench.stuck.is_some() {
            return out;
        }
    }
    // The order of the reduction (PS-41): extension elements before statuses, the largest
    // first, and no more than needed, but until the item fits. anne: a small extension listed
    // before one too large for any stanza; amy: the small one and one whose attribute value
    // and text are each under half of max-bytes and together over it. Only the large ones go;
    // the statuses stay. alice: two statuses too large, and a short one: both large ones go.
    let mark = bench.mark();
    let small = extension("small", "", "s");
    let half = max_bytes as usize / 2 + 600;
    let states = [
        (
            "anne@a.example",
            "phone",
            extension("large", "", &"l".repeat(max_bytes as usize + 1000)),
        ),
        (
            "amy@a.example",
            "pad",
            extension("wide", &"v".repeat(half + 100), &"w".repeat(half)),
        ),
    ];
    for (user, resource, large) in states {
        bench.logout(user, resource);
        let mut rp = presence(Show::Away, &[("", "short"), ("en", "brief")]);
        rp.extensions = vec![small.clone(), large];
        bench.login(user, resource, rp);
    }
    let huge_too = "y".repeat(max_bytes as usize + 1000);
    bench.logout("alice@a.example", "home");
    let two = [
        ("", huge.as_str()),
        ("en", huge_too.as_str()),
        ("fr", "court"),
    ];
    bench.login("alice@a.example", "home", presence(Show::Away, &two));
    bench.settle();
    let sizes = sizes_to_peer(&bench, mark);
    out.push(Check::with(
        "oversized: large extensions and statuses: every stanza fits max-bytes",
        &["PS-41", "PS-30"],
        fits_verdict(&sizes, max_bytes),
    ));
    let expected = without_extensions(&bench.truth(), &["urn:example:large", "urn:example:wide"]);
    let expected = expected_view(&expected_view(&expected, &huge), &huge_too);
    out.push(Check::with(
        "oversized: large extensions and statuses: only the largest go, until the item fits",
        &["PS-41"],
        stuck_or(&bench, || shown_verdict(&expected, &bench.shown())),
    ));
    if bench.stuck.is_some() {
        return out;
    }
    bench.login("bob@b.example", "desk", full(Show::Dnd));
    bench.settle();
    let expected = expected_view(&bench.truth(), &huge);
    let shown_at_a: View = bench
        .shown()
        .into_iter()
        .filter(|(v, _)| v.domain().as_str() == A)
        .collect();
    let expected_at_a: View = expected
        .into_iter()
        .filter(|(v, _)| v.domain().as_str() == A)
        .collect();
    out.push(Check::with(
        "oversized: a reduced state of the peer is shown as published",
        &["PS-40", "PS-45"],
        stuck_or(&bench, || shown_verdict(&expected_at_a, &shown_at_a)),
    ));
    out
}
