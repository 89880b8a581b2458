//! Faults: partition and repair, crash, shutdown, restart, hold and release, the filter.

use std::time::Duration;

use presence_sync::sim::{Counts, LinkConfig, Verdict};

use crate::toy::*;

#[test]
fn partition_loses_in_flight_stanzas_and_repair_brings_the_link_up() {
    let mut net = burst_pair(3, LinkConfig::default());
    net.drive_for(Duration::from_millis(10));
    net.partition(A, B);
    assert!(!net.is_link_up(A, B));
    assert_eq!(
        net.host(A).log,
        [
            "0 up b.example",
            "10 down b.example",
            "10 undeliverable b.example m0",
            "10 undeliverable b.example m1",
            "10 undeliverable b.example m2"
        ]
    );
    assert_eq!(net.host(B).log, ["0 up a.example", "10 down a.example"]);
    assert_eq!(
        net.stats().direction(A, B),
        Counts {
            lost: 3,
            ..Counts::default()
        }
    );
    // Sent while down: refused, reported as a separate event at the same time.
    net.with_host(A, |a, _| a.send(B, message("late")));
    assert_eq!(net.host(A).bounced.len(), 3);
    assert_eq!(net.drive(), 1);
    assert_eq!(net.host(A).bounced_ids(), ["m0", "m1", "m2", "late"]);
    assert_eq!(net.stats().direction(A, B).refused, 1);
    assert_eq!(net.now(), ms(10));
    net.drive_for(Duration::from_millis(90));
    net.repair(A, B);
    assert!(net.is_link_up(A, B));
    net.drive();
    assert_eq!(
        net.host(B).log[2..],
        [
            "100 up a.example",
            "120 got a.example m0",
            "120 got a.example m1",
            "120 got a.example m2"
        ]
    );
    assert_eq!(
        net.stats().direction(A, B),
        Counts {
            stanzas: 3,
            bytes: 54,
            lost: 3,
            refused: 1,
            dropped: 0
        }
    );
}

#[test]
fn crash_drops_in_flight_stanzas_without_telling_the_crashed_host() {
    let mut net = net_of([
        Toy {
            burst: 2,
            ..Toy::new(A)
        },
        Toy {
            burst: 2,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    net.drive_for(Duration::from_millis(10));
    net.crash(B);
    assert!(!net.is_running(B));
    assert_eq!(net.host(B).log, ["0 up a.example", "10 crash"]);
    assert_eq!(
        net.host(A).log[1..],
        [
            "10 down b.example",
            "10 undeliverable b.example m0",
            "10 undeliverable b.example m1"
        ]
    );
    assert_eq!(net.stats().direction(A, B).lost, 2);
    assert_eq!(net.stats().direction(B, A).lost, 2);
    assert_eq!(net.drive(), 0);
    assert!(net.host(A).got.is_empty() && net.host(B).got.is_empty());
    // The peer's sends are refused while B is down; B comes back with its links.
    net.with_host(A, |a, _| a.send(B, message("x")));
    net.drive_for(Duration::from_millis(40));
    assert_eq!(net.stats().direction(A, B).refused, 1);
    net.restart(B);
    assert!(net.is_link_up(A, B));
    assert_eq!(net.host(B).log[2..], ["50 restart", "50 up a.example"]);
    assert_eq!(net.host(A).log.last().unwrap(), "50 up b.example");
    net.drive();
    assert_eq!(net.host(A).ids(), ["m0", "m1"]);
    assert_eq!(net.host(B).ids(), ["m0", "m1"]);
    assert_eq!(net.now(), ms(70));
}

#[test]
fn shutdown_delivers_the_last_stanzas_before_the_link_goes_down() {
    let mut net = net_of([
        Toy::new(A),
        Toy {
            goodbye: true,
            ..Toy::new(B)
        },
        Toy::new(C),
    ]);
    net.connect(A, B, LinkConfig::default());
    net.connect(
        B,
        C,
        LinkConfig::default().with_latency(Duration::from_millis(50)),
    );
    net.drive_for(Duration::from_millis(5));
    net.with_host(A, |a, _| a.send(B, message("to-b")));
    net.drive_for(Duration::from_millis(5));
    net.shutdown(B);
    assert!(!net.is_running(B));
    // A's stanza in flight to B is lost at once; the link stays up for B's goodbye.
    assert_eq!(
        net.host(A).log,
        ["0 up b.example", "10 undeliverable b.example to-b"]
    );
    assert!(!net.is_link_up(A, B));
    net.drive_for(Duration::from_millis(5));
    net.with_host(A, |a, _| a.send(B, message("refused")));
    net.drive();
    assert_eq!(
        net.host(A).log[2..],
        [
            "15 undeliverable b.example refused",
            "30 got b.example bye",
            "30 down b.example"
        ]
    );
    assert_eq!(
        net.host(C).log,
        [
            "0 up b.example",
            "60 got b.example bye",
            "60 down b.example"
        ]
    );
    assert_eq!(
        net.host(B).log,
        ["0 up a.example", "0 up c.example", "10 shutdown"]
    );
    assert_eq!(net.stats().get(B, A, "message/shutdown").stanzas, 1);
    assert_eq!(
        net.stats().direction(A, B),
        Counts {
            lost: 1,
            refused: 1,
            ..Counts::default()
        }
    );
    assert_eq!(net.now(), ms(60));
    net.restart(B);
    assert!(net.is_link_up(A, B) && net.is_link_up(B, C));
    assert_eq!(
        net.host(B).log[3..],
        ["60 restart", "60 up a.example", "60 up c.example"]
    );
}

#[test]
fn a_restart_before_the_stream_close_arrives_reconnects_after_it() {
    let mut net = net_of([
        Toy::new(A),
        Toy {
            goodbye: true,
            burst: 1,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    net.drive();
    net.shutdown(B);
    net.drive_for(Duration::from_millis(5));
    net.restart(B);
    assert!(!net.is_link_up(A, B), "the old stream is still closing");
    net.drive();
    assert_eq!(
        net.host(A).log,
        [
            "0 up b.example",
            "20 got b.example m0",
            "40 got b.example bye",
            "40 down b.example",
            "40 up b.example",
            "60 got b.example m0"
        ]
    );
    // The restarted B is not told about its old stream going down.
    assert_eq!(
        net.host(B).log,
        [
            "0 up a.example",
            "20 shutdown",
            "25 restart",
            "40 up a.example"
        ]
    );
}

#[test]
fn restart_waits_for_a_crashed_peer_and_for_repair() {
    let mut net = net_of([Toy::new(A), Toy::new(B), Toy::new(C)]);
    net.connect(A, B, LinkConfig::default());
    net.connect(A, C, LinkConfig::default());
    net.crash(A);
    net.crash(B);
    net.partition(A, C);
    net.restart(A);
    assert!(!net.is_link_up(A, B) && !net.is_link_up(A, C));
    net.restart(B);
    assert!(net.is_link_up(A, B));
    net.repair(A, C);
    assert!(net.is_link_up(A, C));
    assert_eq!(
        net.host(A).log,
        [
            "0 up b.example",
            "0 up c.example",
            "0 crash",
            "0 restart",
            "0 up b.example",
            "0 up c.example"
        ]
    );
    assert_eq!(
        net.host(C).log,
        ["0 up a.example", "0 down a.example", "0 up a.example"]
    );
}

#[test]
fn hold_and_release_keep_the_order() {
    // 18-byte messages at 4 bytes/ms: 4.5 ms each.
    let mut net = burst_pair(5, LinkConfig::default().with_bandwidth(4));
    net.drive_until(ms(26));
    assert_eq!(net.host(B).ids(), ["m0"]);
    net.hold(A, B);
    assert_eq!(net.drive(), 0, "held stanzas are not in flight for drive()");
    net.drive_for(Duration::from_millis(100));
    assert_eq!(net.host(B).ids(), ["m0"]);
    assert_eq!(net.in_flight(A, B), 4);
    net.release(A, B);
    net.with_host(A, |a, _| a.send(B, message("m5")));
    net.drive();
    assert_eq!(net.host(B).ids(), ["m0", "m1", "m2", "m3", "m4", "m5"]);
    assert_eq!(
        net.host(B).times(),
        [24_500, 126_000, 126_000, 126_000, 126_000, 150_500]
    );
}

#[test]
fn filter_drops_replaces_or_cuts_the_link_at_an_index() {
    let mut net = burst_pair(5, LinkConfig::default());
    net.set_filter(|e| match e.index {
        1 => Verdict::Replace(message("evil")),
        2 => Verdict::Drop,
        _ => Verdict::Deliver,
    });
    net.drive();
    assert_eq!(net.host(B).ids(), ["m0", "evil", "m3", "m4"]);
    assert!(
        net.host(A).bounced.is_empty(),
        "a dropped stanza is not reported"
    );
    let ab = net.stats().direction(A, B);
    assert_eq!((ab.stanzas, ab.bytes, ab.dropped), (4, 18 * 3 + 20, 1));

    // The link drops after message i, for every i.
    for i in 0..5u64 {
        let mut net = burst_pair(5, LinkConfig::default());
        net.set_filter(move |e| {
            if e.index == i {
                Verdict::DropLinkAfter
            } else {
                Verdict::Deliver
            }
        });
        net.drive();
        assert_eq!(net.host(B).got.len() as u64, i + 1);
        assert_eq!(net.host(A).bounced.len() as u64, 4 - i);
        assert_eq!(net.stats().direction(A, B).lost, 4 - i);
        assert!(!net.is_link_up(A, B));
        assert_eq!(net.host(B).log.last().unwrap(), "20 down a.example");
        net.clear_filter();
        net.repair(A, B);
        net.drive();
        assert_eq!(net.host(B).got.len() as u64, i + 6);
    }
}

#[test]
fn a_notice_for_an_earlier_boot_is_not_given_to_the_next() {
    let mut net = net_of([Toy::new(A)]);
    net.with_host(A, |a, _| a.send(B, message("refused")));
    net.crash(A);
    net.restart(A);
    assert_eq!(net.drive(), 1, "the notice is an event");
    assert!(net.host(A).bounced.is_empty());
    assert_eq!(net.stats().direction(A, B).refused, 1);
}

#[test]
fn a_stream_error_closes_the_link_until_repair() {
    // A sends m0, a stream error, then m1; B sends m2 meanwhile (it arrives first). The
    // stream error arrives after m0, is counted as "stream-error" and not given to B as a
    // stanza; the link is partitioned: m1 (behind it) is lost, both ends are told, and the
    // link stays down until the script repairs it.
    let mut net = burst_pair(0, LinkConfig::default());
    net.drive();
    let error = xml("<error xmlns='http://etherx.jabber.org/streams'>\
        <invalid-from xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>");
    assert!(presence_sync::sim::is_stream_error(&error));
    net.with_host(A, |a, _| {
        a.send(B, message("m0"));
        a.send(B, error.clone());
        a.send(B, message("m1"));
    });
    net.with_host(B, |b, _| b.send(A, message("m2")));
    net.drive();
    assert!(!net.is_link_up(A, B));
    assert_eq!(net.host(B).ids(), ["m0"]);
    assert_eq!(net.host(A).bounced_ids(), ["m1"]);
    assert_eq!(net.host(A).ids(), ["m2"]);
    assert!(
        net.host(A)
            .log
            .iter()
            .any(|l| l.ends_with("down b.example"))
    );
    assert!(
        net.host(B)
            .log
            .iter()
            .any(|l| l.ends_with("down a.example"))
    );
    let kinds: Vec<(&str, u64)> = net
        .stats()
        .kinds(A, B)
        .map(|(k, c)| (k, c.stanzas))
        .collect();
    assert!(kinds.contains(&("stream-error", 1)), "{kinds:?}");
    net.drive_for(Duration::from_secs(60));
    assert!(
        !net.is_link_up(A, B),
        "a stream error is not repaired by itself"
    );
    net.repair(A, B);
    assert!(net.is_link_up(A, B));
}
