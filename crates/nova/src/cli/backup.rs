//! `nova backup --to FILE`: a consistent copy of the live SQLite database, taken while Nova
//! runs (SQLite's `VACUUM INTO`). PostgreSQL is backed up with its own tools (docs/DEPLOY.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::storage::{Db, sqlite_path};

#[derive(Args)]
pub struct BackupArgs {
    /// Configuration file (for the database URL).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, overriding the configuration.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Where to write the copy; an existing file is not overwritten.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

pub fn run(args: BackupArgs) -> ExitCode {
    match super::runtime().block_on(backup(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(e),
    }
}

async fn backup(args: &BackupArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(url) = &args.database_url {
        config.database.url = url.clone();
    }
    let url = &config.database.url;
    let Some(path) = sqlite_path(url) else {
        anyhow::bail!("database.url is a PostgreSQL database; back it up with pg_dump (docs/DEPLOY.md)");
    };
    if path == ":memory:" || !Path::new(path).exists() {
        anyhow::bail!("no SQLite database at {path}");
    }
    if args.to.exists() {
        anyhow::bail!("{} exists; the backup does not overwrite files", args.to.display());
    }
    let db = Db::connect(url, 1).await.with_context(|| format!("cannot open the database {path}"))?;
    db.backup_sqlite(&args.to).await.with_context(|| format!("cannot write the backup to {}", args.to.display()))?;
    let size = std::fs::metadata(&args.to).map(|m| m.len()).unwrap_or(0);
    eprintln!("backed up {path} to {} ({size} bytes)", args.to.display());
    Ok(())
}
