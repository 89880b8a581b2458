//! presence-sync: incremental presence resynchronization between federated XMPP servers.
pub mod digest;
pub mod model;
pub mod wire;
