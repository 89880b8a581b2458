//! The worlds of the suite and of the packet bench run on links with a bandwidth and a cost
//! per stanza (`conformance::world::s2s_link`), so that the simulated time until the views
//! are right measures pacing and not only hop counts: RFC 6121's cold restart, whose time is
//! that of its last delivery, cannot end before its busiest direction has carried its stanzas
//! and bytes, and takes longer than the extension's (with latency alone it would not: its
//! probes and answers are one exchange); the extension's active users are right no later than
//! everybody.

use std::time::Duration;

use presence_sync::conformance::subject::{Implementation, Reference, legacy};
use presence_sync::conformance::workload::{Preset, Spec};
use presence_sync::conformance::world::{Phase, World, s2s_link};
use presence_sync::server::Flavour;

const A: &str = "a.example";
const B: &str = "b.example";

/// The least simulated ms a phase can take on `s2s_link`: its busiest direction carries its
/// stanzas one after another (cost per stanza plus bytes at the bandwidth), then the last one
/// travels for the latency.
fn paced_floor_ms(phase: &Phase) -> u64 {
    let link = s2s_link();
    let per_stanza = link.per_stanza.as_micros() as u64;
    let bandwidth = link.bandwidth_bytes_per_ms.expect("a finite bandwidth");
    let busiest = phase
        .directions
        .iter()
        .map(|(_, _, stanzas, bytes)| stanzas * per_stanza + bytes * 1000 / bandwidth)
        .max()
        .expect("traffic");
    (busiest + link.latency.as_micros() as u64) / 1000
}

fn cold_restart(mut w: World, fed: &presence_sync::conformance::workload::Federation) -> Phase {
    w.log_in_all(fed);
    w.net.crash(A);
    w.net.drive_for(Duration::from_secs(5));
    w.measure_plain(|w| {
        w.net.restart(A);
        w.log_in(fed, A);
    })
}

#[test]
fn a_cold_restart_takes_at_least_what_its_busiest_direction_carries() {
    let link = s2s_link();
    assert!(link.bandwidth_bytes_per_ms.is_some() && !link.per_stanza.is_zero());
    let fed = Spec::preset(Preset::Small).with_seed(1).generate(&[A, B]);

    let legacy_world = World::new(&fed, &[], |d| legacy(d, Flavour::Prosody));
    let rfc = cold_restart(legacy_world, &fed);
    assert!(rfc.converged);
    let rfc_ms = rfc
        .sim_ms_to_converge
        .expect("a baseline's time is its last delivery");
    assert!(
        rfc_ms >= paced_floor_ms(&rfc),
        "RFC 6121 right at {rfc_ms} ms, below its paced floor of {} ms ({} stanzas)",
        paced_floor_ms(&rfc),
        rfc.stanzas
    );

    let ext_world = World::new(&fed, &[A, B], |d| {
        Reference::default().server(d, if d == A { 1 } else { 2 })
    });
    let ext = cold_restart(ext_world, &fed);
    assert!(ext.converged);
    let ext_ms = ext.sim_ms_to_converge.expect("converged");
    let active_ms = ext.sim_ms_to_active_synced.expect("converged");
    assert!(active_ms <= ext_ms);
    // Hundreds of probes and answers against a handful of batches and pulls: the legacy
    // restart is slower in time as it is in stanzas.
    assert!(
        rfc_ms > ext_ms,
        "RFC 6121 {rfc_ms} ms, the extension {ext_ms} ms"
    );
}

/// PS-52's clause for a restart: the restarted server's queries pulling the contacts of its
/// active users leave before the batches of its login storm, so that the peer answers them
/// while the storm is on its way; its other queries still wait behind the live changes.
#[test]
fn a_restart_pulls_its_active_users_contacts_before_its_login_storm() {
    use presence_sync::conformance::record::RecordKind;
    let fed = Spec::preset(Preset::Medium).with_seed(1).generate(&[A, B]);
    let mut w = World::new(&fed, &[A, B], |d| {
        Reference::default().server(d, if d == A { 1 } else { 2 })
    });
    w.log_in_all(&fed);
    w.net.crash(A);
    w.net.drive_for(Duration::from_secs(5));
    let from = w.net.host(A).records().len();
    let phase = w.measure_plain(|w| {
        w.net.restart(A);
        w.log_in(&fed, A);
    });
    assert!(phase.converged);
    // What A sent to B after its restart, in order: 'q' a presence query, 'b' a batch.
    let order: String = w.net.host(A).records()[from..]
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Out { stanza, .. } if stanza.attr("type") == Some("set") => {
                let child = stanza.children().next()?;
                match (child.name(), child.attr("set")) {
                    ("reconcile", Some("presence")) => Some('q'),
                    ("batch", _) => Some('b'),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect();
    let first_batch = order.find('b').expect("a login storm");
    let first_query = order.find('q').expect("pulls");
    assert!(
        first_query < first_batch,
        "the pulls of active users' contacts wait behind the storm: {order}"
    );
    // Only those: the pulls of other contacts come after the first batch.
    assert!(
        order[first_batch..].contains('q'),
        "every pull went before the storm: {order}"
    );
}
