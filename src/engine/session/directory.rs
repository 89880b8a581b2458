//! What a session asks of the server it runs in: its users' roster items and the contacts
//! they want first (XEP §Priority Ordering).

use std::fmt;

use jid::BareJid;

use crate::model::Subscription;

/// What a session needs to know about the server's own users.
pub trait Directory {
    /// The current roster item of local user `user` for `contact` (PS-63: repairs are decided
    /// against the state at the time of acting).
    fn roster_item(&self, user: &BareJid, contact: &BareJid) -> Option<Subscription>;
    /// Publishers of `peer` whose presence local users want now, each with its rank (0 is
    /// the most urgent), most wanted first (the server's priority policy, XEP §Priority
    /// Ordering).
    fn wanted(&self, peer: &str) -> Vec<(BareJid, u8)>;
}

/// The order in which a cache holder wants the presence of the peer's publishers (XEP
/// §Priority Ordering, PS-53): a rank for each local user, from whether the user is online and
/// active now. Contacts of users with a lower rank are pulled first; users without a rank add
/// nothing to the front of the queue (their contacts come with the descent from the root).
pub trait PriorityPolicy: fmt::Debug + Send + Sync {
    /// The rank of a local user, or None if its contacts need no priority.
    fn rank(&self, online: bool, active: bool) -> Option<u8>;
}

/// The default policy of PS-53: the contacts of users who are online and active first (rank
/// 0), then those of online users (rank 1), then the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveFirst;

impl PriorityPolicy for ActiveFirst {
    fn rank(&self, online: bool, active: bool) -> Option<u8> {
        match (online, active) {
            (true, true) => Some(0),
            (true, false) => Some(1),
            _ => None,
        }
    }
}
