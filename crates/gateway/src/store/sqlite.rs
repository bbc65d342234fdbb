//! The embedded default: one SQLite file. Blocking calls run on tokio's
//! blocking pool; one connection behind a mutex is plenty, since the token
//! center reads from memory and writes only when a credential changes.
//!
//! A fetch is announced before it is made: taking the refresh lease writes a
//! `pending` row, which saving the new credential deletes. A stored
//! credential with a pending fetch may have been superseded at WeChat (the
//! process died, or the disk refused the new one), so it is loaded as
//! expired and fetched again: a restart never trusts a value the previous
//! run could not persist. A store that cannot write refuses the lease, and
//! the center then keeps the current credential instead of fetching.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use super::{AuditEntry, Credential, ExchangeClaim, Kind, Lease, Store, StoreError, AUDIT_KEEP};

/// Credentials in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    ///
    /// The file only caches credentials WeChat can issue again, so a file that
    /// is not a database or is corrupt is moved aside (to
    /// `<path>.corrupt-<unix time>`, logged as an error) and a fresh one is
    /// started: each app then costs one fetch. Any other failure (permissions,
    /// a missing directory) is an error.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let connection = match prepare(path) {
            Err(e) if is_corruption(&e) => {
                let aside = set_aside(path)?;
                tracing::error!(
                    path = %path.display(), moved_to = %aside.display(), error = %e,
                    "the SQLite store was not a readable database; moved it aside and starting empty (credentials will be fetched again)"
                );
                prepare(path)
            }
            other => other,
        }
        .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
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

fn prepare(path: &Path) -> rusqlite::Result<Connection> {
    create_private(path).map_err(|e| {
        rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("creating the file with mode 0600: {e}")),
        )
    })?;
    let connection = Connection::open(path)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA busy_timeout = 5000;
         CREATE TABLE IF NOT EXISTS credentials (
             appid      TEXT    NOT NULL,
             kind       TEXT    NOT NULL,
             value      TEXT    NOT NULL,
             expires_at INTEGER NOT NULL,
             fetched_at INTEGER NOT NULL,
             PRIMARY KEY (appid, kind)
         );
         CREATE TABLE IF NOT EXISTS tallies (
             key    TEXT    NOT NULL PRIMARY KEY,
             period TEXT    NOT NULL,
             n      INTEGER NOT NULL
         );
         CREATE TABLE IF NOT EXISTS audit (
             id    INTEGER PRIMARY KEY AUTOINCREMENT,
             appid TEXT NOT NULL,
             entry TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS notes (
             key   TEXT NOT NULL PRIMARY KEY,
             value TEXT NOT NULL
         );
         CREATE TABLE IF NOT EXISTS exchanges (
             key    TEXT    NOT NULL PRIMARY KEY,
             until  INTEGER NOT NULL,
             answer TEXT
         );
         CREATE INDEX IF NOT EXISTS exchanges_until ON exchanges (until);
         CREATE TABLE IF NOT EXISTS pending (
             appid TEXT NOT NULL,
             kind  TEXT NOT NULL,
             PRIMARY KEY (appid, kind)
         );
         SELECT count(*) FROM credentials;",
    )?;
    Ok(connection)
}

/// Creates the database file, if missing, readable by this user only (0600,
/// whatever the umask adds): it holds live access tokens. SQLite gives its
/// `-wal`, `-shm` and `-journal` files the database file's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Renames the database (and its WAL files) to `<path>.corrupt-<unix time>`.
fn set_aside(path: &Path) -> Result<std::path::PathBuf, StoreError> {
    let stamp = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = std::path::PathBuf::from(aside);
    std::fs::rename(path, &aside)
        .map_err(|e| StoreError(format!("moving the corrupt {} aside: {e}", path.display())))?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(side);
    }
    Ok(aside)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn load(&self, appid: &str, kind: Kind) -> Result<Option<Credential>, StoreError> {
        let appid = appid.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT value, expires_at, fetched_at,
                        EXISTS (SELECT 1 FROM pending p WHERE p.appid = c.appid AND p.kind = c.kind)
                 FROM credentials c WHERE appid = ?1 AND kind = ?2",
                params![appid, kind.as_str()],
                |row| {
                    let fetched_at = row.get(2)?;
                    let superseded: bool = row.get(3)?;
                    Ok(Credential {
                        value: row.get(0)?,
                        // Possibly superseded since: not trusted.
                        expires_at: if superseded { fetched_at } else { row.get(1)? },
                        fetched_at,
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
            let tx = c.unchecked_transaction()?;
            tx.execute(
                "INSERT INTO credentials (appid, kind, value, expires_at, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (appid, kind) DO UPDATE SET
                     value = excluded.value, expires_at = excluded.expires_at, fetched_at = excluded.fetched_at",
                params![appid, kind.as_str(), credential.value, credential.expires_at, credential.fetched_at],
            )?;
            tx.execute(
                "DELETE FROM pending WHERE appid = ?1 AND kind = ?2",
                params![appid, kind.as_str()],
            )?;
            tx.commit()
        })
        .await
    }

    /// Writes the `pending` row: fails when the database cannot be written.
    async fn acquire(
        &self,
        appid: &str,
        kind: Kind,
        _ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let appid = appid.to_owned();
        self.with(move |c| {
            c.execute(
                "INSERT OR IGNORE INTO pending (appid, kind) VALUES (?1, ?2)",
                params![appid, kind.as_str()],
            )
        })
        .await?;
        Ok(Some(Lease {
            owner: String::new(),
            fence: 0,
        }))
    }

    /// Nothing was fetched under the lease: the stored credential stands.
    async fn release(&self, appid: &str, kind: Kind, _lease: &Lease) -> Result<(), StoreError> {
        let appid = appid.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM pending WHERE appid = ?1 AND kind = ?2",
                params![appid, kind.as_str()],
            )
            .map(drop)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn tally(&self, key: &str, period: &str, add: u64) -> Result<u64, StoreError> {
        let (key, period) = (key.to_owned(), period.to_owned());
        self.with(move |c| {
            c.query_row(
                "INSERT INTO tallies (key, period, n) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET
                     n = CASE WHEN period = excluded.period THEN n + excluded.n ELSE excluded.n END,
                     period = excluded.period
                 RETURNING n",
                params![key, period, add as i64],
                |row| row.get::<_, i64>(0),
            )
        })
        .await
        .map(|n| n.max(0) as u64)
    }

    async fn claim_exchange(
        &self,
        key: &str,
        now: u64,
        hold: std::time::Duration,
    ) -> Result<ExchangeClaim, StoreError> {
        let key = key.to_owned();
        let (now, until) = (now as i64, (now + hold.as_secs()) as i64);
        self.with(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.execute("DELETE FROM exchanges WHERE until <= ?1", params![now])?;
            let known = tx
                .query_row(
                    "SELECT answer FROM exchanges WHERE key = ?1",
                    params![key],
                    |row| row.get::<_, Option<String>>(0),
                )
                .optional()?;
            let claim = match known {
                Some(answer) => answer.map_or(ExchangeClaim::Pending, ExchangeClaim::Answered),
                None => {
                    tx.execute(
                        "INSERT INTO exchanges (key, until, answer) VALUES (?1, ?2, NULL)",
                        params![key, until],
                    )?;
                    ExchangeClaim::First
                }
            };
            tx.commit()?;
            Ok(claim)
        })
        .await
    }

    async fn answer_exchange(
        &self,
        key: &str,
        answer: &str,
        _now: u64,
        until: u64,
    ) -> Result<(), StoreError> {
        let (key, answer) = (key.to_owned(), answer.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO exchanges (key, until, answer) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET until = excluded.until, answer = excluded.answer",
                params![key, until as i64, answer],
            )
            .map(drop)
        })
        .await
    }

    async fn release_exchange(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.with(move |c| {
            c.execute(
                "DELETE FROM exchanges WHERE key = ?1 AND answer IS NULL",
                params![key],
            )
            .map(drop)
        })
        .await
    }

    async fn exchanged(&self, key: &str, now: u64) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT answer FROM exchanges WHERE key = ?1 AND until > ?2",
                params![key, now as i64],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }

    async fn note(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.with(move |c| {
            c.query_row(
                "SELECT value FROM notes WHERE key = ?1",
                params![key],
                |row| row.get::<_, String>(0),
            )
            .optional()
        })
        .await
    }

    async fn set_note(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with(move |c| {
            c.execute(
                "INSERT INTO notes (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
        })
        .await
    }

    async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let (appid, json) = (
            entry.appid.clone(),
            serde_json::to_string(entry).expect("an entry serialises"),
        );
        self.with(move |c| {
            c.execute(
                "INSERT INTO audit (appid, entry) VALUES (?1, ?2)",
                params![appid, json],
            )?;
            c.execute(
                "DELETE FROM audit WHERE id <= last_insert_rowid() - ?1",
                params![AUDIT_KEEP as i64],
            )
            .map(drop)
        })
        .await
    }

    async fn audit(
        &self,
        appid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let appid = appid.map(str::to_owned);
        let rows = self
            .with(move |c| {
                let mut query = c.prepare(
                    "SELECT entry FROM audit WHERE ?1 IS NULL OR appid = ?1 ORDER BY id DESC LIMIT ?2",
                )?;
                let rows = query.query_map(params![appid, limit as i64], |row| row.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await?;
        Ok(rows
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
                 INSERT INTO probe (id, n) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = n + 1;",
            )
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(value: &str, fetched_at: u64) -> Credential {
        Credential {
            value: value.into(),
            expires_at: fetched_at + 7200,
            fetched_at,
        }
    }

    /// Issue #16 (2): a fetch announced by the lease but never saved (the
    /// disk refused it, or the process died) leaves the stored credential
    /// untrusted after a restart; a saved or abandoned fetch does not.
    #[tokio::test]
    async fn a_credential_whose_successor_was_not_saved_is_not_trusted_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .save("wx1", Kind::AccessToken, &credential("old", 1000))
            .await
            .unwrap();
        store
            .save("wx1", Kind::JsapiTicket, &credential("ticket", 1000))
            .await
            .unwrap();
        let ttl = std::time::Duration::from_secs(30);
        // A fetch that WeChat refused: the lease is given back, nothing changed.
        let lease = store.acquire("wx1", Kind::JsapiTicket, ttl).await.unwrap();
        store
            .release("wx1", Kind::JsapiTicket, &lease.unwrap())
            .await
            .unwrap();
        // A fetch whose result never reached the disk.
        store
            .acquire("wx1", Kind::AccessToken, ttl)
            .await
            .unwrap()
            .unwrap();
        drop(store);

        let store = SqliteStore::open(&path).unwrap();
        let old = store.load("wx1", Kind::AccessToken).await.unwrap().unwrap();
        assert_eq!(old.value, "old");
        assert!(
            !old.is_valid(1001),
            "a possibly superseded value is expired"
        );
        let ticket = store.load("wx1", Kind::JsapiTicket).await.unwrap().unwrap();
        assert_eq!(ticket, credential("ticket", 1000));
        // Saving the next one makes it trusted again.
        store
            .save("wx1", Kind::AccessToken, &credential("new", 2000))
            .await
            .unwrap();
        let new = store.load("wx1", Kind::AccessToken).await.unwrap().unwrap();
        assert_eq!(new, credential("new", 2000));
    }

    /// Issue #16 (2): a database that cannot be written refuses the lease, so
    /// the center keeps its current credential instead of fetching one it
    /// could not persist.
    #[tokio::test]
    async fn a_read_only_database_refuses_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).unwrap();
        store
            .save("wx1", Kind::AccessToken, &credential("v", 1000))
            .await
            .unwrap();
        store
            .with(|c| c.execute_batch("PRAGMA query_only = ON;"))
            .await
            .unwrap();
        let ttl = std::time::Duration::from_secs(30);
        let refused = store.acquire("wx1", Kind::AccessToken, ttl).await;
        assert!(refused.is_err(), "{refused:?}");
        assert!(store
            .load("wx1", Kind::AccessToken)
            .await
            .unwrap()
            .is_some());
    }
}

#[cfg(all(test, unix))]
mod permissions {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn the_database_and_its_side_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wxgate.db");
        let store = SqliteStore::open(&path).unwrap();
        let credential = Credential {
            value: "token".into(),
            expires_at: 2,
            fetched_at: 1,
        };
        store
            .save("wx1", Kind::AccessToken, &credential)
            .await
            .unwrap();
        for name in ["wxgate.db", "wxgate.db-wal", "wxgate.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
        }
        // A corrupt file is replaced by a fresh, private one.
        drop(store);
        std::fs::write(
            &path,
            b"not a database, long enough to be looked at by sqlite....",
        )
        .unwrap();
        for side in ["wxgate.db-wal", "wxgate.db-shm"] {
            let _ = std::fs::remove_file(dir.path().join(side));
        }
        SqliteStore::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}
