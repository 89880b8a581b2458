//! The federation of a wire run: the server under test and its users, the suite's peer and
//! its users, and the two relays between them that capture and cut the s2s link.
//!
//! ```text
//!  subject's users ──c2s──► server under test ──s2s──► relay `outgoing` (peer.listen) ──► suite's peer
//!                                  ▲                                                       │
//!                                  └────────────── relay `incoming` ◄──────────s2s─────────┘
//!  peer's users ──c2s──► suite's peer
//! ```
//!
//! The set-up ([`Wire::set_up`]) makes `users` accounts on each side, logs everyone in with
//! available presence, and subscribes them through the RFC 6121 §3 flows: each subject user
//! and the peer user of the same index share a mutual subscription, each subject user
//! follows the next peer user, and each peer user follows the subject user two further on.

use std::time::{Duration, Instant};

use tokio_xmpp::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::{Show, Type as PresenceType};
use tokio_xmpp::parsers::roster::Subscription;

use super::Result;
use super::client::{Client, Received};
use super::control::{Account, Subject};
use super::peer::{EmbeddedPeer, Mode};
use super::people::Person;
use super::records::{self, Event, Mark};
use super::relay::{Gate, Relay};
use super::target::Target;
use crate::conformance::record::{Record, RecordKind};

/// How long the views may take to converge after a step of a scenario.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// The shows the set-up gives users in turn (`None`: plain available).
const SHOWS: [Option<Show>; 3] = [None, Some(Show::Away), Some(Show::Chat)];

/// The federation of a wire run (see the [module docs](self)).
pub struct Wire {
    /// The target.
    pub target: Target,
    /// The server under test.
    pub subject: Subject,
    /// The suite's peer.
    pub peer: EmbeddedPeer,
    /// The subject's stream to the peer.
    pub outgoing: Relay,
    /// The peer's stream to the subject.
    pub incoming: Relay,
    /// The gate both relays share: closed, the link holds everything in flight.
    pub gate: Gate,
    /// The subject's users.
    pub ours: Vec<Person>,
    /// The peer's users.
    pub theirs: Vec<Person>,
    accounts: (Vec<Account>, Vec<Account>),
    /// When the run started (time 0 of the records).
    pub start: Instant,
    /// Crashes, stops and starts of the subject, as the suite caused them.
    pub events: Vec<Event>,
    /// Whether the subject presented a cache of the peer in its first hello after its
    /// graceful restart, i.e. persists caches (XEP §Persistence of Epochs and Caches); None
    /// until `graceful-restart` has run.
    pub keeps_caches: Option<bool>,
}

impl Wire {
    /// Starts the suite's peer and the relays, and waits for the subject to listen.
    ///
    /// # Errors
    /// An address cannot be bound, the peer does not start, or the subject does not listen.
    pub async fn new(target: &Target, work: &std::path::Path) -> Result<Wire> {
        let peer_ip = target.peer.listen.ip();
        let gate = Gate::default();
        let incoming = Relay::with_gate(
            std::net::SocketAddr::new(peer_ip, 0),
            target.s2s,
            gate.clone(),
        )
        .await?;
        let mut peer = EmbeddedPeer::new(
            &target.peer.domain,
            peer_ip,
            &target.domain,
            incoming.listen(),
            work,
        );
        let bound = peer.start(Mode::Sync).await?;
        let outgoing = Relay::with_gate(target.peer.listen, bound.s2s, gate.clone()).await?;
        let subject = Subject::new(target, work);
        subject.ready().await?;
        Ok(Wire {
            target: target.clone(),
            subject,
            peer,
            outgoing,
            incoming,
            gate,
            ours: Vec::new(),
            theirs: Vec::new(),
            accounts: (Vec::new(), Vec::new()),
            start: Instant::now(),
            events: Vec::new(),
            keeps_caches: None,
        })
    }

    fn peer_c2s(&self) -> Result<std::net::SocketAddr> {
        self.peer
            .bound()
            .and_then(|b| b.c2s)
            .ok_or_else(|| "the suite's peer has no c2s listener".into())
    }

    /// Makes the accounts, logs everyone in, subscribes them and waits for the views.
    ///
    /// # Errors
    /// Provisioning, a login or a subscription flow failed.
    pub async fn set_up(&mut self, users: usize, tag: &str) -> Result<Duration> {
        let ours = self.subject.provision(users, tag).await?;
        let peer_c2s = self.peer_c2s()?;
        let mut theirs = Vec::new();
        for i in 1..=users {
            let jid = BareJid::new(&format!("peer-{tag}-{i}@{}", self.target.peer.domain))
                .map_err(|e| format!("peer account: {e}"))?;
            let password = format!("pw-{tag}-{i}");
            Client::register(peer_c2s, &jid, &password).await?;
            theirs.push(Account { jid, password });
        }
        self.accounts = (ours, theirs);
        self.log_in_ours().await?;
        self.log_in_theirs().await?;
        // RFC 6121 §3: request, approve, and the mirror for mutual subscriptions.
        let n = users;
        let mut wanted: Vec<(bool, usize, usize)> = Vec::new(); // (subject user follows?, ours, theirs)
        for i in 0..n {
            wanted.push((true, i, i));
            wanted.push((false, i, i));
            wanted.push((true, i, (i + 1) % n));
            wanted.push((false, (i + 2) % n, i));
        }
        wanted.sort_unstable();
        wanted.dedup();
        for &pair in &wanted {
            self.ask(pair)?;
        }
        for &pair in &wanted {
            self.approve(pair).await?;
        }
        for &(ours_follows, o, t) in &wanted {
            let (person, contact) = if ours_follows {
                (&mut self.ours[o], self.theirs[t].bare())
            } else {
                (&mut self.theirs[t], self.ours[o].bare())
            };
            let started = Instant::now();
            loop {
                let roster = person.client.roster().await?;
                let sees = roster.iter().any(|item| {
                    item.jid == contact
                        && matches!(item.subscription, Subscription::To | Subscription::Both)
                });
                if sees {
                    break;
                }
                if started.elapsed() > CONVERGE {
                    return Err(format!(
                        "{}'s subscription to {contact} was not approved within {CONVERGE:?}",
                        person.bare()
                    )
                    .into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let started = Instant::now();
        let diffs = self.converge().await?;
        if let Some(first) = diffs.first() {
            return Err(format!(
                "after the set-up, {} views differ; first: {first}",
                diffs.len()
            )
            .into());
        }
        Ok(started.elapsed())
    }

    /// Sends the subscription request of `(ours_asks, o, t)`: subject user `o` asks peer user
    /// `t` if `ours_asks`, the other way round otherwise (RFC 6121 §3.1.1).
    ///
    /// # Errors
    /// The asker's client is gone.
    pub fn ask(&self, (ours_asks, o, t): (bool, usize, usize)) -> Result<()> {
        if ours_asks {
            self.ours[o].client.subscribe(&self.theirs[t].bare())
        } else {
            self.theirs[t].client.subscribe(&self.ours[o].bare())
        }
    }

    /// Waits, at most [`CONVERGE`], for the request of [`Wire::ask`] to reach its contact, who
    /// approves it (RFC 6121 §3.1.4).
    ///
    /// # Errors
    /// The request did not arrive in time, or the contact's client is gone.
    pub async fn approve(&self, (ours_asks, o, t): (bool, usize, usize)) -> Result<()> {
        let (asker, contact) = if ours_asks {
            (self.ours[o].bare(), &self.theirs[t])
        } else {
            (self.theirs[t].bare(), &self.ours[o])
        };
        contact
            .client
            .recorder()
            .wait_until(
                &format!("a subscription request from {asker}"),
                CONVERGE,
                |log| {
                    log.iter().any(|(_, r)| {
                        matches!(r, Received::Presence(p)
                        if p.type_ == PresenceType::Subscribe
                            && p.from.as_ref().is_some_and(|f| f.to_bare() == asker))
                    })
                },
            )
            .await?;
        contact.client.subscribed(&asker)
    }

    /// Waits until every view is right ([`Wire::converge`]) and returns the cost of what
    /// crossed since `mark`, marked converged (with the wall-clock ms since `started`) or
    /// not, and the differences left.
    ///
    /// # Errors
    /// A roster could not be fetched.
    pub async fn converged_phase(
        &mut self,
        mark: &Mark,
        started: Instant,
    ) -> Result<(crate::conformance::world::Phase, Vec<String>)> {
        let diffs = self.converge().await?;
        let mut phase = self.phase_since(mark);
        phase.converged = diffs.is_empty();
        phase.sim_ms_to_converge = phase
            .converged
            .then(|| started.elapsed().as_millis() as u64);
        phase.diff = diffs.clone();
        Ok((phase, diffs))
    }

    /// Logs every subject user in again (a login storm) and sends its presence.
    ///
    /// # Errors
    /// A login failed.
    pub async fn log_in_ours(&mut self) -> Result<()> {
        let addr = self.subject.c2s();
        self.ours = log_in_all(addr, &self.accounts.0, "wire", 0).await?;
        Ok(())
    }

    /// Logs every peer user in again and sends its presence.
    ///
    /// # Errors
    /// A login failed.
    pub async fn log_in_theirs(&mut self) -> Result<()> {
        self.log_in_theirs_but(0).await
    }

    /// Logs every peer user in again; all but the first `silent` send their presence (those
    /// stay unavailable, so that only the end of their old presence can take it away).
    ///
    /// # Errors
    /// A login failed.
    pub async fn log_in_theirs_but(&mut self, silent: usize) -> Result<()> {
        let addr = self.peer_c2s()?;
        self.theirs = log_in_all(addr, &self.accounts.1, "peer", silent).await?;
        Ok(())
    }

    /// The account of the subject's user `i` (as provisioned by the set-up).
    pub fn our_account(&self, i: usize) -> Option<&Account> {
        self.accounts.0.get(i)
    }

    /// Every person, subject users first.
    pub fn people(&mut self) -> Vec<&mut Person> {
        self.ours.iter_mut().chain(self.theirs.iter_mut()).collect()
    }

    /// Waits until every view is right, at most [`CONVERGE`]; the differences left.
    ///
    /// # Errors
    /// A roster could not be fetched.
    pub async fn converge(&mut self) -> Result<Vec<String>> {
        super::people::converge(&mut self.people(), CONVERGE).await
    }

    /// Waits until nothing has crossed the relays for a second (at most 10 s): the answers
    /// to the last requests are in before an audit reads the records.
    pub async fn settle(&self) {
        let started = Instant::now();
        let count = || self.outgoing.stats().captured.len() + self.incoming.stats().captured.len();
        let mut last = (count(), Instant::now());
        while started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = count();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= Duration::from_secs(1) {
                return;
            }
        }
    }

    /// Waits, at most `within`, until a hello answer (an iq result carrying a hello) has
    /// crossed the link, either way, after `since`; true if one did. A subject that is small
    /// for the suite's peer (XEP PS-93) keeps RFC 6121 until the peer's hello, sent only after
    /// the peer's wait (PS-16), starts the session: a check that needs the session waits for
    /// it, since RFC 6121 may set the views right before.
    pub async fn session_after(&self, since: Instant, within: Duration) -> bool {
        let answered = |c: &super::relay::Captured| {
            c.at >= since
                && c.element.name() == "iq"
                && c.element.attr("type") == Some("result")
                && c.element.has_child("hello", crate::wire::ns::PRESENCE_SYNC)
        };
        let started = Instant::now();
        loop {
            let seen = self.outgoing.stats().captured.iter().any(answered)
                || self.incoming.stats().captured.iter().any(answered);
            if seen {
                return true;
            }
            if started.elapsed() >= within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// When the subject last started (its last restart event, or the wire run's start).
    pub fn last_start(&self) -> Instant {
        self.events
            .iter()
            .rev()
            .find(|(_, k)| matches!(k, RecordKind::Restart))
            .map_or(self.start, |(t, _)| *t)
    }

    /// Where the relays stand now.
    pub fn mark(&self) -> Mark {
        Mark::now(&self.outgoing.stats(), &self.incoming.stats())
    }

    /// Records a subject event now.
    pub fn event(&mut self, kind: RecordKind) {
        self.events.push((Instant::now(), kind));
    }

    /// Cuts the s2s link both ways.
    pub async fn cut(&mut self) {
        tokio::join!(self.outgoing.cut(), self.incoming.cut());
    }

    /// Brings the link back, as traffic does: the first user of each side sends a chat
    /// message to the first of the other, which opens each server's stream on demand.
    ///
    /// # Errors
    /// A client is gone.
    pub fn kick(&self) -> Result<()> {
        let (Some(a), Some(b)) = (self.ours.first(), self.theirs.first()) else {
            return Ok(());
        };
        for (from, to) in [(a, b), (b, a)] {
            let m = Message::new_with_type(MessageType::Chat, Some(Jid::from(to.bare())))
                .with_body(Lang::new(), "link check".to_owned());
            from.client.send(m.into())?;
        }
        Ok(())
    }

    /// The subject's records since the link that was up at `mark` came up (so that an
    /// audit of them knows the session it starts in), and everything after.
    pub fn records_since(&self, mark: &Mark) -> Vec<Record> {
        let all = records::records(
            self.start,
            &self.target.peer.domain,
            &self.outgoing.stats(),
            &self.incoming.stats(),
            &self.events,
        );
        let at = crate::sim::SimTime::from_millis(
            mark.at.saturating_duration_since(self.start).as_millis() as u64,
        );
        let first_after = all.iter().position(|r| r.time >= at).unwrap_or(all.len());
        let from = all[..first_after]
            .iter()
            .rposition(|r| {
                matches!(
                    r.kind,
                    RecordKind::LinkUp { .. } | RecordKind::Restart | RecordKind::Crash
                )
            })
            .unwrap_or(0);
        all[from..].to_vec()
    }

    /// The cost of what crossed since `mark`.
    pub fn phase_since(&self, mark: &Mark) -> crate::conformance::world::Phase {
        records::phase(
            &self.target.domain,
            &self.target.peer.domain,
            mark,
            &self.outgoing.stats(),
            &self.incoming.stats(),
        )
    }
}

async fn log_in_all(
    addr: std::net::SocketAddr,
    accounts: &[Account],
    resource: &str,
    silent: usize,
) -> Result<Vec<Person>> {
    let logins = accounts
        .iter()
        .map(|a| Person::login(addr, &a.jid, &a.password, resource));
    let mut people = Vec::new();
    for (i, p) in futures::future::join_all(logins)
        .await
        .into_iter()
        .enumerate()
    {
        let mut p = p?;
        if i >= silent {
            p.available(SHOWS[i % SHOWS.len()].clone())?;
        }
        people.push(p);
    }
    Ok(people)
}
