//! The extension between two model servers on the simulated network: every use case of the
//! XEP (§Use Cases) and the faults tried, each end state checked against the ground-truth
//! oracle ([`presence_sync::model::truth::entitled`]) and stanza counts asserted exactly where
//! the XEP states them. The world is `support`'s (see its module docs); a.example is the edge
//! driver.

mod support;

use std::time::Duration;

use presence_sync::engine::{Event, FallbackReason, Mode, VoidReason};
use presence_sync::model::ResourcePresence;
use presence_sync::server::{Flavour, Server, SyncSetup};
use presence_sync::sim::{Net, Verdict};
use support::*;

const PROSODY: Flavour = Flavour::Prosody;
const EJABBERD: Flavour = Flavour::Ejabberd { multicast: false };

fn probes(net: &Net<Server>) -> u64 {
    kind(net, A, B, "presence/probe") + kind(net, B, A, "presence/probe")
}

fn grace() -> Duration {
    Duration::from_secs(301)
}

#[test]
fn first_contact_is_one_round_trip_and_logins_publish_once_per_publisher() {
    let mut net = world_of(sync_server(A, EJABBERD, 1), sync_server(B, EJABBERD, 2));
    net.drive();
    // XEP §Hello: nothing to reconcile (nobody online, same edges): 2 stanzas, 1 round trip.
    assert_eq!(net.round_trips(), 1);
    assert_eq!(traffic(&mut net), (1, 1));
    assert!(synchronized(&net));
    // Each login of a publisher with subscribers at the peer: one batch with its item, and
    // the acknowledgement (PS-47); no probes (PS-66).
    login_all(&mut net, &A_USERS);
    assert_eq!(kind(&net, A, B, "iq/set/batch"), 3);
    assert_eq!(probes(&net), 0);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert_eq!(probes(&net), 0);
    // romeo and benvolio publish; tybalt's only subscriber is mercutio, whom he blocks, so
    // tybalt is not in the published set at all (PS-7).
    assert_eq!(kind(&net, B, A, "iq/set/batch"), 2);
    assert!(net.host(A).view(&jid("mercutio@a.example")).is_empty());
}

#[test]
fn a_presence_change_crosses_once_per_publisher() {
    // romeo has two subscribers at a.example; RFC 6121 sends him twice (tests/legacy.rs),
    // domain-level presence once (PS-45).
    let mut net = online_world();
    let romeo = jid("romeo@b.example");
    let before = net.host(A).stats().presence_delivered;
    net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
    net.drive();
    assert_truth(&net);
    assert_eq!(traffic(&mut net), (0, 1));
    assert_eq!(net.host(A).stats().presence_delivered, before + 2);
    // A second resource is one more domain-level presence; its logout another.
    net.with_host(B, |s, _| {
        s.login(&romeo, "phone", ResourcePresence::default())
    });
    net.drive();
    assert_truth(&net);
    net.with_host(B, |s, _| s.logout(&romeo, "r"));
    net.drive();
    assert_truth(&net);
    assert_eq!(kind(&net, B, A, "presence/fanout"), 1);
    assert_eq!(kind(&net, B, A, "presence/unavailable/fanout"), 1);
    assert_eq!(traffic(&mut net), (0, 2));
    // His last resource goes: one more stanza, and he is gone for both subscribers.
    net.with_host(B, |s, _| s.logout(&romeo, "phone"));
    net.drive();
    assert_truth(&net);
    assert_eq!(traffic(&mut net), (0, 1));
    assert!(
        !net.host(A)
            .view(&jid("nurse@a.example"))
            .contains_key(&romeo)
    );
}

#[test]
fn unchanged_state_after_a_link_loss_costs_two_stanzas() {
    // XEP §Link Loss without Restart, BRIEF target: 1 round trip, 2 stanzas.
    let mut net = online_world();
    net.partition(A, B);
    net.drive_for(Duration::from_secs(60));
    net.repair(A, B);
    net.reset_stats();
    net.drive();
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(traffic(&mut net), (1, 1));
}

#[test]
fn link_loss_with_changes_transfers_only_the_changes_and_leaves_no_ghosts() {
    let mut net = online_world();
    let (romeo, juliet, benvolio) = (
        jid("romeo@b.example"),
        jid("juliet@a.example"),
        jid("benvolio@b.example"),
    );
    net.partition(A, B);
    net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
    net.with_host(B, |s, _| s.logout(&benvolio, "r"));
    net.with_host(A, |s, _| s.logout(&juliet, "r"));
    net.drive_for(Duration::from_secs(30));
    // Under RFC 6121 these would be ghosts until the next change (tests/legacy.rs); here the
    // cache stays shown during the grace period (PS-56) and is corrected on reconnection.
    net.repair(A, B);
    net.reset_stats();
    net.drive();
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(probes(&net), 0);
    // Hello exchange, then each cache holder pulls the one differing bucket per changed
    // publisher (a descent of a tiny set: one query and its answer, then a lack if needed).
    let (ab, ba) = traffic(&mut net);
    assert!(ab + ba <= 10, "{ab} + {ba} stanzas");
}

#[test]
fn grace_period_voids_the_cache_of_a_crashed_peer() {
    let mut net = online_world();
    net.crash(B);
    net.drive_for(Duration::from_secs(60));
    // Within the grace period a.example still shows b.example's users (PS-56 MAY).
    assert!(
        net.host(A)
            .view(&jid("juliet@a.example"))
            .contains_key(&jid("romeo@b.example"))
    );
    net.drive_for(grace());
    // Then the cache is voided without a stanza: no ghosts (XEP §Restart of One Server).
    assert_truth(&net);
    assert_eq!(traffic(&mut net), (0, 0));
    let voided = events_since(&net, A, 0).contains(&Event::CacheVoided(VoidReason::GraceExpired));
    assert!(voided);
}

#[test]
fn cold_restart_then_login_storm_sends_no_probes() {
    let mut net = online_world();
    let log_a = net.host(A).sync_log().len();
    net.crash(B);
    net.drive_for(Duration::from_secs(5));
    net.restart(B);
    net.drive();
    // The hello carries a new epoch: a.example voids its cache at once (PS-13, PS-19), one
    // round trip for the whole domain. b.example, whose cache died with it, pulls
    // a.example's published set (3 publishers): one query and its answer.
    assert_eq!(kind(&net, A, B, "iq/set/hello"), 1);
    assert_eq!(kind(&net, B, A, "iq/set/reconcile"), 1);
    assert_eq!(traffic(&mut net), (2, 2));
    assert_truth(&net);
    let events = events_since(&net, A, log_a);
    assert!(events.contains(&Event::PeerRestarted), "{events:?}");
    assert!(events.contains(&Event::CacheVoided(VoidReason::NewEpoch)));
    // The login storm: each b.example publisher crosses once; b.example pulls a.example's
    // published set (3 publishers) with priority; no probe in either direction.
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(probes(&net), 0);
}

#[test]
fn graceful_shutdown_is_one_stanza() {
    let mut net = online_world();
    net.shutdown(B);
    net.drive();
    // XEP §Graceful Shutdown: one message replaces one unavailable per edge (PS-54, PS-55).
    assert_eq!(kind(&net, B, A, "message/shutdown"), 1);
    assert_eq!(traffic(&mut net), (0, 1));
    assert_truth(&net);
    assert!(
        !net.host(A)
            .view(&jid("juliet@a.example"))
            .contains_key(&jid("romeo@b.example"))
    );
    let events = events_since(&net, A, 0);
    assert!(events.contains(&Event::CacheVoided(VoidReason::Shutdown)));
    // Back again: a new epoch, the same end state as before once everybody is back.
    net.restart(B);
    net.drive();
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(probes(&net), 0);
}

#[test]
fn both_servers_restart() {
    let mut net = online_world();
    net.crash(A);
    net.crash(B);
    net.drive_for(Duration::from_secs(1));
    net.restart(B);
    net.restart(A);
    net.drive();
    assert_eq!(traffic(&mut net), (1, 1));
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(probes(&net), 0);
}

#[test]
fn legacy_peer_gets_rfc6121_unchanged() {
    // XEP §Legacy Peer: b.example lacks the extension; a.example falls back (PS-5).
    for fb in [PROSODY, EJABBERD] {
        let mut net = world_of(sync_server(A, EJABBERD, 1), Server::new(B, fb));
        net.drive();
        assert_eq!(traffic(&mut net), (0, 0));
        let fell_back =
            events_since(&net, A, 0).contains(&Event::Fallback(FallbackReason::NotSupported));
        assert!(fell_back);
        assert_eq!(net.host(A).session(B).unwrap().mode(), Mode::Legacy);
        login_all(&mut net, &A_USERS);
        login_all(&mut net, &B_USERS);
        assert_truth(&net);
        assert!(probes(&net) > 0, "RFC 6121 probes");
        assert_eq!(kind(&net, A, B, "iq/set/hello"), 0, "PS-5: nothing of ours");
    }
}

#[test]
fn link_drop_at_every_message_of_a_resync_converges() {
    // Count the stanzas of a resync after a link loss with changes, then drop the link after
    // each of them in turn; the next connection converges (XEP §Link Loss, Resumption).
    let scenario = |drop_after: Option<u64>| {
        let mut net = online_world();
        net.partition(A, B);
        net.with_host(B, |s, _| {
            s.set_presence(&jid("romeo@b.example"), "r", away())
        });
        net.with_host(A, |s, _| s.logout(&jid("nurse@a.example"), "r"));
        net.with_host(B, |s, _| s.logout(&jid("benvolio@b.example"), "r"));
        let start = net.sent_count();
        if let Some(i) = drop_after {
            net.set_filter(move |e| {
                if e.index == start + i {
                    Verdict::DropLinkAfter
                } else {
                    Verdict::Deliver
                }
            });
        }
        net.repair(A, B);
        net.drive();
        let sent = net.sent_count() - start;
        net.clear_filter();
        net.drive_for(Duration::from_secs(5));
        net.repair(A, B);
        net.drive();
        net.drive_for(Duration::from_secs(30));
        net.drive();
        assert_truth(&net);
        assert!(synchronized(&net), "drop after {drop_after:?}");
        sent
    };
    let n = scenario(None);
    assert!(n >= 2);
    for i in 0..n {
        scenario(Some(i));
    }
}

#[test]
fn crash_of_either_side_mid_sync_converges() {
    for crashed in [A, B] {
        let mut net = online_world();
        net.partition(A, B);
        net.with_host(B, |s, _| {
            s.set_presence(&jid("romeo@b.example"), "r", away())
        });
        net.repair(A, B);
        // Crash when the hello is on the wire.
        let c = crashed.to_owned();
        net.at(net.now(), move |n| n.crash(&c));
        net.drive();
        net.restart(crashed);
        net.drive();
        let users = if crashed == A { &A_USERS } else { &B_USERS };
        login_all(&mut net, users);
        assert_truth(&net);
        assert!(synchronized(&net));
    }
}

#[test]
fn changes_during_the_sync_are_not_lost() {
    let mut net = online_world();
    net.partition(A, B);
    net.with_host(B, |s, _| {
        s.set_presence(&jid("romeo@b.example"), "r", away())
    });
    net.repair(A, B);
    // While the hello is in flight, juliet changes and tybalt unblocks mercutio.
    net.with_host(A, |s, _| {
        s.set_presence(&jid("juliet@a.example"), "r", away())
    });
    net.with_host(B, |s, _| {
        s.unblock(&jid("tybalt@b.example"), &jid("mercutio@a.example"))
    });
    net.drive();
    assert_truth(&net);
    assert!(synchronized(&net));
    assert!(
        net.host(A)
            .view(&jid("mercutio@a.example"))
            .contains_key(&jid("tybalt@b.example"))
    );
}

#[test]
fn blocking_reaches_the_peer_as_an_except_list() {
    let mut net = online_world();
    let (romeo, nurse) = (jid("romeo@b.example"), jid("nurse@a.example"));
    net.with_host(B, |s, _| s.block(&romeo, &nurse));
    net.drive();
    assert_truth(&net);
    assert!(!net.host(A).view(&nurse).contains_key(&romeo));
    assert!(
        net.host(A)
            .view(&jid("juliet@a.example"))
            .contains_key(&romeo)
    );
    net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
    net.drive();
    assert_truth(&net);
    net.with_host(B, |s, _| s.unblock(&romeo, &nurse));
    net.drive();
    assert_truth(&net);
    assert!(net.host(A).view(&nurse).contains_key(&romeo));
}

#[test]
fn subscriptions_made_during_a_session_show_presence_from_the_cache() {
    let mut net = online_world();
    let (tybalt, juliet) = (jid("tybalt@b.example"), jid("juliet@a.example"));
    net.with_host(A, |s, _| s.subscribe(&juliet, &tybalt));
    net.drive();
    net.with_host(B, |s, _| s.approve(&tybalt, &juliet));
    net.drive();
    assert_truth(&net);
    assert!(net.host(A).view(&juliet).contains_key(&tybalt));
    net.with_host(A, |s, _| s.unsubscribe(&juliet, &tybalt));
    net.drive();
    assert_truth(&net);
    assert!(!net.host(A).view(&juliet).contains_key(&tybalt));
    assert!(synchronized(&net));
}

mod random {
    //! proptest: random presence, roster and block changes of the small world interleaved
    //! with partitions, link drops after a random message, crashes and shutdowns of either
    //! side; after the faults heal, the two servers always converge to the ground truth, with
    //! both sessions synchronized, and the final resynchronization stays within a bound
    //! linear in the world's size.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Presence(usize, bool),
        Logout(usize),
        Subscribe(usize, usize),
        Approve(usize, usize),
        Unsubscribe(usize, usize),
        Deny(usize, usize),
        Block(usize, usize),
        Unblock(usize, usize),
        Partition,
        Repair,
        DropAfter(u64),
        Crash(bool),
        Shutdown(bool),
        Wait(u64),
    }

    fn users() -> Vec<&'static str> {
        A_USERS.iter().chain(B_USERS.iter()).copied().collect()
    }

    fn op() -> impl Strategy<Value = Op> {
        let u = 0..6usize;
        prop_oneof![
            4 => (u.clone(), any::<bool>()).prop_map(|(a, b)| Op::Presence(a, b)),
            2 => u.clone().prop_map(Op::Logout),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Subscribe(a, b)),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Approve(a, b)),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unsubscribe(a, b)),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Deny(a, b)),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Block(a, b)),
            1 => (u.clone(), u.clone()).prop_map(|(a, b)| Op::Unblock(a, b)),
            1 => Just(Op::Partition),
            2 => Just(Op::Repair),
            1 => (0..12u64).prop_map(Op::DropAfter),
            1 => any::<bool>().prop_map(Op::Crash),
            1 => any::<bool>().prop_map(Op::Shutdown),
            1 => (0..400u64).prop_map(Op::Wait),
        ]
    }

    fn apply(net: &mut Net<Server>, op: &Op) {
        let us = users();
        let j = |i: usize| jid(us[i]);
        let on = |net: &mut Net<Server>, i: usize, f: &dyn Fn(&mut Server, &jid::BareJid)| {
            let u = j(i);
            net.with_host(&domain_of(&u), |s, _| f(s, &u));
        };
        match *op {
            Op::Presence(i, a) => on(net, i, &|s, u| {
                let p = if a {
                    away()
                } else {
                    ResourcePresence::default()
                };
                s.set_presence(u, "r", p)
            }),
            Op::Logout(i) => on(net, i, &|s, u| s.logout(u, "r")),
            Op::Subscribe(i, k) => on(net, i, &|s, u| s.subscribe(u, &j(k))),
            Op::Approve(i, k) => on(net, i, &|s, u| s.approve(u, &j(k))),
            Op::Unsubscribe(i, k) => on(net, i, &|s, u| s.unsubscribe(u, &j(k))),
            Op::Deny(i, k) => on(net, i, &|s, u| s.deny(u, &j(k))),
            Op::Block(i, k) => on(net, i, &|s, u| s.block(u, &j(k))),
            Op::Unblock(i, k) => on(net, i, &|s, u| s.unblock(u, &j(k))),
            Op::Partition => net.partition(A, B),
            Op::Repair => net.repair(A, B),
            Op::DropAfter(k) => {
                let at = net.sent_count() + k;
                net.set_filter(move |e| {
                    if e.index == at {
                        Verdict::DropLinkAfter
                    } else {
                        Verdict::Deliver
                    }
                });
            }
            Op::Crash(a) | Op::Shutdown(a) => {
                let d = if a { A } else { B };
                if !net.is_running(d) {
                    net.restart(d);
                } else if matches!(op, Op::Crash(_)) {
                    net.crash(d);
                } else {
                    net.shutdown(d);
                }
            }
            Op::Wait(s) => {
                net.drive_for(Duration::from_secs(s));
            }
        }
        if !matches!(op, Op::Wait(_)) {
            net.drive_bounded(100_000).expect("no livelock");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn always_converges(ops in proptest::collection::vec(op(), 1..24)) {
            let mut net = online_world();
            for op in &ops {
                apply(&mut net, op);
            }
            // Heal: no filter, servers up, link up, everybody who was online before a restart
            // stays logged out (the truth is about who is online now).
            net.clear_filter();
            for d in [A, B] {
                if !net.is_running(d) {
                    net.restart(d);
                }
            }
            net.repair(A, B);
            net.drive_bounded(100_000).expect("no livelock");
            net.drive_for(Duration::from_secs(30));
            // A link loss: the next session finds what no session has seen yet (a
            // subscription stanza XEP-0191 dropped leaves a mismatch only a hello reveals).
            net.partition(A, B);
            net.repair(A, B);
            net.drive_bounded(100_000).expect("no livelock");
            net.drive_for(Duration::from_secs(30));
            let d = diff(&net);
            prop_assert!(d.is_empty(), "{:#?}\n{:?}\n{:?}", d, log(&net, A), log(&net, B));
            prop_assert!(synchronized(&net), "{:?}\n{:?}", log(&net, A), log(&net, B));
            // And now the state is equal: a further link loss costs one hello exchange.
            net.reset_stats();
            net.partition(A, B);
            net.repair(A, B);
            net.drive_bounded(100_000).expect("no livelock");
            let (ab, ba) = traffic(&mut net);
            prop_assert!(ab + ba <= 2, "a resync of equal state: {} + {}", ab, ba);
        }
    }
}

#[test]
fn a_hostile_batch_is_refused_and_the_session_recovers() {
    // b.example's batch is replaced in flight by one that claims presence for a user of
    // a.example (a spoofed JID, XEP §Spoofed JIDs): a.example answers `<foreign-jid/>`
    // (PS-39, PS-69), applies nothing, the session ends, and b.example retries with a new
    // hello 10 s later (PS-57), which converges.
    let mut net = online_world();
    let spoof: minidom::Element = "<iq xmlns='jabber:server' from='b.example' to='a.example' \
        id='x' type='set'><batch xmlns='urn:xmpp:presence-sync:0' epoch='0000000000000000'>\
        <item jid='juliet@a.example'><presence xmlns='jabber:server' \
        from='juliet@a.example/evil'/></item></batch></iq>"
        .parse()
        .unwrap();
    let mut armed = true;
    net.set_filter(move |e| {
        if armed && e.from == B && e.stanza.children().any(|c| c.name() == "batch") {
            armed = false;
            Verdict::Replace(spoof.clone())
        } else {
            Verdict::Deliver
        }
    });
    let romeo = jid("romeo@b.example");
    net.with_host(B, |s, _| s.logout(&romeo, "r"));
    net.with_host(B, |s, _| s.login(&romeo, "r", away()));
    net.with_host(B, |s, _| s.block(&romeo, &jid("nurse@a.example")));
    net.drive();
    // The refusal, and `<out-of-order/>` for b.example's next batch, sent before it learnt
    // that the session had ended.
    assert_eq!(kind(&net, A, B, "iq/error"), 2);
    let rejected = events_since(&net, A, 0)
        .iter()
        .any(|e| matches!(e, Event::Rejected(_)));
    assert!(rejected, "{:?}", log(&net, A));
    // Nothing of the spoofed item reached anyone.
    assert!(
        net.host(A)
            .views()
            .values()
            .all(|v| !v.contains_key(&jid("juliet@a.example"))
                || v[&jid("juliet@a.example")].keys().all(|r| r != "evil"))
    );
    net.drive_for(Duration::from_secs(15));
    net.drive();
    assert_truth(&net);
    assert!(synchronized(&net), "{:?}\n{:?}", log(&net, A), log(&net, B));
}

#[test]
fn pending_requests_are_not_sent_again_at_login_to_a_sync_peer() {
    // nurse@a.example has a pending request to benvolio@b.example. Prosody re-sends pending
    // requests at every login; towards a sync peer the edge set stands for them (PS-87).
    let subscribes = |mut net: Net<Server>| {
        net.drive();
        net.reset_stats();
        login(&mut net, "nurse@a.example");
        kind(&net, A, B, "presence/subscribe")
    };
    let legacy = world_of(Server::new(A, PROSODY), Server::new(B, PROSODY));
    assert_eq!(subscribes(legacy), 1);
    let synced = world_of(sync_server(A, PROSODY, 1), sync_server(B, PROSODY, 2));
    assert_eq!(subscribes(synced), 0);

    // Every hello is lost: after the failures a.example falls back to RFC 6121 (PS-58) and
    // sends the request then, as if nurse had just logged in.
    let mut net = world_of(sync_server(A, PROSODY, 1), sync_server(B, PROSODY, 2));
    net.set_filter(|e| {
        if e.stanza.children().any(|c| c.name() == "hello") {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.drive();
    login(&mut net, "nurse@a.example");
    assert_eq!(kind(&net, A, B, "presence/subscribe"), 0);
    net.drive_for(Duration::from_secs(600));
    net.drive();
    let fell_back = events_since(&net, A, 0)
        .iter()
        .any(|e| matches!(e, Event::Fallback(_)));
    assert!(fell_back, "{:?}", log(&net, A));
    assert_eq!(kind(&net, A, B, "presence/subscribe"), 1);
}

#[test]
fn accounts_loaded_from_storage_are_served_like_accounts_present_at_boot() {
    // A real server builds its model server first and then loads each account from its
    // database (`Server::load_account`); the index of local users by remote contact must
    // come with them, or presence that arrives in a batch reaches nobody (found on the wire:
    // both servers restarted, a relogged user never saw his contact come back).
    let template = world_unconnected(sync_server(A, EJABBERD, 1), sync_server(B, EJABBERD, 2));
    let loaded = |domain: &str, seed: u64| {
        let mut server = sync_server(domain, EJABBERD, seed);
        for (user, account) in template.host(domain).accounts() {
            server.load_account(user, account.clone());
        }
        server
    };
    let mut net = Net::new(1);
    net.add_host(loaded(A, 1));
    net.add_host(loaded(B, 2));
    net.connect(A, B, presence_sync::sim::LinkConfig::default());
    net.drive();
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(!net.host(A).view(&jid("juliet@a.example")).is_empty());
}

/// A server at the XEP's defaults, small-peer threshold included (PS-93).
fn default_server(domain: &str, flavour: Flavour, seed: u64) -> Server {
    Server::with_sync(domain, flavour, SyncSetup::default(), seed)
}

/// Stanzas and bytes of every kind in every direction since the last reset; resets.
fn kinds(net: &mut Net<Server>) -> Vec<(String, String, String, u64, u64)> {
    let out = net
        .stats()
        .iter()
        .map(|(f, t, k, c)| (f.to_owned(), t.to_owned(), k.to_owned(), c.stanzas, c.bytes))
        .collect();
    net.reset_stats();
    out
}

/// XEP PS-93: the support world's pair shares 9 edges, a small peer at the default threshold.
/// Neither server sends a hello, both keep RFC 6121 (the same stanzas, kind by kind, as two
/// Prosody-like servers without the extension), and every user sees the truth.
#[test]
fn a_small_peer_gets_no_hello_and_exactly_rfc6121() {
    let mut net = world_of(default_server(A, PROSODY, 1), default_server(B, PROSODY, 2));
    net.drive();
    assert_eq!(traffic(&mut net), (0, 0), "no hello to a small peer");
    for (d, p) in [(A, B), (B, A)] {
        let s = net.host(d).session(p).expect("a session object");
        assert_eq!(s.mode(), Mode::Small);
        assert!(!s.replaces_rfc6121());
        assert_eq!(s.edges().len(), 9);
        assert!(
            events_since(&net, d, 0).contains(&Event::SmallPeer { edges: 9 }),
            "{d} reports the small peer"
        );
    }
    let mut legacy = world_of(Server::new(A, PROSODY), Server::new(B, PROSODY));
    legacy.drive();
    for n in [&mut net, &mut legacy] {
        login_all(n, &A_USERS);
        login_all(n, &B_USERS);
        assert_truth(n);
    }
    let ours = kinds(&mut net);
    assert!(ours.iter().any(|(_, _, k, _, _)| k == "presence/probe"));
    assert_eq!(ours, kinds(&mut legacy));
}

/// PS-93 and PS-17 with different thresholds: b.example starts sessions with every peer, a.example
/// (the edge driver) keeps RFC 6121 with small ones. b.example's hello, sent after its wait for
/// the driver's (PS-16), is answered, and the session starts on both sides.
#[test]
fn a_small_peers_hello_is_answered_and_starts_the_session() {
    let mut net = world_of(default_server(A, PROSODY, 1), sync_server(B, PROSODY, 2));
    net.drive();
    assert_eq!(traffic(&mut net), (0, 0));
    net.drive_for(Duration::from_secs(3));
    assert_eq!(kind(&net, B, A, "iq/set/hello"), 1);
    assert_eq!(kind(&net, A, B, "iq/result/hello"), 1);
    assert!(synchronized(&net));
    assert!(net.host(A).session(B).unwrap().replaces_rfc6121());
    net.reset_stats();
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert_eq!(probes(&net), 0, "no probes in a session (PS-66)");
}

/// PS-93: a small peer whose shared edges grow past the threshold gets its hello exchange at
/// once; until then none crosses. Presence is right before, during and after.
#[test]
fn a_small_peer_that_grows_past_the_threshold_starts_a_session() {
    let mut net = world_of(default_server(A, PROSODY, 1), default_server(B, PROSODY, 2));
    net.drive();
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    net.reset_stats();
    let edges = |net: &Net<Server>| net.host(A).session(B).unwrap().edges().len();
    let mut i = 0;
    while edges(&net) <= presence_sync::engine::SMALL_PEER {
        assert_eq!(
            kind(&net, A, B, "iq/set/hello"),
            0,
            "at {} edges",
            edges(&net)
        );
        let (x, y) = (jid(&format!("x{i}@{A}")), jid(&format!("y{i}@{B}")));
        net.with_host(A, |s, _| s.add_user(&x));
        net.with_host(B, |s, _| s.add_user(&y));
        net.with_host(A, |s, _| s.subscribe(&x, &y));
        net.drive();
        net.with_host(B, |s, _| s.approve(&y, &x));
        net.drive();
        i += 1;
        assert_truth(&net);
    }
    assert_eq!(edges(&net), presence_sync::engine::SMALL_PEER + 1);
    assert_eq!(
        kind(&net, A, B, "iq/set/hello"),
        1,
        "the edge driver's hello"
    );
    assert!(synchronized(&net));
    assert_truth(&net);
}

/// PS-93 and PS-17 on a link that came up with nothing shared (as a new federation does):
/// b.example starts sessions with every peer, a.example keeps RFC 6121 with small ones. Users
/// log in, then subscribe to each other across the link: b.example's hello, sent once the
/// pair shares an edge, is answered, the session starts, and every user sees the truth.
#[test]
fn a_hello_after_the_first_shared_edge_is_answered_by_a_small_peer() {
    let users: Vec<&str> = A_USERS.iter().chain(B_USERS.iter()).copied().collect();
    let mut net = pair_unconnected(
        default_server(A, PROSODY, 1),
        sync_server(B, PROSODY, 2),
        &users,
    );
    net.connect(A, B, presence_sync::sim::LinkConfig::default());
    net.drive();
    login_all(&mut net, &users);
    net.drive_for(Duration::from_secs(3));
    assert_eq!(kind(&net, B, A, "iq/set/hello"), 0, "nothing shared yet");
    for (x, y) in A_USERS.iter().zip(B_USERS.iter()) {
        let (x, y) = (jid(x), jid(y));
        net.with_host(A, |s, _| s.subscribe(&x, &y));
        net.drive();
        net.with_host(B, |s, _| s.approve(&y, &x));
        net.drive();
        net.with_host(B, |s, _| s.subscribe(&y, &x));
        net.drive();
        net.with_host(A, |s, _| s.approve(&x, &y));
        net.drive();
        net.drive_for(Duration::from_secs(3));
        assert_truth(&net);
    }
    let hellos = kind(&net, B, A, "iq/set/hello");
    assert!(hellos >= 1, "b.example's hello");
    assert_eq!(kind(&net, A, B, "iq/result/hello"), hellos, "each answered");
    assert!(synchronized(&net));
    assert_truth(&net);
}

/// a.example (threshold 40, the edge driver; the 9 shared edges make b.example small for it)
/// and b.example (threshold 0), everybody logged in and right; then a.example crashes,
/// restarts, and its users log in again at once, under RFC 6121 with b.example.
fn small_driver_restarted() -> Net<Server> {
    let mut net = world_of(default_server(A, PROSODY, 1), sync_server(B, PROSODY, 2));
    net.drive_for(Duration::from_secs(3));
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    net.crash(A);
    net.drive_for(Duration::from_secs(5));
    net.restart(A);
    login_all(&mut net, &A_USERS);
    net
}

/// PS-93, PS-55: presence a small peer's side learned through RFC 6121 is under the session's
/// authority once a session starts. a.example (threshold 40, 9 shared edges: b.example is
/// small for it) crashes and restarts: it keeps RFC 6121, its users' login storm probes
/// b.example's users and is answered. b.example (threshold 0) held a cache of a.example, so it
/// sends a hello, which a.example answers: a session. b.example then shuts down gracefully
/// (one `<shutdown/>`, no per-user unavailable presence): a.example's users must be shown none
/// of b.example's users.
#[test]
fn presence_learned_through_rfc6121_goes_with_the_peers_shutdown() {
    let mut net = small_driver_restarted();
    net.drive_for(Duration::from_secs(5));
    assert_truth(&net);
    assert!(synchronized(&net), "b.example's hello started a session");
    net.shutdown(B);
    net.drive_for(Duration::from_secs(5));
    assert_truth(&net);
}

/// The window of PS-16 with a small peer (see the closing note of stop 24): a.example
/// (threshold 40, the edge driver) restarts and keeps RFC 6121 with b.example, whose hello
/// comes only after its wait; b.example shuts down within that wait.
#[test]
fn a_shutdown_within_the_hello_wait_of_a_small_peer() {
    let mut net = small_driver_restarted();
    assert_truth(&net);
    net.shutdown(B);
    net.drive_for(Duration::from_secs(5));
    assert_truth(&net);
}

/// A server that keeps its caches of peers across a graceful restart (XEP §Persistence of
/// Epochs and Caches).
fn keeping_server(domain: &str, seed: u64) -> Server {
    let mut setup = SyncSetup::every_peer();
    setup.persist_caches = true;
    Server::with_sync(domain, EJABBERD, setup, seed)
}

#[test]
fn a_cache_kept_at_a_graceful_stop_spares_the_pull_and_dies_with_the_grace_period() {
    let mut net = world_of(sync_server(A, EJABBERD, 1), keeping_server(B, 2));
    net.drive();
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert!(synchronized(&net));
    net.reset_stats();
    net.shutdown(B);
    net.drive();
    net.restart(B);
    net.drive();
    // b.example presents the cache it kept, of a.example's unchanged epoch: the roots agree
    // and nothing is pulled (a cold restart pulls a.example's published set, see
    // cold_restart_then_login_storm_sends_no_probes).
    assert_eq!(kind(&net, B, A, "iq/set/reconcile"), 0);
    assert_eq!(kind(&net, A, B, "iq/set/reconcile"), 0);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    assert_eq!(probes(&net), 0);
    // Kept again, but the link stays down after the start: nothing of it is shown, and it
    // is voided at the end of the grace period (PS-81), so a later run cannot present it.
    let log_b = net.host(B).sync_log().len();
    net.shutdown(B);
    net.drive();
    net.partition(A, B);
    net.restart(B);
    login_all(&mut net, &B_USERS);
    assert!(
        !net.host(B)
            .view(&jid("romeo@b.example"))
            .contains_key(&jid("juliet@a.example")),
        "an unverified kept cache is shown"
    );
    net.drive_for(grace());
    let events = events_since(&net, B, log_b);
    assert!(
        events.contains(&Event::CacheVoided(VoidReason::GraceExpired)),
        "{events:?}"
    );
    net.crash(B);
    net.restart(B);
    assert!(
        net.host(B).session(A).is_none(),
        "nothing was kept by a crash"
    );
}
