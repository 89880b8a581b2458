//! The XEP's restart and link-loss use cases on a real wire: two `presence-sync serve`
//! processes (a.test and b.test, SQLite databases in the test's directory) federating through
//! relays the test controls, with real clients (tokio-xmpp, SCRAM) on both sides.
//!
//! Each test crashes (SIGKILL), stops (SIGTERM) or restarts a server, or cuts the s2s link,
//! then checks every online client's view against the ground truth computed from the rosters
//! the servers return (`views_match`), and counts what crossed the wire. The accounts and
//! rosters a restarted server serves come from its database: nothing is provisioned twice.

mod net;
mod serve_support;

use std::time::Duration;

use net::client::subscribe_mutually;
use net::{Direction, Result, TestDir};
use serve_support::replica::{Replica, wire_kinds};
use serve_support::{Federation, Person, WAIT, jid, views_match};
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};

/// The people of a federation: two users of a.test, two of b.test.
struct People {
    juliet: Person,
    nurse: Person,
    romeo: Person,
    benvolio: Person,
}

const PASSWORD: &str = "secret";

fn users() -> [BareJid; 4] {
    [
        jid("juliet@a.test"),
        jid("nurse@a.test"),
        jid("romeo@b.test"),
        jid("benvolio@b.test"),
    ]
}

/// The pairs `populate` subscribes both ways.
fn pairs() -> Vec<(BareJid, BareJid)> {
    let [j, n, r, b] = users();
    vec![(j.clone(), r.clone()), (n, r), (j, b)]
}

/// `populate`'s end state in the simulator: everybody online, plainly available.
fn replica() -> Replica {
    let mut sim = Replica::new("a.test", "b.test", &users(), &pairs());
    for (u, res) in users()
        .iter()
        .zip(["balcony", "kitchen", "garden", "square"])
    {
        sim.login(u, res, None);
    }
    sim.net.reset_stats();
    sim
}

/// Asserts that the stanzas each server sent on the wire since the marks are, kind by kind,
/// what the simulator's servers sent for the same script.
fn wire_matches_simulator(fed: &Federation, marks: (usize, usize), sim: &Replica) {
    let wire = (
        wire_kinds(&fed.ab.stats(), marks.0),
        wire_kinds(&fed.ba.stats(), marks.1),
    );
    let predicted = (sim.kinds(true), sim.kinds(false));
    eprintln!("a.test → b.test on the wire: {:?}", wire.0);
    eprintln!("b.test → a.test on the wire: {:?}", wire.1);
    assert_eq!(wire.0, predicted.0, "a.test → b.test: wire vs simulator");
    assert_eq!(wire.1, predicted.1, "b.test → a.test: wire vs simulator");
}

impl People {
    fn all(&mut self) -> [&mut Person; 4] {
        [
            &mut self.juliet,
            &mut self.nurse,
            &mut self.romeo,
            &mut self.benvolio,
        ]
    }
}

/// Registers everybody, subscribes juliet and romeo, nurse and romeo, juliet and benvolio to
/// each other (both ways, RFC 6121 §3), and brings everybody online: the views match.
async fn populate(fed: &Federation) -> Result<People> {
    let [j, n, r, b] = users();
    let mut people = People {
        juliet: Person::new(fed.a.c2s(), &j, PASSWORD, "balcony").await?,
        nurse: Person::new(fed.a.c2s(), &n, PASSWORD, "kitchen").await?,
        romeo: Person::new(fed.b.c2s(), &r, PASSWORD, "garden").await?,
        benvolio: Person::new(fed.b.c2s(), &b, PASSWORD, "square").await?,
    };
    for p in people.all() {
        p.available(None)?;
    }
    subscribe_mutually(&people.juliet.client, &people.romeo.client, WAIT).await?;
    subscribe_mutually(&people.nurse.client, &people.romeo.client, WAIT).await?;
    subscribe_mutually(&people.juliet.client, &people.benvolio.client, WAIT).await?;
    views_match(&mut people.all(), WAIT).await?;
    Ok(people)
}

/// The person `user` logged in again on `addr` (after its server restarted) and available.
async fn relogin(
    addr: std::net::SocketAddr,
    user: &BareJid,
    resource: &str,
    show: Option<Show>,
) -> Result<Person> {
    let mut p = Person::login(addr, user, PASSWORD, resource).await?;
    p.available(show)?;
    Ok(p)
}

/// A person whose server died under it: offline, its session gone.
fn gone(p: &mut Person) {
    p.online = false;
}

/// Waits until `watcher` was told `user` went unavailable since `mark` (an index into its
/// recorder).
async fn sees_unavailable(watcher: &Person, user: &BareJid, mark: usize) -> Result<()> {
    watcher
        .client
        .recorder()
        .wait_for_presence_since(user, PresenceType::Unavailable, mark, WAIT)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_of_one_server_then_restart_and_relogin() -> Result<()> {
    let dir = TestDir::new("serve-crash")?;
    let outcome = crash(&dir).await;
    dir.finish(outcome)
}

async fn crash(dir: &TestDir) -> Result<()> {
    let mut fed = Federation::start(dir).await?;
    let mut people = populate(&fed).await?;
    let [_, _, r, b] = users();
    let mark = people.juliet.client.recorder().len();
    let nurse_mark = people.nurse.client.recorder().len();
    let marks = (fed.ab.stats().captured.len(), fed.ba.stats().captured.len());
    fed.b.serve.kill()?;
    gone(&mut people.romeo);
    gone(&mut people.benvolio);
    fed.b.serve.restart(WAIT).await?;
    // XEP §Epochs: the new epoch in b.test's hello voids what a.test kept of b.test's
    // presence; a.test tells its users (RFC 6121 §4.5.2 unavailable, fanned out locally).
    sees_unavailable(&people.juliet, &r, mark).await?;
    sees_unavailable(&people.juliet, &b, mark).await?;
    sees_unavailable(&people.nurse, &r, nurse_mark).await?;
    views_match(&mut people.all(), WAIT).await?;
    // romeo comes back from the database (account, roster); benvolio stays away.
    people.romeo = relogin(fed.b.c2s(), &r, "garden", Some(Show::Chat)).await?;
    views_match(&mut people.all(), WAIT).await?;
    let roster = people.romeo.client.roster().await?;
    assert_eq!(
        roster.len(),
        2,
        "romeo's roster survived the crash: {roster:?}"
    );
    let mut sim = replica();
    sim.net.crash("b.test");
    sim.net.restart("b.test");
    sim.net.drive();
    sim.login(&r, "garden", Some(Show::Chat));
    wire_matches_simulator(&fed, marks, &sim);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_is_announced_then_restart_and_relogin() -> Result<()> {
    let dir = TestDir::new("serve-graceful")?;
    let outcome = graceful(&dir).await;
    dir.finish(outcome)
}

async fn graceful(dir: &TestDir) -> Result<()> {
    let mut fed = Federation::start(dir).await?;
    let mut people = populate(&fed).await?;
    let [_, _, r, b] = users();
    let mark = people.juliet.client.recorder().len();
    let marks = (fed.ab.stats().captured.len(), fed.ba.stats().captured.len());
    let (_, killed) = fed.b.serve.stop()?;
    assert!(!killed, "b.test stopped on SIGTERM by itself");
    gone(&mut people.romeo);
    gone(&mut people.benvolio);
    // XEP §Graceful Shutdown: b.test announced it before closing; a.test's users see b.test's
    // users leave while b.test is still down.
    sees_unavailable(&people.juliet, &r, mark).await?;
    sees_unavailable(&people.juliet, &b, mark).await?;
    views_match(&mut people.all(), WAIT).await?;
    let announced = fed.ba.stats().captured.iter().any(|c| {
        let (dir, e) = (c.dir, &c.element);
        dir == Direction::Forward
            && e.name() == "message"
            && e.has_child("shutdown", "urn:xmpp:presence-sync:0")
    });
    assert!(announced, "the announcement crossed the wire");
    fed.b.serve.restart(WAIT).await?;
    people.romeo = relogin(fed.b.c2s(), &r, "garden", None).await?;
    people.benvolio = relogin(fed.b.c2s(), &b, "square", Some(Show::Away)).await?;
    views_match(&mut people.all(), WAIT).await?;
    let mut sim = replica();
    sim.net.shutdown("b.test");
    sim.net.drive();
    sim.net.restart("b.test");
    sim.net.drive();
    sim.login(&r, "garden", None);
    sim.login(&b, "square", Some(Show::Away));
    wire_matches_simulator(&fed, marks, &sim);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_crash_and_restart() -> Result<()> {
    let dir = TestDir::new("serve-both")?;
    let outcome = both(&dir).await;
    dir.finish(outcome)
}

async fn both(dir: &TestDir) -> Result<()> {
    let mut fed = Federation::start(dir).await?;
    let mut people = populate(&fed).await?;
    let [j, n, r, b] = users();
    let marks = (fed.ab.stats().captured.len(), fed.ba.stats().captured.len());
    fed.a.serve.kill()?;
    fed.b.serve.kill()?;
    for p in people.all() {
        gone(p);
    }
    fed.a.serve.restart(WAIT).await?;
    fed.b.serve.restart(WAIT).await?;
    people.juliet = relogin(fed.a.c2s(), &j, "balcony", None).await?;
    people.romeo = relogin(fed.b.c2s(), &r, "garden", None).await?;
    if let Err(e) = views_match(&mut people.all(), WAIT).await {
        return Err(format!("{e}\n{}", fed.wire()).into());
    }
    people.nurse = relogin(fed.a.c2s(), &n, "kitchen", Some(Show::Dnd)).await?;
    people.benvolio = relogin(fed.b.c2s(), &b, "square", None).await?;
    views_match(&mut people.all(), WAIT).await?;
    let mut sim = replica();
    sim.net.crash("a.test");
    sim.net.crash("b.test");
    sim.net.restart("a.test");
    sim.net.restart("b.test");
    sim.net.drive();
    sim.login(&j, "balcony", None);
    sim.login(&r, "garden", None);
    sim.login(&n, "kitchen", Some(Show::Dnd));
    sim.login(&b, "square", None);
    wire_matches_simulator(&fed, marks, &sim);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_cut_with_changes_on_both_sides() -> Result<()> {
    let dir = TestDir::new("serve-cut")?;
    let outcome = cut(&dir).await;
    dir.finish(outcome)
}

async fn cut(dir: &TestDir) -> Result<()> {
    let fed = Federation::start(dir).await?;
    let mut people = populate(&fed).await?;
    fed.ab.set_refusing(true);
    fed.ba.set_refusing(true);
    fed.ab.cut().await;
    fed.ba.cut().await;
    let marks = (fed.ab.stats().captured.len(), fed.ba.stats().captured.len());
    // d = 3 presence changes while the link is down: two on a.test, one on b.test.
    people.juliet.available(Some(Show::Away))?;
    people.nurse.unavailable()?;
    people.romeo.available(Some(Show::Xa))?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = (fed.ab.stats(), fed.ba.stats());
    // The same script in the simulator.
    let [j, n, r, _] = users();
    let mut sim = replica();
    sim.net.partition("a.test", "b.test");
    sim.set(&j, "balcony", Some(Show::Away));
    sim.logout(&n, "kitchen");
    sim.set(&r, "garden", Some(Show::Xa));
    sim.net.repair("a.test", "b.test");
    sim.net.drive();
    fed.ab.set_refusing(false);
    fed.ba.set_refusing(false);
    // XEP §Link Loss: the hello exchange finds the presence digests differ and the descent
    // brings the three changes; nothing stale remains (RFC 6121 would keep romeo's old show
    // at a.test and juliet's at b.test).
    views_match(&mut people.all(), WAIT).await?;
    let after = (fed.ab.stats(), fed.ba.stats());
    let stanzas = |s: &net::RelayStats| s.stanzas(Direction::Forward);
    let moved = stanzas(&after.0) - stanzas(&before.0) + stanzas(&after.1) - stanzas(&before.1);
    assert!(moved > 0, "the resync crossed the relays");
    wire_matches_simulator(&fed, marks, &sim);
    Ok(())
}
