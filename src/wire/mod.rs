//! Wire elements of `urn:xmpp:presence-sync:0` (XEP §Protocol).
//!
//! One Rust type per element, declared with xso's derives in the style of xmpp-parsers:
//!
//! | XEP section | element | type |
//! |---|---|---|
//! | §Stream Feature | `<presence-sync><hash/></presence-sync>` | [`StreamFeature`], [`FeatureHash`] |
//! | §Hello | `<hello><root/></hello>` | [`Hello`], [`Root`], [`SetName`] |
//! | §Reconciliation | `<reconcile>` with `<split/>`, `<ids/>`, `<sketch/>`, `<lack/>`, `<gone/>`, `<edge/>`, `<item/>` | [`Reconcile`], [`ReconcileEntry`], [`Split`], [`Ids`], [`SketchNode`], [`Lack`], [`Gone`], [`Edge`] |
//! | §Batches | `<batch/>` | [`Batch`] |
//! | §Items | `<item><presence/><except/></item>` | [`Item`], [`ItemPresence`], [`Except`] |
//! | §Domain-Level Presence | `<fanout/>` | [`Fanout`] |
//! | §Repair of Subscription Mismatches | `<repair/>` | [`Repair`] |
//! | §Graceful Shutdown | `<shutdown/>` | [`Shutdown`] |
//! | §Error Handling | `<bad-format/>`, ... | [`Condition`], [`WireError`] |
//!
//! [`SyncElement`] dispatches a received payload to the right type; [`Item::from_model`] and
//! [`Item::to_model`] convert items to and from the model's presence state.
//!
//! # Receiving: parse, then validate
//!
//! 1. **Parse** ([`WireElement::parse_bytes`], [`WireElement::parse_element`]). Parsing is
//!    strict on purpose: every element of our namespace fails on an unknown attribute or child
//!    (`on_unknown_attribute = Fail, on_unknown_child = Fail`; xso's global `pedantic` feature
//!    is left off so that xmpp-parsers keeps its own lenient policy), text codecs accept one
//!    spelling per value ([`codec`]: canonical base64, decimal numbers and normalised JIDs),
//!    and a check run by the parser itself (`deserialize_callback`) rejects what the derives
//!    cannot express (ranges, duplicates, one root per set, empty lists, presence children
//!    that are not available presence of the item's publisher). Errors raised inside the
//!    derived parser travel as typed values and come out as [`WireError`]s. A parsed value is
//!    therefore valid in isolation.
//! 2. **Validate** ([`WireElement::validate`]) against the session: counts and size against the
//!    negotiated [`Limits`], JIDs against the [`Domains`] (`foreign-jid`).
//!    [`WireElement::receive`] does both, plus the size check of the raw bytes.
//!    [`Reconcile::check_direction`] adds the rules that depend on the iq type (query or
//!    answer), and [`Fanout::check_presence`] checks a domain-level presence.
//! 3. The session state machine adds `out-of-order`, `stale-epoch` and `window-exceeded`
//!    (constructors: [`WireError::OutOfOrder`], [`WireError::StaleEpoch`],
//!    [`Limits::check_window`]).
//!
//! Any failure is a [`WireError`]; [`iq_error_reply`] turns it into the reply XEP §Error
//! Handling prescribes.
//!
//! # Namespaces
//!
//! `<presence/>` inside `<item/>` is qualified by `jabber:server`; xmpp-parsers only knows its
//! stanzas in `jabber:client`. [`ServerNs`] is an adapter that renames the namespace both ways
//! for any xmpp-parsers stanza type (also usable for whole s2s stanzas: `ServerNs<Iq>`), and
//! items hold [`ItemPresence`]s, which add the stricter rules of XEP §Items on top of it.

pub mod codec;
pub mod convert;
pub mod edge;
pub mod error;
pub mod hello;
pub mod item;
pub mod limits;
pub mod malformed;
pub mod markers;
pub mod ns;
pub mod presence;
pub mod reconcile;
pub mod server_ns;
pub mod validate;

use minidom::Element;
use xso::{AsXml, FromXml};

pub use codec::{ChildFingerprints, IdList};
pub use edge::{Edge, EdgeState};
pub use error::{Condition, ErrorReply, WireError, iq_error_reply};
pub use hello::{FeatureHash, Hello, Root, SetName, StreamFeature};
pub use item::{Batch, Except, Item};
pub use limits::{Domains, Limits, MAX_PAYLOAD_DEPTH};
pub use malformed::{Expected, Malformed};
pub use markers::{Fanout, Repair, Shutdown};
pub use presence::{ItemPresence, ShallowPresence};
pub use reconcile::{
    Direction, Gone, Ids, Lack, Reconcile, ReconcileEntry, ReconcileSet, SketchNode, Split,
};
pub use server_ns::ServerNs;
pub use validate::{check_outgoing, stanza_bytes};

/// A top-level element of the protocol: parsing with [`WireError`]s that name it, validation
/// against a session, serialisation.
pub trait WireElement: FromXml + AsXml + Sized {
    /// The element name used in error messages (`"hello"`, `"reconcile"`, ...).
    const NAME: &'static str;

    /// Parses a serialised element (strict; see the module documentation). Input longer than
    /// the largest max-bytes a session can negotiate is refused before any parser sees it.
    fn parse_bytes(xml: &[u8]) -> Result<Self, WireError> {
        let ceiling = *Limits::MAX_BYTES.end();
        if xml.len() > ceiling as usize {
            return Err(WireError::Malformed {
                element: Self::NAME,
                reason: Malformed::TooLong {
                    bytes: xml.len(),
                    max: ceiling,
                },
            });
        }
        xso::from_bytes(xml).map_err(|e| WireError::from_xso(Self::NAME, e))
    }

    /// Parses an element tree, e.g. the payload of an iq.
    fn parse_element(element: &Element) -> Result<Self, WireError> {
        xso::transform(element).map_err(|e| WireError::from_xso(Self::NAME, e))
    }

    /// Checks what depends on the session: limits and domains. The default accepts.
    fn validate(&self, _limits: &Limits, _domains: &Domains) -> Result<(), WireError> {
        Ok(())
    }

    /// Everything a receiver checks, in order: raw size against max-bytes, parse, validate.
    fn receive(xml: &[u8], limits: &Limits, domains: &Domains) -> Result<Self, WireError> {
        limits.check_size(Self::NAME, xml.len())?;
        let value = Self::parse_bytes(xml)?;
        value.validate(limits, domains)?;
        Ok(value)
    }

    /// The serialised element (UTF-8, namespace declared on it).
    fn to_xml_bytes(&self) -> Result<Vec<u8>, xso::error::Error> {
        xso::to_vec(self)
    }

    /// The serialised element as a tree.
    fn to_element(&self) -> Result<Element, xso::error::Error> {
        xso::transform(self)
    }
}

/// Any top-level element of our namespace, for dispatching a received payload.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml()]
pub enum SyncElement {
    /// XEP §Stream Feature.
    #[xml(transparent)]
    Feature(StreamFeature),
    /// XEP §Hello.
    #[xml(transparent)]
    Hello(Hello),
    /// XEP §Reconciliation.
    #[xml(transparent)]
    Reconcile(Reconcile),
    /// XEP §Batches.
    #[xml(transparent)]
    Batch(Batch),
    /// XEP §Items.
    #[xml(transparent)]
    Item(Item),
    /// XEP §Domain-Level Presence.
    #[xml(transparent)]
    Fanout(Fanout),
    /// XEP §Repair of Subscription Mismatches.
    #[xml(transparent)]
    Repair(Repair),
    /// XEP §Graceful Shutdown.
    #[xml(transparent)]
    Shutdown(Shutdown),
    /// XEP §Error Handling.
    #[xml(transparent)]
    Condition(Condition),
}

impl SyncElement {
    /// Parses any top-level element of our namespace; errors name the element received.
    /// `Ok(None)` if `element` is not one (another namespace, or a child-only element such as
    /// `<split/>`).
    pub fn parse_element(element: &Element) -> Result<Option<SyncElement>, WireError> {
        if element.ns() != ns::PRESENCE_SYNC {
            return Ok(None);
        }
        Ok(Some(match element.name() {
            "presence-sync" => SyncElement::Feature(StreamFeature::parse_element(element)?),
            "hello" => SyncElement::Hello(Hello::parse_element(element)?),
            "reconcile" => SyncElement::Reconcile(Reconcile::parse_element(element)?),
            "batch" => SyncElement::Batch(Batch::parse_element(element)?),
            "item" => SyncElement::Item(Item::parse_element(element)?),
            "fanout" => SyncElement::Fanout(Fanout::parse_element(element)?),
            "repair" => SyncElement::Repair(Repair::parse_element(element)?),
            "shutdown" => SyncElement::Shutdown(Shutdown::parse_element(element)?),
            name if Condition::ALL.iter().any(|c| c.name() == name) => {
                SyncElement::Condition(Condition::parse_element(element)?)
            }
            _ => return Ok(None),
        }))
    }

    /// The element name.
    pub fn name(&self) -> &'static str {
        match self {
            SyncElement::Feature(_) => StreamFeature::NAME,
            SyncElement::Hello(_) => Hello::NAME,
            SyncElement::Reconcile(_) => Reconcile::NAME,
            SyncElement::Batch(_) => Batch::NAME,
            SyncElement::Item(_) => Item::NAME,
            SyncElement::Fanout(_) => Fanout::NAME,
            SyncElement::Repair(_) => Repair::NAME,
            SyncElement::Shutdown(_) => Shutdown::NAME,
            SyncElement::Condition(c) => c.name(),
        }
    }
}
