//! The hostile inputs, one case each, and the runner that plays them on a fresh [`Bench`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;

use super::bench::{A, B, Bench, Negotiated, jid};
use super::verdict::{self, show};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::subject::{Implementation, Reference};
use crate::digest::{PairHasher, Prefix, PresenceDigest};
use crate::model::Epoch;
use crate::wire::{Condition, Limits, ns};

/// A test of the result the subject must answer with.
pub(super) type ResultTest = Box<dyn Fn(Option<&Element>) -> Outcome>;

/// What the subject must do with a hostile input.
pub(super) enum Expect {
    /// Answer with an iq error carrying this condition (PS-69).
    Error(Condition),
    /// Answer with a result that passes this test.
    Result(ResultTest),
    /// Answer `<bad-format/>` or process it, but act on nothing in it: no repair, no roster
    /// change (PS-62).
    NotActedOn,
    /// Send no error reply (PS-70); a stream close is allowed.
    Discarded,
    /// Close the stream with this stream error condition (PS-71).
    Stream(&'static str),
}

/// What a case builds its stanza from.
pub(super) struct Ctx {
    /// The id of the injected request.
    pub id: String,
    /// The hellos of the session.
    pub neg: Negotiated,
}

impl Ctx {
    fn limits(&self) -> Limits {
        self.neg.limits()
    }

    /// The peer's current epoch.
    fn epoch(&self) -> Epoch {
        self.neg.peer.epoch
    }

    /// `<iq type='set'/>` from the peer domain carrying `payload`.
    fn set(&self, payload: &str) -> String {
        format!(
            "<iq xmlns='jabber:server' from='{B}' to='{A}' id='{}' type='set'>{payload}</iq>",
            self.id
        )
    }

    /// A `<reconcile/>` query of `set` with `children`.
    fn reconcile(&self, set: &str, children: &str) -> String {
        let ns = ns::PRESENCE_SYNC;
        self.set(&format!(
            "<reconcile xmlns='{ns}' set='{set}'>{children}</reconcile>"
        ))
    }

    /// A `<batch/>` with `epoch` and `items`.
    fn batch_at(&self, epoch: Epoch, items: &str) -> String {
        let ns = ns::PRESENCE_SYNC;
        self.set(&format!(
            "<batch xmlns='{ns}' epoch='{epoch}'>{items}</batch>"
        ))
    }

    /// A `<batch/>` of the peer's current epoch.
    fn batch(&self, items: &str) -> String {
        self.batch_at(self.epoch(), items)
    }
}

/// `<item/>` of `publisher` with `children`.
fn item(publisher: &str, children: &str) -> String {
    format!(
        "<item xmlns='{}' jid='{publisher}'>{children}</item>",
        ns::PRESENCE_SYNC
    )
}

/// A presence inside an item.
fn item_presence(from: &str, children: &str) -> String {
    format!("<presence xmlns='jabber:server' from='{from}'>{children}</presence>")
}

/// A presence from `from` to the subject's domain with `<fanout/>` (and `attrs` on it).
fn fanout(from: &str, attrs: &str, children: &str, fanout_attrs: &str) -> String {
    format!(
        "<presence xmlns='jabber:server' from='{from}' to='{A}'{attrs}>{children}\
         <fanout xmlns='{}'{fanout_attrs}/></presence>",
        ns::PRESENCE_SYNC
    )
}

/// `n` distinct short ids in canonical base64.
pub(super) fn ids(n: usize) -> String {
    let bytes: Vec<u8> = (1..=n as u64).flat_map(|i| i.to_be_bytes()).collect();
    STANDARD.encode(bytes)
}

/// A 16-byte fingerprint.
const FP: &str = "AAECAwQFBgcICQoLDA0ODw==";

/// A hostile input.
pub(super) struct Case {
    /// Its name in the checks.
    pub name: &'static str,
    /// Requirements of the answer check.
    pub reqs: &'static [&'static str],
    /// Requirements of the state check (nothing applied).
    pub state_reqs: &'static [&'static str],
    /// Done to the bench before the input (most do nothing).
    pub before: fn(&mut Bench),
    /// The input and what must happen.
    pub build: fn(&Ctx) -> (String, Expect),
}

fn nothing(_: &mut Bench) {}

/// A new pair of streams: the link drops and comes back, the hello exchange is under way.
fn new_streams(bench: &mut Bench) {
    bench.net.partition(A, B);
    bench.net.repair(A, B);
}

use Condition::*;

/// Every case, in the order of the checks.
pub(super) fn all() -> Vec<Case> {
    vec![
        Case {
            name: "reconcile with a child in the wrong direction",
            reqs: &["PS-22"],
            state_reqs: &["PS-22"],
            before: nothing,
            build: |c| {
                let q = c.reconcile("presence", "<gone ids='AQIDBAUGBwg='/>");
                (q, Expect::Error(BadFormat))
            },
        },
        Case {
            name: "reconcile with an unknown attribute",
            reqs: &["PS-22", "PS-72"],
            state_reqs: &["PS-72"],
            before: nothing,
            build: |c| {
                let q = c
                    .reconcile("presence", "<ids prefix='' ids=''/>")
                    .replace("set='presence'", "set='presence' colour='blue'");
                (q, Expect::Error(BadFormat))
            },
        },
        Case {
            name: "id list in non-canonical base64 (no padding)",
            reqs: &["PS-73", "PS-21"],
            state_reqs: &["PS-73"],
            before: nothing,
            build: |c| {
                let q = c.reconcile("presence", "<ids prefix='' ids='AQIDBAUGBwg'/>");
                (q, Expect::Error(BadFormat))
            },
        },
        Case {
            name: "item JID not in normalized form",
            reqs: &["PS-73", "PS-39"],
            state_reqs: &["PS-73"],
            before: nothing,
            build: |c| {
                (
                    c.batch(&item("Bob@b.example", "")),
                    Expect::Error(BadFormat),
                )
            },
        },
        Case {
            name: "id list longer than max-items",
            reqs: &["PS-82"],
            state_reqs: &["PS-82"],
            before: nothing,
            build: |c| {
                let n = c.limits().max_items as usize + 1;
                let q = c.reconcile("presence", &format!("<ids prefix='' ids='{}'/>", ids(n)));
                (q, Expect::Error(TooManyItems))
            },
        },
        Case {
            name: "reconcile with more than max-items split and ids",
            reqs: &["PS-30", "PS-50"],
            state_reqs: &["PS-30"],
            before: nothing,
            build: |c| {
                let n = c.limits().max_items + 1;
                let children: String = (0..n)
                    .map(|i| format!("<ids prefix='{i:04x}' ids=''/>"))
                    .collect();
                (
                    c.reconcile("presence", &children),
                    Expect::Error(TooManyItems),
                )
            },
        },
        Case {
            name: "batch with more than max-items items",
            reqs: &["PS-42", "PS-50"],
            state_reqs: &["PS-42"],
            before: nothing,
            build: |c| {
                let n = c.limits().max_items;
                let mut items = item("bob@b.example", "");
                items.extend((0..n).map(|i| item(&format!("u{i}@b.example"), "")));
                (c.batch(&items), Expect::Error(TooManyItems))
            },
        },
        Case {
            name: "batch larger than max-bytes",
            reqs: &["PS-50"],
            state_reqs: &["PS-50"],
            before: nothing,
            build: |c| {
                let status = "x".repeat(c.limits().max_bytes as usize);
                let p = item_presence("bob@b.example/desk", &format!("<status>{status}</status>"));
                (
                    c.batch(&item("bob@b.example", &p)),
                    Expect::Error(TooManyItems),
                )
            },
        },
        Case {
            name: "item for a user of the receiving domain",
            reqs: &["PS-39"],
            state_reqs: &["PS-39"],
            before: nothing,
            build: |c| {
                let p = item_presence("alice@a.example/evil", "<status>spoofed</status>");
                (
                    c.batch(&item("alice@a.example", &p)),
                    Expect::Error(ForeignJid),
                )
            },
        },
        Case {
            name: "item for a user of a third domain",
            reqs: &["PS-39"],
            state_reqs: &["PS-39"],
            before: nothing,
            build: |c| {
                let p = item_presence("carol@c.example/evil", "");
                (
                    c.batch(&item("carol@c.example", &p)),
                    Expect::Error(ForeignJid),
                )
            },
        },
        Case {
            name: "except of a third domain",
            reqs: &["PS-39"],
            state_reqs: &["PS-39"],
            before: nothing,
            build: |c| {
                let p = item_presence(
                    "bob@b.example/desk",
                    "<show>dnd</show><status>busy</status>",
                );
                let e = format!(
                    "<except xmlns='{}' jid='zed@c.example'/>",
                    ns::PRESENCE_SYNC
                );
                (
                    c.batch(&item("bob@b.example", &(p + &e))),
                    Expect::Error(ForeignJid),
                )
            },
        },
        Case {
            name: "edge with both ends in the peer domain",
            reqs: &["PS-74"],
            state_reqs: &["PS-74"],
            before: nothing,
            build: |c| {
                let e = "<edge publisher='bob@b.example' subscriber='ben@b.example'/>";
                (c.reconcile("edges", e), Expect::Error(ForeignJid))
            },
        },
        Case {
            name: "domain-level presence of a third domain's user",
            reqs: &["PS-70", "PS-39"],
            state_reqs: &["PS-39"],
            before: nothing,
            build: |_| {
                (
                    fanout("carol@c.example/evil", "", "", ""),
                    Expect::Discarded,
                )
            },
        },
        Case {
            name: "hello with an unsupported hash algorithm",
            reqs: &["PS-17"],
            state_reqs: &["PS-17"],
            before: nothing,
            build: |c| {
                let roots: String = [("edges", 1), ("published", 1), ("cached", 0)]
                    .iter()
                    .map(|(s, n)| format!("<root set='{s}' count='{n}' fp='{FP}'/>"))
                    .collect();
                let hello = format!(
                    "<hello xmlns='{}' epoch='{}' hash='md5'>{roots}</hello>",
                    ns::PRESENCE_SYNC,
                    c.epoch()
                );
                (c.set(&hello), Expect::Error(UnsupportedHash))
            },
        },
        Case {
            name: "batch before the hello exchange of new streams",
            reqs: &["PS-75"],
            state_reqs: &["PS-75"],
            before: new_streams,
            build: |c| {
                (
                    c.batch(&item("bob@b.example", "")),
                    Expect::Error(OutOfOrder),
                )
            },
        },
        Case {
            name: "batch of a stale epoch",
            reqs: &["PS-43"],
            state_reqs: &["PS-43"],
            before: nothing,
            build: |c| {
                let stale = Epoch(c.epoch().0 ^ 1);
                (
                    c.batch_at(stale, &item("bob@b.example", "")),
                    Expect::Error(StaleEpoch),
                )
            },
        },
        Case {
            name: "domain-level presence of a publisher without cache entry",
            reqs: &["PS-48"],
            state_reqs: &["PS-48"],
            before: nothing,
            build: |_| {
                (
                    fanout("bea@b.example/sneaky", "", "", ""),
                    Expect::Discarded,
                )
            },
        },
        Case {
            name: "domain-level presence of type probe",
            reqs: &["PS-46", "PS-70"],
            state_reqs: &["PS-46"],
            before: nothing,
            build: |_| {
                let p = fanout("bob@b.example/desk", " type='probe'", "", "");
                (p, Expect::Discarded)
            },
        },
        Case {
            name: "edge with a JID not in normalized form",
            reqs: &["PS-62"],
            state_reqs: &["PS-62"],
            before: nothing,
            build: |c| {
                let e = "<edge publisher='alice@a.example' subscriber='Zed@b.example'/>";
                (c.reconcile("edges", e), Expect::NotActedOn)
            },
        },
        Case {
            name: "query for a prefix deeper than the stored depth",
            reqs: &["PS-15", "PS-26"],
            state_reqs: &["PS-15"],
            before: nothing,
            build: |c| {
                let alice = jid("alice@a.example");
                let hasher = PairHasher::new(c.neg.subject.hash, A, B);
                let placement = PresenceDigest::new(hasher, 1).placement(&alice);
                let prefix = Prefix::of_hash(placement, 8);
                let q = c.reconcile("presence", &format!("<ids prefix='{prefix}' ids=''/>"));
                let test = move |answer: Option<&Element>| match verdict::result_answer(answer) {
                    Err(e) => Outcome::Fail(e),
                    Ok(Some(r)) if r.is("reconcile", ns::PRESENCE_SYNC) => {
                        let has = r
                            .children()
                            .any(|i| i.name() == "item" && i.attr("jid") == Some(alice.as_str()));
                        if has {
                            Outcome::Pass
                        } else {
                            Outcome::Fail(format!("no item for {alice}: {}", show(&r)))
                        }
                    }
                    Ok(_) => Outcome::Fail("the result carries no <reconcile/>".into()),
                };
                (q, Expect::Result(Box::new(test)))
            },
        },
        Case {
            name: "request whose from is not of the peer domain",
            reqs: &["PS-71", "PS-77"],
            state_reqs: &["PS-71"],
            before: nothing,
            build: |c| {
                let q = c
                    .reconcile("presence", "<ids prefix='' ids=''/>")
                    .replace(&format!("from='{B}'"), "from='c.example'");
                (q, Expect::Stream("invalid-from"))
            },
        },
        Case {
            name: "shutdown with an unknown attribute",
            reqs: &["PS-70"],
            state_reqs: &["PS-70"],
            before: nothing,
            build: |c| {
                let m = format!(
                    "<message xmlns='jabber:server' from='{B}' to='{A}'><shutdown xmlns='{}' \
                     epoch='{}' colour='red'/></message>",
                    ns::PRESENCE_SYNC,
                    c.epoch()
                );
                (m, Expect::Discarded)
            },
        },
        Case {
            name: "domain-level presence with an unknown attribute",
            reqs: &["PS-70"],
            state_reqs: &["PS-70"],
            before: nothing,
            build: |_| {
                let p = fanout(
                    "bob@b.example/desk",
                    "",
                    "<show>chat</show>",
                    " colour='red'",
                );
                (p, Expect::Discarded)
            },
        },
        Case {
            name: "repair marker with an unknown attribute",
            reqs: &["PS-70"],
            state_reqs: &["PS-70"],
            before: nothing,
            build: |_| {
                let p = format!(
                    "<presence xmlns='jabber:server' from='bob@b.example' to='alice@a.example' \
                     type='unsubscribed'><repair xmlns='{}' colour='red'/></presence>",
                    ns::PRESENCE_SYNC
                );
                (p, Expect::Discarded)
            },
        },
    ]
}

/// The checks of one case, and the differences left after the recovery (empty: recovered);
/// `None` for the latter if the case could not run.
pub(super) fn run(
    case: &Case,
    imp: &dyn Implementation,
    seed: u64,
) -> (Vec<Check>, Option<Vec<String>>) {
    let name = |what: &str| format!("hostile: {}: {what}", case.name);
    let mut answer_reqs = case.reqs.to_vec();
    let mut bench = Bench::new(imp, &Reference::default(), seed);
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
    };
    let (xml, expect) = (case.build)(&ctx);
    let stanza: Element = xml.parse().expect("the bench writes well-formed stanzas");
    let accounts = bench.accounts();
    let mark = bench.mark();
    bench.inject(stanza);
    bench.settle();
    if let Some(why) = bench.stuck.clone() {
        let checks = vec![
            Check::with(name("answer"), &answer_reqs, Outcome::Fail(why.clone())),
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
    let answer = match &expect {
        Expect::Error(c) => {
            answer_reqs.push("PS-69");
            verdict::error_answer(bench.answer(&ctx.id), *c)
        }
        Expect::Result(test) => test(bench.answer(&ctx.id)),
        Expect::NotActedOn => {
            if let Some(r) = sent
                .iter()
                .find(|s| s.has_child("repair", ns::PRESENCE_SYNC))
            {
                changes.push(format!("a repair was sent: {}", show(r)));
            }
            match verdict::result_answer(bench.answer(&ctx.id)) {
                Ok(_) => Outcome::Pass,
                Err(_) => verdict::error_answer(bench.answer(&ctx.id), BadFormat),
            }
        }
        Expect::Discarded => verdict::discarded(&sent),
        Expect::Stream(condition) => {
            verdict::stream_closed(&sent, condition, &ctx.id, bench.net.is_link_up(A, B))
        }
    };
    let state = verdict::intact(&bench.diff(), &changes);
    let checks = vec![
        Check::with(name("answer"), &answer_reqs, answer),
        Check::with(name("nothing applied"), case.state_reqs, state),
    ];
    (checks, Some(bench.recover()))
}

/// Every case on a fresh bench, then one check that the subject recovered after each.
pub(super) fn run_all(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
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
