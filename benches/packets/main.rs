//! The packet comparison: **deterministic counts, not timings**, of what a
//! resync costs with this extension, beside what users would otherwise have, the
//! range-based set-reconciliation anchor (Negentropy) and the information-theoretic floor.
//!
//! Run with `cargo bench --bench packets`. `PRESENCE_SYNC_BENCH_MAX_EDGES` caps the sizes
//! (default 10^6; `10000` for a quick run). Progress goes to stderr with the wall time of every
//! run; the tables, the targets and the wall times go to stdout; the rows are written
//! to `target/presence-sync/packets.csv` (under `$CARGO_TARGET_DIR` if set), columns
//! `scenario,edges,differences,scheme,stanzas,bytes,round_trips,converged,sim_ms,active_ms`
//! (`converged`: `false` if the run left stale or missing presence; `sim_ms`: simulated ms
//! from the start of the phase until every view was right, for the server worlds that
//! converged; `active_ms`: until the active users' views were right, the extension's world
//! only), and the plot (stanzas, bytes and round
//! trips against edges, log-log, one line per scheme, three panels per scenario, stale runs
//! marked with a cross) to `packets.svg` beside it.
//!
//! Before the sizes, the **hub** rows (`hub.rs`): the conformance suite's `hub` scenario with
//! 10^3, 10^4 and 10^5 peer domains (`PRESENCE_SYNC_BENCH_HUB_PEERS` caps them, default
//! 10^5), per peer-size bucket against RFC 6121, with the wall time and peak memory of each
//! run; written to `hub.csv` beside the others, columns
//! `peers,bucket,bucket_peers,edges,scheme,stanzas,bytes`. A failing check of the scenario
//! fails the bench as a run that did not converge does.
//!
//! # Workloads and scripts
//!
//! For each size (10^3, 10^4, 10^5, 10^6 cross-domain edges: the conformance workload
//! `Spec::preset(Small).with_edges(n)`, seed 1, 30% of users online, the most active 10% of
//! them active, as the project's targets define the active users) one
//! federation of `a.example` and `b.example` is generated, and three worlds are built on it
//! (`conformance::world::World`, the deterministic `Net` on the links of
//! `conformance::world::s2s_link`: 20 ms one way, 100 Mbit/s, 150 µs to handle a stanza),
//! everybody logged in:
//!
//! | scheme | servers |
//! |---|---|
//! | `rfc6121` | two Prosody-like RFC 6121 servers (`legacy(d, Flavour::Prosody)`) |
//! | `xep0033` | two ejabberd-like RFC 6121 servers with XEP-0033 grouping (`Flavour::Ejabberd { multicast: true }`) |
//! | `presence-sync` | two reference servers with this extension (`Reference::default()`) |
//!
//! Each world then goes through the scripts of the conformance scenarios, copied here at the
//! `World` level, **in this order on the same world** (building a world at 10^6 edges takes tens
//! of seconds, so the scenarios share one; each leaves every user shown exactly the truth):
//!
//! 1. `cold-restart`: `a.example` crashes, 5 s pass, measured: its restart and the login storm of
//!    its users (every session of the workload logs in again, active users marked active);
//! 2. `graceful-restart`: measured: `a.example` shuts down (announcement), restarts, login storm;
//! 3. `both-restart`: both crash, 5 s, measured: both restart and both login storms;
//! 4. `link-loss-d` for d = 0, 1, 10, 100, 1000: partition, d presence changes (changes of
//!    show and status, logins, logouts), measured: the repair of the link. The five chunks are
//!    consecutive runs of the presence changes of one churn sequence of the default mix
//!    (`Federation::churn`: a churn's changes follow each other from the generated state; its
//!    subscription changes and blocks each touch their own pair, so leaving them out changes no
//!    later change), so each chunk acts on the state the previous ones left;
//! 5. `link-loss-mixed-100`: the same, with the next 100 changes of that sequence, of every
//!    kind (80% presence, logins, logouts, subscriptions, approvals, unsubscriptions, blocks):
//!    the edge sets drift apart too, and the extension reconciles and repairs them as well.
//!    Subscription and block changes of pairs the mismatches touch are left out of the
//!    sequence;
//! 6. `mismatch`: the link is partitioned, 100 one-sided roster edits
//!    (`Federation::mismatches(100, 1)`; `PRESENCE_SYNC_BENCH_MISMATCHES` overrides the count)
//!    are made, measured: the repair of the link and 30 s. Last, because what it leaves behind
//!    if the repair goes wrong would spoil the scenarios after it.
//!
//! After the three restarts the servers' state (rosters, sessions) is the generated one again,
//! so the restart scripts measure exactly what a fresh world would.
//!
//! Every measured phase's end state is compared with the ground truth (`phase.converged`); if
//! the extension's did not converge, the bench says so loudly on stderr as it happens, marks the
//! row `*`, still writes every table, the CSV and the plot (so the failure can be studied), and
//! then **exits with status 1**, failing `cargo bench`. RFC 6121 does nothing after a link loss
//! or a mismatch and leaves stale presence: such rows are marked `*` in the tables (their counts
//! are still written).
//!
//! # Negentropy: the same sets, the same framing
//!
//! `negentropy.rs` runs the real `negentropy` crate between two parties, each message in one
//! `<iq/>` framed as our `<reconcile/>` (max 65 536 bytes per stanza). It is given the sets the
//! resync must reconcile, read from the extension's world:
//!
//! - **link loss**: per direction, the publishing side's presence entries (publisher → its
//!   available resources and except list, as the extension publishes them to the peer; item id =
//!   BLAKE3 of the canonical presence-leaf encoding, 32 bytes) after the outage, against the same
//!   entries before it (what the peer cached). Two runs, one per direction, each initiated by the
//!   publishing side; they run at the same time, so stanzas and bytes add up and the round trips
//!   are the larger of the two; in `link-loss-mixed-100`, a third run reconciles the two
//!   servers' edge sets as they stand after the outage (as for the mismatch, below), at the
//!   same time;
//! - **restarts**: the restarted side lost its cache of the peer, and the peer voids its cache of
//!   the restarted side at the new epoch (cold) or at the shutdown announcement (graceful), so per
//!   direction the cache is **empty** against the publishing side's whole published set: the
//!   reconciliation finds that everything is missing;
//! - **mismatch**: the two servers' projected cross-domain edge sets (item id = BLAKE3 of the
//!   canonical edge encoding), after the one-sided edits, one run.
//!
//! Negentropy only finds which ids differ; the differing items must then move. So that its rows
//! count what the resync must do, as the extension's do, the initiator then **pushes** (one-way)
//! the canonical bytes of the items it has that the other lacks and the 32-byte ids of those the
//! other has and it lacks (to be dropped), framed as its other messages (base64 in an `<iq/>`,
//! each stanza within 65 536 bytes, built and measured): that adds those stanzas and bytes, and
//! 1 round trip (depth 2k + 1 after k exchanges) when anything moves. Where the edge sets are
//! equal, negentropy is not charged for finding that out (the extension compares their roots in
//! its hello exchange), which favours it.
//!
//! # The floor
//!
//! `floor.rs`: one message per direction that must carry something (one for the mismatch) with a
//! 128-bit check, the names of the `d` differing items among 64-bit ids (`d·64 − log2 d!` bits)
//! and the canonical bytes of the items that must move anyway: for link loss the changed
//! publishers' new entries (a publisher gone offline moves no payload), for restarts the whole
//! published sets (`d` = their size), for the mismatch the differing edges. No XML framing.
//! Directions add up their stanzas and bytes; round trips are 1.
//!
//! # The `differences` column
//!
//! The `d` of the floor: link loss, the publishers whose published entry differs (both
//! directions; churn changes of non-publishers or of subscriptions alone do not count, so it may
//! be below the scenario's d); restarts, the size of the published sets that must be sent again
//! (both directions); mismatch, the edges in which the two servers' sets differ.

mod floor;
mod honest;
mod hub;
mod negentropy;
mod plot;
mod sets;
mod targets;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jid::BareJid;
use presence_sync::conformance::subject::{Implementation, Reference, legacy};
use presence_sync::conformance::workload::{Change, Federation, Mismatch, Preset, Spec};
use presence_sync::conformance::world::{Phase, World};
use presence_sync::server::Flavour;

use sets::{Entries, Sets, active_share, both_published, computed, edge_bytes};

const A: &str = "a.example";
const B: &str = "b.example";
const SEED: u64 = 1;
/// The d of the link-loss scenarios (presence changes: logins, logouts, changes of show
/// and status).
const LINK_LOSS_D: [usize; 5] = [0, 1, 10, 100, 1000];
/// The d of the mixed link-loss scenario (the default churn mix: subscriptions and blocks
/// too).
const MIXED_D: usize = 100;
/// The active users: the most active tenth of the online users.
const ACTIVE: f64 = 0.1;
/// Mismatches of the mismatch scenario.
fn mismatches_n() -> usize {
    std::env::var("PRESENCE_SYNC_BENCH_MISMATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}
/// The sizes, in cross-domain edges.
const SIZES: [u64; 4] = [1_000, 10_000, 100_000, 1_000_000];

/// The schemes, in table order.
const SCHEMES: [&str; 5] = ["rfc6121", "xep0033", "negentropy", "presence-sync", "floor"];

/// The scenarios, in table order.
fn scenario_names() -> Vec<String> {
    let mut v: Vec<String> = ["cold-restart", "graceful-restart", "both-restart"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    v.extend(LINK_LOSS_D.iter().map(|d| format!("link-loss-{d}")));
    v.push(format!("link-loss-mixed-{MIXED_D}"));
    v.push("mismatch".to_owned());
    v
}

/// One line of the CSV.
#[derive(Clone, Debug)]
struct Row {
    scenario: String,
    edges: u64,
    differences: u64,
    scheme: &'static str,
    stanzas: u64,
    bytes: u64,
    round_trips: u64,
    /// The end state was right (always true for negentropy and the floor, which are computed).
    converged: bool,
    /// Simulated ms from the start of the phase until every view was right (a server world
    /// that converged; for a graceful restart, from the restart).
    sim_ms: Option<u64>,
    /// Simulated ms until every active user's view was right (the extension's world only).
    active_ms: Option<u64>,
}

/// A server world of one scheme.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rfc6121,
    Xep0033,
    Extension,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rfc6121 => "rfc6121",
            Kind::Xep0033 => "xep0033",
            Kind::Extension => "presence-sync",
        }
    }

    fn world(self, fed: &Federation) -> World {
        let mut w = match self {
            Kind::Rfc6121 => World::new(fed, &[], |d| legacy(d, Flavour::Prosody)),
            Kind::Xep0033 => World::new(fed, &[], |d| {
                legacy(d, Flavour::Ejabberd { multicast: true })
            }),
            Kind::Extension => World::new(fed, &[A, B], |d| {
                Reference::default().server(d, if d == A { SEED } else { SEED ^ 0x5eed })
            }),
        };
        w.log_in_all(fed);
        w
    }
}

/// What the changes of the scripts are: the same for every scheme.
struct Plan {
    mismatches: Vec<Mismatch>,
    /// `(d, changes)` per link-loss scenario.
    chunks: Vec<(usize, Vec<Change>)>,
    /// The changes of the mixed link-loss scenario.
    mixed: Vec<Change>,
}

impl Plan {
    fn new(fed: &Federation) -> Plan {
        let mismatches = fed.mismatches(mismatches_n(), SEED);
        let touched: BTreeSet<(BareJid, BareJid)> =
            mismatches.iter().flat_map(Mismatch::items).collect();
        let total: usize = LINK_LOSS_D.iter().sum::<usize>() + MIXED_D;
        let clashes = |c: &Change| match c {
            Change::Subscribe { user, contact }
            | Change::Approve { user, contact }
            | Change::Unsubscribe { user, contact }
            | Change::Deny { user, contact }
            | Change::Block { user, jid: contact }
            | Change::Unblock { user, jid: contact } => {
                touched.contains(&(user.clone(), contact.clone()))
            }
            _ => false,
        };
        let changes: Vec<Change> = fed
            .churn(total + total / 4 + 64, SEED)
            .into_iter()
            .filter(|c| !clashes(c))
            .collect();
        // The presence changes of the sequence, in order, make the link-loss-d chunks; the
        // subscription changes and blocks among them are left out (each touches its own pair
        // and fits its generated state, so leaving one out changes no later change). The
        // mixed chunk is the next MIXED_D changes of every kind.
        let is_presence = |c: &Change| {
            matches!(
                c,
                Change::Presence { .. } | Change::Login { .. } | Change::Logout { .. }
            )
        };
        let mut rest = changes.into_iter();
        let mut chunks = Vec::new();
        for d in LINK_LOSS_D {
            let chunk: Vec<Change> = rest.by_ref().filter(is_presence).take(d).collect();
            assert_eq!(chunk.len(), d, "too few churn changes");
            chunks.push((d, chunk));
        }
        let mixed: Vec<Change> = rest.take(MIXED_D).collect();
        assert_eq!(mixed.len(), MIXED_D, "too few churn changes");
        Plan {
            mismatches,
            chunks,
            mixed,
        }
    }
}

/// One measured scenario of one world.
struct Measured {
    scenario: String,
    phase: Phase,
    seconds: f64,
    sets: Option<Sets>,
    /// Cold restart, extension's world: [`active_share`].
    active_share: Option<(usize, usize)>,
}

fn log(start: Instant, msg: &str) {
    eprintln!("[{:8.1} s] {msg}", start.elapsed().as_secs_f64());
}

/// Runs every script on `w` (see the module documentation), reading the reconciled sets if
/// `read_sets`.
fn scripts(
    w: &mut World,
    fed: &Federation,
    plan: &Plan,
    read_sets: bool,
    label: &str,
    t0: Instant,
) -> Vec<Measured> {
    let mut out = Vec::new();
    let mut record = |name: &str, phase: Phase, started: Instant, sets: Option<Sets>| {
        let seconds = started.elapsed().as_secs_f64();
        log(
            t0,
            &format!(
                "{label} {name}: {} stanzas, {} bytes, {} RTT, converged {} ({seconds:.1} s)",
                phase.stanzas, phase.bytes, phase.round_trips, phase.converged
            ),
        );
        out.push(Measured {
            scenario: name.to_owned(),
            phase,
            seconds,
            sets,
            active_share: None,
        });
    };
    let restart_sets = |w: &World| {
        let (ab, ba) = both_published(w);
        Sets::Presence(vec![(Entries::new(), ab), (Entries::new(), ba)])
    };

    // cold-restart
    let started = Instant::now();
    w.net.crash(A);
    w.net.drive_for(Duration::from_secs(5));
    let phase = w.measure_plain(|w| {
        w.net.restart(A);
        w.log_in(fed, A);
    });
    let sets = read_sets.then(|| restart_sets(w));
    let share = read_sets.then(|| active_share(w, fed));
    record("cold-restart", phase, started, sets);

    // graceful-restart
    let started = Instant::now();
    let down = w.measure_plain(|w| w.net.shutdown(A));
    let up = w.measure_plain(|w| {
        w.net.restart(A);
        w.log_in(fed, A);
    });
    let sets = read_sets.then(|| restart_sets(w));
    record("graceful-restart", down.then(up), started, sets);

    // both-restart
    let started = Instant::now();
    w.net.crash(A);
    w.net.crash(B);
    w.net.drive_for(Duration::from_secs(5));
    let phase = w.measure_plain(|w| {
        w.net.restart(A);
        w.net.restart(B);
        w.log_in(fed, A);
        w.log_in(fed, B);
    });
    let sets = read_sets.then(|| restart_sets(w));
    record("both-restart", phase, started, sets);

    // link-loss-d, then link-loss-mixed
    let mixed = (MIXED_D, format!("link-loss-mixed-{MIXED_D}"), &plan.mixed);
    let scripts = plan
        .chunks
        .iter()
        .map(|(d, changes)| (*d, format!("link-loss-{d}"), changes))
        .chain(std::iter::once(mixed));
    for (_, name, changes) in scripts {
        let started = Instant::now();
        let before = read_sets.then(|| both_published(w));
        w.net.partition(A, B);
        for c in changes {
            let dom = c.domain().to_owned();
            w.act(&dom, |s| c.apply(s));
        }
        w.net.drive();
        let edges_apart = read_sets.then(|| (edge_bytes(w, A, B), edge_bytes(w, B, A)));
        let phase = w.measure_plain(|w| w.net.repair(A, B));
        let sets = before.map(|(ab0, ba0)| {
            let (ab1, ba1) = both_published(w);
            let presence = Sets::Presence(vec![(ab0, ab1), (ba0, ba1)]);
            match edges_apart {
                // The edge sets drifted apart during the outage: negentropy reconciles them
                // too, alongside the presence sets.
                Some((ea, eb)) if ea != eb => {
                    Sets::Both(Box::new(presence), Box::new(Sets::Edges(ea, eb)))
                }
                _ => presence,
            }
        });
        record(&name, phase, started, sets);
    }
    // mismatch
    let started = Instant::now();
    w.net.partition(A, B);
    for m in &plan.mismatches {
        w.act(m.domain(), |s| m.apply(s));
    }
    w.net.drive();
    let sets = read_sets.then(|| Sets::Edges(edge_bytes(w, A, B), edge_bytes(w, B, A)));
    let phase = w.measure_plain(|w| {
        w.net.repair(A, B);
        w.net.drive();
        w.net.drive_for(Duration::from_secs(30));
    });
    if read_sets && !phase.converged {
        // Diagnosis (the bench fails on it): does it converge given more time, and which
        // mismatches touch the users whose view is wrong?
        w.net.drive_for(Duration::from_secs(600));
        let diff = w.diff();
        log(
            t0,
            &format!(
                "{label} mismatch: NOT CONVERGED after the repair + 30 s; after 600 s more: {} differences",
                diff.len()
            ),
        );
        for line in &diff {
            let involved: Vec<String> = plan
                .mismatches
                .iter()
                .filter(|m| {
                    line.contains(&format!("{} ", m.user)) && line.contains(m.contact.as_str())
                        || line.contains(&format!("{} ", m.contact))
                            && line.contains(m.user.as_str())
                })
                .map(|m| format!("{m:?}"))
                .collect();
            log(
                t0,
                &format!("  {line}; mismatches of the pair: {involved:?}"),
            );
        }
    }
    record("mismatch", phase, started, sets);

    if let Some(m) = out.iter_mut().find(|m| m.scenario == "cold-restart") {
        m.active_share = share;
    }
    out
}

/// Everything measured at one size.
struct SizeResult {
    edges: u64,
    rows: Vec<Row>,
    /// Wall seconds of the extension's cold-restart phase (crash, 5 s simulated, restart, sync).
    ext_cold_seconds: f64,
    /// Wall seconds to build and log in the extension's world.
    ext_setup_seconds: f64,
    /// (reconcile stanzas until the active users were right, of all reconcile stanzas) and
    /// (stanzas until then, of all) in the extension's cold restart.
    ext_cold_active: (Option<u64>, u64, Option<u64>, u64),
    /// [`active_share`] of the extension's cold restart.
    ext_cold_share: (usize, usize),
    /// The extension's runs that did not end with every user shown the truth.
    failures: Vec<String>,
}

fn run_size(target: u64, t0: Instant) -> SizeResult {
    let spec = Spec::preset(Preset::Small)
        .with_edges(target)
        .with_seed(SEED)
        .with_active(ACTIVE);
    let started = Instant::now();
    let fed = spec.generate(&[A, B]);
    let edges = fed.edges();
    log(
        t0,
        &format!(
            "size {target}: generated {} users per domain, {edges} cross-domain edges ({:.1} s)",
            spec.users,
            started.elapsed().as_secs_f64()
        ),
    );
    let plan = Plan::new(&fed);
    let mut rows = Vec::new();
    let mut ext_cold_seconds = 0.0;
    let mut ext_setup_seconds = 0.0;
    let mut ext_cold_active = (None, 0, None, 0);
    let mut ext_cold_share = (0, 0);
    let mut computed_rows: Vec<Row> = Vec::new();
    let reconnect = honest::reconnect_bytes();
    let mut differences: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures = Vec::new();
    for kind in [Kind::Extension, Kind::Rfc6121, Kind::Xep0033] {
        let label = format!("{edges} edges {}", kind.name());
        let started = Instant::now();
        let mut w = kind.world(&fed);
        let setup = started.elapsed().as_secs_f64();
        log(
            t0,
            &format!("{label}: world built, everybody logged in ({setup:.1} s)"),
        );
        let ext = kind == Kind::Extension;
        if ext {
            ext_setup_seconds = setup;
        }
        let measured = scripts(&mut w, &fed, &plan, ext, &label, t0);
        drop(w);
        for m in measured {
            if ext {
                if !m.phase.converged {
                    let msg = format!(
                        "presence-sync did not converge in {} at {edges} edges: {} differences, \
                         first: {}",
                        m.scenario,
                        m.phase.diff.len(),
                        m.phase.diff.first().map_or("none", String::as_str)
                    );
                    log(t0, &format!("ERROR: {msg}"));
                    failures.push(msg);
                }
                if m.scenario == "cold-restart" {
                    ext_cold_seconds = m.seconds;
                    ext_cold_share = m.active_share.unwrap_or_default();
                    ext_cold_active = (
                        m.phase.reconcile_stanzas_to_active_synced,
                        m.phase.reconcile_stanzas,
                        m.phase.stanzas_to_active_synced,
                        m.phase.stanzas,
                    );
                }
                let sets = m
                    .sets
                    .as_ref()
                    .expect("the extension's world reads the sets");
                let t = Instant::now();
                let (d, n, f) = computed(sets);
                log(
                    t0,
                    &format!(
                        "{edges} edges {}: negentropy and floor computed, d = {d} ({:.1} s)",
                        m.scenario,
                        t.elapsed().as_secs_f64()
                    ),
                );
                differences.insert(m.scenario.clone(), d);
                for (scheme, (s, b, r)) in [("negentropy", n), ("floor", f)] {
                    // Negentropy needs the new link as every scheme does; the floor does not.
                    let link = if scheme == "floor" || s == 0 {
                        0
                    } else {
                        reconnect
                    };
                    computed_rows.push(Row {
                        scenario: m.scenario.clone(),
                        edges,
                        differences: d,
                        scheme,
                        stanzas: s,
                        bytes: b + link,
                        round_trips: r,
                        converged: true,
                        sim_ms: None,
                        active_ms: None,
                    });
                }
            }
            rows.push(Row {
                scenario: m.scenario.clone(),
                edges,
                differences: differences.get(&m.scenario).copied().unwrap_or(0),
                scheme: kind.name(),
                stanzas: m.phase.stanzas,
                bytes: m.phase.bytes + if m.phase.stanzas > 0 { reconnect } else { 0 },
                round_trips: u64::from(m.phase.round_trips),
                converged: m.phase.converged,
                sim_ms: m.phase.sim_ms_to_converge,
                active_ms: m
                    .phase
                    .sim_ms_to_active_synced
                    .filter(|_| kind == Kind::Extension),
            });
        }
    }
    rows.extend(computed_rows);
    let order = |s: &str| SCHEMES.iter().position(|x| *x == s).unwrap_or(99);
    let names = scenario_names();
    let pos = |s: &str| names.iter().position(|x| x == s).unwrap_or(99);
    rows.sort_by_key(|r| (pos(&r.scenario), order(r.scheme)));
    SizeResult {
        edges,
        rows,
        ext_cold_seconds,
        ext_setup_seconds,
        ext_cold_active,
        ext_cold_share,
        failures,
    }
}

fn max_edges() -> u64 {
    env_count("PRESENCE_SYNC_BENCH_MAX_EDGES", 1_000_000)
}

/// The count in the environment variable `name` (`1_000` or `1000`), or `default` if unset.
///
/// # Panics
/// If it is set and not a number.
fn env_count<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The table of one scenario, one line per size and scheme (at most 72 columns): `stale`
/// marks a run whose end state is wrong (stale or missing presence).
fn table(scenario: &str, rows: &[&Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n== {scenario} ==");
    let _ = writeln!(
        s,
        "{:>9} {:>7}  {:<14} {:>9} {:>13} {:>5}  end state",
        "edges", "d", "scheme", "stanzas", "bytes", "RTT"
    );
    let edges: BTreeSet<u64> = rows.iter().map(|r| r.edges).collect();
    for e in edges {
        let of_size: Vec<&&Row> = rows.iter().filter(|r| r.edges == e).collect();
        let d = of_size.first().map_or(0, |r| r.differences);
        for (i, scheme) in SCHEMES.iter().enumerate() {
            let Some(r) = of_size.iter().find(|r| r.scheme == *scheme) else {
                continue;
            };
            let (edges, d) = if i == 0 {
                (e.to_string(), d.to_string())
            } else {
                (String::new(), String::new())
            };
            let _ = writeln!(
                s,
                "{edges:>9} {d:>7}  {:<14} {:>9} {:>13} {:>5}  {}",
                r.scheme,
                r.stanzas,
                r.bytes,
                r.round_trips,
                if r.converged { "right" } else { "stale" }
            );
        }
    }
    s
}

/// Simulated time until every view was right, per scenario and size, for the three server
/// worlds, and until the active users' views were right for the extension (at most 80
/// columns).
fn time_table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== simulated time until every view is right (ms from the start of the phase) =="
    );
    let _ = writeln!(
        s,
        "{:<20} {:>9} {:>9} {:>9} {:>14} {:>9}",
        "scenario", "edges", "rfc6121", "xep0033", "presence-sync", "active"
    );
    let ms = |r: Option<&Row>, v: fn(&Row) -> Option<u64>| match r {
        Some(r) if !r.converged => "stale".to_owned(),
        Some(r) => v(r).map_or_else(|| "-".to_owned(), |v| v.to_string()),
        None => "-".to_owned(),
    };
    // The mismatch's repairs change rosters, and the truth with them, not what users are
    // shown: the time until views are right says nothing there.
    for scenario in scenario_names().into_iter().filter(|s| s != "mismatch") {
        let edges: BTreeSet<u64> = rows
            .iter()
            .filter(|r| r.scenario == scenario)
            .map(|r| r.edges)
            .collect();
        for (i, e) in edges.into_iter().enumerate() {
            let of = |scheme: &str| {
                rows.iter()
                    .find(|r| r.scenario == scenario && r.edges == e && r.scheme == scheme)
            };
            let ext = of("presence-sync");
            let _ = writeln!(
                s,
                "{:<20} {e:>9} {:>9} {:>9} {:>14} {:>9}",
                if i == 0 { scenario.as_str() } else { "" },
                ms(of("rfc6121"), |r| r.sim_ms),
                ms(of("xep0033"), |r| r.sim_ms),
                ms(ext, |r| r.sim_ms),
                ms(ext, |r| r.active_ms),
            );
        }
    }
    let _ = writeln!(
        s,
        "links: 20 ms one way, 100 Mbit/s each direction, 150 us to handle a stanza (assumed,\n\
         see conformance::world::s2s_link); active: until the active users' views were right.\n\
         stale: the run left stale or missing presence. A graceful restart counts from the restart.\n\
         The mismatch is left out: its repairs change rosters, not what users are shown."
    );
    s
}

/// `n` of `of` as "n of of", or "never" if the moment never came.
fn share(n: Option<u64>, of: u64) -> String {
    n.map_or_else(|| "never".to_owned(), |n| format!("{n} of {of}"))
}

fn find<'a>(rows: &'a [Row], scenario: &str, edges: u64, scheme: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.edges == edges && r.scheme == scheme)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "MISSED" }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or other flags are ignored.
    let t0 = Instant::now();
    let max = max_edges();
    let sizes: Vec<u64> = SIZES.iter().copied().filter(|&n| n <= max).collect();
    assert!(
        !sizes.is_empty(),
        "PRESENCE_SYNC_BENCH_MAX_EDGES={max} is below 1000"
    );
    let listed: Vec<String> = sizes.iter().map(u64::to_string).collect();
    eprintln!(
        "packet comparison: sizes {} (PRESENCE_SYNC_BENCH_MAX_EDGES={max})",
        listed.join(", ")
    );
    // The hubs first, on a process that holds little yet: their peak memory is measured.
    let max_hub = hub::max_peers();
    let mut hubs = Vec::new();
    for peers in hub::PEERS.into_iter().filter(|&p| p <= max_hub) {
        log(t0, &format!("hub with {peers} peer domains..."));
        let r = hub::run(peers);
        log(
            t0,
            &format!(
                "hub with {peers} peer domains: {:.1} s, {}",
                r.seconds,
                if r.failed.is_empty() {
                    "passed".to_owned()
                } else {
                    format!("FAILED: {}", r.failed.join("; "))
                }
            ),
        );
        hubs.push(r);
    }
    let mut results = Vec::new();
    for n in sizes {
        results.push(run_size(n, t0));
    }
    let rows: Vec<Row> = results
        .iter()
        .flat_map(|r| r.rows.iter().cloned())
        .collect();

    println!("Packet comparison: stanzas, bytes and round trips (RTT) of each resync; d is the");
    println!("number of differing items. End state 'stale': the run left stale or missing");
    println!("presence. Negentropy and the floor are computed on the sets the resync must");
    println!("reconcile (see benches/packets/main.rs).");
    print!("{}", honest::assumptions());
    for scenario in scenario_names() {
        let of: Vec<&Row> = rows.iter().filter(|r| r.scenario == scenario).collect();
        print!("{}", table(&scenario, &of));
    }
    if !hubs.is_empty() {
        print!("{}", hub::table(&hubs));
    }
    print!("{}", time_table(&rows));

    // CSV and plot.
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("presence-sync");
    std::fs::create_dir_all(&dir).expect("creating the output directory");
    let mut csv = String::from(
        "scenario,edges,differences,scheme,stanzas,bytes,round_trips,converged,sim_ms,active_ms\n",
    );
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
    for r in &rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{}",
            r.scenario,
            r.edges,
            r.differences,
            r.scheme,
            r.stanzas,
            r.bytes,
            r.round_trips,
            r.converged,
            opt(r.sim_ms),
            opt(r.active_ms)
        );
    }
    let csv_path = dir.join("packets.csv");
    std::fs::write(&csv_path, csv).expect("writing packets.csv");
    let hub_path = dir.join("hub.csv");
    std::fs::write(&hub_path, hub::csv(&hubs)).expect("writing hub.csv");
    // Per scenario, three panels side by side: stanzas, bytes, round trips.
    let names = scenario_names();
    type Metric = fn(&Row) -> u64;
    let metrics: [(&str, Metric); 3] = [
        ("stanzas", |r| r.stanzas),
        ("bytes", |r| r.bytes),
        ("round trips", |r| r.round_trips),
    ];
    /// A panel's title, y label, points and stale points.
    type Points<'a> = (String, &'a str, Vec<plot::Row<'a>>, Vec<(&'a str, u64)>);
    let mut points: Vec<Points<'_>> = Vec::new();
    for s in &names {
        let of: Vec<&Row> = rows.iter().filter(|r| &r.scenario == s).collect();
        let stale: Vec<(&str, u64)> = of
            .iter()
            .filter(|r| !r.converged)
            .map(|r| (r.scheme, r.edges))
            .collect();
        for (label, f) in metrics {
            let pts = of.iter().map(|r| (r.scheme, r.edges, f(r))).collect();
            points.push((format!("{s}: {label}"), label, pts, stale.clone()));
        }
    }
    let panels: Vec<plot::Panel<'_>> = points
        .iter()
        .map(|(title, y_label, rows, stale)| plot::Panel {
            title,
            y_label,
            rows,
            stale,
        })
        .collect();
    let svg = plot::small_multiples(
        "Stanzas, bytes and round trips per resync against cross-domain edges (log-log)",
        &panels,
        3,
    );
    let svg_path = dir.join("packets.svg");
    std::fs::write(&svg_path, svg).expect("writing packets.svg");
    println!(
        "\nwrote {}, {} and {}",
        csv_path.display(),
        hub_path.display(),
        svg_path.display()
    );

    let all_ok = targets::print(&results, &rows, &hubs, max);
    let mut failures: Vec<String> = results
        .iter()
        .flat_map(|r| r.failures.iter().cloned())
        .collect();
    failures.extend(hubs.iter().filter(|r| !r.failed.is_empty()).map(|r| {
        format!(
            "hub with {} peers: failed checks: {}",
            r.peers,
            r.failed.join("; ")
        )
    }));
    if !failures.is_empty() {
        println!(
            "\nERROR: the extension did not converge (or the hub's checks failed) in {} run(s):",
            failures.len()
        );
        for f in &failures {
            println!("  {f}");
        }
    }
    println!(
        "\n{} (total wall time {:.0} s)",
        if all_ok {
            "all targets met"
        } else {
            "some targets missed (see above)"
        },
        t0.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        eprintln!(
            "packets: FAILED: presence-sync did not converge or a hub check failed in {} run(s)",
            failures.len()
        );
        std::process::exit(1);
    }
}
