//! Any server binary started with a TOML config written into the test's directory: how the
//! tests will start `presence-sync serve` (`Serve::start(env!("CARGO_BIN_EXE_presence-sync"),
//! ...)`). Nothing here knows the config's keys; the test writes them.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use super::process::{Process, STOP_GRACE};
use super::wait::wait_for_port;
use super::{Result, TestDir};

/// A server process started from `BIN serve --config DIR/NAME/config.toml`.
#[derive(Debug)]
pub struct Serve {
    process: Option<Process>,
    name: String,
    bin: PathBuf,
    home: PathBuf,
    ports: Vec<SocketAddr>,
}

impl Serve {
    /// Writes `toml` to `DIR/NAME/config.toml`, runs `bin serve --config` on it (working
    /// directory `DIR/NAME`) and waits at most `timeout` for each of `ports` to accept a
    /// connection.
    pub async fn start(
        bin: &Path,
        name: &str,
        dir: &TestDir,
        toml: &str,
        ports: &[SocketAddr],
        timeout: Duration,
    ) -> Result<Serve> {
        let home = dir.sub(name)?;
        fs::write(home.join("config.toml"), toml)?;
        let mut serve = Serve {
            process: None,
            name: name.to_string(),
            bin: bin.to_path_buf(),
            home,
            ports: ports.to_vec(),
        };
        serve.spawn(timeout).await?;
        Ok(serve)
    }

    /// Its directory (config and whatever the server writes there).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The running process, if any.
    pub fn process(&mut self) -> Option<&mut Process> {
        self.process.as_mut()
    }

    /// Graceful stop: SIGTERM to the PID, SIGKILL after [`STOP_GRACE`]; returns the exit
    /// status and whether SIGKILL was needed.
    pub fn stop(&mut self) -> Result<(ExitStatus, bool)> {
        let mut process = self.process.take().ok_or("not running")?;
        process.terminate(STOP_GRACE)
    }

    /// Crash: SIGKILL to the PID.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let mut process = self.process.take().ok_or("not running")?;
        process.kill()
    }

    /// Starts it again with the same config (stopping it first if it runs).
    pub async fn restart(&mut self, timeout: Duration) -> Result<()> {
        if self.process.is_some() {
            self.stop()?;
        }
        self.spawn(timeout).await
    }

    async fn spawn(&mut self, timeout: Duration) -> Result<()> {
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(self.home.join("config.toml"))
            .current_dir(&self.home);
        self.process = Some(Process::spawn(&self.name, command, &self.home)?);
        for &port in &self.ports {
            wait_for_port(port, timeout).await?;
        }
        Ok(())
    }
}
