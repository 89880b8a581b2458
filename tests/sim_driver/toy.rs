//! The toy host of the driver tests and the helpers that build stanzas and nets.

use std::collections::{BTreeSet, VecDeque};

use minidom::Element;
use presence_sync::sim::{Host, LinkConfig, Net, SimTime, Transmit};

pub const A: &str = "a.example";
pub const B: &str = "b.example";
pub const C: &str = "c.example";

pub fn xml(text: &str) -> Element {
    text.parse().expect("test XML parses")
}

pub fn message(id: &str) -> Element {
    xml(&format!("<message xmlns='jabber:server' id='{id}'/>"))
}

pub fn iq(ty: &str, id: &str) -> Element {
    xml(&format!(
        "<iq xmlns='jabber:server' type='{ty}' id='{id}'/>"
    ))
}

pub fn ms(t: u64) -> SimTime {
    SimTime::from_millis(t)
}

/// A toy server: logs every callback, and optionally echoes iq gets, keeps a ping chain going,
/// sends a burst of messages on each link up, ticks a periodic timer, says goodbye on shutdown,
/// or resends what bounces.
#[derive(Default)]
pub struct Toy {
    pub domain: String,
    pub out: VecDeque<Transmit>,
    pub log: Vec<String>,
    pub got: Vec<(SimTime, String, Element)>,
    pub bounced: Vec<(SimTime, String, Element)>,
    pub peers_up: BTreeSet<String>,
    /// Answer `<iq type='get'/>` with a result.
    pub echo: bool,
    /// On a result, send another get while this is positive (u32::MAX: forever).
    pub pings: u32,
    /// Messages `m0`.. sent to a peer whenever its link comes up.
    pub burst: u32,
    /// Timer period in milliseconds (first tick one period after boot).
    pub period: Option<u64>,
    pub next_tick: Option<SimTime>,
    pub ticks: u32,
    /// On shutdown, send `<message id='bye'><shutdown/></message>` to every peer up.
    pub goodbye: bool,
    /// Send again whatever is reported undeliverable.
    pub resend: bool,
}

impl Toy {
    pub fn new(domain: &str) -> Toy {
        Toy {
            domain: domain.into(),
            ..Toy::default()
        }
    }

    pub fn ticking(mut self, period_ms: u64) -> Toy {
        self.period = Some(period_ms);
        self.next_tick = Some(ms(period_ms));
        self
    }

    pub fn send(&mut self, peer: &str, stanza: Element) {
        self.out.push_back(Transmit {
            peer: peer.into(),
            stanza,
        });
    }

    pub fn note(&mut self, now: SimTime, what: String) {
        self.log.push(format!("{} {what}", now.as_millis()));
    }

    /// `id` of each stanza received, in order.
    pub fn ids(&self) -> Vec<String> {
        self.got.iter().map(|(_, _, s)| id(s)).collect()
    }

    /// Arrival times of the stanzas received, in microseconds.
    pub fn times(&self) -> Vec<u64> {
        self.got.iter().map(|(t, _, _)| t.0).collect()
    }

    pub fn bounced_ids(&self) -> Vec<String> {
        self.bounced.iter().map(|(_, _, s)| id(s)).collect()
    }
}

pub fn id(stanza: &Element) -> String {
    stanza.attr("id").unwrap_or("").to_owned()
}

impl Host for Toy {
    fn domain(&self) -> &str {
        &self.domain
    }

    fn handle_link_up(&mut self, now: SimTime, peer: &str, _features: &[Element]) {
        self.note(now, format!("up {peer}"));
        self.peers_up.insert(peer.into());
        for i in 0..self.burst {
            self.send(peer, message(&format!("m{i}")));
        }
    }

    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        self.note(now, format!("down {peer}"));
        self.peers_up.remove(peer);
    }

    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.note(now, format!("got {peer} {}", id(&stanza)));
        match stanza.attr("type") {
            Some("get") if self.echo => self.send(peer, iq("result", &id(&stanza))),
            Some("result") if self.pings > 0 => {
                if self.pings != u32::MAX {
                    self.pings -= 1;
                }
                let n: u32 = id(&stanza)[1..].parse().expect("ping ids are p<n>");
                self.send(peer, iq("get", &format!("p{}", n + 1)));
            }
            _ => {}
        }
        self.got.push((now, peer.into(), stanza));
    }

    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        self.note(now, format!("undeliverable {peer} {}", id(&stanza)));
        if self.resend {
            self.send(peer, stanza.clone());
        }
        self.bounced.push((now, peer.into(), stanza));
    }

    fn handle_timeout(&mut self, now: SimTime) {
        self.ticks += 1;
        self.next_tick = self.period.map(|p| now.plus_micros(p * 1000));
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn poll_timeout(&self) -> Option<SimTime> {
        self.next_tick
    }

    fn crash(&mut self, now: SimTime) {
        self.note(now, "crash".into());
        self.out.clear();
        self.peers_up.clear();
        self.next_tick = None;
    }

    fn shutdown(&mut self, now: SimTime) {
        self.note(now, "shutdown".into());
        if self.goodbye {
            let bye = "<message xmlns='jabber:server' id='bye'><shutdown xmlns='urn:x'/></message>";
            for peer in std::mem::take(&mut self.peers_up) {
                self.send(&peer, xml(bye));
            }
        }
        self.next_tick = None;
    }

    fn restart(&mut self, now: SimTime) {
        self.note(now, "restart".into());
        self.next_tick = self.period.map(|p| now.plus_micros(p * 1000));
    }
}

pub fn net_of(hosts: impl IntoIterator<Item = Toy>) -> Net<Toy> {
    let mut net = Net::new(1);
    for host in hosts {
        net.add_host(host);
    }
    net
}

/// A and B connected with `config`; A sends a burst of `burst` messages on link up.
pub fn burst_pair(burst: u32, config: LinkConfig) -> Net<Toy> {
    let mut net = net_of([
        Toy {
            burst,
            ..Toy::new(A)
        },
        Toy::new(B),
    ]);
    net.connect(A, B, config);
    net
}
