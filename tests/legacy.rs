//! The RFC 6121 baseline on the simulated network: two model servers (Prosody-like and
//! ejabberd-like, BRIEF §3) driven by [`Net`], every end state checked against the ground-truth
//! oracle ([`presence_sync::model::truth::entitled`]), stanza counts asserted exactly.
//!
//! The small world (`world`): a.example has juliet, nurse, mercutio; b.example has romeo,
//! benvolio, tybalt; one resource `r` each.
//!
//! | edge                 | at a.example      | at b.example                    |
//! |----------------------|-------------------|---------------------------------|
//! | juliet – romeo       | both              | both                            |
//! | juliet – benvolio    | both              | both                            |
//! | nurse – romeo        | both              | both                            |
//! | mercutio – tybalt    | both              | both, but tybalt blocks mercutio |
//! | nurse → benvolio     | none + pending out | none + pending in (a request)  |
//! | juliet – nurse       | both (local)      |                                 |
//!
//! So presence flows b→a on 3 edges (romeo→juliet, romeo→nurse, benvolio→juliet) and a→b on 4
//! (the same three reversed, plus mercutio→tybalt, dropped at b.example by the block); a.example
//! users probe 4 remote contacts, b.example users 3.

mod support;

use presence_sync::model::NamedState;
use presence_sync::server::{Flavour, Server};
use presence_sync::sim::{LinkConfig, Net};
use support::*;

const PROSODY: Flavour = Flavour::Prosody;
const EJABBERD: Flavour = Flavour::Ejabberd { multicast: false };
const MULTICAST: Flavour = Flavour::Ejabberd { multicast: true };
const FLAVOURS: [Flavour; 3] = [PROSODY, EJABBERD, MULTICAST];

/// The small world of `support`, between two legacy servers.
fn world(fa: Flavour, fb: Flavour) -> Net<Server> {
    world_of(Server::new(A, fa), Server::new(B, fb))
}

/// Two connected legacy servers with `users` and no roster items.
fn pair(fa: Flavour, fb: Flavour, users: &[&str]) -> Net<Server> {
    let mut net = pair_unconnected(Server::new(A, fa), Server::new(B, fb), users);
    net.connect(A, B, LinkConfig::default());
    net
}

/// The world with everybody online and the counters at zero.
fn online_world(fa: Flavour, fb: Flavour) -> Net<Server> {
    let mut net = world(fa, fb);
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    net.reset_stats();
    net
}

#[test]
fn logins_probe_and_later_logins_get_answers() {
    // (a.example logs in alone, romeo later, benvolio and tybalt last): stanzas (a→b, b→a).
    // Prosody: juliet 2 broadcasts + 2 probes, answered by 2 `unavailable` (offline);
    // nurse 1 broadcast + 1 probe + her pending request re-sent, answered by 1 `unavailable`
    // and the request's acknowledgement; mercutio 1 broadcast + 1 probe, both dropped by
    // tybalt's block. ejabberd: the same minus every answer and the re-sent request.
    // With multicast each login sends 1 grouped probe + 1 grouped broadcast.
    // romeo then: 2 broadcasts + 2 probes (multicast: 1 + 1), answered by 2 presences.
    // benvolio: 1 broadcast + 1 probe, 1 answer; tybalt: nothing (he blocks his one contact).
    for (flavour, a_alone, romeo, rest) in [
        (PROSODY, (9, 4), (2, 4), (1, 2)),
        (EJABBERD, (8, 0), (2, 4), (1, 2)),
        (MULTICAST, (6, 0), (2, 2), (1, 2)),
    ] {
        let mut net = world(flavour, flavour);
        login_all(&mut net, &A_USERS);
        assert_truth(&net);
        assert_eq!(traffic(&mut net), a_alone, "{flavour:?}: a.example alone");
        login(&mut net, "romeo@b.example");
        assert_truth(&net);
        assert_eq!(traffic(&mut net), romeo, "{flavour:?}: romeo");
        login_all(&mut net, &B_USERS[1..]);
        assert_truth(&net);
        assert_eq!(traffic(&mut net), rest, "{flavour:?}: benvolio, tybalt");
        let juliet = net.host(A).view(&jid("juliet@a.example"));
        let seen: Vec<String> = juliet.keys().map(|c| c.to_string()).collect();
        assert_eq!(
            seen,
            ["benvolio@b.example", "nurse@a.example", "romeo@b.example"]
        );
        assert!(
            net.host(A).view(&jid("mercutio@a.example")).is_empty(),
            "blocked"
        );
    }
}

#[test]
fn presence_change_and_logout() {
    for flavour in FLAVOURS {
        let mut net = online_world(flavour, flavour);
        let grouped = flavour.multicast();
        let romeo = jid("romeo@b.example");
        // romeo goes away: one stanza per subscriber (juliet, nurse), or one grouped.
        let delivered = net.host(A).stats().presence_delivered;
        net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
        net.drive();
        assert_truth(&net);
        assert_eq!(traffic(&mut net), (0, if grouped { 1 } else { 2 }));
        assert_eq!(net.host(A).stats().presence_delivered, delivered + 2);
        let shown = net.host(A).view(&jid("nurse@a.example"));
        assert_eq!(shown[&romeo]["r"], away());
        // romeo logs out: `unavailable` the same way.
        net.with_host(B, |s, _| s.logout(&romeo, "r"));
        net.drive();
        assert_truth(&net);
        let want = if grouped {
            "presence/unavailable/addresses"
        } else {
            "presence/unavailable"
        };
        assert_eq!(kind(&net, B, A, want), if grouped { 1 } else { 2 });
        assert_eq!(traffic(&mut net), (0, if grouped { 1 } else { 2 }));
        assert!(
            !net.host(A)
                .view(&jid("juliet@a.example"))
                .contains_key(&romeo)
        );
    }
}

#[test]
fn link_loss_leaves_ghosts_until_the_next_change() {
    for flavour in FLAVOURS {
        let mut net = online_world(flavour, flavour);
        let grouped = flavour.multicast();
        let (romeo, juliet) = (jid("romeo@b.example"), jid("juliet@a.example"));
        net.partition(A, B);
        // During the partition romeo goes away and juliet logs out: their stanzas are refused
        // and bounced (2 subscribers each, or 1 grouped stanza each).
        net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
        net.with_host(A, |s, _| s.logout(&juliet, "r"));
        net.drive();
        let per_change = if grouped { 1 } else { 2 };
        assert_eq!(net.stats().direction(B, A).refused, per_change);
        assert_eq!(net.stats().direction(A, B).refused, per_change);
        assert_eq!(net.host(A).stats().bounced, per_change);
        assert_eq!(net.host(B).bounces().len() as u64, per_change);
        // RFC 6121 has no resynchronisation (BRIEF §1, §3 row 4): nurse still sees romeo as
        // he was, romeo and benvolio still see juliet. This is the documented ghost presence.
        let ghosts = [
            "benvolio@b.example sees juliet@a.example but is not entitled to (stale or leaked)",
            "romeo@b.example sees juliet@a.example but is not entitled to (stale or leaked)",
        ];
        let check = |net: &Net<Server>| {
            let mut d = diff(net);
            d.sort();
            assert_eq!(d.len(), 3, "{flavour:?}: {d:#?}");
            assert_eq!(d[0], ghosts[0]);
            assert!(d[1].starts_with("nurse@a.example sees romeo@b.example wrongly"));
            assert_eq!(d[2], ghosts[1]);
        };
        check(&net);
        // The link comes back: nothing is sent, nothing changes.
        net.reset_stats();
        net.repair(A, B);
        net.drive();
        assert_eq!(traffic(&mut net), (0, 0));
        check(&net);
        // The next change of each fixes what it concerns.
        net.with_host(B, |s, _| s.set_presence(&romeo, "r", away()));
        login(&mut net, "juliet@a.example");
        assert_truth(&net);
    }
}

#[test]
fn crash_then_restart_and_login_storm_converges() {
    // Storm of b.example, all of a.example online: romeo 2 broadcasts + 2 probes (grouped:
    // 1 + 1), 2 answers; benvolio 1 + 1, 1 answer; tybalt nothing. The answers come from
    // a.example's sessions, so only b.example's flavour matters: (a→b, b→a) = (3, 6) or (3, 4).
    for (fa, fb) in [
        (PROSODY, PROSODY),
        (EJABBERD, EJABBERD),
        (MULTICAST, MULTICAST),
        (PROSODY, MULTICAST),
        (MULTICAST, PROSODY),
    ] {
        let mut net = online_world(fa, fb);
        let before = net.host(A).views();
        net.crash(B);
        net.drive();
        // A crash sends nothing; a.example's users keep seeing b.example's users as they were
        // (RFC 6121 ghost presence, BRIEF §3 row 7).
        assert_eq!(traffic(&mut net), (0, 0));
        assert_eq!(net.host(A).views(), before);
        assert_eq!(diff(&net).len(), 3, "{:#?}", diff(&net));
        net.restart(B);
        net.drive();
        assert_eq!(traffic(&mut net), (0, 0), "a restart alone sends nothing");
        assert!(net.host(B).online().is_empty());
        login_all(&mut net, &B_USERS);
        assert_truth(&net);
        let want = if fb.multicast() { (3, 4) } else { (3, 6) };
        assert_eq!(traffic(&mut net), want, "{fa:?} / {fb:?}");
    }
}

#[test]
fn clean_shutdown_prosody_announces_ejabberd_does_not() {
    for flavour in FLAVOURS {
        let mut net = online_world(flavour, flavour);
        net.shutdown(B);
        net.drive();
        if flavour == PROSODY {
            // `unavailable` per edge: romeo→juliet, romeo→nurse, benvolio→juliet; tybalt's one
            // subscriber is blocked. Then the stream closes and a.example shows the truth.
            assert_eq!(kind(&net, B, A, "presence/unavailable"), 3);
            assert_eq!(traffic(&mut net), (0, 3));
            assert_truth(&net);
        } else {
            // Nothing: a clean stop looks like a crash, the 3 remote presences stay shown.
            assert_eq!(traffic(&mut net), (0, 0));
            assert_eq!(diff(&net).len(), 3);
        }
        assert!(!net.is_link_up(A, B));
        net.restart(B);
        login_all(&mut net, &B_USERS);
        assert_truth(&net);
    }
}

#[test]
fn multicast_groups_twenty_recipients_per_stanza() {
    // juliet has 45 remote `both` contacts, 25 of them online before she logs in.
    // Prosody: 45 broadcasts + 45 probes; answers: 25 presences + 20 `unavailable`.
    // ejabberd: the same, but offline contacts do not answer: 25.
    // ejabberd + mod_multicast: ceil(45/20) = 3 grouped probes + 3 grouped broadcasts
    // (20 + 20 + 5 recipients); answers are per contact: 25.
    for (flavour, want) in [
        (PROSODY, (90, 45)),
        (EJABBERD, (90, 25)),
        (MULTICAST, (6, 25)),
    ] {
        let contacts: Vec<String> = (0..45).map(|i| format!("c{i:02}@b.example")).collect();
        let mut users: Vec<&str> = contacts.iter().map(String::as_str).collect();
        users.push("juliet@a.example");
        let mut net = pair(flavour, flavour, &users);
        for c in &contacts {
            relate(
                &mut net,
                "juliet@a.example",
                c,
                NamedState::Both,
                NamedState::Both,
            );
        }
        login_all(&mut net, &users[..25]);
        net.reset_stats();
        login(&mut net, "juliet@a.example");
        if flavour.multicast() {
            assert_eq!(kind(&net, A, B, "presence/probe/addresses"), 3);
            assert_eq!(kind(&net, A, B, "presence/addresses"), 3);
        }
        assert_eq!(traffic(&mut net), want, "{flavour:?}");
        assert_eq!(net.host(A).view(&jid("juliet@a.example")).len(), 25);
        assert_eq!(
            net.host(B).views().len(),
            25,
            "each online contact sees juliet"
        );
        assert_truth(&net);
    }
}

#[test]
fn answers_to_offline_and_unauthorised_probes() {
    // juliet and romeo are mutual, romeo is offline. juliet's roster also claims a
    // subscription to benvolio that benvolio's server lost (a ghost edge).
    for flavour in [PROSODY, EJABBERD] {
        let users = ["juliet@a.example", "romeo@b.example", "benvolio@b.example"];
        let mut net = pair(flavour, flavour, &users);
        relate(
            &mut net,
            "juliet@a.example",
            "romeo@b.example",
            NamedState::Both,
            NamedState::Both,
        );
        relate(
            &mut net,
            "juliet@a.example",
            "benvolio@b.example",
            NamedState::To,
            NamedState::None,
        );
        // juliet: 1 broadcast (romeo) + 2 probes (romeo, benvolio).
        login(&mut net, "juliet@a.example");
        assert_eq!(sent(&net, A, B), 3);
        assert_eq!(kind(&net, A, B, "presence/probe"), 2);
        let benvolio = jid("benvolio@b.example");
        let juliets = |net: &Net<Server>| {
            let item = net.host(A).accounts()[&jid("juliet@a.example")]
                .roster
                .get(&benvolio);
            item.unwrap().name()
        };
        if flavour == PROSODY {
            // romeo is offline: `unavailable`; benvolio is not subscribed: `unsubscribed`,
            // which also takes the ghost edge off juliet's roster (with a roster push).
            assert_eq!(kind(&net, B, A, "presence/unavailable"), 1);
            assert_eq!(kind(&net, B, A, "presence/unsubscribed"), 1);
            assert_eq!(sent(&net, B, A), 2);
            assert_eq!(juliets(&net), NamedState::None);
            assert_eq!(net.host(A).stats().roster_pushes, 1);
        } else {
            // ejabberd answers neither; the ghost edge stays.
            assert_eq!(sent(&net, B, A), 0);
            assert_eq!(juliets(&net), NamedState::To);
        }
        assert_truth(&net);
    }
}
