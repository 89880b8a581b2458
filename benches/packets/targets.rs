//! The targets of the packet comparison, each printed with its measured figures and MET or
//! MISSED (the last part of the bench's output).

use super::hub::{self, HubRun};
use super::{ACTIVE, Row, SizeResult, find, share, verdict};

/// Prints every target with its measured figures; true if all are met. `max` is the largest
/// set size the run was allowed (the 10^6 rows are named as not run below it).
pub fn print(results: &[SizeResult], rows: &[Row], hubs: &[HubRun], max: u64) -> bool {
    let largest = results.last().expect("one size");
    let big = largest.edges;
    let at_1e6 = if max >= 1_000_000 {
        String::new()
    } else {
        " (10^6 not run)".to_owned()
    };
    println!("\nTargets (measured figures):");
    let mut all_ok = true;
    for r in results {
        let x = find(rows, "link-loss-0", r.edges, "presence-sync").expect("link-loss-0 row");
        let ok = x.stanzas <= 2 && x.round_trips <= 1;
        all_ok &= ok;
        println!(
            "- unchanged link loss, {} edges: {} stanzas, {} round trip(s)\n  \
             (target: at most 2 and 1): {}",
            r.edges,
            x.stanzas,
            x.round_trips,
            verdict(ok)
        );
    }
    {
        let e = find(rows, "link-loss-100", big, "presence-sync").expect("row");
        let n = find(rows, "link-loss-100", big, "negentropy").expect("row");
        let f = find(rows, "link-loss-100", big, "floor").expect("row");
        let ok = e.stanzas <= 4 && e.round_trips <= 2 && e.bytes <= 3 * f.bytes;
        all_ok &= ok;
        println!(
            "- link loss with d = 100, {big} edges{at_1e6}:\n  \
             {};\n  \
             negentropy {}, {}, {} B ({:.1}x)\n  \
             (target: at most 4 stanzas, 2 RTT and 3x the floor's bytes): {}",
            against_floor(e, f, 1),
            n.stanzas,
            n.round_trips,
            n.bytes,
            n.bytes as f64 / f.bytes as f64,
            verdict(ok),
        );
    }
    for scenario in ["link-loss-mixed-100", "link-loss-1000"] {
        let e = find(rows, scenario, big, "presence-sync").expect("row");
        let n = find(rows, scenario, big, "negentropy").expect("row");
        let ok = e.stanzas <= n.stanzas && e.round_trips <= n.round_trips && e.bytes <= n.bytes;
        all_ok &= ok;
        println!(
            "- {scenario}, {big} edges{at_1e6}:\n  \
             presence-sync {} stanzas, {} RTT, {} B; negentropy {}, {}, {} B\n  \
             (target: no more on each): {}",
            e.stanzas,
            e.round_trips,
            e.bytes,
            n.stanzas,
            n.round_trips,
            n.bytes,
            verdict(ok),
        );
    }
    {
        let e = find(rows, "cold-restart", big, "presence-sync").expect("row");
        let n = find(rows, "cold-restart", big, "negentropy").expect("row");
        let f = find(rows, "cold-restart", big, "floor").expect("row");
        let few = e.stanzas <= n.stanzas && e.round_trips <= n.round_trips;
        // Within 1.3 times the floor, in integers: 10 · bytes <= 13 · floor.
        let lean = 10 * e.bytes <= 13 * f.bytes;
        all_ok &= few && lean;
        println!(
            "- cold restart with login storm, {big} edges{at_1e6}:\n  \
             {};\n  \
             negentropy {}, {}, {} B\n  \
             (target: no more stanzas and RTT than negentropy): {}\n  \
             (target: bytes within 1.3x the floor's): {}",
            against_floor(e, f, 2),
            n.stanzas,
            n.round_trips,
            n.bytes,
            verdict(few),
            verdict(lean),
        );
    }
    {
        let e = find(rows, "cold-restart", big, "presence-sync").expect("row");
        let p = find(rows, "cold-restart", big, "rfc6121").expect("row");
        let x = find(rows, "cold-restart", big, "xep0033").expect("row");
        let (rp, rx) = (
            p.stanzas as f64 / e.stanzas.max(1) as f64,
            x.stanzas as f64 / e.stanzas.max(1) as f64,
        );
        let ok = rp >= 300.0 && rx >= 30.0;
        all_ok &= ok;
        println!(
            "- cold restart with login storm, {big} edges{at_1e6}, 30% online:\n  \
             presence-sync {} stanzas; rfc6121 {} ({rp:.0}x more, target at least 300x);\n  \
             xep0033 {} ({rx:.0}x more, target at least 30x): {}",
            e.stanzas,
            p.stanzas,
            x.stanzas,
            verdict(ok)
        );
    }
    {
        let (iq_to_active, iqs, st_to_active, st) = largest.ext_cold_active;
        let (frac, how) = if iqs > 0 {
            (
                iq_to_active.map(|n| n as f64 / iqs as f64),
                format!("{} reconcile stanzas", share(iq_to_active, iqs)),
            )
        } else {
            (
                st_to_active.map(|n| n as f64 / st.max(1) as f64),
                format!("{} stanzas", share(st_to_active, st)),
            )
        };
        let ok = frac.is_some_and(|f| f <= 0.20);
        all_ok &= ok;
        let (wanted, entries) = largest.ext_cold_share;
        println!(
            "- active users (the most active {:.0}% of the online users) synchronized first,\n  \
             cold restart, {big} edges{at_1e6}:\n  \
             right after {how} = {} (target: at most 20%): {}\n  \
             all stanzas: {}; their contacts publish {wanted} of the {entries}\n  \
             entries to move ({:.1}%), which any order must move first",
            ACTIVE * 100.0,
            frac.map_or("never".to_owned(), |f| format!("{:.1}%", f * 100.0)),
            verdict(ok),
            share(st_to_active, st),
            wanted as f64 * 100.0 / entries.max(1) as f64
        );
        let cold = largest
            .rows
            .iter()
            .find(|r| r.scenario == "cold-restart" && r.scheme == "presence-sync");
        if let Some((Some(active), Some(all))) = cold.map(|r| (r.active_ms, r.sim_ms)) {
            println!(
                "  in simulated time (links of the time table): the active users right at\n  \
                 {active} ms, every view at {all} ms"
            );
        }
    }
    {
        let s = largest.ext_cold_seconds;
        let ok = s < 15.0;
        all_ok &= ok;
        println!(
            "- wall time of the presence-sync cold restart, {big} edges{at_1e6}:\n  \
             {s:.1} s (crash, 5 s simulated, restart, sync, login storm; target under 15 s): {}\n  \
             building and logging in that world took {:.1} s",
            verdict(ok),
            largest.ext_setup_seconds
        );
    }
    for r in hubs {
        let ok = hub::never_worse(r);
        all_ok &= ok;
        println!(
            "- hub with {} peer domains: every peer-size bucket at or below RFC 6121\n  \
             in stanzas and in bytes: {}",
            r.peers,
            verdict(ok)
        );
    }
    all_ok
}

/// The extension's row `e` beside the floor's `f`, the ratio of bytes with `decimals`.
fn against_floor(e: &Row, f: &Row, decimals: usize) -> String {
    format!(
        "presence-sync {} stanzas, {} RTT, {} B ({:.*}x the floor's {} B)",
        e.stanzas,
        e.round_trips,
        e.bytes,
        decimals,
        e.bytes as f64 / f.bytes as f64,
        f.bytes
    )
}
