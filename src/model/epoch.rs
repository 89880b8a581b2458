//! Boot epochs (XEP §Epochs).

use std::fmt;
use std::str::FromStr;

/// A server's boot epoch: a 64-bit value, unique per boot of the server (RECOMMENDED: drawn
/// from a CSPRNG at start-up). Every presence a server sends belongs to its current epoch; a
/// new epoch seen from a peer voids everything cached from the peer's earlier epochs.
///
/// Written on the wire as exactly 16 lowercase hexadecimal digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({self})")
    }
}

/// The text is not 16 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochError(pub String);

impl fmt::Display for EpochError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "epoch {:?} is not 16 lowercase hexadecimal digits",
            self.0
        )
    }
}

impl std::error::Error for EpochError {}

impl FromStr for Epoch {
    type Err = EpochError;
    fn from_str(s: &str) -> Result<Epoch, EpochError> {
        let ok = s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(EpochError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(Epoch)
            .map_err(|_| EpochError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let e = Epoch(0x1a2b);
        assert_eq!(e.to_string(), "0000000000001a2b");
        assert_eq!("0000000000001a2b".parse::<Epoch>().unwrap(), e);
        for bad in [
            "1a2b",
            "0000000000001A2B",
            "000000000000001a2b",
            "+000000000001a2b",
        ] {
            assert!(bad.parse::<Epoch>().is_err(), "{bad}");
        }
    }
}
