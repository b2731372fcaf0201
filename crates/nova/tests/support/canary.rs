//! The canary kit: a unique, random secret value and a check that it appears nowhere it must
//! not — log lines, HTTP response bodies, every table of the database, the SQLite files,
//! `/metrics`, and the argv of child processes.
//!
//! ```ignore
//! let logs = canary::capture_logs();          // first, before anything logs
//! let argv = nova::process::record_argv();
//! let canary = Canary::new();
//! ... put canary.sensitive() in a store, run the code under test ...
//! let mut check = canary.check();
//! check.logs(&logs).bodies(&bodies).argv(&argv).metrics(&app).await;
//! check.database(&app.state.db).await.sqlite_files(&app.database_url());
//! check.assert_clean();
//! ```
//!
//! The value is searched for as written, base64 (standard and URL-safe, at all three byte
//! alignments) and hex, so an encoded leak is caught too.

use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use nova::storage::{Backend, Db};
use nova_domain::Sensitive;

/// A unique fake secret for one test.
#[derive(Clone)]
pub struct Canary(String);

impl Canary {
    /// A new canary: `canary-` and 32 random hex digits, unique to the test.
    pub fn new() -> Self {
        Self(format!("canary-{}", uuid::Uuid::new_v4().simple()))
    }

    /// A canary for a secret a real component dictates (a test server's password, say).
    pub fn of(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// The value.
    pub fn value(&self) -> &str {
        &self.0
    }

    /// The value as Nova holds secrets.
    pub fn sensitive(&self) -> Sensitive<String> {
        Sensitive::new(self.0.clone())
    }

    /// Every form the value is looked for in: as written, hex, and base64 at each alignment
    /// (the middle of a longer base64 text encodes the value shifted by 0, 1 or 2 bytes;
    /// the ends, which depend on the neighbours, are cut off).
    fn forms(&self) -> Vec<String> {
        let mut forms = vec![self.0.clone(), hex::encode(&self.0)];
        for engine in [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE] {
            for shift in 0..3 {
                let mut bytes = vec![0u8; shift];
                bytes.extend_from_slice(self.0.as_bytes());
                let encoded = engine.encode(&bytes);
                let start = if shift == 0 { 0 } else { (shift * 4).div_ceil(3) + 1 };
                let end = encoded.trim_end_matches('=').len().saturating_sub(3);
                forms.push(encoded[start..end].to_owned());
            }
        }
        forms
    }

    /// A check that collects where the canary was found.
    pub fn check(&self) -> LeakCheck {
        LeakCheck { forms: self.forms(), findings: Vec::new() }
    }
}

/// Where a canary was found; empty means nowhere.
pub struct LeakCheck {
    forms: Vec<String>,
    findings: Vec<String>,
}

impl LeakCheck {
    /// Looks in `bytes`, described as `place`.
    pub fn bytes(&mut self, place: &str, bytes: &[u8]) -> &mut Self {
        for form in &self.forms {
            if bytes.windows(form.len()).any(|w| w == form.as_bytes()) {
                self.findings.push(format!("{place} (as {})", if *form == self.forms[0] { "written" } else { "encoded" }));
                break;
            }
        }
        self
    }

    /// Looks in a text.
    pub fn text(&mut self, place: &str, text: &str) -> &mut Self {
        self.bytes(place, text.as_bytes())
    }

    /// Looks in captured log lines.
    pub fn logs(&mut self, logs: &CapturedLogs) -> &mut Self {
        let text = logs.text();
        self.bytes("the log", text.as_bytes())
    }

    /// Looks in HTTP response bodies.
    pub fn bodies(&mut self, bodies: &[String]) -> &mut Self {
        for (i, body) in bodies.iter().enumerate() {
            self.bytes(&format!("HTTP response body #{i}"), body.as_bytes());
        }
        self
    }

    /// Looks in the argv of every child process spawned since `log` was made.
    pub fn argv(&mut self, log: &nova::process::ArgvLog) -> &mut Self {
        for argv in log.recorded() {
            let line = argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
            self.bytes(&format!("the argv of `{}`", argv[0].to_string_lossy()), line.as_bytes());
        }
        self
    }

    /// Looks in `/metrics` of a running Nova.
    pub async fn metrics(&mut self, app: &super::TestApp) -> &mut Self {
        let body = app.get("/metrics").await.text().await.expect("metrics body");
        self.bytes("/metrics", body.as_bytes())
    }

    /// Looks in every column of every row of every table, as text, on either engine.
    pub async fn database(&mut self, db: &Db) -> &mut Self {
        for (table, rows) in dump_database(db).await {
            for row in rows {
                self.bytes(&format!("database table {table}"), row.as_bytes());
            }
        }
        self
    }

    /// Looks in the SQLite database file and its WAL and shared-memory files (nothing for a
    /// PostgreSQL URL).
    pub fn sqlite_files(&mut self, database_url: &str) -> &mut Self {
        let Some(path) = database_url.strip_prefix("sqlite://") else { return self };
        let path = path.split('?').next().unwrap_or(path);
        let mut seen = 0;
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                seen += 1;
                self.bytes(&format!("the SQLite file {path}{suffix}"), &bytes);
            }
        }
        assert!(seen > 0, "no SQLite file at {path}");
        self
    }

    /// Looks in a file on disk (a store's data file, say).
    pub fn file(&mut self, path: &std::path::Path) -> &mut Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        self.bytes(&format!("the file {}", path.display()), &bytes)
    }

    /// Where the canary was found.
    pub fn findings(&self) -> &[String] {
        &self.findings
    }

    /// Fails the test, listing every place, if the canary was found anywhere.
    pub fn assert_clean(&self) {
        assert!(self.findings.is_empty(), "the canary secret leaked into: {}", self.findings.join("; "));
    }
}

/// Every table's rows, each row's columns cast to text and joined.
pub async fn dump_database(db: &Db) -> Vec<(String, Vec<String>)> {
    let pool = db.pool();
    let mut out = Vec::new();
    match db.backend() {
        Backend::Sqlite => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetch_all(pool).await.expect("list SQLite tables");
            for table in tables {
                let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{}')", table.replace('\'', "''")))).fetch_all(pool).await.expect("list columns");
                let row = columns.iter().map(|c| format!("COALESCE(CAST(\"{}\" AS TEXT), '')", c.replace('"', "\"\""))).collect::<Vec<_>>().join(" || char(31) || ");
                // As bytes: a BLOB column cast to text need not be UTF-8.
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT CAST({row} AS BLOB) FROM \"{}\"", table.replace('"', "\"\"")))).fetch_all(pool).await.expect("dump a SQLite table");
                let rows = rows.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
                out.push((table, rows));
            }
        }
        Backend::Postgres => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')")
                .fetch_all(pool)
                .await
                .expect("list PostgreSQL tables");
            for table in tables {
                // A row cast to text is every column, in PostgreSQL's row literal syntax.
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT CAST(t AS TEXT) FROM {table} AS t"))).fetch_all(pool).await.expect("dump a PostgreSQL table");
                out.push((table, rows));
            }
        }
    }
    assert!(!out.is_empty(), "the database has no tables to look in");
    out
}

/// Log lines captured in memory, as JSON lines like production writes them.
#[derive(Clone)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far by this test binary.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary, a global subscriber that writes every event at every level
/// (TRACE, Nova's and its libraries') as JSON lines into memory, and returns the capture. Call
/// it first in every test of the binary, before anything else sets up logging.
pub fn capture_logs() -> CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = CapturedLogs(Arc::new(Mutex::new(Vec::new())));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("capture_logs() runs before any other log set-up in this test binary");
        logs
    })
    .clone()
}
