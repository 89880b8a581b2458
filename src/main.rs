//! The `presence-sync` command line.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use presence_sync::digest::descent::simulate;
use presence_sync::digest::{EdgeDigest, HashAlgo, PairHasher, Prefix};
use presence_sync::workload::{
    DOMAIN_A, DOMAIN_B, EdgeSpec, EdgeWorkload, SplitMix64, WorkloadView,
};

/// Incremental presence resynchronization between federated XMPP servers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the edge digest of a generated workload, change some edges on one side, and
    /// compare: prints sizes, timings, memory and what the comparison found.
    Digest {
        /// Number of cross-domain edges.
        #[arg(long, default_value_t = 1_000_000)]
        edges: u64,
        /// Number of edges removed on the second side before comparing.
        #[arg(long, default_value_t = 100)]
        differences: u64,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Hash algorithm (blake3 or sha-256).
        #[arg(long, default_value = "blake3")]
        hash: HashAlgo,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Digest {
            edges,
            differences,
            seed,
            hash,
        } => digest(edges, differences, seed, hash),
    }
}

fn digest(edges: u64, differences: u64, seed: u64, algo: HashAlgo) -> ExitCode {
    eprintln!("generating {edges} edges (seed {seed})...");
    let w = EdgeWorkload::generate(&EdgeSpec::new(edges, seed));
    let n = w.edges.len() as u64;
    let pair = PairHasher::new(algo, DOMAIN_A, DOMAIN_B);

    let t = Instant::now();
    let a = EdgeDigest::build(pair.clone(), n, w.iter());
    let build = t.elapsed();
    let rate = n as f64 / build.as_secs_f64();
    let mem = a.set().memory_bytes();

    // The other side lost `differences` edges (chosen at random) and otherwise agrees.
    let mut b = a.clone();
    let mut rng = SplitMix64::new(seed ^ 0x5eed);
    let mut removed = 0;
    while removed < differences.min(n) {
        let i = rng.below(n) as u32;
        if b.remove(&i, w.edge(i)) {
            removed += 1;
        }
    }
    let t = Instant::now();
    let diff = a.tree().diff(b.tree());
    let compare = t.elapsed();

    // The same comparison as two servers run it, over fingerprints and ids only.
    let t = Instant::now();
    let run = simulate(
        &mut WorkloadView {
            digest: &a,
            workload: &w,
        },
        &mut WorkloadView {
            digest: &b,
            workload: &w,
        },
        16,
    );
    let descent = t.elapsed();
    if run.found.len() as u64 != removed {
        eprintln!(
            "error: the descent found {} differences, not {removed}",
            run.found.len()
        );
        return ExitCode::FAILURE;
    }

    let root = a.tree().fingerprint(Prefix::ROOT).expect("the root exists");
    println!("edges                 {n}");
    println!("users                 {} per domain", w.users_a);
    println!("hash                  {algo}");
    println!(
        "depth                 {} ({} buckets)",
        a.tree().depth(),
        a.tree().buckets()
    );
    println!("root                  {root:?} count {}", a.len());
    println!(
        "build                 {build:.2?} ({:.2} M edges/s)",
        rate / 1e6
    );
    println!(
        "digest memory         {:.1} MiB ({:.1} bytes/edge; workload itself {:.1} bytes/edge)",
        mem as f64 / (1 << 20) as f64,
        mem as f64 / n as f64,
        w.memory_bytes() as f64 / n as f64
    );
    println!("removed on side B     {removed} edges");
    println!(
        "differing buckets     {} (local comparison of the two trees, {compare:.2?})",
        diff.len()
    );
    println!(
        "descent               {} messages ({} round trips), {} payload bytes, {} differences found ({descent:.2?})",
        run.messages,
        run.messages.div_ceil(2),
        run.payload_bytes,
        run.found.len()
    );
    ExitCode::SUCCESS
}
