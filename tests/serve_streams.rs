//! Stream-level errors of `presence-sync serve` on a real wire: two servers (a.test and
//! b.test) federating through relays the test controls, real clients (tokio-xmpp) on both,
//! and, for s2s, a raw stream the test plays itself.
//!
//! - A second login with the same full JID (RFC 6120 §7.7.2.2, "the new session wins"): the
//!   old connection gets the `<conflict/>` stream error and is closed (§4.9.3.3), the new one
//!   stays bound and exchanges presence and messages with a contact of the other domain.
//! - A stanza whose `from` is not of the domain authenticated on the incoming stream that
//!   carried it (RFC 6120 §4.9.3.9, XEP PS-71): `<invalid-from/>` on that same stream, which
//!   is then closed; nothing of the stanza is delivered, and the federation recovers.

mod net;
mod serve_support;

use std::time::{Duration, Instant};

use minidom::Element;
use net::client::subscribe_mutually;
use net::{Direction, Received, Result, TestDir};
use presence_sync::serve::conn::{ConnError, Reader};
use presence_sync::serve::dialback::{Dialback, key};
use presence_sync::serve::xml::{self, SERVER, STREAM_ERRORS, STREAMS};
use presence_sync::stream::{StreamEvent, StreamLimits};
use serve_support::{Federation, Person, WAIT, jid, views_match};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_xmpp::parsers::presence::Show;

const PASSWORD: &str = "secret";

/// The dialback secret both servers are configured with (XEP-0185), so that the test can make
/// the key b.test's authoritative server confirms.
const SECRET: &str = "serve-streams dialback secret";

/// How long the test waits for one answer on its raw stream.
const ANSWER: Duration = Duration::from_secs(10);

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

/// An s2s stream the test opened to a.test as b.test.
struct Raw {
    reader: Reader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Raw {
    /// Opens a stream to a.test as b.test and authenticates it by dialback: a.test asks b.test
    /// (the real server, over a.test's own stream to it) to confirm the key.
    async fn authenticated(fed: &Federation) -> Result<Raw> {
        let tcp = tokio::time::timeout(ANSWER, TcpStream::connect(fed.a_lease.s2s()))
            .await
            .map_err(|_| "connect to a.test: timeout")??;
        let (r, writer) = tcp.into_split();
        let limits = StreamLimits {
            max_stanza_bytes: 1 << 20,
            max_depth: 64,
            max_header_bytes: 4096,
        };
        let mut raw = Raw {
            reader: Reader::new(r, limits),
            writer,
        };
        raw.send(&xml::header(SERVER, Some("b.test"), Some("a.test"), None))
            .await?;
        let header = raw.next("a.test's stream header", ANSWER).await?;
        let id = header
            .attr("id")
            .ok_or("a.test's header has no id")?
            .to_owned();
        let features = raw.next("a.test's stream features", ANSWER).await?;
        assert!(features.is("features", STREAMS), "features: {features:?}");
        let request = Dialback::Result {
            from: "b.test".into(),
            to: "a.test".into(),
            key: Some(key(SECRET.as_bytes(), "a.test", "b.test", &id)),
            verdict: None,
        };
        raw.send(&String::from(&request.to_element())).await?;
        // a.test asks b.test over its own stream; bounded by a.test's answer.
        let verdict = raw.next("a.test's dialback verdict", WAIT).await?;
        match Dialback::parse(&verdict) {
            Some(Dialback::Result {
                verdict: Some(v), ..
            }) if v == "valid" => Ok(raw),
            _ => Err(format!("dialback as b.test refused: {}", String::from(&verdict)).into()),
        }
    }

    /// The next header or stanza, at most `timeout`.
    async fn next(&mut self, what: &str, timeout: Duration) -> Result<Element> {
        self.reader
            .expect(timeout)
            .await
            .map_err(|e| format!("{what}: {e}").into())
    }

    async fn send(&mut self, text: &str) -> Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// What a.test sends on this stream until it closes it, at most `ANSWER`: the stanzas,
    /// and whether the stream ended (`</stream:stream>` or the end of the connection).
    async fn until_closed(&mut self) -> (Vec<Element>, bool) {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + ANSWER;
        loop {
            match tokio::time::timeout_at(deadline, self.reader.next()).await {
                Err(_) => return (got, false),
                Ok(Ok(StreamEvent::Stanza(s))) => got.push(s),
                Ok(Ok(StreamEvent::Header(_))) => {}
                Ok(Ok(StreamEvent::End) | Err(ConnError::Io(_) | ConnError::Closed)) => {
                    return (got, true);
                }
                // Past the reader's bounds: ended for this test's purpose, and said.
                Ok(Err(e)) => {
                    eprintln!("the raw stream failed: {e}");
                    return (got, true);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_from_closes_the_incoming_stream_it_arrived_on() -> Result<()> {
    let dir = TestDir::new("serve-invalid-from")?;
    let outcome = invalid_from(&dir).await;
    dir.finish(outcome)
}

async fn invalid_from(dir: &TestDir) -> Result<()> {
    let fed = Federation::start_with(dir, &format!("dialback-secret = '{SECRET}'")).await?;
    let (mut juliet, mut romeo) = lovers(&fed).await?;
    let to = juliet.client.jid().to_string();
    // Stanzas from outside b.test on a stream authenticated for b.test: a presence (for the
    // model server), and a message for juliet (which the core would hand to her client).
    let spoofs = [
        format!("<presence xmlns='jabber:server' from='mallory@c.invalid/x' to='{to}'/>"),
        format!(
            "<message xmlns='jabber:server' from='mallory@c.invalid/x' to='{to}' type='chat'>\
             <body>spoofed</body></message>"
        ),
    ];
    for spoof in &spoofs {
        let mut raw = Raw::authenticated(&fed).await?;
        let mark = fed.ab.stats().captured.len();
        raw.send(spoof).await?;
        let (got, closed) = raw.until_closed().await;
        let shown: Vec<String> = got.iter().map(String::from).collect();
        assert!(
            got.iter().any(|e| stream_error_is(e, "invalid-from")),
            "no <invalid-from/> on the stream that carried {spoof}; it got {shown:?}\n{}",
            fed.wire()
        );
        assert!(
            closed,
            "the stream stayed open after <invalid-from/>: {shown:?}"
        );
        // Not on a.test's own stream to b.test, which did nothing wrong.
        let elsewhere: Vec<String> = fed.ab.stats().captured[mark..]
            .iter()
            .filter(|c| c.dir == Direction::Forward && xml::is_stream_error(&c.element))
            .map(|c| String::from(&c.element))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "a stream error on a.test's outgoing stream: {elsewhere:?}"
        );
    }
    // Nothing of the spoofed stanzas reached juliet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen: Vec<String> = juliet
        .client
        .recorder()
        .snapshot()
        .into_iter()
        .filter_map(|(_, r)| match r {
            Received::Other(el) if el.name() == "message" => Some(String::from(&el)),
            Received::Presence(p)
                if p.from
                    .as_ref()
                    .is_some_and(|f| f.domain().as_str() == "c.invalid") =>
            {
                Some(format!("{p:?}"))
            }
            _ => None,
        })
        .collect();
    assert!(seen.is_empty(), "juliet got spoofed stanzas: {seen:?}");
    // The federation recovers: presence changes cross both ways again.
    romeo.available(Some(Show::Away))?;
    juliet.available(Some(Show::Xa))?;
    views_match(&mut [&mut juliet, &mut romeo], WAIT).await?;
    Ok(())
}
