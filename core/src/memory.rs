//! Accounts in memory: the store of the core's unit tests, and the model
//! every other store must behave like (the conformance suite runs on it too).

use std::collections::BTreeMap;
use std::sync::Mutex;

use pam_mfa_protocol::username::Username;

use crate::account::{Account, Durability};
use crate::storage::{Locked, Records, StorageError};

/// Accounts in a map; gone when the process ends.
#[derive(Default)]
pub struct MemoryRecords {
    accounts: Mutex<BTreeMap<Username, Account>>,
}

/// A [`crate::storage::Storage`] in memory.
pub type MemoryStore = Locked<MemoryRecords>;

impl MemoryStore {
    pub fn empty() -> MemoryStore {
        Locked::new(MemoryRecords::default())
    }
}

impl MemoryRecords {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Username, Account>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Records for MemoryRecords {
    fn load(&self, user: &Username) -> Result<Option<Account>, StorageError> {
        Ok(self.map().get(user).cloned())
    }

    fn save(&self, user: &Username, account: &Account, _: Durability) -> Result<(), StorageError> {
        self.map().insert(user.clone(), account.clone());
        Ok(())
    }

    fn remove(&self, user: &Username) -> Result<bool, StorageError> {
        Ok(self.map().remove(user).is_some())
    }

    fn users(&self) -> Result<Vec<(Username, u64)>, StorageError> {
        Ok(self.map().iter().map(|(u, a)| (u.clone(), a.enrolled_at)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;
    use crate::conformance::Subject;

    crate::storage_conformance!(|| Subject::new(MemoryStore::empty(), ()));
}
