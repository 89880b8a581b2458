//! The server's storage (src/serve/storage): a crash of the process loses nothing that was
//! acknowledged, and every subscription state and block list round-trips.
//!
//! The crash test re-executes this test binary as a writer (the ignored test `crash_writer`)
//! that commits one roster change per transaction and prints `ack N` after each commit, the
//! way the server answers a client only after the commit. The test kills the writer with
//! SIGKILL in the middle of its loop, reopens the database, checks it, and compares it with
//! the writer's deterministic script replayed in memory: the database must hold exactly the
//! state after the last acknowledged write, or after the one write that was committed but
//! not yet acknowledged when the signal came. Each round resumes where the database stands.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jid::BareJid;
use presence_sync::model::{Account, NamedState, Subscription, SubscriptionStanza};
use presence_sync::serve::auth::Credentials;
use presence_sync::serve::storage::{ItemMeta, RosterMeta, Storage, StoredAccount};
use proptest::prelude::*;

/// The database path, set for the writer child.
const WRITER_DB: &str = "PRESENCE_SYNC_CRASH_DB";
/// The first script step the writer runs.
const WRITER_START: &str = "PRESENCE_SYNC_CRASH_START";
/// What the writer prints after each commit, then the step's number. (libtest may have
/// written "test crash_writer ... " on the same line first.)
const ACK: &str = "acknowledged step ";
/// Users of the script.
const USERS: u64 = 4;
/// The writer stops by itself after this long, whatever happens to its parent.
const WRITER_LIFETIME: Duration = Duration::from_secs(60);
/// The longest the test waits for any one event of the child.
const WAIT: Duration = Duration::from_secs(60);

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn credentials() -> &'static Credentials {
    static C: OnceLock<Credentials> = OnceLock::new();
    C.get_or_init(|| Credentials::with_salts("secret", b"salt-1", b"salt-2", 4096).unwrap())
}

/// The twelve subscription states a roster item can hold: the nine of RFC 6121 Appendix A.1
/// and the three of them that can carry a pre-approval (§3.4).
fn states() -> Vec<Subscription> {
    let mut all: Vec<Subscription> = NamedState::ALL
        .iter()
        .map(|s| Subscription::named(*s))
        .collect();
    let approved: Vec<Subscription> = all.iter().filter_map(|s| s.with_approval()).collect();
    all.extend(approved);
    all
}

/// What the script has written so far, per user.
type Model = BTreeMap<BareJid, (Account, RosterMeta)>;

fn user(i: u64) -> BareJid {
    jid(&format!("u{}@a.test", i % USERS))
}

fn contact(i: u64) -> BareJid {
    jid(&format!("c{i}@b.test"))
}

/// Step `i` of the writer's script: a new item with a name and groups; a change of an older
/// item of the same user (a subscription stanza, or its removal); now and then a block or an
/// unblock. Returns the user and, for the new item, its metadata.
fn step(i: u64, model: &mut Model) -> (BareJid, BareJid, ItemMeta) {
    let u = user(i);
    let (account, meta) = model.entry(u.clone()).or_default();
    let states = states();
    let c = contact(i);
    account
        .roster
        .set(c.clone(), states[(i % states.len() as u64) as usize]);
    let item = ItemMeta {
        name: Some(format!("Contact {i} ✓")),
        groups: (0..i % 3).map(|g| format!("group {g}")).collect(),
    };
    meta.insert(c.clone(), item.clone());
    if i >= USERS * 2 {
        let old = contact(i - USERS * 2);
        if i % 16 == 0 {
            account.roster.remove(&old);
            meta.remove(&old);
        } else if let Some(sub) = account.roster.get(&old).copied() {
            let stanza = [
                SubscriptionStanza::Subscribe,
                SubscriptionStanza::Subscribed,
                SubscriptionStanza::Unsubscribe,
                SubscriptionStanza::Unsubscribed,
            ][(i % 4) as usize];
            let mut sub = sub;
            if i % 8 < 4 {
                sub.inbound(stanza);
            } else {
                sub.outbound(stanza);
            }
            account.roster.set(old, sub);
        }
    }
    if i % 5 == 0 {
        let b = if i % 3 == 0 {
            jid("d.test")
        } else {
            jid(&format!("x{}@b.test", i % 7))
        };
        if !account.blocked.unblock(&b) {
            account.blocked.block(b);
        }
    }
    (u, c, item)
}

/// The model after steps `0..n`.
fn replay(n: u64) -> Model {
    let mut model = Model::new();
    for u in 0..USERS {
        model.insert(user(u), Default::default());
    }
    for i in 0..n {
        step(i, &mut model);
    }
    model
}

fn as_model(loaded: Vec<StoredAccount>) -> Model {
    loaded
        .into_iter()
        .map(|s| (s.user, (s.account, s.meta)))
        .collect()
}

#[test]
#[ignore = "the writer process of crash_loses_nothing_acknowledged, run by it"]
fn crash_writer() {
    let path = std::env::var(WRITER_DB).expect("run by crash_loses_nothing_acknowledged");
    let start: u64 = std::env::var(WRITER_START).unwrap().parse().unwrap();
    let mut storage = Storage::open(&path).unwrap();
    for u in 0..USERS {
        storage.create_account(&user(u), credentials()).unwrap();
    }
    let mut model = replay(start);
    let began = Instant::now();
    let mut i = start;
    while began.elapsed() < WRITER_LIFETIME {
        let (u, c, item) = step(i, &mut model);
        let mut w = storage.write().unwrap();
        w.save_account(&u, &model[&u].0).unwrap();
        w.set_item_meta(&u, &c, &item).unwrap();
        w.commit().unwrap();
        println!("{ACK}{i}");
        i += 1;
    }
}

/// The writer process, killed (SIGKILL, by its PID) if the test fails before it does.
struct Writer(std::process::Child);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs the writer from step `start` until `kill_after` acknowledgements arrived, kills it
/// with SIGKILL, and returns the last acknowledged step and the writer's rate (acks/s).
fn run_writer(path: &std::path::Path, start: u64, kill_after: u64) -> (u64, f64) {
    let mut child = Writer(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_DB, path)
            .env(WRITER_START, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, n)) = line.split_once(ACK) {
                if tx.send(n.parse::<u64>().unwrap()).is_err() {
                    break;
                }
            }
        }
    });
    let mut last = None;
    let mut first_at = None;
    let mut count = 0;
    while count < kill_after {
        let n = rx
            .recv_timeout(WAIT)
            .expect("the writer acknowledges within the bound");
        first_at.get_or_insert_with(Instant::now);
        assert_eq!(n, last.map_or(start, |l| l + 1), "acks in order");
        last = Some(n);
        count += 1;
    }
    let rate = count as f64 / first_at.unwrap().elapsed().as_secs_f64().max(1e-9);
    // `Child::kill` sends SIGKILL to the child's PID.
    child.0.kill().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the writer did not die");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL mid-loop, not finished"
    );
    // Acks already in the pipe were acknowledged too.
    while let Ok(n) = rx.recv_timeout(WAIT) {
        assert_eq!(Some(n), last.map(|l| l + 1));
        last = Some(n);
    }
    reader.join().unwrap();
    (last.unwrap(), rate)
}

#[test]
fn crash_loses_nothing_acknowledged() {
    let dir = std::env::temp_dir().join(format!("presence-sync-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sqlite");
    let mut next = 0;
    // Kill points of different depths: before the first WAL checkpoint, after several.
    for (round, kill_after) in [40u64, 1500, 300, 3000].into_iter().enumerate() {
        let (last_ack, rate) = run_writer(&path, next, kill_after);
        let began = Instant::now();
        let storage = Storage::open(&path).unwrap();
        storage.check().unwrap();
        let loaded = as_model(storage.load().unwrap());
        let reopen = began.elapsed();
        let acknowledged = replay(last_ack + 1);
        let one_more = replay(last_ack + 2);
        let unacknowledged_commit = if loaded == acknowledged {
            false
        } else if loaded == one_more {
            true
        } else {
            let missing: Vec<_> = acknowledged
                .iter()
                .filter(|(u, a)| loaded.get(*u) != Some(*a))
                .map(|(u, _)| u.to_string())
                .collect();
            panic!(
                "round {round}: the database is not the acknowledged state (differs for {missing:?})"
            );
        };
        let items: usize = loaded.values().map(|(a, _)| a.roster.len()).sum();
        eprintln!(
            "crash round {round}: killed after ack {last_ack} ({rate:.0} acks/s); \
             reopened, checked and loaded {items} items in {:.1} ms; \
             committed but unacknowledged: {unacknowledged_commit}",
            reopen.as_secs_f64() * 1e3
        );
        next = last_ack + 1 + u64::from(unacknowledged_commit);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A storage with one account, `u@a.test`.
fn storage_with_user() -> (Storage, BareJid) {
    let mut s = Storage::open_in_memory().unwrap();
    let u = jid("u@a.test");
    assert!(s.create_account(&u, credentials()).unwrap());
    (s, u)
}

fn any_contact() -> impl Strategy<Value = BareJid> {
    // Users and whole domains (XEP-0191 blocks domains; rosters may hold them too), with
    // non-ASCII localparts.
    prop_oneof![
        (0u8..12, 0u8..3).prop_map(|(n, d)| jid(&format!("c{n}@d{d}.test"))),
        (0u8..3).prop_map(|d| jid(&format!("d{d}.test"))),
        Just(jid("ñandú@d0.test")),
    ]
}

fn any_account() -> impl Strategy<Value = (Account, RosterMeta)> {
    let item = (
        any_contact(),
        0..states().len(),
        proptest::option::of("\\PC{0,8}"),
        proptest::collection::btree_set("\\PC{1,6}", 0..3),
    );
    (
        proptest::collection::vec(item, 0..12),
        proptest::collection::vec(any_contact(), 0..5),
    )
        .prop_map(|(items, blocks)| {
            let mut account = Account::default();
            let mut meta = RosterMeta::new();
            for (c, s, name, groups) in items {
                account.roster.set(c.clone(), states()[s]);
                let m = ItemMeta { name, groups };
                if m.is_empty() {
                    meta.remove(&c);
                } else {
                    meta.insert(c, m);
                }
            }
            for b in blocks {
                account.blocked.block(b);
            }
            (account, meta)
        })
}

proptest! {
    /// Any roster (every state, pre-approvals, names, groups) and block list, saved over
    /// any previous one, loads back exactly.
    #[test]
    fn save_load_round_trip(versions in proptest::collection::vec(any_account(), 1..4)) {
        let (mut s, u) = storage_with_user();
        for (account, meta) in versions {
            let mut w = s.write().unwrap();
            w.save_account(&u, &account).unwrap();
            for (c, m) in &meta {
                w.set_item_meta(&u, c, m).unwrap();
            }
            // Items whose metadata was cleared in this version.
            for (c, _) in account.roster.iter().filter(|(c, _)| !meta.contains_key(*c)) {
                w.set_item_meta(&u, c, &ItemMeta::default()).unwrap();
            }
            w.commit().unwrap();
            let loaded = s.load().unwrap();
            prop_assert_eq!(loaded.len(), 1);
            prop_assert_eq!(&loaded[0].account, &account);
            prop_assert_eq!(&loaded[0].meta, &meta);
        }
        s.check().unwrap();
    }

    /// Every state the model reaches through subscription stanzas (RFC 6121 Appendix A)
    /// is stored and loaded losslessly after each stanza.
    #[test]
    fn states_reached_by_stanzas_round_trip(stanzas in proptest::collection::vec((any::<bool>(), 0usize..4), 1..24)) {
        let (mut s, u) = storage_with_user();
        let c = jid("c@b.test");
        let mut account = Account::default();
        for (inbound, k) in stanzas {
            let stanza = [
                SubscriptionStanza::Subscribe,
                SubscriptionStanza::Subscribed,
                SubscriptionStanza::Unsubscribe,
                SubscriptionStanza::Unsubscribed,
            ][k];
            let sub = account.roster.entry(c.clone());
            if inbound { sub.inbound(stanza); } else { sub.outbound(stanza); }
            s.save_account(&u, &account).unwrap();
            prop_assert_eq!(&s.load().unwrap()[0].account, &account);
        }
    }
}

#[test]
fn all_twelve_states_round_trip() {
    let (mut s, u) = storage_with_user();
    let mut account = Account::default();
    for (k, sub) in states().into_iter().enumerate() {
        account.roster.set(jid(&format!("c{k}@b.test")), sub);
    }
    s.save_account(&u, &account).unwrap();
    let loaded = s.load().unwrap();
    assert_eq!(loaded[0].account, account);
    assert_eq!(states().len(), 12);
}
