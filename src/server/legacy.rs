//! The legacy peer mode: plain RFC 6121 over the s2s link, as Prosody and ejabberd speak it.
//!
//! Outbound, every stanza goes as it is; a broadcast or a round of probes to a peer goes as one
//! stanza per recipient, or, for ejabberd with mod_multicast, as XEP-0033 stanzas of up to
//! [`MULTICAST_LIMIT`] `bcc` recipients addressed to the peer domain (BRIEF §3 row 1).
//! Inbound, a stanza is parsed, its sender checked against the peer domain and its recipient
//! (or each XEP-0033 recipient, which both flavours accept so that any two servers
//! interoperate) against this domain, then served by the RFC 6121 logic. Link events change
//! nothing: RFC 6121 has no resynchronisation, so presence shown before a link loss or a peer's
//! crash stays shown (ghost presence, BRIEF §1 and §3 rows 4 and 7).

use jid::{BareJid, Jid};
use minidom::Element;

use super::Server;
use super::config::MULTICAST_LIMIT;
use super::stanzas::{Extra, Kind, Rejected, Stanza, multicast, parse};

impl Server {
    /// Sends `kind` (with `extra` on the wire) from `from` to `recipients`, all of domain
    /// `peer`.
    pub(super) fn legacy_fan_out(
        &mut self,
        peer: &str,
        from: &Jid,
        recipients: &[BareJid],
        kind: &Kind,
        extra: Extra,
    ) {
        // mod_multicast groups what ejabberd_c2s sends with `route_multiple`: probes and
        // presence broadcasts, never subscription stanzas.
        let groupable = matches!(kind, Kind::Available(_) | Kind::Unavailable | Kind::Probe);
        if self.flavour.multicast() && groupable {
            // A peer domain came from a JID's domain, so it is a valid bare JID.
            let service = BareJid::new(peer).expect("a domain is a bare JID");
            for chunk in recipients.chunks(MULTICAST_LIMIT) {
                self.transmit(peer, multicast(from, &service, chunk, kind, extra));
            }
        } else {
            for r in recipients {
                let stanza = Stanza::new(from.clone(), r.clone(), kind.clone()).with_extra(extra);
                self.transmit(peer, stanza.to_element());
            }
        }
    }

    /// Sends one stanza to `peer`.
    pub(super) fn legacy_send(&mut self, peer: &str, stanza: Stanza) {
        self.transmit(peer, stanza.to_element());
    }

    /// Serves a stanza that arrived from `peer`; a stanza that cannot be accepted is counted
    /// in [`super::LocalStats::rejected`] and dropped (no error is returned for a presence,
    /// RFC 6120 §8.3.1).
    pub(super) fn legacy_receive(&mut self, peer: &str, element: Element) {
        if self.legacy_accept(peer, &element).is_err() {
            self.stats.rejected += 1;
        }
    }

    fn legacy_accept(&mut self, peer: &str, element: &Element) -> Result<(), Rejected> {
        let received = parse(element)?;
        let stanza = received.stanza;
        if stanza.from.domain().as_str() != peer {
            return Err(Rejected::ForeignFrom);
        }
        let Some(recipients) = received.recipients else {
            if stanza.to.domain().as_str() != self.domain {
                return Err(Rejected::ForeignTo);
            }
            let repair = element.has_child("repair", crate::wire::ns::PRESENCE_SYNC);
            match stanza.kind {
                // XEP PS-85: a repair changes the roster even if the user blocks the sender.
                Kind::Subscription(kind) if repair => self.receive_repair(&stanza, kind),
                _ => self.receive(stanza),
            }
            return Ok(());
        };
        // XEP-0033: the stanza is for our multicast service (the domain itself here); each
        // recipient gets a copy without the addresses.
        let to_service = stanza.to.node().is_none()
            && stanza.to.resource().is_none()
            && stanza.to.domain().as_str() == self.domain;
        if !to_service {
            return Err(Rejected::ForeignTo);
        }
        for to in recipients {
            if to.domain().as_str() != self.domain {
                self.stats.rejected += 1;
                continue;
            }
            self.receive(Stanza::new(stanza.from.clone(), to, stanza.kind.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Flavour, Server};
    use crate::model::{NamedState, ResourcePresence, Subscription};
    use crate::sim::{Host, SimTime};
    use jid::BareJid;

    fn jid(s: &str) -> BareJid {
        BareJid::new(s).unwrap()
    }

    /// A user of a.example with `n` remote `both` contacts on b.example.
    fn server(flavour: Flavour, n: usize) -> Server {
        let mut a = Server::new("a.example", flavour);
        let juliet = jid("juliet@a.example");
        a.add_user(&juliet);
        for i in 0..n {
            let c = jid(&format!("c{i}@b.example"));
            a.set_roster_item(&juliet, &c, Subscription::named(NamedState::Both));
        }
        a
    }

    fn drain(a: &mut Server) -> Vec<minidom::Element> {
        std::iter::from_fn(|| a.poll_transmit().map(|t| t.stanza)).collect()
    }

    #[test]
    fn multicast_groups_twenty_per_stanza() {
        // 45 remote `both` contacts: ceil(45 / 20) = 3 probes and 3 broadcasts.
        let mut a = server(Flavour::Ejabberd { multicast: true }, 45);
        a.login(
            &jid("juliet@a.example"),
            "balcony",
            ResourcePresence::default(),
        );
        let out = drain(&mut a);
        assert_eq!(out.len(), 6);
        // ejabberd probes first.
        let sizes: Vec<(Option<&str>, usize)> = out
            .iter()
            .map(|e| {
                (
                    e.attr("type"),
                    e.children().next().unwrap().children().count(),
                )
            })
            .collect();
        assert_eq!(
            sizes,
            [
                (Some("probe"), 20),
                (Some("probe"), 20),
                (Some("probe"), 5),
                (None, 20),
                (None, 20),
                (None, 5)
            ]
        );
        assert!(out.iter().all(|e| e.attr("to") == Some("b.example")));
    }

    #[test]
    fn without_multicast_one_stanza_per_edge() {
        for flavour in [Flavour::Prosody, Flavour::Ejabberd { multicast: false }] {
            let mut a = server(flavour, 45);
            a.login(
                &jid("juliet@a.example"),
                "balcony",
                ResourcePresence::default(),
            );
            assert_eq!(
                drain(&mut a).len(),
                90,
                "{flavour:?}: 45 broadcasts + 45 probes"
            );
        }
    }

    #[test]
    fn foreign_senders_and_recipients_are_rejected() {
        let mut a = server(Flavour::Prosody, 1);
        let now = SimTime::ZERO;
        let elsewhere = "<presence xmlns='jabber:server' from='c0@b.example/r' \
                         to='juliet@c.example'/>";
        a.handle_stanza(now, "b.example", elsewhere.parse().unwrap());
        let iq = "<iq xmlns='jabber:server' type='get' id='1' from='b.example' to='a.example'/>";
        a.handle_stanza(now, "b.example", iq.parse().unwrap());
        let to_domain = "<presence xmlns='jabber:server' from='c0@b.example/r' to='a.example'/>";
        a.handle_stanza(now, "b.example", to_domain.parse().unwrap());
        assert_eq!(a.stats().rejected, 3);
        assert!(drain(&mut a).is_empty());
        // A `from` outside the peer domain closes the stream (RFC 6120 §4.9.3.9, XEP PS-71),
        // and nothing more is read from it.
        let spoofed = "<presence xmlns='jabber:server' from='c0@evil.example/r' \
                       to='juliet@a.example'/>";
        a.handle_stanza(now, "b.example", spoofed.parse().unwrap());
        a.handle_stanza(now, "b.example", to_domain.parse().unwrap());
        assert_eq!(a.stats().rejected, 5);
        let sent = drain(&mut a);
        assert_eq!(sent.len(), 1);
        assert!(crate::sim::is_stream_error(&sent[0]));
        assert!(sent[0].has_child("invalid-from", "urn:ietf:params:xml:ns:xmpp-streams"));
    }
}
