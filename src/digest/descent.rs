//! The descent rules of `<reconcile/>` (XEP §Reconciliation), as pure functions over one side's
//! digest.
//!
//! A side that receives `<split prefix=P fps=F/>` compares each child of `P` with `F`; for each
//! child that differs it answers either the ids of its items under that child (when it holds at
//! most `leaf_items` there, or its tree ends there), or its own 16 child fingerprints (a
//! `<split/>` one level down). A side that receives `<ids prefix=P ids=L/>` now knows the exact
//! difference under `P`: its ids missing from `L`, and the ids of `L` it lacks. Both sides run
//! the same rules, so each message descends one level; a 10^6-item set with 100 differences
//! resolves in a handful of messages (see the test at the bottom and the benches).
//!
//! The functions do no I/O and keep no state: the session (engine) decides what to send when,
//! under its window and size limits.

use super::hash::{Fingerprint, HashAlgo, ShortId};
use super::node::NodeValue;
use super::prefix::{FANOUT, Prefix};
use super::sketch::Sketch;

/// One side's digest as the descent sees it.
pub trait DescentView {
    /// Hash algorithm of the fingerprints.
    fn algo(&self) -> HashAlgo;
    /// Depth of the local tree (prefixes up to this length have node values).
    fn depth(&self) -> u8;
    /// Node value at `prefix`, at any length down to 8 nibbles (XEP PS-15).
    fn node(&self, prefix: Prefix) -> NodeValue;
    /// Sorted short ids of the local items under `prefix` (any length).
    fn ids_under(&mut self, prefix: Prefix) -> Vec<ShortId>;
}

/// A descent message entry (the `<split/>` and `<ids/>` children of `<reconcile/>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// "My node `prefix` differs from yours; here are my 16 child fingerprints."
    Split {
        /// The node.
        prefix: Prefix,
        /// Fingerprints of its children 0..16 (boxed: 256 bytes).
        fps: Box<[Fingerprint; FANOUT]>,
    },
    /// "My node `prefix` holds exactly these items."
    Ids {
        /// The node.
        prefix: Prefix,
        /// Sorted short ids.
        ids: Vec<ShortId>,
    },
}

impl Step {
    /// Payload bytes of the entry (prefix, and fingerprints or ids), without XML framing.
    pub fn payload_bytes(&self) -> usize {
        match self {
            Step::Split { prefix, .. } => prefix.len() as usize + 16 * FANOUT,
            Step::Ids { prefix, ids } => prefix.len() as usize + 8 * ids.len(),
        }
    }
}

/// The difference under one prefix, learnt from the peer's `<ids/>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Difference {
    /// The node the ids covered.
    pub prefix: Prefix,
    /// Local items the peer does not have.
    pub mine_only: Vec<ShortId>,
    /// Peer items this side does not have.
    pub theirs_only: Vec<ShortId>,
}

/// What this side says about its node `prefix`, which is known to differ from the peer's:
/// its ids if small (at most `leaf_items`) or at the end of its tree, else a split.
pub fn describe(view: &mut impl DescentView, prefix: Prefix, leaf_items: u64) -> Step {
    let small = prefix.len() >= view.depth() || view.node(prefix).count() <= leaf_items;
    if small {
        return Step::Ids {
            prefix,
            ids: view.ids_under(prefix),
        };
    }
    let algo = view.algo();
    let fps = Box::new(std::array::from_fn(|i| {
        let child = prefix
            .child(i as u8)
            .expect("prefix above the tree's depth");
        view.node(child).fingerprint(algo)
    }));
    Step::Split { prefix, fps }
}

/// The first message of a descent after unequal roots: the root described.
pub fn start(view: &mut impl DescentView, leaf_items: u64) -> Step {
    describe(view, Prefix::ROOT, leaf_items)
}

/// Answers a peer's `<split prefix fps/>` (XEP PS-24): one step per child whose fingerprint
/// differs from the peer's, describing that child (ids when small or at or below the local
/// tree's depth, else a split). Children below the local depth are computed from the bucket
/// that holds them, so a shallow tree still answers exactly.
pub fn answer_split(
    view: &mut impl DescentView,
    prefix: Prefix,
    fps: &[Fingerprint; FANOUT],
    leaf_items: u64,
) -> Vec<Step> {
    differing(view, prefix, fps)
        .into_iter()
        .map(|child| describe(view, child, leaf_items))
        .collect()
}

/// The children of `prefix` whose local fingerprint differs from the peer's `fps`: the nodes
/// [`answer_split`] describes, for a side that describes them later.
pub fn differing(
    view: &impl DescentView,
    prefix: Prefix,
    fps: &[Fingerprint; FANOUT],
) -> Vec<Prefix> {
    let algo = view.algo();
    (0..FANOUT as u8)
        .filter_map(|i| prefix.child(i))
        .filter(|child| view.node(*child).fingerprint(algo) != fps[child.last_nibble() as usize])
        .collect()
}

/// Answers a peer's `<ids prefix ids/>` (sorted or not): the exact difference under `prefix`.
pub fn answer_ids(view: &mut impl DescentView, prefix: Prefix, theirs: &[ShortId]) -> Difference {
    let mine = view.ids_under(prefix);
    let mut theirs_sorted = theirs.to_vec();
    theirs_sorted.sort_unstable();
    let mine_only = mine
        .iter()
        .filter(|id| theirs_sorted.binary_search(id).is_err())
        .copied()
        .collect();
    let theirs_only = theirs_sorted
        .iter()
        .filter(|id| mine.binary_search(id).is_err())
        .copied()
        .collect();
    Difference {
        prefix,
        mine_only,
        theirs_only,
    }
}

/// Answers a peer's `<sketch prefix data/>` (XEP §Sketches): the exact difference under
/// `prefix` if the sketch decodes against the local ids there, None if it does not.
pub fn answer_sketch(
    view: &mut impl DescentView,
    prefix: Prefix,
    sketch: &Sketch,
) -> Option<Difference> {
    let mine = view.ids_under(prefix);
    let d = sketch.decode(&mine)?;
    Some(Difference {
        prefix,
        mine_only: d.mine_only,
        theirs_only: d.theirs_only,
    })
}

/// Figures of a descent simulated between two local digests (see [`simulate`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DescentRun {
    /// Messages exchanged (each is one `<reconcile/>`; two make a round trip).
    pub messages: usize,
    /// Payload bytes of all entries (prefixes, fingerprints, ids), without XML framing.
    pub payload_bytes: usize,
    /// Every short id found to be on one side only.
    pub found: std::collections::BTreeSet<ShortId>,
}

/// Runs the descent between `a` (which starts, after unequal roots) and `b` to the end,
/// alternating messages as two servers would, and reports what it cost and found. For tests,
/// the CLI and the benchmarks; servers exchange the steps over the wire instead.
pub fn simulate<V: DescentView>(a: &mut V, b: &mut V, leaf_items: u64) -> DescentRun {
    let mut r = DescentRun::default();
    if a.node(Prefix::ROOT) == b.node(Prefix::ROOT) {
        return r;
    }
    let mut outbox = vec![start(a, leaf_items)];
    let mut to_a = false;
    while !outbox.is_empty() {
        r.messages += 1;
        r.payload_bytes += outbox.iter().map(Step::payload_bytes).sum::<usize>();
        let receiver = if to_a { &mut *a } else { &mut *b };
        let mut next = Vec::new();
        for step in outbox {
            match step {
                Step::Split { prefix, fps } => {
                    next.extend(answer_split(receiver, prefix, &fps, leaf_items))
                }
                Step::Ids { prefix, ids } => {
                    let d = answer_ids(receiver, prefix, &ids);
                    r.found.extend(d.mine_only.iter().chain(&d.theirs_only));
                }
            }
        }
        outbox = next;
        to_a = !to_a;
    }
    r
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::digest::{EdgeDigest, EdgeHasher, PairHasher};
    use crate::workload::{DOMAIN_A, DOMAIN_B, EdgeSpec, EdgeWorkload, SplitMix64, WorkloadView};

    type View<'a> = WorkloadView<'a>;

    /// Runs the descent between two digests of the same workload, `a` starting.
    fn descend(w: &EdgeWorkload, a: &EdgeDigest<u32>, b: &EdgeDigest<u32>) -> DescentRun {
        let view = |digest| View {
            digest,
            workload: w,
        };
        simulate(&mut view(a), &mut view(b), 16)
    }

    fn pair() -> PairHasher {
        PairHasher::new(HashAlgo::Blake3, DOMAIN_A, DOMAIN_B)
    }

    /// Builds side A from the whole workload and side B without `d_b` random edges and
    /// (independently) A without `d_a` others; returns the true symmetric difference.
    fn setup(
        n: u64,
        d_a: usize,
        d_b: usize,
        seed: u64,
    ) -> (
        EdgeWorkload,
        EdgeDigest<u32>,
        EdgeDigest<u32>,
        BTreeSet<ShortId>,
    ) {
        let w = EdgeWorkload::generate(&EdgeSpec::new(n, seed));
        let len = w.edges.len() as u64;
        let full = EdgeDigest::build(pair(), len, w.iter());
        let (mut a, mut b) = (full.clone(), full);
        let mut rng = SplitMix64::new(seed ^ 77);
        let mut truth = BTreeSet::new();
        let mut eh = EdgeHasher::new(pair());
        for (side, d) in [(&mut a, d_a), (&mut b, d_b)] {
            let mut removed = 0;
            while removed < d {
                let i = rng.below(len) as u32;
                if truth.contains(&eh.leaf(w.edge(i)).short_id()) {
                    continue;
                }
                if side.remove(&i, w.edge(i)) {
                    truth.insert(eh.leaf(w.edge(i)).short_id());
                    removed += 1;
                }
            }
        }
        (w, a, b, truth)
    }

    #[test]
    fn descent_finds_exactly_the_difference() {
        for (n, d_a, d_b, seed) in [
            (2_000, 0, 1, 1),
            (20_000, 5, 7, 2),
            (50_000, 40, 0, 3),
            (5_000, 300, 300, 4),
        ] {
            let (w, a, b, truth) = setup(n, d_a, d_b, seed);
            let r = descend(&w, &a, &b);
            assert_eq!(r.found, truth, "n {n} d {d_a}+{d_b}");
        }
    }

    #[test]
    fn trees_of_different_depths_still_agree() {
        let (w, a, b, truth) = setup(30_000, 10, 10, 5);
        let mut shallow = b.clone();
        shallow.set_depth(1, |k, h| h.leaf(w.edge(*k)));
        assert_eq!(descend(&w, &a, &shallow).found, truth);
        assert_eq!(descend(&w, &shallow, &a).found, truth);
    }

    #[test]
    fn equal_sets_need_no_descent_and_cost_grows_with_d_not_n() {
        let (w, a, b, _) = setup(10_000, 0, 0, 6);
        assert_eq!(a.tree().root(), b.tree().root());
        // d = 1 at n = 10^4 and n = 10^5: the number of messages grows with log16(n), and the
        // payload stays small.
        let mut sizes = Vec::new();
        for n in [10_000, 100_000] {
            let (w, a, b, truth) = setup(n, 0, 1, 7);
            let r = descend(&w, &a, &b);
            assert_eq!(r.found, truth);
            sizes.push((r.messages, r.payload_bytes));
        }
        let _ = w;
        assert!(sizes[1].0 <= sizes[0].0 + 1, "{sizes:?}");
        assert!(sizes[1].1 <= 3 * sizes[0].1, "{sizes:?}");
    }
}
