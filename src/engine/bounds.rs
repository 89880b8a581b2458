//! Every structure of a session that a peer can make grow, its bound, and what happens at the
//! bound (XEP §Resource Exhaustion): one design, written here once.
//!
//! The bounds derive from three numbers the server already has: `E`, the size of its own edge
//! set towards the peer (its own rosters, never the peer's word); `T`, the repair threshold of
//! PS-65 for that set (the larger of 1000 and 1% of `E`); and the session's effective
//! [`Limits`] (window `w`, max-items `m`, max-bytes `b`, leaf-items `l`, and `q`, the splits
//! a query may carry, ⌊b/512⌋ at most `m`, PS-31; only splits make nodes wait, and a query of
//! 8-nibble `<ids/>` may carry up to `m` of those).
//!
//! | structure | bound | at the bound |
//! |---|---|---|
//! | our unanswered requests | `w + 1` (the window, and one hello; this server's own window if a hello lowered it while requests were out) | nothing more is sent until an answer or the timeout (PS-50, PS-51) |
//! | requests of the peer | 0 queued: each is answered at once | a hello sooner than 10 s after the last one is refused with `<window-exceeded/>` (PS-20), as is a fourth new epoch within 60 s |
//! | epochs of the peer remembered as superseded | [`SUPERSEDED_KEPT`] | the oldest is forgotten: a shutdown announcement that late ends the session instead of being ignored (PS-55) |
//! | new epochs of the peer within the last minute | [`EPOCHS_PER_MINUTE`] | see requests |
//! | cached entries of the peer, and entries shown | `C = E + T + w·m` (an honest peer publishes only publishers with a subscriber among our users; `T` covers mismatches, `w·m` what is in flight) | the batch or answer that would exceed it is refused (`<too-many-items/>`, or discarded if an answer) and the session ends as failed (PS-58 counts it) |
//! | ids the edge descent keeps (differences found, owed, lacked, asked, in flight) | `D = 4·(T + 1) + w·m` | past `T + 1` differences the descent stops recording and winds down: repairs are suspended (PS-65), the edge set stays unverified and after three descents the peer is legacy (PS-38) |
//! | nodes waiting in the edge descent | `N_e = 16·(⌈(E + T)/l⌉ + 17·q)` | an answer that would exceed it is discarded and the session ends as failed |
//! | ids waiting in the presence pull (lacked, and stale entries waiting for them) | `2·C + w·m` | as for the cache |
//! | nodes and prefixes waiting in the presence pull | `N_p = 16·(⌈C/l⌉ + 17·q) + E` | as for the edge descent; the prefixes of domain-level presence of unknown publishers (PS-48) are queued once each |
//! | pairs repaired in the session | `T + 1` | repairs stop at the threshold (PS-65) |
//! | depth of the cache's bucket tree, from the count in the peer's hello | sized for at most `C` entries | a larger count is taken as `C` |
//!
//! Only prefixes are queued for a descent, never their descriptions: a `<split/>` or an
//! `<ids/>` is computed from the set when it is sent. A node costs its prefix and a slot in a
//! set of queued prefixes (about 32 bytes), so the waiting nodes of a descent take at most
//! about `32·N` bytes.
//!
//! # Worst-case memory of one session
//!
//! On top of what the server keeps anyway (its edge set and its published set, from its own
//! users' data), a peer can make one session hold at most, in bytes:
//!
//! ```text
//!   2·C·(j + b)                   cache entries and entries shown, each at most one item of
//!                                 max-bytes (the gate of PS-37 keeps what was released apart)
//! + 2·(T + 1)·(2·j + 64)          edges of the descent (two JIDs, a leaf)
//! + (D + 2·C + w·m)·16            ids (8 bytes, set overhead)
//! + (N_e + N_p)·32                waiting nodes
//! + (w + 1)·b                     our outstanding requests (the hello kept for comparison)
//! ```
//!
//! with `j` the largest bare JID (3071 bytes by RFC 7622) for edges and items. The first term
//! dominates, and it is the one RFC 6121 already grants a peer (one presence per remote contact
//! of the server's users, each up to the stanza size the server accepts). [`Bounds::memory`]
//! evaluates the formula; `tests/hardening.rs` drives a session to each bound and measures
//! the heap against it.

use std::fmt;

use crate::engine::budget::max_query_nodes;
use crate::engine::repair::repair_threshold;
use crate::wire::Limits;

/// Epochs of the peer remembered as superseded, to ignore their late shutdown
/// announcements (PS-55).
pub const SUPERSEDED_KEPT: usize = 8;

/// New epochs of a peer accepted within 60 seconds; a fourth is a misbehaving peer (a new epoch
/// is a restart, XEP §Resource Exhaustion).
pub const EPOCHS_PER_MINUTE: usize = 3;

/// How long a peer waits between two hellos, except the one that verifies the edge set after a
/// descent (PS-20), µs.
pub const HELLO_INTERVAL: u64 = 10_000_000;

/// The largest bare JID (RFC 7622: three parts of at most 1023 bytes and two separators).
const MAX_JID_BYTES: u64 = 3071;

/// The sizes of the peer-growable structures of a session at one moment
/// ([`crate::engine::Session::footprint`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Our unanswered requests.
    pub requests: usize,
    /// Epochs of the peer remembered as superseded.
    pub superseded: usize,
    /// New epochs of the peer seen in the last 60 s.
    pub recent_epochs: usize,
    /// Cached entries of the peer's published set.
    pub cache: usize,
    /// Entries released to local users.
    pub shown: usize,
    /// Ids and edges the edge descent keeps.
    pub descent_ids: usize,
    /// Nodes waiting in the edge descent.
    pub descent_nodes: usize,
    /// Ids waiting in the presence pull.
    pub pull_ids: usize,
    /// Nodes and prefixes waiting in the presence pull.
    pub pull_nodes: usize,
    /// Pairs repaired in this session.
    pub repaired: usize,
}

/// The bound of each field of [`Footprint`] (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// `w + 1`.
    pub requests: usize,
    /// [`SUPERSEDED_KEPT`].
    pub superseded: usize,
    /// [`EPOCHS_PER_MINUTE`].
    pub recent_epochs: usize,
    /// `C`.
    pub cache: usize,
    /// `C`.
    pub shown: usize,
    /// `D`.
    pub descent_ids: usize,
    /// `N_e`.
    pub descent_nodes: usize,
    /// `2·C + w·m`.
    pub pull_ids: usize,
    /// `N_p`.
    pub pull_nodes: usize,
    /// `T + 1`.
    pub repaired: usize,
    /// The differences an edge descent records before it stops (`T + 1`).
    pub differences: usize,
    /// max-bytes, for [`Bounds::memory`].
    max_bytes: usize,
    /// `w·m`, for [`Bounds::memory`].
    in_flight: usize,
}

impl Bounds {
    /// These bounds for a server that announces `own` limits: a hello can lower the window
    /// while requests sent under the old one are unanswered (found by fuzzing); no more are
    /// sent until they are (PS-50), and none was ever sent beyond this server's own window.
    pub fn sending_within(mut self, own: &Limits) -> Bounds {
        self.requests = self.requests.max(own.window as usize + 1);
        self
    }

    /// The bounds of a session whose edge set holds `edges` edges, under `limits`.
    pub fn new(edges: u64, limits: &Limits) -> Bounds {
        let e = usize::try_from(edges).unwrap_or(usize::MAX / 64);
        let t = usize::try_from(repair_threshold(edges)).unwrap_or(usize::MAX / 64);
        let (w, m) = (limits.window as usize, limits.max_items as usize);
        let l = limits.leaf_items.max(1) as usize;
        let q = max_query_nodes(limits);
        let cache = e + t + w * m;
        Bounds {
            requests: w + 1,
            superseded: SUPERSEDED_KEPT,
            recent_epochs: EPOCHS_PER_MINUTE,
            cache,
            shown: cache,
            descent_ids: 4 * (t + 1) + w * m,
            descent_nodes: 16 * ((e + t).div_ceil(l) + 17 * q),
            pull_ids: 2 * cache + w * m,
            pull_nodes: 16 * (cache.div_ceil(l) + 17 * q) + e,
            repaired: t + 1,
            differences: t + 1,
            max_bytes: limits.max_bytes as usize,
            in_flight: w * m,
        }
    }

    /// The worst-case bytes a peer can make the session hold (the formula of the [module
    /// documentation](self)).
    pub fn memory(&self) -> u64 {
        let j = MAX_JID_BYTES;
        let b = self.max_bytes as u64;
        let c = self.cache as u64;
        let wm = self.in_flight as u64;
        2 * c * (j + b)
            + 2 * self.differences as u64 * (2 * j + 64)
            + (self.descent_ids as u64 + 2 * c + wm) * 16
            + (self.descent_nodes + self.pull_nodes) as u64 * 32
            + self.requests as u64 * b
    }
}

/// The field of a [`Footprint`] that is over its bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBound(pub &'static str);

impl fmt::Display for OverBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} over its bound", self.0)
    }
}

impl Footprint {
    /// Ok if every field is within `bounds`, else the first that is not.
    pub fn within(&self, bounds: &Bounds) -> Result<(), OverBound> {
        let fields = [
            ("requests", self.requests, bounds.requests),
            ("superseded", self.superseded, bounds.superseded),
            ("recent epochs", self.recent_epochs, bounds.recent_epochs),
            ("cache", self.cache, bounds.cache),
            ("shown", self.shown, bounds.shown),
            ("descent ids", self.descent_ids, bounds.descent_ids),
            ("descent nodes", self.descent_nodes, bounds.descent_nodes),
            ("pull ids", self.pull_ids, bounds.pull_ids),
            ("pull nodes", self.pull_nodes, bounds.pull_nodes),
            ("repaired", self.repaired, bounds.repaired),
        ];
        match fields.into_iter().find(|(_, n, max)| n > max) {
            Some((name, _, _)) => Err(OverBound(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_and_a_small_set() {
        let b = Bounds::new(64, &Limits::DEFAULT);
        assert_eq!(b.requests, 5);
        assert_eq!(b.cache, 64 + 1000 + 4 * 256);
        assert_eq!(b.descent_ids, 4 * 1001 + 4 * 256);
        // q = min(256, 65536 / 512) = 128.
        assert_eq!(b.descent_nodes, 16 * ((1064usize).div_ceil(16) + 17 * 128));
        assert_eq!(b.repaired, 1001);
        let f = Footprint {
            cache: b.cache + 1,
            ..Footprint::default()
        };
        assert_eq!(f.within(&b), Err(OverBound("cache")));
        assert!(Footprint::default().within(&b).is_ok());
    }

    #[test]
    fn bounds_grow_with_the_edge_set_not_with_the_peer() {
        let small = Bounds::new(1_000, &Limits::DEFAULT);
        let large = Bounds::new(1_000_000, &Limits::DEFAULT);
        assert_eq!(large.differences, 10_001);
        assert!(large.cache > small.cache);
        assert!(large.memory() > small.memory());
    }
}
