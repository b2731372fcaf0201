//! Per-environment image repositories (seed 002): an environment may name the repository its
//! images must live in (`repository = "<registry>/<path>"`, a configured OCI registry, like
//! `nova.dev/image-repository`). Before the GitOps write, the promotion copies the artifact by
//! digest from where it is into that repository with the environment's push credential
//! ([`crate::registry::oci::copy`]), and the write names the copy. With no `repository`, or the
//! artifact's own, nothing is copied.

use std::collections::BTreeMap;

use nova_domain::{Digest, EntityRef, RepositoryName};
use serde_json::json;

use super::config::EnvironmentConfig;
use super::store::Promotion;
use super::{Release, WriteFailure, Who};
use crate::audit::Outcome;
use crate::registry::RegistryDef;
use crate::registry::config::OciConfig;
use crate::registry::oci::client::Client;
use crate::registry::oci::copy::{CopyReport, Endpoint, copy_image};
use crate::registry::oci::push::UPLOAD_CHUNK;
use crate::registry::provider::RegistryError;

/// A repository in a configured OCI registry.
#[derive(Debug, Clone)]
pub struct Located<'a> {
    /// The registry's name (`[registries.<name>]`).
    pub registry: &'a str,
    pub config: &'a OciConfig,
    pub path: RepositoryName,
}

impl Located<'_> {
    /// `host[:port]/path`, as a cluster pulls it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.config.pull_host(), self.path)
    }
}

/// The copy a promotion needs before its GitOps write.
pub struct CopyPlan<'a> {
    pub source: Located<'a>,
    pub target: Located<'a>,
}

/// Checks every environment's `repository`, `push_username` and `push_credential` against
/// `[registries]`; an error is `(key, message)`.
pub fn check(environments: &BTreeMap<String, EnvironmentConfig>, registries: &BTreeMap<String, RegistryDef>) -> Result<(), (String, String)> {
    let sample = EntityRef::parse("component:default/example").expect("a valid reference");
    for (name, c) in environments {
        let key = |k: &str| format!("environments.{name}.{k}");
        let Some(template) = &c.repository else {
            if c.push_username.is_some() || c.push_credential.is_some() {
                return Err((key("push_credential"), "push_username and push_credential are for an environment that names a repository".into()));
            }
            continue;
        };
        target(template, &sample, registries).map_err(|m| (key("repository"), m))?;
        match (&c.push_username, &c.push_credential) {
            (Some(u), _) if u.is_empty() || u.contains(':') => return Err((key("push_username"), "must be non-empty and contain no `:`".into())),
            (None, Some(_)) => return Err((key("push_username"), "is required with push_credential".into())),
            (Some(_), None) => return Err((key("push_credential"), "is required with push_username".into())),
            _ => {}
        }
    }
    Ok(())
}

/// The environment's repository for `component`: `template` with `{component}` and
/// `{namespace}` filled in, in a configured OCI registry.
fn target<'a>(template: &str, component: &EntityRef, registries: &'a BTreeMap<String, RegistryDef>) -> Result<Located<'a>, String> {
    let filled = template.replace("{component}", component.name()).replace("{namespace}", component.namespace());
    let (name, path) = filled.split_once('/').ok_or("must be <registry>/<path>, e.g. \"demo/storefront/{component}-prod\"")?;
    let (registry, def) = registries.get_key_value(name).ok_or_else(|| format!("names registry {name:?}, which is not configured ([registries.{name}])"))?;
    let RegistryDef::Oci(config) = def else { return Err(format!("names registry {name:?}, which is not an OCI registry; Nova copies images into OCI registries only")) };
    let path = RepositoryName::parse(path).map_err(|e| format!("{path:?} is not a repository path: {e}"))?;
    Ok(Located { registry, config, path })
}

/// Where an artifact's repository is: `<registry name>/<path>`, or `<host[:port]>/<path>` with
/// the host of a configured OCI registry (its URL's or its `pull_host`).
pub fn locate<'a>(repository: &str, registries: &'a BTreeMap<String, RegistryDef>) -> Option<Located<'a>> {
    let (first, path) = repository.split_once('/')?;
    let path = RepositoryName::parse(path).ok()?;
    let found = registries.get_key_value(first).or_else(|| {
        registries.iter().find(|(_, d)| match d {
            RegistryDef::Oci(c) => c.pull_host() == first || d.push_host().as_deref() == Some(first),
            RegistryDef::Ecr(_) => false,
        })
    });
    match found? {
        (registry, RegistryDef::Oci(config)) => Some(Located { registry, config, path }),
        _ => None,
    }
}

fn failure(e: RegistryError) -> WriteFailure {
    match e {
        RegistryError::Unavailable(m) | RegistryError::RateLimited(m) => WriteFailure::Transient(format!("copying the image: {m}")),
        e => WriteFailure::Permanent(format!("copying the image: {e}")),
    }
}

impl Release {
    /// The copy promotion `p` needs, if any: `None` when its environment names no repository,
    /// or names the artifact's own.
    pub(super) fn copy_plan(&self, p: &Promotion) -> Result<Option<CopyPlan<'_>>, WriteFailure> {
        let env = self.environments.get(&p.environment).ok_or_else(|| WriteFailure::Permanent(format!("environment {} is no longer configured", p.environment)))?;
        let Some(template) = &env.config.repository else { return Ok(None) };
        let component = EntityRef::parse(&p.component_ref).map_err(|e| WriteFailure::Permanent(e.to_string()))?;
        let target = target(template, &component, &self.registries).map_err(|m| WriteFailure::Permanent(format!("environments.{}.repository {m}", env.name)))?;
        let source = locate(&p.repository, &self.registries).ok_or_else(|| {
            WriteFailure::Permanent(format!("the artifact's repository {} is in no configured OCI registry, so Nova cannot copy it into {}", p.repository, target.reference()))
        })?;
        if source.registry == target.registry && source.path == target.path {
            return Ok(None);
        }
        Ok(Some(CopyPlan { source, target }))
    }

    /// Copies the artifact of `p` as `plan` says, with the environment's push credential;
    /// audited with what was copied, mounted, streamed and skipped.
    pub(super) async fn copy(&self, p: &Promotion, plan: &CopyPlan<'_>) -> Result<CopyReport, WriteFailure> {
        let env = self.environments.get(&p.environment).ok_or_else(|| WriteFailure::Permanent(format!("environment {} is no longer configured", p.environment)))?;
        let client = |c: &OciConfig| Client::new(c, self.registry_settings.request_timeout, self.registry_settings.max_manifest_bytes, self.outbound.clone()).map_err(|e| WriteFailure::Permanent(format!("registry client: {e}")));
        let source = client(plan.source.config)?;
        let mut target = client(plan.target.config)?;
        if let (Some(user), Some(credential)) = (&env.config.push_username, &env.config.push_credential) {
            let key = format!("environments.{}.push_credential", env.name);
            let secret = credential.resolve(&key, self.secrets.as_ref()).await.map_err(|e| WriteFailure::Transient(e.to_string()))?;
            target = target.with_credentials(user.clone(), secret);
        }
        let digest = Digest::parse(&p.digest).map_err(|e| WriteFailure::Permanent(e.to_string()))?;
        let from = Endpoint { client: &source, repository: plan.source.path.as_str() };
        let to = Endpoint { client: &target, repository: plan.target.path.as_str() };
        let same_registry = plan.source.registry == plan.target.registry;
        let report = copy_image(&from, &to, same_registry, &digest, &p.tags, UPLOAD_CHUNK).await.map_err(failure)?;
        let details = json!({ "promotion": p.id, "environment": p.environment, "digest": p.digest, "from": p.repository, "to": plan.target.reference(), "copy": report });
        self.audit(&Who::nova(), "release.promotion.copied", &p.component_ref, Outcome::Success, details).await.map_err(|e| WriteFailure::Transient(e.to_string()))?;
        Ok(report)
    }
}
