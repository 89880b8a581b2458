//! Text forms of the protocol quantities in attributes (XEP §Protocol).
//!
//! Decoding is strict on purpose: a value has exactly one accepted spelling, so that a peer
//! cannot make two servers disagree about what it sent.
//!
//! - epochs, prefixes and hash names use the `FromStr`/`Display` of their types;
//! - fingerprints, id lists and sketches are standard padded base64 (RFC 4648 §4) without whitespace
//!   and without non-zero trailing bits, of exactly the right length;
//! - numbers with a range ([`Bounded`]) are plain decimal `u32`s checked against it;
//! - JIDs ([`BareJidAttr`]) must be bare and valid.
//!
//! Failures are raised as [`Malformed`] (or the value type's own error) inside xso's
//! `TextParseError`, where [`WireError::from_xso`](super::WireError::from_xso) finds them again.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::RangeInclusive;

use base64::engine::general_purpose::STANDARD;
use jid::BareJid;
use xso::error::Error;
use xso::{AsXmlText, FromXmlText, TextCodec};

use crate::digest::sketch::{CELL_BYTES, HASHES, Sketch};
use crate::digest::{Fingerprint, HashAlgo, Prefix, ShortId};
use crate::model::Epoch;
use crate::wire::malformed::{Expected, Malformed};

xso::convert_via_fromstr_and_display!(Epoch, Prefix, HashAlgo);

/// Number of children of a split node, and so of fingerprints in a `fps` attribute.
pub const SPLIT_CHILDREN: usize = crate::digest::prefix::FANOUT;

fn malformed(m: Malformed) -> Error {
    Error::text_parse_error(m)
}

fn decode_base64(attr: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    base64::Engine::decode(&STANDARD, text.as_bytes()).map_err(|e| {
        malformed(Malformed::Base64 {
            attr,
            reason: e.to_string(),
        })
    })
}

/// Standard padded base64 (RFC 4648 §4).
fn encode_base64(bytes: impl AsRef<[u8]>) -> String {
    base64::Engine::encode(&STANDARD, bytes)
}

fn fixed<const N: usize>(attr: &'static str, bytes: &[u8]) -> Result<[u8; N], Error> {
    bytes.try_into().map_err(|_| {
        malformed(Malformed::Length {
            attr,
            bytes: bytes.len(),
            expected: Expected::Exactly(N),
        })
    })
}

/// A single node fingerprint (`<root fp='...'/>`): 16 bytes, 24 base64 characters.
impl FromXmlText for Fingerprint {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        Ok(Fingerprint(fixed("fp", &decode_base64("fp", &text)?)?))
    }
}

impl AsXmlText for Fingerprint {
    fn as_xml_text(&self) -> Result<Cow<'_, str>, Error> {
        Ok(Cow::Owned(encode_base64(self.0)))
    }
}

/// The fingerprints of the 16 children of a node, in child order (`<split fps='...'/>`):
/// exactly 256 bytes on the wire (XEP §Reconciliation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ChildFingerprints(pub [Fingerprint; SPLIT_CHILDREN]);

impl ChildFingerprints {
    /// Number of bytes of the decoded attribute.
    pub const BYTES: usize = SPLIT_CHILDREN * 16;

    /// The fingerprint of child `nibble` (0..16).
    pub fn child(&self, nibble: u8) -> Fingerprint {
        self.0[usize::from(nibble)]
    }
}

impl FromXmlText for ChildFingerprints {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        let bytes = decode_base64("fps", &text)?;
        let all: [u8; Self::BYTES] = fixed("fps", &bytes)?;
        let mut fps = [Fingerprint([0; 16]); SPLIT_CHILDREN];
        for (fp, chunk) in fps.iter_mut().zip(all.chunks_exact(16)) {
            fp.0.copy_from_slice(chunk);
        }
        Ok(ChildFingerprints(fps))
    }
}

impl AsXmlText for ChildFingerprints {
    fn as_xml_text(&self) -> Result<Cow<'_, str>, Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|fp| fp.0).collect();
        Ok(Cow::Owned(encode_base64(bytes)))
    }
}

/// A list of item short ids (`ids`, `lack`, `gone`): base64 of a whole number of 8-byte ids,
/// no id twice; `''` is the empty list (XEP §Reconciliation). Order is kept as received.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct IdList(pub Vec<ShortId>);

impl IdList {
    /// Number of ids.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty list.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids.
    pub fn iter(&self) -> impl Iterator<Item = &ShortId> {
        self.0.iter()
    }
}

impl FromIterator<ShortId> for IdList {
    fn from_iter<I: IntoIterator<Item = ShortId>>(iter: I) -> Self {
        IdList(iter.into_iter().collect())
    }
}

impl FromXmlText for IdList {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        const ATTR: &str = "ids";
        let bytes = decode_base64(ATTR, &text)?;
        if bytes.len() % 8 != 0 {
            return Err(malformed(Malformed::Length {
                attr: ATTR,
                bytes: bytes.len(),
                expected: Expected::MultipleOf(8),
            }));
        }
        let mut seen = HashSet::with_capacity(bytes.len() / 8);
        let mut ids = Vec::with_capacity(bytes.len() / 8);
        for chunk in bytes.chunks_exact(8) {
            let id = ShortId(fixed(ATTR, chunk)?);
            if !seen.insert(id) {
                return Err(malformed(Malformed::DuplicateId { attr: ATTR, id }));
            }
            ids.push(id);
        }
        Ok(IdList(ids))
    }
}

impl AsXmlText for IdList {
    fn as_xml_text(&self) -> Result<Cow<'_, str>, Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|id| id.0).collect();
        Ok(Cow::Owned(encode_base64(bytes)))
    }
}

/// The cells of a `<sketch/>` (`data`): base64 of 13 bytes per cell, a positive multiple of 4
/// cells (XEP §Sketches).
impl FromXmlText for Sketch {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        const ATTR: &str = "data";
        let bytes = decode_base64(ATTR, &text)?;
        Sketch::from_bytes(&bytes).map_err(|_| {
            malformed(Malformed::Length {
                attr: ATTR,
                bytes: bytes.len(),
                expected: Expected::MultipleOf(CELL_BYTES * HASHES),
            })
        })
    }
}

impl AsXmlText for Sketch {
    fn as_xml_text(&self) -> Result<Cow<'_, str>, Error> {
        Ok(Cow::Owned(encode_base64(self.to_bytes())))
    }
}

/// Parses the one accepted spelling of a number: decimal digits, no sign, no leading zero
/// (other than `"0"` itself), at most `u64::MAX`.
pub fn decimal(attr: &'static str, text: &str) -> Result<u64, Malformed> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match canonical.then(|| text.parse::<u64>()) {
        Some(Ok(v)) => Ok(v),
        _ => Err(Malformed::NotANumber {
            attr,
            value: text.to_owned(),
        }),
    }
}

/// Codec of a `u64` count attribute (`<root count='...'/>`): [`decimal`], nothing else.
#[derive(Clone, Copy, Debug)]
pub struct Count(pub &'static str);

impl TextCodec<u64> for Count {
    fn decode(&self, text: String) -> Result<u64, Error> {
        decimal(self.0, &text).map_err(malformed)
    }

    fn encode<'x>(&self, value: &'x u64) -> Result<Option<Cow<'x, str>>, Error> {
        Ok(Some(Cow::Owned(value.to_string())))
    }
}

/// Codec of an optional `u64` count attribute (`<root changes='...'/>`): [`decimal`] when
/// present.
#[derive(Clone, Copy, Debug)]
pub struct OptCount(pub &'static str);

impl TextCodec<Option<u64>> for OptCount {
    fn decode(&self, text: String) -> Result<Option<u64>, Error> {
        decimal(self.0, &text).map(Some).map_err(malformed)
    }

    fn encode<'x>(&self, value: &'x Option<u64>) -> Result<Option<Cow<'x, str>>, Error> {
        Ok(value.map(|v| Cow::Owned(v.to_string())))
    }
}

/// Codec of an optional `u32` attribute that must lie in `min..=max` (the hello limits).
/// Absent stays `None`; present but out of range or not a plain decimal number is
/// [`Malformed::OutOfRange`] / [`Malformed::NotANumber`].
#[derive(Clone, Copy, Debug)]
pub struct Bounded {
    /// Attribute name, for the error message.
    pub attr: &'static str,
    /// Smallest allowed value.
    pub min: u32,
    /// Largest allowed value.
    pub max: u32,
}

impl Bounded {
    /// The codec of attribute `attr` with the allowed values `range`.
    pub const fn range(attr: &'static str, range: RangeInclusive<u32>) -> Bounded {
        Bounded {
            attr,
            min: *range.start(),
            max: *range.end(),
        }
    }

    /// Parses and range-checks `text`.
    pub fn parse(&self, text: &str) -> Result<u32, Malformed> {
        let value = decimal(self.attr, text)?;
        match u32::try_from(value) {
            Ok(v) if (self.min..=self.max).contains(&v) => Ok(v),
            _ => Err(Malformed::OutOfRange {
                attr: self.attr,
                value,
                min: self.min,
                max: self.max,
            }),
        }
    }
}

impl TextCodec<Option<u32>> for Bounded {
    fn decode(&self, text: String) -> Result<Option<u32>, Error> {
        self.parse(&text).map(Some).map_err(malformed)
    }

    fn encode<'x>(&self, value: &'x Option<u32>) -> Result<Option<Cow<'x, str>>, Error> {
        Ok(value.map(|v| Cow::Owned(v.to_string())))
    }
}

/// Codec of a bare-JID attribute: valid, bare, and already in normalised form (RFC 7622), so
/// that what is hashed and acted upon is exactly what the sender wrote. Errors name the
/// attribute ([`Malformed::Jid`], [`Malformed::NotNormalized`]).
#[derive(Clone, Copy, Debug)]
pub struct BareJidAttr(pub &'static str);

impl TextCodec<BareJid> for BareJidAttr {
    fn decode(&self, text: String) -> Result<BareJid, Error> {
        let jid = BareJid::new(&text).map_err(|e| {
            malformed(Malformed::Jid {
                attr: self.0,
                value: text.clone(),
                reason: e.to_string(),
            })
        })?;
        if jid.as_str() != text {
            return Err(malformed(Malformed::NotNormalized {
                attr: self.0,
                value: text,
                normalized: jid.as_str().to_owned(),
            }));
        }
        Ok(jid)
    }

    fn encode<'x>(&self, value: &'x BareJid) -> Result<Option<Cow<'x, str>>, Error> {
        Ok(Some(Cow::Borrowed(value.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(e: Error) -> String {
        match e {
            Error::TextParseError(inner) => inner.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fingerprint_round_trip() {
        let fp = Fingerprint(*b"0123456789abcdef");
        let text = fp.as_xml_text().unwrap().into_owned();
        assert_eq!(text, "MDEyMzQ1Njc4OWFiY2RlZg==");
        assert_eq!(Fingerprint::from_xml_text(text).unwrap(), fp);
    }

    #[test]
    fn fingerprint_invalid() {
        let e = Fingerprint::from_xml_text("MDEyMzQ1Njc4OWFiY2Rl".into()).unwrap_err();
        assert_eq!(err(e), "fp: 15 bytes, expected 16");
        let e = Fingerprint::from_xml_text("MDEyMzQ1Njc4OWFiY2RlZg".into()).unwrap_err();
        assert_eq!(err(e), "fp: invalid base64: Invalid padding");
        let e = Fingerprint::from_xml_text("MDEy MzQ1Njc4OWFiY2RlZg==".into()).unwrap_err();
        assert_eq!(err(e), "fp: invalid base64: Invalid symbol 32, offset 4.");
    }

    #[test]
    fn child_fingerprints() {
        let mut fps = [Fingerprint([0; 16]); 16];
        for (i, fp) in fps.iter_mut().enumerate() {
            fp.0[0] = i as u8;
        }
        let fps = ChildFingerprints(fps);
        let text = fps.as_xml_text().unwrap().into_owned();
        assert_eq!(text.len(), 344);
        assert_eq!(ChildFingerprints::from_xml_text(text).unwrap(), fps);
        assert_eq!(fps.child(15).0[0], 15);
        let short = encode_base64([0u8; 255]);
        let e = ChildFingerprints::from_xml_text(short).unwrap_err();
        assert_eq!(err(e), "fps: 255 bytes, expected 256");
    }

    #[test]
    fn id_lists() {
        assert_eq!(
            IdList::from_xml_text(String::new()).unwrap(),
            IdList::default()
        );
        let ids = IdList(vec![ShortId([1; 8]), ShortId([2; 8])]);
        let text = ids.as_xml_text().unwrap().into_owned();
        assert_eq!(IdList::from_xml_text(text).unwrap(), ids);
        let e = IdList::from_xml_text(encode_base64([0u8; 12])).unwrap_err();
        assert_eq!(err(e), "ids: 12 bytes, expected a multiple of 8");
        let e = IdList::from_xml_text(encode_base64([7u8; 16])).unwrap_err();
        assert_eq!(err(e), "ids: duplicate id 0707070707070707");
    }

    #[test]
    fn bounded() {
        let b = Bounded {
            attr: "window",
            min: 1,
            max: 64,
        };
        assert_eq!(b.parse("64"), Ok(64));
        assert_eq!(
            b.parse("0").unwrap_err().to_string(),
            "window 0 out of range 1..=64"
        );
        assert_eq!(
            b.parse("99999999999").unwrap_err().to_string(),
            "window 99999999999 out of range 1..=64"
        );
        for bad in ["", "+4", "4 ", "0x4", "-1", "064", "123456789012345678901"] {
            assert_eq!(
                b.parse(bad).unwrap_err().to_string(),
                format!("window {bad:?} is not a canonical decimal number")
            );
        }
    }

    #[test]
    fn jid_attr() {
        let c = BareJidAttr("publisher");
        assert_eq!(
            c.decode("juliet@a.example".into()).unwrap().as_str(),
            "juliet@a.example"
        );
        let e = c.decode("juliet@a.example/balcony".into()).unwrap_err();
        assert_eq!(
            err(e),
            "publisher \"juliet@a.example/balcony\" is invalid: \
             resource found while parsing a bare JID"
        );
        let e = c.decode("Juliet@A.example".into()).unwrap_err();
        assert_eq!(
            err(e),
            "publisher \"Juliet@A.example\" is not in normalized form (\"juliet@a.example\")"
        );
    }
}
