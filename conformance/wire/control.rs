//! What the suite does to the server under test as an administrator would: make test accounts
//! and restart it, by the means its target file gives ([`super::target`]).
//!
//! A stop or a crash is over when the server's s2s port refuses connections (a dead process
//! holds no socket); a start when its c2s and s2s ports accept them again. A start command the
//! suite runs may stay in the foreground: it is spawned, its output goes to a log in the work
//! directory, and it is left running when the suite ends (the caller that started the server
//! stops it, through the PID file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_xmpp::jid::BareJid;

use super::Result;
use super::admin;
use super::client::Client;
use super::target::{Accounts, Target};
use super::wait::wait_for_port;

/// The server under test, as the suite controls it.
pub struct Subject {
    target: Target,
    work: PathBuf,
    starts: usize,
    children: Vec<tokio::process::Child>,
}

/// A test account: its JID and password.
#[derive(Clone, Debug)]
pub struct Account {
    /// The bare JID.
    pub jid: BareJid,
    /// The password.
    pub password: String,
}

impl Subject {
    /// The server of `target`; logs of the commands the suite runs go into `work`.
    pub fn new(target: &Target, work: &Path) -> Subject {
        Subject {
            target: target.clone(),
            work: work.to_path_buf(),
            starts: 0,
            children: Vec::new(),
        }
    }

    /// Its c2s address.
    pub fn c2s(&self) -> SocketAddr {
        self.target.c2s
    }

    /// Waits until it accepts c2s and s2s connections.
    ///
    /// # Errors
    /// It did not within the target's ready timeout.
    pub async fn ready(&self) -> Result<()> {
        let timeout = self.target.control.ready_timeout();
        wait_for_port(self.target.c2s, timeout).await?;
        wait_for_port(self.target.s2s, timeout).await?;
        Ok(())
    }

    /// `count` accounts, made by the target's method (or taken from its list).
    ///
    /// # Errors
    /// Registration, the command or an XEP-0133 "Add User" failed, or the list is too short.
    pub async fn provision(&self, count: usize, tag: &str) -> Result<Vec<Account>> {
        let domain = &self.target.domain;
        let make = |prefix: &str, i: usize| -> Result<Account> {
            let jid = BareJid::new(&format!("{prefix}-{tag}-{i}@{domain}"))
                .map_err(|e| format!("account name: {e}"))?;
            Ok(Account {
                jid,
                password: format!("pw-{tag}-{i}"),
            })
        };
        match &self.target.accounts {
            Accounts::Register { prefix } => {
                let mut out = Vec::new();
                for i in 1..=count {
                    let a = make(prefix, i)?;
                    Client::register(self.target.c2s, &a.jid, &a.password)
                        .await
                        .map_err(|e| format!("XEP-0077 registration of {}: {e}", a.jid))?;
                    out.push(a);
                }
                Ok(out)
            }
            Accounts::Command { command, prefix } => {
                let mut out = Vec::new();
                for i in 1..=count {
                    let a = make(prefix, i)?;
                    let line = command
                        .replace("{user}", a.jid.node().map_or("", |n| n.as_str()))
                        .replace("{domain}", domain)
                        .replace("{jid}", a.jid.as_str())
                        .replace("{password}", &a.password);
                    self.run_to_end("account", &line).await?;
                    out.push(a);
                }
                Ok(out)
            }
            Accounts::Admin {
                jid,
                password,
                prefix,
            } => {
                let admin = BareJid::new(jid).map_err(|e| format!("accounts.jid {jid:?}: {e}"))?;
                let accounts = (1..=count)
                    .map(|i| make(prefix, i))
                    .collect::<Result<Vec<_>>>()?;
                admin::add_users(self.target.c2s, domain, &admin, password, &accounts).await?;
                Ok(accounts)
            }
            Accounts::List { users } => {
                if users.len() < count {
                    return Err(format!(
                        "accounts.users lists {} accounts; the run needs {count}",
                        users.len()
                    )
                    .into());
                }
                users
                    .iter()
                    .take(count)
                    .map(|(user, password)| {
                        let jid = BareJid::new(&format!("{user}@{domain}"))
                            .map_err(|e| format!("accounts.users {user:?}: {e}"))?;
                        Ok(Account {
                            jid,
                            password: password.clone(),
                        })
                    })
                    .collect()
            }
        }
    }

    /// Crashes it: SIGKILL to the PID in the PID file; returns once its s2s port refuses.
    ///
    /// # Errors
    /// The target gives no way ([`super::target::Control::cannot_crash`]), or it did not die.
    pub async fn crash(&mut self) -> Result<()> {
        if let Some(why) = self.target.control.cannot_crash() {
            return Err(why.into());
        }
        self.signal(libc::SIGKILL)?;
        self.gone(Duration::from_secs(10)).await
    }

    /// Stops it gracefully: the stop command, or SIGTERM to the PID file; returns once its
    /// s2s port refuses.
    ///
    /// # Errors
    /// The target gives no way, or it did not stop within the ready timeout.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(why) = self.target.control.cannot_stop() {
            return Err(why.into());
        }
        match self.target.control.stop.clone() {
            Some(stop) => self.run_to_end("stop", &stop).await?,
            None => self.signal(libc::SIGTERM)?,
        }
        self.gone(self.target.control.ready_timeout()).await
    }

    /// Starts it with the start command; returns once it accepts connections.
    ///
    /// # Errors
    /// No start command, or it did not become ready.
    pub async fn start(&mut self) -> Result<()> {
        let Some(start) = self.target.control.start.clone() else {
            return Err("the target gives no start command ([control] start)".into());
        };
        self.starts += 1;
        let log = self.work.join(format!("subject-start-{}.log", self.starts));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&start)
            .current_dir(&self.target.base)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start command {start:?}: {e}"))?;
        self.children.push(child);
        self.ready()
            .await
            .map_err(|e| format!("after the start command ({}): {e}", log.display()).into())
    }

    fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        let Some(file) = &self.target.control.pid_file else {
            return Err("no PID file".into());
        };
        let path = self.target.path(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("PID file {}: {e}", path.display()))?;
        let pid: libc::pid_t = text
            .trim()
            .parse()
            .map_err(|_| format!("PID file {}: not a PID: {text:?}", path.display()))?;
        if pid <= 1 {
            return Err(format!("PID file {}: refusing PID {pid}", path.display()).into());
        }
        // SAFETY: kill(2) with a positive PID read from the target's PID file and a signal
        // number; no memory is shared.
        let r = unsafe { libc::kill(pid, signal) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("signal {signal} to PID {pid}: {e}").into());
        }
        Ok(())
    }

    /// Waits until the s2s port refuses connections, reaping any start command that ended.
    async fn gone(&mut self, timeout: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        loop {
            self.children
                .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            let refused = match tokio::time::timeout(
                Duration::from_millis(500),
                TcpStream::connect(self.target.s2s),
            )
            .await
            {
                Ok(Ok(_)) => false,
                Ok(Err(_)) => true,
                Err(_) => false,
            };
            if refused {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{} still accepts s2s connections {timeout:?} after the stop",
                    self.target.s2s
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn run_to_end(&self, what: &str, command: &str) -> Result<()> {
        let output = tokio::time::timeout(
            self.target.control.ready_timeout(),
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&self.target.base)
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .map_err(|_| format!("{what} command {command:?} did not end"))?
        .map_err(|e| format!("{what} command {command:?}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{what} command {command:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )
            .into());
        }
        Ok(())
    }
}
