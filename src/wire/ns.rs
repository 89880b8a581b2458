//! XML namespaces and service-discovery features (XEP §Service Discovery).

/// The namespace of every element of this protocol, and the disco#info feature a domain
/// advertises when it supports it (XEP §Service Discovery).
pub const PRESENCE_SYNC: &str = "urn:xmpp:presence-sync:0";

/// disco#info feature advertising BLAKE3 fingerprints, in the XEP-0300 form
/// `urn:xmpp:hash-function-text-names:<name>` (the name `blake3` is registered by this XEP).
pub const HASH_FEATURE_BLAKE3: &str = "urn:xmpp:hash-function-text-names:blake3";

/// disco#info feature advertising SHA-256 fingerprints (XEP-0300; mandatory to implement).
pub const HASH_FEATURE_SHA_256: &str = "urn:xmpp:hash-function-text-names:sha-256";

/// The stanza namespace of server-to-server streams (RFC 6120 §4.8.3). Presence carried inside
/// an `<item/>` is qualified by it (XEP §Items).
pub const JABBER_SERVER: &str = "jabber:server";

/// The namespace xmpp-parsers gives its stanza types (`jabber:client`, or
/// `jabber:component:accept` with its `component` feature); [`super::ServerNs`] maps it to
/// [`JABBER_SERVER`] and back.
pub const STANZA_DEFAULT: &str = xmpp_parsers::ns::DEFAULT_NS;

/// The disco#info feature of one hash algorithm.
pub fn hash_feature(algo: crate::digest::HashAlgo) -> &'static str {
    match algo {
        crate::digest::HashAlgo::Blake3 => HASH_FEATURE_BLAKE3,
        crate::digest::HashAlgo::Sha256 => HASH_FEATURE_SHA_256,
    }
}
