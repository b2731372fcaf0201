//! The contract between registry and catalog (seed 000 §5.2) and where it drifts: repository
//! tags `backstage.io/component`, `backstage.io/system` and `backstage.io/owner` against the
//! catalog's annotations, repositories no component links, components pointing at
//! repositories that do not exist, and components sharing a repository without (distinct) tag
//! prefixes. Served at `/api/v1/registry/drift`, by `nova registry drift`, and as the
//! `nova_registry_drift` gauge.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use nova_domain::EntityRef;
use serde::{Deserialize, Serialize};

use super::service::{LinkIndex, Linker, RegistryService};
use super::store::{self, RepoState};
use super::RepoKey;
use crate::storage::{StorageError, now_ms};

pub const TAG_COMPONENT: &str = "backstage.io/component";
pub const TAG_SYSTEM: &str = "backstage.io/system";
pub const TAG_OWNER: &str = "backstage.io/owner";

/// Repositories refreshed at once by `nova registry drift`.
const REFRESH_CONCURRENCY: usize = 4;

/// A kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// A repository in a registry that no component links.
    UnlinkedRepository,
    /// A component links a repository that does not exist.
    MissingRepository,
    /// The repository's `backstage.io/owner` tag differs from the component's owner.
    OwnerMismatch,
    /// The repository's `backstage.io/system` tag differs from the component's system.
    SystemMismatch,
    /// The repository's `backstage.io/component` tag names another component.
    ComponentMismatch,
    /// A linked repository lacks the `backstage.io/*` tags of the contract.
    MissingTags,
    /// Several components link one repository and their tag prefixes do not tell their
    /// images apart (one has none, or one prefix starts another).
    SharedWithoutPrefix,
    /// A component's image annotations cannot be used.
    InvalidLink,
}

impl DriftKind {
    /// Every kind, for metrics.
    pub const ALL: [DriftKind; 8] = [
        Self::UnlinkedRepository,
        Self::MissingRepository,
        Self::OwnerMismatch,
        Self::SystemMismatch,
        Self::ComponentMismatch,
        Self::MissingTags,
        Self::SharedWithoutPrefix,
        Self::InvalidLink,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::UnlinkedRepository => "unlinked-repository",
            Self::MissingRepository => "missing-repository",
            Self::OwnerMismatch => "owner-mismatch",
            Self::SystemMismatch => "system-mismatch",
            Self::ComponentMismatch => "component-mismatch",
            Self::MissingTags => "missing-tags",
            Self::SharedWithoutPrefix => "shared-without-prefix",
            Self::InvalidLink => "invalid-link",
        }
    }
}

/// One finding of the drift report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    pub kind: DriftKind,
    /// `<registry>/<repository>`, when the item is about one.
    pub repository: Option<String>,
    /// The components concerned.
    pub components: Vec<String>,
    /// The catalog's value (for mismatches).
    pub catalog: Option<String>,
    /// The registry's value (for mismatches).
    pub registry: Option<String>,
    pub message: String,
}

/// What a registry said when asked for its repositories.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistryListing {
    pub registry: String,
    /// Repositories listed; `None` when the registry does not list them or failed.
    pub repositories: Option<usize>,
    pub error: Option<String>,
}

/// The drift report.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftReport {
    /// Unix ms.
    pub generated_at: i64,
    /// Whether anything drifted.
    pub drift: bool,
    /// Items by kind.
    pub counts: BTreeMap<String, usize>,
    pub items: Vec<DriftItem>,
    pub registries: Vec<RegistryListing>,
    /// Linked repositories whose tags are not known yet (never read), so their contract was
    /// not checked.
    pub unchecked: Vec<String>,
}

impl DriftReport {
    /// Sets the `nova_registry_drift{kind}` gauge.
    pub fn record_metrics(&self) {
        for kind in DriftKind::ALL {
            let n = self.counts.get(kind.as_str()).copied().unwrap_or(0);
            metrics::gauge!("nova_registry_drift", "kind" => kind.as_str()).set(n as f64);
        }
    }
}

/// Builds the report. With `refresh`, every linked repository is read from its registry
/// first (the CLI does; the server's jobs keep the cache fresh).
pub async fn report(svc: &RegistryService, index: &LinkIndex, refresh: bool) -> Result<DriftReport, StorageError> {
    if refresh {
        let keys: Vec<RepoKey> = index.by_repo.keys().cloned().collect();
        let mut runs = futures_util::stream::iter(keys).map(|k| async move { svc.refresh(&k).await }).buffer_unordered(REFRESH_CONCURRENCY);
        while let Some(r) = runs.next().await {
            // A registry failure is recorded on the repository and shows in the report.
            let _ = r?;
        }
    }
    let mut items = Vec::new();
    let mut registries = Vec::new();
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for registry in svc.registries().iter() {
        let result = tokio::time::timeout(svc.settings.request_timeout * 4, registry.provider.list_repositories()).await;
        let listing = match result {
            Ok(Ok(Some(repos))) => {
                listed.insert(registry.name.clone(), repos.iter().map(|r| r.name.to_string()).collect());
                RegistryListing { registry: registry.name.clone(), repositories: Some(repos.len()), error: None }
            }
            Ok(Ok(None)) => RegistryListing { registry: registry.name.clone(), repositories: None, error: Some("the registry does not list its repositories to Nova".into()) },
            Ok(Err(e)) => RegistryListing { registry: registry.name.clone(), repositories: None, error: Some(e.to_string()) },
            Err(_) => RegistryListing { registry: registry.name.clone(), repositories: None, error: Some("the registry did not list its repositories in time".into()) },
        };
        registries.push(listing);
    }
    let linked: BTreeSet<String> = index.by_repo.keys().map(ToString::to_string).collect();
    for (registry, names) in &listed {
        for name in names {
            let key = format!("{registry}/{name}");
            if !linked.contains(&key) {
                items.push(item(DriftKind::UnlinkedRepository, Some(&key), &[], None, None, format!("repository {key} is not linked by any component")));
            }
        }
    }
    let snapshot = svc.catalog().snapshot();
    let mut unchecked = Vec::new();
    for (key, linkers) in &index.by_repo {
        let k = key.to_string();
        let components: Vec<String> = linkers.iter().map(|l| l.component.to_string()).collect();
        let row = store::repo(svc.db(), &k).await?;
        let absent_from_listing = listed.get(&key.registry).is_some_and(|names| !names.contains(key.repository.as_str()));
        if row.as_ref().is_some_and(|r| r.state == RepoState::NotFound) || absent_from_listing {
            items.push(item(DriftKind::MissingRepository, Some(&k), &components, None, None, format!("repository {k} does not exist")));
            continue;
        }
        shared(key, linkers, &mut items);
        match row.as_ref().filter(|r| r.fetched_at.is_some()).map(|r| &r.info.tags) {
            Some(Some(tags)) => contract(key, linkers, tags, &snapshot, &mut items),
            _ => unchecked.push(k),
        }
    }
    for (component, errors) in &index.errors {
        for e in errors {
            items.push(item(DriftKind::InvalidLink, None, &[component.to_string()], None, None, e.clone()));
        }
    }
    items.sort_by(|a, b| (a.kind, &a.repository, &a.components).cmp(&(b.kind, &b.repository, &b.components)));
    let mut counts = BTreeMap::new();
    for i in &items {
        *counts.entry(i.kind.as_str().to_string()).or_insert(0) += 1;
    }
    Ok(DriftReport { generated_at: now_ms(), drift: !items.is_empty(), counts, items, registries, unchecked })
}

fn item(kind: DriftKind, repository: Option<&str>, components: &[String], catalog: Option<String>, registry: Option<String>, message: String) -> DriftItem {
    DriftItem { kind, repository: repository.map(str::to_string), components: components.to_vec(), catalog, registry, message }
}

/// Several components in one repository must have prefixes that tell their images apart.
fn shared(key: &RepoKey, linkers: &[Linker], items: &mut Vec<DriftItem>) {
    if linkers.len() < 2 {
        return;
    }
    let k = key.to_string();
    let components: Vec<String> = linkers.iter().map(|l| l.component.to_string()).collect();
    let unprefixed: Vec<String> = linkers.iter().filter(|l| l.tag_prefix.is_none()).map(|l| l.component.to_string()).collect();
    if !unprefixed.is_empty() {
        items.push(item(
            DriftKind::SharedWithoutPrefix,
            Some(&k),
            &components,
            None,
            None,
            format!("{} components share {k}, and {} set no nova.dev/image-tag-prefix", linkers.len(), unprefixed.join(", ")),
        ));
        return;
    }
    for (i, a) in linkers.iter().enumerate() {
        for b in &linkers[i + 1..] {
            let (Some(pa), Some(pb)) = (&a.tag_prefix, &b.tag_prefix) else { continue };
            if pa.overlaps(pb) {
                items.push(item(
                    DriftKind::SharedWithoutPrefix,
                    Some(&k),
                    &[a.component.to_string(), b.component.to_string()],
                    None,
                    None,
                    format!("tag prefixes {pa:?} and {pb:?} in {k} overlap: one component's tags can look like the other's"),
                ));
            }
        }
    }
}

/// Compares the repository's `backstage.io/*` tags with the catalog.
fn contract(key: &RepoKey, linkers: &[Linker], tags: &BTreeMap<String, String>, snapshot: &crate::catalog::Snapshot, items: &mut Vec<DriftItem>) {
    let k = key.to_string();
    if ![TAG_COMPONENT, TAG_SYSTEM, TAG_OWNER].iter().any(|t| tags.contains_key(*t)) {
        let components: Vec<String> = linkers.iter().map(|l| l.component.to_string()).collect();
        items.push(item(DriftKind::MissingTags, Some(&k), &components, None, None, format!("{k} has none of the tags {TAG_COMPONENT}, {TAG_SYSTEM}, {TAG_OWNER}")));
        return;
    }
    let parse = |v: &str, kind: &str| EntityRef::parse_with(v, Some(kind), "default").ok();
    // The component tag only makes sense for a repository that belongs to one component.
    if let (Some(tag), [only]) = (tags.get(TAG_COMPONENT), linkers)
        && parse(tag, "component").as_ref() != Some(&only.component) {
            items.push(item(
                DriftKind::ComponentMismatch,
                Some(&k),
                &[only.component.to_string()],
                Some(only.component.to_string()),
                Some(tag.clone()),
                format!("{k} is tagged {TAG_COMPONENT}={tag} but is linked by {}", only.component),
            ));
        }
    for l in linkers {
        let Some(entity) = snapshot.get(&l.component) else { continue };
        for (tag_key, kind, catalog_value, drift) in [
            (TAG_OWNER, "group", entity.summary.owner.as_ref(), DriftKind::OwnerMismatch),
            (TAG_SYSTEM, "system", entity.summary.system.as_ref(), DriftKind::SystemMismatch),
        ] {
            let Some(tag) = tags.get(tag_key) else { continue };
            if parse(tag, kind).as_ref() != catalog_value {
                let catalog = catalog_value.map(ToString::to_string);
                items.push(item(
                    drift,
                    Some(&k),
                    &[l.component.to_string()],
                    catalog.clone(),
                    Some(tag.clone()),
                    format!("{k} is tagged {tag_key}={tag}; the catalog says {} for {}", catalog.as_deref().unwrap_or("nothing"), l.component),
                ));
            }
        }
    }
}
