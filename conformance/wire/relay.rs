//! A TCP relay between two servers that the suite (or a test) controls: it forwards bytes
//! unchanged, counts them and the XML elements they carry in each direction, keeps each
//! element with the time it crossed and the connection it crossed on, and can cut the link.
//!
//! A server is pointed at the relay instead of its peer (for Prosody, by mapping the peer's
//! domain to the relay's address in its hosts file): the relay listens on its own leased
//! address, port 5269, and connects each accepted connection to the target. Since servers
//! open one TCP connection per direction (XEP-0220 dialback without XEP-0288), a relay sees
//! one domain's outgoing stream: [`Direction::Forward`] is what the connecting server sends,
//! [`Direction::Backward`] what the target answers. Two relays cover both directions.
//!
//! Elements are counted by reading each direction with the project's own sans-IO
//! [`crate::stream::StreamReader`] (one per connection and direction), so the counts
//! are of whole top-level elements as a server would see them: stream features, dialback
//! elements and stanzas, each under its own name ([`RelayStats::count`]).
//!
//! Relays can share a [`Gate`]: closed, it holds every byte that has not crossed yet, on
//! every connection of every relay that has it, until it opens again; it can close by itself
//! right after an element a scenario chose has crossed (the first query of a sync), so that
//! changes made while it is closed happen at the servers while that sync is in flight. Each
//! direction of a relay also has a gate of its own ([`Relay::lane`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::stream::{StreamEvent, StreamLimits, StreamReader};
use minidom::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Result;
use super::wait::wait_until;

/// The most elements kept in [`RelayStats::captured`]; past it only counts grow.
pub const CAPTURE_LIMIT: usize = 100_000;

/// How long [`Relay::cut`] waits for each server to close a cut connection.
pub const CUT_DRAIN: Duration = Duration::from_secs(5);

/// Limits for reading relayed streams: far above any server's, so that the relay counts
/// what the servers accept rather than refusing it.
const READ_LIMITS: StreamLimits = StreamLimits {
    max_stanza_bytes: 64 * 1024 * 1024,
    max_depth: 100_000,
    max_header_bytes: 64 * 1024,
};

/// A direction through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// From the server that connected to the relay, to the target.
    Forward,
    /// From the target back to the server that connected.
    Backward,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Forward => 0,
            Direction::Backward => 1,
        }
    }
}

/// What crossed the relay, over every connection it relayed.
#[derive(Clone, Debug, Default)]
pub struct RelayStats {
    /// Connections accepted and relayed (a refused one is not counted).
    pub connections: usize,
    /// Connections ended by [`Relay::cut`] (dropping the relay ends the others too).
    pub cut: usize,
    bytes: [u64; 2],
    lost: [u64; 2],
    headers: [usize; 2],
    elements: [BTreeMap<String, usize>; 2],
    stanza_bytes: [u64; 2],
    /// The elements in the order they crossed, up to [`CAPTURE_LIMIT`].
    pub captured: Vec<Captured>,
    /// Each relayed connection: its number (from 0, in the order accepted), when it was
    /// connected to the target, and when it ended (either side closed, or a cut).
    pub links: Vec<(u64, Instant, Option<Instant>)>,
    /// Streams that could not be read as XML (the bytes were still forwarded), and failed
    /// connections to the target.
    pub errors: Vec<String>,
}

/// One element that crossed the relay.
#[derive(Clone, Debug)]
pub struct Captured {
    /// When the relay read it.
    pub at: Instant,
    /// The connection it crossed on ([`RelayStats::links`]).
    pub connection: u64,
    /// Which way.
    pub dir: Direction,
    /// The element (a stanza, a stream-level or dialback element).
    pub element: Element,
}

impl RelayStats {
    /// Bytes that crossed in `dir`.
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.bytes[dir.index()]
    }

    /// Bytes a server wrote in `dir` after the link was cut, thrown away by the relay.
    pub fn lost(&self, dir: Direction) -> u64 {
        self.lost[dir.index()]
    }

    /// Stream headers that crossed in `dir` (one per stream, restarts included).
    pub fn headers(&self, dir: Direction) -> usize {
        self.headers[dir.index()]
    }

    /// Top-level elements named `name` that crossed in `dir`: stanzas by their name
    /// (`presence`, `message`, `iq`), dialback elements as `db:result` and `db:verify`, stream
    /// elements as `stream:features` and `stream:error`, anything else as `{ns}name`.
    pub fn count(&self, dir: Direction, name: &str) -> usize {
        self.elements[dir.index()].get(name).copied().unwrap_or(0)
    }

    /// Bytes of the stanzas (presence, message, iq) that crossed in `dir`, each serialised as
    /// a stream would carry it (without the `jabber:server` declaration it inherits, as the
    /// simulator counts, `crate::sim::wire_len`): the rest of [`Self::bytes`] is stream
    /// headers, features, dialback and whitespace.
    pub fn stanza_bytes(&self, dir: Direction) -> u64 {
        self.stanza_bytes[dir.index()]
    }

    /// Stanzas (presence, message, iq) that crossed in `dir`.
    pub fn stanzas(&self, dir: Direction) -> usize {
        ["presence", "message", "iq"]
            .iter()
            .map(|n| self.count(dir, n))
            .sum()
    }

    /// Every element name seen in `dir`, with its count.
    pub fn counts(&self, dir: Direction) -> &BTreeMap<String, usize> {
        &self.elements[dir.index()]
    }
}

/// What elements close a [`Gate`] once they have crossed.
type Trip = Box<dyn Fn(&Element) -> bool + Send + Sync>;

/// A gate that relays share ([module docs](self)); cloning it gives another handle on the
/// same gate.
#[derive(Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
    trip: Arc<Mutex<Option<Trip>>>,
    tripped: Arc<Mutex<Option<(Instant, Element)>>>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("open", &*self.open.borrow())
            .finish_non_exhaustive()
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            open: Arc::new(watch::Sender::new(true)),
            trip: Arc::new(Mutex::new(None)),
            tripped: Arc::new(Mutex::new(None)),
        }
    }
}

impl Gate {
    /// Arms the gate: it closes right after the first element for which `trip` is true has
    /// crossed one of its relays (that element still goes through). Replaces an earlier arming
    /// and forgets an earlier trip.
    pub fn close_after(&self, trip: impl Fn(&Element) -> bool + Send + Sync + 'static) {
        *self.tripped.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.trip.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(trip));
    }

    /// Opens the gate (and disarms it): what it held crosses, in order.
    pub fn open(&self) {
        *self.trip.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.open.send_replace(true);
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        *self.open.borrow()
    }

    /// When the gate tripped, and on which element, since it was last armed.
    pub fn tripped(&self) -> Option<(Instant, Element)> {
        self.tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until the gate has tripped, at most `within`; the element it tripped on.
    pub async fn wait_tripped(&self, within: Duration) -> Option<Element> {
        let started = Instant::now();
        loop {
            if let Some((_, el)) = self.tripped() {
                return Some(el);
            }
            if started.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes the gate if one of `events` trips it.
    fn check(&self, events: &[StreamEvent]) {
        let mut trip = self.trip.lock().unwrap_or_else(|e| e.into_inner());
        let Some(f) = trip.as_ref() else { return };
        let hit = events.iter().find_map(|e| match e {
            StreamEvent::Stanza(el) if f(el) => Some(el.clone()),
            _ => None,
        });
        if let Some(el) = hit {
            *trip = None;
            self.open.send_replace(false);
            *self.tripped.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), el));
        }
    }

    /// Returns once the gate is open.
    async fn wait_open(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// A running relay; stops (and closes every relayed connection) when dropped.
#[derive(Debug)]
pub struct Relay {
    listen: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    stats: Mutex<RelayStats>,
    /// The tasks of the connections relayed since the last cut.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    cut: watch::Sender<u64>,
    refusing: AtomicBool,
    gate: Gate,
    /// A gate of this relay alone per direction ([`Relay::lane`]).
    lanes: [Gate; 2],
}

impl Shared {
    fn tasks(&self) -> MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> MutexGuard<'_, RelayStats> {
        // A panic while the lock was held is a failed test already; the counts stay readable.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Relay {
    /// Listens on `listen` and relays each connection to `target`, with a gate of its own
    /// that stays open unless armed.
    pub async fn new(listen: SocketAddr, target: SocketAddr) -> Result<Relay> {
        Relay::with_gate(listen, target, Gate::default()).await
    }

    /// [`Relay::new`], sharing `gate` with other relays.
    pub async fn with_gate(listen: SocketAddr, target: SocketAddr, gate: Gate) -> Result<Relay> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| format!("relay cannot listen on {listen}: {e}"))?;
        // The address bound (a port 0 asks the system for one).
        let listen = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stats: Mutex::new(RelayStats::default()),
            tasks: Mutex::new(Vec::new()),
            cut: watch::Sender::new(0),
            refusing: AtomicBool::new(false),
            gate,
            lanes: [Gate::default(), Gate::default()],
        });
        let accept = tokio::spawn(accept_loop(listener, target, shared.clone()));
        Ok(Relay {
            listen,
            target,
            shared,
            accept,
        })
    }

    /// Where it listens.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Where it connects.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// The gate of one direction of this relay only: armed, it holds that direction on every
    /// connection of this relay (the other direction, and other relays, go on), as when one
    /// server's outgoing traffic is delayed while it still receives.
    pub fn lane(&self, dir: Direction) -> &Gate {
        &self.shared.lanes[dir.index()]
    }

    /// A copy of the counts so far.
    pub fn stats(&self) -> RelayStats {
        self.shared.stats().clone()
    }

    /// Cuts the link: stops forwarding on every connection being relayed and ends it towards
    /// both servers (each reads end-of-stream on its TCP connection, as when a peer closes),
    /// then waits, at most [`CUT_DRAIN`], until both servers have closed it, so that when
    /// this returns each server knows the link is gone and the next stanza to the peer opens
    /// a new connection. What a server wrote after the cut is counted in
    /// [`RelayStats::lost`]. New connections are still relayed unless [`Self::set_refusing`]
    /// is on.
    pub async fn cut(&self) {
        let tasks = std::mem::take(&mut *self.shared.tasks());
        self.shared.cut.send_modify(|generation| *generation += 1);
        for task in tasks {
            let _ = tokio::time::timeout(CUT_DRAIN * 2, task).await;
        }
    }

    /// While on, every new connection is closed as soon as it is accepted (the link stays
    /// down); connections already relayed are not affected (use [`Self::cut`]).
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Waits until at least `n` connections have been relayed.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> Result<Duration> {
        wait_until(
            format!("{n} connections through the relay {}", self.listen),
            timeout,
            || self.shared.stats().connections >= n,
        )
        .await
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.shared.tasks().drain(..) {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while let Ok((inbound, _)) = listener.accept().await {
        if shared.refusing.load(Ordering::SeqCst) {
            continue; // dropped: closed at once
        }
        let cut = shared.cut.subscribe();
        let task = tokio::spawn(relay_one(inbound, target, shared.clone(), cut));
        shared.tasks().push(task);
    }
}

async fn relay_one(
    inbound: TcpStream,
    target: SocketAddr,
    shared: Arc<Shared>,
    mut cut: watch::Receiver<u64>,
) {
    let outbound = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(e) => {
            shared
                .stats()
                .errors
                .push(format!("connect to {target}: {e}"));
            return;
        }
    };
    let connection = {
        let mut stats = shared.stats();
        stats.connections += 1;
        let n = stats.links.len() as u64;
        stats.links.push((n, Instant::now(), None));
        n
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let cut_now = tokio::select! {
        _ = async {
            tokio::join!(
                pump(&mut in_read, &mut out_write, Direction::Forward, &shared, connection),
                pump(&mut out_read, &mut in_write, Direction::Backward, &shared, connection),
            )
        } => false,
        _ = cut.changed() => true,
    };
    if let Some(link) = shared.stats().links.get_mut(connection as usize) {
        link.2 = Some(Instant::now());
    }
    if cut_now {
        // Nothing more is forwarded. Each server gets end-of-stream on its TCP connection and
        // closes it; what it writes meanwhile is read and thrown away (counted as lost).
        let _ = in_write.shutdown().await;
        let _ = out_write.shutdown().await;
        let drained = tokio::time::timeout(CUT_DRAIN, async {
            tokio::join!(drain(&mut in_read), drain(&mut out_read))
        })
        .await;
        let mut stats = shared.stats();
        stats.cut += 1;
        match drained {
            Ok((forward, backward)) => {
                stats.lost[Direction::Forward.index()] += forward;
                stats.lost[Direction::Backward.index()] += backward;
            }
            Err(_) => stats.errors.push(format!(
                "a server kept a cut connection open past {CUT_DRAIN:?}"
            )),
        }
    }
    // Both sockets close here.
}

/// Reads until EOF or an error; returns the bytes read.
async fn drain(from: &mut OwnedReadHalf) -> u64 {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        total += n as u64;
    }
    total
}

/// Copies one direction until EOF or an error, counting what passes; passes EOF on as a
/// half-close.
async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    dir: Direction,
    shared: &Shared,
    connection: u64,
) {
    let mut reader = StreamReader::new(READ_LIMITS);
    let mut readable = true;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Held while the gate is closed; what was read before it closed is still written.
        shared.gate.wait_open().await;
        shared.lanes[dir.index()].wait_open().await;
        let data = &buf[..n];
        let events = if readable {
            match reader.feed(data) {
                Ok(events) => events,
                Err(e) => {
                    readable = false;
                    shared
                        .stats()
                        .errors
                        .push(format!("{dir:?} stream unreadable: {e}"));
                    vec![]
                }
            }
        } else {
            vec![]
        };
        shared.gate.check(&events);
        shared.lanes[dir.index()].check(&events);
        record(shared, dir, connection, n, events);
        if to.write_all(data).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn record(
    shared: &Shared,
    dir: Direction,
    connection: u64,
    bytes: usize,
    events: Vec<StreamEvent>,
) {
    let at = Instant::now();
    let mut stats = shared.stats();
    let i = dir.index();
    stats.bytes[i] += bytes as u64;
    for event in events {
        match event {
            StreamEvent::Header(_) => stats.headers[i] += 1,
            StreamEvent::Stanza(el) => {
                *stats.elements[i].entry(element_name(&el)).or_default() += 1;
                if ["presence", "message", "iq"].contains(&el.name()) {
                    stats.stanza_bytes[i] += crate::sim::wire_len(&el);
                }
                if stats.captured.len() < CAPTURE_LIMIT {
                    stats.captured.push(Captured {
                        at,
                        connection,
                        dir,
                        element: el,
                    });
                }
            }
            StreamEvent::End => {}
        }
    }
}

/// The name an element is counted under (see [`RelayStats::count`]).
fn element_name(el: &Element) -> String {
    match el.ns().as_str() {
        "jabber:server" | "jabber:client" => el.name().to_string(),
        "jabber:server:dialback" => format!("db:{}", el.name()),
        "http://etherx.jabber.org/streams" => format!("stream:{}", el.name()),
        ns => format!("{{{ns}}}{}", el.name()),
    }
}
