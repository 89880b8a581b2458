//! Which real server a [`super::Server`] behaves like (BRIEF §3).
//!
//! RFC 6121 leaves servers room in how they probe, answer probes, fan presence out and shut
//! down. The two flavours reproduce what Prosody 0.12 and ejabberd 23.x do, as read from their
//! sources (`plugins/mod_presence.lua` and `plugins/mod_blocklist.lua` of Prosody 0.12;
//! `src/ejabberd_c2s.erl`, `src/mod_roster.erl` and `src/mod_multicast.erl` of ejabberd) and
//! tabulated in BRIEF §3. Every difference is one method of [`Flavour`], so the RFC 6121 logic
//! (`rfc6121.rs`) reads as the RFC with the flavour's choices named where they apply.

use super::stanzas::Extra;

/// Recipients per XEP-0033 stanza when ejabberd's mod_multicast groups them: its default limit
/// for presence to a remote server (`DEFAULT_LIMIT_REMOTE_PRESENCE` in `mod_multicast.erl`,
/// BRIEF §3).
pub const MULTICAST_LIMIT: usize = 20;

/// The most addresses a received XEP-0033 stanza may carry; a stanza with more is rejected
/// whole. XEP-0033 §7 lets a multicast service bound the addresses it accepts, and BRIEF §2.11
/// asks that every resource a peer can make us spend be bounded.
pub const MULTICAST_RECEIVE_LIMIT: usize = 100;

/// The server implementation a [`super::Server`] imitates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Prosody 0.12: one stanza per edge for everything, answers every probe, announces a clean
    /// shutdown with `unavailable` per edge.
    Prosody,
    /// ejabberd 23.x: silent towards probes it does not answer with presence, silent on
    /// shutdown; with `multicast`, mod_multicast (XEP-0033) groups probes and broadcasts
    /// [`MULTICAST_LIMIT`] recipients per stanza.
    Ejabberd {
        /// mod_multicast is enabled.
        multicast: bool,
    },
}

impl Flavour {
    /// Probes and presence broadcasts to remote contacts are grouped into XEP-0033 stanzas of
    /// up to [`MULTICAST_LIMIT`] recipients, addressed to the peer domain (ejabberd with
    /// mod_multicast: `route_multiple` in `ejabberd_c2s.erl`, `route_in_chunks` in
    /// `mod_multicast.erl`; BRIEF §3 row 1).
    pub fn multicast(self) -> bool {
        matches!(self, Flavour::Ejabberd { multicast: true })
    }

    /// A probe for a contact with no available resource is answered with `unavailable` from
    /// the contact's bare JID (Prosody: "TODO send last activity" branch of
    /// `handle_inbound_presence_subscriptions_and_probes`; ejabberd: only sessions answer
    /// probes, so an offline contact is silent. BRIEF §3 row 2; RFC 6121 §4.3.2 allows both).
    pub fn answers_offline_probe(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// A probe from a JID that has no subscription to the contact is answered with
    /// `unsubscribed` (Prosody; RFC 6121 §4.3.2 says SHOULD). ejabberd's `route_probe_reply`
    /// says nothing (BRIEF §3 row 3).
    pub fn answers_unauthorised_probe(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// A clean shutdown ends every session, so each online resource sends `unavailable` to
    /// each subscriber, one stanza per edge, before the streams close (Prosody's
    /// `resource-unbind` hook). ejabberd sends nothing (BRIEF §3 row 6).
    pub fn unavailable_on_shutdown(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// What a probe answer carries beside the presence: a XEP-0203 `<delay/>` in both (Prosody
    /// sends the stored presence, tagged once broadcast, from `handle_normal_presence`;
    /// ejabberd's `route_probe_reply` adds one with `xmpp_util:add_delay_info`).
    pub fn probe_answer_extra(self) -> Extra {
        match self {
            Flavour::Prosody => Extra::ProsodyDelay,
            Flavour::Ejabberd { .. } => Extra::EjabberdDelay,
        }
    }

    /// What the current presence sent outside a broadcast (after a subscription approval or a
    /// redundant `subscribe`) carries: Prosody sends the stored, delay-tagged presence;
    /// ejabberd routes the last presence as it was.
    pub fn stored_presence_extra(self) -> Extra {
        match self {
            Flavour::Prosody => Extra::ProsodyDelay,
            Flavour::Ejabberd { .. } => Extra::None,
        }
    }

    /// At initial presence the probes go out before the presence broadcast (ejabberd's
    /// `broadcast_presence_available`); Prosody's `handle_normal_presence` broadcasts first.
    pub fn probes_before_broadcast(self) -> bool {
        matches!(self, Flavour::Ejabberd { .. })
    }

    /// At initial presence the server re-sends the user's pending outbound subscription
    /// requests ("resend outgoing subscription requests", Prosody's `handle_normal_presence`).
    pub fn resends_pending_subscriptions(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// An inbound `subscribe` that is not approved automatically is acknowledged with
    /// `unavailable` from the contact's bare JID (Prosody: "acknowledging receipt").
    pub fn acknowledges_subscribe(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// An inbound `subscribe` from a contact that is already subscribed is answered with
    /// `subscribed` (RFC 6121 §3.1.3, both flavours) and then with the user's current presence,
    /// or `unavailable` if offline (Prosody: "Sending presence is not clearly stated in the
    /// RFC, but it seems appropriate").
    pub fn presence_on_redundant_subscribe(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// After the user sends `subscribed` while subscribed to the contact (`to`), the server
    /// probes the contact again (Prosody, "Re-probe for contacts presence after outgoing
    /// 'subscribed'", issue #673).
    pub fn probes_after_approval(self) -> bool {
        matches!(self, Flavour::Prosody)
    }

    /// When an inbound `unsubscribe` takes away the contact's `from`, the user's available
    /// resources send it `unavailable` (RFC 6121 §3.3.3; ejabberd's `route_presence_change`).
    /// Prosody only pushes the roster item.
    pub fn unavailable_on_inbound_unsubscribe(self) -> bool {
        matches!(self, Flavour::Ejabberd { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_table() {
        let p = Flavour::Prosody;
        let e = Flavour::Ejabberd { multicast: false };
        let m = Flavour::Ejabberd { multicast: true };
        assert!(!p.multicast() && !e.multicast() && m.multicast());
        assert!(p.answers_offline_probe() && !e.answers_offline_probe());
        assert!(p.answers_unauthorised_probe() && !m.answers_unauthorised_probe());
        assert!(p.unavailable_on_shutdown() && !e.unavailable_on_shutdown());
    }
}
