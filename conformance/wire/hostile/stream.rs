//! The suite's own s2s streams to the subject as the peer domain ([`super`]): a TCP
//! connection from the suite's peer address, a stream header, XEP-0220 dialback with the
//! peer's secret, and a reader task that logs everything the subject sends on it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

use super::super::Result;
use super::super::peer::DIALBACK_SECRET;
use super::super::world::Wire;
use super::{ANSWER, POLL};
use crate::conformance::hostile::verdict;
use crate::serve::conn::Reader;
use crate::serve::dialback::{Dialback, key};
use crate::serve::xml::{self, SERVER};
use crate::stream::{StreamEvent, StreamLimits};

/// Limits for reading what the subject sends on a hostile stream: far above any server's.
const READ_LIMITS: StreamLimits = StreamLimits {
    max_stanza_bytes: 16 * 1024 * 1024,
    max_depth: 10_000,
    max_header_bytes: 64 * 1024,
};

/// What the subject sent on a hostile stream, and whether it ended.
#[derive(Default)]
pub(super) struct Log {
    got: Vec<(Instant, Element)>,
    ended: Option<(Instant, String)>,
}

/// An s2s stream the suite opened to the subject.
pub(super) struct Hostile {
    writer: OwnedWriteHalf,
    /// The stream id the subject gave it.
    id: String,
    log: Arc<Mutex<Log>>,
    reader: JoinHandle<()>,
}

/// A TCP connection to the subject's s2s listener from the address the suite's peer uses.
pub(super) async fn connect(w: &Wire) -> Result<TcpStream> {
    let to = w.target.s2s;
    let socket = match to {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    let local = w.target.peer.listen.ip();
    if local.is_ipv4() == to.is_ipv4() && !local.is_unspecified() {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    let tcp = tokio::time::timeout(ANSWER, socket.connect(to))
        .await
        .map_err(|_| format!("connect to {to}: timeout"))??;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

impl Hostile {
    /// Opens a stream from `from` to the subject and waits for its header and features.
    pub(super) async fn open(w: &Wire, from: &str) -> Result<Hostile> {
        let (r, mut writer) = connect(w).await?.into_split();
        let header = xml::header(SERVER, Some(from), Some(&w.target.domain), None);
        writer.write_all(header.as_bytes()).await?;
        let mut reader = Reader::new(r, READ_LIMITS);
        let header = reader
            .expect(ANSWER)
            .await
            .map_err(|e| format!("the subject's stream header: {e}"))?;
        let id = header
            .attr("id")
            .ok_or("the subject's stream header has no id")?
            .to_owned();
        let log = Arc::new(Mutex::new(Log::default()));
        let task_log = log.clone();
        let reader = tokio::spawn(async move {
            loop {
                let event = reader.next().await;
                let mut log = task_log.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Ok(StreamEvent::Stanza(s)) => log.got.push((Instant::now(), s)),
                    Ok(StreamEvent::Header(_)) => {}
                    Ok(StreamEvent::End) => {
                        log.ended = Some((Instant::now(), "closed by the subject".into()));
                        return;
                    }
                    Err(e) => {
                        log.ended = Some((Instant::now(), e.to_string()));
                        return;
                    }
                }
            }
        });
        let s = Hostile {
            writer,
            id,
            log,
            reader,
        };
        s.wait_for("the subject's stream features", ANSWER, |l| {
            l.got.iter().any(|(_, e)| e.name() == "features")
        })
        .await?;
        Ok(s)
    }

    /// A stream from the peer domain, authenticated by dialback.
    pub(super) async fn authenticated(w: &Wire) -> Result<Hostile> {
        let peer = w.target.peer.domain.clone();
        let mut s = Hostile::open(w, &peer).await?;
        let k = key(DIALBACK_SECRET.as_bytes(), &w.target.domain, &peer, &s.id);
        match s.dialback(&peer, &w.target.domain, k).await? {
            v if v == "valid" => Ok(s),
            v => Err(format!("dialback as {peer} with the right key: {v}").into()),
        }
    }

    pub(super) fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `text` as it is.
    pub(super) async fn send(&mut self, text: &str) -> Result<()> {
        self.writer.write_all(text.as_bytes()).await?;
        self.writer.flush().await?;
        Ok(())
    }

    /// Waits until `f` holds of what the stream received, at most `timeout`.
    pub(super) async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&Log) -> bool,
    ) -> Result<()> {
        let started = Instant::now();
        loop {
            {
                let log = self.log();
                if f(&log) {
                    return Ok(());
                }
                if let Some((_, why)) = &log.ended {
                    return Err(format!("waiting for {what}: the stream ended ({why})").into());
                }
            }
            if started.elapsed() > timeout {
                return Err(format!("no {what} within {timeout:?}").into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Asks for dialback as `from` with `key` (XEP-0220 §2.1.1); the verdict the subject gave
    /// (`valid`, `invalid`, `error`), or what ended the stream instead.
    pub(super) async fn dialback(&mut self, from: &str, to: &str, key: String) -> Result<String> {
        let request = Dialback::Result {
            from: from.to_owned(),
            to: to.to_owned(),
            key: Some(key),
            verdict: None,
        };
        self.send(&String::from(&request.to_element())).await?;
        let started = Instant::now();
        loop {
            {
                let log = self.log();
                let verdict = log.got.iter().find_map(|(_, e)| match Dialback::parse(e) {
                    Some(Dialback::Result {
                        verdict: Some(v), ..
                    }) => Some(v),
                    _ => None,
                });
                if let Some(v) = verdict {
                    return Ok(v);
                }
                if let Some(error) = log.got.iter().find(|(_, e)| xml::is_stream_error(e)) {
                    return Ok(format!("stream error {}", verdict::show(&error.1)));
                }
                if let Some((_, why)) = &log.ended {
                    return Ok(format!("stream ended: {why}"));
                }
            }
            if started.elapsed() > ANSWER {
                return Err(format!("no dialback verdict for {from} within {ANSWER:?}").into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What the subject sent on this stream since `at`.
    pub(super) fn since(&self, at: Instant) -> Vec<Element> {
        self.log()
            .got
            .iter()
            .filter(|(t, _)| *t >= at)
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub(super) fn ended(&self) -> bool {
        self.log().ended.is_some()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
