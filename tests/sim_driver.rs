//! The deterministic network driver (`presence_sync::sim::Net`) with toy hosts: timing,
//! counts, causal depth, every fault, the filter, quiescence and reproducibility, all with
//! exact numbers.

#[path = "sim_driver/toy.rs"]
mod toy;

#[path = "sim_driver/faults.rs"]
mod faults;

use std::collections::BTreeSet;
use std::time::Duration;

use presence_sync::sim::{
    Counts, EventKind, LinkConfig, Net, SimTime, Unbounded, Verdict, wire_len,
};

use toy::*;

#[test]
fn delivery_time_is_send_time_plus_serialisation_plus_latency() {
    // `<message id='m0'/>` is 18 bytes on the wire (the stream declares jabber:server): 2 ms
    // at 9 bytes/ms.
    assert_eq!(wire_len(&message("m0")), 18);
    let mut net = burst_pair(3, LinkConfig::default().with_bandwidth(9));
    assert_eq!(net.in_flight(A, B), 3);
    assert_eq!(net.drive(), 3);
    assert_eq!(net.host(B).times(), [22_000, 24_000, 26_000]);
    assert_eq!(net.now(), ms(26));
    // A big stanza then a small one: the small one waits for the big one (no overtaking).
    let big = xml(&format!(
        "<message xmlns='jabber:server' id='big'><body>{}</body></message>",
        "x".repeat(319)
    ));
    assert_eq!(wire_len(&big), 360);
    net.with_host(A, |a, _| {
        a.send(B, big);
        a.send(B, message("m9"));
    });
    net.drive();
    assert_eq!(net.host(B).ids()[3..], ["big", "m9"]);
    assert_eq!(
        net.host(B).times()[3..],
        [(26 + 40 + 20) * 1000, (26 + 42 + 20) * 1000]
    );
}

#[test]
fn jitter_never_reorders_a_direction() {
    let config = LinkConfig::default().with_jitter(Duration::from_millis(30));
    let mut net = burst_pair(50, config);
    net.drive();
    let b = net.host(B);
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(b.ids(), expected);
    assert!(b.times().windows(2).all(|w| w[0] <= w[1]));
    assert!(b.times().iter().all(|&t| (20_000..=50_000).contains(&t)));
    assert!(b.times().iter().any(|&t| t > 20_000), "jitter was drawn");
}

#[test]
fn stats_count_bytes_per_direction_and_kind() {
    let mut net = net_of([
        Toy::new(A),
        Toy {
            echo: true,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    let ping =
        xml("<iq xmlns='jabber:server' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    let probe = xml("<presence xmlns='jabber:server' type='probe' id='q'/>");
    let (ping_len, probe_len) = (wire_len(&ping), wire_len(&probe));
    // The serialisation minus the 22 bytes of ` xmlns='jabber:server'`.
    assert_eq!(ping_len as usize, String::from(&ping).len() - 22);
    assert_eq!((ping_len, probe_len), (57, 31));
    net.with_host(A, |a, _| {
        a.send(B, ping);
        a.send(B, probe);
        a.send(C, message("nowhere"));
    });
    net.drive();
    let stats = net.stats();
    let one = |bytes| Counts {
        stanzas: 1,
        bytes,
        ..Counts::default()
    };
    assert_eq!(stats.get(A, B, "iq/get/ping"), one(57));
    assert_eq!(stats.get(A, B, "presence/probe"), one(31));
    assert_eq!(stats.get(B, A, "iq/result"), one(27));
    assert_eq!(
        stats.get(A, C, "message"),
        Counts {
            refused: 1,
            ..Counts::default()
        }
    );
    assert_eq!(
        stats.direction(A, B),
        Counts {
            stanzas: 2,
            bytes: 88,
            ..Counts::default()
        }
    );
    assert_eq!(
        stats.total(),
        Counts {
            stanzas: 3,
            bytes: 115,
            refused: 1,
            ..Counts::default()
        }
    );
    let kinds: Vec<_> = stats.kinds(A, B).map(|(k, _)| k.to_owned()).collect();
    assert_eq!(kinds, ["iq/get/ping", "presence/probe"]);
    assert_eq!(net.host(A).bounced_ids(), ["nowhere"]);
    let table = stats.table().to_string();
    assert!(
        table.contains("a.example -> b.example  iq/get/ping"),
        "{table}"
    );
    // A replaceable classifier; reset_stats starts a new period.
    net.reset_stats();
    net.set_classifier(|s| s.name().to_uppercase());
    net.with_host(A, |a, _| a.send(B, iq("get", "p2")));
    net.drive();
    assert_eq!(net.stats().get(A, B, "IQ").stanzas, 1);
    assert_eq!(net.stats().get(B, A, "IQ").stanzas, 1);
    assert_eq!(net.stats().total().stanzas, 2);
}

#[test]
fn a_ping_pong_chain_of_k_exchanges_is_k_round_trips() {
    for k in 1..=6u32 {
        let mut net = net_of([
            Toy {
                pings: k - 1,
                ..Toy::new(A)
            },
            Toy {
                echo: true,
                ..Toy::new(B)
            },
        ]);
        net.connect(A, B, LinkConfig::default());
        net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
        assert_eq!(net.drive(), 2 * u64::from(k));
        assert_eq!(net.max_depth(), 2 * k, "k = {k}");
        assert_eq!(net.round_trips(), k);
        assert_eq!(net.now(), ms(40 * u64::from(k)));
        assert_eq!(net.stats().get(A, B, "iq/get").stanzas, u64::from(k));
    }
    // A one-way message is half a round trip, counted as one; a reset starts over.
    let mut net = burst_pair(1, LinkConfig::default());
    net.drive();
    assert_eq!((net.max_depth(), net.round_trips()), (1, 1));
    net.reset_stats();
    assert_eq!((net.max_depth(), net.round_trips()), (0, 0));
}

#[test]
fn drive_leaves_future_timers_and_drive_for_fires_them() {
    let mut net = net_of([Toy::new(A).ticking(1000), Toy::new(B)]);
    assert_eq!(net.drive(), 0);
    assert_eq!((net.host(A).ticks, net.now()), (0, SimTime::ZERO));
    assert_eq!(net.drive_for(Duration::from_millis(3500)), 3);
    assert_eq!((net.host(A).ticks, net.now()), (3, ms(3500)));

    // Timers that fall before the last delivery fire in their turn, and one due exactly then.
    let mut net = net_of([Toy::new(A).ticking(5), Toy::new(B)]);
    net.connect(A, B, LinkConfig::default());
    net.with_host(A, |a, _| a.send(B, message("m")));
    assert_eq!(net.drive(), 5);
    assert_eq!((net.host(A).ticks, net.now()), (4, ms(20)));
}

#[test]
fn drive_bounded_catches_livelocks() {
    let mut net = net_of([
        Toy {
            echo: true,
            pings: u32::MAX,
            ..Toy::new(A)
        },
        Toy {
            echo: true,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
    let err = net.drive_bounded(1000).unwrap_err();
    assert_eq!(
        err,
        Unbounded {
            events: 1000,
            now: ms(20_000)
        }
    );
    assert_eq!(
        err.to_string(),
        "still busy after 1000 events, at 20000.000 ms"
    );
    // A host that resends every bounce livelocks at one instant, without recursion.
    let mut net = net_of([Toy {
        resend: true,
        ..Toy::new(A)
    }]);
    net.with_host(A, |a, _| a.send(B, message("x")));
    assert_eq!(
        net.drive_bounded(500).unwrap_err(),
        Unbounded {
            events: 500,
            now: SimTime::ZERO
        }
    );
    // A finite exchange is fine.
    let mut net = net_of([
        Toy {
            pings: 2,
            ..Toy::new(A)
        },
        Toy {
            echo: true,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
    assert_eq!(net.drive_bounded(6), Ok(6));
}

#[test]
fn script_actions_run_at_their_time() {
    let mut net = net_of([
        Toy {
            pings: 10,
            ..Toy::new(A)
        },
        Toy {
            echo: true,
            ..Toy::new(B)
        },
    ]);
    net.connect(A, B, LinkConfig::default());
    net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
    net.at(ms(50), |net| net.crash(B));
    net.drive();
    assert_eq!(net.now(), ms(50));
    assert_eq!(net.host(A).ids(), ["p1"]);
    assert_eq!(net.host(A).bounced_ids(), ["p2"]);
    assert_eq!(net.host(B).log.last().unwrap(), "50 crash");
}

#[test]
fn host_mut_and_with_host_drain_what_the_host_sends() {
    let mut net = burst_pair(0, LinkConfig::default());
    net.host_mut(A).send(B, message("one"));
    assert_eq!(net.in_flight(A, B), 1);
    let now = net.with_host(A, |a, now| {
        a.send(B, message("two"));
        now
    });
    assert_eq!((now, net.in_flight(A, B)), (SimTime::ZERO, 2));
    net.drive();
    assert_eq!(net.host(B).ids(), ["one", "two"]);
    assert_eq!(net.sent_count(), 2);
    assert_eq!(net.domains().collect::<Vec<_>>(), [A, B]);
}

/// A small scenario with jitter, faults and a filter, traced.
fn traced_run(seed: u64) -> Vec<presence_sync::sim::Event> {
    let mut net = Net::new(seed);
    net.add_host(Toy {
        burst: 5,
        echo: true,
        pings: 3,
        ..Toy::new(A)
    });
    net.add_host(Toy {
        burst: 3,
        echo: true,
        ..Toy::new(B)
    });
    net.add_host(Toy {
        burst: 2,
        ..Toy::new(C).ticking(7)
    });
    net.trace(true);
    let jittery = LinkConfig::default().with_jitter(Duration::from_millis(15));
    net.connect(A, B, jittery.clone().with_bandwidth(5));
    net.connect(B, C, jittery);
    net.set_filter(|e| {
        if e.index == 6 {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
    net.drive_for(Duration::from_millis(25));
    net.partition(B, C);
    net.drive_for(Duration::from_millis(30));
    net.repair(B, C);
    net.crash(A);
    net.drive_for(Duration::from_millis(100));
    net.restart(A);
    net.drive();
    net.take_events()
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let first = traced_run(42);
    assert_eq!(first, traced_run(42));
    assert_ne!(first, traced_run(43), "jitter depends on the seed");
    let kinds: BTreeSet<EventKind> = first.iter().map(|e| e.kind).collect();
    for kind in [
        EventKind::Sent,
        EventKind::Delivered,
        EventKind::Dropped,
        EventKind::Lost,
        EventKind::Timer,
        EventKind::LinkDown,
        EventKind::Crash,
    ] {
        assert!(
            kinds.contains(&kind),
            "{kind:?} in\n{}",
            first
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn the_trace_of_a_ping() {
    let mut net = net_of([
        Toy::new(A),
        Toy {
            echo: true,
            ..Toy::new(B)
        },
    ]);
    net.trace(true);
    net.connect(A, B, LinkConfig::default());
    net.with_host(A, |a, _| a.send(B, iq("get", "p1")));
    net.drive();
    let lines: Vec<String> = net.events().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "      0.000 ms  LinkUp        a.example -> b.example",
            "      0.000 ms  Sent          a.example -> b.example #0 iq/get",
            "     20.000 ms  Delivered     a.example -> b.example #0 iq/get",
            "     20.000 ms  Sent          b.example -> a.example #1 iq/result",
            "     40.000 ms  Delivered     b.example -> a.example #1 iq/result",
        ]
    );
}
