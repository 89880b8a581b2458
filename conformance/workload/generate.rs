//! Generating a federation from a [`Spec`]: users, cross-domain and local relations, blocks,
//! sessions.

use super::*;

// ---- the federation ----

/// A user of a federation: its domain's position in [`Federation::domains`] and its own in
/// [`Federation::users`] (user `index` of a domain is `u{index}@domain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    /// Index of the domain.
    pub domain: u32,
    /// Index of the user in its domain.
    pub index: u32,
}

/// Two users in each other's roster, with both items. For generated relations the items
/// agree: `b_item` is the [`mirror`] of `a_item` (a pre-approval is one-sided and may be on
/// either).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// One user.
    pub a: UserId,
    /// The other user.
    pub b: UserId,
    /// `a`'s roster item for `b`.
    pub a_item: Subscription,
    /// `b`'s roster item for `a`.
    pub b_item: Subscription,
}

/// One available resource of an online user, with the presence it logs in with.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// The user.
    pub user: BareJid,
    /// The resource (`laptop` or `phone`).
    pub resource: String,
    /// Its presence.
    pub presence: ResourcePresence,
}

/// A generated federation: domains, users, rosters, blocks, sessions and who is active (see
/// the [module documentation](super)). Built by [`Spec::generate`] or [`Spec::generate_hub`].
#[derive(Clone, Debug, PartialEq)]
pub struct Federation {
    pub(super) spec: Spec,
    pub(super) domains: Vec<String>,
    pub(super) index: BTreeMap<String, u32>,
    pub(super) users: Vec<Vec<BareJid>>,
    /// Global number of each domain's first user (and the total last).
    pub(super) offsets: Vec<u32>,
    /// Every related pair, as [`pair_key`] of global numbers.
    pub(super) pairs: BTreeSet<u64>,
    pub(super) cross: Vec<Relation>,
    pub(super) local: Vec<Relation>,
    pub(super) blocks: Vec<(UserId, UserId)>,
    /// Ordered by domain, user, resource.
    pub(super) sessions: Vec<Session>,
    pub(super) session_ranges: Vec<Range<usize>>,
    pub(super) active: Vec<BTreeSet<BareJid>>,
}

/// The resources a generated user logs in with; the first is also the higher priority.
pub(super) const RESOURCES: [&str; 2] = ["laptop", "phone"];

/// XEP-0115 caps of the client on each resource of [`RESOURCES`].
pub(super) const CAPS: [&str; 2] = [
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://gajim.org' \
     ver='FsYHOeVjCLLT7Qp/mrDMnMl8h4M='/>",
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://conversations.im' \
     ver='YBYBGW3xH4R4h3vsVBi0xFlnmQA='/>",
];

pub(super) const STATUSES: [&str; 6] = [
    "at work",
    "in a meeting",
    "travelling",
    "back soon",
    "do not disturb",
    "listening to music",
];

/// The language of every generated status text: RFC 6120 §8.1.5 has the sending server add the
/// stream's `xml:lang` to a client's stanza that lacks one. The model keeps a language per
/// status only, so it travels on the `<status/>` (14 bytes, as on the stanza).
pub(super) const STATUS_LANG: &str = "en";

/// Users in a thousand with an avatar: their presence carries its hash (XEP-0153); the others
/// say they have none with an empty `<photo/>`.
pub(super) const AVATARS_PER_MILLE: u32 = 700;

/// The XEP-0153 vCard-based avatar `<x/>` of `user`'s presence: the 40 hex digits of a SHA-1
/// (here, derived from the JID so that it stays the user's across changes and runs without
/// drawing from any random stream), or an empty `<photo/>` for the users without an avatar.
pub(super) fn avatar(user: &BareJid) -> Element {
    let hash = blake3::hash(user.as_str().as_bytes());
    let bytes = hash.as_bytes();
    let draw = u32::from(u16::from_le_bytes([bytes[0], bytes[1]])) % 1000;
    let photo = if draw < AVATARS_PER_MILLE {
        let hex: String = bytes[..20].iter().map(|b| format!("{b:02x}")).collect();
        format!("<photo>{hex}</photo>")
    } else {
        "<photo/>".to_owned()
    };
    format!("<x xmlns='vcard-temp:x:update'>{photo}</x>")
        .parse()
        .expect("a valid vcard-temp:x:update element")
}

/// Caps elements parsed once.
pub(super) fn caps() -> [Element; 2] {
    CAPS.map(|c| c.parse().expect("valid caps element"))
}

/// A plausible presence for resource `r` of [`RESOURCES`]: mostly available on a laptop,
/// often away on a phone; three in ten with a status text (in [`STATUS_LANG`]); the client's
/// caps and the user's `avatar`.
pub(super) fn presence(
    rng: &mut SplitMix64,
    r: usize,
    caps: &[Element; 2],
    avatar: &Element,
) -> ResourcePresence {
    let u = rng.unit();
    let show = if r == 0 {
        match u {
            u if u < 0.60 => Show::Available,
            u if u < 0.75 => Show::Away,
            u if u < 0.80 => Show::Chat,
            u if u < 0.90 => Show::Dnd,
            _ => Show::Xa,
        }
    } else {
        match u {
            u if u < 0.40 => Show::Available,
            u if u < 0.80 => Show::Away,
            u if u < 0.85 => Show::Chat,
            u if u < 0.90 => Show::Dnd,
            _ => Show::Xa,
        }
    };
    let mut statuses = BTreeMap::new();
    if rng.unit() < 0.3 {
        let text = STATUSES[rng.below(STATUSES.len() as u64) as usize];
        statuses.insert(STATUS_LANG.to_owned(), text.to_owned());
    }
    ResourcePresence {
        show,
        priority: if r == 0 { 5 } else { 1 },
        statuses,
        extensions: vec![caps[r].clone(), avatar.clone()],
    }
}

/// The key of an unordered pair of global user numbers.
pub(super) fn pair_key(x: u32, y: u32) -> u64 {
    (u64::from(x.min(y)) << 32) | u64::from(x.max(y))
}

/// The generator's state while it builds a [`Federation`].
pub(super) struct Gen<'s> {
    pub(super) spec: &'s Spec,
    pub(super) fed: Federation,
    /// Cross-domain contacts of each user so far, by global number.
    pub(super) degree: Vec<u32>,
}

impl<'s> Gen<'s> {
    pub(super) fn new(spec: &'s Spec, domains: &[&str], sizes: &[u32]) -> Gen<'s> {
        let mut index = BTreeMap::new();
        for (d, name) in domains.iter().enumerate() {
            let valid = BareJid::new(name).is_ok_and(|j| j.node().is_none());
            assert!(valid, "{name:?} is not a domain");
            let fresh = index.insert((*name).to_owned(), d as u32).is_none();
            assert!(fresh, "domain {name} given twice");
        }
        let mut offsets = vec![0u32];
        let users: Vec<Vec<BareJid>> = domains
            .iter()
            .zip(sizes)
            .map(|(domain, &n)| {
                offsets.push(offsets.last().expect("starts at 0") + n);
                (0..n)
                    .map(|i| BareJid::new(&format!("u{i}@{domain}")).expect("valid user JID"))
                    .collect()
            })
            .collect();
        Gen {
            spec,
            degree: vec![0; *offsets.last().expect("starts at 0") as usize],
            fed: Federation {
                spec: spec.clone(),
                domains: domains.iter().map(|d| (*d).to_owned()).collect(),
                index,
                users,
                offsets,
                pairs: BTreeSet::new(),
                cross: Vec::new(),
                local: Vec::new(),
                blocks: Vec::new(),
                sessions: Vec::new(),
                session_ranges: Vec::new(),
                active: Vec::new(),
            },
        }
    }

    /// The federating users of domain `d` (a fraction `overlap`, at least one), most popular
    /// first: a random permutation's prefix.
    pub(super) fn pick_federating(&self, rng: &mut SplitMix64, d: usize, overlap: f64) -> Vec<u32> {
        let n = self.fed.users[d].len() as u32;
        let mut order: Vec<u32> = (0..n).collect();
        shuffle(rng, &mut order);
        let keep = ((f64::from(n) * overlap).round() as usize).clamp(1, n as usize);
        order.truncate(keep);
        order
    }

    /// Every federating user of domain `d` draws its contacts among the federating users of
    /// `targets` (a random one per contact), Pareto-many with scale `scale`.
    pub(super) fn draw(
        &mut self,
        rng: &mut SplitMix64,
        d: usize,
        federating: &[Vec<u32>],
        targets: &[usize],
        scale: f64,
    ) {
        let available: u64 = targets.iter().map(|&t| federating[t].len() as u64).sum();
        let cap = u64::from(self.spec.max_contacts).min(available);
        if cap == 0 {
            return;
        }
        let mut drawers = federating[d].clone();
        drawers.sort_unstable();
        // Stratified: the i-th of n drawers gets a quantile in [i/n, (i+1)/n), dealt out at
        // random, so that every federation has its share of the tail (a few users with
        // hundreds) and edge counts vary little from seed to seed.
        let n = drawers.len();
        let mut quantiles: Vec<f64> = (0..n).map(|i| (i as f64 + rng.unit()) / n as f64).collect();
        shuffle(rng, &mut quantiles);
        for (u, q) in drawers.into_iter().zip(quantiles) {
            let k = pareto_at(q, scale, self.spec.alpha, cap);
            let (mut added, mut tries) = (0, 0);
            // Popular users are drawn again and again: retry, within reason.
            while added < k && tries < 4 * k + 16 {
                tries += 1;
                let t = targets[rng.below(targets.len() as u64) as usize];
                let pool = &federating[t];
                let v = pool[popular(rng, pool.len(), self.spec.popularity)];
                let (a, b) = (self.global(d, u), self.global(t, v));
                // Nobody's roster grows past the cap through being drawn.
                if self.degree[b as usize] >= self.spec.max_contacts
                    || !self.fed.pairs.insert(pair_key(a, b))
                {
                    continue;
                }
                self.degree[a as usize] += 1;
                self.degree[b as usize] += 1;
                let (a_item, b_item) = cross_items(rng, self.spec);
                self.fed.cross.push(Relation {
                    a: UserId {
                        domain: d as u32,
                        index: u,
                    },
                    b: UserId {
                        domain: t as u32,
                        index: v,
                    },
                    a_item,
                    b_item,
                });
                added += 1;
            }
        }
    }

    fn global(&self, d: usize, index: u32) -> u32 {
        self.fed.offsets[d] + index
    }

    /// Local relations, blocks, sessions, activity.
    pub(super) fn finish(mut self) -> Federation {
        let spec = self.spec;
        let domains = self.fed.domains.len();

        // Local contacts: uniformly 0..=2m per user, mostly mutual.
        let mut rng = stream(spec.seed, Stream::Local);
        let spread = (2.0 * spec.local_contacts).round() as u64 + 1;
        for d in 0..domains {
            let n = self.fed.users[d].len() as u32;
            if n < 2 {
                continue;
            }
            for u in 0..n {
                for _ in 0..rng.below(spread) {
                    let v = rng.below(u64::from(n)) as u32;
                    let (a, b) = (self.global(d, u), self.global(d, v));
                    if u == v || !self.fed.pairs.insert(pair_key(a, b)) {
                        continue;
                    }
                    let (a_item, b_item) = if rng.unit() < LOCAL_MUTUAL {
                        (NamedState::Both, NamedState::Both)
                    } else if rng.below(2) == 0 {
                        (NamedState::To, NamedState::From)
                    } else {
                        (NamedState::From, NamedState::To)
                    };
                    let id = |index| UserId {
                        domain: d as u32,
                        index,
                    };
                    self.fed.local.push(Relation {
                        a: id(u),
                        b: id(v),
                        a_item: Subscription::named(a_item),
                        b_item: Subscription::named(b_item),
                    });
                }
            }
        }

        // Blocks: one cross-domain JID for a fraction of the federating users.
        let adjacency = self.fed.adjacency();
        let mut rng = stream(spec.seed, Stream::Blocks);
        for d in 0..domains {
            for u in 0..self.fed.users[d].len() as u32 {
                let g = self.global(d, u) as usize;
                let mine = &adjacency.1[adjacency.0[g]..adjacency.0[g + 1]];
                if mine.is_empty() || rng.unit() >= spec.blocks {
                    continue;
                }
                let me = UserId {
                    domain: d as u32,
                    index: u,
                };
                let r = &self.fed.cross[mine[rng.below(mine.len() as u64) as usize] as usize];
                let mut target = if r.a == me { r.b } else { r.a };
                if rng.unit() < BLOCK_STRANGER {
                    // Someone of that contact's domain, most likely not a contact.
                    let n = self.fed.users[target.domain as usize].len() as u64;
                    target.index = rng.below(n) as u32;
                }
                self.fed.blocks.push((me, target));
            }
        }

        // Sessions and activity.
        let caps = caps();
        let mut rng = stream(spec.seed, Stream::Online);
        for d in 0..domains {
            let start = self.fed.sessions.len();
            let mut active = BTreeSet::new();
            for user in &self.fed.users[d] {
                if rng.unit() >= spec.online {
                    continue;
                }
                let primary = usize::from(rng.unit() >= 0.6);
                let both = rng.unit() < spec.two_resources;
                let photo = avatar(user);
                for (r, resource) in RESOURCES.iter().enumerate() {
                    if both || r == primary {
                        self.fed.sessions.push(Session {
                            user: user.clone(),
                            resource: (*resource).to_owned(),
                            presence: presence(&mut rng, r, &caps, &photo),
                        });
                    }
                }
                if rng.unit() < spec.active {
                    active.insert(user.clone());
                }
            }
            self.fed.session_ranges.push(start..self.fed.sessions.len());
            self.fed.active.push(active);
        }
        self.fed
    }
}
