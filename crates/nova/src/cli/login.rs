//! `nova login` and how commands that talk to a running Nova find it and authenticate.
//!
//! `nova login [--server URL]` asks for a personal API token (made on the console's API tokens
//! page): typed without echo on a terminal, otherwise read from standard input, never taken as
//! an argument (arguments show in process lists). It checks the token with `GET /api/v1/me`,
//! then stores the server and token in `$XDG_CONFIG_HOME/nova/login.json` (else
//! `~/.config/nova/login.json`), readable only by the user (0600).
//!
//! Commands that call the API ([`ServerArgs`]) take the token from `--token`, then
//! `NOVA_TOKEN`, then the stored login, which is used only for the server it was made for.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Nova's address when nothing else names it.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

/// Where the server is and who is asking, for commands that call Nova's API.
#[derive(Args)]
pub struct ServerArgs {
    /// Nova's base URL (default: the server of `nova login`, else http://127.0.0.1:7700).
    #[arg(long, env = "NOVA_SERVER")]
    server: Option<String>,
    /// An API token (from the console's API tokens page). Prefer `NOVA_TOKEN` or `nova login`:
    /// arguments are visible in process lists.
    #[arg(long, env = "NOVA_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// A resolved server and token.
pub struct Remote {
    /// The base URL, without a trailing `/`.
    pub server: String,
    pub token: String,
}

impl ServerArgs {
    /// The server and the token to send it: `--token`, `NOVA_TOKEN`, or the stored login for
    /// that server.
    pub fn resolve(&self) -> anyhow::Result<Remote> {
        let stored = StoredLogin::load()?;
        let server = self
            .server
            .clone()
            .or_else(|| stored.as_ref().map(|s| s.server.clone()))
            .unwrap_or_else(|| DEFAULT_SERVER.to_string())
            .trim_end_matches('/')
            .to_string();
        let token = match (&self.token, stored) {
            (Some(t), _) => t.clone(),
            (None, Some(s)) if s.server == server => s.token,
            (None, Some(s)) => bail!("no API token for {server}: `nova login` stored one for {}; run `nova login --server {server}` or set NOVA_TOKEN", s.server),
            (None, None) => bail!("no API token: run `nova login`, or set NOVA_TOKEN"),
        };
        Ok(Remote { server, token })
    }
}

/// The server answered a request with an error status: its problem's `detail` is the message.
#[derive(Debug, thiserror::Error)]
#[error("the server refused ({status}): {detail}")]
pub struct Refused {
    pub status: reqwest::StatusCode,
    pub detail: String,
}

/// The JSON body of a successful answer; a [`Refused`] error (with the problem's `detail`)
/// otherwise.
pub async fn answer(res: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let detail = body["detail"].as_str().map(str::to_string).unwrap_or_else(|| body.to_string());
        return Err(Refused { status, detail }.into());
    }
    Ok(body)
}

/// What `nova login` stores.
#[derive(Serialize, Deserialize)]
struct StoredLogin {
    server: String,
    token: String,
}

/// The file holding the stored login.
fn login_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set: no place to store the login")?).join(".config"),
    };
    Ok(base.join("nova").join("login.json"))
}

impl StoredLogin {
    fn load() -> anyhow::Result<Option<Self>> {
        let path = login_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("{} is not a stored login; run `nova login` again", path.display()))?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the login readable only by its owner: a fresh 0600 file renamed into place.
    fn save(&self) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = login_path()?;
        let dir = path.parent().expect("the login file has a directory");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join(format!(".login.json.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(self).expect("a login serializes").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// `nova login`.
#[derive(Args)]
pub struct LoginArgs {
    /// Nova's base URL (default: the stored login's server, else http://127.0.0.1:7700).
    #[arg(long, env = "NOVA_SERVER")]
    server: Option<String>,
}

/// Reads the token: without echo from a terminal, else the first line of standard input.
fn read_token(server: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("API token for {server} (make one at {server}/tokens): ");
        std::io::stderr().flush()?;
        let _echo = EchoOff::new();
        stdin.lock().read_line(&mut line)?;
        eprintln!();
    } else {
        stdin.lock().read_line(&mut line)?;
    }
    let token = line.trim().to_string();
    if token.is_empty() {
        bail!("no token was given: paste a token made on {server}/tokens");
    }
    if !crate::auth::tokens::looks_like_token(&token) {
        bail!("that is not a Nova API token (they start with nova_ and have 48 characters)");
    }
    Ok(token)
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on standard input with a zeroed termios they fill in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
            }
        }
    }
}

/// Asks the server who the token belongs to.
async fn whoami(server: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("{server}/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach Nova at {server}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no reason given");
        bail!("{server} refused the token ({status}): {detail}");
    }
    Ok(body)
}

/// Runs `nova login`.
pub fn run(args: LoginArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<()> {
        let stored = StoredLogin::load()?;
        let server = args.server.or_else(|| stored.map(|s| s.server)).unwrap_or_else(|| DEFAULT_SERVER.to_string()).trim_end_matches('/').to_string();
        let token = read_token(&server)?;
        let me = super::runtime().block_on(whoami(&server, &token))?;
        let path = StoredLogin { server: server.clone(), token }.save()?;
        println!("Signed in to {server} as {} ({}). The token is stored in {}.", me["displayName"].as_str().unwrap_or(""), me["user"].as_str().unwrap_or(""), path.display());
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(e),
    }
}
