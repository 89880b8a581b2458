//! Negotiation: the stream feature and the hello exchange (XEP §Stream Feature, XEP §Choosing
//! the Hash Algorithm,
//! XEP §Hello).

use std::fmt;

use xso::error::Error;
use xso::{AsXml, AsXmlText, FromXml, FromXmlText};

use crate::digest::{Fingerprint, HashAlgo};
use crate::model::Epoch;
use crate::wire::codec::{Bounded, Count, OptCount};
use crate::wire::limits::Limits;
use crate::wire::malformed::Malformed;
use crate::wire::ns;

/// XEP §Stream Feature: the optional s2s stream feature
/// `<presence-sync xmlns='urn:xmpp:presence-sync:0'>` listing the hash algorithms the
/// advertising server supports. Parsing guarantees at least one `<hash/>`, none with an empty
/// or repeated name, and that `sha-256` is among them (XEP §Stream Feature [PS-3]).
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "presence-sync",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = StreamFeature::check
)]
pub struct StreamFeature {
    /// The advertised algorithms.
    #[xml(child(n = ..))]
    pub hashes: Vec<FeatureHash>,
}

/// XEP §Stream Feature: one `<hash algo='...'/>` of the stream feature. The name is
/// kept as text: a peer may advertise algorithms this implementation does not know, which are
/// simply not chosen.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq, Hash)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "hash", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct FeatureHash {
    /// XEP-0300 name of the algorithm.
    #[xml(attribute)]
    pub algo: String,
}

impl StreamFeature {
    /// The feature advertising `algos`, in that order of preference.
    pub fn new(algos: &[HashAlgo]) -> StreamFeature {
        StreamFeature {
            hashes: algos
                .iter()
                .map(|a| FeatureHash {
                    algo: a.name().to_owned(),
                })
                .collect(),
        }
    }

    /// The advertised algorithms this implementation supports, in the peer's order.
    pub fn supported(&self) -> Vec<HashAlgo> {
        self.hashes
            .iter()
            .filter_map(|h| h.algo.parse().ok())
            .collect()
    }

    /// The hash algorithm of a session with this peer, given the algorithms we support, as XEP
    /// §Choosing the Hash Algorithm [PS-4] requires: `blake3` if both sides advertise it,
    /// otherwise `sha-256` if both do; `None` if they have neither in common.
    pub fn choose(&self, ours: &[HashAlgo]) -> Option<HashAlgo> {
        let theirs = self.supported();
        [HashAlgo::Blake3, HashAlgo::Sha256]
            .into_iter()
            .find(|a| ours.contains(a) && theirs.contains(a))
    }

    fn check(&mut self) -> Result<(), Error> {
        if self.hashes.is_empty() {
            return Err(Error::text_parse_error(Malformed::Missing("<hash/>")));
        }
        let mut seen = Vec::with_capacity(self.hashes.len());
        for h in &self.hashes {
            if h.algo.is_empty() {
                return Err(Error::text_parse_error(Malformed::Missing(
                    "algorithm name in <hash/>",
                )));
            }
            if seen.contains(&h.algo.as_str()) {
                return Err(Error::text_parse_error(Malformed::Duplicate {
                    what: "hash",
                    key: h.algo.clone(),
                }));
            }
            seen.push(h.algo.as_str());
        }
        if !seen.contains(&HashAlgo::Sha256.name()) {
            return Err(Error::text_parse_error(Malformed::Missing(
                "'sha-256' in <presence-sync/> (mandatory to implement)",
            )));
        }
        Ok(())
    }
}

/// Which digest a [`Root`] summarises (XEP §Hello, `set` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetName {
    /// `edges`: the edge set E(A,B), the same set on both sides.
    Edges,
    /// `published`: the sender's authoritative presence set P(sender -> receiver).
    Published,
    /// `cached`: the sender's cache of P(receiver -> sender).
    Cached,
}

impl SetName {
    /// All three sets, in the order the XEP lists them.
    pub const ALL: [SetName; 3] = [SetName::Edges, SetName::Published, SetName::Cached];

    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            SetName::Edges => "edges",
            SetName::Published => "published",
            SetName::Cached => "cached",
        }
    }
}

impl fmt::Display for SetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromXmlText for SetName {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        SetName::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| {
                Error::text_parse_error(Malformed::UnknownValue {
                    attr: "set",
                    value: text,
                })
            })
    }
}

impl AsXmlText for SetName {
    fn as_xml_text(&self) -> Result<std::borrow::Cow<'_, str>, Error> {
        Ok(self.name().into())
    }
}

/// XEP §Hello: `<root set='...' count='...' fp='...'/>`, the root of one of the sender's
/// digests: number of items and fingerprint.
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "root", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Root {
    /// Which set.
    #[xml(attribute)]
    pub set: SetName,
    /// Number of items in the set.
    #[xml(attribute(codec = Count("count")))]
    pub count: u64,
    /// Fingerprint of the root node.
    #[xml(attribute)]
    pub fp: Fingerprint,
    /// XEP §Sketches: how many items of the set the sender changed since its last session
    /// with the receiver ended (edges, published only); absent if it does not know.
    #[xml(attribute(default, codec = OptCount("changes")))]
    pub changes: Option<u64>,
}

const MAX_ITEMS: Bounded = Bounded::range("max-items", Limits::MAX_ITEMS);
const MAX_BYTES: Bounded = Bounded::range("max-bytes", Limits::MAX_BYTES);
const WINDOW: Bounded = Bounded::range("window", Limits::WINDOW);
const LEAF_ITEMS: Bounded = Bounded::range("leaf-items", Limits::LEAF_ITEMS);

/// XEP §Hello: opens a sync session (in an `<iq type='set'/>`) and answers it (in the
/// `<iq type='result'/>`): the sender's epoch, the peer epoch its cache belongs to, the hash
/// algorithm, the sender's limits, and its three digest roots.
///
/// Parsing guarantees the limits are in range, that there is exactly one root per set, and
/// that a hello without `peer-epoch` has an empty cached root (XEP §Hello [PS-18]).
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq)]
#[xml(
    namespace = ns::PRESENCE_SYNC,
    name = "hello",
    on_unknown_attribute = Fail,
    on_unknown_child = Fail,
    deserialize_callback = Hello::check
)]
pub struct Hello {
    /// The sender's boot epoch.
    #[xml(attribute)]
    pub epoch: Epoch,
    /// The receiver's epoch the sender's cache belongs to; `None` if the sender has no cache of
    /// the receiver.
    #[xml(attribute(name = "peer-epoch", default))]
    pub peer_epoch: Option<Epoch>,
    /// The algorithm of every fingerprint of the session.
    #[xml(attribute)]
    pub hash: HashAlgo,
    /// `max-items` (absent: the default).
    #[xml(attribute(name = "max-items", default, codec = MAX_ITEMS))]
    pub max_items: Option<u32>,
    /// `max-bytes` (absent: the default).
    #[xml(attribute(name = "max-bytes", default, codec = MAX_BYTES))]
    pub max_bytes: Option<u32>,
    /// `window` (absent: the default).
    #[xml(attribute(default, codec = WINDOW))]
    pub window: Option<u32>,
    /// `leaf-items` (absent: the default).
    #[xml(attribute(name = "leaf-items", default, codec = LEAF_ITEMS))]
    pub leaf_items: Option<u32>,
    /// One root per set.
    #[xml(child(n = ..))]
    pub roots: Vec<Root>,
}

impl Hello {
    /// A hello stating every limit explicitly, with the roots in the order edges, published,
    /// cached. `limits` must be valid ([`Limits::is_valid`]).
    pub fn new(
        epoch: Epoch,
        peer_epoch: Option<Epoch>,
        hash: HashAlgo,
        limits: &Limits,
        edges: Root,
        published: Root,
        cached: Root,
    ) -> Hello {
        debug_assert!(limits.is_valid(), "{limits:?}");
        Hello {
            epoch,
            peer_epoch,
            hash,
            max_items: Some(limits.max_items),
            max_bytes: Some(limits.max_bytes),
            window: Some(limits.window),
            leaf_items: Some(limits.leaf_items),
            roots: vec![edges, published, cached],
        }
    }

    /// The sender's limits, defaults filled in.
    pub fn limits(&self) -> Limits {
        let d = Limits::DEFAULT;
        Limits {
            max_items: self.max_items.unwrap_or(d.max_items),
            max_bytes: self.max_bytes.unwrap_or(d.max_bytes),
            window: self.window.unwrap_or(d.window),
            leaf_items: self.leaf_items.unwrap_or(d.leaf_items),
        }
    }

    /// The root of `set` (always present in a parsed hello).
    pub fn root(&self, set: SetName) -> Option<&Root> {
        self.roots.iter().find(|r| r.set == set)
    }

    fn check(&mut self) -> Result<(), Error> {
        for (i, root) in self.roots.iter().enumerate() {
            if self.roots[..i].iter().any(|r| r.set == root.set) {
                return Err(Error::text_parse_error(Malformed::Duplicate {
                    what: "root",
                    key: format!("set='{}'", root.set),
                }));
            }
        }
        if let Some(set) = SetName::ALL.into_iter().find(|s| self.root(*s).is_none()) {
            return Err(Error::text_parse_error(Malformed::MissingRoot(set.name())));
        }
        match self.root(SetName::Cached) {
            Some(cached) if self.peer_epoch.is_none() && cached.count != 0 => {
                Err(Error::text_parse_error(Malformed::Structure(format!(
                    "root set='cached' has count {} without a peer-epoch (must be 0)",
                    cached.count
                ))))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{WireElement, WireError};
    use minidom::Element;

    const HELLO: &str = "<hello xmlns='urn:xmpp:presence-sync:0' epoch='0123456789abcdef' \
        peer-epoch='fedcba9876543210' hash='blake3' max-items='256' max-bytes='65536' \
        window='4' leaf-items='16'>\
        <root set='edges' count='1234' fp='AAAAAAAAAAAAAAAAAAAAAA=='/>\
        <root set='published' count='300' fp='AQEBAQEBAQEBAQEBAQEBAQ=='/>\
        <root set='cached' count='280' fp='AgICAgICAgICAgICAgICAg=='/></hello>";

    fn err(xml: &str) -> String {
        Hello::parse_bytes(xml.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn parse() {
        let hello = Hello::parse_bytes(HELLO.as_bytes()).unwrap();
        assert_eq!(hello.epoch, Epoch(0x0123456789abcdef));
        assert_eq!(hello.peer_epoch, Some(Epoch(0xfedcba9876543210)));
        assert_eq!(hello.hash, HashAlgo::Blake3);
        assert_eq!(hello.limits(), Limits::DEFAULT);
        let edges = hello.root(SetName::Edges).unwrap();
        assert_eq!((edges.count, edges.fp), (1234, Fingerprint([0; 16])));
        assert_eq!(
            hello.root(SetName::Cached).unwrap().fp,
            Fingerprint([2; 16])
        );
    }

    #[test]
    fn serialise() {
        let hello = Hello::parse_bytes(HELLO.as_bytes()).unwrap();
        let elem = Element::from(hello.clone());
        assert_eq!(elem, HELLO.parse::<Element>().unwrap());
        let rebuilt = Hello::new(
            hello.epoch,
            hello.peer_epoch,
            hello.hash,
            &hello.limits(),
            hello.roots[0],
            hello.roots[1],
            hello.roots[2],
        );
        assert_eq!(rebuilt, hello);
    }

    #[test]
    fn defaults_when_absent() {
        let xml = HELLO.replace(
            " max-items='256' max-bytes='65536' window='4' leaf-items='16'",
            "",
        );
        let hello = Hello::parse_bytes(xml.as_bytes()).unwrap();
        assert_eq!(hello.max_items, None);
        assert_eq!(hello.limits(), Limits::DEFAULT);
        assert_eq!(Element::from(hello), xml.parse::<Element>().unwrap());
    }

    #[test]
    fn no_cache_without_peer_epoch() {
        let xml = HELLO.replace(" peer-epoch='fedcba9876543210'", "");
        assert_eq!(
            err(&xml),
            "hello: root set='cached' has count 280 without a peer-epoch (must be 0)"
        );
        let first = xml.replace("set='cached' count='280'", "set='cached' count='0'");
        let hello = Hello::parse_bytes(first.as_bytes()).unwrap();
        assert_eq!(hello.peer_epoch, None);
    }

    #[test]
    fn out_of_range() {
        for (from, to, msg) in [
            (
                "max-items='256'",
                "max-items='0'",
                "hello: max-items 0 out of range 1..=4096",
            ),
            (
                "max-items='256'",
                "max-items='4097'",
                "hello: max-items 4097 out of range 1..=4096",
            ),
            (
                "max-bytes='65536'",
                "max-bytes='4095'",
                "hello: max-bytes 4095 out of range 4096..=1048576",
            ),
            (
                "window='4'",
                "window='65'",
                "hello: window 65 out of range 1..=64",
            ),
            (
                "leaf-items='16'",
                "leaf-items='257'",
                "hello: leaf-items 257 out of range 1..=256",
            ),
            (
                "window='4'",
                "window='four'",
                "hello: window \"four\" is not a canonical decimal number",
            ),
            (
                "count='1234'",
                "count='-1'",
                "hello: count \"-1\" is not a canonical decimal number",
            ),
        ] {
            assert_eq!(err(&HELLO.replace(from, to)), msg);
        }
    }

    #[test]
    fn roots() {
        let cached = "<root set='cached' count='280' fp='AgICAgICAgICAgICAgICAg=='/>";
        assert_eq!(
            err(&HELLO.replace(cached, "")),
            "hello: missing root set='cached'"
        );
        let twice = HELLO.replace(cached, &cached.replace("cached", "published"));
        assert_eq!(err(&twice), "hello: duplicate root set='published'");
        assert_eq!(
            err(&HELLO.replace("set='cached'", "set='all'")),
            "hello: set \"all\" is not defined"
        );
        assert_eq!(
            err(&HELLO.replace("AgICAgICAgICAgICAgICAg==", "AgICAgICAgICAgICAgIC")),
            "hello: fp: 15 bytes, expected 16"
        );
    }

    #[test]
    fn bad_epochs_and_hash() {
        assert_eq!(
            err(&HELLO.replace("0123456789abcdef", "0123456789ABCDEF")),
            "hello: epoch \"0123456789ABCDEF\" is not 16 lowercase hexadecimal digits"
        );
        let e = Hello::parse_bytes(HELLO.replace("blake3", "md5").as_bytes()).unwrap_err();
        assert_eq!(
            e,
            WireError::UnsupportedHash {
                element: "hello",
                algo: "md5".into()
            }
        );
        assert_eq!(e.to_string(), "hello: unsupported hash algorithm \"md5\"");
    }

    #[test]
    fn strict() {
        assert_eq!(
            err(&HELLO.replace("window='4'", "window='4' colour='blue'")),
            "hello: Unknown attribute in Hello element."
        );
        assert_eq!(
            err(&HELLO.replace("</hello>", "<extra/></hello>")),
            "hello: Unknown child in Hello element."
        );
        assert_eq!(
            err(&HELLO.replace("</hello>", "<x xmlns='urn:example'/></hello>")),
            "hello: Unknown child in Hello element."
        );
        assert_eq!(
            err(&HELLO.replace(
                "fp='AAAAAAAAAAAAAAAAAAAAAA=='",
                "fp='AAAAAAAAAAAAAAAAAAAAAA==' x='1'"
            )),
            "hello: Unknown attribute in Root element."
        );
        assert_eq!(
            err(&HELLO.replace(" epoch='0123456789abcdef'", "")),
            "hello: Required attribute field 'epoch' on Hello element missing."
        );
        assert_eq!(
            err(&HELLO.replace("</hello>", "text</hello>")),
            "hello: Unexpected text content"
        );
    }

    #[test]
    fn stream_feature() {
        let xml = "<presence-sync xmlns='urn:xmpp:presence-sync:0'>\
                   <hash algo='blake3'/><hash algo='sha-256'/><hash algo='md5'/></presence-sync>";
        let feature = StreamFeature::parse_bytes(xml.as_bytes()).unwrap();
        assert_eq!(
            feature.supported(),
            vec![HashAlgo::Blake3, HashAlgo::Sha256]
        );
        assert_eq!(
            feature.choose(&[HashAlgo::Sha256, HashAlgo::Blake3]),
            Some(HashAlgo::Blake3)
        );
        assert_eq!(feature.choose(&[HashAlgo::Sha256]), Some(HashAlgo::Sha256));
        let sha_only = StreamFeature::new(&[HashAlgo::Sha256]);
        assert_eq!(sha_only.choose(&HashAlgo::ALL), Some(HashAlgo::Sha256));
        let unknown = StreamFeature {
            hashes: vec![FeatureHash { algo: "md5".into() }],
        };
        assert_eq!(unknown.choose(&HashAlgo::ALL), None);
        let ours = StreamFeature::new(&HashAlgo::ALL);
        assert_eq!(
            Element::from(ours),
            "<presence-sync xmlns='urn:xmpp:presence-sync:0'><hash algo='blake3'/>\
             <hash algo='sha-256'/></presence-sync>"
                .parse::<Element>()
                .unwrap()
        );
        let dup = xml.replace("md5", "blake3");
        assert_eq!(
            StreamFeature::parse_bytes(dup.as_bytes())
                .unwrap_err()
                .to_string(),
            "presence-sync: duplicate hash blake3"
        );
        let none = "<presence-sync xmlns='urn:xmpp:presence-sync:0'/>";
        assert_eq!(
            StreamFeature::parse_bytes(none.as_bytes())
                .unwrap_err()
                .to_string(),
            "presence-sync: no <hash/>"
        );
        let empty = xml.replace("md5", "");
        assert_eq!(
            StreamFeature::parse_bytes(empty.as_bytes())
                .unwrap_err()
                .to_string(),
            "presence-sync: no algorithm name in <hash/>"
        );
        let no_sha = xml.replace("sha-256", "sha-512");
        assert_eq!(
            StreamFeature::parse_bytes(no_sha.as_bytes())
                .unwrap_err()
                .to_string(),
            "presence-sync: no 'sha-256' in <presence-sync/> (mandatory to implement)"
        );
    }
}
