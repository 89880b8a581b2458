//! `hostile`: the suite plays a hostile peer over the wire (XEP §Error Handling, §Spoofed JIDs,
//! §Resource Exhaustion).
//!
//! Besides the suite's peer, the suite opens s2s streams of its own to the server under test
//! as the peer domain, authenticated by XEP-0220 dialback: the subject checks the key with the
//! peer domain's authoritative server, which is the suite's peer, and the key is made with
//! that peer's secret ([`super::peer::DIALBACK_SECRET`]), so the peer confirms it. On such a
//! stream it sends what an honest peer never sends:
//!
//! - the simulation's hostile inputs ([`crate::conformance::hostile`], named in
//!   [`FROM_SIMULATION`]), built from the session's hellos as they crossed the relays, with
//!   the simulation's verdicts ([`cases::judge`]): malformed, oversized and spoofed requests
//!   (items and excepts of the subject's own domain or of a third one, a `from` outside the
//!   peer domain), a payload far too deep for any stream, floods of hellos, queries and batches;
//! - [`wire_cases`]: a payload one level past the 16 of PS-88 (the simulation's goes through
//!   the stream layer of a real server), a `from` of the subject's own domain;
//! - streams that never authenticate (PS-77): a hello without dialback, and a hello after a
//!   dialback that the peer's authoritative server refuses;
//! - stalls: two connections, one stopped in the middle of its stream header and one in the
//!   middle of a stanza, held open throughout;
//! - three refusals in a row ([`fallback`]): after three failed sessions a subject that treats
//!   the peer as legacy must apply RFC 6121 at once (PS-58);
//! - the subject's own users ([`clients`]): the extension's elements in their stanzas never
//!   reach the peer (PS-94).
//!
//! ```text
//!  suite, hostile ──s2s as the peer domain (dialback)──► subject ──s2s via relay `outgoing`──► suite's peer
//!       ▲  inputs                                          │  answers, stream errors (captured)
//!       └──────────── stream errors on the hostile stream ─┘
//! ```
//!
//! The subject answers the peer domain on its own stream to it, so its answers are read where
//! the relay `outgoing` captured them (the suite's peer ignores answers to requests it never
//! sent). A refusal ends the session (PS-57), so after each input the suite cuts the link and
//! waits for a hello exchange on new streams, which also renews the hello budget of PS-91 and
//! the failure count of PS-57. The state checks are the ground truth of [`super::people`]: no
//! user is shown anything a hostile input carried, no roster changed, and at the end every
//! user, logged in again, sees exactly its contacts' presence.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::roster::Subscription;

mod clients;
mod fallback;
mod stream;

use stream::{Hostile, connect};

use super::Result;
use super::relay::Direction;
use super::scenarios::Body;
use super::wait::wait_until;
use super::world::Wire;
use crate::conformance::check::{Check, Outcome};
use crate::conformance::hostile::cases::{self, Case, Ctx, Expect, Names};
use crate::conformance::hostile::{A, B, C, HOSTILE, Negotiated, hellos, verdict};
use crate::conformance::scenarios::truth_reqs;
use crate::serve::xml::{self, SERVER};
use crate::wire::{Condition, WireElement, ns};

/// The simulation's hostile cases played over the wire, by their names in
/// [`cases::all`]. Left out: the batch before the hello exchange of new streams (it needs a
/// stanza between a link coming up and its hello, which only the simulator can time; the
/// batch after a refusal exercises the same rule, PS-75), the hellos with new epochs (they would
/// make the suite's peer look restarted to the subject for the rest of the run), the
/// domain-level presence of type probe, the malformed shutdown and repair markers (each is
/// discarded, as the malformed domain-level presence that is played is).
pub const FROM_SIMULATION: [&str; 30] = [
    "reconcile with a child in the wrong direction",
    "reconcile with an unknown attribute",
    "id list in non-canonical base64 (no padding)",
    "item JID not in normalized form",
    "edge with a JID not in normalized form",
    "id list longer than max-items",
    "reconcile with more than max-items split and ids",
    "batch with more than max-items items",
    "batch larger than max-bytes",
    "query with more node children than an answer of max-bytes can hold",
    "item for a user of the receiving domain",
    "item for a user of a third domain",
    "except of a third domain",
    "edge with both ends in the peer domain",
    "hello with an unsupported hash algorithm",
    "batch of a stale epoch",
    REFUSED_THEN_BATCH,
    "domain-level presence with an unknown attribute",
    "request whose from is not of the peer domain",
    "batch from a user of the peer domain",
    "shutdown from a user of the peer domain",
    "domain-level presence with a payload nested 200 elements deep",
    "domain-level presence of a publisher without cache entry",
    "domain-level presence of 500 unknown publishers",
    "split of the root matching none of its children",
    "query for a prefix deeper than the stored depth",
    "sketch with a truncated cell",
    "sketch of five cells",
    "sketch naming an id the receiver does not hold as its own",
    "sketch of an empty node",
];

/// The case of [`FROM_SIMULATION`] that makes the subject refuse twice in a row (a request,
/// then a batch out of order): new streams follow it, which reset the subject's count of
/// failed sessions (PS-57), so that a third refusal does not make it fall back for good.
const REFUSED_THEN_BATCH: &str = "batch after a refusal, before a new hello";

/// The floods, played last: they spend the hello budget and the window (XEP §Resource
/// Exhaustion).
pub const FLOODS: [&str; 3] = [
    "20 hellos of the current epoch at once",
    "200 edge queries at once, 256 random ids each",
    "batches of new publishers past the bound of the cache",
];

/// The floods sent one request at a time, each after the answer to the last, until one is
/// refused: what would follow a refusal is out of order (PS-75), a failure of the session
/// again, and three failures in a row make the reference fall back to RFC 6121 with the peer
/// for good (PS-57).
pub const ONE_BY_ONE: [&str; 1] = ["batches of new publishers past the bound of the cache"];

/// The third domain of the spoofed JIDs (RFC 2606: never a real one).
pub const THIRD: &str = "c.invalid";

/// How long the subject may take to answer a dialback or a request.
const ANSWER: Duration = Duration::from_secs(10);

/// How long the suite waits for a reaction to an input that must get no answer.
const QUIET: Duration = Duration::from_secs(1);

/// How long after its answer the suite looks at what the subject's users are shown.
const SHOWN: Duration = Duration::from_millis(200);

/// How long the views may take to be right after an input (they were right before it).
const STATE_WAIT: Duration = Duration::from_secs(2);

/// How long the views may take to be right before the inputs.
const BASELINE_WAIT: Duration = Duration::from_secs(5);

/// How long the link may take to come back with a hello exchange after a cut.
const RESUME: Duration = Duration::from_secs(20);

/// How often the suite looks at what crossed.
const POLL: Duration = Duration::from_millis(50);

/// The cases made for the wire, in the simulation's form (their domains renamed as theirs are,
/// see [`Rename`]).
pub(crate) fn wire_cases() -> Vec<Case> {
    vec![
        Case {
            name: "item payload nested 17 elements deep, one past the bound",
            reqs: &["PS-88"],
            state_reqs: &["PS-88"],
            before: |_| {},
            build: |c| {
                let p = cases::item_presence("bob@b.example/desk", &cases::nested(17));
                (
                    c.batch(&cases::item("bob@b.example", &p)),
                    Expect::Error(Condition::BadFormat),
                )
            },
        },
        Case {
            name: "request whose from is a user of the receiving domain",
            reqs: &["PS-71", "PS-77"],
            state_reqs: &["PS-71"],
            before: |_| {},
            build: |c| {
                let q = c
                    .reconcile("presence", "<ids prefix='' ids=''/>")
                    .replace(&format!("from='{B}'"), &format!("from='alice@{A}'"));
                (q, Expect::Stream("invalid-from"))
            },
        },
    ]
}

/// The run's names, as a case that hashes one needs them ([`Ctx::names`]).
fn names(w: &Wire) -> Names {
    Names {
        subject: w.target.domain.clone(),
        peer: w.target.peer.domain.clone(),
        first: w
            .ours
            .first()
            .map(|p| p.bare().to_string())
            .unwrap_or_default(),
        users: w.ours.len(),
    }
}

/// The simulation's names mapped to the wire run's: its two domains to the subject's and the
/// peer's, its third to [`THIRD`], its users `alice` and `bob` to the first user of each side
/// (so that a spoofed state of `bob` is one the subject's users would be shown).
pub struct Rename(Vec<(String, String)>);

impl Rename {
    /// A renaming of each first name of `pairs` to its second.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Rename {
        Rename(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    /// The renaming for `w`.
    pub fn new(w: &Wire) -> Rename {
        let mut pairs = Vec::new();
        if let Some(p) = w.theirs.first() {
            pairs.push((format!("bob@{B}"), p.bare().to_string()));
        }
        if let Some(p) = w.ours.first() {
            pairs.push((format!("alice@{A}"), p.bare().to_string()));
        }
        pairs.push((B.to_owned(), w.target.peer.domain.clone()));
        pairs.push((A.to_owned(), w.target.domain.clone()));
        pairs.push((C.to_owned(), THIRD.to_owned()));
        Rename(pairs)
    }

    /// `text` renamed: every name replaced at once (a replacement is never renamed again).
    pub fn apply(&self, text: &str) -> String {
        let token = |i: usize| format!("\u{1}{i}\u{1}");
        let mut out = text.to_owned();
        for (i, (from, _)) in self.0.iter().enumerate() {
            out = out.replace(from.as_str(), &token(i));
        }
        for (i, (_, to)) in self.0.iter().enumerate() {
            out = out.replace(&token(i), to);
        }
        out
    }
}

/// The hello iqs (requests and answers) that crossed since `at`: (sent by the subject, iq).
fn hello_iqs(w: &Wire, at: Instant) -> Vec<(bool, Element)> {
    let mut out = Vec::new();
    for (relay, by_subject) in [(&w.outgoing, true), (&w.incoming, false)] {
        out.extend(
            relay
                .stats()
                .captured
                .into_iter()
                .filter(|c| c.at >= at && c.dir == Direction::Forward)
                .filter(|c| {
                    c.element.name() == "iq" && c.element.has_child("hello", ns::PRESENCE_SYNC)
                })
                .map(|c| (by_subject, c.element)),
        );
    }
    out
}

/// True if a hello of one side was answered by the other among `iqs`.
fn exchanged(iqs: &[(bool, Element)]) -> bool {
    iqs.iter().any(|(by, req)| {
        req.attr("type") == Some("set")
            && iqs.iter().any(|(by2, res)| {
                by2 != by && res.attr("type") == Some("result") && res.attr("id") == req.attr("id")
            })
    })
}

/// The session's hellos as they crossed the relays: the subject's latest and the peer's.
fn negotiated(w: &Wire) -> Option<Negotiated> {
    let latest = |relay: &super::relay::Relay| {
        let captured = relay.stats().captured;
        hellos(
            captured
                .iter()
                .filter(|c| c.dir == Direction::Forward)
                .map(|c| &c.element),
        )
        .pop()
    };
    Some(Negotiated {
        subject: latest(&w.outgoing)?,
        peer: latest(&w.incoming)?,
    })
}

/// New streams and a session on them: the suite cuts the link, traffic brings it back, and a
/// hello exchange completes; the hellos it was negotiated with.
async fn fresh_session(w: &mut Wire) -> Result<Negotiated> {
    let at = Instant::now();
    w.cut().await;
    w.kick()?;
    wait_until("a hello exchange on new streams", RESUME, || {
        exchanged(&hello_iqs(w, at))
    })
    .await?;
    negotiated(w).ok_or_else(|| "no hellos crossed".into())
}

/// A session again after the input numbered `n` (most inputs end it, PS-57): after every
/// second input new streams ([`fresh_session`], which also renews what the subject counts per
/// pair of streams: its hello budget, PS-91, and its failures); after the others a hello of the
/// peer's epoch on the hostile stream, which the subject answers and which starts a session on
/// the current streams (XEP §Hello), unless the subject refuses it (then new streams too).
async fn resume(
    w: &mut Wire,
    stream: Option<&mut Hostile>,
    neg: &Negotiated,
    n: usize,
) -> Result<Negotiated> {
    let Some(s) = stream.filter(|s| n % 2 == 0 && !s.ended()) else {
        return fresh_session(w).await;
    };
    let id = format!("{HOSTILE}wire-resume-{n}");
    let hello = neg.peer.to_element().map_err(|e| format!("hello: {e}"))?;
    let at = Instant::now();
    s.send(&format!(
        "<iq xmlns='jabber:server' from='{}' to='{}' id='{id}' type='set'>{}</iq>",
        w.target.peer.domain,
        w.target.domain,
        String::from(&hello)
    ))
    .await?;
    let ids = BTreeSet::from([id.clone()]);
    let started = Instant::now();
    while started.elapsed() < ANSWER {
        let answer = sent_since(w, s, at, &ids)
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| e.name() == "iq" && e.attr("id") == Some(id.as_str()));
        if let Some(answer) = answer {
            let subject = answer
                .get_child("hello", ns::PRESENCE_SYNC)
                .filter(|_| answer.attr("type") == Some("result"))
                .and_then(|h| crate::wire::Hello::parse_element(h).ok());
            return match subject {
                Some(subject) => Ok(Negotiated {
                    subject,
                    peer: neg.peer.clone(),
                }),
                None => fresh_session(w).await,
            };
        }
        if s.ended() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    fresh_session(w).await
}

/// Where the subject sent an element.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// On the hostile stream.
    Hostile,
    /// On its stream to the peer domain, relayed connection `n`.
    Relay(u64),
}

/// What the subject sent since `at` on the hostile stream and to the peer domain, leaving out
/// answers to requests other than `ids` (the session's own traffic).
fn sent_since(w: &Wire, s: &Hostile, at: Instant, ids: &BTreeSet<String>) -> Vec<(Via, Element)> {
    let mut out: Vec<(Via, Element)> = w
        .outgoing
        .stats()
        .captured
        .into_iter()
        .filter(|c| c.at >= at && c.dir == Direction::Forward)
        .map(|c| (Via::Relay(c.connection), c.element))
        .collect();
    out.extend(s.since(at).into_iter().map(|e| (Via::Hostile, e)));
    out.retain(|(_, e)| {
        e.name() != "iq"
            || !matches!(e.attr("type"), Some("result" | "error"))
            || e.attr("id").is_some_and(|id| ids.contains(id))
    });
    out
}

/// Whether the stream that carried the subject's stream error (if any) is still up.
fn error_stream_up(w: &Wire, s: &Hostile, sent: &[(Via, Element)]) -> bool {
    match sent.iter().find(|(_, e)| xml::is_stream_error(e)) {
        None => true,
        Some((Via::Hostile, _)) => !s.ended(),
        Some((Via::Relay(n), _)) => w
            .outgoing
            .stats()
            .links
            .get(*n as usize)
            .is_none_or(|l| l.2.is_none()),
    }
}

/// Waits for the subject's reaction to an input: every request answered (or the stream gone)
/// for a request, a stream error and the close of its stream for a stream error, a quiet
/// period for an input that must get no answer.
async fn react(w: &Wire, s: &Hostile, at: Instant, expect: &Expect, ids: &BTreeSet<String>) {
    let started = Instant::now();
    let requests = !matches!(expect, Expect::Discarded | Expect::Stream(_)) && !ids.is_empty();
    let limit = if requests { ANSWER } else { QUIET };
    loop {
        let sent = sent_since(w, s, at, ids);
        let done = match expect {
            Expect::Stream(_) => {
                let error = sent.iter().any(|(_, e)| xml::is_stream_error(e));
                error && !error_stream_up(w, s, &sent)
            }
            _ if requests => {
                let answered: BTreeSet<&str> = sent
                    .iter()
                    .filter(|(_, e)| e.name() == "iq")
                    .filter_map(|(_, e)| e.attr("id"))
                    .collect();
                ids.iter().all(|id| answered.contains(id.as_str())) || s.ended()
            }
            _ => false,
        };
        // A stream error is given time to be followed by the close of its stream.
        let bound = if matches!(expect, Expect::Stream(_)) {
            ANSWER
        } else {
            limit
        };
        if done || started.elapsed() >= bound {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Sends the requests of `flood` one at a time until one is refused (or not answered); the ids
/// of those sent.
async fn one_by_one(
    w: &Wire,
    s: &mut Hostile,
    flood: &Element,
    ids: &BTreeSet<String>,
) -> Result<Vec<String>> {
    let mut sent = Vec::new();
    for stanza in flood.children() {
        let Some(id) = stanza.attr("id").map(str::to_owned) else {
            continue;
        };
        let at = Instant::now();
        s.send(&String::from(stanza)).await?;
        sent.push(id.clone());
        let mut answer = None;
        let started = Instant::now();
        while answer.is_none() && started.elapsed() < ANSWER && !s.ended() {
            tokio::time::sleep(POLL).await;
            answer = sent_since(w, s, at, ids)
                .into_iter()
                .map(|(_, e)| e)
                .find(|e| e.name() == "iq" && e.attr("id") == Some(id.as_str()));
        }
        if answer.is_none_or(|a| a.attr("type") != Some("result")) {
            break;
        }
    }
    Ok(sent)
}

/// One hostile input on an authenticated stream (opened anew if the last one ended): its
/// answer check and, if the case has state requirements, that no user is shown anything of
/// it (not judged, for the reason `unjudged`, if the views were not right before the hostile
/// inputs). The session ends after most inputs: the caller starts a new one.
async fn play(
    w: &mut Wire,
    stream: &mut Option<Hostile>,
    case: &Case,
    n: usize,
    neg: Negotiated,
    rename: &Rename,
    unjudged: Option<&str>,
) -> Result<Vec<Check>> {
    if stream.as_ref().is_none_or(Hostile::ended) {
        *stream = Some(Hostile::authenticated(w).await?);
    }
    let s = stream.as_mut().ok_or("no hostile stream")?;
    let ctx = Ctx {
        id: format!("{HOSTILE}wire-{n}"),
        neg,
        names: names(w),
    };
    let (xml, expect) = (case.build)(&ctx);
    let xml = rename.apply(&xml);
    let wrapped: Element = format!("<flood xmlns='jabber:server'>{xml}</flood>")
        .parse()
        .map_err(|e| format!("{}: the suite's input is not XML: {e}", case.name))?;
    let requests: Vec<String> = wrapped
        .children()
        .filter(|s| s.name() == "iq" && s.attr("type") == Some("set"))
        .filter_map(|s| s.attr("id").map(str::to_owned))
        .collect();
    let mut ids: BTreeSet<String> = requests.iter().cloned().collect();
    ids.insert(ctx.id.clone());
    let at = Instant::now();
    let requests = if ONE_BY_ONE.contains(&case.name) {
        one_by_one(w, s, &wrapped, &ids).await?
    } else {
        s.send(&xml).await?;
        requests
    };
    react(w, s, at, &expect, &requests.iter().cloned().collect()).await;
    let sent = sent_since(w, s, at, &ids);
    let link_up = error_stream_up(w, s, &sent);
    let elements: Vec<&Element> = sent.iter().map(|(_, e)| e).collect();
    let answer = |id: &str| {
        elements
            .iter()
            .copied()
            .find(|e| e.name() == "iq" && e.attr("id") == Some(id))
    };
    let mut changes = Vec::new();
    let outcome = cases::judge(
        &expect,
        &ctx.id,
        &requests,
        answer,
        &elements,
        link_up,
        &mut changes,
    );
    let name = |what: &str| format!("{}: {what}", case.name);
    let mut checks = vec![Check::with(
        name("answer"),
        &cases::answer_requirements(case, &expect),
        outcome,
    )];
    if !case.state_reqs.is_empty() {
        let outcome = match unjudged {
            Some(why) => Outcome::NotExercised(why.to_owned()),
            None => {
                // What the subject applied reaches its users as it answers; a moment for it to
                // arrive, then the views, which must be right at once (or soon: a session that
                // ended meanwhile may deliver late what it owed).
                tokio::time::sleep(SHOWN).await;
                let diffs = super::people::converge(&mut w.people(), STATE_WAIT).await?;
                verdict::intact(&diffs, &changes)
            }
        };
        checks.push(Check::with(
            name("nothing applied"),
            case.state_reqs,
            outcome,
        ));
    }
    Ok(checks)
}

/// Every roster item of every person: (user, contact) → subscription.
async fn rosters(w: &mut Wire) -> Result<BTreeMap<(BareJid, BareJid), Subscription>> {
    let mut all = BTreeMap::new();
    for p in w.people() {
        let me = p.bare();
        for item in p.client.roster().await? {
            all.insert((me.clone(), item.jid.clone()), item.subscription);
        }
    }
    Ok(all)
}

/// The subject's iq answers with `id`, on any stream, since `at`.
fn answered(w: &Wire, streams: &[&Hostile], at: Instant, id: &str) -> Vec<Element> {
    let mut out: Vec<Element> = w
        .outgoing
        .stats()
        .captured
        .into_iter()
        .filter(|c| c.at >= at && c.dir == Direction::Forward)
        .map(|c| c.element)
        .collect();
    for s in streams {
        out.extend(s.since(at));
    }
    out.retain(|e| e.name() == "iq" && e.attr("id") == Some(id));
    out
}

/// A new session of the subject's first user, on a resource of its own, that fetches its
/// roster and logs out: the subject still accepts logins.
async fn log_in_again(w: &Wire) -> Result<()> {
    let account = w.our_account(0).ok_or("no account")?;
    let p = super::people::Person::login(
        w.subject.c2s(),
        &account.jid,
        &account.password,
        "hostile-check",
    )
    .await?;
    p.client.close().await
}

/// PS-77, the verdict: none of `answers` (the subject's iqs with the hello's id) is a result.
/// An iq error, a stream error or silence refuse the hello; a result synchronizes over the
/// unauthenticated stream.
pub fn not_answered(answers: &[Element]) -> Outcome {
    match answers.iter().find(|a| a.attr("type") == Some("result")) {
        Some(a) => Outcome::Fail(format!("answered as a hello: {}", verdict::show(a))),
        None => Outcome::Pass,
    }
}

/// PS-77: a hello on a stream without dialback, and on a stream whose dialback the peer's
/// authoritative server refused, is not answered as a hello (no result; a stream error or an
/// iq error is the refusal).
async fn unauthenticated(w: &Wire, neg: &Negotiated) -> Result<Vec<Check>> {
    let peer = w.target.peer.domain.clone();
    let hello = |id: &str| -> Result<String> {
        let h = neg.peer.to_element().map_err(|e| format!("hello: {e}"))?;
        Ok(format!(
            "<iq xmlns='jabber:server' from='{peer}' to='{}' id='{id}' type='set'>{}</iq>",
            w.target.domain,
            String::from(&h)
        ))
    };
    let mut checks = Vec::new();
    // No dialback at all.
    let id = format!("{HOSTILE}wire-no-dialback");
    let at = Instant::now();
    let mut bare = Hostile::open(w, &peer).await?;
    bare.send(&hello(&id)?).await?;
    tokio::time::sleep(QUIET).await;
    checks.push(Check::with(
        "a hello on a stream that has not authenticated by dialback is not answered",
        &["PS-77"],
        not_answered(&answered(w, &[&bare], at, &id)),
    ));
    // A key the authoritative server (the suite's peer) refuses.
    let id = format!("{HOSTILE}wire-bad-key");
    let at = Instant::now();
    let mut forged = Hostile::open(w, &peer).await?;
    let verdict = forged
        .dialback(&peer, &w.target.domain, "0".repeat(64))
        .await?;
    forged.send(&hello(&id)?).await.ok();
    tokio::time::sleep(QUIET).await;
    let outcome = if verdict == "valid" {
        Outcome::Fail("a forged dialback key was accepted as valid".into())
    } else {
        not_answered(&answered(w, &[&forged], at, &id))
    };
    checks.push(Check::with(
        "a forged dialback key is refused, and a hello on that stream is not answered",
        &["PS-77"],
        outcome,
    ));
    Ok(checks)
}

/// Two connections that stall: one in the middle of its stream header, one in the middle of a
/// stanza after a header. Held open by the caller.
async fn stalls(w: &Wire) -> Result<Vec<TcpStream>> {
    let header = xml::header(
        SERVER,
        Some(&w.target.peer.domain),
        Some(&w.target.domain),
        None,
    );
    let mut first = connect(w).await?;
    first
        .write_all(&header.as_bytes()[..header.len() / 2])
        .await?;
    let mut second = connect(w).await?;
    second
        .write_all(
            format!(
                "{header}<iq type='set' id='{HOSTILE}stall' from='{}' to='{}'><hello xmlns='{}'",
                w.target.peer.domain,
                w.target.domain,
                ns::PRESENCE_SYNC
            )
            .as_bytes(),
        )
        .await?;
    Ok(vec![first, second])
}

/// `hostile` (see the [module documentation](self)). A step that cannot be carried out (the
/// link does not come back, a stream cannot be opened) ends the scenario with a failing check;
/// the checks made until then stay.
pub async fn hostile(w: &mut Wire) -> Result<Body> {
    let mut b = Body::default();
    let mark = w.mark();
    if let Err(e) = play_all(w, &mut b).await {
        b.checks.push(
            Check::with("hostile ran to its end", &[], Outcome::Fail(e.to_string()))
                .with_id("completed"),
        );
    }
    b.phase = Some(w.phase_since(&mark));
    Ok(b)
}

async fn play_all(w: &mut Wire, b: &mut Body) -> Result<()> {
    let before = rosters(w).await?;
    let stalled = stalls(w).await?;
    let rename = Rename::new(w);
    let mut sim_cases: BTreeMap<&str, Case> =
        cases::all().into_iter().map(|c| (c.name, c)).collect();
    let mut take = |name: &str| {
        sim_cases
            .remove(name)
            .ok_or_else(|| format!("the simulation has no hostile case {name:?}"))
    };
    let mut played: Vec<Case> = Vec::new();
    for name in FROM_SIMULATION {
        let case = take(name)?;
        played.push(case);
    }
    // The wire's own cases, then the floods.
    played.extend(wire_cases());
    for name in FLOODS {
        played.push(take(name)?);
    }
    let mut neg = fresh_session(w).await?;
    // The state checks need views that are right before the inputs (the previous scenarios
    // left them right, or the subject is broken already: then a short wait is enough).
    let baseline = super::people::converge(&mut w.people(), BASELINE_WAIT).await?;
    let unjudged = baseline
        .first()
        .map(|d| format!("the views were not right before the hostile inputs: {d}"));
    b.checks.extend(unauthenticated(w, &neg).await?);
    let mut stream = None;
    for (n, case) in played.iter().enumerate() {
        let checks = play(
            w,
            &mut stream,
            case,
            n,
            neg.clone(),
            &rename,
            unjudged.as_deref(),
        )
        .await?;
        b.checks.extend(checks);
        let next = if case.name == REFUSED_THEN_BATCH {
            fresh_session(w).await
        } else {
            resume(w, stream.as_mut(), &neg, n).await
        };
        neg = next.map_err(|e| format!("after {:?}: {e}", case.name))?;
    }
    b.checks
        .push(fallback::three_failures(w).await?.with_id("three-failures"));
    // The subject still accepts s2s streams and logins, with the stalled connections still
    // open, and every user sees exactly its contacts' presence.
    let s2s = Hostile::authenticated(w).await.map(|_| ());
    let c2s = log_in_again(w).await;
    w.kick()?;
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = s2s {
        problems.push(format!("a new s2s stream of the peer domain: {e}"));
    }
    if let Err(e) = c2s {
        problems.push(format!("a new c2s session: {e}"));
    }
    let views = match &unjudged {
        // Views that were wrong before cannot show a recovery.
        Some(why) => Err(why.clone()),
        None => Ok(w.converge().await?),
    };
    let name = format!(
        "after {} hostile inputs, with {} stalled connections open, the subject accepts s2s streams and logins and every user sees exactly its contacts' presence",
        played.len(),
        stalled.len()
    );
    let reqs = truth_reqs(&["PS-40", "PS-44"]);
    let recovered = match views {
        Ok(diffs) => {
            problems.extend(diffs);
            Check::empty(name, &reqs, &problems)
        }
        Err(_) if !problems.is_empty() => Check::empty(name, &reqs, &problems),
        Err(why) => Check::with(name, &reqs, Outcome::NotExercised(why)),
    };
    b.checks.push(recovered.with_id("recovered"));
    drop(stalled);
    let after = rosters(w).await?;
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(*v))
        .map(|((u, c), v)| {
            format!(
                "{u}'s item for {c} was {v:?}, now {:?}",
                after.get(&(u.clone(), c.clone()))
            )
        })
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|(u, c)| format!("{u} has a new item for {c}")),
        )
        .collect();
    b.checks.push(
        Check::empty(
            "no roster item changed after the hostile inputs",
            &["PS-39", "PS-62", "PS-74"],
            &changed,
        )
        .with_id("rosters-unchanged"),
    );
    // Last, with the link up and every user logged in again: a user's stanzas carrying the
    // extension's elements (PS-94).
    b.checks.push(
        clients::extensions_stripped(w)
            .await?
            .with_id("client-extensions-stripped"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_case_exists_in_the_simulation() {
        let names: BTreeSet<&str> = cases::all().iter().map(|c| c.name).collect();
        for n in FROM_SIMULATION.iter().chain(&FLOODS) {
            assert!(names.contains(n), "{n}");
        }
    }

    fn el(xml: &str) -> Element {
        xml.parse().expect("test XML")
    }

    #[test]
    fn a_hello_answered_on_an_unauthenticated_stream_fails() {
        let result = el(
            "<iq xmlns='jabber:server' type='result' id='h'><hello xmlns='urn:xmpp:presence-sync:0'/></iq>",
        );
        let error = el("<iq xmlns='jabber:server' type='error' id='h'/>");
        assert_eq!(not_answered(&[]), Outcome::Pass);
        assert_eq!(not_answered(std::slice::from_ref(&error)), Outcome::Pass);
        assert!(matches!(not_answered(&[error, result]), Outcome::Fail(_)));
    }

    #[test]
    fn an_exchange_needs_a_request_and_the_other_side_s_result() {
        let set = |id: &str| el(&format!("<iq xmlns='jabber:server' type='set' id='{id}'/>"));
        let result = |id: &str| {
            el(&format!(
                "<iq xmlns='jabber:server' type='result' id='{id}'/>"
            ))
        };
        assert!(!exchanged(&[(true, set("a"))]));
        // Its own result, or a result of another id, is no exchange.
        assert!(!exchanged(&[(true, set("a")), (true, result("a"))]));
        assert!(!exchanged(&[(true, set("a")), (false, result("b"))]));
        assert!(exchanged(&[(true, set("a")), (false, result("a"))]));
        assert!(exchanged(&[(false, set("b")), (true, result("b"))]));
    }

    #[test]
    fn renaming_is_done_at_once() {
        let r = Rename::from_pairs(&[
            ("bob@b.example", "peer-1@b.test"),
            ("b.example", "b.test"),
            ("a.example", "b.example"),
        ]);
        assert_eq!(
            r.apply("<x from='bob@b.example/desk' to='a.example' by='b.example'/>"),
            "<x from='peer-1@b.test/desk' to='b.example' by='b.test'/>"
        );
    }
}
