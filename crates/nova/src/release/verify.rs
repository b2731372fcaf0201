//! Verification after the GitOps write: an environment's `verify` check polls an HTTP URL
//! until it answers 2xx and (by `expect`) names the promotion's digest or one of its tags, or
//! asks Argo CD until the application is healthy and synced with the digest ([`argocd`]). The
//! promotion is `verifying` meanwhile, with the last answer as its reason; it is `done` (and
//! verified) when the check passes, `failed` when `timeout` runs out first. The polling is a
//! leased [`VerifyPromotion`] job that runs once per `interval` and keeps its deadline in the
//! promotion's row, so a restart resumes it. A verified promotion's `finished_at` is the
//! verification time, which is what the next environment's wait timer counts from.

use std::collections::BTreeMap;
use std::time::Duration;

use nova_domain::EntityRef;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::config::EnvironmentConfig;
use super::store::{Promotion, PromotionState};
use super::{Release, Who};
use crate::audit::Outcome;
use crate::http::AppError;
use crate::jobs::{Job, JobOutcome};
use crate::storage::now_ms;

/// Longest one check request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most of a body read to look for the digest.
const MAX_BODY: usize = 64 * 1024;

/// `[environments.<name>.verify]`: exactly one of `url` and `argocd`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// The `http://` or `https://` URL polled; `{component}` and `{namespace}` are filled in.
    #[serde(default)]
    pub url: Option<String>,
    /// With `url`: what the answer must show besides a 2xx status.
    #[serde(default)]
    pub expect: Expect,
    /// Instead of `url`: the Argo CD application whose health and sync are asked.
    #[serde(default)]
    pub argocd: Option<super::argocd::ArgoCdCheck>,
    /// How long after the write the check may take to pass.
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    /// Time between two checks.
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_interval() -> Duration {
    Duration::from_secs(10)
}

/// What a passing answer shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expect {
    /// The body contains the artifact's digest.
    #[default]
    Digest,
    /// The body contains one of the artifact's tags.
    Tag,
    /// Any 2xx answer.
    Status,
}

/// `template` with `{component}` and `{namespace}` filled in, as a URL that is `http(s)` with a
/// host and no credentials.
pub(super) fn guarded_url(template: &str, component: &EntityRef) -> Result<url::Url, String> {
    let filled = fill(template, component);
    let url = url::Url::parse(&filled).map_err(|e| format!("is not a URL once filled in ({filled}): {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user or password".into());
    }
    Ok(url)
}

/// `template` with `{component}` and `{namespace}` filled in.
pub(super) fn fill(template: &str, component: &EntityRef) -> String {
    template.replace("{component}", component.name()).replace("{namespace}", component.namespace())
}

/// An HTTP client for checks: bounded time, a few redirects.
pub(super) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("nova/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Why a request got no answer, for the promotion's reason.
pub(super) fn no_answer(e: reqwest::Error) -> String {
    if e.is_timeout() { format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()) } else { format!("cannot connect: {}", e.without_url()) }
}

/// Checks every environment's `verify`; an error is `(key, message)`.
pub fn check(environments: &BTreeMap<String, EnvironmentConfig>) -> Result<(), (String, String)> {
    let sample = EntityRef::parse("component:default/example").expect("a valid reference");
    for (name, c) in environments {
        let Some(v) = &c.verify else { continue };
        let key = |k: &str| format!("environments.{name}.verify.{k}");
        match (&v.url, &v.argocd) {
            (Some(url), None) => {
                guarded_url(url, &sample).map_err(|m| (key("url"), m))?;
            }
            (None, Some(a)) => a.check(&sample).map_err(|(k, m)| (key(&format!("argocd.{k}")), m))?,
            _ => return Err((format!("environments.{name}.verify"), "needs exactly one of url and argocd".into())),
        }
        if v.timeout < Duration::from_secs(1) || v.timeout > Duration::from_secs(24 * 3600) {
            return Err((key("timeout"), "must be between 1s and 24h".into()));
        }
        if v.interval < Duration::from_millis(100) || v.interval > v.timeout {
            return Err((key("interval"), "must be at least 100ms and at most the timeout".into()));
        }
    }
    Ok(())
}

/// The job that checks one promotion that is `verifying`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyPromotion {
    pub promotion_id: String,
}

impl Job for VerifyPromotion {
    const KIND: &'static str = "release.verify";
}

/// One answer of the check.
pub(super) struct Answer {
    pub passed: bool,
    /// What it was, for the promotion's reason.
    pub summary: String,
}

/// Asks `url` once; `wanted` are the strings one of which the body must contain (none: any 2xx).
async fn ask(url: url::Url, wanted: &[String]) -> Answer {
    let failed = |summary: String| Answer { passed: false, summary };
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut response = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => return failed(no_answer(e)),
    };
    let status = response.status();
    if !status.is_success() {
        return failed(format!("HTTP {status}"));
    }
    if wanted.is_empty() {
        return Answer { passed: true, summary: format!("HTTP {status}") };
    }
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => break,
            Err(e) => return failed(format!("HTTP {status}, but reading the body failed: {}", e.without_url())),
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]);
    if let Some(found) = wanted.iter().find(|w| text.contains(w.as_str())) {
        return Answer { passed: true, summary: format!("HTTP {status} naming {found}") };
    }
    let start: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    failed(format!("HTTP {status} without {} in its body (it starts {start:?})", wanted.join(" or ")))
}

impl Release {
    /// Moves a written promotion to `verifying` (deadline: now + the timeout) and schedules
    /// its check; `false` when the environment has no check (the caller finishes it).
    pub(super) async fn begin_verify(&self, p: &Promotion, commit: &str) -> Result<bool, AppError> {
        let Some(v) = self.environments.get(&p.environment).and_then(|e| e.config.verify.as_ref()) else { return Ok(false) };
        let deadline = now_ms() + v.timeout.as_millis() as i64;
        if self.promotions().start_verifying(&p.id, commit, deadline).await? {
            let details = json!({ "promotion": p.id, "environment": p.environment, "commit": commit, "deadline": deadline });
            self.audit(&Who::nova(), "release.promotion.verifying", &p.component_ref, Outcome::Success, details).await?;
        }
        self.schedule_verify(&p.id).await?;
        Ok(true)
    }

    /// Enqueues the check of a `verifying` promotion (once: the job is keyed by the promotion).
    pub(super) async fn schedule_verify(&self, id: &str) -> Result<(), AppError> {
        self.jobs.enqueue(&VerifyPromotion { promotion_id: id.to_string() }, Some(&format!("release.verify:{id}")), now_ms()).await?;
        Ok(())
    }

    /// Ends a `verifying` promotion as failed with `reason`.
    async fn fail_verify(&self, p: &Promotion, reason: String) -> Result<JobOutcome, String> {
        if self.promotions().transition(&p.id, PromotionState::Verifying, PromotionState::Failed, Some(&reason), None).await.map_err(|e| e.to_string())? {
            crate::telemetry::promotion_finished(&p.environment, "failed");
            self.audit(&Who::nova(), "release.promotion.failed", &p.component_ref, Outcome::Failure, json!({ "promotion": p.id, "reason": reason })).await.map_err(|e| e.to_string())?;
        }
        Ok(JobOutcome::Done)
    }

    /// The [`VerifyPromotion`] job: one check; then done, failed, or again after the interval.
    pub async fn run_verify(&self, job: VerifyPromotion) -> Result<JobOutcome, String> {
        let s = |e: AppError| e.to_string();
        let Some(p) = self.promotions().get(&job.promotion_id).await.map_err(|e| e.to_string())? else { return Ok(JobOutcome::Done) };
        if p.state != PromotionState::Verifying {
            return Ok(JobOutcome::Done);
        }
        let Some(v) = self.environments.get(&p.environment).and_then(|e| e.config.verify.clone()) else {
            return self.fail_verify(&p, format!("environments.{}.verify is no longer configured, so the write cannot be verified", p.environment)).await;
        };
        if let Some(newer) = self.promotions().written_after(&p).await.map_err(|e| e.to_string())? {
            let reason = format!("superseded by promotion {newer}, written before this one was verified");
            if self.promotions().transition(&p.id, PromotionState::Verifying, PromotionState::Superseded, Some(&reason), None).await.map_err(|e| e.to_string())? {
                self.audit(&Who::nova(), "release.promotion.superseded", &p.component_ref, Outcome::Success, json!({ "promotion": p.id, "by": newer })).await.map_err(s)?;
            }
            return Ok(JobOutcome::Done);
        }
        let component = EntityRef::parse(&p.component_ref).map_err(|e| e.to_string())?;
        let answer = match (&v.url, &v.argocd) {
            (_, Some(a)) => a.ask(&component, &p.digest, &p.environment, self.secrets.as_ref()).await,
            (Some(url), None) => {
                let url = match guarded_url(url, &component) {
                    Ok(u) => u,
                    Err(m) => return self.fail_verify(&p, format!("environments.{}.verify.url {m}", p.environment)).await,
                };
                let wanted = match v.expect {
                    Expect::Digest => vec![p.digest.clone()],
                    Expect::Tag if p.tags.is_empty() => return self.fail_verify(&p, "verify expects a tag, and the artifact has none".into()).await,
                    Expect::Tag => p.tags.clone(),
                    Expect::Status => Vec::new(),
                };
                ask(url, &wanted).await
            }
            (None, None) => return self.fail_verify(&p, format!("environments.{}.verify names no check", p.environment)).await,
        };
        if answer.passed {
            if self.promotions().verified(&p.id).await.map_err(|e| e.to_string())? {
                let commit = p.commit_sha.clone().unwrap_or_default();
                self.audit(&Who::nova(), "release.promotion.verified", &p.component_ref, Outcome::Success, json!({ "promotion": p.id, "answer": answer.summary })).await.map_err(s)?;
                self.finish(&p, &commit, None).await.map_err(s)?;
            }
            return Ok(JobOutcome::Done);
        }
        let deadline = p.verify_deadline.unwrap_or_else(now_ms);
        if now_ms() >= deadline {
            return self.fail_verify(&p, format!("not verified within {}: last answer: {}", humantime_serde::re::humantime::format_duration(v.timeout), answer.summary)).await;
        }
        self.promotions().note(&p.id, PromotionState::Verifying, &format!("last answer: {}", answer.summary)).await.map_err(|e| e.to_string())?;
        Ok(JobOutcome::RunAgainAt((now_ms() + v.interval.as_millis() as i64).min(deadline)))
    }
}
