//! What a server's users' clients must be told: the output a real c2s layer turns into
//! stanzas (`presence-sync serve`), and that the simulation does not need.
//!
//! The model server records what each user's clients have been shown (its views) for the
//! ground truth; a real server must also *send* it. With [`super::Server::enable_client_output`]
//! the server queues one [`ClientOut`] at every point where RFC 6121 or XEP-0191 has it deliver
//! something to a user's clients, or changes an account (to be persisted before anything is
//! acknowledged), and the c2s driver drains them with [`super::Server::poll_client`].

use jid::{BareJid, Jid};

use crate::model::{ResourcePresence, SubscriptionStanza};

/// One thing for local users' clients, or for storage.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOut {
    /// Presence of `from` to `to` (a bare JID: every available resource of the user; a full
    /// JID: that resource), available (`Some`) or unavailable (`None`). A bare `from` with
    /// `None` takes away every resource of the contact (RFC 6121 §4.3.2, or a subscription
    /// or block that ended what the user is shown).
    Presence {
        /// The local recipient.
        to: Jid,
        /// The contact.
        from: Jid,
        /// Its presence, or unavailable.
        presence: Option<ResourcePresence>,
    },
    /// The roster item of `user` for `contact` changed: a roster push to every resource that
    /// requested the roster (RFC 6121 §2.1.6); no item left means `subscription='remove'`.
    RosterPush {
        /// The local user.
        user: BareJid,
        /// The contact whose item changed.
        contact: BareJid,
    },
    /// An inbound subscription stanza of `from` for `user`, to deliver to the user's available
    /// resources (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3).
    Subscription {
        /// The local user.
        user: BareJid,
        /// The contact that sent it.
        from: BareJid,
        /// Its type.
        kind: SubscriptionStanza,
    },
    /// The account of `user` (roster or block list) changed: persist it before acknowledging
    /// anything to a client.
    AccountChanged(BareJid),
}
