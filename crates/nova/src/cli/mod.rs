//! The `nova` command line: one binary whose subcommands are its modes.

mod audit;
mod backup;
mod build;
mod catalog;
mod credentials;
mod doctor;
mod registry;
mod flags;
mod release;
mod hydrate;
mod login;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::storage::Db;

/// Nova: the developer platform console.
#[derive(Parser)]
#[command(name = "nova", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Store an API token for the commands that call a running Nova (read from the terminal
    /// or standard input, checked with the server).
    Login(login::LoginArgs),
    /// Work with catalog files.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Verify or export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Ask a running Nova for image builds and follow them.
    #[command(subcommand)]
    Build(build::BuildCommand),
    /// Ask for an artifact (by digest) to be promoted to an environment (docs/RELEASE.md).
    Promote(release::PromoteArgs),
    /// Approve a pending promotion.
    Approve(release::DecideArgs),
    /// Reject a pending promotion.
    Reject(release::DecideArgs),
    /// Roll an environment back to the artifact it ran before (or `--to` an earlier one).
    Rollback(release::RollbackArgs),
    /// A component's environments, what runs in each, and its pending promotions.
    Promotions(release::PromotionsArgs),
    /// List and change feature flags.
    #[command(subcommand)]
    Flags(flags::FlagsCommand),
    /// A team's git and registry credentials (docs/CREDENTIALS.md).
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// Platform policies on Kubernetes manifests (docs/POLICY.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Render a configuration template strictly from the environment, env files and the
    /// secret store (docs/HYDRATE.md).
    Hydrate(hydrate::HydrateCommand),
    /// Registry insight: the drift report, registry checks (docs/REGISTRY.md).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Check every configured integration with a real, cheap call and print what to fix:
    /// exit 1 when a check fails (docs/DEPLOY.md).
    Doctor(doctor::DoctorArgs),
    /// Copy the live SQLite database to a file (docs/DEPLOY.md, "Backups").
    Backup(backup::BackupArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check manifests against the platform policies: exit 1 when an Enforce rule fails.
    Check(nova_policy::PolicyCheckArgs),
}

/// Output format of commands that report results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// Parses the command line and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Login(args) => login::run(args),
        Command::Catalog(cmd) => catalog::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Flags(cmd) => flags::run(cmd),
        Command::Credentials(cmd) => credentials::run(cmd),
        Command::Build(cmd) => build::run(cmd),
        Command::Promote(a) => release::run(release::ReleaseCommand::Promote(a)),
        Command::Approve(a) => release::run(release::ReleaseCommand::Approve(a)),
        Command::Reject(a) => release::run(release::ReleaseCommand::Reject(a)),
        Command::Rollback(a) => release::run(release::ReleaseCommand::Rollback(a)),
        Command::Promotions(a) => release::run(release::ReleaseCommand::Promotions(a)),
        Command::Policy(PolicyCommand::Check(args)) => nova_policy::run_policy_check(args),
        Command::Hydrate(cmd) => hydrate::run(cmd),
        Command::Registry(cmd) => registry::run(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Backup(args) => backup::run(args),
    }
}

/// How administrative subcommands find Nova's database.
#[derive(Args)]
pub struct DbArgs {
    /// Configuration file (for the database URL).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL, overriding the configuration.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

impl DbArgs {
    /// Loads the configuration (file, environment, `--database-url`) and opens the database.
    pub async fn open(&self) -> anyhow::Result<(Config, Db)> {
        let mut config = Config::load(self.config.as_deref(), std::env::vars())?;
        if let Some(url) = &self.database_url {
            config.database.url = url.clone();
        }
        crate::telemetry::init_logging(&config.log, crate::telemetry::LogTarget::Stderr);
        let db = crate::app::open_database(&config).await?;
        Ok((config, db))
    }
}

/// The actor recorded in the audit log for changes made from the command line.
pub fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into()))
}

/// A multi-threaded runtime for subcommands that need one.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("the tokio runtime starts")
}

/// Prints an error chain the way every subcommand does, and returns the failure exit code.
fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}
