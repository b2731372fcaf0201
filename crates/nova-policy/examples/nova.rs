//! `nova policy check` and `nova hydrate` as the `nova` binary will offer them, until that
//! binary wires them in. Also what the benchmarks in `bench/policy/` run.
//!
//! ```text
//! cargo run -p nova-policy --example nova -- policy check deploy/
//! cargo run -p nova-policy --example nova -- hydrate app.template.yaml -o app.yaml
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nova_policy::{HydrateArgs, PolicyCheckArgs, run_hydrate, run_policy_check};

#[derive(Parser)]
#[command(
    name = "nova",
    about = "Nova's policy checks and configuration hydration"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Platform policies on Kubernetes manifests.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Render a configuration template from the environment and env files, strictly.
    Hydrate(HydrateArgs),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check manifests against the platform policies.
    Check(PolicyCheckArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Policy {
            command: PolicyCommand::Check(args),
        } => run_policy_check(args),
        Command::Hydrate(args) => run_hydrate(args),
    }
}
