//! Scan reports attached to images as OCI referrers: the way scanners publish results to a
//! registry that does not scan by itself (`trivy image --format sarif` then `oras attach
//! --artifact-type application/sarif+json`, or a CI step doing the same).
//!
//! A report is an artifact manifest whose `subject` is the image and whose `artifactType` is
//! [`SARIF`]; its first SARIF layer is the report. Registries find an image's referrers through
//! the referrers API (`GET /v2/<name>/referrers/<digest>`, OCI Distribution 1.1) or, where
//! that API is missing (CNCF distribution 2.x), through the tag schema fallback: the tag
//! `sha256-<hex>` of the image's digest holds an index listing them. The newest SARIF referrer
//! (by its `org.opencontainers.image.created` annotation) is the image's scan.
//!
//! SARIF 2.1.0 is read as code-scanning tools write it: one result per finding, the rule id as
//! the advisory id, severity from the rule's tags (`CRITICAL`, `HIGH`, ...: Trivy), else its
//! `security-severity` score (GitHub's bands: 9.0 critical, 7.0 high, 4.0 medium, above 0
//! low), else the result's `level`. Package, versions and link come from the rule's properties
//! or the `Package:` / `Installed Version:` / `Fixed Version:` / `Link:` lines scanners put in
//! the message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};

use nova_domain::{Digest, RepositoryName};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::OciRegistry;
use super::manifest::{AnyManifest, Descriptor, OCI_INDEX, rfc3339_ms};
use crate::registry::provider::{Finding, RegistryError, ScanReport, ScanStatus, ScanSummary, SeverityCounts, severity_rank};

/// The artifact type (and layer media type) of a SARIF report.
pub const SARIF: &str = "application/sarif+json";

/// The annotation that orders reports.
const CREATED: &str = "org.opencontainers.image.created";

/// The tag schema fallback's tag for an image digest: `sha256:abc…` → `sha256-abc…`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// Whether `tag` is a referrers fallback tag (`<algorithm>-<64 hex digits>`), not an image.
pub fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A referrers index entry: a descriptor with the artifact type it advertises.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Referrer {
    #[serde(flatten)]
    pub descriptor: Descriptor,
    pub artifact_type: Option<String>,
}

/// A referrers list (the API's answer, or the fallback tag's index).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ReferrersIndex {
    pub manifests: Vec<Referrer>,
}

impl ReferrersIndex {
    /// The newest SARIF report among the referrers.
    pub fn newest_report(&self) -> Option<&Referrer> {
        self.manifests
            .iter()
            .filter(|r| r.artifact_type.as_deref() == Some(SARIF))
            .max_by(|a, b| a.descriptor.annotations.get(CREATED).cmp(&b.descriptor.annotations.get(CREATED)))
    }
}

/// Whether the registry answers the referrers API, learned once per refresh.
#[derive(Default)]
pub struct ReferrersApi(AtomicU8);

impl ReferrersApi {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
}

impl OciRegistry {
    /// An image's referrers: from the referrers API, else from the fallback tag. `fallback`
    /// says whether the tag list holds that tag (`None`: not known, so ask).
    async fn referrers(&self, repository: &RepositoryName, digest: &str, fallback: Option<bool>, api: &ReferrersApi) -> Result<Option<ReferrersIndex>, RegistryError> {
        let scope = Self::scope(repository);
        if api.0.load(Ordering::Relaxed) != ReferrersApi::NO {
            let url = self.client.url(&format!("v2/{repository}/referrers/{digest}"), &[("artifactType", SARIF)]);
            let response = self.client.send(Method::GET, url, Some(OCI_INDEX), &scope).await?;
            match response.status() {
                s if s.is_success() => {
                    let body = self.client.read(response).await?;
                    if let Ok(index) = serde_json::from_slice::<ReferrersIndex>(&body.bytes) {
                        api.0.store(ReferrersApi::YES, Ordering::Relaxed);
                        return Ok(Some(index));
                    }
                    api.0.store(ReferrersApi::NO, Ordering::Relaxed);
                }
                // A registry with the API answers every digest with an index, even an empty
                // one; a 404 (or 400/405) means it has no such route.
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => {
                    let _ = api.0.compare_exchange(ReferrersApi::UNKNOWN, ReferrersApi::NO, Ordering::Relaxed, Ordering::Relaxed);
                }
                s => return Err(RegistryError::BadResponse(format!("referrers of {digest}: the registry answered {s}"))),
            }
        }
        if fallback == Some(false) {
            return Ok(None);
        }
        match self.manifest(repository, &referrers_tag(digest)).await {
            Ok((body, _)) => Ok(Some(serde_json::from_slice(&body.bytes).map_err(|_| RegistryError::BadResponse(format!("the referrers tag of {digest} is not an index")))?)),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An image's scan summary from its newest SARIF referrer: `known` again when that report
    /// was read before, `None` without a report. A report that cannot be read is a failed scan,
    /// not a failed refresh.
    pub(super) async fn scan_summary(&self, repository: &RepositoryName, digest: &str, fallback: bool, known: Option<&ScanSummary>, api: &ReferrersApi) -> Result<Option<ScanSummary>, RegistryError> {
        let Some(index) = self.referrers(repository, digest, Some(fallback), api).await? else { return Ok(None) };
        let Some(referrer) = index.newest_report() else { return Ok(None) };
        if let Some(k) = known.filter(|k| k.report.as_deref() == Some(referrer.descriptor.digest.as_str())) {
            return Ok(Some(k.clone()));
        }
        match self.read_report(repository, referrer).await {
            Ok(report) => Ok(Some(report.summary)),
            Err(e @ (RegistryError::Unavailable(_) | RegistryError::Denied(_) | RegistryError::RateLimited(_))) => Err(e),
            Err(e) => Ok(Some(ScanSummary { status: ScanStatus::Failed, description: Some(e.to_string()), report: Some(referrer.descriptor.digest.clone()), ..Default::default() })),
        }
    }

    /// An image's newest SARIF report with its findings, if one is attached.
    pub(super) async fn scan_report(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ScanReport>, RegistryError> {
        let Some(index) = self.referrers(repository, digest.as_str(), None, &ReferrersApi::default()).await? else { return Ok(None) };
        match index.newest_report() {
            Some(referrer) => self.read_report(repository, referrer).await.map(Some),
            None => Ok(None),
        }
    }

    /// Reads one report artifact: its manifest, then its SARIF layer.
    async fn read_report(&self, repository: &RepositoryName, referrer: &Referrer) -> Result<ScanReport, RegistryError> {
        let digest = Digest::parse(&referrer.descriptor.digest).map_err(|e| RegistryError::BadResponse(format!("a referrer's digest: {e}")))?;
        let (body, _) = self.manifest(repository, digest.as_str()).await?;
        let content_type = body.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let (manifest, _, _) = AnyManifest::parse(&body.bytes, content_type).map_err(RegistryError::BadResponse)?;
        let layer = manifest.layers.iter().find(|l| l.media_type == SARIF).or(manifest.layers.first());
        let layer = layer.ok_or_else(|| RegistryError::BadResponse(format!("the scan report {digest} has no layer")))?;
        let blob_digest = Digest::parse(&layer.digest).map_err(|e| RegistryError::BadResponse(format!("the scan report's layer: {e}")))?;
        let blob = self.client.blob(repository.as_str(), blob_digest.as_str()).await?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&blob.bytes))) != blob_digest.as_str() {
            return Err(RegistryError::BadResponse(format!("the scan report's layer {blob_digest} does not match its digest")));
        }
        let created = referrer.descriptor.annotations.get(CREATED).and_then(|c| rfc3339_ms(c));
        parse_sarif(&blob.bytes, digest.as_str(), created).map_err(RegistryError::BadResponse)
    }
}

/// Reads a SARIF report. `manifest_digest` names it (kept to skip re-reading an unchanged
/// report); `created` is when it was attached (Unix ms), if the artifact said.
pub fn parse_sarif(bytes: &[u8], manifest_digest: &str, created: Option<i64>) -> Result<ScanReport, String> {
    let log: SarifLog = serde_json::from_slice(bytes).map_err(|e| format!("the SARIF report {manifest_digest} is not valid SARIF JSON: {e}"))?;
    let mut counts = SeverityCounts::default();
    let mut findings = Vec::new();
    let mut tools = Vec::new();
    for run in &log.runs {
        let driver = &run.tool.driver;
        if !driver.name.is_empty() && !tools.contains(&driver.name) {
            tools.push(driver.name.clone());
        }
        let rules: HashMap<&str, &Rule> = driver.rules.iter().map(|r| (r.id.as_str(), r)).collect();
        for result in &run.results {
            let rule = result.rule_id.as_deref().and_then(|id| rules.get(id).copied()).or_else(|| result.rule_index.and_then(|i| driver.rules.get(i)));
            let severity = severity(rule, result.level.as_deref());
            counts.add(severity, 1);
            let message = result.message.text.as_deref().unwrap_or_default();
            let line = |key: &str| message.lines().find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string())).filter(|v| !v.is_empty());
            let property = |key: &str| rule.and_then(|r| r.properties.get(key)).and_then(|v| v.as_str()).map(str::to_string);
            findings.push(Finding {
                id: result.rule_id.clone().or_else(|| rule.map(|r| r.id.clone())).unwrap_or_else(|| "unnamed finding".into()),
                severity: severity.to_string(),
                package: property("package").or_else(|| line("Package:")),
                installed_version: property("installedVersion").or_else(|| line("Installed Version:")),
                fixed_version: property("fixedVersion").or_else(|| line("Fixed Version:")),
                description: rule.and_then(|r| r.short_description.text.clone()).or_else(|| message.lines().next().map(str::to_string)),
                link: rule.and_then(|r| r.help_uri.clone()).or_else(|| line("Link:")),
            });
        }
    }
    findings.sort_by_key(|f| severity_rank(&f.severity));
    let description = match tools.as_slice() {
        [] => format!("SARIF report {}", short(manifest_digest)),
        names => format!("SARIF report by {} ({})", names.join(", "), short(manifest_digest)),
    };
    let summary = ScanSummary { status: ScanStatus::Complete, counts: Some(counts), completed_at: created, description: Some(description), report: Some(manifest_digest.to_string()) };
    Ok(ScanReport { summary, findings })
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

/// A finding's severity, in the names [`SeverityCounts::add`] knows.
fn severity(rule: Option<&Rule>, level: Option<&str>) -> &'static str {
    const NAMES: [&str; 5] = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL"];
    if let Some(rule) = rule {
        let tags = rule.properties.get("tags").and_then(|t| t.as_array());
        if let Some(name) = tags.into_iter().flatten().filter_map(|t| t.as_str()).find_map(|t| NAMES.iter().find(|n| n.eq_ignore_ascii_case(t))) {
            return name;
        }
        let score = rule.properties.get("security-severity").and_then(|s| s.as_str().and_then(|s| s.parse::<f64>().ok()).or_else(|| s.as_f64()));
        if let Some(score) = score {
            return match score {
                s if s >= 9.0 => "CRITICAL",
                s if s >= 7.0 => "HIGH",
                s if s >= 4.0 => "MEDIUM",
                s if s > 0.0 => "LOW",
                _ => "INFORMATIONAL",
            };
        }
    }
    match level.or(rule.and_then(|r| r.default_configuration.level.as_deref())) {
        Some("error") => "HIGH",
        Some("warning") | None => "MEDIUM",
        Some("note") => "LOW",
        Some(_) => "INFORMATIONAL",
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct SarifLog {
    runs: Vec<Run>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Run {
    tool: Tool,
    results: Vec<SarifResult>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Driver {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Rule {
    id: String,
    short_description: Text,
    help_uri: Option<String>,
    default_configuration: RuleConfiguration,
    properties: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct RuleConfiguration {
    level: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Text {
    text: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<usize>,
    level: Option<String>,
    message: Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIVY: &str = r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"Trivy","rules":[
        {"id":"CVE-2024-0001","shortDescription":{"text":"openssl: a flaw"},"helpUri":"https://avd.aquasec.com/nvd/cve-2024-0001",
         "properties":{"security-severity":"9.8","tags":["vulnerability","security","CRITICAL"]}},
        {"id":"CVE-2024-0002","shortDescription":{"text":"zlib: another"},"properties":{"security-severity":"5.3"}},
        {"id":"CVE-2024-0003","properties":{}}]}},
      "results":[
        {"ruleId":"CVE-2024-0001","level":"error","message":{"text":"Package: libssl3\nInstalled Version: 3.0.1\nVulnerability CVE-2024-0001\nSeverity: CRITICAL\nFixed Version: 3.0.2\nLink: [CVE-2024-0001](https://avd.aquasec.com/nvd/cve-2024-0001)"}},
        {"ruleIndex":1,"message":{"text":"Package: zlib1g\nInstalled Version: 1.2.13"}},
        {"ruleId":"CVE-2024-0003","level":"note","message":{"text":"something minor"}}]}]}"#;

    #[test]
    fn trivy_sarif_becomes_counts_and_findings() {
        let r = parse_sarif(TRIVY.as_bytes(), "sha256:0123456789abcdef0123", Some(5)).unwrap();
        let c = r.summary.counts.unwrap();
        assert_eq!((c.critical, c.high, c.medium, c.low, c.total()), (1, 0, 1, 1, 3));
        assert_eq!(r.summary.status, ScanStatus::Complete);
        assert_eq!(r.summary.completed_at, Some(5));
        assert_eq!(r.summary.description.as_deref(), Some("SARIF report by Trivy (sha256:0123456789ab)"));
        let f = &r.findings[0];
        assert_eq!((f.id.as_str(), f.severity.as_str()), ("CVE-2024-0001", "CRITICAL"));
        assert_eq!((f.package.as_deref(), f.installed_version.as_deref(), f.fixed_version.as_deref()), (Some("libssl3"), Some("3.0.1"), Some("3.0.2")));
        assert_eq!(f.link.as_deref(), Some("https://avd.aquasec.com/nvd/cve-2024-0001"));
        assert_eq!(r.findings[1].id, "CVE-2024-0002", "a result naming its rule by index");
        assert_eq!(r.findings[1].severity, "MEDIUM", "a 5.3 score");
        assert_eq!(r.findings[2].severity, "LOW", "a note without tags or score");
    }

    #[test]
    fn broken_reports_are_refused_with_their_name() {
        let e = parse_sarif(b"{not json", "sha256:abc", None).unwrap_err();
        assert!(e.contains("sha256:abc") && e.contains("SARIF"), "{e}");
    }

    #[test]
    fn fallback_tags_are_told_apart_from_image_tags() {
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert!(is_referrers_tag(&referrers_tag(&digest)));
        assert!(!is_referrers_tag("sha256-abc"));
        assert!(!is_referrers_tag("v1.0.0"));
        assert!(!is_referrers_tag(&format!("sha256-{}", "AB".repeat(32))));
    }

    #[test]
    fn the_newest_sarif_referrer_is_the_scan() {
        let index: ReferrersIndex = serde_json::from_str(
            r#"{"manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1","size":1,"artifactType":"application/sarif+json","annotations":{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2","size":1,"artifactType":"application/sarif+json","annotations":{"org.opencontainers.image.created":"2026-02-01T00:00:00Z"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3","size":1,"artifactType":"application/spdx+json"}]}"#,
        )
        .unwrap();
        assert_eq!(index.newest_report().unwrap().descriptor.digest, "sha256:2");
    }
}
