//! The same federation in the simulator: the model servers `serve` runs, on the deterministic
//! driver, given the same users, rosters, logins and faults as a network test. What the
//! simulator counts per stanza kind is what the wire must carry (XEP's claims are made of the
//! simulator's counts; these tests check them on real streams).

use std::collections::BTreeMap;

use presence_sync::model::{ResourcePresence, Show as ModelShow, Subscription};
use presence_sync::server::{Flavour, Server, SyncSetup};
use presence_sync::sim::{LinkConfig, Net, stanza_kind};
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::presence::Show;

use crate::net::{Direction, RelayStats};

/// Stanzas by kind ([`stanza_kind`]: `iq/set/hello`, `presence`, ...).
pub type Kinds = BTreeMap<String, u64>;

/// Two model servers, as `presence-sync serve` builds them (Prosody flavour, default sync
/// setup), linked.
pub struct Replica {
    /// The driver.
    pub net: Net<Server>,
    a: String,
    b: String,
}

fn model_show(show: &Option<Show>) -> ModelShow {
    match show {
        None => ModelShow::Available,
        Some(Show::Away) => ModelShow::Away,
        Some(Show::Chat) => ModelShow::Chat,
        Some(Show::Dnd) => ModelShow::Dnd,
        Some(Show::Xa) => ModelShow::Xa,
    }
}

fn presence(show: &Option<Show>) -> ResourcePresence {
    ResourcePresence {
        show: model_show(show),
        ..ResourcePresence::default()
    }
}

impl Replica {
    /// `a` and `b` with `users`, each pair of `both` subscribed both ways, the link up and
    /// quiet.
    pub fn new(a: &str, b: &str, users: &[BareJid], both: &[(BareJid, BareJid)]) -> Replica {
        let mut net = Net::new(1);
        for (i, d) in [a, b].into_iter().enumerate() {
            let server = Server::with_sync(d, Flavour::Prosody, SyncSetup::every_peer(), i as u64);
            net.add_host(server);
        }
        for u in users {
            net.with_host(u.domain().as_str(), |s, _| s.add_user(u));
        }
        for (x, y) in both {
            let sub = Subscription::named(presence_sync::model::NamedState::Both);
            net.with_host(x.domain().as_str(), |s, _| s.set_roster_item(x, y, sub));
            net.with_host(y.domain().as_str(), |s, _| s.set_roster_item(y, x, sub));
        }
        net.connect(a, b, LinkConfig::default());
        net.drive();
        Replica {
            net,
            a: a.to_owned(),
            b: b.to_owned(),
        }
    }

    /// `user` logs in on `resource` with `show`.
    pub fn login(&mut self, user: &BareJid, resource: &str, show: Option<Show>) {
        let p = presence(&show);
        self.net
            .with_host(user.domain().as_str(), |s, _| s.login(user, resource, p));
        self.net.drive();
    }

    /// `user`'s `resource` changes its show.
    pub fn set(&mut self, user: &BareJid, resource: &str, show: Option<Show>) {
        let p = presence(&show);
        self.net.with_host(user.domain().as_str(), |s, _| {
            s.set_presence(user, resource, p)
        });
        self.net.drive();
    }

    /// `user`'s `resource` goes unavailable.
    pub fn logout(&mut self, user: &BareJid, resource: &str) {
        self.net
            .with_host(user.domain().as_str(), |s, _| s.logout(user, resource));
        self.net.drive();
    }

    /// Stanzas `from` sent to `to` since the last [`Net::reset_stats`], by kind.
    pub fn kinds(&self, from_a: bool) -> Kinds {
        let (from, to) = if from_a {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        };
        self.net
            .stats()
            .kinds(from, to)
            .map(|(k, c)| (k.to_owned(), c.stanzas))
            .collect()
    }
}

/// The stanzas (presence, message, iq) a relay carried from the connecting server since
/// element `since` of its capture, by kind. Dialback and stream elements are not stanzas:
/// the simulator's links are authenticated streams already.
pub fn wire_kinds(stats: &RelayStats, since: usize) -> Kinds {
    let mut kinds = Kinds::new();
    for c in &stats.captured[since.min(stats.captured.len())..] {
        let (dir, e) = (c.dir, &c.element);
        if dir == Direction::Forward && ["presence", "message", "iq"].contains(&e.name()) {
            *kinds.entry(stanza_kind(e)).or_default() += 1;
        }
    }
    kinds
}
