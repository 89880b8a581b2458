//! A real Prosody 0.12 (Debian package `prosody`) as a child process with a config the test
//! writes: the unmodified legacy peer of the network tests.
//!
//! What the config sets, and why (Prosody 0.12.3 as Debian ships it):
//! - its own `pidfile`, `data_path`, `certificates` directory and debug `log` in the test's
//!   directory; `run_as_root = true` (CI runs as root, and Prosody refuses root otherwise);
//!   `daemonize = false` besides `-F`;
//! - every listener on the leased address only (`interfaces`, `c2s_interfaces`,
//!   `s2s_interfaces`), c2s on 5222 and s2s on 5269 (see [`super::addr`] for why the s2s port
//!   must be 5269), no direct-TLS or legacy SSL ports, `use_ipv6 = false`;
//! - plaintext on loopback: `c2s_require_encryption = false`, `s2s_require_encryption = false`
//!   (Prosody's default is true), `s2s_secure_auth = false` (dialback without certificates),
//!   `allow_unencrypted_plain_auth = true`, `allow_registration = true` (XEP-0077; `false`
//!   with [`ProsodyBuilder::registration`]);
//! - name resolution that never leaves the machine: Prosody resolves through libunbound,
//!   configured with `unbound = { resolvconf = false; hoststxt = FILE; forward =
//!   "127.0.0.1@9" }`: peer domains come from the test's hosts file, any other query goes to a
//!   port where nothing listens and fails at once. A peer domain is mapped to an address (its
//!   server's, or a [`super::Relay`]'s); Prosody finds no SRV record and connects to that
//!   address on port 5269. Prosody 0.12 has no option mapping a remote domain to an address
//!   and port without DNS (the community module `mod_s2sout_override` does it, but is not part
//!   of the Debian package);
//! - `modules_enabled = { "roster", "saslauth", "disco", "presence", "register", "dialback",
//!   "blocklist", "ping" }` (and those [`ProsodyBuilder::module`] adds) and one `VirtualHost`
//!   per served domain.
//!
//! [`ProsodyBuilder::global`] and [`ProsodyBuilder::virtual_host`] add lines; the hosts file is
//! rewritten by [`Prosody::set_hosts`] for a restart with other peer addresses.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::addr::{C2S_PORT, Lease, S2S_PORT};
use super::process::{Process, STOP_GRACE};
use super::wait::{wait_for_file, wait_for_port};
use super::{Result, TestDir};

/// The modules every test Prosody loads (besides those Prosody always loads, such as c2s and
/// s2s).
pub const MODULES: [&str; 8] = [
    "roster",
    "saslauth",
    "disco",
    "presence",
    "register",
    "dialback",
    "blocklist",
    "ping",
];

/// How long Prosody may take to listen on its ports after it is started (it takes well
/// under a second here).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `prosody` command, which `.ci/run` installs from Debian.
pub const PROSODY: &str = "prosody";

/// Its control command, from the same package.
pub const PROSODYCTL: &str = "prosodyctl";

/// How long a `prosodyctl` command may take (well under a second here).
pub const PROSODYCTL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a Prosody will be started with; see [`Prosody::builder`].
#[derive(Clone, Debug)]
pub struct ProsodyBuilder {
    domain: String,
    ip: Ipv4Addr,
    hosts: Vec<(String, Ipv4Addr)>,
    global: Vec<String>,
    virtual_hosts: Vec<(String, Vec<String>)>,
    log_level: String,
    modules: Vec<String>,
    registration: bool,
}

impl ProsodyBuilder {
    /// Maps `domain` to `ip` in the hosts file (a peer server, or a relay standing in for it).
    pub fn resolve(mut self, domain: &str, ip: Ipv4Addr) -> Self {
        self.hosts.push((domain.to_string(), ip));
        self
    }

    /// Adds a global config line (written before the first `VirtualHost`).
    pub fn global(mut self, line: &str) -> Self {
        self.global.push(line.to_string());
        self
    }

    /// Adds a second served domain, with its own config lines.
    pub fn virtual_host(mut self, domain: &str, lines: &[&str]) -> Self {
        self.virtual_hosts.push((
            domain.to_string(),
            lines.iter().map(|l| l.to_string()).collect(),
        ));
        self
    }

    /// Loads `module` besides [`MODULES`] (its name without `mod_`).
    pub fn module(mut self, module: &str) -> Self {
        self.modules.push(module.to_string());
        self
    }

    /// Allows XEP-0077 in-band registration (`allow_registration`; allowed by default).
    pub fn registration(mut self, allowed: bool) -> Self {
        self.registration = allowed;
        self
    }

    /// Sets the level of the log file (`debug` by default: it names every stanza received).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// Writes the config into `DIR/prosody-DOMAIN/`, starts Prosody and waits until its c2s
    /// and s2s ports accept connections and its pidfile names the child's PID.
    pub async fn start(self, dir: &TestDir) -> Result<Prosody> {
        let home = dir.sub(&format!("prosody-{}", self.domain))?;
        fs::create_dir_all(home.join("data"))?;
        fs::create_dir_all(home.join("certs"))?;
        let config = home.join("prosody.cfg.lua");
        fs::write(&config, self.config(&home))?;
        let mut prosody = Prosody {
            process: None,
            domain: self.domain.clone(),
            ip: self.ip,
            home,
            config,
        };
        prosody.set_hosts(&self.hosts)?;
        prosody.spawn().await?;
        Ok(prosody)
    }

    /// The Lua config file.
    fn config(&self, home: &Path) -> String {
        let path = |name: &str| lua_string(&home.join(name).to_string_lossy());
        let ip = lua_string(&self.ip.to_string());
        let modules: Vec<String> = MODULES
            .iter()
            .copied()
            .chain(self.modules.iter().map(String::as_str))
            .map(lua_string)
            .collect();
        let mut c = String::from("-- Written by the test (tests/net/prosody.rs).\n");
        c += &format!("pidfile = {}\n", path("prosody.pid"));
        c += &format!("data_path = {}\n", path("data"));
        c += &format!("certificates = {}\n", path("certs"));
        c += &format!("log = {{ {} = {} }}\n", self.log_level, path("prosody.log"));
        c += "run_as_root = true\ndaemonize = false\n";
        c += &format!("interfaces = {{ {ip} }}\n");
        c += &format!("c2s_interfaces = {{ {ip} }}\ns2s_interfaces = {{ {ip} }}\n");
        c += &format!("c2s_ports = {{ {C2S_PORT} }}\ns2s_ports = {{ {S2S_PORT} }}\n");
        c += "c2s_direct_tls_ports = { }\ns2s_direct_tls_ports = { }\nlegacy_ssl_ports = { }\n";
        c += "use_ipv6 = false\n";
        c += "c2s_require_encryption = false\ns2s_require_encryption = false\n";
        c += "s2s_secure_auth = false\nallow_unencrypted_plain_auth = true\n";
        c += &format!("allow_registration = {}\n", self.registration);
        c += &format!(
            "unbound = {{ resolvconf = false; hoststxt = {}; forward = \"127.0.0.1@9\" }}\n",
            path("hosts")
        );
        c += &format!("modules_enabled = {{ {} }}\n", modules.join(", "));
        for line in &self.global {
            c += line;
            c += "\n";
        }
        c += &format!("\nVirtualHost {}\n", lua_string(&self.domain));
        for (domain, lines) in &self.virtual_hosts {
            c += &format!("\nVirtualHost {}\n", lua_string(domain));
            for line in lines {
                c += line;
                c += "\n";
            }
        }
        c
    }
}

/// A running (or stopped) Prosody started by the test.
#[derive(Debug)]
pub struct Prosody {
    process: Option<Process>,
    domain: String,
    ip: Ipv4Addr,
    home: PathBuf,
    config: PathBuf,
}

impl Prosody {
    /// A Prosody serving `domain` on the leased address.
    pub fn builder(domain: &str, lease: &Lease) -> ProsodyBuilder {
        ProsodyBuilder {
            domain: domain.to_string(),
            ip: lease.ip(),
            hosts: Vec::new(),
            global: Vec::new(),
            virtual_hosts: Vec::new(),
            log_level: "debug".to_string(),
            modules: Vec::new(),
            registration: true,
        }
    }

    /// The served domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Its c2s endpoint.
    pub fn c2s(&self) -> SocketAddr {
        SocketAddr::from((self.ip, C2S_PORT))
    }

    /// Its s2s endpoint.
    pub fn s2s(&self) -> SocketAddr {
        SocketAddr::from((self.ip, S2S_PORT))
    }

    /// Its directory (config, data, log, pidfile, hosts file).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.home.join("prosody.log")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The running process, if any.
    pub fn process(&mut self) -> Option<&mut Process> {
        self.process.as_mut()
    }

    /// Rewrites the hosts file (read again when Prosody starts).
    pub fn set_hosts(&mut self, hosts: &[(String, Ipv4Addr)]) -> Result<()> {
        let mut text = String::new();
        for (domain, ip) in hosts {
            text += &format!("{ip} {domain}\n");
        }
        fs::write(self.home.join("hosts"), text)?;
        Ok(())
    }

    /// Makes the account `user@DOMAIN` with `prosodyctl register`, as an administrator would
    /// on the server's machine: it writes the account into the data directory, which Prosody
    /// reads at each login (it may run meanwhile). Bounded by [`PROSODYCTL_TIMEOUT`].
    pub fn prosodyctl_register(&self, user: &str, password: &str) -> Result<()> {
        let mut command = Command::new(PROSODYCTL);
        command
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, &self.domain, password])
            .current_dir(&self.home);
        let name = format!("prosodyctl-register-{user}");
        let mut process = Process::spawn(&name, command, &self.home)?;
        match process.wait_exit(PROSODYCTL_TIMEOUT) {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("{name}: {status}\n{}", process.tails()).into()),
            None => {
                let _ = process.kill();
                Err(format!("{name}: not done within {PROSODYCTL_TIMEOUT:?}").into())
            }
        }
    }

    /// Graceful stop (SIGTERM to the PID, SIGKILL after [`STOP_GRACE`]); returns the exit
    /// status and whether SIGKILL was needed.
    pub fn stop(&mut self) -> Result<(ExitStatus, bool)> {
        let mut process = self.process.take().ok_or("Prosody is not running")?;
        process.terminate(STOP_GRACE)
    }

    /// Crash: SIGKILL to the PID.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let mut process = self.process.take().ok_or("Prosody is not running")?;
        process.kill()
    }

    /// Starts it again with the same config and data (after [`Self::stop`] or
    /// [`Self::kill`]).
    pub async fn restart(&mut self) -> Result<()> {
        if self.process.is_some() {
            self.stop()?;
        }
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<()> {
        let pidfile = self.home.join("prosody.pid");
        let _ = fs::remove_file(&pidfile);
        let mut command = Command::new(PROSODY);
        command
            .arg("--config")
            .arg(&self.config)
            .arg("-F")
            .current_dir(&self.home);
        let name = format!("prosody-{}", self.domain);
        let mut process = Process::spawn(&name, command, &self.home)
            .map_err(|e| format!("{e} (is Debian's prosody installed? .ci/run installs it)"))?;
        process.add_log(self.log_path());
        let pid = process.pid();
        // The guard owns the child from here: an error below stops it by PID.
        self.process = Some(process);
        wait_for_port(self.c2s(), START_TIMEOUT).await?;
        wait_for_port(self.s2s(), START_TIMEOUT).await?;
        let written = wait_for_file(&pidfile, START_TIMEOUT).await?;
        if written.trim() != pid.to_string() {
            return Err(format!(
                "{name}: pidfile names {} but the child is {pid}",
                written.trim()
            )
            .into());
        }
        Ok(())
    }
}

/// A Lua string literal.
fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
