//! Three failed sessions in a row (XEP §Link Loss, Resumption and Fallback): the subject
//! refuses three requests of the hostile stream one after the other, which ends a session
//! and then counts two more failures (each refusal of a session's stanza is one, PS-57). A
//! subject that then treats the peer as legacy (a SHOULD) must apply RFC 6121 at once
//! (PS-58): probe the peer contacts of its online users and send its online publishers'
//! presence to their subscribers in the peer domain, as if they had just logged in. The
//! suite compares what crossed with what the rosters call for, then brings new streams,
//! after which the subject may start a session again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio_xmpp::parsers::roster::Subscription;

use super::super::relay::Direction;
use super::super::world::Wire;
use super::{ANSWER, Hostile, POLL, Rename, answered, fresh_session, names};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::hostile::HOSTILE;
use crate::conformance::hostile::cases::{self, Ctx};
use crate::wire::ns;

/// How long the subject may take to send what RFC 6121 asks of it after the third refusal.
const FALLBACK_WAIT: Duration = Duration::from_secs(5);

/// (from, to) bare JIDs.
type Pairs = BTreeSet<(String, String)>;

/// The check of PS-58 after three refusals in a row, and new streams after it.
///
/// # Errors
/// A stream could not be opened, a request was not answered, or the link did not come back.
pub(super) async fn three_failures(w: &mut Wire) -> super::Result<Check> {
    const NAME: &str = "after three failed sessions in a row the subject applies RFC 6121: probes for its online users' contacts at the peer, presence to their subscribers there";
    // New streams first: they reset the subject's count of failures (PS-57).
    let neg = fresh_session(w).await?;
    let (probes, presences) = expected(w).await?;
    let mut s = Hostile::authenticated(w).await?;
    let rename = Rename::new(w);
    let at = Instant::now();
    for i in 0..3 {
        let ctx = Ctx {
            id: format!("{HOSTILE}wire-fallback-{i}"),
            neg: neg.clone(),
            names: names(w),
        };
        let (id, bad) = (&ctx.id, rename.apply(&cases::unknown_attribute(&ctx)));
        let sent = Instant::now();
        s.send(&bad).await?;
        let started = Instant::now();
        while answered(w, &[&s], sent, id).is_empty() && started.elapsed() < ANSWER {
            tokio::time::sleep(POLL).await;
        }
        if answered(w, &[&s], sent, id).is_empty() {
            return Err(format!("request {id} was not answered within {ANSWER:?}").into());
        }
    }
    let seen = |w: &Wire| -> (Pairs, Pairs) {
        let mut p = Pairs::new();
        let mut q = Pairs::new();
        for c in w.outgoing.stats().captured {
            if c.at < at || c.dir != Direction::Forward || c.element.name() != "presence" {
                continue;
            }
            let bare = |a: &str| {
                c.element
                    .attr(a)
                    .map(|j| j.split('/').next().unwrap_or(j).to_owned())
            };
            let (Some(from), Some(to)) = (bare("from"), bare("to")) else {
                continue;
            };
            match c.element.attr("type") {
                Some("probe") => p.insert((from, to)),
                None if !c.element.has_child("fanout", ns::PRESENCE_SYNC) => q.insert((from, to)),
                _ => false,
            };
        }
        (p, q)
    };
    let started = Instant::now();
    let mut got = seen(w);
    while !(probes.is_subset(&got.0) && presences.is_subset(&got.1))
        && started.elapsed() < FALLBACK_WAIT
    {
        tokio::time::sleep(POLL).await;
        got = seen(w);
    }
    drop(s);
    // New streams: the subject may leave the fallback (PS-58, "until the s2s streams are
    // re-established").
    fresh_session(w).await?;
    let reqs = ["PS-58"];
    if got.0.is_empty() && got.1.is_empty() {
        return Ok(Check::with(
            NAME,
            &reqs,
            Outcome::NotExercised(
                "the subject sent no probe and no presence: it did not fall back (a SHOULD)".into(),
            ),
        ));
    }
    let missing: Vec<String> = probes
        .difference(&got.0)
        .map(|(f, t)| format!("no probe from {f} to {t}"))
        .chain(
            presences
                .difference(&got.1)
                .map(|(f, t)| format!("no presence from {f} to {t}")),
        )
        .collect();
    Ok(Check::empty(NAME, &reqs, &missing))
}

/// The probes and presences RFC 6121 calls for at a login of every online subject user: a
/// probe to each peer contact it is subscribed to, its presence to each peer subscriber.
async fn expected(w: &mut Wire) -> super::Result<(Pairs, Pairs)> {
    let peer = w.target.peer.domain.clone();
    let mut probes = Pairs::new();
    let mut presences = Pairs::new();
    for p in w.ours.iter_mut().filter(|p| p.online) {
        let me = p.bare().to_string();
        for item in p.client.roster().await? {
            if item.jid.domain().as_str() != peer {
                continue;
            }
            let contact = item.jid.to_string();
            if matches!(item.subscription, Subscription::To | Subscription::Both) {
                probes.insert((me.clone(), contact.clone()));
            }
            if matches!(item.subscription, Subscription::From | Subscription::Both) {
                presences.insert((me.clone(), contact));
            }
        }
    }
    Ok((probes, presences))
}
