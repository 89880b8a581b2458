//! Hello exchanges: our hello, the three comparisons, epochs (XEP §Hello, §Epochs).

use super::*;

impl Session {
    // ---- internals: hello ----

    pub(super) fn local_jid(&self) -> BareJid {
        BareJid::new(&self.local).expect("a domain")
    }

    pub(super) fn peer_jid(&self) -> BareJid {
        BareJid::new(&self.peer).expect("a domain")
    }

    pub(super) fn next_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("ps-{kind}-{}", self.next_id)
    }

    pub(super) fn set_algo(&mut self, algo: HashAlgo) {
        if algo == self.algo {
            return;
        }
        self.algo = algo;
        let hasher = PairHasher::new(algo, &self.local, &self.peer);
        let edges: Vec<Edge> = self.edges.iter().cloned().collect();
        self.edges = EdgeSet::with_edges(hasher.clone(), depth_for(edges.len() as u64), edges);
        let rebuild = |set: &PresenceSet| {
            let mut new = PresenceSet::new(hasher.clone(), depth_for(set.len()));
            for (p, s) in set.iter() {
                new.set(p, s.clone());
            }
            new
        };
        self.published = rebuild(&self.published);
        self.cache = rebuild(&self.cache);
    }

    pub(super) fn empty_fp(&self) -> Fingerprint {
        NodeValue::EMPTY.fingerprint(self.algo)
    }

    pub(super) fn my_hello(&self, peer_epoch_for_answer: Option<Epoch>) -> Hello {
        let root = |set: SetName, (fp, count): (Fingerprint, u64)| Root {
            set,
            fp,
            count,
            changes: match set {
                SetName::Edges => self.apart.edges,
                SetName::Published => self.apart.published,
                SetName::Cached => None,
            },
        };
        let peer_epoch = peer_epoch_for_answer.or(self.cache_epoch);
        let cached = if peer_epoch.is_some() {
            self.cache.root()
        } else {
            (self.empty_fp(), 0)
        };
        Hello::new(
            self.epoch,
            peer_epoch,
            self.algo,
            &self.config.limits,
            root(SetName::Edges, self.edges.root()),
            root(SetName::Published, self.published.root()),
            root(SetName::Cached, cached),
        )
    }

    pub(super) fn send_hello(&mut self, now: Time) {
        if self
            .requests
            .values()
            .any(|r| matches!(r, Request::Hello(..)))
        {
            return; // PS-20: one unanswered hello at a time
        }
        let hello = self.my_hello(None);
        let id = self.next_id("hello");
        let payload = hello.to_element().expect("a hello serialises");
        self.send_request(id, payload, Request::Hello(Box::new(hello), now));
    }

    /// Both hellos are known: epochs, then the three comparisons (XEP §Hello).
    pub(super) fn exchange_complete(
        &mut self,
        request: &Hello,
        answer: &Hello,
        we_asked: bool,
        dir: &dyn Directory,
    ) {
        let (mine, theirs) = if we_asked {
            (request, answer)
        } else {
            (answer, request)
        };
        let limits = request.limits().negotiate(&answer.limits());
        let empty = self.empty_fp();
        // PS-19: a cached root of the wrong epoch counts as the empty set, on both sides.
        let cached_fp = |h: &Hello, other: &Hello| {
            let c = h
                .root(SetName::Cached)
                .expect("parsed hellos have three roots");
            if h.peer_epoch == Some(other.epoch) {
                c.fp
            } else {
                empty
            }
        };
        let fp = |h: &Hello, s| h.root(s).expect("three roots").fp;
        let mut edges_equal = fp(mine, SetName::Edges) == fp(theirs, SetName::Edges);
        let mut my_cache_equal = cached_fp(mine, theirs) == fp(theirs, SetName::Published);
        if self.live.is_none() {
            let resumed = self.sessions_started > 0 && self.cache_epoch == Some(theirs.epoch);
            if resumed && self.config.mutation == Some(Mutation::NeverReverify) {
                (edges_equal, my_cache_equal) = (true, true);
            }
            self.sessions_started += 1;
        }
        self.grace_deadline = None;
        self.retry_at = None;
        self.hello_at = None;
        self.mode = Mode::Synchronized;
        let first = self.live.is_none();
        let live = self.live.get_or_insert_with(|| Live {
            limits,
            peer_epoch: theirs.epoch,
            descents: 0,
            stuck: 0,
            last_found: BTreeSet::new(),
            edge: None,
            verify_due: false,
            repaired: BTreeSet::new(),
            suspended_repairs: false,
            peer_edges: 0,
            puller: None,
            cache_verified: false,
            dirty: BTreeSet::new(),
            synchronized_reported: false,
        });
        live.limits = limits;
        live.peer_epoch = theirs.epoch;
        live.peer_edges = fp_count(theirs, SetName::Edges);
        if first {
            self.events.push_back(Event::SessionStarted);
            // Changes made while our hello was in flight (PS-44).
            let dirty = std::mem::take(&mut self.pre_dirty);
            if let Some(live) = &mut self.live {
                live.dirty.extend(dirty);
            }
        }
        // PS-41: published states fit the effective max-bytes.
        self.refit(limits.max_bytes);
        let live = self.live.as_mut().expect("just set");
        // Edges.
        let was_verified = self.edges_verified;
        if edges_equal {
            self.edges_verified = true;
            live.edge = None;
            live.verify_due = false;
        } else {
            self.edges_verified = false;
            // PS-38 on the other side: the driver's hello after a descent we answered. The
            // same count of differences that resist repair makes both give up at once.
            if !self.driver && !we_asked && live.edge.as_ref().is_some_and(|e| e.is_done()) {
                let done = live.edge.take().expect("checked");
                live.note_descent(&done);
                if live.stuck >= self.config.max_descents {
                    let n = live.stuck;
                    self.fall_back(FallbackReason::Unverifiable(n));
                    return;
                }
            }
            let busy = live.edge.as_ref().is_some_and(|e| !e.is_done());
            if self.driver && !busy {
                let current = self.edges.root().0;
                if we_asked && current == fp(theirs, SetName::Edges) {
                    // Repairs of the peer arrived after our hello's root was computed: verify
                    // again rather than descend (XEP §Starting and Ending a Descent).
                    live.verify_due = true;
                } else if live.stuck >= self.config.max_descents {
                    let n = live.descents;
                    self.fall_back(FallbackReason::Unverifiable(n));
                    return;
                } else {
                    live.descents += 1;
                    live.verify_due = false;
                    let bounds = Bounds::new(self.edges.len(), &live.limits);
                    let mut reconciler =
                        EdgeReconciler::bounded(bounds.differences, bounds.descent_nodes);
                    // The first query waits for the window like any other (PS-50): the pump
                    // that follows every input sends it when a slot is free.
                    let changes = self
                        .apart
                        .edges
                        .zip(theirs.root(SetName::Edges).and_then(|r| r.changes))
                        .map(|(a, b)| a.saturating_add(b));
                    reconciler.open(&self.edges, &live.limits, changes);
                    live.edge = Some(reconciler);
                }
            }
        }
        // Our cache of the peer's published set.
        let live = self.live.as_mut().expect("still established");
        if my_cache_equal {
            live.puller = None;
            live.cache_verified = true;
        } else if live.puller.is_none() {
            live.cache_verified = false;
            // The peer's count sizes our cache's tree: never beyond what we would accept
            // (found by fuzzing: a count of 2.8·10^16 built a tree of 1.1 GB).
            let cap = Bounds::new(self.edges.len(), &live.limits).cache as u64;
            let count = fp_count(theirs, SetName::Published).min(cap);
            let mut followed = 0;
            let mut urgent = Vec::new();
            let priority = if self.cache.is_empty() {
                // Restart: pull the wanted buckets first (PS-53), then the root.
                if self.cache.digest().tree().depth() == 0 {
                    self.cache.set_depth(depth_for(count));
                }
                let len = bucket_len(count, live.limits.leaf_items);
                let mut seen = BTreeSet::new();
                // With one bucket, the descent from the root is the pull.
                let wanted = if len == 0 {
                    Vec::new()
                } else {
                    dir.wanted(&self.peer)
                };
                // The peer's publishers our users follow: about count / followed of them
                // are published (online), which sizes the pulls of one publisher each.
                let publishers: BTreeSet<&BareJid> = self
                    .edges
                    .iter()
                    .filter(|e| e.publisher.domain().as_str() == self.peer)
                    .map(|e| &e.publisher)
                    .collect();
                followed = publishers.len() as u64;
                // The most urgent publishers each alone (a bucket would bring its other
                // publishers before the next urgent one), the others by bucket, and then the
                // rest of the publishers our users follow (PS-53: "then the rest"), so that
                // the pulls fill the cache and no descent from the root is needed.
                let rest: Vec<&BareJid> = if len == 0 {
                    Vec::new()
                } else {
                    let ranked: BTreeSet<&BareJid> = wanted.iter().map(|(p, _)| p).collect();
                    publishers
                        .into_iter()
                        .filter(|p| !ranked.contains(p))
                        .collect()
                };
                wanted
                    .iter()
                    .map(|(p, rank)| (p, *rank))
                    .chain(rest.into_iter().map(|p| (p, u8::MAX)))
                    .map(|(p, rank)| {
                        let len = if rank == 0 { MAX_DEPTH } else { len };
                        let prefix = self.cache.prefix_of(p, len);
                        if rank == 0 {
                            urgent.push(prefix);
                        }
                        prefix
                    })
                    .filter(|p| seen.insert(*p))
                    .collect()
            } else {
                Vec::new()
            };
            let bounds = Bounds::new(self.edges.len(), &live.limits);
            let changes = theirs.root(SetName::Published).and_then(|r| r.changes);
            live.puller = Some(
                Puller::bounded(priority, bounds.pull_nodes, bounds.cache)
                    .expecting(count)
                    .following(followed)
                    .verifying(fp(theirs, SetName::Published))
                    .sketching(changes)
                    .urgent(urgent),
            );
        }
        // What changes from now on is counted again for the next hellos (XEP §Sketches).
        self.apart = Apart {
            edges: Some(0),
            published: Some(0),
        };
        if self.edges_verified && !was_verified {
            self.release_all();
        }
    }
}

impl Live {
    /// A completed descent of the driver: counts it towards PS-38 if a difference it found
    /// was also found by the previous one (or it found more than it could record), and
    /// starts the count again otherwise.
    pub(super) fn note_descent(&mut self, done: &EdgeReconciler) {
        if done.overflowed() {
            self.stuck += 1;
            self.last_found.clear();
            return;
        }
        let diff = done.diff();
        let found: BTreeSet<(BareJid, BareJid)> = diff
            .only_mine
            .iter()
            .chain(&diff.only_theirs)
            .map(|e| (e.publisher.clone(), e.subscriber.clone()))
            .collect();
        self.stuck = if found.is_empty() {
            0
        } else if found.is_disjoint(&self.last_found) {
            1
        } else {
            self.stuck + 1
        };
        self.last_found = found;
    }
}

/// The changes a side made to its edge and published sets since its last session with the
/// peer ended (XEP §Sketches, the hello's `changes`): None until a session has been
/// established in this run (the changes are then unknown), zeroed when a hello exchange
/// completes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Apart {
    edges: Option<u64>,
    published: Option<u64>,
}

impl Apart {
    pub(super) fn count_edges(&mut self, n: u64) {
        if let Some(c) = &mut self.edges {
            *c = c.saturating_add(n);
        }
    }

    pub(super) fn count_published(&mut self) {
        if let Some(c) = &mut self.published {
            *c = c.saturating_add(1);
        }
    }
}
