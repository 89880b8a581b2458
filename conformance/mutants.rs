//! Deliberately broken variants of the reference implementation: the proof that the suite
//! tells a right implementation from a wrong one. Each must be caught by at least one failing
//! check that names a requirement it breaks.

use std::sync::Arc;

use super::check::Outcome;
use super::subject::{Implementation, Reference};
use crate::engine::session::{Mutation, PriorityPolicy};

/// A priority policy that ranks the contacts of inactive online users before those of
/// active ones: the opposite of PS-53's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct InactiveFirst;

impl PriorityPolicy for InactiveFirst {
    fn rank(&self, online: bool, active: bool) -> Option<u8> {
        match (online, active) {
            (true, false) => Some(0),
            (true, true) => Some(1),
            _ => None,
        }
    }
}

/// A broken variant and the requirements it breaks.
pub struct Mutant {
    /// A short name.
    pub name: &'static str,
    /// The requirements it breaks: one of them must be named by a failing check.
    pub breaks: &'static [&'static str],
    /// The broken implementation.
    pub implementation: Box<dyn Implementation>,
}

/// Every broken variant.
pub fn all() -> Vec<Mutant> {
    let m = |name, breaks, mutation| Mutant {
        name,
        breaks,
        implementation: Box::new(Reference::mutated(mutation)),
    };
    vec![
        m(
            "ignore-new-epoch",
            &["PS-13", "PS-19"],
            Mutation::IgnoreNewEpoch,
        ),
        m(
            "forget-one-subscriber",
            &["PS-40"],
            Mutation::ForgetOneSubscriber,
        ),
        m(
            "show-to-blocked",
            &["PS-9", "PS-79"],
            Mutation::ShowToBlocked,
        ),
        m(
            "trust-foreign-jid",
            &["PS-39", "PS-74"],
            Mutation::TrustForeignJid,
        ),
        m(
            "never-reverify",
            &["PS-16", "PS-37"],
            Mutation::NeverReverify,
        ),
        m(
            "per-edge-presence",
            &["PS-44", "PS-66"],
            Mutation::PerEdgePresence,
        ),
        Mutant {
            name: "inactive-first",
            breaks: &["PS-53"],
            implementation: Box::new(Reference::with_policy(
                "reference syncing inactive users first",
                Arc::new(InactiveFirst),
            )),
        },
    ]
}

/// How the suite did against one broken variant.
#[derive(Clone, Debug)]
pub struct MutantResult {
    /// The variant's name.
    pub name: &'static str,
    /// The requirements it breaks.
    pub breaks: &'static [&'static str],
    /// Every failing check: (scenario, check, requirements).
    pub failing: Vec<(&'static str, String, Vec<&'static str>)>,
    /// True if a failing check names one of [`MutantResult::breaks`].
    pub caught: bool,
}

impl MutantResult {
    /// Judges a run of the suite against `mutant`.
    pub fn judge(mutant: &Mutant, runs: &[super::scenarios::Run]) -> MutantResult {
        let failing: Vec<(&'static str, String, Vec<&'static str>)> = runs
            .iter()
            .flat_map(|r| {
                r.checks
                    .iter()
                    .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
                    .map(move |c| (r.name, c.name.clone(), c.requirements.clone()))
            })
            .collect();
        let caught = failing
            .iter()
            .any(|(_, _, reqs)| reqs.iter().any(|r| mutant.breaks.contains(r)));
        // The naming failures first.
        let mut failing = failing;
        failing.sort_by_key(|(_, _, reqs)| !reqs.iter().any(|r| mutant.breaks.contains(r)));
        MutantResult {
            name: mutant.name,
            breaks: mutant.breaks,
            failing,
            caught,
        }
    }
}
