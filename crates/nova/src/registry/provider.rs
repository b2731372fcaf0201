//! The [`RegistryProvider`] trait and what providers return: images, scan results, findings
//! and repository facts. Providers only read; nothing here writes to a registry.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use nova_domain::{Digest, RepositoryName};
use serde::{Deserialize, Serialize};

/// A registry failure, in the categories a caller acts on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// The repository (or image) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The registry rejected Nova's credentials or denied access.
    #[error("{0}")]
    Denied(String),
    /// The registry asked Nova to slow down and kept asking.
    #[error("{0}")]
    RateLimited(String),
    /// The registry is down, unreachable or too slow.
    #[error("{0}")]
    Unavailable(String),
    /// The registry answered something Nova cannot use (not JSON, too large, invalid names).
    #[error("{0}")]
    BadResponse(String),
    /// Nova refused to follow the registry somewhere unsafe (metadata or link-local addresses).
    #[error("{0}")]
    Refused(String),
    /// Nova's own configuration for this registry is unusable (a missing credential).
    #[error("{0}")]
    Config(String),
}

impl RegistryError {
    /// A short, stable name for the category: shown with stale data, used as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not-found",
            Self::Denied(_) => "denied",
            Self::RateLimited(_) => "rate-limited",
            Self::Unavailable(_) => "unavailable",
            Self::BadResponse(_) => "bad-response",
            Self::Refused(_) => "refused",
            Self::Config(_) => "config",
        }
    }
}

/// Scan state of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ScanStatus {
    /// The registry holds no scan for this image (or does not scan at all).
    #[default]
    NotScanned,
    InProgress,
    Complete,
    Failed,
    /// The scanner does not support this image (e.g. its OS).
    Unsupported,
}

/// Findings by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct SeverityCounts {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
    pub informational: u32,
    /// Findings the scanner could not rate (`UNDEFINED`, `UNTRIAGED`).
    pub undefined: u32,
}

impl SeverityCounts {
    /// Adds `n` findings of an ECR/Inspector severity name.
    pub fn add(&mut self, severity: &str, n: u32) {
        let slot = match severity.to_ascii_uppercase().as_str() {
            "CRITICAL" => &mut self.critical,
            "HIGH" => &mut self.high,
            "MEDIUM" => &mut self.medium,
            "LOW" => &mut self.low,
            "INFORMATIONAL" => &mut self.informational,
            _ => &mut self.undefined,
        };
        *slot = slot.saturating_add(n);
    }

    /// All findings.
    pub fn total(&self) -> u32 {
        self.critical + self.high + self.medium + self.low + self.informational + self.undefined
    }
}

/// An image's scan summary, as shown in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanSummary {
    pub status: ScanStatus,
    /// Counts, when the scan completed.
    pub counts: Option<SeverityCounts>,
    /// When the scan completed (Unix ms).
    pub completed_at: Option<i64>,
    /// The registry's words on the scan (why it failed, ...).
    pub description: Option<String>,
    /// The digest of the report artifact this summary was read from (a SARIF referrer of an
    /// OCI image), so an unchanged report is not read again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// One platform of a multi-arch image (or the only one of a single-arch image).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// The platform's own manifest digest (for multi-arch images).
    pub digest: Option<String>,
    /// Compressed size of the platform's layers, in bytes.
    pub size_bytes: Option<i64>,
}

impl Platform {
    /// `linux/arm64/v8`.
    pub fn display(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The OCI labels Nova shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct ImageLabels {
    /// `org.opencontainers.image.revision`
    pub revision: Option<String>,
    /// `org.opencontainers.image.source`
    pub source: Option<String>,
    /// `org.opencontainers.image.version`
    pub version: Option<String>,
    /// `org.opencontainers.image.created`
    pub created: Option<String>,
}

impl ImageLabels {
    /// Picks the known labels out of a config's `Labels` map.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| labels.get(&format!("org.opencontainers.image.{k}")).filter(|v| !v.is_empty()).cloned();
        Self { revision: get("revision"), source: get("source"), version: get("version"), created: get("created") }
    }
}

/// One image (one manifest digest) with every tag pointing at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    pub digest: String,
    pub tags: Vec<String>,
    /// When the registry received it (Unix ms); ECR knows, the Distribution API does not.
    pub pushed_at: Option<i64>,
    /// The image config's `created` (Unix ms).
    pub created_at: Option<i64>,
    /// Compressed size: the sum of layer sizes (over every platform of a multi-arch image).
    pub size_bytes: Option<i64>,
    pub media_type: Option<String>,
    pub platforms: Vec<Platform>,
    pub labels: ImageLabels,
    pub scan: ScanSummary,
    /// Why details of this image could not be read (the image is still listed).
    pub error: Option<String>,
}

impl ImageRecord {
    /// The time images sort by: push time, else creation time.
    pub fn sort_time(&self) -> i64 {
        self.pushed_at.or(self.created_at).unwrap_or(0)
    }
}

/// Facts about a repository besides its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    /// ECR: the repository ARN.
    pub arn: Option<String>,
    /// Host (and port) to pull from.
    pub pull_host: String,
    /// The registry's own page for the repository, where one exists.
    pub console_url: Option<String>,
    /// Resource tags (ECR); `None` where the registry has no such thing or they could not be
    /// read (the reason is in `tags_error`).
    pub tags: Option<BTreeMap<String, String>>,
    pub tags_error: Option<String>,
}

/// Everything one refresh learns about a repository.
#[derive(Debug, Clone)]
pub struct RepositoryData {
    pub info: RepositoryInfo,
    pub images: Vec<ImageRecord>,
}

/// One vulnerability finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// CVE or advisory id.
    pub id: String,
    pub severity: String,
    pub package: Option<String>,
    pub installed_version: Option<String>,
    pub fixed_version: Option<String>,
    pub description: Option<String>,
    pub link: Option<String>,
}

/// Orders severities from the most severe.
pub fn severity_rank(severity: &str) -> u8 {
    match severity.to_ascii_uppercase().as_str() {
        "CRITICAL" => 0,
        "HIGH" => 1,
        "MEDIUM" => 2,
        "LOW" => 3,
        "INFORMATIONAL" => 4,
        _ => 5,
    }
}

/// An image's scan with its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    pub summary: ScanSummary,
    pub findings: Vec<Finding>,
}

/// What a refresh already knows, by digest, so providers can skip work for unchanged images.
pub type KnownImages = HashMap<String, ImageRecord>;

/// A registry Nova reads images from. One implementation per kind of registry; each is read
/// only.
#[async_trait]
pub trait RegistryProvider: Send + Sync {
    /// `ecr` or `oci`.
    fn kind(&self) -> &'static str;

    /// A real, cheap call that proves the registry answers and accepts Nova's credentials.
    async fn health_check(&self) -> Result<String, RegistryError>;

    /// Every image of a repository (every page), with repository facts.
    async fn repository(&self, repository: &RepositoryName, known: &KnownImages) -> Result<RepositoryData, RegistryError>;

    /// An image's scan findings.
    async fn findings(&self, repository: &RepositoryName, digest: &Digest) -> Result<ScanReport, RegistryError>;

    /// Every repository in the registry, with its resource tags where the registry has them,
    /// for the drift report. `Ok(None)` when the registry does not list repositories.
    async fn list_repositories(&self) -> Result<Option<Vec<ListedRepository>>, RegistryError>;

    /// Whether the repository holds a manifest (image or index) with this digest; a missing
    /// repository is `NotFound`.
    async fn has_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, RegistryError>;

    /// The host images are pulled from (`registry.example.com`, `host:5000`,
    /// `<account>.dkr.ecr.<region>.amazonaws.com`): how CI names the repositories it pushed.
    fn pull_host(&self) -> String;
}

/// A repository as the registry lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepository {
    pub name: RepositoryName,
    /// Resource tags, where the registry has them and they could be read.
    pub tags: Option<BTreeMap<String, String>>,
}
