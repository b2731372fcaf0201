//! Nova's configuration: a TOML file, `NOVA_SECTION__KEY` environment overrides, then flags.
//!
//! Every setting has a default, so no file is required. Unknown keys are an error naming the
//! key. Every setting is documented in docs/CONFIG.md; keep the two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub catalog: CatalogConfig,
    pub jobs: JobsConfig,
    pub log: LogConfig,
    /// `[registry]`: the image view's cache and refresh.
    pub registry: crate::registry::RegistrySettings,
    /// `[registries.<name>]`: the registries images are read from.
    pub registries: std::collections::BTreeMap<String, crate::registry::RegistryDef>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            catalog: CatalogConfig::default(),
            jobs: JobsConfig::default(),
            log: LogConfig::default(),
            registry: Default::default(),
            registries: Default::default(),
        }
    }
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Demo mode: example data and (with the console) development sign-in. Never for production.
    pub demo: bool,
    /// Longest time a request may take before it is answered with 408.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            demo: false,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

/// `[database]`: SQLite (default) or PostgreSQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Put a password in `PGPASSWORD` or a
    /// `.pgpass` file rather than in the URL.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://nova-data/nova.db".into(), max_connections: 8 }
    }
}

/// `[catalog]`: where entities come from and how often they are re-read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Locations read at every start and refreshed periodically.
    pub locations: Vec<LocationConfig>,
    /// How often every location is re-read.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Whether a user's ownership claims include the ancestors of their groups.
    pub ownership: OwnershipMode,
    /// Largest catalog file read, in bytes.
    pub max_file_bytes: u64,
    /// Directories under which locations may be registered through the API. Empty means the
    /// directory Nova was started in. Configured locations are not restricted.
    pub registration_roots: Vec<PathBuf>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            locations: Vec::new(),
            refresh_interval: Duration::from_secs(300),
            ownership: OwnershipMode::Transitive,
            max_file_bytes: 4 * 1024 * 1024,
            registration_roots: Vec::new(),
        }
    }
}

/// A configured catalog location: a plain string (`examples/catalog`, `teams/*.yaml`) or a
/// table with an explicit type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LocationConfig {
    Target(String),
    Typed {
        #[serde(rename = "type")]
        kind: String,
        target: String,
    },
}

/// How group ancestry counts toward ownership.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OwnershipMode {
    /// A member of a sub-team also holds the claims of every ancestor group (the default).
    #[default]
    Transitive,
    /// Only the groups a user is directly a member of.
    Direct,
}

/// `[jobs]`: the background job runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs run at once by this process.
    pub workers: usize,
    /// How long a claimed job is held before another worker may take it over.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often an idle worker looks for due jobs.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Attempts before a failing one-off job is marked failed.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles with each further failure, up to 5 minutes.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            max_attempts: 8,
            retry_base: Duration::from_secs(1),
        }
    }
}

/// `[log]`: structured logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (human-readable on a terminal, JSON otherwise), `json` or `text`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `nova=debug,info`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Auto,
    Json,
    Text,
}

/// A configuration that could not be loaded, with the file or variable and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config: {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The prefix of environment variables that override settings: `NOVA_SERVER__LISTEN` sets
/// `server.listen`. Sections and keys are separated by a double underscore.
pub const ENV_PREFIX: &str = "NOVA_";

impl Config {
    /// Loads the file (if any), applies `NOVA_*__*` overrides from `env`, and validates.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax { path: p.into(), message: e.to_string() })?
            }
            None => toml::Table::new(),
        };
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else { continue };
            if !rest.contains("__") {
                continue; // NOVA_TOKEN and friends are not settings
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Env { var, message: "empty section or key name".into() });
            }
            set_path(&mut table, &path, parse_env_value(&value)).map_err(|message| ConfigError::Env { var, message })?;
        }
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid { key, message: e.into_inner().message().to_string() }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| Err(ConfigError::Invalid { key: key.into(), message: message.into() });
        if self.jobs.workers == 0 {
            return invalid("jobs.workers", "must be at least 1");
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.catalog.refresh_interval < Duration::from_secs(1) {
            return invalid("catalog.refresh_interval", "must be at least 1s");
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres:") || self.database.url.starts_with("postgresql:")) {
            return invalid("database.url", "must start with sqlite:// or postgres://");
        }
        crate::registry::config::validate(&self.registry, &self.registries).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        Ok(())
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    // A value that is valid TOML (a number, a boolean, an array, a quoted string) is taken as
    // such; anything else is a plain string.
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().expect("path is not empty");
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("{key} is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(c.database.url, "sqlite://nova-data/nova.db");
        assert_eq!(c.catalog.ownership, OwnershipMode::Transitive);
    }

    #[test]
    fn env_overrides_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[server]\nlisten = \"127.0.0.1:1\"\n[catalog]\nlocations = [\"a.yaml\", {{ type = \"glob\", target = \"b/*.yaml\" }}]\nrefresh_interval = \"2m\"").unwrap();
        let c = Config::load(Some(f.path()), env(&[("NOVA_SERVER__LISTEN", "127.0.0.1:2"), ("NOVA_JOBS__WORKERS", "3"), ("NOVA_TOKEN", "x")])).unwrap();
        assert_eq!(c.server.listen.port(), 2);
        assert_eq!(c.jobs.workers, 3);
        assert_eq!(c.catalog.refresh_interval, Duration::from_secs(120));
        assert_eq!(c.catalog.locations[1], LocationConfig::Typed { kind: "glob".into(), target: "b/*.yaml".into() });
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[catalog]\nrefresh_intervl = \"2m\"").unwrap();
        let e = Config::load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(e.contains("catalog") && e.contains("refresh_intervl"), "{e}");
        let e = Config::load(None, env(&[("NOVA_SERVR__LISTEN", "x")])).unwrap_err().to_string();
        assert!(e.contains("servr"), "{e}");
        let e = Config::load(None, env(&[("NOVA_JOBS__WORKERS", "0")])).unwrap_err().to_string();
        assert!(e.contains("jobs.workers"), "{e}");
    }
}
