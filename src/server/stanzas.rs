//! The presence stanzas two RFC 6121 servers exchange, in `jabber:server` (RFC 6120 §4.8.3),
//! and XEP-0033 multicast addressing.
//!
//! A [`Stanza`] is one `<presence/>` with one sender and one recipient, typed by what it means
//! to the server ([`Kind`]). Stanzas are written and read through xmpp-parsers' `Presence`
//! wrapped in [`ServerNs`], so what goes on the wire is exactly what xmpp-parsers would write,
//! in the server namespace. [`multicast`] builds the XEP-0033 form ejabberd's mod_multicast
//! sends (one stanza, many `bcc` recipients, addressed to the peer domain); [`parse`] reads
//! both forms.

use std::fmt;

use jid::{BareJid, Jid};
use minidom::Element;
use minidom::rxml::NcName;
use xmpp_parsers::message::Lang;
use xmpp_parsers::presence::{Presence, Type};
use xso::{AsXml, FromXml};

use super::config::MULTICAST_RECEIVE_LIMIT;
use crate::model::{ResourcePresence, SubscriptionStanza};
use crate::wire::ServerNs;
use crate::wire::convert::{model_show, wire_show};
use crate::wire::ns::JABBER_SERVER;

/// The XEP-0033 (Extended Stanza Addressing) namespace.
pub const ADDRESS: &str = "http://jabber.org/protocol/address";

/// XEP-0033 `<addresses/>`: the recipients of a multicast stanza.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = ADDRESS, name = "addresses")]
pub struct Addresses {
    /// The `<address/>` children.
    #[xml(child(n = ..))]
    pub list: Vec<Address>,
}

/// XEP-0033 `<address/>`. Attributes this model does not use (`uri`, `node`, `desc`) are
/// ignored on purpose: a multicast service only needs the JID, the type and whether the
/// address was already served.
#[derive(FromXml, AsXml, Debug, Clone, PartialEq)]
#[xml(namespace = ADDRESS, name = "address")]
pub struct Address {
    /// `to`, `cc`, `bcc`, `replyto`, `replyroom`, `noreply` or `ofrom` (XEP-0033 §4.6).
    #[xml(attribute(name = "type"))]
    pub type_: String,
    /// The recipient.
    #[xml(attribute(default))]
    pub jid: Option<Jid>,
    /// `true` once a multicast service has delivered to this address (XEP-0033 §4.5).
    #[xml(attribute(default))]
    pub delivered: Option<String>,
}

impl Address {
    /// A `bcc` address (what mod_multicast writes for presence: `route_trusted`).
    pub fn bcc(jid: Jid) -> Address {
        Address {
            type_: "bcc".into(),
            jid: Some(jid),
            delivered: None,
        }
    }

    /// The recipient, if this address asks for delivery: types `to`, `cc` and `bcc` with a
    /// JID that no multicast service has served yet (XEP-0033 §4.5, §4.6).
    pub fn recipient(&self) -> Option<&Jid> {
        let delivers = matches!(self.type_.as_str(), "to" | "cc" | "bcc");
        let served = self.delivered.as_deref() == Some("true");
        self.jid.as_ref().filter(|_| delivers && !served)
    }
}

/// The XEP-0203 (Delayed Delivery) namespace.
pub const DELAY: &str = "urn:xmpp:delay";

/// The `<status/>` of the `unavailable` each session sends when Prosody is stopped
/// (`prosodyctl stop` sends SIGTERM): mod_posix shuts down with the reason "Received SIGTERM",
/// mod_c2s closes every session with it, and mod_presence's `resource-unbind` hook writes
/// "Disconnected: " and the reason.
pub const SHUTDOWN_STATUS: &str = "Disconnected: Received SIGTERM";

/// The stamp of every `<delay/>` this model writes. The core reads no clock, and what a stamp
/// says changes nothing here; its length is that of Prosody's `datetime.datetime()`
/// (`ejabberd` adds six digits of microseconds, [`Extra::EjabberdDelay`]).
pub const STAMP: &str = "2026-01-01T00:00:00Z";

/// [`STAMP`] as ejabberd writes it, with microseconds (`xmpp_util:encode_timestamp`).
const EJABBERD_STAMP: &str = "2026-01-01T00:00:00.000000Z";

/// What a sending server adds to a stanza on the wire that this model does not keep: it costs
/// bytes on the link, and [`parse`] drops it again (a receiving server passes it to clients,
/// whose view of who is available it does not change).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Extra {
    /// Nothing.
    #[default]
    None,
    /// XEP-0203 `<delay/>` from the sender's domain, as Prosody writes it: mod_presence tags
    /// the stored presence of a session once it is broadcast, so every copy sent later (probe
    /// answers, presence after a subscription approval) carries it.
    ProsodyDelay,
    /// XEP-0203 `<delay/>` from the sender's full JID with a stamp in microseconds, as
    /// ejabberd's `route_probe_reply` adds it to probe answers (`xmpp_util:add_delay_info`).
    EjabberdDelay,
    /// [`SHUTDOWN_STATUS`] on an `unavailable`.
    ShutdownStatus,
}

/// What a presence stanza means to the server (RFC 6121 §3 and §4).
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Available presence of the sending resource (§4.2, §4.4).
    Available(ResourcePresence),
    /// `unavailable`: of the sending resource, or of every resource when sent from a bare JID
    /// (§4.5, §4.3.2).
    Unavailable,
    /// `probe` (§4.3).
    Probe,
    /// One of the four subscription stanzas (§3).
    Subscription(SubscriptionStanza),
    /// `error` (a bounce of a presence we sent, RFC 6120 §8.3).
    Error,
}

/// One presence stanza from one JID to one JID.
#[derive(Clone, Debug, PartialEq)]
pub struct Stanza {
    /// The sender (full JID for presence of a resource and for probes, bare otherwise).
    pub from: Jid,
    /// The recipient.
    pub to: Jid,
    /// What it says.
    pub kind: Kind,
    /// What the sender adds on the wire that the model does not keep.
    pub extra: Extra,
}

impl Stanza {
    /// A stanza.
    pub fn new(from: impl Into<Jid>, to: impl Into<Jid>, kind: Kind) -> Stanza {
        Stanza {
            from: from.into(),
            to: to.into(),
            kind,
            extra: Extra::None,
        }
    }

    /// The stanza with `extra` added on the wire.
    pub fn with_extra(self, extra: Extra) -> Stanza {
        Stanza { extra, ..self }
    }

    /// The `<presence/>` element in `jabber:server`.
    pub fn to_element(&self) -> Element {
        presence_element(&self.from, &self.to, &self.kind, self.extra)
    }
}

/// The XEP-0033 stanza carrying `kind` from `from` to every one of `recipients` (as `bcc`
/// addresses), addressed to the multicast service of the recipients' domain, which in this
/// model is the domain itself (`peer`). The `<addresses/>` element comes first, so that the
/// driver counts the stanza under its own kind (`presence/addresses`,
/// `presence/probe/addresses`).
pub fn multicast(
    from: &Jid,
    peer: &BareJid,
    recipients: &[BareJid],
    kind: &Kind,
    extra: Extra,
) -> Element {
    let mut stanza = presence_element(from, &Jid::from(peer.clone()), kind, extra);
    let addresses = Addresses {
        list: recipients
            .iter()
            .map(|r| Address::bcc(Jid::from(r.clone())))
            .collect(),
    };
    // Serialising a derived type into a tree cannot fail: every field is a string or a JID.
    let addresses: Element = xso::transform(&addresses).expect("addresses serialise");
    let rest = stanza.take_nodes();
    stanza.append_child(addresses);
    for node in rest {
        stanza.append_node(node);
    }
    stanza
}

fn presence_element(from: &Jid, to: &Jid, kind: &Kind, extra: Extra) -> Element {
    let type_ = match kind {
        Kind::Available(_) => Type::None,
        Kind::Unavailable => Type::Unavailable,
        Kind::Probe => Type::Probe,
        Kind::Subscription(SubscriptionStanza::Subscribe) => Type::Subscribe,
        Kind::Subscription(SubscriptionStanza::Subscribed) => Type::Subscribed,
        Kind::Subscription(SubscriptionStanza::Unsubscribe) => Type::Unsubscribe,
        Kind::Subscription(SubscriptionStanza::Unsubscribed) => Type::Unsubscribed,
        Kind::Error => Type::Error,
    };
    let mut p = Presence::new(type_)
        .with_from(from.clone())
        .with_to(to.clone());
    if let Kind::Available(rp) = kind {
        p.show = wire_show(rp.show);
        p.priority.0 = rp.priority;
        p.statuses = rp
            .statuses
            .iter()
            .map(|(lang, text)| (Lang(lang.clone()), text.clone()))
            .collect();
        p.payloads = rp.extensions.clone();
    }
    let delay = |by: String, stamp: &str| {
        let name = |n: &str| NcName::try_from(n).expect("XEP-0203 attribute names are valid");
        Element::builder("delay", DELAY)
            .attr(name("from"), by)
            .attr(name("stamp"), stamp)
            .build()
    };
    match extra {
        Extra::None => {}
        Extra::ProsodyDelay => p.payloads.push(delay(from.domain().to_string(), STAMP)),
        Extra::EjabberdDelay => p.payloads.push(delay(from.to_string(), EJABBERD_STAMP)),
        Extra::ShutdownStatus => {
            p.statuses
                .insert(Lang(String::new()), SHUTDOWN_STATUS.to_owned());
        }
    }
    // xmpp-parsers writes every Presence it can hold; payloads are minidom trees.
    xso::transform(&ServerNs(p)).expect("a presence serialises")
}

/// A received stanza: the stanza itself and, for a XEP-0033 stanza, its recipients.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    /// The stanza; for a multicast stanza `to` is the domain it was addressed to.
    pub stanza: Stanza,
    /// The recipients to deliver it to, when the stanza carried `<addresses/>`; `None` for an
    /// ordinary stanza.
    pub recipients: Option<Vec<Jid>>,
}

/// Why a received stanza was dropped without processing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejected {
    /// Not a `<presence/>` in `jabber:server` (iq and message are outside this model).
    NotPresence,
    /// The presence does not parse (the parser's message).
    Malformed(String),
    /// `from` or `to` is missing.
    Unaddressed,
    /// `from` is not a JID of the peer the stanza came from (BRIEF §2.11: accept presence only
    /// for JIDs of the authenticated peer domain).
    ForeignFrom,
    /// `to` (or a multicast recipient) is not a JID of this domain.
    ForeignTo,
    /// More than one `<addresses/>`, or more than [`MULTICAST_RECEIVE_LIMIT`] recipients.
    BadAddresses,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::NotPresence => f.write_str("not a jabber:server presence"),
            Rejected::Malformed(why) => write!(f, "malformed presence: {why}"),
            Rejected::Unaddressed => f.write_str("presence without from or to"),
            Rejected::ForeignFrom => f.write_str("from is not a JID of the peer domain"),
            Rejected::ForeignTo => f.write_str("to is not a JID of this domain"),
            Rejected::BadAddresses => f.write_str("unacceptable XEP-0033 addresses"),
        }
    }
}

impl std::error::Error for Rejected {}

/// Reads a received `<presence/>` (parse only: who may send what is checked by the caller).
pub fn parse(element: &Element) -> Result<Received, Rejected> {
    if !element.is("presence", JABBER_SERVER) {
        return Err(Rejected::NotPresence);
    }
    let ServerNs(p) = xso::transform::<ServerNs<Presence>, _>(element)
        .map_err(|e| Rejected::Malformed(e.to_string()))?;
    let (Some(from), Some(to)) = (p.from, p.to) else {
        return Err(Rejected::Unaddressed);
    };
    let mut recipients = None;
    let mut extensions = Vec::new();
    let mut extra = Extra::None;
    for payload in p.payloads {
        if payload.is("delay", DELAY) {
            // A server's note (XEP-0203 §4), not part of what the sender published.
            extra = match payload.attr("from").and_then(|f| Jid::new(f).ok()) {
                Some(by) if by.node().is_some() => Extra::EjabberdDelay,
                _ => Extra::ProsodyDelay,
            };
        } else if payload.is("addresses", ADDRESS) {
            if recipients.is_some() {
                return Err(Rejected::BadAddresses);
            }
            let addresses: Addresses = xso::transform(&payload)
                .map_err(|e| Rejected::Malformed(format!("addresses: {e}")))?;
            let list: Vec<Jid> = addresses
                .list
                .iter()
                .filter_map(Address::recipient)
                .cloned()
                .collect();
            if list.len() > MULTICAST_RECEIVE_LIMIT {
                return Err(Rejected::BadAddresses);
            }
            recipients = Some(list);
        } else {
            extensions.push(payload);
        }
    }
    let kind = match p.type_ {
        Type::None => Kind::Available(ResourcePresence {
            show: model_show(p.show.as_ref()),
            priority: p.priority.0,
            statuses: p.statuses.into_iter().map(|(l, t)| (l.0, t)).collect(),
            extensions,
        }),
        Type::Unavailable => {
            if !p.statuses.is_empty() {
                extra = Extra::ShutdownStatus;
            }
            Kind::Unavailable
        }
        Type::Probe => Kind::Probe,
        Type::Subscribe => Kind::Subscription(SubscriptionStanza::Subscribe),
        Type::Subscribed => Kind::Subscription(SubscriptionStanza::Subscribed),
        Type::Unsubscribe => Kind::Subscription(SubscriptionStanza::Unsubscribe),
        Type::Unsubscribed => Kind::Subscription(SubscriptionStanza::Unsubscribed),
        Type::Error => Kind::Error,
    };
    Ok(Received {
        stanza: Stanza {
            from,
            to,
            kind,
            extra,
        },
        recipients,
    })
}

/// True if `element` is a presence carrying XEP-0033 `<addresses/>`.
pub fn is_multicast(element: &Element) -> bool {
    element.has_child("addresses", ADDRESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Show;

    fn jid(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    fn bare(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    fn away() -> ResourcePresence {
        ResourcePresence {
            show: Show::Away,
            priority: 5,
            statuses: [("".to_string(), "at the ball".to_string())].into(),
            extensions: vec![
                "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
                    .parse()
                    .unwrap(),
            ],
        }
    }

    #[test]
    fn probe_is_exact() {
        let s = Stanza::new(
            jid("juliet@a.example/balcony"),
            jid("romeo@b.example"),
            Kind::Probe,
        );
        let want: Element = "<presence xmlns='jabber:server' from='juliet@a.example/balcony' \
                             to='romeo@b.example' type='probe'/>"
            .parse()
            .unwrap();
        assert_eq!(s.to_element(), want);
    }

    #[test]
    fn every_kind_round_trips() {
        let kinds = [
            Kind::Available(away()),
            Kind::Available(ResourcePresence::default()),
            Kind::Unavailable,
            Kind::Probe,
            Kind::Subscription(SubscriptionStanza::Subscribe),
            Kind::Subscription(SubscriptionStanza::Subscribed),
            Kind::Subscription(SubscriptionStanza::Unsubscribe),
            Kind::Subscription(SubscriptionStanza::Unsubscribed),
            Kind::Error,
        ];
        for kind in kinds {
            let s = Stanza::new(
                jid("juliet@a.example/balcony"),
                jid("romeo@b.example"),
                kind,
            );
            let r = parse(&s.to_element()).unwrap();
            assert_eq!(r.stanza, s);
            assert_eq!(r.recipients, None);
        }
    }

    #[test]
    fn what_servers_add_costs_bytes_and_is_dropped_on_receipt() {
        let from = jid("juliet@a.example/balcony");
        let to = jid("romeo@b.example");
        let answer = Stanza::new(from.clone(), to.clone(), Kind::Available(away()));
        let plain = String::from(&answer.to_element()).len();
        let cases = [
            (
                Kind::Available(away()),
                Extra::ProsodyDelay,
                "from='a.example'",
            ),
            (
                Kind::Available(away()),
                Extra::EjabberdDelay,
                "stamp='2026-01-01T00:00:00.000000Z'",
            ),
            (Kind::Unavailable, Extra::ShutdownStatus, SHUTDOWN_STATUS),
        ];
        for (kind, extra, shows) in cases {
            let s = Stanza::new(from.clone(), to.clone(), kind.clone()).with_extra(extra);
            let xml = String::from(&s.to_element());
            assert!(xml.contains(shows), "{xml}");
            if extra != Extra::ShutdownStatus {
                assert!(xml.len() > plain + 60, "{xml}");
            }
            let r = parse(&s.to_element()).unwrap();
            assert_eq!(r.stanza, s, "{xml}");
            assert_eq!(
                r.stanza.kind, kind,
                "the model keeps only what the sender published"
            );
        }
    }

    #[test]
    fn multicast_round_trips_with_addresses_first() {
        let to: Vec<BareJid> = (0..3).map(|i| bare(&format!("u{i}@b.example"))).collect();
        let e = multicast(
            &jid("juliet@a.example/balcony"),
            &bare("b.example"),
            &to,
            &Kind::Available(away()),
            Extra::None,
        );
        assert!(is_multicast(&e));
        assert_eq!(e.children().next().unwrap().name(), "addresses");
        assert_eq!(e.attr("to"), Some("b.example"));
        let r = parse(&e).unwrap();
        assert_eq!(r.stanza.kind, Kind::Available(away()));
        let want: Vec<Jid> = to.into_iter().map(Jid::from).collect();
        assert_eq!(r.recipients, Some(want));
    }

    #[test]
    fn delivered_and_non_delivery_addresses_are_skipped() {
        let e: Element = "<presence xmlns='jabber:server' from='j@a.example/r' to='b.example' \
                          type='probe'><addresses xmlns='http://jabber.org/protocol/address'>\
                          <address type='bcc' jid='x@b.example' delivered='true'/>\
                          <address type='replyto' jid='y@b.example'/>\
                          <address type='to' jid='z@b.example' desc='ignored'/>\
                          </addresses></presence>"
            .parse()
            .unwrap();
        let r = parse(&e).unwrap();
        assert_eq!(r.recipients, Some(vec![jid("z@b.example")]));
    }

    #[test]
    fn rejections() {
        let parse_str = |s: &str| parse(&s.parse::<Element>().unwrap());
        assert_eq!(
            parse_str("<presence xmlns='jabber:client' from='a@a' to='b@b'/>"),
            Err(Rejected::NotPresence)
        );
        assert_eq!(
            parse_str("<message xmlns='jabber:server' from='a@a' to='b@b'/>"),
            Err(Rejected::NotPresence)
        );
        assert_eq!(
            parse_str("<presence xmlns='jabber:server' to='b@b'/>"),
            Err(Rejected::Unaddressed)
        );
        assert!(matches!(
            parse_str("<presence xmlns='jabber:server' from='a@a' to='b@b' type='bogus'/>"),
            Err(Rejected::Malformed(_))
        ));
        let two = "<presence xmlns='jabber:server' from='a@a' to='b'>\
                   <addresses xmlns='http://jabber.org/protocol/address'/>\
                   <addresses xmlns='http://jabber.org/protocol/address'/></presence>";
        assert_eq!(parse_str(two), Err(Rejected::BadAddresses));
        let many: Vec<BareJid> = (0..=MULTICAST_RECEIVE_LIMIT)
            .map(|i| bare(&format!("u{i}@b")))
            .collect();
        let e = multicast(&jid("a@a/r"), &bare("b"), &many, &Kind::Probe, Extra::None);
        assert_eq!(parse(&e), Err(Rejected::BadAddresses));
    }
}
