//! The demo's git server: git's own smart-HTTP server (`git http-backend`, run as a CGI
//! program per request) behind a small listener on loopback, so that builds clone with a team
//! credential the way they would from a real forge.
//!
//! Each team that owns an example repository gets a token of its own, new on every start:
//! HTTP basic authentication as the team's name with that token reads the repositories under
//! `<team>/` and nothing else; pushes are refused (403), so the token is a read-only deploy
//! token. [`super::DemoEnvironment::register_credentials`] registers each token as the team's
//! `https-token` credential in Nova's secret store, through the same check a user's
//! registration goes through.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use nova_domain::Sensitive;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The largest request body the server reads: fetch negotiations are small.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The running server.
pub struct GitHttp {
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    /// Each team's read-only token.
    pub tokens: Arc<BTreeMap<String, Sensitive<String>>>,
    stop: CancellationToken,
}

struct Served {
    root: PathBuf,
    tokens: Arc<BTreeMap<String, Sensitive<String>>>,
}

impl GitHttp {
    /// Serves the bare repositories under `root` on `127.0.0.1:port`, with a new token for each
    /// of `teams`.
    pub async fn start(root: PathBuf, port: u16, teams: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut tokens = BTreeMap::new();
        for team in teams {
            let mut raw = [0u8; 20];
            getrandom::fill(&mut raw).map_err(|e| anyhow::anyhow!("no randomness for a demo git token: {e}"))?;
            tokens.insert(team, Sensitive::new(raw.iter().map(|b| format!("{b:02x}")).collect::<String>()));
        }
        let tokens = Arc::new(tokens);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.with_context(|| format!("cannot listen on 127.0.0.1:{port} for the git server"))?;
        let app = axum::Router::new()
            .fallback(handle)
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(Served { root, tokens: tokens.clone() }));
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move { cancelled.cancelled().await });
            if let Err(e) = served.await {
                super::progress(&format!("the git server stopped: {e}"));
            }
        });
        Ok(Self { base: format!("http://127.0.0.1:{port}/"), tokens, stop })
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The team whose token `headers` carry, if it is one of `tokens`.
fn team_of<'a>(headers: &HeaderMap, tokens: &'a BTreeMap<String, Sensitive<String>>) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    let (team, token) = tokens.get_key_value(user)?;
    crate::auth::oidc::constant_time_eq(token.expose().as_bytes(), password.as_bytes()).then_some(team.as_str())
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"nova demo git\""));
    }
    response
}

async fn handle(State(served): State<Arc<Served>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let Some(team) = team_of(&headers, &served.tokens) else {
        return refuse(StatusCode::UNAUTHORIZED, "sign in with your team's name and its demo token");
    };
    let owner = path.trim_start_matches('/').split('/').next().unwrap_or_default();
    if owner != team || path.split('/').any(|s| s == "..") {
        return refuse(StatusCode::FORBIDDEN, &format!("the {team} token reads only the repositories under {team}/"));
    }
    if path.ends_with("/git-receive-pack") || uri.query().is_some_and(|q| q.split('&').any(|p| p == "service=git-receive-pack")) {
        return refuse(StatusCode::FORBIDDEN, "demo team tokens are read-only: pushes are refused");
    }
    match backend(&served, &method, path, uri.query().unwrap_or_default(), &headers, team, body).await {
        Ok(response) => response,
        Err(e) => refuse(StatusCode::BAD_GATEWAY, &format!("git http-backend failed: {e:#}")),
    }
}

/// Runs `git http-backend` for one request and turns its CGI answer into a response.
async fn backend(served: &Served, method: &Method, path: &str, query: &str, headers: &HeaderMap, team: &str, body: Bytes) -> anyhow::Result<Response> {
    let mut cmd = crate::process::command("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &served.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", team)
        .env("REMOTE_ADDR", "127.0.0.1");
    for (name, var) in [(header::CONTENT_TYPE, "CONTENT_TYPE"), (header::CONTENT_ENCODING, "HTTP_CONTENT_ENCODING")] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            cmd.env(var, v);
        }
    }
    if let Some(v) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        cmd.env("GIT_PROTOCOL", v);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().context("cannot start git http-backend")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let writer = tokio::spawn(async move { stdin.write_all(&body).await });
    let out = child.wait_with_output().await.context("git http-backend")?;
    writer.await.context("writing the request body")?.context("writing the request body")?;
    cgi_response(&out.stdout)
}

/// A CGI program's output (headers, a blank line, the body) as an HTTP response.
fn cgi_response(out: &[u8]) -> anyhow::Result<Response> {
    let (head, body) = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&out[..i], &out[i + 4..]),
        None => match out.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&out[..i], &out[i + 2..]),
            None => anyhow::bail!("no header block in its output"),
        },
    };
    let mut response = Response::new(Body::from(body.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("200").parse().unwrap_or(200);
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        } else if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name.trim()), HeaderValue::from_str(value)) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_response() {
        let r = cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nmissing").unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        let r = cgi_response(b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e# service").unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(cgi_response(b"no headers at all").is_err());
    }

    #[test]
    fn only_a_team_token_signs_in() {
        let tokens: BTreeMap<String, Sensitive<String>> = [("storefront".to_string(), Sensitive::new("s3cret".to_string()))].into();
        let basic = |u: &str, p: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))).parse().unwrap());
            h
        };
        assert_eq!(team_of(&basic("storefront", "s3cret"), &tokens), Some("storefront"));
        assert_eq!(team_of(&basic("storefront", "s3cre"), &tokens), None);
        assert_eq!(team_of(&basic("payments", "s3cret"), &tokens), None);
        assert_eq!(team_of(&HeaderMap::new(), &tokens), None);
    }
}
