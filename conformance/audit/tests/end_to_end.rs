//! End to end: reference servers (with a legacy one) through link losses, crashes, repairs
//! of mismatches and clean shutdowns pass every check they exercise, and between them
//! exercise every check.

use super::*;

type World = Net<Recorder<Server>>;

const A_USERS: [&str; 3] = [JULIET, "nurse@a.example", "mercutio@a.example"];
const B_USERS: [&str; 3] = [ROMEO, "benvolio@b.example", "tybalt@b.example"];

fn user(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn sync(domain: &str, seed: u64) -> Recorder<Server> {
    let setup = SyncSetup::every_peer();
    Recorder::new(Server::with_sync(domain, Flavour::Prosody, setup, seed))
}

/// A local action of `user`'s server at the current time. The reference server takes the
/// time of a local action from its latest input from the driver; a timer call first (which
/// does nothing when nothing is due) gives it the current time (see
/// [`reference_server_keeps_its_sessions_across_a_quiet_period`]).
fn local(net: &mut World, u: &BareJid, f: impl FnOnce(&mut Server, &BareJid)) {
    net.with_host(u.domain().as_str(), |h, now| {
        h.handle_timeout(now);
        f(h.at(now), u)
    });
}

fn login(net: &mut World, users: &[&str]) {
    for u in users {
        local(net, &user(u), |h, u| {
            h.login(u, "r", ResourcePresence::default())
        });
        net.drive();
    }
}

/// `tests/support`'s small world between a.example and b.example (and, with `legacy`,
/// c.example without the extension), everybody online.
fn world(seed: u64, legacy: bool) -> World {
    use NamedState::*;
    let mut net = Net::new(seed);
    net.add_host(sync(H, seed));
    net.add_host(sync(P, seed + 1));
    let mut users = [A_USERS, B_USERS].concat();
    if legacy {
        net.add_host(Recorder::new(Server::new(L, Flavour::Prosody)));
        users.push("escalus@c.example");
    }
    for u in &users {
        let u = user(u);
        net.with_host(u.domain().as_str(), |h, _| h.add_user(&u));
    }
    let mut relate = |a: &str, b: &str, at_a, at_b| {
        let (a, b) = (user(a), user(b));
        for (u, c, s) in [(&a, &b, at_a), (&b, &a, at_b)] {
            let sub = Subscription::named(s);
            net.with_host(u.domain().as_str(), |h, _| h.set_roster_item(u, c, sub));
        }
    };
    relate(JULIET, ROMEO, Both, Both);
    relate(JULIET, "benvolio@b.example", Both, Both);
    relate("nurse@a.example", ROMEO, Both, Both);
    relate("mercutio@a.example", "tybalt@b.example", Both, Both);
    relate(
        "nurse@a.example",
        "benvolio@b.example",
        NonePendingOut,
        NonePendingIn,
    );
    if legacy {
        relate(JULIET, "escalus@c.example", Both, Both);
        net.connect(H, L, LinkConfig::default());
    }
    net.connect(H, P, LinkConfig::default());
    net.drive();
    login(&mut net, &users);
    net
}

#[test]
fn two_reference_servers_pass_the_audit() {
    let mut net = world(1, true);
    // A link loss with a change on each side.
    net.partition(H, P);
    let five = ResourcePresence {
        priority: 5,
        ..Default::default()
    };
    local(&mut net, &user(JULIET), |h, u| h.set_presence(u, "r", five));
    local(&mut net, &user(B_USERS[1]), |h, u| h.logout(u, "r"));
    net.drive();
    net.repair(H, P);
    net.drive();
    // A crash during which b.example's rosters lose two subscriptions (repairs follow).
    net.crash(P);
    net.with_host(P, |h, _| {
        let (none, from) = (NamedState::None, NamedState::From);
        h.set_roster_item(
            &user(B_USERS[2]),
            &user(A_USERS[2]),
            Subscription::named(none),
        );
        h.set_roster_item(&user(B_USERS[1]), &user(JULIET), Subscription::named(from));
    });
    net.restart(P);
    net.drive();
    login(&mut net, &B_USERS);
    // A clean shutdown of a.example and its return.
    net.shutdown(H);
    net.drive();
    net.restart(H);
    net.drive();
    login(&mut net, &A_USERS);
    // No check fails on either host, and every check is exercised on one of them.
    let audits = [H, P].map(|d| audit(d, net.host(d).records(), &AuditContext::default()));
    let report = format!("{H}:\n{}{P}:\n{}", show(&audits[0]), show(&audits[1]));
    assert!(
        audits.iter().flatten().all(|f| !f.outcome.is_fail()),
        "{report}"
    );
    // Ids are asked for again only when answers do not fit: `small-limits` exercises that.
    for c in CHECKS.iter().filter(|c| c.id != CheckId::ReAsks) {
        let exercised = audits
            .iter()
            .any(|a| a[c.id as usize].outcome == Outcome::Pass);
        assert!(
            exercised,
            "{} is exercised by neither host:\n{report}",
            c.name
        );
    }
}

/// Random changes and faults (as `tests/sync.rs`'s proptest does, with links dropped in the
/// middle of exchanges), then both hosts audited.
#[test]
fn random_changes_and_faults_pass_the_audit() {
    use crate::sim::Verdict;
    use crate::workload::SplitMix64;
    use std::time::Duration;
    let users = [A_USERS, B_USERS].concat();
    for seed in 1..=60u64 {
        let mut rng = SplitMix64::new(seed);
        let mut net = world(seed, false);
        let mut ops = Vec::new();
        for _ in 0..24 {
            let (u, c) = (
                user(users[rng.below(6) as usize]),
                user(users[rng.below(6) as usize]),
            );
            let d = u.domain().to_string();
            let op = rng.below(15);
            ops.push(op);
            match op {
                0..=3 => {
                    let p = ResourcePresence {
                        priority: rng.below(9) as i8,
                        ..Default::default()
                    };
                    local(&mut net, &u, |h, u| h.set_presence(u, "r", p));
                }
                4 => local(&mut net, &u, |h, u| h.logout(u, "r")),
                5 => local(&mut net, &u, |h, u| h.subscribe(u, &c)),
                6 => local(&mut net, &u, |h, u| h.approve(u, &c)),
                7 => local(&mut net, &u, |h, u| h.unsubscribe(u, &c)),
                8 => local(&mut net, &u, |h, u| h.block(u, &c)),
                9 => net.partition(H, P),
                10 => net.repair(H, P),
                11 => {
                    let at = net.sent_count() + rng.below(12);
                    net.set_filter(move |e| match e.index == at {
                        true => Verdict::DropLinkAfter,
                        false => Verdict::Deliver,
                    });
                }
                12 | 13 if !net.is_running(&d) => net.restart(&d),
                12 => net.crash(&d),
                13 => net.shutdown(&d),
                _ => {
                    net.drive_for(Duration::from_secs(rng.below(400)));
                }
            }
            net.drive_bounded(100_000).expect("no livelock");
        }
        net.clear_filter();
        for d in [H, P] {
            if !net.is_running(d) {
                net.restart(d);
            }
        }
        net.repair(H, P);
        net.drive_bounded(100_000).expect("no livelock");
        for d in [H, P] {
            let findings = audit(d, net.host(d).records(), &AuditContext::default());
            let failed = findings.iter().any(|f| f.outcome.is_fail());
            assert!(
                !failed,
                "seed {seed}, ops {ops:?}, {d}:\n{}",
                show(&findings)
            );
        }
    }
}

/// Found by this audit: a local action stamped its requests with the time of the server's
/// latest input from the driver, so after two quiet minutes a block sent a batch "sent two
/// minutes ago" whose request timeout (PS-51) expired at once, and the clean stop that
/// followed announced nothing (PS-54). Drivers now tell the server the time before a local
/// action (`Server::set_clock`, `Subject::set_clock`).
#[test]
fn reference_server_keeps_its_sessions_across_a_quiet_period() {
    let mut net = world(5, false);
    net.drive_for(std::time::Duration::from_secs(120));
    net.with_host(H, |h, now| {
        let server = h.at(now);
        server.set_clock(now);
        server.block(&user(JULIET), &user(ROMEO));
    });
    net.drive();
    net.shutdown(H);
    net.drive();
    let findings = audit(H, net.host(H).records(), &AuditContext::default());
    let log: Vec<String> = net
        .host(H)
        .sync_log()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    let failed = findings.iter().any(|f| f.outcome.is_fail());
    assert!(!failed, "{}\n{log:#?}", show(&findings));
}
