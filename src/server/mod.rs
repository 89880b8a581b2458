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

mod config;
mod legacy;
mod rfc6121;
mod stanzas;
mod state;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jid::{BareJid, Jid};
use minidom::Element;

pub use config::{Flavour, MULTICAST_LIMIT, MULTICAST_RECEIVE_LIMIT};
pub use stanzas::{
    ADDRESS, Address, Addresses, Kind, Received, Rejected, Stanza, is_multicast, multicast, parse,
};
use state::Volatile;
pub use state::{Bounce, LocalStats, Peer, PeerMode, Persistent};

use crate::model::truth::{DomainState, Resources, View};
use crate::model::{Account, ResourcePresence, Subscription, SubscriptionStanza};
use crate::sim::{Host, SimTime, Transmit};

/// One XMPP domain: its users' accounts and sessions, speaking RFC 6121 to its peers the way
/// its [`Flavour`] does. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Server {
    domain: String,
    flavour: Flavour,
    up: bool,
    persistent: Persistent,
    volatile: Volatile,
    stats: LocalStats,
    bounces: Vec<Bounce>,
}

impl Server {
    /// A running server for `domain`, without users.
    ///
    /// # Panics
    /// If `domain` is not a domain (a bare JID without local part).
    pub fn new(domain: &str, flavour: Flavour) -> Server {
        let valid = BareJid::new(domain).is_ok_and(|j| j.node().is_none());
        assert!(valid, "{domain:?} is not a domain");
        Server {
            domain: domain.to_owned(),
            flavour,
            up: true,
            persistent: Persistent::default(),
            volatile: Volatile::default(),
            stats: LocalStats::default(),
            bounces: Vec::new(),
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

    /// The record of a peer domain this boot has dealt with.
    pub fn peer(&self, domain: &str) -> Option<&Peer> {
        self.volatile.peers.get(domain)
    }

    // ---- set-up (no stanzas) ----

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
        self.account_mut(user).roster.set(contact.clone(), sub);
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
        }
    }

    /// A broadcast or a round of probes to `recipients` of domain `peer`, through its mode.
    fn fan_out_peer(&mut self, peer: &str, from: &Jid, recipients: &[BareJid], kind: &Kind) {
        match self.volatile.peer(peer).mode {
            PeerMode::Legacy => self.legacy_fan_out(peer, from, recipients, kind),
        }
    }

    /// Prosody's clean shutdown: every session ends, so every available resource sends
    /// `unavailable` to every remote subscriber, one stanza per edge (BRIEF §3 row 6).
    fn end_sessions(&mut self) {
        let online: Vec<(BareJid, Vec<String>)> = self
            .volatile
            .online
            .iter()
            .map(|(u, r)| (u.clone(), r.keys().cloned().collect()))
            .collect();
        for (user, resources) in online {
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
                self.fan_out(&from.into(), remote.clone(), &Kind::Unavailable);
            }
        }
    }
}

impl Host for Server {
    fn domain(&self) -> &str {
        &self.domain
    }

    fn handle_link_up(&mut self, now: SimTime, peer: &str) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        let record = self.volatile.peer(peer);
        record.link_up = true;
        match record.mode {
            // RFC 6121 has nothing to say when a link comes up (BRIEF §1).
            PeerMode::Legacy => {}
        }
    }

    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        let record = self.volatile.peer(peer);
        record.link_up = false;
        match record.mode {
            // Neither server sends or changes anything: remote presence stays shown (BRIEF §3
            // row 4).
            PeerMode::Legacy => {}
        }
    }

    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        if !self.up {
            return;
        }
        self.volatile.now = now;
        match self.volatile.peer(peer).mode {
            PeerMode::Legacy => self.legacy_receive(peer, stanza),
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
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.volatile.outgoing.pop_front()
    }

    fn poll_timeout(&self) -> Option<SimTime> {
        None
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
        self.volatile = Volatile::boot(&self.persistent, now);
        self.up = true;
    }
}
