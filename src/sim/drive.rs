//! The event loop of [`Net`]: two heaps (deliveries, notices and script actions; host
//! timers), each entry stamped with a global order so that events at the same time run in the
//! order they were scheduled, and with a generation so that rescheduled or cancelled entries
//! are skipped when they surface instead of being searched for.

use std::cmp::Reverse;
use std::time::Duration;

use minidom::Element;

use crate::sim::faults::{Envelope, Unbounded, Verdict};
use crate::sim::host::{Host, STREAM_ERROR_KIND, SimTime, is_stream_error};
use crate::sim::link::{Payload, micros};
use crate::sim::net::{HostState, Net, pair};
use crate::sim::stats::wire_len;
use crate::sim::trace::{Event, EventKind};

/// A scheduled event other than a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ev {
    /// The front of a direction arrives (live while the direction's generation matches).
    Deliver {
        link: usize,
        dir: usize,
        generation: u64,
    },
    /// An undeliverable notice (key into `bounces`).
    Bounce(u64),
    /// A script action (key into `actions`).
    Action(u64),
}

/// A refused stanza waiting to be reported to its sender.
pub(crate) struct Bounce {
    pub from: usize,
    /// The sender's boot when it sent the stanza.
    pub boot: u64,
    pub to: String,
    pub stanza: Element,
}

pub(crate) type Action<H> = Box<dyn FnOnce(&mut Net<H>)>;

impl<H: Host> Net<H> {
    /// Runs `action` at time `at` (or now, if `at` is past), as an event: it keeps
    /// [`Net::drive`] going until it has run.
    pub fn at(&mut self, at: SimTime, action: impl FnOnce(&mut Net<H>) + 'static) {
        let id = self.fresh_id();
        self.actions.insert(id, Box::new(action));
        self.push_event(at.max(self.now), Ev::Action(id));
    }

    /// Runs until quiescent: no stanza in flight on an unheld link, no pending notice or
    /// script action, and no timer due at or before [`Net::now`] (later timers are not
    /// fired); returns the number of events run. Loops forever on a livelock: see
    /// [`Net::drive_bounded`].
    pub fn drive(&mut self) -> u64 {
        match self.drive_inner(None) {
            Ok(n) => n,
            Err(_) => unreachable!("no limit"),
        }
    }

    /// [`Net::drive`], giving up after `max_events` events (deliveries, timers, notices and
    /// actions) with work left.
    pub fn drive_bounded(&mut self, max_events: u64) -> Result<u64, Unbounded> {
        self.drive_inner(Some(max_events))
    }

    /// Runs every event up to `duration` from now, then sets the clock to that time.
    pub fn drive_for(&mut self, duration: Duration) -> u64 {
        self.drive_until(self.now.plus_micros(micros(duration)))
    }

    /// Runs every event at or before `until` (timers included), then sets the clock to
    /// `until` (if later); returns the number of events run.
    pub fn drive_until(&mut self, until: SimTime) -> u64 {
        let mut n = 0;
        while let Some((at, timer)) = self.next() {
            if at > until {
                break;
            }
            self.step(timer);
            n += 1;
        }
        self.now = self.now.max(until);
        n
    }

    /// Runs the next event (timers included) if it is due at or before `until` and returns
    /// true; otherwise sets the clock to `until` (if later) and returns false. Stepping with
    /// it is [`Net::drive_until`] one event at a time.
    pub fn step_until(&mut self, until: SimTime) -> bool {
        match self.next() {
            Some((at, timer)) if at <= until => {
                self.step(timer);
                true
            }
            _ => {
                self.now = self.now.max(until);
                false
            }
        }
    }

    // ---- internals ----

    pub(crate) fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub(crate) fn push_event(&mut self, at: SimTime, ev: Ev) {
        self.order += 1;
        self.events.push(Reverse((at, self.order, ev)));
    }

    fn live(&self, ev: Ev) -> bool {
        match ev {
            Ev::Deliver {
                link,
                dir,
                generation,
            } => {
                let d = &self.links[link].dirs[dir];
                d.generation == generation && !d.held && !d.queue.is_empty()
            }
            Ev::Bounce(id) => self.bounces.contains_key(&id),
            Ev::Action(id) => self.actions.contains_key(&id),
        }
    }

    /// The next live non-timer event, dropping stale ones.
    fn peek_event(&mut self) -> Option<(SimTime, u64)> {
        while let Some(&Reverse((at, order, ev))) = self.events.peek() {
            if self.live(ev) {
                return Some((at, order));
            }
            self.events.pop();
        }
        None
    }

    /// The next live timer, dropping stale ones.
    fn peek_timer(&mut self) -> Option<(SimTime, u64)> {
        while let Some(&Reverse((at, order, h, generation))) = self.timers.peek() {
            let slot = &self.hosts[h];
            if slot.state == HostState::Up && slot.timer_generation == generation {
                return Some((at, order));
            }
            self.timers.pop();
        }
        None
    }

    /// The time of the next live event and whether it is a timer.
    fn next(&mut self) -> Option<(SimTime, bool)> {
        match (self.peek_event(), self.peek_timer()) {
            (None, None) => None,
            (Some(e), None) => Some((e.0, false)),
            (None, Some(t)) => Some((t.0, true)),
            (Some(e), Some(t)) => Some(if t < e { (t.0, true) } else { (e.0, false) }),
        }
    }

    fn drive_inner(&mut self, limit: Option<u64>) -> Result<u64, Unbounded> {
        let mut n = 0;
        loop {
            let timer = match (self.peek_event(), self.peek_timer()) {
                (None, None) => break,
                (None, Some((at, _))) if at > self.now => break,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(e), Some(t)) => t < e,
            };
            if limit == Some(n) {
                return Err(Unbounded {
                    events: n,
                    now: self.now,
                });
            }
            self.step(timer);
            n += 1;
        }
        Ok(n)
    }

    /// Runs the event just found by `next`/`peek_*`.
    fn step(&mut self, timer: bool) {
        if timer {
            let Some(Reverse((at, _, h, _))) = self.timers.pop() else {
                unreachable!("a live timer was peeked")
            };
            self.now = self.now.max(at);
            let slot = &mut self.hosts[h];
            slot.timer = None;
            slot.timer_generation += 1;
            self.record(EventKind::Timer, h, None, None, None);
            self.hosts[h].host.handle_timeout(self.now);
            self.after_input(h, 0);
            return;
        }
        let Some(Reverse((at, _, ev))) = self.events.pop() else {
            unreachable!("a live event was peeked")
        };
        self.now = self.now.max(at);
        match ev {
            Ev::Deliver { link, dir, .. } => self.deliver(link, dir),
            Ev::Bounce(id) => {
                let Some(Bounce {
                    from,
                    boot,
                    to,
                    stanza,
                }) = self.bounces.remove(&id)
                else {
                    unreachable!("a live notice is stored")
                };
                let slot = &self.hosts[from];
                if slot.state == HostState::Up && slot.boot == boot {
                    if self.tracing {
                        self.log.push(Event {
                            time: self.now,
                            kind: EventKind::Undeliverable,
                            from: self.hosts[from].domain.clone(),
                            to: Some(to.clone()),
                            stanza: Some((self.classifier)(&stanza)),
                            index: None,
                        });
                    }
                    self.hosts[from]
                        .host
                        .handle_undeliverable(self.now, &to, stanza);
                    self.after_input(from, 0);
                }
            }
            Ev::Action(id) => {
                let Some(action) = self.actions.remove(&id) else {
                    unreachable!("a live action is stored")
                };
                if self.tracing {
                    self.log.push(Event {
                        time: self.now,
                        kind: EventKind::Action,
                        from: "script".into(),
                        to: None,
                        stanza: None,
                        index: None,
                    });
                }
                action(self);
            }
        }
    }

    /// Delivers the front of a direction, through the filter.
    fn deliver(&mut self, l: usize, dir: usize) {
        let Some(item) = self.links[l].dirs[dir].queue.pop_front() else {
            unreachable!("a live delivery has a front")
        };
        let (from, to) = self.links[l].sender_receiver(dir);
        self.schedule_front(l, dir);
        let stanza = match item.payload {
            Payload::Close => {
                // The stream close of a host that shut down: the link is gone.
                self.take_down(l);
                self.try_up(l);
                return;
            }
            Payload::Stanza(stanza) => stanza,
        };
        if is_stream_error(&stanza) {
            // The sender closes the stream (see `Transmit`): counted, not given to the
            // receiver as a stanza, and the link is partitioned until the script repairs it.
            let (f, t) = (&self.hosts[from].domain, &self.hosts[to].domain);
            self.stats.count(f, t, STREAM_ERROR_KIND, |c| {
                c.stanzas += 1;
                c.bytes += item.size;
            });
            self.stats.depth(item.depth);
            let kind = Some(STREAM_ERROR_KIND.to_owned());
            self.record(EventKind::Delivered, from, Some(to), kind, Some(item.index));
            self.record(EventKind::Partition, from, Some(to), None, None);
            self.cut_link(l);
            return;
        }
        let verdict = match &mut self.filter {
            None => Verdict::Deliver,
            Some(filter) => filter(&Envelope {
                from: &self.hosts[from].domain,
                to: &self.hosts[to].domain,
                sent: item.sent,
                index: item.index,
                stanza: &stanza,
            }),
        };
        let (stanza, size, event, cut) = match verdict {
            Verdict::Deliver => (stanza, item.size, EventKind::Delivered, false),
            Verdict::DropLinkAfter => (stanza, item.size, EventKind::Delivered, true),
            Verdict::Replace(new) => {
                let size = wire_len(&new);
                (new, size, EventKind::Replaced, false)
            }
            Verdict::Drop => {
                let kind = (self.classifier)(&stanza);
                let (f, t) = (&self.hosts[from].domain, &self.hosts[to].domain);
                self.stats.count(f, t, &kind, |c| c.dropped += 1);
                self.record(
                    EventKind::Dropped,
                    from,
                    Some(to),
                    Some(kind),
                    Some(item.index),
                );
                return;
            }
        };
        debug_assert_eq!(
            self.hosts[to].state,
            HostState::Up,
            "links up only between running hosts"
        );
        let kind = (self.classifier)(&stanza);
        let (f, t) = (&self.hosts[from].domain, &self.hosts[to].domain);
        self.stats.count(f, t, &kind, |c| {
            c.stanzas += 1;
            c.bytes += size;
        });
        self.stats.depth(item.depth);
        self.record(event, from, Some(to), Some(kind), Some(item.index));
        let (sender, receiver) = pair(&mut self.hosts, from, to);
        receiver
            .host
            .handle_stanza(self.now, &sender.domain, stanza);
        self.after_input(to, item.depth);
        if cut {
            self.record(EventKind::Partition, from, Some(to), None, None);
            self.cut_link(l);
        }
    }
}
