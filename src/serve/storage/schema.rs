//! The database schema, its versions and the encoding of model values in rows.
//!
//! The schema version is SQLite's `user_version`. [`MIGRATIONS`]`[i]` takes a database from
//! version `i` to `i + 1`, each in its own transaction with the version bump, so a crash
//! during a migration leaves the previous version intact. A database newer than this code is
//! refused rather than guessed at.

use rusqlite::{Connection, TransactionBehavior};

use super::Error;
use crate::model::{NamedState, Subscription};

/// Version 1: accounts with their SCRAM records, rosters (the model's subscription state as
/// its five facts, with the invariants of RFC 6121 Appendix A.1 and §3.4 as CHECKs, plus the
/// item's name and groups), XEP-0191 block lists, and the boot counter with the current
/// epoch.
const V1: &str = "
CREATE TABLE boot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL CHECK (count >= 0),
    epoch INTEGER NOT NULL
);
INSERT INTO boot (id, count, epoch) VALUES (1, 0, 0);
CREATE TABLE account (
    jid TEXT PRIMARY KEY NOT NULL
) WITHOUT ROWID;
CREATE TABLE scram (
    jid TEXT NOT NULL REFERENCES account (jid) ON DELETE CASCADE,
    hash TEXT NOT NULL CHECK (hash IN ('SHA-1', 'SHA-256')),
    salt BLOB NOT NULL CHECK (length(salt) > 0),
    iterations INTEGER NOT NULL CHECK (iterations >= 4096),
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (jid, hash)
) WITHOUT ROWID;
CREATE TABLE roster (
    user TEXT NOT NULL REFERENCES account (jid) ON DELETE CASCADE,
    contact TEXT NOT NULL,
    sub_to INTEGER NOT NULL CHECK (sub_to IN (0, 1)),
    sub_from INTEGER NOT NULL CHECK (sub_from IN (0, 1)),
    pending_out INTEGER NOT NULL CHECK (pending_out IN (0, 1)),
    pending_in INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
    approved INTEGER NOT NULL CHECK (approved IN (0, 1)),
    name TEXT,
    PRIMARY KEY (user, contact),
    CHECK (NOT (sub_to AND pending_out)),
    CHECK (NOT (sub_from AND pending_in)),
    CHECK (NOT (approved AND (sub_from OR pending_in)))
) WITHOUT ROWID;
CREATE TABLE roster_group (
    user TEXT NOT NULL,
    contact TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (user, contact, name),
    FOREIGN KEY (user, contact) REFERENCES roster (user, contact) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE block (
    user TEXT NOT NULL REFERENCES account (jid) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    PRIMARY KEY (user, jid)
) WITHOUT ROWID;
";

/// Version 2: the caches of peers' presence a graceful stop keeps for the next start (XEP
/// §Persistence of Epochs and Caches), each with the peer epoch it belongs to; an entry is
/// the XEP's `<item/>` element, as serialised on the wire.
const V2: &str = "
CREATE TABLE peer_cache (
    peer TEXT PRIMARY KEY NOT NULL,
    epoch INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE peer_cache_item (
    peer TEXT NOT NULL REFERENCES peer_cache (peer) ON DELETE CASCADE,
    publisher TEXT NOT NULL,
    item TEXT NOT NULL,
    PRIMARY KEY (peer, publisher)
) WITHOUT ROWID;
";

/// The migrations, in order: entry `i` takes `user_version` `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this code reads and writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The migration entry point: brings the database to [`SCHEMA_VERSION`], one transaction per
/// step.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Error> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", from as u32 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A subscription as its row's five flags: to, from, pending out, pending in, pre-approved.
pub(super) type Flags = [bool; 5];

/// The row's flags of `sub`.
pub(super) fn encode(sub: &Subscription) -> Flags {
    [
        sub.to(),
        sub.from(),
        sub.pending_out(),
        sub.pending_in(),
        sub.approved(),
    ]
}

/// The subscription of a row's flags: the one model state (of the nine named states, with
/// or without a pre-approval) they encode; `None` if they break the invariants (which the
/// CHECKs already exclude).
pub(super) fn decode(flags: Flags) -> Option<Subscription> {
    NamedState::ALL
        .iter()
        .map(|s| Subscription::named(*s))
        .flat_map(|s| [Some(s), s.with_approval()])
        .flatten()
        .find(|s| encode(s) == flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_nothing_else_decodes() {
        let mut decoded = 0;
        for bits in 0u8..32 {
            let flags: Flags = std::array::from_fn(|i| bits & (1 << i) != 0);
            if let Some(sub) = decode(flags) {
                assert_eq!(encode(&sub), flags);
                decoded += 1;
            }
        }
        // Nine named states, and a pre-approval on those without `from` or `pending in`
        // (RFC 6121 §3.4): "None", "None + Pending Out", "To".
        let approvable = NamedState::ALL
            .iter()
            .filter(|s| Subscription::named(**s).with_approval().is_some())
            .count();
        assert_eq!(decoded, 9 + approvable);
        assert_eq!(approvable, 3);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap(); // idempotent
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(Error::SchemaTooNew { found, supported }) if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ));
    }
}
