//! The model both servers project: rosters, subscription edges, presence.
//!
//! Nothing here does I/O. The model is what a server already has (rosters, block lists, the
//! presence of its sessions) in the shape the digests need: the canonical cross-domain edge set
//! and the per-publisher presence, each with a canonical byte encoding.
pub mod edge;
pub mod encoding;
pub mod epoch;
pub mod presence;
pub mod roster;
pub mod subscription;
pub mod truth;

pub use edge::{Edge, EdgeState};
pub use epoch::Epoch;
pub use presence::{PublisherPresence, ResourcePresence, Show};
pub use roster::{Account, BlockList, Roster};
pub use subscription::{NamedState, Subscription, SubscriptionStanza, Transition};
