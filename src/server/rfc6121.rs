//! RFC 6121 (presence and subscriptions) and XEP-0191 (blocking) as a server applies them to
//! its local users, whatever protocol carries stanzas to peers.
//!
//! Every stanza a user's actions cause goes through [`Server::route`]: a recipient of this
//! domain is served at once by [`Server::receive`] (as Prosody's `core_post_stanza` does),
//! a remote one goes to the peer's mode (`super::Server::send`). Broadcasts to many
//! subscribers go through [`Server::fan_out`], which hands each peer domain its whole list of
//! recipients at once, so that a peer mode can group them (XEP-0033 in legacy mode, one
//! domain-level stanza in the sync extension).
//!
//! Where the flavours differ, the code asks [`super::Flavour`]; everything else is the RFC.

use std::collections::BTreeMap;

use jid::{BareJid, Jid};

use super::stanzas::{Extra, Kind, Stanza};
use super::{ClientOut, Server};
use crate::engine::repair::RepairStanza;
use crate::model::{Account, BlockList, ResourcePresence, Subscription, SubscriptionStanza};

/// `user/resource`. Resources come from the caller of a local action.
fn full(user: &BareJid, resource: &str) -> Jid {
    match user.with_resource_str(resource) {
        Ok(full) => Jid::from(full),
        Err(e) => panic!("invalid resource {resource:?} for {user}: {e}"),
    }
}

/// Who gets presence of `user`'s resources (RFC 6121 §4.2.2): contacts with `from`, not
/// blocked (XEP-0191 §3.3).
fn subscribers(user: &BareJid, account: &Account) -> Vec<BareJid> {
    account
        .roster
        .iter()
        .filter(|(c, _)| *c != user && account.publishes_to(c))
        .map(|(c, _)| c.clone())
        .collect()
}

/// The contacts roster items of `account` newly caught (`block`) or released (`!block`) by
/// changing its block list from `before` to the account's current one.
fn changed_by(account: &Account, before: &BlockList, block: bool) -> Vec<BareJid> {
    account
        .roster
        .iter()
        .filter(|(c, _)| before.blocks(c) != block && account.blocked.blocks(c) == block)
        .map(|(c, _)| c.clone())
        .collect()
}

impl Server {
    pub(super) fn account(&self, user: &BareJid) -> &Account {
        match self.persistent.accounts.get(user) {
            Some(account) => account,
            None => panic!("{user} has no account on {}", self.domain),
        }
    }

    pub(super) fn account_mut(&mut self, user: &BareJid) -> &mut Account {
        self.tell(|| ClientOut::AccountChanged(user.clone()));
        match self.persistent.accounts.get_mut(user) {
            Some(account) => account,
            None => panic!("{user} has no account on {}", self.domain),
        }
    }

    fn is_local(&self, jid: &Jid) -> bool {
        jid.domain().as_str() == self.domain
    }

    /// Sends one stanza: served here if the recipient is local, else handed to the peer mode.
    pub(super) fn route(&mut self, stanza: Stanza) {
        if self.is_local(&stanza.to) {
            self.receive(stanza);
        } else {
            self.send(stanza);
        }
    }

    /// Sends an answer to a probe: served here if local, else per edge in every peer mode
    /// (PS-67).
    fn route_answer(&mut self, stanza: Stanza) {
        if self.is_local(&stanza.to) {
            self.receive(stanza);
        } else {
            self.send_answer(stanza);
        }
    }

    /// Sends `kind` from `from` to every one of `recipients`: local ones one by one, remote ones
    /// as one list per peer domain to the peer's mode.
    pub(super) fn fan_out(&mut self, from: &Jid, recipients: Vec<BareJid>, kind: &Kind) {
        self.fan_out_with(from, recipients, kind, Extra::None);
    }

    /// [`Self::fan_out`] with `extra` added on the wire to every stanza.
    pub(super) fn fan_out_with(
        &mut self,
        from: &Jid,
        recipients: Vec<BareJid>,
        kind: &Kind,
        extra: Extra,
    ) {
        let mut remote: BTreeMap<String, Vec<BareJid>> = BTreeMap::new();
        for r in recipients {
            if r.domain().as_str() == self.domain {
                self.route(Stanza::new(from.clone(), r, kind.clone()).with_extra(extra));
            } else {
                remote.entry(r.domain().to_string()).or_default().push(r);
            }
        }
        for (peer, recipients) in remote {
            self.fan_out_peer(&peer, from, &recipients, kind, extra);
        }
    }

    /// One roster push per available resource of `user` (RFC 6121 §2.1.6) for its item of
    /// `contact`.
    pub(super) fn push(&mut self, user: &BareJid, contact: &BareJid) {
        self.stats.roster_pushes += self.volatile.resources(user) as u64;
        self.tell(|| ClientOut::RosterPush {
            user: user.clone(),
            contact: contact.clone(),
        });
    }

    fn resources_of(&self, user: &BareJid) -> Vec<(String, ResourcePresence)> {
        self.volatile
            .online
            .get(user)
            .map(|r| r.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Current presence of each available resource of `user`, to `to` (RFC 6121 §3.1.5, §4.3.2),
    /// as the flavour stores it.
    fn send_current_presence(&mut self, user: &BareJid, to: &Jid) {
        let extra = self.flavour.stored_presence_extra();
        for (resource, presence) in self.resources_of(user) {
            let from = full(user, &resource);
            let stanza = Stanza::new(from, to.clone(), Kind::Available(presence));
            self.route(stanza.with_extra(extra));
        }
    }

    /// `unavailable` from each available resource of `user`, to `to` (RFC 6121 §3.2.2, XEP-0191).
    fn send_unavailable(&mut self, user: &BareJid, to: &BareJid) {
        for (resource, _) in self.resources_of(user) {
            let from = full(user, &resource);
            self.route(Stanza::new(from, to.clone(), Kind::Unavailable));
        }
    }

    /// Probes every contact `user` is subscribed to and has not blocked, from `from` (RFC 6121
    /// §4.3.1; both flavours probe from the session's full JID).
    fn probe_contacts(&mut self, user: &BareJid, from: &Jid) {
        let account = self.account(user);
        let contacts: Vec<BareJid> = account
            .roster
            .iter()
            .filter(|(c, _)| *c != user && account.sees(c))
            .map(|(c, _)| c.clone())
            .collect();
        self.fan_out(from, contacts, &Kind::Probe);
    }

    /// Local action: available presence of `user/resource` (RFC 6121 §4.2 initial presence when
    /// the resource was not available, else §4.4 update).
    pub(super) fn presence(&mut self, user: &BareJid, resource: &str, p: ResourcePresence) {
        let subscribers = subscribers(user, self.account(user));
        let from = full(user, resource);
        let online = self.volatile.online.entry(user.clone()).or_default();
        let initial = online.insert(resource.to_owned(), p.clone()).is_none();
        self.volatile.views.entry(user.clone()).or_default();
        let available = Kind::Available(p);
        self.sync_publish(user);
        if !initial {
            self.fan_out(&from, subscribers, &available);
            return;
        }
        // §4.2.2 broadcast and §4.3.1 probes, in the flavour's order.
        if self.flavour.probes_before_broadcast() {
            self.probe_contacts(user, &from);
            self.fan_out(&from, subscribers, &available);
        } else {
            self.fan_out(&from, subscribers, &available);
            self.probe_contacts(user, &from);
        }
        self.resend_pending(user, |server, contact| {
            !server.synced(contact.domain().as_str())
        });
    }

    /// Prosody's re-send of `user`'s pending outbound subscription requests at initial
    /// presence, to the contacts `to` selects. Never towards a peer whose mode is the sync
    /// extension (PS-87): the pending edge is in both edge sets, and a lost request is found
    /// and repaired by the edge reconciliation.
    pub(super) fn resend_pending(
        &mut self,
        user: &BareJid,
        to: impl Fn(&Server, &BareJid) -> bool,
    ) {
        if !self.flavour.resends_pending_subscriptions() {
            return;
        }
        let account = self.account(user);
        let pending: Vec<BareJid> = account
            .roster
            .iter()
            .filter(|(c, s)| s.pending_out() && !account.blocked.blocks(c) && to(self, c))
            .map(|(c, _)| c.clone())
            .collect();
        for contact in pending {
            let kind = Kind::Subscription(SubscriptionStanza::Subscribe);
            self.route(Stanza::new(user.clone(), contact, kind));
        }
    }

    /// Local action: `user/resource` goes offline (RFC 6121 §4.5.2). When it was the user's
    /// last resource, its clients are gone and so is what they were shown.
    pub(super) fn unavailable(&mut self, user: &BareJid, resource: &str) {
        let Some(online) = self.volatile.online.get_mut(user) else {
            return;
        };
        if online.remove(resource).is_none() {
            return;
        }
        if online.is_empty() {
            self.volatile.online.remove(user);
            self.volatile.views.remove(user);
        }
        let subscribers = subscribers(user, self.account(user));
        self.sync_publish(user);
        self.fan_out(&full(user, resource), subscribers, &Kind::Unavailable);
    }

    /// Local action: `user` sends a subscription stanza to `contact` (RFC 6121 §3, Appendix
    /// A.2). Nothing happens towards a blocked contact (XEP-0191 §3.3: Prosody's
    /// `bounce_outgoing`, ejabberd's privacy check).
    pub(super) fn outbound(&mut self, user: &BareJid, contact: &BareJid, kind: SubscriptionStanza) {
        if user == contact || self.account(user).blocked.blocks(contact) {
            return;
        }
        let before = self.account(user).roster.get(contact).copied();
        let mut sub = before.unwrap_or_default();
        let t = sub.outbound(kind);
        if t.changed {
            self.account_mut(user).roster.set(contact.clone(), sub);
            self.push(user, contact);
        }
        if t.forward {
            let stanza = Stanza::new(user.clone(), contact.clone(), Kind::Subscription(kind));
            self.route(stanza);
        }
        if t.changed {
            self.roster_changed(user, contact, before.unwrap_or_default(), sub);
        }
        self.item_changed(user, contact, before.unwrap_or_default(), sub, false);
        if kind == SubscriptionStanza::Subscribed
            && self.flavour.probes_after_approval()
            && sub.to()
        {
            self.route(Stanza::new(user.clone(), contact.clone(), Kind::Probe));
        }
    }

    /// The presence consequences of a change of `user`'s item for `contact`, after the
    /// subscription stanza itself was routed:
    /// - `from` gained: the contact gets the user's current presence (RFC 6121 §3.1.5);
    /// - `from` lost: the contact gets `unavailable` (§3.2.2 when the user cancelled; §3.3.3
    ///   when the contact unsubscribed, only if the flavour does it);
    /// - `to` lost: the user's clients stop showing the contact (they show presence only for
    ///   items with `to`; the `unavailable` of §3.2.2 may never come when the link is down).
    fn item_changed(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        before: Subscription,
        after: Subscription,
        inbound: bool,
    ) {
        if before.to() && !after.to() {
            let shown = self
                .volatile
                .views
                .get_mut(user)
                .and_then(|view| view.remove(contact));
            if shown.is_some() {
                self.tell(|| ClientOut::Presence {
                    to: Jid::from(user.clone()),
                    from: Jid::from(contact.clone()),
                    presence: None,
                });
            }
        }
        if !before.to() && after.to() && self.synced(contact.domain().as_str()) {
            // PS-49: the subscriber's server delivers the publisher's cached presence.
            self.show_cached(user, contact);
        }
        if !before.from() && after.from() {
            self.send_current_presence(user, &Jid::from(contact.clone()));
        }
        if before.from()
            && !after.from()
            && (!inbound || self.flavour.unavailable_on_inbound_unsubscribe())
        {
            self.send_unavailable(user, contact);
        }
    }

    /// Local action: `user` blocks `jid` (a bare JID or a domain, XEP-0191 §3.3). Contacts it
    /// newly catches that received the user's presence get `unavailable` from each available
    /// resource (Prosody's `edit_blocklist`), and the user's clients stop showing them.
    pub(super) fn block_jid(&mut self, user: &BareJid, jid: &BareJid) {
        let before = self.account(user).blocked.clone();
        if !self.account_mut(user).blocked.block(jid.clone()) {
            return;
        }
        let account = self.account(user);
        for contact in changed_by(account, &before, true) {
            let had_from = self
                .account(user)
                .roster
                .get(&contact)
                .is_some_and(Subscription::from);
            if had_from {
                self.send_unavailable(user, &contact);
            }
            let shown = self
                .volatile
                .views
                .get_mut(user)
                .and_then(|view| view.remove(&contact));
            if shown.is_some() {
                self.tell(|| ClientOut::Presence {
                    to: Jid::from(user.clone()),
                    from: Jid::from(contact.clone()),
                    presence: None,
                });
            }
        }
        // The except list of the user's published state may have changed (PS-9).
        self.sync_publish(user);
    }

    /// Local action: `user` unblocks `jid`. Contacts it releases that are subscribed (`from`)
    /// are answered as if they had probed (Prosody's `edit_blocklist` injects exactly such a
    /// probe), and, where the user is online and subscribed to them (`to`), probed so that
    /// the user's clients show them again (no server does this; see the module docs of
    /// [`super`]).
    pub(super) fn unblock_jid(&mut self, user: &BareJid, jid: &BareJid) {
        let before = self.account(user).blocked.clone();
        if !self.account_mut(user).blocked.unblock(jid) {
            return;
        }
        let online = self.volatile.online.contains_key(user);
        let account = self.account(user);
        for contact in changed_by(account, &before, false) {
            let sub = self.account(user).roster.get(&contact).copied();
            let sub = sub.unwrap_or_default();
            // Towards a synchronized peer the except list changes instead, and the new item
            // reaches the contact's server at domain level (PS-47, PS-66).
            if sub.from() && !self.synced(contact.domain().as_str()) {
                self.answer_probe(user, &Jid::from(contact.clone()));
            }
            if sub.to() && online {
                self.route(Stanza::new(user.clone(), contact.clone(), Kind::Probe));
            }
        }
        self.sync_publish(user);
    }

    /// Serves a stanza addressed to a local JID (from a local user, or from a peer after the
    /// peer mode checked it): RFC 6121 §3 and §4 inbound processing.
    pub(super) fn receive(&mut self, stanza: Stanza) {
        let user = stanza.to.to_bare();
        let contact = stanza.from.to_bare();
        if user == contact {
            return; // presence among one user's own resources is not modelled
        }
        if user.node().is_none() {
            self.stats.rejected += 1; // presence to the domain itself is not modelled
            return;
        }
        let Some(account) = self.persistent.accounts.get(&user) else {
            // No such user: an empty roster. Prosody answers a probe as unauthorised;
            // ejabberd has no session to answer it.
            if stanza.kind == Kind::Probe && self.flavour.answers_unauthorised_probe() {
                self.stats.probes_received += 1;
                let kind = Kind::Subscription(SubscriptionStanza::Unsubscribed);
                self.route(Stanza::new(user, contact, kind));
            } else {
                self.stats.rejected += 1;
            }
            return;
        };
        if account.blocked.blocks(&contact) {
            // XEP-0191 §3.3: nothing from a blocked JID reaches the user, nothing answers it.
            return;
        }
        match stanza.kind {
            Kind::Available(p) => self.deliver(&stanza.to, &stanza.from, Some(p)),
            Kind::Unavailable => self.deliver(&stanza.to, &stanza.from, None),
            Kind::Probe => {
                self.stats.probes_received += 1;
                self.answer_probe(&user, &stanza.from);
            }
            Kind::Subscription(kind) => self.inbound(&user, &contact, kind, false),
            Kind::Error => self.stats.errors_received += 1,
        }
    }

    /// A subscription stanza marked `<repair/>` from a peer (XEP §Repair of Subscription
    /// Mismatches): processed as RFC 6121 inbound even when the user blocks the sender
    /// (PS-85), since XEP-0191 drops the subscription stanzas of a blocked contact and the
    /// mismatch that causes could otherwise never be repaired.
    pub(super) fn receive_repair(&mut self, stanza: &Stanza, kind: SubscriptionStanza) {
        let user = stanza.to.to_bare();
        let contact = stanza.from.to_bare();
        if user == contact || !self.persistent.accounts.contains_key(&user) {
            self.stats.rejected += 1;
            return;
        }
        self.inbound(&user, &contact, kind, true);
    }

    /// Delivers presence of `from` to `to`'s clients: to every available resource for a bare
    /// `to`, to that resource only for a full one (RFC 6121 §8.5.2.1.1, §8.5.3.1), nowhere if
    /// offline (§8.5.2.2.1: silently ignored). Only presence of contacts the user is subscribed
    /// to and has not blocked is shown (directed presence is out of scope, BRIEF §2).
    /// `unavailable` from a bare JID takes away every resource (§4.3.2's answer for an offline
    /// contact).
    fn deliver(&mut self, to: &Jid, from: &Jid, presence: Option<ResourcePresence>) {
        let user = to.to_bare();
        let contact = from.to_bare();
        let Some(resources) = self.volatile.online.get(&user) else {
            return;
        };
        let clients = match to.resource() {
            None => resources.len(),
            Some(r) if resources.contains_key(r.as_str()) => 1,
            Some(_) => return,
        };
        if !self.account(&user).sees(&contact) {
            return;
        }
        self.stats.presence_delivered += clients as u64;
        self.deliveries += clients as u64;
        self.tell(|| ClientOut::Presence {
            to: to.clone(),
            from: from.clone(),
            presence: presence.clone(),
        });
        let view = self.volatile.views.entry(user).or_default();
        match (from.resource(), presence) {
            (Some(r), Some(p)) => {
                view.entry(contact).or_default().insert(r.to_string(), p);
            }
            (Some(r), None) => {
                if let Some(shown) = view.get_mut(&contact) {
                    shown.remove(r.as_str());
                    if shown.is_empty() {
                        view.remove(&contact);
                    }
                }
            }
            (None, None) => {
                view.remove(&contact);
            }
            (None, Some(_)) => {} // available presence needs a resource to be shown
        }
    }

    /// Answers a probe of `user` from `prober` (RFC 6121 §4.3.2): the current presence of each
    /// available resource if the prober is subscribed (`from`); otherwise, or when the user is
    /// offline, what the flavour says.
    fn answer_probe(&mut self, user: &BareJid, prober: &Jid) {
        let prober_bare = prober.to_bare();
        if self.account(user).publishes_to(&prober_bare) {
            if self.volatile.online.contains_key(user) {
                // Per edge in every peer mode (PS-67).
                let extra = self.flavour.probe_answer_extra();
                for (resource, presence) in self.resources_of(user) {
                    let from = full(user, &resource);
                    let stanza = Stanza::new(from, prober.clone(), Kind::Available(presence));
                    self.route_answer(stanza.with_extra(extra));
                }
            } else if self.flavour.answers_offline_probe() {
                let stanza = Stanza::new(user.clone(), prober.clone(), Kind::Unavailable);
                self.route_answer(stanza);
            }
        } else if self.flavour.answers_unauthorised_probe() {
            let kind = Kind::Subscription(SubscriptionStanza::Unsubscribed);
            self.route(Stanza::new(user.clone(), prober_bare, kind));
        }
    }

    /// An inbound subscription stanza from `contact` for `user` (RFC 6121 Appendix A.3, with
    /// the auto-replies of §3.1.3 and §3.4).
    fn inbound(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        kind: SubscriptionStanza,
        repair: bool,
    ) {
        let before = self.account(user).roster.get(contact).copied();
        if before.is_none() && kind != SubscriptionStanza::Subscribe {
            return; // A.3.2-A.3.4: nothing to change for a JID not in the roster
        }
        let before = before.unwrap_or_default();
        let mut sub = before;
        let t = sub.inbound(kind);
        if t.changed {
            self.account_mut(user).roster.set(contact.clone(), sub);
            self.push(user, contact);
            self.roster_changed(user, contact, before, sub);
        }
        if t.forward {
            self.stats.subscriptions_delivered += self.volatile.resources(user) as u64;
            self.tell(|| ClientOut::Subscription {
                user: user.clone(),
                from: contact.clone(),
                kind,
            });
        }
        match t.auto_reply {
            // PS-85: the automatic reply to a repair is marked too, so that it changes the
            // roster of a sender that blocks the user (its `subscribe` of row two would stay
            // pending forever otherwise).
            Some(reply) if repair && !self.is_local(&Jid::from(contact.clone())) => {
                let stanza = RepairStanza {
                    kind: reply,
                    from: user.clone(),
                    to: contact.clone(),
                };
                self.transmit(contact.domain().as_str(), stanza.to_element());
                self.presence_after_redundant_subscribe(user, contact, before);
            }
            Some(reply) => {
                let stanza = Stanza::new(user.clone(), contact.clone(), Kind::Subscription(reply));
                self.route(stanza);
                self.presence_after_redundant_subscribe(user, contact, before);
            }
            None if kind == SubscriptionStanza::Subscribe
                && self.flavour.acknowledges_subscribe() =>
            {
                let stanza = Stanza::new(user.clone(), contact.clone(), Kind::Unavailable);
                self.route(stanza);
            }
            None => {}
        }
        self.item_changed(user, contact, before, sub, true);
    }

    /// The current presence a flavour sends along its `subscribed` to a `subscribe` from a
    /// contact already subscribed (`before` has `from`), or `unavailable` if the user is
    /// offline.
    fn presence_after_redundant_subscribe(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        before: Subscription,
    ) {
        if before.from() && self.flavour.presence_on_redundant_subscribe() {
            if self.volatile.online.contains_key(user) {
                self.send_current_presence(user, &Jid::from(contact.clone()));
            } else {
                let stanza = Stanza::new(user.clone(), contact.clone(), Kind::Unavailable);
                self.route(stanza);
            }
        }
    }
}
