//! The `presence-sync` command line.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use presence_sync::conformance::progress::Tick;
use presence_sync::conformance::workload::Preset;
use presence_sync::conformance::{self, Options, Progress};
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
    /// Run the conformance suite against the reference implementation: every scenario on a
    /// generated workload, checked against the ground truth, reported scenario by scenario
    /// (with the RFC 6121 baseline's figures) and requirement by requirement. Exits non-zero
    /// if a scenario fails or a MUST of the XEP is not covered.
    Conformance {
        /// Comma-separated scenario names (default: all; `--list` shows them).
        #[arg(long, value_delimiter = ',')]
        scenarios: Option<Vec<String>>,
        /// Workload preset: tiny, small, medium, large or huge.
        ///
        /// Cross-domain edges, and the whole suite's wall time and peak memory measured with
        /// /usr/bin/time -v on a 2-core machine shared with other work (hub of 1000 peers):
        ///
        ///   tiny       12 edges     4 s    0.2 GB
        ///   small     965 edges    23 s    0.5 GB
        ///   medium   9935 edges    23 s    0.5 GB
        ///   large   99740 edges     9 min  3.9 GB
        ///   huge     ~10^6 edges   not measured (ten times the edges of large)
        ///
        /// --scenarios runs a part of it (the legacy peers and failing-sessions are the
        /// slowest at large).
        #[arg(long, default_value = "small", verbatim_doc_comment)]
        preset: Preset,
        /// Users per domain (overrides the preset).
        #[arg(long)]
        users: Option<u32>,
        /// Fraction of users online (overrides the preset).
        #[arg(long)]
        online: Option<f64>,
        /// Seed of the workload and the scenarios.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Changes during an outage (d) in the link-loss scenarios.
        #[arg(long, default_value_t = 20)]
        changes: usize,
        /// Peer domains of the hub scenario.
        #[arg(long, default_value_t = 1000)]
        hub_peers: usize,
        /// Also run the deliberately broken variants and check each one is caught.
        #[arg(long)]
        mutants: bool,
        /// With --scenarios: fail on the MUSTs the selected scenarios do not exercise, as a
        /// full run does (by default a subset run judges only what it ran).
        #[arg(long)]
        require_all: bool,
        /// Write each scenario's stanza trace (every stanza each server sent and received,
        /// with the simulated time; over the wire, every element that crossed the s2s link,
        /// with the wall-clock time) to DIR/<scenario>.log.
        #[arg(long, value_name = "DIR")]
        trace: Option<PathBuf>,
        /// Write the machine-readable report to this file (its format:
        /// conformance/report.schema.json).
        #[arg(long)]
        json: Option<PathBuf>,
        /// In the JSON report, every direction of every phase (the hub's thousand peers
        /// included) instead of the largest few and a sum of the rest.
        #[arg(long, requires = "json")]
        json_full: bool,
        /// Print every check and every requirement, not only failures.
        #[arg(long, short)]
        verbose: bool,
        /// List the scenarios and exit.
        #[arg(long)]
        list: bool,
        /// Write the scenarios covering each requirement into the requirement map of the XEP's
        /// implementation report (xep/implementation-report.md), then run
        /// `python3 xep/tools/req-index.py --check`.
        #[arg(long)]
        write_xep: bool,
        /// Test a running server over the network instead, as its target file (TOML)
        /// describes it: addresses, the peer domain the suite plays, how accounts are made,
        /// how it is restarted (README "Test your own server"). --users is then the number of
        /// users on each side (default: 6, or more so that they share more edges with the
        /// server than its small-peer threshold, the target's `small-peer`, 40 if not given:
        /// 11 users).
        #[arg(long, value_name = "FILE")]
        target: Option<PathBuf>,
        /// With --target: write the results as JUnit XML (one test case per scenario).
        #[arg(long, value_name = "FILE", requires = "target")]
        junit: Option<PathBuf>,
        /// With --target: fail the run when a scenario could not be run (no way to restart
        /// the server, or the extension not implemented).
        #[arg(long, requires = "target")]
        fail_on_not_run: bool,
    },
    /// Run the reference implementation as an XMPP server for one domain: c2s and s2s over
    /// TCP with the extension, storage that survives restarts; SIGTERM stops it gracefully.
    Serve {
        /// The configuration file (TOML; see the README).
        #[arg(long)]
        config: PathBuf,
        /// Run one of the conformance suite's broken variants (for testing the suite).
        #[arg(long, hide = true)]
        mutation: Option<String>,
    },
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
        Command::Conformance {
            scenarios,
            preset,
            users,
            online,
            seed,
            changes,
            hub_peers,
            mutants,
            require_all,
            trace,
            json,
            json_full,
            verbose,
            list,
            write_xep,
            target,
            junit,
            fail_on_not_run,
        } => {
            if let Some(target) = target {
                if list {
                    for s in &conformance::wire::scenarios::ALL {
                        println!("{:<22} {}", s.name, s.about);
                    }
                    return ExitCode::SUCCESS;
                }
                let opts = conformance::wire::Options {
                    users: users.map(|u| u as usize),
                    scenarios,
                    require_all,
                    work: None,
                    trace,
                };
                if let Err(e) = opts.validate() {
                    usage_error(e);
                }
                return conformance_wire(&target, &opts, json, junit, fail_on_not_run, verbose);
            }
            if list {
                for s in conformance::scenarios::all() {
                    println!("{:<22} {}", s.name, s.about);
                }
                return ExitCode::SUCCESS;
            }
            let opts = Options {
                preset,
                users,
                online,
                seed,
                changes,
                hub_peers,
                scenarios,
                require_all,
                trace,
            };
            if let Err(e) = opts.validate() {
                usage_error(e);
            }
            conformance(
                &opts,
                mutants,
                json.map(|p| (p, json_full)),
                verbose,
                write_xep,
            )
        }
        Command::Digest {
            edges,
            differences,
            seed,
            hash,
        } => digest(edges, differences, seed, hash),
        Command::Serve { config, mutation } => {
            match presence_sync::serve::main(&config, mutation.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("presence-sync serve: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A usage error of `conformance`, as clap reports its own: the message and exit status 2.
fn usage_error(e: String) -> ! {
    let mut cli = Cli::command();
    cli.build();
    match cli.find_subcommand_mut("conformance") {
        Some(sub) => sub.error(clap::error::ErrorKind::ValueValidation, e).exit(),
        None => cli.error(clap::error::ErrorKind::ValueValidation, e).exit(),
    }
}

/// `conformance --target FILE`: the wire run, its reports and its exit status.
fn conformance_wire(
    path: &std::path::Path,
    opts: &conformance::wire::Options,
    json: Option<PathBuf>,
    junit: Option<PathBuf>,
    fail_on_not_run: bool,
    verbose: bool,
) -> ExitCode {
    use conformance::wire::{self, Progress as WireProgress};
    let started = Instant::now();
    let target = match wire::target::Target::load(path) {
        Ok(t) => t,
        Err(e) => usage_error(e),
    };
    let users = opts.users_for(&target);
    let edges = (users * wire::EDGES_PER_USER) as u64;
    if edges <= target.small_peer() {
        // XEP PS-93: the server keeps RFC 6121 with the suite's peer and starts no session
        // itself; the peer's hello (after its wait, PS-16) does, and the checks that need a
        // session wait for it.
        eprintln!(
            "note: {users} users a side share {edges} edges with the server, not more than its \
             small-peer threshold ({}, XEP PS-93): it keeps RFC 6121 with the suite's peer, \
             which starts every session; give more --users to test the server's own hellos",
            target.small_peer()
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut progress = |p: WireProgress<'_>| match p {
        WireProgress::SetUp(step) => eprintln!("set-up: {step}..."),
        WireProgress::Start { index, total, name } => {
            eprint!("[{index:>2}/{total}] {name:<22} ");
            let _ = std::io::stderr().flush();
        }
        WireProgress::Done(run) => {
            let verdict = match wire::not_run(run) {
                Some(_) => "not run",
                None if run.passed() => "pass",
                None => "FAIL",
            };
            eprintln!("{verdict} ({:.1} s)", run.seconds);
        }
    };
    eprintln!(
        "testing {} ({}) over the network; the suite plays {} at {}",
        target.name(),
        target.c2s,
        target.peer.domain,
        target.peer.listen
    );
    let report = match runtime.block_on(wire::run(&target, opts, &mut progress)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.text(verbose));
    let not_run: Vec<String> = report
        .runs
        .iter()
        .filter_map(|r| wire::not_run(r).map(|why| format!("{}: {why}", r.name)))
        .collect();
    for line in &not_run {
        println!("not run: {line}");
    }
    if let Some(path) = json {
        let text =
            serde_json::to_string_pretty(&report.json(false)).expect("a JSON value serialises");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("JSON report written to {}", path.display());
    }
    if let Some(path) = junit {
        if let Err(e) = std::fs::write(&path, wire::junit::junit(&report)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("JUnit report written to {}", path.display());
    }
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
    runtime.shutdown_background();
    if report.passed() && (!fail_on_not_run || not_run.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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

fn conformance(
    opts: &Options,
    mutants: bool,
    json: Option<(PathBuf, bool)>,
    verbose: bool,
    write_xep: bool,
) -> ExitCode {
    let started = Instant::now();
    let imp = opts.reference();
    let tty = std::io::stderr().is_terminal();
    // On a terminal, a spinner shows what the current scenario is doing (building servers, a
    // login storm, the measured phase) with its counts; elsewhere, one line per scenario.
    let spinner = tty.then(|| {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{prefix} {spinner} {msg} [{elapsed}]")
                .expect("a valid template"),
        );
        let bar = pb.clone();
        conformance::progress::set_ticker(Some(Arc::new(move |t: &Tick<'_>| {
            bar.set_message(format!(
                "{}: {} events, {} stanzas, {:.1} s simulated",
                t.phase,
                t.events,
                t.stanzas,
                t.sim_ms as f64 / 1000.0
            ));
        })));
        pb
    });
    let mut progress = |p: Progress<'_>| match p {
        Progress::Start { index, total, name } => match &spinner {
            Some(pb) => {
                pb.reset();
                pb.set_prefix(format!("[{index:>2}/{total}] {name:<22}"));
                pb.set_message("starting");
                pb.enable_steady_tick(Duration::from_millis(120));
            }
            None => {
                eprint!("[{index:>2}/{total}] {name:<22} ");
                let _ = std::io::stderr().flush();
            }
        },
        Progress::Done(run) => {
            let verdict = if run.passed() { "pass" } else { "FAIL" };
            match &spinner {
                Some(pb) => {
                    pb.disable_steady_tick();
                    pb.println(format!("{} {verdict} ({:.1} s)", pb.prefix(), run.seconds));
                    pb.set_message("");
                }
                None => eprintln!("{verdict} ({:.1} s)", run.seconds),
            }
        }
    };
    eprintln!(
        "generating the {} workload (seed {})...",
        opts.preset.name(),
        opts.seed
    );
    let result = conformance::run_suite(&imp, opts, &mut progress);
    if let Some(pb) = &spinner {
        pb.finish_and_clear();
        conformance::progress::set_ticker(None);
    }
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if mutants {
        let mut mprogress = |name: &str| eprintln!("broken variant {name}...");
        if let Err(e) = conformance::run_mutants(&mut report, opts, &mut mprogress) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!("{}", report.text(verbose));
    if let Some((path, full)) = json {
        let text =
            serde_json::to_string_pretty(&report.json(full)).expect("a JSON value serialises");
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("JSON report written to {}", path.display());
    }
    if write_xep {
        let path = PathBuf::from("xep/implementation-report.md");
        match conformance::report::write_requirement_map(&report, &path) {
            Ok(n) => eprintln!("{n} rows of the requirement map updated"),
            Err(e) => {
                eprintln!("error: cannot update {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
