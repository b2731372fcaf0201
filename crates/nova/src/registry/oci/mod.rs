//! Any registry that speaks the OCI Distribution API (CNCF distribution, Harbor, GHCR, Quay,
//! ECR's registry endpoint ...), through a small client of Nova's own ([`client`]).
//!
//! A refresh lists every tag (`tags/list`, following `Link` headers, or `n`/`last` when the
//! registry pages without them), resolves each tag to a manifest digest (`HEAD` when the
//! digest may already be known, else `GET`), and reads each new manifest: an image's config
//! blob (created time, labels) and layer sizes, or an index's per-platform manifests. The
//! Distribution API has no push time: images sort by creation time. Scan results are SARIF
//! reports attached to images as referrers ([`scan`]); without one an image is "not scanned".

pub mod client;
pub mod copy;
pub mod manifest;
pub mod push;
pub mod scan;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::StreamExt;
use nova_domain::{Digest, ImageTag, RepositoryName};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use self::client::{Body, Client, next_link};
use self::manifest::{AnyManifest, ImageConfig, MANIFEST_ACCEPT, ManifestKind, rfc3339_ms};
use super::config::{OciConfig, RegistrySettings};
use super::provider::*;

/// Tags asked for per page.
const PAGE_SIZE: &str = "1000";

/// An OCI Distribution registry.
pub struct OciRegistry {
    name: String,
    client: Client,
    pull_host: String,
    console_url: Option<String>,
    concurrency: usize,
}

impl OciRegistry {
    /// A registry from its configuration; redirects and token realms are followed only to
    /// addresses `outbound` allows.
    pub fn new(name: &str, config: &OciConfig, settings: &RegistrySettings, outbound: &crate::outbound::Outbound) -> Result<Self, String> {
        let pull_host = config.pull_host();
        Ok(Self {
            name: name.to_string(),
            client: Client::new(config, settings.request_timeout, settings.max_manifest_bytes, outbound.clone())?,
            pull_host,
            console_url: config.console_url.clone(),
            concurrency: config.max_concurrency,
        })
    }

    fn scope(repository: &RepositoryName) -> String {
        format!("repository:{repository}:pull")
    }

    /// Every image tag of a repository, across pages, and the digests whose referrers have a
    /// fallback tag (`sha256-<hex>`, not an image).
    async fn tags(&self, repository: &RepositoryName) -> Result<(Vec<ImageTag>, HashSet<String>), RegistryError> {
        let scope = Self::scope(repository);
        let mut url = self.client.url(&format!("v2/{repository}/tags/list"), &[("n", PAGE_SIZE)]);
        let mut tags: Vec<ImageTag> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut invalid = 0usize;
        let mut referred = HashSet::new();
        loop {
            let response = self.client.send(Method::GET, url.clone(), Some("application/json"), &scope).await?;
            match response.status() {
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound(format!("repository {repository} does not exist in registry {}", self.name)));
                }
                s if !s.is_success() => return Err(RegistryError::BadResponse(format!("tags/list answered {s}"))),
                _ => {}
            }
            let body = self.client.read(response).await?;
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&body.bytes).map_err(|_| RegistryError::BadResponse("tags/list did not answer JSON".into()))?;
            let page = page.tags.unwrap_or_default();
            let before = seen.len();
            for t in &page {
                if scan::is_referrers_tag(t) {
                    seen.insert(t.clone());
                    referred.insert(t.replacen('-', ":", 1));
                } else if seen.insert(t.clone()) {
                    match ImageTag::parse(t) {
                        Ok(t) => tags.push(t),
                        Err(_) => invalid += 1,
                    }
                }
            }
            if seen.len() == before {
                break; // nothing new: the registry ignores paging or loops
            }
            if let Some(next) = next_link(&body.headers) {
                url = self.client.resolve(&next)?;
            } else if page.len() >= PAGE_SIZE.parse::<usize>().unwrap_or(usize::MAX) {
                // Honoured `n` but sent no Link header: continue after the last tag.
                let last = page.last().cloned().unwrap_or_default();
                url = self.client.url(&format!("v2/{repository}/tags/list"), &[("n", PAGE_SIZE), ("last", &last)]);
            } else {
                break;
            }
        }
        if invalid > 0 {
            tracing::warn!(registry = %self.name, repository = %repository, invalid, "the registry listed tags that are not valid tag names; they are not shown");
        }
        Ok((tags, referred))
    }

    /// `GET` a manifest by tag or digest; answers the body and its digest (verified when
    /// fetched by digest).
    async fn manifest(&self, repository: &RepositoryName, reference: &str) -> Result<(Body, String), RegistryError> {
        let url = self.client.url(&format!("v2/{repository}/manifests/{reference}"), &[]);
        let response = self.client.send(Method::GET, url, Some(MANIFEST_ACCEPT), &Self::scope(repository)).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Err(RegistryError::NotFound(format!("manifest {reference} does not exist"))),
            s if !s.is_success() => return Err(RegistryError::BadResponse(format!("manifest {reference}: the registry answered {s}"))),
            _ => {}
        }
        let body = self.client.read(response).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body.bytes)));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(RegistryError::BadResponse(format!("manifest {reference}: the content does not match its digest")));
        }
        Ok((body, digest))
    }

    /// `HEAD` a tag's manifest for its digest, without downloading it.
    async fn head_digest(&self, repository: &RepositoryName, tag: &ImageTag) -> Result<Option<String>, RegistryError> {
        let url = self.client.url(&format!("v2/{repository}/manifests/{tag}"), &[]);
        let response = self.client.send(Method::HEAD, url, Some(MANIFEST_ACCEPT), &Self::scope(repository)).await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        Ok(response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).filter(|d| Digest::parse(d).is_ok()).map(str::to_string))
    }

    /// Reads a manifest into an image record (without tags). Problems with this one image are
    /// recorded on it; registry-wide failures are returned.
    async fn describe(&self, repository: &RepositoryName, digest: String, body: &Body) -> Result<ImageRecord, RegistryError> {
        let content_type = body.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let mut record = ImageRecord {
            digest,
            tags: Vec::new(),
            pushed_at: None,
            created_at: None,
            size_bytes: None,
            media_type: None,
            platforms: Vec::new(),
            labels: Default::default(),
            scan: not_scanned(),
            error: None,
        };
        let (manifest, kind, media_type) = match AnyManifest::parse(&body.bytes, content_type) {
            Ok(m) => m,
            Err(e) => {
                record.error = Some(e);
                return Ok(record);
            }
        };
        record.media_type = Some(media_type);
        let result = match kind {
            ManifestKind::Image => self.describe_image(repository, &manifest, &mut record).await,
            ManifestKind::Index => self.describe_index(repository, &manifest, &mut record).await,
        };
        match result {
            Ok(()) => Ok(record),
            Err(e @ (RegistryError::Unavailable(_) | RegistryError::Denied(_) | RegistryError::RateLimited(_) | RegistryError::Config(_))) => Err(e),
            Err(e) => {
                record.error = Some(e.to_string());
                Ok(record)
            }
        }
    }

    async fn describe_image(&self, repository: &RepositoryName, manifest: &AnyManifest, record: &mut ImageRecord) -> Result<(), RegistryError> {
        record.size_bytes = Some(manifest.layer_size());
        let config = self.config(repository, manifest).await?;
        record.created_at = config.created.as_deref().and_then(rfc3339_ms);
        record.labels = config.config.labels.as_ref().map(super::provider::ImageLabels::from_map).unwrap_or_default();
        record.platforms = vec![Platform {
            os: config.os,
            architecture: config.architecture,
            variant: config.variant,
            digest: None,
            size_bytes: Some(manifest.layer_size()),
        }];
        Ok(())
    }

    async fn describe_index(&self, repository: &RepositoryName, index: &AnyManifest, record: &mut ImageRecord) -> Result<(), RegistryError> {
        let entries: Vec<_> = index.platform_entries().cloned().collect();
        // Labels and creation time come from one platform: linux/amd64 when there is one.
        let main = entries.iter().position(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == "amd64")).unwrap_or(0);
        let mut total = 0i64;
        for (i, entry) in entries.iter().enumerate() {
            Digest::parse(&entry.digest).map_err(|e| RegistryError::BadResponse(e.to_string()))?;
            let (body, _) = self.manifest(repository, &entry.digest).await?;
            let content_type = body.headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            let (child, kind, _) = AnyManifest::parse(&body.bytes, content_type).map_err(RegistryError::BadResponse)?;
            let size = (kind == ManifestKind::Image).then(|| child.layer_size());
            total += size.unwrap_or(0);
            let p = entry.platform.clone().unwrap_or_default();
            record.platforms.push(Platform { os: p.os, architecture: p.architecture, variant: p.variant, digest: Some(entry.digest.clone()), size_bytes: size });
            if i == main && kind == ManifestKind::Image {
                let config = self.config(repository, &child).await?;
                record.created_at = config.created.as_deref().and_then(rfc3339_ms);
                record.labels = config.config.labels.as_ref().map(super::provider::ImageLabels::from_map).unwrap_or_default();
            }
        }
        record.size_bytes = Some(total);
        Ok(())
    }

    async fn config(&self, repository: &RepositoryName, manifest: &AnyManifest) -> Result<ImageConfig, RegistryError> {
        let descriptor = manifest.config.as_ref().ok_or_else(|| RegistryError::BadResponse("image manifest without a config".into()))?;
        let digest = Digest::parse(&descriptor.digest).map_err(|e| RegistryError::BadResponse(e.to_string()))?;
        let body = self.client.blob(repository.as_str(), digest.as_str()).await?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&body.bytes))) != digest.as_str() && digest.as_str().starts_with("sha256:") {
            return Err(RegistryError::BadResponse(format!("config blob {digest} does not match its digest")));
        }
        serde_json::from_slice(&body.bytes).map_err(|_| RegistryError::BadResponse(format!("config blob {digest} is not JSON")))
    }

    /// Resolves one tag to its digest and, when new, its description.
    async fn resolve_tag(
        &self,
        repository: &RepositoryName,
        tag: &ImageTag,
        known: &KnownImages,
        described: &Mutex<HashMap<String, ImageRecord>>,
    ) -> Result<Option<(String, Option<ImageRecord>)>, RegistryError> {
        if !known.is_empty()
            && let Some(d) = self.head_digest(repository, tag).await? {
                if let Some(k) = known.get(&d) {
                    return Ok(Some((d, Some(k.clone()))));
                }
                if described.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&d) {
                    return Ok(Some((d, None)));
                }
            }
        let (body, digest) = match self.manifest(repository, tag.as_str()).await {
            Ok(m) => m,
            // Deleted between listing and reading.
            Err(RegistryError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if described.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&digest) {
            return Ok(Some((digest, None)));
        }
        let record = match known.get(&digest) {
            Some(k) => k.clone(),
            None => self.describe(repository, digest.clone(), &body).await?,
        };
        Ok(Some((digest, Some(record))))
    }
}

impl OciRegistry {
    /// Sets each image's scan from its SARIF referrer, when it has one.
    async fn attach_scans(&self, repository: &RepositoryName, images: &mut [ImageRecord], referred: &HashSet<String>, known: &KnownImages) -> Result<(), RegistryError> {
        let api = scan::ReferrersApi::default();
        let api = &api;
        let digests: Vec<(usize, String)> = images.iter().map(|image| image.digest.clone()).enumerate().collect();
        let scans: Vec<(usize, Result<Option<ScanSummary>, RegistryError>)> = futures_util::stream::iter(digests)
            .map(|(i, digest)| async move {
                let known = known.get(&digest).map(|k| &k.scan);
                (i, self.scan_summary(repository, &digest, referred.contains(&digest), known, api).await)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (i, scan) in scans {
            if let Some(s) = scan? {
                images[i].scan = s;
            }
        }
        Ok(())
    }
}

/// The scan of an image without a report.
fn not_scanned() -> ScanSummary {
    ScanSummary { description: Some("no scan report is attached to this image (a SARIF referrer)".into()), ..Default::default() }
}

#[async_trait]
impl RegistryProvider for OciRegistry {
    fn kind(&self) -> &'static str {
        "oci"
    }

    async fn health_check(&self) -> Result<String, RegistryError> {
        let response = self.client.send(Method::GET, self.client.url("v2/", &[]), Some("application/json"), "").await?;
        if response.status().is_success() {
            Ok(format!("Distribution API answers at {}", self.client.url("v2/", &[])))
        } else {
            Err(RegistryError::BadResponse(format!("GET /v2/ answered {}; is this an OCI registry?", response.status())))
        }
    }

    async fn repository(&self, repository: &RepositoryName, known: &KnownImages) -> Result<RepositoryData, RegistryError> {
        let (tags, referred) = self.tags(repository).await?;
        let described: Mutex<HashMap<String, ImageRecord>> = Mutex::new(HashMap::new());
        let mut by_digest: HashMap<String, Vec<String>> = HashMap::new();
        let described_ref = &described;
        let mut results = futures_util::stream::iter(tags)
            .map(|tag| async move {
                let result = self.resolve_tag(repository, &tag, known, described_ref).await;
                (tag, result)
            })
            .buffer_unordered(self.concurrency);
        while let Some((tag, result)) = results.next().await {
            if let Some((digest, record)) = result? {
                if let Some(r) = record {
                    described.lock().unwrap_or_else(|e| e.into_inner()).entry(digest.clone()).or_insert(r);
                }
                by_digest.entry(digest).or_default().push(tag.as_str().to_string());
            }
        }
        drop(results);
        let mut described = described.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut images: Vec<ImageRecord> = by_digest
            .into_iter()
            .filter_map(|(digest, mut tags)| {
                let mut r = described.remove(&digest)?;
                tags.sort();
                r.tags = tags;
                Some(r)
            })
            .collect();
        images.sort_by(|a, b| b.sort_time().cmp(&a.sort_time()).then_with(|| a.digest.cmp(&b.digest)));
        self.attach_scans(repository, &mut images, &referred, known).await?;
        let info = RepositoryInfo {
            arn: None,
            pull_host: self.pull_host.clone(),
            console_url: self.console_url.as_ref().map(|u| u.replace("{repository}", repository.as_str())),
            tags: None,
            tags_error: None,
        };
        Ok(RepositoryData { info, images })
    }

    async fn findings(&self, repository: &RepositoryName, digest: &Digest) -> Result<ScanReport, RegistryError> {
        Ok(self.scan_report(repository, digest).await?.unwrap_or_else(|| ScanReport { summary: not_scanned(), findings: Vec::new() }))
    }

    async fn has_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.client.url(&format!("v2/{repository}/manifests/{digest}"), &[]);
        let response = self.client.send(Method::HEAD, url, Some(MANIFEST_ACCEPT), &Self::scope(repository)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(RegistryError::BadResponse(format!("manifest {digest} of {repository}: the registry answered {s}"))),
        }
    }

    fn pull_host(&self) -> String {
        self.pull_host.clone()
    }

    async fn list_repositories(&self) -> Result<Option<Vec<ListedRepository>>, RegistryError> {
        let mut url = self.client.url("v2/_catalog", &[("n", PAGE_SIZE)]);
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let response = match self.client.send(Method::GET, url.clone(), Some("application/json"), "registry:catalog:*").await {
                Ok(r) => r,
                Err(RegistryError::Denied(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            if !response.status().is_success() {
                return Ok(None);
            }
            let body = self.client.read(response).await?;
            #[derive(serde::Deserialize)]
            struct Catalog {
                repositories: Option<Vec<String>>,
            }
            let page: Catalog = serde_json::from_slice(&body.bytes).map_err(|_| RegistryError::BadResponse("_catalog did not answer JSON".into()))?;
            let page = page.repositories.unwrap_or_default();
            let before = out.len();
            for name in &page {
                if let Ok(name) = RepositoryName::parse(name)
                    && seen.insert(name.clone()) {
                        out.push(ListedRepository { name, tags: None });
                    }
            }
            match next_link(&body.headers) {
                Some(next) if out.len() > before => url = self.client.resolve(&next)?,
                _ => break,
            }
        }
        Ok(Some(out))
    }
}
