//! Interop with an unmodified Prosody 0.12 (Debian's package): `presence-sync serve` for
//! a.test, Prosody for b.test, each reaching the other through a relay the test controls, real
//! clients on both. Prosody does not advertise the extension, so our server must behave as
//! plain RFC 6121 with it (XEP §Negotiation: no hello to a peer without the stream feature).
//!
//! After each restart every online client's view is checked against the ground truth from
//! the rosters. Where RFC 6121 itself leaves stale presence (a crashed server never said its
//! users left), the test names the stale entries and checks exactly those remain: they are
//! the cost of the legacy protocol, not a fault of either server.

mod net;
mod serve_support;

use net::client::subscribe_mutually;
use net::{Direction, Prosody, Relay, Result, TestDir, lease};
use serve_support::{Person, Stale, WAIT, bin, config, jid, views_match, views_match_with};
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::presence::Show;

use net::serve::Serve;

const NS: &str = "urn:xmpp:presence-sync:0";
const PASSWORD: &str = "secret";

/// Ours (a.test), Prosody (b.test), the relays between them.
struct Mixed {
    ours: Serve,
    ours_c2s: std::net::SocketAddr,
    prosody: Prosody,
    /// a.test → b.test (our outgoing stream).
    ab: Relay,
    /// b.test → a.test (Prosody's outgoing stream).
    ba: Relay,
    _leases: Vec<net::Lease>,
}

async fn start(dir: &TestDir) -> Result<Mixed> {
    let (a, b, ab_lease, ba_lease) = (lease()?, lease()?, lease()?, lease()?);
    let ab = Relay::new(ab_lease.s2s(), b.s2s()).await?;
    let ba = Relay::new(ba_lease.s2s(), a.s2s()).await?;
    let toml = config("a.test", &a, "b.test", ab_lease.s2s(), "");
    let ours = Serve::start(bin(), "a.test", dir, &toml, &[a.c2s(), a.s2s()], WAIT).await?;
    let prosody = Prosody::builder("b.test", &b)
        .resolve("a.test", ba_lease.ip())
        .start(dir)
        .await?;
    Ok(Mixed {
        ours,
        ours_c2s: a.c2s(),
        prosody,
        ab,
        ba,
        _leases: vec![a, b, ab_lease, ba_lease],
    })
}

struct People {
    juliet: Person,
    nurse: Person,
    romeo: Person,
    benvolio: Person,
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

fn users() -> [BareJid; 4] {
    [
        jid("juliet@a.test"),
        jid("nurse@a.test"),
        jid("romeo@b.test"),
        jid("benvolio@b.test"),
    ]
}

/// Everybody registered (in band, on both servers), juliet–romeo, nurse–romeo and
/// juliet–benvolio subscribed both ways, everybody online: the views match.
async fn populate(m: &Mixed) -> Result<People> {
    let [j, n, r, b] = users();
    let mut people = People {
        juliet: Person::new(m.ours_c2s, &j, PASSWORD, "balcony").await?,
        nurse: Person::new(m.ours_c2s, &n, PASSWORD, "kitchen").await?,
        romeo: Person::new(m.prosody.c2s(), &r, PASSWORD, "garden").await?,
        benvolio: Person::new(m.prosody.c2s(), &b, PASSWORD, "square").await?,
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

/// No stanza of the extension crossed either relay, in either direction (our stream features
/// still offer it, XEP §Stream Feature; Prosody ignores them).
fn no_extension(m: &Mixed) {
    for (name, relay) in [("ours → Prosody", &m.ab), ("Prosody → ours", &m.ba)] {
        let stats = relay.stats();
        let ours: Vec<String> = stats
            .captured
            .iter()
            .map(|c| &c.element)
            .filter(|e| ["presence", "message", "iq"].contains(&e.name()))
            .filter(|e| {
                e.has_ns(NS)
                    || e.children().any(|c| c.has_ns(NS))
                    || e.children().any(|c| c.children().any(|g| g.has_ns(NS)))
            })
            .map(String::from)
            .collect();
        assert!(ours.is_empty(), "{name}: extension stanzas {ours:?}");
        let offered = stats.captured.iter().any(|c| {
            let (dir, e) = (c.dir, &c.element);
            dir == Direction::Backward && e.name() == "features" && e.has_child("presence-sync", NS)
        });
        if name.starts_with("Prosody") {
            assert!(
                offered,
                "our stream features offer the extension to Prosody"
            );
        }
    }
}

async fn relogin(addr: std::net::SocketAddr, user: &BareJid, resource: &str) -> Result<Person> {
    let mut p = Person::login(addr, user, PASSWORD, resource).await?;
    p.available(None)?;
    Ok(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ours_and_prosody_federate_with_plain_rfc6121() -> Result<()> {
    let dir = TestDir::new("serve-prosody")?;
    let outcome = federate(&dir).await;
    dir.finish(outcome)
}

async fn federate(dir: &TestDir) -> Result<()> {
    let m = start(dir).await?;
    let mut people = populate(&m).await?;
    // A presence change: RFC 6121 sends it once per subscriber (nurse and juliet both follow
    // romeo: two presences on Prosody's stream, where the extension would send one).
    let before = m.ba.stats().count(Direction::Forward, "presence");
    people.romeo.available(Some(Show::Away))?;
    views_match(&mut people.all(), WAIT).await?;
    let after = m.ba.stats().count(Direction::Forward, "presence");
    assert_eq!(after - before, 2, "one presence per remote subscriber");
    // Ours sends one per subscriber too, with Prosody.
    let before = m.ab.stats().count(Direction::Forward, "presence");
    people.juliet.available(Some(Show::Dnd))?;
    views_match(&mut people.all(), WAIT).await?;
    let after = m.ab.stats().count(Direction::Forward, "presence");
    assert_eq!(after - before, 2, "juliet has two subscribers at b.test");
    no_extension(&m);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_of_ours_and_of_prosody() -> Result<()> {
    let dir = TestDir::new("serve-prosody-restarts")?;
    let outcome = restarts(&dir).await;
    dir.finish(outcome)
}

async fn restarts(dir: &TestDir) -> Result<()> {
    let mut m = start(dir).await?;
    let mut people = populate(&m).await?;
    let [j, n, r, b] = users();

    // 1. Ours stops gracefully: as Prosody does, it sends unavailable for its users to the
    //    legacy peer; nothing stale at b.test. juliet comes back, nurse does not.
    let (_, killed) = m.ours.stop()?;
    assert!(!killed, "stopped on SIGTERM by itself");
    people.juliet.online = false;
    people.nurse.online = false;
    views_match(&mut people.all(), WAIT).await?;
    m.ours.restart(WAIT).await?;
    people.juliet = relogin(m.ours_c2s, &j, "balcony").await?;
    views_match(&mut people.all(), WAIT).await?;

    // 2. Ours crashes (SIGKILL) and comes back with juliet only: RFC 6121 has no way to say
    //    nurse is gone, so romeo keeps seeing her (stale, expected, counted).
    people.nurse = relogin(m.ours_c2s, &n, "kitchen").await?;
    views_match(&mut people.all(), WAIT).await?;
    m.ours.kill()?;
    people.juliet.online = false;
    people.nurse.online = false;
    m.ours.restart(WAIT).await?;
    people.juliet = relogin(m.ours_c2s, &j, "balcony").await?;
    let stale: Vec<Stale> = vec![(r.clone(), n.clone(), "kitchen".into(), None)];
    views_match_with(&mut people.all(), &stale, WAIT).await?;

    // 3. Prosody stops gracefully and comes back with romeo only: its shutdown sends
    //    unavailable for its users; romeo's new session probes juliet and nurse (nurse
    //    answers nothing: she is offline at our side, and her stale presence at b.test went
    //    with Prosody's restart).
    m.prosody.stop()?;
    people.romeo.online = false;
    people.benvolio.online = false;
    views_match(&mut people.all(), WAIT).await?;
    m.prosody.restart().await?;
    people.romeo = relogin(m.prosody.c2s(), &r, "garden").await?;
    views_match(&mut people.all(), WAIT).await?;

    // 4. Prosody crashes with benvolio back online: our users keep romeo's presence (RFC 6121
    //    leaves it stale, expected, counted); benvolio, back after the restart, is right.
    people.benvolio = relogin(m.prosody.c2s(), &b, "square").await?;
    views_match(&mut people.all(), WAIT).await?;
    m.prosody.kill()?;
    people.romeo.online = false;
    people.benvolio.online = false;
    m.prosody.restart().await?;
    people.benvolio = relogin(m.prosody.c2s(), &b, "square").await?;
    let stale: Vec<Stale> = vec![(j.clone(), r.clone(), "garden".into(), None)];
    views_match_with(&mut people.all(), &stale, WAIT).await?;
    no_extension(&m);
    Ok(())
}
