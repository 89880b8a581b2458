//! A hostile peer against one session of the reference engine (XEP §Resource Exhaustion,
//! §Items, §Error Handling): the regression tests of the seven findings of a hostile review,
//! each built from its input, and a property test of random hostile sequences.
//!
//! Every test drives a [`Probe`]: a session established with a scripted peer, whose
//! invariants are checked after every input (our output valid against the peer's limits, our
//! edge and published sets untouched by peer input, every peer-growable structure within its
//! bound).

use std::collections::BTreeSet;
use std::thread;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;
use presence_sync::conformance::hostile::probe::{PEER, Probe, Setup};
use presence_sync::digest::prefix::MAX_DEPTH;
use presence_sync::engine::bounds::{EPOCHS_PER_MINUTE, HELLO_INTERVAL, SUPERSEDED_KEPT};
use presence_sync::engine::{Event, Mode, VoidReason};
use presence_sync::model::Epoch;
use presence_sync::wire::{
    Batch, Domains, Item, Limits, MAX_PAYLOAD_DEPTH, Malformed, StreamFeature, WireElement,
    WireError, ns,
};
use proptest::prelude::*;

const NS: &str = ns::PRESENCE_SYNC;

/// Runs `f` on a thread with the stack of a server task (2 MiB): a recursion whose depth the
/// peer controls would overflow it.
fn on_server_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        thread::Builder::new()
            .stack_size(2 << 20)
            .spawn_scoped(s, f)
            .expect("a thread")
            .join()
            .expect("no panic")
    })
}

/// Runs `f` on a thread with a large stack: building and dropping a deep minidom tree is
/// itself recursive (a real server's stream layer never builds one), so the test builds it
/// where that cannot fail, and hands only the engine's part to [`on_server_stack`].
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(s, f)
            .expect("a thread")
            .join()
            .expect("no panic")
    })
}

/// `<n xmlns='urn:x'><n>…</n></n>`, `depth` elements deep: 7 bytes a level.
fn nested(depth: usize) -> String {
    let mut s = String::from("<n xmlns='urn:x'>");
    s.push_str(&"<n>".repeat(depth - 1));
    s.push_str(&"</n>".repeat(depth));
    s
}

/// An item of `publisher` whose one presence carries `payload`.
fn item_with(publisher: &str, payload: &str) -> String {
    format!(
        "<item xmlns='{NS}' jid='{publisher}'><presence xmlns='jabber:server' \
         from='{publisher}/r'>{payload}</presence></item>"
    )
}

fn is_too_deep(e: &WireError) -> bool {
    matches!(
        e,
        WireError::Malformed {
            reason: Malformed::TooDeep { .. },
            ..
        }
    )
}

/// The error condition of an `<iq type='error'/>`, if `stanza` is one.
fn condition(stanza: &Element) -> Option<String> {
    let error = stanza.children().find(|c| c.name() == "error")?;
    error
        .children()
        .find(|c| c.ns() == NS)
        .map(|c| c.name().to_owned())
}

fn results(out: &[Element]) -> usize {
    out.iter()
        .filter(|s| s.name() == "iq" && s.attr("type") == Some("result"))
        .count()
}

fn parse(xml: &str) -> Element {
    xml.parse().expect("well-formed")
}

/// Feeds `xml` and checks the invariants.
fn feed(probe: &mut Probe, xml: &str, advance: u64) -> Vec<Element> {
    let out = probe.feed(&parse(xml), advance);
    probe.check(&out).unwrap_or_else(|v| panic!("{}", v.0));
    out
}

/// `n` random distinct short ids in base64, from a SplitMix64 seeded with `seed`.
fn random_ids(n: usize, seed: u64) -> String {
    let mut x = seed;
    let mut bytes = Vec::with_capacity(8 * n);
    for _ in 0..n {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    STANDARD.encode(bytes)
}

/// 16 random-looking child fingerprints.
fn random_fps(seed: u8) -> String {
    STANDARD.encode(
        (0..256u32)
            .map(|i| (i as u8) ^ seed.wrapping_mul(37))
            .collect::<Vec<_>>(),
    )
}

// ---- finding 1: a payload nested 5000 deep ----

#[test]
fn a_payload_nested_5000_deep_is_refused_by_the_parsers_without_recursion() {
    let domains = Domains::new("a.example", PEER).unwrap();
    let xml = item_with("juliet@b.example", &nested(5_000));
    assert!(xml.len() > 35_000 && xml.len() < 65_536, "{}", xml.len());
    let e =
        on_server_stack(|| Item::receive(xml.as_bytes(), &Limits::DEFAULT, &domains)).unwrap_err();
    assert!(is_too_deep(&e), "{e}");
    assert_eq!(
        e.to_string(),
        format!("item: item presence: payload nested more than {MAX_PAYLOAD_DEPTH} elements deep")
    );
    let batch = format!("<batch xmlns='{NS}' epoch='0123456789abcdef'>{xml}</batch>");
    let e = on_server_stack(|| Batch::parse_bytes(batch.as_bytes())).unwrap_err();
    assert!(is_too_deep(&e), "{e}");
    // The same through an element tree that some stream layer already built.
    on_big_stack(|| {
        let element = parse(&batch);
        let e = on_server_stack(|| Batch::parse_element(&element)).unwrap_err();
        assert!(is_too_deep(&e), "{e}");
    });
}

#[test]
fn the_payload_depth_limit_is_exact() {
    let domains = Domains::new("a.example", PEER).unwrap();
    let at = item_with("juliet@b.example", &nested(MAX_PAYLOAD_DEPTH));
    let item = Item::receive(at.as_bytes(), &Limits::DEFAULT, &domains).unwrap();
    assert_eq!(item.presences[0].payloads.len(), 1);
    let over = item_with("juliet@b.example", &nested(MAX_PAYLOAD_DEPTH + 1));
    let e = Item::receive(over.as_bytes(), &Limits::DEFAULT, &domains).unwrap_err();
    assert!(is_too_deep(&e), "{e}");
}

#[test]
fn a_deep_payload_in_a_batch_is_refused_by_the_session_and_nothing_is_cached() {
    let mut probe = Probe::established(Setup::default());
    let epoch = probe.peer_epoch();
    let batch = format!(
        "<batch xmlns='{NS}' epoch='{epoch}'>{}</batch>",
        item_with("user1@b.example", &nested(5_000))
    );
    let iq = probe.request(&batch);
    on_big_stack(|| {
        let stanza = parse(&iq);
        let out = on_server_stack(|| probe.feed(&stanza, 1_000));
        assert_eq!(
            out.iter().filter_map(condition).collect::<Vec<_>>(),
            ["bad-format"]
        );
        probe.check(&out).unwrap();
    });
    assert!(probe.session.cache().is_empty());
}

#[test]
fn a_deep_payload_in_a_domain_level_presence_is_discarded() {
    let mut probe = Probe::established(Setup::default());
    let local = probe.local();
    let presence = format!(
        "<presence xmlns='jabber:server' from='user1@b.example/r' to='{local}'>{}\
         <fanout xmlns='{NS}'/></presence>",
        nested(5_000)
    );
    on_big_stack(|| {
        let stanza = parse(&presence);
        let out = on_server_stack(|| probe.feed(&stanza, 1_000));
        assert!(out.is_empty(), "no reply to a presence (PS-70)");
    });
    let rejected = probe.events.iter().any(|e| match e {
        Event::Rejected(e) => is_too_deep(e),
        _ => false,
    });
    assert!(rejected, "{:?}", probe.events);
}

// ---- finding 2: repeated edge queries ----

#[test]
fn repeated_edge_queries_leave_the_answering_side_flat() {
    let mut probe = Probe::established(Setup {
        driver: false,
        ..Setup::default()
    });
    let mut answered = 0;
    for i in 0..5_000u64 {
        let prefix = format!("{:08x}", (i.wrapping_mul(0x9e37_79b9) >> 8) as u32);
        let ids = random_ids(256, i);
        let q = probe.request(&format!(
            "<reconcile xmlns='{NS}' set='edges'><ids prefix='{prefix}' ids='{ids}'/></reconcile>"
        ));
        let out = feed(&mut probe, &q, 1);
        answered += results(&out);
    }
    assert_eq!(answered, 5_000, "every query is answered");
    // The answering side keeps nothing of ids it only reported lacking.
    assert_eq!(probe.session.footprint().descent_ids, 0);
}

// ---- finding 3: a hello flood, new epochs, shutdowns ----

fn hello_with_epoch(probe: &mut Probe, epoch: Epoch) -> String {
    let hello = probe.hello(epoch, probe.session.epoch());
    let xml = String::from(&hello.to_element().unwrap());
    probe.request(&xml)
}

#[test]
fn a_hello_flood_with_new_epochs_is_refused_beyond_the_rates() {
    let mut probe = Probe::established(Setup::default());
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..20_000u64 {
        let xml = hello_with_epoch(&mut probe, Epoch(0xe000_0000_0000_0000 + i));
        let out = feed(&mut probe, &xml, 1_000);
        accepted += results(&out);
        refused += out
            .iter()
            .filter(|s| condition(s).as_deref() == Some("window-exceeded"))
            .count();
    }
    // 20 s of hellos, 1 ms apart: three new epochs in the first minute, then only refusals.
    assert_eq!(accepted, EPOCHS_PER_MINUTE);
    assert_eq!(refused, 20_000 - EPOCHS_PER_MINUTE);
    let f = probe.session.footprint();
    assert!(f.superseded <= SUPERSEDED_KEPT && f.recent_epochs <= EPOCHS_PER_MINUTE);
}

#[test]
fn hellos_of_one_epoch_are_admitted_at_one_per_ten_seconds_after_a_burst() {
    let mut probe = Probe::established(Setup::default());
    let epoch = probe.peer_epoch();
    let mut accepted = 0;
    // 600 hellos, 100 ms apart: 60 s.
    for _ in 0..600 {
        let xml = hello_with_epoch(&mut probe, epoch);
        accepted += results(&feed(&mut probe, &xml, 100_000));
    }
    let burst = 7;
    let refills = (600 * 100_000 / HELLO_INTERVAL) as usize;
    assert_eq!(accepted, burst + refills);
}

#[test]
fn hello_and_shutdown_cycles_remember_few_epochs() {
    let mut probe = Probe::established(Setup::default());
    for i in 0..2_000u64 {
        // One restart of the peer every 30 s: within the rates.
        let epoch = Epoch(0xd000_0000_0000_0000 + i);
        let xml = hello_with_epoch(&mut probe, epoch);
        let out = feed(&mut probe, &xml, 30_000_000);
        assert_eq!(results(&out), 1, "cycle {i}");
        let local = probe.local();
        let shutdown = format!(
            "<message xmlns='jabber:server' from='{PEER}' to='{local}' type='normal'>\
             <shutdown xmlns='{NS}' epoch='{epoch}'/></message>"
        );
        feed(&mut probe, &shutdown, 1);
    }
    assert!(probe.session.footprint().superseded <= SUPERSEDED_KEPT);
}

// ---- finding 4: domain-level presence of unknown publishers from a stalled peer ----

#[test]
fn a_fanout_flood_of_unknown_publishers_from_a_stalled_peer_stays_bounded() {
    let mut probe = Probe::established(Setup {
        peer_published: 5_000,
        ..Setup::default()
    });
    assert!(probe.session.footprint().requests > 0, "a pull is waiting");
    let local = probe.local();
    for i in 0..20_000 {
        let presence = format!(
            "<presence xmlns='jabber:server' from='stranger{i}@b.example/r' to='{local}'>\
             <fanout xmlns='{NS}'/></presence>"
        );
        // 1 µs apart: the pull's request never times out.
        feed(&mut probe, &presence, 1);
    }
    let f = probe.session.footprint();
    // An empty cache has one bucket: every unknown publisher names the root, queued once.
    assert!(f.pull_nodes <= 1, "{f:?}");
}

// ---- finding 5: answers that exceed the peer's max-bytes ----

#[test]
fn answers_fit_a_max_bytes_of_4096_whatever_the_query() {
    for set in ["edges", "presence"] {
        for nodes in 1..=11usize {
            let mut probe = Probe::established(Setup {
                peer_limits: Limits {
                    max_bytes: 4096,
                    ..Limits::DEFAULT
                },
                ..Setup::default()
            });
            let children: String = (0..nodes)
                .map(|i| {
                    format!(
                        "<split prefix='{:02x}' fps='{}'/>",
                        i * 7,
                        random_fps(i as u8)
                    )
                })
                .collect();
            let q = probe.request(&format!(
                "<reconcile xmlns='{NS}' set='{set}'>{children}</reconcile>"
            ));
            let out = feed(&mut probe, &q, 1_000);
            let reply = out.iter().find(|s| s.name() == "iq").expect("an answer");
            // ⌊4096 / 512⌋ = 8 nodes always fit as hand-backs; beyond, the answer is
            // either a result that fits or the error of PS-31.
            if nodes <= 8 {
                assert_eq!(reply.attr("type"), Some("result"), "{set} {nodes}");
            } else if reply.attr("type") == Some("error") {
                assert_eq!(condition(reply).as_deref(), Some("too-many-items"));
            }
        }
    }
}

// ---- finding 6: a prefix repeated in our own stanzas ----

#[test]
fn an_answer_names_each_prefix_once_for_nested_queries() {
    for set in ["edges", "presence"] {
        let mut probe = Probe::established(Setup {
            edges: 40_000,
            published: 20_000,
            ..Setup::default()
        });
        // The root's children all differ, so '1' is described; what is under '1' does not
        // fit and '1' would be handed back a second time.
        let q = probe.request(&format!(
            "<reconcile xmlns='{NS}' set='{set}'><split prefix='' fps='{}'/>\
             <ids prefix='1' ids='{}'/></reconcile>",
            random_fps(1),
            random_ids(256, 7)
        ));
        let out = feed(&mut probe, &q, 1_000);
        assert_eq!(results(&out), 1, "{set}");
    }
}

#[test]
fn an_answer_about_a_prefix_that_was_not_asked_is_discarded() {
    let mut probe = Probe::established(Setup {
        edges: 4_000,
        edges_differ: true,
        ..Setup::default()
    });
    let query = probe
        .sent
        .iter()
        .rev()
        .find(|s| s.attr("type") == Some("set"))
        .expect("the driver's first query")
        .clone();
    let id = query.attr("id").unwrap().to_owned();
    let local = probe.local();
    // The first query splits the root; an answer naming '12' (a grandchild) is not an answer
    // to it.
    let answer = format!(
        "<iq xmlns='jabber:server' from='{PEER}' to='{local}' id='{id}' type='result'>\
         <reconcile xmlns='{NS}' set='edges'><split prefix='12' fps='{}'/></reconcile></iq>",
        random_fps(3)
    );
    feed(&mut probe, &answer, 1_000);
    let discarded = probe.events.iter().any(|e| {
        matches!(e, Event::Rejected(WireError::Malformed { .. }))
            && matches!(e, Event::Rejected(e) if e.to_string().contains("did not ask"))
    });
    assert!(discarded, "{:?}", probe.events);
}

// ---- finding 7: an 8 MB status ----

#[test]
fn an_8_mb_status_is_refused_before_any_parser_sees_it() {
    let status = "x".repeat(8 << 20);
    let xml = item_with(
        "juliet@b.example",
        &format!("<status>{status}</status>").replace("<status>", "<status xmlns='jabber:server'>"),
    );
    let e = Item::parse_bytes(xml.as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            WireError::Malformed {
                reason: Malformed::TooLong { .. },
                ..
            }
        ),
        "{e}"
    );
    let ceiling = *Limits::MAX_BYTES.end() as usize;
    assert!(Item::parse_bytes(&xml.as_bytes()[..ceiling]).is_err());
}

// ---- random hostile sequences ----

/// One hostile stanza, built from what the session negotiated.
#[derive(Clone, Debug)]
enum Hostile {
    Hello {
        epoch: u64,
        advance: u64,
    },
    Split {
        set: bool,
        prefixes: Vec<u32>,
        seed: u8,
    },
    Ids {
        set: bool,
        prefix: u32,
        len: u8,
        n: usize,
        seed: u64,
    },
    Lack {
        set: bool,
        n: usize,
        seed: u64,
    },
    Batch {
        stale: bool,
        users: Vec<u16>,
        depth: usize,
    },
    Fanout {
        user: u16,
        depth: usize,
    },
    Shutdown {
        epoch: u64,
    },
    Answer {
        which: usize,
        prefixes: Vec<u32>,
        seed: u8,
    },
    Wait {
        micros: u64,
    },
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        (0u64..4, 0u64..30_000_000).prop_map(|(epoch, advance)| Hostile::Hello { epoch, advance }),
        (
            any::<bool>(),
            prop::collection::vec(0u32..0x120, 1..14),
            any::<u8>()
        )
            .prop_map(|(set, prefixes, seed)| Hostile::Split {
                set,
                prefixes,
                seed
            }),
        (
            any::<bool>(),
            any::<u32>(),
            0u8..=8,
            0usize..300,
            any::<u64>()
        )
            .prop_map(|(set, prefix, len, n, seed)| Hostile::Ids {
                set,
                prefix,
                len,
                n,
                seed
            }),
        (any::<bool>(), 1usize..300, any::<u64>()).prop_map(|(set, n, seed)| Hostile::Lack {
            set,
            n,
            seed
        }),
        (
            any::<bool>(),
            prop::collection::vec(any::<u16>(), 1..40),
            0usize..20
        )
            .prop_map(|(stale, users, depth)| Hostile::Batch {
                stale,
                users,
                depth
            }),
        (any::<u16>(), 0usize..20).prop_map(|(user, depth)| Hostile::Fanout { user, depth }),
        (0u64..4).prop_map(|epoch| Hostile::Shutdown { epoch }),
        (
            0usize..8,
            prop::collection::vec(0u32..0x120, 0..6),
            any::<u8>()
        )
            .prop_map(|(which, prefixes, seed)| Hostile::Answer {
                which,
                prefixes,
                seed
            }),
        (0u64..120_000_000).prop_map(|micros| Hostile::Wait { micros }),
    ]
}

/// A prefix from a number: the low 4 bits × 2 give the length (0 to 8 nibbles... clamped).
fn prefix_of(n: u32, max_len: u8) -> String {
    let len = ((n & 0xf) as u8 % (max_len + 1)) as usize;
    let bits = n >> 4;
    format!("{:08x}", bits.wrapping_mul(0x9e37_79b1))[..len].to_owned()
}

fn render(probe: &mut Probe, h: &Hostile) -> Option<(String, u64)> {
    let local = probe.local();
    let set = |edges: bool| if edges { "edges" } else { "presence" };
    let epoch = probe.peer_epoch();
    Some(match h {
        Hostile::Hello { epoch: e, advance } => {
            let e = Epoch(epoch.0 ^ e);
            (hello_with_epoch(probe, e), *advance)
        }
        Hostile::Split {
            set: s,
            prefixes,
            seed,
        } => {
            let mut seen = BTreeSet::new();
            let children: String = prefixes
                .iter()
                .map(|p| prefix_of(*p, MAX_DEPTH - 1))
                .filter(|p| seen.insert(p.clone()))
                .map(|p| format!("<split prefix='{p}' fps='{}'/>", random_fps(*seed)))
                .collect();
            let xml = format!(
                "<reconcile xmlns='{NS}' set='{}'>{children}</reconcile>",
                set(*s)
            );
            (probe.request(&xml), 1_000)
        }
        Hostile::Ids {
            set: s,
            prefix,
            len,
            n,
            seed,
        } => {
            let p = format!("{prefix:08x}")[..*len as usize].to_owned();
            let xml = format!(
                "<reconcile xmlns='{NS}' set='{}'><ids prefix='{p}' ids='{}'/></reconcile>",
                set(*s),
                random_ids(*n, *seed)
            );
            (probe.request(&xml), 1_000)
        }
        Hostile::Lack { set: s, n, seed } => {
            let xml = format!(
                "<reconcile xmlns='{NS}' set='{}'><lack ids='{}'/></reconcile>",
                set(*s),
                random_ids(*n, *seed)
            );
            (probe.request(&xml), 1_000)
        }
        Hostile::Batch {
            stale,
            users,
            depth,
        } => {
            let e = if *stale { Epoch(epoch.0 ^ 1) } else { epoch };
            let mut seen = BTreeSet::new();
            let items: String = users
                .iter()
                .filter(|u| seen.insert(**u))
                .map(|u| {
                    let payload = if *depth > 0 {
                        nested(*depth)
                    } else {
                        String::new()
                    };
                    item_with(&format!("user{u}@b.example"), &payload)
                })
                .collect();
            let xml = format!("<batch xmlns='{NS}' epoch='{e}'>{items}</batch>");
            (probe.request(&xml), 1_000)
        }
        Hostile::Fanout { user, depth } => {
            let payload = if *depth > 0 {
                nested(*depth)
            } else {
                String::new()
            };
            (
                format!(
                    "<presence xmlns='jabber:server' from='user{user}@b.example/r' to='{local}'>\
                     {payload}<fanout xmlns='{NS}'/></presence>"
                ),
                1_000,
            )
        }
        Hostile::Shutdown { epoch: e } => {
            let e = Epoch(epoch.0 ^ e);
            (
                format!(
                    "<message xmlns='jabber:server' from='{PEER}' to='{local}' type='normal'>\
                     <shutdown xmlns='{NS}' epoch='{e}'/></message>"
                ),
                1_000,
            )
        }
        Hostile::Answer {
            which,
            prefixes,
            seed,
        } => {
            // An answer to one of the session's unanswered requests, with splits.
            let requests: Vec<&Element> = probe
                .sent
                .iter()
                .filter(|s| s.name() == "iq" && s.attr("type") == Some("set"))
                .collect();
            let request = requests.get(requests.len().checked_sub(1 + which % 4)?)?;
            let id = request.attr("id")?.to_owned();
            let s = request
                .children()
                .next()?
                .attr("set")
                .unwrap_or("presence")
                .to_owned();
            let mut seen = BTreeSet::new();
            let children: String = prefixes
                .iter()
                .map(|p| prefix_of(*p, 2))
                .filter(|p| seen.insert(p.clone()))
                .map(|p| format!("<split prefix='{p}' fps='{}'/>", random_fps(*seed)))
                .collect();
            (
                format!(
                    "<iq xmlns='jabber:server' from='{PEER}' to='{local}' id='{id}' type='result'>\
                     <reconcile xmlns='{NS}' set='{s}'>{children}</reconcile></iq>"
                ),
                1_000,
            )
        }
        Hostile::Wait { micros } => return Some((String::new(), *micros)),
    })
}

/// Drives an established session (`driver`, peer max-bytes 4096 if `small`, `published`
/// entries in the peer's published set) through `steps`, checking every invariant after each.
fn run_hostile(driver: bool, small: bool, published: u64, steps: &[Hostile]) -> Result<(), String> {
    // Keep the session alive through the refusals, to reach deeper states.
    let config = presence_sync::engine::Config {
        max_failures: 1_000,
        ..Default::default()
    };
    let mut probe = Probe::established(Setup {
        driver,
        edges: 600,
        published: 300,
        peer_published: published,
        edges_differ: published > 0,
        config,
        peer_limits: Limits {
            max_bytes: if small { 4096 } else { 65_536 },
            ..Limits::DEFAULT
        },
        ..Setup::default()
    });
    for h in steps {
        let Some((xml, advance)) = render(&mut probe, h) else {
            continue;
        };
        let out = if xml.is_empty() {
            probe.now = probe.now.plus_micros(advance);
            probe.timers()
        } else {
            probe.feed(&parse(&xml), advance)
        };
        probe
            .check(&out)
            .map_err(|v| format!("after {h:?}: {}", v.0))?;
    }
    match probe
        .events
        .iter()
        .find(|e| matches!(e, Event::Withheld(_)))
    {
        Some(withheld) => Err(format!("{withheld:?}")),
        None => Ok(()),
    }
}

/// Found by `random_hostile_sequences_keep_every_invariant`: the peer restarts twice while our
/// window is full. The requests sent to its earlier runs were kept, and each new run's first
/// edge query was sent past the window: 6 unanswered requests against a bound of w + 1 = 5
/// (XEP PS-50).
#[test]
fn new_epochs_of_the_peer_keep_our_requests_within_the_window() {
    let steps = [
        Hostile::Ids {
            set: false,
            prefix: 0,
            len: 0,
            n: 0,
            seed: 699_551_990_674,
        },
        Hostile::Split {
            set: true,
            prefixes: vec![155, 19, 4, 173, 92],
            seed: 113,
        },
        Hostile::Hello {
            epoch: 3,
            advance: 29_491_281,
        },
        Hostile::Hello {
            epoch: 0,
            advance: 20_701_917,
        },
        Hostile::Hello {
            epoch: 1,
            advance: 127_837,
        },
    ];
    run_hostile(true, false, 3_000, &steps).unwrap_or_else(|e| panic!("{e}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_hostile_sequences_keep_every_invariant(
        driver in any::<bool>(),
        small in any::<bool>(),
        published in prop_oneof![Just(0u64), Just(3_000u64)],
        steps in prop::collection::vec(hostile(), 1..40),
    ) {
        if let Err(e) = run_hostile(driver, small, published, &steps) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// XEP PS-19 and PS-55. Our hello of a new link names the peer's epoch e1 that our cache
/// holds; before its answer arrives, the peer's own hello of a new run e2 crosses it and
/// voids the cache (PS-13). The answer to our hello then comes from e2, the cache's epoch by
/// now: it must not count as a second restart, nor put e2 among the superseded epochs, where
/// the peer's announcement that e2 shuts down would be taken for a late one of an earlier
/// run and ignored, leaving the peer's presence shown after it stopped.
#[test]
fn an_answer_from_the_epoch_a_crossing_hello_brought_does_not_supersede_it() {
    let mut probe = Probe::established(Setup::default());
    let e2 = Epoch(0xb0b0_0000_0000_0002);
    let ours = probe.session.epoch();
    let feature = xso::transform(&StreamFeature::new(&probe.session.config().algos))
        .expect("a feature serialises");
    probe.now = probe.now.plus_micros(1_000_000);
    probe.session.link_down(probe.now);
    probe.session.link_up(probe.now, &[feature]);
    let our_hello = std::iter::from_fn(|| probe.session.poll_transmit())
        .find(|s| s.name() == "iq" && s.has_child("hello", ns::PRESENCE_SYNC))
        .expect("the driver's hello on a new link");
    let crossing = probe
        .hello(e2, ours)
        .to_element()
        .expect("a hello serialises");
    let crossing: Element = probe
        .request(&String::from(&crossing))
        .parse()
        .expect("well-formed");
    probe.feed(&crossing, 1_000);
    let answer = probe
        .hello(e2, ours)
        .to_element()
        .expect("a hello serialises");
    let answer: Element = format!(
        "<iq xmlns='jabber:server' from='{PEER}' to='{}' id='{}' type='result'>{}</iq>",
        probe.local(),
        our_hello.attr("id").expect("an id"),
        String::from(&answer)
    )
    .parse()
    .expect("well-formed");
    let from = probe.events.len();
    probe.feed(&answer, 1_000);
    let restarts = probe.events[from..]
        .iter()
        .filter(|e| matches!(e, Event::PeerRestarted))
        .count();
    assert_eq!(
        restarts,
        0,
        "the answer counted as a restart: {:?}",
        &probe.events[from..]
    );
    let shutdown: Element = format!(
        "<message xmlns='jabber:server' from='{PEER}' to='{}' type='normal'>\
         <shutdown xmlns='{}' epoch='{e2}'/></message>",
        probe.local(),
        ns::PRESENCE_SYNC
    )
    .parse()
    .expect("well-formed");
    let from = probe.events.len();
    probe.feed(&shutdown, 1_000);
    assert!(
        probe.events[from..]
            .iter()
            .any(|e| matches!(e, Event::CacheVoided(VoidReason::Shutdown))),
        "the shutdown of the current epoch was ignored: {:?}",
        &probe.events[from..]
    );
    assert_ne!(probe.session.mode(), Mode::Synchronized);
}
