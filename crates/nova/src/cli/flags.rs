//! `nova flags list` and `nova flags set`: operate on flags directly in the database (every
//! change is audited with the command-line user as actor).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use nova_domain::EntityRef;
use serde_json::json;

use super::DbArgs;
use crate::audit::{AuditEvent, AuditLog};
use crate::flags::{self, Flags, Rollout};

#[derive(Subcommand)]
pub enum FlagsCommand {
    /// Every flag with its rollout stage.
    List(ListArgs),
    /// Replace a flag's rollout.
    Set(SetArgs),
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct SetArgs {
    /// The flag's key.
    key: String,
    /// Turn the flag off for everyone (the kill switch).
    #[arg(long, conflicts_with_all = ["everyone", "group", "user", "percentage"])]
    off: bool,
    /// On for everyone.
    #[arg(long)]
    everyone: bool,
    /// On for members of this group (repeatable), e.g. `group:default/platform`.
    #[arg(long, value_name = "REF")]
    group: Vec<String>,
    /// On for this user (repeatable), e.g. `user:default/jdoe`.
    #[arg(long, value_name = "REF")]
    user: Vec<String>,
    /// On for this percentage of other users (sticky), 0 to 100.
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    percentage: f64,
    #[command(flatten)]
    db: DbArgs,
}

pub fn run(cmd: FlagsCommand) -> ExitCode {
    let result = super::runtime().block_on(async {
        match cmd {
            FlagsCommand::List(args) => list(args).await,
            FlagsCommand::Set(args) => set(args).await,
        }
    });
    result.unwrap_or_else(super::fail)
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (_, db) = args.db.open().await?;
    let flags = Flags::open(db, flags::BUILTIN).await?;
    for f in flags.list() {
        println!("{:<40} {:<10} {}", f.key, f.stage, f.description);
    }
    Ok(ExitCode::SUCCESS)
}

fn refs(values: &[String], kind: &str, field: &str) -> anyhow::Result<Vec<EntityRef>> {
    values.iter().map(|v| EntityRef::parse_with(v, Some(kind), "default").map_err(|e| anyhow::anyhow!("--{field}: {e}"))).collect()
}

async fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let rollout = Rollout {
        enabled: !args.off,
        everyone: args.everyone,
        groups: refs(&args.group, "Group", "group")?,
        users: refs(&args.user, "User", "user")?,
        percentage: args.percentage,
    };
    let (config, db) = args.db.open().await?;
    let flags = Flags::open(db.clone(), flags::BUILTIN).await?;
    let actor = super::cli_actor();
    let (before, after) = flags.set(&args.key, rollout, &actor).await?;
    AuditLog::new(db, config.audit.log_events)
        .record(AuditEvent::outside_request(actor, "flags.set", format!("flag:{}", args.key), json!({"before": before.rollout, "after": after.rollout})))
        .await?;
    println!("{}: {} → {}", args.key, before.stage, after.stage);
    Ok(ExitCode::SUCCESS)
}
