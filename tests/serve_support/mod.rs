//! What the `presence-sync serve` network tests share: two servers federating through relays
//! the test controls, people (a client and the presence the test made it send), and the
//! ground-truth check of every online person's view.
#![allow(dead_code)]

pub mod replica;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::net::client::Client;
use crate::net::serve::Serve;
use crate::net::{Lease, Received, Relay, Result, TestDir, lease};
use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::Subscription;

/// The bound of every wait for something to cross the federation.
pub const WAIT: Duration = Duration::from_secs(20);

/// A bare JID from a literal.
pub fn jid(s: &str) -> BareJid {
    // The literals of the tests are valid bare JIDs.
    BareJid::new(s).expect("valid JID literal")
}

/// The binary under test.
pub fn bin() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_presence-sync"))
}

/// The TOML of a server for `domain` on `lease`, reaching `peer` at `peer_addr`.
pub fn config(
    domain: &str,
    lease: &Lease,
    peer: &str,
    peer_addr: SocketAddr,
    extra: &str,
) -> String {
    format!(
        "domain = '{domain}'\nc2s = '{}'\ns2s = '{}'\ndatabase = 'data.sqlite'\n\
         registration = true\nlog = 'presence_sync=debug'\n{extra}\n[peers]\n'{peer}' = '{peer_addr}'\n",
        lease.c2s(),
        lease.s2s()
    )
}

/// a.test and b.test, each reaching the other through its own relay: `ab` carries what a.test
/// sends to b.test (a.test's outgoing stream, and the dialback verifications it makes), `ba`
/// the other way.
pub struct Federation {
    /// a.test's address.
    pub a_lease: Lease,
    /// b.test's address.
    pub b_lease: Lease,
    /// a.test.
    pub a: Server,
    /// b.test.
    pub b: Server,
    /// a.test → b.test.
    pub ab: Relay,
    /// b.test → a.test.
    pub ba: Relay,
    _relay_leases: (Lease, Lease),
}

/// One running server and its address.
pub struct Server {
    /// The process.
    pub serve: Serve,
    c2s: SocketAddr,
}

impl Server {
    /// Its c2s address.
    pub fn c2s(&self) -> SocketAddr {
        self.c2s
    }
}

impl Federation {
    /// Starts both servers (with `extra` TOML lines each) and their relays.
    pub async fn start_with(dir: &TestDir, extra: &str) -> Result<Federation> {
        let (a_lease, b_lease) = (lease()?, lease()?);
        let (ab_lease, ba_lease) = (lease()?, lease()?);
        let ab = Relay::new(ab_lease.s2s(), b_lease.s2s()).await?;
        let ba = Relay::new(ba_lease.s2s(), a_lease.s2s()).await?;
        let a_toml = config("a.test", &a_lease, "b.test", ab_lease.s2s(), extra);
        let b_toml = config("b.test", &b_lease, "a.test", ba_lease.s2s(), extra);
        let ports_a = [a_lease.c2s(), a_lease.s2s()];
        let ports_b = [b_lease.c2s(), b_lease.s2s()];
        let a = Serve::start(bin(), "a.test", dir, &a_toml, &ports_a, WAIT).await?;
        let b = Serve::start(bin(), "b.test", dir, &b_toml, &ports_b, WAIT).await?;
        Ok(Federation {
            a: Server {
                serve: a,
                c2s: a_lease.c2s(),
            },
            b: Server {
                serve: b,
                c2s: b_lease.c2s(),
            },
            a_lease,
            b_lease,
            ab,
            ba,
            _relay_leases: (ab_lease, ba_lease),
        })
    }

    /// Every element that crossed the relays, in order per relay, one line each (for the
    /// message of a failing test).
    pub fn wire(&self) -> String {
        let mut out = String::new();
        for (name, relay) in [("a.test→b.test", &self.ab), ("b.test→a.test", &self.ba)] {
            out.push_str(&format!("--- the stream {name} and its answers ---\n"));
            for (dir, e) in relay.stats().captured {
                let arrow = match dir {
                    crate::net::Direction::Forward => ">>",
                    crate::net::Direction::Backward => "<<",
                };
                let text = String::from(&e);
                let cut: String = text.chars().take(300).collect();
                out.push_str(&format!("{arrow} {cut}\n"));
            }
        }
        out
    }

    /// Starts both servers with the default configuration.
    pub async fn start(dir: &TestDir) -> Result<Federation> {
        Federation::start_with(dir, "").await
    }
}

/// A user the test drives: its client, and what presence the test made it send.
pub struct Person {
    /// The session.
    pub client: Client,
    /// Available (initial presence sent, no unavailable since).
    pub online: bool,
    /// Its show.
    pub show: Option<Show>,
}

impl Person {
    /// Logs `user` in on `addr` (already registered), requests the roster, stays unavailable.
    pub async fn login(
        addr: SocketAddr,
        user: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<Person> {
        let mut client = Client::login(addr, user, password, resource).await?;
        client.roster().await?;
        Ok(Person {
            client,
            online: false,
            show: None,
        })
    }

    /// Registers and logs in.
    pub async fn new(
        addr: SocketAddr,
        user: &BareJid,
        password: &str,
        resource: &str,
    ) -> Result<Person> {
        Client::register(addr, user, password).await?;
        Person::login(addr, user, password, resource).await
    }

    /// Sends available presence with `show`.
    pub fn available(&mut self, show: Option<Show>) -> Result<()> {
        self.client.available(show.clone())?;
        self.online = true;
        self.show = show;
        Ok(())
    }

    /// Sends unavailable presence.
    pub fn unavailable(&mut self) -> Result<()> {
        self.client.unavailable()?;
        self.online = false;
        Ok(())
    }
}

/// What a client shows of its contacts: contact → resource → show (available resources only).
pub type View = BTreeMap<BareJid, BTreeMap<String, Option<Show>>>;

/// The view of a client from everything it received: the last presence of each contact
/// resource, an unavailable from a bare JID taking every resource away.
pub fn shown(client: &Client) -> View {
    let mut view = View::new();
    for (_, r) in client.recorder().snapshot() {
        let Received::Presence(p) = r else { continue };
        let Some(from) = p.from.clone() else { continue };
        let contact = from.to_bare();
        if contact == client.bare() {
            continue;
        }
        match (p.type_.clone(), from.resource()) {
            (PresenceType::None, Some(res)) => {
                view.entry(contact)
                    .or_default()
                    .insert(res.to_string(), p.show.clone());
            }
            (PresenceType::Unavailable, Some(res)) => {
                if let Some(v) = view.get_mut(&contact) {
                    v.remove(res.as_str());
                    if v.is_empty() {
                        view.remove(&contact);
                    }
                }
            }
            (PresenceType::Unavailable, None) => {
                view.remove(&contact);
            }
            _ => {}
        }
    }
    view
}

/// Waits until every online person's view equals the truth: for each roster item with a
/// subscription to the contact (`to` or `both`), the contact's resource and show if the contact
/// is an online person, nothing otherwise. The error gives the first difference.
pub async fn views_match(people: &mut [&mut Person], timeout: Duration) -> Result<Duration> {
    views_match_with(people, &[], timeout).await
}

/// Presence a watcher is shown that the truth does not entitle it to: (watcher, contact,
/// resource, show). What RFC 6121 leaves behind when a legacy server crashes.
pub type Stale = (BareJid, BareJid, String, Option<Show>);

/// [`views_match`], where each watcher's view must also hold exactly the `stale` entries
/// given for it (and nothing else beyond the truth).
pub async fn views_match_with(
    people: &mut [&mut Person],
    stale: &[Stale],
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let mut online: BTreeMap<BareJid, (String, Option<Show>)> = BTreeMap::new();
        for p in people.iter() {
            if p.online {
                let res = p.client.jid().resource().to_string();
                online.insert(p.client.bare(), (res, p.show.clone()));
            }
        }
        let mut first = None;
        for p in people.iter_mut() {
            if !p.online {
                continue;
            }
            let roster = p.client.roster().await?;
            let mut truth = View::new();
            for item in roster {
                let sees = matches!(item.subscription, Subscription::To | Subscription::Both);
                if let (true, Some((res, show))) = (sees, online.get(&item.jid)) {
                    truth
                        .entry(item.jid.clone())
                        .or_default()
                        .insert(res.clone(), show.clone());
                }
            }
            for (watcher, contact, res, show) in stale {
                if *watcher == p.client.bare() {
                    truth
                        .entry(contact.clone())
                        .or_default()
                        .insert(res.clone(), show.clone());
                }
            }
            let view = shown(&p.client);
            if view != truth && first.is_none() {
                first = Some(format!(
                    "{} shows {view:?}, expected {truth:?}",
                    p.client.jid()
                ));
            }
        }
        match first {
            None => return Ok(start.elapsed()),
            Some(diff) if start.elapsed() > timeout => return Err(diff.into()),
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The bare JID of a full or bare JID.
pub fn bare(j: &Jid) -> BareJid {
    j.to_bare()
}
