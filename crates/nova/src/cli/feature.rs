//! `nova feature set KEY on|off` and `nova feature list`: the minimal switches of
//! `crate::features`, until the feature-flag system replaces them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::Config;
use crate::features::{self, KNOWN};
use crate::storage::Db;

#[derive(Subcommand)]
pub enum FeatureCommand {
    /// Switch a feature on or off for every Nova using this database (within seconds).
    Set(SetArgs),
    /// Every switch and its value.
    List(DbArgs),
}

#[derive(Args)]
pub struct DbArgs {
    /// Configuration file (for the database).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, overriding the configuration.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Args)]
pub struct SetArgs {
    /// The switch, e.g. registry.image-view.
    key: String,
    value: OnOff,
    #[command(flatten)]
    db: DbArgs,
}

pub fn run(cmd: FeatureCommand) -> ExitCode {
    super::runtime().block_on(async {
        match cmd {
            FeatureCommand::Set(args) => set(args).await,
            FeatureCommand::List(args) => list(args).await,
        }
    })
    .unwrap_or_else(super::fail)
}

async fn open(args: &DbArgs) -> anyhow::Result<Db> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(url) = &args.database_url {
        config.database.url = url.clone();
    }
    let db = Db::connect(&config.database.url, 2).await?;
    db.migrate().await?;
    Ok(db)
}

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    if !KNOWN.iter().any(|(k, _)| *k == args.key) {
        let known: Vec<&str> = KNOWN.iter().map(|(k, _)| *k).collect();
        anyhow::bail!("unknown feature {:?}; known: {}", args.key, known.join(", "));
    }
    let db = open(&args.db).await?;
    let on = matches!(args.value, OnOff::On);
    features::set(&db, &args.key, on).await?;
    println!("{} is now {}", args.key, if on { "on" } else { "off" });
    Ok(ExitCode::SUCCESS)
}

async fn list(args: DbArgs) -> anyhow::Result<ExitCode> {
    let db = open(&args).await?;
    for (key, default) in KNOWN {
        let value = features::get(&db, key).await?;
        let shown = match value {
            Some(v) => if v { "on" } else { "off" }.to_string(),
            None => format!("{} (default)", if default { "on" } else { "off" }),
        };
        println!("{key} {shown}");
    }
    Ok(ExitCode::SUCCESS)
}
