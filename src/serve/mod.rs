//! `presence-sync serve`: the reference implementation as an XMPP server for one domain, on a
//! real network.
//!
//! # Contract
//!
//! A thin tokio driver around sans-IO parts, in the manner of quinn around quinn-proto:
//!
//! - [`crate::stream::StreamReader`] reads every stream within its bounds;
//! - [`crate::server::Server`] is the domain: accounts, rosters, RFC 6121 as Prosody does it,
//!   XEP-0191, and the extension's per-peer [`crate::engine::Session`]s (which never learn
//!   that tokio exists: they get the time with every input, and their timer from the core);
//! - [`core::Core`], one task, owns the `Server` and the storage, and is the only place state
//!   changes; connection tasks parse, authenticate and forward.
//!
//! ```text
//!  clients ──TCP──► c2s tasks ─┐                           ┌─► s2s out task (per peer) ──TCP──► peer
//!                              ├─Input─► core: Server ─────┤      dialback, queue, backoff
//!  peers ──TCP──► s2s in tasks ┘   (timers, storage)       └─► c2s tasks ──TCP──► clients
//! ```
//!
//! SIGTERM (or SIGINT) is a graceful stop: the server announces it to every synchronized peer
//! (XEP PS-54) and, as Prosody does, sends `unavailable` for its users to legacy peers, closes
//! every stream, and exits. SIGKILL loses nothing that was acknowledged to a client: accounts
//! are committed before any answer leaves ([`core`]).

pub mod auth;
pub mod c2s;
pub mod config;
pub mod conn;
pub mod core;
pub mod dialback;
pub mod s2s;
pub mod storage;
pub mod xml;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

pub use config::Config;

use crate::engine::session::{Config as SessionConfig, Mutation};
use crate::server::{Flavour, Server, SyncSetup};
use crate::sim::Host;

/// Why the server could not start or run.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// A deliberately broken variant of the reference, by its conformance-suite name (for
/// `serve --mutation NAME`, so that the suite run over the wire can prove it catches it).
pub fn mutation(name: &str) -> Option<Mutation> {
    Some(match name {
        "ignore-new-epoch" => Mutation::IgnoreNewEpoch,
        "forget-one-subscriber" => Mutation::ForgetOneSubscriber,
        "show-to-blocked" => Mutation::ShowToBlocked,
        "trust-foreign-jid" => Mutation::TrustForeignJid,
        "never-reverify" => Mutation::NeverReverify,
        "per-edge-presence" => Mutation::PerEdgePresence,
        "live-behind-bulk" => Mutation::LiveBehindBulk,
        _ => return None,
    })
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // The operating system's generator: epochs must not repeat across boots (PS-12).
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Runs the server of `config` with the database `store` until SIGTERM or SIGINT.
pub async fn run(
    config: Config,
    store: storage::Storage,
    mutation: Option<Mutation>,
) -> Result<(), ServeError> {
    run_until(config, store, mutation, wait_for_signal(), None).await
}

/// The addresses a server listens on, once it does (a port 0 in the configuration is one
/// the system chose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The s2s listener.
    pub s2s: std::net::SocketAddr,
    /// The c2s listener, if any.
    pub c2s: Option<std::net::SocketAddr>,
}

/// [`run`], stopping gracefully when `stop` completes instead of on a signal; `bound` learns
/// the listeners' addresses once they are bound. The conformance suite embeds the reference
/// server this way as the peer of the server under test.
pub async fn run_until(
    config: Config,
    mut store: storage::Storage,
    mutation: Option<Mutation>,
    stop: impl std::future::Future<Output = ()>,
    bound: Option<oneshot::Sender<Bound>>,
) -> Result<(), ServeError> {
    // XEP §Epochs (PS-12): a new epoch per boot, committed before any peer can learn it.
    let boot = store
        .next_boot()
        .map_err(|e| ServeError(format!("storage: {e}")))?;
    let mut server = if config.sync.enabled {
        let session = SessionConfig {
            limits: config.sync.limits(),
            small_peer: config.sync.small_peer,
            grace: config.sync.grace.saturating_mul(1_000_000), // µs
            mutation,
            ..SessionConfig::default()
        };
        let setup = SyncSetup {
            config: session,
            persist_caches: config.sync.persist_caches,
            ..SyncSetup::default()
        };
        Server::with_sync(&config.domain, Flavour::Prosody, setup, random_u64())
    } else {
        Server::new(&config.domain, Flavour::Prosody)
    };
    server.set_epoch(boot.epoch);
    tracing::info!(domain = %config.domain, boot = boot.number, epoch = %server.epoch(), sync = config.sync.enabled, "starting");
    let features = Host::stream_features(&server);
    let (core_tx, core_rx) = mpsc::channel(1024);
    let (stop_tx, stop_rx) = watch::channel(false);
    let secret = match &config.dialback_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => xml::random_id().into_bytes(),
    };
    let mut to_peers = HashMap::new();
    let mut verify = HashMap::new();
    let mut out_tasks = Vec::new();
    for (peer, addr) in &config.peers {
        let (tx, rx) = mpsc::channel(64 * 1024);
        let (vtx, vrx) = mpsc::channel(64);
        to_peers.insert(peer.clone(), tx);
        verify.insert(peer.clone(), vtx);
        out_tasks.push((peer.clone(), *addr, rx, vrx));
    }
    let s2s_ctx = Arc::new(s2s::S2s {
        domain: config.domain.clone(),
        secret,
        peers: config.peers.clone().into_iter().collect(),
        features,
        limits: config.stream.limits(),
        core: core_tx.clone(),
        verify,
        stopping: stop_rx.clone(),
        local: config.s2s.ip(),
    });
    let core = core::Core::new(server, store, to_peers)
        .map_err(|e| ServeError(format!("storage: {e}")))?;
    let s2s_listener = TcpListener::bind(config.s2s)
        .await
        .map_err(|e| ServeError(format!("s2s listener {}: {e}", config.s2s)))?;
    let c2s_listener = match config.c2s {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError(format!("c2s listener {addr}: {e}")))?,
        ),
        None => None,
    };
    let s2s_addr = s2s_listener
        .local_addr()
        .map_err(|e| ServeError(format!("s2s listener: {e}")))?;
    let c2s_addr = c2s_listener.as_ref().and_then(|l| l.local_addr().ok());
    let core_task = tokio::spawn(core.run(core_rx));
    for (peer, addr, rx, vrx) in out_tasks {
        tokio::spawn(s2s::peer_out(s2s_ctx.clone(), peer, addr, rx, vrx));
    }
    tokio::spawn(s2s::accept(s2s_ctx.clone(), s2s_listener));
    let tls = match &config.tls {
        Some(t) => Some(c2s::tls_acceptor(&t.cert, &t.key).map_err(ServeError)?),
        None => None,
    };
    if let Some(listener) = c2s_listener {
        let ctx = Arc::new(c2s::C2s {
            tls,
            domain: config.domain.clone(),
            registration: auth::register::Registration::new(&config.domain, config.registration)
                .ok_or_else(|| ServeError(format!("domain {}", config.domain)))?,
            sasl: auth::Sasl::new(&config.domain).map_err(|e| ServeError(format!("SASL: {e}")))?,
            limits: config.stream.limits(),
            core: core_tx.clone(),
            stopping: stop_rx.clone(),
        });
        tokio::spawn(c2s::accept(ctx, listener));
    }
    tracing::info!(s2s = %config.s2s, c2s = ?config.c2s, "listening");
    if let Some(bound) = bound {
        let _ = bound.send(Bound {
            s2s: s2s_addr,
            c2s: c2s_addr,
        });
    }
    stop.await;
    tracing::info!("stop requested");
    let (done, stopped) = oneshot::channel();
    if core_tx.send(core::Input::Shutdown { done }).await.is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), core_task).await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// `presence-sync serve --config FILE [--mutation NAME]`: reads the configuration, sets up
/// the logs, and runs the server on a tokio runtime.
pub fn main(config: &std::path::Path, mutation_name: Option<&str>) -> Result<(), ServeError> {
    let config = Config::load(config).map_err(|e| ServeError(e.to_string()))?;
    let mutation = match mutation_name {
        None => None,
        Some(n) => Some(self::mutation(n).ok_or_else(|| ServeError(format!("no mutation {n:?}")))?),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .map_err(|e| ServeError(format!("log filter {:?}: {e}", config.log)))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let store = storage::Storage::open(&config.database)
        .map_err(|e| ServeError(format!("database {}: {e}", config.database.display())))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError(format!("runtime: {e}")))?;
    let pid_file = config.pid_file.clone();
    let (bound_tx, bound_rx) = oneshot::channel();
    let result = runtime.block_on(async {
        let server = run_until(config, store, mutation, wait_for_signal(), Some(bound_tx));
        tokio::pin!(server);
        tokio::select! {
            r = &mut server => return r,
            b = bound_rx => if b.is_ok() {
                if let Some(path) = &pid_file {
                    std::fs::write(path, format!("{}\n", std::process::id()))
                        .map_err(|e| ServeError(format!("pid-file {}: {e}", path.display())))?;
                }
            },
        }
        server.await
    });
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    result
}
