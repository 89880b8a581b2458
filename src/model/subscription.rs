//! Subscription state of one roster item (RFC 6121 §3 and Appendix A).
//!
//! The state is kept as the four independent facts RFC 6121 Appendix A.1 combines into its
//! nine named states ("None", "None + Pending Out", …, "Both"), plus the pre-approval flag of
//! §3.4. Every transition of Appendix A.2 (outbound stanzas, sent by the local user) and A.3
//! (inbound stanzas, from the contact) is a method returning what the server must do: route or
//! deliver the stanza, push the changed item to the user's sessions, auto-reply.
//!
//! Naming follows RFC 6121 from the local user's point of view: `to` means the user receives the
//! contact's presence, `from` means the contact receives the user's presence.

use std::fmt;

/// The four subscription stanza types of RFC 6121 §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscriptionStanza {
    /// `subscribe`: ask for the other party's presence.
    Subscribe,
    /// `subscribed`: approve the other party's request (or pre-approve).
    Subscribed,
    /// `unsubscribe`: stop receiving the other party's presence.
    Unsubscribe,
    /// `unsubscribed`: deny or cancel the other party's subscription.
    Unsubscribed,
}

/// The nine states named in RFC 6121 Appendix A.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NamedState {
    /// "None"
    None,
    /// "None + Pending Out"
    NonePendingOut,
    /// "None + Pending In"
    NonePendingIn,
    /// "None + Pending Out/In"
    NonePendingOutIn,
    /// "To"
    To,
    /// "To + Pending In"
    ToPendingIn,
    /// "From"
    From,
    /// "From + Pending Out"
    FromPendingOut,
    /// "Both"
    Both,
}

impl NamedState {
    /// All nine states, in the order of the RFC's tables.
    pub const ALL: [NamedState; 9] = [
        NamedState::None,
        NamedState::NonePendingOut,
        NamedState::NonePendingIn,
        NamedState::NonePendingOutIn,
        NamedState::To,
        NamedState::ToPendingIn,
        NamedState::From,
        NamedState::FromPendingOut,
        NamedState::Both,
    ];
}

impl fmt::Display for NamedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamedState::None => "None",
            NamedState::NonePendingOut => "None + Pending Out",
            NamedState::NonePendingIn => "None + Pending In",
            NamedState::NonePendingOutIn => "None + Pending Out/In",
            NamedState::To => "To",
            NamedState::ToPendingIn => "To + Pending In",
            NamedState::From => "From",
            NamedState::FromPendingOut => "From + Pending Out",
            NamedState::Both => "Both",
        })
    }
}

/// Subscription state of a roster item. Invariants (RFC 6121 Appendix A.1): `to` excludes
/// `pending_out`, `from` excludes `pending_in`, and a pre-approval exists only while neither
/// `from` nor `pending_in` holds (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Subscription {
    to: bool,
    from: bool,
    pending_out: bool,
    pending_in: bool,
    approved: bool,
}

/// What the server does with a subscription stanza after updating the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Transition {
    /// The item's state changed: the server pushes the item to the user's interested resources
    /// (RFC 6121 §2.1.6).
    pub changed: bool,
    /// Outbound: route the stanza to the contact. Inbound: deliver it to the user.
    pub forward: bool,
    /// The server answers on the user's behalf with this stanza type (inbound `subscribe` that
    /// is already approved or pre-approved, RFC 6121 §3.1.3 and §3.4).
    pub auto_reply: Option<SubscriptionStanza>,
}

impl Subscription {
    /// "None" without pre-approval.
    pub const NONE: Subscription = Subscription {
        to: false,
        from: false,
        pending_out: false,
        pending_in: false,
        approved: false,
    };

    /// The state named `state`, without pre-approval.
    pub fn named(state: NamedState) -> Subscription {
        let (to, from, pending_out, pending_in) = match state {
            NamedState::None => (false, false, false, false),
            NamedState::NonePendingOut => (false, false, true, false),
            NamedState::NonePendingIn => (false, false, false, true),
            NamedState::NonePendingOutIn => (false, false, true, true),
            NamedState::To => (true, false, false, false),
            NamedState::ToPendingIn => (true, false, false, true),
            NamedState::From => (false, true, false, false),
            NamedState::FromPendingOut => (false, true, true, false),
            NamedState::Both => (true, true, false, false),
        };
        Subscription {
            to,
            from,
            pending_out,
            pending_in,
            approved: false,
        }
    }

    /// The state's name in RFC 6121 Appendix A.1 (ignoring pre-approval).
    pub fn name(&self) -> NamedState {
        match (self.to, self.from, self.pending_out, self.pending_in) {
            (false, false, false, false) => NamedState::None,
            (false, false, true, false) => NamedState::NonePendingOut,
            (false, false, false, true) => NamedState::NonePendingIn,
            (false, false, true, true) => NamedState::NonePendingOutIn,
            (true, false, false, false) => NamedState::To,
            (true, false, false, true) => NamedState::ToPendingIn,
            (false, true, false, false) => NamedState::From,
            (false, true, true, false) => NamedState::FromPendingOut,
            (true, true, false, false) => NamedState::Both,
            _ => unreachable!("invariants exclude to+pending_out and from+pending_in"),
        }
    }

    /// The user receives the contact's presence.
    pub fn to(&self) -> bool {
        self.to
    }
    /// The contact receives the user's presence.
    pub fn from(&self) -> bool {
        self.from
    }
    /// The user asked for the contact's presence and awaits an answer.
    pub fn pending_out(&self) -> bool {
        self.pending_out
    }
    /// The contact asked for the user's presence and awaits the user's answer.
    pub fn pending_in(&self) -> bool {
        self.pending_in
    }
    /// The user pre-approved a future request of the contact (RFC 6121 §3.4).
    pub fn approved(&self) -> bool {
        self.approved
    }

    /// True when the item carries no relation at all (it could be removed from the model's
    /// point of view, though the roster keeps it until the user removes it).
    pub fn is_empty(&self) -> bool {
        *self == Subscription::NONE
    }

    /// The same state with a pre-approval (only valid in states without `from`/`pending_in`).
    pub fn with_approval(mut self) -> Option<Subscription> {
        if self.from || self.pending_in {
            return None;
        }
        self.approved = true;
        Some(self)
    }

    fn finish(&mut self, before: Subscription, forward: bool) -> Transition {
        Transition {
            changed: *self != before,
            forward,
            auto_reply: None,
        }
    }

    /// The local user sent `stanza` to the contact (RFC 6121 Appendix A.2).
    pub fn outbound(&mut self, stanza: SubscriptionStanza) -> Transition {
        let before = *self;
        match stanza {
            // §3.1.2: always routed; "To" and "Both" do not change.
            SubscriptionStanza::Subscribe => {
                if !self.to {
                    self.pending_out = true;
                }
                self.finish(before, true)
            }
            // A.2.3: approves a pending request; otherwise a pre-approval, not routed.
            SubscriptionStanza::Subscribed => {
                if self.pending_in {
                    self.pending_in = false;
                    self.from = true;
                    self.finish(before, true)
                } else {
                    if !self.from {
                        self.approved = true;
                    }
                    self.finish(before, false)
                }
            }
            // §3.3.2: always routed.
            SubscriptionStanza::Unsubscribe => {
                self.to = false;
                self.pending_out = false;
                self.finish(before, true)
            }
            // A.2.4: routed when it cancels or denies something; also cancels a pre-approval.
            SubscriptionStanza::Unsubscribed => {
                let route = self.from || self.pending_in;
                self.from = false;
                self.pending_in = false;
                self.approved = false;
                self.finish(before, route)
            }
        }
    }

    /// The contact's server delivered `stanza` for the local user (RFC 6121 Appendix A.3).
    pub fn inbound(&mut self, stanza: SubscriptionStanza) -> Transition {
        let before = *self;
        match stanza {
            // A.3.1 and §3.4: auto-reply when already subscribed or pre-approved.
            SubscriptionStanza::Subscribe => {
                if self.from {
                    let mut t = self.finish(before, false);
                    t.auto_reply = Some(SubscriptionStanza::Subscribed);
                    t
                } else if self.approved {
                    self.approved = false;
                    self.from = true;
                    let mut t = self.finish(before, false);
                    t.auto_reply = Some(SubscriptionStanza::Subscribed);
                    t
                } else {
                    let deliver = !self.pending_in;
                    self.pending_in = true;
                    self.finish(before, deliver)
                }
            }
            // A.3.2: the contact approved; ignored unless we asked.
            SubscriptionStanza::Subscribed => {
                if self.pending_out {
                    self.pending_out = false;
                    self.to = true;
                }
                let changed = *self != before;
                self.finish(before, changed)
            }
            // A.3.3: the contact no longer wants our presence. A pre-approval is kept.
            SubscriptionStanza::Unsubscribe => {
                self.from = false;
                self.pending_in = false;
                let changed = *self != before;
                self.finish(before, changed)
            }
            // A.3.4: the contact denied or cancelled our subscription.
            SubscriptionStanza::Unsubscribed => {
                self.to = false;
                self.pending_out = false;
                let changed = *self != before;
                self.finish(before, changed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NamedState::*;
    use super::SubscriptionStanza::*;
    use super::*;

    /// (existing state, forward?, new state) rows, transcribed from RFC 6121 Appendix A.
    type Table = [(NamedState, bool, NamedState); 9];

    fn check(stanza: SubscriptionStanza, inbound: bool, table: &Table) {
        for &(from_state, forward, to_state) in table {
            let mut s = Subscription::named(from_state);
            let t = if inbound {
                s.inbound(stanza)
            } else {
                s.outbound(stanza)
            };
            let dir = if inbound { "inbound" } else { "outbound" };
            assert_eq!(s.name(), to_state, "{dir} {stanza:?} from {from_state}");
            assert_eq!(
                t.forward, forward,
                "{dir} {stanza:?} from {from_state}: forward"
            );
            assert_eq!(t.changed, from_state != to_state || s.approved());
        }
    }

    #[test]
    fn a2_3_outbound_subscribed() {
        check(
            Subscribed,
            false,
            &[
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, From),
                (NonePendingOutIn, true, FromPendingOut),
                (To, false, To),
                (ToPendingIn, true, Both),
                (From, false, From),
                (FromPendingOut, false, FromPendingOut),
                (Both, false, Both),
            ],
        );
    }

    #[test]
    fn a2_4_outbound_unsubscribed() {
        check(
            Unsubscribed,
            false,
            &[
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, None),
                (NonePendingOutIn, true, NonePendingOut),
                (To, false, To),
                (ToPendingIn, true, To),
                (From, true, None),
                (FromPendingOut, true, NonePendingOut),
                (Both, true, To),
            ],
        );
    }

    #[test]
    fn a3_1_inbound_subscribe() {
        check(
            Subscribe,
            true,
            &[
                (None, true, NonePendingIn),
                (NonePendingOut, true, NonePendingOutIn),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, false, NonePendingOutIn),
                (To, true, ToPendingIn),
                (ToPendingIn, false, ToPendingIn),
                (From, false, From),
                (FromPendingOut, false, FromPendingOut),
                (Both, false, Both),
            ],
        );
    }

    #[test]
    fn a3_2_inbound_subscribed() {
        check(
            Subscribed,
            true,
            &[
                (None, false, None),
                (NonePendingOut, true, To),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, true, ToPendingIn),
                (To, false, To),
                (ToPendingIn, false, ToPendingIn),
                (From, false, From),
                (FromPendingOut, true, Both),
                (Both, false, Both),
            ],
        );
    }

    #[test]
    fn a3_3_inbound_unsubscribe() {
        check(
            Unsubscribe,
            true,
            &[
                (None, false, None),
                (NonePendingOut, false, NonePendingOut),
                (NonePendingIn, true, None),
                (NonePendingOutIn, true, NonePendingOut),
                (To, false, To),
                (ToPendingIn, true, To),
                (From, true, None),
                (FromPendingOut, true, NonePendingOut),
                (Both, true, To),
            ],
        );
    }

    #[test]
    fn a3_4_inbound_unsubscribed() {
        check(
            Unsubscribed,
            true,
            &[
                (None, false, None),
                (NonePendingOut, true, None),
                (NonePendingIn, false, NonePendingIn),
                (NonePendingOutIn, true, NonePendingIn),
                (To, true, None),
                (ToPendingIn, true, NonePendingIn),
                (From, false, From),
                (FromPendingOut, true, From),
                (Both, true, From),
            ],
        );
    }

    #[test]
    fn outbound_subscribe_and_unsubscribe_always_route() {
        for state in NamedState::ALL {
            let mut s = Subscription::named(state);
            assert!(s.outbound(Subscribe).forward);
            assert!(!s.to() || !s.pending_out());
            let mut s = Subscription::named(state);
            assert!(s.outbound(Unsubscribe).forward);
            assert!(!s.to() && !s.pending_out());
        }
    }

    #[test]
    fn pre_approval_auto_approves_and_survives_unsubscribe() {
        // §3.4: an outbound `subscribed` without a pending request pre-approves.
        let mut s = Subscription::named(To);
        let t = s.outbound(Subscribed);
        assert!(s.approved() && t.changed && !t.forward);
        // An inbound `unsubscribe` (e.g. a repair) leaves the pre-approval alone.
        let t = s.inbound(Unsubscribe);
        assert!(s.approved() && !t.changed);
        // The contact's later request is approved automatically: "To" -> "Both".
        let t = s.inbound(Subscribe);
        assert_eq!(s.name(), Both);
        assert!(!s.approved());
        assert_eq!(t.auto_reply, Some(Subscribed));
        // An outbound `unsubscribed` cancels a pre-approval.
        let mut s = Subscription::named(None).with_approval().unwrap();
        s.outbound(Unsubscribed);
        assert!(!s.approved());
        assert_eq!(Subscription::named(From).with_approval(), Option::None);
    }

    #[test]
    fn already_subscribed_request_is_answered_by_the_server() {
        let mut s = Subscription::named(Both);
        let t = s.inbound(Subscribe);
        assert_eq!(t.auto_reply, Some(Subscribed));
        assert!(!t.forward && !t.changed);
    }
}
