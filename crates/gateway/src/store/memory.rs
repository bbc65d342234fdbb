//! The in-memory store: nothing survives a restart. For tests and throwaway runs.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Credential, Kind, Store, StoreError};

/// Credentials in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    credentials: Mutex<HashMap<(String, Kind), Credential>>,
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
}
