//! The sync engine (XEP §Protocol), sans-IO: being built piece by piece.
//!
//! Present so far: presence sets with their digests ([`presence_set`]) and the reconciliation
//! of one presence set between the cache holder and the authoritative server
//! ([`presence_sync`]); the edge set with its digest ([`edge_set`]), its symmetric descent
//! ([`edge_sync`]) and the repair decisions that follow it ([`repair`]); the limits every
//! `<reconcile/>` keeps (`budget`, internal); the reduced states of presence too large for a
//! stanza ([`reduce`], PS-41). The per-peer session (hello, epochs, batches,
//! domain-level presence, priorities, windows) builds on these.
pub mod bounds;
mod budget;
pub mod edge_set;
pub mod edge_sync;
pub mod presence_set;
pub mod presence_sync;
pub mod reduce;
pub mod repair;
pub mod session;
pub mod time;

pub use bounds::{Bounds, Footprint};
pub use edge_set::EdgeSet;
pub use edge_sync::{DescentError, EdgeDiff, EdgeReconciler, is_edge_driver};
pub use presence_set::PresenceSet;
pub use presence_sync::{CacheChange, Puller, answer};
pub use repair::{Decision, Holder, RepairStanza, decide, plan};
pub use session::{
    ActiveFirst, Config, Directory, Event, FallbackReason, LIMITS, Mode, Mutation, PriorityPolicy,
    SMALL_PEER, Session, VoidReason,
};
pub use time::Time;
