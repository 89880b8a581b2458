//! What the server keeps across restarts, as the core task sees it: a small trait over the
//! storage, so that the core is tested against memory and runs against SQLite.

use std::collections::BTreeMap;

use jid::BareJid;

use crate::model::Account;

/// The name and groups of a roster item (RFC 6121 §2.1.2): what clients set, which the model
/// server does not need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemMeta {
    /// The handle the user gave the contact.
    pub name: Option<String>,
    /// The groups it belongs to.
    pub groups: Vec<String>,
}

/// One account as stored: its roster and block list, and its items' names and groups.
pub type StoredAccount = (BareJid, Account, BTreeMap<BareJid, ItemMeta>);

/// A storage failure (the server stops rather than acknowledge what it could not keep).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// What survives a restart.
pub trait Store: Send {
    /// Every account with its roster items' names and groups.
    fn load(&mut self) -> Result<Vec<StoredAccount>, StoreError>;
    /// Writes the rosters and block lists of `accounts`, all or nothing; returns once they
    /// are durable against a crash of the process.
    fn save(&mut self, accounts: &[(&BareJid, &Account)]) -> Result<(), StoreError>;
    /// Sets the name and groups of `user`'s item for `contact`.
    fn set_meta(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        meta: &ItemMeta,
    ) -> Result<(), StoreError>;
    /// Creates an account; false if it exists.
    fn create(&mut self, user: &BareJid, password: &str) -> Result<bool, StoreError>;
    /// True if `password` is `user`'s.
    fn check_password(&mut self, user: &BareJid, password: &str) -> Result<bool, StoreError>;
    /// Counts this boot and returns its number (1 for the first).
    fn next_boot(&mut self) -> Result<u64, StoreError>;
}

/// A [`Store`] in memory (tests; a server that keeps nothing).
#[derive(Debug, Default)]
pub struct MemStore {
    accounts: BTreeMap<BareJid, (String, Account, BTreeMap<BareJid, ItemMeta>)>,
    boots: u64,
}

impl Store for MemStore {
    fn load(&mut self) -> Result<Vec<StoredAccount>, StoreError> {
        Ok(self
            .accounts
            .iter()
            .map(|(u, (_, a, m))| (u.clone(), a.clone(), m.clone()))
            .collect())
    }

    fn save(&mut self, accounts: &[(&BareJid, &Account)]) -> Result<(), StoreError> {
        for (user, account) in accounts {
            if let Some(entry) = self.accounts.get_mut(*user) {
                entry.1 = (*account).clone();
            }
        }
        Ok(())
    }

    fn set_meta(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        meta: &ItemMeta,
    ) -> Result<(), StoreError> {
        if let Some(entry) = self.accounts.get_mut(user) {
            entry.2.insert(contact.clone(), meta.clone());
        }
        Ok(())
    }

    fn create(&mut self, user: &BareJid, password: &str) -> Result<bool, StoreError> {
        if self.accounts.contains_key(user) {
            return Ok(false);
        }
        self.accounts.insert(
            user.clone(),
            (password.to_owned(), Account::default(), BTreeMap::new()),
        );
        Ok(true)
    }

    fn check_password(&mut self, user: &BareJid, password: &str) -> Result<bool, StoreError> {
        Ok(self
            .accounts
            .get(user)
            .is_some_and(|(p, _, _)| p == password))
    }

    fn next_boot(&mut self) -> Result<u64, StoreError> {
        self.boots += 1;
        Ok(self.boots)
    }
}
