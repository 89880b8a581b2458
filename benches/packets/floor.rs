//! The information-theoretic floor of the packet benchmark: the least any scheme
//! could send to put right `d` differences, **computed from counts, not simulated**.
//!
//! # The model
//!
//! Two servers hold sets (subscription edges, or publisher → presence entries) that differ in
//! `d` items, each named by a `b`-bit identifier (64 for the extension's short ids). Give the
//! floor every advantage a real protocol lacks: the side that knows the other's state (an
//! oracle) sends **one message** to the side that does not, which already holds its own set.
//! That message must carry:
//!
//! 1. **Which items differ**: one of the `C(2^b, d)` subsets of `d` identifiers, so at least
//!    `log2 C(2^b, d)` bits. We use `ceil(d·b − log2(d!))` ([`difference_bits`]): since
//!    `C(N, d) = N(N−1)…(N−d+1)/d!`, this exceeds `log2 C(2^b, d)` by
//!    `−Σ log2(1 − k/2^b)`, under 10⁻⁷ bits for `b = 64` and any `d ≤ 10⁶` (rounded up, the
//!    two agree unless `log2(d!)` falls within 10⁻⁷ of an integer). This is the counting bound of set reconciliation that Minsky, Trachtenberg and
//!    Zippel's one-message characteristic-polynomial protocol approaches (d·b bits plus a small
//!    term, given a bound on `d`; "Set reconciliation with nearly optimal communication
//!    complexity", IEEE Trans. Inf. Theory 49(9), 2003) and against which Eppstein, Goodrich,
//!    Uyeda and Varghese measure their invertible Bloom lookup tables, which need about
//!    1.5–2 `d` cells ("What's the difference? Efficient set reconciliation without prior
//!    context", SIGCOMM 2011). With `b = 64`, `d = 100` it is 5 876 bits, 735 bytes (the
//!    brief's "≈ 734 B").
//! 2. **The presence that must move in any case**: the new state of the changed items. The
//!    caller measures it (e.g. the canonical bytes of the changed presence items, or nothing
//!    for a pure edge comparison) and passes `payload_bytes`; it is added unchanged.
//! 3. **A check**: a [`CHECK_BITS`]-bit hash of the sender's state, by which the receiver
//!    learns that its result is complete (a `λ`-bit hash misses a difference with probability
//!    `2^-λ`; without any check, "nothing differs" and "the message was cut short" look the
//!    same to the receiver). 128 bits is the size of the extension's own node
//!    fingerprints and of negentropy's. It is counted for every `d`, so the floor is monotone
//!    in `d` and `d = 0` ("unchanged") costs exactly one 16-byte message.
//!
//! So: `bytes = ceil((CHECK_BITS + difference_bits(d, b)) / 8) + payload_bytes` (whole bytes:
//! a message is bytes). It is the raw content, **without XML framing**: the other schemes'
//! bytes include ~150 bytes of stanza envelope each, and the report gives their bytes as a
//! multiple of this floor, framing and all; a caller that wants a framed floor adds one
//! envelope ([`Floor::framed`]).
//!
//! # Stanzas and round trips
//!
//! One message, so `stanzas = 1`, for every `d` including 0 (learning "unchanged" still takes
//! the check). A one-way message is half a round trip in the literature (the brief's table:
//! "0.5–1"). The CSV column is an integer, and the simulator counts round trips as
//! `ceil(causal depth / 2)` (`presence_sync::sim::Stats::round_trips`), under which one
//! one-way message (depth 1) is **1 round trip**; the floor reports 1 so that it is counted
//! exactly as the schemes it is compared with ([`Floor::ONE_WAY_ROUND_TRIPS`] = 0.5 is there for
//! a text that wants the fraction).

// The packet bench includes this module with `mod floor;` and may call only part of it.
#![allow(dead_code)]

/// Bits of the equality check every floor message carries: a 128-bit hash of the sender's
/// state (the size of the extension's fingerprints).
pub const CHECK_BITS: u64 = 128;

/// The floor for one reconciliation: one message from the side that knows to the side that
/// does not. All fields are integers, for the CSV.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Floor {
    /// Bytes of the message: check, which items differ, and the payload (no XML framing).
    pub bytes: u64,
    /// Messages: always 1 (see the [module documentation](self)).
    pub stanzas: u64,
    /// Round trips as the simulator counts them (`ceil(depth / 2)`): 1 for the one message.
    pub round_trips: u64,
}

impl Floor {
    /// The round trips of the floor as the literature counts them: one one-way message.
    pub const ONE_WAY_ROUND_TRIPS: f64 = 0.5;

    /// The same floor carried in one stanza whose envelope (element names, attributes,
    /// encoding overhead) costs `envelope_bytes`.
    pub fn framed(self, envelope_bytes: u64) -> Floor {
        Floor {
            bytes: self.bytes + self.stanzas * envelope_bytes,
            ..self
        }
    }
}

/// `log2(d!)`, summed exactly term by term (`Σ log2 k` for `k = 2..=d`, no `lgamma` or
/// Stirling approximation), with Neumaier's compensated summation so that the rounding error
/// stays near one ulp of the result even for `d = 10^7`.
pub fn log2_factorial(d: u64) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for k in 2..=d {
        let term = (k as f64).log2();
        let t = sum + term;
        compensation += if sum.abs() >= term.abs() {
            (sum - t) + term
        } else {
            (term - t) + sum
        };
        sum = t;
    }
    sum + compensation
}

/// Bits that name which `d` of the `2^b` identifiers differ: `ceil(d·b − log2(d!))` (0 for
/// `d = 0`; `b` for `d = 1`). For `d ≤ 34` the floor of `log2(d!)` is taken from the exact
/// integer `d!` (it fits a `u128`), so the ceiling is exact there; beyond, from
/// [`log2_factorial`].
///
/// # Panics
/// If `d > 2^b` (there are not that many identifiers) or `d·b` overflows `u64`.
pub fn difference_bits(d: u64, id_bits: u32) -> u64 {
    assert!(
        id_bits >= 64 || d <= 1u64 << id_bits,
        "{d} differences among {id_bits}-bit identifiers"
    );
    let db = d
        .checked_mul(u64::from(id_bits))
        .expect("d·b overflows u64");
    // ceil(d·b − x) = d·b − floor(x) for an integer d·b.
    db - floor_log2_factorial(d)
}

/// `floor(log2(d!))`: exact from the integer for `d ≤ 34`, else from [`log2_factorial`].
fn floor_log2_factorial(d: u64) -> u64 {
    if d <= 34 {
        let factorial: u128 = (2..=u128::from(d)).product();
        u64::from(127 - factorial.leading_zeros())
    } else {
        log2_factorial(d).floor() as u64
    }
}

/// The floor for reconciling `d` differences among `id_bits`-bit identifiers, plus
/// `payload_bytes` of state that must move in any case (measured by the caller). See the
/// [module documentation](self) for the model.
pub fn floor(d: u64, id_bits: u32, payload_bytes: u64) -> Floor {
    let bits = CHECK_BITS + difference_bits(d, id_bits);
    Floor {
        bytes: bits.div_ceil(8) + payload_bytes,
        stanzas: 1,
        round_trips: 1,
    }
}
