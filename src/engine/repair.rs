//! Repair of subscription mismatches (XEP §Repair of Subscription Mismatches), as pure
//! decisions.
//!
//! After a descent of the edge set ([`super::edge_sync`]) each server knows every edge only one
//! of the two holds. For each such edge, [`decide`] tells the server whether it must send an
//! RFC 6121 §3 subscription stanza on behalf of its user, and which (PS-61), re-evaluated
//! against the roster item as it is now (PS-63). The table of the XEP, for a pair (p, s):
//!
//! | p's server holds | s's server holds | acting server | stanza                   |
//! |------------------|------------------|---------------|--------------------------|
//! | subscribed       | nothing          | s's           | unsubscribe from s to p  |
//! | subscribed       | pending          | s's           | subscribe from s to p    |
//! | nothing          | pending          | s's           | subscribe from s to p    |
//! | nothing          | subscribed       | p's           | unsubscribed from p to s |
//! | pending          | subscribed       | p's           | unsubscribed from p to s |
//! | pending          | nothing          | p's           | unsubscribed from p to s |
//!
//! Seen from one server with only its own state and the differing edge: the subscriber's
//! server acts when the peer holds a subscribed edge it lacks (`unsubscribe` if it holds
//! nothing, `subscribe` if it holds a pending request) and when the peer lacks its pending
//! edge (`subscribe`); the publisher's server acts when the peer holds a subscribed edge it
//! lacks and when the peer lacks its pending edge (`unsubscribed`). Rows two and five consist
//! of two differing edges that call for the same stanza: [`plan`] sends it once per pair.
//!
//! The stanza is sent through RFC 6121 like any other (PS-59) with a `<repair/>` marker
//! (PS-60). The only local change is [`apply_locally`]: the publisher's server drops the stale
//! request of rows five and six, and never cancels a pre-approval (PS-64).

use std::collections::BTreeSet;

use jid::{BareJid, Jid};
use minidom::Element;
use xmpp_parsers::presence::{Presence, Type};

use crate::model::{Edge, EdgeState, Subscription, SubscriptionStanza};
use crate::wire::{Repair, ServerNs};

/// Which server holds a differing edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// This server holds it and the peer lacks it (`EdgeDiff::only_mine`).
    Mine,
    /// The peer holds it and this server lacks it (`EdgeDiff::only_theirs`).
    Theirs,
}

/// A repair stanza (XEP PS-60, PS-61): an RFC 6121 subscription stanza from the bare JID of a
/// local user to the bare JID of the peer's user, marked with `<repair/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairStanza {
    /// `subscribe`, `unsubscribe` or `unsubscribed`.
    pub kind: SubscriptionStanza,
    /// The local user.
    pub from: BareJid,
    /// The peer's user.
    pub to: BareJid,
}

impl RepairStanza {
    /// The `<presence type='…'><repair/></presence>` to send, in `jabber:server`.
    pub fn to_element(&self) -> Element {
        let type_ = match self.kind {
            SubscriptionStanza::Subscribe => Type::Subscribe,
            SubscriptionStanza::Subscribed => Type::Subscribed,
            SubscriptionStanza::Unsubscribe => Type::Unsubscribe,
            SubscriptionStanza::Unsubscribed => Type::Unsubscribed,
        };
        let p = Presence::new(type_)
            .with_from(Jid::from(self.from.clone()))
            .with_to(Jid::from(self.to.clone()))
            .with_payload(Repair);
        // xmpp-parsers writes every Presence it can hold.
        xso::transform(&ServerNs(p)).expect("a presence serialises")
    }
}

/// The outcome of [`decide`] for one differing edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send this stanza (PS-61).
    Send(RepairStanza),
    /// Nothing to do: the peer's server acts, or this server's current state no longer calls
    /// for the action (PS-63), or the edge does not concern the local domain.
    Nothing,
    /// The peer's edge has a JID that is not in the form this server normalises to: no action,
    /// the operator is told instead (PS-62).
    NotNormalized,
}

/// True if `jid` is in the normalised form this server produces (normalising it again does not
/// change it), XEP PS-62.
pub fn is_normalized(jid: &BareJid) -> bool {
    BareJid::new(jid.as_str()).is_ok_and(|n| n.as_str() == jid.as_str())
}

/// The repair this server (of `local_domain`) owes for one differing `edge`, given who holds it
/// and `current`, the roster item its user has now for the peer's user (None: no item). This is
/// the XEP's table read from one side (PS-61), checked against the current state (PS-63).
pub fn decide(
    local_domain: &str,
    current: Option<&Subscription>,
    edge: &Edge,
    holder: Holder,
) -> Decision {
    if holder == Holder::Theirs
        && !(is_normalized(&edge.publisher) && is_normalized(&edge.subscriber))
    {
        return Decision::NotNormalized;
    }
    let sub = current.copied().unwrap_or_default();
    let (p, s) = (&edge.publisher, &edge.subscriber);
    let send = |kind, from: &BareJid, to: &BareJid| {
        Decision::Send(RepairStanza {
            kind,
            from: from.clone(),
            to: to.clone(),
        })
    };
    use EdgeState::{Pending, Subscribed};
    use SubscriptionStanza::{Subscribe, Unsubscribe, Unsubscribed};
    if s.domain().as_str() == local_domain && p.domain().as_str() != local_domain {
        // The subscriber's server: its edge of the pair is `to` or `pending_out` of s's item.
        match (holder, edge.state) {
            // Rows 1 and 2: the peer vouches for a subscription s does not have.
            (Holder::Theirs, Subscribed) if sub.to() => Decision::Nothing,
            (Holder::Theirs, Subscribed) if sub.pending_out() => send(Subscribe, s, p),
            (Holder::Theirs, Subscribed) => send(Unsubscribe, s, p),
            // Rows 2 and 3: a request the peer lost.
            (Holder::Mine, Pending) if sub.pending_out() => send(Subscribe, s, p),
            _ => Decision::Nothing,
        }
    } else if p.domain().as_str() == local_domain && s.domain().as_str() != local_domain {
        // The publisher's server: its edge is `from` or `pending_in` of p's item.
        match (holder, edge.state) {
            // Rows 4 and 5: a subscription p never approved.
            (Holder::Theirs, Subscribed) if !sub.from() => send(Unsubscribed, p, s),
            // Rows 5 and 6: a stale request of s.
            (Holder::Mine, Pending) if sub.pending_in() => send(Unsubscribed, p, s),
            _ => Decision::Nothing,
        }
    } else {
        Decision::Nothing
    }
}

/// The repairs for a whole diff, at most one stanza per pair (p, s) (PS-64: the two edges of
/// rows two and five lead to the same stanza, sent once). `roster_item(user, contact)` gives
/// the current item of local user `user` for `contact`. Edges the decision refuses as not
/// normalised are returned apart for the operator (PS-62).
pub fn plan<'a>(
    local_domain: &str,
    mut roster_item: impl FnMut(&BareJid, &BareJid) -> Option<Subscription>,
    differing: impl IntoIterator<Item = (&'a Edge, Holder)>,
) -> (Vec<RepairStanza>, Vec<Edge>) {
    let mut seen = BTreeSet::new();
    let (mut stanzas, mut refused) = (Vec::new(), Vec::new());
    for (edge, holder) in differing {
        let local_is_p = edge.publisher.domain().as_str() == local_domain;
        let (user, contact) = if local_is_p {
            (&edge.publisher, &edge.subscriber)
        } else {
            (&edge.subscriber, &edge.publisher)
        };
        let current = roster_item(user, contact);
        match decide(local_domain, current.as_ref(), edge, holder) {
            Decision::Send(stanza) => {
                // Keyed by the pair, not by the stanza's JIDs: u's `subscribe` to v (pair
                // (v, u)) and u's `unsubscribed` to v (pair (u, v)) are different repairs.
                if seen.insert((edge.publisher.clone(), edge.subscriber.clone())) {
                    stanzas.push(stanza);
                }
            }
            Decision::NotNormalized => refused.push(edge.clone()),
            Decision::Nothing => {}
        }
    }
    (stanzas, refused)
}

/// What sending `stanza` changes in the sender's own roster item `sub` (XEP PS-64): only the
/// stale request of rows five and six is dropped; a pre-approval stays (RFC 6121 §3.4), so
/// this is not RFC 6121's outbound `unsubscribed`, which would cancel it.
pub fn apply_locally(stanza: &RepairStanza, sub: &mut Subscription) {
    if stanza.kind == SubscriptionStanza::Unsubscribed && sub.pending_in() {
        // With a pending request there is no pre-approval and no `from` (RFC 6121 A.1 and
        // §3.4), so the outbound transition only drops the request.
        sub.outbound(SubscriptionStanza::Unsubscribed);
    }
}

/// The number of mismatches above which a server suspends repairs toward a peer and alerts
/// its administrator (XEP PS-65): the larger of 1000 and 1% of the edge set (rounded up).
pub fn repair_threshold(edges: u64) -> u64 {
    1000.max(edges.div_ceil(100))
}

/// True if a session that found `mismatches` differing pairs in an edge set of `edges` edges
/// must suspend its repairs (XEP PS-65).
pub fn repairs_suspended(mismatches: u64, edges: u64) -> bool {
    mismatches > repair_threshold(edges)
}
