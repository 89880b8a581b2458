//! One subscription edge on the wire (XEP §Reconciliation, XEP §Repair of Subscription
//! Mismatches).

use jid::BareJid;
use xso::error::Error;
use xso::{AsOptionalXmlText, AsXml, FromXml, FromXmlText};

use crate::model;
use crate::wire::codec::BareJidAttr;
use crate::wire::malformed::Malformed;
use crate::wire::ns;

/// State of an [`Edge`] on the wire; absent means `subscribed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EdgeState {
    /// `subscribed` (the default, written by omitting the attribute).
    #[default]
    Subscribed,
    /// `pending`.
    Pending,
}

impl FromXmlText for EdgeState {
    fn from_xml_text(text: String) -> Result<Self, Error> {
        match text.as_str() {
            "subscribed" => Ok(EdgeState::Subscribed),
            "pending" => Ok(EdgeState::Pending),
            _ => Err(Error::text_parse_error(Malformed::UnknownValue {
                attr: "state",
                value: text,
            })),
        }
    }
}

impl AsOptionalXmlText for EdgeState {
    fn as_optional_xml_text(&self) -> Result<Option<std::borrow::Cow<'_, str>>, Error> {
        Ok(match self {
            EdgeState::Subscribed => None,
            EdgeState::Pending => Some("pending".into()),
        })
    }
}

impl From<model::EdgeState> for EdgeState {
    fn from(state: model::EdgeState) -> Self {
        match state {
            model::EdgeState::Subscribed => EdgeState::Subscribed,
            model::EdgeState::Pending => EdgeState::Pending,
        }
    }
}

impl From<EdgeState> for model::EdgeState {
    fn from(state: EdgeState) -> Self {
        match state {
            EdgeState::Subscribed => model::EdgeState::Subscribed,
            EdgeState::Pending => model::EdgeState::Pending,
        }
    }
}

/// XEP §Reconciliation: `<edge publisher='...' subscriber='...' state='...'/>`, one full edge of the
/// edge set.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq, Eq, Hash)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "edge", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Edge {
    /// Whose presence flows.
    #[xml(attribute(codec = BareJidAttr("publisher")))]
    pub publisher: BareJid,
    /// Who receives it.
    #[xml(attribute(codec = BareJidAttr("subscriber")))]
    pub subscriber: BareJid,
    /// Subscribed (default) or pending.
    #[xml(attribute(default))]
    pub state: EdgeState,
}

impl Edge {
    /// `publisher -> subscriber`, for messages.
    pub fn label(&self) -> String {
        format!("{} -> {}", self.publisher, self.subscriber)
    }
}

impl From<&model::Edge> for Edge {
    fn from(edge: &model::Edge) -> Self {
        Edge {
            publisher: edge.publisher.clone(),
            subscriber: edge.subscriber.clone(),
            state: edge.state.into(),
        }
    }
}

impl From<Edge> for model::Edge {
    fn from(edge: Edge) -> Self {
        model::Edge::new(edge.publisher, edge.subscriber, edge.state.into())
    }
}
