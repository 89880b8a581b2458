//! Two unmodified Prosody 0.12 servers federating on loopback, driven by real clients: the
//! proof that the network test infrastructure (`tests/net/`) works, and the legacy baseline
//! (RFC 6121 over XEP-0220 dialback) the `presence-sync serve` tests will run beside.
//!
//! a.test and b.test each run as their own process on their own leased 127.0.0.x address;
//! each reaches the other through a relay the test controls (one per direction, since each
//! server opens its own outgoing connection), mapped in its hosts file. juliet@a.test and
//! romeo@b.test register in band, subscribe to each other through the RFC 6121 §3.1 flows,
//! and see each other's presence; the relays then cut the link and the servers reconnect
//! through them; finally romeo logs out and juliet sees him unavailable.

mod net;

use std::time::{Duration, Instant};

use net::client::subscribe_mutually;
use net::{Client, Direction, Prosody, Received, Relay, Result, TestDir, lease};
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::Subscription;

/// The bound of every wait for something to cross the federation.
const WAIT: Duration = Duration::from_secs(15);

fn jid(s: &str) -> BareJid {
    // The literals below are valid bare JIDs.
    BareJid::new(s).expect("valid JID literal")
}

/// Whether the roster has `contact` with `subscription` and no pending request.
fn has(roster: &[tokio_xmpp::parsers::roster::Item], contact: &BareJid, sub: Subscription) -> bool {
    roster
        .iter()
        .any(|i| i.jid == *contact && i.subscription == sub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_prosody_servers_federate_through_relays() -> Result<()> {
    let dir = TestDir::new("prosody-federation")?;
    let outcome = federate(&dir).await;
    dir.finish(outcome)
}

async fn federate(dir: &TestDir) -> Result<()> {
    let started = Instant::now();
    let (a_addr, b_addr) = (lease()?, lease()?);
    let (ab_addr, ba_addr) = (lease()?, lease()?);

    // a.test → b.test goes through relay ab, b.test → a.test through relay ba.
    let ab = Relay::new(ab_addr.s2s(), b_addr.s2s()).await?;
    let ba = Relay::new(ba_addr.s2s(), a_addr.s2s()).await?;
    let mut a = Prosody::builder("a.test", &a_addr)
        .resolve("b.test", ab_addr.ip())
        .start(dir)
        .await?;
    let mut b = Prosody::builder("b.test", &b_addr)
        .resolve("a.test", ba_addr.ip())
        .start(dir)
        .await?;
    let servers_up = started.elapsed();

    let (juliet, romeo) = (jid("juliet@a.test"), jid("romeo@b.test"));
    Client::register(a.c2s(), &juliet, "jpass").await?;
    Client::register(b.c2s(), &romeo, "rpass").await?;
    let mut j = Client::login(a.c2s(), &juliet, "jpass", "balcony").await?;
    let mut r = Client::login(b.c2s(), &romeo, "rpass", "garden").await?;
    assert!(
        j.roster().await?.is_empty(),
        "a fresh account has an empty roster"
    );
    j.available(None)?;
    r.available(None)?;

    // RFC 6121 §3.1: juliet asks, romeo approves; then the other way round.
    subscribe_mutually(&j, &r, WAIT).await?;
    let federated = started.elapsed();

    // Both rosters say both (§3.1.6), as the servers store them.
    let jr = j.roster().await?;
    let rr = r.roster().await?;
    assert!(
        has(&jr, &romeo, Subscription::Both),
        "juliet's roster: {jr:?}"
    );
    assert!(
        has(&rr, &juliet, Subscription::Both),
        "romeo's roster: {rr:?}"
    );

    // Every s2s byte went through the relays: one connection each way, dialback on each.
    let (s_ab, s_ba) = (ab.stats(), ba.stats());
    for (name, s) in [("a->b", &s_ab), ("b->a", &s_ba)] {
        assert!(s.errors.is_empty(), "{name}: {:?}", s.errors);
        assert_eq!(s.connections, 1, "{name}: connections");
        assert_eq!(s.count(Direction::Forward, "db:result"), 1, "{name}: {s:?}");
        assert!(
            s.count(Direction::Forward, "presence") >= 2,
            "{name}: {s:?}"
        );
    }

    // Cut both links. The next presence change makes a.test reconnect through the relay,
    // authenticate again by dialback, and deliver it.
    ab.cut().await;
    ba.cut().await;
    let before = r.recorder().len();
    j.available(Some(Show::Away))?;
    r.recorder()
        .wait_until(
            "romeo sees juliet away after the link was cut",
            WAIT,
            |log| {
                log.iter().skip(before).any(|(_, x)| {
                    matches!(x, Received::Presence(p)
                    if p.show == Some(Show::Away)
                        && p.from.as_ref().is_some_and(|f| f.to_bare() == juliet))
                })
            },
        )
        .await?;
    let s_ab = ab.stats();
    assert_eq!(s_ab.cut, 1, "the one a->b connection was cut");
    assert_eq!(s_ab.connections, 2, "a.test reconnected through the relay");
    assert_eq!(
        s_ab.count(Direction::Forward, "db:result"),
        2,
        "dialback again"
    );
    let relinked = started.elapsed();

    // romeo logs out: juliet sees him unavailable (RFC 6121 §4.5.2).
    r.close().await?;
    j.recorder().wait_for_presence(&romeo, false, WAIT).await?;
    let offline = started.elapsed();
    j.close().await?;

    // Both servers stop on SIGTERM to their PIDs, within the grace period.
    for server in [&mut a, &mut b] {
        let (status, killed) = server.stop()?;
        assert!(!killed, "{} needed SIGKILL", server.domain());
        assert!(status.success(), "{} exited with {status}", server.domain());
    }

    let (s_ab, s_ba) = (ab.stats(), ba.stats());
    eprintln!(
        "prosody federation: servers up {servers_up:?}, subscribed both ways {federated:?}, \
         relinked {relinked:?}, offline seen {offline:?}, total {:?}",
        started.elapsed()
    );
    for (name, s) in [("a->b", &s_ab), ("b->a", &s_ba)] {
        eprintln!(
            "relay {name}: {} connections, forward {} bytes {:?}, backward {} bytes {:?}",
            s.connections,
            s.bytes(Direction::Forward),
            s.counts(Direction::Forward),
            s.bytes(Direction::Backward),
            s.counts(Direction::Backward),
        );
    }
    Ok(())
}

/// The client's helpers against one Prosody: roster set and remove with their pushes,
/// XEP-0191 blocking and what it does to presence, and the cancelling flows of RFC 6121 §3.2
/// and §3.3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_helpers_against_one_prosody() -> Result<()> {
    let dir = TestDir::new("prosody-client")?;
    let outcome = helpers(&dir).await;
    dir.finish(outcome)
}

async fn helpers(dir: &TestDir) -> Result<()> {
    let addr = lease()?;
    let _server = Prosody::builder("a.test", &addr).start(dir).await?;
    let (alice, bob) = (jid("alice@a.test"), jid("bob@a.test"));
    Client::register(addr.c2s(), &alice, "apass").await?;
    Client::register(addr.c2s(), &bob, "bpass").await?;
    let refused = Client::register(addr.c2s(), &alice, "again").await;
    assert!(
        refused.is_err(),
        "a second registration of alice is refused"
    );
    let wrong = Client::login(addr.c2s(), &alice, "wrong", "r").await;
    assert!(wrong.is_err(), "a wrong password is refused");
    let mut a = Client::login(addr.c2s(), &alice, "apass", "r").await?;
    let mut b = Client::login(addr.c2s(), &bob, "bpass", "r").await?;
    assert_eq!(a.jid().to_string(), "alice@a.test/r");
    // Requesting the roster makes a resource interested: only those get pushes (§2.1.6).
    assert!(a.roster().await?.is_empty());
    assert!(b.roster().await?.is_empty());
    a.available(None)?;
    b.available(None)?;

    // Roster set: the item is stored and pushed (RFC 6121 §2.1.5, §2.1.6).
    a.roster_set(&bob, Some("Bob")).await?;
    let roster = a.roster().await?;
    assert!(
        roster
            .iter()
            .any(|i| i.jid == bob && i.name.as_deref() == Some("Bob")),
        "{roster:?}"
    );
    a.recorder()
        .wait_until("the roster push of bob", WAIT, |log| {
            log.iter()
                .any(|(_, x)| matches!(x, Received::RosterPush(items) if items.iter().any(|i| i.jid == bob)))
        })
        .await?;

    subscribe_mutually(&a, &b, WAIT).await?;

    // XEP-0191: blocking bob sends him alice's unavailable presence (§3.3); unblocking him
    // by name sends her presence again (§3.4; Prosody 0.12 does it by probing on bob's behalf,
    // and only for the JIDs named: an unblock-all sends no presence).
    let seen = b.recorder().len();
    a.block(&[bob.clone().into()]).await?;
    assert_eq!(
        a.blocklist().await?,
        vec![tokio_xmpp::jid::Jid::from(bob.clone())]
    );
    b.recorder()
        .wait_for_presence_since(&alice, PresenceType::Unavailable, seen, WAIT)
        .await?;
    let seen = b.recorder().len();
    a.unblock(&[bob.clone().into()]).await?;
    assert!(a.blocklist().await?.is_empty());
    b.recorder()
        .wait_for_presence_since(&alice, PresenceType::None, seen, WAIT)
        .await?;

    // bob cancels alice's subscription to him (§3.2): she sees him unavailable, and both
    // rosters lose that direction.
    let seen = a.recorder().len();
    b.unsubscribed(&alice)?;
    a.recorder()
        .wait_for_presence_since(&bob, PresenceType::Unavailable, seen, WAIT)
        .await?;
    assert!(has(&a.roster().await?, &bob, Subscription::From));
    assert!(has(&b.roster().await?, &alice, Subscription::To));
    // bob unsubscribes from alice (§3.3): nothing is left either way.
    b.unsubscribe(&alice)?;
    let mut none = false;
    for _ in 0..100 {
        none = has(&a.roster().await?, &bob, Subscription::None)
            && has(&b.roster().await?, &alice, Subscription::None);
        if none {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(none, "both rosters end at subscription none");

    // Roster remove (§2.5).
    a.roster_remove(&bob).await?;
    assert!(a.roster().await?.iter().all(|i| i.jid != bob));
    a.close().await?;
    b.close().await?;
    Ok(())
}
