//! One XML stream over a byte transport (TCP, or TLS over TCP): the bounded reader on the read
//! half ([`crate::stream::StreamReader`]), the writer on the write half, and the deadlines a
//! peer must meet so that a stalled or slow one cannot hold a connection forever.

use std::collections::VecDeque;
use std::time::Duration;

use minidom::Element;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::xml;
use crate::stream::{StreamError, StreamEvent, StreamLimits, StreamReader};

/// How long a peer may take to finish a stanza it started, or to send a header or an answer
/// the protocol is waiting for.
pub const STANZA_DEADLINE: Duration = Duration::from_secs(60);

/// Why a stream ended.
#[derive(Debug)]
pub enum ConnError {
    /// The transport failed or closed.
    Io(std::io::Error),
    /// The peer broke the stream's bounds or XML (the stream error to send says which).
    Stream(StreamError),
    /// The peer closed the stream (`</stream:stream>`).
    Closed,
    /// The peer took longer than [`STANZA_DEADLINE`].
    Timeout,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "transport: {e}"),
            ConnError::Stream(e) => write!(f, "stream: {e}"),
            ConnError::Closed => f.write_str("closed by the peer"),
            ConnError::Timeout => f.write_str("the peer stalled"),
        }
    }
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> ConnError {
        ConnError::Io(e)
    }
}

/// The read half of a stream.
pub struct Reader<R> {
    io: R,
    reader: StreamReader,
    buf: Box<[u8]>,
    pending: VecDeque<StreamEvent>,
    /// Bytes read so far.
    pub bytes: u64,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader at the start of a stream.
    pub fn new(io: R, limits: StreamLimits) -> Reader<R> {
        Reader {
            io,
            reader: StreamReader::new(limits),
            buf: vec![0; 16 * 1024].into_boxed_slice(),
            pending: VecDeque::new(),
            bytes: 0,
        }
    }

    /// The next header or stanza. Cancel-safe: only the read of the transport awaits, and
    /// what it read is parsed before the next await.
    pub async fn next(&mut self) -> Result<StreamEvent, ConnError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            let n = self.io.read(&mut self.buf).await?;
            if n == 0 {
                return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.bytes += n as u64;
            let events = self
                .reader
                .feed(&self.buf[..n])
                .map_err(ConnError::Stream)?;
            self.pending.extend(events);
        }
    }

    /// The next event within `deadline`, an error at [`StreamEvent::End`].
    pub async fn expect(&mut self, deadline: Duration) -> Result<Element, ConnError> {
        match tokio::time::timeout(deadline, self.next()).await {
            Err(_) => Err(ConnError::Timeout),
            Ok(Ok(StreamEvent::Stanza(s) | StreamEvent::Header(s))) => Ok(s),
            Ok(Ok(StreamEvent::End)) => Err(ConnError::Closed),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Starts a new stream on the same transport (RFC 6120 §4.3.3).
    pub fn restart(&mut self) {
        self.reader.restart();
        self.pending.clear();
    }

    /// The transport, for a TLS upgrade; nothing may be pending.
    pub fn into_inner(self) -> R {
        self.io
    }
}

/// The write half of a stream.
pub struct Writer<W> {
    io: W,
    /// Bytes written so far.
    pub bytes: u64,
    /// Stanzas written so far.
    pub stanzas: u64,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// A writer.
    pub fn new(io: W) -> Writer<W> {
        Writer {
            io,
            bytes: 0,
            stanzas: 0,
        }
    }

    /// Writes text (a header, the closing tag).
    pub async fn raw(&mut self, text: &str) -> std::io::Result<()> {
        self.io.write_all(text.as_bytes()).await?;
        self.bytes += text.len() as u64;
        self.io.flush().await
    }

    /// Writes one stanza.
    pub async fn send(&mut self, element: &Element) -> std::io::Result<()> {
        let bytes = xml::bytes(element);
        self.io.write_all(&bytes).await?;
        self.bytes += bytes.len() as u64;
        self.stanzas += 1;
        self.io.flush().await
    }

    /// Writes a stream error and closes the stream (RFC 6120 §4.9.1.1).
    pub async fn fail(&mut self, condition: &str, text: Option<&str>) {
        let _ = self.send(&xml::stream_error(condition, text)).await;
        let _ = self.raw(xml::CLOSE).await;
        let _ = self.io.shutdown().await;
    }

    /// Closes the stream cleanly (`</stream:stream>`, RFC 6120 §4.4).
    pub async fn close(&mut self) {
        let _ = self.raw(xml::CLOSE).await;
        let _ = self.io.shutdown().await;
    }

    /// The transport, for a TLS upgrade.
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// The stream error condition for a reader's failure.
pub fn condition(e: &ConnError) -> Option<&'static str> {
    match e {
        ConnError::Stream(s) => Some(s.condition()),
        ConnError::Timeout => Some("connection-timeout"),
        ConnError::Io(_) | ConnError::Closed => None,
    }
}
