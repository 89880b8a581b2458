//! What a session receives: requests, answers, domain-level presence and shutdown messages,
//! each checked before use (XEP §Reconciliation, §Batches, §Error Handling).

use super::*;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};

impl Session {
    // ---- internals: receiving ----

    pub(super) fn handle_iq(&mut self, now: Time, stanza: &Element, dir: &dyn Directory) {
        let id = stanza.attr("id").unwrap_or_default().to_owned();
        match stanza.attr("type") {
            Some("set") => self.handle_request(now, &id, stanza, dir),
            // PS-94: answers come from the peer's domain itself, not from one of its users.
            Some("result" | "error") if !self.sent_by_peer_domain(stanza) => {}
            Some("result") => {
                let Some(request) = self.requests.remove(&id) else {
                    return; // an answer of an earlier session
                };
                let payload = stanza.children().next();
                self.handle_answer(now, request, payload, dir);
            }
            Some("error") => {
                let Some(request) = self.requests.remove(&id) else {
                    return;
                };
                let reason = payload_of(
                    stanza
                        .get_child("error", ns::JABBER_SERVER)
                        .unwrap_or(stanza),
                )
                .map_or("error".to_owned(), |c| c.name().to_owned());
                if matches!(request, Request::Hello(..)) && reason == "window-exceeded" {
                    // PS-20: too soon; not a failed session: try again later.
                    if let Some(live) = &mut self.live {
                        // A verification hello (PS-36) that a busy peer's rate refused.
                        live.verify_due = true;
                        self.verify_at = Some(now.plus_micros(HELLO_INTERVAL));
                    } else if self.link_up && self.mode != Mode::Legacy {
                        self.retry_at = Some(now.plus_micros(HELLO_INTERVAL));
                    }
                    return;
                }
                self.end_session(now, format!("peer answered with an error: {reason}"), true);
            }
            _ => {}
        }
    }

    pub(super) fn reject(&mut self, now: Time, id: &str, error: WireError) {
        self.send_error(id, &error);
        let text = error.to_string();
        self.events.push_back(Event::Rejected(error));
        self.end_session(now, format!("request refused: {text}"), true);
    }

    /// A request of this protocol from a peer this side treats as legacy (it gave up, PS-38,
    /// or has no hash in common): answered with an error (PS-69), so that the peer ends its
    /// session too, <out-of-order/> for a reconcile or a batch (PS-75), and for a hello the
    /// <service-unavailable/> of a server without the extension. Answers and everything
    /// else are ignored (PS-46).
    pub(super) fn refuse_as_legacy(&mut self, stanza: &Element) {
        if stanza.name() != "iq" || stanza.attr("type") != Some("set") {
            return;
        }
        let Some(payload) = payload_of(stanza) else {
            return;
        };
        if !self.sent_by_peer_domain(stanza) {
            return;
        }
        let id = stanza.attr("id").unwrap_or_default();
        match payload.name() {
            "reconcile" => self.send_error(id, &out_of_order("reconcile")),
            "batch" => self.send_error(id, &out_of_order("batch")),
            _ => {
                let error = StanzaError::new(
                    ErrorType::Cancel,
                    DefinedCondition::ServiceUnavailable,
                    "en",
                    "the peer is treated as legacy (XEP PS-38)",
                );
                let iq = Iq::Error {
                    from: Some(Jid::from(self.local_jid())),
                    to: Some(Jid::from(self.peer_jid())),
                    id: id.to_owned(),
                    error,
                    payload: None,
                };
                self.emit(iq_element(iq));
            }
        }
    }

    pub(super) fn handle_request(
        &mut self,
        now: Time,
        id: &str,
        stanza: &Element,
        dir: &dyn Directory,
    ) {
        let Some(payload) = payload_of(stanza) else {
            return;
        };
        if let Err(e) = self.domains.check_from(
            stanza
                .attr("from")
                .and_then(|f| f.parse::<Jid>().ok())
                .as_ref(),
        ) {
            self.reject(now, id, e);
            return;
        }
        if !self.sent_by_peer_domain(stanza) {
            return; // PS-94: a user of the peer domain does not speak for its server
        }
        match payload.name() {
            "hello" => match Hello::parse_element(payload) {
                Ok(hello) => self.handle_hello(now, id, hello, dir),
                Err(e) => self.reject(now, id, e),
            },
            "reconcile" => {
                let Some(live) = &self.live else {
                    return self.reject(now, id, out_of_order("reconcile"));
                };
                let limits = live.limits;
                let q = match parse_checked::<Reconcile>(
                    payload,
                    &limits,
                    &self.domains,
                    self.config.mutation,
                )
                .and_then(|q| q.check_direction(Direction::Query).map(|()| q))
                {
                    Ok(q) => q,
                    Err(e) => return self.reject(now, id, e),
                };
                let reply = match q.set {
                    ReconcileSet::Edges => {
                        let bounds = self.bounds();
                        let live = self.live.as_mut().expect("checked");
                        let edge = live.edge.get_or_insert_with(|| {
                            EdgeReconciler::bounded(bounds.differences, bounds.descent_nodes)
                        });
                        let reply = edge.answer(&mut self.edges, &q, &limits);
                        // The repairs this query shows go before the answer that may end
                        // the descent, so the driver has them before its verification
                        // hello (XEP §Starting and Ending a Descent).
                        self.plan_repairs(dir);
                        reply
                    }
                    ReconcileSet::Presence => answer(&mut self.published, &q, &limits),
                };
                match reply {
                    Ok(reply) => {
                        self.send_result(id, Some(reply.to_element().expect("serialises")))
                    }
                    Err(e) => self.reject(now, id, descent_error(e)),
                }
            }
            "batch" => {
                let Some(live) = &self.live else {
                    return self.reject(now, id, out_of_order("batch"));
                };
                let (limits, peer_epoch) = (live.limits, live.peer_epoch);
                let batch = match parse_checked::<Batch>(
                    payload,
                    &limits,
                    &self.domains,
                    self.config.mutation,
                ) {
                    Ok(b) => b,
                    Err(e) => return self.reject(now, id, e),
                };
                if batch.epoch != peer_epoch {
                    // PS-43: nothing of a stale batch is applied.
                    return self.reject(
                        now,
                        id,
                        WireError::StaleEpoch {
                            element: "batch",
                            got: batch.epoch,
                            current: peer_epoch,
                        },
                    );
                }
                // XEP §Resource Exhaustion: the cache holds at most C entries.
                let bound = self.bounds().cache;
                let new = batch
                    .items
                    .iter()
                    .filter(|i| !i.is_unavailable() && self.cache.get(&i.jid).is_none())
                    .count();
                if self.cache.len() as usize + new > bound {
                    let e = WireError::Exhausted {
                        element: "batch",
                        what: "cache entries",
                        bound,
                    };
                    return self.reject(now, id, e);
                }
                for item in &batch.items {
                    self.apply_item(item);
                }
                self.send_result(id, None);
            }
            name => {
                let e = WireError::Malformed {
                    element: "iq",
                    reason: crate::wire::Malformed::Structure(format!(
                        "<{name}/> is not a request of this protocol"
                    )),
                };
                self.reject(now, id, e);
            }
        }
    }

    pub(super) fn handle_hello(
        &mut self,
        now: Time,
        id: &str,
        request: Hello,
        dir: &dyn Directory,
    ) {
        if !self.config.algos.contains(&request.hash) {
            // PS-17.
            let e = WireError::UnsupportedHash {
                element: "hello",
                algo: request.hash.name().to_owned(),
            };
            self.send_error(id, &e);
            return;
        }
        if let Err(e) = self.admit_hello(now, request.epoch) {
            // Refused, not failed: the session, if any, stands (PS-20).
            self.send_error(id, &e);
            self.events.push_back(Event::Rejected(e));
            return;
        }
        self.set_algo(request.hash);
        // PS-13, the first rule of XEP §Hello: a new epoch voids the cache first.
        if self.cache_epoch != Some(request.epoch) {
            if let Some(old) = self.cache_epoch {
                self.supersede(old);
                self.events.push_back(Event::PeerRestarted);
                if self.config.mutation != Some(Mutation::IgnoreNewEpoch) {
                    self.void_cache(VoidReason::NewEpoch);
                }
            }
            self.cache_epoch = Some(request.epoch);
            self.live = None; // a new run of the peer: a new session
            self.forget_earlier_run();
        }
        let answer = self.my_hello(Some(request.epoch));
        self.send_result(id, Some(answer.to_element().expect("a hello serialises")));
        // A crossing hello of ours is answered too; this exchange is the one that counts.
        self.exchange_complete(&request, &answer, false, dir);
    }

    /// The rates of XEP §Resource Exhaustion for a hello of the peer with `epoch`: a budget
    /// of [`HELLO_BURST`] hellos per link that refills by one every [`HELLO_INTERVAL`] (PS-20),
    /// and at most [`EPOCHS_PER_MINUTE`] new epochs in 60 seconds. Spends from both if the
    /// hello is admitted.
    pub(super) fn admit_hello(&mut self, now: Time, epoch: Epoch) -> Result<(), WireError> {
        let (tokens, since) = self.hello_budget;
        let refill = (now.0.saturating_sub(since.0) / HELLO_INTERVAL).min(HELLO_BURST as u64);
        let tokens = (tokens as u64 + refill).min(HELLO_BURST as u64) as u32;
        let since = if refill > 0 {
            since.plus_micros(refill * HELLO_INTERVAL)
        } else {
            since
        };
        self.hello_budget = (tokens, since);
        if tokens == 0 {
            return Err(WireError::TooFast {
                element: "hello",
                reason: "more than one hello per 10 seconds".into(),
            });
        }
        let minute = 60 * SECOND;
        while self
            .recent_epochs
            .front()
            .is_some_and(|t| t.0 + minute <= now.0)
        {
            self.recent_epochs.pop_front();
        }
        let new_epoch = self.cache_epoch != Some(epoch);
        if new_epoch && self.cache_epoch.is_some() && self.recent_epochs.len() >= EPOCHS_PER_MINUTE
        {
            return Err(WireError::TooFast {
                element: "hello",
                reason: format!("more than {EPOCHS_PER_MINUTE} new epochs in 60 seconds"),
            });
        }
        if new_epoch && self.cache_epoch.is_some() {
            self.recent_epochs.push_back(now);
        }
        self.hello_budget.0 -= 1;
        Ok(())
    }

    /// The peer answers from a new run: the reconcile queries and batches of the session with
    /// its earlier run are forgotten. The new run does not hold that run's state (PS-12) and
    /// will not answer them, and they would otherwise keep the window of the new session
    /// (PS-50) until they time out and end it (PS-51); an answer that still arrives is one of
    /// an earlier session and is ignored. An unanswered hello of ours stays: crossing hellos are
    /// both answered (PS-20). With at most one hello and a window of requests, our unanswered
    /// requests stay within `w + 1` (XEP §Resource Exhaustion).
    pub(super) fn forget_earlier_run(&mut self) {
        self.requests.retain(|_, r| !r.windowed());
    }

    /// Remembers `epoch` as superseded, forgetting the oldest beyond [`SUPERSEDED_KEPT`].
    pub(super) fn supersede(&mut self, epoch: Epoch) {
        if self.superseded.contains(&epoch) {
            return;
        }
        if self.superseded.len() >= SUPERSEDED_KEPT {
            self.superseded.pop_front();
        }
        self.superseded.push_back(epoch);
    }

    pub(super) fn handle_answer(
        &mut self,
        now: Time,
        request: Request,
        payload: Option<&Element>,
        dir: &dyn Directory,
    ) {
        let limits = self
            .live
            .as_ref()
            .map(|l| l.limits)
            .unwrap_or(self.config.limits);
        match request {
            Request::Hello(sent, _) => {
                let hello = match payload.map(Hello::parse_element) {
                    Some(Ok(h)) => h,
                    Some(Err(e)) => return self.discard(now, e),
                    None => return self.discard(now, missing("hello")),
                };
                if hello.hash != sent.hash {
                    return self.discard(now, missing("hello with the hash of the request"));
                }
                // PS-19: an answer from another epoch than our cache's voids it. Our cache's,
                // not the one our hello named: a crossing hello of the peer may have brought
                // the answer's epoch already, and that epoch is current, not superseded (a
                // later shutdown of it must be heeded, PS-55).
                if self.cache_epoch != Some(hello.epoch) {
                    if let Some(old) = self.cache_epoch {
                        self.supersede(old);
                        self.events.push_back(Event::PeerRestarted);
                        if self.config.mutation != Some(Mutation::IgnoreNewEpoch) {
                            self.void_cache(VoidReason::NewEpoch);
                        }
                    }
                    self.cache_epoch = Some(hello.epoch);
                }
                if self
                    .live
                    .as_ref()
                    .is_some_and(|l| l.peer_epoch != hello.epoch)
                {
                    self.live = None;
                    self.forget_earlier_run();
                }
                self.exchange_complete(&sent, &hello, true, dir);
            }
            Request::Edges(_) => {
                let answer = match payload.map(|p| {
                    parse_checked::<Reconcile>(p, &limits, &self.domains, self.config.mutation)
                }) {
                    Some(Ok(a)) if a.set == ReconcileSet::Edges => a,
                    Some(Err(e)) => return self.discard(now, e),
                    _ => return self.discard(now, missing("reconcile set='edges'")),
                };
                if let Some(live) = &mut self.live
                    && let Some(edge) = &mut live.edge
                    && let Err(e) = edge.handle_answer(&mut self.edges, &answer)
                {
                    self.discard(now, descent_error(e));
                }
            }
            Request::Presence(_) => {
                let answer = match payload.map(|p| {
                    parse_checked::<Reconcile>(p, &limits, &self.domains, self.config.mutation)
                        .and_then(|a| a.check_direction(Direction::Answer).map(|()| a))
                }) {
                    Some(Ok(a)) if a.set == ReconcileSet::Presence => a,
                    Some(Err(e)) => return self.discard(now, e),
                    _ => return self.discard(now, missing("reconcile set='presence'")),
                };
                let Some(live) = &mut self.live else { return };
                let Some(puller) = &mut live.puller else {
                    return;
                };
                match puller.handle_answer(&mut self.cache, &answer) {
                    Ok(changes) => {
                        for c in changes {
                            self.release(&c.publisher);
                        }
                    }
                    Err(e) => self.discard(now, descent_error(e)),
                }
            }
            Request::Batch(_) => {}
        }
    }

    /// A bad answer or presence: nothing can be returned (PS-70); the session ends.
    pub(super) fn discard(&mut self, now: Time, error: WireError) {
        let text = error.to_string();
        self.events.push_back(Event::Rejected(error));
        self.end_session(now, format!("discarded: {text}"), true);
    }

    pub(super) fn handle_fanout(&mut self, now: Time, stanza: &Element) {
        if self.live.is_none() {
            return; // PS-46: ignored without a session
        }
        // Payloads bounded in depth before they are built (XEP §Items).
        let presence = match xso::transform::<ShallowPresence, _>(stanza) {
            Ok(p) => p.0,
            Err(e) => return self.discard(now, WireError::from_xso("fanout", e)),
        };
        match Fanout::check_presence(&presence, &self.domains) {
            Err(WireError::ForeignJid { .. })
                if self.config.mutation == Some(Mutation::TrustForeignJid) => {}
            Err(e) => return self.discard(now, e),
            Ok(()) => {}
        }
        let Some(from) = presence.from.clone() else {
            return;
        };
        let publisher = from.to_bare();
        let Some(resource) = from.resource().map(|r| r.as_str().to_owned()) else {
            return;
        };
        let Some(mut state) = self.cache.get(&publisher).cloned() else {
            // PS-48: no entry: deliver nothing, reconcile the bucket.
            let len = bucket_len(self.cache.len().max(1), self.config.limits.leaf_items);
            let prefix = self.cache.prefix_of(&publisher, len);
            let bounds = self.bounds();
            if let Some(live) = &mut self.live {
                live.cache_verified = false;
                live.synchronized_reported = false;
                // Each prefix waits once, and the waiting prefixes are bounded (XEP §Resource
                // Exhaustion).
                live.puller
                    .get_or_insert_with(|| {
                        Puller::bounded(std::iter::empty(), bounds.pull_nodes, bounds.cache)
                    })
                    .prioritize(prefix);
            }
            return;
        };
        if presence.type_ == PresenceType::Unavailable {
            state.resources.remove(&resource);
        } else {
            let mut p = presence;
            p.to = None;
            p.payloads.retain(|e| !e.is("fanout", ns::PRESENCE_SYNC));
            let item = Item {
                jid: publisher.clone(),
                presences: vec![ItemPresence(p)],
                excepts: Vec::new(),
            };
            match item.to_model().resources.into_iter().next() {
                Some((_, rp)) => {
                    state.resources.insert(resource, rp);
                }
                None => return,
            }
        }
        self.cache.set(&publisher, state);
        self.release(&publisher);
    }

    /// True if `stanza` is from the peer's domain itself (PS-94): requests, answers and
    /// shutdown announcements come from the server, never from one of its users.
    pub(super) fn sent_by_peer_domain(&self, stanza: &Element) -> bool {
        stanza
            .attr("from")
            .and_then(|f| f.parse::<Jid>().ok())
            .is_some_and(|j| {
                j.node().is_none() && j.resource().is_none() && j.domain().as_str() == self.peer
            })
    }

    pub(super) fn handle_shutdown(&mut self, now: Time, stanza: &Element) {
        let Some(element) = stanza.get_child("shutdown", ns::PRESENCE_SYNC) else {
            return;
        };
        if !self.sent_by_peer_domain(stanza) {
            return; // PS-94
        }
        let shutdown = match Shutdown::parse_element(element) {
            Ok(s) => s,
            Err(e) => return self.discard(now, e),
        };
        if self.superseded.contains(&shutdown.epoch) {
            return; // PS-55: a late announcement of an earlier run
        }
        if self.cache_epoch == Some(shutdown.epoch) {
            self.supersede(shutdown.epoch);
            self.void_cache(VoidReason::Shutdown);
            self.cache_epoch = None;
            self.edges_verified = false;
        }
        self.end_session(now, "peer shut down".into(), false);
        self.grace_deadline = None;
    }

    pub(super) fn apply_item(&mut self, item: &Item) {
        let state = item.to_model();
        self.cache.set(&item.jid, state);
        self.release(&item.jid);
    }
}

/// The error for a reconcile or batch outside a session (PS-75).
fn out_of_order(element: &'static str) -> WireError {
    WireError::OutOfOrder {
        element,
        reason: "no hello exchange on the current streams".into(),
    }
}

/// The error for an answer without the payload its request calls for.
fn missing(what: &str) -> WireError {
    WireError::Malformed {
        element: "iq",
        reason: crate::wire::Malformed::Structure(format!("the answer lacks a {what}")),
    }
}
