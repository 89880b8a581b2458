//! What a session sends: queries, answers, errors, batches and domain-level presence, within
//! the window (XEP §Flow Control and Limits, §Batches, §Domain-Level Presence).

use super::*;

/// The state to publish for local `user` (PS-41): `state`, or its reduction to `limit` bytes
/// if its item would not fit. States that could need reducing under some max-bytes are kept
/// whole in `full`, to be reduced again when the effective max-bytes changes.
pub(super) fn fit_state(
    full: &mut BTreeMap<BareJid, PublisherPresence>,
    limit: usize,
    user: &BareJid,
    state: PublisherPresence,
) -> PublisherPresence {
    // XEP §Items: no payload deeper than a peer accepts.
    let state = reduce::shallow(state);
    if reduce::size_bound(user, &state) <= reduce::min_item_limit() {
        full.remove(user);
        return state;
    }
    let reduced = reduce::reduce(user, &state, limit);
    full.insert(user.clone(), state);
    reduced
}

impl Session {
    /// The effective max-bytes of the session is now `max_bytes`: the published states that
    /// were (or now must be) reduced are reduced to it again, and those that change are sent
    /// as items (PS-41, PS-44).
    pub(super) fn refit(&mut self, max_bytes: u32) {
        let limit = reduce::item_limit(max_bytes);
        if limit == self.item_limit {
            return;
        }
        self.item_limit = limit;
        for (user, state) in &self.full {
            let reduced = reduce::reduce(user, state, limit);
            if self.published.get(user) == Some(&reduced) {
                continue;
            }
            self.published.set(user, reduced);
            match &mut self.live {
                Some(live) => live.dirty.insert(user.clone()),
                None => self.pre_dirty.insert(user.clone()),
            };
        }
    }

    // ---- internals: sending ----

    /// Queues `stanza` for the peer if it passes the check the peer will apply to it
    /// ([`check_outgoing`], under the limits in effect), in release builds as in debug ones;
    /// otherwise reports it ([`Event::Withheld`]) and returns false (XEP §Flow Control and
    /// Limits: a stanza never exceeds what the peer accepts).
    pub(super) fn emit(&mut self, stanza: Element) -> bool {
        match check_outgoing(&stanza, &self.limits(), &self.domains) {
            Ok(()) => {
                self.out.push_back(stanza);
                true
            }
            Err(e) => {
                self.events.push_back(Event::Withheld(e));
                false
            }
        }
    }

    /// Sends a request of ours; a request that cannot be sent ends the session as failed.
    pub(super) fn send_request(&mut self, id: String, payload: Element, kind: Request) -> bool {
        let now = kind.sent();
        let iq = Iq::Set {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.clone(),
            payload,
        };
        if !self.emit(iq_element(iq)) {
            self.end_session(now, "a request of ours was withheld".into(), true);
            return false;
        }
        self.requests.insert(id, kind);
        true
    }

    pub(super) fn send_query(&mut self, id: String, q: Reconcile, kind: Request) {
        let payload = q.to_element().expect("a reconcile serialises");
        self.send_request(id, payload, kind);
    }

    /// Answers request `id`; an answer that fails the outgoing check is replaced by the error
    /// the peer would have raised on it.
    pub(super) fn send_result(&mut self, id: &str, payload: Option<Element>) {
        let iq = Iq::Result {
            from: Some(Jid::from(self.local_jid())),
            to: Some(Jid::from(self.peer_jid())),
            id: id.to_owned(),
            payload,
        };
        let stanza = iq_element(iq);
        if let Err(e) = check_outgoing(&stanza, &self.limits(), &self.domains) {
            self.events.push_back(Event::Withheld(e.clone()));
            self.send_error(id, &e);
            return;
        }
        self.out.push_back(stanza);
    }

    pub(super) fn send_error(&mut self, id: &str, error: &WireError) {
        if let Some(se) = error.stanza_error() {
            let iq = Iq::Error {
                from: Some(Jid::from(self.local_jid())),
                to: Some(Jid::from(self.peer_jid())),
                id: id.to_owned(),
                error: se,
                payload: None,
            };
            self.emit(iq_element(iq));
        }
    }

    /// True if a reconcile query of ours is unanswered (the broken variant
    /// [`Mutation::LiveBehindBulk`] holds live changes behind it).
    pub(super) fn bulk_outstanding(&self) -> bool {
        self.requests
            .values()
            .any(|r| matches!(r, Request::Edges(..) | Request::Presence(..)))
    }

    pub(super) fn window_free(&self) -> bool {
        let Some(live) = &self.live else {
            return false;
        };
        let used = self.requests.values().filter(|r| r.windowed()).count();
        used < live.limits.window as usize
    }

    /// Sends what the window allows: a restart's pulls of the contacts of active users, live
    /// batches (PS-52), edge queries, then the other presence queries; notices completions.
    pub(super) fn pump_with(&mut self, now: Time, dir: &dyn Directory) {
        if self.plan_repairs(dir) && self.driver {
            // The verification hello waits until the server has applied these repairs to its
            // roster, so that its edge root includes them (XEP §Starting and Ending a
            // Descent): a timer at `now`, which fires after this input is carried out.
            self.verify_at = Some(now);
        }
        self.pump(now);
    }

    pub(super) fn pump(&mut self, now: Time) {
        if self.live.is_none() {
            return;
        }
        let behind_bulk = self.config.mutation == Some(Mutation::LiveBehindBulk);
        // PS-52: a restart's pulls of the contacts of active users go first, so that the
        // peer answers them while the login storm's batches are still on their way.
        self.send_pulls(now, true);
        while !behind_bulk
            && self.window_free()
            && self.live.as_ref().is_some_and(|l| !l.dirty.is_empty())
        {
            self.send_batch(now);
        }
        while self.window_free() {
            let live = self.live.as_mut().expect("checked");
            let Some(edge) = &mut live.edge else { break };
            let Some(q) = edge.next_query(&mut self.edges, &live.limits) else {
                break;
            };
            let id = self.next_id("edges");
            self.send_query(id, q, Request::Edges(now));
        }
        self.send_pulls(now, false);
        // The broken variant: live changes go only once no query of the resync is waiting.
        while behind_bulk
            && !self.bulk_outstanding()
            && self.window_free()
            && self.live.as_ref().is_some_and(|l| !l.dirty.is_empty())
        {
            self.send_batch(now);
        }
        // A request that could not be sent has ended the session (`send_request`).
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if live.puller.as_ref().is_some_and(Puller::is_done) {
            live.puller = None;
            live.cache_verified = true;
        }
        // PS-36: the driver's descent is complete: verify with a new hello.
        let edge_idle = live.edge.as_ref().is_some_and(EdgeReconciler::is_done);
        if self.driver && edge_idle {
            if let Some(done) = live.edge.take() {
                live.note_descent(&done);
            }
            live.verify_due = true;
        }
        if live.verify_due
            && self.verify_at.is_none()
            && !self
                .requests
                .values()
                .any(|r| matches!(r, Request::Hello(..)))
        {
            live.verify_due = false;
            self.send_hello(now);
        }
        let Some(live) = self.live.as_mut() else {
            return;
        };
        if self.edges_verified && live.cache_verified && !live.synchronized_reported {
            live.synchronized_reported = true;
            self.failures = 0;
            self.events.push_back(Event::Synchronized);
        }
    }

    /// Sends the puller's queries while the window allows; `urgent_only`: only while a pull of
    /// active users' contacts is still to be sent (those go before live batches, PS-52).
    fn send_pulls(&mut self, now: Time, urgent_only: bool) {
        while self.window_free() {
            let live = self.live.as_mut().expect("checked");
            let Some(puller) = live
                .puller
                .as_mut()
                .filter(|p| !urgent_only || p.has_urgent())
            else {
                break;
            };
            let Some(q) = puller.next_query(&mut self.cache, &live.limits) else {
                break;
            };
            let id = self.next_id("presence");
            self.send_query(id, q, Request::Presence(now));
        }
    }

    pub(super) fn send_batch(&mut self, now: Time) {
        let live = self.live.as_mut().expect("checked by caller");
        let limits = live.limits;
        let mut batch = Batch {
            epoch: self.epoch,
            items: Vec::new(),
        };
        // Item contents are computed now, not when the change was queued (XEP §Batches).
        let mut size = 200;
        while let Some(user) = live.dirty.first().cloned() {
            let state = self.published.get(&user).cloned().unwrap_or_default();
            let Ok(item) = Item::from_model(&user, &state) else {
                live.dirty.remove(&user);
                continue;
            };
            let bytes = item.to_xml_bytes().map_or(0, |b| b.len());
            if !batch.items.is_empty()
                && (batch.items.len() >= limits.max_items as usize
                    || size + bytes > limits.max_bytes as usize)
            {
                break;
            }
            size += bytes;
            live.dirty.remove(&user);
            batch.items.push(item);
        }
        if batch.items.is_empty() {
            return;
        }
        let id = self.next_id("batch");
        let payload = batch.to_element().expect("a batch serialises");
        self.send_request(id, payload, Request::Batch(now));
    }

    /// The domain-level presence for a change from `old` to `new` of `user`'s published
    /// state, if the change is one resource's (PS-45; a new publisher or a changed except
    /// list needs an item, PS-47).
    pub(super) fn fanout_of(
        &self,
        user: &BareJid,
        old: Option<&PublisherPresence>,
        new: Option<&PublisherPresence>,
    ) -> Option<Element> {
        let old = old?;
        let empty = PublisherPresence::default();
        let new_ref = new.unwrap_or(&empty);
        if new.is_some() && old.except != new_ref.except {
            return None;
        }
        let mut changed = old
            .resources
            .keys()
            .chain(new_ref.resources.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|r| old.resources.get(*r) != new_ref.resources.get(*r));
        let resource = changed.next()?.clone();
        if changed.next().is_some() {
            return None;
        }
        let full = user.with_resource_str(&resource).ok()?;
        let mut presence = match new_ref.resources.get(&resource) {
            Some(rp) => {
                let one = PublisherPresence {
                    resources: [(resource.clone(), rp.clone())].into_iter().collect(),
                    except: BTreeSet::new(),
                };
                let item = Item::from_model(user, &one).ok()?;
                item.presences.into_iter().next()?.0
            }
            None => Presence::new(PresenceType::Unavailable).with_from(Jid::from(full)),
        };
        presence.to = Some(Jid::from(self.peer_jid()));
        presence.payloads.push(Element::from(Fanout));
        Some(xso::transform(&ServerNs(presence)).expect("a presence serialises"))
    }
}
