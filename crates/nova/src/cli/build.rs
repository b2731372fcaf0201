//! `nova build start` and `nova build follow`: ask a running Nova for an image build and follow
//! its log, through the HTTP API with an API token (`--token`, `NOVA_TOKEN` or `nova login`).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use super::login::{ServerArgs, answer};

#[derive(Subcommand)]
pub enum BuildCommand {
    /// Ask for an image build of a component (owners only).
    Start(StartArgs),
    /// Print a build's log as it grows, until the build finishes.
    Follow(FollowArgs),
}

#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The component, e.g. `payment-service` or `component:default/payment-service`.
    component: String,
    /// Branch, tag or full commit id.
    #[arg(long = "ref")]
    git_ref: String,
    /// The Dockerfile, relative to the repository root.
    #[arg(long)]
    dockerfile: String,
    /// The build context directory (default: the Dockerfile's directory).
    #[arg(long)]
    context: Option<String>,
    /// The image tag, without the component's tag prefix.
    #[arg(long)]
    tag: Option<String>,
    /// `NAME=VALUE`, repeatable.
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    build_args: Vec<String>,
    /// Makes retrying this command safe: the same key answers the same build.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Follow the build's log until it finishes.
    #[arg(long)]
    follow: bool,
}

#[derive(Args)]
pub struct FollowArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The build's id.
    id: String,
}

/// Runs a `nova build` subcommand.
pub fn run(cmd: BuildCommand) -> ExitCode {
    super::runtime()
        .block_on(async {
            match cmd {
                BuildCommand::Start(args) => start(args).await,
                BuildCommand::Follow(args) => follow(&args.server, &args.id).await,
            }
        })
        .unwrap_or_else(super::fail)
}

async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let mut build_args = Vec::new();
    for a in &args.build_args {
        let (name, value) = a.split_once('=').with_context(|| format!("--build-arg {a:?} must be NAME=VALUE"))?;
        build_args.push(json!({ "name": name, "value": value }));
    }
    let body = json!({ "gitRef": args.git_ref, "dockerfile": args.dockerfile, "context": args.context, "tag": args.tag, "buildArgs": build_args });
    let component = args.component.replace('/', "%2F");
    let remote = args.server.resolve()?;
    let mut req = reqwest::Client::new().post(format!("{}/api/v1/components/{component}/builds", remote.server)).bearer_auth(&remote.token).json(&body);
    if let Some(key) = &args.idempotency_key {
        req = req.header("Idempotency-Key", key);
    }
    let build = answer(req.send().await.context("cannot reach Nova")?).await?;
    let id = build["id"].as_str().context("the server's answer has no build id")?.to_string();
    println!("build {id}: {}:{} ({})", build["image"].as_str().unwrap_or_default(), build["tag"].as_str().unwrap_or_default(), build["state"].as_str().unwrap_or_default());
    if args.follow { follow(&args.server, &id).await } else { Ok(ExitCode::SUCCESS) }
}

/// Prints new log output every half second until the build finishes; exits 0 only when it
/// succeeded.
async fn follow(server: &ServerArgs, id: &str) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::new();
    let remote = server.resolve()?;
    let base = format!("{}/api/v1/builds/{id}", remote.server);
    let mut offset = 0usize;
    loop {
        let build = answer(client.get(&base).bearer_auth(&remote.token).send().await.context("cannot reach Nova")?).await?;
        let res = client.get(format!("{base}/log?offset={offset}")).bearer_auth(&remote.token).send().await.context("cannot reach Nova")?;
        if let Some(size) = res.headers().get("x-log-size").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
            offset = size;
        }
        print!("{}", res.text().await.unwrap_or_default());
        std::io::stdout().flush()?;
        if build["finishedAt"].is_i64() {
            let state = build["state"].as_str().unwrap_or_default();
            let extra = build["digest"].as_str().or(build["reason"].as_str()).unwrap_or_default();
            eprintln!("build {id}: {state} {extra}");
            return Ok(if state == "succeeded" { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
