//! Edge verification (XEP §Verification, §Repair of Subscription Mismatches) between two
//! model servers: mismatches repaired through RFC 6121, and PS-38 on a busy server, where
//! subscriptions made without pause while the edge driver descends and verifies are
//! differences still in flight, not differences that resist repair. The session must survive
//! them, however many verifications they spoil; a difference no repair removes must still end
//! it, on both sides (the `mismatch` scenario of the conformance suite checks the same
//! against any implementation).

mod support;

use std::time::Duration;

use presence_sync::engine::{Event, FallbackReason, Mode};
use presence_sync::model::{NamedState, ResourcePresence, Subscription};
use presence_sync::server::{Flavour, Server, SyncSetup};
use presence_sync::sim::{LinkConfig, Net, Verdict};
use support::*;

const USERS: usize = 30;

fn user(domain: &str, i: usize) -> String {
    format!("u{i}@{domain}")
}

/// Two servers running the extension, `USERS` users each, `u{i}` of each side subscribed
/// both ways to `u{i}` of the other, everybody online, synchronized.
fn busy_pair() -> Net<Server> {
    busy_pair_giving_up_after(3, 3)
}

/// [`busy_pair`] with a.example giving up after `a` descents that found the same
/// difference and b.example after `b` (PS-38; the XEP says three).
fn busy_pair_giving_up_after(a: u32, b: u32) -> Net<Server> {
    let server = |d: &str, seed| {
        let mut setup = SyncSetup::every_peer();
        setup.config.max_descents = if d == A { a } else { b };
        Server::with_sync(d, Flavour::Ejabberd { multicast: false }, setup, seed)
    };
    let users: Vec<String> = (0..USERS).flat_map(|i| [user(A, i), user(B, i)]).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut net = pair_unconnected(server(A, 1), server(B, 2), &names);
    for i in 0..USERS {
        use NamedState::Both;
        relate(&mut net, &user(A, i), &user(B, i), Both, Both);
    }
    net.connect(A, B, LinkConfig::default());
    net.drive();
    for u in &users {
        let j = jid(u);
        net.with_host(&domain_of(&j), |s, _| {
            s.login(&j, "r", ResourcePresence::default())
        });
    }
    net.drive();
    assert_truth(&net);
    net
}

/// A request lost in an outage: the link goes down, u0 of a.example asks u1 of b.example for
/// a subscription that b.example never receives, so the edge sets differ when the link is back
/// (the driver, a.example, descends). Returns the lengths of both sync logs at that point.
fn lose_a_request(net: &mut Net<Server>) -> (usize, usize) {
    net.partition(A, B);
    let (lost_from, lost_to) = (jid(&user(A, 0)), jid(&user(B, 1)));
    net.with_host(A, |s, _| {
        let mut pending = Subscription::NONE;
        pending.outbound(presence_sync::model::SubscriptionStanza::Subscribe);
        s.set_roster_item(&lost_from, &lost_to, pending);
    });
    net.drive();
    (net.host(A).sync_log().len(), net.host(B).sync_log().len())
}

#[test]
fn subscriptions_made_during_every_descent_do_not_make_the_peer_legacy() {
    let mut net = busy_pair();
    assert!(synchronized(&net));
    let logged = lose_a_request(&mut net);
    net.reset_stats();
    net.repair(A, B);
    // Churn: every 10 ms (a round trip is 40 ms) a user of either side asks a user of the
    // other for a subscription, for 3 s, so that changes are in flight whenever a hello or
    // a descent compares the edge sets.
    let mut asked = 0;
    for step in 0..300 {
        let (side, other) = if step % 2 == 0 { (A, B) } else { (B, A) };
        let i = step / 2 % USERS;
        let k = (i + 2 + step / (2 * USERS)) % USERS;
        let (from, to) = (jid(&user(side, i)), jid(&user(other, k)));
        net.with_host(side, |s, _| s.subscribe(&from, &to));
        asked += 1;
        net.drive_for(Duration::from_millis(10));
    }
    // The peer's hello rate (PS-20) may refuse a verification: the next comes 10 s later.
    net.drive_for(Duration::from_secs(30));
    let hellos = kind(&net, A, B, "iq/set/hello");
    for (domain, from) in [(A, logged.0), (B, logged.1)] {
        let fallbacks: Vec<&Event> = net.host(domain).sync_log()[from..]
            .iter()
            .map(|(_, _, e)| e)
            .filter(|e| matches!(e, Event::Fallback(_)))
            .collect();
        assert!(
            fallbacks.is_empty(),
            "{domain} gave up on its peer during {asked} subscription requests and {hellos} hellos: {fallbacks:?}"
        );
    }
    assert!(
        hellos >= 5,
        "the churn spoiled only {hellos} verifications: the test proves nothing"
    );
    assert_eq!(
        net.host(A).session(B).map(|s| s.mode()),
        Some(Mode::Synchronized)
    );
    let tail = |d: &str| -> Vec<String> {
        net.host(d)
            .sync_log()
            .iter()
            .rev()
            .take(12)
            .map(|(t, _, e)| format!("{t} {e:?}"))
            .collect()
    };
    let st = |d: &str, p: &str| {
        let s = net.host(d).session(p).unwrap();
        format!(
            "{d}: sync {} edges {} timeout {:?} mode {:?} now {}",
            s.is_synchronized(),
            s.edges_verified(),
            s.poll_timeout(),
            s.mode(),
            net.now()
        )
    };
    assert!(
        synchronized(&net),
        "A: {:#?}\nB: {:#?}\nhellos {hellos}\n{}\n{}",
        tail(A),
        tail(B),
        st(A, B),
        st(B, A)
    );
    assert_truth(&net);
}

/// Runs a busy pair into a difference no repair removes (a request lost in an outage, then
/// every repair lost) until one side gives up; returns the net and the lengths of both sync
/// logs before the link came back.
fn unverifiable(a: u32, b: u32) -> (Net<Server>, (usize, usize)) {
    let mut net = busy_pair_giving_up_after(a, b);
    let logged = lose_a_request(&mut net);
    net.set_filter(|e| {
        if e.stanza.children().any(|c| c.name() == "repair") {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    net.repair(A, B);
    net.drive_for(Duration::from_secs(60));
    net.clear_filter();
    (net, logged)
}

fn gave_up(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Fallback(FallbackReason::Unverifiable(_))))
}

/// A user of b.example changes presence: with both sides legacy, RFC 6121 must carry it.
fn change_and_check(net: &mut Net<Server>) {
    let u5 = jid(&user(B, 5));
    net.with_host(B, |s, _| s.login(&u5, "r", away()));
    net.drive_for(Duration::from_secs(600));
    assert_truth(net);
}

#[test]
fn both_sides_give_up_on_the_same_verification() {
    let (mut net, logged) = unverifiable(3, 3);
    let (a, b) = (
        events_since(&net, A, logged.0),
        events_since(&net, B, logged.1),
    );
    assert!(gave_up(&a), "a.example did not give up: {a:?}");
    assert!(gave_up(&b), "b.example did not give up: {b:?}");
    for (d, p) in [(A, B), (B, A)] {
        assert_eq!(net.host(d).session(p).map(|s| s.mode()), Some(Mode::Legacy));
    }
    change_and_check(&mut net);
}

/// If only one side gives up (here b.example; a.example would descend ten times), it refuses
/// the other's requests (PS-69, PS-75): the other's session ends on the refusal, its new hellos
/// are refused too, and after its failures it is legacy as well (PS-58).
#[test]
fn a_side_that_gave_up_refuses_requests_until_the_other_gives_up_too() {
    let (mut net, logged) = unverifiable(10, 3);
    let b = events_since(&net, B, logged.1);
    assert!(gave_up(&b), "b.example did not give up: {b:?}");
    net.drive_for(Duration::from_secs(600));
    let a = events_since(&net, A, logged.0);
    assert!(!gave_up(&a), "a.example gave up on its own: {a:?}");
    assert!(
        a.iter()
            .any(|e| matches!(e, Event::SessionEnded(why) if why.contains("error"))),
        "a.example's session did not end on a refusal: {a:?}"
    );
    assert!(
        a.iter()
            .any(|e| matches!(e, Event::Fallback(FallbackReason::Failures(_)))),
        "a.example is not legacy after its failures: {a:?}"
    );
    change_and_check(&mut net);
}

#[test]
fn subscription_mismatches_are_repaired_through_rfc6121() {
    // XEP §Subscription Mismatch: b.example restores benvolio's roster from a backup without
    // his subscription to juliet, and loses tybalt's record of mercutio entirely.
    // The restore happens while b.example is down; its users log in again afterwards.
    let mut net = online_world();
    net.crash(B);
    let (benvolio, juliet) = (jid("benvolio@b.example"), jid("juliet@a.example"));
    let (tybalt, mercutio) = (jid("tybalt@b.example"), jid("mercutio@a.example"));
    net.with_host(B, |s, _| {
        s.set_roster_item(&benvolio, &juliet, Subscription::named(NamedState::From));
        s.set_roster_item(&tybalt, &mercutio, Subscription::named(NamedState::None));
    });
    net.restart(B);
    net.drive();
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    // Both edge sets are equal again.
    let root = |d: &str, p: &str| net.host(d).session(p).unwrap().edges().root();
    assert_eq!(root(A, B), root(B, A));
    // The repairs went as RFC 6121 stanzas with <repair/> (PS-60, PS-61).
    let repairs = |d: &str| {
        net.host(d)
            .sync_log()
            .iter()
            .filter(|(_, _, e)| matches!(e, Event::Repaired(_)))
            .count()
    };
    assert!(
        repairs(A) + repairs(B) >= 2,
        "{:?} {:?}",
        log(&net, A),
        log(&net, B)
    );
    // Row 1 of the table: benvolio's server sent `unsubscribe` to juliet, whose `from` went;
    // her `to` (benvolio's `from`, which the backup kept) stays. mercutio and tybalt: rows 1
    // and 4, `unsubscribe` and `unsubscribed` from b.example; nothing is left.
    let sub = |d: &str, u: &str, c: &str| {
        net.host(d).accounts()[&jid(u)]
            .roster
            .get(&jid(c))
            .copied()
            .unwrap()
    };
    let juliet_benvolio = sub(A, "juliet@a.example", "benvolio@b.example");
    assert!(!juliet_benvolio.from() && juliet_benvolio.to());
    let mercutio_tybalt = sub(A, "mercutio@a.example", "tybalt@b.example");
    assert!(!mercutio_tybalt.from() && !mercutio_tybalt.to());
}
