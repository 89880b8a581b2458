//! Stream-level errors of `presence-sync serve` on a real wire: two servers (a.test and
//! b.test) federating through relays the test controls, real clients (tokio-xmpp) on both.
//!
//! - A second login with the same full JID (RFC 6120 §7.7.2.2, "the new session wins"): the
//!   old connection gets the `<conflict/>` stream error and is closed (§4.9.3.3), the new one
//!   stays bound and exchanges presence and messages with a contact of the other domain.

mod net;
mod serve_support;

use std::time::Instant;

use minidom::Element;
use net::client::subscribe_mutually;
use net::{Received, Result, TestDir};
use presence_sync::serve::xml::{STREAM_ERRORS, STREAMS};
use serve_support::{Federation, Person, WAIT, jid, views_match};
use tokio_xmpp::parsers::presence::Show;

const PASSWORD: &str = "secret";

/// True if `el` is a stream error with `condition` (RFC 6120 §4.9).
fn stream_error_is(el: &Element, condition: &str) -> bool {
    el.is("error", STREAMS) && el.has_child(condition, STREAM_ERRORS)
}

/// juliet@a.test and romeo@b.test, subscribed to each other and available, their views right.
async fn lovers(fed: &Federation) -> Result<(Person, Person)> {
    let (j, r) = (jid("juliet@a.test"), jid("romeo@b.test"));
    let mut juliet = Person::new(fed.a.c2s(), &j, PASSWORD, "balcony").await?;
    let mut romeo = Person::new(fed.b.c2s(), &r, PASSWORD, "garden").await?;
    juliet.available(None)?;
    romeo.available(None)?;
    subscribe_mutually(&juliet.client, &romeo.client, WAIT).await?;
    views_match(&mut [&mut juliet, &mut romeo], WAIT).await?;
    Ok((juliet, romeo))
}

/// A chat message to `to` with `body`, in `jabber:client`.
fn message(to: &str, body: &str) -> Element {
    format!("<message xmlns='jabber:client' to='{to}' type='chat'><body>{body}</body></message>")
        .parse()
        .expect("a message literal")
}

/// Whether `log` holds a message whose body is `body`.
fn has_message(log: &[(Instant, Received)], body: &str) -> bool {
    log.iter().any(|(_, r)| {
        matches!(r, Received::Other(el)
            if el.name() == "message"
                && el.get_child("body", el.ns().as_str()).is_some_and(|b| b.text() == body))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_with_the_same_resource_replaces_the_first() -> Result<()> {
    let dir = TestDir::new("serve-conflict")?;
    let outcome = conflict(&dir).await;
    dir.finish(outcome)
}

async fn conflict(dir: &TestDir) -> Result<()> {
    let fed = Federation::start(dir).await?;
    let (mut old, mut romeo) = lovers(&fed).await?;
    let j = old.bare();

    // The same full JID logs in again on a second connection.
    let mut juliet = Person::login(fed.a.c2s(), &j, PASSWORD, "balcony").await?;
    assert_eq!(juliet.client.jid(), old.client.jid(), "the same full JID");
    // RFC 6120 §7.7.2.2, §4.9.3.3: the old connection gets <conflict/> and is closed.
    old.client
        .recorder()
        .wait_until("<conflict/> then the end of the stream", WAIT, |log| {
            let error = log.iter().position(
                |(_, r)| matches!(r, Received::Other(el) if stream_error_is(el, "conflict")),
            );
            error.is_some_and(|i| {
                log[i..]
                    .iter()
                    .any(|(_, r)| matches!(r, Received::Disconnected(_)))
            })
        })
        .await?;
    old.online = false;

    // The new session is bound and works: it goes available, romeo sees it, it sees romeo.
    juliet.available(None)?;
    views_match(&mut [&mut juliet, &mut romeo], WAIT).await?;
    // A message from romeo reaches it.
    romeo
        .client
        .send(message(&juliet.client.jid().to_string(), "wherefore"))?;
    juliet
        .client
        .recorder()
        .wait_until("romeo's message", WAIT, |log| has_message(log, "wherefore"))
        .await?;
    // Presence both ways, after the old connection's end was long processed.
    romeo.available(Some(Show::Away))?;
    juliet.available(Some(Show::Dnd))?;
    views_match(&mut [&mut juliet, &mut romeo], WAIT).await?;
    // Its roster still answers: the server kept the session.
    juliet.client.roster().await?;
    let gone = juliet
        .client
        .recorder()
        .snapshot()
        .into_iter()
        .find(|(_, r)| matches!(r, Received::Disconnected(_)));
    assert!(gone.is_none(), "the new session was dropped: {gone:?}");
    Ok(())
}
