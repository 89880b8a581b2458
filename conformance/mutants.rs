//! Deliberately broken variants of the reference implementation: the proof that the suite
//! tells a right implementation from a wrong one. Each must be caught by at least one failing
//! check that names a requirement it breaks.

use std::collections::BTreeMap;
use std::sync::Arc;

use jid::BareJid;
use minidom::Element;

use super::check::Outcome;
use super::subject::{Implementation, Reference, Subject};
use crate::engine::session::{Mutation, PriorityPolicy};
use crate::model::truth::Resources;
use crate::model::{Account, ResourcePresence, Subscription};
use crate::sim::{Host, SimTime, Transmit};
use crate::wire::ns;

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

/// Every broken variant, with the XEP's default small-peer threshold (PS-93).
pub fn all() -> Vec<Mutant> {
    all_with_small_peer(crate::engine::SMALL_PEER)
}

/// Every broken variant, each with the small-peer threshold `small_peer` (PS-93): that of the
/// implementation they stand beside, so that a world where it starts sessions has them too
/// (the `tiny` preset runs the reference with 0).
pub fn all_with_small_peer(small_peer: u64) -> Vec<Mutant> {
    let with = |mut r: Reference| {
        r.setup.config.small_peer = small_peer;
        r
    };
    let m = |name, breaks, mutation| Mutant {
        name,
        breaks,
        implementation: Box::new(with(Reference::mutated(mutation))),
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
        m("live-behind-bulk", &["PS-52"], Mutation::LiveBehindBulk),
        Mutant {
            name: "drop-all-batches",
            breaks: &["PS-43", "PS-44"],
            implementation: Box::new(DropBatches(with(Reference::default()))),
        },
        Mutant {
            name: "inactive-first",
            breaks: &["PS-53"],
            implementation: Box::new(with(Reference::with_policy(
                "reference syncing inactive users first",
                Arc::new(InactiveFirst),
            ))),
        },
    ]
}

/// A subject-level fault: the wrapped implementation's servers never see an incoming
/// `<batch/>` (the iq is dropped before it reaches them, so it is neither applied nor
/// answered), as a bridge that lost them on the way would. Breaks PS-43 (apply the items and
/// answer) and with it PS-44 (every change of the peer's published set reaches this side).
pub struct DropBatches<I>(pub I);

impl<I: Implementation> Implementation for DropBatches<I> {
    fn name(&self) -> String {
        format!("{} dropping every incoming batch", self.0.name())
    }

    fn server(&self, domain: &str, seed: u64) -> Box<dyn Subject> {
        Box::new(BatchDropper(self.0.server(domain, seed)))
    }
}

/// True if `stanza` carries a `<batch/>` of the extension.
fn is_batch(stanza: &Element) -> bool {
    stanza.has_child("batch", ns::PRESENCE_SYNC)
}

/// The server of [`DropBatches`]: every call forwarded, except incoming batches.
struct BatchDropper(Box<dyn Subject>);

impl Host for BatchDropper {
    fn domain(&self) -> &str {
        self.0.domain()
    }
    fn stream_features(&self) -> Vec<Element> {
        self.0.stream_features()
    }
    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        self.0.handle_link_up(now, peer, features)
    }
    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        self.0.handle_link_down(now, peer)
    }
    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        if !is_batch(&stanza) {
            self.0.handle_stanza(now, peer, stanza)
        }
    }
    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.0.handle_undeliverable(now, peer, stanza)
    }
    fn handle_timeout(&mut self, now: SimTime) {
        self.0.handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<SimTime> {
        self.0.poll_timeout()
    }
    fn crash(&mut self, now: SimTime) {
        self.0.crash(now)
    }
    fn shutdown(&mut self, now: SimTime) {
        self.0.shutdown(now)
    }
    fn restart(&mut self, now: SimTime) {
        self.0.restart(now)
    }
}

impl Subject for BatchDropper {
    fn add_user(&mut self, user: &BareJid) {
        self.0.add_user(user)
    }
    fn set_roster_item(&mut self, user: &BareJid, contact: &BareJid, sub: Subscription) {
        self.0.set_roster_item(user, contact, sub)
    }
    fn login(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        self.0.login(user, resource, presence)
    }
    fn set_presence(&mut self, user: &BareJid, resource: &str, presence: ResourcePresence) {
        self.0.set_presence(user, resource, presence)
    }
    fn logout(&mut self, user: &BareJid, resource: &str) {
        self.0.logout(user, resource)
    }
    fn subscribe(&mut self, user: &BareJid, contact: &BareJid) {
        self.0.subscribe(user, contact)
    }
    fn approve(&mut self, user: &BareJid, contact: &BareJid) {
        self.0.approve(user, contact)
    }
    fn unsubscribe(&mut self, user: &BareJid, contact: &BareJid) {
        self.0.unsubscribe(user, contact)
    }
    fn deny(&mut self, user: &BareJid, contact: &BareJid) {
        self.0.deny(user, contact)
    }
    fn block(&mut self, user: &BareJid, jid: &BareJid) {
        self.0.block(user, jid)
    }
    fn unblock(&mut self, user: &BareJid, jid: &BareJid) {
        self.0.unblock(user, jid)
    }
    fn set_active(&mut self, user: &BareJid, active: bool) {
        self.0.set_active(user, active)
    }
    fn set_clock(&mut self, now: SimTime) {
        self.0.set_clock(now)
    }
    fn is_up(&self) -> bool {
        self.0.is_up()
    }
    fn accounts(&self) -> &BTreeMap<BareJid, Account> {
        self.0.accounts()
    }
    fn online(&self) -> &BTreeMap<BareJid, Resources> {
        self.0.online()
    }
    fn view(&self, user: &BareJid) -> Option<&BTreeMap<BareJid, Resources>> {
        self.0.view(user)
    }
    fn deliveries(&self) -> u64 {
        self.0.deliveries()
    }
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
    /// The scenarios with a failing check, in order.
    pub failed_scenarios: Vec<&'static str>,
    /// The scenarios run.
    pub scenarios: usize,
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
            failed_scenarios: runs
                .iter()
                .filter(|r| !r.passed())
                .map(|r| r.name)
                .collect(),
            scenarios: runs.len(),
        }
    }
}
