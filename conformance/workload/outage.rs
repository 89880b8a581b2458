//! What happens during an outage: churn ([`Change`]) and one-sided roster edits
//! ([`Mismatch`]).

use super::*;

// ---- churn ----

/// The mix of a churn: relative weights of each kind of [`Change`], and optionally the one
/// domain whose users act (the others' server being down, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Churn {
    /// Presence changes of online resources.
    pub presence: u32,
    /// Logins of offline resources.
    pub login: u32,
    /// Logouts of online resources.
    pub logout: u32,
    /// Subscription requests to strangers.
    pub subscribe: u32,
    /// Approvals of pending requests.
    pub approve: u32,
    /// Unsubscriptions.
    pub unsubscribe: u32,
    /// Cancellations or refusals of subscriptions.
    pub deny: u32,
    /// Blocks of contacts.
    pub block: u32,
    /// Unblocks.
    pub unblock: u32,
    /// Only users of this domain act (`None`: users of every domain).
    pub domain: Option<String>,
}

impl Default for Churn {
    /// 80% presence changes, 6% logins, 6% logouts, 2% subscriptions, 2% unsubscriptions, 1%
    /// each approvals, cancellations, blocks and unblocks; every domain.
    fn default() -> Churn {
        Churn {
            presence: 80,
            login: 6,
            logout: 6,
            subscribe: 2,
            approve: 1,
            unsubscribe: 2,
            deny: 1,
            block: 1,
            unblock: 1,
            domain: None,
        }
    }
}

impl Churn {
    /// Presence changes only (the link-loss scenario's `d` changes).
    pub fn presence_only() -> Churn {
        Churn {
            presence: 1,
            login: 0,
            logout: 0,
            subscribe: 0,
            approve: 0,
            unsubscribe: 0,
            deny: 0,
            block: 0,
            unblock: 0,
            domain: None,
        }
    }

    /// This mix with only the users of `domain` acting.
    pub fn in_domain(mut self, domain: &str) -> Churn {
        self.domain = Some(domain.to_owned());
        self
    }

    pub(super) fn weights(&self) -> [(u32, Act); 9] {
        [
            (self.presence, Act::Presence),
            (self.login, Act::Login),
            (self.logout, Act::Logout),
            (self.subscribe, Act::Subscribe),
            (self.approve, Act::Approve),
            (self.unsubscribe, Act::Unsubscribe),
            (self.deny, Act::Deny),
            (self.block, Act::Block),
            (self.unblock, Act::Unblock),
        ]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    Presence,
    Login,
    Logout,
    Subscribe,
    Approve,
    Unsubscribe,
    Deny,
    Block,
    Unblock,
}

/// One thing a user's client does, on its own server (see [`Federation::churn`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// An online resource changes its presence ([`Server::set_presence`]).
    Presence {
        /// The user.
        user: BareJid,
        /// The resource.
        resource: String,
        /// The new presence.
        presence: ResourcePresence,
    },
    /// An offline resource logs in ([`Server::login`]).
    Login {
        /// The user.
        user: BareJid,
        /// The resource.
        resource: String,
        /// Its initial presence.
        presence: ResourcePresence,
    },
    /// An online resource logs out ([`Server::logout`]).
    Logout {
        /// The user.
        user: BareJid,
        /// The resource.
        resource: String,
    },
    /// `user` asks for `contact`'s presence ([`Server::subscribe`]).
    Subscribe {
        /// The user.
        user: BareJid,
        /// The contact.
        contact: BareJid,
    },
    /// `user` approves `contact`'s request ([`Server::approve`]).
    Approve {
        /// The user.
        user: BareJid,
        /// The contact.
        contact: BareJid,
    },
    /// `user` stops receiving `contact`'s presence ([`Server::unsubscribe`]).
    Unsubscribe {
        /// The user.
        user: BareJid,
        /// The contact.
        contact: BareJid,
    },
    /// `user` cancels or refuses `contact`'s subscription ([`Server::deny`]).
    Deny {
        /// The user.
        user: BareJid,
        /// The contact.
        contact: BareJid,
    },
    /// `user` blocks `jid` ([`Server::block`]).
    Block {
        /// The user.
        user: BareJid,
        /// The blocked JID.
        jid: BareJid,
    },
    /// `user` unblocks `jid` ([`Server::unblock`]).
    Unblock {
        /// The user.
        user: BareJid,
        /// The unblocked JID.
        jid: BareJid,
    },
}

impl Change {
    /// The user who acts.
    pub fn user(&self) -> &BareJid {
        match self {
            Change::Presence { user, .. }
            | Change::Login { user, .. }
            | Change::Logout { user, .. }
            | Change::Subscribe { user, .. }
            | Change::Approve { user, .. }
            | Change::Unsubscribe { user, .. }
            | Change::Deny { user, .. }
            | Change::Block { user, .. }
            | Change::Unblock { user, .. } => user,
        }
    }

    /// The domain of the server it happens on (the acting user's).
    pub fn domain(&self) -> &str {
        self.user().domain().as_str()
    }

    /// Performs the change on `server`, which must serve [`Change::domain`]. A server that
    /// is down ignores it (its clients cannot connect).
    ///
    /// # Panics
    /// If `server` serves another domain.
    pub fn apply<S: Subject + ?Sized>(&self, server: &mut S) {
        assert_eq!(
            server.domain(),
            self.domain(),
            "{self:?} on the wrong server"
        );
        match self {
            Change::Presence {
                user,
                resource,
                presence,
            } => server.set_presence(user, resource, presence.clone()),
            Change::Login {
                user,
                resource,
                presence,
            } => server.login(user, resource, presence.clone()),
            Change::Logout { user, resource } => server.logout(user, resource),
            Change::Subscribe { user, contact } => server.subscribe(user, contact),
            Change::Approve { user, contact } => server.approve(user, contact),
            Change::Unsubscribe { user, contact } => server.unsubscribe(user, contact),
            Change::Deny { user, contact } => server.deny(user, contact),
            Change::Block { user, jid } => server.block(user, jid),
            Change::Unblock { user, jid } => server.unblock(user, jid),
        }
    }

    /// [`Change::apply`] on the server of `servers` that serves [`Change::domain`].
    ///
    /// # Panics
    /// If none does.
    pub fn apply_in(&self, servers: &mut [Server]) {
        let domain = self.domain();
        match servers.iter_mut().find(|s| s.domain() == domain) {
            Some(server) => self.apply(server),
            None => panic!("no server for {domain}"),
        }
    }
}

/// The state a churn evolves as it goes.
pub(super) struct ChurnState<'f> {
    pub(super) fed: &'f Federation,
    pub(super) rng: SplitMix64,
    pub(super) domain: Option<u32>,
    pub(super) caps: [Element; 2],
    /// Online resources: (user, resource number, presence).
    pub(super) live: Vec<(UserId, usize, ResourcePresence)>,
    /// Bit `r` set: resource `r` of the user is online.
    pub(super) online: BTreeMap<UserId, u8>,
    /// Cross-domain relations whose acting side may be of `domain`.
    pub(super) candidates: Vec<u32>,
    /// Pairs a subscription change or block already touched.
    pub(super) touched: BTreeSet<u64>,
    /// Current blocks of acting users.
    pub(super) blocks: Vec<(UserId, UserId)>,
}

impl<'f> ChurnState<'f> {
    pub(super) fn new(fed: &'f Federation, churn: &Churn, seed: u64) -> ChurnState<'f> {
        let domain = churn.domain.as_deref().map(|d| fed.domain_of(d) as u32);
        let acts = |u: UserId| domain.is_none_or(|d| u.domain == d);
        let mut live = Vec::new();
        let mut online = BTreeMap::new();
        for (d, range) in fed.session_ranges.iter().enumerate() {
            for s in &fed.sessions[range.clone()] {
                let user = UserId {
                    domain: d as u32,
                    index: fed.user_id(&s.user).expect("a user").index,
                };
                if !acts(user) {
                    continue;
                }
                let r = RESOURCES
                    .iter()
                    .position(|&r| r == s.resource)
                    .expect("a generated resource");
                live.push((user, r, s.presence.clone()));
                *online.entry(user).or_insert(0u8) |= 1 << r;
            }
        }
        let candidates = (0..fed.cross.len() as u32)
            .filter(|&i| {
                let r = &fed.cross[i as usize];
                acts(r.a) || acts(r.b)
            })
            .collect();
        let blocks = fed
            .blocks
            .iter()
            .copied()
            .filter(|&(u, _)| acts(u))
            .collect();
        ChurnState {
            fed,
            rng: stream(seed, Stream::Churn),
            domain,
            caps: caps(),
            live,
            online,
            candidates,
            touched: BTreeSet::new(),
            blocks,
        }
    }

    pub(super) fn act(&mut self, act: Act) -> Option<Change> {
        let fed = self.fed;
        let jid = |u: UserId| fed.jid(u).clone();
        let contact_change = |(user, contact, _): (UserId, UserId, Subscription)| (user, contact);
        match act {
            Act::Presence => {
                if self.live.is_empty() {
                    return None;
                }
                // An active user's resources change presence twice as often as others'.
                let mut i = self.rng.below(self.live.len() as u64) as usize;
                for _ in 0..16 {
                    if fed.is_active(fed.jid(self.live[i].0)) || self.rng.below(2) == 0 {
                        break;
                    }
                    i = self.rng.below(self.live.len() as u64) as usize;
                }
                let (user, r, ref old) = self.live[i];
                let mut new = presence(&mut self.rng, r, &self.caps, &avatar(fed.jid(user)));
                if new == *old {
                    new.show = if old.show == Show::Away {
                        Show::Available
                    } else {
                        Show::Away
                    };
                }
                self.live[i].2 = new.clone();
                Some(Change::Presence {
                    user: jid(user),
                    resource: RESOURCES[r].to_owned(),
                    presence: new,
                })
            }
            Act::Login => {
                for _ in 0..16 {
                    let user = fed.random_user(&mut self.rng, self.domain);
                    let mask = self.online.get(&user).copied().unwrap_or(0);
                    let r = match mask {
                        0 => usize::from(self.rng.unit() >= 0.6),
                        1 => 1,
                        2 => 0,
                        _ => continue,
                    };
                    let p = presence(&mut self.rng, r, &self.caps, &avatar(fed.jid(user)));
                    self.live.push((user, r, p.clone()));
                    *self.online.entry(user).or_insert(0) |= 1 << r;
                    return Some(Change::Login {
                        user: jid(user),
                        resource: RESOURCES[r].to_owned(),
                        presence: p,
                    });
                }
                None
            }
            Act::Logout => {
                if self.live.is_empty() {
                    return None;
                }
                let i = self.rng.below(self.live.len() as u64) as usize;
                let (user, r, _) = self.live.swap_remove(i);
                let mask = self.online.get_mut(&user).expect("online");
                *mask &= !(1 << r);
                if *mask == 0 {
                    self.online.remove(&user);
                }
                Some(Change::Logout {
                    user: jid(user),
                    resource: RESOURCES[r].to_owned(),
                })
            }
            Act::Subscribe => {
                let (user, contact) =
                    fed.stranger_pair(&mut self.rng, &mut self.touched, self.domain)?;
                Some(Change::Subscribe {
                    user: jid(user),
                    contact: jid(contact),
                })
            }
            Act::Approve | Act::Unsubscribe | Act::Deny => {
                let ok = move |_: UserId, s: &Subscription| match act {
                    Act::Approve => s.pending_in(),
                    Act::Unsubscribe => s.to() || s.pending_out(),
                    _ => s.from() || s.pending_in(),
                };
                let (user, contact) = fed
                    .pick_relation(
                        &mut self.rng,
                        &self.candidates,
                        &mut self.touched,
                        self.domain,
                        ok,
                    )
                    .map(contact_change)?;
                let (user, contact) = (jid(user), jid(contact));
                Some(match act {
                    Act::Approve => Change::Approve { user, contact },
                    Act::Unsubscribe => Change::Unsubscribe { user, contact },
                    _ => Change::Deny { user, contact },
                })
            }
            Act::Block => {
                let blocks = &self.blocks;
                let (user, contact) = fed
                    .pick_relation(
                        &mut self.rng,
                        &self.candidates,
                        &mut self.touched,
                        self.domain,
                        |u, _| !blocks.iter().any(|&(b, _)| b == u),
                    )
                    .map(contact_change)?;
                self.blocks.push((user, contact));
                Some(Change::Block {
                    user: jid(user),
                    jid: jid(contact),
                })
            }
            Act::Unblock => {
                if self.blocks.is_empty() {
                    return None;
                }
                let i = self.rng.below(self.blocks.len() as u64) as usize;
                let (user, target) = self.blocks.swap_remove(i);
                Some(Change::Unblock {
                    user: jid(user),
                    jid: jid(target),
                })
            }
        }
    }
}

// ---- mismatches ----

/// How one server's roster came to disagree with the other's (BRIEF §2.4: "lost subscription
/// stanzas, restored backups").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MismatchKind {
    /// The user sent `subscribe`; the stanza never arrived. The user's item gained `pending
    /// out` (possibly a new item for a stranger); the contact's did not gain `pending in`.
    LostSubscribe,
    /// The user approved a pending request; the `subscribed` never arrived. The user's item
    /// went from `pending in` to `from`; the contact's still says `pending out`.
    LostApproval,
    /// The user unsubscribed; the `unsubscribe` never arrived. The user's item lost `to`; the
    /// contact's still has `from` (it keeps publishing to someone who no longer wants it).
    LostUnsubscribe,
    /// The user cancelled the contact's subscription; the `unsubscribed` never arrived. The
    /// user's item lost `from`; the contact's still has `to` (a ghost it believes it sees).
    LostCancel,
    /// The user's server restored a backup: the item is back in some other state.
    RestoredBackup,
    /// A restored backup brought back a `both` item for someone the user is no longer related
    /// to at all: a ghost contact.
    GhostContact,
}

impl MismatchKind {
    /// Every kind.
    pub const ALL: [MismatchKind; 6] = [
        MismatchKind::LostSubscribe,
        MismatchKind::LostApproval,
        MismatchKind::LostUnsubscribe,
        MismatchKind::LostCancel,
        MismatchKind::RestoredBackup,
        MismatchKind::GhostContact,
    ];
}

/// A one-sided roster edit: `user`'s server sets `user`'s item for `contact` to `after`
/// ([`Server::set_roster_item`]: no stanza, no push); `contact`'s server keeps its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// How it came about.
    pub kind: MismatchKind,
    /// The user whose item changes (its server is the one edited).
    pub user: BareJid,
    /// The contact, in another domain.
    pub contact: BareJid,
    /// The user's item before (`None`: no item; the two were unrelated).
    pub before: Option<Subscription>,
    /// The user's item after.
    pub after: Subscription,
}

impl Mismatch {
    /// The domain of the edited server (the user's).
    pub fn domain(&self) -> &str {
        self.user.domain().as_str()
    }

    /// The two roster items the mismatch concerns: (user, contact) and (contact, user).
    pub fn items(&self) -> [(BareJid, BareJid); 2] {
        [
            (self.user.clone(), self.contact.clone()),
            (self.contact.clone(), self.user.clone()),
        ]
    }

    /// Edits `server`, which must serve [`Mismatch::domain`].
    ///
    /// # Panics
    /// If `server` serves another domain.
    pub fn apply<S: Subject + ?Sized>(&self, server: &mut S) {
        assert_eq!(
            server.domain(),
            self.domain(),
            "{self:?} on the wrong server"
        );
        server.set_roster_item(&self.user, &self.contact, self.after);
    }

    /// [`Mismatch::apply`] on the server of `servers` that serves [`Mismatch::domain`].
    ///
    /// # Panics
    /// If none does.
    pub fn apply_in(&self, servers: &mut [Server]) {
        let domain = self.domain();
        match servers.iter_mut().find(|s| s.domain() == domain) {
            Some(server) => self.apply(server),
            None => panic!("no server for {domain}"),
        }
    }
}
