//! `nova doctor`: checks every configured integration with a real, cheap call and prints
//! what to fix (crate::doctor). Exit 0 when nothing fails (warnings allowed), 1 when a check
//! fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::OutputFormat;
use crate::config::Config;
use crate::doctor::{self, DoctorReport};
use crate::health::{HealthReport, HealthStatus};
use crate::telemetry::{LogTarget, init_logging};

#[derive(Args)]
pub struct DoctorArgs {
    /// Configuration file (TOML), as given to `nova serve`; `NOVA_*__*` variables apply too.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Longest time one check may take, in seconds; checks run concurrently.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
}

pub fn run(args: DoctorArgs) -> ExitCode {
    match super::runtime().block_on(doctor(&args)) {
        Ok(report) => {
            match args.output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).expect("the report serializes")),
                OutputFormat::Text => print!("{}", report.table()),
            }
            if report.status == HealthStatus::Fail { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Err(e) => super::fail(e),
    }
}

async fn doctor(args: &DoctorArgs) -> anyhow::Result<DoctorReport> {
    let started = Instant::now();
    let source = args.config.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "defaults and NOVA_* variables".into());
    let config = match Config::load(args.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            let fix = "fix the setting the message names (docs/CONFIG.md); nothing else was checked";
            return Ok(DoctorReport::of(vec![HealthReport::fail("config", source, e.to_string(), fix)], started.elapsed()));
        }
    };
    // Logs go to stderr and only when something is wrong: the report is the output.
    let mut log = config.log.clone();
    log.level = "warn".into();
    init_logging(&log, LogTarget::Stderr);
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let base = args.config.as_deref().and_then(Path::parent).map(|p| cwd.join(p)).unwrap_or(cwd);
    Ok(doctor::run(doctor::checks_for(&config, &source, &base), Duration::from_secs(args.timeout.max(1))).await)
}
