//! Seeded federations for the conformance scenarios (BRIEF §4, issue 5).
//!
//! A **federation** is everything a scenario sets up before it starts breaking things: a few
//! domains (two, or one hub with many small peer domains), their users (`u{i}@domain`), each
//! user's roster and block list, and who is online with which resources and presence. It is
//! generated from a [`Spec`] and a seed, and is the same federation for the same spec forever
//! (randomness is [`SplitMix64`], and nothing depends on hash-map order).
//!
//! # What is generated
//!
//! - **Overlap**: a fraction [`Spec::overlap`] of each domain's users has cross-domain contacts
//!   at all (the *federating* users); the others have local contacts only.
//! - **Cross-domain rosters, heavy-tailed**: every federating user draws a Pareto-distributed
//!   number of contacts ([`Spec::alpha`], capped at [`Spec::max_contacts`]) among the other
//!   domain's federating users, who are picked with a popularity skew ([`Spec::popularity`]: a
//!   few users are everybody's contact, up to [`Spec::max_contacts`]). Each pair is one
//!   [`Relation`], in both rosters, so a user's roster is what it drew plus who drew it; the
//!   draw's mean is calibrated so that the mean cross-domain roster of a federating user is
//!   [`Spec::mean_contacts`]. The draws are stratified (the i-th of n users gets a Pareto
//!   quantile in `[i/n, (i+1)/n)`, dealt out at random), so every federation has its share of
//!   the tail and edge counts vary by a few percent at most between seeds. With the presets'
//!   parameters the median cross-domain roster is 5 or 6, the 90th percentile 16, the 99th
//!   about 80, and the largest about 1000.
//! - **States agree on both sides** (RFC 6121): a relation is `both` with probability
//!   [`Spec::mutual`], a pending request (`none + pending out` facing `none + pending in`) with
//!   [`Spec::pending`], and one-way (`to` facing `from`) otherwise; one one-way relation in ten
//!   also carries an unanswered request back (`to + pending in` facing `from + pending out`),
//!   and one in ten of the others a pre-approval on the `to` side (RFC 6121 §3.4). The two
//!   items of a relation are always each other's [`mirror`].
//! - **Local contacts**: [`Spec::local_contacts`] per user on average, mostly mutual; they are
//!   not cross-domain edges but a server fans presence out to them too.
//! - **Blocks** (XEP-0191): a fraction [`Spec::blocks`] of the federating users blocks one
//!   cross-domain JID, four times in five one of its contacts, else a stranger.
//! - **Online**: a fraction [`Spec::online`] of the users is online, on a laptop or a phone,
//!   and a fraction [`Spec::two_resources`] of those on both; each resource has a show, a
//!   priority, sometimes a status text, and XEP-0115 caps. A fraction [`Spec::active`] of the
//!   online users is **active** (chatting now): the users whose contacts the extension must
//!   synchronise first (BRIEF §2.6).
//!
//! Set-up is persistent state only ([`Federation::install`]: accounts, rosters, blocks, no
//! stanza); [`Federation::log_in`] is the login storm. What happens during an outage is a list
//! of [`Change`]s ([`Federation::churn`]: mostly presence changes, some logins and logouts, a
//! few subscription changes and blocks), and the subscription-mismatch scenario edits one side
//! only ([`Federation::mismatches`]: lost subscription stanzas, restored backups).
//!
//! # Presets
//!
//! From `small` on, each [`Preset`] has ten times the users of the previous one, hence ten
//! times the edges: about `users × overlap × mean_contacts × 1.82` ([`Spec::expected_edges`];
//! 1.82 edges per relation with 80% mutual).
//!
//! | preset   | users per domain | nominal edges | edges (seed 1) | generate | install |
//! |----------|------------------|---------------|----------------|----------|---------|
//! | `tiny`   | 3                | 12            | 12             | 0.05 ms  | 0.02 ms |
//! | `small`  | 100              | 10³           | 965            | 0.3 ms   | 0.7 ms  |
//! | `medium` | 1 000            | 10⁴           | 9 935          | 3 ms     | 9 ms    |
//! | `large`  | 10 000           | 10⁵           | 99 740         | 28 ms    | 0.18 s  |
//! | `huge`   | 100 000          | 10⁶           | 1 000 298      | 0.33 s   | 2.4 s   |
//!
//! (Release build, one core; "install" is [`Federation::build`] of two model servers. From
//! `small` up, other seeds land within 5% of the seed-1 count; `cargo test --release --lib
//! -- --ignored --nocapture preset_sizes` prints these figures.)
//!
//! `large` is the suite's default. `tiny` is small enough to count stanzas by hand.
//!
//! # Example
//!
//! ```
//! use presence_sync::conformance::workload::{Preset, Spec};
//! use presence_sync::model::truth::entitled;
//! use presence_sync::server::{Flavour, Server};
//!
//! let fed = Spec::preset(Preset::Small).with_seed(7).generate(&["a.example", "b.example"]);
//! let mut servers = fed.build(|domain| Server::new(domain, Flavour::Prosody));
//! for server in &mut servers {
//!     fed.log_in(server); // the login storm: stanzas wait in the outgoing queues
//! }
//! for change in fed.churn(100, 7) {
//!     change.apply_in(&mut servers);
//! }
//! let states: Vec<_> = servers.iter().map(Server::domain_state).collect();
//! let truth = entitled(&states);
//! assert!(!truth.is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use jid::BareJid;
use minidom::Element;

use crate::conformance::subject::Subject;
use crate::model::{Account, NamedState, ResourcePresence, Show, Subscription, SubscriptionStanza};
use crate::server::Server;
use crate::sim::Host;
use crate::workload::SplitMix64;

mod federation;
mod generate;
mod outage;
#[cfg(test)]
mod tests;

pub use federation::*;
pub use generate::*;
pub use outage::*;

// ---- parameters ----

/// Named sizes, from hand-countable to 10⁶ edges (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Preset {
    /// 3 users per domain, about 12 edges: for exact-count tests.
    Tiny,
    /// 100 users per domain, about 10³ edges.
    Small,
    /// 1 000 users per domain, about 10⁴ edges.
    Medium,
    /// 10 000 users per domain, about 10⁵ edges: the suite's default.
    Large,
    /// 100 000 users per domain, about 10⁶ edges.
    Huge,
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 5] = [
        Preset::Tiny,
        Preset::Small,
        Preset::Medium,
        Preset::Large,
        Preset::Huge,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Medium => "medium",
            Preset::Large => "large",
            Preset::Huge => "huge",
        }
    }

    /// The number of cross-domain edges between the two domains the preset aims at (every
    /// seed lands within 10% of it, except for `tiny`'s dozen, which varies by a few edges).
    pub fn nominal_edges(self) -> u64 {
        match self {
            Preset::Tiny => 12,
            Preset::Small => 1_000,
            Preset::Medium => 10_000,
            Preset::Large => 100_000,
            Preset::Huge => 1_000_000,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A preset name that is none of [`Preset::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownPreset(pub String);

impl fmt::Display for UnknownPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown preset {:?} (expected tiny, small, medium, large or huge)",
            self.0
        )
    }
}

impl std::error::Error for UnknownPreset {}

impl FromStr for Preset {
    type Err = UnknownPreset;

    fn from_str(s: &str) -> Result<Preset, UnknownPreset> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPreset(s.to_owned()))
    }
}

/// Parameters of a federation (see the [module documentation](self) for how each is used).
/// Start from [`Spec::preset`] and override with the `with_*` methods.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Users per domain; in the hub scenario, users of the hub.
    pub users: u32,
    /// Fraction of each domain's users that has cross-domain contacts (the overlap between
    /// the domains). In the hub scenario, fraction of the hub's users the peers' users pick
    /// their contacts from; every peer user has contacts at the hub.
    pub overlap: f64,
    /// Mean number of cross-domain roster items of a user who has any.
    pub mean_contacts: f64,
    /// Pareto shape of the number of contacts a user draws (1.2: most a handful, a few
    /// hundreds; smaller is heavier).
    pub alpha: f64,
    /// Most contacts one user draws, and most users who may draw one user (so no cross-domain
    /// roster exceeds about twice this).
    pub max_contacts: u32,
    /// Popularity skew of whom users draw: rank `floor(n × u^popularity)` for uniform `u`; 1 is
    /// uniform; 3 gives the most popular user about `n^(-1/3)` of all draws (until it reaches
    /// [`Spec::max_contacts`]).
    pub popularity: f64,
    /// Mean number of same-domain contacts per user.
    pub local_contacts: f64,
    /// Fraction of cross-domain relations that are mutual (`both` on both sides).
    pub mutual: f64,
    /// Fraction of cross-domain relations that are an unanswered request.
    pub pending: f64,
    /// Fraction of users online.
    pub online: f64,
    /// Fraction of online users that are active.
    pub active: f64,
    /// Fraction of online users with two resources (laptop and phone) rather than one.
    pub two_resources: f64,
    /// Fraction of federating users that block one cross-domain JID.
    pub blocks: f64,
    /// Mean number of users of each peer domain (hub scenario only; at least 1 each).
    pub peer_users: u32,
    /// The seed.
    pub seed: u64,
}

/// Of the one-way cross-domain relations, the fraction with an unanswered request back.
const ONE_WAY_PENDING_BACK: f64 = 0.1;
/// Of the other one-way relations, the fraction with a pre-approval on the `to` side.
const ONE_WAY_PRE_APPROVED: f64 = 0.1;
/// Of the blocks, the fraction aimed at a stranger rather than a contact.
const BLOCK_STRANGER: f64 = 0.2;
/// Of the local relations, the fraction that is mutual (the rest is one-way).
const LOCAL_MUTUAL: f64 = 0.8;

impl Default for Spec {
    /// [`Preset::Large`], the suite's default.
    fn default() -> Spec {
        Spec::preset(Preset::Large)
    }
}

impl Spec {
    /// The parameters of `preset`, seed 1.
    pub fn preset(preset: Preset) -> Spec {
        let base = Spec {
            users: 100,
            overlap: 0.55,
            mean_contacts: 10.0,
            alpha: 1.2,
            max_contacts: 1000,
            popularity: 3.0,
            local_contacts: 1.0,
            mutual: 0.8,
            pending: 0.02,
            online: 0.3,
            active: 0.2,
            two_resources: 0.25,
            blocks: 0.02,
            peer_users: 3,
            seed: 1,
        };
        match preset {
            // Every user federates and has two or three contacts: a dozen edges, with
            // mutual, one-way and pending relations, local contacts and a block.
            Preset::Tiny => Spec {
                users: 3,
                overlap: 1.0,
                mean_contacts: 2.5,
                max_contacts: 3,
                popularity: 1.0,
                local_contacts: 1.0,
                mutual: 0.5,
                pending: 0.1,
                online: 0.67,
                active: 0.5,
                two_resources: 0.5,
                blocks: 0.3,
                peer_users: 2,
                ..base
            },
            Preset::Small => base,
            Preset::Medium => Spec {
                users: 1_000,
                ..base
            },
            Preset::Large => Spec {
                users: 10_000,
                ..base
            },
            Preset::Huge => Spec {
                users: 100_000,
                ..base
            },
        }
    }

    /// The expected number of cross-domain edges per relation: 2 for mutual, 1 for one-way
    /// (2 with a request back), 1 for a request.
    pub fn edges_per_relation(&self) -> f64 {
        let one_way = 1.0 - self.mutual - self.pending;
        2.0 * self.mutual + self.pending + one_way * (1.0 + ONE_WAY_PENDING_BACK)
    }

    /// The number of cross-domain edges two domains generated from this spec have, about.
    pub fn expected_edges(&self) -> f64 {
        f64::from(self.users) * self.overlap * self.mean_contacts * self.edges_per_relation()
    }

    /// This spec with as many users as give about `edges` cross-domain edges between two
    /// domains (at least 2 users).
    pub fn with_edges(mut self, edges: u64) -> Spec {
        let per_user = self.overlap * self.mean_contacts * self.edges_per_relation();
        self.users = ((edges as f64 / per_user).round() as u32).max(2);
        self
    }

    /// This spec with another seed.
    pub fn with_seed(mut self, seed: u64) -> Spec {
        self.seed = seed;
        self
    }

    /// This spec with another number of users per domain.
    pub fn with_users(mut self, users: u32) -> Spec {
        self.users = users;
        self
    }

    /// This spec with another overlap.
    pub fn with_overlap(mut self, overlap: f64) -> Spec {
        self.overlap = overlap;
        self
    }

    /// This spec with another mean number of cross-domain contacts.
    pub fn with_mean_contacts(mut self, mean: f64) -> Spec {
        self.mean_contacts = mean;
        self
    }

    /// This spec with another Pareto shape.
    pub fn with_alpha(mut self, alpha: f64) -> Spec {
        self.alpha = alpha;
        self
    }

    /// This spec with another cap on the contacts a user draws.
    pub fn with_max_contacts(mut self, max: u32) -> Spec {
        self.max_contacts = max;
        self
    }

    /// This spec with another popularity skew.
    pub fn with_popularity(mut self, popularity: f64) -> Spec {
        self.popularity = popularity;
        self
    }

    /// This spec with another mean number of local contacts.
    pub fn with_local_contacts(mut self, mean: f64) -> Spec {
        self.local_contacts = mean;
        self
    }

    /// This spec with another fraction of mutual relations.
    pub fn with_mutual(mut self, mutual: f64) -> Spec {
        self.mutual = mutual;
        self
    }

    /// This spec with another fraction of pending relations.
    pub fn with_pending(mut self, pending: f64) -> Spec {
        self.pending = pending;
        self
    }

    /// This spec with another fraction of users online.
    pub fn with_online(mut self, online: f64) -> Spec {
        self.online = online;
        self
    }

    /// This spec with another fraction of online users active.
    pub fn with_active(mut self, active: f64) -> Spec {
        self.active = active;
        self
    }

    /// This spec with another fraction of online users on two resources.
    pub fn with_two_resources(mut self, two: f64) -> Spec {
        self.two_resources = two;
        self
    }

    /// This spec with another fraction of federating users blocking someone.
    pub fn with_blocks(mut self, blocks: f64) -> Spec {
        self.blocks = blocks;
        self
    }

    /// This spec with another mean number of users per peer domain (hub scenario).
    pub fn with_peer_users(mut self, peer_users: u32) -> Spec {
        self.peer_users = peer_users;
        self
    }

    /// Checks that every parameter is in range (fractions between 0 and 1, at least one
    /// user, a positive Pareto exponent, …).
    ///
    /// # Errors
    /// The first parameter out of range, named.
    pub fn validate(&self) -> Result<(), String> {
        let fraction = |name: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{name} = {x} is not a fraction between 0 and 1"))
            }
        };
        fraction("overlap", self.overlap)?;
        fraction("mutual", self.mutual)?;
        fraction("pending", self.pending)?;
        fraction("mutual + pending", self.mutual + self.pending)?;
        fraction("online", self.online)?;
        fraction("active", self.active)?;
        fraction("two_resources", self.two_resources)?;
        fraction("blocks", self.blocks)?;
        if self.users < 1 {
            return Err("a domain needs a user (users = 0)".to_owned());
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            return Err(format!("alpha = {} must be positive", self.alpha));
        }
        if self.popularity.is_nan() || self.popularity < 1.0 {
            return Err(format!(
                "popularity = {} must be at least 1",
                self.popularity
            ));
        }
        if !(self.mean_contacts >= 0.0 && self.local_contacts >= 0.0) {
            return Err(format!(
                "mean_contacts = {} and local_contacts = {} must not be negative",
                self.mean_contacts, self.local_contacts
            ));
        }
        Ok(())
    }

    /// Panics on parameters out of range ([`Spec::validate`]): the generators' contract with
    /// their callers, which validate user input first.
    fn check(&self) {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
    }

    /// A federation of `domains` (at least two, distinct), each with [`Spec::users`] users.
    /// Every federating user draws contacts in the other domains (one picked at random per
    /// contact when there are more than two).
    ///
    /// # Panics
    /// If fewer than two domains are given, a name is not a domain or is repeated, or a
    /// parameter is out of range.
    pub fn generate(&self, domains: &[&str]) -> Federation {
        self.check();
        assert!(domains.len() >= 2, "a federation has at least two domains");
        let sizes = vec![self.users; domains.len()];
        let mut g = Gen::new(self, domains, &sizes);
        let mut rng = stream(self.seed, Stream::Relations);
        let federating: Vec<Vec<u32>> = (0..domains.len())
            .map(|d| g.pick_federating(&mut rng, d, self.overlap))
            .collect();
        // Each relation is two roster items, one drawn and one received: draw half the mean.
        // (All domains have the same number of federating users.)
        let cap = u64::from(self.max_contacts).min(federating[1].len() as u64);
        let scale = pareto_scale(self.mean_contacts / 2.0, self.alpha, cap);
        for d in 0..domains.len() {
            let targets: Vec<usize> = (0..domains.len()).filter(|&t| t != d).collect();
            g.draw(&mut rng, d, &federating, &targets, scale);
        }
        g.finish()
    }

    /// A hub federated with `peers` small peer domains named `p0.example`, `p1.example`, …
    /// ([`peer_domain`]); the hub has [`Spec::users`] users, each peer about
    /// [`Spec::peer_users`]. Every peer user draws [`Spec::mean_contacts`] contacts on average
    /// among the hub's federating users ([`Spec::overlap`] of them); peers have no contacts in
    /// each other.
    ///
    /// # Panics
    /// If `hub` is not a domain, is one of the peer names, or a parameter is out of range.
    pub fn generate_hub(&self, hub: &str, peers: usize) -> Federation {
        self.check();
        assert!(self.peer_users >= 1, "a peer domain needs a user");
        let names: Vec<String> = (0..peers).map(peer_domain).collect();
        let mut domains: Vec<&str> = vec![hub];
        domains.extend(names.iter().map(String::as_str));
        let mut rng = stream(self.seed, Stream::Relations);
        let mut sizes = vec![self.users];
        let spread = 2 * u64::from(self.peer_users) - 1; // 1..=2m-1, mean m
        sizes.extend((0..peers).map(|_| 1 + rng.below(spread) as u32));
        let mut g = Gen::new(self, &domains, &sizes);
        let mut federating = vec![g.pick_federating(&mut rng, 0, self.overlap)];
        for d in 1..domains.len() {
            federating.push(g.pick_federating(&mut rng, d, 1.0));
        }
        let cap = u64::from(self.max_contacts).min(federating[0].len() as u64);
        let scale = pareto_scale(self.mean_contacts, self.alpha, cap);
        for d in 1..domains.len() {
            g.draw(&mut rng, d, &federating, &[0], scale);
        }
        g.finish()
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "users={} overlap={} mean_contacts={} alpha={} max_contacts={} popularity={} \
             local_contacts={} mutual={} pending={} online={} active={} two_resources={} \
             blocks={} peer_users={} seed={}",
            self.users,
            self.overlap,
            self.mean_contacts,
            self.alpha,
            self.max_contacts,
            self.popularity,
            self.local_contacts,
            self.mutual,
            self.pending,
            self.online,
            self.active,
            self.two_resources,
            self.blocks,
            self.peer_users,
            self.seed
        )
    }
}

/// The name of the `i`th peer domain of [`Spec::generate_hub`]: `p{i}.example`.
pub fn peer_domain(i: usize) -> String {
    format!("p{i}.example")
}

/// The state the other side of a relation has when its two items agree (RFC 6121): `to` and
/// `from` swap, and so do `pending out` and `pending in`.
pub fn mirror(state: NamedState) -> NamedState {
    match state {
        NamedState::None => NamedState::None,
        NamedState::NonePendingOut => NamedState::NonePendingIn,
        NamedState::NonePendingIn => NamedState::NonePendingOut,
        NamedState::NonePendingOutIn => NamedState::NonePendingOutIn,
        NamedState::To => NamedState::From,
        NamedState::ToPendingIn => NamedState::FromPendingOut,
        NamedState::From => NamedState::To,
        NamedState::FromPendingOut => NamedState::ToPendingIn,
        NamedState::Both => NamedState::Both,
    }
}

/// The number of edges a roster item projects (XEP §Edge Set: one per `from`, `to`,
/// `pending in`, `pending out`), as [`crate::model::edge::project_user`] would.
fn edge_count(sub: &Subscription) -> u64 {
    [sub.from(), sub.to(), sub.pending_in(), sub.pending_out()]
        .into_iter()
        .filter(|&x| x)
        .count() as u64
}

// ---- randomness ----

/// Independent random streams, so that changing one parameter (say, the fraction online)
/// leaves what does not depend on it (the rosters) unchanged.
#[derive(Clone, Copy)]
enum Stream {
    Relations = 1,
    Local = 2,
    Blocks = 3,
    Online = 4,
    Churn = 5,
    Mismatches = 6,
}

fn stream(seed: u64, which: Stream) -> SplitMix64 {
    let mut mix = SplitMix64::new(seed ^ (which as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    SplitMix64::new(mix.next_u64())
}

/// The `scale` for which [`SplitMix64::pareto`]`(scale, alpha, max)` has mean `mean`: that
/// integer has `P(X >= k) = min(1, (scale/k)^alpha)` for `2 <= k <= max`, so its mean is
/// `1 + Σ_{k=2..=max} min(1, (scale/k)^alpha)`, increasing in `scale`; solved by bisection.
fn pareto_scale(mean: f64, alpha: f64, max: u64) -> f64 {
    let expected = |scale: f64| {
        1.0 + (2..=max)
            .map(|k| (scale / k as f64).powf(alpha).min(1.0))
            .sum::<f64>()
    };
    if mean <= 1.0 || max <= 1 {
        return 0.0; // every draw is 1
    }
    if mean >= max as f64 {
        return max as f64;
    }
    let (mut lo, mut hi) = (0.0, max as f64);
    for _ in 0..50 {
        let mid = (lo + hi) / 2.0;
        if expected(mid) < mean {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// The Pareto-distributed integer of [`SplitMix64::pareto`] at quantile `q` in `[0, 1)`.
fn pareto_at(q: f64, scale: f64, alpha: f64, max: u64) -> u64 {
    let x = scale / (1.0 - q).powf(1.0 / alpha);
    (x as u64).clamp(1, max)
}

/// Fisher-Yates.
fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// A rank in `0..n`, skewed towards 0 (the most popular) by `skew >= 1`.
fn popular(rng: &mut SplitMix64, n: usize, skew: f64) -> usize {
    ((rng.unit().powf(skew) * n as f64) as usize).min(n - 1)
}

/// Both items of a new cross-domain relation: (the drawer's, the drawn's).
fn cross_items(rng: &mut SplitMix64, spec: &Spec) -> (Subscription, Subscription) {
    let r = rng.unit();
    let (a, b) = if r < spec.mutual {
        (NamedState::Both, NamedState::Both)
    } else if r < spec.mutual + spec.pending {
        (NamedState::NonePendingOut, NamedState::NonePendingIn)
    } else if rng.unit() < ONE_WAY_PENDING_BACK {
        (NamedState::ToPendingIn, NamedState::FromPendingOut)
    } else {
        (NamedState::To, NamedState::From)
    };
    let mut a = Subscription::named(a);
    let b = Subscription::named(b);
    if a.name() == NamedState::To && rng.unit() < ONE_WAY_PRE_APPROVED {
        a = a.with_approval().expect("'to' can be pre-approved");
    }
    // Either side may be the one subscribed.
    if rng.below(2) == 0 { (a, b) } else { (b, a) }
}
