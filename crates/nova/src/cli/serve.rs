//! `nova serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::app::{App, resolve_locations};
use crate::config::{Config, LocationConfig};
use crate::demo::{self, DemoEnvironment, DemoOptions};
use crate::telemetry::init_serving;

/// The example catalog `--demo` serves when no location is configured.
pub const EXAMPLE_CATALOG: &str = "examples/catalog";

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo mode: the example catalog when no location is configured, development sign-in, and
    /// (when its programs are installed) a local registry, git server and builds; never for
    /// production.
    #[arg(long)]
    demo: bool,
    /// Address to listen on (default 127.0.0.1:7700).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// A catalog file, directory or glob; repeatable. Replaces the configured locations.
    #[arg(long = "catalog", value_name = "PATH")]
    catalog: Vec<String>,
    /// Database URL (sqlite://PATH or postgres://...), overriding the configuration.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

pub fn run(args: ServeArgs) -> ExitCode {
    match super::runtime().block_on(serve_with_demo(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "nova serve stopped");
            super::fail(e)
        }
    }
}

/// Serves, with the demo environment around it when `--demo` asks for one and its programs
/// are there; stops the environment's children afterwards. The environment starts first: its
/// generated settings are the layer the configuration file and `NOVA_*` variables go over.
async fn serve_with_demo(args: &ServeArgs) -> anyhow::Result<()> {
    let env = match demo_data_dir(args)? {
        None => None,
        Some(data_dir) => match demo_possible().await {
            None => None,
            // Ctrl-C while the environment starts drops it, which kills the children started so far.
            Some(examples) => tokio::select! {
                env = start_demo(&data_dir, examples) => env,
                _ = signalled() => return Ok(()),
            },
        },
    };
    let generated = env.as_ref().map(DemoEnvironment::settings).unwrap_or_default();
    let result = match configure(args, generated) {
        Ok((config, locations)) => match init_serving(&config.log, &config.observability) {
            Ok(traces) => {
                let served = serve(config, locations, env.as_ref()).await;
                traces.finish().await;
                served
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Some(env) = env {
        env.stop().await;
    }
    result
}

/// `server.data_dir` when the demo environment is asked for (`--demo` or `server.demo`, and
/// `demo.environment` not off), read from the unchecked settings: they are checked once the
/// environment's own settings are under them.
fn demo_data_dir(args: &ServeArgs) -> anyhow::Result<Option<std::path::PathBuf>> {
    let raw = Config::layered(toml::Table::new(), args.config.as_deref(), std::env::vars())?;
    let get = |section: &str, key: &str| raw.get(section).and_then(|t| t.get(key)).cloned();
    let demo = args.demo || get("server", "demo").and_then(|v| v.as_bool()) == Some(true);
    let environment = get("demo", "environment").and_then(|v| v.as_bool()).unwrap_or(crate::config::DemoConfig::default().environment);
    if !(demo && environment) {
        return Ok(None);
    }
    let data_dir = get("server", "data_dir").and_then(|v| v.as_str().map(std::path::PathBuf::from)).unwrap_or_else(|| crate::config::ServerConfig::default().data_dir);
    Ok(Some(data_dir))
}

/// Whether the demo environment can start here: `examples/repos` is in the working directory
/// and its programs are installed (asking to install them, see [`demo::tools::ensure`]).
/// Runs before any signal handler is installed, so Ctrl-C at a prompt simply ends Nova.
async fn demo_possible() -> Option<std::path::PathBuf> {
    let examples = std::env::current_dir().map(|d| d.join(demo::EXAMPLE_REPOS)).unwrap_or_else(|_| demo::EXAMPLE_REPOS.into());
    if !examples.is_dir() {
        demo::progress(&format!("{} is not here (run from the repository root); serving the example catalog only", demo::EXAMPLE_REPOS));
        return None;
    }
    match demo::tools::ensure().await {
        Ok(true) => Some(examples),
        Ok(false) => None,
        Err(e) => {
            demo::progress(&format!("cannot check the demo's programs: {e:#}; serving the example catalog only"));
            None
        }
    }
}

/// Starts the demo environment under `server.data_dir`, or says why not and answers `None`
/// (the catalog-only demo).
async fn start_demo(data_dir: &std::path::Path, examples: std::path::PathBuf) -> Option<DemoEnvironment> {
    let started = std::time::Instant::now();
    let dir = data_dir.join("demo");
    match DemoEnvironment::start(&DemoOptions { dir: dir.clone(), examples }).await {
        Ok(env) => {
            let file = dir.join("nova.toml");
            if let Err(e) = std::fs::write(&file, env.settings_toml()) {
                demo::progress(&format!("cannot write {}: {e}", file.display()));
            }
            let s = env.seeded;
            demo::progress(&format!(
                "environment up in {:.1}s (seeded {} repositories and {} images this time); settings in {}",
                started.elapsed().as_secs_f64(),
                s.repositories,
                s.images,
                file.display()
            ));
            Some(env)
        }
        Err(e) => {
            demo::progress(&format!("the demo environment did not start: {e:#}"));
            demo::progress("serving the example catalog only");
            None
        }
    }
}

fn configure(args: &ServeArgs, generated: toml::Table) -> anyhow::Result<(Config, Vec<crate::catalog::LocationSpec>)> {
    let mut config = Config::load_over(generated, args.config.as_deref(), std::env::vars())?;
    if args.demo {
        config.server.demo = true;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(url) = &args.database_url {
        config.database.url = url.clone();
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let config_dir = args.config.as_deref().and_then(Path::parent).map(|p| cwd.join(p)).unwrap_or_else(|| cwd.clone());
    let locations = if !args.catalog.is_empty() {
        let flags: Vec<LocationConfig> = args.catalog.iter().cloned().map(LocationConfig::Target).collect();
        resolve_locations(&flags, &cwd)?
    } else if config.catalog.locations.is_empty() && config.server.demo {
        if !cwd.join(EXAMPLE_CATALOG).is_dir() {
            eprintln!("warning: --demo serves ./{EXAMPLE_CATALOG}, which is not in {}; run from the repository root", cwd.display());
        }
        resolve_locations(&[LocationConfig::Target(EXAMPLE_CATALOG.into())], &cwd)?
    } else {
        resolve_locations(&config.catalog.locations, &config_dir)?
    };
    Ok((config, locations))
}

/// Serves until a signal; with a demo environment, first registers its team credentials.
async fn serve(config: Config, locations: Vec<crate::catalog::LocationSpec>, environment: Option<&DemoEnvironment>) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let demo = config.server.demo;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another Nova running? pass --listen ADDR for another address)"))?;
    let app = App::build(config, locations).await?;
    if let Some(env) = environment {
        env.register_credentials(&app.state).await;
        env.record_artifacts(&app.state).await;
        demo::progress(&format!("ready: open http://{listen}/, sign in as Nina Patel (Storefront team) and open Storefront Web"));
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let addr = listener.local_addr().unwrap_or(listen);
    tracing::info!(address = %addr, demo, backend = app.state.db.backend().as_str(), "Nova is serving on http://{addr}");
    app.serve(listener, shutdown).await
}

async fn stop_on_signal(shutdown: CancellationToken) {
    signalled().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

/// Resolves on Ctrl-C or SIGTERM.
async fn signalled() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
