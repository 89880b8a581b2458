//! The hub rows of the packet comparison: one server restarting with 10^3, 10^4 and
//! 10^5 peer domains of every size, its costs per peer-size bucket against RFC 6121.
//!
//! Each size runs the conformance suite's own `hub` scenario (`presence-sync conformance
//! --scenarios hub --hub-peers N`, default workload: preset small, seed 1) on the reference
//! implementation, so its checks judge the run (the end state against the ground truth, the
//! audit, PS-93) as the suite does; the RFC 6121 columns are the same script between
//! Prosody-like servers. Wall time and the process's peak resident memory are measured per
//! size: the peak is reset before each run through `/proc/self/clear_refs`, so it is the peak
//! of that run, plus whatever the process still held from the runs before it (the hubs run
//! first, smallest first, so that is at most what the previous hub left).

use std::fmt::Write as _;
use std::time::Instant;

use presence_sync::conformance::scenarios::PeerBucket;
use presence_sync::conformance::subject::Reference;
use presence_sync::conformance::{Options, run_suite};

/// The hub sizes, in peer domains.
pub const PEERS: [usize; 3] = [1_000, 10_000, 100_000];

/// One hub size's result.
pub struct HubRun {
    /// Peer domains.
    pub peers: usize,
    /// Cross-domain edges of the hub.
    pub edges: u64,
    /// Its costs per peer-size bucket.
    pub buckets: Vec<PeerBucket>,
    /// Whole phase: (stanzas, bytes) of presence-sync and of RFC 6121.
    pub total: ((u64, u64), (u64, u64)),
    /// Wall seconds of the scenario (both worlds, the checks and the audit).
    pub seconds: f64,
    /// Peak resident memory of the run, in bytes, if the system tells it.
    pub peak_rss: Option<u64>,
    /// The checks that failed (empty: the scenario passed).
    pub failed: Vec<String>,
}

/// The largest hub of the run: `PRESENCE_SYNC_BENCH_HUB_PEERS` (default 10^5).
pub fn max_peers() -> usize {
    super::env_count("PRESENCE_SYNC_BENCH_HUB_PEERS", 100_000)
}

/// Runs the hub scenario with `peers` peer domains.
pub fn run(peers: usize) -> HubRun {
    reset_peak();
    let opts = Options {
        hub_peers: peers,
        scenarios: Some(vec!["hub".to_owned()]),
        ..Options::default()
    };
    let started = Instant::now();
    let report = run_suite(&Reference::default(), &opts, &mut |_| {})
        .unwrap_or_else(|e| panic!("the hub scenario cannot run: {e}"));
    let seconds = started.elapsed().as_secs_f64();
    let hub = report.runs.first().expect("the hub scenario ran");
    let phase = hub.phase.as_ref().expect("the hub measures a phase");
    let base = hub.baseline.as_ref().expect("the hub has a baseline");
    HubRun {
        peers,
        edges: hub.buckets.iter().map(|b| b.edges).sum(),
        buckets: hub.buckets.clone(),
        total: ((phase.stanzas, phase.bytes), (base.stanzas, base.bytes)),
        seconds,
        peak_rss: peak_rss(),
        failed: hub
            .checks
            .iter()
            .filter(|c| !c.ok())
            .map(|c| c.name.clone())
            .collect(),
    }
}

/// True if every bucket of `r` costs at most what RFC 6121 costs, in stanzas and in bytes.
pub fn never_worse(r: &HubRun) -> bool {
    r.buckets
        .iter()
        .all(|b| b.ours.0 <= b.rfc6121.0 && b.ours.1 <= b.rfc6121.1)
}

/// The table of the hub runs, one block per size, one line per bucket (at most 80 columns).
pub fn table(runs: &[HubRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== hub: one server restarts with N peer domains (per peer-size bucket) =="
    );
    let _ = writeln!(
        s,
        "{:>7} {:<9} {:>6} {:>7} {:>8} {:>10} {:>8} {:>10} {:>5}",
        "peers", "bucket", "peers", "edges", "stanzas", "bytes", "RFC6121", "bytes", "ratio"
    );
    for r in runs {
        for (i, b) in r.buckets.iter().enumerate() {
            let n = if i == 0 {
                r.peers.to_string()
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "{n:>7} {:<9} {:>6} {:>7} {:>8} {:>10} {:>8} {:>10} {:>5.2}",
                b.label,
                b.peers,
                b.edges,
                b.ours.0,
                b.ours.1,
                b.rfc6121.0,
                b.rfc6121.1,
                b.byte_ratio()
            );
        }
        let ((s1, b1), (s2, b2)) = r.total;
        let _ = writeln!(
            s,
            "{:>7} {:<9} {:>6} {:>7} {:>8} {:>10} {:>8} {:>10} {:>5.2}",
            "",
            "all",
            r.buckets.iter().map(|b| b.peers).sum::<u64>(),
            r.edges,
            s1,
            b1,
            s2,
            b2,
            b1 as f64 / b2.max(1) as f64
        );
    }
    let _ = writeln!(
        s,
        "bucket: edges a peer shares with the hub; peers that share none are not listed.\n\
         ratio: bytes of presence-sync over RFC 6121's. 'all' covers every stanza of the\n\
         phase, the hub's users' own presence included."
    );
    let _ = writeln!(s, "\nwall time and peak memory of each hub run:");
    let _ = writeln!(
        s,
        "{:>7} {:>7} {:>9} {:>12}",
        "peers", "edges", "wall s", "peak RSS"
    );
    for r in runs {
        let _ = writeln!(
            s,
            "{:>7} {:>7} {:>9.1} {:>12}",
            r.peers,
            r.edges,
            r.seconds,
            r.peak_rss.map_or("unknown".to_owned(), |b| format!(
                "{:.2} GB",
                b as f64 / 1e9
            ))
        );
    }
    let _ = writeln!(
        s,
        "wall: both worlds (presence-sync and RFC 6121), the checks and the audit.\n\
         peak RSS: of the process during the run, what earlier runs left included."
    );
    s
}

/// The CSV of the hub runs: `peers,bucket,bucket_peers,edges,scheme,stanzas,bytes`.
pub fn csv(runs: &[HubRun]) -> String {
    let mut s = String::from("peers,bucket,bucket_peers,edges,scheme,stanzas,bytes\n");
    for r in runs {
        for b in &r.buckets {
            for (scheme, (st, by)) in [("presence-sync", b.ours), ("rfc6121", b.rfc6121)] {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{scheme},{st},{by}",
                    r.peers, b.label, b.peers, b.edges
                );
            }
        }
    }
    s
}

/// Resets the process's peak resident set (Linux: `5` into `/proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident set since the last reset (Linux `VmHWM`), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
