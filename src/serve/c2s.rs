//! Client-to-server streams (RFC 6120, `jabber:client`): stream negotiation, SASL (RFC 6120
//! §6), XEP-0077 in-band registration before authentication, resource binding (§7), then the
//! client's stanzas to the core and the core's to the client.
//!
//! ```text
//!  header ─► features(mechanisms, register) ─► <auth/> or iq:register ─► <success/>
//!  restart ─► features(bind, session) ─► bind iq ─► Input::Bind ─► stanzas both ways
//! ```
//!
//! Plaintext is only served on loopback listeners (the configuration refuses anything else
//! without TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jid::{BareJid, FullJid};
use minidom::Element;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{ConnError, Reader, STANZA_DEADLINE, Writer, condition};
use super::core::{Input, ToClient};
use super::xml::{self, BIND, CLIENT, SASL, STANZAS, TLS, el, set};
use crate::stream::{StreamEvent, StreamLimits};

/// `jabber:iq:register` (XEP-0077).
const REGISTER: &str = "jabber:iq:register";
/// `http://jabber.org/features/iq-register`.
const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// `urn:ietf:params:xml:ns:xmpp-session`.
const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// How long a client may take to authenticate.
const AUTH_DEADLINE: Duration = Duration::from_secs(120);
/// Stanzas waiting for one client's stream; a client that lets more pile up is disconnected.
const CLIENT_QUEUE: usize = 4096;

/// What every c2s task shares.
pub struct C2s {
    /// Our domain.
    pub domain: String,
    /// XEP-0077 is open.
    pub registration: bool,
    /// Stream bounds.
    pub limits: StreamLimits,
    /// The core.
    pub core: mpsc::Sender<Input>,
    /// Set when the server stops.
    pub stopping: watch::Receiver<bool>,
    /// STARTTLS, required before anything else when configured (RFC 6120 §5.3.1).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A TLS acceptor from PEM files of a certificate chain and its private key.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    // The ring provider builds without cmake; its lack of post-quantum key exchange is the
    // price (rustls deprecates it for that reason).
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts client streams on `listener` until the server stops.
pub async fn accept(ctx: Arc<C2s>, listener: TcpListener) {
    let mut stopping = ctx.stopping.clone();
    loop {
        tokio::select! {
            _ = stopping.changed() => return,
            conn = listener.accept() => match conn {
                Ok((tcp, addr)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        client(ctx, tcp, addr).await;
                    });
                }
                Err(e) => tracing::warn!("c2s accept: {e}"),
            },
        }
    }
}

async fn client(ctx: Arc<C2s>, tcp: TcpStream, addr: SocketAddr) {
    let (r, w) = tcp.into_split();
    let mut reader = Reader::new(r, ctx.limits);
    let mut writer = Writer::new(w);
    let Some(acceptor) = ctx.tls.clone() else {
        return run(&ctx, reader, writer, addr).await;
    };
    // RFC 6120 §5: STARTTLS first, then the stream starts over on the TLS layer.
    match tokio::time::timeout(STANZA_DEADLINE, starttls(&ctx, &mut reader, &mut writer)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) | Err(_) => return,
        Ok(Err(e)) => {
            if let Some(c) = condition(&e) {
                writer.fail(c, None).await;
            }
            return;
        }
    }
    let Ok(tcp) = reader.into_inner().reunite(writer.into_inner()) else {
        return;
    };
    let tls = match tokio::time::timeout(STANZA_DEADLINE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%addr, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let (r, w) = tokio::io::split(tls);
    run(&ctx, Reader::new(r, ctx.limits), Writer::new(w), addr).await;
}

/// The first stream on a listener with TLS: only `<starttls/>` is offered (RFC 6120
/// §5.3.1, mandatory-to-negotiate); true once `<proceed/>` was sent.
async fn starttls<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
) -> Result<bool, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    open_stream(ctx, reader, writer).await?;
    let starttls = el("starttls", TLS)
        .append(el("required", TLS).build())
        .build();
    writer.send(&xml::features(vec![starttls])).await?;
    let first = reader.expect(STANZA_DEADLINE).await?;
    if !first.is("starttls", TLS) {
        writer
            .fail("policy-violation", Some("STARTTLS first"))
            .await;
        return Ok(false);
    }
    writer.send(&el("proceed", TLS).build()).await?;
    Ok(true)
}

/// A client stream from negotiation to its end.
async fn run<R, W>(ctx: &C2s, mut reader: Reader<R>, mut writer: Writer<W>, addr: SocketAddr)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let user = match tokio::time::timeout(
        AUTH_DEADLINE,
        authenticate(ctx, &mut reader, &mut writer),
    )
    .await
    {
        Ok(Ok(Some(user))) => user,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            match condition(&e) {
                Some(c) => writer.fail(c, None).await,
                None => writer.close().await,
            }
            return;
        }
        Err(_) => {
            writer.fail("connection-timeout", None).await;
            return;
        }
    };
    tracing::debug!(%user, %addr, "authenticated");
    let (jid, rx) = match bind(ctx, &mut reader, &mut writer, &user).await {
        Ok(Some(bound)) => bound,
        Ok(None) => return,
        Err(e) => {
            if let Some(c) = condition(&e) {
                writer.fail(c, None).await;
            }
            return;
        }
    };
    session(ctx, reader, writer, jid, rx).await;
}

/// Stream negotiation up to SASL success; `None` if the client went away cleanly.
async fn authenticate<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
) -> Result<Option<BareJid>, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    open_stream(ctx, reader, writer).await?;
    let mechanisms = el("mechanisms", SASL)
        .append(el("mechanism", SASL).append("PLAIN").build())
        .build();
    let mut features = vec![mechanisms];
    if ctx.registration {
        features.push(el("register", REGISTER_FEATURE).build());
    }
    writer.send(&xml::features(features)).await?;
    loop {
        let stanza = match reader.next().await? {
            StreamEvent::Stanza(s) => s,
            StreamEvent::End => {
                writer.close().await;
                return Ok(None);
            }
            StreamEvent::Header(_) => return Err(ConnError::Closed),
        };
        if stanza.is("auth", SASL) {
            match plain(ctx, &stanza).await {
                Ok(user) => {
                    writer.send(&el("success", SASL).build()).await?;
                    reader.restart();
                    return Ok(Some(user));
                }
                Err(failure) => {
                    let f = el("failure", SASL)
                        .append(el(failure, SASL).build())
                        .build();
                    writer.send(&f).await?;
                }
            }
        } else if stanza.is("iq", CLIENT) && stanza.has_child("query", REGISTER) {
            let answer = register(ctx, &stanza).await;
            writer.send(&answer).await?;
        } else {
            writer.fail("not-authorized", None).await;
            return Ok(None);
        }
    }
}

/// Reads the client's header and answers with ours.
async fn open_stream<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
) -> Result<(), ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let header = reader.expect(STANZA_DEADLINE).await?;
    let id = xml::random_id();
    writer
        .raw(&xml::header(CLIENT, Some(&ctx.domain), None, Some(&id)))
        .await?;
    if header.attr("to").is_some_and(|t| t != ctx.domain) {
        writer.fail("host-unknown", None).await;
        return Err(ConnError::Closed);
    }
    Ok(())
}

/// SASL PLAIN (RFC 4616): `authzid NUL authcid NUL password`, the authzid empty or the same
/// account. The failure condition of RFC 6120 §6.5 on error.
async fn plain(ctx: &C2s, auth: &Element) -> Result<BareJid, &'static str> {
    if auth.attr("mechanism") != Some("PLAIN") {
        return Err("invalid-mechanism");
    }
    let text = auth.text();
    let data = STANDARD
        .decode(text.trim())
        .map_err(|_| "incorrect-encoding")?;
    let mut parts = data.split(|b| *b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed-request");
    };
    let authcid = std::str::from_utf8(authcid).map_err(|_| "malformed-request")?;
    let password = std::str::from_utf8(password).map_err(|_| "malformed-request")?;
    let user = BareJid::new(&format!("{authcid}@{}", ctx.domain)).map_err(|_| "not-authorized")?;
    if !authzid.is_empty() && authzid != user.as_str().as_bytes() {
        return Err("invalid-authzid");
    }
    let (reply, verdict) = oneshot::channel();
    let ask = Input::CheckPassword {
        user: user.clone(),
        password: password.to_owned(),
        reply,
    };
    if ctx.core.send(ask).await.is_err() {
        return Err("temporary-auth-failure");
    }
    match verdict.await {
        Ok(true) => Ok(user),
        Ok(false) => Err("not-authorized"),
        Err(_) => Err("temporary-auth-failure"),
    }
}

/// XEP-0077 before authentication: the form, or the account created.
async fn register(ctx: &C2s, iq: &Element) -> Element {
    let id = iq.attr("id").unwrap_or_default().to_owned();
    let result = |payload: Option<Element>| {
        let mut b = el("iq", CLIENT)
            .attr("type", "result")
            .attr("id", id.as_str());
        if let Some(p) = payload {
            b = b.append(p);
        }
        b.build()
    };
    let error = |condition: &str, kind: &str| {
        el("iq", CLIENT)
            .attr("type", "error")
            .attr("id", id.as_str())
            .append(
                el("error", CLIENT)
                    .attr("type", kind)
                    .append(el(condition, STANZAS).build())
                    .build(),
            )
            .build()
    };
    if !ctx.registration {
        return error("not-allowed", "cancel");
    }
    let query = iq
        .get_child("query", REGISTER)
        .expect("checked by the caller");
    match iq.attr("type") {
        Some("get") => result(Some(
            el("query", REGISTER)
                .append(
                    el("instructions", REGISTER)
                        .append("Choose a username and password.")
                        .build(),
                )
                .append(el("username", REGISTER).build())
                .append(el("password", REGISTER).build())
                .build(),
        )),
        Some("set") => {
            let field = |name: &str| {
                query
                    .get_child(name, REGISTER)
                    .map(|e| e.text())
                    .filter(|t| !t.is_empty())
            };
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return error("not-acceptable", "modify");
            };
            let Ok(user) = BareJid::new(&format!("{username}@{}", ctx.domain)) else {
                return error("jid-malformed", "modify");
            };
            if user.node().map(|n| n.as_str()) != Some(username.as_str()) {
                // Not in normalized form: the account would not be the one asked for.
                return error("not-acceptable", "modify");
            }
            let (reply, done) = oneshot::channel();
            let ask = Input::Register {
                user,
                password,
                reply,
            };
            if ctx.core.send(ask).await.is_err() {
                return error("internal-server-error", "wait");
            }
            match done.await {
                Ok(Ok(())) => result(None),
                Ok(Err("conflict")) => error("conflict", "cancel"),
                Ok(Err("not-allowed")) => error("not-allowed", "cancel"),
                Ok(Err("not-acceptable")) => error("not-acceptable", "modify"),
                _ => error("internal-server-error", "wait"),
            }
        }
        _ => error("bad-request", "modify"),
    }
}

/// The restarted stream up to a bound resource; `None` if the client left.
async fn bind<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
    user: &BareJid,
) -> Result<Option<(FullJid, mpsc::Receiver<ToClient>)>, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    open_stream(ctx, reader, writer).await?;
    let features = xml::features(vec![
        el("bind", BIND).build(),
        // RFC 6121 §A: optional, for clients that still ask.
        el("session", SESSION)
            .append(el("optional", SESSION).build())
            .build(),
    ]);
    writer.send(&features).await?;
    loop {
        let iq = match reader.expect(STANZA_DEADLINE).await {
            Ok(s) => s,
            Err(ConnError::Closed) => {
                writer.close().await;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let id = iq.attr("id").unwrap_or_default().to_owned();
        let Some(b) = iq
            .get_child("bind", BIND)
            .filter(|_| iq.attr("type") == Some("set"))
        else {
            let e = el("iq", CLIENT)
                .attr("type", "error")
                .attr("id", id.as_str())
                .append(
                    el("error", CLIENT)
                        .attr("type", "cancel")
                        .append(el("not-allowed", STANZAS).build())
                        .build(),
                )
                .build();
            writer.send(&e).await?;
            continue;
        };
        let resource = b.get_child("resource", BIND).map(|r| r.text());
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let (reply, bound) = oneshot::channel();
        let ask = Input::Bind {
            user: user.clone(),
            resource,
            tx,
            reply,
        };
        if ctx.core.send(ask).await.is_err() {
            return Ok(None);
        }
        match bound.await {
            Ok(Ok(jid)) => {
                let answer = el("iq", CLIENT)
                    .attr("type", "result")
                    .attr("id", id.as_str())
                    .append(
                        el("bind", BIND)
                            .append(el("jid", BIND).append(jid.to_string()).build())
                            .build(),
                    )
                    .build();
                writer.send(&answer).await?;
                return Ok(Some((jid, rx)));
            }
            _ => {
                let e = el("iq", CLIENT)
                    .attr("type", "error")
                    .attr("id", id.as_str())
                    .append(
                        el("error", CLIENT)
                            .attr("type", "modify")
                            .append(el("bad-request", STANZAS).build())
                            .build(),
                    )
                    .build();
                writer.send(&e).await?;
            }
        }
    }
}

/// The bound session: the client's stanzas to the core, the core's to the client.
async fn session<R, W>(
    ctx: &C2s,
    mut reader: Reader<R>,
    mut writer: Writer<W>,
    jid: FullJid,
    mut rx: mpsc::Receiver<ToClient>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut stopping = ctx.stopping.clone();
    loop {
        tokio::select! {
            _ = stopping.changed() => {
                writer.fail("system-shutdown", None).await;
                break;
            }
            out = rx.recv() => match out {
                Some(ToClient::Stanza(s)) => {
                    if writer.send(&s).await.is_err() { break; }
                }
                Some(ToClient::Close(condition)) => {
                    writer.fail(condition, None).await;
                    break;
                }
                None => break,
            },
            event = reader.next() => match event {
                Ok(StreamEvent::Stanza(mut s)) => {
                    if s.ns() != CLIENT {
                        continue;
                    }
                    // RFC 6120 §8.1.2.1: the server stamps the sender's full JID.
                    set(&mut s, "from", jid.to_string());
                    if ctx.core.send(Input::Client { jid: jid.clone(), stanza: s }).await.is_err() {
                        break;
                    }
                }
                Ok(StreamEvent::End) => { writer.close().await; break; }
                Ok(StreamEvent::Header(_)) => { writer.fail("not-well-formed", None).await; break; }
                Err(e) => {
                    if let Some(c) = condition(&e) { writer.fail(c, None).await; }
                    break;
                }
            },
        }
    }
    let _ = ctx.core.send(Input::Unbind { jid }).await;
}
