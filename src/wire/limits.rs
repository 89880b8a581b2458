//! Negotiated resource limits and the domains of a session (XEP §Hello, XEP §Flow Control and
//! Limits, XEP §Spoofed JIDs).

use std::ops::RangeInclusive;

use jid::{BareJid, Jid};

use crate::wire::error::WireError;

/// How deep an extension payload of a presence may nest below the `<presence/>` (the
/// payload element itself is at depth 1), in an item or a domain-level presence (XEP §Items).
/// Real payloads nest one or two levels (XEP-0115 `<c/>`, XEP-0153 `<x><photo/></x>`); a
/// receiver refuses a deeper one (`bad-format`) without building it, and a sender drops such
/// payloads from what it publishes. Every recursive walk of a payload (clone, canonical
/// encoding, drop) is thereby bounded.
pub const MAX_PAYLOAD_DEPTH: usize = 16;

/// The limits a server accepts from its peer (XEP §Hello). Each side states its own in its
/// hello; the session uses [`Limits::negotiate`], the minimum of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Items per `<batch/>`, and per `<reconcile/>` both split+ids children and items+edges
    /// (`max-items`, 1..=4096, default 256).
    pub max_items: u32,
    /// Size of a stanza in bytes (`max-bytes`, 4096..=1048576, default 65536).
    pub max_bytes: u32,
    /// Outstanding sync iqs per direction (`window`, 1..=64, default 4).
    pub window: u32,
    /// A node with at most this many items is answered with its ids instead of being split
    /// (`leaf-items`, 1..=256, default 16).
    pub leaf_items: u32,
}

impl Limits {
    /// Allowed values of `max-items`.
    pub const MAX_ITEMS: RangeInclusive<u32> = 1..=4096;
    /// Allowed values of `max-bytes`.
    pub const MAX_BYTES: RangeInclusive<u32> = 4096..=1_048_576;
    /// Allowed values of `window`.
    pub const WINDOW: RangeInclusive<u32> = 1..=64;
    /// Allowed values of `leaf-items`.
    pub const LEAF_ITEMS: RangeInclusive<u32> = 1..=256;

    /// The defaults of XEP §Hello, also the value of an absent hello attribute.
    pub const DEFAULT: Limits = Limits {
        max_items: 256,
        max_bytes: 65_536,
        window: 4,
        leaf_items: 16,
    };

    /// The effective limits of a session: the minimum of each limit.
    pub fn negotiate(&self, peer: &Limits) -> Limits {
        Limits {
            max_items: self.max_items.min(peer.max_items),
            max_bytes: self.max_bytes.min(peer.max_bytes),
            window: self.window.min(peer.window),
            leaf_items: self.leaf_items.min(peer.leaf_items),
        }
    }

    /// True if every limit lies in its allowed range.
    pub fn is_valid(&self) -> bool {
        Self::MAX_ITEMS.contains(&self.max_items)
            && Self::MAX_BYTES.contains(&self.max_bytes)
            && Self::WINDOW.contains(&self.window)
            && Self::LEAF_ITEMS.contains(&self.leaf_items)
    }

    /// `too-many-items` if `count` entries of kind `what` exceed max-items.
    pub fn check_items(
        &self,
        element: &'static str,
        what: &'static str,
        count: usize,
    ) -> Result<(), WireError> {
        if count > self.max_items as usize {
            return Err(WireError::TooManyItems {
                element,
                what,
                count,
                max: self.max_items,
            });
        }
        Ok(())
    }

    /// `too-many-items` if a stanza of `bytes` bytes exceeds max-bytes. The transport calls
    /// it with the size of the received stanza; validation of an element calls it with the
    /// element's own serialised size (a lower bound of its stanza's).
    pub fn check_size(&self, element: &'static str, bytes: usize) -> Result<(), WireError> {
        if bytes > self.max_bytes as usize {
            return Err(WireError::TooLarge {
                element,
                bytes,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// `window-exceeded` if `outstanding` sync iqs (including a new one) exceed the window.
    pub fn check_window(&self, outstanding: usize) -> Result<(), WireError> {
        if outstanding > self.window as usize {
            return Err(WireError::WindowExceeded {
                outstanding,
                window: self.window,
            });
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The two domains of a session: ours, and the peer's as authenticated on the s2s stream.
/// Validation uses them for the `foreign-jid` checks (XEP §Spoofed JIDs: presence is accepted only
/// for JIDs of the authenticated peer domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Domains {
    local: BareJid,
    peer: BareJid,
}

impl Domains {
    /// Both domains, normalised as JID domain parts (RFC 7622).
    pub fn new(local: &str, peer: &str) -> Result<Domains, jid::Error> {
        let domain = |s: &str| -> Result<BareJid, jid::Error> {
            let jid = BareJid::new(s)?;
            if jid.node().is_some() {
                return Err(jid::Error::TooManyAts);
            }
            Ok(jid)
        };
        Ok(Domains {
            local: domain(local)?,
            peer: domain(peer)?,
        })
    }

    /// The same two domains seen from the peer: what the peer validates our stanzas against.
    pub fn mirrored(&self) -> Domains {
        Domains {
            local: self.peer.clone(),
            peer: self.local.clone(),
        }
    }

    /// Our domain.
    pub fn local(&self) -> &str {
        self.local.domain().as_str()
    }

    /// The authenticated peer domain.
    pub fn peer(&self) -> &str {
        self.peer.domain().as_str()
    }

    /// True if `jid` belongs to our domain.
    pub fn is_local(&self, jid: &BareJid) -> bool {
        jid.domain() == self.local.domain()
    }

    /// True if `jid` belongs to the peer domain.
    pub fn is_peer(&self, jid: &BareJid) -> bool {
        jid.domain() == self.peer.domain()
    }

    /// The stream-level check of every received stanza: its `from` must be a JID of the peer
    /// domain (RFC 6120 §4.9.3.9); otherwise [`WireError::InvalidFrom`].
    pub fn check_from(&self, from: Option<&Jid>) -> Result<(), WireError> {
        match from {
            Some(jid) if jid.domain() == self.peer.domain() => Ok(()),
            other => Err(WireError::InvalidFrom {
                from: other.map(|j| j.as_str().to_owned()).unwrap_or_default(),
                expected: self.peer().to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_is_minimum() {
        let ours = Limits {
            max_items: 1024,
            max_bytes: 65_536,
            window: 8,
            leaf_items: 16,
        };
        let theirs = Limits {
            max_items: 256,
            max_bytes: 262_144,
            window: 4,
            leaf_items: 32,
        };
        let both = ours.negotiate(&theirs);
        assert_eq!(
            both,
            Limits {
                max_items: 256,
                max_bytes: 65_536,
                window: 4,
                leaf_items: 16
            }
        );
        assert_eq!(both, theirs.negotiate(&ours));
        assert!(Limits::default().is_valid());
        assert!(
            !Limits {
                window: 65,
                ..Limits::DEFAULT
            }
            .is_valid()
        );
    }

    #[test]
    fn checks() {
        let l = Limits::DEFAULT;
        assert!(l.check_items("batch", "items", 256).is_ok());
        assert_eq!(
            l.check_items("batch", "items", 257)
                .unwrap_err()
                .to_string(),
            "batch: 257 items exceed max-items 256"
        );
        assert_eq!(
            l.check_size("reconcile", 70_000).unwrap_err().to_string(),
            "reconcile: 70000 bytes exceed max-bytes 65536"
        );
        assert_eq!(
            l.check_window(5).unwrap_err().to_string(),
            "5 outstanding sync iqs exceed window 4"
        );
    }

    #[test]
    fn domains() {
        let d = Domains::new("b.example", "A.example").unwrap();
        assert_eq!(d.peer(), "a.example");
        assert!(d.is_peer(&BareJid::new("juliet@a.example").unwrap()));
        assert!(d.is_local(&BareJid::new("romeo@b.example").unwrap()));
        assert!(Domains::new("b.example", "juliet@a.example").is_err());
        let from = Jid::new("juliet@a.example/balcony").unwrap();
        assert!(d.check_from(Some(&from)).is_ok());
        let err = d
            .check_from(Some(&Jid::new("c.example").unwrap()))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stanza from \"c.example\" is not from the peer domain a.example"
        );
        assert!(err.stream_error().is_some());
    }
}
