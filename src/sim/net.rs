//! [`Net`]: a deterministic driver of N [`Host`]s over in-memory s2s links, in the style of
//! quinn-proto's `Pair` test driver with turmoil's one-call faults.
//!
//! The event loop is in `drive.rs`, the faults in `faults.rs`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::ops::{Deref, DerefMut};

use minidom::Element;

use crate::sim::drive::{Action, Bounce, Ev};
use crate::sim::faults::Filter;
use crate::sim::host::{Host, SimTime, Transmit};
use crate::sim::link::{Link, LinkConfig, Payload, Status, micros};
use crate::sim::stats::{Classifier, Stats, stanza_kind, wire_len};
use crate::sim::trace::{Event, EventKind};
use crate::workload::SplitMix64;

/// Whether a host is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostState {
    Up,
    Crashed,
    Stopped,
}

/// A host and what the driver knows about it.
pub(crate) struct Slot<H> {
    pub host: H,
    pub domain: String,
    pub state: HostState,
    /// The timer last scheduled, and its generation (older heap entries are stale).
    pub timer: Option<SimTime>,
    pub timer_generation: u64,
    /// Incremented when the host crashes or shuts down: notices for an earlier boot are
    /// not given to the next one.
    pub boot: u64,
    /// The host had an input since the last [`Net::take_touched`].
    pub touched: bool,
}

/// A deterministic network of [`Host`]s over in-memory s2s links.
///
/// # Model
///
/// - A virtual clock ([`Net::now`]) starts at 0 and only moves by jumping to the next event:
///   a delivery (send time + serialisation at the link's bandwidth + latency, FIFO per
///   direction, see [`LinkConfig`]), a host timer ([`Host::poll_timeout`]), an undeliverable
///   notice, or a script action scheduled with [`Net::at`]. Events at the same time run in
///   the order they were scheduled. Nothing reads the wall clock and nothing iterates a hash
///   map: a seed names one run.
/// - After **every** input to a host (a `handle_*` call, `crash`, `shutdown`, `restart`, a
///   script call through [`Net::with_host`] or [`Net::host_mut`]) the driver drains
///   [`Host::poll_transmit`] and queues each stanza on its link, then asks
///   [`Host::poll_timeout`] and (re)schedules the host's timer.
/// - A stanza sent to a peer with no link up (down, partitioned, closing, never connected,
///   unknown) is *refused*: it is counted, and [`Host::handle_undeliverable`] is called as a
///   separate event at the same time (never re-entrantly, so a host that resends on every
///   notice livelocks visibly under [`Net::drive_bounded`] instead of overflowing the stack).
///
/// # Driving
///
/// - [`Net::drive`] runs until **quiescent**: no stanza in flight on an unheld link, no
///   pending notice or script action, and no timer due at or before [`Net::now`]. Timers due
///   later are not fired (hosts may keep periodic timers forever), though a timer that falls
///   between two deliveries fires in its turn. Stanzas on a held link do not count as in
///   flight.
/// - [`Net::drive_until`] / [`Net::drive_for`] run every event (timers included) up to a time,
///   then set the clock to it.
/// - [`Net::drive_bounded`] is [`Net::drive`] that gives up with [`crate::sim::Unbounded`]
///   after a number of events, to catch livelocks.
///
/// # Faults
///
/// One call each: [`Net::partition`] / [`Net::repair`], [`Net::crash`], [`Net::shutdown`],
/// [`Net::restart`], [`Net::hold`] / [`Net::release`], and the [`Net::set_filter`] tamper
/// hook. When a link goes down, [`Host::handle_link_down`] is called on each running end
/// (the end that connected first, then the other), then [`Host::handle_undeliverable`] on
/// the sender of each stanza that was in flight, oldest first per direction; a crashed or
/// stopped host is never told anything.
///
/// # Example
///
/// ```
/// # use presence_sync::sim::{Net, LinkConfig};
/// # fn demo<H: presence_sync::sim::Host>(a: H, b: H) {
/// let mut net = Net::new(7);
/// net.add_host(a); // "a.example"
/// net.add_host(b); // "b.example"
/// net.connect("a.example", "b.example", LinkConfig::default());
/// net.drive();
/// println!("{}", net.stats().table());
/// # }
/// ```
pub struct Net<H: Host> {
    pub(crate) now: SimTime,
    rng: SplitMix64,
    pub(crate) hosts: Vec<Slot<H>>,
    by_domain: BTreeMap<String, usize>,
    pub(crate) links: Vec<Link>,
    by_pair: BTreeMap<(usize, usize), usize>,
    pub(crate) events: BinaryHeap<Reverse<(SimTime, u64, Ev)>>,
    pub(crate) timers: BinaryHeap<Reverse<(SimTime, u64, usize, u64)>>,
    pub(crate) order: u64,
    pub(crate) next_id: u64,
    next_index: u64,
    pub(crate) bounces: BTreeMap<u64, Bounce>,
    pub(crate) actions: BTreeMap<u64, Action<H>>,
    pub(crate) filter: Option<Filter>,
    pub(crate) classifier: Classifier,
    pub(crate) stats: Stats,
    pub(crate) tracing: bool,
    pub(crate) log: Vec<Event>,
    /// Hosts with an input since the last [`Net::take_touched`], each once.
    touched: Vec<usize>,
}

/// Mutable access to one host; when dropped, the driver drains what the host wants to send
/// and reschedules its timer ([`Net::host_mut`]).
pub struct HostMut<'a, H: Host> {
    net: &'a mut Net<H>,
    index: usize,
}

impl<H: Host> Deref for HostMut<'_, H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.net.hosts[self.index].host
    }
}

impl<H: Host> DerefMut for HostMut<'_, H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.net.hosts[self.index].host
    }
}

impl<H: Host> Drop for HostMut<'_, H> {
    fn drop(&mut self) {
        self.net.after_input(self.index, 0);
    }
}

impl<H: Host> Net<H> {
    /// An empty network at time 0; `seed` drives the optional latency jitter.
    pub fn new(seed: u64) -> Net<H> {
        Net {
            now: SimTime::ZERO,
            rng: SplitMix64::new(seed),
            hosts: Vec::new(),
            by_domain: BTreeMap::new(),
            links: Vec::new(),
            by_pair: BTreeMap::new(),
            events: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            order: 0,
            next_id: 0,
            next_index: 0,
            bounces: BTreeMap::new(),
            actions: BTreeMap::new(),
            filter: None,
            classifier: Box::new(stanza_kind),
            stats: Stats::default(),
            tracing: false,
            log: Vec::new(),
            touched: Vec::new(),
        }
    }

    /// Adds a running host, keyed by [`Host::domain`] (which must be new).
    pub fn add_host(&mut self, host: H) {
        let domain = host.domain().to_owned();
        assert!(
            !self.by_domain.contains_key(&domain),
            "host {domain} added twice"
        );
        let index = self.hosts.len();
        self.hosts.push(Slot {
            host,
            domain: domain.clone(),
            state: HostState::Up,
            timer: None,
            timer_generation: 0,
            boot: 0,
            touched: false,
        });
        self.by_domain.insert(domain, index);
        self.after_input(index, 0);
    }

    /// Connects two hosts. If `config.up`, the link comes up now: [`Host::handle_link_up`] on
    /// `a`, then on `b` (each drained in turn).
    pub fn connect(&mut self, a: &str, b: &str, config: LinkConfig) {
        let (ia, ib) = (self.index(a), self.index(b));
        assert_ne!(ia, ib, "cannot link {a} to itself");
        let key = (ia.min(ib), ia.max(ib));
        assert!(
            !self.by_pair.contains_key(&key),
            "{a} and {b} are already connected"
        );
        let l = self.links.len();
        self.links.push(Link::new(ia, ib, config));
        self.by_pair.insert(key, l);
        self.try_up(l);
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The host serving `domain` (panics if there is none).
    pub fn host(&self, domain: &str) -> &H {
        &self.hosts[self.index(domain)].host
    }

    /// Mutable access to a host; its transmits are drained when the guard is dropped. Prefer
    /// [`Net::with_host`], which also passes the time.
    pub fn host_mut(&mut self, domain: &str) -> HostMut<'_, H> {
        let index = self.index(domain);
        HostMut { net: self, index }
    }

    /// Calls `f` with a host and the current time (a script input such as a login), then
    /// drains what the host wants to send (causal depth 1) and reschedules its timer.
    pub fn with_host<R>(&mut self, domain: &str, f: impl FnOnce(&mut H, SimTime) -> R) -> R {
        let index = self.index(domain);
        let result = f(&mut self.hosts[index].host, self.now);
        self.after_input(index, 0);
        result
    }

    /// The host at `index` in [`Net::hosts`] order (panics if there is none).
    pub fn host_at(&self, index: usize) -> &H {
        &self.hosts[index].host
    }

    /// The indexes (in [`Net::hosts`] order) of the hosts that had an input since the last
    /// call, each once: what an observer after every event has to look at again, without
    /// visiting every host (a hub with many peers).
    pub fn take_touched(&mut self) -> Vec<usize> {
        for &h in &self.touched {
            self.hosts[h].touched = false;
        }
        std::mem::take(&mut self.touched)
    }

    /// Every host, in the order they were added.
    pub fn hosts(&self) -> impl Iterator<Item = &H> {
        self.hosts.iter().map(|slot| &slot.host)
    }

    /// The domains, in name order.
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.by_domain.keys().map(String::as_str)
    }

    /// Whether `domain` is running (not crashed or shut down).
    pub fn is_running(&self, domain: &str) -> bool {
        self.hosts[self.index(domain)].state == HostState::Up
    }

    /// Whether the link between `a` and `b` carries stanzas both ways.
    pub fn is_link_up(&self, a: &str, b: &str) -> bool {
        self.links[self.link(a, b)].status == Status::Up
    }

    /// Stanzas in flight from `from` to `to` (held ones included).
    pub fn in_flight(&self, from: &str, to: &str) -> usize {
        let link = &self.links[self.link(from, to)];
        let dir = link.dir_from(self.index(from));
        let queue = &link.dirs[dir].queue;
        queue
            .iter()
            .filter(|i| matches!(i.payload, Payload::Stanza(_)))
            .count()
    }

    /// How many stanzas have gone on a link so far: the next stanza's index.
    pub fn sent_count(&self) -> u64 {
        self.next_index
    }

    /// Counts since the start or the last [`Net::reset_stats`].
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Starts a new measurement period: counts and depth back to zero.
    pub fn reset_stats(&mut self) {
        self.stats.reset();
    }

    /// The longest causal chain of stanzas delivered since the last reset.
    pub fn max_depth(&self) -> u32 {
        self.stats.max_depth()
    }

    /// `ceil(max_depth / 2)`.
    pub fn round_trips(&self) -> u32 {
        self.stats.round_trips()
    }

    /// Replaces the stanza classifier (default [`stanza_kind`]).
    pub fn set_classifier(&mut self, classifier: impl Fn(&Element) -> String + 'static) {
        self.classifier = Box::new(classifier);
    }

    /// Turns the event log on or off (off by default).
    pub fn trace(&mut self, on: bool) {
        self.tracing = on;
    }

    /// The event log so far.
    pub fn events(&self) -> &[Event] {
        &self.log
    }

    /// Takes the event log, leaving it empty.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.log)
    }

    // ---- internals ----

    pub(crate) fn index(&self, domain: &str) -> usize {
        match self.by_domain.get(domain) {
            Some(&i) => i,
            None => panic!("no host {domain}"),
        }
    }

    pub(crate) fn link(&self, a: &str, b: &str) -> usize {
        let (ia, ib) = (self.index(a), self.index(b));
        match self.by_pair.get(&(ia.min(ib), ia.max(ib))) {
            Some(&l) => l,
            None => panic!("{a} and {b} are not connected"),
        }
    }

    /// The links of host `h`, in the order they were connected.
    pub(crate) fn links_of(&self, h: usize) -> Vec<usize> {
        (0..self.links.len())
            .filter(|&l| self.links[l].ends.contains(&h))
            .collect()
    }

    /// Drains host `h` after an input caused by a stanza of depth `cause` (0: no stanza),
    /// then reschedules its timer. A host that is not running sends nothing: whatever it
    /// queued is discarded.
    pub(crate) fn after_input(&mut self, h: usize, cause: u32) {
        if !self.hosts[h].touched {
            self.hosts[h].touched = true;
            self.touched.push(h);
        }
        if self.hosts[h].state != HostState::Up {
            while self.hosts[h].host.poll_transmit().is_some() {}
            return;
        }
        while let Some(transmit) = self.hosts[h].host.poll_transmit() {
            self.send(h, transmit, cause.saturating_add(1));
        }
        let slot = &mut self.hosts[h];
        let want = slot.host.poll_timeout();
        if want != slot.timer {
            slot.timer = want;
            slot.timer_generation += 1;
            if let Some(at) = want {
                let generation = slot.timer_generation;
                self.order += 1;
                self.timers
                    .push(Reverse((at.max(self.now), self.order, h, generation)));
            }
        }
    }

    fn send(&mut self, from: usize, transmit: Transmit, depth: u32) {
        let Transmit { peer, stanza } = transmit;
        let to = self.by_domain.get(&peer).copied();
        let link = to.and_then(|to| self.by_pair.get(&(from.min(to), from.max(to))).copied());
        let (Some(to), Some(l)) = (to, link) else {
            return self.refuse(from, peer, stanza);
        };
        if self.links[l].status != Status::Up {
            return self.refuse(from, peer, stanza);
        }
        let size = wire_len(&stanza);
        let index = self.next_index;
        self.next_index += 1;
        let extra = match micros(self.links[l].config.jitter) {
            0 => 0,
            jitter => self.rng.below(jitter + 1),
        };
        if self.tracing {
            let kind = (self.classifier)(&stanza);
            self.record(EventKind::Sent, from, Some(to), Some(kind), Some(index));
        }
        let link = &mut self.links[l];
        let dir = link.dir_from(from);
        let was_empty = link.dirs[dir].queue.is_empty();
        let payload = Payload::Stanza(stanza);
        link.dirs[dir].enqueue(&link.config, self.now, extra, index, depth, size, payload);
        if was_empty {
            self.schedule_front(l, dir);
        }
    }

    fn refuse(&mut self, from: usize, peer: String, stanza: Element) {
        let kind = (self.classifier)(&stanza);
        let from_domain = &self.hosts[from].domain;
        self.stats
            .count(from_domain, &peer, &kind, |c| c.refused += 1);
        if self.tracing {
            self.log.push(Event {
                time: self.now,
                kind: EventKind::Refused,
                from: from_domain.clone(),
                to: Some(peer.clone()),
                stanza: Some(kind),
                index: None,
            });
        }
        let id = self.fresh_id();
        self.bounces.insert(
            id,
            Bounce {
                from,
                boot: self.hosts[from].boot,
                to: peer,
                stanza,
            },
        );
        self.push_event(self.now, Ev::Bounce(id));
    }

    /// (Re)schedules the delivery of the front of a direction, invalidating any older one.
    pub(crate) fn schedule_front(&mut self, l: usize, dir: usize) {
        let d = &mut self.links[l].dirs[dir];
        d.generation += 1;
        let generation = d.generation;
        if d.held {
            return;
        }
        if let Some(front) = d.queue.front() {
            let at = front.arrival.max(self.now);
            self.push_event(
                at,
                Ev::Deliver {
                    link: l,
                    dir,
                    generation,
                },
            );
        }
    }

    pub(crate) fn record(
        &mut self,
        kind: EventKind,
        from: usize,
        to: Option<usize>,
        stanza: Option<String>,
        index: Option<u64>,
    ) {
        if self.tracing {
            self.log.push(Event {
                time: self.now,
                kind,
                from: self.hosts[from].domain.clone(),
                to: to.map(|t| self.hosts[t].domain.clone()),
                stanza,
                index,
            });
        }
    }
}

/// `(&slots[a], &mut slots[b])` for `a != b`.
pub(crate) fn pair<H>(slots: &mut [Slot<H>], a: usize, b: usize) -> (&Slot<H>, &mut Slot<H>) {
    assert_ne!(a, b, "a link joins two different hosts");
    if a < b {
        let (left, right) = slots.split_at_mut(b);
        (&left[a], &mut right[0])
    } else {
        let (left, right) = slots.split_at_mut(a);
        (&right[0], &mut left[b])
    }
}
