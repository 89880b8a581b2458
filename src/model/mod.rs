//! The model both servers project: rosters, subscription edges, presence.
pub mod epoch;

pub use epoch::Epoch;
