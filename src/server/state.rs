//! A server's state, split by what survives a restart.
//!
//! [`Persistent`] is what a real server keeps on disk: accounts, i.e. rosters and block lists.
//! [`Volatile`] is everything a process holds in memory: sessions and their presence, what each
//! user's clients have been shown, stanzas waiting to be sent, what the server knows about each
//! peer. A crash drops [`Volatile`]; a restart builds a fresh one from [`Persistent`]
//! ([`Volatile::boot`]). Nothing else lives in a [`super::Server`] except its configuration and
//! the [`LocalStats`] instrumentation, which belongs to the simulation, not to the server.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use jid::BareJid;
use minidom::Element;

use crate::engine::Session;
use crate::model::truth::Resources;
use crate::model::{Account, Epoch};
use crate::sim::{SimTime, Transmit};

/// What survives a restart: the accounts (rosters and XEP-0191 block lists) of local users.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persistent {
    /// Every local user's account.
    pub accounts: BTreeMap<BareJid, Account>,
}

/// How this server talks to one peer domain: the dispatch point for per-peer protocols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PeerMode {
    /// Plain RFC 6121: one stanza per edge (or per XEP-0033 group), nothing on link events.
    #[default]
    Legacy,
    /// The extension (XEP §Sessions): the peer's [`Session`] is in the synchronized or
    /// suspended mode; presence crosses the link at domain level, no probes are sent.
    Sync,
}

/// What the server knows about one peer domain (volatile: forgotten on restart).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// The s2s link is up (the driver said so with `handle_link_up`).
    pub link_up: bool,
    /// The protocol spoken with the peer.
    pub mode: PeerMode,
    /// This server closed the stream with a stream error (PS-71) and reads nothing more from
    /// it until the link comes up again.
    pub stream_closed: bool,
    /// The peer probed a user of this server while no session was established: it applies
    /// RFC 6121 with this server (a small peer, PS-93, or one that fell back, PS-58), so this
    /// server is in the legacy mode with it too, its session kept aside, until a session starts
    /// or the link is lost (PS-66).
    pub probed: bool,
}

/// What the server holds in memory only (crate-internal: read it through the getters of
/// [`super::Server`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct Volatile {
    /// The time of the latest input from the driver.
    pub now: SimTime,
    /// Available resources of each online user (no entry: offline; never an empty map).
    pub online: BTreeMap<BareJid, Resources>,
    /// For each online user, what its clients have been shown: contact → available resources
    /// (no entry: nothing shown, i.e. unavailable).
    pub views: BTreeMap<BareJid, BTreeMap<BareJid, Resources>>,
    /// Stanzas waiting for `poll_transmit`.
    pub outgoing: VecDeque<Transmit>,
    /// Peer domains this boot has dealt with.
    pub peers: BTreeMap<String, Peer>,
    /// This run's epoch (XEP §Epochs, PS-12).
    pub epoch: Epoch,
    /// The extension's session with each peer that advertised it in this boot.
    pub sessions: BTreeMap<String, Session>,
    /// The next timer of each session that has one, indexed by time: the earliest is found
    /// without visiting every session (a server federated with many domains). Kept by
    /// `Server::drain_session`, the step after every input to a session.
    pub timers: BTreeSet<(SimTime, String)>,
    /// Each session's entry in `timers`.
    pub timer_of: HashMap<String, SimTime>,
    /// Online users who are active now (XEP §Priority Ordering).
    pub active: BTreeSet<BareJid>,
    /// Remote contact → local users with a roster item for it: who to serve when a cached
    /// presence of the contact changes. Items are never removed, so neither are entries.
    pub watchers: HashMap<BareJid, BTreeSet<BareJid>>,
    /// Peer domain → (local user, contact of that domain) of every roster item: what a new
    /// session with the peer projects, without a scan of every roster per peer (a server
    /// federated with many domains). Never shrinks, as `watchers`.
    pub domain_items: HashMap<String, BTreeSet<(BareJid, BareJid)>>,
}

impl Volatile {
    /// The state of a freshly booted server: nobody online, nothing shown, no link up. Legacy
    /// servers derive nothing from their persistent state at boot; the sync extension builds
    /// its per-peer digests here.
    pub fn boot(persistent: &Persistent, now: SimTime, epoch: Epoch) -> Volatile {
        let mut v = Volatile {
            now,
            epoch,
            ..Volatile::default()
        };
        // What `watch` records for every roster item, built in bulk: accounts come in order
        // and each roster names a contact once in order, so every contact's list of watchers
        // and every domain's list of items is built sorted and without repeats, and each
        // becomes its set in one bulk build instead of an insertion per roster item.
        let mut lists: HashMap<&BareJid, Vec<BareJid>> = HashMap::new();
        let mut items: HashMap<&str, Vec<(BareJid, BareJid)>> = HashMap::new();
        for (user, account) in &persistent.accounts {
            for (contact, _) in account.roster.iter() {
                if contact.domain() != user.domain() {
                    lists.entry(contact).or_default().push(user.clone());
                    items
                        .entry(contact.domain().as_str())
                        .or_default()
                        .push((user.clone(), contact.clone()));
                }
            }
        }
        v.watchers = lists
            .into_iter()
            .map(|(contact, users)| (contact.clone(), users.into_iter().collect()))
            .collect();
        v.domain_items = items
            .into_iter()
            .map(|(domain, items)| (domain.to_owned(), items.into_iter().collect()))
            .collect();
        v
    }

    /// Records that local `user` has a roster item for remote `contact`.
    pub fn watch(&mut self, user: &BareJid, contact: &BareJid) {
        match self.watchers.get_mut(contact) {
            Some(users) => {
                if !users.contains(user) {
                    users.insert(user.clone());
                }
            }
            None => {
                self.watchers
                    .insert(contact.clone(), BTreeSet::from([user.clone()]));
            }
        }
        let item = (user.clone(), contact.clone());
        if let Some(items) = self.domain_items.get_mut(contact.domain().as_str()) {
            items.insert(item);
        } else {
            self.domain_items
                .insert(contact.domain().to_string(), BTreeSet::from([item]));
        }
    }

    /// The record of `peer`, created (legacy, link down) on first use.
    pub fn peer(&mut self, peer: &str) -> &mut Peer {
        self.peers.entry(peer.to_owned()).or_default()
    }

    /// Number of available resources of `user`.
    pub fn resources(&self, user: &BareJid) -> usize {
        self.online.get(user).map_or(0, |r| r.len())
    }
}

/// A stanza the driver could not deliver (BRIEF §3 row 5: both servers bounce what they could
/// not send; the model records it and shows clients nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Bounce {
    /// When the driver reported it.
    pub at: SimTime,
    /// The peer it was for.
    pub peer: String,
    /// The stanza.
    pub stanza: Element,
}

/// Counters of what the server did locally, for tests and benchmarks. Deliveries count one per
/// stanza per client (available resource) it reaches, as a real server writes one stanza to
/// each session. They survive crashes (they measure the simulation, not the server).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalStats {
    /// Presence (available or unavailable) delivered to local clients.
    pub presence_delivered: u64,
    /// Roster pushes to local clients (RFC 6121 §2.1.6).
    pub roster_pushes: u64,
    /// Subscription stanzas delivered to local clients (requests to approve, approvals,
    /// cancellations; RFC 6121 §3).
    pub subscriptions_delivered: u64,
    /// Presence probes received (local and remote), counted once per probed contact.
    pub probes_received: u64,
    /// `type='error'` presence received from peers.
    pub errors_received: u64,
    /// Received stanzas dropped as invalid, foreign or unexpected.
    pub rejected: u64,
    /// Stanzas the driver reported undeliverable.
    pub bounced: u64,
}
