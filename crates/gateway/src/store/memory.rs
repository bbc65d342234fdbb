//! The in-memory store: nothing survives a restart. For tests and throwaway runs.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{AuditEntry, Credential, ExchangeClaim, Kind, Store, StoreError, AUDIT_KEEP};

/// Credentials in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    credentials: Mutex<HashMap<(String, Kind), Credential>>,
    /// Newest first.
    audit: Mutex<VecDeque<AuditEntry>>,
    /// key → (period, count).
    tallies: Mutex<HashMap<String, (String, u64)>>,
    notes: Mutex<HashMap<String, String>>,
    /// One-time exchanges: key → (until, answer; `None` while pending).
    exchanges: Mutex<HashMap<String, (u64, Option<String>)>>,
}

impl MemoryStore {
    fn exchanges(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Option<String>)>> {
        self.exchanges.lock().unwrap_or_else(|p| p.into_inner())
    }

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

    async fn claim_exchange(
        &self,
        key: &str,
        now: u64,
        hold: std::time::Duration,
    ) -> Result<ExchangeClaim, StoreError> {
        let mut exchanges = self.exchanges();
        exchanges.retain(|_, (until, _)| *until > now);
        if let Some((_, answer)) = exchanges.get(key) {
            return Ok(answer
                .clone()
                .map_or(ExchangeClaim::Pending, ExchangeClaim::Answered));
        }
        exchanges.insert(key.to_owned(), (now + hold.as_secs(), None));
        Ok(ExchangeClaim::First)
    }

    async fn answer_exchange(
        &self,
        key: &str,
        answer: &str,
        _now: u64,
        until: u64,
    ) -> Result<(), StoreError> {
        (self.exchanges()).insert(key.to_owned(), (until, Some(answer.to_owned())));
        Ok(())
    }

    async fn release_exchange(&self, key: &str) -> Result<(), StoreError> {
        let mut exchanges = self.exchanges();
        if exchanges
            .get(key)
            .is_some_and(|(_, answer)| answer.is_none())
        {
            exchanges.remove(key);
        }
        Ok(())
    }

    async fn exchanged(&self, key: &str, now: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .exchanges()
            .get(key)
            .filter(|(until, _)| *until > now)
            .and_then(|(_, answer)| answer.clone()))
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
