//! A model XMPP server for one domain: users, rosters, sessions and RFC 6121 presence, with the
//! baseline behaviours of Prosody 0.12 and ejabberd 23.x (BRIEF §3), as a sans-IO [`Host`].
//!
//! This is what the extension is measured against, and the unit the simulation restarts.
//!
//! # State
//!
//! [`Persistent`] (accounts: rosters and block lists) is strictly apart from the volatile state
//! (sessions, presence, what each user's clients have been shown, the outgoing queue, per-peer
//! records). [`Host::crash`] drops the volatile state; [`Host::restart`] boots a fresh one from
//! the persistent state: every user is offline until the scenario logs them in again.
//!
//! # Methods, in the order a driver and a scenario use them
//!
//! - **Set-up** (no stanzas): [`Server::new`], [`Server::add_user`],
//!   [`Server::set_roster_item`].
//! - **Local actions** of users' clients, called by scenarios between driver steps; their
//!   stanzas wait in the outgoing queue: [`Server::login`], [`Server::set_presence`],
//!   [`Server::logout`], [`Server::subscribe`], [`Server::approve`], [`Server::unsubscribe`],
//!   [`Server::deny`], [`Server::block`], [`Server::unblock`]. A server that is down ignores
//!   them (its clients cannot connect).
//! - **Inputs** from the driver: the `handle_*` methods of [`Host`], `crash`, `shutdown`,
//!   `restart`.
//! - **Outputs**: [`Host::poll_transmit`] until `None` (there are no timers in RFC 6121).
//! - **Getters**: [`Server::view`], [`Server::views`], [`Server::online`],
//!   [`Server::accounts`], [`Server::domain_state`] (for [`crate::model::truth`]),
//!   [`Server::stats`], [`Server::bounces`].
//!
//! # Data flow
//!
//! ```text
//!  local action ──► rfc6121.rs (RFC 6121 §3/§4, XEP-0191; Flavour choices)
//!                     │ route(stanza) ── local recipient ──► receive(stanza) ──► views, stats
//!                     │ fan_out(recipients)                     ▲
//!                     ▼                                         │ checked, expanded
//!            per-peer dispatch (PeerMode)                       │
//!                     │ Legacy: legacy.rs                handle_stanza ◄── driver
//!                     ▼   one stanza per edge, or XEP-0033 groups of 20
//!              outgoing queue ──► poll_transmit ──► driver
//! ```
//!
//! Before either, every received stanza passes the stream-level checks of `s2s.rs`: a `from`
//! outside the peer domain closes the stream with `<invalid-from/>` (RFC 6120 §4.9.3.9, XEP
//! PS-71), a disco#info query to the domain is answered (XEP-0030, PS-1).
//!
//! # Where the model departs from the servers it imitates
//!
//! - Subscription stanzas are routed exactly when RFC 6121 Appendix A.2 says so; ejabberd
//!   routes all four types always, Prosody routes some redundant ones.
//! - An approved pre-approval (RFC 6121 §3.4) sends the user's presence to the new subscriber,
//!   as any other approval does (§3.1.5); Prosody 0.12 mishandles pre-approvals.
//! - Unblocking a contact the user is subscribed to probes it, so that the user's clients show
//!   it again; Prosody and ejabberd leave it unshown until its next presence change.
//! - Both flavours receive XEP-0033 stanzas, and a multicast sender groups without first
//!   discovering (disco#info) whether the peer supports XEP-0033, as ejabberd would.
//! - A stanza the driver could not deliver is recorded ([`Server::bounces`]), not returned to
//!   the local sender as an error; it changes nothing shown to clients.

mod client;
mod config;
mod legacy;
mod rfc6121;
mod s2s;
mod stanzas;
mod state;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use jid::{BareJid, Jid};
use minidom::Element;

pub use client::ClientOut;
pub use config::{Flavour, MULTICAST_LIMIT, MULTICAST_RECEIVE_LIMIT};
pub use stanzas::{
    ADDRESS, Address, Addresses, DELAY, Extra, Kind, Received, Rejected, SHUTDOWN_STATUS, STAMP,
    Stanza, is_multicast, multicast, parse,
};
use state::Volatile;
pub use state::{Bounce, LocalStats, Peer, PeerMode, Persistent};
pub use sync::KeptCache;

use crate::engine::session::{
    ActiveFirst, Config as SyncConfig, Event, Mutation, PriorityPolicy, Session,
};
use crate::model::Epoch;
use crate::model::truth::{DomainState, Resources, View};
use crate::model::{Account, ResourcePresence, Subscription, SubscriptionStanza};
use crate::sim::{Host, SimTime, Transmit};
use crate::workload::SplitMix64;

/// The ground truth for the online users of `servers` ([`crate::model::truth::entitled`]
/// restricted to users who are online now), and the differences between it and what the
/// servers show them (empty when every online user sees exactly what it is entitled to:
/// nothing missing, nothing stale, nothing leaked).
pub fn check_views(servers: &[&Server]) -> (View, Vec<String>) {
    let online: std::collections::BTreeSet<&BareJid> =
        servers.iter().flat_map(|s| s.online().keys()).collect();
    let states: Vec<DomainState<'_>> = servers.iter().map(|s| s.domain_state()).collect();
    let truth = crate::model::truth::entitled_viewers(&states, |v| online.contains(v));
    let mut shown = View::new();
    for s in servers {
        shown.extend(s.views());
    }
    let diff = crate::model::truth::differences(&truth, &shown);
    (truth, diff)
}

/// One XMPP domain: its users' accounts and sessions, speaking RFC 6121 to its peers the way
/// its [`Flavour`] does. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Server {
    domain: String,
    flavour: Flavour,
    /// The extension, if enabled (None: RFC 6121 only).
    sync: Option<SyncSetup>,
    /// Seed of the epochs this server draws (the simulation's stand-in for a CSPRNG).
    seed: u64,
    /// Boots so far (the first run is boot 0).
    boots: u64,
    up: bool,
    persistent: Persistent,
    /// The caches of peers' presence kept across a restart, if [`SyncSetup::persist_caches`]
    /// (XEP §Persistence of Epochs and Caches): written at a graceful stop, taken at the next
    /// boot. On disk in a real server, beside [`Persistent`].
    kept_caches: Vec<sync::KeptCache>,
    volatile: Volatile,
    stats: LocalStats,
    bounces: Vec<Bounce>,
    sync_log: Vec<(SimTime, String, Event)>,
    /// Presence deliveries to clients since the server was made (never reset).
    deliveries: u64,
    /// What clients must be told, when a real c2s layer drives the server
    /// ([`Server::enable_client_output`]); `None` in the simulation.
    client_out: Option<std::collections::VecDeque<ClientOut>>,
}

/// How a server runs the extension: the session tunables and the priority policy.
#[derive(Clone, Debug)]
pub struct SyncSetup {
    /// Session tunables (XEP defaults by default).
    pub config: SyncConfig,
    /// Whose contacts are pulled first (XEP §Priority Ordering); [`ActiveFirst`] by default.
    pub policy: Arc<dyn PriorityPolicy>,
    /// Keep the caches of the peers' presence across a graceful restart (XEP §Persistence of
    /// Epochs and Caches, PS-81); off by default.
    pub persist_caches: bool,
}

impl Default for SyncSetup {
    fn default() -> SyncSetup {
        SyncSetup {
            config: SyncConfig::default(),
            policy: Arc::new(ActiveFirst),
            persist_caches: false,
        }
    }
}

impl SyncSetup {
    /// The XEP defaults except the small-peer threshold (PS-93), which is 0: a session with
    /// every peer that shares an edge. For the small worlds of tests and of the conformance
    /// suite's own peers, where a session must exist to be tested.
    pub fn every_peer() -> SyncSetup {
        let mut setup = SyncSetup::default();
        setup.config.small_peer = 0;
        setup
    }
}

impl Server {
    /// A running server for `domain`, without users.
    ///
    /// # Panics
    /// If `domain` is not a domain (a bare JID without local part).
    pub fn new(domain: &str, flavour: Flavour) -> Server {
        let valid = BareJid::new(domain).is_ok_and(|j| j.node().is_none());
        assert!(valid, "{domain:?} is not a domain");
        let mut server = Server {
            domain: domain.to_owned(),
            flavour,
            sync: None,
            seed: 0,
            boots: 0,
            up: true,
            persistent: Persistent::default(),
            kept_caches: Vec::new(),
            volatile: Volatile::default(),
            stats: LocalStats::default(),
            bounces: Vec::new(),
            sync_log: Vec::new(),
            deliveries: 0,
            client_out: None,
        };
        server.volatile.epoch = server.draw_epoch();
        server
    }

    /// A running server for `domain` that runs the extension with every peer that advertises
    /// it, and RFC 6121 as `flavour` does with the others. `seed` makes its epochs
    /// reproducible.
    pub fn with_sync(domain: &str, flavour: Flavour, setup: SyncSetup, seed: u64) -> Server {
        let mut server = Server::new(domain, flavour);
        server.sync = Some(setup);
        server.seed = seed;
        server.volatile.epoch = server.draw_epoch();
        server
    }

    /// The epoch of the current boot (PS-12): random, from the seed, the domain and the boot
    /// number, so that every run of a scenario draws the same ones.
    fn draw_epoch(&self) -> Epoch {
        let mut h = self.seed ^ self.boots.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in self.domain.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Epoch(SplitMix64::new(h).next_u64())
    }

    /// From now on, queue what users' clients must be told and which accounts changed
    /// ([`ClientOut`], drained with [`Server::poll_client`]): for a real c2s layer.
    pub fn enable_client_output(&mut self) {
        self.client_out.get_or_insert_with(Default::default);
    }

    /// The next thing for clients or storage, if client output is enabled.
    pub fn poll_client(&mut self) -> Option<ClientOut> {
        self.client_out.as_mut()?.pop_front()
    }

    /// Queues `out` if client output is enabled.
    pub(super) fn tell(&mut self, out: impl FnOnce() -> ClientOut) {
        if let Some(q) = &mut self.client_out {
            q.push_back(out());
        }
    }

    // ---- getters ----

    /// The flavour.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// True unless crashed or shut down (and not restarted since).
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The time of the latest input from the driver (local actions take none).
    pub fn now(&self) -> SimTime {
        self.volatile.now
    }

    /// The clock moved on to `now` (never back): local actions that follow happen then. A
    /// driver calls it before a local action, as a real server would read its clock; without
    /// it, a request sent by a local action after a quiet period would seem old at once.
    pub fn set_clock(&mut self, now: SimTime) {
        self.volatile.now = self.volatile.now.max(now);
    }

    /// What survives a restart.
    pub fn persistent(&self) -> &Persistent {
        &self.persistent
    }

    /// Rosters and block lists of the local users.
    pub fn accounts(&self) -> &BTreeMap<BareJid, Account> {
        &self.persistent.accounts
    }

    /// Available resources of each online user.
    pub fn online(&self) -> &BTreeMap<BareJid, Resources> {
        &self.volatile.online
    }

    /// What `user`'s clients have been shown of each contact's presence: contact → its
    /// available resources. Empty for an offline user.
    pub fn view(&self, user: &BareJid) -> BTreeMap<BareJid, Resources> {
        self.volatile.views.get(user).cloned().unwrap_or_default()
    }

    /// [`Server::view`] without copying; `None` if `user` was shown nothing.
    pub fn view_ref(&self, user: &BareJid) -> Option<&BTreeMap<BareJid, Resources>> {
        self.volatile.views.get(user)
    }

    /// Presence deliveries to local clients since the server was made: like
    /// [`LocalStats::presence_delivered`], but never reset.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    /// [`Server::view`] of every online user that is shown something, in the shape of
    /// [`crate::model::truth::View`].
    pub fn views(&self) -> View {
        self.volatile
            .views
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(u, v)| (u.clone(), v.clone()))
            .collect()
    }

    /// This domain as the ground-truth oracle sees it ([`crate::model::truth::entitled`]).
    pub fn domain_state(&self) -> DomainState<'_> {
        DomainState {
            domain: &self.domain,
            accounts: &self.persistent.accounts,
            online: &self.volatile.online,
        }
    }

    /// Local counters (they survive crashes).
    pub fn stats(&self) -> &LocalStats {
        &self.stats
    }

    /// Zeroes [`Server::stats`] and forgets [`Server::bounces`].
    pub fn reset_stats(&mut self) {
        self.stats = LocalStats::default();
        self.bounces.clear();
    }

    /// Stanzas the driver reported undeliverable, oldest first.
    pub fn bounces(&self) -> &[Bounce] {
        &self.bounces
    }

    /// Sets this boot's epoch: for a real server, whose epochs come from its storage
    /// (drawn from the operating system's generator and committed before use, PS-12) rather
    /// than from the seed. Call before the first link comes up.
    pub fn set_epoch(&mut self, epoch: Epoch) {
        self.volatile.epoch = epoch;
    }

    /// This run's epoch.
    pub fn epoch(&self) -> Epoch {
        self.volatile.epoch
    }

    /// The extension's session with `peer`, if one exists in this boot.
    pub fn session(&self, peer: &str) -> Option<&Session> {
        self.volatile.sessions.get(peer)
    }

    /// What the sessions reported, oldest first (deliveries excepted): milestones, repairs,
    /// errors, fallbacks. Survives crashes (instrumentation).
    pub fn sync_log(&self) -> &[(SimTime, String, Event)] {
        &self.sync_log
    }

    /// Takes what the sessions reported since the last call (a long-running server logs it and
    /// lets it go, rather than keep it for the whole of its life).
    pub fn take_sync_log(&mut self) -> Vec<(SimTime, String, Event)> {
        std::mem::take(&mut self.sync_log)
    }

    /// The record of a peer domain this boot has dealt with.
    pub fn peer(&self, domain: &str) -> Option<&Peer> {
        self.volatile.peers.get(domain)
    }

    // ---- set-up (no stanzas) ----

    /// Installs `user`'s account as storage kept it (boot of a real server): no stanza, no
    /// push, nothing shown.
    ///
    /// # Panics
    /// If `user` is not a user of this domain.
    pub fn load_account(&mut self, user: &BareJid, account: Account) {
        let ours = user.node().is_some() && user.domain().as_str() == self.domain;
        assert!(ours, "{user} is not a user of {}", self.domain);
        // What a boot derives from the accounts (Volatile::boot), for this one: the index of
        // local users by remote contact, through which cached presence reaches them.
        for (contact, _) in account.roster.iter() {
            if contact.domain() != user.domain() {
                self.volatile.watch(user, contact);
            }
        }
        self.persistent.accounts.insert(user.clone(), account);
    }

    /// Creates an account for `user` with an empty roster (nothing if it exists).
    ///
    /// # Panics
    /// If `user` is not a user of this domain.
    pub fn add_user(&mut self, user: &BareJid) {
        let ours = user.node().is_some() && user.domain().as_str() == self.domain;
        assert!(ours, "{user} is not a user of {}", self.domain);
        self.persistent.accounts.entry(user.clone()).or_default();
    }

    /// Sets `user`'s roster item for `contact`, as a restored backup or a workload generator
    /// would: no stanza, no roster push, and what online clients are shown is not updated.
    ///
    /// # Panics
    /// If `user` has no account.
    pub fn set_roster_item(&mut self, user: &BareJid, contact: &BareJid, sub: Subscription) {
        let before = self.account(user).roster.get(contact).copied();
        self.account_mut(user).roster.set(contact.clone(), sub);
        self.roster_changed(user, contact, before.unwrap_or_default(), sub);
    }

    /// `user` adds `contact` to its roster without a subscription (RFC 6121 §2.3): an item of
    /// state `none`, pushed to its clients. Nothing if the item exists.
    pub fn roster_add(&mut self, user: &BareJid, contact: &BareJid) {
        if !self.up || user == contact || self.account(user).roster.get(contact).is_some() {
            return;
        }
        self.account_mut(user)
            .roster
            .set(contact.clone(), Subscription::default());
        self.push(user, contact);
        self.roster_changed(
            user,
            contact,
            Subscription::default(),
            Subscription::default(),
        );
    }

    /// `user` removes `contact` from its roster (RFC 6121 §2.5.2): `unsubscribe` if it was
    /// subscribed or asking, `unsubscribed` if the contact was subscribed or asking, then the
    /// item is gone (pushed as `subscription='remove'`).
    pub fn roster_remove(&mut self, user: &BareJid, contact: &BareJid) {
        if !self.up {
            return;
        }
        let Some(sub) = self.account(user).roster.get(contact).copied() else {
            return;
        };
        if sub.to() || sub.pending_out() {
            self.outbound(user, contact, SubscriptionStanza::Unsubscribe);
        }
        if sub.from() || sub.pending_in() || sub.approved() {
            self.outbound(user, contact, SubscriptionStanza::Unsubscribed);
        }
        let before = self.account(user).roster.get(contact).copied();
        if self.account_mut(user).roster.remove(contact).is_some() {
            self.push(user, contact);
            self.roster_changed(
                user,
                contact,
                before.unwrap_or_default(),
                Subscription::default(),
            );
        }
    }

    /// Marks online `user` as active now or not (XEP §Priority Ordering): the contacts of
    /// active users are synchronized first. Becoming active moves the user's contacts to the
    /// front of the pulls in progress.
    pub fn set_active(&mut self, user: &BareJid, active: bool) {
        if !self.up {
            return;
        }
        if !active {
            self.volatile.active.remove(user);
            return;
        }
        if !self.volatile.active.insert(user.clone()) {
            return;
        }
        let account = self.account(user);
        let mut by_peer: BTreeMap<String, Vec<BareJid>> = BTreeMap::new();
        for (c, _) in account.roster.iter().filter(|(c, _)| account.sees(c)) {
            by_peer
                .entry(c.domain().to_string())
                .or_default()
                .push(c.clone());
        }
        for (peer, contacts) in by_peer {
            if let Some(s) = self.volatile.sessions.get_mut(&peer) {
                s.want(&contacts, true);
            }
            self.drain_session(&peer);
        }
    }

    /// Online users marked active.
    pub fn active(&self) -> &std::collections::BTreeSet<BareJid> {
        &self.volatile.active
    }

    // ---- local actions ----
    //
    // Each panics if the user has no account, and does nothing while the server is down.

    /// `user` logs in a session on `resource` and sends initial presence (RFC 6121 §4.2): a
    /// broadcast to its subscribers and probes to the contacts it is subscribed to (§4.3.1).
    /// Same as [`Server::set_presence`].
    pub fn login(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        self.set_presence(user, resource, presence);
    }

    /// `user/resource` sends available presence: initial presence (§4.2) if the resource was
    /// not available, else a presence update broadcast (§4.4).
    pub fn set_presence(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        if self.up {
            self.presence(user, resource, presence);
        }
    }

    /// `user/resource` sends unavailable presence and ends its session (§4.5).
    pub fn logout(&mut self, user: &BareJid, resource: &str) {
        if self.up {
            let _ = self.account(user);
            self.unavailable(user, resource);
        }
    }

    /// `user` asks for `contact`'s presence (outbound `subscribe`, §3.1).
    pub fn subscribe(&mut self, user: &BareJid, contact: &BareJid) {
        self.action(user, contact, SubscriptionStanza::Subscribe);
    }

    /// `user` approves `contact`'s request, or pre-approves it (outbound `subscribed`, §3.1.5,
    /// §3.4).
    pub fn approve(&mut self, user: &BareJid, contact: &BareJid) {
        self.action(user, contact, SubscriptionStanza::Subscribed);
    }

    /// `user` stops receiving `contact`'s presence (outbound `unsubscribe`, §3.3).
    pub fn unsubscribe(&mut self, user: &BareJid, contact: &BareJid) {
        self.action(user, contact, SubscriptionStanza::Unsubscribe);
    }

    /// `user` denies `contact`'s request or cancels its subscription (outbound `unsubscribed`,
    /// §3.2).
    pub fn deny(&mut self, user: &BareJid, contact: &BareJid) {
        self.action(user, contact, SubscriptionStanza::Unsubscribed);
    }

    fn action(&mut self, user: &BareJid, contact: &BareJid, kind: SubscriptionStanza) {
        if self.up {
            self.outbound(user, contact, kind);
        }
    }

    /// `user` blocks `jid`, a bare JID or a domain (XEP-0191 §3.3).
    pub fn block(&mut self, user: &BareJid, jid: &BareJid) {
        if self.up {
            self.block_jid(user, jid);
        }
    }

    /// `user` unblocks `jid` (XEP-0191 §3.4).
    pub fn unblock(&mut self, user: &BareJid, jid: &BareJid) {
        if self.up {
            self.unblock_jid(user, jid);
        }
    }

    // ---- per-peer dispatch ----

    fn transmit(&mut self, peer: &str, stanza: Element) {
        self.volatile.outgoing.push_back(Transmit {
            peer: peer.to_owned(),
            stanza,
        });
    }

    /// One stanza for a remote JID, through its domain's peer mode.
    fn send(&mut self, stanza: Stanza) {
        let peer = stanza.to.domain().to_string();
        match self.volatile.peer(&peer).mode {
            PeerMode::Legacy => self.legacy_send(&peer, stanza),
            PeerMode::Sync => match stanza.kind {
                // PS-66: the probe is served from the cache.
                Kind::Probe => {
                    let user = stanza.from.to_bare();
                    self.serve_from_cache(&peer, &user, &[stanza.to.to_bare()]);
                }
                // PS-49, PS-66: presence along a subscription change or a block travels at
                // domain level (the session's published set), not per edge.
                Kind::Available(_) | Kind::Unavailable => {}
                Kind::Subscription(_) | Kind::Error => self.legacy_send(&peer, stanza),
            },
        }
    }

    /// Sends an answer to a probe: per edge in every mode (PS-67).
    fn send_answer(&mut self, stanza: Stanza) {
        let peer = stanza.to.domain().to_string();
        self.legacy_send(&peer, stanza);
    }

    /// A broadcast or a round of probes to `recipients` of domain `peer`, through its mode.
    fn fan_out_peer(
        &mut self,
        peer: &str,
        from: &Jid,
        recipients: &[BareJid],
        kind: &Kind,
        extra: Extra,
    ) {
        match self.volatile.peer(peer).mode {
            PeerMode::Legacy => self.legacy_fan_out(peer, from, recipients, kind, extra),
            // Broadcasts need nothing here: the caller updated the published state
            // (`sync_publish`), which crosses the link once (PS-45).
            PeerMode::Sync => {
                if *kind == Kind::Probe {
                    let user = from.to_bare();
                    self.serve_from_cache(peer, &user, recipients);
                } else if self.mutation() == Some(Mutation::PerEdgePresence) {
                    self.legacy_fan_out(peer, from, recipients, kind, extra);
                }
            }
        }
    }

    /// RFC 6121 towards `peer` for `user`, as if its `resources` had just logged in: probes
    /// to its contacts there, its presence to its subscribers there (PS-58), and the re-send
    /// of its pending subscription requests there that the session made needless (PS-87).
    fn legacy_login_towards(&mut self, peer: &str, user: &BareJid, resources: &[String]) {
        let account = self.account(user);
        let contacts: Vec<BareJid> = account
            .roster
            .iter()
            .filter(|(c, _)| c.domain().as_str() == peer && account.sees(c))
            .map(|(c, _)| c.clone())
            .collect();
        let subscribers: Vec<BareJid> = account
            .roster
            .iter()
            .filter(|(c, _)| c.domain().as_str() == peer && account.publishes_to(c))
            .map(|(c, _)| c.clone())
            .collect();
        let online = self.volatile.online.get(user).cloned().unwrap_or_default();
        for resource in resources {
            let Some(presence) = online.get(resource) else {
                continue;
            };
            let from: Jid = user
                .with_resource_str(resource)
                .expect("valid resource")
                .into();
            if !contacts.is_empty() {
                self.legacy_fan_out(peer, &from, &contacts, &Kind::Probe, Extra::None);
            }
            if !subscribers.is_empty() {
                self.legacy_fan_out(
                    peer,
                    &from,
                    &subscribers,
                    &Kind::Available(presence.clone()),
                    Extra::None,
                );
            }
        }
        self.resend_pending(user, |_, contact| contact.domain().as_str() == peer);
    }

    /// Each online user with the names of its available resources (a snapshot to act on).
    fn online_resources(&self) -> Vec<(BareJid, Vec<String>)> {
        self.volatile
            .online
            .iter()
            .map(|(u, r)| (u.clone(), r.keys().cloned().collect()))
            .collect()
    }

    /// Prosody's clean shutdown: every session ends, so every available resource sends
    /// `unavailable`, with [`SHUTDOWN_STATUS`](stanzas::SHUTDOWN_STATUS), to every remote
    /// subscriber, one stanza per edge (BRIEF §3 row 6).
    fn end_sessions(&mut self) {
        for (user, resources) in self.online_resources() {
            let account = self.account(&user);
            let remote: Vec<BareJid> = account
                .roster
                .iter()
                .filter(|(c, _)| c.domain().as_str() != self.domain && account.publishes_to(c))
                .map(|(c, _)| c.clone())
                .collect();
            for resource in resources {
                // Resources were valid when the session logged in.
                let from = user.with_resource_str(&resource).expect("valid resource");
                let (kind, extra) = (Kind::Unavailable, Extra::ShutdownStatus);
                self.fan_out_with(&from.into(), remote.clone(), &kind, extra);
            }
        }
    }
}

impl Host for Server {
    fn domain(&self) -> &str {
        &self.domain
    }

    fn stream_features(&self) -> Vec<Element> {
        self.sync_features()
    }

    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        let record = self.volatile.peer(peer);
        record.link_up = true;
        record.stream_closed = false;
        // RFC 6121 has nothing to say when a link comes up (BRIEF §1); the extension starts
        // a session if both sides advertise it.
        self.sync_link_up(now, peer, features);
    }

    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        let record = self.volatile.peer(peer);
        record.link_up = false;
        match record.mode {
            // A peer that probed (see `probed`): the session it kept aside is suspended as in
            // the sync mode, and the next link starts over.
            PeerMode::Legacy if record.probed => {
                record.probed = false;
                record.mode = PeerMode::Sync;
                self.sync_link_down(now, peer);
            }
            // Neither server sends or changes anything: remote presence stays shown (BRIEF §3
            // row 4).
            PeerMode::Legacy => {}
            // The session is suspended; the grace period starts (PS-56).
            PeerMode::Sync => self.sync_link_down(now, peer),
        }
    }

    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        // The `from` check of RFC 6120 (PS-71), disco#info (PS-1), bad repair markers (PS-70).
        if self.s2s_receive(now, peer, &stanza) {
            return;
        }
        // PS-67 (PS-66, PS-93): a server in the sync or suspended mode never probes, so a
        // probe from the peer while no session is established says that the peer applies RFC
        // 6121 with this server (its threshold is higher, or it fell back): so does this
        // server, until a session starts. Otherwise this server's presence changes, and the unavailable
        // presence of its shutdown, would reach the peer's users by no path at all.
        let session_mode = self.volatile.sessions.get(peer).map(Session::mode);
        let is_probe = stanza.name() == "presence" && stanza.attr("type") == Some("probe");
        if is_probe
            && self.volatile.peer(peer).mode == PeerMode::Sync
            && session_mode != Some(crate::engine::Mode::Synchronized)
        {
            let record = self.volatile.peer(peer);
            record.probed = true;
            record.mode = PeerMode::Legacy;
        }
        // A small peer (PS-93), or one that probed, is in the legacy mode here but its session
        // answers a hello.
        let small =
            session_mode == Some(crate::engine::Mode::Small) || self.volatile.peer(peer).probed;
        match self.volatile.peer(peer).mode {
            // A request of the extension from a peer this server gave up on (PS-38) is
            // refused by its session (PS-69), so that the peer's session ends too.
            PeerMode::Legacy if !small => {
                let refused = stanza.name() == "iq"
                    && stanza.attr("type") == Some("set")
                    && self.sync_receive(now, peer, &stanza);
                if !refused {
                    self.legacy_receive(peer, stanza);
                }
            }
            PeerMode::Legacy | PeerMode::Sync => {
                if !self.sync_receive(now, peer, &stanza) {
                    self.legacy_receive(peer, stanza);
                }
            }
        }
    }

    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.stats.bounced += 1;
        self.bounces.push(Bounce {
            at: now,
            peer: peer.to_owned(),
            stanza,
        });
    }

    fn handle_timeout(&mut self, now: SimTime) {
        if self.up {
            self.volatile.now = now;
            self.sync_timeout(now);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.volatile.outgoing.pop_front()
    }

    fn poll_timeout(&self) -> Option<SimTime> {
        if !self.up {
            return None;
        }
        self.sync_poll_timeout()
    }

    fn crash(&mut self, now: SimTime) {
        self.up = false;
        self.volatile = Volatile::default();
        self.volatile.now = now;
    }

    fn shutdown(&mut self, now: SimTime) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        self.keep_caches();
        // PS-54: one message per synchronized peer, before the stream closes.
        self.sync_shutdown(false);
        if self.flavour.unavailable_on_shutdown() {
            self.end_sessions();
        }
        // The last stanzas stay queued for the driver to drain; everything else is gone.
        let last = std::mem::take(&mut self.volatile.outgoing);
        self.volatile = Volatile::default();
        self.volatile.now = now;
        self.volatile.outgoing = last;
        self.up = false;
    }

    fn restart(&mut self, now: SimTime) {
        // PS-12: a run without the previous run's user sessions has a new epoch.
        self.boots += 1;
        let epoch = self.draw_epoch();
        self.volatile = Volatile::boot(&self.persistent, now, epoch);
        self.up = true;
        let kept = std::mem::take(&mut self.kept_caches);
        self.restore_caches(now, kept);
    }
}
