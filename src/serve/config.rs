//! The server's configuration file (TOML).
//!
//! ```toml
//! domain = "a.test"
//! c2s = "127.0.0.2:5222"          # optional: no client listener without it
//! s2s = "127.0.0.2:5269"
//! database = "/var/lib/presence-sync/a.test.sqlite"
//! registration = true             # XEP-0077 in-band registration
//! log = "info"                    # a tracing filter: "debug", "presence_sync=trace", ...
//!
//! [peers]                         # static map of peer domains to s2s addresses (no DNS)
//! "b.test" = "127.0.0.3:5269"
//!
//! [sync]                          # the extension (urn:xmpp:presence-sync:0)
//! enabled = true
//! max-items = 256                 # XEP §Hello limits this server announces
//! max-bytes = 65536
//! window = 64                     # the largest the XEP allows: a restart pulls faster
//! leaf-items = 16
//! small-peer = 40                 # XEP PS-93: RFC 6121 with peers sharing at most this many edges
//! grace = 300                     # XEP PS-56: seconds a down peer's cached presence stays shown
//! persist-caches = false          # keep the peers' presence across a graceful restart (PS-81)
//!
//! [stream]
//! max-stanza-bytes = 262144
//! max-depth = 64
//! ```
//!
//! Plaintext streams are only allowed on listeners bound to a loopback address; a listener on
//! any other address needs `[tls] cert` and `key` (STARTTLS, RFC 6120 §5).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::stream::StreamLimits;
use crate::wire::Limits;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The domain this server serves.
    pub domain: String,
    /// Where clients connect (RFC 6120 c2s); none: no clients.
    #[serde(default)]
    pub c2s: Option<SocketAddr>,
    /// Where peer servers connect (s2s).
    pub s2s: SocketAddr,
    /// Peer domains and the address of each one's s2s listener.
    #[serde(default)]
    pub peers: BTreeMap<String, SocketAddr>,
    /// The SQLite database.
    pub database: PathBuf,
    /// XEP-0077 in-band registration is open.
    #[serde(default)]
    pub registration: bool,
    /// A tracing filter for the logs (stderr).
    #[serde(default = "default_log")]
    pub log: String,
    /// The extension.
    #[serde(default)]
    pub sync: SyncConfig,
    /// Bounds of every stream.
    #[serde(default)]
    pub stream: StreamConfig,
    /// TLS for listeners on non-loopback addresses.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The dialback secret (XEP-0185); a random one per run if absent, which is what a
    /// single-process server needs.
    #[serde(default, rename = "dialback-secret")]
    pub dialback_secret: Option<String>,
    /// A file the process writes its PID into once it listens, and removes after a graceful
    /// stop (for service managers, and for the conformance suite's restarts).
    #[serde(default, rename = "pid-file")]
    pub pid_file: Option<PathBuf>,
}

fn default_log() -> String {
    "info".to_owned()
}

/// `[sync]`: every key is optional, with the XEP's default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct SyncConfig {
    /// The extension is offered and used with peers that offer it.
    pub enabled: bool,
    /// XEP §Hello `max-items`.
    pub max_items: u32,
    /// XEP §Hello `max-bytes`.
    pub max_bytes: u32,
    /// XEP §Hello `window`.
    pub window: u32,
    /// XEP §Hello `leaf-items`.
    pub leaf_items: u32,
    /// XEP PS-93: no session is started with a peer that shares at most this many edges
    /// (RFC 6121 with it); 0 starts one with every peer that shares an edge.
    pub small_peer: u64,
    /// XEP PS-56: seconds a peer's cache stays usable while the link is down (300 by default).
    pub grace: u64,
    /// XEP §Persistence of Epochs and Caches: a graceful stop writes each peer's cache with its
    /// peer epoch to the database; the next start presents it, unverified, in its hello, and
    /// deletes it from the database as it reads it (PS-81: it is never kept past the grace
    /// period of a run that cannot reach the peer). Off by default.
    pub persist_caches: bool,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        let d = crate::engine::LIMITS;
        SyncConfig {
            enabled: true,
            max_items: d.max_items,
            max_bytes: d.max_bytes,
            window: d.window,
            leaf_items: d.leaf_items,
            small_peer: crate::engine::SMALL_PEER,
            grace: crate::engine::Config::default().grace / 1_000_000,
            persist_caches: false,
        }
    }
}

impl SyncConfig {
    /// The limits this server announces.
    pub fn limits(&self) -> Limits {
        Limits {
            max_items: self.max_items,
            max_bytes: self.max_bytes,
            window: self.window,
            leaf_items: self.leaf_items,
        }
    }
}

/// `[stream]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StreamConfig {
    /// Bytes of one stanza.
    pub max_stanza_bytes: usize,
    /// Elements nested in one stanza.
    pub max_depth: usize,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            max_stanza_bytes: StreamLimits::DEFAULT.max_stanza_bytes,
            max_depth: StreamLimits::DEFAULT.max_depth,
        }
    }
}

impl StreamConfig {
    /// The reader's limits.
    pub fn limits(&self) -> StreamLimits {
        StreamLimits {
            max_stanza_bytes: self.max_stanza_bytes,
            max_depth: self.max_depth,
            max_header_bytes: StreamLimits::DEFAULT.max_header_bytes,
        }
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// A configuration that cannot be used.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let domain = jid::BareJid::new(&self.domain)
            .ok()
            .filter(|j| j.node().is_none() && j.as_str() == self.domain);
        if domain.is_none() {
            return Err(ConfigError(format!(
                "domain {:?} is not a domain in normalized form",
                self.domain
            )));
        }
        if !self.sync.limits().is_valid() {
            return Err(ConfigError(format!(
                "[sync] limits out of the XEP's ranges: {:?}",
                self.sync.limits()
            )));
        }
        for listener in self.c2s.iter().chain([&self.s2s]) {
            if !listener.ip().is_loopback() && self.tls.is_none() {
                return Err(ConfigError(format!(
                    "{listener} is not a loopback address: plaintext streams are only allowed \
                     on loopback, configure [tls] cert and key"
                )));
            }
        }
        for peer in self.peers.keys() {
            if peer == &self.domain {
                return Err(ConfigError(format!("{peer} is this server's own domain")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = Config::parse(
            "domain = 'a.test'\nc2s = '127.0.0.2:5222'\ns2s = '127.0.0.2:5269'\n\
             database = '/tmp/a.sqlite'\nregistration = true\n[peers]\n'b.test' = '127.0.0.3:5269'\n\
             [sync]\nenabled = true\nmax-items = 128\nmax-bytes = 65536\nwindow = 4\nleaf-items = 16\n\
             small-peer = 0\n",
        )
        .unwrap();
        assert_eq!(c.sync.small_peer, 0);
        let partial = Config::parse(
            "domain = 'a.test'\ns2s = '127.0.0.2:5269'\ndatabase = 'x'\n[sync]\nwindow = 8\n",
        )
        .unwrap();
        assert_eq!(partial.sync.small_peer, crate::engine::SMALL_PEER);
        assert_eq!(partial.sync.window, 8);
        assert!(partial.sync.enabled);
        assert_eq!(c.peers["b.test"].port(), 5269);
        assert_eq!(c.sync.limits().max_items, 128);
        assert_eq!(c.stream.limits(), StreamLimits::DEFAULT);
    }

    #[test]
    fn plaintext_off_loopback_and_bad_values_are_refused() {
        let base = "domain = 'a.test'\ns2s = '10.0.0.1:5269'\ndatabase = 'x'\n";
        assert!(Config::parse(base).unwrap_err().0.contains("loopback"));
        let bad = "domain = 'A.test'\ns2s = '127.0.0.1:5269'\ndatabase = 'x'\n";
        assert!(Config::parse(bad).unwrap_err().0.contains("normalized"));
        let unknown = "domain = 'a.test'\ns2s = '127.0.0.1:5269'\ndatabase = 'x'\ncolour = 1\n";
        assert!(Config::parse(unknown).is_err());
    }
}
