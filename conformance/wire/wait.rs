//! Bounded waits. Each gives up after its timeout with an error that says what it waited for;
//! none blocks the async runtime (they sleep with tokio between checks).

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::Result;

/// How often a polling wait checks again.
pub const POLL: Duration = Duration::from_millis(20);

/// Waits until a TCP connection to `addr` succeeds (the connection is closed at once).
/// Returns how long it took.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    let mut last_error = String::from("no attempt");
    while start.elapsed() < timeout {
        match tokio::time::timeout(POLL * 10, TcpStream::connect(addr)).await {
            Ok(Ok(_stream)) => return Ok(start.elapsed()),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "connect timed out".to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(
        format!("{addr} did not accept a connection within {timeout:?} (last: {last_error})")
            .into(),
    )
}

/// Waits until `check` returns true, checking every [`POLL`]; `what` names the condition in
/// the error. Returns how long it took.
pub async fn wait_until(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if check() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until the file at `path` exists and is not empty; returns its content.
pub async fn wait_for_file(path: &Path, timeout: Duration) -> Result<String> {
    let mut content = String::new();
    wait_until(format!("{} to be written", path.display()), timeout, || {
        content = std::fs::read_to_string(path).unwrap_or_default();
        !content.trim().is_empty()
    })
    .await?;
    Ok(content)
}

/// Runs `future` for at most `timeout`; `what` names it in the error.
pub async fn bounded<T>(
    what: impl Display,
    timeout: Duration,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, future).await {
        Ok(result) => result.map_err(|e| format!("{what}: {e}").into()),
        Err(_) => Err(format!("{what}: no answer within {timeout:?}").into()),
    }
}
