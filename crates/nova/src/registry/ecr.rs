//! AWS ECR through the official AWS SDK for Rust: the standard credential chain, an optional
//! role to assume per registry, and an endpoint override for tests.
//!
//! A refresh reads the repository (`DescribeRepositories`: ARN, URI), its resource tags
//! (`ListTagsForResource`: the `backstage.io/*` contract and `aws:servicecatalog:*`
//! provisioning tags), every image (`DescribeImages`, all pages: tags, digest, push time,
//! size, scan status and severity counts) and, for multi-arch images, their platforms
//! (`BatchGetImage`, 100 at a time). Findings are read on demand
//! (`DescribeImageScanFindings`, all pages, basic and enhanced scanning).
//!
//! What moto (the test stand-in) does not do, so that tests do not depend on it: it computes
//! digests its own way unless `imageDigest` is passed to `PutImage`; its `DescribeImages`
//! carries no scan status or summary (real ECR does, so the list shows counts); it ignores
//! `DescribeRepositories` pagination; and it implements neither Service Catalog nor the
//! resource-groups tagging API (ECR's own `TagResource`/`ListTagsForResource` work).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{ImageDetail, ImageIdentifier};
use futures_util::StreamExt;
use nova_domain::{Digest, RepositoryName};

use super::config::{EcrConfig, RegistrySettings};
use super::oci::manifest::{AnyManifest, ManifestKind};
use super::provider::*;

/// Image ids per `BatchGetImage` call (the API's limit).
const BATCH: usize = 100;

/// An ECR registry: one account and region, seen through one set of credentials.
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
    region: String,
    account_id: String,
    concurrency: usize,
}

impl EcrRegistry {
    /// Builds the SDK client: region, endpoint override, standard credential chain, and the
    /// role to assume when one is configured.
    pub async fn new(config: &EcrConfig, settings: &RegistrySettings) -> Self {
        let region = aws_config::Region::new(config.region.clone());
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(region.clone());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let timeouts = aws_config::timeout::TimeoutConfig::builder().operation_attempt_timeout(settings.request_timeout).build();
        let mut sdk = loader.timeout_config(timeouts).load().await;
        if let Some(role) = &config.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role).session_name("nova-registry").region(region).configure(&sdk).build().await;
            sdk = sdk.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider)).build();
        }
        Self {
            client: aws_sdk_ecr::Client::new(&sdk),
            region: config.region.clone(),
            account_id: config.account_id.clone(),
            concurrency: config.max_concurrency,
        }
    }

    /// The AWS console page of a repository (commercial partition).
    fn console_url(&self, repository: &RepositoryName) -> String {
        format!(
            "https://{r}.console.aws.amazon.com/ecr/repositories/private/{a}/{repository}?region={r}",
            r = self.region,
            a = self.account_id
        )
    }

    /// Platforms of multi-arch images, from their index manifests.
    async fn platforms(&self, repository: &RepositoryName, digests: Vec<String>) -> Result<HashMap<String, Vec<Platform>>, RegistryError> {
        let mut out = HashMap::new();
        let batches: Vec<Vec<String>> = digests.chunks(BATCH).map(<[String]>::to_vec).collect();
        let mut calls = futures_util::stream::iter(batches)
            .map(|batch| {
                let ids: Vec<ImageIdentifier> = batch.iter().map(|d| ImageIdentifier::builder().image_digest(d).build()).collect();
                self.client
                    .batch_get_image()
                    .registry_id(&self.account_id)
                    .repository_name(repository.as_str())
                    .set_image_ids(Some(ids))
                    .accepted_media_types(super::oci::manifest::OCI_INDEX)
                    .accepted_media_types(super::oci::manifest::DOCKER_LIST)
                    .send()
            })
            .buffer_unordered(self.concurrency);
        while let Some(result) = calls.next().await {
            let output = result.map_err(sdk_error)?;
            for image in output.images() {
                let (Some(digest), Some(text)) = (image.image_id().and_then(|i| i.image_digest()), image.image_manifest()) else { continue };
                let Ok((m, ManifestKind::Index, _)) = AnyManifest::parse(text.as_bytes(), image.image_manifest_media_type()) else { continue };
                let platforms = m
                    .platform_entries()
                    .map(|d| {
                        let p = d.platform.clone().unwrap_or_default();
                        Platform { os: p.os, architecture: p.architecture, variant: p.variant, digest: Some(d.digest.clone()), size_bytes: None }
                    })
                    .collect();
                out.insert(digest.to_string(), platforms);
            }
        }
        Ok(out)
    }
}

/// Maps an SDK failure onto the registry error categories.
fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> RegistryError {
    match &e {
        SdkError::TimeoutError(_) => return RegistryError::Unavailable("ECR did not answer in time (registry.request_timeout)".into()),
        SdkError::DispatchFailure(_) => {
            // The innermost cause says what failed (connection refused, DNS, TLS).
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            return RegistryError::Unavailable(format!("cannot reach ECR: {cause}"));
        }
        SdkError::ResponseError(_) => return RegistryError::BadResponse("ECR sent an answer the AWS SDK cannot read".into()),
        _ => {}
    }
    let code = e.code().unwrap_or("Unknown").to_string();
    let message = format!("{code}: {}", e.message().unwrap_or("no message"));
    match code.as_str() {
        "RepositoryNotFoundException" | "ImageNotFoundException" => RegistryError::NotFound(message),
        "AccessDeniedException" | "UnrecognizedClientException" | "ExpiredTokenException" | "InvalidClientTokenId" | "InvalidSignatureException"
        | "MissingAuthenticationTokenException" | "AccessDenied" => RegistryError::Denied(message),
        "ThrottlingException" | "TooManyRequestsException" | "LimitExceededException" => RegistryError::RateLimited(message),
        "ServerException" | "ServiceUnavailableException" | "InternalFailure" => RegistryError::Unavailable(message),
        _ if matches!(e, SdkError::ConstructionFailure(_)) => RegistryError::Config(format!("cannot call ECR: {message}")),
        _ => RegistryError::BadResponse(message),
    }
}

fn epoch_ms(t: &aws_sdk_ecr::primitives::DateTime) -> Option<i64> {
    t.to_millis().ok()
}

/// One `DescribeImages` entry as an image record (platforms are added afterwards).
pub fn image_from_detail(d: &ImageDetail) -> Option<ImageRecord> {
    let digest = Digest::parse(d.image_digest()?).ok()?;
    let mut tags: Vec<String> = d.image_tags().to_vec();
    tags.sort();
    let status = d.image_scan_status().and_then(|s| s.status()).map(|s| match s.as_str() {
        "COMPLETE" | "ACTIVE" => ScanStatus::Complete,
        "IN_PROGRESS" | "PENDING" => ScanStatus::InProgress,
        "FAILED" | "FINDINGS_UNAVAILABLE" | "SCAN_ELIGIBILITY_EXPIRED" => ScanStatus::Failed,
        "UNSUPPORTED_IMAGE" => ScanStatus::Unsupported,
        _ => ScanStatus::NotScanned,
    });
    let summary = d.image_scan_findings_summary();
    let counts = summary.map(|s| {
        let mut c = SeverityCounts::default();
        for (severity, n) in s.finding_severity_counts().into_iter().flatten() {
            c.add(severity.as_str(), (*n).max(0) as u32);
        }
        c
    });
    let scan = ScanSummary {
        status: status.unwrap_or(if counts.is_some() { ScanStatus::Complete } else { ScanStatus::NotScanned }),
        counts,
        completed_at: summary.and_then(|s| s.image_scan_completed_at()).and_then(epoch_ms),
        description: d.image_scan_status().and_then(|s| s.description()).map(str::to_string),
        report: None,
    };
    Some(ImageRecord {
        digest: digest.to_string(),
        tags,
        pushed_at: d.image_pushed_at().and_then(epoch_ms),
        created_at: None,
        size_bytes: d.image_size_in_bytes(),
        media_type: d.image_manifest_media_type().map(str::to_string),
        platforms: Vec::new(),
        labels: Default::default(),
        scan,
        error: None,
    })
}

#[async_trait]
impl RegistryProvider for EcrRegistry {
    fn kind(&self) -> &'static str {
        "ecr"
    }

    async fn health_check(&self) -> Result<String, RegistryError> {
        self.client.describe_repositories().registry_id(&self.account_id).max_results(1).send().await.map_err(sdk_error)?;
        Ok(format!("ECR answers for account {} in {}", self.account_id, self.region))
    }

    async fn repository(&self, repository: &RepositoryName, known: &KnownImages) -> Result<RepositoryData, RegistryError> {
        let described = self
            .client
            .describe_repositories()
            .registry_id(&self.account_id)
            .repository_names(repository.as_str())
            .send()
            .await
            .map_err(sdk_error)?;
        let repo = described
            .repositories()
            .first()
            .ok_or_else(|| RegistryError::NotFound(format!("repository {repository} does not exist in account {}", self.account_id)))?;
        let arn = repo.repository_arn().map(str::to_string);
        let pull_host = repo.repository_uri().and_then(|u| u.split('/').next()).map(str::to_string).unwrap_or_else(|| {
            format!("{}.dkr.ecr.{}.amazonaws.com", self.account_id, self.region)
        });
        let (tags, tags_error) = match &arn {
            Some(arn) => match self.client.list_tags_for_resource().resource_arn(arn).send().await {
                Ok(out) => (Some(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect::<BTreeMap<_, _>>()), None),
                Err(e) => (None, Some(sdk_error(e).to_string())),
            },
            None => (None, Some("ECR returned no ARN for the repository".into())),
        };
        let mut pages = self.client.describe_images().registry_id(&self.account_id).repository_name(repository.as_str()).into_paginator().items().send();
        let mut images = Vec::new();
        let mut indexes = Vec::new();
        while let Some(detail) = pages.next().await {
            let detail = detail.map_err(sdk_error)?;
            let Some(mut record) = image_from_detail(&detail) else { continue };
            let is_index = record.media_type.as_deref().is_some_and(|m| m == super::oci::manifest::OCI_INDEX || m == super::oci::manifest::DOCKER_LIST);
            match known.get(&record.digest) {
                Some(k) if is_index => record.platforms = k.platforms.clone(),
                _ if is_index => indexes.push(record.digest.clone()),
                _ => {}
            }
            images.push(record);
        }
        if !indexes.is_empty() {
            let mut platforms = self.platforms(repository, indexes).await?;
            for r in &mut images {
                if let Some(p) = platforms.remove(&r.digest) {
                    r.platforms = p;
                }
            }
        }
        images.sort_by(|a, b| b.sort_time().cmp(&a.sort_time()).then_with(|| a.digest.cmp(&b.digest)));
        let info = RepositoryInfo { arn, pull_host, console_url: Some(self.console_url(repository)), tags, tags_error };
        Ok(RepositoryData { info, images })
    }

    async fn findings(&self, repository: &RepositoryName, digest: &Digest) -> Result<ScanReport, RegistryError> {
        let mut pages = self
            .client
            .describe_image_scan_findings()
            .registry_id(&self.account_id)
            .repository_name(repository.as_str())
            .image_id(ImageIdentifier::builder().image_digest(digest.as_str()).build())
            .into_paginator()
            .send();
        let mut summary = ScanSummary::default();
        let mut findings = Vec::new();
        let mut counts = SeverityCounts::default();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if e.code() == Some("ScanNotFoundException") => {
                    return Ok(ScanReport { summary: ScanSummary { description: Some("ECR holds no scan of this image".into()), ..Default::default() }, findings });
                }
                Err(e) => return Err(sdk_error(e)),
            };
            if let Some(s) = page.image_scan_status() {
                summary.status = match s.status().map(|s| s.as_str()) {
                    Some("COMPLETE" | "ACTIVE") => ScanStatus::Complete,
                    Some("IN_PROGRESS" | "PENDING") => ScanStatus::InProgress,
                    Some("UNSUPPORTED_IMAGE") => ScanStatus::Unsupported,
                    Some(_) => ScanStatus::Failed,
                    None => ScanStatus::NotScanned,
                };
                summary.description = s.description().map(str::to_string);
            }
            let Some(f) = page.image_scan_findings() else { continue };
            summary.completed_at = f.image_scan_completed_at().and_then(epoch_ms);
            for b in f.findings() {
                let attr = |k: &str| b.attributes().iter().find(|a| a.key() == k).and_then(|a| a.value()).map(str::to_string);
                let severity = b.severity().map(|s| s.as_str().to_string()).unwrap_or_else(|| "UNDEFINED".into());
                counts.add(&severity, 1);
                findings.push(Finding {
                    id: b.name().unwrap_or("unnamed").to_string(),
                    severity,
                    package: attr("package_name"),
                    installed_version: attr("package_version"),
                    fixed_version: None,
                    description: b.description().map(str::to_string),
                    link: b.uri().map(str::to_string),
                });
            }
            for e in f.enhanced_findings() {
                let details = e.package_vulnerability_details();
                let package = details.and_then(|d| d.vulnerable_packages().first());
                let severity = e.severity().unwrap_or("UNDEFINED").to_string();
                counts.add(&severity, 1);
                findings.push(Finding {
                    id: details.and_then(|d| d.vulnerability_id()).or(e.title()).unwrap_or("unnamed").to_string(),
                    severity,
                    package: package.and_then(|p| p.name()).map(str::to_string),
                    installed_version: package.and_then(|p| p.version()).map(str::to_string),
                    fixed_version: package.and_then(|p| p.fixed_in_version()).map(str::to_string),
                    description: e.description().map(str::to_string),
                    link: details.and_then(|d| d.source_url()).map(str::to_string),
                });
            }
        }
        if summary.status == ScanStatus::Complete || !findings.is_empty() {
            summary.status = ScanStatus::Complete;
            summary.counts = Some(counts);
        }
        findings.sort_by_key(|f| severity_rank(&f.severity));
        Ok(ScanReport { summary, findings })
    }

    async fn has_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, RegistryError> {
        let id = ImageIdentifier::builder().image_digest(digest.as_str()).build();
        let found = self.client.describe_images().registry_id(&self.account_id).repository_name(repository.as_str()).image_ids(id).send().await;
        match found {
            Ok(out) => Ok(out.image_details().iter().any(|d| d.image_digest() == Some(digest.as_str()))),
            Err(e) if e.code() == Some("ImageNotFoundException") => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    fn pull_host(&self) -> String {
        format!("{}.dkr.ecr.{}.amazonaws.com", self.account_id, self.region)
    }

    async fn list_repositories(&self) -> Result<Option<Vec<ListedRepository>>, RegistryError> {
        let mut pages = self.client.describe_repositories().registry_id(&self.account_id).into_paginator().items().send();
        let mut out = Vec::new();
        while let Some(repo) = pages.next().await {
            let repo = repo.map_err(sdk_error)?;
            if let Some(name) = repo.repository_name().and_then(|n| RepositoryName::parse(n).ok()) {
                out.push(ListedRepository { name, tags: None });
            }
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::types::{FindingSeverity, ImageScanFindingsSummary, ImageScanStatus, ScanStatus as EcrScanStatus};

    #[test]
    fn describe_images_entries_map_with_scan_counts() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let detail = ImageDetail::builder()
            .image_digest(&digest)
            .image_tags("v2")
            .image_tags("latest")
            .image_size_in_bytes(1234)
            .image_pushed_at(aws_sdk_ecr::primitives::DateTime::from_millis(1_795_428_000_000))
            .image_scan_status(ImageScanStatus::builder().status(EcrScanStatus::Complete).build())
            .image_scan_findings_summary(
                ImageScanFindingsSummary::builder()
                    .finding_severity_counts(FindingSeverity::Critical, 2)
                    .finding_severity_counts(FindingSeverity::High, 1)
                    .finding_severity_counts(FindingSeverity::Informational, 4)
                    .finding_severity_counts(FindingSeverity::Undefined, 1)
                    .build(),
            )
            .build();
        let r = image_from_detail(&detail).unwrap();
        assert_eq!(r.tags, vec!["latest", "v2"]);
        assert_eq!((r.size_bytes, r.pushed_at), (Some(1234), Some(1_795_428_000_000)));
        assert_eq!(r.scan.status, ScanStatus::Complete);
        let c = r.scan.counts.unwrap();
        assert_eq!((c.critical, c.high, c.medium, c.informational, c.undefined), (2, 1, 0, 4, 1));
        // No scan at all: "not scanned", not an empty success.
        let bare = ImageDetail::builder().image_digest(&digest).build();
        let r = image_from_detail(&bare).unwrap();
        assert_eq!((r.scan.status, r.scan.counts), (ScanStatus::NotScanned, None));
        // A digest that is not one is skipped.
        assert!(image_from_detail(&ImageDetail::builder().image_digest("sha256:nope").build()).is_none());
    }
}
