//! The tunables of a session: the reference's announced limits, the XEP's default timers and
//! thresholds, and the deliberately broken variants the conformance suite must catch.

use crate::digest::HashAlgo;
use crate::wire::Limits;

/// One second in [`super::Time`] units (microseconds).
pub(super) const SECOND: u64 = 1_000_000;

/// The XEP's default small-peer threshold (PS-93): the largest number of shared edges for
/// which RFC 6121 costs no more than a session, measured on the hub scenario.
pub const SMALL_PEER: u64 = 40;

/// The limits the reference announces: the XEP's defaults, with the largest window the XEP
/// allows (XEP §Flow Control and Limits, §Choices Left to Implementations). The window paces
/// a restart's pull, about one round trip per window of answers (the packet bench's cold
/// restart at 10^6 edges measures it); the cost is at most window × max-bytes (4 MiB) of a
/// peer's requests and answers in flight. max-items 512: a restart's query pulls up to 512
/// contacts of active users one by one (most are offline and bring nothing), and a list of
/// 512 ids (5 464 characters of base64) stays within the 8 192 that XML parsers such as rxml
/// accept in an attribute value.
pub const LIMITS: Limits = Limits {
    window: 64,
    max_items: 512,
    ..Limits::DEFAULT
};

/// Tunables of a session (the XEP's defaults, and the reference's [`LIMITS`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Hash algorithms this server supports, preferred first (PS-1: sha-256 is mandatory).
    pub algos: Vec<HashAlgo>,
    /// The limits this server announces in its hellos (XEP §Hello).
    pub limits: Limits,
    /// How long a cache of a peer stays usable in the suspended mode (PS-56), µs.
    pub grace: u64,
    /// After how long an unanswered request ends the session (PS-51), µs.
    pub request_timeout: u64,
    /// The first retry delay after a failed session (PS-57), µs; doubled after each failure.
    pub retry: u64,
    /// Failed sessions in a row after which the peer is treated as legacy (PS-58).
    pub max_failures: u32,
    /// Descents of the edge set in a row, each finding a difference the one before found,
    /// after which the peer is treated as legacy (PS-38).
    pub max_descents: u32,
    /// How long the side that is not the edge driver waits for the driver's hello before
    /// sending its own (PS-16), µs.
    pub hello_wait: u64,
    /// The small-peer threshold of PS-93: with a peer that shares at most this many edges and
    /// of which nothing is cached, this side starts no session and applies RFC 6121 (a hello
    /// of the peer is still answered). 0: only peers that share nothing.
    pub small_peer: u64,
    /// A deliberate fault, for proving that the conformance suite catches it
    /// (`conformance/mutants.rs`). Always `None` in a real server.
    pub mutation: Option<Mutation>,
}

/// A deliberately broken behaviour of the reference engine: the conformance suite must catch
/// each one with a failing check that names the requirement it breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mutation {
    /// Keeps the cache of a peer whose epoch changed (breaks PS-13, PS-19).
    IgnoreNewEpoch,
    /// Forgets the local fan-out of a cached presence change to one of its subscribers
    /// (breaks PS-40).
    ForgetOneSubscriber,
    /// Shows cached presence to local users who block the publisher or are on its except
    /// list (breaks PS-9, PS-79).
    ShowToBlocked,
    /// Accepts items and domain-level presence for JIDs of a domain other than the peer's
    /// (breaks PS-39, PS-74).
    TrustForeignJid,
    /// After a link loss, resumes the session without a hello exchange, as if nothing could
    /// have changed (breaks PS-16, PS-37).
    NeverReverify,
    /// Sends each live presence change per subscriber, as RFC 6121 broadcasts do, instead of
    /// once per publisher (breaks PS-44, PS-66).
    PerEdgePresence,
    /// Sends a live presence change only once none of the session's reconcile queries is
    /// waiting for its answer, after the queries the answers call for, instead of first
    /// (breaks PS-52).
    LiveBehindBulk,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            algos: vec![HashAlgo::Blake3, HashAlgo::Sha256],
            limits: LIMITS,
            grace: 300 * SECOND,
            request_timeout: 60 * SECOND,
            retry: 10 * SECOND,
            max_failures: 3,
            max_descents: 3,
            hello_wait: 2 * SECOND,
            small_peer: SMALL_PEER,
            mutation: None,
        }
    }
}
