//! The embedded default: one SQLite file. Blocking calls run on tokio's
//! blocking pool; one connection behind a mutex is plenty, since the token
//! center reads from memory and writes only when a credential changes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::{Credential, Kind, Store, StoreError};

/// Credentials in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = Connection::open(path)
            .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS credentials (
                     appid      TEXT    NOT NULL,
                     kind       TEXT    NOT NULL,
                     value      TEXT    NOT NULL,
                     expires_at INTEGER NOT NULL,
                     fetched_at INTEGER NOT NULL,
                     PRIMARY KEY (appid, kind)
                 );",
            )
            .map_err(|e| StoreError(format!("preparing {}: {e}", path.display())))?;
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            f(&connection).map_err(|e| StoreError(format!("sqlite: {e}")))
        })
        .await
        .map_err(|e| StoreError(format!("sqlite task: {e}")))?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError> {
        let appid = appid.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT value, expires_at, fetched_at FROM credentials WHERE appid = ?1 AND kind = ?2",
                params![appid, kind.as_str()],
                |row| {
                    Ok(Credential {
                        value: row.get(0)?,
                        expires_at: row.get(1)?,
                        fetched_at: row.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn save(
        &self,
        appid: &str,
        kind: Kind,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        let (appid, credential) = (appid.to_owned(), credential.clone());
        self.with(move |c| {
            c.execute(
                "INSERT INTO credentials (appid, kind, value, expires_at, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (appid, kind) DO UPDATE SET
                     value = excluded.value, expires_at = excluded.expires_at, fetched_at = excluded.fetched_at",
                params![appid, kind.as_str(), credential.value, credential.expires_at, credential.fetched_at],
            )
            .map(drop)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}
