//! `nova serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::app::{App, resolve_locations};
use crate::config::{Config, LocationConfig};
use crate::telemetry::{LogTarget, init_logging};

/// The example catalog `--demo` serves when no location is configured.
pub const EXAMPLE_CATALOG: &str = "examples/catalog";

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Demo mode: example catalog when no location is configured; never for production.
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
    let (config, locations) = match configure(&args) {
        Ok(c) => c,
        Err(e) => return super::fail(e),
    };
    init_logging(&config.log, LogTarget::Stdout);
    match super::runtime().block_on(serve(config, locations)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "nova serve stopped");
            super::fail(e)
        }
    }
}

fn configure(args: &ServeArgs) -> anyhow::Result<(Config, Vec<crate::catalog::LocationSpec>)> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
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

async fn serve(config: Config, locations: Vec<crate::catalog::LocationSpec>) -> anyhow::Result<()> {
    let listen = config.server.listen;
    let demo = config.server.demo;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (is another Nova running? pass --listen ADDR for another address)"))?;
    let app = App::build(config, locations).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let addr = listener.local_addr().unwrap_or(listen);
    tracing::info!(address = %addr, demo, backend = app.state.db.backend().as_str(), "Nova is serving on http://{addr}");
    app.serve(listener, shutdown).await
}

async fn stop_on_signal(shutdown: CancellationToken) {
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
    tracing::info!("shutting down");
    shutdown.cancel();
}
