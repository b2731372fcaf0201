//! `nova audit verify` and `nova audit export`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::{DbArgs, OutputFormat};
use crate::audit::{AuditLog, AuditQuery};
use crate::storage::now_ms;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and report the first broken link (exit 1 if any).
    Verify(VerifyArgs),
    /// Write events as JSON lines, oldest first.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Only events newer than this: a duration (`24h`, `7d`) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
}

pub fn run(cmd: AuditCommand) -> ExitCode {
    let result = super::runtime().block_on(async {
        match cmd {
            AuditCommand::Verify(args) => verify(args).await,
            AuditCommand::Export(args) => export(args).await,
        }
    });
    result.unwrap_or_else(super::fail)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (config, db) = args.db.open().await?;
    let report = AuditLog::new(db, config.audit.log_events).verify().await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => match &report.broken {
            None => println!("audit chain intact: {} events verified", report.checked),
            Some(b) => println!("audit chain BROKEN at event {}: {} ({} events verified before it)", b.seq, b.reason, report.checked),
        },
    }
    Ok(if report.broken.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Parses `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(d) = humantime_serde::re::humantime::parse_duration(s) {
        return Ok(now_ms() - Duration::as_millis(&d) as i64);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| anyhow::anyhow!("--since: {s:?} is neither a duration (24h, 7d) nor an RFC 3339 time"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    let (config, db) = args.db.open().await?;
    let log = AuditLog::new(db, config.audit.log_events);
    // Pages come newest first; collect sequence ranges and print oldest first.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let (events, next) = log.query(&AuditQuery { since, before_seq: before, limit: 1000, ..Default::default() }).await?;
        pages.push(events);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for event in pages.iter().rev().flat_map(|p| p.iter().rev()) {
        serde_json::to_writer(&mut out, event)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
