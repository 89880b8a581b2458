//! The `<presence/>` children of an item (XEP §Items).
//!
//! They are xmpp-parsers [`Presence`]s read in `jabber:server` (through [`ServerNs`]) with the
//! stricter rules of XEP §Items [PS-40] that xmpp-parsers' lenient parser does not apply:
//!
//! - the only attribute is `from` (no `type`, `to`, `id`, `xml:lang`, nor anything else), in
//!   normalised form, so that both servers hash the same resource bytes;
//! - no two `<status/>` with the same `xml:lang`, and no `jabber:server` child other than
//!   `<show/>`, `<status/>` and `<priority/>` (extensions are in their own namespaces);
//! - a status's language is the `xml:lang` written on the `<status/>` itself: a language
//!   inherited from the enclosing stanza or stream is ignored, so that an item means the same
//!   on every stream (XEP §Items: "The xml:lang of a status is written on the `<status/>`
//!   element itself").
//!
//! Which JID `from` must be (a resource of the item's publisher, resources unique) is checked
//! by [`Item`](super::Item).

use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};

use jid::Jid;
use xmpp_parsers::presence::Presence;
use xso::error::{Error, FromEventsError};
use xso::exports::rxml::{self, Namespace, xml_lang::XmlLangStack};
use xso::fromxml::XmlNameMatcher;
use xso::{AsXml, Context, FromEventsBuilder, FromXml};

use crate::wire::limits::MAX_PAYLOAD_DEPTH;
use crate::wire::malformed::Malformed;
use crate::wire::ns::JABBER_SERVER;
use crate::wire::server_ns::{ServerNs, ServerNsBuilder, ServerNsIter};

/// One available presence of an item's publisher: `<presence xmlns='jabber:server'/>`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPresence(pub Presence);

impl ItemPresence {
    /// The wrapped presence.
    pub fn into_inner(self) -> Presence {
        self.0
    }
}

impl From<Presence> for ItemPresence {
    fn from(presence: Presence) -> Self {
        ItemPresence(presence)
    }
}

impl Deref for ItemPresence {
    type Target = Presence;
    fn deref(&self) -> &Presence {
        &self.0
    }
}

impl DerefMut for ItemPresence {
    fn deref_mut(&mut self) -> &mut Presence {
        &mut self.0
    }
}

fn invalid(m: Malformed) -> FromEventsError {
    FromEventsError::Invalid(Error::text_parse_error(m))
}

impl FromXml for ItemPresence {
    type Builder = ItemPresenceBuilder;

    fn from_events(
        name: rxml::QName,
        attrs: rxml::AttrMap,
        _ctx: &Context<'_>,
    ) -> Result<Self::Builder, FromEventsError> {
        if name.0.as_str() != JABBER_SERVER || name.1.as_str() != "presence" {
            return Err(FromEventsError::Mismatch { name, attrs });
        }
        for ((namespace, local), value) in attrs.iter() {
            if namespace.is_none() && local.as_str() == "from" {
                let jid = Jid::new(value).map_err(|e| {
                    invalid(Malformed::Jid {
                        attr: "presence from",
                        value: value.clone(),
                        reason: e.to_string(),
                    })
                })?;
                if jid.as_str() != value {
                    return Err(invalid(Malformed::NotNormalized {
                        attr: "presence from",
                        value: value.clone(),
                        normalized: jid.as_str().to_owned(),
                    }));
                }
                continue;
            }
            let attr = if namespace.is_none() {
                local.to_string()
            } else if namespace.as_str() == rxml::XMLNS_XML {
                format!("xml:{local}")
            } else {
                format!("{{{}}}{local}", namespace.as_str())
            };
            return Err(invalid(Malformed::PresenceAttribute {
                attr,
                value: value.clone(),
            }));
        }
        let mut langs = XmlLangStack::new();
        langs.push_from_attrs(&attrs);
        let ctx = Context::empty().with_language(langs.current());
        let inner = <ServerNs<Presence> as FromXml>::from_events(name, attrs, &ctx)?;
        Ok(ItemPresenceBuilder {
            inner,
            langs,
            depth: 0,
            status_langs: BTreeSet::new(),
        })
    }

    fn xml_name_matcher() -> XmlNameMatcher<'static> {
        XmlNameMatcher::Specific(JABBER_SERVER, "presence")
    }
}

/// Parser state of [`ItemPresence`].
pub struct ItemPresenceBuilder {
    inner: ServerNsBuilder<<Presence as FromXml>::Builder>,
    /// `xml:lang` in effect, starting from none at the `<presence/>`.
    langs: XmlLangStack,
    /// Open elements below the `<presence/>`.
    depth: usize,
    /// Languages of the statuses seen so far.
    status_langs: BTreeSet<String>,
}

impl FromEventsBuilder for ItemPresenceBuilder {
    type Output = ItemPresence;

    fn feed(
        &mut self,
        event: rxml::Event,
        _ctx: &Context<'_>,
    ) -> Result<Option<Self::Output>, Error> {
        match &event {
            rxml::Event::StartElement(_, (namespace, local), attrs) => {
                let stanza_child = self.depth == 0 && namespace.as_str() == JABBER_SERVER;
                if stanza_child && !matches!(local.as_str(), "show" | "status" | "priority") {
                    return Err(Error::text_parse_error(Malformed::Structure(format!(
                        "<{local}/> of jabber:server is not a child of an available presence"
                    ))));
                }
                if stanza_child && local == "status" {
                    let lang = attrs
                        .get(Namespace::xml(), "lang")
                        .cloned()
                        .unwrap_or_default();
                    if !self.status_langs.insert(lang.clone()) {
                        return Err(Error::text_parse_error(Malformed::Duplicate {
                            what: "status xml:lang",
                            key: format!("'{lang}'"),
                        }));
                    }
                }
                self.depth += 1;
                // XEP §Items: refused before the element is built, so that no walk of the
                // payload (building, clone, encoding, drop) recurses deeper than the limit.
                if self.depth > MAX_PAYLOAD_DEPTH {
                    return Err(too_deep("item presence"));
                }
            }
            rxml::Event::EndElement(_) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.langs.handle_event(&event);
        let ctx = Context::empty().with_language(self.langs.current());
        Ok(self.inner.feed(event, &ctx)?.map(|p| ItemPresence(p.0)))
    }
}

fn too_deep(what: &'static str) -> Error {
    Error::text_parse_error(Malformed::TooDeep {
        what,
        max: MAX_PAYLOAD_DEPTH,
    })
}

/// A presence stanza read with its payloads bounded to [`MAX_PAYLOAD_DEPTH`] (XEP §Items),
/// for domain-level presence (XEP §Domain-Level Presence): a deeper payload is refused at its
/// first element beyond the limit, before it is built.
#[derive(Debug, Clone, PartialEq)]
pub struct ShallowPresence(pub Presence);

impl FromXml for ShallowPresence {
    type Builder = ShallowPresenceBuilder;

    fn from_events(
        name: rxml::QName,
        attrs: rxml::AttrMap,
        ctx: &Context<'_>,
    ) -> Result<Self::Builder, FromEventsError> {
        let inner = <ServerNs<Presence> as FromXml>::from_events(name, attrs, ctx)?;
        Ok(ShallowPresenceBuilder { inner, depth: 0 })
    }

    fn xml_name_matcher() -> XmlNameMatcher<'static> {
        XmlNameMatcher::Specific(JABBER_SERVER, "presence")
    }
}

/// Parser state of [`ShallowPresence`].
pub struct ShallowPresenceBuilder {
    inner: ServerNsBuilder<<Presence as FromXml>::Builder>,
    depth: usize,
}

impl FromEventsBuilder for ShallowPresenceBuilder {
    type Output = ShallowPresence;

    fn feed(
        &mut self,
        event: rxml::Event,
        ctx: &Context<'_>,
    ) -> Result<Option<Self::Output>, Error> {
        match &event {
            rxml::Event::StartElement(..) => {
                self.depth += 1;
                if self.depth > MAX_PAYLOAD_DEPTH {
                    return Err(too_deep("fanout presence"));
                }
            }
            rxml::Event::EndElement(_) => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Ok(self.inner.feed(event, ctx)?.map(|p| ShallowPresence(p.0)))
    }
}

impl AsXml for ItemPresence {
    type ItemIter<'x> = ServerNsIter<'x, <Presence as AsXml>::ItemIter<'x>>;

    fn as_xml_iter(&self) -> Result<Self::ItemIter<'_>, Error> {
        Ok(ServerNsIter::new(self.0.as_xml_iter()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_parsers::message::Lang;

    fn parse(xml: &str) -> Result<ItemPresence, String> {
        xso::from_bytes(xml.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn strict_attributes() {
        let ok = parse("<presence xmlns='jabber:server' from='j@a.example/r'/>").unwrap();
        assert_eq!(ok.from.as_ref().unwrap().as_str(), "j@a.example/r");
        for (attrs, msg) in [
            (
                "type='unavailable'",
                "presence attribute type='unavailable' not allowed (only from)",
            ),
            (
                "to='b.example'",
                "presence attribute to='b.example' not allowed (only from)",
            ),
            (
                "id='x'",
                "presence attribute id='x' not allowed (only from)",
            ),
            (
                "xml:lang='en'",
                "presence attribute xml:lang='en' not allowed (only from)",
            ),
        ] {
            let xml = format!("<presence xmlns='jabber:server' from='j@a.example/r' {attrs}/>");
            assert_eq!(parse(&xml).unwrap_err(), format!("text parse error: {msg}"));
        }
        assert_eq!(
            parse("<presence xmlns='jabber:server' from='J@a.example/r'/>").unwrap_err(),
            "text parse error: presence from \"J@a.example/r\" is not in normalized form \
             (\"j@a.example/r\")"
        );
    }

    #[test]
    fn statuses() {
        let p = parse(
            "<presence xmlns='jabber:server' from='j@a.example/r'><status>a</status>\
             <status xml:lang='en'>b</status></presence>",
        )
        .unwrap();
        assert_eq!(p.statuses.get(&Lang(String::new())).unwrap(), "a");
        assert_eq!(p.statuses.get(&Lang("en".into())).unwrap(), "b");
        let dup = "<presence xmlns='jabber:server' from='j@a.example/r'><status>a</status>\
                   <status xml:lang=''>b</status></presence>";
        assert_eq!(
            parse(dup).unwrap_err(),
            "text parse error: duplicate status xml:lang ''"
        );
    }

    #[test]
    fn children() {
        let base = "<presence xmlns='jabber:server' from='j@a.example/r'>";
        for (children, msg) in [
            (
                "<show>away</show><show>dnd</show>",
                "Presence element must not have more than one child in field 'show'.",
            ),
            (
                "<priority>1</priority><priority>2</priority>",
                "Presence element must not have more than one child in field 'priority'.",
            ),
            (
                "<error type='cancel'/>",
                "text parse error: <error/> of jabber:server is not a child of an available presence",
            ),
        ] {
            assert_eq!(
                parse(&format!("{base}{children}</presence>")).unwrap_err(),
                msg,
                "{children}"
            );
        }
    }

    #[test]
    fn inherited_language_is_ignored() {
        #[derive(xso::FromXml, Debug)]
        #[xml(namespace = "urn:example", name = "wrap")]
        struct Wrap {
            #[xml(child)]
            presence: ItemPresence,
        }
        let w: Wrap = xso::from_bytes(
            b"<wrap xmlns='urn:example' xml:lang='de'><presence xmlns='jabber:server' \
              from='j@a.example/r'><status>hallo</status></presence></wrap>",
        )
        .unwrap();
        assert_eq!(w.presence.statuses.keys().next().unwrap().0, "");
    }
}
