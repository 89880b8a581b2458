//! CPU and memory of the digests: build for 10^5, 10^6 and 10^7 edges, one
//! incremental update, and the comparison of two 10^6-edge trees differing in 100 edges.
//!
//! Run with `cargo bench --bench digests`. Memory per edge and the build rate of each size are
//! also printed once, outside criterion's timing loops, so the README can quote them.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use presence_sync::digest::{EdgeDigest, HashAlgo, PairHasher, Prefix};
use presence_sync::workload::{DOMAIN_A, DOMAIN_B, EdgeSpec, EdgeWorkload, SplitMix64};

fn sizes() -> Vec<u64> {
    // PRESENCE_SYNC_BENCH_MAX lowers the largest size on small machines (default 10^7).
    let max: u64 = std::env::var("PRESENCE_SYNC_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    [100_000, 1_000_000, 10_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect()
}

fn pair() -> PairHasher {
    PairHasher::new(HashAlgo::Blake3, DOMAIN_A, DOMAIN_B)
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for n in sizes() {
        let w = EdgeWorkload::generate(&EdgeSpec::new(n, 1));
        let len = w.edges.len() as u64;
        // One untimed build for the figures criterion does not report.
        let t = Instant::now();
        let d = EdgeDigest::build(pair(), len, w.iter());
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "figures: {len} edges, depth {}, build {:.2} M edges/s, digest {:.1} bytes/edge, workload {:.1} bytes/edge",
            d.tree().depth(),
            len as f64 / secs / 1e6,
            d.set().memory_bytes() as f64 / len as f64,
            w.memory_bytes() as f64 / len as f64,
        );
        drop(d);
        group.throughput(Throughput::Elements(len));
        group.bench_with_input(BenchmarkId::from_parameter(n), &w, |b, w| {
            b.iter(|| black_box(EdgeDigest::build(pair(), len, w.iter())))
        });
    }
    group.finish();
}

fn update(c: &mut Criterion) {
    let w = EdgeWorkload::generate(&EdgeSpec::new(1_000_000, 1));
    let n = w.edges.len() as u32;
    let mut d = EdgeDigest::build(pair(), n as u64, w.iter());
    let mut rng = SplitMix64::new(2);
    // One update = remove an edge and add it back (two O(depth) changes): timed per change by
    // dividing by two in the README.
    c.bench_function("update/remove+insert of one edge, 10^6 edges", |b| {
        b.iter(|| {
            let i = rng.below(n as u64) as u32;
            assert!(d.remove(&i, w.edge(i)));
            d.insert(i, w.edge(i));
        })
    });
}

fn compare(c: &mut Criterion) {
    let w = EdgeWorkload::generate(&EdgeSpec::new(1_000_000, 1));
    let n = w.edges.len() as u32;
    let a = EdgeDigest::build(pair(), n as u64, w.iter());
    let mut b = a.clone();
    let mut rng = SplitMix64::new(3);
    let mut removed = 0;
    while removed < 100 {
        let i = rng.below(n as u64) as u32;
        if b.remove(&i, w.edge(i)) {
            removed += 1;
        }
    }
    let found = a.tree().diff(b.tree());
    assert!(!found.is_empty() && found.len() <= 100);
    eprintln!(
        "figures: 10^6 edges, 100 removed: {} differing buckets",
        found.len()
    );
    c.bench_function("compare/two 10^6-edge trees, 100 differences", |bench| {
        bench.iter(|| black_box(a.tree().diff(b.tree())))
    });
    c.bench_function("fingerprint/16 children of one node", |bench| {
        bench.iter(|| black_box(a.tree().child_fingerprints(Prefix::ROOT)))
    });
}

criterion_group!(benches, build, update, compare);
criterion_main!(benches);
