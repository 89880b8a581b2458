//! The users the suite drives on both domains, and the ground-truth check of what each online
//! user is shown.
//!
//! A [`Person`] is a logged-in client plus what the suite made it do: whether it sent
//! available presence and with which show, and whom it blocked (XEP-0191). The truth of a
//! watcher's view is computed from its roster **as the server returns it** (fetched with a
//! roster get each time) and from those facts: a watcher is shown a contact's resource if its
//! roster item has a subscription `to` or `both` (RFC 6121 §4.4), the contact is online with
//! that resource, and neither blocks the other (XEP-0191 §3.3: a blocked contact's presence
//! is not delivered, and presence is not sent to a contact one blocks). Nothing of the
//! extension enters the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::Subscription;

use super::Result;
use super::client::{Client, Received};

/// A user the suite drives: its client, and what presence and blocks the suite made it send.
pub struct Person {
    /// The session.
    pub client: Client,
    /// Available (initial presence sent, no unavailable since).
    pub online: bool,
    /// Its show.
    pub show: Option<Show>,
    /// The bare JIDs it blocked.
    pub blocked: BTreeSet<BareJid>,
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
            blocked: BTreeSet::new(),
        })
    }

    /// Registers (XEP-0077) and logs in.
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

    /// Sends `change`.
    pub fn change(&mut self, change: Change) -> Result<()> {
        match change {
            Change::Available(show) => self.available(show),
            Change::Unavailable => self.unavailable(),
        }
    }

    /// Blocks `contact` (XEP-0191 §3.3).
    pub async fn block(&mut self, contact: &BareJid) -> Result<()> {
        self.client.block(&[Jid::from(contact.clone())]).await?;
        self.blocked.insert(contact.clone());
        Ok(())
    }

    /// Its bare JID.
    pub fn bare(&self) -> BareJid {
        self.client.bare()
    }
}

/// A presence change a person makes.
#[derive(Clone, Debug)]
pub enum Change {
    /// Available, with this show.
    Available(Option<Show>),
    /// Unavailable.
    Unavailable,
}

/// Each person `i` of `people` for whom `pick(i)` names a change makes it; how many did.
///
/// # Errors
/// A client is gone.
pub fn change_each(people: &mut [Person], pick: impl Fn(usize) -> Option<Change>) -> Result<usize> {
    let mut changed = 0;
    for (i, p) in people.iter_mut().enumerate() {
        if let Some(c) = pick(i) {
            p.change(c)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// What a client shows of its contacts: contact → resource → show (available resources only).
pub type View = BTreeMap<BareJid, BTreeMap<String, Option<Show>>>;

/// The view of a client from everything it received: the last presence of each contact
/// resource, an unavailable from a bare JID taking every resource away, and nothing of what
/// it received before it last sent unavailable presence (a client forgets its contacts'
/// presence then: its server stops delivering presence to it, RFC 6121 §4.5.2).
pub fn shown(client: &Client) -> View {
    let mut view = View::new();
    for (_, r) in client.recorder().snapshot() {
        let p = match r {
            Received::Presence(p) => p,
            Received::WentUnavailable => {
                view.clear();
                continue;
            }
            _ => continue,
        };
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

/// Presence a watcher is shown that the truth does not entitle it to: (watcher, contact,
/// resource, show). What RFC 6121 leaves behind when a legacy server crashes.
pub type Stale = (BareJid, BareJid, String, Option<Show>);

/// Every online person's view against the truth, once: the differences, one line each (empty
/// if every view is right). `stale` entries are expected on top of the truth.
pub async fn differences(people: &mut [&mut Person], stale: &[Stale]) -> Result<Vec<String>> {
    let mut online: BTreeMap<BareJid, (String, Option<Show>)> = BTreeMap::new();
    let mut blocks: BTreeMap<BareJid, BTreeSet<BareJid>> = BTreeMap::new();
    for p in people.iter() {
        blocks.insert(p.bare(), p.blocked.clone());
        if p.online {
            let res = p.client.jid().resource().to_string();
            online.insert(p.bare(), (res, p.show.clone()));
        }
    }
    let blocked = |by: &BareJid, whom: &BareJid| blocks.get(by).is_some_and(|b| b.contains(whom));
    let mut diffs = Vec::new();
    for p in people.iter_mut() {
        if !p.online {
            continue;
        }
        let me = p.bare();
        let roster = p.client.roster().await?;
        let mut truth = View::new();
        for item in roster {
            let sees = matches!(item.subscription, Subscription::To | Subscription::Both);
            let shielded = blocked(&me, &item.jid) || blocked(&item.jid, &me);
            if let (true, false, Some((res, show))) = (sees, shielded, online.get(&item.jid)) {
                truth
                    .entry(item.jid.clone())
                    .or_default()
                    .insert(res.clone(), show.clone());
            }
        }
        for (watcher, contact, res, show) in stale {
            if *watcher == me {
                truth
                    .entry(contact.clone())
                    .or_default()
                    .insert(res.clone(), show.clone());
            }
        }
        let view = shown(&p.client);
        if view != truth {
            diffs.push(format!(
                "{} shows {view:?}, expected {truth:?}",
                p.client.jid()
            ));
        }
    }
    Ok(diffs)
}

/// Waits until every online person's view equals the truth: for each roster item with a
/// subscription to the contact (`to` or `both`), the contact's resource and show if the contact
/// is an online person and neither blocks the other, nothing otherwise. Returns how long it
/// took; the error gives the first difference.
pub async fn views_match(people: &mut [&mut Person], timeout: Duration) -> Result<Duration> {
    views_match_with(people, &[], timeout).await
}

/// [`views_match`], where each watcher's view must also hold exactly the `stale` entries
/// given for it (and nothing else beyond the truth).
pub async fn views_match_with(
    people: &mut [&mut Person],
    stale: &[Stale],
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    let diffs = converge_with(people, stale, timeout).await?;
    match diffs.first() {
        None => Ok(start.elapsed()),
        Some(diff) => Err(format!("{} views differ; first: {diff}", diffs.len()).into()),
    }
}

/// Waits until every online person's view is right, at most `timeout`; returns the
/// differences left (none if it converged).
///
/// # Errors
/// A roster could not be fetched.
pub async fn converge(people: &mut [&mut Person], timeout: Duration) -> Result<Vec<String>> {
    converge_with(people, &[], timeout).await
}

async fn converge_with(
    people: &mut [&mut Person],
    stale: &[Stale],
    timeout: Duration,
) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let diffs = differences(people, stale).await?;
        if diffs.is_empty() || start.elapsed() > timeout {
            return Ok(diffs);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
