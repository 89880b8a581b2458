//! What a generated [`Federation`] offers: sizes, accounts, sessions, and installing it on
//! servers.

use super::*;

/// What a [`Federation`] amounts to, for logs and reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of domains.
    pub domains: usize,
    /// Users in all domains.
    pub users: u64,
    /// Users with at least one cross-domain contact.
    pub federating: u64,
    /// Cross-domain relations (pairs of roster items).
    pub relations: u64,
    /// Same-domain relations.
    pub local_relations: u64,
    /// Cross-domain edges ([`Federation::edges`]).
    pub edges: u64,
    /// Median number of cross-domain contacts of the federating users.
    pub median_contacts: u32,
    /// 99th percentile of the same.
    pub p99_contacts: u32,
    /// Maximum of the same.
    pub max_contacts: u32,
    /// Online users.
    pub online: u64,
    /// Available resources.
    pub sessions: u64,
    /// Active users.
    pub active: u64,
    /// Blocked JIDs.
    pub blocks: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} domains, {} users ({} federating), {} cross-domain relations, {} edges, \
             {} local relations; contacts median {}, p99 {}, max {}; {} online ({} sessions), \
             {} active; {} blocks",
            self.domains,
            self.users,
            self.federating,
            self.relations,
            self.edges,
            self.local_relations,
            self.median_contacts,
            self.p99_contacts,
            self.max_contacts,
            self.online,
            self.sessions,
            self.active,
            self.blocks
        )
    }
}

impl Federation {
    // ---- what it is ----

    /// The spec it was generated from.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The domains (for a hub federation, the hub first).
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The position of `domain` in [`Federation::domains`].
    pub fn domain_index(&self, domain: &str) -> Option<u32> {
        self.index.get(domain).copied()
    }

    pub(super) fn domain_of(&self, domain: &str) -> usize {
        match self.index.get(domain) {
            Some(&d) => d as usize,
            None => panic!("{domain} is not a domain of the federation"),
        }
    }

    /// The users of `domain`, `u0@domain` first.
    ///
    /// # Panics
    /// If `domain` is not part of the federation.
    pub fn users(&self, domain: &str) -> &[BareJid] {
        &self.users[self.domain_of(domain)]
    }

    /// The total number of users.
    pub fn user_count(&self) -> usize {
        *self.offsets.last().expect("at least one domain") as usize
    }

    /// The bare JID of a user.
    pub fn jid(&self, user: UserId) -> &BareJid {
        &self.users[user.domain as usize][user.index as usize]
    }

    /// The [`UserId`] of a JID, if it is a user of the federation.
    pub fn user_id(&self, jid: &BareJid) -> Option<UserId> {
        let domain = self.domain_index(jid.domain().as_str())?;
        let index: u32 = jid.node()?.as_str().strip_prefix('u')?.parse().ok()?;
        let user = UserId { domain, index };
        (self.users[domain as usize].get(index as usize) == Some(jid)).then_some(user)
    }

    /// The cross-domain relations.
    pub fn relations(&self) -> &[Relation] {
        &self.cross
    }

    /// The same-domain relations.
    pub fn local_relations(&self) -> &[Relation] {
        &self.local
    }

    /// Who blocks whom (XEP-0191 bare-JID entries).
    pub fn blocks(&self) -> &[(UserId, UserId)] {
        &self.blocks
    }

    /// The sessions of `domain`'s online users, in user order.
    ///
    /// # Panics
    /// If `domain` is not part of the federation.
    pub fn sessions(&self, domain: &str) -> &[Session] {
        &self.sessions[self.session_ranges[self.domain_of(domain)].clone()]
    }

    /// Every session, by domain then user.
    pub fn all_sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// The online users of `domain`, in order.
    pub fn online_users(&self, domain: &str) -> impl Iterator<Item = &BareJid> {
        let sessions = self.sessions(domain);
        sessions
            .iter()
            .enumerate()
            .filter(move |(i, s)| *i == 0 || sessions[i - 1].user != s.user)
            .map(|(_, s)| &s.user)
    }

    /// The active users of `domain` (online users chatting now, whose contacts are to be
    /// synchronised first), in order.
    pub fn active_users(&self, domain: &str) -> impl Iterator<Item = &BareJid> {
        self.active[self.domain_of(domain)].iter()
    }

    /// True if `user` is active.
    pub fn is_active(&self, user: &BareJid) -> bool {
        self.domain_index(user.domain().as_str())
            .is_some_and(|d| self.active[d as usize].contains(user))
    }

    /// The number of cross-domain edges (XEP §Edge Set), over all pairs of domains: exactly
    /// what the servers project from the installed rosters, counted on one side.
    pub fn edges(&self) -> u64 {
        self.cross.iter().map(|r| edge_count(&r.a_item)).sum()
    }

    /// The number of edges between domains `a` and `b`.
    pub fn edges_between(&self, a: &str, b: &str) -> u64 {
        let (a, b) = (self.domain_of(a) as u32, self.domain_of(b) as u32);
        self.cross
            .iter()
            .filter(|r| (r.a.domain, r.b.domain) == (a, b) || (r.a.domain, r.b.domain) == (b, a))
            .map(|r| edge_count(&r.a_item))
            .sum()
    }

    /// The number of edges between `domain` and each other domain it shares any with, in one
    /// pass over the relations (the hub scenario's peer-size buckets).
    pub fn edges_with(&self, domain: &str) -> BTreeMap<String, u64> {
        let d = self.domain_of(domain) as u32;
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.cross {
            let other = match (r.a.domain, r.b.domain) {
                (a, b) if a == d => b,
                (a, b) if b == d => a,
                _ => continue,
            };
            let n = edge_count(&r.a_item);
            if n > 0 {
                *out.entry(self.domains[other as usize].clone()).or_default() += n;
            }
        }
        out
    }

    /// The number of cross-domain contacts of every user of `domain`, in user order.
    pub fn contact_counts(&self, domain: &str) -> Vec<u32> {
        let d = self.domain_of(domain) as u32;
        let mut counts = vec![0; self.users[d as usize].len()];
        for r in &self.cross {
            for u in [r.a, r.b] {
                if u.domain == d {
                    counts[u.index as usize] += 1;
                }
            }
        }
        counts
    }

    /// Cross-domain relations per user, compressed: `(starts, relations)`, user with global
    /// number `g` having `relations[starts[g]..starts[g + 1]]` (indexes into `cross`).
    pub(super) fn adjacency(&self) -> (Vec<usize>, Vec<u32>) {
        let n = self.user_count();
        let global = |u: UserId| (self.offsets[u.domain as usize] + u.index) as usize;
        let mut starts = vec![0usize; n + 1];
        for r in &self.cross {
            starts[global(r.a) + 1] += 1;
            starts[global(r.b) + 1] += 1;
        }
        for i in 0..n {
            starts[i + 1] += starts[i];
        }
        let mut fill = starts.clone();
        let mut relations = vec![0u32; starts[n]];
        for (i, r) in self.cross.iter().enumerate() {
            for u in [r.a, r.b] {
                let g = global(u);
                relations[fill[g]] = i as u32;
                fill[g] += 1;
            }
        }
        (starts, relations)
    }

    /// Sizes and shape, for logs.
    pub fn summary(&self) -> Summary {
        let mut contacts: Vec<u32> = self
            .domains
            .iter()
            .flat_map(|d| self.contact_counts(d))
            .filter(|&c| c > 0)
            .collect();
        contacts.sort_unstable();
        let at = |q: f64| {
            contacts
                .get(((contacts.len() as f64 * q) as usize).min(contacts.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        let online = (0..self.domains.len())
            .map(|d| self.online_users(&self.domains[d]).count() as u64)
            .sum();
        Summary {
            domains: self.domains.len(),
            users: self.user_count() as u64,
            federating: contacts.len() as u64,
            relations: self.cross.len() as u64,
            local_relations: self.local.len() as u64,
            edges: self.edges(),
            median_contacts: at(0.5),
            p99_contacts: at(0.99),
            max_contacts: contacts.last().copied().unwrap_or(0),
            online,
            sessions: self.sessions.len() as u64,
            active: self.active.iter().map(|a| a.len() as u64).sum(),
            blocks: self.blocks.len() as u64,
        }
    }

    // ---- set-up ----

    /// The accounts (rosters and block lists) of `domain`'s users, as its server stores them
    /// after [`Federation::install`].
    pub fn accounts(&self, domain: &str) -> BTreeMap<BareJid, Account> {
        let d = self.domain_of(domain) as u32;
        let mut accounts: BTreeMap<BareJid, Account> = self.users[d as usize]
            .iter()
            .map(|u| (u.clone(), Account::default()))
            .collect();
        for r in self.cross.iter().chain(&self.local) {
            for (user, contact, item) in [(r.a, r.b, r.a_item), (r.b, r.a, r.b_item)] {
                if user.domain == d {
                    let account = accounts.get_mut(self.jid(user)).expect("a user");
                    account.roster.set(self.jid(contact).clone(), item);
                }
            }
        }
        for &(user, target) in &self.blocks {
            if user.domain == d {
                let account = accounts.get_mut(self.jid(user)).expect("a user");
                account.blocked.block(self.jid(target).clone());
            }
        }
        accounts
    }

    /// Installs the persistent state of each server's domain: accounts, roster items
    /// ([`Server::set_roster_item`]) and blocks ([`Server::block`], which sends nothing while
    /// the user is offline). No stanza is queued. Call it on fresh, running servers, before
    /// anyone logs in.
    ///
    /// # Panics
    /// If a server's domain is not part of the federation, or a server is down.
    pub fn install<'s, S: Subject + ?Sized + 's>(
        &self,
        servers: impl IntoIterator<Item = &'s mut S>,
    ) {
        let mut servers: Vec<&mut S> = servers.into_iter().collect();
        let mut slot: Vec<Option<usize>> = vec![None; self.domains.len()];
        for (i, server) in servers.iter().enumerate() {
            assert!(server.is_up(), "{} is down", server.domain());
            slot[self.domain_of(server.domain())] = Some(i);
        }
        for (d, users) in self.users.iter().enumerate() {
            if let Some(i) = slot[d] {
                for user in users {
                    servers[i].add_user(user);
                }
            }
        }
        for r in self.cross.iter().chain(&self.local) {
            for (user, contact, item) in [(r.a, r.b, r.a_item), (r.b, r.a, r.b_item)] {
                if let Some(i) = slot[user.domain as usize] {
                    servers[i].set_roster_item(self.jid(user), self.jid(contact), item);
                }
            }
        }
        for &(user, target) in &self.blocks {
            if let Some(i) = slot[user.domain as usize] {
                servers[i].block(self.jid(user), self.jid(target));
            }
        }
    }

    /// One server per domain, in the order of [`Federation::domains`], made by `make` (which
    /// is given the domain) and [installed](Federation::install).
    pub fn build(&self, mut make: impl FnMut(&str) -> Server) -> Vec<Server> {
        let mut servers: Vec<Server> = self.domains.iter().map(|d| make(d)).collect();
        self.install(&mut servers);
        servers
    }

    /// [`Federation::build`] for any implementation: one boxed [`Subject`] per domain.
    pub fn build_boxed(
        &self,
        mut make: impl FnMut(&str) -> Box<dyn Subject>,
    ) -> Vec<Box<dyn Subject>> {
        let mut servers: Vec<Box<dyn Subject>> = self.domains.iter().map(|d| make(d)).collect();
        self.install(servers.iter_mut().map(|s| &mut **s));
        servers
    }

    /// The login storm of `server`'s domain: every session of [`Federation::sessions`] logs
    /// in ([`Server::login`]), in order. Its stanzas wait in the server's outgoing queue.
    ///
    /// # Panics
    /// If the server's domain is not part of the federation.
    pub fn log_in<S: Subject + ?Sized>(&self, server: &mut S) {
        let domain = server.domain().to_owned();
        for s in self.sessions(&domain) {
            server.login(&s.user, &s.resource, s.presence.clone());
        }
    }

    // ---- what happens during an outage ----

    /// `n` plausible changes with the default [`Churn`] mix, seeded by `seed`.
    pub fn churn(&self, n: usize, seed: u64) -> Vec<Change> {
        self.churn_with(n, &Churn::default(), seed)
    }

    /// `n` changes with the mix `churn`, seeded by `seed`, in the order they happen. They
    /// start from the generated state (sessions, rosters, blocks) and follow each other:
    /// a logout is of a resource online at that point, a presence change is of an online
    /// resource and differs from its previous presence, a login is of a resource offline at
    /// that point. Subscription changes and blocks each touch a different pair of users and
    /// fit the pair's generated state (`approve` answers a pending request, `unsubscribe`
    /// drops a subscription, `deny` cancels or refuses one, `subscribe` asks a stranger,
    /// `block` a contact, `unblock` a blocked JID). A kind that finds nothing to act on (no
    /// pending request left, say) gives a presence change instead (or a login if nobody is
    /// online), so exactly `n` changes come out.
    ///
    /// # Panics
    /// If every weight is zero, or `churn.domain` is not part of the federation.
    pub fn churn_with(&self, n: usize, churn: &Churn, seed: u64) -> Vec<Change> {
        let mut state = ChurnState::new(self, churn, seed);
        let weights = churn.weights();
        let total: u64 = weights.iter().map(|&(w, _)| u64::from(w)).sum();
        assert!(total > 0, "every churn weight is zero");
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut r = state.rng.below(total);
            let mut act = Act::Presence;
            for &(w, a) in &weights {
                if r < u64::from(w) {
                    act = a;
                    break;
                }
                r -= u64::from(w);
            }
            let change = state
                .act(act)
                .or_else(|| state.act(Act::Presence))
                .or_else(|| state.act(Act::Login));
            match change {
                Some(c) => out.push(c),
                None => break, // every resource of every user is online and none exists
            }
        }
        out
    }

    /// `n` subscription mismatches, each between a different pair of users of different
    /// domains, seeded by `seed`: one-sided roster edits that put the two servers' edge sets
    /// apart, as lost subscription stanzas and restored backups do (see [`MismatchKind`]).
    /// Each changes the projected edges of its pair. Fewer than `n` come out only when the
    /// federation has too few pairs left (`tiny`).
    pub fn mismatches(&self, n: usize, seed: u64) -> Vec<Mismatch> {
        let mut rng = stream(seed, Stream::Mismatches);
        let mut touched: BTreeSet<u64> = BTreeSet::new();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let kind = MismatchKind::ALL[rng.below(MismatchKind::ALL.len() as u64) as usize];
            let m = self
                .mismatch(&mut rng, &mut touched, kind)
                .or_else(|| self.mismatch(&mut rng, &mut touched, MismatchKind::RestoredBackup))
                .or_else(|| self.mismatch(&mut rng, &mut touched, MismatchKind::GhostContact));
            match m {
                Some(m) => out.push(m),
                None => break,
            }
        }
        out
    }

    fn mismatch(
        &self,
        rng: &mut SplitMix64,
        touched: &mut BTreeSet<u64>,
        kind: MismatchKind,
    ) -> Option<Mismatch> {
        let outbound = |stanza| {
            move |before: Subscription| {
                let mut after = before;
                after.outbound(stanza);
                after
            }
        };
        let edit: Box<dyn Fn(Subscription) -> Subscription> = match kind {
            MismatchKind::LostSubscribe => {
                // Half the time a new request to a stranger, else one on a relation.
                if rng.below(2) == 0 {
                    let (user, contact) = self.stranger_pair(rng, touched, None)?;
                    return Some(Mismatch {
                        kind,
                        user: self.jid(user).clone(),
                        contact: self.jid(contact).clone(),
                        before: None,
                        after: Subscription::named(NamedState::NonePendingOut),
                    });
                }
                Box::new(outbound(SubscriptionStanza::Subscribe))
            }
            MismatchKind::LostApproval => Box::new(outbound(SubscriptionStanza::Subscribed)),
            MismatchKind::LostUnsubscribe => Box::new(outbound(SubscriptionStanza::Unsubscribe)),
            MismatchKind::LostCancel => Box::new(outbound(SubscriptionStanza::Unsubscribed)),
            MismatchKind::RestoredBackup => {
                let pick = rng.below(NamedState::ALL.len() as u64 - 1) as usize;
                Box::new(move |before: Subscription| {
                    // Any other state: skip the current one.
                    let others: Vec<NamedState> = NamedState::ALL
                        .into_iter()
                        .filter(|&s| s != before.name())
                        .collect();
                    Subscription::named(others[pick])
                })
            }
            MismatchKind::GhostContact => {
                let (user, contact) = self.stranger_pair(rng, touched, None)?;
                return Some(Mismatch {
                    kind,
                    user: self.jid(user).clone(),
                    contact: self.jid(contact).clone(),
                    before: None,
                    after: Subscription::named(NamedState::Both),
                });
            }
        };
        let applies = |s: &Subscription| match kind {
            MismatchKind::LostSubscribe => !s.to() && !s.pending_out(),
            MismatchKind::LostApproval => s.pending_in(),
            MismatchKind::LostUnsubscribe => s.to(),
            MismatchKind::LostCancel => s.from(),
            _ => true,
        };
        let (user, contact, before) =
            self.pick_relation(rng, &self.all_cross(), touched, None, |_, s| applies(s))?;
        let after = edit(before);
        debug_assert_ne!(after.name(), before.name());
        Some(Mismatch {
            kind,
            user: self.jid(user).clone(),
            contact: self.jid(contact).clone(),
            before: Some(before),
            after,
        })
    }

    fn all_cross(&self) -> Vec<u32> {
        (0..self.cross.len() as u32).collect()
    }

    /// A random side of a random untouched relation among `candidates` whose item satisfies
    /// `ok` (and whose user is of `domain`, if given): (user, contact, user's item). Marks
    /// the pair touched.
    pub(super) fn pick_relation(
        &self,
        rng: &mut SplitMix64,
        candidates: &[u32],
        touched: &mut BTreeSet<u64>,
        domain: Option<u32>,
        ok: impl Fn(UserId, &Subscription) -> bool,
    ) -> Option<(UserId, UserId, Subscription)> {
        if candidates.is_empty() {
            return None;
        }
        for _ in 0..64 {
            let r = &self.cross[candidates[rng.below(candidates.len() as u64) as usize] as usize];
            let key = self.key(r.a, r.b);
            if touched.contains(&key) {
                continue;
            }
            let mut sides = [(r.a, r.b, r.a_item), (r.b, r.a, r.b_item)];
            if rng.below(2) == 0 {
                sides.swap(0, 1);
            }
            for (user, contact, item) in sides {
                if domain.is_none_or(|d| user.domain == d) && ok(user, &item) {
                    touched.insert(key);
                    return Some((user, contact, item));
                }
            }
        }
        None
    }

    /// Two users of different domains with no relation and untouched, the first of `domain`
    /// if given. Marks the pair touched.
    pub(super) fn stranger_pair(
        &self,
        rng: &mut SplitMix64,
        touched: &mut BTreeSet<u64>,
        domain: Option<u32>,
    ) -> Option<(UserId, UserId)> {
        for _ in 0..64 {
            let user = self.random_user(rng, domain);
            let mut t = rng.below(self.domains.len() as u64 - 1) as u32;
            if t >= user.domain {
                t += 1;
            }
            let n = self.users[t as usize].len() as u64;
            let contact = UserId {
                domain: t,
                index: rng.below(n) as u32,
            };
            let key = self.key(user, contact);
            if !self.pairs.contains(&key) && touched.insert(key) {
                return Some((user, contact));
            }
        }
        None
    }

    /// A uniformly random user (of `domain` if given).
    pub(super) fn random_user(&self, rng: &mut SplitMix64, domain: Option<u32>) -> UserId {
        match domain {
            Some(d) => UserId {
                domain: d,
                index: rng.below(self.users[d as usize].len() as u64) as u32,
            },
            None => {
                let g = rng.below(self.user_count() as u64) as u32;
                let d = self.offsets.partition_point(|&o| o <= g) - 1;
                UserId {
                    domain: d as u32,
                    index: g - self.offsets[d],
                }
            }
        }
    }

    fn key(&self, x: UserId, y: UserId) -> u64 {
        let global = |u: UserId| self.offsets[u.domain as usize] + u.index;
        pair_key(global(x), global(y))
    }
}
