//! From what crossed the two relays to what the simulation suite works on: the
//! [`Record`]s of the server under test (for the same protocol audit as in simulation) and the
//! costs of a phase ([`Phase`]).
//!
//! The server under test (the *subject*) and the suite's peer open one TCP connection each way
//! (XEP-0220 dialback). The relay `outgoing` carries the subject's own stream: its stanzas
//! (`Forward`) and the peer's stream features (`Backward`). The relay `incoming` carries the
//! peer's stream to the subject: the peer's stanzas (`Forward`) and the subject's stream
//! features (`Backward`). So:
//!
//! - each stanza on `outgoing` is an [`RecordKind::Out`], each on `incoming` an
//!   [`RecordKind::In`];
//! - the subject's link is up from the peer's features on the subject's own stream (it can
//!   send from then on) until that connection ends: a [`RecordKind::LinkUp`] whose features
//!   are the peer's and whose own features are those the subject offered on the peer's
//!   stream (the latest offered by then, or else the next);
//! - crashes, graceful stops and starts are the suite's own actions, recorded when it takes
//!   them.

use std::collections::BTreeMap;
use std::time::Instant;

use minidom::Element;

use super::relay::{Captured, Direction, RelayStats};
use crate::conformance::record::{Record, RecordKind};
use crate::conformance::world::Phase;
use crate::sim::{SimTime, stanza_kind, wire_len};

/// Where each relay's captures and links stood at some moment: a phase is measured from a
/// mark to the end.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    /// The instant.
    pub at: Instant,
    outgoing: usize,
    incoming: usize,
}

impl Mark {
    /// How many elements the `incoming` relay had captured at the mark.
    pub fn incoming_index(&self) -> usize {
        self.incoming
    }

    /// How many elements the `outgoing` relay had captured at the mark.
    pub fn outgoing_index(&self) -> usize {
        self.outgoing
    }

    /// The mark of `now`, after what the relays have captured so far.
    pub fn now(outgoing: &RelayStats, incoming: &RelayStats) -> Mark {
        Mark {
            at: Instant::now(),
            outgoing: outgoing.captured.len(),
            incoming: incoming.captured.len(),
        }
    }
}

/// A subject event the suite caused: [`RecordKind::Crash`], [`RecordKind::Shutdown`] or
/// [`RecordKind::Restart`].
pub type Event = (Instant, RecordKind);

fn is_stanza(e: &Element) -> bool {
    ["presence", "message", "iq"].contains(&e.name())
}

fn is_features(e: &Element) -> bool {
    e.name() == "features" && e.ns() == "http://etherx.jabber.org/streams"
}

fn time(start: Instant, at: Instant) -> SimTime {
    SimTime::from_millis(at.saturating_duration_since(start).as_millis() as u64)
}

/// The subject's records, oldest first, from the relays' captures and the suite's `events`,
/// with times counted from `start`.
pub fn records(
    start: Instant,
    peer: &str,
    outgoing: &RelayStats,
    incoming: &RelayStats,
    events: &[Event],
) -> Vec<Record> {
    enum Item<'a> {
        Out(&'a Captured),
        In(&'a Captured),
        PeerFeatures(&'a Captured),
        LinkEnd(u64),
        Event(&'a RecordKind),
    }
    let own_features: Vec<(Instant, &Element)> = incoming
        .captured
        .iter()
        .filter(|c| c.dir == Direction::Backward && is_features(&c.element))
        .map(|c| (c.at, &c.element))
        .collect();
    let own_at = |t: Instant| -> Vec<Element> {
        let before = own_features.iter().rev().find(|(at, _)| *at <= t);
        let after = own_features.iter().find(|(at, _)| *at > t);
        before
            .or(after)
            .map(|(_, f)| f.children().cloned().collect())
            .unwrap_or_default()
    };
    let mut items: Vec<(Instant, u8, Item<'_>)> = Vec::new();
    for c in &outgoing.captured {
        match c.dir {
            Direction::Forward if is_stanza(&c.element) => items.push((c.at, 1, Item::Out(c))),
            Direction::Backward if is_features(&c.element) => {
                items.push((c.at, 0, Item::PeerFeatures(c)));
            }
            _ => {}
        }
    }
    for c in &incoming.captured {
        if c.dir == Direction::Forward && is_stanza(&c.element) {
            items.push((c.at, 1, Item::In(c)));
        }
    }
    for (n, _, end) in &outgoing.links {
        if let Some(end) = end {
            items.push((*end, 2, Item::LinkEnd(*n)));
        }
    }
    for (at, kind) in events {
        items.push((*at, 0, Item::Event(kind)));
    }
    // Stable: captures of one relay keep their order; at one instant, a link comes up before
    // what crosses it and goes down after.
    items.sort_by_key(|(at, rank, _)| (*at, *rank));
    let mut up: Option<u64> = None;
    let mut out = Vec::new();
    let peer = peer.to_owned();
    for (at, _, item) in items {
        let time = time(start, at);
        let kind = match item {
            Item::Out(c) => RecordKind::Out {
                peer: peer.clone(),
                stanza: c.element.clone(),
            },
            Item::In(c) => RecordKind::In {
                peer: peer.clone(),
                stanza: c.element.clone(),
            },
            Item::PeerFeatures(c) => {
                if up.take().is_some() {
                    out.push(Record {
                        time,
                        kind: RecordKind::LinkDown { peer: peer.clone() },
                    });
                }
                up = Some(c.connection);
                RecordKind::LinkUp {
                    peer: peer.clone(),
                    features: c.element.children().cloned().collect(),
                    own_features: own_at(at),
                }
            }
            Item::LinkEnd(n) => {
                if up != Some(n) {
                    continue;
                }
                up = None;
                RecordKind::LinkDown { peer: peer.clone() }
            }
            Item::Event(kind) => {
                if matches!(kind, RecordKind::Crash | RecordKind::Restart) {
                    up = None;
                }
                kind.clone()
            }
        };
        out.push(Record { time, kind });
    }
    out
}

/// The costs of what crossed between the subject and the peer since `mark` (stanzas only:
/// stream headers, features and dialback are not counted, as in simulation).
///
/// Round trips are the longest chain of stanzas each sent after one from the other side was
/// read, halved and rounded up: an upper bound of the causal chain, since on a wire the suite
/// cannot see which earlier stanza a stanza answers.
pub fn phase(
    subject: &str,
    peer: &str,
    mark: &Mark,
    outgoing: &RelayStats,
    incoming: &RelayStats,
) -> Phase {
    let mut all: Vec<(Instant, bool, &Element)> = Vec::new();
    let sent = outgoing.captured.iter().skip(mark.outgoing);
    let received = incoming.captured.iter().skip(mark.incoming);
    for c in sent.filter(|c| c.dir == Direction::Forward && is_stanza(&c.element)) {
        all.push((c.at, true, &c.element));
    }
    for c in received.filter(|c| c.dir == Direction::Forward && is_stanza(&c.element)) {
        all.push((c.at, false, &c.element));
    }
    all.sort_by_key(|(at, _, _)| *at);
    let mut phase = Phase::default();
    let mut directions = [(0u64, 0u64); 2];
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // depth[side]: the longest chain ending with a stanza sent by that side so far.
    let mut depth = [0u32; 2];
    for (_, from_subject, e) in &all {
        let bytes = wire_len(e);
        let side = usize::from(!*from_subject);
        directions[side].0 += 1;
        directions[side].1 += bytes;
        let kind = kinds.entry(stanza_kind(e)).or_default();
        kind.0 += 1;
        kind.1 += bytes;
        depth[side] = depth[side].max(depth[1 - side] + 1);
        let k = stanza_kind(e);
        if k.contains("/reconcile") {
            phase.reconcile_stanzas += 1;
        }
    }
    phase.stanzas = directions[0].0 + directions[1].0;
    phase.bytes = directions[0].1 + directions[1].1;
    phase.round_trips = depth[0].max(depth[1]).div_ceil(2);
    phase.directions = vec![
        (
            subject.to_owned(),
            peer.to_owned(),
            directions[0].0,
            directions[0].1,
        ),
        (
            peer.to_owned(),
            subject.to_owned(),
            directions[1].0,
            directions[1].1,
        ),
    ];
    phase.kinds = kinds.into_iter().map(|(k, (s, b))| (k, s, b)).collect();
    phase
}

/// The trace of a wire scenario (`conformance --target FILE --trace DIR`): every element
/// that crossed either relay since `mark`, both directions of every connection (stream
/// features and dialback included), and the subject's crashes, stops and starts, in the order
/// they crossed. A line is `time  from → to  connection  element`, time in milliseconds
/// since the run started (`start`); `subject` and `peer` are the domains.
pub fn trace(
    start: Instant,
    subject: &str,
    peer: &str,
    mark: &Mark,
    outgoing: &RelayStats,
    incoming: &RelayStats,
    events: &[Event],
) -> String {
    use std::fmt::Write as _;
    let ms = |at: Instant| at.saturating_duration_since(start).as_secs_f64() * 1000.0;
    let mut lines: Vec<(Instant, String)> = Vec::new();
    // The subject's stream to the peer is relayed by `outgoing`; the peer's by `incoming`.
    for (stats, skip, forward, tag) in [
        (outgoing, mark.outgoing, (subject, peer), "out"),
        (incoming, mark.incoming, (peer, subject), "in"),
    ] {
        for c in stats.captured.iter().skip(skip) {
            let (from, to) = match c.dir {
                Direction::Forward => forward,
                Direction::Backward => (forward.1, forward.0),
            };
            let line = format!(
                "{:>11.3}  {from} → {to}  {tag}#{}  {}",
                ms(c.at),
                c.connection,
                String::from(&c.element)
            );
            lines.push((c.at, line));
        }
    }
    for (at, kind) in events.iter().filter(|(at, _)| *at >= mark.at) {
        let what = match kind {
            RecordKind::Crash => "crashed (SIGKILL)",
            RecordKind::Shutdown => "stopped gracefully",
            RecordKind::Restart => "started",
            _ => continue,
        };
        lines.push((*at, format!("{:>11.3}  {subject} {what}", ms(*at))));
    }
    lines.sort_by_key(|(at, _)| *at);
    let mut out = String::new();
    for (_, line) in lines {
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn el(xml: &str) -> Element {
        xml.parse().expect("test XML")
    }

    fn cap(at: Instant, connection: u64, dir: Direction, xml: &str) -> Captured {
        Captured {
            at,
            connection,
            dir,
            element: el(xml),
        }
    }

    #[test]
    fn links_stanzas_and_events_become_records_in_time_order() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let features = "<features xmlns='http://etherx.jabber.org/streams'><presence-sync xmlns='urn:xmpp:presence-sync:0'/></features>";
        let own = "<features xmlns='http://etherx.jabber.org/streams'><dialback xmlns='urn:xmpp:features:dialback'/></features>";
        let mut outgoing = RelayStats::default();
        outgoing.captured = vec![
            cap(ms(1), 0, Direction::Backward, features),
            cap(
                ms(2),
                0,
                Direction::Forward,
                "<iq xmlns='jabber:server' type='get' id='1'/>",
            ),
        ];
        outgoing.links = vec![(0, ms(0), Some(ms(10)))];
        let mut incoming = RelayStats::default();
        incoming.captured = vec![
            cap(ms(3), 0, Direction::Backward, own),
            cap(
                ms(4),
                0,
                Direction::Forward,
                "<iq xmlns='jabber:server' type='result' id='1'/>",
            ),
        ];
        let events = [(ms(20), RecordKind::Restart)];
        let r = records(t0, "b.test", &outgoing, &incoming, &events);
        let kinds: Vec<&str> = r
            .iter()
            .map(|r| match &r.kind {
                RecordKind::LinkUp { .. } => "up",
                RecordKind::Out { .. } => "out",
                RecordKind::In { .. } => "in",
                RecordKind::LinkDown { .. } => "down",
                RecordKind::Restart => "restart",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["up", "out", "in", "down", "restart"]);
        let RecordKind::LinkUp {
            own_features,
            features,
            ..
        } = &r[0].kind
        else {
            unreachable!()
        };
        assert_eq!(
            own_features.len(),
            1,
            "the subject's features offered later on"
        );
        assert!(features[0].is("presence-sync", "urn:xmpp:presence-sync:0"));
        assert_eq!(r[2].time, SimTime::from_millis(4));

        let mark = Mark {
            at: t0,
            outgoing: 0,
            incoming: 0,
        };
        let p = phase("a.test", "b.test", &mark, &outgoing, &incoming);
        assert_eq!((p.stanzas, p.round_trips), (2, 1));
        assert_eq!(p.directions[0].2, 1);
    }
}
