//! Node addresses in the bucket tree (XEP §Digests, "Prefixes").
//!
//! The tree has a fixed fanout of 16: every level consumes one hexadecimal digit (nibble) of
//! an item's placement hash. A node is therefore named by the nibbles leading to it, written on
//! the wire as a lowercase hexadecimal string (`""` is the root, `"a"` its eleventh child,
//! `"a3"` a grandchild). Because the name does not depend on how deep either side's tree goes,
//! two servers that chose different depths can still compare the levels they share.

use std::fmt;
use std::str::FromStr;

/// Number of children of every inner node of a bucket tree (one nibble per level).
pub const FANOUT: usize = 16;

/// The deepest prefix this crate builds or accepts: 8 nibbles = 2^32 leaf buckets, far more
/// than any edge set needs (XEP §Business Rules limits prefixes on the wire to this length).
pub const MAX_DEPTH: u8 = 8;

/// A path from the root of a bucket tree: `len` nibbles, most significant first.
///
/// Invariant: `len <= MAX_DEPTH` and all bits of `bits` beyond the first `len` nibbles are 0.
/// The nibbles are stored right-aligned (`bits` is the prefix read as a hexadecimal number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Prefix {
    bits: u32,
    len: u8,
}

/// Why a text is not a valid [`Prefix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    /// More than [`MAX_DEPTH`] nibbles.
    TooLong(usize),
    /// A character that is not a lowercase hexadecimal digit.
    NotHex(char),
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::TooLong(n) => write!(f, "prefix of {n} nibbles exceeds {MAX_DEPTH}"),
            PrefixError::NotHex(c) => write!(f, "prefix character {c:?} is not lowercase hex"),
        }
    }
}

impl std::error::Error for PrefixError {}

impl Prefix {
    /// The root of the tree (empty prefix).
    pub const ROOT: Prefix = Prefix { bits: 0, len: 0 };

    /// Number of nibbles, i.e. the level of the node (root = 0). (An empty prefix is the root:
    /// see [`Prefix::is_root`].)
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> u8 {
        self.len
    }

    /// True for the root.
    pub fn is_root(self) -> bool {
        self.len == 0
    }

    /// The nibbles as a number (`"a3"` is `0xa3`).
    pub fn bits(self) -> u32 {
        self.bits
    }

    /// Builds a prefix from its value and length; `None` if `len > MAX_DEPTH` or `bits` has
    /// more than `len` nibbles.
    pub fn new(bits: u32, len: u8) -> Option<Prefix> {
        if len > MAX_DEPTH || (len < MAX_DEPTH && bits >> (4 * len as u32) != 0) {
            return None;
        }
        Some(Prefix { bits, len })
    }

    /// The prefix of length `len` of a placement hash (its leading `len` nibbles).
    pub fn of_hash(placement: u64, len: u8) -> Prefix {
        debug_assert!(len <= MAX_DEPTH);
        let bits = if len == 0 {
            0
        } else {
            (placement >> (64 - 4 * len as u32)) as u32
        };
        Prefix { bits, len }
    }

    /// The `i`-th child (`i < 16`); `None` at [`MAX_DEPTH`].
    pub fn child(self, i: u8) -> Option<Prefix> {
        if self.len >= MAX_DEPTH || i as usize >= FANOUT {
            return None;
        }
        Some(Prefix {
            bits: (self.bits << 4) | i as u32,
            len: self.len + 1,
        })
    }

    /// The parent node; `None` for the root.
    pub fn parent(self) -> Option<Prefix> {
        (self.len > 0).then(|| Prefix {
            bits: self.bits >> 4,
            len: self.len - 1,
        })
    }

    /// The ancestor at level `len` (`len <= self.len()`).
    pub fn truncate(self, len: u8) -> Prefix {
        debug_assert!(len <= self.len);
        // From the deepest level to the root the shift is 32: `>>` would not clear the bits.
        Prefix {
            bits: self
                .bits
                .checked_shr(4 * (self.len - len) as u32)
                .unwrap_or(0),
            len,
        }
    }

    /// True if `self` is `other` or an ancestor of it.
    pub fn contains(self, other: Prefix) -> bool {
        other.len >= self.len && other.truncate(self.len) == self
    }

    /// The last nibble (the index of this node among its siblings); 0 for the root.
    pub fn last_nibble(self) -> u8 {
        if self.len == 0 {
            0
        } else {
            (self.bits & 0xf) as u8
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return Ok(());
        }
        write!(f, "{:0width$x}", self.bits, width = self.len as usize)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({self:})")
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        if s.len() > MAX_DEPTH as usize {
            return Err(PrefixError::TooLong(s.len()));
        }
        let mut bits = 0u32;
        for c in s.chars() {
            let v = match c {
                '0'..='9' => c as u32 - '0' as u32,
                'a'..='f' => c as u32 - 'a' as u32 + 10,
                _ => return Err(PrefixError::NotHex(c)),
            };
            bits = (bits << 4) | v;
        }
        Ok(Prefix {
            bits,
            len: s.len() as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        for s in ["", "0", "a", "a3", "0f0f", "ffffffff"] {
            let p: Prefix = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
            assert_eq!(p.len() as usize, s.len());
        }
        assert_eq!("A".parse::<Prefix>(), Err(PrefixError::NotHex('A')));
        assert_eq!("123456789".parse::<Prefix>(), Err(PrefixError::TooLong(9)));
    }

    #[test]
    fn navigation() {
        let p: Prefix = "a3".parse().unwrap();
        assert_eq!(p.child(0xf).unwrap().to_string(), "a3f");
        assert_eq!(p.parent().unwrap().to_string(), "a");
        assert_eq!(p.truncate(0), Prefix::ROOT);
        assert!(Prefix::ROOT.contains(p));
        assert!(!p.contains(Prefix::ROOT));
        assert_eq!(Prefix::of_hash(0xa3f0_0000_0000_0000, 3).to_string(), "a3f");
        assert_eq!(Prefix::new(0x100, 2), None);
        assert_eq!(p.last_nibble(), 3);
        // The deepest level truncates to the root too (a shift by 32 bits).
        let deep: Prefix = "89abcdef".parse().unwrap();
        assert_eq!(deep.truncate(0), Prefix::ROOT);
        assert!(Prefix::ROOT.contains(deep));
    }
}
