//! xmpp-parsers stanzas in the `jabber:server` namespace (XEP §Items).
//!
//! xmpp-parsers declares `<presence/>`, `<message/>`, `<iq/>` and their `<error/>` in one fixed
//! namespace (`jabber:client`, see [`STANZA_DEFAULT`]). On a server-to-server stream, and
//! inside our `<item/>`, the same elements are qualified by `jabber:server`. [`ServerNs`]
//! reuses xmpp-parsers' types unchanged and only renames the namespace: on parsing,
//! `jabber:server` elements are fed to the inner parser as `jabber:client`; on serialising, the
//! inner type's `jabber:client` elements are written as `jabber:server`.
//!
//! A literal `jabber:client` element inside a `jabber:server` stanza is rejected (it could not
//! be written back). One canonicalisation is applied when writing a `<presence/>`: its
//! `<priority>0</priority>` is omitted, since 0 is the default (RFC 6121 §4.7.2.3) and
//! xmpp-parsers always writes it.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use xso::error::{Error, FromEventsError};
use xso::exports::rxml::{self, Namespace};
use xso::fromxml::XmlNameMatcher;
use xso::{AsXml, Context, FromEventsBuilder, FromXml, Item};

use crate::wire::ns::{JABBER_SERVER, STANZA_DEFAULT};

/// An xmpp-parsers stanza type `T` read and written in the `jabber:server` namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerNs<T>(pub T);

impl<T> ServerNs<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for ServerNs<T> {
    fn from(inner: T) -> Self {
        ServerNs(inner)
    }
}

impl<T> Deref for ServerNs<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for ServerNs<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

fn server() -> Namespace<'static> {
    Namespace::from_str(JABBER_SERVER)
}

fn client() -> Namespace<'static> {
    Namespace::from_str(STANZA_DEFAULT)
}

impl<T: FromXml> FromXml for ServerNs<T> {
    type Builder = ServerNsBuilder<T::Builder>;

    fn from_events(
        name: rxml::QName,
        attrs: rxml::AttrMap,
        ctx: &Context<'_>,
    ) -> Result<Self::Builder, FromEventsError> {
        let (namespace, local) = name;
        if namespace.as_str() != JABBER_SERVER {
            return Err(FromEventsError::Mismatch {
                name: (namespace, local),
                attrs,
            });
        }
        match T::from_events((client(), local), attrs, ctx) {
            Ok(inner) => Ok(ServerNsBuilder { inner }),
            Err(FromEventsError::Mismatch {
                name: (_, local),
                attrs,
            }) => Err(FromEventsError::Mismatch {
                name: (namespace, local),
                attrs,
            }),
            Err(FromEventsError::Invalid(e)) => Err(FromEventsError::Invalid(e)),
        }
    }

    fn xml_name_matcher() -> XmlNameMatcher<'static> {
        match T::xml_name_matcher() {
            XmlNameMatcher::Specific(ns, name) if ns == STANZA_DEFAULT => {
                XmlNameMatcher::Specific(JABBER_SERVER, name)
            }
            XmlNameMatcher::InNamespace(ns) if ns == STANZA_DEFAULT => {
                XmlNameMatcher::InNamespace(JABBER_SERVER)
            }
            _ => XmlNameMatcher::Any,
        }
    }
}

/// Parser state of [`ServerNs`]: the inner type's builder, fed renamed events.
pub struct ServerNsBuilder<B> {
    inner: B,
}

impl<B: FromEventsBuilder> FromEventsBuilder for ServerNsBuilder<B> {
    type Output = ServerNs<B::Output>;

    fn feed(
        &mut self,
        event: rxml::Event,
        ctx: &Context<'_>,
    ) -> Result<Option<Self::Output>, Error> {
        let event = match event {
            rxml::Event::StartElement(metrics, (namespace, local), attrs) => {
                let namespace = if namespace.as_str() == JABBER_SERVER {
                    client()
                } else if namespace.as_str() == STANZA_DEFAULT {
                    return Err(Error::Other(
                        "Element in the client namespace inside a jabber:server stanza.",
                    ));
                } else {
                    namespace
                };
                rxml::Event::StartElement(metrics, (namespace, local), attrs)
            }
            other => other,
        };
        Ok(self.inner.feed(event, ctx)?.map(ServerNs))
    }
}

impl<T: AsXml> AsXml for ServerNs<T> {
    type ItemIter<'x>
        = ServerNsIter<'x, T::ItemIter<'x>>
    where
        T: 'x;

    fn as_xml_iter(&self) -> Result<Self::ItemIter<'_>, Error> {
        Ok(ServerNsIter::new(self.0.as_xml_iter()?))
    }
}

/// Serialiser state of [`ServerNs`]: renames the inner type's stanza namespace and drops a
/// default priority (see the module documentation).
pub struct ServerNsIter<'x, I> {
    inner: I,
    /// Elements open in the output so far.
    depth: usize,
    /// The top-level element is a `<presence/>`.
    root_is_presence: bool,
    /// A `<priority/>` child being held back: its items and its own open depth.
    capture: Option<(Vec<Item<'x>>, usize)>,
    /// Items released from a capture, to be yielded first.
    ready: VecDeque<Item<'x>>,
    _items: PhantomData<&'x ()>,
}

impl<'x, I: Iterator<Item = Result<Item<'x>, Error>>> ServerNsIter<'x, I> {
    /// Wraps the items of an xmpp-parsers stanza type.
    pub fn new(inner: I) -> Self {
        ServerNsIter {
            inner,
            depth: 0,
            root_is_presence: false,
            capture: None,
            ready: VecDeque::new(),
            _items: PhantomData,
        }
    }

    /// Handles one renamed item; returns it if it is to be yielded now.
    fn process(&mut self, item: Item<'x>) -> Option<Item<'x>> {
        if let Some((held, open)) = &mut self.capture {
            match item {
                Item::ElementHeadStart(..) => *open += 1,
                Item::ElementFoot => *open -= 1,
                _ => {}
            }
            held.push(item);
            if *open == 0 {
                let (held, _) = self.capture.take()?;
                self.depth -= 1;
                if !is_default_priority(&held) {
                    self.ready.extend(held);
                }
            }
            return None;
        }
        match &item {
            Item::ElementHeadStart(namespace, local) => {
                let is_server = namespace.as_str() == JABBER_SERVER;
                if self.depth == 0 {
                    self.root_is_presence = is_server && local.as_str() == "presence";
                } else if self.depth == 1
                    && self.root_is_presence
                    && is_server
                    && local.as_str() == "priority"
                {
                    self.depth += 1;
                    self.capture = Some((vec![item], 1));
                    return None;
                }
                self.depth += 1;
            }
            Item::ElementFoot => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Some(item)
    }
}

fn is_default_priority(items: &[Item<'_>]) -> bool {
    matches!(
        items,
        [Item::ElementHeadStart(..), Item::ElementHeadEnd, Item::Text(text), Item::ElementFoot]
            if text.as_ref() == "0"
    )
}

impl<'x, I: Iterator<Item = Result<Item<'x>, Error>>> Iterator for ServerNsIter<'x, I> {
    type Item = Result<Item<'x>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            let item = match self.inner.next()? {
                Ok(Item::ElementHeadStart(namespace, local))
                    if namespace.as_str() == STANZA_DEFAULT =>
                {
                    Item::ElementHeadStart(server(), local)
                }
                Ok(item) => item,
                Err(e) => return Some(Err(e)),
            };
            if let Some(item) = self.process(item) {
                return Some(Ok(item));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minidom::Element;
    use xmpp_parsers::presence::{Presence, Show};

    fn parse(xml: &str) -> Result<ServerNs<Presence>, Error> {
        xso::from_bytes(xml.as_bytes())
    }

    fn write(p: &ServerNs<Presence>) -> String {
        String::from_utf8(xso::to_vec(p).unwrap()).unwrap()
    }

    #[test]
    fn parse_server_presence() {
        let p = parse(
            "<presence xmlns='jabber:server' from='juliet@a.example/balcony'>\
             <show>away</show><priority>5</priority></presence>",
        )
        .unwrap();
        assert_eq!(p.show, Some(Show::Away));
        assert_eq!(p.priority.0, 5);
        assert_eq!(
            p.from.as_ref().unwrap().as_str(),
            "juliet@a.example/balcony"
        );
    }

    #[test]
    fn serialise_server_presence() {
        let p = parse("<presence xmlns='jabber:server' from='j@a.example/r'/>").unwrap();
        let text = write(&p);
        let elem: Element = text.parse().unwrap();
        let expected: Element = "<presence xmlns='jabber:server' from='j@a.example/r'/>"
            .parse()
            .unwrap();
        assert_eq!(elem, expected);

        let p = ServerNs(Presence::available().with_priority(-3).with_show(Show::Dnd));
        let elem: Element = write(&p).parse().unwrap();
        let expected: Element = "<presence xmlns='jabber:server'><show>dnd</show>\
                                 <priority>-3</priority></presence>"
            .parse()
            .unwrap();
        assert_eq!(elem, expected);
        assert_eq!(parse(&write(&p)).unwrap(), p);
    }

    #[test]
    fn client_namespace_is_not_server() {
        match parse("<presence xmlns='jabber:client'/>") {
            Err(Error::TypeMismatch) => {}
            other => panic!("{other:?}"),
        }
        match parse(
            "<presence xmlns='jabber:server'><show xmlns='jabber:client'>away</show></presence>",
        ) {
            Err(Error::Other(msg)) => {
                assert_eq!(
                    msg,
                    "Element in the client namespace inside a jabber:server stanza."
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn payloads_keep_their_namespace() {
        let xml = "<presence xmlns='jabber:server'><c xmlns='http://jabber.org/protocol/caps' \
                   hash='sha-1' node='n' ver='v'/></presence>";
        let p = parse(xml).unwrap();
        assert_eq!(p.payloads.len(), 1);
        assert_eq!(p.payloads[0].ns(), "http://jabber.org/protocol/caps");
        let elem: Element = write(&p).parse().unwrap();
        assert_eq!(elem, xml.parse::<Element>().unwrap());
    }
}
