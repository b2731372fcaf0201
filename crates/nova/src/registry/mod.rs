//! Registry insight: a read-only view of every component's container images.
//!
//! ```text
//! catalog annotations ──links──▶ RepoKey (<registry>/<repository>)
//!                                   │  RefreshRepository job (leased, recurring)
//!                                   ▼
//!   RegistryProvider (ecr | oci) ──▶ store: registry_repositories / registry_images
//!                                   │  per-process copy, checked by generation
//!                                   ▼
//!          view: filter, prefix, sort, page ──▶ /api/v1/.../images, images_tab.html
//! ```
//!
//! Requests never wait for a registry except the findings drill-down (bounded by the request
//! timeout, answered from the cache when the registry fails). A registry that is down, slow or
//! denies access leaves the last known data in place, marked stale with the time and reason.
//! Nothing here writes to a registry.

pub mod config;
pub mod drift;
#[cfg(feature = "aws")]
pub mod ecr;
pub mod oci;
pub mod provider;
pub mod provisioning;
pub mod safe_net;
pub mod service;
pub mod store;
pub mod view;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use nova_domain::{ImageLinks, RepositoryLink, RepositoryName, TagPrefix};

use crate::catalog::EntityRecord;
pub use config::{RegistryDef, RegistrySettings};
pub use provider::{RegistryError, RegistryProvider};
pub use service::{RefreshRepository, RegistryService, ReconcileRegistries};

/// A configured registry.
pub struct Registry {
    pub name: String,
    pub provider: Arc<dyn RegistryProvider>,
    /// For ECR registries: (account id, region, default).
    ecr: Option<(String, String, bool)>,
}

impl Registry {
    /// The provider's health check as a report for `nova doctor`, `nova registry check` and
    /// `/ready`, with what to do about a failure.
    pub async fn health(&self) -> crate::health::HealthReport {
        health_report(&self.name, self.provider.clone()).await
    }
}

/// A registry's health check as a report; owned arguments, so the check can run on its own task.
pub async fn health_report(name: &str, provider: Arc<dyn RegistryProvider>) -> crate::health::HealthReport {
    use crate::health::HealthReport;
    let kind = provider.kind();
    let target = name.to_string();
    let error = match provider.health_check().await {
        Ok(what) => return HealthReport::pass(kind, target, what),
        Err(e) => e,
    };
    let fix = match &error {
        RegistryError::Denied(_) if kind == "ecr" => format!(
            "give Nova's AWS role ecr:DescribeRepositories, ecr:DescribeImages, ecr:ListTagsForResource, ecr:BatchGetImage and ecr:DescribeImageScanFindings on the repositories of registries.{name} (docs/REGISTRY.md)"
        ),
        RegistryError::Denied(_) => format!("check registries.{name}.username and the password reference, and that the account may pull"),
        RegistryError::RateLimited(_) => return HealthReport::warn(kind, target, error.to_string(), "wait for the limit to reset, or authenticate for a higher one"),
        RegistryError::Unavailable(_) => format!("check registries.{name} (URL, region) and that this host can reach the registry"),
        RegistryError::BadResponse(_) => format!("check that registries.{name}.url is the registry's root (where /v2/ answers)"),
        RegistryError::Refused(_) => "the registry sent Nova to an address it refuses (metadata or link-local); check the registry's redirect settings".into(),
        RegistryError::NotFound(_) | RegistryError::Config(_) => format!("fix registries.{name} as the message says"),
    };
    HealthReport::fail(kind, target, format!("{}: {error}", error.category()), fix)
}

/// Every configured registry, by name.
#[derive(Default)]
pub struct Registries {
    by_name: BTreeMap<String, Registry>,
}

impl Registries {
    /// Builds a client for each configured registry.
    pub async fn build(defs: &BTreeMap<String, RegistryDef>, settings: &RegistrySettings, outbound: &crate::outbound::Outbound) -> anyhow::Result<Self> {
        let mut by_name = BTreeMap::new();
        for (name, def) in defs {
            let (provider, ecr): (Arc<dyn RegistryProvider>, _) = match def {
                RegistryDef::Oci(c) => {
                    let r = oci::OciRegistry::new(name, c, settings, outbound).map_err(|e| anyhow::anyhow!("registries.{name}: {e}"))?;
                    (Arc::new(r), None)
                }
                #[cfg(feature = "aws")]
                RegistryDef::Ecr(c) => (Arc::new(ecr::EcrRegistry::new(c, settings).await), Some((c.account_id.clone(), c.region.clone(), c.default))),
                #[cfg(not(feature = "aws"))]
                RegistryDef::Ecr(_) => anyhow::bail!("registries.{name}: this Nova was built without the `aws` feature, so it cannot read ECR"),
            };
            by_name.insert(name.clone(), Registry { name: name.clone(), provider, ecr });
        }
        Ok(Self { by_name })
    }

    /// A registry with a given provider, for tests and tools.
    pub fn insert(&mut self, name: &str, provider: Arc<dyn RegistryProvider>) {
        self.by_name.insert(name.to_string(), Registry { name: name.to_string(), provider, ecr: None });
    }

    /// A registry by name.
    pub fn get(&self, name: &str) -> Option<&Registry> {
        self.by_name.get(name)
    }

    /// Every registry.
    pub fn iter(&self) -> impl Iterator<Item = &Registry> {
        self.by_name.values()
    }

    /// Which configured repository a link names.
    pub fn resolve(&self, link: &RepositoryLink) -> Result<RepoKey, String> {
        let ecr = || self.by_name.values().filter_map(|r| r.ecr.as_ref().map(|e| (r, e)));
        let registry = match link {
            RepositoryLink::EcrArn(arn) => ecr()
                .find(|(_, (account, region, _))| *account == arn.account_id && *region == arn.region)
                .map(|(r, _)| r)
                .ok_or_else(|| format!("no ECR registry for account {} in {} is configured ([registries.<name>] type = \"ecr\")", arn.account_id, arn.region))?,
            RepositoryLink::EcrName(_) => {
                let all: Vec<_> = ecr().collect();
                let default = all.iter().find(|(_, (_, _, d))| *d).or(if all.len() == 1 { all.first() } else { None });
                default.map(|(r, _)| *r).ok_or_else(|| {
                    if all.is_empty() {
                        "no ECR registry is configured".to_string()
                    } else {
                        "several ECR registries are configured and none is marked default = true; use amazon.com/ecr-repository-arn".to_string()
                    }
                })?
            }
            RepositoryLink::Registry { registry, .. } => {
                self.by_name.get(registry).ok_or_else(|| format!("registry {registry:?} is not in the configuration ([registries.{registry}])"))?
            }
        };
        let repository = match link {
            RepositoryLink::EcrArn(a) => a.repository.clone(),
            RepositoryLink::EcrName(n) => n.clone(),
            RepositoryLink::Registry { repository, .. } => repository.clone(),
        };
        Ok(RepoKey { registry: registry.name.clone(), repository })
    }

    /// A component's linked repositories, or why its annotations cannot be used. `Ok(None)`
    /// when it links none.
    pub fn component_links(&self, entity: &EntityRecord) -> Result<Option<ComponentLinks>, Vec<String>> {
        let value = entity.value();
        let annotations = value["metadata"]["annotations"].as_object();
        let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(|v| v.as_str());
        let links = match ImageLinks::from_annotations(get) {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(None),
            Err(errors) => return Err(errors.iter().map(ToString::to_string).collect()),
        };
        let mut errors = Vec::new();
        let mut repositories = Vec::new();
        for linked in &links.repositories {
            match self.resolve(&linked.link) {
                Ok(key) => repositories.push(LinkedRepo { key, environment: linked.environment.clone() }),
                Err(e) => errors.push(format!("{}: {e}", linked.annotation)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(ComponentLinks { repositories, tag_prefix: links.tag_prefix }))
    }
}

/// A repository in a configured registry: `<registry>/<repository>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoKey {
    pub registry: String,
    pub repository: RepositoryName,
}

impl RepoKey {
    /// Parses `<registry>/<repository>` as stored.
    pub fn parse(s: &str) -> Option<Self> {
        let (registry, repository) = s.split_once('/')?;
        Some(Self { registry: registry.to_string(), repository: RepositoryName::parse(repository).ok()? })
    }
}

impl fmt::Display for RepoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// One repository a component links, with its environment label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedRepo {
    pub key: RepoKey,
    pub environment: Option<String>,
}

/// A component's resolved image links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentLinks {
    pub repositories: Vec<LinkedRepo>,
    pub tag_prefix: Option<TagPrefix>,
}
