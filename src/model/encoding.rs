//! The framing of the canonical encodings (XEP §Canonical Encodings): the model writes its
//! edges and presence states with it, and the digests hash what it writes.

/// Appends `bytes` with a 4-byte big-endian length prefix (the only framing the canonical
/// encodings use).
pub fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("canonical fields are below 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
