//! The sync peer mode: the server's side of the extension's [`Session`] (XEP §Relation to
//! RFC 6121).
//!
//! The session does the protocol; this module connects it to the server's data:
//!
//! - it creates a session for a peer whose stream features advertise the extension, with the
//!   edges projected from the rosters and the published states of the online users;
//! - it tells the session every change it must know: roster items towards the peer
//!   ([`Server::roster_changed`]), published states ([`Server::sync_publish`]), logins and
//!   activity ([`Session::want`]);
//! - it carries out the session's [`Event`]s: local deliveries from the cache to exactly the
//!   users entitled to them (PS-40, PS-45), the local part of repairs (PS-64), the fallback to
//!   RFC 6121 (PS-58);
//! - in place of RFC 6121's per-edge traffic towards a peer in the sync mode it sends nothing:
//!   no probes (they are served from the cache, PS-66), no per-edge broadcasts (the
//!   domain-level presence replaces them), no presence along approved or cancelled
//!   subscriptions (PS-49). Subscription stanzas and answers to probes still go per edge
//!   (PS-67).

use std::collections::{BTreeMap, BTreeSet};

use jid::{BareJid, Jid};
use minidom::Element;

use super::Server;
use super::state::PeerMode;
use crate::engine::repair::apply_locally;
use crate::engine::session::{Directory, Event, Mutation, PriorityPolicy, Session};
use crate::model::edge::project_user;
use crate::model::truth::Resources;
use crate::model::{Account, Edge, PublisherPresence, Roster, Subscription};
use crate::sim::SimTime;
use crate::wire::StreamFeature;

/// The server's data as a session sees it.
struct Dir<'a> {
    accounts: &'a BTreeMap<BareJid, Account>,
    online: &'a BTreeMap<BareJid, Resources>,
    active: &'a BTreeSet<BareJid>,
    policy: &'a dyn PriorityPolicy,
}

impl Directory for Dir<'_> {
    fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Option<Subscription> {
        self.accounts.get(user)?.roster.get(contact).copied()
    }

    fn wanted(&self, peer: &str) -> Vec<(BareJid, u8)> {
        let mut ranked: BTreeMap<u8, Vec<BareJid>> = BTreeMap::new();
        for user in self.online.keys() {
            let Some(rank) = self.policy.rank(true, self.active.contains(user)) else {
                continue;
            };
            let Some(account) = self.accounts.get(user) else {
                continue;
            };
            let contacts = account
                .roster
                .iter()
                .filter(|(c, _)| c.domain().as_str() == peer && account.sees(c))
                .map(|(c, _)| c.clone());
            ranked.entry(rank).or_default().extend(contacts);
        }
        let mut seen = BTreeSet::new();
        ranked
            .into_iter()
            .flat_map(|(rank, cs)| cs.into_iter().map(move |c| (c, rank)))
            .filter(|(c, _)| seen.insert(c.clone()))
            .collect()
    }
}

/// A cache of one peer's presence kept across a restart, with the peer epoch it belongs to
/// (XEP §Persistence of Epochs and Caches).
#[derive(Clone, Debug, PartialEq)]
pub struct KeptCache {
    /// The peer domain.
    pub peer: String,
    /// The peer's epoch the entries belong to.
    pub epoch: crate::model::Epoch,
    /// The cached entries, publisher by publisher.
    pub entries: Vec<(BareJid, PublisherPresence)>,
}

/// The edges one roster item of `user` for `contact` projects (XEP §Sets and Roles).
fn item_edges(user: &BareJid, contact: &BareJid, sub: Subscription) -> Vec<Edge> {
    let mut roster = Roster::new();
    roster.set(contact.clone(), sub);
    project_user(user, &roster, contact.domain().as_str()).collect()
}

impl Server {
    /// The deliberate fault this server was built with, if any (conformance self-test).
    pub(super) fn mutation(&self) -> Option<Mutation> {
        self.sync.as_ref().and_then(|s| s.config.mutation)
    }

    /// The `<presence-sync/>` stream feature, if the extension is enabled.
    pub(super) fn sync_features(&self) -> Vec<Element> {
        match &self.sync {
            Some(setup) => {
                let feature = StreamFeature::new(&setup.config.algos);
                vec![xso::transform(&feature).expect("a feature serialises")]
            }
            None => Vec::new(),
        }
    }

    /// The published state of local `user` for `peer` (PS-7 to PS-9): its available
    /// resources and except list, if it is online and has at least one entitled subscriber
    /// there.
    pub(super) fn published_entry(&self, user: &BareJid, peer: &str) -> Option<PublisherPresence> {
        let resources = self.volatile.online.get(user)?;
        self.persistent
            .accounts
            .get(user)?
            .published_to(peer, resources)
    }

    /// Creates the session with `peer` from the persistent state and who is online.
    fn new_session(&self, peer: &str) -> Session {
        let setup = self.sync.as_ref().expect("sync enabled");
        // Only the roster items of contacts at the peer, in (user, contact) order as the
        // accounts and rosters are.
        let mut users: Vec<&BareJid> = Vec::new();
        let mut edges: Vec<Edge> = Vec::new();
        for (u, c) in self.volatile.domain_items.get(peer).into_iter().flatten() {
            if users.last() != Some(&u) {
                users.push(u);
            }
            let sub = self
                .persistent
                .accounts
                .get(u)
                .and_then(|a| a.roster.get(c));
            if let Some(&sub) = sub {
                edges.extend(item_edges(u, c, sub));
            }
        }
        let published: Vec<(BareJid, PublisherPresence)> = users
            .iter()
            .filter(|&&u| self.volatile.online.contains_key(u))
            .filter_map(|&u| Some((u.clone(), self.published_entry(u, peer)?)))
            .collect();
        Session::new(
            &self.domain,
            peer,
            self.volatile.epoch,
            setup.config.clone(),
            edges,
            published,
        )
    }

    /// Keeps the cache of every peer that has one, with its peer epoch, if the setup persists
    /// caches (before a graceful stop).
    pub(super) fn keep_caches(&mut self) {
        if !self.sync.as_ref().is_some_and(|s| s.persist_caches) {
            return;
        }
        self.kept_caches = self
            .volatile
            .sessions
            .iter()
            .filter_map(|(peer, s)| {
                let epoch = s.cache_epoch()?;
                let entries: Vec<_> = s
                    .cache()
                    .iter()
                    .map(|(p, state)| (p.clone(), state.clone()))
                    .collect();
                (!entries.is_empty()).then(|| KeptCache {
                    peer: peer.clone(),
                    epoch,
                    entries,
                })
            })
            .collect();
    }

    /// The caches kept at the last graceful stop, for a server that writes them to disk.
    pub fn kept_caches(&self) -> &[KeptCache] {
        &self.kept_caches
    }

    /// Restores caches kept by an earlier run (a graceful stop) into this run's sessions,
    /// created now, before their links come up: each is unverified, presented in the first
    /// hello, and voided if no session is established within the grace period (PS-81;
    /// [`Session::restore_cache`]). Caches of peers this server has no edge with are dropped,
    /// and all of them if the setup does not persist caches.
    pub fn restore_caches(&mut self, now: SimTime, caches: Vec<KeptCache>) {
        if !self.sync.as_ref().is_some_and(|s| s.persist_caches) {
            return;
        }
        for kept in caches {
            if !self.volatile.domain_items.contains_key(&kept.peer) {
                continue;
            }
            if !self.volatile.sessions.contains_key(&kept.peer) {
                let session = self.new_session(&kept.peer);
                self.volatile.sessions.insert(kept.peer.clone(), session);
            }
            if let Some(s) = self.volatile.sessions.get_mut(&kept.peer) {
                s.restore_cache(now, kept.epoch, kept.entries);
            }
            // Its grace timer goes into the index.
            self.drain_session(&kept.peer);
        }
    }

    /// The link to `peer` is up with its `features`: sessions start here (XEP §Discovery and
    /// Negotiation).
    pub(super) fn sync_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        if self.sync.is_none() {
            return;
        }
        if !self.volatile.sessions.contains_key(peer) {
            let session = self.new_session(peer);
            self.volatile.sessions.insert(peer.to_owned(), session);
        }
        // A small peer (PS-93) or a legacy one keeps RFC 6121 (the events say so); the others
        // enter the sync mode in `drain_session`.
        if let Some(s) = self.volatile.sessions.get_mut(peer) {
            s.link_up(now, features);
        }
        self.drain_session(peer);
    }

    /// The link to `peer` is down.
    pub(super) fn sync_link_down(&mut self, now: SimTime, peer: &str) {
        if let Some(s) = self.volatile.sessions.get_mut(peer) {
            s.link_down(now);
        }
        self.drain_session(peer);
    }

    /// Runs `f` on the session with `peer` with the server's data as its [`Directory`], then
    /// carries out what it produced.
    fn with_session(&mut self, peer: &str, f: impl FnOnce(&mut Session, &dyn Directory)) {
        let policy = self.sync.as_ref().map(|s| s.policy.clone());
        let Some(policy) = policy else { return };
        let volatile = &mut self.volatile;
        let Some(session) = volatile.sessions.get_mut(peer) else {
            return;
        };
        let dir = Dir {
            accounts: &self.persistent.accounts,
            online: &volatile.online,
            active: &volatile.active,
            policy: policy.as_ref(),
        };
        f(session, &dir);
        self.drain_session(peer);
    }

    /// A stanza of the extension from `peer`; false if it is not one (then it is RFC 6121's).
    pub(super) fn sync_receive(&mut self, now: SimTime, peer: &str, stanza: &Element) -> bool {
        let claimed = self
            .volatile
            .sessions
            .get(peer)
            .is_some_and(|s| s.claims(stanza));
        if claimed {
            self.with_session(peer, |s, dir| s.handle_stanza(now, stanza, dir));
        }
        claimed
    }

    /// Timers of every session due at `now`.
    pub(super) fn sync_timeout(&mut self, now: SimTime) {
        let due: Vec<String> = self
            .volatile
            .timers
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, p)| p.clone())
            .collect();
        for peer in due {
            self.with_session(&peer, |s, dir| s.handle_timeout(now, dir));
        }
    }

    /// The earliest timer of all sessions.
    pub(super) fn sync_poll_timeout(&self) -> Option<SimTime> {
        self.volatile.timers.first().map(|(t, _)| *t)
    }

    /// Re-reads the next timer of the session with `peer` into the index.
    fn index_timer(&mut self, peer: &str) {
        let next = self
            .volatile
            .sessions
            .get(peer)
            .and_then(Session::poll_timeout);
        let v = &mut self.volatile;
        if v.timer_of.get(peer).copied() == next {
            return;
        }
        if let Some(old) = v.timer_of.remove(peer) {
            v.timers.remove(&(old, peer.to_owned()));
        }
        if let Some(t) = next {
            v.timer_of.insert(peer.to_owned(), t);
            v.timers.insert((t, peer.to_owned()));
        }
    }

    /// Every session announces the shutdown (PS-54).
    pub(super) fn sync_shutdown(&mut self, restart: bool) {
        let peers: Vec<String> = self.volatile.sessions.keys().cloned().collect();
        for peer in peers {
            if let Some(s) = self.volatile.sessions.get_mut(&peer) {
                s.shutdown(restart);
            }
            self.drain_session(&peer);
        }
    }

    /// True if `peer` is in the sync mode (no probes, no per-edge presence, PS-66).
    pub(super) fn synced(&self, peer: &str) -> bool {
        self.volatile
            .peers
            .get(peer)
            .is_some_and(|p| p.mode == PeerMode::Sync)
    }

    /// The roster item of local `user` for `contact` changed from `before` to `after`
    /// (whatever changed it: a user, a peer, a repair, a restored backup).
    pub(super) fn roster_changed(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        before: Subscription,
        after: Subscription,
    ) {
        let peer = contact.domain().as_str().to_owned();
        if peer == self.domain || contact.node().is_none() {
            return;
        }
        self.volatile.watch(user, contact);
        if before == after {
            return;
        }
        if let Some(s) = self.volatile.sessions.get_mut(&peer) {
            s.update_edges(
                self.volatile.now,
                &item_edges(user, contact, before),
                &item_edges(user, contact, after),
            );
            // A hello the new edges started (PS-93) goes now.
            self.drain_session(&peer);
        }
        // PS-49: a subscription that ends (or begins) changes what the user is shown of the
        // cache at once, whatever changed the roster; the publisher's entry may not change
        // at all, so no item would bring it.
        if before.to() != after.to() {
            self.show_cached(user, contact);
        }
        self.sync_publish(user);
    }

    /// Recomputes the published state of local `user` for each session it concerns (its
    /// presence, roster or block list changed).
    pub(super) fn sync_publish(&mut self, user: &BareJid) {
        if self.volatile.sessions.is_empty() {
            return;
        }
        let Some(account) = self.persistent.accounts.get(user) else {
            return;
        };
        let peers: BTreeSet<String> = account
            .roster
            .iter()
            .map(|(c, _)| c.domain().to_string())
            .filter(|d| self.volatile.sessions.contains_key(d))
            .collect();
        let now = self.volatile.now;
        for peer in peers {
            let entry = self.published_entry(user, &peer);
            if let Some(s) = self.volatile.sessions.get_mut(&peer) {
                s.publish(now, user, entry);
            }
            self.drain_session(&peer);
        }
    }

    /// Shows local `user` what the session with the contact's domain releases of `contact`
    /// (PS-37, PS-40): its resources if the user is online, subscribed, not blocking it and
    /// not excepted; nothing otherwise. Counts one delivery per changed resource per client.
    pub(super) fn show_cached(&mut self, user: &BareJid, contact: &BareJid) {
        let Some(clients) = self.volatile.online.get(user).map(|r| r.len()) else {
            return;
        };
        let peer = contact.domain().as_str();
        let Some(session) = self.volatile.sessions.get(peer) else {
            return;
        };
        let Some(account) = self.persistent.accounts.get(user) else {
            return;
        };
        let show_blocked = self.mutation() == Some(Mutation::ShowToBlocked);
        let shown = session
            .shown(contact)
            .filter(|s| show_blocked || (account.sees(contact) && !s.except.contains(user)))
            .map(|s| s.resources.clone());
        let view = match self.volatile.views.get_mut(user) {
            Some(view) => view,
            None => self.volatile.views.entry(user.clone()).or_default(),
        };
        let old = view.get(contact);
        if old == shown.as_ref() {
            return;
        }
        let empty = Resources::new();
        let (o, n) = (old.unwrap_or(&empty), shown.as_ref().unwrap_or(&empty));
        let changed = o
            .keys()
            .chain(n.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|r| o.get(*r) != n.get(*r))
            .count();
        self.stats.presence_delivered += (changed * clients) as u64;
        self.deliveries += (changed * clients) as u64;
        if self.client_out.is_some() {
            let (o, n) = (o.clone(), n.clone());
            for r in o.keys().chain(n.keys()).collect::<BTreeSet<_>>() {
                if o.get(r) == n.get(r) {
                    continue;
                }
                let Ok(from) = contact.with_resource_str(r) else {
                    continue;
                };
                let presence = n.get(r).cloned();
                self.tell(|| super::ClientOut::Presence {
                    to: Jid::from(user.clone()),
                    from: Jid::from(from),
                    presence,
                });
            }
        }
        let view = self.volatile.views.get_mut(user).expect("entered above");
        match shown {
            Some(r) => view.insert(contact.clone(), r),
            None => view.remove(contact),
        };
    }

    /// A login or a probe replaced by the cache: `user` is shown `contacts` from the cache of
    /// `peer`, and their buckets move to the front of the pull (PS-53, PS-66).
    pub(super) fn serve_from_cache(&mut self, peer: &str, user: &BareJid, contacts: &[BareJid]) {
        for c in contacts {
            self.show_cached(user, c);
        }
        if let Some(s) = self.volatile.sessions.get_mut(peer) {
            s.want(contacts, false);
        }
        self.drain_session(peer);
    }

    /// Sends what the session with `peer` produced and carries out its events; a session that
    /// has left the small-peer path (PS-93: its hello is on its way) puts the peer in the sync
    /// mode.
    pub(super) fn drain_session(&mut self, peer: &str) {
        let replaces = self
            .volatile
            .sessions
            .get(peer)
            .is_some_and(Session::replaces_rfc6121);
        if replaces && !self.volatile.peer(peer).probed {
            self.volatile.peer(peer).mode = PeerMode::Sync;
        }
        self.drain_session_events(peer);
        self.index_timer(peer);
    }

    fn drain_session_events(&mut self, peer: &str) {
        loop {
            let Some(session) = self.volatile.sessions.get_mut(peer) else {
                return;
            };
            if let Some(stanza) = session.poll_transmit() {
                self.transmit(peer, stanza);
                continue;
            }
            let Some(event) = session.poll_event() else {
                return;
            };
            self.sync_event(peer, event);
        }
    }

    fn sync_event(&mut self, peer: &str, event: Event) {
        match event {
            Event::Deliver { publisher, .. } => {
                let mut watchers: Vec<BareJid> = self
                    .volatile
                    .watchers
                    .get(&publisher)
                    .map(|w| w.iter().cloned().collect())
                    .unwrap_or_default();
                if watchers.len() > 1 && self.mutation() == Some(Mutation::ForgetOneSubscriber) {
                    watchers.pop();
                }
                for user in watchers {
                    self.show_cached(&user, &publisher);
                }
            }
            Event::Repaired(stanza) => {
                self.sync_log.push((
                    self.volatile.now,
                    peer.to_owned(),
                    Event::Repaired(stanza.clone()),
                ));
                let before = self
                    .persistent
                    .accounts
                    .get(&stanza.from)
                    .and_then(|a| a.roster.get(&stanza.to).copied());
                if let Some(before) = before {
                    let mut after = before;
                    apply_locally(&stanza, &mut after);
                    if after != before {
                        self.account_mut(&stanza.from)
                            .roster
                            .set(stanza.to.clone(), after);
                        self.push(&stanza.from, &stanza.to);
                        self.roster_changed(&stanza.from, &stanza.to, before, after);
                    }
                }
            }
            Event::SessionStarted => {
                // A session, whatever the mode before (a small peer's RFC 6121, PS-93, or a
                // peer that probed).
                let record = self.volatile.peer(peer);
                record.mode = PeerMode::Sync;
                record.probed = false;
                self.sync_log
                    .push((self.volatile.now, peer.to_owned(), Event::SessionStarted));
            }
            Event::SmallPeer { edges } => {
                self.sync_log.push((
                    self.volatile.now,
                    peer.to_owned(),
                    Event::SmallPeer { edges },
                ));
                // PS-93: RFC 6121 with a small peer; if this server had been replacing it
                // (a session's link came back after the grace period), its users' probes and
                // presence are owed as after a login.
                let record = self.volatile.peer(peer);
                let was_sync = record.mode == PeerMode::Sync;
                record.mode = PeerMode::Legacy;
                if was_sync {
                    self.legacy_takeover(peer);
                }
            }
            Event::Fallback(reason) => {
                self.sync_log
                    .push((self.volatile.now, peer.to_owned(), Event::Fallback(reason)));
                self.volatile.peer(peer).mode = PeerMode::Legacy;
                self.legacy_takeover(peer);
            }
            other => {
                self.sync_log
                    .push((self.volatile.now, peer.to_owned(), other));
            }
        }
    }

    /// PS-58: RFC 6121 from now on, as if every online user had just logged in: probes for
    /// their contacts at `peer`, and their presence to their subscribers there.
    fn legacy_takeover(&mut self, peer: &str) {
        for (user, resources) in self.online_resources() {
            self.legacy_login_towards(peer, &user, &resources);
        }
    }
}
