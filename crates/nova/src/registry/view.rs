//! A component's image view, built from the cache: every linked repository with its state
//! (fresh, stale with time and reason, pending, not found), and one page of images filtered by
//! environment and tag text, restricted to the component's tag prefix (shown without it),
//! sorted by push time. The JSON API serializes it; `images_tab.html` renders it.

use askama::Template;
use nova_domain::{Digest, EntityRef, ImageReference, RepositoryName, TagPrefix};
use serde::Serialize;

use super::provider::{ImageLabels, ImageRecord, Platform, ScanStatus, ScanSummary};
use super::provisioning::{Provisioning, provisioning};
use super::service::{CachedRepo, RegistryService};
use super::store::RepoState;
use super::{ComponentLinks, RepoKey};
use crate::storage::{StorageError, now_ms};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 500;
/// Longest tag filter accepted.
const MAX_FILTER_LEN: usize = 128;

/// What the caller asked to see.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    /// Case-insensitive text the (displayed) tag must contain.
    pub tag: Option<String>,
    /// Only repositories with this environment label.
    pub environment: Option<String>,
    pub offset: usize,
    pub limit: usize,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
}

impl ImageQuery {
    /// Reads the query parameters (`tag`, `environment`, `offset`, `limit`, `order`), naming the
    /// field of any bad one.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let number = |key: &'static str| -> Result<Option<usize>, (&'static str, String)> {
            get(key).filter(|v| !v.is_empty()).map(|v| v.parse::<usize>().map_err(|_| (key, format!("must be a non-negative integer, got {v:?}")))).transpose()
        };
        let limit = number("limit")?.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        let tag = get("tag").map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        if tag.as_ref().is_some_and(|t| t.len() > MAX_FILTER_LEN) {
            return Err(("tag", format!("must be at most {MAX_FILTER_LEN} characters")));
        }
        let oldest_first = match get("order").as_deref() {
            None | Some("" | "newest") => false,
            Some("oldest") => true,
            Some(other) => return Err(("order", format!("must be newest or oldest, got {other:?}"))),
        };
        Ok(Self { tag, environment: get("environment").filter(|e| !e.is_empty()), offset: number("offset")?.unwrap_or(0), limit, oldest_first })
    }
}

/// The state of a repository's cached data.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    /// `fresh`, `stale` (last known data, see `reason`), `pending` (never read yet; a refresh
    /// is queued), `not-found` (the registry says it does not exist) or `unavailable` (never
    /// read successfully; see `reason`).
    pub state: String,
    /// When the shown data was read (Unix ms).
    pub fetched_at: Option<i64>,
    /// When the registry was last asked (Unix ms).
    pub attempted_at: Option<i64>,
    /// Why the data is stale or missing: `unavailable`, `denied`, `rate-limited`,
    /// `bad-response`, `refused`, `config`, `not-found` or `outdated`.
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A linked repository.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryView {
    /// `<registry>/<repository>`.
    pub key: String,
    pub registry: String,
    /// `ecr` or `oci`.
    pub registry_type: String,
    pub repository: String,
    pub environment: Option<String>,
    pub status: RepositoryStatus,
    /// Images of this component in the repository (after the tag prefix, before filters).
    pub image_count: usize,
    pub arn: Option<String>,
    pub pull_host: Option<String>,
    /// The registry's own page for the repository (the ECR console).
    pub console_url: Option<String>,
    pub provisioning: Option<Provisioning>,
}

/// One image row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRow {
    /// The repository key it is in.
    pub repository: String,
    pub environment: Option<String>,
    /// Tags as shown: without the component's tag prefix.
    pub tags: Vec<String>,
    /// Tags as in the registry.
    pub registry_tags: Vec<String>,
    pub digest: String,
    /// `host/repository@sha256:...`, to copy.
    pub pull_reference: Option<String>,
    /// Unix ms; registries without push times (the Distribution API) leave it empty.
    pub pushed_at: Option<i64>,
    pub created_at: Option<i64>,
    /// Compressed size in bytes (sum of layer sizes).
    pub size_bytes: Option<i64>,
    pub media_type: Option<String>,
    pub platforms: Vec<Platform>,
    pub labels: ImageLabels,
    pub scan: ScanSummary,
    /// The image in the registry's console (ECR).
    pub console_url: Option<String>,
    /// Why some details of this image are missing.
    pub error: Option<String>,
}

/// A component's image view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagesView {
    pub component: String,
    pub tag_prefix: Option<String>,
    pub repositories: Vec<RepositoryView>,
    pub images: Vec<ImageRow>,
    /// Images matching the filters, over every page.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub tag: Option<String>,
    pub environment: Option<String>,
    /// `newest` or `oldest`.
    pub order: String,
    /// When the view was built (Unix ms).
    pub generated_at: i64,
}

impl ImagesView {
    /// Whether any repository shows stale or missing data.
    pub fn degraded(&self) -> bool {
        self.repositories.iter().any(|r| r.status.state != "fresh")
    }
}

fn status(row: Option<&CachedRepo>, stale_after_ms: i64, now: i64) -> RepositoryStatus {
    let Some(c) = row else {
        return RepositoryStatus { state: "pending".into(), fetched_at: None, attempted_at: None, reason: None, message: Some("not read yet; a refresh is queued".into()) };
    };
    let r = &c.row;
    let (state, reason, message) = match r.state {
        RepoState::Pending => ("pending", None, Some("not read yet; a refresh is queued".to_string())),
        RepoState::NotFound => ("not-found", Some("not-found".to_string()), r.error_message.clone()),
        RepoState::Ok if r.fetched_at.is_some_and(|f| now - f > stale_after_ms) => {
            ("stale", Some("outdated".to_string()), Some("the background refresh has not succeeded recently".to_string()))
        }
        RepoState::Ok => ("fresh", None, None),
        RepoState::Error if r.fetched_at.is_some() => ("stale", r.error_category.clone(), r.error_message.clone()),
        RepoState::Error => ("unavailable", r.error_category.clone(), r.error_message.clone()),
    };
    RepositoryStatus { state: state.into(), fetched_at: r.fetched_at, attempted_at: r.attempted_at, reason, message }
}

/// The tags of `image` the component sees, shown without its prefix.
fn visible_tags<'a>(image: &'a ImageRecord, prefix: Option<&'a TagPrefix>) -> impl Iterator<Item = &'a str> + 'a {
    image.tags.iter().filter_map(move |t| match prefix {
        None => Some(t.as_str()),
        Some(p) => p.strip(t),
    })
}

/// Whether the component sees `image` at all: images in a consolidated repository belong to
/// it only through a tag with its prefix.
fn is_visible(image: &ImageRecord, prefix: Option<&TagPrefix>) -> bool {
    prefix.is_none() || visible_tags(image, prefix).next().is_some()
}

fn image_console_url(repo_console: Option<&str>, is_ecr: bool, digest: &str) -> Option<String> {
    let base = repo_console.filter(|_| is_ecr)?;
    let (path, query) = base.split_once('?')?;
    Some(format!("{path}/_/image/{digest}/details?{query}"))
}

/// Builds the view of a component's images from the cache. Never asks a registry: a
/// repository never read gets its refresh scheduled and shows as pending.
pub async fn build(svc: &RegistryService, component: &EntityRef, links: &ComponentLinks, query: &ImageQuery) -> Result<ImagesView, StorageError> {
    let now = now_ms();
    let stale_after = svc.settings.stale_after.as_millis() as i64;
    let mut repositories = Vec::new();
    let mut matches: Vec<(i64, usize, &ImageRecord)> = Vec::new();
    let mut cached: Vec<(RepoKey, Option<String>, Option<std::sync::Arc<CachedRepo>>)> = Vec::new();
    for linked in &links.repositories {
        let c = svc.cached(&linked.key).await?;
        if c.as_ref().is_none_or(|c| c.row.state == RepoState::Pending) {
            svc.ensure_scheduled(&linked.key).await?;
        }
        cached.push((linked.key.clone(), linked.environment.clone(), c));
    }
    let needle = query.tag.as_ref().map(|t| t.to_lowercase());
    for (i, (key, environment, c)) in cached.iter().enumerate() {
        let selected = query.environment.as_ref().is_none_or(|e| environment.as_ref() == Some(e));
        let mut visible = 0;
        if let Some(c) = c {
            let prefix = links.tag_prefix.as_ref();
            for image in c.images.iter() {
                if !is_visible(image, prefix) {
                    continue;
                }
                visible += 1;
                if !selected {
                    continue;
                }
                if let Some(n) = &needle
                    && !visible_tags(image, prefix).any(|t| t.to_lowercase().contains(n.as_str())) {
                        continue;
                    }
                matches.push((image.sort_time(), i, image));
            }
        }
        let registry_type = svc.registries().get(&key.registry).map(|r| r.provider.kind()).unwrap_or("unknown");
        let info = c.as_ref().filter(|c| c.row.fetched_at.is_some()).map(|c| &c.row.info);
        repositories.push(RepositoryView {
            key: key.to_string(),
            registry: key.registry.clone(),
            registry_type: registry_type.into(),
            repository: key.repository.to_string(),
            environment: environment.clone(),
            status: status(c.as_deref(), stale_after, now),
            image_count: visible,
            arn: info.and_then(|i| i.arn.clone()),
            pull_host: info.map(|i| i.pull_host.clone()),
            console_url: info.and_then(|i| i.console_url.clone()),
            provisioning: info.map(|i| provisioning(i, key.repository.as_str(), &svc.settings.migration_request_url)),
        });
    }
    // Each repository's images are already newest first; merge only when there are several.
    if cached.len() > 1 {
        matches.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.digest.cmp(&b.2.digest)));
    }
    if query.oldest_first {
        matches.reverse();
    }
    let total = matches.len();
    let images = matches
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|(_, i, image)| {
            let repo = &repositories[i];
            let tags = visible_tags(image, links.tag_prefix.as_ref()).map(str::to_string).collect();
            let pull_reference = match (&repo.pull_host, Digest::parse(&image.digest), RepositoryName::parse(&repo.repository)) {
                (Some(host), Ok(d), Ok(r)) => Some(ImageReference::by_digest(host, &r, &d).to_string()),
                _ => None,
            };
            ImageRow {
                repository: repo.key.clone(),
                environment: repo.environment.clone(),
                tags,
                registry_tags: image.tags.clone(),
                digest: image.digest.clone(),
                pull_reference,
                pushed_at: image.pushed_at,
                created_at: image.created_at,
                size_bytes: image.size_bytes,
                media_type: image.media_type.clone(),
                platforms: image.platforms.clone(),
                labels: image.labels.clone(),
                scan: image.scan.clone(),
                console_url: image_console_url(repo.console_url.as_deref(), repo.registry_type == "ecr", &image.digest),
                error: image.error.clone(),
            }
        })
        .collect();
    Ok(ImagesView {
        component: component.to_string(),
        tag_prefix: links.tag_prefix.as_ref().map(|p| p.to_string()),
        repositories,
        images,
        total,
        offset: query.offset,
        limit: query.limit,
        tag: query.tag.clone(),
        environment: query.environment.clone(),
        order: if query.oldest_first { "oldest" } else { "newest" }.into(),
        generated_at: now,
    })
}

/// The "Images" tab: a fragment the component page mounts (and the standalone page wraps).
#[derive(Template)]
#[template(path = "images_tab.html")]
pub struct ImagesTab<'a> {
    pub view: &'a ImagesView,
    /// The path the tab's links and forms point at (the page that shows it).
    pub path: &'a str,
    /// Annotation problems to show instead of (or above) the images.
    pub errors: &'a [String],
}

/// Renders the "Images" tab for a component page whose URL path is `path`.
pub fn render_images_tab(view: &ImagesView, path: &str, errors: &[String]) -> Result<String, askama::Error> {
    ImagesTab { view, path, errors }.render()
}

impl ImagesTab<'_> {
    /// A link to this view with another offset, keeping the filters.
    pub fn page_link(&self, offset: &usize) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(t) = &self.view.tag {
            q.append_pair("tag", t);
        }
        if let Some(e) = &self.view.environment {
            q.append_pair("environment", e);
        }
        if self.view.order != "newest" {
            q.append_pair("order", &self.view.order);
        }
        q.append_pair("offset", &offset.to_string());
        if self.view.limit != DEFAULT_LIMIT {
            q.append_pair("limit", &self.view.limit.to_string());
        }
        format!("{}?{}", self.path, q.finish())
    }

    /// The previous page's offset, if any.
    pub fn prev_offset(&self) -> Option<usize> {
        (self.view.offset > 0).then(|| self.view.offset.saturating_sub(self.view.limit))
    }

    /// The next page's offset, if any.
    pub fn next_offset(&self) -> Option<usize> {
        let next = self.view.offset + self.view.limit;
        (next < self.view.total).then_some(next)
    }

    /// A time for people.
    pub fn time(&self, ms: &Option<i64>) -> String {
        format_time(*ms)
    }

    /// A size for people.
    pub fn size(&self, bytes: &Option<i64>) -> String {
        format_size(*bytes)
    }

    /// The scan cell: "not scanned", or counts by severity.
    pub fn scan(&self, image: &ImageRow) -> String {
        let scan = &image.scan;
        match (scan.status, &scan.counts) {
            (_, Some(c)) => format!("critical {} · high {} · medium {} · low {} · info {}", c.critical, c.high, c.medium, c.low, c.informational),
            (ScanStatus::NotScanned, None) => "not scanned".into(),
            (ScanStatus::InProgress, None) => "scan in progress".into(),
            (ScanStatus::Failed, None) => format!("scan failed{}", scan.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()),
            (ScanStatus::Unsupported, None) => "not scannable (unsupported image)".into(),
            (ScanStatus::Complete, None) => "scanned".into(),
        }
    }

    /// The findings of an image, shown on this tab.
    pub fn findings_link(&self, image: &ImageRow) -> String {
        format!("{}?findings={}#findings", self.path, image.digest)
    }

    /// `sha256:` and 12 hex digits.
    pub fn short_digest(&self, image: &ImageRow) -> String {
        image.digest.chars().take(19).collect()
    }

    /// A revision shortened to 12 characters, as git does.
    pub fn short_revision(&self, image: &ImageRow) -> String {
        image.labels.revision.as_deref().unwrap_or_default().chars().take(12).collect()
    }

    /// The environment filter's options.
    pub fn environment_options(&self) -> Vec<EnvironmentOption> {
        let mut names: Vec<&str> = self.view.repositories.iter().filter_map(|r| r.environment.as_deref()).collect();
        names.dedup();
        names
            .into_iter()
            .map(|n| EnvironmentOption { name: n.to_string(), selected: if self.view.environment.as_deref() == Some(n) { " selected" } else { "" } })
            .collect()
    }
}

/// One option of the environment filter.
pub struct EnvironmentOption {
    pub name: String,
    /// ` selected` or nothing.
    pub selected: &'static str,
}

/// `2026-11-23 10:00 UTC`.
pub fn format_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "—".into() };
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute()),
        Err(_) => "—".into(),
    }
}

/// `12.3 MB`.
pub fn format_size(bytes: Option<i64>) -> String {
    let Some(b) = bytes else { return "—".into() };
    let b = b as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tags: &[&str]) -> ImageRecord {
        ImageRecord {
            digest: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            pushed_at: None,
            created_at: None,
            size_bytes: None,
            media_type: None,
            platforms: vec![],
            labels: Default::default(),
            scan: Default::default(),
            error: None,
        }
    }

    #[test]
    fn prefixes_hide_other_components_and_strip_their_own() {
        let p = TagPrefix::parse("backend-").unwrap();
        let both = image(&["backend-v1", "latest"]);
        assert_eq!(visible_tags(&both, Some(&p)).collect::<Vec<_>>(), vec!["v1"]);
        assert!(!is_visible(&image(&["frontend-v1"]), Some(&p)));
        assert!(!is_visible(&image(&[]), Some(&p)));
        assert!(is_visible(&image(&[]), None), "untagged images belong to a repository's only component");
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = |pairs: &'static [(&'static str, &'static str)]| ImageQuery::parse(move |k| pairs.iter().find(|(a, _)| *a == k).map(|(_, v)| v.to_string()));
        assert_eq!(q(&[]).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(q(&[("limit", "0")]).unwrap_err().0, "limit");
        assert_eq!(q(&[("limit", "501")]).unwrap_err().0, "limit");
        assert_eq!(q(&[("offset", "-1")]).unwrap_err().0, "offset");
        assert_eq!(q(&[("order", "random")]).unwrap_err().0, "order");
        assert!(q(&[("order", "oldest"), ("tag", " v1 ")]).map(|q| q.oldest_first && q.tag.as_deref() == Some("v1")).unwrap());
    }

    #[test]
    fn formats() {
        assert_eq!(format_time(Some(1_795_428_000_000)), "2026-11-23 10:00 UTC");
        assert_eq!(format_size(Some(12_345_678)), "12.3 MB");
        assert_eq!(format_size(None), "—");
        let url = image_console_url(Some("https://eu-west-1.console.aws.amazon.com/ecr/repositories/private/1/a?region=eu-west-1"), true, "sha256:x");
        assert_eq!(url.unwrap(), "https://eu-west-1.console.aws.amazon.com/ecr/repositories/private/1/a/_/image/sha256:x/details?region=eu-west-1");
    }
}
