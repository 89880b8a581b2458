//! The hostile-peer checks: the implementation under test, in an established session with a
//! reference peer, receives malformed, oversized, out-of-order, stale and spoofed stanzas
//! from it, and must answer each with the error XEP §Error Handling prescribes (PS-69), or
//! discard it (PS-70), or close the stream (PS-71), apply nothing of it, and still converge
//! afterwards. Also here: service discovery and the choice of the hash algorithm
//! ([`discovery_checks`]), and presence states too large for a stanza ([`oversized_checks`]).
//!
//! ```text
//!  Bench: Net<Tap> ── a.example: imp.server() ◄──s2s──► b.example: Reference (hostile side)
//!     world: 3 + 3 users, both-way subscriptions, one XEP-0191 block, a c.example contact
//!  per case: a fresh bench, session established ─► inject a stanza at b.example's tap
//!     ─► drive ─► the answer (error condition, type, app condition; result; nothing; stream
//!     error) ─► state (views = truth, rosters unchanged) ─► recover (views = truth after
//!     one change on each side)
//! ```
//!
//! Each case builds the hostile stanza from what the session negotiated (epochs, limits,
//! hash algorithm, read from the hellos on the wire), so that only the intended fault is in
//! it. Verdicts are plain functions of what was observed ([`verdict`]), unit-tested on wrong
//! answers.

mod bench;
pub(crate) mod cases;
mod discovery;
pub mod fuzz;
mod oversized;
pub mod probe;
#[cfg(test)]
mod tests;
pub mod verdict;

pub use bench::{A, B, Bench, C, HOSTILE, MAX_EVENTS, Negotiated, Tap, hellos};
pub use discovery::{disco_verdict, hash_verdict};

use super::check::Check;
use super::subject::Implementation;

/// The hostile-peer checks of `imp` (see the [module documentation](self)): for each case, the
/// answer (the requirements the case names, and PS-69 for iq errors) and the state after it
/// (nothing applied), and one check that the subject recovered after every case.
pub fn checks(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    cases::run_all(imp, seed)
}

/// Service discovery and negotiation of `imp`: its disco#info features (PS-1), its stream
/// feature (PS-3), and the hash algorithm it chooses with a peer that advertises only
/// sha-256 and with one that also advertises blake3 (PS-2, PS-4).
pub fn discovery_checks(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    discovery::checks(imp, seed)
}

/// Presence states too large for max-bytes (PS-41): a user of `imp` with an enormous status,
/// published live, as a new publisher and after a link loss, reaches the reference peer as a
/// reduced state that fits, and the peer shows what the XEP says it shows.
pub fn oversized_checks(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    oversized::checks(imp, seed)
}
