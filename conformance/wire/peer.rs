//! The peer domain the suite plays: the reference server (`presence-sync serve`'s code, run in
//! this process on a runtime of its own), with its database in the suite's work directory.
//!
//! Each boot runs [`crate::serve::run_until`] on a fresh tokio runtime on its own thread, so
//! that the suite can end it as a process ends: [`EmbeddedPeer::stop`] is the graceful stop of
//! `serve` (the shutdown announcement to synchronized peers, XEP PS-54, and `unavailable` to
//! legacy ones), [`EmbeddedPeer::crash`] drops the runtime with every task and socket at once,
//! as SIGKILL does. The database survives both, as it would on disk; each boot has a new epoch
//! (XEP §Epochs). The first boot listens on ports the system chooses; later boots reuse them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Result;
use super::wait::wait_until;
use crate::serve::{Bound, Config, run_until, storage::Storage};

/// The dialback secret of the suite's peer (XEP-0185): the suite's hostile streams
/// authenticate as the peer domain with keys made from it, which the peer, as the domain's
/// authoritative server, confirms ([`super::hostile`]).
pub const DIALBACK_SECRET: &str = "presence-sync conformance peer";

/// How the peer runs: with the extension (the reference engine), or as a legacy RFC 6121
/// server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Offers and uses `urn:xmpp:presence-sync:0`.
    Sync,
    /// Offers nothing: the RFC 6121 behaviour of Prosody.
    Legacy,
}

/// The suite's peer server.
pub struct EmbeddedPeer {
    domain: String,
    ip: std::net::IpAddr,
    subject: String,
    subject_s2s: SocketAddr,
    database: PathBuf,
    bound: Option<Bound>,
    boot: Option<Boot>,
    mode: Mode,
}

struct Boot {
    stop: Option<oneshot::Sender<()>>,
    crash: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedPeer {
    /// A peer for `domain` listening on `ip`, reaching `subject` at `subject_s2s`, its
    /// database in `dir`. Not started.
    pub fn new(
        domain: &str,
        ip: std::net::IpAddr,
        subject: &str,
        subject_s2s: SocketAddr,
        dir: &std::path::Path,
    ) -> EmbeddedPeer {
        EmbeddedPeer {
            domain: domain.to_owned(),
            ip,
            subject: subject.to_owned(),
            subject_s2s,
            database: dir.join(format!("{domain}.sqlite")),
            bound: None,
            boot: None,
            mode: Mode::Sync,
        }
    }

    /// Its domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Where it listens, once started.
    pub fn bound(&self) -> Option<Bound> {
        self.bound
    }

    /// Its database (to be edited only while it is down).
    pub fn database(&self) -> PathBuf {
        self.database.clone()
    }

    /// Whether a boot is running.
    pub fn is_running(&self) -> bool {
        self.boot.is_some()
    }

    /// Starts a boot in `mode`; returns once it listens.
    ///
    /// # Errors
    /// It could not start or did not listen within 10 s.
    pub async fn start(&mut self, mode: Mode) -> Result<Bound> {
        if self.boot.is_some() {
            return Err("the peer is already running".into());
        }
        let (s2s, c2s) = match self.bound {
            Some(b) => (b.s2s, b.c2s.unwrap_or(SocketAddr::new(self.ip, 0))),
            None => (SocketAddr::new(self.ip, 0), SocketAddr::new(self.ip, 0)),
        };
        let toml = format!(
            "domain = '{}'\nc2s = '{c2s}'\ns2s = '{s2s}'\ndatabase = '{}'\nregistration = true\n\
             log = 'warn'\ndialback-secret = '{DIALBACK_SECRET}'\n\
             [peers]\n'{}' = '{}'\n",
            self.domain,
            self.database.display(),
            self.subject,
            self.subject_s2s
        );
        let mut config = Config::parse(&toml).map_err(|e| format!("peer config: {e}"))?;
        config.sync.enabled = mode == Mode::Sync;
        // The suite's peer starts a session with the subject however few edges the two
        // share (PS-93 lets the subject keep RFC 6121 with a small peer; it still answers).
        config.sync.small_peer = 0;
        // A port of the previous boot may take a moment to be free again.
        let mut last = String::new();
        for _ in 0..50 {
            match self.boot(config.clone()).await {
                Ok(bound) => {
                    self.bound = Some(bound);
                    self.mode = mode;
                    return Ok(bound);
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("the suite's peer {} did not start: {last}", self.domain).into())
    }

    async fn boot(&mut self, config: Config) -> Result<Bound> {
        let store = Storage::open(&config.database).map_err(|e| format!("peer database: {e}"))?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (crash_tx, crash_rx) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let (failed_tx, failed_rx) = oneshot::channel::<String>();
        let thread = std::thread::Builder::new()
            .name(format!("peer {}", config.domain))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = failed_tx.send(format!("runtime: {e}"));
                        return;
                    }
                };
                let stop = async {
                    let _ = stop_rx.await;
                };
                let server = runtime.spawn(run_until(config, store, None, stop, Some(bound_tx)));
                runtime.block_on(async {
                    tokio::select! {
                        r = server => {
                            if let Ok(Err(e)) = r {
                                let _ = failed_tx.send(e.to_string());
                            }
                        }
                        _ = crash_rx => {}
                    }
                });
                // Every task and socket goes at once: a graceful stop has finished by now, a
                // crash has not.
                runtime.shutdown_background();
            })
            .map_err(|e| format!("peer thread: {e}"))?;
        let bound = tokio::select! {
            b = bound_rx => b.map_err(|_| "the peer stopped before listening".to_owned()),
            f = failed_rx => Err(f.unwrap_or_else(|_| "the peer stopped".to_owned())),
            _ = tokio::time::sleep(Duration::from_secs(10)) => Err("the peer did not listen within 10 s".to_owned()),
        };
        self.boot = Some(Boot {
            stop: Some(stop_tx),
            crash: Some(crash_tx),
            thread: Some(thread),
        });
        match bound {
            Ok(b) => Ok(b),
            Err(e) => {
                self.crash().await;
                Err(e.into())
            }
        }
    }

    /// A graceful stop (waits, bounded, for the boot to end).
    pub async fn stop(&mut self) {
        if let Some(mut boot) = self.boot.take() {
            if let Some(stop) = boot.stop.take() {
                let _ = stop.send(());
            }
            boot.join(Duration::from_secs(20)).await;
        }
    }

    /// A crash: the boot ends at once, with nothing sent.
    pub async fn crash(&mut self) {
        if let Some(mut boot) = self.boot.take() {
            if let Some(crash) = boot.crash.take() {
                let _ = crash.send(());
            }
            boot.join(Duration::from_secs(5)).await;
        }
    }

    /// The mode of the latest boot.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl Boot {
    async fn join(&mut self, timeout: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = wait_until("the peer's boot to end", timeout, || thread.is_finished()).await;
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedPeer {
    fn drop(&mut self) {
        if let Some(mut boot) = self.boot.take() {
            if let Some(crash) = boot.crash.take() {
                let _ = crash.send(());
            }
        }
    }
}
