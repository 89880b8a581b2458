//! What the server keeps across a restart, in one SQLite database (rusqlite, SQLite compiled
//! in): accounts with their salted credentials, rosters (the model's
//! [`Subscription`](crate::model::Subscription) state, losslessly, plus each item's name and
//! groups), XEP-0191 block lists, and the boot counter with the current epoch (XEP §Epochs).
//! Presence of local users is not stored: it belongs to sessions, which do not survive a
//! restart. The caches of peers' presence are stored only if the server persists them
//! (`[sync] persist-caches`): written by a graceful stop ([`Storage::keep_caches`]), read
//! and deleted by the next start ([`Storage::take_caches`]), in the same database as the
//! rosters and as protected (XEP PS-81).
//!
//! # Use by the server
//!
//! ```text
//!  boot:    Storage::open(path) ─► next_boot() ─► Boot { number, epoch }  (log it; the epoch is the
//!                                                                       server's for this boot)
//!           load() ─► [StoredAccount { user, account, meta }] ─► seed the model server
//!  SASL:    credentials(user) ─► auth::Exchange::provide
//!  XEP-0077: create_account / set_credentials / remove_account
//!  stanza:  the model server changes accounts ─► write(): save_account(user, &account) for each
//!           changed account, set_item_meta for jabber:iq:roster names and groups ─► commit()
//!           ─► only then answer the client (result, roster push)
//! ```
//!
//! # Durability: what "acknowledged" means
//!
//! The database is in WAL mode. [`Write::commit`] returns once SQLite has appended the
//! transaction, commit record included, to the `-wal` file with `write(2)`. The server
//! acknowledges a change to the client only after that (the driver's rule above). From then
//! on the bytes belong to the kernel's page cache, not to the process: a crash of the process
//! (panic, SIGKILL, the OOM killer) cannot take them back, and the next [`Storage::open`]
//! recovers them from the WAL. So with the default [`Durability::Process`]
//! (`synchronous=NORMAL`), **nothing acknowledged is lost when the process dies**, and the
//! database is always consistent; the crash test (tests/serve_storage.rs) kills a writer with
//! SIGKILL in the middle of its loop and finds every acknowledged write.
//!
//! A crash of the operating system or a power loss is a different failure: under
//! `synchronous=NORMAL` the WAL is synced only at checkpoints, so the last transactions
//! before the outage may roll back (the database stays consistent). A deployment that must
//! keep them chooses [`Durability::PowerLoss`] (`synchronous=FULL`: one `fsync` of the WAL
//! per commit, so per stanza that changes a roster). The default is the process-crash
//! guarantee the issue asks for; the choice is the server's configuration.
//!
//! # Schema
//!
//! Versioned with SQLite's `user_version` ([`SCHEMA_VERSION`]); [`Storage::open`] migrates
//! older databases step by step and refuses newer ones (see the `schema` module). Rosters are
//! stored as the five facts of the subscription state (to, from, pending out, pending in,
//! pre-approved) with RFC 6121's invariants as CHECK constraints, so every state the model
//! can hold, and only those, can be stored. Foreign keys tie every row to its account:
//! removing an account removes its credentials, roster and block list in one statement.
//!
//! One [`Storage`] is one connection, owned by one task (it is `Send`, not `Sync`).

mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use jid::BareJid;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::auth::{Credentials, ScramHash, ScramKeys};
use crate::model::{Account, Epoch};
use crate::server::KeptCache;
use crate::wire::{Item, WireElement};
use schema::Flags;
pub use schema::SCHEMA_VERSION;

/// How much a committed write survives ([module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL`: survives any crash of the process; the last commits may roll
    /// back on a power loss.
    #[default]
    Process,
    /// `synchronous=FULL`: every commit is synced to the device before it returns.
    PowerLoss,
}

/// Options of [`Storage::open_with`].
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct Options {
    /// What a commit survives.
    pub durability: Durability,
}

/// A storage error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed (I/O, a full disk, a locked or damaged file).
    Sqlite(rusqlite::Error),
    /// The database holds a value this code cannot read back (a hand-edited or damaged
    /// database).
    Corrupt(String),
    /// A write named an account that does not exist (the caller's mistake: accounts are made
    /// by [`Storage::create_account`]).
    NoSuchAccount(BareJid),
    /// Credentials that fail [`Credentials::is_valid`] were offered for storage.
    InvalidCredentials,
    /// The database was written by a newer version of this code.
    SchemaTooNew {
        /// Its `user_version`.
        found: u32,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
    /// The file system cannot host a WAL database (journal mode stayed `found`).
    NoWal(String),
    /// The operating system's random source failed (drawing an epoch).
    Random,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite(e) => write!(f, "storage: {e}"),
            Error::Corrupt(what) => write!(f, "storage: unreadable value: {what}"),
            Error::NoSuchAccount(user) => write!(f, "storage: no account {user}"),
            Error::InvalidCredentials => f.write_str("storage: invalid credentials"),
            Error::SchemaTooNew { found, supported } => write!(
                f,
                "storage: schema version {found} is newer than the supported {supported}"
            ),
            Error::NoWal(mode) => write!(f, "storage: journal mode {mode}, WAL unavailable"),
            Error::Random => f.write_str("storage: the random source failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sqlite(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        Error::Sqlite(e)
    }
}

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, Error>;

/// The name and groups of a roster item (RFC 6121 §2.1.2.4, §2.1.2.5): what
/// `jabber:iq:roster` carries beyond the subscription state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemMeta {
    /// The item's name, if the user gave one.
    pub name: Option<String>,
    /// The item's groups.
    pub groups: BTreeSet<String>,
}

impl ItemMeta {
    /// No name and no group.
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.groups.is_empty()
    }
}

/// Names and groups of one user's roster items, for the items that have any.
pub type RosterMeta = BTreeMap<BareJid, ItemMeta>;

/// One account as loaded at boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAccount {
    /// The account's bare JID.
    pub user: BareJid,
    /// Its roster and block list, as the model server holds them.
    pub account: Account,
    /// Names and groups of its roster items.
    pub meta: RosterMeta,
}

/// This boot of the server ([`Storage::next_boot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// 1 for the first boot on this database, then one more per boot.
    pub number: u64,
    /// The epoch of this boot (XEP §Epochs): drawn from the operating system's CSPRNG,
    /// different from the previous boot's.
    pub epoch: Epoch,
    /// The previous boot's epoch, if there was a previous boot.
    pub previous: Option<Epoch>,
}

/// The server's database ([module docs](self)).
pub struct Storage {
    conn: Connection,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl Storage {
    /// Opens (creating if needed) the database at `path` with the default [`Options`], and
    /// migrates it to [`SCHEMA_VERSION`].
    pub fn open(path: impl AsRef<Path>) -> Result<Storage> {
        Storage::open_with(path, Options::default())
    }

    /// [`Storage::open`] with options.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Storage> {
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::NoWal(mode));
        }
        Storage::setup(conn, options)
    }

    /// A database in memory (tests; nothing survives).
    pub fn open_in_memory() -> Result<Storage> {
        Storage::setup(Connection::open_in_memory()?, Options::default())
    }

    fn setup(mut conn: Connection, options: Options) -> Result<Storage> {
        let synchronous = match options.durability {
            Durability::Process => "NORMAL",
            Durability::PowerLoss => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Another process (an administrator's sqlite3) may hold the lock for a moment.
        conn.busy_timeout(Duration::from_secs(5))?;
        schema::migrate(&mut conn)?;
        Ok(Storage { conn })
    }

    /// Counts this boot and draws its epoch, in one committed transaction: call once at
    /// start-up, before the epoch is announced to any peer.
    pub fn next_boot(&mut self) -> Result<Boot> {
        let tx = self.begin()?;
        let (count, previous): (i64, i64) =
            tx.query_row("SELECT count, epoch FROM boot WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let previous = (count > 0).then_some(Epoch(previous as u64));
        let epoch = loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|_| Error::Random)?;
            let e = Epoch(u64::from_be_bytes(bytes));
            if Some(e) != previous {
                break e;
            }
        };
        let number = count as u64 + 1;
        tx.execute(
            "UPDATE boot SET count = ?1, epoch = ?2 WHERE id = 1",
            params![number as i64, epoch.0 as i64],
        )?;
        tx.commit()?;
        Ok(Boot {
            number,
            epoch,
            previous,
        })
    }

    /// Creates `user` with `credentials` and an empty roster; `false` (and nothing changes)
    /// if the account exists.
    pub fn create_account(&mut self, user: &BareJid, credentials: &Credentials) -> Result<bool> {
        if !credentials.is_valid() {
            return Err(Error::InvalidCredentials);
        }
        let tx = self.begin()?;
        let inserted = tx.execute(
            "INSERT INTO account (jid) VALUES (?1) ON CONFLICT DO NOTHING",
            [user.as_str()],
        )?;
        if inserted == 0 {
            return Ok(false);
        }
        insert_credentials(&tx, user, credentials)?;
        tx.commit()?;
        Ok(true)
    }

    /// Replaces the credentials of `user` (XEP-0077 §3.3); `false` if there is no such
    /// account.
    pub fn set_credentials(&mut self, user: &BareJid, credentials: &Credentials) -> Result<bool> {
        if !credentials.is_valid() {
            return Err(Error::InvalidCredentials);
        }
        let tx = self.begin()?;
        if !account_exists(&tx, user)? {
            return Ok(false);
        }
        tx.execute("DELETE FROM scram WHERE jid = ?1", [user.as_str()])?;
        insert_credentials(&tx, user, credentials)?;
        tx.commit()?;
        Ok(true)
    }

    /// Removes `user` with its credentials, roster and block list; `false` if there was no
    /// such account.
    pub fn remove_account(&mut self, user: &BareJid) -> Result<bool> {
        let removed = self
            .conn
            .execute("DELETE FROM account WHERE jid = ?1", [user.as_str()])?;
        Ok(removed > 0)
    }

    /// The credentials of `user`, `None` if there is no such account.
    pub fn credentials(&self, user: &BareJid) -> Result<Option<Credentials>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT hash, salt, iterations, stored_key, server_key FROM scram WHERE jid = ?1",
        )?;
        let rows = stmt.query_map([user.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, u32>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, Vec<u8>>(4)?,
            ))
        })?;
        let (mut sha1, mut sha256) = (None, None);
        for row in rows {
            let (hash, salt, iterations, stored_key, server_key) = row?;
            let (slot, hash) = match hash.as_str() {
                "SHA-1" => (&mut sha1, ScramHash::Sha1),
                "SHA-256" => (&mut sha256, ScramHash::Sha256),
                other => return Err(Error::Corrupt(format!("hash {other:?} of {user}"))),
            };
            *slot = Some(ScramKeys {
                hash,
                salt,
                iterations,
                stored_key,
                server_key,
            });
        }
        match (sha1, sha256) {
            (Some(sha1), Some(sha256)) => {
                let c = Credentials { sha1, sha256 };
                if c.is_valid() {
                    Ok(Some(c))
                } else {
                    Err(Error::Corrupt(format!("credentials of {user}")))
                }
            }
            (None, None) if !account_exists(&self.conn, user)? => Ok(None),
            _ => Err(Error::Corrupt(format!("incomplete credentials of {user}"))),
        }
    }

    /// Every account with its roster, block list and roster metadata, ordered by JID: what
    /// the model server is seeded with at boot.
    pub fn load(&self) -> Result<Vec<StoredAccount>> {
        let mut accounts: BTreeMap<String, StoredAccount> = BTreeMap::new();
        let mut stmt = self.conn.prepare("SELECT jid FROM account")?;
        for jid in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let jid = jid?;
            let user = parse_jid(&jid)?;
            accounts.insert(
                jid,
                StoredAccount {
                    user,
                    account: Account::default(),
                    meta: RosterMeta::new(),
                },
            );
        }
        let mut stmt = self.conn.prepare(
            "SELECT user, contact, sub_to, sub_from, pending_out, pending_in, approved, name \
             FROM roster",
        )?;
        let rows = stmt.query_map([], |r| {
            let flags: Flags = [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?];
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                flags,
                r.get::<_, Option<String>>(7)?,
            ))
        })?;
        for row in rows {
            let (user, contact, flags, name) = row?;
            let stored = owner(&mut accounts, &user)?;
            let contact = parse_jid(&contact)?;
            let sub = schema::decode(flags)
                .ok_or_else(|| Error::Corrupt(format!("subscription {flags:?}")))?;
            stored.account.roster.set(contact.clone(), sub);
            if name.is_some() {
                stored.meta.entry(contact).or_default().name = name;
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT user, contact, name FROM roster_group")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
        })?;
        for row in rows {
            let (user, contact, group): (String, String, String) = row?;
            let stored = owner(&mut accounts, &user)?;
            let contact = parse_jid(&contact)?;
            stored.meta.entry(contact).or_default().groups.insert(group);
        }
        let mut stmt = self.conn.prepare("SELECT user, jid FROM block")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (user, jid) = row?;
            let stored = owner(&mut accounts, &user)?;
            stored.account.blocked.block(parse_jid(&jid)?);
        }
        let mut out: Vec<StoredAccount> = accounts.into_values().collect();
        out.sort_by(|a, b| a.user.cmp(&b.user));
        Ok(out)
    }

    /// Begins a write: every change of one stanza goes into one transaction, committed by
    /// [`Write::commit`] before the client is answered. Dropping a `Write` without committing
    /// rolls it back.
    pub fn write(&mut self) -> Result<Write<'_>> {
        Ok(Write { tx: self.begin()? })
    }

    /// [`Write::save_account`] in a transaction of its own.
    pub fn save_account(&mut self, user: &BareJid, account: &Account) -> Result<()> {
        let mut w = self.write()?;
        w.save_account(user, account)?;
        w.commit()
    }

    /// [`Write::set_item_meta`] in a transaction of its own.
    pub fn set_item_meta(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        meta: &ItemMeta,
    ) -> Result<()> {
        let mut w = self.write()?;
        w.set_item_meta(user, contact, meta)?;
        w.commit()
    }

    /// Checks the file: SQLite's `integrity_check` and `foreign_key_check` (for tests and
    /// operators; it reads the whole database).
    pub fn check(&self) -> Result<()> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(Error::Corrupt(format!("integrity_check: {verdict}")));
        }
        let violation: Option<String> = self
            .conn
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        match violation {
            None => Ok(()),
            Some(table) => Err(Error::Corrupt(format!("foreign key violation in {table}"))),
        }
    }

    /// Replaces the kept caches of peers' presence with `caches` (a graceful stop), in one
    /// transaction. Entries whose item cannot be serialised are left out.
    pub fn keep_caches(&mut self, caches: &[KeptCache]) -> Result<()> {
        let tx = self.begin()?;
        tx.execute("DELETE FROM peer_cache", [])?;
        for cache in caches {
            tx.execute(
                "INSERT INTO peer_cache (peer, epoch) VALUES (?1, ?2)",
                params![cache.peer, cache.epoch.0 as i64],
            )?;
            for (publisher, state) in &cache.entries {
                let Some(xml) = Item::from_model(publisher, state)
                    .ok()
                    .and_then(|i| i.to_xml_bytes().ok())
                    .and_then(|b| String::from_utf8(b).ok())
                else {
                    continue;
                };
                tx.execute(
                    "INSERT INTO peer_cache_item (peer, publisher, item) VALUES (?1, ?2, ?3)",
                    params![cache.peer, publisher.as_str(), xml],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The kept caches of peers' presence, deleted in the same transaction (a start: from
    /// then on they live in memory only, and a run that cannot reach the peer voids them at
    /// the end of the grace period, PS-81). An item that no longer parses is left out.
    pub fn take_caches(&mut self) -> Result<Vec<KeptCache>> {
        let tx = self.begin()?;
        let mut caches: BTreeMap<String, KeptCache> = BTreeMap::new();
        {
            let mut peers = tx.prepare("SELECT peer, epoch FROM peer_cache")?;
            let rows =
                peers.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (peer, epoch) = row?;
                caches.insert(
                    peer.clone(),
                    KeptCache {
                        peer,
                        epoch: Epoch(epoch as u64),
                        entries: Vec::new(),
                    },
                );
            }
            let mut items =
                tx.prepare("SELECT peer, item FROM peer_cache_item ORDER BY peer, publisher")?;
            let rows =
                items.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (peer, xml) = row?;
                let Ok(item) = Item::parse_bytes(xml.as_bytes()) else {
                    continue;
                };
                if let Some(cache) = caches.get_mut(&peer) {
                    cache.entries.push((item.jid.clone(), item.to_model()));
                }
            }
        }
        tx.execute("DELETE FROM peer_cache", [])?;
        tx.commit()?;
        Ok(caches.into_values().collect())
    }

    fn begin(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// One transaction of account changes ([`Storage::write`]).
pub struct Write<'a> {
    tx: Transaction<'a>,
}

impl Write<'_> {
    /// Makes the stored roster and block list of `user` equal to `account`'s: items and
    /// entries that changed are written, items no longer in the roster are deleted with their
    /// name and groups, unchanged rows are left alone. The account must exist.
    pub fn save_account(&mut self, user: &BareJid, account: &Account) -> Result<()> {
        let tx = &self.tx;
        if !account_exists(tx, user)? {
            return Err(Error::NoSuchAccount(user.clone()));
        }
        let mut stored: BTreeMap<String, Flags> = BTreeMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT contact, sub_to, sub_from, pending_out, pending_in, approved \
                 FROM roster WHERE user = ?1",
            )?;
            let rows = stmt.query_map([user.as_str()], |r| {
                let flags: Flags = [r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?];
                Ok((r.get::<_, String>(0)?, flags))
            })?;
            for row in rows {
                let (contact, flags) = row?;
                stored.insert(contact, flags);
            }
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO roster (user, contact, sub_to, sub_from, pending_out, pending_in, approved) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (user, contact) DO UPDATE SET sub_to = ?3, sub_from = ?4, \
             pending_out = ?5, pending_in = ?6, approved = ?7",
        )?;
        for (contact, sub) in account.roster.iter() {
            let flags = schema::encode(sub);
            if stored.remove(contact.as_str()) != Some(flags) {
                let [to, from, out, inb, approved] = flags;
                upsert.execute(params![
                    user.as_str(),
                    contact.as_str(),
                    to,
                    from,
                    out,
                    inb,
                    approved
                ])?;
            }
        }
        let mut delete =
            tx.prepare_cached("DELETE FROM roster WHERE user = ?1 AND contact = ?2")?;
        for contact in stored.keys() {
            delete.execute(params![user.as_str(), contact])?;
        }

        let mut blocked: BTreeSet<String> = BTreeSet::new();
        {
            let mut stmt = tx.prepare_cached("SELECT jid FROM block WHERE user = ?1")?;
            for jid in stmt.query_map([user.as_str()], |r| r.get::<_, String>(0))? {
                blocked.insert(jid?);
            }
        }
        let mut insert = tx.prepare_cached("INSERT INTO block (user, jid) VALUES (?1, ?2)")?;
        for jid in account.blocked.iter() {
            if !blocked.remove(jid.as_str()) {
                insert.execute(params![user.as_str(), jid.as_str()])?;
            }
        }
        let mut delete = tx.prepare_cached("DELETE FROM block WHERE user = ?1 AND jid = ?2")?;
        for jid in &blocked {
            delete.execute(params![user.as_str(), jid])?;
        }
        Ok(())
    }

    /// Sets the name and groups of the roster item `contact` of `user` (a `jabber:iq:roster`
    /// set, RFC 6121 §2.3). An item not yet stored is created in state "None" (§2.3.2); the
    /// model server's roster must get the item too, or the next
    /// [`save_account`](Write::save_account) of `user` deletes it again.
    pub fn set_item_meta(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        meta: &ItemMeta,
    ) -> Result<()> {
        let tx = &self.tx;
        if !account_exists(tx, user)? {
            return Err(Error::NoSuchAccount(user.clone()));
        }
        tx.prepare_cached(
            "INSERT INTO roster (user, contact, sub_to, sub_from, pending_out, pending_in, approved, name) \
             VALUES (?1, ?2, 0, 0, 0, 0, 0, ?3) \
             ON CONFLICT (user, contact) DO UPDATE SET name = ?3",
        )?
        .execute(params![user.as_str(), contact.as_str(), meta.name])?;
        tx.prepare_cached("DELETE FROM roster_group WHERE user = ?1 AND contact = ?2")?
            .execute(params![user.as_str(), contact.as_str()])?;
        let mut insert = tx
            .prepare_cached("INSERT INTO roster_group (user, contact, name) VALUES (?1, ?2, ?3)")?;
        for group in &meta.groups {
            insert.execute(params![user.as_str(), contact.as_str(), group])?;
        }
        Ok(())
    }

    /// Commits: when this returns, the changes are in the WAL and survive a crash of the
    /// process (module docs); the client may be answered.
    pub fn commit(self) -> Result<()> {
        Ok(self.tx.commit()?)
    }
}

fn account_exists(conn: &Connection, user: &BareJid) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM account WHERE jid = ?1")?
        .exists([user.as_str()])?)
}

fn insert_credentials(tx: &Transaction<'_>, user: &BareJid, c: &Credentials) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO scram (jid, hash, salt, iterations, stored_key, server_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (name, keys) in [("SHA-1", &c.sha1), ("SHA-256", &c.sha256)] {
        stmt.execute(params![
            user.as_str(),
            name,
            keys.salt,
            keys.iterations,
            keys.stored_key,
            keys.server_key
        ])?;
    }
    Ok(())
}

fn parse_jid(s: &str) -> Result<BareJid> {
    BareJid::new(s).map_err(|e| Error::Corrupt(format!("JID {s:?}: {e}")))
}

fn owner<'a>(
    accounts: &'a mut BTreeMap<String, StoredAccount>,
    user: &str,
) -> Result<&'a mut StoredAccount> {
    accounts
        .get_mut(user)
        .ok_or_else(|| Error::Corrupt(format!("row of unknown account {user:?}")))
}

#[cfg(test)]
mod tests;
