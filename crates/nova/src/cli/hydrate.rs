//! `nova hydrate`: nova-policy's strict hydration (docs/HYDRATE.md), with the secret store as
//! one more source of values (`--secrets PATH`).

use std::path::PathBuf;
use std::process::ExitCode;

use nova_policy::hydrate::{Found, SecretValue, SourceError, ValueSource};

use crate::config::Config;
use crate::secrets::{SecretData, SecretPath};

/// Arguments of `nova hydrate`: those of nova-policy's command, plus the secret store.
#[derive(clap::Args)]
pub struct HydrateCommand {
    #[command(flatten)]
    hydrate: nova_policy::HydrateArgs,
    /// Take variables from the secret at PATH in the configured secret store: each field is a
    /// variable. Repeatable; a later PATH wins. Asked after the environment, before env files.
    /// Values are never printed, in `--dry-run` neither.
    #[arg(long = "secrets", value_name = "PATH")]
    secrets: Vec<String>,
    /// Configuration file (TOML) whose `[secrets]` names the store; `NOVA_SECRETS__*`
    /// variables apply too. Without it, the default file store in ./nova-data.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The fields of one secret, as a source of values.
pub struct StoreValues {
    origin: String,
    data: SecretData,
}

impl StoreValues {
    /// Values from `data`, read from the secret at `path`.
    pub fn new(path: &SecretPath, data: SecretData) -> Self {
        Self { origin: format!("secret store {path}"), data }
    }
}

impl ValueSource for StoreValues {
    fn lookup(&self, name: &str) -> Result<Option<Found>, SourceError> {
        Ok(self.data.get(name).map(|v| Found { value: SecretValue::new(v.expose().clone()), origin: self.origin.clone() }))
    }
}

/// Runs `nova hydrate`; exit codes as in docs/HYDRATE.md (2 when the store cannot be read).
pub fn run(cmd: HydrateCommand) -> ExitCode {
    if cmd.secrets.is_empty() {
        return nova_policy::run_hydrate(cmd.hydrate);
    }
    match super::runtime().block_on(read_secrets(&cmd)) {
        Ok(sources) => nova_policy::run_hydrate_with(cmd.hydrate, sources),
        Err(message) => {
            eprintln!("nova hydrate: {message}");
            eprintln!("nova hydrate: nothing was written");
            ExitCode::from(2)
        }
    }
}

/// Reads every `--secrets` path, the last first (so that it wins).
async fn read_secrets(cmd: &HydrateCommand) -> Result<Vec<Box<dyn ValueSource>>, String> {
    let paths = cmd.secrets.iter().map(|p| SecretPath::parse(p).map_err(|e| format!("--secrets: {e}"))).collect::<Result<Vec<_>, _>>()?;
    let config = Config::load(cmd.config.as_deref(), std::env::vars()).map_err(|e| e.to_string())?;
    let store = crate::secrets::open(&config.secrets).await.map_err(|e| format!("cannot open the secret store: {e}"))?;
    let mut sources: Vec<Box<dyn ValueSource>> = Vec::new();
    for path in paths.iter().rev() {
        let secret = store.get(path).await.map_err(|e| format!("--secrets {path}: {e}"))?;
        sources.push(Box::new(StoreValues::new(path, secret.data)));
    }
    Ok(sources)
}
