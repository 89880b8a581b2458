//! The range-based set reconciliation anchor of the packet bench: the real Negentropy protocol
//! (Meyer 2022; the implementation Nostr deploys, crate `negentropy` 0.5.x, written against
//! 0.5.3 and its public API only), run between two in-memory parties, with every message framed
//! as an s2s `<iq/>` the way our extension frames its `<reconcile/>` (BRIEF §3, the
//! set-reconciliation table).
//!
//! # What runs
//!
//! [`reconcile`] builds one sealed `negentropy::NegentropyStorageVector` per side from the
//! 32-byte item ids (BLAKE3 leaf hashes of edges or presence entries), makes `local` the
//! initiator (`Negentropy::borrowed` + `initiate`, then `reconcile_with_ids` on each answer) and
//! `remote` the responder (`Negentropy::reconcile`), and loops until the initiator has nothing
//! more to send (`reconcile_with_ids` returns `None`). The protocol is the crate's, untouched:
//! fanout 16 (`BUCKETS`), id lists below 32 items, 16-byte fingerprints (SHA-256 of the 256-bit
//! sum of the ids and the count), protocol version `0x61`.
//!
//! **Timestamps.** Negentropy orders items by `(timestamp, id)`. Every item here has timestamp
//! 0: our items are content hashes with no creation time, and a constant timestamp makes the
//! order the id order, so the ranges split evenly (the ids are uniform) and each bound costs
//! one timestamp byte (its delta is 0) plus the shortest id prefix that separates two
//! neighbours. Nostr's use of real timestamps only helps when recent items differ more than
//! old ones, which is not what this workload models.
//!
//! **Storage.** `NegentropyStorageVector`, the only storage of the Rust crate: a sorted vector
//! whose range fingerprints are summed item by item (O(range), no tree of sums), so a run costs
//! the two sorts plus O(n) per level of the descent; with few differences the sorts are most of
//! the wall time.
//!
//! **Inputs are sets.** A duplicated id counts once (the storage de-duplicates on `seal`).
//!
//! # How messages are framed (and why that way)
//!
//! So that the bench compares the reconciliation and not the framing, each Negentropy message is
//! carried exactly as our extension carries a `<reconcile/>`: one IQ per message, binary as
//! padded base64 (RFC 4648 §4). The initiator's messages are
//!
//! ```xml
//! <iq from='{from}' to='{to}' id='neg{k}' type='set'><negentropy xmlns='urn:xmpp:negentropy:0'>{base64}</negentropy></iq>
//! ```
//!
//! and each answer is the same with `type='result'`, `from`/`to` swapped and the request's `id`
//! (`k` = 1, 2, … is the round trip). No `xmlns='jabber:server'` is written or counted: the
//! s2s stream declares it once (as `presence_sync::sim::wire_len` counts our own stanzas).
//!
//! **Frame size.** The crate's `frame_size_limit` bounds the raw Negentropy message. It is set
//! to the largest size whose base64, inside the envelope above (with the longer `type`, an id of
//! the longest `neg{u64}` and the escaped JIDs), still fits [`Framing::max_bytes`]; every
//! stanza is checked against `max_bytes` as it is built. The crate refuses a limit below 4096
//! bytes ([`MIN_FRAME_SIZE_LIMIT`]), so `max_bytes` must be at least [`min_max_bytes`]
//! (5,464 bytes of base64 plus the envelope: 5,603 bytes with `a.example`/`b.example`, whose
//! default 65,536 gives a 49,047-byte frame); [`try_reconcile`] returns [`Error::FrameTooSmall`]
//! below that.
//!
//! The limit matters beyond bytes: when a message would pass it, the crate stops and sends one
//! fingerprint for the rest of the range, which the next round trip takes up again, so a round
//! whose fingerprints or id lists do not fit one stanza costs extra round trips (at n = 10^6,
//! d = 1000: 19 round trips with 64 KiB stanzas, 3 without a limit).
//!
//! # What is counted
//!
//! - **stanzas**: every IQ, both directions (the request and its result are 2);
//! - **bytes**: the UTF-8 length of each stanza as framed above, summed;
//! - **round trips**: request/result pairs; the initiator's message and the responder's answer
//!   are one, and the next initiator message waits for that answer, so the count is the number
//!   of answers. Equal sets take 1 round trip and 2 stanzas.
//!
//! [`Outcome`] also gives each direction apart ([`Leg`]) with the raw Negentropy bytes before
//! base64.
//!
//! **Not counted:** the transfer of the differing items themselves. Negentropy ends with each
//! side knowing which ids it has that the other lacks ([`Outcome::have`]) and which it lacks
//! ([`Outcome::need`]); fetching or pushing those items is a separate step whose cost is the
//! same for every scheme, so the bench adds it to all of them alike. Stream setup, TLS,
//! dialback and feature negotiation are not counted either (nor for any scheme).

// The bench includes this module with `mod negentropy;` and calls only part of it.
#![allow(dead_code)]

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use negentropy::{Id, Negentropy, NegentropyStorageVector};

/// Namespace of the `<negentropy/>` payload element (a bench-only name, not a registered one).
pub const NS: &str = "urn:xmpp:negentropy:0";

/// The smallest `frame_size_limit` the crate accepts (other than 0, which means no limit).
pub const MIN_FRAME_SIZE_LIMIT: usize = 4096;

/// Default stanza size limit, as our `max-bytes` default.
pub const DEFAULT_MAX_BYTES: usize = 65536;

/// Timestamp given to every item (see the module documentation).
const TIMESTAMP: u64 = 0;

/// Prefix of the IQ ids: `neg1`, `neg2`, ….
const ID_PREFIX: &str = "neg";

/// How the messages are framed: the two domains (the initiator's first) and the stanza size
/// limit, in bytes of UTF-8, that every stanza must fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framing {
    /// The initiator's domain: `from` of its requests, `to` of the answers.
    pub from: String,
    /// The responder's domain.
    pub to: String,
    /// The largest stanza either side may send, in bytes (our `max-bytes`).
    pub max_bytes: usize,
}

impl Framing {
    /// Framing from `from` to `to` with the default [`DEFAULT_MAX_BYTES`].
    pub fn new(from: &str, to: &str) -> Framing {
        Framing {
            from: from.to_owned(),
            to: to.to_owned(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// The same framing with another stanza size limit.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Framing {
        self.max_bytes = max_bytes;
        self
    }
}

impl Default for Framing {
    /// `a.example` to `b.example`, 65536 bytes.
    fn default() -> Framing {
        Framing::new("a.example", "b.example")
    }
}

/// The cost of one reconciliation on the wire, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cost {
    /// IQ stanzas sent, requests and results.
    pub stanzas: u64,
    /// UTF-8 bytes of those stanzas (without `xmlns='jabber:server'`).
    pub bytes: u64,
    /// Request/result pairs, each waiting for the previous answer.
    pub round_trips: u64,
}

/// The traffic in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Leg {
    /// Stanzas sent in this direction.
    pub stanzas: u64,
    /// Their UTF-8 bytes.
    pub bytes: u64,
    /// The raw Negentropy messages they carry, before base64.
    pub payload_bytes: u64,
    /// The largest stanza, in bytes.
    pub max_stanza_bytes: u64,
}

impl Leg {
    fn add(&mut self, stanza_bytes: usize, payload_bytes: usize) {
        self.stanzas += 1;
        self.bytes += stanza_bytes as u64;
        self.payload_bytes += payload_bytes as u64;
        self.max_stanza_bytes = self.max_stanza_bytes.max(stanza_bytes as u64);
    }
}

/// Which way a stanza goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A request, `type='set'`, from the initiator (`local`).
    ToResponder,
    /// An answer, `type='result'`, from the responder (`remote`).
    ToInitiator,
}

/// What a reconciliation found and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Stanzas, bytes and round trips, both directions together.
    pub cost: Cost,
    /// Initiator to responder (`type='set'`).
    pub to_responder: Leg,
    /// Responder to initiator (`type='result'`).
    pub to_initiator: Leg,
    /// The `frame_size_limit` given to the crate (raw bytes per Negentropy message).
    pub frame_size_limit: usize,
    /// Ids `local` has and `remote` lacks, sorted.
    pub have: Vec<[u8; 32]>,
    /// Ids `remote` has and `local` lacks, sorted.
    pub need: Vec<[u8; 32]>,
}

/// Why a reconciliation could not run.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// `max_bytes` leaves less than the crate's minimum frame for a message.
    FrameTooSmall {
        /// The limit asked for.
        max_bytes: usize,
        /// The smallest limit that works with these JIDs ([`min_max_bytes`]).
        min_max_bytes: usize,
    },
    /// The crate failed (a bug in it or here: two honest in-memory parties never should).
    Protocol(negentropy::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::FrameTooSmall {
                max_bytes,
                min_max_bytes,
            } => write!(
                f,
                "max_bytes {max_bytes} is below the {min_max_bytes} bytes a negentropy \
                 frame of {MIN_FRAME_SIZE_LIMIT} bytes needs"
            ),
            Error::Protocol(e) => write!(f, "negentropy: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<negentropy::Error> for Error {
    fn from(e: negentropy::Error) -> Error {
        Error::Protocol(e)
    }
}

/// `value` escaped for a single-quoted XML attribute.
fn escape_attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The stanza carrying `payload` in `direction`, with IQ id `id`, as it goes on the wire
/// (see the module documentation).
pub fn stanza(frame: &Framing, direction: Direction, id: &str, payload: &[u8]) -> String {
    let (from, to, ty) = match direction {
        Direction::ToResponder => (&frame.from, &frame.to, "set"),
        Direction::ToInitiator => (&frame.to, &frame.from, "result"),
    };
    let (from, to, id) = (escape_attr(from), escape_attr(to), escape_attr(id));
    let mut out = String::with_capacity(160 + from.len() + to.len() + payload.len() * 4 / 3);
    out.push_str("<iq from='");
    out.push_str(&from);
    out.push_str("' to='");
    out.push_str(&to);
    out.push_str("' id='");
    out.push_str(&id);
    out.push_str("' type='");
    out.push_str(ty);
    out.push_str("'><negentropy xmlns='");
    out.push_str(NS);
    out.push_str("'>");
    BASE64.encode_string(payload, &mut out);
    out.push_str("</negentropy></iq>");
    out
}

/// The IQ id of round trip `k`.
fn iq_id(k: u64) -> String {
    format!("{ID_PREFIX}{k}")
}

/// The bytes of the longest envelope (everything but the base64) these JIDs can produce.
fn envelope_bytes(frame: &Framing) -> usize {
    let longest_id = iq_id(u64::MAX);
    [Direction::ToResponder, Direction::ToInitiator]
        .into_iter()
        .map(|d| stanza(frame, d, &longest_id, &[]).len())
        .max()
        .unwrap_or(0)
}

/// The largest raw Negentropy message whose framed stanza fits `frame.max_bytes`: padded base64
/// makes 4 characters of every 3 bytes started.
pub fn frame_size_limit(frame: &Framing) -> Result<usize, Error> {
    let room = frame.max_bytes.saturating_sub(envelope_bytes(frame));
    let limit = room / 4 * 3;
    if limit < MIN_FRAME_SIZE_LIMIT {
        return Err(Error::FrameTooSmall {
            max_bytes: frame.max_bytes,
            min_max_bytes: min_max_bytes(frame),
        });
    }
    Ok(limit)
}

/// The smallest `max_bytes` these JIDs work with: the crate's 4096-byte minimum frame in
/// base64 (5,464 bytes) and the envelope.
pub fn min_max_bytes(frame: &Framing) -> usize {
    MIN_FRAME_SIZE_LIMIT.div_ceil(3) * 4 + envelope_bytes(frame)
}

/// The sealed Negentropy storage of a set of ids.
fn storage(ids: &[[u8; 32]]) -> Result<NegentropyStorageVector, Error> {
    let mut s = NegentropyStorageVector::with_capacity(ids.len());
    for id in ids {
        s.insert(TIMESTAMP, Id::from_byte_array(*id))?;
    }
    s.seal()?;
    Ok(s)
}

/// Runs Negentropy with `local` as the initiator and `remote` as the responder, framed by
/// `frame`; see the module documentation for what is counted.
///
/// # Panics
///
/// If `frame.max_bytes` is below [`min_max_bytes`] or the crate fails; [`try_reconcile`]
/// returns those as errors.
pub fn reconcile(local: &[[u8; 32]], remote: &[[u8; 32]], frame: &Framing) -> Outcome {
    match try_reconcile(local, remote, frame) {
        Ok(outcome) => outcome,
        Err(e) => panic!("negentropy reconciliation failed: {e}"),
    }
}

/// [`reconcile`], with its failures as errors.
pub fn try_reconcile(
    local: &[[u8; 32]],
    remote: &[[u8; 32]],
    frame: &Framing,
) -> Result<Outcome, Error> {
    reconcile_traced(local, remote, frame, &mut |_, _| {})
}

/// [`try_reconcile`], also handing every stanza to `on_stanza` in the order it is sent.
pub fn reconcile_traced(
    local: &[[u8; 32]],
    remote: &[[u8; 32]],
    frame: &Framing,
    on_stanza: &mut dyn FnMut(Direction, &str),
) -> Result<Outcome, Error> {
    let limit = frame_size_limit(frame)?;
    let local_storage = storage(local)?;
    let remote_storage = storage(remote)?;
    let mut initiator = Negentropy::borrowed(&local_storage, limit as u64)?;
    let mut responder = Negentropy::borrowed(&remote_storage, limit as u64)?;

    let mut to_responder = Leg::default();
    let mut to_initiator = Leg::default();
    let mut have: Vec<Id> = Vec::new();
    let mut need: Vec<Id> = Vec::new();
    let mut send = |leg: &mut Leg, direction: Direction, k: u64, payload: &[u8]| {
        let s = stanza(frame, direction, &iq_id(k), payload);
        assert!(
            s.len() <= frame.max_bytes,
            "a {} byte stanza exceeds max_bytes {} (frame_size_limit {limit}, payload {})",
            s.len(),
            frame.max_bytes,
            payload.len()
        );
        leg.add(s.len(), payload.len());
        on_stanza(direction, &s);
    };

    let mut request = initiator.initiate()?;
    let mut round_trips: u64 = 0;
    loop {
        round_trips += 1;
        send(
            &mut to_responder,
            Direction::ToResponder,
            round_trips,
            &request,
        );
        let answer = responder.reconcile(&request)?;
        send(
            &mut to_initiator,
            Direction::ToInitiator,
            round_trips,
            &answer,
        );
        match initiator.reconcile_with_ids(&answer, &mut have, &mut need)? {
            Some(next) => request = next,
            None => break,
        }
    }

    let sorted = |ids: Vec<Id>| {
        let mut out: Vec<[u8; 32]> = ids.into_iter().map(|id| *id).collect();
        out.sort_unstable();
        out
    };
    Ok(Outcome {
        cost: Cost {
            stanzas: to_responder.stanzas + to_initiator.stanzas,
            bytes: to_responder.bytes + to_initiator.bytes,
            round_trips,
        },
        to_responder,
        to_initiator,
        frame_size_limit: limit,
        have: sorted(have),
        need: sorted(need),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Item `i` of universe `seed`: a BLAKE3 hash, like the leaf hashes the bench passes.
    fn item(seed: u64, i: u64) -> [u8; 32] {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&seed.to_le_bytes());
        input[8..].copy_from_slice(&i.to_le_bytes());
        *blake3::hash(&input).as_bytes()
    }

    /// A universe of `n` items of which `d` differ, alternately missing on the remote side
    /// (even) and on the local side (odd), spread over the universe: `(local, remote)`.
    fn sets(seed: u64, n: u64, d: u64) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
        assert!(d <= n);
        let stride = n.checked_div(d).unwrap_or(1);
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for i in 0..n {
            let id = item(seed, i);
            let differs = d > 0 && i % stride == 0 && i / stride < d;
            match (differs, (i / stride) % 2) {
                (false, _) => {
                    local.push(id);
                    remote.push(id);
                }
                (true, 0) => local.push(id),
                (true, _) => remote.push(id),
            }
        }
        (local, remote)
    }

    /// `a \ b`, sorted.
    fn minus(a: &[[u8; 32]], b: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let b: BTreeSet<_> = b.iter().collect();
        let out: BTreeSet<_> = a.iter().filter(|x| !b.contains(x)).copied().collect();
        out.into_iter().collect()
    }

    /// Runs and checks have/need against the direct set differences and every stanza against
    /// the framing.
    fn run(local: &[[u8; 32]], remote: &[[u8; 32]], frame: &Framing) -> Outcome {
        let mut seen = Vec::new();
        let outcome = reconcile_traced(local, remote, frame, &mut |d, s| {
            seen.push((d, s.len()));
        })
        .unwrap();
        assert_eq!(outcome.have, minus(local, remote), "have");
        assert_eq!(outcome.need, minus(remote, local), "need");
        // Requests and answers alternate, one answer per request.
        assert_eq!(seen.len() as u64, 2 * outcome.cost.round_trips);
        for (i, (d, len)) in seen.iter().enumerate() {
            let want = if i % 2 == 0 {
                Direction::ToResponder
            } else {
                Direction::ToInitiator
            };
            assert_eq!(*d, want);
            assert!(*len <= frame.max_bytes);
        }
        let c = outcome.cost;
        assert_eq!(c.stanzas, seen.len() as u64);
        assert_eq!(c.bytes, seen.iter().map(|(_, l)| *l as u64).sum::<u64>());
        assert_eq!(
            c.stanzas,
            outcome.to_responder.stanzas + outcome.to_initiator.stanzas
        );
        assert_eq!(
            c.bytes,
            outcome.to_responder.bytes + outcome.to_initiator.bytes
        );
        outcome
    }

    #[test]
    fn equal_sets_take_one_round_trip() {
        let frame = Framing::default();
        for n in [0, 1, 31, 32, 1000, 10_000] {
            let (local, remote) = sets(1, n, 0);
            let o = run(&local, &remote, &frame);
            assert_eq!(o.cost.round_trips, 1, "n = {n}");
            assert_eq!(o.cost.stanzas, 2, "n = {n}");
            assert!(o.have.is_empty() && o.need.is_empty());
        }
    }

    #[test]
    fn equal_sets_exact_bytes() {
        // 16 buckets of fingerprints, answered by a bare version byte.
        let (local, remote) = sets(2, 10_000, 0);
        let o = run(&local, &remote, &Framing::default());
        let answer = stanza(&Framing::default(), Direction::ToInitiator, "neg1", &[0x61]);
        assert_eq!(
            answer,
            "<iq from='b.example' to='a.example' id='neg1' type='result'>\
             <negentropy xmlns='urn:xmpp:negentropy:0'>YQ==</negentropy></iq>"
        );
        assert_eq!(o.to_initiator.bytes, answer.len() as u64);
        assert_eq!(o.to_initiator.payload_bytes, 1);
        assert_eq!(o.to_responder.stanzas, 1);
    }

    #[test]
    fn differences_in_growing_sets() {
        let frame = Framing::default();
        for n in [1_000u64, 10_000, 100_000] {
            for d in [1u64, 2, 10, 100, 1000] {
                if d > n / 2 {
                    continue;
                }
                let (local, remote) = sets(n + d, n, d);
                let o = run(&local, &remote, &frame);
                assert_eq!((o.have.len() + o.need.len()) as u64, d, "n = {n}, d = {d}");
                assert!(!o.need.is_empty() || d == 1);
                assert!(o.cost.round_trips >= 2, "n = {n}, d = {d}");
                // With few differences, far less than shipping all ids (at d = n/10 it is
                // about as much: every range of 32 holds a difference).
                if d * 100 <= n {
                    assert!(o.cost.bytes < n * 32, "n = {n}, d = {d}: {:?}", o.cost);
                }
            }
        }
    }

    #[test]
    fn one_sided_differences() {
        let frame = Framing::default();
        let (all, _) = sets(3, 5_000, 0);
        let fewer: Vec<_> = all.iter().copied().filter(|id| id[0] % 50 != 0).collect();
        let o = run(&all, &fewer, &frame);
        assert!(!o.have.is_empty() && o.need.is_empty());
        let o = run(&fewer, &all, &frame);
        assert!(o.have.is_empty() && !o.need.is_empty());
    }

    #[test]
    fn empty_local_is_a_full_transfer() {
        let frame = Framing::default();
        for n in [1u64, 31, 32, 1000, 10_000, 100_000] {
            let (remote, _) = sets(4, n, 0);
            let o = run(&[], &remote, &frame);
            assert_eq!(o.need.len() as u64, n);
            // Every id crosses in base64 at least once.
            assert!(o.to_initiator.bytes >= n * 32 * 4 / 3, "n = {n}");
            if n >= 10_000 {
                // More than one stanza's worth: the answers were cut at the frame limit.
                assert!(o.cost.round_trips > 1, "n = {n}");
                assert!(o.to_initiator.max_stanza_bytes > (DEFAULT_MAX_BYTES as u64) * 9 / 10);
            }
        }
    }

    #[test]
    fn empty_remote_and_both_empty() {
        let frame = Framing::default();
        let (local, _) = sets(5, 10_000, 0);
        let o = run(&local, &[], &frame);
        assert_eq!(o.have.len(), 10_000);
        let o = run(&[], &[], &frame);
        assert_eq!(o.cost.round_trips, 1);
        assert_eq!(o.cost.stanzas, 2);
    }

    #[test]
    fn smallest_frames_are_respected() {
        let frame = Framing::default();
        // The figures the module documentation gives.
        assert_eq!(frame_size_limit(&frame), Ok(49_047));
        let min = min_max_bytes(&frame);
        assert_eq!(min, 5_603);
        let small = frame.clone().with_max_bytes(min);
        let limit = frame_size_limit(&small).unwrap();
        assert!((MIN_FRAME_SIZE_LIMIT..MIN_FRAME_SIZE_LIMIT + 3).contains(&limit));
        assert_eq!(
            frame_size_limit(&frame.clone().with_max_bytes(min - 1)),
            Err(Error::FrameTooSmall {
                max_bytes: min - 1,
                min_max_bytes: min
            })
        );
        assert!(try_reconcile(&[], &[], &frame.clone().with_max_bytes(min - 1)).is_err());
        // A full transfer and a mixed one, each stanza at most `min` bytes (checked in `run`).
        let (remote, _) = sets(6, 20_000, 0);
        let o = run(&[], &remote, &small);
        assert!(o.cost.round_trips > 100);
        assert!(o.to_initiator.max_stanza_bytes <= min as u64);
        let (local, remote) = sets(7, 50_000, 2_000);
        run(&local, &remote, &small);
    }

    #[test]
    fn long_and_odd_jids_are_escaped_and_fit() {
        let frame = Framing::new("a&b.example", "x'y\".example").with_max_bytes(6000);
        let s = stanza(&frame, Direction::ToResponder, "neg7", b"\x61\x00");
        assert!(s.starts_with(
            "<iq from='a&amp;b.example' to='x&apos;y&quot;.example' id='neg7' type='set'>"
        ));
        let (local, remote) = sets(8, 20_000, 300);
        run(&local, &remote, &frame);
    }

    #[test]
    fn bytes_are_wire_len_of_the_parsed_stanza() {
        // Our count equals presence_sync's own measure of the same stanza declared in
        // jabber:server, and the payload survives the round trip through XML.
        let frame = Framing::default();
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for direction in [Direction::ToResponder, Direction::ToInitiator] {
            let s = stanza(&frame, direction, "neg42", &payload);
            let declared = s.replacen("<iq ", "<iq xmlns='jabber:server' ", 1);
            let element: minidom::Element = declared.parse().unwrap();
            assert_eq!(presence_sync::sim::wire_len(&element), s.len() as u64);
            let child = element.get_child("negentropy", NS).unwrap();
            assert_eq!(BASE64.decode(child.text()).unwrap(), payload);
            assert_eq!(element.attr("id"), Some("neg42"));
        }
    }

    #[test]
    fn deterministic_and_independent_of_input_order() {
        let frame = Framing::default();
        let (local, remote) = sets(9, 20_000, 64);
        let a = run(&local, &remote, &frame);
        let b = run(&local, &remote, &frame);
        assert_eq!(a, b);
        let mut trace_a = Vec::new();
        reconcile_traced(&local, &remote, &frame, &mut |_, s| {
            trace_a.push(s.to_owned())
        })
        .unwrap();
        let (mut l, mut r) = (local.clone(), remote.clone());
        l.reverse();
        let third = r.len() / 3;
        r.rotate_left(third);
        // Duplicates count once.
        l.extend_from_slice(&local[..10]);
        let mut trace_b = Vec::new();
        let c = reconcile_traced(&l, &r, &frame, &mut |_, s| trace_b.push(s.to_owned())).unwrap();
        assert_eq!(a, c);
        assert_eq!(trace_a, trace_b);
    }

    #[test]
    fn swapping_roles_swaps_have_and_need() {
        let frame = Framing::default();
        let (local, remote) = sets(10, 10_000, 40);
        let a = run(&local, &remote, &frame);
        let b = run(&remote, &local, &frame);
        assert_eq!(a.have, b.need);
        assert_eq!(a.need, b.have);
    }
}
