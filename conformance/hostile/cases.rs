//! The hostile inputs, one case each; [`runner`] plays them on a fresh [`Bench`] and judges
//! the answers.

mod runner;

pub(super) use runner::run_all;
pub(crate) use runner::{answer_requirements, judge};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;

use super::bench::{A, B, Bench, Negotiated, jid};
use super::verdict::{self, show};
use crate::conformance::check::Outcome;
use crate::digest::sketch::{Sketch, cells_for};
use crate::digest::{PairHasher, Prefix, PresenceDigest};
use crate::model::Epoch;
use crate::wire::{Condition, Limits, WireElement, ns};

/// A test of the result the subject must answer with.
pub(crate) type ResultTest = Box<dyn Fn(Option<&Element>) -> Outcome>;

/// What the subject must do with a hostile input.
pub(crate) enum Expect {
    /// Answer with an iq error carrying this condition (PS-69).
    Error(Condition),
    /// Answer with a result that passes this test.
    Result(ResultTest),
    /// Answer `<bad-format/>` or process it, but act on nothing in it: no repair, no roster
    /// change (PS-62).
    NotActedOn,
    /// Send no error reply (PS-70); a stream close is allowed.
    Discarded,
    /// Answer nothing at all (PS-94: a stanza that a user of the peer domain made).
    Ignored,
    /// Close the stream with this stream error condition (PS-71).
    Stream(&'static str),
    /// A flood: every injected request answered, with a result or one of these refusals
    /// (XEP §Resource Exhaustion).
    Answered(&'static [Condition]),
    /// A flood past a bound: every request answered, by a result or this refusal, and at
    /// least one refused.
    Refused(Condition),
}

/// What a case builds its stanza from.
pub(crate) struct Ctx {
    /// The id of the injected request.
    pub id: String,
    /// The hellos of the session.
    pub neg: Negotiated,
    /// The names of the run: a case that hashes a name (a bucket's prefix) or looks for one
    /// in an answer uses these, since a wire run renames the simulation's names in the text
    /// of an input but not in what a hash was computed from.
    pub names: Names,
}

/// The subject's and the peer's domains and the subject's first user, as the subject knows
/// them.
pub(crate) struct Names {
    /// The subject's domain.
    pub subject: String,
    /// The peer's domain.
    pub peer: String,
    /// The subject's first user, online throughout.
    pub first: String,
    /// How many users the subject has (all online).
    pub users: usize,
}

impl Names {
    /// The simulation's bench.
    pub(crate) fn bench() -> Names {
        Names {
            subject: A.to_owned(),
            peer: B.to_owned(),
            first: super::bench::A_USERS[0].to_owned(),
            users: super::bench::A_USERS.len(),
        }
    }
}

impl Ctx {
    pub(crate) fn limits(&self) -> Limits {
        self.neg.limits()
    }

    /// The peer's current epoch.
    pub(crate) fn epoch(&self) -> Epoch {
        self.neg.peer.epoch
    }

    /// `<iq type='set'/>` from the peer domain carrying `payload`.
    pub(crate) fn set(&self, payload: &str) -> String {
        format!(
            "<iq xmlns='jabber:server' from='{B}' to='{A}' id='{}' type='set'>{payload}</iq>",
            self.id
        )
    }

    /// A `<reconcile/>` query of `set` with `children`.
    pub(crate) fn reconcile(&self, set: &str, children: &str) -> String {
        let ns = ns::PRESENCE_SYNC;
        self.set(&format!(
            "<reconcile xmlns='{ns}' set='{set}'>{children}</reconcile>"
        ))
    }

    /// A `<batch/>` with `epoch` and `items`.
    pub(crate) fn batch_at(&self, epoch: Epoch, items: &str) -> String {
        let ns = ns::PRESENCE_SYNC;
        self.set(&format!(
            "<batch xmlns='{ns}' epoch='{epoch}'>{items}</batch>"
        ))
    }

    /// A `<batch/>` of the peer's current epoch.
    pub(crate) fn batch(&self, items: &str) -> String {
        self.batch_at(self.epoch(), items)
    }

    /// `n` requests carrying `payload(i)`, with ids `{id}-{i}` (a flood).
    pub(crate) fn flood(&self, n: usize, payload: impl Fn(usize) -> String) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "<iq xmlns='jabber:server' from='{B}' to='{A}' id='{}-{i}' type='set'>{}</iq>",
                    self.id,
                    payload(i)
                )
            })
            .collect()
    }

    /// The peer's hello again, with `epoch`.
    pub(crate) fn hello_with(&self, epoch: Epoch) -> String {
        let mut hello = self.neg.peer.clone();
        hello.epoch = epoch;
        String::from(&hello.to_element().expect("a hello serialises"))
    }
}

/// `<n xmlns='urn:x'><n>…</n></n>`, `depth` elements deep.
pub(crate) fn nested(depth: usize) -> String {
    format!(
        "<n xmlns='urn:x'>{}{}",
        "<n>".repeat(depth - 1),
        "</n>".repeat(depth)
    )
}

/// 256 bytes that match no fingerprint, in base64.
fn odd_fps(seed: u8) -> String {
    STANDARD.encode(
        (0..=255u8)
            .map(|i| i.wrapping_mul(31) ^ seed)
            .collect::<Vec<_>>(),
    )
}

/// `<item/>` of `publisher` with `children`.
pub(crate) fn item(publisher: &str, children: &str) -> String {
    format!(
        "<item xmlns='{}' jid='{publisher}'>{children}</item>",
        ns::PRESENCE_SYNC
    )
}

/// A presence inside an item.
pub(crate) fn item_presence(from: &str, children: &str) -> String {
    format!("<presence xmlns='jabber:server' from='{from}'>{children}</presence>")
}

/// A presence from `from` to the subject's domain with `<fanout/>` (and `attrs` on it).
pub(crate) fn fanout(from: &str, attrs: &str, children: &str, fanout_attrs: &str) -> String {
    format!(
        "<presence xmlns='jabber:server' from='{from}' to='{A}'{attrs}>{children}\
         <fanout xmlns='{}'{fanout_attrs}/></presence>",
        ns::PRESENCE_SYNC
    )
}

/// `n` distinct short ids in canonical base64.
pub(super) fn ids(n: usize) -> String {
    ids_from(n, 0)
}

/// `n` distinct short ids in canonical base64, from `first + 1` on.
fn ids_from(n: usize, first: u64) -> String {
    let bytes: Vec<u8> = (first + 1..=first + n as u64)
        .flat_map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes())
        .collect();
    STANDARD.encode(bytes)
}

/// A 16-byte fingerprint.
const FP: &str = "AAECAwQFBgcICQoLDA0ODw==";

/// A hostile input.
pub(crate) struct Case {
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

/// A presence query with an attribute the XEP does not define (refused, PS-72).
pub(crate) fn unknown_attribute(c: &Ctx) -> String {
    c.reconcile("presence", "<ids prefix='' ids=''/>")
        .replace("set='presence'", "set='presence' colour='blue'")
}

/// Every case, in the order of the checks.
pub(crate) fn all() -> Vec<Case> {
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
            build: |c| (unknown_attribute(c), Expect::Error(BadFormat)),
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
            // A refusal ends the session (PS-57): the batch that follows it on the same
            // stream, before any new hello, is outside a session.
            name: "batch after a refusal, before a new hello",
            reqs: &["PS-75", "PS-57"],
            state_reqs: &["PS-75"],
            before: nothing,
            build: |c| {
                let refused = unknown_attribute(c)
                    .replace(&format!("id='{}'", c.id), &format!("id='{}-refused'", c.id));
                let batch = c.batch(&item("bob@b.example", ""));
                (format!("{refused}{batch}"), Expect::Error(OutOfOrder))
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
                let alice = jid(&c.names.first);
                let hasher = PairHasher::new(c.neg.subject.hash, &c.names.subject, &c.names.peer);
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
            name: "sketch with a truncated cell",
            reqs: &["PS-95", "PS-22"],
            state_reqs: &["PS-95"],
            before: nothing,
            build: |c| {
                // 14 bytes: not 13 per cell.
                let data = STANDARD.encode([0u8; 14]);
                let q = c.reconcile("presence", &format!("<sketch prefix='' data='{data}'/>"));
                (q, Expect::Error(BadFormat))
            },
        },
        Case {
            name: "sketch of five cells",
            reqs: &["PS-95", "PS-22"],
            state_reqs: &["PS-95"],
            before: nothing,
            build: |c| {
                // Whole cells, but not a multiple of 4 of them.
                let data = STANDARD.encode([0u8; 13 * 5]);
                let q = c.reconcile("presence", &format!("<sketch prefix='' data='{data}'/>"));
                (q, Expect::Error(BadFormat))
            },
        },
        Case {
            // A sketch that decodes to one id of the receiver's that the receiver does not
            // hold (a cell of count 255, the cells of no id the subject has): not decodable
            // (XEP §Sketches, PS-95), so the root is handed back as a split, and no item is
            // sent for it.
            name: "sketch naming an id the receiver does not hold as its own",
            reqs: &["PS-95", "PS-31"],
            state_reqs: &[],
            before: nothing,
            build: |c| {
                let cells = cells_for(c.names.users as u64 + 1);
                let stranger = crate::digest::ShortId(*b"stranger");
                let mut bytes = Sketch::of(cells, [&stranger]).to_bytes();
                for cell in bytes.chunks_mut(crate::digest::sketch::CELL_BYTES) {
                    if cell[0] == 1 {
                        cell[0] = 255;
                    }
                }
                let data = STANDARD.encode(bytes);
                let q = c.reconcile("presence", &format!("<sketch prefix='' data='{data}'/>"));
                let test = move |answer: Option<&Element>| match verdict::result_answer(answer) {
                    Err(e) => Outcome::Fail(e),
                    Ok(Some(r)) if r.is("reconcile", ns::PRESENCE_SYNC) => {
                        let back = r
                            .children()
                            .any(|n| n.name() == "split" && n.attr("prefix") == Some(""));
                        let items = r.children().filter(|i| i.name() == "item").count();
                        if back && items == 0 {
                            Outcome::Pass
                        } else {
                            Outcome::Fail(format!(
                                "expected the root handed back as a split and no item: {}",
                                show(&r)
                            ))
                        }
                    }
                    Ok(_) => Outcome::Fail("the result carries no <reconcile/>".into()),
                };
                (q, Expect::Result(Box::new(test)))
            },
        },
        Case {
            // Not hostile: a cache holder whose cache is empty but for nothing, sketching it
            // (XEP §Sketches): the sketch of no id decodes to the subject's whole published
            // set, so the answer carries an item for each of its entries.
            name: "sketch of an empty node",
            reqs: &["PS-95", "PS-26"],
            state_reqs: &[],
            before: nothing,
            build: |c| {
                let alice = jid(&c.names.first);
                // Sized for every user of the subject: a sketch that could not decode would
                // be handed back instead (PS-31), and the case would prove nothing.
                let cells = cells_for(c.names.users as u64);
                let data = STANDARD.encode(Sketch::new(cells).to_bytes());
                let q = c.reconcile("presence", &format!("<sketch prefix='' data='{data}'/>"));
                let test = move |answer: Option<&Element>| match verdict::result_answer(answer) {
                    Err(e) => Outcome::Fail(e),
                    Ok(Some(r)) if r.is("reconcile", ns::PRESENCE_SYNC) => {
                        let has = r
                            .children()
                            .any(|i| i.name() == "item" && i.attr("jid") == Some(alice.as_str()));
                        let gone = r.children().any(|i| i.name() == "gone");
                        if has && !gone {
                            Outcome::Pass
                        } else {
                            Outcome::Fail(format!(
                                "expected an item for {alice} and no <gone/>: {}",
                                show(&r)
                            ))
                        }
                    }
                    Ok(_) => Outcome::Fail("the result carries no <reconcile/>".into()),
                };
                (q, Expect::Result(Box::new(test)))
            },
        },
        Case {
            // Not hostile: what a peer with another published set asks. XEP §Descent, PS-24:
            // each differing child of a split is answered with its ids when it holds at most
            // leaf-items entries. The bench's subject has 3 users, so none of the 16 children
            // of its published set holds more than 3: every one is answered with <ids/> (an
            // empty one with ids=''), never with a <split/> (which would cost the peer a round
            // trip per level, down to 8 nibbles).
            name: "split of the root matching none of its children",
            reqs: &["PS-24"],
            state_reqs: &[],
            before: nothing,
            build: |c| {
                let q = c.reconcile(
                    "presence",
                    &format!("<split prefix='' fps='{}'/>", odd_fps(7)),
                );
                let leaf = c.limits().leaf_items as usize;
                let users = c.names.users;
                let test = move |answer: Option<&Element>| {
                    let r = match verdict::result_answer(answer) {
                        Err(e) => return Outcome::Fail(e),
                        Ok(Some(r)) if r.is("reconcile", ns::PRESENCE_SYNC) => r,
                        Ok(_) => return Outcome::Fail("the result carries no <reconcile/>".into()),
                    };
                    let mut prefixes = Vec::new();
                    for child in r.children() {
                        let prefix = child.attr("prefix").unwrap_or("?");
                        // Past leaf-items a child may hold more than leaf-items entries: a
                        // split answers it then (or ids, at the subject's depth).
                        let allowed =
                            child.name() == "ids" || (users > leaf && child.name() == "split");
                        if !allowed {
                            return Outcome::Fail(format!(
                                "child {prefix:?} (at most {users} entries, leaf-items {leaf}) \
                                 answered with <{}/>, not <ids/>: {}",
                                child.name(),
                                show(&r)
                            ));
                        }
                        prefixes.push(prefix.to_owned());
                    }
                    let expected: Vec<String> = (0..16).map(|c| format!("{c:x}")).collect();
                    prefixes.sort();
                    if prefixes == expected {
                        Outcome::Pass
                    } else {
                        Outcome::Fail(format!(
                            "the 16 children answered as {prefixes:?}, not one <ids/> each: {}",
                            show(&r)
                        ))
                    }
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
            name: "batch from a user of the peer domain",
            reqs: &["PS-94"],
            state_reqs: &["PS-94"],
            before: nothing,
            build: |c| {
                let p = item_presence("bob@b.example/desk", "<show>dnd</show>");
                let q = c
                    .batch(&item("bob@b.example", &p))
                    .replace(&format!("from='{B}'"), "from='bob@b.example/desk'");
                (q, Expect::Ignored)
            },
        },
        Case {
            name: "shutdown from a user of the peer domain",
            reqs: &["PS-94"],
            state_reqs: &["PS-94"],
            before: nothing,
            build: |c| {
                let m = format!(
                    "<message xmlns='jabber:server' from='bob@b.example/desk' to='{A}'>\
                     <shutdown xmlns='{}' epoch='{}'/></message>",
                    ns::PRESENCE_SYNC,
                    c.epoch()
                );
                (m, Expect::Ignored)
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
        Case {
            name: "item payload nested 200 elements deep",
            reqs: &["PS-88"],
            state_reqs: &["PS-88"],
            before: nothing,
            build: |c| {
                // Far past the 16 levels of PS-88; deeper still goes through the stream layer
                // of a real server (the simulator copies stanzas recursively).
                let p = item_presence("bob@b.example/desk", &nested(200));
                (
                    c.batch(&item("bob@b.example", &p)),
                    Expect::Error(BadFormat),
                )
            },
        },
        Case {
            name: "domain-level presence with a payload nested 200 elements deep",
            reqs: &["PS-88", "PS-70"],
            state_reqs: &["PS-88"],
            before: nothing,
            build: |_| {
                let p = fanout("bob@b.example/desk", "", &nested(200), "");
                (p, Expect::Discarded)
            },
        },
        Case {
            name: "query with more node children than an answer of max-bytes can hold",
            reqs: &["PS-31", "PS-89"],
            state_reqs: &["PS-31"],
            before: nothing,
            build: |c| {
                let max = c.limits().max_bytes;
                let n = (max as usize / 512 + 3).min(c.limits().max_items as usize);
                let splits: String = (0..n)
                    .map(|i| {
                        format!(
                            "<split prefix='{:02x}' fps='{}'/>",
                            (i * 37) % 256,
                            odd_fps(i as u8)
                        )
                    })
                    .collect();
                let test: ResultTest = Box::new(move |answer| match answer {
                    Some(a) if a.attr("type") == Some("error") => {
                        verdict::error_answer(Some(a), TooManyItems)
                    }
                    Some(a) => {
                        let bytes = crate::wire::stanza_bytes(a);
                        if bytes <= max as usize {
                            Outcome::Pass
                        } else {
                            Outcome::Fail(format!(
                                "an answer of {bytes} bytes over max-bytes {max}"
                            ))
                        }
                    }
                    None => Outcome::Fail("no answer".into()),
                });
                (c.reconcile("presence", &splits), Expect::Result(test))
            },
        },
        Case {
            name: "20 hellos of the current epoch at once",
            reqs: &["PS-20", "PS-91"],
            state_reqs: &["PS-91"],
            before: nothing,
            build: |c| {
                let hello = c.hello_with(c.epoch());
                (
                    c.flood(20, |_| hello.clone()),
                    Expect::Answered(&[WindowExceeded]),
                )
            },
        },
        Case {
            name: "10 hellos at once, each with a new epoch",
            reqs: &["PS-91", "PS-13"],
            state_reqs: &[],
            before: nothing,
            build: |c| {
                let base = c.epoch().0;
                let flood = c.flood(10, |i| c.hello_with(Epoch(base ^ (0x1000 + i as u64))));
                (flood, Expect::Answered(&[WindowExceeded]))
            },
        },
        Case {
            name: "200 edge queries at once, 256 random ids each",
            reqs: &["PS-78", "PS-86"],
            state_reqs: &["PS-78"],
            before: nothing,
            build: |c| {
                let ns = ns::PRESENCE_SYNC;
                let flood = c.flood(200, |i| {
                    format!(
                        "<reconcile xmlns='{ns}' set='edges'><ids prefix='{:08x}' ids='{}'/></reconcile>",
                        (i as u32).wrapping_mul(0x9e37_79b9),
                        ids_from(256, i as u64 * 256)
                    )
                });
                (flood, Expect::Answered(&[WindowExceeded]))
            },
        },
        Case {
            name: "batches of new publishers past the bound of the cache",
            reqs: &["PS-92"],
            state_reqs: &[],
            before: nothing,
            build: |c| {
                let edges = c
                    .neg
                    .subject
                    .root(crate::wire::SetName::Edges)
                    .map_or(0, |r| r.count);
                let l = c.limits();
                let threshold = crate::engine::repair::repair_threshold(edges);
                let bound = edges + threshold + u64::from(l.window * l.max_items);
                let per = l.max_items as u64;
                let batches = (bound + 1).div_ceil(per) + 1;
                let flood = c.flood(batches as usize, |b| {
                    let items: String = (0..per)
                        .map(|i| {
                            let jid = format!("new{}@b.example", b as u64 * per + i);
                            item(&jid, &item_presence(&format!("{jid}/r"), ""))
                        })
                        .collect();
                    format!(
                        "<batch xmlns='{}' epoch='{}'>{items}</batch>",
                        ns::PRESENCE_SYNC,
                        c.epoch()
                    )
                });
                (flood, Expect::Refused(TooManyItems))
            },
        },
        Case {
            name: "domain-level presence of 500 unknown publishers",
            reqs: &["PS-48"],
            state_reqs: &["PS-48"],
            before: nothing,
            build: |_| {
                let p: String = (0..500)
                    .map(|i| fanout(&format!("stranger{i}@b.example/r"), "", "", ""))
                    .collect();
                (p, Expect::Discarded)
            },
        },
    ]
}
