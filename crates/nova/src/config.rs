//! Nova's configuration: a TOML file, `NOVA_SECTION__KEY` environment overrides, then flags.
//!
//! Every setting has a default, so no file is required. Unknown keys are an error naming the
//! key. Every setting is documented in docs/CONFIG.md; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secrets::SecretRef;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub database: DatabaseConfig,
    pub catalog: CatalogConfig,
    pub jobs: JobsConfig,
    pub log: LogConfig,
    pub secrets: crate::secrets::SecretsConfig,
    /// `[registry]`: the image view's cache and refresh.
    pub registry: crate::registry::RegistrySettings,
    /// `[registries.<name>]`: the registries images are read from.
    pub registries: std::collections::BTreeMap<String, crate::registry::RegistryDef>,
    pub audit: AuditConfig,
    pub builds: BuildsConfig,
    /// `[build_backends.<name>]`: remote build backends (Jenkins, GitHub Actions), by name.
    pub build_backends: BTreeMap<String, crate::builds::backend::BuildBackendConfig>,
    /// `[release]`: the GitOps writer's limits and the intake webhook's replay window.
    pub release: crate::release::ReleaseSettings,
    /// `[environments.<name>]`: the ordered environments artifacts are promoted through.
    pub environments: BTreeMap<String, crate::release::EnvironmentConfig>,
    /// `[observability]`: what fills the Grafana links' placeholders.
    pub observability: ObservabilityConfig,
    /// `[outbound]`: addresses Nova refuses (or allows) when a user or a remote server chose them.
    pub outbound: crate::outbound::OutboundConfig,
    /// `[demo]`: what `--demo` starts besides the example catalog.
    pub demo: DemoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            database: DatabaseConfig::default(),
            catalog: CatalogConfig::default(),
            jobs: JobsConfig::default(),
            log: LogConfig::default(),
            secrets: crate::secrets::SecretsConfig::default(),
            registry: Default::default(),
            registries: Default::default(),
            audit: AuditConfig::default(),
            builds: BuildsConfig::default(),
            build_backends: BTreeMap::new(),
            release: Default::default(),
            environments: BTreeMap::new(),
            observability: ObservabilityConfig::default(),
            outbound: Default::default(),
            demo: DemoConfig::default(),
        }
    }
}

/// `[observability]`: what fills the `${...}` placeholders of the Grafana links in catalog
/// annotations (`grafana.io/loki-query-url`, `grafana.io/dashboard-url`), and where traces
/// are exported (OTLP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    /// Fills `${BASE_DOMAIN}`, e.g. `example.com` for `https://grafana.${BASE_DOMAIN}/...`.
    pub base_domain: Option<String>,
    /// Fills `${NAMESPACE}` for components without a `backstage.io/kubernetes-namespace`.
    pub default_namespace: Option<String>,
    /// An OpenTelemetry collector's OTLP/HTTP address (`http://collector:4318`): `nova serve`
    /// posts its spans there as protobuf, to `<endpoint>/v1/traces`. Unset: no export.
    pub otlp_endpoint: Option<url::Url>,
    /// The exported spans' `service.name`.
    pub service_name: String,
    /// The share of traces begun in Nova that are exported, 0.0 to 1.0. A request that carries
    /// a W3C `traceparent` follows its caller's decision instead.
    pub trace_sample_ratio: f64,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        Self { base_domain: None, default_namespace: None, otlp_endpoint: None, service_name: "nova".into(), trace_sample_ratio: 1.0 }
    }
}

/// `[audit]`: the tamper-evident audit log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Also write every audit event to the log (target `audit`), for shipping elsewhere.
    pub log_events: bool,
    /// Delete events older than this (checked hourly), keeping the chain verifiable through a
    /// checkpoint. Unset keeps events forever.
    #[serde(with = "humantime_serde")]
    pub retention: Option<Duration>,
}

/// `[demo]`: the demo environment `nova serve --demo` brings up (docs/DEMO.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Start a local registry and git server under `server.data_dir`, seeded from
    /// `examples/repos`, when their tools are installed. Off: the example catalog only.
    pub environment: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { environment: true }
    }
}

/// `[builds]`: Nova's own build runner (`nova.dev/build-pipeline: local`, the default).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildsConfig {
    /// The image builder: `buildah` or `podman` (a name on PATH or an absolute path).
    pub builder: String,
    /// The `git` executable.
    pub git: String,
    /// Longest time one build may take, clone and push included; then it is `timed_out`.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Most log bytes kept per build; later output is dropped and the truncation marked.
    pub max_log_bytes: usize,
    /// Registries (`host:port`) pushed to without TLS, e.g. a local registry for tests.
    pub insecure_registries: Vec<String>,
    /// How often a build running in a remote backend (Jenkins, GitHub Actions) is polled for
    /// its status and log; four times longer after an error.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Most unfinished builds (requested, queued or running) of one team's components at once;
    /// one more is refused with 429. 0: no limit.
    pub max_active_per_team: u32,
    /// Most build requests one user may make per `request_window`; one more is refused with
    /// 429 and `Retry-After`. 0: no limit.
    pub max_requests_per_user: u32,
    /// Check a team credential when it is registered or rotated: `git ls-remote` with it must
    /// succeed for each repository (and a refused `git push --dry-run` proves it read-only).
    /// Turn off only where Nova cannot reach the git servers.
    pub check_credentials: bool,
    /// The window `max_requests_per_user` counts in.
    #[serde(with = "humantime_serde")]
    pub request_window: Duration,
    /// Repository URL prefixes cloned from somewhere else, like git's `url.<base>.insteadOf`:
    /// `{ "https://git.example.com/" = "git://127.0.0.1:9418/" }`. The longest match wins.
    pub git_url_rewrites: BTreeMap<String, String>,
    /// An OpenSSH `known_hosts` file with the host keys of the git servers Nova reaches over
    /// SSH: a server whose key is not in it, or differs, is refused. Unset: a host key is
    /// accepted on first use by each git process, which does not protect against a spoofed
    /// server.
    pub ssh_known_hosts: Option<PathBuf>,
}

impl Default for BuildsConfig {
    fn default() -> Self {
        Self {
            builder: "buildah".into(),
            git: "git".into(),
            timeout: Duration::from_secs(30 * 60),
            max_log_bytes: 1 << 20,
            insecure_registries: Vec::new(),
            poll_interval: Duration::from_secs(5),
            max_active_per_team: 10,
            max_requests_per_user: 30,
            request_window: Duration::from_secs(60),
            check_credentials: true,
            git_url_rewrites: BTreeMap::new(),
            ssh_known_hosts: None,
        }
    }
}

impl BuildsConfig {
    /// The URL a repository is cloned from: `url` with its longest `git_url_rewrites` prefix
    /// replaced, or `url` itself.
    pub fn clone_url(&self, url: &str) -> String {
        rewrite_git_url(&self.git_url_rewrites, url)
    }
}

/// `url` with its longest prefix in `rewrites` replaced, or `url` itself (git's
/// `url.<base>.insteadOf`).
pub fn rewrite_git_url(rewrites: &BTreeMap<String, String>, url: &str) -> String {
    rewrites
        .iter()
        .filter(|(from, _)| url.starts_with(from.as_str()))
        .max_by_key(|(from, _)| from.len())
        .map(|(from, to)| format!("{to}{}", &url[from.len()..]))
        .unwrap_or_else(|| url.to_string())
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
    /// Longest time a client may take to send a request's headers; then the connection is
    /// closed (slow-loris clients).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long `/ready` reuses its integration checks for platform admins.
    #[serde(with = "humantime_serde")]
    pub ready_detail_ttl: Duration,
    /// Where Nova keeps files of its own (git location caches, the demo session key).
    pub data_dir: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            demo: false,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            ready_detail_ttl: Duration::from_secs(30),
            data_dir: PathBuf::from("nova-data"),
        }
    }
}

/// `[auth]`: sessions and sign-in (docs/CONFIG.md, `[auth]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The key that signs session cookies (HMAC-SHA256), at least 32 bytes. Without it, demo
    /// mode generates one under `server.data_dir`; otherwise sessions are off.
    pub session_key: Option<SecretRef>,
    /// How long a session lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (serve Nova over HTTPS, e.g. behind a TLS proxy).
    pub secure_cookie: bool,
    /// Development sign-in (pick any catalog User, no password) outside demo mode.
    pub dev_sign_in: bool,
    /// Allow development sign-in when listening on a non-loopback address.
    pub dev_sign_in_allow_remote: bool,
    /// Whether people who are not signed in may read the catalog and image lists. Default: on
    /// when no identity provider (OIDC or proxy headers) is configured, off otherwise.
    pub anonymous_read: Option<bool>,
    /// The platform-admin group (`group:default/platform`): its members (and its sub-teams'
    /// members) may do everything, including managing flags and reading the whole audit log.
    pub admin_group: Option<String>,
    /// OpenID Connect sign-in.
    pub oidc: Option<OidcConfig>,
    /// Identity from a trusted authenticating reverse proxy (oauth2-proxy and the like).
    pub proxy: Option<ProxyConfig>,
    /// Longest lifetime of a personal API token; tokens asked for longer are refused.
    #[serde(with = "humantime_serde")]
    pub max_token_ttl: Option<Duration>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_key: None,
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookie: false,
            dev_sign_in: false,
            dev_sign_in_allow_remote: false,
            anonymous_read: None,
            admin_group: None,
            oidc: None,
            proxy: None,
            max_token_ttl: None,
        }
    }
}

/// `[auth.oidc]`: OpenID Connect sign-in (authorization code flow with PKCE).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL; `/.well-known/openid-configuration` is read from it.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, by reference (`{ env = "..." }` or `{ file = "..." }`). Omit for a
    /// public client.
    pub client_secret: Option<SecretRef>,
    /// This Nova's callback URL as registered with the provider, ending in `/auth/oidc/callback`.
    pub redirect_url: String,
    /// Scopes asked for.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID-token claim holding the user's catalog name.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// The claim holding the e-mail address; when set, a catalog User whose
    /// `spec.profile.email` matches is preferred over the name.
    #[serde(default = "default_email_claim")]
    pub email_claim: Option<String>,
    /// The catalog namespace users are looked up in.
    #[serde(default = "default_namespace")]
    pub user_namespace: String,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_username_claim() -> String {
    "preferred_username".into()
}

fn default_email_claim() -> Option<String> {
    Some("email".into())
}

fn default_namespace() -> String {
    "default".into()
}

/// `[auth.proxy]`: identity headers set by an authenticating reverse proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses the proxy connects from (`10.0.0.5`, `10.0.0.0/24`); the headers are refused,
    /// and the request answered 401, from anywhere else.
    pub trusted_proxies: Vec<String>,
    /// The header naming the user (a catalog User name or reference).
    #[serde(default = "default_user_header")]
    pub user_header: String,
    /// The header with the user's e-mail, matched against `spec.profile.email`.
    pub email_header: Option<String>,
    /// The catalog namespace users are looked up in.
    #[serde(default = "default_namespace")]
    pub user_namespace: String,
}

fn default_user_header() -> String {
    "x-forwarded-user".into()
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
    /// Longest time a request waits for a database connection (the database is down, or every
    /// connection is busy); then it is answered with 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: "sqlite://nova-data/nova.db".into(), max_connections: 8, acquire_timeout: Duration::from_secs(5) }
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
    /// URL prefixes under which git and URL locations may be registered through the API. Empty
    /// (the default) refuses such registrations. Configured locations are not restricted.
    pub registration_url_prefixes: Vec<String>,
    /// Longest a git fetch or a URL download of one location may take.
    #[serde(with = "humantime_serde")]
    pub remote_timeout: Duration,
    /// Redirects a URL location may follow.
    pub max_redirects: usize,
    /// Credentials for git and URL locations, chosen by the longest matching URL prefix.
    pub credentials: Vec<RemoteCredential>,
}

/// A credential for remote locations whose URL starts with `url_prefix`. The secret is a
/// reference (an environment variable or a file), never written in the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoteCredential {
    /// E.g. `https://git.example.com/platform/`.
    pub url_prefix: String,
    /// The user name for HTTP basic authentication; without it, URL locations send the
    /// secret as a bearer token (git always uses basic authentication, with `git` as the user).
    #[serde(default)]
    pub username: Option<String>,
    /// Where the password or token is read from.
    pub secret: SecretRef,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            locations: Vec::new(),
            refresh_interval: Duration::from_secs(300),
            ownership: OwnershipMode::Transitive,
            max_file_bytes: 4 * 1024 * 1024,
            registration_roots: Vec::new(),
            registration_url_prefixes: Vec::new(),
            remote_timeout: Duration::from_secs(60),
            max_redirects: 5,
            credentials: Vec::new(),
        }
    }
}

/// A configured catalog location: a plain string (`examples/catalog`, `teams/*.yaml`,
/// `https://host/catalog-info.yaml`, `git:URL#REF:PATH`) or a table with an explicit type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LocationConfig {
    Target(String),
    Typed(TypedLocation),
}

/// `{ type = "...", target = "..." }`; git locations may name `ref` and `path` separately.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TypedLocation {
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    /// Git only: the branch, tag or commit to read (default: the remote's HEAD).
    #[serde(rename = "ref", default)]
    pub reference: Option<String>,
    /// Git only: the file, directory or glob inside the repository (default `catalog-info.yaml`).
    #[serde(default)]
    pub path: Option<String>,
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
        Self::load_over(toml::Table::new(), path, env)
    }

    /// Like [`Config::load`], over `base`: settings generated by Nova itself (the demo
    /// environment's), which the file and the environment override key by key.
    pub fn load_over(base: toml::Table, path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let table = Self::layered(base, path, env)?;
        let config: Config = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Invalid { key, message: e.into_inner().message().to_string() }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The settings as a TOML table — `base`, then the file, then `NOVA_*__*` variables —
    /// before they are checked: what `nova serve --demo` reads to find its data directory
    /// before it can generate the settings the rest depends on.
    pub fn layered(base: toml::Table, path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<toml::Table, ConfigError> {
        let mut table = base;
        if let Some(p) = path {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read { path: p.into(), source })?;
            let file = text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax { path: p.into(), message: e.to_string() })?;
            merge(&mut table, file);
        }
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
        Ok(table)
    }

    /// The secret references read where the secret store is not at hand (at start, or by a
    /// client of their own), with their keys: these must be `env` or `file`.
    fn local_secret_refs(&self) -> Vec<(String, &SecretRef)> {
        use crate::builds::backend::BuildBackendConfig;
        let mut refs: Vec<(String, &SecretRef)> = Vec::new();
        refs.extend(self.auth.session_key.iter().map(|r| ("auth.session_key".to_string(), r)));
        refs.extend(self.auth.oidc.iter().filter_map(|o| o.client_secret.as_ref()).map(|r| ("auth.oidc.client_secret".to_string(), r)));
        refs.extend(self.catalog.credentials.iter().enumerate().map(|(i, c)| (format!("catalog.credentials[{i}].secret"), &c.secret)));
        for (name, def) in &self.registries {
            if let crate::registry::RegistryDef::Oci(c) = def {
                refs.extend(c.password.iter().map(|r| (format!("registries.{name}.password"), r)));
            }
        }
        for (name, backend) in &self.build_backends {
            let token = match backend {
                BuildBackendConfig::Jenkins(c) => &c.token,
                BuildBackendConfig::GithubActions(c) => &c.token,
            };
            refs.push((format!("build_backends.{name}.token"), token));
        }
        refs
    }

    /// The `[outbound]` address policy. Loading checks it, so it parses here.
    pub fn outbound(&self) -> crate::outbound::Outbound {
        crate::outbound::Outbound::from_config(&self.outbound).expect("[outbound] is checked when the configuration is loaded")
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| Err(ConfigError::Invalid { key: key.into(), message: message.into() });
        if self.jobs.workers == 0 {
            return invalid("jobs.workers", "must be at least 1");
        }
        if let Err((key, message)) = crate::outbound::Outbound::from_config(&self.outbound) {
            return invalid(&key, &message);
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        if self.auth.session_ttl < Duration::from_secs(60) {
            return invalid("auth.session_ttl", "must be at least 1m");
        }
        if self.catalog.remote_timeout < Duration::from_secs(1) {
            return invalid("catalog.remote_timeout", "must be at least 1s");
        }
        if self.catalog.refresh_interval < Duration::from_secs(1) {
            return invalid("catalog.refresh_interval", "must be at least 1s");
        }
        if self.builds.builder.trim().is_empty() || self.builds.git.trim().is_empty() {
            return invalid("builds.builder", "builds.builder and builds.git must name an executable");
        }
        if let Some(file) = &self.builds.ssh_known_hosts
            && !file.is_file()
        {
            return invalid("builds.ssh_known_hosts", &format!("must name an OpenSSH known_hosts file; {} is not a file", file.display()));
        }
        if self.builds.timeout < Duration::from_secs(10) {
            return invalid("builds.timeout", "must be at least 10s");
        }
        if self.builds.max_log_bytes < 1024 {
            return invalid("builds.max_log_bytes", "must be at least 1024");
        }
        if self.builds.poll_interval < Duration::from_millis(50) {
            return invalid("builds.poll_interval", "must be at least 50ms");
        }
        if self.builds.request_window < Duration::from_secs(1) {
            return invalid("builds.request_window", "must be at least 1s");
        }
        for (name, backend) in &self.build_backends {
            backend.validate(name).map_err(|message| ConfigError::Invalid { key: format!("build_backends.{name}"), message })?;
        }
        if !(self.database.url.starts_with("sqlite:") || self.database.url.starts_with("postgres:") || self.database.url.starts_with("postgresql:")) {
            return invalid("database.url", "must start with sqlite:// or postgres://");
        }
        self.secrets.validate().map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        for (key, reference) in self.local_secret_refs() {
            reference.check_local(&key).map_err(|e| ConfigError::Invalid { key, message: format!("{}: {}", e.reference, e.problem) })?;
        }
        crate::registry::config::validate(&self.registry, &self.registries).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        crate::release::Environments::from_config(&self.environments).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        crate::release::copy::check(&self.environments, &self.registries).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        crate::release::verify::check(&self.environments).map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        if let Some(url) = &self.observability.otlp_endpoint {
            if !matches!(url.scheme(), "http" | "https") {
                return invalid("observability.otlp_endpoint", "must be an http:// or https:// URL (OTLP over HTTP)");
            }
            if !url.username().is_empty() || url.password().is_some() {
                return invalid("observability.otlp_endpoint", "must not hold a user or password; give the collector's credentials in OTEL_EXPORTER_OTLP_HEADERS");
            }
        }
        if self.observability.service_name.trim().is_empty() {
            return invalid("observability.service_name", "must not be empty");
        }
        if !(0.0..=1.0).contains(&self.observability.trace_sample_ratio) {
            return invalid("observability.trace_sample_ratio", "must be between 0.0 and 1.0");
        }
        if self.release.push_attempts == 0 || self.release.push_attempts > 50 {
            return invalid("release.push_attempts", "must be between 1 and 50");
        }
        if self.release.git_timeout < Duration::from_secs(1) {
            return invalid("release.git_timeout", "must be at least 1s");
        }
        Ok(())
    }
}

/// Puts `over` on top of `base`: tables are merged key by key, anything else is replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
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
        assert_eq!(c.catalog.locations[1], LocationConfig::Typed(TypedLocation { kind: "glob".into(), target: "b/*.yaml".into(), ..Default::default() }));
    }

    #[test]
    fn generated_settings_sit_under_the_file_and_the_environment() {
        let base: toml::Table = "[builds]\ninsecure_registries = [\"127.0.0.1:1\"]\ngit_url_rewrites = { \"https://git.example.com/\" = \"git://127.0.0.1:2/\" }\n[jobs]\nworkers = 2\n".parse().unwrap();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[builds]\ntimeout = \"5m\"\n[jobs]\nworkers = 3").unwrap();
        let c = Config::load_over(base, Some(f.path()), env(&[("NOVA_JOBS__LEASE", "\"2m\"")])).unwrap();
        assert_eq!((c.jobs.workers, c.jobs.lease, c.builds.timeout), (3, Duration::from_secs(120), Duration::from_secs(300)));
        assert_eq!(c.builds.insecure_registries, ["127.0.0.1:1"]);
        assert_eq!(c.builds.clone_url("https://git.example.com/a/b.git"), "git://127.0.0.1:2/a/b.git");
        assert_eq!(c.builds.clone_url("https://git.example.org/a.git"), "https://git.example.org/a.git");
    }

    #[test]
    fn secrets_are_references() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[auth]\nsession_key = {{ env = \"NOVA_TEST_KEY_UNSET\" }}\n[[catalog.credentials]]\nurl_prefix = \"https://git.example.com/\"\nsecret = {{ file = \"/nonexistent\" }}").unwrap();
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        assert_eq!(c.auth.session_key, Some(SecretRef::Env("NOVA_TEST_KEY_UNSET".into())));
        assert!(c.auth.session_key.unwrap().resolve_local("auth.session_key").unwrap_err().to_string().contains("NOVA_TEST_KEY_UNSET"));
        assert!(c.catalog.credentials[0].secret.resolve_local("catalog.credentials[0].secret").unwrap_err().to_string().contains("/nonexistent"));
        // A setting read without the secret store cannot name it: refused when loading.
        let e = Config::load(None, env(&[("NOVA_AUTH__SESSION_KEY", "{ store = \"auth/key\" }")])).unwrap_err().to_string();
        assert!(e.contains("auth.session_key") && e.contains("cannot come from the secret store"), "{e}");
        // An inline secret is not a reference and is refused.
        let e = Config::load(None, env(&[("NOVA_AUTH__SESSION_KEY", "\"hunter2hunter2\"")])).unwrap_err().to_string();
        assert!(e.contains("auth.session_key") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn git_locations_take_ref_and_path() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[catalog]\nlocations = [{{ type = \"git\", target = \"https://h/r.git\", ref = \"main\", path = \"a.yaml\" }}]").unwrap();
        let c = Config::load(Some(f.path()), env(&[])).unwrap();
        let LocationConfig::Typed(t) = &c.catalog.locations[0] else { panic!("typed") };
        assert_eq!((t.reference.as_deref(), t.path.as_deref()), (Some("main"), Some("a.yaml")));
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[catalog]\nlocations = [{{ type = \"git\", target = \"https://h/r.git\", branch = \"main\" }}]").unwrap();
        assert!(Config::load(Some(f.path()), env(&[])).is_err(), "unknown keys in a location table are refused");
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
