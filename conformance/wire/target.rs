//! The target file (`conformance --target FILE`, TOML): the server under test, the peer
//! domain the suite plays, how test accounts are provisioned and how the server is restarted.
//!
//! ```toml
//! name = "my-server 1.2"             # shown in the reports (default: the domain)
//! domain = "a.test"                  # the domain under test
//! c2s = "127.0.0.2:5222"             # where its clients connect (plaintext on loopback)
//! s2s = "127.0.0.2:5269"             # where its peers connect
//! small-peer = 40                    # its small-peer threshold (XEP PS-93; default 40)
//! grace = 300                        # its grace period in seconds (XEP PS-56; default 300);
//!                                    # the long-outage scenario runs if it is at most 60
//!
//! [peer]                             # the domain the suite plays
//! domain = "b.test"
//! listen = "127.0.0.3:5269"          # the suite's s2s listener; the server under test must
//!                                    # reach b.test there (static route, hosts file)
//!
//! [accounts]                         # how test accounts are made on the server under test
//! method = "register"                # XEP-0077 in-band registration
//! # method = "command"; command = "prosodyctl register {user} {domain} {password}"
//! # method = "list"; users = [["alice", "secret"], ["bob", "secret"]]
//! # method = "admin"; jid = "admin@a.test"; password = "secret"
//! #                                  # XEP-0133 "Add User" (XEP-0050 ad-hoc command) run by
//! #                                  # that admin account, which must exist already
//! prefix = "ps"                      # localparts ps-1, ps-2, ... (register, command, admin)
//!
//! [control]                          # how the suite restarts the server (all optional)
//! start = "my-server --config my.cfg"  # a shell command; may stay in the foreground
//! pid-file = "/run/my-server.pid"    # SIGTERM to it is a graceful stop, SIGKILL a crash
//! stop = "my-serverctl stop"         # a graceful stop instead of SIGTERM
//! ready-timeout = 30                 # seconds the server may take to listen again
//! ```
//!
//! Relative paths and commands run in the directory of the target file. The placeholders of
//! `accounts.command` are `{user}` (the localpart), `{domain}`, `{jid}` and `{password}`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A parsed target file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The name shown in the reports.
    #[serde(default)]
    pub name: Option<String>,
    /// The domain under test.
    pub domain: String,
    /// Its c2s listener.
    pub c2s: SocketAddr,
    /// Its s2s listener.
    pub s2s: SocketAddr,
    /// Its small-peer threshold (XEP PS-93): the shared edges up to which it keeps RFC 6121
    /// with a peer and sends no hello. The suite makes the world it shares with the server
    /// larger than that ([`super::Options::users_for`]). Default: the XEP's, 40.
    #[serde(default, rename = "small-peer")]
    pub small_peer: Option<u64>,
    /// Its grace period in seconds (XEP PS-56): how long it keeps a down peer's cache. The
    /// `long-outage` scenario waits it out, so it runs only when this is at most
    /// [`LONGEST_GRACE`]. Default: the XEP's, 300.
    #[serde(default)]
    pub grace: Option<u64>,
    /// The peer domain the suite plays.
    pub peer: Peer,
    /// Provisioning of test accounts.
    pub accounts: Accounts,
    /// Restarts.
    #[serde(default)]
    pub control: Control,
    /// The directory relative paths and commands are taken from (the target file's).
    #[serde(skip)]
    pub base: PathBuf,
}

/// The XEP's default grace period, seconds (PS-56).
pub const DEFAULT_GRACE: u64 = 300;

/// The longest grace period (seconds) the `long-outage` scenario waits out.
pub const LONGEST_GRACE: u64 = 60;

/// `[peer]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its domain.
    pub domain: String,
    /// Where the suite accepts the s2s connections of the server under test.
    pub listen: SocketAddr,
}

/// `[accounts]`: how the suite gets test accounts on the server under test.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Accounts {
    /// XEP-0077 in-band registration, before login.
    Register {
        /// The localparts' prefix.
        #[serde(default = "default_prefix")]
        prefix: String,
    },
    /// A shell command per account, with `{user}`, `{domain}`, `{jid}`, `{password}`.
    Command {
        /// The template.
        command: String,
        /// The localparts' prefix.
        #[serde(default = "default_prefix")]
        prefix: String,
    },
    /// XEP-0133 "Add User", executed as XEP-0050 ad-hoc commands by an admin account that
    /// exists already ([`super::admin`]).
    Admin {
        /// The admin's bare JID.
        jid: String,
        /// The admin's password.
        password: String,
        /// The localparts' prefix.
        #[serde(default = "default_prefix")]
        prefix: String,
    },
    /// Accounts that exist already: (localpart, password) pairs.
    List {
        /// The accounts.
        users: Vec<(String, String)>,
    },
}

fn default_prefix() -> String {
    "ps".to_owned()
}

/// `[control]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Control {
    /// A shell command that starts the server.
    #[serde(default)]
    pub start: Option<String>,
    /// The file holding the server's PID.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
    /// A shell command for a graceful stop (instead of SIGTERM to the PID file).
    #[serde(default)]
    pub stop: Option<String>,
    /// Seconds the server may take to listen after a start.
    #[serde(default)]
    pub ready_timeout: Option<u64>,
}

impl Control {
    /// Why the suite cannot crash and restart the server, if it cannot.
    pub fn cannot_crash(&self) -> Option<&'static str> {
        match (&self.start, &self.pid_file) {
            (None, _) => Some("the target gives no start command ([control] start)"),
            (_, None) => {
                Some("the target gives no PID file to send SIGKILL to ([control] pid-file)")
            }
            _ => None,
        }
    }

    /// Why the suite cannot stop the server gracefully and restart it, if it cannot.
    pub fn cannot_stop(&self) -> Option<&'static str> {
        match (&self.start, &self.pid_file, &self.stop) {
            (None, _, _) => Some("the target gives no start command ([control] start)"),
            (_, None, None) => {
                Some("the target gives no stop command and no PID file ([control] stop, pid-file)")
            }
            _ => None,
        }
    }

    /// How long a start may take.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout.unwrap_or(30))
    }
}

impl Target {
    /// Reads and checks a target file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid TOML, or names impossible things.
    pub fn load(path: &Path) -> Result<Target, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("target {}: {e}", path.display()))?;
        let mut target =
            Target::parse(&text).map_err(|e| format!("target {}: {e}", path.display()))?;
        target.base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(target)
    }

    /// Parses and checks the TOML of a target.
    ///
    /// # Errors
    /// What is wrong, in a sentence.
    pub fn parse(text: &str) -> Result<Target, String> {
        let target: Target = toml::from_str(text).map_err(|e| e.to_string())?;
        for (what, d) in [
            ("domain", &target.domain),
            ("peer.domain", &target.peer.domain),
        ] {
            if jid::BareJid::new(d)
                .map(|j| j.node().is_some())
                .unwrap_or(true)
            {
                return Err(format!("{what} {d:?} is not a domain"));
            }
        }
        if target.domain == target.peer.domain {
            return Err("the peer domain must differ from the domain under test".into());
        }
        match &target.accounts {
            Accounts::List { users } if users.len() < 2 => {
                return Err("accounts.users: the suite needs at least 2 accounts".into());
            }
            Accounts::Command { command, .. } if !command.contains("{user}") => {
                return Err("accounts.command must contain {user}".into());
            }
            Accounts::Admin { jid, .. }
                if !jid::BareJid::new(jid).is_ok_and(|j| j.node().is_some()) =>
            {
                return Err(format!(
                    "accounts.jid {jid:?} is not the bare JID of an account"
                ));
            }
            _ => {}
        }
        Ok(target)
    }

    /// Its grace period in seconds (the XEP's default if the file gives none).
    pub fn grace(&self) -> u64 {
        self.grace.unwrap_or(DEFAULT_GRACE)
    }

    /// Its small-peer threshold (the XEP's default if the file gives none).
    pub fn small_peer(&self) -> u64 {
        self.small_peer.unwrap_or(crate::engine::SMALL_PEER)
    }

    /// The name shown in the reports.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.domain.clone())
    }

    /// `path` taken relative to the target file's directory.
    pub fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "domain = 'a.test'\nc2s = '127.0.0.2:5222'\ns2s = '127.0.0.2:5269'\n\
        [peer]\ndomain = 'b.test'\nlisten = '127.0.0.3:5269'\n[accounts]\nmethod = 'register'\n";

    #[test]
    fn a_minimal_target_parses_and_cannot_restart() {
        let t = Target::parse(MINIMAL).expect("parses");
        assert_eq!(t.name(), "a.test");
        assert!(matches!(&t.accounts, Accounts::Register { prefix } if prefix == "ps"));
        assert!(t.control.cannot_crash().is_some());
        assert!(t.control.cannot_stop().is_some());
    }

    #[test]
    fn the_world_is_made_larger_than_the_small_peer_threshold() {
        use super::super::{MAX_USERS, Options};
        let users = |extra: &str, given: Option<usize>| {
            let t = Target::parse(&MINIMAL.replacen("[peer]", &format!("{extra}\n[peer]"), 1))
                .expect("parses");
            Options {
                users: given,
                ..Options::default()
            }
            .users_for(&t)
        };
        // The XEP's default threshold, 40: 11 users share 44 edges.
        assert_eq!(users("", None), 11);
        assert_eq!(users("small-peer = 0", None), 6);
        assert_eq!(users("small-peer = 100", None), 26);
        assert_eq!(users("small-peer = 100000", None), MAX_USERS);
        // --users wins.
        assert_eq!(users("", Some(4)), 4);
    }

    #[test]
    fn mistakes_are_named() {
        let same = MINIMAL.replace("'b.test'", "'a.test'");
        assert!(Target::parse(&same).unwrap_err().contains("differ"));
        let user = MINIMAL.replace("domain = 'a.test'", "domain = 'me@a.test'");
        assert!(Target::parse(&user).unwrap_err().contains("not a domain"));
        let unknown = format!("{MINIMAL}colour = 'red'\n");
        assert!(Target::parse(&unknown).unwrap_err().contains("colour"));
        let command = MINIMAL.replace("'register'", "'command'\ncommand = 'true'");
        assert!(Target::parse(&command).unwrap_err().contains("{user}"));
        let list = MINIMAL.replace("'register'", "'list'\nusers = [['a', 'b']]");
        assert!(Target::parse(&list).unwrap_err().contains("at least 2"));
        let admin = MINIMAL.replace("'register'", "'admin'\njid = 'a.test'\npassword = 'p'");
        assert!(Target::parse(&admin).unwrap_err().contains("accounts.jid"));
        let admin = MINIMAL.replace("'register'", "'admin'\njid = 'admin@a.test'");
        assert!(Target::parse(&admin).unwrap_err().contains("password"));
    }

    #[test]
    fn an_admin_account_makes_the_accounts() {
        let admin = MINIMAL.replace(
            "'register'",
            "'admin'\njid = 'admin@a.test'\npassword = 'secret'",
        );
        let t = Target::parse(&admin).expect("parses");
        assert!(matches!(&t.accounts,
            Accounts::Admin { jid, password, prefix }
                if jid == "admin@a.test" && password == "secret" && prefix == "ps"));
    }

    #[test]
    fn a_pid_file_and_a_start_command_allow_both_restarts() {
        let t = Target::parse(&format!(
            "{MINIMAL}[control]\nstart = 'serve'\npid-file = 'x.pid'\n"
        ))
        .expect("parses");
        assert_eq!(t.control.cannot_crash(), None);
        assert_eq!(t.control.cannot_stop(), None);
    }
}
