//! Our elements inside ordinary stanzas: live fan-out, repair and shutdown
//! (XEP §Domain-Level Presence, XEP §Repair of Subscription Mismatches, XEP §Graceful Shutdown).

use xmpp_parsers::message::MessagePayload;
use xmpp_parsers::presence::{Presence, PresencePayload, Type};
use xso::{AsXml, FromXml};

use crate::model::Epoch;
use crate::wire::error::WireError;
use crate::wire::limits::Domains;
use crate::wire::malformed::Malformed;
use crate::wire::ns;

/// XEP §Domain-Level Presence: `<fanout/>` in a `<presence/>` addressed to the peer
/// domain: one resource's change of a publisher, to be fanned out by the receiver to its own
/// subscribers (minus excepts and blockers).
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "fanout", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Fanout;

impl PresencePayload for Fanout {}

impl Fanout {
    /// Checks a received presence that carries `<fanout/>` (XEP §Domain-Level Presence
    /// [PS-47]): its `from` is a full JID of the peer domain ([`WireError::InvalidFrom`]
    /// otherwise), its `to` is our domain, it is available or `unavailable`, and its
    /// `<fanout/>` markers are valid (no attribute, no child: PS-72). No error can be returned
    /// for a presence: the caller discards it and ends the session (XEP §Error Handling
    /// [PS-70]).
    pub fn check_presence(presence: &Presence, domains: &Domains) -> Result<(), WireError> {
        domains.check_from(presence.from.as_ref())?;
        for marker in presence
            .payloads
            .iter()
            .filter(|p| p.is("fanout", ns::PRESENCE_SYNC))
        {
            <Fanout as crate::wire::WireElement>::parse_element(marker)?;
        }
        let bad = |reason: String| {
            Err(WireError::Malformed {
                element: "fanout",
                reason: Malformed::Structure(reason),
            })
        };
        if !presence.from.as_ref().is_some_and(|f| f.is_full()) {
            return bad("presence from is not a full JID".into());
        }
        match &presence.to {
            Some(to)
                if to.node().is_none()
                    && to.resource().is_none()
                    && to.domain().as_str() == domains.local() => {}
            other => {
                let to = other.as_ref().map(|j| j.to_string()).unwrap_or_default();
                return bad(format!(
                    "presence to {to:?} is not the domain {}",
                    domains.local()
                ));
            }
        }
        match presence.type_ {
            Type::None | Type::Unavailable => Ok(()),
            _ => bad("presence type is neither available nor unavailable".into()),
        }
    }
}

/// XEP §Repair of Subscription Mismatches: `<repair/>` in the RFC 6121 §3 subscription stanza a
/// server sends on behalf of its user to remove an edge only the peer has.
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "repair", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Repair;

impl PresencePayload for Repair {}

/// XEP §Graceful Shutdown: `<shutdown epoch='...' restart='...'/>` in a `<message/>` from domain to
/// domain: every presence of the sender's epoch is void.
#[derive(FromXml, AsXml, Debug, Clone, Copy, PartialEq, Eq)]
#[xml(namespace = ns::PRESENCE_SYNC, name = "shutdown", on_unknown_attribute = Fail, on_unknown_child = Fail)]
pub struct Shutdown {
    /// The epoch that ends.
    #[xml(attribute)]
    pub epoch: Epoch,
    /// Whether the sender expects to be back (a hint; absent: no statement).
    #[xml(attribute(default))]
    pub restart: Option<bool>,
}

impl MessagePayload for Shutdown {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireElement;
    use minidom::Element;
    use xmpp_parsers::message::Message;
    use xmpp_parsers::presence::Presence;

    #[test]
    fn fanout_and_repair() {
        let f = Fanout::parse_bytes(b"<fanout xmlns='urn:xmpp:presence-sync:0'/>").unwrap();
        assert_eq!(f, Fanout);
        let r = Repair::parse_bytes(b"<repair xmlns='urn:xmpp:presence-sync:0'/>").unwrap();
        assert_eq!(r, Repair);
        let p = Presence::unavailable().with_payload(Fanout);
        assert_eq!(
            p.payloads[0],
            "<fanout xmlns='urn:xmpp:presence-sync:0'/>"
                .parse::<Element>()
                .unwrap()
        );
        assert_eq!(
            Fanout::parse_bytes(b"<fanout xmlns='urn:xmpp:presence-sync:0' x='1'/>")
                .unwrap_err()
                .to_string(),
            "fanout: Unknown attribute in Fanout element."
        );
        assert_eq!(
            Repair::parse_bytes(b"<repair xmlns='urn:xmpp:presence-sync:0'><x/></repair>")
                .unwrap_err()
                .to_string(),
            "repair: Unknown child in Repair element."
        );
    }

    #[test]
    fn fanout_presence() {
        use jid::Jid;
        let domains = Domains::new("b.example", "a.example").unwrap();
        let live = |from: &str, to: &str| {
            Presence::available()
                .with_from(Jid::new(from).unwrap())
                .with_to(Jid::new(to).unwrap())
                .with_payload(Fanout)
        };
        Fanout::check_presence(&live("juliet@a.example/balcony", "b.example"), &domains).unwrap();
        let mut gone = live("juliet@a.example/balcony", "b.example");
        gone.type_ = Type::Unavailable;
        Fanout::check_presence(&gone, &domains).unwrap();
        let mut marked = live("juliet@a.example/balcony", "b.example");
        marked.payloads = vec![
            "<fanout xmlns='urn:xmpp:presence-sync:0' colour='red'/>"
                .parse()
                .unwrap(),
        ];
        assert_eq!(
            Fanout::check_presence(&marked, &domains)
                .unwrap_err()
                .to_string(),
            "fanout: Unknown attribute in Fanout element."
        );
        let spoofed = live("juliet@c.example/balcony", "b.example");
        let e = Fanout::check_presence(&spoofed, &domains).unwrap_err();
        assert!(matches!(e, WireError::InvalidFrom { .. }), "{e}");
        for (p, msg) in [
            (
                live("juliet@a.example", "b.example"),
                "fanout: presence from is not a full JID",
            ),
            (
                live("juliet@a.example/x", "romeo@b.example"),
                "fanout: presence to \"romeo@b.example\" is not the domain b.example",
            ),
            (
                Presence::probe()
                    .with_from(Jid::new("juliet@a.example/x").unwrap())
                    .with_to(Jid::new("b.example").unwrap()),
                "fanout: presence type is neither available nor unavailable",
            ),
        ] {
            assert_eq!(
                Fanout::check_presence(&p, &domains)
                    .unwrap_err()
                    .to_string(),
                msg
            );
        }
    }

    #[test]
    fn shutdown() {
        let xml =
            "<shutdown xmlns='urn:xmpp:presence-sync:0' epoch='0123456789abcdef' restart='true'/>";
        let s = Shutdown::parse_bytes(xml.as_bytes()).unwrap();
        assert_eq!(
            s,
            Shutdown {
                epoch: Epoch(0x0123456789abcdef),
                restart: Some(true)
            }
        );
        assert_eq!(s.to_element().unwrap(), xml.parse::<Element>().unwrap());
        let bare = Shutdown {
            epoch: Epoch(1),
            restart: None,
        };
        assert_eq!(
            bare.to_element().unwrap(),
            "<shutdown xmlns='urn:xmpp:presence-sync:0' epoch='0000000000000001'/>"
                .parse::<Element>()
                .unwrap()
        );
        let m = Message::new(None).with_payload(s);
        assert_eq!(m.payloads.len(), 1);
        assert_eq!(
            Shutdown::parse_bytes(xml.replace("true", "yes").as_bytes())
                .unwrap_err()
                .to_string(),
            "shutdown: provided string was not `true` or `false`"
        );
    }
}
