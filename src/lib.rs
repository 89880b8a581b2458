//! # presence-sync
//!
//! The reference implementation of *incremental presence resynchronization between federated
//! XMPP servers* (XEP draft in `xep/presence-sync.xml`, namespace `urn:xmpp:presence-sync:0`).
//!
//! When two federated servers lose their link or one restarts, RFC 6121 puts presence right one
//! subscription edge at a time: a probe and an answer per edge, a presence per remote
//! subscriber, and nothing at all after a bare link loss. This crate lets two servers instead
//! compare *digests* of what they share and exchange only what differs.
//!
//! ## Contract
//!
//! For one pair of domains A and B, each server can compute, from its own data only:
//!
//! - the **edge set**: every cross-domain subscription edge `(publisher, subscriber, state)`
//!   between A and B, projected from its local rosters ([`model::edge::project`]). When the
//!   two servers' rosters agree, both projections are the *same set*, so equal digests mean
//!   agreement and unequal digests locate the disagreement;
//! - its **published presence** towards the peer (its own available publishers that the peer
//!   subscribes to, with their presence and the subscribers they block), and its **cache** of
//!   the peer's published presence. Published on one side equals cached on the other exactly
//!   when the cache is right.
//!
//! Each of the three is digested into a Merkle-hashed bucket tree ([`digest`]): the root (a 16-byte
//! fingerprint and a count) says in one exchange whether the sides agree, and descending only
//! into differing nodes finds the `d` differing items with work proportional to `d`, not to
//! the size `n` of the set. Every change to a roster or a presence updates the digests in
//! `O(depth)`; nothing is ever rebuilt to answer a comparison.
//!
//! ## Data flow
//!
//! ```text
//!  rosters (model::Roster, per local user)          sessions' presence (model::PublisherPresence)
//!        │ model::edge::project(peer domain)                    │ only publishers the peer subscribes to
//!        ▼                                                      ▼
//!  edges (publisher, subscriber, state)             publisher ──► presence (+ except list)
//!        │ canonical encoding + keyed hash                      │ canonical encodings + keyed hashes
//!        ▼ (digest::PairHasher, BLAKE3 or SHA-256)              ▼
//!  leaf hash ── first nibbles = bucket              key hash ── first nibbles = bucket; leaf = key+value
//!        │                                                      │
//!        ▼                                                      ▼
//!  digest::EdgeDigest ─┐                           digest::PresenceDigest (published, cached)
//!                      ▼                                        │
//!        digest::BucketTree: sum mod 2^256 and count per node, 16 children per node
//!                      │
//!                      ▼
//!        root fingerprint + count ──► <hello/>;  node fingerprints ──► <reconcile/> (wire)
//! ```
//!
//! ## Example
//!
//! Two servers project the same edges from mirrored rosters, so their roots agree; one lost
//! subscription on one side is found in exactly one bucket.
//!
//! ```
//! use jid::BareJid;
//! use presence_sync::digest::{EdgeDigest, HashAlgo, PairHasher, Prefix};
//! use presence_sync::model::{edge::project, NamedState, Roster, Subscription};
//!
//! let juliet = BareJid::new("juliet@capulet.lit").unwrap();
//! let romeo = BareJid::new("romeo@montague.lit").unwrap();
//!
//! // capulet.lit's roster of juliet, and montague.lit's roster of romeo: mutual subscription.
//! let mut at_capulet = Roster::new();
//! at_capulet.set(romeo.clone(), Subscription::named(NamedState::Both));
//! let mut at_montague = Roster::new();
//! at_montague.set(juliet.clone(), Subscription::named(NamedState::Both));
//!
//! let digest = |user: &BareJid, roster: &Roster, peer: &str| {
//!     let edges: Vec<_> = project([(user, roster)], peer).collect();
//!     let pair = PairHasher::new(HashAlgo::Blake3, "capulet.lit", "montague.lit");
//!     EdgeDigest::build(pair, edges.len() as u64, edges.iter().map(|e| (e.clone(), e.into())))
//! };
//! let a = digest(&juliet, &at_capulet, "montague.lit");
//! let b = digest(&romeo, &at_montague, "capulet.lit");
//! assert_eq!(a.len(), 2); // juliet -> romeo and romeo -> juliet
//! assert_eq!(a.tree().fingerprint(Prefix::ROOT), b.tree().fingerprint(Prefix::ROOT));
//!
//! // montague.lit lost romeo's subscription to juliet (romeo's item became "From").
//! at_montague.set(juliet.clone(), Subscription::named(NamedState::From));
//! let b = digest(&romeo, &at_montague, "capulet.lit");
//! assert_ne!(a.tree().fingerprint(Prefix::ROOT), b.tree().fingerprint(Prefix::ROOT));
//! assert_eq!(a.tree().diff(b.tree()).len(), 1);
//! ```
//!
//! ## Modules
//!
//! - [`model`]: rosters with the full RFC 6121 subscription state machine (Appendix A),
//!   XEP-0191 block lists, edges and their projection, presence with canonical encodings,
//!   boot epochs, and the ground-truth oracle. No I/O.
//! - [`digest`]: hash agility, per-pair keys, the additive bucket tree, set and map digests.
//! - [`wire`]: the XEP's elements as xso types, strict parsing, typed errors mapped to XMPP
//!   errors.
//! - [`engine`]: the sync engine, sans-IO: reconciliation of presence sets and of the edge set,
//!   the repair decisions, and [`engine::Session`], the per-peer state machine a server embeds
//!   (inputs: link events with the peer's stream features, stanzas of the extension, local
//!   roster and presence changes, timers; outputs: stanzas for the peer and events such as
//!   local deliveries, repairs sent and fallback to RFC 6121).
//! - [`server`]: a model XMPP server (users, rosters, sessions) with the RFC 6121 baselines of
//!   Prosody and ejabberd, and the extension as its sync peer mode; the unit simulations
//!   restart.
//! - `serve` (feature `serve`): the server process: storage of accounts, rosters, block lists
//!   and the boot epoch (SQLite), and c2s authentication (SASL, XEP-0077).
//! - [`conformance`]: the conformance suite: any implementation of the XEP driven through
//!   restart, outage, mismatch, legacy-peer, hub and hostile-peer scenarios on generated
//!   federations, each end state checked against the ground truth and every stanza it sends
//!   audited, reported requirement by requirement (text, JSON, stanza traces), with broken
//!   variants that it must catch.
//! - [`sim`]: the deterministic driver that runs servers over in-memory s2s links.
//! - [`workload`]: seeded, reproducible workloads for tests, the CLI and the benchmarks.
#![warn(missing_docs)]

#[cfg(feature = "suite")]
#[path = "../conformance/mod.rs"]
pub mod conformance;
pub mod digest;
pub mod engine;
pub mod model;
#[cfg(feature = "serve")]
pub mod serve;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sim;
pub mod stream;
pub mod wire;
#[cfg(feature = "server")]
pub mod workload;
