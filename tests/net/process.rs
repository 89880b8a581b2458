//! Child processes a test starts, and the directory their files live in.
//!
//! A [`Process`] is stopped by its PID and only by its PID: the guard holds the
//! [`std::process::Child`] and does not reap it before it has stopped it, so the PID cannot be
//! reused by another process while the guard may still signal it. Nothing here looks a process
//! up by name.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::Result;

/// How long a process gets to exit after SIGTERM before it is sent SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How much of the end of each captured file is printed when a test fails.
pub const TAIL_BYTES: u64 = 4096;

/// A temporary directory for one test's configs, data and logs. Removed when the test passes;
/// kept, with its path and the tail of every captured file in it printed, when the test
/// fails: when [`TestDir::finish`] is given an error, or when it is dropped during a panic.
///
/// A test returning a `Result` therefore runs its scenario in a function of its own and
/// hands the outcome to `finish`, so that the servers (stopped when the scenario returns)
/// have left their logs behind:
///
/// ```ignore
/// async fn my_test() -> Result<()> {
///     let dir = TestDir::new("my-test")?;
///     let outcome = scenario(&dir).await;
///     dir.finish(outcome)
/// }
/// ```
#[derive(Debug)]
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestDir {
    /// A new directory under the system's temporary directory, named after `test`.
    pub fn new(test: &str) -> Result<TestDir> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("presence-sync-{test}-"))
            .tempdir()?;
        let path = dir.path().to_path_buf();
        Ok(TestDir {
            dir: Some(dir),
            path,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, created if needed.
    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let sub = self.path.join(name);
        fs::create_dir_all(&sub)?;
        Ok(sub)
    }

    /// Ends the test with `outcome`: on an error, prints the tails of the captured files and
    /// keeps the directory.
    pub fn finish<T>(mut self, outcome: Result<T>) -> Result<T> {
        if outcome.is_err() {
            self.keep_and_report();
        }
        outcome
    }

    fn keep_and_report(&mut self) {
        if let Some(dir) = self.dir.take() {
            let kept = dir.keep();
            let mut files = Vec::new();
            collect_logs(&kept, &mut files);
            files.sort();
            for file in files {
                eprintln!("---- {} ----\n{}", file.display(), tail(&file, TAIL_BYTES));
            }
            eprintln!("test files kept in {}", kept.display());
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if thread::panicking() {
            self.keep_and_report();
        }
    }
}

/// The files under `dir` whose tail tells why a test failed: captured output and logs.
fn collect_logs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_logs(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "log" || e == "stdout" || e == "stderr")
        {
            out.push(path);
        }
    }
}

/// A child process owned by a test: spawned with its stdout and stderr captured in files
/// (`NAME.stdout`, `NAME.stderr`, printed by [`TestDir`] when the test fails), stopped by PID
/// when dropped (SIGTERM, then SIGKILL after [`STOP_GRACE`]).
///
/// The child is also asked to receive SIGTERM if the thread that spawned it dies
/// (`PR_SET_PDEATHSIG`), so that a test binary that is killed leaves no server behind. Spawn
/// a `Process` from the test's own thread or runtime and keep it owned by the test.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    logs: Vec<PathBuf>,
}

impl Process {
    /// Spawns `command` with its stdout and stderr written to `NAME.stdout` and `NAME.stderr`
    /// in `dir`.
    pub fn spawn(name: &str, mut command: Command, dir: &Path) -> Result<Process> {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout)?)
            .stderr(File::create(&stderr)?);
        // SAFETY: the closure runs in the child between fork and exec and calls only prctl(2),
        // which is async-signal-safe; it allocates nothing and touches no lock.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({command:?}): {e}"))?;
        Ok(Process {
            name: name.to_string(),
            child,
            status: None,
            logs: vec![stdout, stderr],
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Adds a file (such as the server's own log) to those whose tail is printed when the
    /// test fails.
    pub fn add_log(&mut self, path: PathBuf) {
        self.logs.push(path);
    }

    /// Whether the child is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// The exit status, if the child has exited.
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }

    /// Sends `signal` (such as `libc::SIGSTOP`) to the child's PID, if it has not been reaped.
    pub fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        if self.poll_exit().is_some() {
            return Err(format!("{} has already exited", self.name).into());
        }
        let pid = libc::pid_t::try_from(self.pid())?;
        // SAFETY: kill(2) with the PID of our own child, which has not been reaped (checked
        // just above), so the PID still names it.
        if unsafe { libc::kill(pid, signal) } == -1 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Waits at most `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Graceful stop: SIGTERM, then SIGKILL if the child has not exited within `grace`.
    /// Returns the exit status and whether SIGKILL was needed.
    pub fn terminate(&mut self, grace: Duration) -> Result<(ExitStatus, bool)> {
        if let Some(status) = self.poll_exit() {
            return Ok((status, false));
        }
        self.signal(libc::SIGTERM)?;
        if let Some(status) = self.wait_exit(grace) {
            return Ok((status, false));
        }
        Ok((self.kill()?, true))
    }

    /// Crash: SIGKILL at once, then reap.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.poll_exit() {
            return Ok(status);
        }
        self.signal(libc::SIGKILL)?;
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// The last [`TAIL_BYTES`] of each captured file, with a heading per file.
    pub fn tails(&self) -> String {
        let mut out = String::new();
        for path in &self.logs {
            out.push_str(&format!(
                "---- {} (pid {}): {} ----\n{}\n",
                self.name,
                self.pid(),
                path.display(),
                tail(path, TAIL_BYTES)
            ));
        }
        out
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Its files stay in the test's directory; `TestDir` prints their tails on failure.
        if let Err(e) = self.terminate(STOP_GRACE) {
            eprintln!("stopping {} (pid {}): {e}", self.name, self.pid());
        }
    }
}

/// The last `bytes` bytes of the file at `path` (lossy UTF-8), or why it cannot be read.
pub fn tail(path: &Path, bytes: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(bytes)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    read().unwrap_or_else(|e| format!("(cannot read: {e})"))
}
