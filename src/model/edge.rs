//! Cross-domain subscription edges and their projection from rosters (XEP §Edge Set).
//!
//! An edge `(publisher, subscriber, state)` says that presence of `publisher` flows to
//! `subscriber` (`Subscribed`), or that `subscriber` asked for it and awaits an answer
//! (`Pending`). Each server projects the edges between its domain and one peer domain from its
//! own rosters; when the two servers' rosters agree, both projections are the same set, which
//! is what the edge digest compares. Pre-approvals and block lists are one-sided knowledge and
//! are not part of the set.

use jid::BareJid;

use super::roster::Roster;
use crate::model::encoding::put_lp;

/// Canonical-encoding version byte (XEP §Canonical Encodings).
pub const ENCODING_VERSION: u8 = 0x00;
/// Kind byte of an edge encoding.
pub const KIND_EDGE: u8 = 0x01;

/// The state of a cross-domain edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeState {
    /// The subscriber is subscribed: presence flows.
    Subscribed,
    /// The subscriber asked and the publisher has not answered: no presence flows.
    Pending,
}

impl EdgeState {
    /// The byte used in the canonical encoding.
    pub fn byte(self) -> u8 {
        match self {
            EdgeState::Subscribed => 0x00,
            EdgeState::Pending => 0x01,
        }
    }
}

/// One cross-domain subscription edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// Whose presence flows.
    pub publisher: BareJid,
    /// Who receives it.
    pub subscriber: BareJid,
    /// Subscribed or pending.
    pub state: EdgeState,
}

impl Edge {
    /// A new edge.
    pub fn new(publisher: BareJid, subscriber: BareJid, state: EdgeState) -> Edge {
        Edge {
            publisher,
            subscriber,
            state,
        }
    }

    /// Appends the canonical encoding (XEP §Canonical Encodings):
    /// `0x00 0x01 lp(publisher) lp(subscriber) state`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_edge(
            self.publisher.as_str(),
            self.subscriber.as_str(),
            self.state,
            out,
        );
    }
}

/// The canonical encoding of an edge from its parts (for callers that keep JIDs interned).
pub fn encode_edge(publisher: &str, subscriber: &str, state: EdgeState, out: &mut Vec<u8>) {
    out.push(ENCODING_VERSION);
    out.push(KIND_EDGE);
    put_lp(out, publisher.as_bytes());
    put_lp(out, subscriber.as_bytes());
    out.push(state.byte());
}

/// The edges one local user's roster contributes towards `peer_domain`
/// (XEP §Edge Set, projection rules):
///
/// | item has      | edge                              |
/// |---------------|-----------------------------------|
/// | `from`        | (user, contact, Subscribed)       |
/// | `to`          | (contact, user, Subscribed)       |
/// | `pending_in`  | (user, contact, Pending)          |
/// | `pending_out` | (contact, user, Pending)          |
pub fn project_user<'a>(
    user: &'a BareJid,
    roster: &'a Roster,
    peer_domain: &'a str,
) -> impl Iterator<Item = Edge> + 'a {
    roster
        .iter()
        .filter(move |(contact, _)| {
            contact.domain().as_str() == peer_domain && contact.node().is_some()
        })
        .flat_map(move |(contact, sub)| {
            let mut edges = Vec::with_capacity(2);
            if sub.from() {
                edges.push(Edge::new(
                    user.clone(),
                    contact.clone(),
                    EdgeState::Subscribed,
                ));
            }
            if sub.pending_in() {
                edges.push(Edge::new(user.clone(), contact.clone(), EdgeState::Pending));
            }
            if sub.to() {
                edges.push(Edge::new(
                    contact.clone(),
                    user.clone(),
                    EdgeState::Subscribed,
                ));
            }
            if sub.pending_out() {
                edges.push(Edge::new(contact.clone(), user.clone(), EdgeState::Pending));
            }
            edges
        })
}

/// The canonical edge set between the local users in `rosters` and `peer_domain`.
pub fn project<'a>(
    rosters: impl IntoIterator<Item = (&'a BareJid, &'a Roster)> + 'a,
    peer_domain: &'a str,
) -> impl Iterator<Item = Edge> + 'a {
    rosters
        .into_iter()
        .flat_map(move |(user, roster)| project_user(user, roster, peer_domain))
}
