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

use xmpp_parsers::iq::Iq;

use super::auth::register::{Decision, Registration};
use super::auth::{Failure, MECHANISMS, Sasl, Step};
use super::conn::{ConnError, Reader, STANZA_DEADLINE, Writer, condition};
use super::core::{ConnId, Input, ToClient};
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
    /// XEP-0077 in-band registration (its policy says whether it is open).
    pub registration: Registration,
    /// SASL: PLAIN, SCRAM-SHA-1 and SCRAM-SHA-256 against the stored credentials.
    pub sasl: Sasl,
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
    let (jid, conn, rx) = match bind(ctx, &mut reader, &mut writer, &user).await {
        Ok(Some(bound)) => bound,
        Ok(None) => return,
        Err(e) => {
            if let Some(c) = condition(&e) {
                writer.fail(c, None).await;
            }
            return;
        }
    };
    session(ctx, reader, writer, jid, conn, rx).await;
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
    let mut mechanisms = el("mechanisms", SASL);
    for m in MECHANISMS {
        mechanisms = mechanisms.append(el("mechanism", SASL).append(m).build());
    }
    let mut features = vec![mechanisms.build()];
    if ctx.registration.allowed {
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
            if let Some(user) = sasl(ctx, reader, writer, &stanza).await? {
                reader.restart();
                return Ok(Some(user));
            }
        } else if stanza.is("iq", CLIENT) && stanza.has_child("query", REGISTER) {
            if let Some(answer) = register(ctx, stanza).await {
                writer.send(&answer).await?;
            }
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

/// Base64 of a SASL element's text (RFC 6120 §6.4.2: `=` is an empty response).
fn sasl_data(element: &Element) -> Option<Vec<u8>> {
    let text = element.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Some(Vec::new());
    }
    STANDARD.decode(text).ok()
}

fn sasl_element(name: &str, data: &[u8]) -> Element {
    let text = if data.is_empty() {
        String::new()
    } else {
        STANDARD.encode(data)
    };
    el(name, SASL).append(text).build()
}

/// One SASL exchange (RFC 6120 §6.4), from the client's `<auth/>` to `<success/>` (the
/// account) or `<failure/>` (`None`: the client may try again). The steps come from the
/// sans-IO [`Sasl`]; the credentials from the storage, through the core.
async fn sasl<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
    auth: &Element,
) -> Result<Option<BareJid>, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mechanism = auth.attr("mechanism").unwrap_or_default();
    let (mut exchange, mut step) = match sasl_data(auth) {
        Some(initial) => ctx.sasl.start(mechanism, Some(&initial)),
        None => {
            let (mut ex, _) = ctx.sasl.start(mechanism, None);
            let _ = ex.abort();
            (ex, Step::Failure(Failure::incorrect_encoding()))
        }
    };
    loop {
        step = match step {
            Step::Lookup(user) => {
                let (reply, answer) = oneshot::channel();
                let ask = Input::Credentials { user, reply };
                let found = match ctx.core.send(ask).await {
                    Ok(()) => answer.await.ok(),
                    Err(_) => None,
                };
                match found {
                    Some(Ok(credentials)) => exchange.provide(credentials.as_ref()),
                    _ => exchange.lookup_failed(),
                }
            }
            Step::Challenge(data) => {
                writer.send(&sasl_element("challenge", &data)).await?;
                let next = match reader.next().await? {
                    StreamEvent::Stanza(s) => s,
                    _ => return Err(ConnError::Closed),
                };
                if next.is("response", SASL) {
                    match sasl_data(&next) {
                        Some(data) => exchange.respond(&data),
                        None => {
                            let _ = exchange.abort();
                            Step::Failure(Failure::incorrect_encoding())
                        }
                    }
                } else if next.is("abort", SASL) {
                    exchange.abort()
                } else {
                    writer.fail("not-authorized", None).await;
                    return Err(ConnError::Closed);
                }
            }
            Step::Success {
                user,
                additional_data,
            } => {
                writer
                    .send(&sasl_element("success", &additional_data))
                    .await?;
                tracing::debug!(%user, mechanism, "authenticated");
                return Ok(Some(user));
            }
            Step::Failure(failure) => {
                tracing::debug!(mechanism, reason = failure.reason, "SASL failure");
                writer.send(&Element::from(failure.to_xml())).await?;
                return Ok(None);
            }
        };
    }
}

/// XEP-0077 before authentication: the form, or the account created (the decision is the
/// sans-IO [`Registration`]'s, the creation the storage's, through the core). `None` for
/// iqs that get no answer.
async fn register(ctx: &C2s, iq: Element) -> Option<Element> {
    let id = iq.attr("id").unwrap_or_default().to_owned();
    let Ok(iq) = Iq::try_from(iq) else {
        let error = el("error", CLIENT)
            .attr("type", "modify")
            .append(el("bad-request", STANZAS).build())
            .build();
        let answer = el("iq", CLIENT)
            .attr("type", "error")
            .attr("id", id)
            .append(error)
            .build();
        return Some(answer);
    };
    let answer = match ctx.registration.handle(&iq, None)? {
        Decision::Reply(answer) => answer,
        Decision::Create {
            user,
            credentials,
            reply,
        } => {
            let (tx, created) = oneshot::channel();
            let ask = Input::Register {
                user,
                credentials,
                reply: tx,
            };
            let outcome = match ctx.core.send(ask).await {
                Ok(()) => created.await.ok(),
                Err(_) => None,
            };
            match outcome {
                Some(Ok(created)) => reply.created(created),
                _ => reply.failed(),
            }
        }
        // Only an authenticated stream gets these, and this one is not.
        Decision::ChangePassword { reply, .. } | Decision::Remove { reply, .. } => reply.failed(),
    };
    Some(Element::from(answer))
}

/// The restarted stream up to a bound resource (and the connection's id in the core); `None`
/// if the client left.
async fn bind<R, W>(
    ctx: &C2s,
    reader: &mut Reader<R>,
    writer: &mut Writer<W>,
    user: &BareJid,
) -> Result<Option<(FullJid, ConnId, mpsc::Receiver<ToClient>)>, ConnError>
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
            Ok(Ok((jid, conn))) => {
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
                return Ok(Some((jid, conn, rx)));
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
    conn: ConnId,
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
                    if ctx.core.send(Input::Client { jid: jid.clone(), conn, stanza: s }).await.is_err() {
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
    // The core ignores it if another connection has bound the JID since (RFC 6120
    // §7.7.2.2; see `ConnId`).
    let _ = ctx.core.send(Input::Unbind { jid, conn }).await;
}
