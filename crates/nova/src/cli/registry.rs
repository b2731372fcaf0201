//! `nova registry drift` and `nova registry check`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::OutputFormat;
use crate::app::{App, resolve_locations};
use crate::config::{Config, LocationConfig};
use crate::registry::drift;
use crate::telemetry::{LogTarget, init_logging};

#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Report drift between registry repository tags and catalog annotations: exit 0 when
    /// there is none, 1 when there is.
    Drift(DriftArgs),
    /// Check every configured registry with a real, cheap call: exit 1 when one fails.
    Check(CommonArgs),
}

#[derive(Args)]
pub struct CommonArgs {
    /// Configuration file (registries, database).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, overriding the configuration.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Args)]
pub struct DriftArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// A catalog file, directory or glob; repeatable. Replaces the configured locations.
    #[arg(long = "catalog", value_name = "PATH")]
    catalog: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Use the images and tags Nova last read instead of asking the registries again (the
    /// registries are still asked for their repository lists).
    #[arg(long)]
    cached: bool,
}

pub fn run(cmd: RegistryCommand) -> ExitCode {
    let result = super::runtime().block_on(async {
        match cmd {
            RegistryCommand::Drift(args) => drift(args).await,
            RegistryCommand::Check(args) => check(args).await,
        }
    });
    result.unwrap_or_else(super::fail)
}

fn load(common: &CommonArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref(), std::env::vars())?;
    if let Some(url) = &common.database_url {
        config.database.url = url.clone();
    }
    init_logging(&config.log, LogTarget::Stderr);
    Ok(config)
}

async fn drift(args: DriftArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args.common)?;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let locations = if args.catalog.is_empty() {
        let base = args.common.config.as_deref().and_then(|p| p.parent()).map(|p| cwd.join(p)).unwrap_or_else(|| cwd.clone());
        resolve_locations(&config.catalog.locations, &base)?
    } else {
        resolve_locations(&args.catalog.iter().cloned().map(LocationConfig::Target).collect::<Vec<_>>(), &cwd)?
    };
    let app = App::build(config, locations).await?;
    app.state.catalog.load_all().await.context("cannot read the catalog")?;
    let svc = &app.state.registry;
    let report = drift::report(svc, &svc.link_index(), !args.cached).await?;
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report).expect("report serializes")),
        OutputFormat::Text => {
            for i in &report.items {
                let kind = serde_json::to_value(i.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                println!("{kind}: {}", i.message);
            }
            for r in report.registries.iter().filter(|r| r.error.is_some()) {
                eprintln!("note: registry {}: {} (unlinked repositories cannot be reported for it)", r.registry, r.error.as_deref().unwrap_or(""));
            }
            if !report.unchecked.is_empty() {
                eprintln!("note: tags of {} could not be read; their contract was not checked", report.unchecked.join(", "));
            }
            eprintln!("{} drift items", report.items.len());
        }
    }
    Ok(if report.drift { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn check(args: CommonArgs) -> anyhow::Result<ExitCode> {
    let config = load(&args)?;
    let registries = crate::registry::Registries::build(&config.registries, &config.registry, &config.outbound()).await?;
    let started = std::time::Instant::now();
    let reports = futures_util::future::join_all(registries.iter().map(|r| r.health())).await;
    let report = crate::doctor::DoctorReport::of(reports, started.elapsed());
    print!("{}", report.table());
    Ok(if report.status == crate::health::HealthStatus::Fail { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
