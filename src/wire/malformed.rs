//! Why an element is malformed: the reasons behind `bad-format` (XEP §Error Handling,
//! XEP §Business Rules).

use std::fmt;

use crate::digest::ShortId;
use crate::digest::prefix::PrefixError;
use crate::model::epoch::EpochError;

/// How a length rule was broken (see [`Malformed::Length`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// Exactly this many bytes.
    Exactly(usize),
    /// A whole number of items of this many bytes.
    MultipleOf(usize),
}

/// Why an element is malformed (condition `bad-format`). `Display` says exactly what was
/// wrong; [`WireError::Malformed`](crate::wire::WireError::Malformed) adds the element.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Structure rejected by the derived parser: unknown or missing attribute or child, text
    /// where none is allowed, not well-formed XML. The text is the parser's message.
    Structure(String),
    /// A number outside the range the XEP allows for it.
    OutOfRange {
        /// Attribute name.
        attr: &'static str,
        /// The value as received.
        value: u64,
        /// Smallest allowed value.
        min: u32,
        /// Largest allowed value.
        max: u32,
    },
    /// A number attribute that is not in its one accepted spelling (decimal digits, no sign,
    /// no leading zero, within range of the type).
    NotANumber {
        /// Attribute name.
        attr: &'static str,
        /// The text as received.
        value: String,
    },
    /// Not standard padded base64 (RFC 4648 §4).
    Base64 {
        /// Attribute name.
        attr: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// Decoded to the wrong number of bytes.
    Length {
        /// Attribute name.
        attr: &'static str,
        /// Number of bytes decoded.
        bytes: usize,
        /// What was required.
        expected: Expected,
    },
    /// The same short id twice in one list.
    DuplicateId {
        /// Attribute name.
        attr: &'static str,
        /// The repeated id.
        id: ShortId,
    },
    /// Not an epoch (16 lowercase hex digits).
    Epoch(EpochError),
    /// Not a prefix (at most 8 lowercase hex digits).
    Prefix(PrefixError),
    /// A JID attribute that is not a valid JID of the required kind.
    Jid {
        /// Attribute name.
        attr: &'static str,
        /// The text as received.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JID that is valid but not written in its normalised form (RFC 7622): the receiver
    /// would hash or act on another JID than the sender (XEP §Repair of Subscription
    /// Mismatches [PS-63]).
    NotNormalized {
        /// Attribute name.
        attr: &'static str,
        /// The text as received.
        value: String,
        /// Its normalised form.
        normalized: String,
    },
    /// An attribute of a `<presence/>` in an item other than `from` (XEP §Items [PS-40]).
    PresenceAttribute {
        /// Qualified attribute name.
        attr: String,
        /// Its value.
        value: String,
    },
    /// An enumerated attribute with a value the XEP does not define.
    UnknownValue {
        /// Attribute name.
        attr: &'static str,
        /// The text as received.
        value: String,
    },
    /// Something that must be unique appears twice (an item, an edge, a prefix, a root, an
    /// except, a resource, a hash).
    Duplicate {
        /// What is repeated (`"item"`, `"edge"`, ...).
        what: &'static str,
        /// The repeated key.
        key: String,
    },
    /// Something required is absent or empty (a feature without `<hash/>`, a batch without
    /// `<item/>`, a `<lack/>` or `<gone/>` without ids).
    Missing(&'static str),
    /// A required `<root/>` of the hello is absent.
    MissingRoot(&'static str),
    /// A reconcile child that the set does not allow (`<gone/>` and `<item/>` are for
    /// `set='presence'`, `<edge/>` for `set='edges'`).
    Misplaced {
        /// Element name of the child.
        child: &'static str,
        /// The reconcile's set.
        set: &'static str,
    },
    /// A reconcile child that the direction does not allow (in the presence set, `<lack/>` is
    /// for queries, `<gone/>` and `<item/>` for answers).
    WrongDirection {
        /// Element name of the child.
        child: &'static str,
        /// The reconcile's set.
        set: &'static str,
        /// `"query"` or `"answer"`.
        direction: &'static str,
    },
    /// A `<presence/>` in an item that is not an available presence of the item's publisher.
    Presence {
        /// The item's publisher.
        jid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A presence payload nested deeper than the protocol allows (XEP §Items): the receiver
    /// stops reading at the first element beyond the limit, so no deeper element is ever
    /// built.
    TooDeep {
        /// Where (`"item presence"`, `"fanout presence"`).
        what: &'static str,
        /// The nesting allowed below the `<presence/>`.
        max: usize,
    },
    /// A serialised element larger than any stanza of the protocol may be (max-bytes at its
    /// largest): refused before parsing.
    TooLong {
        /// Its size.
        bytes: usize,
        /// The largest max-bytes a session can negotiate.
        max: u32,
    },
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Exactly(n) => write!(f, "expected {n}"),
            Expected::MultipleOf(n) => write!(f, "expected a multiple of {n}"),
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Structure(msg) => f.write_str(msg),
            Malformed::OutOfRange {
                attr,
                value,
                min,
                max,
            } => {
                write!(f, "{attr} {value} out of range {min}..={max}")
            }
            Malformed::NotANumber { attr, value } => {
                write!(f, "{attr} {value:?} is not a canonical decimal number")
            }
            Malformed::Base64 { attr, reason } => write!(f, "{attr}: invalid base64: {reason}"),
            Malformed::Length {
                attr,
                bytes,
                expected,
            } => {
                write!(f, "{attr}: {bytes} bytes, {expected}")
            }
            Malformed::DuplicateId { attr, id } => {
                write!(f, "{attr}: duplicate id {}", hex(&id.0))
            }
            Malformed::Epoch(e) => e.fmt(f),
            Malformed::Prefix(e) => e.fmt(f),
            Malformed::Jid {
                attr,
                value,
                reason,
            } => {
                write!(f, "{attr} {value:?} is invalid: {reason}")
            }
            Malformed::NotNormalized {
                attr,
                value,
                normalized,
            } => {
                write!(
                    f,
                    "{attr} {value:?} is not in normalized form ({normalized:?})"
                )
            }
            Malformed::PresenceAttribute { attr, value } => {
                write!(
                    f,
                    "presence attribute {attr}='{value}' not allowed (only from)"
                )
            }
            Malformed::UnknownValue { attr, value } => write!(f, "{attr} {value:?} is not defined"),
            Malformed::Duplicate { what, key } => write!(f, "duplicate {what} {key}"),
            Malformed::Missing(what) => write!(f, "no {what}"),
            Malformed::MissingRoot(set) => write!(f, "missing root set='{set}'"),
            Malformed::Misplaced { child, set } => {
                write!(f, "<{child}/> not allowed in set='{set}'")
            }
            Malformed::WrongDirection {
                child,
                set,
                direction,
            } => {
                write!(f, "<{child}/> not allowed in a {set} {direction}")
            }
            Malformed::Presence { jid, reason } => write!(f, "presence of {jid}: {reason}"),
            Malformed::TooDeep { what, max } => {
                write!(f, "{what}: payload nested more than {max} elements deep")
            }
            Malformed::TooLong { bytes, max } => {
                write!(f, "{bytes} bytes, more than any stanza may have ({max})")
            }
        }
    }
}

impl std::error::Error for Malformed {}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
