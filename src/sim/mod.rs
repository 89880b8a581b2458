//! Deterministic simulation of federated servers: the [`Host`] contract, and [`Net`], the
//! driver that runs hosts over in-memory s2s links with a virtual clock, faults one call
//! each, exact traffic statistics ([`Stats`]) and an optional event log ([`Event`]).
//!
//! ```text
//!  script ──with_host / faults / at──► Net ──handle_*(now)──► Host
//!                                       ▲                      │ poll_transmit, poll_timeout
//!                                       └──────── Transmit ◄───┘
//!  Net: per link two FIFO directions (latency, bandwidth, hold), filter at delivery,
//!       one heap of deliveries/notices/actions and one of host timers, clock jumps to the next
//! ```
pub mod host;

mod drive;
mod faults;
mod link;
mod net;
mod stats;
mod trace;

pub use faults::{Envelope, Filter, Unbounded, Verdict};
pub use host::{Host, STREAM_ERROR_KIND, STREAMS_NS, SimTime, Transmit, is_stream_error};
pub use link::LinkConfig;
pub use net::{HostMut, Net};
pub use stats::{Classifier, Counts, Stats, Table, stanza_kind, wire_len};
pub use trace::{Event, EventKind};
