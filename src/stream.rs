//! The XML stream layer, sans-IO (RFC 6120 §4): bytes in, the stream header and whole stanzas
//! out, with every bound applied before an element is built.
//!
//! A peer controls every byte of a stream, so [`StreamReader`] never lets it decide how much
//! memory or stack a stanza takes: it counts the bytes of the stanza being read and its
//! nesting depth as the tokenizer reports them ([`rxml`]'s restricted XML 1.0 parser: no
//! DTD, no entity expansion beyond the predefined ones, tokens of at most 8 KiB, so a 100 MB
//! attribute is refused at 8 KiB), and refuses the stanza with the stream error RFC 6120
//! §4.9.3 names as soon as it crosses [`StreamLimits`]: before the tree builder sees the
//! offending event. Trees are built by minidom's iterative `TreeBuilder`, so no step
//! recurses with the depth of the input; the depth limit also bounds every later recursive
//! walk of a stanza (clone, serialisation, drop).
//!
//! ```text
//!  bytes ──► rxml::RawParser ──events(with byte counts)──► bounds ──► minidom TreeBuilder
//!                                                           │             │ depth 1 closed
//!                                 StreamError ◄── crossed ──┘             ▼
//!                                         StreamEvent::{Header, Stanza(Element), End}
//! ```
//!
//! The reader knows nothing of sockets, TLS or XMPP semantics: the network driver feeds it
//! what it reads and restarts it when RFC 6120 restarts the stream (after STARTTLS and SASL).

use std::fmt;

use minidom::Element;
use minidom::tree_builder::TreeBuilder;
use rxml::error::EndOrError;
use rxml::{Parse, RawEvent, RawParser};

/// The bounds of one stream, applied to each stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// The most bytes of one stanza (RFC 6120 §13.12 asks for at least 10 000; servers use
    /// 256 KiB to 10 MiB).
    pub max_stanza_bytes: usize,
    /// The most elements nested in one stanza, the stanza element counted as 1.
    pub max_depth: usize,
    /// The most bytes of the stream header.
    pub max_header_bytes: usize,
}

impl StreamLimits {
    /// The defaults: 256 KiB per stanza (the largest max-bytes of the XEP, 1 MiB, is for
    /// servers that raise this), 64 levels (a presence-sync item is at most 4 levels plus the
    /// XEP's 16 for payloads), 8 KiB of header.
    pub const DEFAULT: StreamLimits = StreamLimits {
        max_stanza_bytes: 256 * 1024,
        max_depth: 64,
        max_header_bytes: 8 * 1024,
    };
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits::DEFAULT
    }
}

/// What a stream delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// The stream header: the `<stream:stream>` element with its attributes, without
    /// children.
    Header(Element),
    /// One whole stanza (any child of the stream root, `<stream:features/>` and
    /// `<stream:error/>` included).
    Stanza(Element),
    /// The peer closed the stream (`</stream:stream>`).
    End,
}

/// Why the reader stopped: each maps to the stream error of RFC 6120 §4.9.3 that the driver
/// sends before closing ([`StreamError::condition`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// Not well-formed XML, or a namespace error (`<not-well-formed/>`).
    NotWellFormed(String),
    /// A construct restricted XML forbids: comments, processing instructions, DTDs
    /// (`<restricted-xml/>`).
    Restricted(String),
    /// A stanza over [`StreamLimits::max_stanza_bytes`] (`<policy-violation/>`).
    TooLarge {
        /// Bytes read of it so far.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A stanza nested deeper than [`StreamLimits::max_depth`] (`<policy-violation/>`).
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Data after the end of the stream.
    AfterEnd,
}

impl StreamError {
    /// The RFC 6120 §4.9.3 condition name.
    pub fn condition(&self) -> &'static str {
        match self {
            StreamError::NotWellFormed(_) | StreamError::AfterEnd => "not-well-formed",
            StreamError::Restricted(_) => "restricted-xml",
            StreamError::TooLarge { .. } | StreamError::TooDeep { .. } => "policy-violation",
        }
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::NotWellFormed(e) => write!(f, "not well-formed: {e}"),
            StreamError::Restricted(e) => write!(f, "restricted XML: {e}"),
            StreamError::TooLarge { bytes, max } => {
                write!(f, "stanza of more than {max} bytes ({bytes} read)")
            }
            StreamError::TooDeep { max } => write!(f, "stanza nested more than {max} deep"),
            StreamError::AfterEnd => f.write_str("data after the end of the stream"),
        }
    }
}

impl std::error::Error for StreamError {}

fn xml_error(e: rxml::Error) -> StreamError {
    match e {
        rxml::Error::RestrictedXml(what) => StreamError::Restricted(what.to_owned()),
        other => StreamError::NotWellFormed(other.to_string()),
    }
}

/// Reads one XML stream (see the [module documentation](self)).
pub struct StreamReader {
    parser: RawParser,
    tree: TreeBuilder,
    limits: StreamLimits,
    /// Bytes of the stanza (or header) being read.
    bytes: usize,
    /// Elements open in the stanza being read.
    depth: usize,
    header_done: bool,
    ended: bool,
    failed: Option<StreamError>,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("limits", &self.limits)
            .field("bytes", &self.bytes)
            .field("depth", &self.depth)
            .field("header_done", &self.header_done)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    /// A reader at the start of a stream.
    pub fn new(limits: StreamLimits) -> StreamReader {
        let mut parser = RawParser::new();
        // Text is reported as it arrives, so that its bytes count at once (otherwise up to a
        // token, 8 KiB, would wait in the tokenizer uncounted).
        parser.set_text_buffering(false);
        StreamReader {
            parser,
            tree: TreeBuilder::new(),
            limits,
            bytes: 0,
            depth: 0,
            header_done: false,
            ended: false,
            failed: None,
        }
    }

    /// Starts over, for a stream restart (RFC 6120 §4.3.3: after TLS and SASL).
    pub fn restart(&mut self) {
        *self = StreamReader::new(self.limits);
    }

    /// True once the peer closed the stream.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes of the stanza being read (bounded by the limits).
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Reads `data` (all of it) and returns what it completed. After an error the reader
    /// stays failed: the stream is over.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<StreamEvent>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut out = Vec::new();
        let result = loop {
            if self.ended {
                if data.iter().all(u8::is_ascii_whitespace) {
                    break Ok(());
                }
                break Err(StreamError::AfterEnd);
            }
            match self.parser.parse(&mut data, false) {
                Ok(Some(event)) => {
                    if let Err(e) = self.event(event, &mut out) {
                        break Err(e);
                    }
                }
                Ok(None) => {
                    self.ended = true;
                }
                Err(EndOrError::NeedMoreData) => break Ok(()),
                Err(EndOrError::Error(e)) => break Err(xml_error(e)),
            }
        };
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn event(&mut self, event: RawEvent, out: &mut Vec<StreamEvent>) -> Result<(), StreamError> {
        self.bytes += event.metrics().len();
        let in_header = !self.header_done;
        let max = if in_header {
            self.limits.max_header_bytes
        } else {
            self.limits.max_stanza_bytes
        };
        if self.bytes > max {
            return Err(StreamError::TooLarge {
                bytes: self.bytes,
                max,
            });
        }
        match &event {
            RawEvent::ElementHeadOpen(..) if self.header_done => {
                self.depth += 1;
                if self.depth > self.limits.max_depth {
                    return Err(StreamError::TooDeep {
                        max: self.limits.max_depth,
                    });
                }
            }
            RawEvent::XmlDeclaration(..) => {
                // Counted with the header.
                self.tree
                    .process_event(event)
                    .map_err(|e| StreamError::NotWellFormed(e.to_string()))?;
                return Ok(());
            }
            _ => {}
        }
        let closes = matches!(event, RawEvent::ElementFoot(_));
        let head_closes = matches!(event, RawEvent::ElementHeadClose(_));
        self.tree
            .process_event(event)
            .map_err(|e| StreamError::NotWellFormed(e.to_string()))?;
        if in_header && head_closes {
            self.header_done = true;
            self.bytes = 0;
            let root = self
                .tree
                .top()
                .cloned()
                .ok_or_else(|| StreamError::NotWellFormed("no stream root".to_owned()))?;
            out.push(StreamEvent::Header(root));
            return Ok(());
        }
        if closes && self.header_done {
            if self.depth == 0 {
                // The stream root itself closed.
                self.ended = true;
                out.push(StreamEvent::End);
                return Ok(());
            }
            self.depth -= 1;
            if self.depth == 0 {
                self.bytes = 0;
                if let Some(stanza) = self.tree.unshift_child() {
                    out.push(StreamEvent::Stanza(stanza));
                }
            }
        } else if in_header && closes {
            // `<stream:stream/>`: opened and closed at once.
            self.header_done = true;
            self.ended = true;
            out.push(StreamEvent::End);
        }
        Ok(())
    }
}

/// Parses one standalone element under `limits` (its whole serialisation counted as one
/// stanza): the bounded parse for element texts that do not come from a stream (test inputs,
/// fuzzing, configuration).
pub fn parse_element(xml: &[u8], limits: StreamLimits) -> Result<Element, StreamError> {
    if xml.len() > limits.max_stanza_bytes {
        return Err(StreamError::TooLarge {
            bytes: xml.len(),
            max: limits.max_stanza_bytes,
        });
    }
    // A wrapper root stands for the stream: the element is then read as a stanza.
    let mut reader = StreamReader::new(limits);
    reader.limits.max_header_bytes = 64;
    let mut events = reader.feed(b"<s xmlns='jabber:server'>")?;
    events.extend(reader.feed(xml)?);
    events.extend(reader.feed(b"</s>")?);
    let mut stanzas = events.into_iter().filter_map(|e| match e {
        StreamEvent::Stanza(s) => Some(s),
        _ => None,
    });
    match (stanzas.next(), stanzas.next(), reader.ended()) {
        (Some(s), None, true) => Ok(s),
        _ => Err(StreamError::NotWellFormed(
            "not exactly one element".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        to='b.test' from='a.test' version='1.0'>";

    fn reader() -> StreamReader {
        StreamReader::new(StreamLimits {
            max_stanza_bytes: 1024,
            max_depth: 8,
            max_header_bytes: 1024,
        })
    }

    #[test]
    fn header_stanzas_and_end_byte_by_byte() {
        let mut r = reader();
        let mut events = Vec::new();
        let input = [
            HEADER,
            b"<presence from='j@a.test/r' to='b.test'><show>away</show></presence>",
            b"<db:result from='a.test' to='b.test'>abc</db:result>",
            b"</stream:stream>",
        ]
        .concat();
        for b in &input {
            events.extend(r.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(events.len(), 4, "{events:?}");
        let StreamEvent::Header(h) = &events[0] else {
            panic!()
        };
        assert_eq!(h.name(), "stream");
        assert_eq!(h.attr("from"), Some("a.test"));
        let StreamEvent::Stanza(p) = &events[1] else {
            panic!()
        };
        assert!(p.is("presence", "jabber:server"));
        assert_eq!(p.get_child("show", "jabber:server").unwrap().text(), "away");
        let StreamEvent::Stanza(db) = &events[2] else {
            panic!()
        };
        assert!(db.is("result", "jabber:server:dialback"));
        assert_eq!(events[3], StreamEvent::End);
        assert!(r.ended());
    }

    #[test]
    fn a_stanza_over_the_byte_limit_is_refused_before_it_ends() {
        let mut r = reader();
        r.feed(HEADER).unwrap();
        r.feed(b"<message><body>").unwrap();
        let e = r.feed(&vec![b'x'; 2048]).unwrap_err();
        assert!(matches!(e, StreamError::TooLarge { max: 1024, .. }), "{e}");
        assert_eq!(e.condition(), "policy-violation");
        // Failed for good.
        assert_eq!(r.feed(b"</body></message>").unwrap_err(), e);
    }

    #[test]
    fn nesting_is_refused_at_the_first_element_beyond_the_limit() {
        let mut r = reader();
        r.feed(HEADER).unwrap();
        let deep = "<a>".repeat(8);
        r.feed(deep.as_bytes()).unwrap();
        assert_eq!(r.feed(b"<a>").unwrap_err(), StreamError::TooDeep { max: 8 });
    }

    #[test]
    fn a_million_levels_cost_one_error() {
        let mut r = StreamReader::new(StreamLimits::DEFAULT);
        r.feed(HEADER).unwrap();
        let e = r.feed("<a>".repeat(1_000_000).as_bytes()).unwrap_err();
        assert_eq!(e, StreamError::TooDeep { max: 64 });
    }

    #[test]
    fn a_huge_attribute_is_refused_by_the_tokenizer() {
        let mut r = StreamReader::new(StreamLimits::DEFAULT);
        r.feed(HEADER).unwrap();
        let mut stanza = b"<message to='".to_vec();
        stanza.extend(std::iter::repeat_n(b'x', 100_000));
        let e = r.feed(&stanza).unwrap_err();
        assert!(matches!(e, StreamError::Restricted(_)), "{e}");
    }

    #[test]
    fn comments_and_doctypes_are_restricted() {
        for bad in [&b"<!-- hi -->"[..], b"<!DOCTYPE x>", b"<?pi x?>"] {
            let mut r = reader();
            r.feed(HEADER).unwrap();
            let e = r.feed(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    StreamError::Restricted(_) | StreamError::NotWellFormed(_)
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn a_standalone_element() {
        let e = parse_element(b"<iq type='get' id='1'/>", StreamLimits::DEFAULT).unwrap();
        assert!(e.is("iq", "jabber:server"));
        assert!(parse_element(b"<a/><b/>", StreamLimits::DEFAULT).is_err());
        assert!(parse_element(b"<a>", StreamLimits::DEFAULT).is_err());
        let deep = format!("{}{}", "<a>".repeat(65), "</a>".repeat(65));
        assert_eq!(
            parse_element(deep.as_bytes(), StreamLimits::DEFAULT).unwrap_err(),
            StreamError::TooDeep { max: 64 }
        );
    }
}
