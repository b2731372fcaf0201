//! Storage: one sqlx pool over SQLite or PostgreSQL, chosen by the database URL.
//!
//! Queries are written once, in PostgreSQL's `$1` placeholder style, and passed through
//! [`Db::sql`], which rewrites them to SQLite's numbered `?1` form when needed. Types crossing
//! the boundary are kept to what both engines share: `TEXT`, `BIGINT` (times are Unix
//! milliseconds), `INTEGER` and JSON stored as `TEXT`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database handle shared by every part of Nova.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: cannot create directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("database: stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Applied migrations compared with the embedded ones (versions are the file names' prefixes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Migrations this binary embeds.
    pub embedded: usize,
    /// Rows in the database's migration table.
    pub applied: usize,
    /// Embedded but not applied yet: `nova serve` applies them at start.
    pub pending: Vec<i64>,
    /// Applied by a binary that knows migrations this one does not (a newer Nova).
    pub unknown: Vec<i64>,
    /// Started but not finished.
    pub failed: Vec<i64>,
    /// Applied with different contents than this binary embeds.
    pub modified: Vec<i64>,
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Db {
    /// Connects, creating the SQLite file (and its directory) when needed. Migrations are not
    /// run here; call [`Db::migrate`]. A query waits at most 10 s for a connection.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StorageError> {
        Self::connect_with(url, max_connections, Duration::from_secs(10)).await
    }

    /// [`Db::connect`], where a query waits at most `acquire_timeout` for a connection (while
    /// the database is down, each new connection is retried until then).
    pub async fn connect_with(url: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_string(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // A small page cache per connection: Nova reads the catalog from memory, not
                        // from SQLite, so the default 2 MB per connection would only cost memory.
                        conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA cache_size = -512;").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and then writes after another
    /// connection wrote fails at once with "database is locked", where this one waits its turn
    /// (the busy timeout). On PostgreSQL it is a plain `BEGIN`. Every transaction in Nova writes,
    /// so every one begins here.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StorageError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Brings the schema up to date.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// How the database's applied migrations compare with the ones this binary embeds, for
    /// `nova doctor`. A database no migration ran on yet has every migration pending.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StorageError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        let applied: Vec<(i64, i64, Vec<u8>)> = match sqlx::query_as("SELECT version, CAST(success AS INTEGER), checksum FROM _sqlx_migrations").fetch_all(&self.pool).await {
            Ok(rows) => rows,
            // The table is made by the first migration run; without it nothing was applied.
            Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let embedded: Vec<&sqlx::migrate::Migration> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
        let mut status = MigrationStatus { embedded: embedded.len(), applied: applied.len(), ..Default::default() };
        for m in &embedded {
            match applied.iter().find(|(v, _, _)| *v == m.version) {
                None => status.pending.push(m.version),
                Some((_, success, _)) if *success == 0 => status.failed.push(m.version),
                Some((_, _, checksum)) if checksum.as_slice() != &*m.checksum => status.modified.push(m.version),
                Some(_) => {}
            }
        }
        status.unknown = applied.iter().map(|(v, _, _)| *v).filter(|v| !embedded.iter().any(|m| m.version == *v)).collect();
        Ok(status)
    }

    /// Writes a consistent copy of a SQLite database to `path` (SQLite's `VACUUM INTO`), while
    /// other connections keep reading and writing. `path` must not exist. PostgreSQL has its
    /// own tools (`pg_dump`); on it this fails.
    pub async fn backup_sqlite(&self, path: &std::path::Path) -> Result<(), StorageError> {
        sqlx::query(self.sql("VACUUM INTO $1")).bind(path.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rewrites a query written with `$1` placeholders for the engine in use. The result is
    /// cached, so calling this on every query costs a map lookup.
    pub fn sql(&self, query: &'static str) -> &'static str {
        match self.backend {
            Backend::Postgres => query,
            Backend::Sqlite => sqlite_placeholders(query),
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// `query` with `$N` placeholders written `?N`, cached per query text. A `&'static str` is
/// identified by its address *and* length (two queries may start at the same address, one a
/// prefix of the other); a key that mixed the two into one number once handed the audit log's
/// INSERT another statement's text.
fn sqlite_placeholders(query: &'static str) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<(usize, usize), &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry((query.as_ptr() as usize, query.len())).or_insert_with(|| Box::leak(query.replace('$', "?").into_boxed_str()))
}

/// The file of a `sqlite:` URL (`:memory:` for an in-memory database); `None` for other URLs.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    Some(path.split_once('?').map_or(path, |(p, _)| p))
}

fn sqlite_url(url: &str) -> Result<String, StorageError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path != ":memory:" {
        if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: dir.display().to_string(), source })?;
        }
    }
    let mut query = query.to_string();
    if !query.contains("mode=") {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("mode=rwc");
    }
    Ok(format!("sqlite://{path}?{query}"))
}

/// Now, as Unix milliseconds: the time representation used in every table.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_rewrites_never_mix_up_two_queries() {
        // Two slices of one 8-aligned text: (p, 3) and (p + 1, 2). Their address XOR length
        // is the same number (p + 3), which the old cache key could not tell apart.
        #[repr(C, align(8))]
        struct Aligned([u8; 8]);
        static TEXT: Aligned = Aligned(*b"$1$2$3$4");
        let text: &'static str = std::str::from_utf8(&TEXT.0).unwrap();
        let (a, b) = (&text[0..3], &text[1..3]);
        assert_eq!((a.as_ptr() as usize) ^ a.len(), (b.as_ptr() as usize) ^ b.len());
        assert_eq!(sqlite_placeholders(a), "?1?");
        assert_eq!(sqlite_placeholders(b), "1?");
        assert_eq!(sqlite_placeholders(a), "?1?", "a cached rewrite is the query's own");
    }

    #[test]
    fn sqlite_placeholders_are_numbered() {
        let q = "SELECT a FROM t WHERE b = $2 AND c = $1";
        assert_eq!(q.replace('$', "?"), "SELECT a FROM t WHERE b = ?2 AND c = ?1");
    }

    #[test]
    fn sqlite_url_gets_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/nova.db", dir.path().display());
        assert!(sqlite_url(&url).unwrap().ends_with("nova.db?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactions_that_read_before_they_write_wait_for_each_other() {
        // A deferred transaction that reads, then writes after another connection wrote, fails
        // at once on SQLite with "database is locked" (no busy wait can help it): seen in CI
        // when two registry refreshes with nothing new saved at the same time.
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&format!("sqlite://{}/nova.db", dir.path().display()), 8).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(db.pool()).await.unwrap();
        sqlx::query("INSERT INTO t (n) VALUES (0)").execute(db.pool()).await.unwrap();
        let writers = (0..32).map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await?;
                let n: i64 = sqlx::query_scalar("SELECT n FROM t").fetch_one(&mut *tx).await?;
                tokio::task::yield_now().await;
                sqlx::query(db.sql("UPDATE t SET n = $1")).bind(n + 1).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok::<_, StorageError>(())
            })
        });
        for w in futures_util::future::join_all(writers).await {
            w.unwrap().unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT n FROM t").fetch_one(db.pool()).await.unwrap();
        assert_eq!(n, 32, "every increment counted: the transactions ran one after another");
    }
}
