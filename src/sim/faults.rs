//! Faults, one call each (turmoil style): partition and repair, crash, shutdown, restart,
//! hold and release, and a filter that can drop, replace or cut the link after any stanza.
//!
//! Order of the hosts' callbacks when a link goes down: [`Host::handle_link_down`] on each
//! running end (the end that connected first, then the other), then, for every stanza that
//! was in flight, oldest first on each direction, [`Host::handle_undeliverable`] on its sender
//! if the sender is running. A crashed or stopped host is never told anything.

use std::fmt;

use minidom::Element;

use crate::sim::host::{Host, SimTime};
use crate::sim::link::{InFlight, Payload, Status};
use crate::sim::net::{HostState, Net, pair};
use crate::sim::trace::EventKind;

/// A stanza about to be delivered, as the filter sees it.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    /// The sending domain.
    pub from: &'a str,
    /// The receiving domain.
    pub to: &'a str,
    /// When it was sent.
    pub sent: SimTime,
    /// Its global sequence number: the `index`-th stanza put on any link (from 0).
    pub index: u64,
    /// The stanza.
    pub stanza: &'a Element,
}

/// What the filter does with a stanza.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Deliver it unchanged.
    Deliver,
    /// Lose it silently (counted as dropped; the sender is not told).
    Drop,
    /// Deliver this element instead (counted under the replacement's kind and length).
    Replace(Element),
    /// Deliver it, then partition the link (as [`Net::partition`]): for "the link drops after
    /// message i" tests. The link stays down until [`Net::repair`].
    DropLinkAfter,
}

/// The tamper hook: called on every stanza when it reaches the front of its direction and is
/// due (after any hold), never on stream closes nor on stream errors ([`crate::sim::Transmit`]).
pub type Filter = Box<dyn FnMut(&Envelope<'_>) -> Verdict>;

/// [`Net::drive_bounded`] ran out of events with work left: probably a livelock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unbounded {
    /// Events run before giving up.
    pub events: u64,
    /// The simulated time then.
    pub now: SimTime,
}

impl fmt::Display for Unbounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "still busy after {} events, at {}",
            self.events, self.now
        )
    }
}

impl std::error::Error for Unbounded {}

impl<H: Host> Net<H> {
    /// Takes the link between `a` and `b` down until [`Net::repair`]: both hosts get
    /// [`Host::handle_link_down`], stanzas in flight are lost and reported to their senders.
    pub fn partition(&mut self, a: &str, b: &str) {
        let l = self.link(a, b);
        let [x, y] = self.links[l].ends;
        self.record(EventKind::Partition, x, Some(y), None, None);
        self.cut_link(l);
    }

    /// Lets the link between `a` and `b` come up again: if both hosts are running, it comes
    /// up now and both get [`Host::handle_link_up`].
    pub fn repair(&mut self, a: &str, b: &str) {
        let l = self.link(a, b);
        let [x, y] = self.links[l].ends;
        self.record(EventKind::Repair, x, Some(y), None, None);
        self.links[l].cut = false;
        self.try_up(l);
    }

    /// Holds both directions of the link between `a` and `b`: stanzas keep arriving but wait
    /// until [`Net::release`]. A hold survives the link going down and up.
    pub fn hold(&mut self, a: &str, b: &str) {
        let l = self.link(a, b);
        let [x, y] = self.links[l].ends;
        self.record(EventKind::Hold, x, Some(y), None, None);
        for dir in &mut self.links[l].dirs {
            dir.held = true;
            dir.generation += 1;
        }
    }

    /// Releases a held link: waiting stanzas are delivered in order, from now on.
    pub fn release(&mut self, a: &str, b: &str) {
        let l = self.link(a, b);
        let [x, y] = self.links[l].ends;
        self.record(EventKind::Release, x, Some(y), None, None);
        for dir in 0..2 {
            self.links[l].dirs[dir].held = false;
            self.schedule_front(l, dir);
        }
    }

    /// Installs the tamper hook (replacing any other).
    pub fn set_filter(&mut self, filter: impl FnMut(&Envelope<'_>) -> Verdict + 'static) {
        self.filter = Some(Box::new(filter));
    }

    /// Removes the tamper hook.
    pub fn clear_filter(&mut self) {
        self.filter = None;
    }

    /// Kills `domain` ([`Host::crash`]): its links go down without telling it, its peers get
    /// [`Host::handle_link_down`], stanzas in flight to or from it are lost (those of
    /// its peers reported to them). Anything it queues after the crash is discarded.
    pub fn crash(&mut self, domain: &str) {
        let h = self.running(domain, "crash");
        self.record(EventKind::Crash, h, None, None, None);
        self.hosts[h].host.crash(self.now);
        self.stop(h, HostState::Crashed);
        for l in self.links_of(h) {
            if self.links[l].status != Status::Down {
                self.take_down(l);
            }
        }
    }

    /// Stops `domain` cleanly ([`Host::shutdown`]): what it sends now goes out on its links
    /// that are up, followed by its stream close; each such link goes down when the close
    /// arrives (the peer gets [`Host::handle_link_down`] then). Stanzas in flight *to* it are
    /// lost and reported to their senders at once, and later ones are refused.
    pub fn shutdown(&mut self, domain: &str) {
        let h = self.running(domain, "shut down");
        self.record(EventKind::Shutdown, h, None, None, None);
        self.hosts[h].host.shutdown(self.now);
        self.after_input(h, 0);
        self.stop(h, HostState::Stopped);
        for l in self.links_of(h) {
            if self.links[l].status != Status::Up {
                continue;
            }
            self.links[l].status = Status::Closing { host: h };
            let out = self.links[l].dir_from(h);
            let lost = self.links[l].dirs[1 - out].clear();
            self.lose(l, 1 - out, lost, None);
            let link = &mut self.links[l];
            let was_empty = link.dirs[out].queue.is_empty();
            // Its index is never shown (closes are not filtered or logged as stanzas).
            let close = Payload::Close;
            link.dirs[out].enqueue(&link.config, self.now, 0, u64::MAX, 0, 0, close);
            if was_empty {
                self.schedule_front(l, out);
            }
        }
    }

    /// Boots `domain` again ([`Host::restart`]), then brings up each of its links whose
    /// peer is running and that is not partitioned: [`Host::handle_link_up`] on both ends
    /// (the end that connected first, then the other). A link whose stream close is still in
    /// flight comes up when the close arrives.
    pub fn restart(&mut self, domain: &str) {
        let h = self.index(domain);
        assert!(
            self.hosts[h].state != HostState::Up,
            "cannot restart {domain}: it is running"
        );
        self.record(EventKind::Restart, h, None, None, None);
        self.hosts[h].state = HostState::Up;
        self.hosts[h].host.restart(self.now);
        self.after_input(h, 0);
        for l in self.links_of(h) {
            self.try_up(l);
        }
    }

    // ---- internals ----

    fn running(&self, domain: &str, what: &str) -> usize {
        let h = self.index(domain);
        assert!(
            self.hosts[h].state == HostState::Up,
            "cannot {what} {domain}: it is not running"
        );
        h
    }

    fn stop(&mut self, h: usize, state: HostState) {
        let slot = &mut self.hosts[h];
        slot.state = state;
        slot.boot += 1;
        slot.timer = None;
        slot.timer_generation += 1;
        // Anything queued after the fact is discarded (the host is no longer running).
        self.after_input(h, 0);
    }

    /// Partitions link `l` (script or [`Verdict::DropLinkAfter`]).
    pub(crate) fn cut_link(&mut self, l: usize) {
        self.links[l].cut = true;
        if self.links[l].status != Status::Down {
            self.take_down(l);
        }
    }

    /// Takes link `l` down now (see the module docs, or [`Net`]'s, for the order of callbacks).
    pub(crate) fn take_down(&mut self, l: usize) {
        let link = &mut self.links[l];
        // A host that shut down (and maybe restarted since) is not told about its old stream.
        let closing = match link.status {
            Status::Closing { host } => Some(host),
            _ => None,
        };
        link.status = Status::Down;
        let lost = [link.dirs[0].clear(), link.dirs[1].clear()];
        let [a, b] = link.ends;
        self.record(EventKind::LinkDown, a, Some(b), None, None);
        for (me, peer) in [(a, b), (b, a)] {
            if self.hosts[me].state == HostState::Up && closing != Some(me) {
                let (peer, me_slot) = pair(&mut self.hosts, peer, me);
                me_slot.host.handle_link_down(self.now, &peer.domain);
                self.after_input(me, 0);
            }
        }
        for (dir, items) in lost.into_iter().enumerate() {
            self.lose(l, dir, items, closing);
        }
    }

    /// Counts stanzas lost on direction `dir` of link `l` and reports them to their sender
    /// (if running, and not the host that shut the link down: `closing`).
    fn lose(
        &mut self,
        l: usize,
        dir: usize,
        items: impl IntoIterator<Item = InFlight>,
        closing: Option<usize>,
    ) {
        let (from, to) = self.links[l].sender_receiver(dir);
        for item in items {
            let Payload::Stanza(stanza) = item.payload else {
                continue;
            };
            let kind = (self.classifier)(&stanza);
            let (f, t) = (&self.hosts[from].domain, &self.hosts[to].domain);
            self.stats.count(f, t, &kind, |c| c.lost += 1);
            let index = Some(item.index);
            self.record(EventKind::Lost, from, Some(to), Some(kind.clone()), index);
            if self.hosts[from].state == HostState::Up && closing != Some(from) {
                self.record(EventKind::Undeliverable, from, Some(to), Some(kind), index);
                let (receiver, sender) = pair(&mut self.hosts, to, from);
                sender
                    .host
                    .handle_undeliverable(self.now, &receiver.domain, stanza);
                self.after_input(from, 0);
            }
        }
    }

    /// Brings link `l` up if it is down, not partitioned, and both hosts are running.
    pub(crate) fn try_up(&mut self, l: usize) {
        let link = &self.links[l];
        let [a, b] = link.ends;
        let running = |h: usize| self.hosts[h].state == HostState::Up;
        if link.status != Status::Down || link.cut || !running(a) || !running(b) {
            return;
        }
        self.links[l].status = Status::Up;
        self.record(EventKind::LinkUp, a, Some(b), None, None);
        let features = [a, b].map(|h| self.hosts[h].host.stream_features());
        for (me, peer, theirs) in [(a, b, &features[1]), (b, a, &features[0])] {
            let (peer, me_slot) = pair(&mut self.hosts, peer, me);
            me_slot.host.handle_link_up(self.now, &peer.domain, theirs);
            self.after_input(me, 0);
        }
    }
}
