//! The `nova` command line: one binary whose subcommands are its modes.

mod catalog;
mod feature;
mod registry;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Work with catalog files.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// Platform policies on Kubernetes manifests (docs/POLICY.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Registry insight: the drift report, registry checks (docs/REGISTRY.md).
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Feature switches.
    #[command(subcommand)]
    Feature(feature::FeatureCommand),
    /// Render a configuration template strictly from the environment and env files
    /// (docs/HYDRATE.md).
    Hydrate(nova_policy::HydrateArgs),
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
        Command::Catalog(cmd) => catalog::run(cmd),
        Command::Policy(PolicyCommand::Check(args)) => nova_policy::run_policy_check(args),
        Command::Hydrate(args) => nova_policy::run_hydrate(args),
        Command::Registry(cmd) => registry::run(cmd),
        Command::Feature(cmd) => feature::run(cmd),
    }
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
