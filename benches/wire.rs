//! The packet comparison on a real wire: two `presence-sync serve` processes against two
//! unmodified Prosody 0.12 processes, over loopback TCP through counting relays, with the
//! same users, rosters and online fraction, and real clients (tokio-xmpp) for every online
//! user.
//!
//! `cargo bench --bench wire [-- --pairs 10000,100000 --degree 10 --changes 100 --schemes
//! ours,prosody]`
//!
//! For each size: `U` users per domain (a.test, b.test), each subscribed both ways to
//! `--degree` users of the other domain (so `pairs = U × degree` mutual subscriptions, `2 ×
//! pairs` cross-domain edges), half of them online. Accounts and rosters are written into each
//! server's storage before it starts (SQLite for ours, Prosody's internal files for Prosody).
//! Two phases per implementation:
//!
//! - **cold restart**: b.test is killed (SIGKILL) and started again, and its online users log
//!   in again (the login storm); done when every online client on both sides shows exactly
//!   the presence it is entitled to;
//! - **link loss**: both relays cut the s2s link, `--changes` online users of a.test change
//!   their show, the link is allowed back; done when every view is right again, or, for a
//!   scheme that leaves stale presence (RFC 6121 does nothing after a link loss), after a
//!   settling time, with the stale views counted.
//!
//! Reported per phase: s2s stanzas and their bytes (as the relays read them), the rest of the
//! bytes apart (stream headers, features, dialback), wall time to convergence, CPU seconds of
//! each server process, stale views left. Results: a table on stdout and in
//! `target/presence-sync/wire.md`, and `target/presence-sync/wire.csv`.

#[path = "../tests/net/mod.rs"]
mod net;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use net::{Client, Direction, Prosody, Relay, RelayStats, Result, Serve, TestDir, lease};
use presence_sync::model::{Account, NamedState, Subscription};
use presence_sync::serve::auth::Credentials;
use presence_sync::serve::storage::Storage;
use tokio_xmpp::jid::BareJid;
use tokio_xmpp::parsers::presence::Show;

const PASSWORD: &str = "secret";
/// The bound of each phase.
const PHASE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a scheme that does not converge is given to settle before its stale views are
/// counted.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Ours,
    Prosody,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Ours => "presence-sync serve",
            Scheme::Prosody => "Prosody 0.12 (RFC 6121)",
        }
    }
}

/// The workload: users of each domain and who is subscribed to whom.
struct Workload {
    users: usize,
    degree: usize,
}

impl Workload {
    fn user(&self, domain: char, i: usize) -> BareJid {
        BareJid::new(&format!("u{i}@{domain}.test")).expect("valid JID")
    }

    /// The b.test users that a.test user `i` is subscribed with (both ways).
    fn contacts_of_a(&self, i: usize) -> Vec<usize> {
        let step = (self.users / self.degree).max(1);
        (0..self.degree)
            .map(|j| (i + j * step) % self.users)
            .collect()
    }

    fn pairs(&self) -> Vec<(usize, usize)> {
        let mut v: Vec<(usize, usize)> = (0..self.users)
            .flat_map(|i| self.contacts_of_a(i).into_iter().map(move |k| (i, k)))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn online(&self, i: usize) -> bool {
        i % 2 == 0
    }

    /// Contacts of each user of `domain`, by index.
    fn roster(&self, domain: char) -> Vec<Vec<usize>> {
        let mut r = vec![Vec::new(); self.users];
        for (i, k) in self.pairs() {
            if domain == 'a' {
                r[i].push(k);
            } else {
                r[k].push(i);
            }
        }
        r
    }
}

/// Our SQLite database with every account and roster.
fn provision_ours(path: &Path, w: &Workload, domain: char) -> Result<()> {
    let other = if domain == 'a' { 'b' } else { 'a' };
    let mut db = Storage::open(path)?;
    // One salted record for all (the same password): the bench is about s2s, not PBKDF2.
    let creds = Credentials::new(PASSWORD, 4096)?;
    let rosters = w.roster(domain);
    for (i, contacts) in rosters.iter().enumerate() {
        let user = w.user(domain, i);
        db.create_account(&user, &creds)?;
        let mut account = Account::default();
        for &k in contacts {
            account
                .roster
                .set(w.user(other, k), Subscription::named(NamedState::Both));
        }
        let mut tx = db.write()?;
        tx.save_account(&user, &account)?;
        tx.commit()?;
    }
    Ok(())
}

/// Prosody's internal storage (`data_path/<host>/{accounts,roster}/<user>.dat`, Lua tables),
/// with plaintext passwords for `authentication = "internal_plain"`.
fn provision_prosody(data: &Path, w: &Workload, domain: char) -> Result<()> {
    let other = if domain == 'a' { 'b' } else { 'a' };
    let host = data.join(format!("{domain}%2etest"));
    fs::create_dir_all(host.join("accounts"))?;
    fs::create_dir_all(host.join("roster"))?;
    for (i, contacts) in w.roster(domain).iter().enumerate() {
        fs::write(
            host.join("accounts").join(format!("u{i}.dat")),
            format!("return {{ [\"password\"] = \"{PASSWORD}\"; }};\n"),
        )?;
        let mut roster = String::from("return {\n  [false] = { version = 1; pending = {}; };\n");
        for &k in contacts {
            roster += &format!(
                "  [\"u{k}@{other}.test\"] = {{ subscription = \"both\"; groups = {{}}; }};\n"
            );
        }
        roster += "};\n";
        fs::write(host.join("roster").join(format!("u{i}.dat")), roster)?;
    }
    Ok(())
}

/// One server of either kind.
enum Server {
    Ours(Serve),
    Prosody(Prosody),
}

impl Server {
    fn pid(&mut self) -> Option<u32> {
        match self {
            Server::Ours(s) => s.process().map(|p| p.pid()),
            Server::Prosody(p) => p.process().map(|p| p.pid()),
        }
    }
    fn kill(&mut self) -> Result<()> {
        match self {
            Server::Ours(s) => s.kill().map(|_| ()),
            Server::Prosody(p) => p.kill().map(|_| ()),
        }
    }
    async fn restart(&mut self) -> Result<()> {
        match self {
            Server::Ours(s) => s.restart(PHASE_TIMEOUT).await,
            Server::Prosody(p) => p.restart().await,
        }
    }
    fn stop(&mut self) {
        let _ = match self {
            Server::Ours(s) => s.stop().map(|_| ()),
            Server::Prosody(p) => p.stop().map(|_| ()),
        };
    }
}

/// CPU seconds (user + system) the process has used, from /proc.
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5); here 0-based after the name: 11, 12.
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz
}

/// Resident memory of the process in KiB, from /proc.
fn rss_kib(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resources of one run: memory per client connection, throughput of one s2s link.
struct Resources {
    scheme: Scheme,
    pairs: usize,
    /// Resident KiB of a.test before and after its online users logged in.
    rss_a: (u64, u64),
    clients: usize,
    messages: usize,
    message_bytes: u64,
    seconds: f64,
}

struct World {
    scheme: Scheme,
    a: Server,
    b: Server,
    ab: Relay,
    ba: Relay,
    a_c2s: SocketAddr,
    b_c2s: SocketAddr,
    _leases: Vec<net::Lease>,
}

async fn world(scheme: Scheme, w: &Workload, dir: &TestDir) -> Result<World> {
    let (la, lb, lab, lba) = (lease()?, lease()?, lease()?, lease()?);
    let ab = Relay::new(lab.s2s(), lb.s2s()).await?;
    let ba = Relay::new(lba.s2s(), la.s2s()).await?;
    let (a, b) = match scheme {
        Scheme::Ours => {
            let mut servers = Vec::new();
            for (d, me, peer, relay) in [('a', &la, 'b', &lab), ('b', &lb, 'a', &lba)] {
                let name = format!("{d}.test");
                let home = dir.sub(&name)?;
                provision_ours(&home.join("data.sqlite"), w, d)?;
                let toml = format!(
                    "domain = '{d}.test'\nc2s = '{}'\ns2s = '{}'\ndatabase = 'data.sqlite'\n\
                     log = 'warn'\n[peers]\n'{peer}.test' = '{}'\n",
                    me.c2s(),
                    me.s2s(),
                    relay.s2s()
                );
                let serve = Serve::start(
                    Path::new(env!("CARGO_BIN_EXE_presence-sync")),
                    &name,
                    dir,
                    &toml,
                    &[me.c2s(), me.s2s()],
                    PHASE_TIMEOUT,
                )
                .await?;
                servers.push(Server::Ours(serve));
            }
            let b = servers.pop().expect("two");
            (servers.pop().expect("two"), b)
        }
        Scheme::Prosody => {
            let mut servers = Vec::new();
            for (d, me, peer, relay) in [('a', &la, 'b', &lab), ('b', &lb, 'a', &lba)] {
                let home = dir.sub(&format!("prosody-{d}.test"))?;
                provision_prosody(&home.join("data"), w, d)?;
                let p = Prosody::builder(&format!("{d}.test"), me)
                    .resolve(&format!("{peer}.test"), relay.ip())
                    .global("authentication = \"internal_plain\"")
                    .log_level("warn")
                    .start(dir)
                    .await?;
                servers.push(Server::Prosody(p));
            }
            let b = servers.pop().expect("two");
            (servers.pop().expect("two"), b)
        }
    };
    Ok(World {
        scheme,
        a,
        b,
        ab,
        ba,
        a_c2s: la.c2s(),
        b_c2s: lb.c2s(),
        _leases: vec![la, lb, lab, lba],
    })
}

/// The online users' clients, by (domain, index), and the show each last sent.
struct Online {
    clients: BTreeMap<(char, usize), (Client, Option<Show>)>,
}

async fn log_in(
    w: &Workload,
    addr: SocketAddr,
    domain: char,
    online: &mut Online,
) -> Result<Duration> {
    let start = Instant::now();
    let users: Vec<usize> = (0..w.users).filter(|&i| w.online(i)).collect();
    for chunk in users.chunks(32) {
        let logins = chunk.iter().map(|&i| {
            let jid = w.user(domain, i);
            async move { (i, Client::login(addr, &jid, PASSWORD, "r").await) }
        });
        for (i, client) in futures::future::join_all(logins).await {
            let client = client?;
            client.available(None)?;
            online.clients.insert((domain, i), (client, None));
        }
    }
    Ok(start.elapsed())
}

// What each online client shows of its contacts is the wire suite's `people::shown`.
use presence_sync::conformance::wire::people::shown;

/// Views that differ from the truth (each online user sees each online contact with its
/// last show, nothing else).
fn wrong_views(w: &Workload, online: &Online) -> usize {
    let rosters = [('a', w.roster('a')), ('b', w.roster('b'))];
    let mut wrong = 0;
    for ((d, i), (client, _)) in &online.clients {
        let (other, roster) = if *d == 'a' {
            ('b', &rosters[0].1)
        } else {
            ('a', &rosters[1].1)
        };
        let mut truth: BTreeMap<BareJid, BTreeMap<String, Option<Show>>> = BTreeMap::new();
        for &k in &roster[*i] {
            if let Some((_, show)) = online.clients.get(&(other, k)) {
                truth
                    .entry(w.user(other, k))
                    .or_default()
                    .insert("r".into(), show.clone());
            }
        }
        let view = shown(client);
        let contacts: BTreeSet<&BareJid> = truth.keys().chain(view.keys()).collect();
        for c in contacts {
            if truth.get(c) != view.get(c) {
                if wrong < 3 && std::env::var_os("WIRE_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "{d}{i} sees {c}: {:?}, entitled to {:?}",
                        view.get(c),
                        truth.get(c)
                    );
                }
                wrong += 1;
            }
        }
    }
    wrong
}

/// Waits until no view is wrong; returns the time, or `None` and the wrong count after
/// `give_up`.
async fn converge(w: &Workload, online: &Online, give_up: Duration) -> (Option<Duration>, usize) {
    let start = Instant::now();
    loop {
        let wrong = wrong_views(w, online);
        if wrong == 0 {
            return (Some(start.elapsed()), 0);
        }
        if start.elapsed() > give_up {
            return (None, wrong);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What crossed both relays in a phase.
#[derive(Default)]
struct Traffic {
    stanzas: usize,
    stanza_bytes: u64,
    other_bytes: u64,
}

fn traffic(before: &[(RelayStats, usize)], after: &[RelayStats]) -> Traffic {
    let mut t = Traffic::default();
    for ((b, _), a) in before.iter().zip(after) {
        let both = |s: &RelayStats, f: &dyn Fn(&RelayStats, Direction) -> u64| {
            f(s, Direction::Forward) + f(s, Direction::Backward)
        };
        let total = both(a, &|s, d| s.bytes(d)) - both(b, &|s, d| s.bytes(d));
        let stanza_bytes = both(a, &|s, d| s.stanza_bytes(d)) - both(b, &|s, d| s.stanza_bytes(d));
        t.stanzas +=
            (both(a, &|s, d| s.stanzas(d) as u64) - both(b, &|s, d| s.stanzas(d) as u64)) as usize;
        t.stanza_bytes += stanza_bytes;
        t.other_bytes += total.saturating_sub(stanza_bytes);
    }
    t
}

fn marks(world: &World) -> Vec<(RelayStats, usize)> {
    [world.ab.stats(), world.ba.stats()]
        .into_iter()
        .map(|s| {
            let n = s.captured.len();
            (s, n)
        })
        .collect()
}

struct Row {
    scheme: Scheme,
    pairs: usize,
    phase: &'static str,
    traffic: Traffic,
    wall: Option<Duration>,
    stale: usize,
    cpu_a: f64,
    cpu_b: f64,
}

async fn run(
    scheme: Scheme,
    w: &Workload,
    changes: usize,
    rows: &mut Vec<Row>,
    resources: &mut Vec<Resources>,
) -> Result<()> {
    let dir = TestDir::new(&format!("wire-bench-{}", w.users))?;
    let mut world = world(scheme, w, &dir).await?;
    let mut online = Online {
        clients: BTreeMap::new(),
    };
    let rss_before = rss_kib(world.a.pid());
    log_in(w, world.a_c2s, 'a', &mut online).await?;
    log_in(w, world.b_c2s, 'b', &mut online).await?;
    let (done, wrong) = converge(w, &online, PHASE_TIMEOUT).await;
    let rss_after = rss_kib(world.a.pid());
    if done.is_none() {
        return Err(format!(
            "{}: the initial logins did not converge ({wrong} wrong)",
            scheme.name()
        )
        .into());
    }

    // Cold restart of b.test with its login storm.
    let before = marks(&world);
    let cpu_a0 = cpu_seconds(world.a.pid());
    let start = Instant::now();
    world.b.kill()?;
    online.clients.retain(|(d, _), _| *d != 'b');
    world.b.restart().await?;
    log_in(w, world.b_c2s, 'b', &mut online).await?;
    let (done, stale) = converge(w, &online, PHASE_TIMEOUT).await;
    let wall = done.map(|_| start.elapsed());
    rows.push(Row {
        scheme,
        pairs: w.pairs().len(),
        phase: "cold restart",
        traffic: traffic(&before, &[world.ab.stats(), world.ba.stats()]),
        wall,
        stale,
        cpu_a: cpu_seconds(world.a.pid()) - cpu_a0,
        cpu_b: cpu_seconds(world.b.pid()),
    });

    // Link loss with `changes` presence changes at a.test.
    let before = marks(&world);
    let (cpu_a0, cpu_b0) = (cpu_seconds(world.a.pid()), cpu_seconds(world.b.pid()));
    world.ab.set_refusing(true);
    world.ba.set_refusing(true);
    world.ab.cut().await;
    world.ba.cut().await;
    let changed: Vec<(char, usize)> = online
        .clients
        .keys()
        .filter(|(d, _)| *d == 'a')
        .take(changes)
        .copied()
        .collect();
    for key in changed {
        if let Some((client, show)) = online.clients.get_mut(&key) {
            client.available(Some(Show::Away))?;
            *show = Some(Show::Away);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    world.ab.set_refusing(false);
    world.ba.set_refusing(false);
    let give_up = if scheme == Scheme::Prosody {
        SETTLE
    } else {
        PHASE_TIMEOUT
    };
    let (done, stale) = converge(w, &online, give_up).await;
    rows.push(Row {
        scheme,
        pairs: w.pairs().len(),
        phase: "link loss",
        traffic: traffic(&before, &[world.ab.stats(), world.ba.stats()]),
        wall: done,
        stale,
        cpu_a: cpu_seconds(world.a.pid()) - cpu_a0,
        cpu_b: cpu_seconds(world.b.pid()) - cpu_b0,
    });
    // Throughput of a.test's s2s link: every online a.test user sends messages to its first
    // contact; timed from the first send until the relay has carried the last one.
    let per_user = 20;
    let body = "x".repeat(100);
    let senders: Vec<(usize, usize)> = online
        .clients
        .keys()
        .filter(|(d, _)| *d == 'a')
        .map(|&(_, i)| (i, w.contacts_of_a(i)[0]))
        .collect();
    let total = senders.len() * per_user;
    let (count0, bytes0) = {
        let s = world.ab.stats();
        (
            s.count(Direction::Forward, "message"),
            s.stanza_bytes(Direction::Forward),
        )
    };
    let start = Instant::now();
    for (i, k) in &senders {
        let (client, _) = &online.clients[&('a', *i)];
        for _ in 0..per_user {
            let m: minidom::Element = format!(
                "<message xmlns='jabber:client' to='{}' type='chat'><body>{body}</body></message>",
                w.user('b', *k)
            )
            .parse()?;
            client.send(m)?;
        }
    }
    net::wait_until("the messages crossed the s2s link", PHASE_TIMEOUT, || {
        world.ab.stats().count(Direction::Forward, "message") >= count0 + total
    })
    .await?;
    let seconds = start.elapsed().as_secs_f64();
    resources.push(Resources {
        scheme,
        pairs: w.pairs().len(),
        rss_a: (rss_before, rss_after),
        clients: senders.len(),
        messages: total,
        message_bytes: world.ab.stats().stanza_bytes(Direction::Forward) - bytes0,
        seconds,
    });
    for (_, (client, _)) in std::mem::take(&mut online.clients) {
        client.abort();
    }
    world.a.stop();
    world.b.stop();
    let _ = world.scheme;
    dir.finish(Ok(()))
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn main() -> Result<()> {
    let sizes: Vec<usize> = arg("--pairs", "1000,10000")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()?;
    let degree: usize = arg("--degree", "10").parse()?;
    let changes: usize = arg("--changes", "100").parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    let mut resources = Vec::new();
    for &pairs in &sizes {
        let w = Workload {
            users: (pairs / degree).max(1),
            degree,
        };
        let schemes = arg("--schemes", "ours,prosody");
        let chosen = [("ours", Scheme::Ours), ("prosody", Scheme::Prosody)]
            .into_iter()
            .filter(|(n, _)| schemes.split(',').any(|x| x.trim() == *n))
            .map(|(_, s)| s);
        for scheme in chosen {
            eprintln!(
                "wire bench: {} with {} users per domain, {} pairs",
                scheme.name(),
                w.users,
                w.pairs().len()
            );
            runtime.block_on(run(scheme, &w, changes, &mut rows, &mut resources))?;
        }
    }
    let mut csv = String::from(
        "scheme,pairs,edges,phase,stanzas,stanza_bytes,other_bytes,wall_s,converged,stale_views,cpu_a_s,cpu_b_s\n",
    );
    let mut table = String::from(
        "| scheme | pairs (edges) | phase | s2s stanzas | stanza bytes | other bytes | wall to convergence | stale views | CPU a.test / b.test |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let wall = r.wall.map_or("not converged".to_owned(), |d| {
            format!("{:.2} s", d.as_secs_f64())
        });
        table += &format!(
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {:.2} s / {:.2} s |\n",
            r.scheme.name(),
            r.pairs,
            2 * r.pairs,
            r.phase,
            r.traffic.stanzas,
            r.traffic.stanza_bytes,
            r.traffic.other_bytes,
            wall,
            r.stale,
            r.cpu_a,
            r.cpu_b
        );
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{},{:.2},{:.2}\n",
            r.scheme.name(),
            r.pairs,
            2 * r.pairs,
            r.phase,
            r.traffic.stanzas,
            r.traffic.stanza_bytes,
            r.traffic.other_bytes,
            r.wall
                .map_or(String::new(), |d| format!("{:.3}", d.as_secs_f64())),
            r.wall.is_some(),
            r.stale,
            r.cpu_a,
            r.cpu_b
        );
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/presence-sync");
    fs::create_dir_all(&out)?;
    table += "\n| scheme | pairs | a.test resident memory before / after logins | per client connection | s2s messages | throughput |\n|---|---|---|---|---|---|\n";
    for r in &resources {
        let per = (r.rss_a.1.saturating_sub(r.rss_a.0) as f64) / (r.clients.max(1) as f64);
        table += &format!(
            "| {} | {} | {:.1} / {:.1} MiB ({} clients) | {:.1} KiB | {} ({:.2} MB) | {:.0} stanzas/s, {:.2} MB/s |\n",
            r.scheme.name(),
            r.pairs,
            r.rss_a.0 as f64 / 1024.0,
            r.rss_a.1 as f64 / 1024.0,
            r.clients,
            per,
            r.messages,
            r.message_bytes as f64 / 1e6,
            r.messages as f64 / r.seconds,
            r.message_bytes as f64 / 1e6 / r.seconds
        );
    }
    print!("{table}");
    fs::write(out.join("wire.csv"), csv)?;
    fs::write(out.join("wire.md"), table)?;
    eprintln!("wrote wire.csv and wire.md in {}", out.display());
    Ok(())
}
