use super::*;
use crate::model::{NamedState, Subscription};

fn jid(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn creds(password: &str) -> Credentials {
    Credentials::with_salts(password, b"salt-one", b"salt-two", 4096).unwrap()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "presence-sync-storage-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("db.sqlite")
}

#[test]
fn accounts_and_credentials() {
    let mut s = Storage::open_in_memory().unwrap();
    let juliet = jid("juliet@capulet.lit");
    assert_eq!(s.credentials(&juliet).unwrap(), None);
    assert!(s.create_account(&juliet, &creds("r0m30")).unwrap());
    assert!(
        !s.create_account(&juliet, &creds("other")).unwrap(),
        "exists"
    );
    let c = s.credentials(&juliet).unwrap().unwrap();
    assert_eq!(c, creds("r0m30"), "the first registration stands");
    assert!(c.verify_password("r0m30"));

    assert!(s.set_credentials(&juliet, &creds("n3w")).unwrap());
    assert!(
        s.credentials(&juliet)
            .unwrap()
            .unwrap()
            .verify_password("n3w")
    );
    assert!(
        !s.set_credentials(&jid("nobody@capulet.lit"), &creds("x"))
            .unwrap()
    );

    let mut weak = creds("x");
    weak.sha1.iterations = 1000;
    assert!(matches!(
        s.create_account(&jid("w@capulet.lit"), &weak),
        Err(Error::InvalidCredentials)
    ));

    // Removing the account removes its roster and block list (foreign keys).
    let mut a = Account::default();
    a.roster.set(
        jid("romeo@montague.lit"),
        Subscription::named(NamedState::Both),
    );
    a.blocked.block(jid("tybalt@capulet.lit"));
    s.save_account(&juliet, &a).unwrap();
    assert!(s.remove_account(&juliet).unwrap());
    assert!(!s.remove_account(&juliet).unwrap());
    assert_eq!(s.credentials(&juliet).unwrap(), None);
    assert!(s.load().unwrap().is_empty());
    s.check().unwrap();
}

#[test]
fn save_diffs_and_keeps_meta_of_unchanged_items() {
    let mut s = Storage::open_in_memory().unwrap();
    let juliet = jid("juliet@capulet.lit");
    let romeo = jid("romeo@montague.lit");
    let nurse = jid("nurse@capulet.lit");
    s.create_account(&juliet, &creds("x")).unwrap();

    let mut a = Account::default();
    a.roster.set(
        romeo.clone(),
        Subscription::named(NamedState::NonePendingOut),
    );
    a.roster.set(
        nurse.clone(),
        Subscription::named(NamedState::None)
            .with_approval()
            .unwrap(),
    );
    s.save_account(&juliet, &a).unwrap();
    let meta = ItemMeta {
        name: Some("Romeo".into()),
        groups: ["Friends".to_owned(), "Montague".to_owned()].into(),
    };
    s.set_item_meta(&juliet, &romeo, &meta).unwrap();

    // The subscription changes: name and groups stay.
    a.roster
        .entry(romeo.clone())
        .inbound(crate::model::SubscriptionStanza::Subscribed);
    s.save_account(&juliet, &a).unwrap();
    let loaded = s.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].user, juliet);
    assert_eq!(loaded[0].account, a);
    assert_eq!(loaded[0].meta, RosterMeta::from([(romeo.clone(), meta)]));
    assert_eq!(
        loaded[0].account.roster.get(&romeo).unwrap().name(),
        NamedState::To
    );
    assert!(loaded[0].account.roster.get(&nurse).unwrap().approved());

    // The item is removed: its name and groups go with it.
    a.roster.remove(&romeo);
    s.save_account(&juliet, &a).unwrap();
    let loaded = s.load().unwrap();
    assert_eq!(loaded[0].account, a);
    assert!(loaded[0].meta.is_empty());

    // Meta for an item not yet stored creates it in state "None" (RFC 6121 §2.3.2).
    s.set_item_meta(&juliet, &romeo, &ItemMeta::default())
        .unwrap();
    let loaded = s.load().unwrap();
    assert_eq!(
        loaded[0].account.roster.get(&romeo),
        Some(&Subscription::NONE)
    );
    s.check().unwrap();
}

#[test]
fn unknown_accounts_are_refused_and_uncommitted_writes_roll_back() {
    let mut s = Storage::open_in_memory().unwrap();
    let ghost = jid("ghost@capulet.lit");
    assert!(matches!(
        s.save_account(&ghost, &Account::default()),
        Err(Error::NoSuchAccount(_))
    ));
    assert!(matches!(
        s.set_item_meta(&ghost, &jid("a@b.c"), &ItemMeta::default()),
        Err(Error::NoSuchAccount(_))
    ));
    let juliet = jid("juliet@capulet.lit");
    s.create_account(&juliet, &creds("x")).unwrap();
    let mut a = Account::default();
    a.blocked.block(jid("montague.lit"));
    {
        let mut w = s.write().unwrap();
        w.save_account(&juliet, &a).unwrap();
        // dropped without commit
    }
    assert_eq!(s.load().unwrap()[0].account, Account::default());
    let mut w = s.write().unwrap();
    w.save_account(&juliet, &a).unwrap();
    w.commit().unwrap();
    assert_eq!(s.load().unwrap()[0].account, a);
}

#[test]
fn boots_count_and_draw_new_epochs_across_reopening() {
    let path = temp_path("boots");
    let mut epochs = Vec::new();
    for n in 1..=3u64 {
        let mut s = Storage::open(&path).unwrap();
        let boot = s.next_boot().unwrap();
        assert_eq!(boot.number, n);
        assert_eq!(boot.previous, epochs.last().copied());
        assert!(!epochs.contains(&boot.epoch));
        epochs.push(boot.epoch);
    }
    let s = Storage::open(&path).unwrap();
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = s
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1, "NORMAL");
    let version: u32 = s
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(s);
    let s = Storage::open_with(
        &path,
        Options {
            durability: Durability::PowerLoss,
        },
    )
    .unwrap();
    let sync: i64 = s
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "FULL");
    drop(s);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn invariant_breaking_rows_are_refused_by_the_schema() {
    let mut s = Storage::open_in_memory().unwrap();
    let juliet = jid("juliet@capulet.lit");
    s.create_account(&juliet, &creds("x")).unwrap();
    // to + pending out, from + pending in, approved + from: no model state.
    for flags in ["1,0,1,0,0", "0,1,0,1,0", "0,1,0,0,1"] {
        let sql = format!(
            "INSERT INTO roster (user, contact, sub_to, sub_from, pending_out, pending_in, approved) \
             VALUES ('juliet@capulet.lit', 'x@y.z', {flags})"
        );
        assert!(s.conn.execute(&sql, []).is_err(), "{flags}");
    }
}

/// XEP §Persistence of Epochs and Caches: what a graceful stop keeps comes back whole at the
/// next start (resources, shows, priorities, statuses, except lists) and is then gone from
/// the database (PS-81).
#[test]
fn kept_caches_come_back_once() {
    use crate::model::{PublisherPresence, ResourcePresence, Show};
    let path = temp_path("kept-caches");
    let mut romeo = PublisherPresence::default();
    romeo.resources.insert(
        "orchard".into(),
        ResourcePresence {
            show: Show::Away,
            priority: 5,
            statuses: [(String::new(), "under the balcony".to_owned())].into(),
            ..ResourcePresence::default()
        },
    );
    romeo
        .resources
        .insert("home".into(), ResourcePresence::default());
    romeo.except.insert(jid("tybalt@capulet.lit"));
    let mut benvolio = PublisherPresence::default();
    benvolio
        .resources
        .insert("street".into(), ResourcePresence::default());
    let kept = vec![KeptCache {
        peer: "montague.lit".into(),
        epoch: Epoch(u64::MAX - 7),
        entries: vec![
            (jid("benvolio@montague.lit"), benvolio),
            (jid("romeo@montague.lit"), romeo),
        ],
    }];
    {
        let mut s = Storage::open(&path).unwrap();
        s.keep_caches(&kept).unwrap();
    }
    let mut s = Storage::open(&path).unwrap();
    assert_eq!(s.take_caches().unwrap(), kept);
    assert_eq!(
        s.take_caches().unwrap(),
        Vec::new(),
        "read once, then deleted"
    );
    // A later stop replaces what an earlier one kept.
    s.keep_caches(&kept).unwrap();
    s.keep_caches(&[]).unwrap();
    assert_eq!(s.take_caches().unwrap(), Vec::new());
}
