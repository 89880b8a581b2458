//! CPU and memory of the engine: what `benches/digests.rs` does not already measure.
//!
//! `benches/digests.rs` times the bare digest (`EdgeDigest` keyed by workload index) at
//! 10^5, 10^6 and 10^7 edges: its build, one remove + insert at 10^6, and the local comparison
//! of two 10^6-edge trees differing in 100 edges. This bench completes the range from 10^3 and
//! adds what the engine itself pays:
//!
//! | group | what | sizes |
//! |---|---|---|
//! | `digest build` | `EdgeDigest::build` (as in digests.rs) | 10^3, 10^4 (10^5–10^7: digests.rs) |
//! | `edge set build` | the engine's `EdgeSet` (digest keyed by short id, plus the id → edge table a session keeps) from parsed edges | 10^3 – 10^6 |
//! | `update` | one edge removed and added back in the engine's `EdgeSet`; one publisher's presence changed in a `PresenceSet` | 10^6 edges |
//! | `compare` | tree diff of two digests differing in 100 edges (10^6: digests.rs); the whole edge descent between two `EdgeSet`s differing in 100 edges (`digest::descent::simulate`, both sides' work, every `<reconcile/>` step) | 10^3 – 10^6 |
//! | `cold restart sync` | one complete sync of the engine: two `Server::with_sync` in a `Net` on a generated federation (conformance workload), the second server crashed, then timed: its restart, the sync, its users' login storm and everything until the network is quiet | 10^3 – 10^6 |
//!
//! and, once, outside criterion's timing, the **memory of the largest sync run**: a counting
//! global allocator (a [`GlobalAlloc`] around [`System`] keeping the current and peak bytes
//! allocated, two relaxed atomic operations per allocation) gives the peak heap per edge of
//! the whole scenario, printed as `peak bytes per edge` and written to
//! `target/presence-sync/memory.csv` (under `$CARGO_TARGET_DIR` if set), columns
//! `measure,edges,bytes,bytes_per_edge`. Its rows: the generated federation (the scenario's
//! input); the two servers at rest after the first sync (both domains' accounts, rosters,
//! sessions, edge sets, presence sets and caches, and the `Net`); and the peak heap of all of
//! it, input included, during the set-up and first sync, and during one cold restart with its
//! login storm.
//!
//! Run with `cargo bench --bench cpu`; `-- --quick` for a short run. `PRESENCE_SYNC_BENCH_MAX`
//! lowers the largest size (default 10^6, as for digests.rs). On this project's machine (2
//! cores, shared) `--quick` takes 2 to 6 minutes after compiling and the full run about 8,
//! mostly the 10^6-edge sync: about 20 s of set-up (generate, install, log everybody in, first
//! sync), then 15 to 25 s per cold restart, ten of them in the full run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use jid::BareJid;
use presence_sync::conformance::workload::{Federation, Preset, Spec};
use presence_sync::digest::descent::simulate;
use presence_sync::digest::{EdgeDigest, HashAlgo, PairHasher, depth_for};
use presence_sync::engine::{EdgeSet, PresenceSet};
use presence_sync::model::{Edge, PublisherPresence, ResourcePresence, Show};
use presence_sync::server::{Flavour, Server, SyncSetup, check_views};
use presence_sync::sim::{LinkConfig, Net};
use presence_sync::workload::{DOMAIN_A, DOMAIN_B, EdgeSpec, EdgeWorkload, SplitMix64};

// ---- the counting allocator ----

/// [`System`], counting the bytes currently allocated and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(by: usize) {
        let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
        if now > PEAK.load(Ordering::Relaxed) {
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Counting::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every allocation).
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; `ptr` and `layout` come from an allocation of ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                Counting::grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated now.
fn heap_now() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// The peak since the last [`reset_peak`].
fn heap_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak measurement from what is allocated now.
fn reset_peak() {
    PEAK.store(heap_now(), Ordering::Relaxed);
}

// ---- sizes and inputs ----

const A: &str = DOMAIN_A;
const B: &str = DOMAIN_B;

/// 10^3 .. 10^6 edges, capped by `PRESENCE_SYNC_BENCH_MAX`.
fn sizes() -> Vec<u64> {
    let max: u64 = std::env::var("PRESENCE_SYNC_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect()
}

fn pair() -> PairHasher {
    PairHasher::new(HashAlgo::Blake3, A, B)
}

/// The edges of `EdgeSpec::new(n, 1)` (the digests.rs workload) as the engine holds them.
fn engine_edges(w: &EdgeWorkload) -> Vec<Edge> {
    w.iter()
        .map(|(_, e)| {
            Edge::new(
                BareJid::new(e.publisher).expect("generated JID"),
                BareJid::new(e.subscriber).expect("generated JID"),
                e.state,
            )
        })
        .collect()
}

fn edge_set(edges: &[Edge]) -> EdgeSet {
    EdgeSet::with_edges(pair(), depth_for(edges.len() as u64), edges.iter().cloned())
}

/// `set` without 100 edges picked at random (the same ones for the same set).
fn without_100(set: &EdgeSet, edges: &[Edge]) -> EdgeSet {
    let mut b = set.clone();
    let mut rng = SplitMix64::new(3);
    let mut removed = 0;
    while removed < 100 {
        if b.remove(&edges[rng.below(edges.len() as u64) as usize]) {
            removed += 1;
        }
    }
    b
}

// ---- digests and edge sets ----

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("digest build");
    for n in sizes().into_iter().filter(|&n| n < 100_000) {
        let w = EdgeWorkload::generate(&EdgeSpec::new(n, 1));
        let len = w.edges.len() as u64;
        group.throughput(Throughput::Elements(len));
        group.bench_with_input(BenchmarkId::from_parameter(n), &w, |b, w| {
            b.iter(|| black_box(EdgeDigest::build(pair(), len, w.iter())))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("edge set build");
    for n in sizes() {
        let w = EdgeWorkload::generate(&EdgeSpec::new(n, 1));
        let edges = engine_edges(&w);
        drop(w);
        if n >= 100_000 {
            // Seconds per build at 10^6: ten samples of one build each.
            group.sample_size(10).sampling_mode(SamplingMode::Flat);
        }
        group.throughput(Throughput::Elements(edges.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &edges, |b, edges| {
            b.iter_batched(
                || edges.clone(),
                |edges| {
                    let depth = depth_for(edges.len() as u64);
                    black_box(EdgeSet::with_edges(pair(), depth, edges))
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn update(c: &mut Criterion) {
    let Some(&n) = sizes().last() else { return };
    let w = EdgeWorkload::generate(&EdgeSpec::new(n, 1));
    let edges = engine_edges(&w);
    let mut set = edge_set(&edges);
    let mut rng = SplitMix64::new(2);
    let mut group = c.benchmark_group("update");
    group.bench_function(BenchmarkId::new("edge set remove+insert", n), |b| {
        b.iter(|| {
            let e = &edges[rng.below(edges.len() as u64) as usize];
            assert!(set.remove(e));
            set.insert(e.clone());
        })
    });
    drop(set);

    // Every user of A publishes to B: one resource, available.
    let publishers: Vec<BareJid> = (0..w.users_a)
        .map(|i| BareJid::new(w.name(i)).expect("generated JID"))
        .collect();
    let presence = |show: Show| PublisherPresence {
        resources: [(
            "laptop".to_owned(),
            ResourcePresence {
                show,
                priority: 5,
                ..ResourcePresence::default()
            },
        )]
        .into(),
        ..PublisherPresence::default()
    };
    let mut published = PresenceSet::new(pair(), depth_for(publishers.len() as u64));
    for p in &publishers {
        published.set(p, presence(Show::Available));
    }
    let mut toggle = false;
    group.bench_function(
        BenchmarkId::new(
            "presence set, one publisher changes",
            format!("{} publishers", publishers.len()),
        ),
        |b| {
            b.iter(|| {
                let p = &publishers[rng.below(publishers.len() as u64) as usize];
                toggle = !toggle;
                let show = if toggle { Show::Away } else { Show::Available };
                black_box(published.set(p, presence(show)));
            })
        },
    );
    group.finish();
}

fn compare(c: &mut Criterion) {
    let mut group = c.benchmark_group("compare");
    for n in sizes() {
        let w = EdgeWorkload::generate(&EdgeSpec::new(n, 1));
        let edges = engine_edges(&w);
        drop(w);
        let a = edge_set(&edges);
        let b = without_100(&a, &edges);
        let leaf_items = u64::from(presence_sync::wire::Limits::DEFAULT.leaf_items);
        let run = simulate(&mut a.clone(), &mut b.clone(), leaf_items);
        assert_eq!(run.found.len(), 100);
        eprintln!(
            "figures: {n} edges, 100 removed: tree diff finds {} buckets; descent {} messages, {} payload bytes",
            a.digest().tree().diff(b.digest().tree()).len(),
            run.messages,
            run.payload_bytes
        );
        if n < 1_000_000 {
            group.bench_function(BenchmarkId::new("tree diff, d = 100", n), |bench| {
                bench.iter(|| black_box(a.digest().tree().diff(b.digest().tree())))
            });
        }
        let (mut a, mut b) = (a, b);
        group.bench_function(BenchmarkId::new("edge descent, d = 100", n), |bench| {
            bench.iter(|| black_box(simulate(&mut a, &mut b, leaf_items)))
        });
    }
    group.finish();
}

// ---- one complete sync ----

/// The federation of about `n` edges the conformance suite would generate (preset `small`'s
/// parameters, scaled: 10^3 is `small`, 10^6 is `huge`).
fn federation(n: u64) -> Federation {
    Spec::preset(Preset::Small).with_edges(n).generate(&[A, B])
}

/// Two synchronised servers with everybody logged in.
fn synced_net(fed: &Federation) -> Net<Server> {
    let servers = fed.build(|d| Server::with_sync(d, Flavour::Prosody, SyncSetup::every_peer(), 7));
    let mut net = Net::new(1);
    for s in servers {
        net.add_host(s);
    }
    net.connect(A, B, LinkConfig::default());
    net.drive();
    for d in [A, B] {
        net.with_host(d, |s, _| fed.log_in(s));
        net.drive();
    }
    net
}

/// Crashes B and lets A notice (untimed).
fn crash(net: &mut Net<Server>) {
    net.crash(B);
    net.drive_for(Duration::from_secs(5));
    net.reset_stats();
}

/// B restarts, the sync runs, B's users log back in, until the network is quiet (timed).
/// Returns how long the first part took: the restart and the sync until quiet, before the
/// logins.
fn restart_and_sync(net: &mut Net<Server>, fed: &Federation) -> Duration {
    let t = Instant::now();
    net.restart(B);
    net.drive();
    let resync = t.elapsed();
    net.with_host(B, |s, _| fed.log_in(s));
    net.drive();
    resync
}

fn assert_truth(net: &Net<Server>) {
    let (_, d) = check_views(&[net.host(A), net.host(B)]);
    assert!(
        d.is_empty(),
        "{} differences, first: {:?}",
        d.len(),
        d.first()
    );
}

/// A row of `memory.csv`.
struct Memory {
    measure: &'static str,
    edges: u64,
    bytes: usize,
}

fn sync(c: &mut Criterion) {
    let sizes = sizes();
    let largest = sizes.last().copied();
    let mut memory = Vec::new();
    let mut group = c.benchmark_group("cold restart sync");
    group.sampling_mode(SamplingMode::Flat);
    for n in sizes {
        let before = heap_now();
        reset_peak();
        let started = Instant::now();
        let fed = federation(n);
        let edges = fed.edges();
        let federation_bytes = heap_now().saturating_sub(before);
        let mut net = synced_net(&fed);
        let setup_peak = heap_peak().saturating_sub(before);
        let at_rest = heap_now().saturating_sub(before);
        let setup = started.elapsed();

        // One untimed run: correctness of what is timed, its traffic, and its memory.
        crash(&mut net);
        reset_peak();
        let t = Instant::now();
        let resync = restart_and_sync(&mut net, &fed);
        let once = t.elapsed();
        let sync_peak = heap_peak().saturating_sub(before);
        assert_truth(&net);
        let traffic = net.stats().total();
        eprintln!(
            "figures: {edges} edges: set-up {:.1} s; cold restart + login storm {:.3} s \
             (restart and sync {:.3} s, logins {:.3} s), {} stanzas, {} bytes, {} round trips; \
             heap: federation {:.0} B/edge, two servers at rest {:.0} B/edge, peak {:.0} B/edge",
            setup.as_secs_f64(),
            once.as_secs_f64(),
            resync.as_secs_f64(),
            (once - resync).as_secs_f64(),
            traffic.stanzas,
            traffic.bytes,
            net.round_trips(),
            federation_bytes as f64 / edges as f64,
            at_rest.saturating_sub(federation_bytes) as f64 / edges as f64,
            setup_peak.max(sync_peak) as f64 / edges as f64,
        );
        if Some(n) == largest {
            memory = vec![
                Memory {
                    measure: "generated federation (input)",
                    edges,
                    bytes: federation_bytes,
                },
                Memory {
                    measure: "two synchronised servers at rest",
                    edges,
                    bytes: at_rest.saturating_sub(federation_bytes),
                },
                Memory {
                    measure: "peak: set-up and first sync",
                    edges,
                    bytes: setup_peak,
                },
                Memory {
                    measure: "peak: cold restart and login storm",
                    edges,
                    bytes: sync_peak,
                },
            ];
        }

        group.sample_size(10);
        if n >= 100_000 {
            // Ten samples of one run each, no warm-up beyond the untimed run above. (Criterion
            // warns that 10 samples do not fit its 3 s and runs them anyway; a longer
            // measurement time would only make `--quick` run more of them.)
            group.warm_up_time(Duration::from_millis(1));
        }
        group.throughput(Throughput::Elements(edges));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    crash(&mut net);
                    let t = Instant::now();
                    restart_and_sync(&mut net, &fed);
                    total += t.elapsed();
                }
                total
            })
        });
    }
    group.finish();
    if !memory.is_empty() {
        write_memory(&memory);
    }
}

fn write_memory(rows: &[Memory]) {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("presence-sync");
    std::fs::create_dir_all(&dir).expect("creating the output directory");
    let path = dir.join("memory.csv");
    let mut f = std::fs::File::create(&path).expect("creating memory.csv");
    writeln!(f, "measure,edges,bytes,bytes_per_edge").expect("writing memory.csv");
    for r in rows {
        let per = r.bytes as f64 / r.edges as f64;
        writeln!(f, "{},{},{},{per:.1}", r.measure, r.edges, r.bytes).expect("writing");
        eprintln!("memory: {}: {per:.1} bytes per edge", r.measure);
    }
    let peak = rows
        .iter()
        .filter(|r| r.measure.starts_with("peak"))
        .map(|r| r.bytes)
        .max()
        .unwrap_or(0);
    let edges = rows.first().map_or(1, |r| r.edges);
    eprintln!(
        "peak bytes per edge: {:.1} ({edges} edges; written to {})",
        peak as f64 / edges as f64,
        path.display()
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = build, update, compare, sync
}
criterion_main!(benches);
