//! Seeded, reproducible workloads (BRIEF §4): users of two domains and the cross-domain edges
//! between them, with heavy-tailed roster sizes.
//!
//! Randomness comes from SplitMix64 written out here (a dozen lines) rather than from a crate,
//! so that a seed names the same workload forever, across dependency upgrades.

use crate::digest::EdgeRef;
use crate::model::EdgeState;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, well-distributed 64-bit generator.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A Pareto-distributed integer `>= min` with shape `alpha` (heavy tail for small alpha),
    /// capped at `max`.
    pub fn pareto(&mut self, min: f64, alpha: f64, max: u64) -> u64 {
        let u = 1.0 - self.unit(); // (0, 1]
        let x = min / u.powf(1.0 / alpha);
        (x as u64).clamp(1, max)
    }
}

/// Parameters of an edge workload.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeSpec {
    /// Number of edges to generate (the rare duplicate pair is dropped, so up to ~1% fewer).
    pub edges: u64,
    /// Seed.
    pub seed: u64,
    /// Mean number of cross-domain contacts per user (sets the number of users).
    pub mean_contacts: f64,
    /// Pareto shape of roster sizes (1.5: most users a handful, a few hundreds).
    pub alpha: f64,
}

impl EdgeSpec {
    /// `edges` edges with the default shape: 10 contacts on average, alpha 1.5.
    pub fn new(edges: u64, seed: u64) -> EdgeSpec {
        EdgeSpec {
            edges,
            seed,
            mean_contacts: 10.0,
            alpha: 1.5,
        }
    }
}

/// A generated set of cross-domain edges between `a.example` and `b.example`, stored compactly:
/// the user names once in one arena, each edge as two indexes into them (what a server's
/// roster storage would give the digest as keys).
#[derive(Clone, Debug)]
pub struct EdgeWorkload {
    /// Bare JIDs, concatenated: users of A first (`u{i}@a.example`), then users of B.
    arena: String,
    /// End offset in `arena` of each name.
    ends: Vec<u32>,
    /// Number of users of A (names[..users_a]).
    pub users_a: u32,
    /// Edges as (publisher index, subscriber index, state), no duplicates.
    pub edges: Vec<(u32, u32, EdgeState)>,
}

/// The first domain of generated workloads.
pub const DOMAIN_A: &str = "a.example";
/// The second domain of generated workloads.
pub const DOMAIN_B: &str = "b.example";

impl EdgeWorkload {
    /// Generates the workload: each user of A gets a Pareto-distributed number of contacts in
    /// B (a consecutive run from a random offset, so contacts are distinct); a relation is
    /// mutual (`both`: two edges) with probability 0.8, one-way with 0.15, a pending request
    /// with 0.05. Generation stops at `spec.edges` edges; duplicate pairs are then dropped.
    pub fn generate(spec: &EdgeSpec) -> EdgeWorkload {
        let mut rng = SplitMix64::new(spec.seed);
        let per_user_edges = spec.mean_contacts * 1.8;
        let users = ((spec.edges as f64 / per_user_edges).ceil() as u32).max(1);
        let (users_a, users_b) = (users, users);
        let mut arena = String::new();
        let mut ends = Vec::with_capacity(2 * users as usize);
        for (count, domain) in [(users_a, DOMAIN_A), (users_b, DOMAIN_B)] {
            for i in 0..count {
                use std::fmt::Write as _;
                write!(arena, "u{i}@{domain}").expect("writing to a String");
                ends.push(u32::try_from(arena.len()).expect("names below 4 GiB"));
            }
        }
        let mut edges = Vec::with_capacity(spec.edges as usize);
        let min = spec.mean_contacts * (spec.alpha - 1.0) / spec.alpha;
        let target = spec.edges as usize;
        'outer: for round in 0u32.. {
            for a in 0..users_a {
                let k = rng.pareto(min, spec.alpha, users_b.min(1000) as u64) as u32;
                let start = rng.below(users_b as u64) as u32;
                for j in 0..k {
                    // Later rounds use another stride so that they add new pairs.
                    let b = users_a + (start + j * (2 * round + 1)) % users_b;
                    let r = rng.unit();
                    let pairs: &[(u32, u32, EdgeState)] = if r < 0.8 {
                        &[(a, b, EdgeState::Subscribed), (b, a, EdgeState::Subscribed)]
                    } else if r < 0.875 {
                        &[(a, b, EdgeState::Subscribed)]
                    } else if r < 0.95 {
                        &[(b, a, EdgeState::Subscribed)]
                    } else {
                        &[(a, b, EdgeState::Pending)]
                    };
                    for &e in pairs {
                        if edges.len() == target {
                            break 'outer;
                        }
                        edges.push(e);
                    }
                }
            }
            if edges.len() == target {
                break;
            }
        }
        edges.sort_unstable();
        edges.dedup_by(|x, y| x.0 == y.0 && x.1 == y.1);
        EdgeWorkload {
            arena,
            ends,
            users_a,
            edges,
        }
    }

    /// Name (bare JID) of user `i` (A's users first).
    pub fn name(&self, i: u32) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.ends[i as usize - 1] as usize
        };
        &self.arena[start..self.ends[i as usize] as usize]
    }

    /// Number of users in both domains.
    pub fn users(&self) -> u32 {
        self.ends.len() as u32
    }

    /// Edge `i` as borrowed strings.
    pub fn edge(&self, i: u32) -> EdgeRef<'_> {
        let (p, s, state) = self.edges[i as usize];
        EdgeRef {
            publisher: self.name(p),
            subscriber: self.name(s),
            state,
        }
    }

    /// All edges with their index as key.
    pub fn iter(&self) -> impl Iterator<Item = (u32, EdgeRef<'_>)> {
        (0..self.edges.len() as u32).map(|i| (i, self.edge(i)))
    }

    /// Bytes of the workload itself (names and edge table): the "roster" the digest is built
    /// on top of.
    pub fn memory_bytes(&self) -> usize {
        self.arena.capacity()
            + self.ends.capacity() * 4
            + self.edges.capacity() * std::mem::size_of::<(u32, u32, EdgeState)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_close_to_the_size_asked() {
        let spec = EdgeSpec::new(5_000, 7);
        let a = EdgeWorkload::generate(&spec);
        let b = EdgeWorkload::generate(&spec);
        assert_eq!(a.edges, b.edges);
        assert!(
            a.edges.len() <= 5_000 && a.edges.len() > 4_900,
            "{}",
            a.edges.len()
        );
        assert_eq!(a.name(0), "u0@a.example");
        assert_eq!(a.name(a.users_a), "u0@b.example");
        assert_eq!(a.users(), 2 * a.users_a);
        let c = EdgeWorkload::generate(&EdgeSpec::new(5_000, 8));
        assert_ne!(a.edges, c.edges);
    }

    #[test]
    fn heavy_tail() {
        let mut rng = SplitMix64::new(1);
        let xs: Vec<u64> = (0..100_000).map(|_| rng.pareto(3.33, 1.5, 1000)).collect();
        let small = xs.iter().filter(|&&x| x <= 10).count();
        let big = xs.iter().filter(|&&x| x >= 100).count();
        assert!(small > 70_000, "most users have a handful: {small}");
        assert!(big > 100, "a few have hundreds: {big}");
    }
}

/// A digest of (part of) a workload's edges, seen by the descent: keys are edge indexes.
#[derive(Clone, Copy, Debug)]
pub struct WorkloadView<'a> {
    /// The digest (keys index `workload.edges`).
    pub digest: &'a crate::digest::EdgeDigest<u32>,
    /// The workload the keys refer to.
    pub workload: &'a EdgeWorkload,
}

impl crate::digest::descent::DescentView for WorkloadView<'_> {
    fn algo(&self) -> crate::digest::HashAlgo {
        self.digest.tree().algo()
    }
    fn depth(&self) -> u8 {
        self.digest.tree().depth()
    }
    fn node(&self, prefix: crate::digest::Prefix) -> crate::digest::NodeValue {
        let w = self.workload;
        self.digest.node_value(prefix, |k, h| h.leaf(w.edge(*k)))
    }
    fn ids_under(&mut self, prefix: crate::digest::Prefix) -> Vec<crate::digest::ShortId> {
        let w = self.workload;
        self.digest
            .short_ids_under(prefix, |k, h| h.leaf(w.edge(*k)))
    }
}
