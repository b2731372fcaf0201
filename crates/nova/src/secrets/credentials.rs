//! Team credentials: a team's read-only git credential (or registry push credential), kept in
//! the [`SecretStore`] at `teams/<team>/credentials/<name>`.
//!
//! A credential is one secret with two fields: `secret` (the SSH private key or token) and
//! `metadata` (JSON: kind, repositories, description, who created and rotated it and when).
//! Only [`TeamCredential::secret`] ever holds the value; [`CredentialInfo`], the only thing
//! listed or returned, holds none. Validation errors name the field and the rule, never the
//! value.
//!
//! The build lane calls [`for_component`]: the credential covering a component's repository,
//! from the component's owning team or, failing that, the nearest ancestor team that has one.

use nova_domain::{EntityRef, RelationType, Sensitive};
use serde::{Deserialize, Serialize};

use super::{Precondition, SecretData, SecretError, SecretPath, SecretStore};
use crate::catalog::Snapshot;
use crate::git_remote::{AccessCheck, GitRemote};

/// Most repositories one credential may cover.
pub const MAX_REPOSITORIES: usize = 5;
/// Shortest and longest token accepted.
const TOKEN_LEN: std::ops::RangeInclusive<usize> = 8..=4096;
/// Longest SSH key accepted.
const MAX_KEY_LEN: usize = 16 * 1024;
/// Shortest and longest SSH key passphrase accepted.
const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 1..=1024;
const SECRET_FIELD: &str = "secret";
const METADATA_FIELD: &str = "metadata";

/// What a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialKind {
    /// An OpenSSH or PEM private key, for `ssh://` or scp-like URLs; one with a passphrase is
    /// registered with its passphrase and stored decrypted.
    SshKey,
    /// A token used as an HTTPS password, with a username.
    HttpsToken,
    /// A push credential for a named container registry; `repositories` are image repositories.
    Registry,
}

/// A credential's metadata: everything but the value. Safe to list, log and audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CredentialInfo {
    /// The owning team's group name.
    pub team: String,
    /// The credential's name within the team.
    pub name: String,
    pub kind: CredentialKind,
    /// Normalised git URLs (or, for a registry credential, image repositories).
    pub repositories: Vec<String>,
    /// The HTTPS username (`https-token`) or the registry host (`registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default)]
    pub description: String,
    pub created_by: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<i64>,
    /// What registering (or rotating) found out about each repository: readable with the
    /// credential, and whether a push was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<AccessCheck>,
    /// When a build last used it; from Nova's database, not the secret store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_use: Option<super::credential_uses::LastUse>,
}

/// A registration or rotation request, as the API and the console take it.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    pub kind: CredentialKind,
    pub repositories: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The value. Write-only: never returned.
    #[schema(value_type = String)]
    pub secret: Sensitive<String>,
    /// The passphrase of a passphrase-protected SSH key. Write-only: Nova decrypts the key with
    /// it on registration and keeps neither the passphrase nor the encrypted form.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub passphrase: Option<Sensitive<String>>,
}

/// A credential with its value, for the one child process that uses it.
pub struct TeamCredential {
    pub info: CredentialInfo,
    pub secret: Sensitive<String>,
}

/// How a child process gets a credential; removes its temporary files when dropped, so keep
/// it alive until the child has finished.
pub struct Materialised {
    _dir: tempfile::TempDir,
}

/// The ssh git runs: no ssh_config of the machine (`-F /dev/null`), so no identity it names
/// is offered, and only the identities given (`IdentitiesOnly`: no agent); never a prompt.
pub const SSH: &str = "ssh -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes";

impl TeamCredential {
    /// A credential that is not (yet) stored as a team's: the one a registration checks, or
    /// a configured GitOps credential the doctor tries.
    pub fn unregistered(kind: CredentialKind, repositories: Vec<String>, username: Option<String>, secret: Sensitive<String>) -> Self {
        let info = CredentialInfo {
            team: String::new(),
            name: String::new(),
            kind,
            repositories,
            username,
            description: String::new(),
            created_by: String::new(),
            created_at_ms: 0,
            rotated_by: None,
            rotated_at_ms: None,
            checks: Vec::new(),
            last_use: None,
        };
        Self { info, secret }
    }

    /// Hands the credential to one git child process: an `https-token` through `GIT_ASKPASS`
    /// and environment variables of that child only; an `ssh-key` as a 0600 file in a private
    /// temporary directory with `GIT_SSH_COMMAND` (`IdentitiesOnly=yes`, batch mode, no
    /// ssh_config or agent of the machine; host keys pinned to `known_hosts` when given, else
    /// accepted on first use into a file that dies with the directory). Never in a URL or
    /// argv. Git never prompts (`GIT_TERMINAL_PROMPT=0`). A `registry` credential is not for
    /// git and is refused.
    pub fn materialise(&self, cmd: &mut crate::process::Command, known_hosts: Option<&std::path::Path>) -> Result<Materialised, CredentialError> {
        let dir = private_dir()?;
        let write = |name: &str, text: &str, mode: u32| write_private(&dir, name, text, mode);
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        match self.info.kind {
            CredentialKind::HttpsToken => {
                let askpass = write("askpass", crate::git_remote::ASKPASS, 0o700)?;
                cmd.env("GIT_ASKPASS", &askpass).env("NOVA_GIT_USERNAME", self.info.username.as_deref().unwrap_or("")).env("NOVA_GIT_PASSWORD", self.secret.expose());
            }
            CredentialKind::SshKey => {
                let mut key = self.secret.expose().trim_end().to_string();
                key.push('\n');
                let key = write("id", &key, 0o600)?;
                let hosts = match known_hosts {
                    Some(p) => format!("-o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes", shell_quote(p)),
                    None => format!("-o UserKnownHostsFile={} -o StrictHostKeyChecking=accept-new", shell_quote(&dir.path().join("known_hosts"))),
                };
                cmd.env("GIT_SSH_COMMAND", format!("{SSH} -i {} {hosts}", shell_quote(&key))).env_remove("SSH_AUTH_SOCK");
            }
            CredentialKind::Registry => return Err(invalid("kind", "a registry credential is for pushing images, not for git")),
        }
        Ok(Materialised { _dir: dir })
    }
}

impl TeamCredential {
    /// Writes a `registry` credential as a containers auth file (`{"auths": {host: {"auth":
    /// base64(user:password)}}}`), mode 0600 in a private temporary directory, for `buildah
    /// push --authfile`: the path is an argument, the value is only in the file, which is
    /// removed when the returned guard is dropped. The secret is `user:password`; one without
    /// `:` is a token used with the user `nova` (registries such as GHCR accept any user).
    pub fn registry_auth_file(&self) -> Result<(Materialised, std::path::PathBuf), CredentialError> {
        use base64::Engine as _;
        if self.info.kind != CredentialKind::Registry {
            return Err(invalid("kind", "only a registry credential can push images"));
        }
        let host = self.info.username.as_deref().unwrap_or_default();
        let secret = self.secret.expose();
        let pair = if secret.contains(':') { secret.clone() } else { format!("nova:{secret}") };
        let auth = Sensitive::new(base64::engine::general_purpose::STANDARD.encode(pair));
        let file = Sensitive::new(serde_json::json!({ "auths": { host: { "auth": auth.expose() } } }).to_string());
        let dir = private_dir()?;
        let path = write_private(&dir, "auth.json", file.expose(), 0o600)?;
        Ok((Materialised { _dir: dir }, path))
    }
}

fn io_error(e: std::io::Error) -> CredentialError {
    CredentialError::Store(SecretError::Unavailable(format!("cannot prepare the credential for a child process: {e}")))
}

/// A new temporary directory only this user can enter.
fn private_dir() -> Result<tempfile::TempDir, CredentialError> {
    tempfile::Builder::new().prefix("nova-cred-").tempdir().map_err(io_error)
}

/// Creates `name` in `dir` with `mode`, holding `text`.
fn write_private(dir: &tempfile::TempDir, name: &str, text: &str, mode: u32) -> Result<std::path::PathBuf, CredentialError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.path().join(name);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&path).map_err(io_error)?;
    f.write_all(text.as_bytes()).map_err(io_error)?;
    Ok(path)
}

/// A path quoted for the shell git runs `GIT_SSH_COMMAND` with.
fn shell_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

/// Why a credential operation failed. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Bad input: the field and the rule it broke.
    #[error("{field}: {rule}")]
    Invalid { field: String, rule: String },
    /// Another credential of the team already covers a repository.
    #[error("repositories: {repository} is already covered by the team's credential {other}; a repository may be covered by one credential per team")]
    Covered { repository: String, other: String },
    #[error(transparent)]
    Store(#[from] SecretError),
}

fn invalid(field: impl Into<String>, rule: impl Into<String>) -> CredentialError {
    CredentialError::Invalid { field: field.into(), rule: rule.into() }
}

/// The team's group reference for a team name in a URL.
pub fn team_ref(team: &str) -> EntityRef {
    EntityRef::new("group", "default", team)
}

fn path(team: &str, name: &str) -> Result<SecretPath, CredentialError> {
    validate_name("team", team)?;
    validate_name("name", name)?;
    SecretPath::team(team, &format!("credentials/{name}")).map_err(|e| invalid("name", e.to_string()))
}

fn validate_name(field: &str, value: &str) -> Result<(), CredentialError> {
    let ok = !value.is_empty() && value.len() <= 63 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) && !value.starts_with(['-', '.']);
    if ok { Ok(()) } else { Err(invalid(field, "must be 1 to 63 of A-Z, a-z, 0-9, `-`, `_`, `.`, not starting with `-` or `.`")) }
}

/// Normalises a git repository URL for exact matching: lowercase scheme and host, no trailing
/// `/` or `.git`. Refuses what git could be tricked with: `file://`, `ext::`, options.
pub fn normalize_repository(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.starts_with('-') {
        return Err("must not start with `-` (it would be read as an option)".into());
    }
    if url.contains("::") || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain `::` (remote helpers such as ext::), spaces or control characters".into());
    }
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    if let Some((scheme, rest)) = trimmed.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let refused = || format!("scheme `{scheme}` is not allowed; use https:// or ssh:// (or scp-like user@host:path); http:// only to this machine (127.0.0.1, localhost)");
        if !matches!(scheme.as_str(), "https" | "ssh" | "http") {
            return Err(refused());
        }
        let (authority, path) = rest.split_once('/').ok_or("needs a repository path after the host")?;
        if authority.is_empty() || path.is_empty() {
            return Err("needs a host and a repository path".into());
        }
        let loopback = matches!(authority.rsplit_once(':').map_or(authority, |(h, _)| h), "127.0.0.1" | "localhost" | "[::1]");
        if scheme == "http" && !loopback {
            return Err(refused());
        }
        if scheme != "ssh" && authority.contains('@') {
            return Err("must not carry credentials in the URL; give the username in `username`".into());
        }
        return Ok(format!("{scheme}://{}/{path}", authority.to_ascii_lowercase()));
    }
    // scp-like: [user@]host:path
    match trimmed.split_once(':') {
        Some((host, path)) if !host.is_empty() && !path.is_empty() && !host.contains('/') => Ok(format!("{}:{path}", host.to_ascii_lowercase())),
        _ => Err("must be https://host/path, ssh://host/path or scp-like user@host:path".into()),
    }
}

/// Checks a request; returns the normalised repositories.
fn validate(req: &CredentialRequest) -> Result<Vec<String>, CredentialError> {
    let n = req.repositories.len();
    if n == 0 || n > MAX_REPOSITORIES {
        return Err(invalid("repositories", format!("must list 1 to {MAX_REPOSITORIES} repositories (got {n})")));
    }
    let mut repos = Vec::with_capacity(n);
    for (i, r) in req.repositories.iter().enumerate() {
        let field = format!("repositories[{i}]");
        let norm = if req.kind == CredentialKind::Registry {
            let r = r.trim();
            if r.is_empty() || r.starts_with('-') || r.contains("://") || r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(field, "must be an image repository name such as team/app, without a scheme"));
            }
            r.to_string()
        } else {
            normalize_repository(r).map_err(|rule| invalid(field, rule))?
        };
        if repos.contains(&norm) {
            return Err(invalid(format!("repositories[{i}]"), "is listed twice"));
        }
        repos.push(norm);
    }
    if req.description.len() > 500 {
        return Err(invalid("description", "must be at most 500 characters"));
    }
    let secret = req.secret.expose();
    match req.kind {
        CredentialKind::SshKey => {
            if secret.len() > MAX_KEY_LEN || !is_private_key(secret) {
                return Err(invalid("secret", "must be an OpenSSH or PEM private key (-----BEGIN ... PRIVATE KEY-----)"));
            }
            let encrypted = secret.contains("ENCRYPTED") || openssh_key_is_encrypted(secret);
            match &req.passphrase {
                None if encrypted => return Err(invalid("passphrase", "is required: the key is passphrase-protected (or register a key without a passphrase)")),
                Some(_) if !encrypted => return Err(invalid("passphrase", "is only for a passphrase-protected key, and this one has none")),
                Some(p) if !PASSPHRASE_LEN.contains(&p.expose().chars().count()) || p.expose().chars().any(char::is_control) => {
                    return Err(invalid("passphrase", format!("must be {} to {} characters without control characters", PASSPHRASE_LEN.start(), PASSPHRASE_LEN.end())));
                }
                _ => {}
            }
            if let Some(repo) = repos.iter().find(|r| r.starts_with("https://") || r.starts_with("http://")) {
                return Err(invalid("repositories", format!("{repo} is an https:// URL; an ssh-key credential is for ssh:// or scp-like URLs")));
            }
        }
        CredentialKind::HttpsToken | CredentialKind::Registry => {
            if req.passphrase.is_some() {
                return Err(invalid("passphrase", "is only for an ssh-key credential"));
            }
            let len = secret.chars().count();
            if !TOKEN_LEN.contains(&len) || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid("secret", format!("must be a token of {} to {} characters without spaces", TOKEN_LEN.start(), TOKEN_LEN.end())));
            }
            let username = req.username.as_deref().unwrap_or("").trim();
            let what = if req.kind == CredentialKind::Registry { "the registry host" } else { "the HTTPS username" };
            if username.is_empty() || username.len() > 255 || username.starts_with('-') || username.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid("username", format!("must be {what}, 1 to 255 characters without spaces")));
            }
            if req.kind == CredentialKind::HttpsToken {
                if let Some(repo) = repos.iter().find(|r| !r.starts_with("https://") && !r.starts_with("http://")) {
                    return Err(invalid("repositories", format!("{repo} is not an https:// URL; an https-token credential is for https:// URLs")));
                }
            }
        }
    }
    Ok(repos)
}

fn is_private_key(text: &str) -> bool {
    let text = text.trim();
    let first = text.lines().next().unwrap_or("");
    let last = text.lines().last().unwrap_or("");
    first.starts_with("-----BEGIN ") && first.ends_with("PRIVATE KEY-----") && last.starts_with("-----END ") && last.ends_with("PRIVATE KEY-----")
}

/// Whether an `OPENSSH PRIVATE KEY` names a cipher other than `none`.
fn openssh_key_is_encrypted(text: &str) -> bool {
    use base64::Engine as _;
    if !text.contains("BEGIN OPENSSH PRIVATE KEY") {
        return false;
    }
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().concat();
    let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(body.trim()) else { return false };
    // "openssh-key-v1\0", then a length-prefixed cipher name.
    let rest = bytes.strip_prefix(b"openssh-key-v1\0").unwrap_or(&[]);
    let Some(len) = rest.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else { return false };
    rest.get(4..4 + len).is_some_and(|name| name != b"none")
}

fn split(data: &SecretData) -> Result<(CredentialInfo, Sensitive<String>), SecretError> {
    let damaged = || SecretError::Invalid("the stored credential is missing its fields".into());
    let meta = data.get(METADATA_FIELD).ok_or_else(damaged)?;
    let info: CredentialInfo = serde_json::from_str(meta.expose()).map_err(|_| damaged())?;
    let secret = data.get(SECRET_FIELD).ok_or_else(damaged)?.clone();
    Ok((info, secret))
}

fn join(info: &CredentialInfo, secret: &Sensitive<String>) -> SecretData {
    let mut data = SecretData::new();
    data.insert(METADATA_FIELD, Sensitive::new(serde_json::to_string(info).expect("metadata serializes")));
    data.insert(SECRET_FIELD, secret.clone());
    data
}

/// Every credential of `team`, metadata only, by name.
pub async fn list(store: &dyn SecretStore, team: &str) -> Result<Vec<CredentialInfo>, CredentialError> {
    validate_name("team", team)?;
    let prefix = SecretPath::team(team, "credentials").map_err(|e| invalid("team", e.to_string()))?;
    let mut out = Vec::new();
    for p in store.list(Some(&prefix)).await? {
        match store.get(&p).await {
            Ok(v) => out.push(split(&v.data)?.0),
            Err(SecretError::NotFound(_)) => {} // revoked meanwhile
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One credential's metadata.
pub async fn info(store: &dyn SecretStore, team: &str, name: &str) -> Result<CredentialInfo, CredentialError> {
    Ok(split(&store.get(&path(team, name)?).await?.data)?.0)
}

/// A credential [`put`] stored: its metadata, and whether it replaced an earlier one.
#[derive(Debug)]
pub struct Saved {
    pub info: CredentialInfo,
    pub rotated: bool,
}

impl Saved {
    /// The audit action: `credentials.rotate` or `credentials.register`.
    pub fn action(&self) -> &'static str {
        if self.rotated { "credentials.rotate" } else { "credentials.register" }
    }

    /// The audit event's details: kind, repositories and check results, never the value.
    pub fn audit_details(&self) -> serde_json::Value {
        serde_json::json!({ "kind": self.info.kind, "repositories": self.info.repositories, "checks": self.info.checks })
    }
}

/// The git client that checks credentials as they are registered ([`put`]), unless the
/// configuration turns the checks off (`builds.check_credentials = false`).
pub fn checker(config: &crate::config::BuildsConfig) -> Option<GitRemote> {
    config.check_credentials.then(|| GitRemote::new(config))
}

/// Registers a credential, or rotates it when `team` already has one called `name` (the value
/// and the other fields are replaced; who created it and when are kept). With a `checker`,
/// the credential must first pass [`check_access`], whose result is kept with the metadata.
/// The one way in for the API, the console, the CLI and the demo; each audits the answer.
pub async fn put(store: &dyn SecretStore, checker: Option<&GitRemote>, team: &str, name: &str, req: &CredentialRequest, actor: &str, now_ms: i64) -> Result<Saved, CredentialError> {
    let p = path(team, name)?;
    let repositories = validate(req)?;
    for other in list(store, team).await? {
        if other.name == name {
            continue;
        }
        if let Some(r) = other.repositories.iter().find(|r| repositories.contains(r)) {
            return Err(CredentialError::Covered { repository: r.clone(), other: other.name });
        }
    }
    let decrypted;
    let req = match &req.passphrase {
        Some(passphrase) => {
            decrypted = CredentialRequest { secret: without_passphrase(&req.secret, passphrase).await?, passphrase: None, ..req.clone() };
            &decrypted
        }
        None => req,
    };
    let checks = match checker {
        Some(git) => check_access(git, req).await?,
        None => Vec::new(),
    };
    let existing = match store.get(&p).await {
        Ok(v) => Some((split(&v.data)?.0, v.version)),
        Err(SecretError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let mut info = CredentialInfo {
        team: team.to_string(),
        name: name.to_string(),
        kind: req.kind,
        repositories,
        username: req.username.as_ref().map(|u| u.trim().to_string()),
        description: req.description.trim().to_string(),
        created_by: actor.to_string(),
        created_at_ms: now_ms,
        rotated_by: None,
        rotated_at_ms: None,
        checks,
        last_use: None,
    };
    let (precondition, rotated) = match existing {
        Some((old, version)) => {
            info.created_by = old.created_by;
            info.created_at_ms = old.created_at_ms;
            info.rotated_by = Some(actor.to_string());
            info.rotated_at_ms = Some(now_ms);
            (Precondition::Current(version), true)
        }
        None => (Precondition::Absent, false),
    };
    store.put(&p, &join(&info, &req.secret), precondition).await?;
    Ok(Saved { info, rotated })
}

/// `key` decrypted with `passphrase` by `ssh-keygen -p -N ""` on a private 0600 copy. The
/// passphrase reaches ssh-keygen as its `SSH_ASKPASS` program's answer, read from the child's
/// environment (`SSH_ASKPASS_REQUIRE=force`: never a terminal prompt), so it is in no argv and
/// no file. A wrong passphrase is refused naming the field.
async fn without_passphrase(key: &Sensitive<String>, passphrase: &Sensitive<String>) -> Result<Sensitive<String>, CredentialError> {
    const ASKPASS: &str = "#!/bin/sh\nprintf '%s\\n' \"$NOVA_SSH_PASSPHRASE\"\n";
    let dir = private_dir()?;
    let mut text = key.expose().trim_end().to_string();
    text.push('\n');
    let file = write_private(&dir, "id", &text, 0o600)?;
    let askpass = write_private(&dir, "askpass", ASKPASS, 0o700)?;
    let out = crate::process::command("ssh-keygen")
        .args(["-q", "-p", "-N", "", "-f"])
        .arg(&file)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("NOVA_SSH_PASSPHRASE", passphrase.expose())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| invalid("passphrase", format!("the key cannot be decrypted here: ssh-keygen did not run ({e}); install openssh-client")))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(if why.contains("incorrect passphrase") {
            invalid("passphrase", "does not decrypt the key")
        } else {
            invalid("secret", format!("ssh-keygen cannot read the key: {}", why.lines().last().unwrap_or("").trim()))
        });
    }
    let decrypted = std::fs::read_to_string(&file).map_err(io_error)?;
    Ok(Sensitive::new(decrypted))
}

/// Tries the credential a request registers against each of its git repositories before it
/// is stored: `git ls-remote` must succeed (else the request is refused, naming the repository
/// and git's reason, never the value), and a `git push --dry-run` that the server refuses
/// proves it read-only. A registry credential is not checked (empty answer).
async fn check_access(git: &GitRemote, req: &CredentialRequest) -> Result<Vec<AccessCheck>, CredentialError> {
    let repositories = validate(req)?;
    if req.kind == CredentialKind::Registry {
        return Ok(Vec::new());
    }
    let credential = TeamCredential::unregistered(req.kind, repositories.clone(), req.username.as_ref().map(|u| u.trim().to_string()), req.secret.clone());
    let mut checks = Vec::with_capacity(repositories.len());
    for (i, (given, normalised)) in req.repositories.iter().zip(repositories).enumerate() {
        let mut check = git.check_access(given.trim(), &credential).await;
        if !check.readable {
            let why = check.error.unwrap_or_default();
            return Err(invalid(format!("repositories[{i}]"), format!("git ls-remote with this credential must succeed, and it failed: {why}")));
        }
        check.repository = normalised;
        checks.push(check);
    }
    Ok(checks)
}

/// Revokes (deletes) a credential. `NotFound` when there is none.
pub async fn revoke(store: &dyn SecretStore, team: &str, name: &str) -> Result<CredentialInfo, CredentialError> {
    let p = path(team, name)?;
    let (info, _) = split(&store.get(&p).await?.data)?;
    store.delete(&p).await?;
    Ok(info)
}

/// The credential a build of `component` may use to fetch `repository`: from the component's
/// owning team, else from the nearest ancestor team (following `childOf`) that has one covering
/// the repository. `Ok(None)` when no team on that chain has one, or the component names no
/// group owner. The request cannot choose the team: only the catalog's ownership counts, so a
/// team's credential is never used for another team's component.
///
/// The caller uses the value for one child process and audits the use with
/// [`CredentialInfo::team`] and [`CredentialInfo::name`], never the value.
pub async fn for_component(store: &dyn SecretStore, snapshot: &Snapshot, component: &EntityRef, repository: &str) -> Result<Option<TeamCredential>, CredentialError> {
    let wanted = normalize_repository(repository).map_err(|rule| invalid("repository", rule))?;
    nearest(store, snapshot, component, |info| info.kind != CredentialKind::Registry && info.repositories.contains(&wanted)).await
}

/// The registry push credential a build of `component` may push `image` (`host[:port]/path`)
/// with: a `registry` credential naming that host and the image's repository path, from the
/// owning team or its nearest ancestor that has one, as [`for_component`] finds git credentials.
pub async fn for_registry(store: &dyn SecretStore, snapshot: &Snapshot, component: &EntityRef, image: &str) -> Result<Option<TeamCredential>, CredentialError> {
    let Some((host, repository)) = image.split_once('/') else { return Ok(None) };
    let host = host.to_ascii_lowercase();
    nearest(store, snapshot, component, |info| {
        info.kind == CredentialKind::Registry && info.username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&host)) && info.repositories.iter().any(|r| r == repository)
    })
    .await
}

/// The first credential `wanted` accepts, from the component's owning team, then up the
/// `childOf` chain.
async fn nearest(store: &dyn SecretStore, snapshot: &Snapshot, component: &EntityRef, wanted: impl Fn(&CredentialInfo) -> bool) -> Result<Option<TeamCredential>, CredentialError> {
    let Some(mut team) = snapshot.get(component).and_then(|r| r.summary.owner.clone()).filter(|o| o.kind() == "group") else {
        return Ok(None);
    };
    let mut seen = Vec::new();
    loop {
        if team.namespace() == "default" && validate_name("team", team.name()).is_ok() {
            for info in list(store, team.name()).await? {
                if wanted(&info) {
                    let (info, secret) = split(&store.get(&path(&info.team, &info.name)?).await?.data)?;
                    return Ok(Some(TeamCredential { info, secret }));
                }
            }
        }
        seen.push(team.clone());
        match snapshot.get(&team).and_then(|g| g.related(RelationType::ChildOf).next().cloned()) {
            Some(parent) if !seen.contains(&parent) => team = parent,
            _ => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: CredentialKind, repos: &[&str], secret: &str) -> CredentialRequest {
        CredentialRequest { kind, repositories: repos.iter().map(|s| s.to_string()).collect(), username: Some("ci".into()), description: String::new(), secret: Sensitive::new(secret.into()), passphrase: None }
    }

    #[test]
    fn repositories_are_normalised_and_dangerous_forms_refused() {
        assert_eq!(normalize_repository("HTTPS://Git.Example.com/a/b.git/").unwrap(), "https://git.example.com/a/b");
        assert_eq!(normalize_repository("git@Host:team/app.git").unwrap(), "git@host:team/app");
        assert_eq!(normalize_repository("http://127.0.0.1:8080/private/r.git").unwrap(), "http://127.0.0.1:8080/private/r");
        for bad in ["file:///srv/x", "ext::sh -c x", "-uhttps://x/y", "http://x/y", "http://127.0.0.1.example.com/y", "http://u:p@localhost/y", "https://u:p@x/y", "nohost"] {
            assert!(normalize_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_never_the_value() {
        let canary = "tok-3f9a1c2e7b";
        let e = validate(&req(CredentialKind::SshKey, &["ssh://h/r"], canary)).unwrap_err().to_string();
        assert!(e.starts_with("secret:") && !e.contains(canary), "{e}");
        let e = validate(&req(CredentialKind::HttpsToken, &[], canary)).unwrap_err().to_string();
        assert!(e.starts_with("repositories:"), "{e}");
        let six: Vec<String> = (0..6).map(|i| format!("https://h/r{i}")).collect();
        let six: Vec<&str> = six.iter().map(String::as_str).collect();
        assert!(validate(&req(CredentialKind::HttpsToken, &six, canary)).is_err());
        let e = validate(&req(CredentialKind::HttpsToken, &["ssh://h/r"], canary)).unwrap_err().to_string();
        assert!(e.starts_with("repositories:") && !e.contains(canary), "{e}");
        assert!(validate(&req(CredentialKind::HttpsToken, &["https://h/r"], canary)).is_ok());
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        assert!(validate(&req(CredentialKind::SshKey, &["git@h:r"], key)).is_ok());
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----";
        assert!(validate(&req(CredentialKind::SshKey, &["git@h:r"], enc)).unwrap_err().to_string().contains("passphrase"));
    }
}
