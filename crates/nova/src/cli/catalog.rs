//! `nova catalog validate` and `nova catalog import`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::OutputFormat;
use crate::app::App;
use crate::catalog::location::expand;
use crate::catalog::snapshot::SnapshotInput;
use crate::catalog::{CatalogError, LocationRead, LocationSpec, ReadContext, ReadLimits, RemoteContext, Snapshot, read_location};

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Check catalog files: exit 0 when valid, 1 when any entity or file is invalid.
    Validate(ValidateArgs),
    /// Load catalog files into Nova's database once, as registered locations.
    Import(ImportArgs),
}

#[derive(Args)]
pub struct ValidateArgs {
    /// Files, directories or globs.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Largest file read, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_file_bytes: u64,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Files, directories or globs.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
    #[command(flatten)]
    db: super::DbArgs,
}

pub fn run(cmd: CatalogCommand) -> ExitCode {
    match cmd {
        CatalogCommand::Validate(args) => validate(args),
        CatalogCommand::Import(args) => match super::runtime().block_on(import(args)) {
            Ok(code) => code,
            Err(e) => super::fail(e),
        },
    }
}

fn specs(paths: &[String]) -> anyhow::Result<Vec<LocationSpec>> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    paths.iter().map(|p| LocationSpec::infer(p, &cwd).map_err(|e| anyhow::anyhow!("{p}: {e}"))).collect()
}

/// Shortens `file:/abs/path` to a path relative to the working directory.
fn display_location(location: &str) -> String {
    let path = location.split_once(':').map_or(location, |(_, p)| p);
    let cwd = std::env::current_dir().unwrap_or_default();
    std::path::Path::new(path).strip_prefix(&cwd).map(|p| p.display().to_string()).unwrap_or_else(|_| path.to_string())
}

fn validate(args: ValidateArgs) -> ExitCode {
    let specs = match specs(&args.paths) {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    let limits = ReadLimits { max_file_bytes: args.max_file_bytes, max_depth: 16 };
    let cache = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return super::fail(anyhow::anyhow!("cannot create a temporary directory for git locations: {e}")),
    };
    let remote = RemoteContext::new(cache.path().to_path_buf(), &crate::config::CatalogConfig::default(), Default::default());
    let ctx = ReadContext { limits, remote: &remote, previous: None, progress: None };
    let reads: Vec<(String, LocationRead)> = specs.iter().map(|s| (s.display(), read_location(s, &ctx))).collect();
    let inputs: Vec<SnapshotInput<'_>> = reads.iter().map(|(origin, read)| SnapshotInput { origin: origin.clone(), read }).collect();
    let snapshot = Snapshot::build(&inputs);
    let errors: Vec<CatalogError> =
        snapshot.errors.iter().map(|e| CatalogError { location: display_location(&e.location), ..e.clone() }).collect();
    match args.output {
        OutputFormat::Json => {
            let report = json!({"valid": errors.is_empty(), "entities": snapshot.entities.len(), "errors": errors});
            println!("{}", serde_json::to_string_pretty(&report).expect("report serializes"));
        }
        OutputFormat::Text => {
            for e in &errors {
                println!("{}", e.one_line());
            }
            eprintln!("{} entities, {} errors", snapshot.entities.len(), errors.len());
        }
    }
    if errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let (config, db) = args.db.open().await?;
    db.pool().close().await;
    let specs = specs(&args.paths)?;
    let files: usize = specs.iter().map(|s| expand(s).map(|f| f.len()).unwrap_or(0)).sum();
    let bar = ProgressBar::new(files as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} files {msg}").expect("static template").progress_chars("=> "));
    let app = App::build(config, Vec::new()).await?;
    let catalog = app.state.catalog.clone();
    let mut failed = false;
    for spec in specs {
        let b = bar.clone();
        let progress: crate::catalog::Progress = Arc::new(move |key: &str| {
            b.set_message(key.rsplit('/').next().unwrap_or(key).to_string());
            b.inc(1);
        });
        let read = catalog.read(spec.clone(), None, Some(progress)).await;
        match catalog.adopt(spec.clone(), read).await {
            Ok(r) => {
                bar.println(format!("{}: {} entities, {} errors", spec.display(), r.entities.len(), r.errors.len()));
                for e in &r.errors {
                    bar.println(format!("  {}", e.one_line()));
                }
                failed |= !r.errors.is_empty();
            }
            Err(e) => {
                bar.println(format!("{}: {e}", spec.display()));
                failed = true;
            }
        }
    }
    bar.finish_and_clear();
    let total = catalog.snapshot().entities.len();
    println!("imported; the catalog now holds {total} entities");
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
