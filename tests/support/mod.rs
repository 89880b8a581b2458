//! The small two-domain world shared by `tests/legacy.rs`, `tests/sync.rs` and
//! `tests/sync_verification.rs`, and the ground-truth check of what online users are shown.
//!
//! a.example has juliet, nurse, mercutio; b.example has romeo, benvolio, tybalt; one resource
//! `r` each.
//!
//! | edge                 | at a.example      | at b.example                    |
//! |----------------------|-------------------|---------------------------------|
//! | juliet – romeo       | both              | both                            |
//! | juliet – benvolio    | both              | both                            |
//! | nurse – romeo        | both              | both                            |
//! | mercutio – tybalt    | both              | both, but tybalt blocks mercutio |
//! | nurse → benvolio     | none + pending out | none + pending in (a request)  |
//! | juliet – nurse       | both (local)      |                                 |
#![allow(dead_code)]

use jid::BareJid;
use presence_sync::engine::Event;
use presence_sync::model::{NamedState, ResourcePresence, Show, Subscription};
use presence_sync::server::{Flavour, Server, SyncSetup, check_views};
use presence_sync::sim::{LinkConfig, Net};

/// The domain that sorts first (the edge driver).
pub const A: &str = "a.example";
/// The other domain.
pub const B: &str = "b.example";
/// Users of a.example.
pub const A_USERS: [&str; 3] = ["juliet@a.example", "nurse@a.example", "mercutio@a.example"];
/// Users of b.example.
pub const B_USERS: [&str; 3] = ["romeo@b.example", "benvolio@b.example", "tybalt@b.example"];

/// A bare JID.
pub fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

/// The domain of a user.
pub fn domain_of(user: &BareJid) -> String {
    user.domain().to_string()
}

/// An away presence with a status.
pub fn away() -> ResourcePresence {
    ResourcePresence {
        show: Show::Away,
        statuses: [(String::new(), "at the ball".to_string())].into(),
        ..Default::default()
    }
}

/// Sets `ua`'s item for `ub` and `ub`'s item for `ua`.
pub fn relate(net: &mut Net<Server>, ua: &str, ub: &str, at_a: NamedState, at_b: NamedState) {
    let (ua, ub) = (jid(ua), jid(ub));
    net.with_host(&domain_of(&ua), |s, _| {
        s.set_roster_item(&ua, &ub, Subscription::named(at_a))
    });
    net.with_host(&domain_of(&ub), |s, _| {
        s.set_roster_item(&ub, &ua, Subscription::named(at_b))
    });
}

/// Two servers with `users` and no roster items, not yet connected.
pub fn pair_unconnected(a: Server, b: Server, users: &[&str]) -> Net<Server> {
    let mut net = Net::new(1);
    net.add_host(a);
    net.add_host(b);
    for u in users {
        let u = jid(u);
        net.with_host(&domain_of(&u), |s, _| s.add_user(&u));
    }
    net
}

/// The small world of the module docs, everybody offline, the link not yet up.
pub fn world_unconnected(a: Server, b: Server) -> Net<Server> {
    let users: Vec<&str> = A_USERS.iter().chain(B_USERS.iter()).copied().collect();
    let mut net = pair_unconnected(a, b, &users);
    use NamedState::*;
    relate(&mut net, "juliet@a.example", "romeo@b.example", Both, Both);
    relate(
        &mut net,
        "juliet@a.example",
        "benvolio@b.example",
        Both,
        Both,
    );
    relate(&mut net, "nurse@a.example", "romeo@b.example", Both, Both);
    relate(
        &mut net,
        "mercutio@a.example",
        "tybalt@b.example",
        Both,
        Both,
    );
    relate(
        &mut net,
        "nurse@a.example",
        "benvolio@b.example",
        NonePendingOut,
        NonePendingIn,
    );
    relate(&mut net, "juliet@a.example", "nurse@a.example", Both, Both);
    let (tybalt, mercutio) = (jid("tybalt@b.example"), jid("mercutio@a.example"));
    net.with_host(B, |s, _| s.block(&tybalt, &mercutio));
    net
}

/// The small world, connected.
pub fn world_of(a: Server, b: Server) -> Net<Server> {
    let mut net = world_unconnected(a, b);
    net.connect(A, B, LinkConfig::default());
    net
}

/// `user` logs in on resource `r`, then the network runs until quiet.
pub fn login(net: &mut Net<Server>, user: &str) {
    let u = jid(user);
    net.with_host(&domain_of(&u), |s, _| {
        s.login(&u, "r", ResourcePresence::default())
    });
    net.drive();
}

/// [`login`] for each of `users`.
pub fn login_all(net: &mut Net<Server>, users: &[&str]) {
    for u in users {
        login(net, u);
    }
}

/// What online users are shown that differs from what they are entitled to.
pub fn diff(net: &Net<Server>) -> Vec<String> {
    check_views(&[net.host(A), net.host(B)]).1
}

/// Panics with the differences if online users are not shown exactly what they are entitled
/// to.
pub fn assert_truth(net: &Net<Server>) {
    let d = diff(net);
    assert!(d.is_empty(), "views differ from the truth: {d:#?}");
}

/// Stanzas sent from `from` to `to` since the last reset.
pub fn sent(net: &Net<Server>, from: &str, to: &str) -> u64 {
    net.stats().direction(from, to).stanzas
}

/// Stanzas of `kind` sent from `from` to `to` since the last reset.
pub fn kind(net: &Net<Server>, from: &str, to: &str, kind: &str) -> u64 {
    net.stats().get(from, to, kind).stanzas
}

/// Stanzas each way (a→b, b→a) since the last reset; resets.
pub fn traffic(net: &mut Net<Server>) -> (u64, u64) {
    let t = (sent(net, A, B), sent(net, B, A));
    net.reset_stats();
    t
}

// ---- two servers running the extension (tests/sync.rs, tests/sync_verification.rs) ----

/// A server running the extension with every peer, however small (PS-93 off).
pub fn sync_server(domain: &str, flavour: Flavour, seed: u64) -> Server {
    Server::with_sync(domain, flavour, SyncSetup::every_peer(), seed)
}

/// The world between two servers running the extension (ejabberd-like, which adds no
/// quirks of its own), link up, nobody online.
pub fn world() -> Net<Server> {
    let ejabberd = Flavour::Ejabberd { multicast: false };
    let mut net = world_of(sync_server(A, ejabberd, 1), sync_server(B, ejabberd, 2));
    net.drive();
    net
}

/// The world with everybody online, synchronized, counters at zero.
pub fn online_world() -> Net<Server> {
    let mut net = world();
    login_all(&mut net, &A_USERS);
    login_all(&mut net, &B_USERS);
    assert_truth(&net);
    assert!(synchronized(&net));
    net.reset_stats();
    net
}

/// True if both sides' sessions have verified the edge set and their caches.
pub fn synchronized(net: &Net<Server>) -> bool {
    let ok = |d: &str, p: &str| net.host(d).session(p).is_some_and(|s| s.is_synchronized());
    ok(A, B) && ok(B, A)
}

/// Events of `domain`'s sessions since `from` (an index into its log).
pub fn events_since(net: &Net<Server>, domain: &str, from: usize) -> Vec<Event> {
    net.host(domain).sync_log()[from..]
        .iter()
        .map(|(_, _, e)| e.clone())
        .collect()
}

/// `domain`'s sync log, one line per event, for failure messages.
pub fn log(net: &Net<Server>, domain: &str) -> Vec<String> {
    net.host(domain)
        .sync_log()
        .iter()
        .map(|(t, p, e)| format!("{t} {p} {e:?}"))
        .collect()
}
