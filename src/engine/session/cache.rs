//! Repairs, the verification gate and the end of sessions (XEP §Repair of Subscription
//! Mismatches, §Verification, §Link Loss, Resumption and Fallback).

use super::*;

impl Session {
    /// Restores the cache of the peer that an earlier run of this server persisted with the
    /// peer epoch it belongs to (XEP §Persistence of Epochs and Caches), before any session
    /// of this run: it is unverified, so nothing of it is shown (PS-37); the next hello
    /// presents it, so that an unchanged peer costs only the differences, and a peer that
    /// restarted voids it (PS-13). If no session is established within the grace period it
    /// is voided ([`Event::CacheVoided`] with [`VoidReason::GraceExpired`]), the cue to delete
    /// the persisted copy (PS-81). Entries of another domain than the peer's are ignored.
    /// Does nothing once this session has a cache or a hello under way.
    pub fn restore_cache(
        &mut self,
        now: Time,
        epoch: Epoch,
        entries: Vec<(BareJid, PublisherPresence)>,
    ) {
        if self.cache_epoch.is_some() || self.live.is_some() || !self.requests.is_empty() {
            return;
        }
        let cap = Bounds::new(self.edges.len(), &self.config.limits).cache;
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|(p, s)| p.domain().as_str() == self.peer && !s.is_unavailable())
            .take(cap)
            .collect();
        if entries.is_empty() {
            return;
        }
        self.cache.set_depth(depth_for(entries.len() as u64));
        for (publisher, state) in entries {
            self.cache.set(&publisher, state);
        }
        self.cache_epoch = Some(epoch);
        self.edges_verified = false;
        self.grace_deadline = Some(now.plus_micros(self.config.grace));
    }

    // ---- internals: repairs ----

    /// Decides and sends the repairs of the differing edges learnt so far, once this side's
    /// part of the descent is idle (PS-61, PS-63, PS-65, PS-83); true if it sent any.
    pub(super) fn plan_repairs(&mut self, dir: &dyn Directory) -> bool {
        let Some(live) = &mut self.live else {
            return false;
        };
        let Some(edge) = &live.edge else {
            return false;
        };
        if !edge.is_done() {
            return false;
        }
        if edge.overflowed() {
            // More differences than the threshold: the descent stopped recording them
            // (XEP §Resource Exhaustion), and repairs are suspended (PS-65).
            if !live.suspended_repairs {
                live.suspended_repairs = true;
                let mismatches = Bounds::new(self.edges.len(), &live.limits).differences as u64;
                self.events
                    .push_back(Event::RepairsSuspended { mismatches });
            }
            return false;
        }
        let diff = edge.diff();
        let differing: Vec<(&Edge, Holder)> = diff
            .only_mine
            .iter()
            .map(|e| (e, Holder::Mine))
            .chain(diff.only_theirs.iter().map(|e| (e, Holder::Theirs)))
            .collect();
        let pairs: BTreeSet<(&BareJid, &BareJid)> = differing
            .iter()
            .map(|(e, _)| (&e.publisher, &e.subscriber))
            .collect();
        // The diff learnt so far may be a part: this side can be idle while the peer still
        // descends. The edge sets differ in at least as many edges as their counts do, so a
        // mass loss (a restored backup) suspends repairs before any is sent (PS-65).
        let floor = self.edges.len().abs_diff(live.peer_edges);
        let mismatches = (pairs.len() as u64).max(floor);
        if repairs_suspended(mismatches, self.edges.len()) {
            if !live.suspended_repairs {
                live.suspended_repairs = true;
                self.events
                    .push_back(Event::RepairsSuspended { mismatches });
            }
            return false;
        }
        let fresh: Vec<(&Edge, Holder)> = differing
            .into_iter()
            .filter(|(e, _)| {
                !live
                    .repaired
                    .contains(&(e.publisher.clone(), e.subscriber.clone()))
            })
            .collect();
        if fresh.is_empty() {
            return false;
        }
        let (stanzas, refused) = plan(
            &self.local,
            |u, c| dir.roster_item(u, c),
            fresh.iter().copied(),
        );
        for (e, _) in &fresh {
            live.repaired
                .insert((e.publisher.clone(), e.subscriber.clone()));
        }
        for e in refused {
            self.events.push_back(Event::NotNormalized(e));
        }
        let sent = !stanzas.is_empty();
        for s in stanzas {
            if self.emit(s.to_element()) {
                self.events.push_back(Event::Repaired(s));
            }
        }
        sent
    }

    // ---- internals: cache and gate ----

    /// Releases the cached state of `publisher` to local users if the gate is open (PS-37).
    pub(super) fn release(&mut self, publisher: &BareJid) {
        if !self.edges_verified {
            return;
        }
        let new = self.cache.get(publisher).cloned();
        let old = self.shown.get(publisher).cloned();
        if old == new {
            return;
        }
        match &new {
            Some(s) => self.shown.insert(publisher.clone(), s.clone()),
            None => self.shown.remove(publisher),
        };
        self.events.push_back(Event::Deliver {
            publisher: publisher.clone(),
            old,
            new,
        });
    }

    pub(super) fn release_all(&mut self) {
        let publishers: BTreeSet<BareJid> = self
            .cache
            .iter()
            .map(|(p, _)| p.clone())
            .chain(self.shown.keys().cloned())
            .collect();
        for p in publishers {
            self.release(&p);
        }
    }

    /// Voids the cache: every publisher shown becomes unavailable locally (PS-13).
    pub(super) fn void_cache(&mut self, reason: VoidReason) {
        self.cache.clear();
        for (publisher, old) in std::mem::take(&mut self.shown) {
            self.events.push_back(Event::Deliver {
                publisher,
                old: Some(old),
                new: None,
            });
        }
        if let Some(live) = &mut self.live {
            live.puller = None;
            live.cache_verified = false;
        }
        self.events.push_back(Event::CacheVoided(reason));
    }

    // ---- internals: ending ----

    pub(super) fn end_session(&mut self, now: Time, reason: String, failed: bool) {
        let had = self.live.is_some() || !self.requests.is_empty();
        self.live = None;
        self.requests.clear();
        self.pre_dirty.clear();
        if matches!(self.mode, Mode::Legacy | Mode::Small) {
            // A small peer's hello that failed: RFC 6121 goes on (PS-93).
            return;
        }
        self.mode = Mode::Suspended;
        if had {
            self.events.push_back(Event::SessionEnded(reason));
        }
        if self.cache_epoch.is_some() && self.grace_deadline.is_none() {
            self.grace_deadline = Some(now.plus_micros(self.config.grace));
        }
        if failed {
            self.failures += 1;
            if self.failures >= self.config.max_failures {
                let n = self.failures;
                self.fall_back(FallbackReason::Failures(n));
                return;
            }
            // PS-57: at least 10 s, doubling.
            let delay = self.config.retry << (self.failures - 1).min(16);
            if self.link_up {
                self.retry_at = Some(now.plus_micros(delay));
            }
        }
    }

    pub(super) fn fall_back(&mut self, reason: FallbackReason) {
        self.live = None;
        self.requests.clear();
        self.mode = Mode::Legacy;
        self.grace_deadline = None;
        self.retry_at = None;
        self.hello_at = None;
        self.edges_verified = false;
        if self.cache_epoch.is_some() || !self.shown.is_empty() {
            self.void_cache(VoidReason::Fallback);
        }
        self.cache_epoch = None;
        self.fallback = Some(reason.clone());
        self.events.push_back(Event::Fallback(reason));
    }
}
