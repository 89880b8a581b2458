//! Server dialback (XEP-0220) with the key generation of XEP-0185, sans-IO: keys, and the
//! `<db:result/>` and `<db:verify/>` elements in both directions.
//!
//! ```text
//!  Originating (us) ──stream──► Receiving (peer): <db:result from=us to=peer>KEY</db:result>
//!  Receiving ──(its own stream to our authoritative address)──► <db:verify id=ID>KEY</db:verify>
//!  Authoritative (us) ──► <db:verify type='valid'/>   Receiving ──► <db:result type='valid'/>
//! ```
//!
//! KEY = HEX(HMAC-SHA256(HEX(SHA256(secret)), receiving ' ' originating ' ' stream-id)) (the
//! hashed secret is used as a key in its hexadecimal form, as XEP-0185 §4 works it out): only a
//! server that knows the secret, i.e. the authoritative server of the originating domain,
//! can confirm it, and it binds the stream id the receiving server chose.

use hmac::{Hmac, KeyInit, Mac};
use minidom::Element;
use sha2::{Digest, Sha256};

use super::xml::{DIALBACK, el};

/// The dialback key of XEP-0185 §3 for a stream with id `stream_id` from `originating` to
/// `receiving`.
pub fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hashed: String = Sha256::digest(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(hashed.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A dialback element received or to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dialback {
    /// `<db:result/>`: a key (request) or a verdict (`valid`, `invalid`, `error`).
    Result {
        /// `from`.
        from: String,
        /// `to`.
        to: String,
        /// The key, in a request.
        key: Option<String>,
        /// The verdict, in an answer.
        verdict: Option<String>,
    },
    /// `<db:verify/>`: a key to check for a stream id, or the verdict.
    Verify {
        /// `from`.
        from: String,
        /// `to`.
        to: String,
        /// The stream id the key was made for.
        id: String,
        /// The key, in a request.
        key: Option<String>,
        /// The verdict, in an answer.
        verdict: Option<String>,
    },
}

impl Dialback {
    /// Reads a dialback element; `None` if `element` is none (or lacks an address).
    pub fn parse(element: &Element) -> Option<Dialback> {
        if element.ns() != DIALBACK {
            return None;
        }
        let from = element.attr("from")?.to_owned();
        let to = element.attr("to")?.to_owned();
        let text = element.text();
        let key = (!text.is_empty()).then(|| text.trim().to_owned());
        let verdict = element.attr("type").map(str::to_owned);
        match element.name() {
            "result" => Some(Dialback::Result {
                from,
                to,
                key,
                verdict,
            }),
            "verify" => Some(Dialback::Verify {
                from,
                to,
                id: element.attr("id")?.to_owned(),
                key,
                verdict,
            }),
            _ => None,
        }
    }

    /// The element to write.
    pub fn to_element(&self) -> Element {
        let (name, from, to, id, key, verdict) = match self {
            Dialback::Result {
                from,
                to,
                key,
                verdict,
            } => ("result", from, to, None, key, verdict),
            Dialback::Verify {
                from,
                to,
                id,
                key,
                verdict,
            } => ("verify", from, to, Some(id), key, verdict),
        };
        let mut b = el(name, DIALBACK)
            .attr("from", from.as_str())
            .attr("to", to.as_str());
        if let Some(id) = id {
            b = b.attr("id", id.as_str());
        }
        if let Some(v) = verdict {
            b = b.attr("type", v.as_str());
        }
        if let Some(k) = key {
            b = b.append(k.as_str());
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep_0185_example_key() {
        // XEP-0185 §4: secret 's3cr3tf0rd14lb4ck', originating example.org, receiving
        // xmpp.example.com, stream id 'D60000229F'.
        let k = key(
            b"s3cr3tf0rd14lb4ck",
            "xmpp.example.com",
            "example.org",
            "D60000229F",
        );
        assert_eq!(
            k,
            "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643"
        );
    }

    #[test]
    fn elements_round_trip() {
        let r = Dialback::Result {
            from: "a.test".into(),
            to: "b.test".into(),
            key: Some("abc".into()),
            verdict: None,
        };
        assert_eq!(Dialback::parse(&r.to_element()), Some(r));
        let v = Dialback::Verify {
            from: "b.test".into(),
            to: "a.test".into(),
            id: "x1".into(),
            key: None,
            verdict: Some("valid".into()),
        };
        assert_eq!(Dialback::parse(&v.to_element()), Some(v));
    }
}
