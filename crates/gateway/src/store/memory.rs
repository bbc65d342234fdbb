//! The in-memory store: nothing survives a restart. For tests and throwaway runs.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{AuditEntry, Credential, Kind, Store, StoreError, AUDIT_KEEP};

/// Credentials in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    credentials: Mutex<HashMap<(String, Kind), Credential>>,
    /// Newest first.
    audit: Mutex<VecDeque<AuditEntry>>,
    /// key → (period, count).
    tallies: Mutex<HashMap<String, (String, u64)>>,
    notes: Mutex<HashMap<String, String>>,
}

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Kind), Credential>> {
        self.credentials.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError> {
        Ok(self.map().get(&(appid.to_owned(), kind)).cloned())
    }

    async fn save(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        self.map()
            .insert((appid.to_owned(), kind), credential.clone());
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn tally(&self, key: &str, period: &str, add: u64) -> Result<u64, StoreError> {
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        let (at, n) = tallies
            .entry(key.to_owned())
            .or_insert_with(|| (period.to_owned(), 0));
        if at != period {
            (*at, *n) = (period.to_owned(), 0);
        }
        *n += add;
        Ok(*n)
    }

    async fn note(&self, key: &str) -> Result<Option<String>, StoreError> {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        Ok(notes.get(key).cloned())
    }

    async fn set_note(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        audit.push_front(entry.clone());
        audit.truncate(AUDIT_KEEP);
        Ok(())
    }

    async fn audit(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        Ok(audit
            .iter()
            .filter(|e| appid.is_none_or(|a| e.appid == a))
            .take(limit)
            .cloned()
            .collect())
    }
}
