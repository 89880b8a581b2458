//! Deterministic simulation of federated servers: the [`Host`] contract (and, in progress, the
//! driver that runs hosts over in-memory s2s links with a virtual clock).
pub mod host;

pub use host::{Host, SimTime, Transmit};
