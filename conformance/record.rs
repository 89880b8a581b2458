//! A recording [`Host`] wrapper: what one implementation under test sent and received, and
//! when, for the protocol audit ([`super::audit`]).
//!
//! [`Recorder`] forwards every call to the wrapped host unchanged and appends a [`Record`] for
//! each stanza transmitted ([`RecordKind::Out`]), received ([`RecordKind::In`]) or bounced
//! back ([`RecordKind::Undeliverable`]), for each link event (with the stream features of
//! both ends, from which the audit tells sync peers from legacy ones), and for each crash,
//! shutdown and restart. Recording can be switched off ([`Recorder::set_recording`]), e.g. for
//! the thousands of small peers of the hub scenario, at the cost of one branch per call.
//!
//! ```
//! use jid::BareJid;
//! use presence_sync::conformance::record::{Recorder, RecordKind};
//! use presence_sync::model::{NamedState, Subscription};
//! use presence_sync::server::{Flavour, Server, SyncSetup};
//! use presence_sync::sim::{LinkConfig, Net};
//!
//! let sync = |d: &str, seed| Server::with_sync(d, Flavour::Prosody, SyncSetup::every_peer(), seed);
//! // One roster item towards b.example: something to synchronize, so a hello (XEP PS-93).
//! let mut a = sync("a.example", 1);
//! let u = BareJid::new("u@a.example").unwrap();
//! a.add_user(&u);
//! a.set_roster_item(&u, &BareJid::new("v@b.example").unwrap(), Subscription::named(NamedState::To));
//! let mut net = Net::new(1);
//! net.add_host(Recorder::new(a));
//! net.add_host(Recorder::new(sync("b.example", 2)));
//! net.connect("a.example", "b.example", LinkConfig::default());
//! net.drive();
//! let records = net.host("a.example").records();
//! assert!(matches!(&records[0].kind, RecordKind::LinkUp { peer, .. } if peer == "b.example"));
//! assert!(records.iter().any(|r| matches!(r.kind, RecordKind::Out { .. })));
//! ```

use std::ops::{Deref, DerefMut};

use minidom::Element;

use crate::sim::{Host, SimTime, Transmit};

/// One thing that happened to the recorded host, at [`Record::time`].
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// When: the time of the call for inputs; for [`RecordKind::Out`], the time of the latest
    /// input the recorder saw (the driver drains a host right after each input, at the same
    /// time; a script call through `DerefMut` tells no time unless made through
    /// [`Recorder::at`]).
    pub time: SimTime,
    /// What.
    pub kind: RecordKind,
}

/// What a [`Record`] records.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordKind {
    /// The host transmitted `stanza` to `peer` ([`Host::poll_transmit`]). Stanzas a crashed
    /// host queues are recorded too, although the driver discards them.
    Out {
        /// The peer domain.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// `stanza` from `peer` reached the host ([`Host::handle_stanza`]).
    In {
        /// The peer domain.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// A stanza the host sent to `peer` was not delivered ([`Host::handle_undeliverable`]).
    Undeliverable {
        /// The peer domain.
        peer: String,
        /// The stanza.
        stanza: Element,
    },
    /// The link to `peer` came up ([`Host::handle_link_up`]).
    LinkUp {
        /// The peer domain.
        peer: String,
        /// The peer's stream features (a `<presence-sync/>` among them makes it a sync peer,
        /// XEP §Stream Feature, PS-2).
        features: Vec<Element>,
        /// The stream features the host itself offered at that time
        /// ([`Host::stream_features`]; PS-3 applies to them).
        own_features: Vec<Element>,
    },
    /// The link to `peer` went down ([`Host::handle_link_down`]).
    LinkDown {
        /// The peer domain.
        peer: String,
    },
    /// The host crashed ([`Host::crash`]).
    Crash,
    /// The host began a clean shutdown ([`Host::shutdown`]); the `Out` records that follow
    /// (until the next `Restart`) are its last stanzas.
    Shutdown,
    /// The host booted again ([`Host::restart`]).
    Restart,
}

/// A [`Host`] that records what the wrapped host does (see the [module docs](self)).
/// `Deref`/`DerefMut` give the wrapped host, for scripts and observation.
#[derive(Clone, Debug)]
pub struct Recorder<H: Host> {
    inner: H,
    records: Vec<Record>,
    recording: bool,
    now: SimTime,
}

impl<H: Host> Recorder<H> {
    /// Wraps `inner`, recording.
    pub fn new(inner: H) -> Recorder<H> {
        Recorder::with_recording(inner, true)
    }

    /// Wraps `inner`, recording or not.
    pub fn with_recording(inner: H, recording: bool) -> Recorder<H> {
        Recorder {
            inner,
            records: Vec::new(),
            recording,
            now: SimTime::ZERO,
        }
    }

    /// Turns recording on or off (records already taken are kept).
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// Whether calls are being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The records so far, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Takes the records so far, leaving none.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// The wrapped host, after telling the recorder that it is now `now`: stanzas it then
    /// transmits are recorded at that time. For scripts:
    /// `net.with_host(d, |h, now| h.at(now).login(..))`.
    pub fn at(&mut self, now: SimTime) -> &mut H {
        self.now = self.now.max(now);
        &mut self.inner
    }

    /// The wrapped host, without the records.
    pub fn into_inner(self) -> H {
        self.inner
    }

    fn note(&mut self, now: SimTime, kind: impl FnOnce() -> RecordKind) {
        self.now = now;
        if self.recording {
            self.records.push(Record {
                time: now,
                kind: kind(),
            });
        }
    }
}

impl<H: Host> Deref for Recorder<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.inner
    }
}

impl<H: Host> DerefMut for Recorder<H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.inner
    }
}

impl<H: Host> Host for Recorder<H> {
    fn domain(&self) -> &str {
        self.inner.domain()
    }

    fn stream_features(&self) -> Vec<Element> {
        self.inner.stream_features()
    }

    fn handle_link_up(&mut self, now: SimTime, peer: &str, features: &[Element]) {
        let own_features = if self.recording {
            self.inner.stream_features()
        } else {
            Vec::new()
        };
        self.note(now, || RecordKind::LinkUp {
            peer: peer.to_owned(),
            features: features.to_vec(),
            own_features,
        });
        self.inner.handle_link_up(now, peer, features);
    }

    fn handle_link_down(&mut self, now: SimTime, peer: &str) {
        self.note(now, || RecordKind::LinkDown {
            peer: peer.to_owned(),
        });
        self.inner.handle_link_down(now, peer);
    }

    fn handle_stanza(&mut self, now: SimTime, peer: &str, stanza: Element) {
        if self.recording {
            let copy = stanza.clone();
            self.note(now, || RecordKind::In {
                peer: peer.to_owned(),
                stanza: copy,
            });
        }
        self.now = now;
        self.inner.handle_stanza(now, peer, stanza);
    }

    fn handle_undeliverable(&mut self, now: SimTime, peer: &str, stanza: Element) {
        if self.recording {
            let copy = stanza.clone();
            self.note(now, || RecordKind::Undeliverable {
                peer: peer.to_owned(),
                stanza: copy,
            });
        }
        self.now = now;
        self.inner.handle_undeliverable(now, peer, stanza);
    }

    fn handle_timeout(&mut self, now: SimTime) {
        self.now = now;
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.inner.poll_transmit()?;
        if self.recording {
            self.records.push(Record {
                time: self.now,
                kind: RecordKind::Out {
                    peer: transmit.peer.clone(),
                    stanza: transmit.stanza.clone(),
                },
            });
        }
        Some(transmit)
    }

    fn poll_timeout(&self) -> Option<SimTime> {
        self.inner.poll_timeout()
    }

    fn crash(&mut self, now: SimTime) {
        self.note(now, || RecordKind::Crash);
        self.inner.crash(now);
    }

    fn shutdown(&mut self, now: SimTime) {
        self.note(now, || RecordKind::Shutdown);
        self.inner.shutdown(now);
    }

    fn restart(&mut self, now: SimTime) {
        self.note(now, || RecordKind::Restart);
        self.inner.restart(now);
    }
}
