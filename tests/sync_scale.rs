//! The extension and the RFC 6121 baseline on a generated federation (conformance
//! workloads): a cold restart of one server with a login storm, and a link loss with churn,
//! each checked against the ground truth. The `small` preset runs in CI; `PRESENCE_SYNC_PRESET`
//! (e.g. `medium`, `large`) scales it up and the test prints its figures.

use std::time::{Duration, Instant};

use presence_sync::conformance::workload::{Federation, Preset, Spec};
use presence_sync::server::{Flavour, Server, SyncSetup, check_views};
use presence_sync::sim::{LinkConfig, Net};

const A: &str = "a.example";
const B: &str = "b.example";

fn preset() -> Preset {
    std::env::var("PRESENCE_SYNC_PRESET")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(Preset::Small)
}

fn assert_truth(net: &Net<Server>) {
    let (_, d) = check_views(&[net.host(A), net.host(B)]);
    assert!(
        d.is_empty(),
        "{} differences, first: {:?}",
        d.len(),
        &d[..d.len().min(5)]
    );
}

fn net_of(fed: &Federation, sync: bool) -> Net<Server> {
    let servers = fed.build(|d| {
        if sync {
            Server::with_sync(d, Flavour::Prosody, SyncSetup::every_peer(), 7)
        } else {
            Server::new(d, Flavour::Prosody)
        }
    });
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
    assert_truth(&net);
    net
}

/// (stanzas, bytes, round trips) since the last reset.
fn cost(net: &Net<Server>) -> (u64, u64, u32) {
    let t = net.stats().total();
    (t.stanzas, t.bytes, net.round_trips())
}

fn cold_restart(fed: &Federation, sync: bool) -> (u64, u64, u32) {
    let mut net = net_of(fed, sync);
    net.crash(B);
    net.drive_for(Duration::from_secs(5));
    net.reset_stats();
    net.restart(B);
    net.drive();
    net.with_host(B, |s, _| fed.log_in(s));
    net.drive();
    assert_truth(&net);
    cost(&net)
}

fn link_loss(fed: &Federation, sync: bool, changes: usize) -> (u64, u64, u32) {
    let mut net = net_of(fed, sync);
    net.partition(A, B);
    for c in fed.churn(changes, 3) {
        let d = c.domain().to_owned();
        net.with_host(&d, |s, _| c.apply(s));
    }
    net.drive();
    net.reset_stats();
    net.repair(A, B);
    net.drive();
    if sync {
        // RFC 6121 leaves ghosts after a link loss (tests/legacy.rs); the extension must not.
        assert_truth(&net);
    }
    cost(&net)
}

#[test]
fn generated_federation_converges_and_costs_less() {
    let fed = Spec::preset(preset()).generate(&[A, B]);
    let started = Instant::now();
    let sync = cold_restart(&fed, true);
    let legacy = cold_restart(&fed, false);
    let loss = link_loss(&fed, true, 20);
    let loss_legacy = link_loss(&fed, false, 20);
    eprintln!(
        "{} edges; cold restart + login storm: sync {sync:?}, prosody {legacy:?}; \
         link loss with 20 changes: sync {loss:?}, prosody {loss_legacy:?} \
         ({:.1} s)",
        fed.edges(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        sync.0 * 10 < legacy.0,
        "sync {sync:?} vs prosody {legacy:?}"
    );
}

/// XEP §Sketches: after a link loss with 20 changes (medium workload), the hellos give each
/// side's changes (PS-96) and the descents start with sketches of the root (PS-97) that
/// decode: no split is sent, and the end state is right.
#[test]
fn a_link_loss_starts_with_sketches_sized_by_the_announced_changes() {
    let fed = Spec::preset(Preset::Medium).generate(&[A, B]);
    let mut net = net_of(&fed, true);
    // Each reconcile query by its first child, each hello by whether it gives the changes.
    net.set_classifier(|st| {
        let ns = presence_sync::wire::ns::PRESENCE_SYNC;
        let typ = st.attr("type").unwrap_or_default();
        if let Some(r) = st.get_child("reconcile", ns) {
            let first = r.children().next().map_or("empty", |c| c.name());
            return format!(
                "reconcile/{typ}/{}/{first}",
                r.attr("set").unwrap_or_default()
            );
        }
        if let Some(h) = st.get_child("hello", ns) {
            let told = h
                .children()
                .filter(|c| matches!(c.attr("set"), Some("edges" | "published")))
                .all(|c| c.attr("changes").is_some());
            return format!("hello/{}", if told { "changes" } else { "silent" });
        }
        presence_sync::sim::stanza_kind(st)
    });
    net.partition(A, B);
    for c in fed.churn(20, 3) {
        let d = c.domain().to_owned();
        net.with_host(&d, |s, _| c.apply(s));
    }
    net.drive();
    net.reset_stats();
    net.repair(A, B);
    net.drive();
    assert_truth(&net);
    let kinds: std::collections::BTreeMap<String, u64> = net
        .stats()
        .iter()
        .map(|(_, _, k, c)| (k.to_owned(), c.stanzas))
        .fold(Default::default(), |mut m, (k, n)| {
            *m.entry(k).or_default() += n;
            m
        });
    let count = |k: &str| kinds.get(k).copied().unwrap_or(0);
    assert_eq!(count("hello/silent"), 0, "{kinds:?}");
    assert!(count("hello/changes") >= 2, "{kinds:?}");
    let sketches: u64 = kinds
        .iter()
        .filter(|(k, _)| k.starts_with("reconcile/set/") && k.ends_with("/sketch"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        sketches >= 2,
        "an edge and a presence sketch at least: {kinds:?}"
    );
    let splits: u64 = kinds
        .iter()
        .filter(|(k, _)| k.contains("/split"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(splits, 0, "every sketch decoded: {kinds:?}");
}
