//! The Argo CD kind of verification: `verify = { argocd = { server, application, token } }`
//! asks Argo CD's API (`GET /api/v1/applications/{name}`, with an API token as a bearer token)
//! until the application's health is `Healthy`, its sync status `Synced`, and one of the images
//! it runs (`status.summary.images`) is the promotion's digest.

use nova_domain::EntityRef;
use reqwest::header;
use serde::Deserialize;

use super::verify::{Answer, fill, guarded_url, http_client, no_answer};
use crate::secrets::{SecretRef, SecretStore};

/// `verify.argocd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgoCdCheck {
    /// Argo CD's base URL, e.g. `https://argocd.example.com`.
    pub server: String,
    /// The application's name; `{component}` and `{namespace}` are filled in.
    pub application: String,
    /// An Argo CD API token allowed to read the application, by reference.
    pub token: SecretRef,
}

/// The parts of Argo CD's `Application` that the check reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Application {
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Status {
    health: State,
    sync: State,
    summary: Summary,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct State {
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    images: Vec<String>,
}

/// Whether `name` is a Kubernetes object name, as Argo CD applications are.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') && !name.starts_with(['-', '.']) && !name.ends_with(['-', '.'])
}

impl ArgoCdCheck {
    /// Checks the settings for a sample component; an error is `(key under argocd, message)`.
    pub fn check(&self, sample: &EntityRef) -> Result<(), (String, String)> {
        guarded_url(&self.server, sample).map_err(|m| ("server".to_string(), m))?;
        if !valid_name(&fill(&self.application, sample)) {
            return Err(("application".into(), "must be an application name (a-z, 0-9, `-` and `.`) once {component} and {namespace} are filled in".into()));
        }
        Ok(())
    }

    /// Asks Argo CD once about the application of `component` in `environment`.
    pub(super) async fn ask(&self, component: &EntityRef, digest: &str, environment: &str, secrets: &dyn SecretStore) -> Answer {
        let failed = |summary: String| Answer { passed: false, summary };
        let name = fill(&self.application, component);
        let mut url = match guarded_url(&self.server, component) {
            Ok(u) if valid_name(&name) => u,
            Ok(_) => return failed(format!("environments.{environment}.verify.argocd.application {name:?} is not an application name")),
            Err(m) => return failed(format!("environments.{environment}.verify.argocd.server {m}")),
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["api", "v1", "applications", &name]);
        }
        let token = match self.token.resolve(&format!("environments.{environment}.verify.argocd.token"), secrets).await {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        let client = match http_client() {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        let response = match client.get(url).header(header::AUTHORIZATION, format!("Bearer {}", token.expose())).send().await {
            Ok(r) => r,
            Err(e) => return failed(format!("Argo CD: {}", no_answer(e))),
        };
        let status = response.status();
        if !status.is_success() {
            return failed(format!("Argo CD answered HTTP {status} for application {name}"));
        }
        let app: Application = match response.json().await {
            Ok(a) => a,
            Err(_) => return failed(format!("Argo CD's answer for application {name} is not an Application")),
        };
        let s = &app.status;
        let runs = s.summary.images.iter().any(|i| i.ends_with(&format!("@{digest}")));
        let summary = format!("Argo CD application {name}: health {}, sync {}, {} {digest}", or_unknown(&s.health.status), or_unknown(&s.sync.status), if runs { "running" } else { "not running" });
        Answer { passed: s.health.status == "Healthy" && s.sync.status == "Synced" && runs, summary }
    }
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "unknown" } else { s }
}
