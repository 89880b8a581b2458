//! The heap a hostile peer can make one session hold, measured with a counting allocator and
//! compared with the worst-case formula of `engine::bounds` ([`Bounds::memory`]).
//!
//! One test, so that nothing else allocates meanwhile: each flood starts from a fresh
//! established session and pushes one structure to its bound; the peak heap above the
//! session's own baseline must stay below the formula, and the floods that findings 2 to 4
//! of the hostile review made grow linearly must stay flat.
//! `cargo test --release --test hardening_memory -- --nocapture` prints the table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minidom::Element;
use presence_sync::conformance::hostile::probe::{PEER, Probe, Setup};
use presence_sync::engine::{Bounds, Event};
use presence_sync::model::Epoch;
use presence_sync::wire::{Limits, SetName, WireElement, WireError, ns};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const NS: &str = ns::PRESENCE_SYNC;

/// Resets the peak to the live heap now; returns it.
fn mark() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

fn parse(xml: &str) -> Element {
    xml.parse().expect("well-formed")
}

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

fn random_fps(seed: u64) -> String {
    let fps: Vec<u8> = (0..256u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9).wrapping_add(seed) >> 3) as u8)
        .collect();
    STANDARD.encode(fps)
}

/// One flood's result.
struct Row {
    flood: &'static str,
    inputs: usize,
    growth: usize,
    bound: u64,
}

/// Runs `flood` on a fresh session of `setup`: the peak heap above the baseline taken after
/// the session was established, and the formula for the session's bounds at the end.
fn measure(flood: &'static str, setup: Setup, inputs: impl FnOnce(&mut Probe) -> usize) -> Row {
    let mut probe = Probe::established(setup);
    probe.events.clear();
    // The edge set and the negotiated limits do not change during a flood.
    let bound = probe.session.bounds().memory();
    let base = mark();
    let n = inputs(&mut probe);
    let peak = PEAK.load(Ordering::Relaxed);
    drop(probe);
    Row {
        flood,
        inputs: n,
        growth: peak.saturating_sub(base),
        bound,
    }
}

/// Feeds `xml` and forgets what the probe kept of it (its logs are the test's, not the
/// session's).
fn feed(probe: &mut Probe, xml: &str, advance: u64) -> Vec<Element> {
    let out = probe.feed(&parse(xml), advance);
    probe.check(&out).unwrap_or_else(|v| panic!("{}", v.0));
    probe.sent.clear();
    probe.events.clear();
    out
}

fn edge_queries(probe: &mut Probe) -> usize {
    for i in 0..5_000u64 {
        let prefix = format!("{:08x}", (i.wrapping_mul(0x9e37_79b9) >> 8) as u32);
        let q = probe.request(&format!(
            "<reconcile xmlns='{NS}' set='edges'><ids prefix='{prefix}' ids='{}'/></reconcile>",
            random_ids(256, i)
        ));
        feed(probe, &q, 1);
    }
    5_000
}

/// The input the session fuzzer found: the published root of a hello announcing 2.8·10^16
/// entries, which sized the cache's bucket tree (1.1 GB) before its count was capped by the
/// cache bound.
fn absurd_count(probe: &mut Probe) -> usize {
    let mut hello = probe.hello(probe.peer_epoch(), probe.session.epoch());
    for root in &mut hello.roots {
        if root.set == SetName::Published {
            root.count = 27_888_888_888_888_889;
            root.fp = presence_sync::digest::Fingerprint([0x77; 16]);
        }
    }
    let xml = String::from(&hello.to_element().unwrap());
    let q = probe.request(&xml);
    feed(probe, &q, 20_000_000);
    1
}

fn hellos(probe: &mut Probe) -> usize {
    for i in 0..20_000u64 {
        let hello = probe.hello(Epoch(0xe000_0000_0000_0000 + i), probe.session.epoch());
        let xml = String::from(&hello.to_element().unwrap());
        let q = probe.request(&xml);
        feed(probe, &q, 1_000);
    }
    20_000
}

fn fanouts(probe: &mut Probe) -> usize {
    let local = probe.local();
    for i in 0..20_000 {
        let p = format!(
            "<presence xmlns='jabber:server' from='stranger{i}@b.example/r' to='{local}'>\
             <fanout xmlns='{NS}'/></presence>"
        );
        feed(probe, &p, 1);
    }
    20_000
}

/// Batches of one new publisher each, with a status of about 3 KB, until one is refused.
fn fill_cache(probe: &mut Probe) -> usize {
    let epoch = probe.peer_epoch();
    let status = "s".repeat(3_000);
    // The bound of the session's negotiated limits (a refusal may end the session, after
    // which `bounds` gives those of this server's own).
    let bound = probe.session.bounds().cache;
    let mut n = 0;
    loop {
        let item = format!(
            "<item xmlns='{NS}' jid='pub{n}@b.example'><presence xmlns='jabber:server' \
             from='pub{n}@b.example/r'><status>{status}</status></presence></item>"
        );
        let q = probe.request(&format!(
            "<batch xmlns='{NS}' epoch='{epoch}'>{item}</batch>"
        ));
        let out = feed(probe, &q, 1);
        n += 1;
        if out.iter().any(|s| s.attr("type") == Some("error")) {
            assert_eq!(
                probe.session.cache().len() as usize,
                bound,
                "refused at the bound"
            );
            return n;
        }
        assert!(n < 100_000, "never refused");
    }
}

/// Answers every query of the driver's descent with hand-backs of all its nodes, with
/// fingerprints that match nothing, until the session discards an answer.
fn widen_descent(probe: &mut Probe) -> usize {
    let local = probe.local();
    let mut answered: BTreeSet<String> = BTreeSet::new();
    // Answered in the order asked (PS-11).
    let mut pending: VecDeque<Element> = VecDeque::new();
    let mut n = 0;
    // The first query was sent when the session was established.
    pending.extend(std::mem::take(&mut probe.sent));
    for round in 0..10_000u64 {
        let Some(query) = pending.pop_front() else {
            break;
        };
        let Some(id) = query.attr("id").map(str::to_owned) else {
            continue;
        };
        if query.attr("type") != Some("set") || !answered.insert(id.clone()) {
            continue;
        }
        let Some(reconcile) = query.get_child("reconcile", NS) else {
            continue;
        };
        let splits: String = reconcile
            .children()
            .filter_map(|c| c.attr("prefix"))
            .filter(|p| p.len() < 8)
            .map(|p| format!("<split prefix='{p}' fps='{}'/>", random_fps(round)))
            .collect();
        let answer = format!(
            "<iq xmlns='jabber:server' from='{PEER}' to='{local}' id='{id}' type='result'>\
             <reconcile xmlns='{NS}' set='edges'>{splits}</reconcile></iq>"
        );
        let out = probe.feed(&parse(&answer), 1);
        probe.check(&out).unwrap_or_else(|v| panic!("{}", v.0));
        n += 1;

        let discarded = probe.events.iter().any(|e| {
            matches!(
                e,
                Event::Rejected(WireError::Exhausted {
                    what: "waiting nodes",
                    ..
                })
            )
        });
        if discarded {
            return n;
        }
        probe.sent.clear();
        pending.extend(out);
    }
    panic!("the descent was never refused after {n} answers");
}

/// Queries carrying edges the session lacks, until the descent stops recording them.
fn foreign_edges(probe: &mut Probe) -> usize {
    let local = probe.local();
    let mut n = 0;
    for q in 0..40 {
        let edges: String = (0..250)
            .map(|i| {
                let k = q * 250 + i;
                format!(
                    "<edge xmlns='{NS}' publisher='p{k}@{PEER}' subscriber='s{k}@{local}' \
                     state='subscribed'/>"
                )
            })
            .collect();
        let xml = probe.request(&format!(
            "<reconcile xmlns='{NS}' set='edges'>{edges}</reconcile>"
        ));
        feed(probe, &xml, 1);
        n += 1;
    }
    let f = probe.session.footprint();
    let b = probe.session.bounds();
    assert!(f.descent_ids <= b.descent_ids, "{f:?} {b:?}");
    n
}

#[test]
fn a_hostile_peer_cannot_make_a_session_hold_more_than_the_formula() {
    let small = Limits {
        max_bytes: 4096,
        ..Limits::DEFAULT
    };
    let rows = vec![
        measure(
            "edge queries, 256 random ids each (finding 2)",
            Setup {
                driver: false,
                ..Setup::default()
            },
            edge_queries,
        ),
        measure(
            "hellos, a new epoch each (finding 3)",
            Setup::default(),
            hellos,
        ),
        measure(
            "domain-level presence of unknown publishers, stalled pull (finding 4)",
            Setup {
                peer_published: 5_000,
                ..Setup::default()
            },
            fanouts,
        ),
        measure(
            "batches of new publishers until the cache bound",
            Setup {
                peer_limits: small,
                ..Setup::default()
            },
            fill_cache,
        ),
        measure(
            "answers that widen the edge descent until refused",
            Setup {
                edges_differ: true,
                edges: 4_000,
                peer_limits: small,
                ..Setup::default()
            },
            widen_descent,
        ),
        measure(
            "a hello announcing 2.8e16 published entries (found by fuzzing)",
            Setup::default(),
            absurd_count,
        ),
        measure(
            "queries of edges the session lacks",
            Setup {
                driver: false,
                ..Setup::default()
            },
            foreign_edges,
        ),
    ];
    println!(
        "{:<72} {:>7} {:>12} {:>14}",
        "flood", "inputs", "peak growth", "formula"
    );
    for r in &rows {
        println!(
            "{:<72} {:>7} {:>12} {:>14}",
            r.flood, r.inputs, r.growth, r.bound
        );
        assert!(
            (r.growth as u64) <= r.bound,
            "{}: {} bytes over the formula's {}",
            r.flood,
            r.growth,
            r.bound
        );
    }
    // The floods of findings 2 to 4 grew 21 MB, 2.4 MB and 269 KB before: flat now (their
    // peak is the work of one input, not a sum over inputs).
    for r in &rows[..3] {
        assert!(r.growth < 512 * 1024, "{}: {} bytes", r.flood, r.growth);
    }
    // The fuzzer's absurd count: the tree is sized by the cache bound, not by the peer.
    assert!(
        rows[5].growth < 4 << 20,
        "{}: {} bytes",
        rows[5].flood,
        rows[5].growth
    );
    // An exact count: the cache took exactly its bound, the refused batch the one after.
    let cache_bound = Bounds::new(64, &small).cache;
    assert_eq!(rows[3].inputs, cache_bound + 1);
}
