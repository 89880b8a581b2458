//! A real XMPP client for tests, on tokio-xmpp 6's XML streams (the xmpp-rs ecosystem our
//! xmpp-parsers, minidom and xso come from).
//!
//! tokio-xmpp's high-level `Client` reconnects by itself and binds in the background; a test
//! needs to decide when a user logs in, logs out or loses its connection, so this client
//! drives the same building blocks one step at a time: [`tokio_xmpp::xmlstream`] to open the
//! stream (RFC 6120 §4) to an address (no DNS), [`tokio_xmpp::client_login`] for SASL
//! (SCRAM-SHA-1 or PLAIN, RFC 6120 §6), then resource binding (RFC 6120 §7). XEP-0077 in-band
//! registration, which tokio-xmpp does not do, runs on a plain stream before any login
//! ([`Client::register`]).
//!
//! Once bound, one task owns the stream: it writes what the test sends, answers the server's
//! IQ requests (a roster push gets its empty result, RFC 6121 §2.1.6; anything else
//! `service-unavailable`), routes IQ results to their requests, and records every presence
//! and roster push in a [`Recorder`] the test waits on with a bounded
//! [`Recorder::wait_until`]. A lost connection is recorded too ([`Received::Disconnected`]);
//! the client never reconnects by itself.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use minidom::Element;
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::BufStream;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::bind::{BindQuery, BindResponse};
use tokio_xmpp::parsers::blocking::{Block, BlocklistRequest, BlocklistResult, Unblock};
use tokio_xmpp::parsers::ibr::LegacyQuery;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::ns;
use tokio_xmpp::parsers::presence::{Presence, Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::{Item as RosterItem, Roster};
use tokio_xmpp::parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, ReadError, StreamHeader, Timeouts, XmlStream, initiate_stream,
};

use super::Result;
use super::wait::bounded;

/// How long one step (connect, login, an IQ round trip, a close) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream's own read timeouts, longer than any test (the test's waits are the bounds).
const TIMEOUTS: Timeouts = Timeouts {
    read_timeout: Duration::from_secs(600),
    response_timeout: Duration::from_secs(600),
};

type Stream = XmlStream<BufStream<TcpStream>, Element>;

/// What the client received, in order.
#[derive(Clone, Debug)]
pub enum Received {
    /// A presence stanza (RFC 6121 §4, and subscription requests and answers, §3).
    Presence(Presence),
    /// A roster push (RFC 6121 §2.1.6): the items it carries.
    RosterPush(Vec<RosterItem>),
    /// The connection ended (stream closed by the server, or a read error).
    Disconnected(String),
    /// Any other element (messages, unsolicited IQ results).
    Other(Element),
    /// An element the stream could not parse (the stream goes on).
    Unparsable(String),
    /// Not received: this client sent unavailable presence here ([`Client::unavailable`]).
    /// What it was shown before no longer holds: its server stops delivering presence to it
    /// (RFC 6121 §4.5.2), so a contact that goes offline meanwhile sends it nothing, and what
    /// it is shown after its next initial presence starts afresh.
    WentUnavailable,
}

/// Everything a client received, with a wake-up for waiters.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(Instant, Received)>>>,
    changed: Arc<Notify>,
}

impl Recorder {
    fn push(&self, received: Received) {
        self.lock().push((Instant::now(), received));
        self.changed.notify_waiters();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(Instant, Received)>> {
        // A panic while the lock was held is a failed test already; the log is still good to
        // read.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything received so far, with the instant each arrived.
    pub fn snapshot(&self) -> Vec<(Instant, Received)> {
        self.lock().clone()
    }

    /// The presence stanzas received so far.
    pub fn presences(&self) -> Vec<Presence> {
        let log = self.lock();
        log.iter()
            .filter_map(|(_, r)| match r {
                Received::Presence(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// The last presence received from `from` (any resource), of any type.
    pub fn last_presence_from(&self, from: &BareJid) -> Option<Presence> {
        self.presences()
            .into_iter()
            .rev()
            .find(|p| p.from.as_ref().is_some_and(|j| j.to_bare() == *from))
    }

    /// Waits until `check` holds of what was received, at most `timeout`; on timeout the
    /// error lists what was received. Returns how long it took.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&[(Instant, Received)]) -> bool,
    ) -> Result<Duration> {
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a push between check and await still wakes us.
            notified.as_mut().enable();
            if check(&self.lock()) {
                return Ok(start.elapsed());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; received:\n{}",
                    self.describe()
                )
                .into());
            }
        }
    }

    /// How many items were received so far (a mark for [`Self::wait_for_presence_since`]).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Waits for a presence from `from` (any resource) that is available (`true`) or
    /// unavailable (`false`), received at any time, at most `timeout`.
    pub async fn wait_for_presence(
        &self,
        from: &BareJid,
        available: bool,
        timeout: Duration,
    ) -> Result<Duration> {
        let type_ = if available {
            PresenceType::None
        } else {
            PresenceType::Unavailable
        };
        self.wait_for_presence_since(from, type_, 0, timeout).await
    }

    /// Waits for a presence of `type_` (`None` is available) from `from` (any resource)
    /// among the items received after the first `since` ([`Self::len`]), at most `timeout`.
    pub async fn wait_for_presence_since(
        &self,
        from: &BareJid,
        type_: PresenceType,
        since: usize,
        timeout: Duration,
    ) -> Result<Duration> {
        let what = format!("presence of type {type_:?} from {from} after item {since}");
        self.wait_until(&what, timeout, |log| {
            log.iter().skip(since).any(|(_, r)| {
                matches!(r, Received::Presence(p)
                    if p.type_ == type_ && p.from.as_ref().is_some_and(|j| j.to_bare() == *from))
            })
        })
        .await
    }

    /// One line per received item.
    pub fn describe(&self) -> String {
        let log = self.lock();
        let first = log.first().map(|(t, _)| *t);
        let mut out = String::new();
        for (at, r) in log.iter() {
            let ms = first.map_or(0, |f| at.duration_since(f).as_millis());
            let line = match r {
                Received::Presence(p) => format!(
                    "presence from={} type={:?} show={:?}",
                    p.from.as_ref().map_or("-".into(), |j| j.to_string()),
                    p.type_,
                    p.show
                ),
                Received::RosterPush(items) => format!(
                    "roster push {}",
                    items
                        .iter()
                        .map(|i| format!("{}:{:?}:{:?}", i.jid, i.subscription, i.ask))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Received::Disconnected(why) => format!("disconnected: {why}"),
                Received::Other(el) => format!("<{} xmlns='{}'>", el.name(), el.ns()),
                Received::Unparsable(e) => format!("unparsable: {e}"),
                Received::WentUnavailable => "(sent unavailable presence)".to_owned(),
            };
            let _ = writeln!(out, "  +{ms} ms {line}");
        }
        out
    }
}

enum Command {
    Send(Element),
    Iq(Box<Iq>, oneshot::Sender<Iq>),
    Close(oneshot::Sender<()>),
}

/// A logged-in, bound client session.
#[derive(Debug)]
pub struct Client {
    jid: FullJid,
    commands: mpsc::UnboundedSender<Command>,
    recorder: Recorder,
    task: JoinHandle<()>,
    next_id: u64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Send(_) => "Send",
            Command::Iq(..) => "Iq",
            Command::Close(_) => "Close",
        })
    }
}

impl Client {
    /// Registers the account `jid` with `password` by XEP-0077 in-band registration, on a
    /// stream of its own to the server at `addr` (closed afterwards).
    pub async fn register(addr: SocketAddr, jid: &BareJid, password: &str) -> Result<()> {
        bounded(format!("registering {jid}"), STEP_TIMEOUT, async {
            let (_, mut stream) = open::<Element>(addr, jid).await?;
            let query = LegacyQuery {
                username: jid.node().map(|n| n.to_string()),
                password: Some(password.to_string()),
                ..LegacyQuery::default()
            };
            let iq = Iq::from_set("register", query);
            stream.send(&Element::from(iq)).await?;
            let answer = next_iq(&mut stream, "register").await?;
            let _ = SinkExt::<&Element>::close(&mut stream).await;
            match answer {
                Iq::Result { .. } => Ok(()),
                other => Err(format!("registration refused: {other:?}").into()),
            }
        })
        .await
    }

    /// Logs in as `jid` (SASL) on the server at `addr` and binds `resource`.
    pub async fn login(
        addr: SocketAddr,
        jid: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<Client> {
        let stream = bounded(format!("logging in {jid}"), STEP_TIMEOUT, async {
            let (features, stream) = open::<FallibleStreamElement>(addr, jid).await?;
            let creds = Credentials::default()
                .with_username(jid.node().map_or("", |n| n.as_str()))
                .with_password(password)
                .with_channel_binding(ChannelBinding::None);
            let stream = tokio_xmpp::client_login(stream, features.sasl_mechanisms, creds).await?;
            let (_, mut stream) = stream
                .send_header(header(jid))
                .await?
                .recv_features::<Element>()
                .await?;
            let bind = Iq::from_set("bind", BindQuery::new(Some(resource.to_string())));
            stream.send(&Element::from(bind)).await?;
            match next_iq(&mut stream, "bind").await? {
                Iq::Result {
                    payload: Some(payload),
                    ..
                } => Ok((stream, FullJid::from(BindResponse::try_from(payload)?))),
                other => Err(format!("bind refused: {other:?}").into()),
            }
        })
        .await?;
        let (stream, jid) = stream;
        let recorder = Recorder::default();
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(stream, rx, recorder.clone()));
        Ok(Client {
            jid,
            commands,
            recorder,
            task,
            next_id: 0,
        })
    }

    /// The bound full JID.
    pub fn jid(&self) -> &FullJid {
        &self.jid
    }

    /// The bare JID.
    pub fn bare(&self) -> BareJid {
        self.jid.to_bare()
    }

    /// What this client received.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Sends an element as it is.
    pub fn send(&self, element: Element) -> Result<()> {
        self.commands
            .send(Command::Send(element))
            .map_err(|_| format!("{}: connection closed", self.jid).into())
    }

    /// Sends an IQ request (its id is replaced by a fresh one) and waits for the answer.
    pub async fn iq(&mut self, mut iq: Iq) -> Result<Iq> {
        self.next_id += 1;
        *iq.id_mut() = format!("t{}", self.next_id);
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Iq(Box::new(iq), tx))
            .map_err(|_| format!("{}: connection closed", self.jid))?;
        bounded("IQ round trip", STEP_TIMEOUT, async {
            rx.await
                .map_err(|_| "connection closed before the answer".into())
        })
        .await
    }

    /// Sends an IQ request and fails unless the answer is a result.
    async fn iq_ok(&mut self, iq: Iq) -> Result<Option<Element>> {
        match self.iq(iq).await? {
            Iq::Result { payload, .. } => Ok(payload),
            other => Err(format!("{}: IQ failed: {other:?}", self.jid).into()),
        }
    }

    /// The roster (RFC 6121 §2.1.3). Requesting it makes this resource "interested": the
    /// server sends roster pushes only to interested resources (§2.1.6).
    pub async fn roster(&mut self) -> Result<Vec<RosterItem>> {
        let query = Roster {
            ver: None,
            items: vec![],
        };
        let payload = self.iq_ok(Iq::from_get("", query)).await?;
        Ok(payload.map_or(Ok(vec![]), |p| Roster::try_from(p).map(|r| r.items))?)
    }

    /// Adds or updates a roster item (RFC 6121 §2.1.5).
    pub async fn roster_set(&mut self, contact: &BareJid, name: Option<&str>) -> Result<()> {
        let item = RosterItem {
            jid: contact.clone(),
            name: name.map(str::to_string),
            subscription: Default::default(),
            ask: Default::default(),
            groups: vec![],
            approved: None,
        };
        self.roster_items(vec![item]).await
    }

    /// Removes a roster item (RFC 6121 §2.5): the server also cancels the subscriptions.
    pub async fn roster_remove(&mut self, contact: &BareJid) -> Result<()> {
        let item = RosterItem {
            jid: contact.clone(),
            name: None,
            subscription: tokio_xmpp::parsers::roster::Subscription::Remove,
            ask: Default::default(),
            groups: vec![],
            approved: None,
        };
        self.roster_items(vec![item]).await
    }

    async fn roster_items(&mut self, items: Vec<RosterItem>) -> Result<()> {
        let query = Roster { ver: None, items };
        self.iq_ok(Iq::from_set("", query)).await.map(|_| ())
    }

    /// Sends a presence of `type_` to `to` (a subscription request or answer, RFC 6121 §3).
    pub fn presence_to(&self, to: &BareJid, type_: PresenceType) -> Result<()> {
        let presence = Presence::new(type_).with_to(Jid::from(to.clone()));
        self.send(presence.into())
    }

    /// Requests a subscription to `to`'s presence (RFC 6121 §3.1.1).
    pub fn subscribe(&self, to: &BareJid) -> Result<()> {
        self.presence_to(to, PresenceType::Subscribe)
    }

    /// Approves `to`'s subscription request, or pre-approves it (RFC 6121 §3.1.4, §3.4).
    pub fn subscribed(&self, to: &BareJid) -> Result<()> {
        self.presence_to(to, PresenceType::Subscribed)
    }

    /// Cancels our subscription to `to` (RFC 6121 §3.3).
    pub fn unsubscribe(&self, to: &BareJid) -> Result<()> {
        self.presence_to(to, PresenceType::Unsubscribe)
    }

    /// Denies or cancels `to`'s subscription to us (RFC 6121 §3.2).
    pub fn unsubscribed(&self, to: &BareJid) -> Result<()> {
        self.presence_to(to, PresenceType::Unsubscribed)
    }

    /// Broadcasts available presence (initial presence, RFC 6121 §4.2), with `show` if given.
    pub fn available(&self, show: Option<Show>) -> Result<()> {
        let mut presence = Presence::new(PresenceType::None);
        presence.show = show;
        self.send(presence.into())
    }

    /// Broadcasts unavailable presence (RFC 6121 §4.5); the stream stays open. Recorded as
    /// [`Received::WentUnavailable`].
    pub fn unavailable(&self) -> Result<()> {
        self.recorder.push(Received::WentUnavailable);
        self.send(Presence::new(PresenceType::Unavailable).into())
    }

    /// Blocks `jids` (XEP-0191 §3.3).
    pub async fn block(&mut self, jids: &[Jid]) -> Result<()> {
        let block = Block {
            items: jids.to_vec(),
        };
        self.iq_ok(Iq::from_set("", block)).await.map(|_| ())
    }

    /// Unblocks `jids`; none means all (XEP-0191 §3.4, §3.5).
    pub async fn unblock(&mut self, jids: &[Jid]) -> Result<()> {
        let unblock = Unblock {
            items: jids.to_vec(),
        };
        self.iq_ok(Iq::from_set("", unblock)).await.map(|_| ())
    }

    /// The block list (XEP-0191 §3.2).
    pub async fn blocklist(&mut self) -> Result<Vec<Jid>> {
        let payload = self.iq_ok(Iq::from_get("", BlocklistRequest)).await?;
        let payload = payload.ok_or("empty blocklist result")?;
        Ok(BlocklistResult::try_from(payload)?.items)
    }

    /// Logs out cleanly: closes the stream (RFC 6120 §4.4) and waits, bounded, for the
    /// server to close its side. The server then broadcasts unavailable presence for us.
    pub async fn close(self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close(tx)).is_ok() {
            let _ = tokio::time::timeout(STEP_TIMEOUT, rx).await;
        }
        let _ = tokio::time::timeout(STEP_TIMEOUT, self.task).await;
        Ok(())
    }

    /// Drops the TCP connection without closing the stream, as a crashed client would.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// RFC 6121 §3.1 both ways between two online clients: `x` asks, `y` approves, `x` sees `y`'s
/// presence (the contact's server sends it on approval, §3.1.5); then the same from `y`.
/// Each step waits at most `timeout`.
pub async fn subscribe_mutually(x: &Client, y: &Client, timeout: Duration) -> Result<()> {
    for (asker, approver) in [(x, y), (y, x)] {
        asker.subscribe(&approver.bare())?;
        approver
            .recorder()
            .wait_for_presence_since(&asker.bare(), PresenceType::Subscribe, 0, timeout)
            .await?;
        approver.subscribed(&asker.bare())?;
        asker
            .recorder()
            .wait_for_presence(&approver.bare(), true, timeout)
            .await?;
    }
    Ok(())
}

/// Opens a stream to the server of `jid` at `addr`, and reads its features.
async fn open<T: xso::FromXml + std::fmt::Debug>(
    addr: SocketAddr,
    jid: &BareJid,
) -> Result<(
    tokio_xmpp::parsers::stream_features::StreamFeatures,
    XmlStream<BufStream<TcpStream>, T>,
)> {
    let tcp = TcpStream::connect(addr).await?;
    let pending = initiate_stream(
        BufStream::new(tcp),
        ns::JABBER_CLIENT,
        header(jid),
        TIMEOUTS,
    )
    .await?;
    Ok(pending.recv_features::<T>().await?)
}

fn header(jid: &BareJid) -> StreamHeader<'static> {
    StreamHeader {
        to: Some(Cow::Owned(jid.domain().to_string())),
        from: None,
        id: None,
    }
}

/// Reads until the IQ answer with `id`, skipping anything else (the server may send
/// presence or pushes first).
async fn next_iq(stream: &mut Stream, id: &str) -> Result<Iq> {
    loop {
        match stream.next().await {
            Some(Ok(el)) => {
                if el.name() == "iq"
                    && el.attr("id") == Some(id)
                    && let Ok(iq) = Iq::try_from(el)
                {
                    return Ok(iq);
                }
            }
            Some(Err(ReadError::SoftTimeout)) => {}
            Some(Err(e)) => return Err(format!("stream failed: {e}").into()),
            None => return Err("stream ended".into()),
        }
    }
}

/// The task that owns a bound stream.
async fn run(mut stream: Stream, mut commands: mpsc::UnboundedReceiver<Command>, rec: Recorder) {
    let mut pending: HashMap<String, oneshot::Sender<Iq>> = HashMap::new();
    let why = loop {
        tokio::select! {
            command = commands.recv() => {
                let sent = match command {
                    Some(Command::Send(el)) => stream.send(&el).await,
                    Some(Command::Iq(iq, answer)) => {
                        pending.insert(iq.id().to_string(), answer);
                        stream.send(&Element::from(*iq)).await
                    }
                    Some(Command::Close(done)) => {
                        let _ = SinkExt::<&Element>::close(&mut stream).await;
                        // Read to the server's footer or EOF, bounded.
                        let _ = tokio::time::timeout(STEP_TIMEOUT, async {
                            while let Some(Ok(_) | Err(ReadError::SoftTimeout)) = stream.next().await {}
                        })
                        .await;
                        let _ = done.send(());
                        break "closed by the client".to_string();
                    }
                    // The Client was dropped: drop the connection.
                    None => break "client dropped".to_string(),
                };
                if let Err(e) = sent {
                    break format!("write failed: {e}");
                }
            }
            item = stream.next() => match item {
                Some(Ok(el)) => {
                    if let Some(reply) = receive(el, &mut pending, &rec)
                        && let Err(e) = stream.send(&Element::from(reply)).await
                    {
                        break format!("write failed: {e}");
                    }
                }
                Some(Err(ReadError::SoftTimeout)) => {}
                Some(Err(ReadError::ParseError(e))) => {
                    rec.push(Received::Unparsable(e.to_string()));
                }
                Some(Err(ReadError::StreamFooterReceived)) | None => {
                    break "stream closed by the server".to_string();
                }
                Some(Err(ReadError::HardError(e))) => break format!("read failed: {e}"),
            },
        }
    };
    rec.push(Received::Disconnected(why));
}

/// Records `el`; returns the answer it needs, if it is an IQ request.
fn receive(
    el: Element,
    pending: &mut HashMap<String, oneshot::Sender<Iq>>,
    rec: &Recorder,
) -> Option<Iq> {
    match el.name() {
        "presence" => match Presence::try_from(el.clone()) {
            Ok(p) => rec.push(Received::Presence(p)),
            Err(_) => rec.push(Received::Other(el)),
        },
        "iq" => match Iq::try_from(el.clone()) {
            Ok(iq @ (Iq::Result { .. } | Iq::Error { .. })) => match pending.remove(iq.id()) {
                Some(answer) => {
                    let _ = answer.send(iq);
                }
                None => rec.push(Received::Other(el)),
            },
            Ok(Iq::Set { id, payload, .. }) if payload.is("query", ns::ROSTER) => {
                match Roster::try_from(payload) {
                    Ok(roster) => rec.push(Received::RosterPush(roster.items)),
                    Err(_) => rec.push(Received::Other(el)),
                }
                return Some(Iq::from_result(id, None::<Roster>));
            }
            Ok(Iq::Get { id, .. } | Iq::Set { id, .. }) => {
                rec.push(Received::Other(el));
                let error = StanzaError::new(
                    ErrorType::Cancel,
                    DefinedCondition::ServiceUnavailable,
                    "en",
                    "not implemented by the test client",
                );
                return Some(Iq::from_error(id, error));
            }
            Err(_) => rec.push(Received::Other(el)),
        },
        _ => rec.push(Received::Other(el)),
    }
    None
}
