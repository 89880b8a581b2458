//! Server-to-server streams (RFC 6120, `jabber:server`) with server dialback (XEP-0220, keys
//! of XEP-0185), one TCP connection per direction as Prosody and ejabberd open them.
//!
//! - **Outgoing** ([`peer_out`]): one task per configured peer keeps a stream to the peer's
//!   address (the static map of the configuration; no DNS), authenticates it with
//!   `<db:result/>`, and writes the stanzas the core sends it. Stanzas wait in a bounded queue
//!   while the stream is down; reconnection backs off from 1 s to 60 s. Its authentication is
//!   the link the extension's session runs on: [`Input::LinkUp`] with the peer's stream
//!   features (XEP §Stream Feature), [`Input::LinkDown`] when it is lost. A stanza of the
//!   session ([`ToPeer::Session`]) goes only on the stream of the link it was made for and
//!   never waits in the queue: the core may make it after the stream died and before it
//!   learns so, and a later stream belongs to a later session (PS-46).
//! - **Incoming** ([`accept`]): a stream from a peer offers the dialback feature and, if the
//!   extension is enabled, `<presence-sync/>`; a `<db:result/>` key is checked by asking the
//!   peer's authoritative server over our outgoing stream to it (`<db:verify/>`), and the
//!   stanzas of an authenticated stream go to the core. A `<db:verify/>` of the peer about a
//!   key we sent is answered from our secret.
//! - **`<invalid-from/>`**: a stanza on an incoming stream whose `from` is of no domain
//!   authenticated on that stream closes that stream with the stream error (RFC 6120
//!   §4.9.3.9, XEP PS-71); nothing more is read from it, and the stanza goes to the core as
//!   [`Input::InvalidFrom`] (the model's bookkeeping), which then has our outgoing stream to
//!   the peer reopened ([`ToPeer::Reopen`], see `Core::reopen`).
//!
//! Every wait is bounded ([`STANZA_DEADLINE`]), every stanza is read through the stream
//! layer's bounds, and a peer that breaks them gets the RFC 6120 §4.9 stream error.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minidom::Element;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{Reader, STANZA_DEADLINE, Writer, condition};
use super::core::{Input, ToPeer};
use super::dialback::{Dialback, key};
use super::xml::{self, DIALBACK_FEATURE, SERVER, el};
use crate::stream::{StreamEvent, StreamLimits};

/// Stanzas waiting for a peer's stream to come (back) up; more are undeliverable.
const QUEUE: usize = 100_000;

/// What every s2s task shares.
#[derive(Debug)]
pub struct S2s {
    /// Our domain.
    pub domain: String,
    /// The dialback secret (XEP-0185).
    pub secret: Vec<u8>,
    /// Peer domains and their addresses.
    pub peers: HashMap<String, SocketAddr>,
    /// The features offered on incoming streams besides dialback (`<presence-sync/>`).
    pub features: Vec<Element>,
    /// Stream bounds.
    pub limits: StreamLimits,
    /// The core.
    pub core: mpsc::Sender<Input>,
    /// Verification requests to each peer's outgoing task.
    pub verify: HashMap<String, mpsc::Sender<VerifyRequest>>,
    /// Set when the server stops.
    pub stopping: watch::Receiver<bool>,
    /// The address outgoing streams leave from (the s2s listener's, so that the peer sees
    /// the address our domain is configured at).
    pub local: std::net::IpAddr,
}

/// A `<db:verify/>` to send to the peer's authoritative server, and where the verdict goes.
#[derive(Debug)]
pub struct VerifyRequest {
    /// Our stream id on the incoming stream whose key is checked.
    pub id: String,
    /// The key the peer gave on it.
    pub key: String,
    /// True if the authoritative server said `valid`.
    pub reply: oneshot::Sender<bool>,
}

/// The outgoing task of `peer` (see the [module documentation](self)).
pub async fn peer_out(
    ctx: Arc<S2s>,
    peer: String,
    addr: SocketAddr,
    mut rx: mpsc::Receiver<ToPeer>,
    mut verify_rx: mpsc::Receiver<VerifyRequest>,
) {
    let mut out = Out::default();
    let mut backoff = Duration::from_secs(1);
    let mut stopping = ctx.stopping.clone();
    // Verifications asked for while no stream was up: sent first on the next one.
    let mut waiting: Vec<VerifyRequest> = Vec::new();
    loop {
        if *stopping.borrow() {
            return;
        }
        let waits = std::mem::take(&mut waiting);
        let outcome = out_stream(&ctx, &peer, addr, &mut rx, &mut verify_rx, &mut out, waits).await;
        match outcome {
            Outcome::Closed(done) => {
                let _ = done.send(());
                return;
            }
            Outcome::Lost { was_up, why } => {
                tracing::info!(%peer, %why, "outgoing stream lost");
                if was_up {
                    backoff = Duration::from_secs(1);
                    let _ = ctx.core.send(Input::LinkDown { peer: peer.clone() }).await;
                }
            }
        }
        // Back off, still taking stanzas (into the queue) and close requests.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = stopping.changed() => break,
                msg = rx.recv() => match msg {
                    Some(ToPeer::Stanza(s)) => enqueue(&ctx, &peer, &mut out.queue, s).await,
                    Some(ToPeer::Session(s, _)) => stale(&peer, &s),
                    Some(ToPeer::Close(done)) => { let _ = done.send(()); return; }
                    // The stream is down already; the next one is new.
                    Some(ToPeer::Reopen) => {}
                    None => return,
                },
                // A peer waits for our verdict on its stream: connect now rather than let
                // both servers back off in step (each refusing the other's verification).
                req = verify_rx.recv() => if let Some(r) = req { waiting.push(r); break; },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

async fn enqueue(ctx: &S2s, peer: &str, queue: &mut VecDeque<Element>, stanza: Element) {
    if queue.len() >= QUEUE {
        let _ = ctx
            .core
            .send(Input::Undeliverable {
                peer: peer.to_owned(),
                stanza,
            })
            .await;
    } else {
        queue.push_back(stanza);
    }
}

/// A session stanza whose stream is gone is dropped: its session ended with the stream.
fn stale(peer: &str, stanza: &Element) {
    tracing::debug!(%peer, "session stanza of a lost stream dropped: <{}/>", stanza.name());
}

/// What an outgoing task keeps from one stream to the next.
#[derive(Default)]
struct Out {
    /// RFC 6121 stanzas waiting for a stream.
    queue: VecDeque<Element>,
    /// The LinkUps sent: the link of the stream that is (or was last) up.
    link: u64,
}

enum Outcome {
    Closed(oneshot::Sender<()>),
    Lost { was_up: bool, why: String },
}

/// One outgoing stream, from connect to loss or close.
async fn out_stream(
    ctx: &S2s,
    peer: &str,
    addr: SocketAddr,
    rx: &mut mpsc::Receiver<ToPeer>,
    verify_rx: &mut mpsc::Receiver<VerifyRequest>,
    out: &mut Out,
    waiting: Vec<VerifyRequest>,
) -> Outcome {
    let lost = |why: String| Outcome::Lost { was_up: false, why };
    let tcp = match tokio::time::timeout(Duration::from_secs(10), connect(ctx.local, addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return lost(format!("connect {addr}: {e}")),
        Err(_) => return lost(format!("connect {addr}: timeout")),
    };
    let _ = tcp.set_nodelay(true);
    let (r, w) = tcp.into_split();
    let mut reader = Reader::new(r, ctx.limits);
    let mut writer = Writer::new(w);
    let header = xml::header(SERVER, Some(&ctx.domain), Some(peer), None);
    if let Err(e) = writer.raw(&header).await {
        return lost(e.to_string());
    }
    let stream_id = match reader.expect(STANZA_DEADLINE).await {
        Ok(h) => match h.attr("id") {
            Some(id) => id.to_owned(),
            None => {
                writer.fail("invalid-id", None).await;
                return lost("no stream id".into());
            }
        },
        Err(e) => return lost(e.to_string()),
    };
    let features = match reader.expect(STANZA_DEADLINE).await {
        Ok(f) if f.is("features", xml::STREAMS) => f,
        Ok(other) => return lost(format!("expected features, got <{}/>", other.name())),
        Err(e) => return lost(e.to_string()),
    };
    let features: Vec<Element> = features.children().cloned().collect();
    let db_key = key(&ctx.secret, peer, &ctx.domain, &stream_id);
    let request = Dialback::Result {
        from: ctx.domain.clone(),
        to: peer.to_owned(),
        key: Some(db_key),
        verdict: None,
    };
    if let Err(e) = writer.send(&request.to_element()).await {
        return lost(e.to_string());
    }
    let mut up = false;
    let mut pending: HashMap<String, oneshot::Sender<bool>> = HashMap::new();
    for req in waiting {
        let v = Dialback::Verify {
            from: ctx.domain.clone(),
            to: peer.to_owned(),
            id: req.id.clone(),
            key: Some(req.key),
            verdict: None,
        };
        if writer.send(&v.to_element()).await.is_err() {
            let _ = req.reply.send(false);
            return lost("write failed".into());
        }
        pending.insert(req.id, req.reply);
    }
    let auth_deadline = tokio::time::sleep(STANZA_DEADLINE);
    tokio::pin!(auth_deadline);
    let mut stopping = ctx.stopping.clone();
    let why = loop {
        tokio::select! {
            _ = &mut auth_deadline, if !up => {
                writer.fail("connection-timeout", Some("no dialback verdict")).await;
                break "dialback timed out".to_owned();
            }
            _ = stopping.changed() => {
                writer.close().await;
                break "stopping".to_owned();
            }
            event = reader.next() => match event {
                Ok(StreamEvent::Stanza(s)) => {
                    if xml::is_stream_error(&s) {
                        break format!("stream error {:?}", xml::stream_error_condition(&s));
                    }
                    match Dialback::parse(&s) {
                        Some(Dialback::Result { verdict: Some(v), .. }) if !up => {
                            if v != "valid" {
                                writer.close().await;
                                break format!("dialback refused ({v})");
                            }
                            up = true;
                            out.link += 1;
                            tracing::info!(%peer, %stream_id, "outgoing stream authenticated");
                            let _ = ctx.core.send(Input::LinkUp {
                                peer: peer.to_owned(),
                                features: features.clone(),
                            }).await;
                            while let Some(s) = out.queue.pop_front() {
                                if let Err(e) = writer.send(&s).await {
                                    out.queue.push_front(s);
                                    return Outcome::Lost { was_up: true, why: e.to_string() };
                                }
                            }
                        }
                        Some(Dialback::Verify { id, verdict: Some(v), .. }) => {
                            if let Some(reply) = pending.remove(&id) {
                                let _ = reply.send(v == "valid");
                            }
                        }
                        _ => tracing::debug!(%peer, "ignored on outgoing stream: <{}/>", s.name()),
                    }
                }
                Ok(StreamEvent::End) => { writer.close().await; break "closed by the peer".to_owned(); }
                Ok(StreamEvent::Header(_)) => break "second header".to_owned(),
                Err(e) => {
                    if let Some(c) = condition(&e) { writer.fail(c, None).await; }
                    break e.to_string();
                }
            },
            msg = rx.recv() => match msg {
                Some(ToPeer::Stanza(s)) => {
                    if up {
                        if let Err(e) = writer.send(&s).await {
                            out.queue.push_back(s);
                            break e.to_string();
                        }
                    } else {
                        enqueue(ctx, peer, &mut out.queue, s).await;
                    }
                }
                Some(ToPeer::Session(s, made_on)) => {
                    if up && made_on == out.link {
                        if let Err(e) = writer.send(&s).await {
                            break e.to_string();
                        }
                    } else {
                        stale(peer, &s);
                    }
                }
                Some(ToPeer::Reopen) => {
                    // The model closed the link after <invalid-from/> on the peer's stream
                    // (Core::reopen): this stream ends cleanly and a new one is opened, as
                    // after a loss. A stream not yet authenticated is no link yet: kept.
                    if up {
                        writer.close().await;
                        break "reopened after a stream error on the peer's stream".to_owned();
                    }
                }
                Some(ToPeer::Close(done)) => {
                    // Whatever is queued still goes out, then the stream ends (PS-54: the
                    // shutdown announcement is among it).
                    while let Some(s) = out.queue.pop_front() {
                        if !up || writer.send(&s).await.is_err() { break; }
                    }
                    writer.close().await;
                    return Outcome::Closed(done);
                }
                None => { writer.close().await; break "core gone".to_owned(); }
            },
            req = verify_rx.recv() => if let Some(req) = req {
                let v = Dialback::Verify {
                    from: ctx.domain.clone(),
                    to: peer.to_owned(),
                    id: req.id.clone(),
                    key: Some(req.key),
                    verdict: None,
                };
                if writer.send(&v.to_element()).await.is_err() {
                    let _ = req.reply.send(false);
                } else {
                    pending.insert(req.id, req.reply);
                }
            },
        }
    };
    Outcome::Lost { was_up: up, why }
}

/// A TCP connection to `addr` from address `local` (any port).
async fn connect(local: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if local.is_ipv4() == addr.is_ipv4() && !local.is_unspecified() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(addr).await
}

/// Accepts incoming s2s streams on `listener` until the server stops.
pub async fn accept(ctx: Arc<S2s>, listener: TcpListener) {
    let mut stopping = ctx.stopping.clone();
    loop {
        tokio::select! {
            _ = stopping.changed() => return,
            conn = listener.accept() => match conn {
                Ok((tcp, addr)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        incoming(ctx, tcp, addr).await;
                    });
                }
                Err(e) => tracing::warn!("s2s accept: {e}"),
            },
        }
    }
}

/// One incoming stream.
async fn incoming(ctx: Arc<S2s>, tcp: TcpStream, addr: SocketAddr) {
    let (r, w) = tcp.into_split();
    let mut reader = Reader::new(r, ctx.limits);
    let mut writer = Writer::new(w);
    let header = match reader.expect(STANZA_DEADLINE).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(c) = condition(&e) {
                writer.fail(c, None).await;
            }
            return;
        }
    };
    let id = xml::random_id();
    let from_peer = header.attr("from").map(str::to_owned);
    let reply = xml::header(SERVER, Some(&ctx.domain), from_peer.as_deref(), Some(&id));
    if writer.raw(&reply).await.is_err() {
        return;
    }
    if header.attr("to").is_some_and(|t| t != ctx.domain) {
        writer.fail("host-unknown", None).await;
        return;
    }
    let mut offered = vec![el("dialback", DIALBACK_FEATURE).build()];
    offered.extend(ctx.features.iter().cloned());
    if writer.send(&xml::features(offered)).await.is_err() {
        return;
    }
    // Domains authenticated on this stream (one, in practice).
    let authenticated: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (verdicts_tx, mut verdicts) = mpsc::channel::<(String, bool)>(16);
    let mut stopping = ctx.stopping.clone();
    loop {
        tokio::select! {
            _ = stopping.changed() => { writer.close().await; return; }
            verdict = verdicts.recv() => {
                let Some((peer, ok)) = verdict else { continue };
                let result = Dialback::Result {
                    from: ctx.domain.clone(),
                    to: peer.clone(),
                    key: None,
                    verdict: Some(if ok { "valid" } else { "invalid" }.to_owned()),
                };
                if writer.send(&result.to_element()).await.is_err() { return; }
                if ok {
                    tracing::info!(%peer, %addr, "incoming stream authenticated");
                    authenticated.lock().expect("not poisoned").push(peer);
                }
            }
            event = reader.next() => {
                let stanza = match event {
                    Ok(StreamEvent::Stanza(s)) => s,
                    Ok(StreamEvent::End) => { writer.close().await; return; }
                    Ok(StreamEvent::Header(_)) => { writer.fail("not-well-formed", None).await; return; }
                    Err(e) => {
                        if let Some(c) = condition(&e) { writer.fail(c, None).await; }
                        return;
                    }
                };
                if let Some(db) = Dialback::parse(&stanza) {
                    if !dialback_in(&ctx, &mut writer, &id, db, verdicts_tx.clone()).await {
                        return;
                    }
                    continue;
                }
                if xml::is_stream_error(&stanza) {
                    return;
                }
                // The authenticated domain the stanza's `from` belongs to.
                let from_domain = stanza
                    .attr("from")
                    .and_then(|f| jid::Jid::new(f).ok())
                    .map(|j| j.domain().to_string());
                let (peer, foreign) = {
                    let auth = authenticated.lock().expect("not poisoned");
                    match from_domain.filter(|d| auth.contains(d)) {
                        Some(d) => (Some(d), false),
                        None => (auth.first().cloned(), true),
                    }
                };
                let Some(peer) = peer else {
                    writer.fail("not-authorized", Some("dialback first")).await;
                    return;
                };
                if foreign {
                    // RFC 6120 §4.9.3.9, XEP PS-71: this stream, the one that carried it, is
                    // closed with <invalid-from/>, and nothing more is read from it. The
                    // stanza goes to the model for its bookkeeping only (never to a client).
                    let text = format!(
                        "stanza from {:?} is not from a domain authenticated on this stream",
                        stanza.attr("from").unwrap_or_default()
                    );
                    tracing::info!(%peer, %addr, "{text}: <invalid-from/>");
                    writer.fail("invalid-from", Some(&text)).await;
                    let _ = ctx.core.send(Input::InvalidFrom { peer, stanza }).await;
                    return;
                }
                if ctx.core.send(Input::Peer { peer, stanza }).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A dialback element on an incoming stream whose id is `id`; false if the stream must end.
async fn dialback_in(
    ctx: &Arc<S2s>,
    writer: &mut Writer<tokio::net::tcp::OwnedWriteHalf>,
    id: &str,
    db: Dialback,
    verdicts: mpsc::Sender<(String, bool)>,
) -> bool {
    match db {
        // The peer authenticates this stream for its domain: ask its authoritative server.
        Dialback::Result {
            from,
            to,
            key: Some(k),
            ..
        } => {
            if to != ctx.domain {
                writer.fail("host-unknown", None).await;
                return false;
            }
            let Some(tx) = ctx.verify.get(&from) else {
                // Not a configured peer: we cannot reach its authoritative server.
                let _ = verdicts.send((from, false)).await;
                return true;
            };
            let (reply, verdict) = oneshot::channel();
            let request = VerifyRequest {
                id: id.to_owned(),
                key: k,
                reply,
            };
            if tx.send(request).await.is_err() {
                let _ = verdicts.send((from, false)).await;
                return true;
            }
            tokio::spawn(async move {
                let ok = matches!(
                    tokio::time::timeout(STANZA_DEADLINE, verdict).await,
                    Ok(Ok(true))
                );
                let _ = verdicts.send((from, ok)).await;
            });
            true
        }
        // The peer checks a key we gave it on our outgoing stream with stream id `id`.
        Dialback::Verify {
            from,
            to,
            id: stream_id,
            key: Some(k),
            ..
        } => {
            let expected = key(&ctx.secret, &from, &to, &stream_id);
            let ok = to == ctx.domain && expected == k;
            let answer = Dialback::Verify {
                from: ctx.domain.clone(),
                to: from,
                id: stream_id,
                key: None,
                verdict: Some(if ok { "valid" } else { "invalid" }.to_owned()),
            };
            writer.send(&answer.to_element()).await.is_ok()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::stream::StreamReader;

    const WAIT: Duration = Duration::from_secs(10);

    /// One stream of a scripted b.test accepting a.test's outgoing stream: header, dialback
    /// feature, `valid` for the key; then it reads stanzas.
    struct Scripted {
        tcp: TcpStream,
        reader: StreamReader,
        read: VecDeque<Element>,
    }

    impl Scripted {
        async fn accept(listener: &TcpListener) -> Scripted {
            let (tcp, _) = tokio::time::timeout(WAIT, listener.accept())
                .await
                .expect("a.test connects")
                .expect("accept");
            let mut s = Scripted {
                tcp,
                reader: StreamReader::new(StreamLimits::default()),
                read: VecDeque::new(),
            };
            let header = xml::header(SERVER, Some("b.test"), Some("a.test"), Some("s1"));
            let features = xml::features(vec![el("dialback", DIALBACK_FEATURE).build()]);
            s.write(&header).await;
            s.write(&String::from(&features)).await;
            let result = s.next().await;
            assert_eq!(result.name(), "result", "dialback first");
            s.write("<db:result from='b.test' to='a.test' type='valid'/>")
                .await;
            s
        }

        async fn write(&mut self, text: &str) {
            self.tcp.write_all(text.as_bytes()).await.expect("write");
        }

        /// The next stanza a.test sends.
        async fn next(&mut self) -> Element {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(el) = self.read.pop_front() {
                    return el;
                }
                let n = tokio::time::timeout(WAIT, self.tcp.read(&mut buf))
                    .await
                    .expect("a stanza within the wait")
                    .expect("read");
                assert!(n > 0, "a.test closed the stream");
                for event in self.reader.feed(&buf[..n]).expect("well-formed") {
                    if let StreamEvent::Stanza(el) = event {
                        self.read.push_back(el);
                    }
                }
            }
        }
    }

    fn stanza(to: &str, id: &str) -> Element {
        el("iq", SERVER)
            .attr("from", "a.test")
            .attr("to", to)
            .attr("type", "get")
            .attr("id", id)
            .build()
    }

    async fn link_event(core: &mut mpsc::Receiver<Input>) -> &'static str {
        match tokio::time::timeout(WAIT, core.recv()).await {
            Ok(Some(Input::LinkUp { .. })) => "up",
            Ok(Some(Input::LinkDown { .. })) => "down",
            other => panic!("a link event, got {other:?}"),
        }
    }

    /// PS-46: a session stanza made for a link that is gone is never written, neither while
    /// the stream is down nor on the next stream; RFC 6121 stanzas wait for the next stream.
    #[tokio::test]
    async fn session_stanzas_never_outlive_their_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (core_tx, mut core) = mpsc::channel(16);
        let (_stop_tx, stopping) = watch::channel(false);
        let ctx = Arc::new(S2s {
            domain: "a.test".into(),
            secret: b"secret".to_vec(),
            peers: HashMap::new(),
            features: Vec::new(),
            limits: StreamLimits::default(),
            core: core_tx,
            verify: HashMap::new(),
            stopping,
            local: "127.0.0.1".parse().expect("ip"),
        });
        let (tx, rx) = mpsc::channel(16);
        let (_verify_tx, verify_rx) = mpsc::channel(1);
        let task = tokio::spawn(peer_out(ctx, "b.test".into(), addr, rx, verify_rx));

        // Before any link: a session stanza is dropped, a user's stanza waits.
        tx.send(ToPeer::Session(stanza("b.test", "early"), 0))
            .await
            .expect("task");
        tx.send(ToPeer::Stanza(stanza("u@b.test", "queued")))
            .await
            .expect("task");
        let mut first = Scripted::accept(&listener).await;
        assert_eq!(link_event(&mut core).await, "up");
        assert_eq!(first.next().await.attr("id"), Some("queued"));
        tx.send(ToPeer::Session(stanza("b.test", "on-1"), 1))
            .await
            .expect("task");
        assert_eq!(first.next().await.attr("id"), Some("on-1"));

        // The stream is lost; the core, not told yet, still makes stanzas for link 1.
        drop(first);
        assert_eq!(link_event(&mut core).await, "down");
        tx.send(ToPeer::Session(stanza("b.test", "stale-1"), 1))
            .await
            .expect("task");
        tx.send(ToPeer::Stanza(stanza("u@b.test", "waits")))
            .await
            .expect("task");
        let mut second = Scripted::accept(&listener).await;
        assert_eq!(link_event(&mut core).await, "up");
        tx.send(ToPeer::Session(stanza("b.test", "stale-again"), 1))
            .await
            .expect("task");
        tx.send(ToPeer::Session(stanza("b.test", "on-2"), 2))
            .await
            .expect("task");
        assert_eq!(second.next().await.attr("id"), Some("waits"));
        assert_eq!(second.next().await.attr("id"), Some("on-2"));
        task.abort();
    }
}
