//! Two `presence-sync serve` processes (a.test and b.test, each on its own leased loopback
//! address) federating through relays the test controls, driven by real clients (tokio-xmpp):
//! the extension on a real wire.
//!
//! Every online client's view (the last presence it received from each contact resource) is
//! compared with the ground truth the test computes from the rosters the servers return and
//! from who it made online, after every step that needs the federation to converge.

mod net;
mod serve_support;

use net::client::subscribe_mutually;
use net::{Client, Direction, Result, TestDir};
use serve_support::{Federation, Person, WAIT, jid, views_match};
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_federate_with_the_extension() -> Result<()> {
    let dir = TestDir::new("serve-federation")?;
    let outcome = federate(&dir).await;
    dir.finish(outcome)
}

async fn federate(dir: &TestDir) -> Result<()> {
    let fed = Federation::start(dir).await?;
    let (juliet, romeo) = (jid("juliet@a.test"), jid("romeo@b.test"));
    let mut j = Person::new(fed.a.c2s(), &juliet, "jpass", "balcony").await?;
    let mut r = Person::new(fed.b.c2s(), &romeo, "rpass", "garden").await?;
    j.available(None)?;
    r.available(None)?;
    subscribe_mutually(&j.client, &r.client, WAIT).await?;
    views_match(&mut [&mut j, &mut r], WAIT).await?;

    // A presence change crosses the link once, as domain-level presence (XEP PS-45).
    let before = fed.ab.stats().count(Direction::Forward, "presence");
    j.available(Some(Show::Away))?;
    views_match(&mut [&mut j, &mut r], WAIT).await?;
    let after = fed.ab.stats().count(Direction::Forward, "presence");
    assert_eq!(after - before, 1, "one presence on the wire for one change");

    // Unavailable reaches the other side.
    r.unavailable()?;
    j.client
        .recorder()
        .wait_for_presence_since(&romeo, PresenceType::Unavailable, 0, WAIT)
        .await?;
    views_match(&mut [&mut j, &mut r], WAIT).await?;
    let _ = Client::register;
    Ok(())
}
