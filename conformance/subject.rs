//! The implementation under test, as the scenarios drive it.
//!
//! The suite tests *an implementation* of the XEP, not our engine: every scenario builds its
//! servers through an [`Implementation`] and talks to them only through [`Subject`], which is
//! what a test harness can do with any XMPP server:
//!
//! - the [`Host`] contract of the deterministic driver (s2s stanzas in and out, link up and
//!   down, timers, crash, shutdown and restart);
//! - provisioning, as an administrator would (accounts, roster items restored from a backup);
//! - what users' clients do (log in and out, send presence, subscription requests, blocks) and
//!   which users are active;
//! - observation, as clients and the administrator see it: rosters and block lists, which
//!   resources are online, and what each online user's clients have been shown.
//!
//! The ground truth of the checks is computed from the observed rosters, block lists and
//! online resources by [`crate::model::truth::entitled`], which knows RFC 6121 and XEP-0191
//! and nothing of the extension.
//!
//! [`Reference`] wraps this crate's [`Server`] with the engine; the broken variants of
//! [`super::mutants`] wrap it with one deliberate fault each. A server written in another
//! language is tested by wrapping a bridge to it (its s2s traffic as elements, its client
//! actions and observations as calls) in a [`Subject`].

use std::collections::BTreeMap;
use std::sync::Arc;

use jid::BareJid;

use crate::engine::session::{Mutation, PriorityPolicy};
use crate::model::truth::{DomainState, Resources};
use crate::model::{Account, ResourcePresence, Subscription};
use crate::server::{Flavour, Server, SyncSetup};
use crate::sim::{Host, SimTime};

/// A server for one domain, as the scenarios drive and observe it.
pub trait Subject: Host {
    // ---- provisioning (no stanzas) ----

    /// Creates an account for `user` (a user of this domain) with an empty roster.
    fn add_user(&mut self, user: &BareJid);

    /// Sets `user`'s roster item for `contact` without stanzas or pushes, as a restored backup
    /// or a provisioning tool does.
    fn set_roster_item(&mut self, user: &BareJid, contact: &BareJid, sub: Subscription);

    // ---- users' clients (ignored while the server is down) ----

    /// `user` logs in on `resource` with initial presence `presence`.
    fn login(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence);
    /// `user/resource` sends a presence update (or initial presence).
    fn set_presence(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence);
    /// `user/resource` goes unavailable and ends its session.
    fn logout(&mut self, user: &BareJid, resource: &str);
    /// `user` sends `subscribe` to `contact`.
    fn subscribe(&mut self, user: &BareJid, contact: &BareJid);
    /// `user` sends `subscribed` to `contact`.
    fn approve(&mut self, user: &BareJid, contact: &BareJid);
    /// `user` sends `unsubscribe` to `contact`.
    fn unsubscribe(&mut self, user: &BareJid, contact: &BareJid);
    /// `user` sends `unsubscribed` to `contact`.
    fn deny(&mut self, user: &BareJid, contact: &BareJid);
    /// `user` blocks `jid` (XEP-0191).
    fn block(&mut self, user: &BareJid, jid: &BareJid);
    /// `user` unblocks `jid`.
    fn unblock(&mut self, user: &BareJid, jid: &BareJid);
    /// Online `user` is active now, or no longer (XEP §Priority Ordering).
    fn set_active(&mut self, user: &BareJid, active: bool);

    /// The time is `now`: called before local actions, which happen at that time.
    fn set_clock(&mut self, now: SimTime);

    // ---- observation ----

    /// True while the server runs.
    fn is_up(&self) -> bool;
    /// Rosters and block lists of the local users.
    fn accounts(&self) -> &BTreeMap<BareJid, Account>;
    /// Available resources of each online user.
    fn online(&self) -> &BTreeMap<BareJid, Resources>;
    /// What online `user`'s clients have been shown: contact → its available resources.
    fn view(&self, user: &BareJid) -> Option<&BTreeMap<BareJid, Resources>>;
    /// Presence changes shown to local clients since the server was built (a counter that
    /// only grows; the suite uses it to see when views stop changing).
    fn deliveries(&self) -> u64;

    /// The domain as the ground-truth oracle sees it.
    fn domain_state(&self) -> DomainState<'_> {
        DomainState {
            domain: self.domain(),
            accounts: self.accounts(),
            online: self.online(),
        }
    }
}

impl Subject for Server {
    fn add_user(&mut self, user: &BareJid) {
        Server::add_user(self, user)
    }
    fn set_roster_item(&mut self, user: &BareJid, contact: &BareJid, sub: Subscription) {
        Server::set_roster_item(self, user, contact, sub)
    }
    fn login(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        Server::login(self, user, resource, presence)
    }
    fn set_presence(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        Server::set_presence(self, user, resource, presence)
    }
    fn logout(&mut self, user: &BareJid, resource: &str) {
        Server::logout(self, user, resource)
    }
    fn subscribe(&mut self, user: &BareJid, contact: &BareJid) {
        Server::subscribe(self, user, contact)
    }
    fn approve(&mut self, user: &BareJid, contact: &BareJid) {
        Server::approve(self, user, contact)
    }
    fn unsubscribe(&mut self, user: &BareJid, contact: &BareJid) {
        Server::unsubscribe(self, user, contact)
    }
    fn deny(&mut self, user: &BareJid, contact: &BareJid) {
        Server::deny(self, user, contact)
    }
    fn block(&mut self, user: &BareJid, jid: &BareJid) {
        Server::block(self, user, jid)
    }
    fn unblock(&mut self, user: &BareJid, jid: &BareJid) {
        Server::unblock(self, user, jid)
    }
    fn set_active(&mut self, user: &BareJid, active: bool) {
        Server::set_active(self, user, active)
    }
    fn set_clock(&mut self, now: SimTime) {
        Server::set_clock(self, now)
    }
    fn is_up(&self) -> bool {
        Server::is_up(self)
    }
    fn accounts(&self) -> &BTreeMap<BareJid, Account> {
        Server::accounts(self)
    }
    fn online(&self) -> &BTreeMap<BareJid, Resources> {
        Server::online(self)
    }
    fn view(&self, user: &BareJid) -> Option<&BTreeMap<BareJid, Resources>> {
        Server::view_ref(self, user)
    }
    fn deliveries(&self) -> u64 {
        Server::deliveries(self)
    }
}

/// Makes the servers of the implementation under test.
pub trait Implementation: Send + Sync {
    /// A name for the report.
    fn name(&self) -> String;

    /// A running server for `domain` that supports the extension, with no users. `seed`
    /// stands in for its random source (epochs), so that a run is reproducible.
    fn server(&self, domain: &str, seed: u64) -> Box<dyn Subject>;

    /// The small-peer threshold its servers are configured with (XEP PS-93): they start no
    /// session with a peer that shares at most this many edges. The XEP's default unless the
    /// implementation says otherwise; the hub scenario judges PS-93 against it.
    fn small_peer(&self) -> u64 {
        crate::engine::SMALL_PEER
    }
}

/// This crate's [`Server`] with the sync engine: the reference implementation, or, with a
/// [`Mutation`] or another priority policy, a deliberately broken variant of it.
#[derive(Clone, Debug)]
pub struct Reference {
    /// The RFC 6121 behaviour underneath (Prosody-like by default).
    pub flavour: Flavour,
    /// Session tunables and priority policy.
    pub setup: SyncSetup,
    /// The name in the report.
    pub name: String,
}

impl Default for Reference {
    fn default() -> Reference {
        Reference {
            flavour: Flavour::Prosody,
            setup: SyncSetup::default(),
            name: format!("presence-sync {} (reference)", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl Reference {
    /// The reference engine as the suite's own peer: XEP defaults except the small-peer
    /// threshold (PS-93), 0, so that it starts a session with the subject in the small worlds
    /// of the benches and the tiny preset; the subject answers its hello (PS-17) whatever its
    /// own threshold.
    pub fn peer() -> Reference {
        Reference {
            setup: SyncSetup::every_peer(),
            name: "the suite's peer (reference, no small-peer threshold)".into(),
            ..Reference::default()
        }
    }

    /// The reference as the subject of a world whose pairs share fewer edges than the XEP's
    /// default small-peer threshold (the `tiny` preset's dozen): threshold 0, so that it starts
    /// the sessions the scenarios test instead of keeping RFC 6121 (PS-93), and says so in
    /// its name.
    pub fn for_small_worlds() -> Reference {
        let r = Reference::default();
        Reference {
            setup: SyncSetup::every_peer(),
            name: format!("{} with small-peer threshold 0", r.name),
            ..r
        }
    }

    /// The reference engine with `mutation` (see [`super::mutants`]).
    pub fn mutated(mutation: Mutation) -> Reference {
        let mut r = Reference::default();
        r.setup.config.mutation = Some(mutation);
        r.name = format!("reference with mutation {mutation:?}");
        r
    }

    /// The reference engine ranking priority buckets with `policy`.
    pub fn with_policy(name: &str, policy: Arc<dyn PriorityPolicy>) -> Reference {
        let mut r = Reference::default();
        r.setup.policy = policy;
        r.name = name.to_owned();
        r
    }
}

impl Implementation for Reference {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn server(&self, domain: &str, seed: u64) -> Box<dyn Subject> {
        Box::new(Server::with_sync(
            domain,
            self.flavour,
            self.setup.clone(),
            seed,
        ))
    }

    fn small_peer(&self) -> u64 {
        self.setup.config.small_peer
    }
}

/// A server without the extension (RFC 6121 only), of `flavour`: the legacy peer and the
/// baseline.
pub fn legacy(domain: &str, flavour: Flavour) -> Box<dyn Subject> {
    Box::new(Server::new(domain, flavour))
}
