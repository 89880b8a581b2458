//! The world a scenario runs in: servers of the implementation under test and their peers on
//! a deterministic [`Net`], the ground truth, and the measurement of one phase (stanzas,
//! bytes, round trips, simulated time until the views converge and until the active users'
//! views are right).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jid::BareJid;

use super::progress::{self, Tick};
use super::record::{RecordKind, Recorder};
use super::subject::Subject;
use super::workload::Federation;
use crate::model::truth::{DomainState, Resources, View, differences_borrowed, entitled_viewers};
use crate::sim::{Host, LinkConfig, Net, SimTime};

/// The most events a measured phase may take: an implementation that keeps the network busy
/// longer is in a livelock, and the phase ends there (its complaint fails the scenario's
/// checks through [`Phase::complaints`] and the end state).
pub const MAX_EVENTS: u64 = 2_000_000;

/// The links of every world, so that simulated time measures pacing and priority instead of
/// hop counts: 20 ms one way, 100 Mbit/s (12 500 bytes per ms) each direction, and 150 µs to
/// handle a stanza, during which its direction carries nothing else.
///
/// Assumed, not yet calibrated: 150 µs is what the reference server took per s2s message on
/// loopback in the real-wire benchmark (6 422 stanzas per second); Prosody 0.12 took about four
/// times as long there (1 502 per second), so the same cost for both favours RFC 6121. The
/// bandwidth is a modest data-centre link; a server spends the same time on a stanza
/// whichever link it came from, which the model, one direction at a time, leaves out.
pub fn s2s_link() -> LinkConfig {
    LinkConfig::default()
        .with_latency(Duration::from_millis(20))
        .with_bandwidth(12_500)
        .with_per_stanza(Duration::from_micros(150))
}

/// A host of the world: a server (under test, peer or baseline), its traffic recorded.
pub type Node = Recorder<Box<dyn Subject>>;

/// The ground truth of `servers`: for each online user, the presence it is entitled to see
/// (RFC 6121 subscriptions, XEP-0191 blocks, who is online: [`entitled_viewers`]).
pub fn truth_of(servers: &[&dyn Subject]) -> View {
    truth_for(servers, |_| true)
}

/// [`truth_of`] for the online users that `wanted` selects only.
fn truth_for(servers: &[&dyn Subject], wanted: impl Fn(&BareJid) -> bool) -> View {
    let online: BTreeSet<&BareJid> = servers.iter().flat_map(|s| s.online().keys()).collect();
    let states: Vec<DomainState<'_>> = servers.iter().map(|s| s.domain_state()).collect();
    entitled_viewers(&states, |v| online.contains(v) && wanted(v))
}

/// What every online user of `servers` is shown.
pub fn shown_of(servers: &[&dyn Subject]) -> View {
    shown_in_place(servers)
        .into_iter()
        .map(|(u, v)| (u.clone(), v.clone()))
        .collect()
}

/// [`shown_of`], borrowed from the servers.
fn shown_in_place<'a>(
    servers: &[&'a dyn Subject],
) -> BTreeMap<&'a BareJid, &'a BTreeMap<BareJid, Resources>> {
    let mut shown = BTreeMap::new();
    for s in servers {
        for user in s.online().keys() {
            if let Some(v) = s.view(user).filter(|v| !v.is_empty()) {
                shown.insert(user, v);
            }
        }
    }
    shown
}

/// Stanzas with a `<hello/>` that `node` received from `peer` so far.
pub fn hellos_received(node: &Node, peer: &str) -> usize {
    node.records()
        .iter()
        .filter(|r| match &r.kind {
            RecordKind::In { peer: p, stanza } => {
                p == peer && stanza.children().any(|c| c.name() == "hello")
            }
            _ => false,
        })
        .count()
}

/// Servers on a network, built from a generated federation.
pub struct World {
    /// The network (public for the scenarios' fault calls).
    pub net: Net<Node>,
    /// Domains served by the implementation under test.
    pub subjects: BTreeSet<String>,
    /// The differences from the truth when the world was set up, before any fault (see
    /// [`World::mark_setup`]); `None` if not recorded.
    pub setup_diff: Option<Vec<String>>,
    active: BTreeMap<String, Vec<BareJid>>,
}

impl World {
    /// One server per domain of `fed` made by `make(domain)`, provisioned, all linked to each
    /// other's domain pairs that share edges, nobody online. `subjects` are the domains of
    /// the implementation under test (their traffic is recorded for the audit).
    pub fn new(
        fed: &Federation,
        subjects: &[&str],
        mut make: impl FnMut(&str) -> Box<dyn Subject>,
    ) -> World {
        let label = if subjects.is_empty() {
            "building the baseline servers"
        } else {
            "building the servers"
        };
        progress::tick(Tick {
            phase: label,
            events: 0,
            stanzas: 0,
            sim_ms: 0,
        });
        let servers = fed.build_boxed(|d| make(d));
        let mut net = Net::new(1);
        let subjects: BTreeSet<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
        // While tracing, a two-domain world records the reference peer too (super::trace).
        let record_peers = super::trace::recording_peers() && servers.len() == 2;
        for s in servers {
            let record = subjects.contains(s.domain()) || (record_peers && !subjects.is_empty());
            net.add_host(Recorder::with_recording(s, record));
        }
        let domains: Vec<String> = fed.domains().to_vec();
        let (first, rest) = domains.split_first().expect("two domains");
        if rest.len() == 1 {
            net.connect(first, &rest[0], s2s_link());
        } else {
            // A hub: every peer links to the first domain only.
            for d in rest {
                net.connect(first, d, s2s_link());
            }
        }
        let active = domains
            .iter()
            .map(|d| (d.clone(), fed.active_users(d).cloned().collect()))
            .collect();
        let mut world = World {
            net,
            subjects,
            setup_diff: None,
            active,
        };
        world.settle("linking");
        world
    }

    /// Runs the network until it is quiet (as [`Net::drive`]), reporting progress under
    /// `phase` every [`progress::EVERY`] events.
    pub fn settle(&mut self, phase: &str) {
        if !progress::active() {
            self.net.drive();
            return;
        }
        let mut events = 0;
        while let Err(e) = self.net.drive_bounded(progress::EVERY) {
            events += e.events;
            self.tick(phase, events);
        }
    }

    fn tick(&self, phase: &str, events: u64) {
        progress::tick(Tick {
            phase,
            events,
            stanzas: self.net.stats().total().stanzas,
            sim_ms: self.net.now().as_millis(),
        });
    }

    /// Runs `f` on the server of `domain` (a local action: no simulated time passes).
    pub fn act<R>(&mut self, domain: &str, f: impl FnOnce(&mut dyn Subject) -> R) -> R {
        self.net.with_host(domain, |node, now| {
            let subject = node.at(now);
            subject.set_clock(now);
            f(&mut **subject)
        })
    }

    /// The server of `domain`.
    pub fn server(&self, domain: &str) -> &dyn Subject {
        &***self.net.host(domain)
    }

    /// Every domain of the world.
    pub fn domains(&self) -> Vec<String> {
        self.net.domains().map(str::to_owned).collect()
    }

    /// The login storm of `domain`: every session of the workload logs in, then the active
    /// users among them are marked active.
    pub fn log_in(&mut self, fed: &Federation, domain: &str) {
        let active = self.active.get(domain).cloned().unwrap_or_default();
        self.act(domain, |s| {
            fed.log_in(s);
            for u in &active {
                s.set_active(u, true);
            }
        });
    }

    /// Every second session of `domain`'s workload logs in (half the users come back after
    /// a restart, and those who do come back with the presence they had).
    pub fn log_in_half(&mut self, fed: &Federation, domain: &str) {
        self.act(domain, |s| {
            for session in fed.sessions(domain).iter().step_by(2) {
                s.login(&session.user, &session.resource, session.presence.clone());
            }
        });
    }

    /// Everyone logs in, domain by domain, and the network settles.
    pub fn log_in_all(&mut self, fed: &Federation) {
        for d in self.domains() {
            self.log_in(fed, &d);
            let phase = if self.subjects.is_empty() {
                "baseline login storm"
            } else {
                "login storm"
            };
            self.settle(phase);
        }
    }

    /// Records the differences from the truth now, as the state the scenario starts from:
    /// after both login storms and the first sync, before any fault.
    pub fn mark_setup(&mut self) {
        self.setup_diff = Some(self.diff());
    }

    /// The ground truth now ([`truth_of`] the running servers).
    pub fn truth(&self) -> View {
        truth_of(&self.up_servers())
    }

    /// What every online user of a running server is shown ([`shown_of`]).
    pub fn shown(&self) -> View {
        shown_of(&self.up_servers())
    }

    /// The differences between what users are shown and the truth (empty when right).
    pub fn diff(&self) -> Vec<String> {
        let servers = self.up_servers();
        differences_borrowed(&truth_of(&servers), &shown_in_place(&servers))
    }

    /// [`World::truth`] for the active users only, the views a measured phase follows.
    fn active_truth(&self) -> View {
        let active: std::collections::HashSet<&BareJid> = self.active.values().flatten().collect();
        truth_for(&self.up_servers(), |v| active.contains(v))
    }

    fn up_servers(&self) -> Vec<&dyn Subject> {
        self.net
            .hosts()
            .map(|n| &***n)
            .filter(|s| s.is_up())
            .collect()
    }

    /// Reconcile queries and answers delivered since the last reset of the counters.
    pub fn reconcile_stanzas(&self) -> u64 {
        self.net
            .stats()
            .iter()
            .filter(|(_, _, kind, _)| kind.ends_with("/reconcile"))
            .map(|(_, _, _, c)| c.stanzas)
            .sum()
    }

    /// Deliveries so far, per host (in [`Net::hosts`] order).
    fn deliveries(&self) -> Vec<u64> {
        self.net.hosts().map(|n| n.deliveries()).collect()
    }

    /// How many online active users of server `s` are not shown exactly `truth`'s entries.
    fn active_wrong(&self, s: &dyn Subject, truth: &View) -> usize {
        let empty = BTreeMap::new();
        let Some(users) = self.active.get(s.domain()) else {
            return 0;
        };
        users
            .iter()
            .filter(|u| s.online().contains_key(*u))
            .filter(|u| s.view(u).unwrap_or(&empty) != truth.get(*u).unwrap_or(&empty))
            .count()
    }

    /// Measures a phase: resets the traffic counters, runs `inputs` (faults and local
    /// actions), then runs the network event by event until it is quiet, calling `each` after
    /// every event (an invariant check; its complaints are collected). Timers later than the
    /// quiet point are not fired (see [`Net::drive`]).
    pub fn measure(
        &mut self,
        inputs: impl FnOnce(&mut World),
        each: impl FnMut(&World) -> Option<String>,
    ) -> Phase {
        self.measure_over(inputs, None, each)
    }

    /// [`World::measure`] that also fires timers: the network runs event by event for
    /// `horizon` of simulated time from the start of the phase.
    pub fn measure_for(&mut self, horizon: Duration, inputs: impl FnOnce(&mut World)) -> Phase {
        self.measure_over(inputs, Some(horizon), |_| None)
    }

    fn measure_over(
        &mut self,
        inputs: impl FnOnce(&mut World),
        horizon: Option<Duration>,
        mut each: impl FnMut(&World) -> Option<String>,
    ) -> Phase {
        self.net.reset_stats();
        let start = self.net.now();
        let until = horizon.map(|h| start.plus_micros(h.as_micros() as u64));
        inputs(self);
        if self.subjects.is_empty() {
            // A baseline world: only its cost and end state are reported, so the network
            // runs in one go.
            // Its views are not followed, but they change only when a stanza arrives: the
            // last delivery is when they last changed.
            self.tick("baseline (RFC 6121)", 0);
            let mut delivered = self.net.stats().deliveries();
            let mut last_delivery = start;
            loop {
                let done = self.step_once(until);
                let now_delivered = self.net.stats().deliveries();
                if now_delivered != delivered {
                    delivered = now_delivered;
                    last_delivery = self.net.now();
                }
                if done {
                    break;
                }
            }
            return self.finish(start, last_delivery, None, true);
        }
        let expected = self.active_truth();
        let mut deliveries = self.deliveries();
        self.net.take_touched();
        let mut wrong: Vec<usize> = self
            .net
            .hosts()
            .map(|h| self.active_wrong(&***h, &expected))
            .collect();
        let mut last_change = start;
        let all_right = |wrong: &[usize]| wrong.iter().all(|w| *w == 0);
        let mut active_since: Option<(SimTime, u64, u64)> =
            all_right(&wrong).then_some((start, 0, 0));
        let mut complaints = Vec::new();
        let mut events: u64 = 0;
        loop {
            events += 1;
            if events > MAX_EVENTS {
                complaints.push(format!(
                    "still busy after {MAX_EVENTS} events at {}: a livelock",
                    self.net.now()
                ));
                break;
            }
            let done = self.step_once(until);
            // Only hosts that had an input can have delivered something.
            let mut changed = false;
            for h in self.net.take_touched() {
                let node = self.net.host_at(h);
                let new = node.deliveries();
                if new != deliveries[h] {
                    deliveries[h] = new;
                    wrong[h] = self.active_wrong(&***node, &expected);
                    changed = true;
                }
            }
            if changed {
                last_change = self.net.now();
                match (all_right(&wrong), active_since) {
                    (true, None) => {
                        let total = self.net.stats().total().stanzas;
                        active_since = Some((self.net.now(), total, self.reconcile_stanzas()))
                    }
                    (false, Some(_)) => active_since = None,
                    _ => {}
                }
            }
            if let Some(c) = each(self) {
                complaints.push(c);
            }
            if events % progress::EVERY == 0 && progress::active() {
                self.tick("measured phase", events);
            }
            if done {
                break;
            }
        }
        let held = self
            .net
            .hosts()
            .all(|h| self.active_wrong(&***h, &expected) == 0);
        let mut phase = self.finish(start, last_change, active_since, held);
        phase.complaints = complaints;
        phase
    }

    /// Runs one event (up to `until` if given); true once the network has nothing left to do
    /// (by then).
    fn step_once(&mut self, until: Option<SimTime>) -> bool {
        match until {
            Some(t) => !self.net.step_until(t),
            None => self.net.drive_bounded(1).is_ok(),
        }
    }

    /// The figures of a phase that started at `start` and whose views last changed at
    /// `last_change`; `active` is when the active users' views became right for good, and
    /// `held` whether they still are right (repairs may have moved the target).
    fn finish(
        &self,
        start: SimTime,
        last_change: SimTime,
        active: Option<(SimTime, u64, u64)>,
        held: bool,
    ) -> Phase {
        let diff = self.diff();
        let total = self.net.stats().total();
        let converged = diff.is_empty();
        let ms = |t: SimTime| t.as_millis().saturating_sub(start.as_millis());
        let tracked = !self.subjects.is_empty();
        let iqs = self.reconcile_stanzas();
        let (active_ms, active_stanzas, active_iqs) = match active {
            Some((t, n, q)) if held => (Some(ms(t)), Some(n), Some(q)),
            _ if converged && tracked => (Some(ms(last_change)), Some(total.stanzas), Some(iqs)),
            _ => (None, None, None),
        };
        let stats = self.net.stats();
        let mut directions = Vec::new();
        let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (from, to, kind, c) in stats.iter() {
            if c.stanzas == 0 {
                continue;
            }
            match directions.last_mut() {
                Some((f, t, s, b)) if f == from && t == to => {
                    *s += c.stanzas;
                    *b += c.bytes;
                }
                _ => directions.push((from.to_owned(), to.to_owned(), c.stanzas, c.bytes)),
            }
            let e = kinds.entry(kind.to_owned()).or_default();
            e.0 += c.stanzas;
            e.1 += c.bytes;
        }
        Phase {
            stanzas: total.stanzas,
            bytes: total.bytes,
            round_trips: self.net.round_trips(),
            directions,
            kinds: kinds.into_iter().map(|(k, (s, b))| (k, s, b)).collect(),
            converged,
            diff,
            sim_ms_to_converge: converged.then(|| ms(last_change)),
            sim_ms_to_active_synced: active_ms,
            stanzas_to_active_synced: active_stanzas,
            reconcile_stanzas: iqs,
            reconcile_stanzas_to_active_synced: active_iqs,
            complaints: Vec::new(),
        }
    }

    /// [`World::measure`] without an invariant.
    pub fn measure_plain(&mut self, inputs: impl FnOnce(&mut World)) -> Phase {
        self.measure(inputs, |_| None)
    }
}

/// What one measured phase cost and how it ended.
#[derive(Clone, Debug, Default)]
pub struct Phase {
    /// Stanzas delivered, all directions.
    pub stanzas: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The longest causal chain of stanzas, in round trips.
    pub round_trips: u32,
    /// (from, to, stanzas, bytes) per direction.
    pub directions: Vec<(String, String, u64, u64)>,
    /// (kind, stanzas, bytes) per stanza kind (`sim::stanza_kind`).
    pub kinds: Vec<(String, u64, u64)>,
    /// Every online user is shown exactly what it is entitled to at the end.
    pub converged: bool,
    /// The differences from the truth at the end.
    pub diff: Vec<String>,
    /// Simulated ms from the start of the phase to the last change of any view, if converged
    /// (in a baseline world, whose views are not followed, to the last delivery).
    pub sim_ms_to_converge: Option<u64>,
    /// Simulated ms until the active users' views were right for good.
    pub sim_ms_to_active_synced: Option<u64>,
    /// Stanzas delivered by then.
    pub stanzas_to_active_synced: Option<u64>,
    /// Reconcile queries and answers delivered (the descents and pulls).
    pub reconcile_stanzas: u64,
    /// Reconcile stanzas delivered until the active users' views were right for good.
    pub reconcile_stanzas_to_active_synced: Option<u64>,
    /// What the per-event invariant reported.
    pub complaints: Vec<String>,
}

impl Phase {
    /// The stanzas delivered whose kind (`sim::stanza_kind`) satisfies `kind`.
    pub fn stanzas_of(&self, kind: impl Fn(&str) -> bool) -> u64 {
        self.kinds.iter().filter(|k| kind(&k.0)).map(|k| k.1).sum()
    }

    /// This phase followed by `later`: counts and round trips add up; the end state and the
    /// times are `later`'s (measured from its own start).
    pub fn then(self, later: Phase) -> Phase {
        let mut directions: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
        for (f, t, s, b) in self.directions.into_iter().chain(later.directions) {
            let e = directions.entry((f, t)).or_default();
            e.0 += s;
            e.1 += b;
        }
        let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (k, s, b) in self.kinds.into_iter().chain(later.kinds) {
            let e = kinds.entry(k).or_default();
            e.0 += s;
            e.1 += b;
        }
        let mut complaints = self.complaints;
        complaints.extend(later.complaints);
        Phase {
            stanzas: self.stanzas + later.stanzas,
            bytes: self.bytes + later.bytes,
            round_trips: self.round_trips + later.round_trips,
            directions: directions
                .into_iter()
                .map(|((f, t), (s, b))| (f, t, s, b))
                .collect(),
            kinds: kinds.into_iter().map(|(k, (s, b))| (k, s, b)).collect(),
            complaints,
            ..later
        }
    }
}
