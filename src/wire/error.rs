//! What can be wrong with a received element, and the XMPP error that says so (XEP §Error Handling).
//!
//! Every rejection is a [`WireError`]: its `Display` names the element and exactly what was
//! wrong (`"hello: max-items 0 out of range 1..=4096"`), and
//! [`WireError::stanza_error`]/[`iq_error_reply`] turn it into the `<iq type='error'/>` that
//! XEP §Error Handling prescribes: an RFC 6120 defined condition plus an application-specific
//! [`Condition`] in our namespace. A stanza from a domain other than the authenticated peer is
//! not answered with a stanza at all but with the stream error `<invalid-from/>`
//! ([`WireError::stream_error`]).

use std::fmt;

use minidom::Element;
use xmpp_parsers::iq::Iq;
use xmpp_parsers::stanza_error::{DefinedCondition, ErrorType, StanzaError};
use xmpp_parsers::stream_error::{DefinedCondition as StreamCondition, StreamError};
use xso::{AsXml, FromXml};

use crate::digest::hash::UnknownHashAlgo;
use crate::digest::prefix::PrefixError;
use crate::model::epoch::{Epoch, EpochError};
use crate::wire::malformed::Malformed;
use crate::wire::ns;

/// The application-specific error conditions of XEP §Error Handling, carried inside a stanza
/// `<error/>` next to the RFC 6120 defined condition ([`Condition::defined_condition`]).
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[xml(namespace = ns::PRESENCE_SYNC)]
pub enum Condition {
    /// `<bad-format/>`: malformed element (bad base64, wrong length, bad prefix or epoch,
    /// number out of range, unknown child or attribute, duplicates). With `bad-request`.
    #[xml(name = "bad-format", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    BadFormat,
    /// `<unsupported-hash/>`: the hello names a hash algorithm the receiver does not
    /// implement. With `feature-not-implemented`.
    #[xml(name = "unsupported-hash", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    UnsupportedHash,
    /// `<too-many-items/>`: over the negotiated max-items or max-bytes. With
    /// `policy-violation`.
    #[xml(name = "too-many-items", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    TooManyItems,
    /// `<foreign-jid/>`: a JID outside the domain it must belong to. With `forbidden`.
    #[xml(name = "foreign-jid", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    ForeignJid,
    /// `<out-of-order/>`: reconcile or batch before the hello of the session. With
    /// `unexpected-request`.
    #[xml(name = "out-of-order", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    OutOfOrder,
    /// `<stale-epoch/>`: an epoch that is not the sender's current one. With `conflict`.
    #[xml(name = "stale-epoch", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    StaleEpoch,
    /// `<window-exceeded/>`: more outstanding sync iqs than the window. With
    /// `resource-constraint`.
    #[xml(name = "window-exceeded", on_unknown_attribute = Fail, on_unknown_child = Fail)]
    WindowExceeded,
}

impl Condition {
    /// Every condition, in the order of the XEP §Error Handling table.
    pub const ALL: [Condition; 7] = [
        Condition::BadFormat,
        Condition::UnsupportedHash,
        Condition::TooManyItems,
        Condition::ForeignJid,
        Condition::OutOfOrder,
        Condition::StaleEpoch,
        Condition::WindowExceeded,
    ];

    /// The RFC 6120 §8.3.3 defined condition this condition refines.
    pub fn defined_condition(self) -> DefinedCondition {
        match self {
            Condition::BadFormat => DefinedCondition::BadRequest,
            Condition::UnsupportedHash => DefinedCondition::FeatureNotImplemented,
            Condition::TooManyItems => DefinedCondition::PolicyViolation,
            Condition::ForeignJid => DefinedCondition::Forbidden,
            Condition::OutOfOrder => DefinedCondition::UnexpectedRequest,
            Condition::StaleEpoch => DefinedCondition::Conflict,
            Condition::WindowExceeded => DefinedCondition::ResourceConstraint,
        }
    }

    /// The error type, as RFC 6120 §8.3.3 recommends for the defined condition: `modify` when
    /// the sender must change what it sends, `cancel` when retrying cannot help, `auth` for
    /// `forbidden`, `wait` for a full window.
    pub fn error_type(self) -> ErrorType {
        match self {
            Condition::BadFormat | Condition::TooManyItems | Condition::OutOfOrder => {
                ErrorType::Modify
            }
            Condition::UnsupportedHash | Condition::StaleEpoch => ErrorType::Cancel,
            Condition::ForeignJid => ErrorType::Auth,
            Condition::WindowExceeded => ErrorType::Wait,
        }
    }

    /// The element name (`"bad-format"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Condition::BadFormat => "bad-format",
            Condition::UnsupportedHash => "unsupported-hash",
            Condition::TooManyItems => "too-many-items",
            Condition::ForeignJid => "foreign-jid",
            Condition::OutOfOrder => "out-of-order",
            Condition::StaleEpoch => "stale-epoch",
            Condition::WindowExceeded => "window-exceeded",
        }
    }
}

/// A received element that must be rejected, with the reason (XEP §Error Handling).
///
/// `element` fields name the top-level protocol element (`hello`, `reconcile`, `batch`, ...).
/// Errors are split by who detects them: parsing alone ([`Malformed`](WireError::Malformed),
/// [`UnsupportedHash`](WireError::UnsupportedHash)), validation against the session's limits
/// and domains (`TooManyItems`, `TooLarge`, `ForeignJid`, `InvalidFrom`), and the session
/// state machine (`OutOfOrder`, `StaleEpoch`, `WindowExceeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The element is malformed (`bad-format`).
    Malformed {
        /// Top-level element.
        element: &'static str,
        /// What is wrong.
        reason: Malformed,
    },
    /// The hello's hash algorithm is not implemented here (`unsupported-hash`).
    UnsupportedHash {
        /// Top-level element.
        element: &'static str,
        /// The algorithm name as received.
        algo: String,
    },
    /// More entries than max-items allows (`too-many-items`).
    TooManyItems {
        /// Top-level element.
        element: &'static str,
        /// What was counted (`"items"`, `"split and ids"`, `"items and edges"`).
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The negotiated max-items.
        max: u32,
    },
    /// The stanza is larger than max-bytes (`too-many-items`).
    TooLarge {
        /// Top-level element.
        element: &'static str,
        /// Its size in bytes.
        bytes: usize,
        /// The negotiated max-bytes.
        max: u32,
    },
    /// A JID outside the domain it must belong to (`foreign-jid`).
    ForeignJid {
        /// Top-level element.
        element: &'static str,
        /// Which JID (`"item jid"`, `"except jid"`, `"edge"`).
        role: &'static str,
        /// The offending JID (or edge).
        jid: String,
        /// The domain(s) it must belong to.
        expected: String,
    },
    /// Not expected at this point of the session (`out-of-order`).
    OutOfOrder {
        /// Top-level element.
        element: &'static str,
        /// Why.
        reason: String,
    },
    /// An epoch that is not the sender's current one (`stale-epoch`).
    StaleEpoch {
        /// Top-level element.
        element: &'static str,
        /// The epoch received.
        got: Epoch,
        /// The sender's current epoch as known from its hello.
        current: Epoch,
    },
    /// More outstanding sync iqs than the window (`window-exceeded`).
    WindowExceeded {
        /// Outstanding iqs including this one.
        outstanding: usize,
        /// The negotiated window.
        window: u32,
    },
    /// The element would make a structure of the session exceed its bound (XEP §Resource
    /// Exhaustion): `too-many-items`.
    Exhausted {
        /// Top-level element.
        element: &'static str,
        /// What would exceed its bound (`"cache entries"`, `"waiting nodes"`, ...).
        what: &'static str,
        /// The bound.
        bound: usize,
    },
    /// A request sooner than the rate the XEP allows (hellos, PS-20; new epochs):
    /// `window-exceeded`, to be retried later.
    TooFast {
        /// Top-level element.
        element: &'static str,
        /// What rate was exceeded.
        reason: String,
    },
    /// A stanza `from` outside the authenticated peer domain: stream error `<invalid-from/>`
    /// (RFC 6120 §4.9.3.9), no stanza error.
    InvalidFrom {
        /// The `from` as received (empty if absent).
        from: String,
        /// The authenticated peer domain.
        expected: String,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed { element, reason } => write!(f, "{element}: {reason}"),
            WireError::UnsupportedHash { element, algo } => {
                write!(f, "{element}: unsupported hash algorithm {algo:?}")
            }
            WireError::TooManyItems {
                element,
                what,
                count,
                max,
            } => {
                write!(f, "{element}: {count} {what} exceed max-items {max}")
            }
            WireError::TooLarge {
                element,
                bytes,
                max,
            } => {
                write!(f, "{element}: {bytes} bytes exceed max-bytes {max}")
            }
            WireError::ForeignJid {
                element,
                role,
                jid,
                expected,
            } => {
                write!(f, "{element}: {role} {jid} is not in {expected}")
            }
            WireError::OutOfOrder { element, reason } => {
                write!(f, "{element}: out of order: {reason}")
            }
            WireError::StaleEpoch {
                element,
                got,
                current,
            } => {
                write!(
                    f,
                    "{element}: epoch {got} is not the sender's current epoch {current}"
                )
            }
            WireError::WindowExceeded {
                outstanding,
                window,
            } => {
                write!(
                    f,
                    "{outstanding} outstanding sync iqs exceed window {window}"
                )
            }
            WireError::Exhausted {
                element,
                what,
                bound,
            } => {
                write!(f, "{element}: would take {what} over their bound {bound}")
            }
            WireError::TooFast { element, reason } => write!(f, "{element}: too soon: {reason}"),
            WireError::InvalidFrom { from, expected } => {
                write!(
                    f,
                    "stanza from {from:?} is not from the peer domain {expected}"
                )
            }
        }
    }
}

impl std::error::Error for WireError {}

impl WireError {
    /// Translates an error of the derived parser of `element` into a [`WireError`],
    /// recovering the typed errors our codecs and checks raised inside it.
    pub fn from_xso(element: &'static str, error: xso::error::Error) -> WireError {
        use xso::error::Error;
        let reason = match error {
            Error::TextParseError(inner) => return Self::from_text_error(element, inner),
            Error::Other(msg) => Malformed::Structure(msg.to_owned()),
            Error::XmlError(e) => Malformed::Structure(format!("not well-formed XML: {e}")),
            Error::TypeMismatch => Malformed::Structure(format!(
                "not a <{element}/> element in namespace {}",
                ns::PRESENCE_SYNC
            )),
        };
        WireError::Malformed { element, reason }
    }

    fn from_text_error(
        element: &'static str,
        inner: Box<dyn std::error::Error + Send + Sync>,
    ) -> WireError {
        let inner = match inner.downcast::<WireError>() {
            Ok(e) => return *e,
            Err(other) => other,
        };
        let inner = match inner.downcast::<UnknownHashAlgo>() {
            Ok(e) => return WireError::UnsupportedHash { element, algo: e.0 },
            Err(other) => other,
        };
        let reason = match inner.downcast::<Malformed>() {
            Ok(m) => *m,
            Err(other) => match other.downcast::<EpochError>() {
                Ok(e) => Malformed::Epoch(*e),
                Err(other) => match other.downcast::<PrefixError>() {
                    Ok(e) => Malformed::Prefix(*e),
                    Err(other) => Malformed::Structure(other.to_string()),
                },
            },
        };
        WireError::Malformed { element, reason }
    }

    /// The application-specific condition; `None` for [`WireError::InvalidFrom`], which is a
    /// stream error.
    pub fn condition(&self) -> Option<Condition> {
        Some(match self {
            WireError::Malformed { .. } => Condition::BadFormat,
            WireError::UnsupportedHash { .. } => Condition::UnsupportedHash,
            WireError::TooManyItems { .. }
            | WireError::TooLarge { .. }
            | WireError::Exhausted { .. } => Condition::TooManyItems,
            WireError::ForeignJid { .. } => Condition::ForeignJid,
            WireError::OutOfOrder { .. } => Condition::OutOfOrder,
            WireError::StaleEpoch { .. } => Condition::StaleEpoch,
            WireError::WindowExceeded { .. } | WireError::TooFast { .. } => {
                Condition::WindowExceeded
            }
            WireError::InvalidFrom { .. } => return None,
        })
    }

    /// The stanza `<error/>` of XEP §Error Handling: error type, defined condition, our
    /// application-specific condition, and this error's message as English `<text/>`.
    /// `None` for [`WireError::InvalidFrom`] (see [`WireError::stream_error`]).
    pub fn stanza_error(&self) -> Option<StanzaError> {
        let condition = self.condition()?;
        let mut error = StanzaError::new(
            condition.error_type(),
            condition.defined_condition(),
            "en",
            self.to_string(),
        );
        error.other = Some(Element::from(condition));
        Some(error)
    }

    /// The stream error `<invalid-from/>` for [`WireError::InvalidFrom`]; `None` otherwise.
    pub fn stream_error(&self) -> Option<StreamError> {
        match self {
            WireError::InvalidFrom { .. } => Some(StreamError::new(
                StreamCondition::InvalidFrom,
                "en",
                self.to_string(),
            )),
            _ => None,
        }
    }
}

/// What to send back for a rejected request (see [`iq_error_reply`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorReply {
    /// Answer with this `<iq type='error'/>`.
    Iq(Box<Iq>),
    /// Close the stream with this stream error.
    Stream(StreamError),
    /// Send nothing (the rejected stanza was itself a result or an error, RFC 6120 §8.2.3);
    /// the sync session ends.
    Nothing,
}

/// Builds the reply to a `get`/`set` iq whose payload was rejected with `error`: an
/// `<iq type='error'/>` with the request's id and swapped addresses, or the stream error for
/// [`WireError::InvalidFrom`]. The stanza is in xmpp-parsers' default namespace; wrap it in
/// [`super::ServerNs`] to write it on an s2s stream.
pub fn iq_error_reply(request: &Iq, error: &WireError) -> ErrorReply {
    if let Some(stream) = error.stream_error() {
        return ErrorReply::Stream(stream);
    }
    let (from, to, id) = match request {
        Iq::Get { from, to, id, .. } | Iq::Set { from, to, id, .. } => (from, to, id),
        Iq::Result { .. } | Iq::Error { .. } => return ErrorReply::Nothing,
    };
    let Some(stanza_error) = error.stanza_error() else {
        // Only `InvalidFrom` has no stanza error, and it returned above.
        return ErrorReply::Nothing;
    };
    ErrorReply::Iq(Box::new(Iq::Error {
        from: to.clone(),
        to: from.clone(),
        id: id.clone(),
        error: stanza_error,
        payload: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireElement;
    use jid::Jid;

    #[test]
    fn conditions_round_trip() {
        for c in Condition::ALL {
            let xml = format!("<{} xmlns='urn:xmpp:presence-sync:0'/>", c.name());
            assert_eq!(Condition::parse_bytes(xml.as_bytes()).unwrap(), c);
            assert_eq!(Element::from(c), xml.parse::<Element>().unwrap());
        }
        assert_eq!(
            Condition::parse_bytes(b"<bad-format xmlns='urn:xmpp:presence-sync:0' x='1'/>")
                .unwrap_err()
                .to_string(),
            "error condition: Unknown attribute in Condition::BadFormat element."
        );
    }

    #[test]
    fn stanza_error_mapping() {
        let e = WireError::Malformed {
            element: "hello",
            reason: Malformed::OutOfRange {
                attr: "max-items",
                value: 0,
                min: 1,
                max: 4096,
            },
        };
        assert_eq!(e.to_string(), "hello: max-items 0 out of range 1..=4096");
        let se = e.stanza_error().unwrap();
        assert_eq!(se.type_, ErrorType::Modify);
        assert_eq!(se.defined_condition, DefinedCondition::BadRequest);
        assert_eq!(
            se.texts.get("en").unwrap(),
            "hello: max-items 0 out of range 1..=4096"
        );
        assert_eq!(se.other, Some(Element::from(Condition::BadFormat)));
        assert!(e.stream_error().is_none());
        let window = WireError::WindowExceeded {
            outstanding: 5,
            window: 4,
        };
        let se = window.stanza_error().unwrap();
        assert_eq!(
            (se.type_, se.defined_condition),
            (ErrorType::Wait, DefinedCondition::ResourceConstraint)
        );
    }

    #[test]
    fn iq_reply() {
        let request = Iq::Set {
            from: Some(Jid::new("a.example").unwrap()),
            to: Some(Jid::new("b.example").unwrap()),
            id: "s1".into(),
            payload: Element::builder("batch", ns::PRESENCE_SYNC).build(),
        };
        let err = WireError::StaleEpoch {
            element: "batch",
            got: Epoch(1),
            current: Epoch(2),
        };
        let ErrorReply::Iq(reply) = iq_error_reply(&request, &err) else {
            panic!()
        };
        let Iq::Error {
            from,
            to,
            id,
            error,
            ..
        } = *reply
        else {
            panic!()
        };
        assert_eq!(
            (from.unwrap().as_str(), to.unwrap().as_str(), id.as_str()),
            ("b.example", "a.example", "s1")
        );
        assert_eq!(error.defined_condition, DefinedCondition::Conflict);
        assert_eq!(error.other, Some(Element::from(Condition::StaleEpoch)));
        let result = Iq::Result {
            from: None,
            to: None,
            id: "r".into(),
            payload: None,
        };
        assert_eq!(iq_error_reply(&result, &err), ErrorReply::Nothing);
        let spoof = WireError::InvalidFrom {
            from: "c.example".into(),
            expected: "a.example".into(),
        };
        let ErrorReply::Stream(stream) = iq_error_reply(&request, &spoof) else {
            panic!()
        };
        assert_eq!(stream.condition, StreamCondition::InvalidFrom);
    }
}
