//! The network test infrastructure (`tests/net/`) checked on its own, without any XMPP
//! server: leases are exclusive, processes stop by PID (SIGKILL when SIGTERM is ignored),
//! waits give up on time, the relay forwards and counts exactly and its cut ends both sides.

mod net;

use std::process::Command;
use std::time::{Duration, Instant};

use net::{Direction, Process, Relay, Result, TestDir, lease, wait_for_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Held by every test of this file that leases an address. The other tests of this binary
/// run on parallel threads, and one of them taking the address `leases_are_exclusive_until_dropped`
/// just released would make its last check fail (CI saw this once); test binaries run one
/// after another, so no other process leases meanwhile.
static LEASING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn leasing() -> std::sync::MutexGuard<'static, ()> {
    LEASING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn leases_are_exclusive_until_dropped() -> Result<()> {
    let _alone = leasing();
    let first = lease()?;
    let second = lease()?;
    assert_ne!(first.ip(), second.ip());
    assert!(first.ip().is_loopback() && second.ip().is_loopback());
    // While held, the address cannot be leased again (the UDP bind is the lease).
    assert!(std::net::UdpSocket::bind((first.ip(), net::addr::LEASE_PORT)).is_err());
    let ip = first.ip();
    drop(first);
    // Released at once; bounded retries only so that a lease another test binary takes for
    // a moment (the final full run once saw one) does not fail the check.
    let deadline = Instant::now() + Duration::from_secs(2);
    let rebound = loop {
        match std::net::UdpSocket::bind((ip, net::addr::LEASE_PORT)) {
            Ok(_) => break true,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break false,
        }
    };
    assert!(
        rebound,
        "{ip} could not be leased again after its lease was dropped"
    );
    Ok(())
}

#[test]
fn a_process_stops_by_sigterm_or_else_by_sigkill() -> Result<()> {
    let dir = TestDir::new("harness-process")?;
    let mut polite = Command::new("sleep");
    polite.arg("60");
    let mut polite = Process::spawn("polite", polite, dir.path())?;
    assert!(polite.is_running());
    let (status, killed) = polite.terminate(Duration::from_secs(5))?;
    assert!(!killed, "sleep exits on SIGTERM");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGTERM)
    );

    let mut stubborn = Command::new("sh");
    stubborn.args([
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut stubborn = Process::spawn("stubborn", stubborn, dir.path())?;
    let started = Instant::now();
    // Wait for the trap to be set before signalling.
    while std::fs::read_to_string(dir.path().join("stubborn.stdout"))?.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sh did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, killed) = stubborn.terminate(Duration::from_millis(300))?;
    assert!(killed, "SIGTERM is ignored, so SIGKILL was needed");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(stubborn.tails().contains("ready"));
    dir.finish(Ok(()))
}

#[tokio::test]
async fn waits_are_bounded() -> Result<()> {
    let nobody = {
        let _alone = leasing();
        lease()?
    };
    let started = Instant::now();
    let err = wait_for_port(nobody.c2s(), Duration::from_millis(200))
        .await
        .expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    assert!(err.to_string().contains("did not accept"), "{err}");
    Ok(())
}

/// An echo server on its own leased address, answering each read with the same bytes.
async fn echo(listener: TcpListener) {
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = socket.read(&mut buf).await {
                if socket.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// A relay with `gate` in front of a fresh echo server; the server's task.
async fn echoed(gate: net::relay::Gate) -> Result<(Relay, tokio::task::JoinHandle<()>)> {
    let (server_addr, relay_addr) = {
        let _alone = leasing();
        (lease()?, lease()?)
    };
    let listener = TcpListener::bind(server_addr.s2s()).await?;
    let server = tokio::spawn(echo(listener));
    let relay = Relay::with_gate(relay_addr.s2s(), server_addr.s2s(), gate).await?;
    Ok((relay, server))
}

#[tokio::test]
async fn the_relay_forwards_counts_and_cuts() -> Result<()> {
    let (relay, server) = echoed(net::relay::Gate::default()).await?;

    let mut conn = TcpStream::connect(relay.listen()).await?;
    let sent = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
                xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
                to='b.test' from='a.test' version='1.0'><db:result to='b.test' from='a.test'>k\
                </db:result><presence from='a@a.test/r' to='b@b.test'/>";
    conn.write_all(sent.as_bytes()).await?;
    let mut echoed = vec![0u8; sent.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echoed)).await??;
    assert_eq!(echoed, sent.as_bytes());

    let stats = relay.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.bytes(Direction::Forward), sent.len() as u64);
    assert_eq!(stats.bytes(Direction::Backward), sent.len() as u64);
    for dir in [Direction::Forward, Direction::Backward] {
        assert_eq!(stats.headers(dir), 1);
        assert_eq!(stats.count(dir, "db:result"), 1);
        assert_eq!(stats.count(dir, "presence"), 1);
        assert_eq!(stats.stanzas(dir), 1);
    }
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);

    // The cut ends the connection towards the client (end of stream); the client closes
    // its side in turn, as a server does, and the cut completes.
    let client = tokio::spawn(async move {
        let mut rest = Vec::new();
        let read = conn.read_to_end(&mut rest).await.map(|_| rest);
        drop(conn);
        read
    });
    let started = Instant::now();
    relay.cut().await;
    assert!(
        started.elapsed() < net::relay::CUT_DRAIN,
        "both sides closed before the bound"
    );
    let rest = tokio::time::timeout(Duration::from_secs(5), client).await???;
    assert!(rest.is_empty(), "nothing after the cut: {rest:?}");
    let stats = relay.stats();
    assert_eq!(stats.cut, 1);
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    // ...and nothing written afterwards crosses; a new connection is relayed again.
    let mut again = TcpStream::connect(relay.listen()).await?;
    again.write_all(b"<x/>").await?;
    relay
        .wait_for_connections(2, Duration::from_secs(5))
        .await?;
    // While refusing, a new connection is closed at once and not counted.
    relay.set_refusing(true);
    let mut refused = TcpStream::connect(relay.listen()).await?;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buf)).await?;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(relay.stats().connections, 2);
    server.abort();
    Ok(())
}

/// A shared gate holds what follows the element it trips on, on every relay that has it, and
/// lets it through in order when opened.
#[tokio::test]
async fn the_gate_holds_everything_after_its_trip_until_opened() -> Result<()> {
    let gate = net::relay::Gate::default();
    let (relay, server) = echoed(gate.clone()).await?;
    gate.close_after(|el| el.name() == "iq");
    let mut conn = TcpStream::connect(relay.listen()).await?;
    let head = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
                xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='a.test' \
                version='1.0'><presence from='a@a.test/r' to='b.test'/><iq type='get' id='q'/>";
    conn.write_all(head.as_bytes()).await?;
    // The trip element crosses, and its echo would come back through the relay: held.
    gate.wait_tripped(Duration::from_secs(5))
        .await
        .ok_or("the gate did not trip")?;
    let later = "<message to='b@b.test'/>";
    conn.write_all(later.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!gate.is_open());
    // Neither the message behind the trip nor the echo of the trip element has crossed.
    let stats = relay.stats();
    assert_eq!(stats.count(Direction::Forward, "message"), 0);
    assert_eq!(stats.count(Direction::Backward, "iq"), 0);
    gate.open();
    let mut buf = vec![0u8; head.len() + later.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf)).await??;
    assert_eq!(buf, [head, later].concat().as_bytes());
    assert_eq!(relay.stats().count(Direction::Forward, "message"), 1);
    server.abort();
    Ok(())
}

/// A relay's lane holds one direction after its trip; the other direction goes on.
#[tokio::test]
async fn a_lane_holds_one_direction_only() -> Result<()> {
    let (relay, server) = echoed(net::relay::Gate::default()).await?;
    let lane = relay.lane(Direction::Backward).clone();
    lane.close_after(|el| el.name() == "iq");
    let mut conn = TcpStream::connect(relay.listen()).await?;
    let head = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
                xmlns:stream='http://etherx.jabber.org/streams' to='b.test' from='a.test' \
                version='1.0'><iq type='get' id='q'/>";
    conn.write_all(head.as_bytes()).await?;
    // The echo of the iq trips the backward lane as it crosses; what follows is held there.
    lane.wait_tripped(Duration::from_secs(5))
        .await
        .ok_or("the lane did not trip")?;
    let mut buf = vec![0u8; head.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf)).await??;
    let later = "<message to='b@b.test'/>";
    conn.write_all(later.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Forward: the message crossed; backward: its echo is held.
    let stats = relay.stats();
    assert_eq!(stats.count(Direction::Forward, "message"), 1);
    assert_eq!(stats.count(Direction::Backward, "message"), 0);
    lane.open();
    let mut buf = vec![0u8; later.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf)).await??;
    assert_eq!(buf, later.as_bytes());
    assert_eq!(relay.stats().count(Direction::Backward, "message"), 1);
    server.abort();
    Ok(())
}

#[tokio::test]
async fn serve_starts_a_binary_with_its_toml_and_stops_it() -> Result<()> {
    let dir = TestDir::new("harness-serve")?;
    let outcome = serve_fake(&dir).await;
    dir.finish(outcome)
}

/// A stand-in for `presence-sync serve`: a script that insists on `serve --config FILE` and
/// listens where the TOML's `listen` says.
async fn serve_fake(dir: &TestDir) -> Result<()> {
    let addr = {
        let _alone = leasing();
        lease()?
    };
    let bin = dir.path().join("fake-serve");
    std::fs::write(
        &bin,
        "#!/bin/sh\n[ \"$1\" = serve ] && [ \"$2\" = --config ] || exit 64\n\
         exec python3 -c 'import socket,sys,time,tomllib\n\
         c = tomllib.load(open(sys.argv[1], \"rb\"))\n\
         host, port = c[\"listen\"].rsplit(\":\", 1)\n\
         s = socket.socket(); s.bind((host, int(port))); s.listen()\n\
         time.sleep(60)' \"$3\"\n",
    )?;
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let toml = format!("listen = \"{}\"\n", addr.c2s());
    let mut serve = net::Serve::start(
        &bin,
        "fake",
        dir,
        &toml,
        &[addr.c2s()],
        Duration::from_secs(10),
    )
    .await?;
    assert_eq!(
        std::fs::read_to_string(serve.home().join("config.toml"))?,
        toml
    );
    let pid = serve.process().ok_or("running")?.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let (status, killed) = serve.stop()?;
    assert!(!killed && !status.success(), "stopped by SIGTERM: {status}");
    assert!(
        TcpStream::connect(addr.c2s()).await.is_err(),
        "nothing listens any more"
    );
    Ok(())
}
