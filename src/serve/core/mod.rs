//! The core task: the one owner of the domain's state. It wraps the sans-IO model server
//! ([`crate::server::Server`]: rosters, RFC 6121, XEP-0191 and the extension's per-peer
//! sessions), feeds it what the connection tasks send ([`Input`]), and carries out what it
//! produces, in an order that keeps every promise made to a client:
//!
//! ```text
//!  c2s / s2s tasks ──Input──► Core::handle ──► Server (local actions, handle_stanza, timers)
//!                                 │
//!     flush: 1. drain Server::poll_client: client stanzas to buffer, changed accounts
//!            2. persist every changed account (one storage transaction), before anything is sent
//!            3. client stanzas (acknowledgements, pushes, presence) to the c2s tasks
//!            4. Server::poll_transmit to the s2s tasks of each peer (a stream error: the
//!               stream to the peer is reopened, see Core::reopen)
//!            5. the timer from Server::poll_timeout
//! ```
//!
//! Nothing a client was told (an iq result, a roster push) can be lost by a crash after it:
//! the account it concerns was committed first. Stanzas for a peer also leave after the
//! commit, so that the peer never learns of a subscription this server could forget.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jid::{BareJid, FullJid, Jid};
use minidom::{Element, Node};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::auth::Credentials;
use super::storage::{ItemMeta, RosterMeta, Storage};
use super::xml::{self, CLIENT, SERVER, STANZAS, el, set};
use crate::engine::Time;
use crate::model::{ResourcePresence, Show, Subscription, SubscriptionStanza};
use crate::server::{ClientOut, Server};

mod client;
mod peer;
use crate::sim::{Host, Transmit};

/// `jabber:iq:roster`.
const ROSTER: &str = "jabber:iq:roster";
/// `urn:xmpp:blocking` (XEP-0191).
const BLOCKING: &str = "urn:xmpp:blocking";
/// `urn:xmpp:ping` (XEP-0199).
const PING: &str = "urn:xmpp:ping";
/// `http://jabber.org/protocol/disco#info` (XEP-0030).
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// `urn:ietf:params:xml:ns:xmpp-session` (RFC 3921 sessions, still asked for by clients).
const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// `urn:xmpp:presence-sync:0`.
const PRESENCE_SYNC: &str = "urn:xmpp:presence-sync:0";
/// Hellos kept per peer while its stream to us is up and ours to it is not yet (a peer sends
/// one at a time, PS-20); beyond, the peer's own timeout and retry recover.
const EARLY_KEPT: usize = 4;

/// What a connection task tells the core.
#[derive(Debug)]
pub enum Input {
    /// A client authenticated as `user` asks for a resource (RFC 6120 §7).
    Bind {
        /// The account.
        user: BareJid,
        /// The resource it asked for, if any.
        resource: Option<String>,
        /// Where its stanzas go.
        tx: mpsc::Sender<ToClient>,
        /// The full JID bound and the connection's [`ConnId`], or why not.
        reply: oneshot::Sender<Result<(FullJid, ConnId), String>>,
    },
    /// A stanza from a bound client.
    Client {
        /// The client.
        jid: FullJid,
        /// The connection it came on.
        conn: ConnId,
        /// The stanza, in `jabber:client`.
        stanza: Element,
    },
    /// A bound client's connection is gone.
    Unbind {
        /// The client.
        jid: FullJid,
        /// The connection that ended.
        conn: ConnId,
    },
    /// XEP-0077: create an account (the c2s task derived its credentials).
    Register {
        /// The account.
        user: BareJid,
        /// Its salted credentials.
        credentials: Credentials,
        /// Created (false: the name is taken), or the storage failed.
        reply: oneshot::Sender<Result<bool, ()>>,
    },
    /// SASL: the stored credentials of `user`.
    Credentials {
        /// The account.
        user: BareJid,
        /// Its credentials (`None`: no such account), or the storage failed.
        reply: oneshot::Sender<Result<Option<Credentials>, ()>>,
    },
    /// Our stream to `peer` is authenticated; `features` are the peer's stream features.
    LinkUp {
        /// The peer domain.
        peer: String,
        /// Its stream features.
        features: Vec<Element>,
    },
    /// Our stream to `peer` is gone.
    LinkDown {
        /// The peer domain.
        peer: String,
    },
    /// A stanza from `peer` on an authenticated stream, in `jabber:server`.
    Peer {
        /// The peer domain.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// A stanza whose `from` is of no domain authenticated on the incoming stream it came
    /// on, where `peer` is authenticated (RFC 6120 §4.9.3.9, XEP PS-71). The s2s task has
    /// already closed that stream with `<invalid-from/>`; the model closes the stream in its
    /// own books (see `Core::reopen` for what follows on our stream to `peer`).
    InvalidFrom {
        /// The domain authenticated on the stream.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// A stanza for `peer` that could not be sent.
    Undeliverable {
        /// The peer domain.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// Stop: announce it to the peers (PS-54), close every stream, then answer.
    Shutdown {
        /// Answered once the streams are closed.
        done: oneshot::Sender<()>,
    },
}

/// The connection a full JID is bound on, given by [`Input::Bind`] and carried by the
/// connection's later [`Input::Client`] and [`Input::Unbind`].
///
/// When a second connection binds a full JID that is already bound, the new session wins (RFC
/// 6120 §7.7.2.2): the old connection is told to close with `<conflict/>` and the JID is bound
/// to the new one. The old connection's task does not know that: whatever it sends until it
/// has read the close (a stanza in flight, and the `Unbind` it sends when it ends) names the
/// same JID, and is ignored because its `ConnId` is not the one bound now. A counter of the
/// core, never reused while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(u64);

/// What the core sends a client task.
#[derive(Debug)]
pub enum ToClient {
    /// A stanza, in `jabber:client`.
    Stanza(Element),
    /// Close the stream with this stream error condition.
    Close(&'static str),
}

/// What the core sends a peer's s2s task.
#[derive(Debug)]
pub enum ToPeer {
    /// A stanza, in `jabber:server`, that waits for the stream if it is down (RFC 6121
    /// traffic between users: it is not tied to one stream).
    Stanza(Element),
    /// A stanza of the extension's session on the link the core counted `.1` LinkUps for
    /// (addressed to the peer's domain: hellos, queries, answers, batches, domain-level
    /// presence, the shutdown announcement). It belongs to that link's session and to no
    /// later one (XEP §Sessions: a session ends when its streams are lost, PS-46): the task
    /// writes it only on the stream of that link, and drops it if that stream is gone.
    Session(Element, u64),
    /// Close the stream cleanly, then answer.
    Close(oneshot::Sender<()>),
    /// Close the stream cleanly and open a new one, as after a loss (an authenticated stream
    /// only; see `Core::reopen`).
    Reopen,
}

/// One bound client.
#[derive(Debug)]
struct Client {
    tx: mpsc::Sender<ToClient>,
    /// The connection it is bound on.
    conn: ConnId,
    /// It asked for the roster: it gets roster pushes (RFC 6121 §2.1.6).
    roster: bool,
    /// It asked for the block list: it gets block pushes (XEP-0191 §3.3).
    blocklist: bool,
    /// It sent initial presence and no unavailable since (RFC 6121 §4.2).
    available: bool,
    /// Its last presence, for the user's other resources.
    presence: Option<ResourcePresence>,
}

/// The core task's state. See the [module documentation](self).
pub struct Core {
    domain: String,
    server: Server,
    store: Storage,
    meta: HashMap<BareJid, RosterMeta>,
    clients: BTreeMap<FullJid, Client>,
    /// The bound resources of each user: the index through which presence, pushes and
    /// broadcasts find a user's clients without a scan of every client.
    by_user: HashMap<BareJid, BTreeSet<FullJid>>,
    /// Peers whose link is up: our stream to them is authenticated (the model's link).
    links_up: BTreeSet<String>,
    /// The [`Input::LinkUp`]s handled per peer: the link a [`ToPeer::Session`] stanza is for.
    link_count: HashMap<String, u64>,
    /// Hellos that arrived on a peer's stream before ours to it was up.
    /// The two streams of a dialback link come up independently. The model learns that the
    /// peer speaks the extension only from the features of our own stream, so a hello that
    /// won the race would reach a server still treating the peer as legacy and be lost
    /// (found on the wire: both servers restarted at once). Kept here and handed to the model
    /// right after the link comes up.
    early: HashMap<String, Vec<Element>>,
    peers: HashMap<String, mpsc::Sender<ToPeer>>,
    origin: Instant,
    /// Client stanzas waiting for the accounts they concern to be committed.
    outbox: Vec<(Jid, Element)>,
    /// Accounts changed by the input being handled.
    dirty: BTreeSet<BareJid>,
    next_id: u64,
    /// The last [`ConnId`] given.
    last_conn: u64,
}

impl Core {
    /// A core for `server`'s domain, with the accounts of `store` loaded into it, the caches
    /// of peers kept at the last graceful stop restored (and deleted from `store`), and client
    /// output enabled.
    pub fn new(
        mut server: Server,
        mut store: Storage,
        peers: HashMap<String, mpsc::Sender<ToPeer>>,
    ) -> Result<Core, super::storage::Error> {
        let mut meta = HashMap::new();
        for stored in store.load()? {
            server.load_account(&stored.user, stored.account);
            meta.insert(stored.user, stored.meta);
        }
        server.enable_client_output();
        // XEP §Persistence of Epochs and Caches: what the last graceful stop kept, now in
        // memory only (PS-81).
        let kept = store.take_caches()?;
        if !kept.is_empty() {
            tracing::info!(
                peers = kept.len(),
                "restoring the caches kept at the last stop"
            );
        }
        server.restore_caches(Time(0), kept);
        Ok(Core {
            domain: Host::domain(&server).to_owned(),
            server,
            store,
            meta,
            clients: BTreeMap::new(),
            by_user: HashMap::new(),
            links_up: BTreeSet::new(),
            link_count: HashMap::new(),
            early: HashMap::new(),
            peers,
            origin: Instant::now(),
            outbox: Vec::new(),
            dirty: BTreeSet::new(),
            next_id: 0,
            last_conn: 0,
        })
    }

    /// The model server (tests).
    pub fn server(&self) -> &Server {
        &self.server
    }

    fn now(&self) -> Time {
        Time(self.origin.elapsed().as_micros() as u64)
    }

    /// The instant of the model's next timer.
    pub fn deadline(&self) -> Option<Instant> {
        self.server
            .poll_timeout()
            .map(|t| self.origin + std::time::Duration::from_micros(t.0))
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("push{}", self.next_id)
    }

    /// Runs the core until a shutdown completes.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        loop {
            let deadline = self.deadline();
            let input = tokio::select! {
                input = rx.recv() => input,
                _ = sleep_until(deadline) => {
                    let now = self.now();
                    self.server.handle_timeout(now);
                    self.flush().await;
                    continue;
                }
            };
            let Some(input) = input else {
                return;
            };
            if let Input::Shutdown { done } = input {
                self.shutdown().await;
                let _ = done.send(());
                return;
            }
            self.handle(input);
            self.flush().await;
        }
    }

    /// Carries out one input (see the [module documentation](self) for what follows).
    pub fn handle(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Bind {
                user,
                resource,
                tx,
                reply,
            } => {
                let _ = reply.send(self.bind(user, resource, tx));
            }
            // A connection that was replaced (see [`ConnId`]) no longer speaks for the JID.
            Input::Client { jid, conn, stanza } => {
                if self.bound_on(&jid, conn) {
                    self.client_stanza(&jid, stanza);
                }
            }
            Input::Unbind { jid, conn } => {
                if self.bound_on(&jid, conn) {
                    self.unbind(&jid);
                }
            }
            Input::Register {
                user,
                credentials,
                reply,
            } => {
                let _ = reply.send(self.register(&user, &credentials));
            }
            Input::Credentials { user, reply } => {
                let found = self.store.credentials(&user).map_err(|e| {
                    tracing::error!("storage: {e}");
                });
                let _ = reply.send(found);
            }
            Input::LinkUp { peer, features } => {
                tracing::info!(%peer, sync = features.iter().any(|f| f.name() == "presence-sync"), "link up");
                *self.link_count.entry(peer.clone()).or_default() += 1;
                self.server.handle_link_up(now, &peer, &features);
                self.links_up.insert(peer.clone());
                for stanza in self.early.remove(&peer).unwrap_or_default() {
                    self.peer_stanza(now, &peer, stanza);
                }
            }
            Input::LinkDown { peer } => {
                tracing::info!(%peer, "link down");
                self.links_up.remove(&peer);
                self.server.handle_link_down(now, &peer);
            }
            Input::Peer { peer, stanza } => {
                // Only a hello waits: anything else of the extension that arrives while our
                // stream is down (a shutdown announcement racing the close of the other
                // stream) is the model's to handle, as the simulator's link delivers it.
                let hello = stanza.name() == "iq"
                    && stanza.attr("type") == Some("set")
                    && stanza.has_child("hello", PRESENCE_SYNC);
                if hello && !self.links_up.contains(&peer) {
                    let kept = self.early.entry(peer.clone()).or_default();
                    if kept.len() < EARLY_KEPT {
                        kept.push(stanza);
                    } else {
                        tracing::warn!(%peer, "hello before the link is up, dropped");
                    }
                } else {
                    self.peer_stanza(now, &peer, stanza);
                }
            }
            Input::InvalidFrom { peer, stanza } => {
                // Straight to the model, never to a client. Its stream-level check rejects it
                // (the `from` is not of `peer`: the s2s task found it of no domain
                // authenticated on the stream), counts it, ends the session as on a link loss
                // (PS-56) and transmits the stream error, which `flush` turns into the
                // reopening of our stream (`reopen`).
                tracing::warn!(%peer, from = ?stanza.attr("from"), "invalid-from on the peer's stream");
                self.server.handle_stanza(now, &peer, stanza);
            }
            Input::Undeliverable { peer, stanza } => {
                self.server.handle_undeliverable(now, &peer, stanza);
            }
            Input::Shutdown { .. } => {}
        }
    }

    // ---- routing ----

    /// Sends a stanza of a local client (in `jabber:client`, `from` set) to `to`: a local
    /// user's clients, or the peer domain.
    fn route(&mut self, to: &Jid, stanza: Element) {
        if to.domain().as_str() == self.domain {
            self.deliver_local(to, stanza);
            return;
        }
        let peer = to.domain().to_string();
        let stanza = renamespace(&stanza, CLIENT, SERVER);
        self.send_peer(&peer, stanza);
    }

    /// Delivers a routed stanza (message, iq, directed presence) to local clients (RFC 6120
    /// §10.5): a full JID to that resource, a bare one to the available resources (messages:
    /// those of non-negative priority, RFC 6121 §8.5.2.1.1); an iq to a bare JID or an
    /// absent resource is answered by the server.
    fn deliver_local(&mut self, to: &Jid, stanza: Element) {
        let stanza = renamespace(&stanza, SERVER, CLIENT);
        let targets: Vec<FullJid> = match to.resource() {
            Some(_) => to
                .clone()
                .try_into_full()
                .ok()
                .filter(|j| self.clients.contains_key(j))
                .into_iter()
                .collect(),
            None => self
                .clients
                .iter()
                .filter(|(j, c)| {
                    j.to_bare().as_str() == to.as_str()
                        && c.available
                        && c.presence.as_ref().is_none_or(|p| p.priority >= 0)
                })
                .map(|(j, _)| j.clone())
                .collect(),
        };
        if targets.is_empty() || (stanza.name() == "iq" && to.resource().is_none()) {
            self.bounce(stanza);
            return;
        }
        for t in targets {
            let mut s = stanza.clone();
            set(&mut s, "to", t.to_string());
            self.outbox.push((Jid::from(t), s));
        }
    }

    /// Answers a stanza nobody can take with `<service-unavailable/>` (RFC 6120 §8.3.3.19),
    /// unless it is itself an error or a result.
    fn bounce(&mut self, stanza: Element) {
        let ty = stanza.attr("type").unwrap_or_default();
        if matches!(ty, "error" | "result") || stanza.name() == "presence" {
            return;
        }
        let (Some(from), Some(to)) = (
            stanza.attr("from").and_then(|f| Jid::new(f).ok()),
            stanza.attr("to").and_then(|t| Jid::new(t).ok()),
        ) else {
            return;
        };
        let mut e = el(stanza.name(), CLIENT)
            .attr("type", "error")
            .attr("from", to.to_string())
            .attr("to", from.to_string())
            .append(
                el("error", CLIENT)
                    .attr("type", "cancel")
                    .append(el("service-unavailable", STANZAS).build())
                    .build(),
            )
            .build();
        if let Some(id) = stanza.attr("id") {
            set(&mut e, "id", id);
        }
        self.route(&from, e);
    }

    // ---- output ----

    fn push_roster(&mut self, user: &BareJid, contact: &BareJid) {
        let sub = self
            .server
            .accounts()
            .get(user)
            .and_then(|a| a.roster.get(contact).copied());
        let item = roster_item(contact, sub.as_ref(), self.meta_of(user, contact));
        let query = el("query", ROSTER).append(item).build();
        let targets: Vec<FullJid> = self
            .sessions_of(user)
            .filter(|(_, c)| c.roster)
            .map(|(j, _)| j.clone())
            .collect();
        for t in targets {
            let id = self.id();
            let iq = iq_element("set", &id, None, &Jid::from(t.clone()), Some(query.clone()));
            self.outbox.push((Jid::from(t), iq));
        }
    }

    fn drain_client_output(&mut self) {
        while let Some(out) = self.server.poll_client() {
            match out {
                ClientOut::AccountChanged(user) => {
                    self.dirty.insert(user);
                }
                ClientOut::RosterPush { user, contact } => self.push_roster(&user, &contact),
                ClientOut::Subscription { user, from, kind } => {
                    let ty = match kind {
                        SubscriptionStanza::Subscribe => "subscribe",
                        SubscriptionStanza::Subscribed => "subscribed",
                        SubscriptionStanza::Unsubscribe => "unsubscribe",
                        SubscriptionStanza::Unsubscribed => "unsubscribed",
                    };
                    for t in self.available_of(&user) {
                        let s = subscription_element(&from, &Jid::from(t.clone()), ty);
                        self.outbox.push((Jid::from(t), s));
                    }
                }
                ClientOut::Presence { to, from, presence } => {
                    let targets: Vec<FullJid> = match to.clone().try_into_full() {
                        Ok(full) => vec![full],
                        Err(bare) => self.available_of(&bare),
                    };
                    for t in targets {
                        let s = presence_element(&from, &Jid::from(t.clone()), presence.as_ref());
                        self.outbox.push((Jid::from(t), s));
                    }
                }
            }
        }
    }

    /// The bound resources of `user` and their state.
    fn sessions_of<'a>(
        &'a self,
        user: &BareJid,
    ) -> impl Iterator<Item = (&'a FullJid, &'a Client)> + 'a {
        self.by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|j| self.clients.get_key_value(j))
    }

    /// Takes `jid` out of the index of bound resources.
    fn forget(&mut self, jid: &FullJid) {
        let user = jid.to_bare();
        if let Some(set) = self.by_user.get_mut(&user) {
            set.remove(jid);
            if set.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }

    fn available_of(&self, user: &BareJid) -> Vec<FullJid> {
        self.sessions_of(user)
            .filter(|(_, c)| c.available)
            .map(|(j, _)| j.clone())
            .collect()
    }

    /// Commits the rosters and block lists of `users` in one transaction.
    fn save(&mut self, users: &BTreeSet<BareJid>) -> Result<(), super::storage::Error> {
        let mut write = self.store.write()?;
        for user in users {
            if let Some(account) = self.server.accounts().get(user) {
                write.save_account(user, account)?;
            }
        }
        write.commit()
    }

    /// Persists, then sends (see the [module documentation](self)).
    pub async fn flush(&mut self) {
        for (at, peer, event) in self.server.take_sync_log() {
            tracing::debug!(%peer, at = %at, "sync: {event:?}");
        }
        self.drain_client_output();
        if !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            if let Err(e) = self.save(&dirty) {
                // Nothing that depends on it may be acknowledged: stop here.
                tracing::error!("storage failed, stopping: {e}");
                std::process::exit(70);
            }
        }
        for (to, stanza) in std::mem::take(&mut self.outbox) {
            let Ok(full) = to.try_into_full() else {
                continue;
            };
            let slow = self
                .clients
                .get(&full)
                .is_some_and(|c| c.tx.try_send(ToClient::Stanza(stanza)).is_err());
            if slow {
                // A client that does not read its stream is disconnected rather than
                // buffered without bound.
                if let Some(c) = self.clients.get(&full) {
                    let _ = c.tx.try_send(ToClient::Close("policy-violation"));
                }
                self.unbind(&full);
            }
        }
        while let Some(Transmit { peer, stanza }) = self.server.poll_transmit() {
            if xml::is_stream_error(&stanza) {
                self.reopen(&peer, &stanza);
                continue;
            }
            self.send_peer(&peer, stanza);
        }
    }

    async fn shutdown(&mut self) {
        let now = self.now();
        tracing::info!("shutting down");
        Host::shutdown(&mut self.server, now);
        if let Err(e) = self.store.keep_caches(self.server.kept_caches()) {
            tracing::error!("storage: the peers' caches were not kept: {e}");
        }
        self.flush().await;
        let clients: Vec<FullJid> = self.clients.keys().cloned().collect();
        for c in clients {
            if let Some(client) = self.clients.remove(&c) {
                let _ = client.tx.try_send(ToClient::Close("system-shutdown"));
            }
            self.forget(&c);
        }
        let mut waits = Vec::new();
        for tx in self.peers.values() {
            let (done, wait) = oneshot::channel();
            if tx.send(ToPeer::Close(done)).await.is_ok() {
                waits.push(wait);
            }
        }
        for w in waits {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), w).await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `stanza` with every element of namespace `from` moved to `to` (the default namespace of
/// a stanza changes between c2s and s2s streams, RFC 6120 §4.8.3). Recursion is bounded by
/// the stream's depth limit.
pub fn renamespace(stanza: &Element, from: &str, to: &str) -> Element {
    let ns = stanza.ns();
    let ns = if ns == from { to.to_owned() } else { ns };
    let mut out = el(stanza.name(), &ns).build();
    *out.attrs_mut() = stanza.attrs().clone();
    for node in stanza.nodes() {
        match node {
            Node::Element(c) => {
                out.append_child(renamespace(c, from, to));
            }
            Node::Text(t) => out.append_text_node(t.clone()),
        }
    }
    out
}

fn iq_element(
    ty: &str,
    id: &str,
    from: Option<&str>,
    to: &Jid,
    payload: Option<Element>,
) -> Element {
    let mut b = el("iq", CLIENT)
        .attr("type", ty)
        .attr("id", id)
        .attr("to", to.to_string());
    if let Some(f) = from {
        b = b.attr("from", f);
    }
    if let Some(p) = payload {
        b = b.append(p);
    }
    b.build()
}

fn subscription_element(from: &BareJid, to: &Jid, ty: &str) -> Element {
    el("presence", CLIENT)
        .attr("from", from.to_string())
        .attr("to", to.to_string())
        .attr("type", ty)
        .build()
}

/// A presence for a client: available with its show, statuses, priority and payloads, or
/// unavailable.
fn presence_element(from: &Jid, to: &Jid, presence: Option<&ResourcePresence>) -> Element {
    let mut b = el("presence", CLIENT)
        .attr("from", from.to_string())
        .attr("to", to.to_string());
    let Some(p) = presence else {
        return b.attr("type", "unavailable").build();
    };
    let show = match p.show {
        Show::Available => None,
        Show::Away => Some("away"),
        Show::Chat => Some("chat"),
        Show::Dnd => Some("dnd"),
        Show::Xa => Some("xa"),
    };
    if let Some(s) = show {
        b = b.append(el("show", CLIENT).append(s).build());
    }
    for (lang, text) in &p.statuses {
        let mut s = el("status", CLIENT);
        if !lang.is_empty() {
            s = s.lang(lang);
        }
        b = b.append(s.append(text.as_str()).build());
    }
    if p.priority != 0 {
        b = b.append(
            el("priority", CLIENT)
                .append(p.priority.to_string())
                .build(),
        );
    }
    for e in &p.extensions {
        b = b.append(e.clone());
    }
    b.build()
}

/// A roster item (RFC 6121 §2.1.2): `subscription` and `ask` from the model's state; no state
/// means `subscription='remove'`.
fn roster_item(contact: &BareJid, sub: Option<&Subscription>, meta: Option<&ItemMeta>) -> Element {
    let mut b = el("item", ROSTER).attr("jid", contact.to_string());
    let Some(s) = sub else {
        return b.attr("subscription", "remove").build();
    };
    let name = match (s.to(), s.from()) {
        (true, true) => "both",
        (true, false) => "to",
        (false, true) => "from",
        (false, false) => "none",
    };
    b = b.attr("subscription", name);
    if s.pending_out() {
        b = b.attr("ask", "subscribe");
    }
    if let Some(m) = meta {
        if let Some(n) = &m.name {
            b = b.attr("name", n.as_str());
        }
        for g in &m.groups {
            b = b.append(el("group", ROSTER).append(g.as_str()).build());
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NamedState;
    use crate::server::{Flavour, SyncSetup};
    use crate::sim::SimTime;

    /// A hello that arrives on the peer's stream before our own stream to the peer is up is
    /// kept and handed to the model once the link is up, rather than lost to a model that
    /// still treats the peer as legacy (seen on the wire when both servers restarted at once).
    #[test]
    fn a_hello_that_wins_the_race_with_our_stream_is_kept_until_the_link_is_up() {
        // a.test is the edge driver (PS-16): it sends its hello as soon as its link is up,
        // since the two share an edge (PS-93).
        let mut a = Server::with_sync("a.test", Flavour::Prosody, SyncSetup::every_peer(), 1);
        let mut b = Server::with_sync("b.test", Flavour::Prosody, SyncSetup::every_peer(), 2);
        let u = BareJid::new("u@a.test").expect("a JID");
        let v = BareJid::new("v@b.test").expect("a JID");
        a.add_user(&u);
        a.set_roster_item(&u, &v, Subscription::named(NamedState::To));
        b.add_user(&v);
        b.set_roster_item(&v, &u, Subscription::named(NamedState::From));
        a.handle_link_up(SimTime(0), "b.test", &Host::stream_features(&b));
        let hello = a.poll_transmit().expect("the driver's hello").stanza;
        assert!(hello.has_child("hello", PRESENCE_SYNC));

        let (tx, _rx) = mpsc::channel(16);
        let store = Storage::open_in_memory().expect("an in-memory database");
        let peers = HashMap::from([("a.test".to_owned(), tx)]);
        let mut core = Core::new(b, store, peers).expect("a core");
        core.handle(Input::Peer {
            peer: "a.test".into(),
            stanza: hello,
        });
        assert!(
            core.server()
                .session("a.test")
                .is_none_or(|s| !s.is_synchronized()),
            "nothing happens before the link is up"
        );
        core.handle(Input::LinkUp {
            peer: "a.test".into(),
            features: Host::stream_features(&a),
        });
        let session = core.server().session("a.test").expect("a session");
        assert!(
            session.is_synchronized(),
            "the kept hello was answered: nothing differs between the two servers"
        );
    }
}
