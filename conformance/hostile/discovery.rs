//! Discovery and negotiation (XEP §Discovery and Negotiation): what the implementation under
//! test advertises in disco#info (PS-1) and in its stream feature (PS-3), and the hash
//! algorithm it chooses with a peer (PS-2, PS-4).

use std::collections::BTreeSet;

use minidom::Element;
use xmpp_parsers::disco::DiscoInfoResult;

use super::bench::{A, B, Bench};
use super::verdict::{self, show};
use crate::conformance::check::{Check, Outcome};
use crate::conformance::subject::{Implementation, Reference};
use crate::digest::HashAlgo;
use crate::wire::{StreamFeature, WireElement, ns};

/// Extra subscriptions of the benches where the subject must send the hello itself (PS-4):
/// enough that the pair is no small peer at the XEP's default threshold (PS-93).
const LARGE: usize = crate::engine::SMALL_PEER as usize / 2 + 1;

/// The prefix of the XEP-0300 hash features.
const HASH_FEATURE: &str = "urn:xmpp:hash-function-text-names:";

/// The `<presence-sync/>` stream feature among `features`, parsed.
pub fn stream_feature(features: &[Element]) -> Option<StreamFeature> {
    features
        .iter()
        .filter(|f| f.is("presence-sync", ns::PRESENCE_SYNC))
        .find_map(|f| StreamFeature::parse_element(f).ok())
}

/// PS-3: the stream feature lists at least one algorithm, sha-256 among them.
pub fn feature_verdict(feature: Option<&StreamFeature>) -> Outcome {
    match feature {
        None => Outcome::Fail("no valid <presence-sync/> stream feature".into()),
        Some(f) if !f.hashes.iter().any(|h| h.algo == "sha-256") => Outcome::Fail(format!(
            "the stream feature lists {:?}, not sha-256",
            f.hashes.iter().map(|h| h.algo.as_str()).collect::<Vec<_>>()
        )),
        Some(_) => Outcome::Pass,
    }
}

/// PS-1: the disco#info result advertises the namespace and exactly one hash feature per
/// algorithm of the stream feature (`algos`, XEP-0300 names), sha-256 among them, with an
/// identity.
pub fn disco_verdict(answer: Option<&Element>, algos: &BTreeSet<String>) -> Outcome {
    let payload = match verdict::result_answer(answer) {
        Ok(Some(p)) => p,
        Ok(None) => return Outcome::Fail("an empty result".into()),
        Err(e) => return Outcome::Fail(e),
    };
    let Ok(info) = xso::transform::<DiscoInfoResult, _>(&payload) else {
        return Outcome::Fail(format!("not a disco#info result: {}", show(&payload)));
    };
    let mut wrong = Vec::new();
    if info.identities.is_empty() {
        wrong.push("no identity".to_owned());
    }
    if !info.features.contains(ns::PRESENCE_SYNC) {
        wrong.push(format!("no feature {}", ns::PRESENCE_SYNC));
    }
    let hashes: BTreeSet<String> = info
        .features
        .iter()
        .filter_map(|f| f.strip_prefix(HASH_FEATURE))
        .map(str::to_owned)
        .collect();
    if !hashes.contains("sha-256") {
        wrong.push("no hash feature for sha-256".into());
    }
    if &hashes != algos {
        wrong.push(format!(
            "hash features {hashes:?} differ from the stream feature's {algos:?}"
        ));
    }
    if wrong.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(wrong.join("; "))
    }
}

/// PS-2, PS-4: with a peer advertising the stream feature, a session was started and every
/// hello used `expected`; the views converged (`diff` from the truth is empty; a livelock is
/// reported there too).
pub fn hash_verdict(hellos: &[HashAlgo], expected: HashAlgo, diff: &[String]) -> Outcome {
    if hellos.is_empty() {
        return Outcome::Fail(
            "no hello: the peer's stream feature was not taken as support".into(),
        );
    }
    if let Some(other) = hellos.iter().find(|h| **h != expected) {
        return Outcome::Fail(format!(
            "a hello used {}, expected {}",
            other.name(),
            expected.name()
        ));
    }
    match diff.first() {
        Some(d) => Outcome::Fail(format!("did not converge: {d}")),
        None => Outcome::Pass,
    }
}

/// The hash algorithms of every hello [`B`] saw (sent and received).
fn hello_hashes(bench: &Bench) -> Vec<HashAlgo> {
    let b = bench.net.host(B);
    let all = b.received.iter().chain(&b.sent).map(|(_, _, s)| s);
    super::bench::hellos(all).iter().map(|h| h.hash).collect()
}

/// What keeps the bench from having converged: a livelock, or differences from the truth.
fn left(bench: &Bench) -> Vec<String> {
    match &bench.stuck {
        Some(why) => vec![why.clone()],
        None => bench.diff(),
    }
}

/// The discovery checks (see [`super::discovery_checks`]).
pub(super) fn checks(imp: &dyn Implementation, seed: u64) -> Vec<Check> {
    let mut out = Vec::new();
    let feature = stream_feature(&imp.server(A, seed).stream_features());
    out.push(Check::with(
        "discovery: the stream feature lists sha-256",
        &["PS-3"],
        feature_verdict(feature.as_ref()),
    ));
    let algos: BTreeSet<String> = feature
        .iter()
        .flat_map(|f| f.hashes.iter().map(|h| h.algo.clone()))
        .collect();

    let mut bench = Bench::new(imp, &Reference::default(), seed);
    let id = bench.fresh_id();
    let query: Element = format!(
        "<iq xmlns='jabber:server' from='{B}' to='{A}' id='{id}' type='get'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    )
    .parse()
    .expect("well-formed");
    bench.inject(query);
    bench.settle();
    out.push(Check::with(
        "discovery: disco#info advertises the extension and its hash algorithms",
        &["PS-1"],
        disco_verdict(bench.answer(&id), &algos),
    ));

    let mut sha_only = Reference::default();
    sha_only.setup.config.algos = vec![HashAlgo::Sha256];
    let bench = Bench::sized(imp, &sha_only, seed, LARGE);
    out.push(Check::with(
        "discovery: with a peer advertising only sha-256, the session uses sha-256",
        &["PS-2", "PS-4"],
        hash_verdict(&hello_hashes(&bench), HashAlgo::Sha256, &left(&bench)),
    ));

    let bench = Bench::sized(imp, &Reference::default(), seed, LARGE);
    let both = if algos.contains("blake3") {
        HashAlgo::Blake3
    } else {
        HashAlgo::Sha256
    };
    out.push(Check::with(
        format!(
            "discovery: with a peer advertising blake3 and sha-256, the session uses {}",
            both.name()
        ),
        &["PS-2", "PS-4"],
        hash_verdict(&hello_hashes(&bench), both, &left(&bench)),
    ));
    out
}
