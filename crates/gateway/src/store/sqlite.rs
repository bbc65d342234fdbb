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

#[cfg(all(test, unix))]
mod tests {
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
