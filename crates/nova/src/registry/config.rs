//! Registry settings: `[registry]` (how the image view caches and refreshes) and
//! `[registries.<name>]` (each registry, a `type`-tagged table). docs/CONFIG.md lists them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secrets::SecretRef;

/// `[registry]`: the image view's cache, refresh and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// How often each linked repository is re-read in the background.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// After a failed refresh, how long before the next attempt.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// Shortest time between two on-demand refreshes of one repository.
    #[serde(with = "humantime_serde")]
    pub min_refresh_interval: Duration,
    /// Data older than this is shown as stale even when the last refresh did not fail.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Longest time one registry call may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Largest manifest or config blob read, in bytes; larger ones are refused.
    pub max_manifest_bytes: usize,
    /// Where "Provisioned externally" repositories link to request a migration to AWS Service
    /// Catalog (`{repository}` is replaced). Empty: no link.
    pub migration_request_url: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(600),
            retry_interval: Duration::from_secs(60),
            min_refresh_interval: Duration::from_secs(30),
            stale_after: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(20),
            max_manifest_bytes: 4 * 1024 * 1024,
            migration_request_url: String::new(),
        }
    }
}

/// One registry, `[registries.<name>]`, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RegistryDef {
    /// AWS ECR through the AWS SDK.
    Ecr(EcrConfig),
    /// Any registry speaking the OCI Distribution API.
    Oci(OciConfig),
}

impl RegistryDef {
    /// Where images for this registry are pushed, `host[:port]`: an OCI registry's URL host.
    /// (ECR repositories are pushed to by their own tooling.)
    pub fn push_host(&self) -> Option<String> {
        match self {
            Self::Oci(c) => c.url.host_str().map(|h| match c.url.port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_string(),
            }),
            Self::Ecr(_) => None,
        }
    }
}

/// `type = "ecr"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcrConfig {
    /// The region, e.g. `eu-west-1`.
    pub region: String,
    /// The account whose repositories `amazon.com/ecr-repository-name` names, and that ARNs
    /// are matched against.
    pub account_id: String,
    /// A role to assume for this registry (read-only ECR permissions are enough).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Overrides the ECR endpoint (tests against moto; VPC endpoints).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Whether `amazon.com/ecr-repository-name` resolves here when several ECR registries are
    /// configured (exactly one may say so).
    #[serde(default)]
    pub default: bool,
    /// Registry calls in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
}

/// `type = "oci"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciConfig {
    /// Base URL, e.g. `https://registry.example.com` or `http://127.0.0.1:5000`.
    pub url: url::Url,
    /// User name for basic auth or the token service (not secret).
    #[serde(default)]
    pub username: Option<String>,
    /// Password or token: a reference, never the value.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Host shown in pull references, when it differs from the URL's host.
    #[serde(default)]
    pub pull_host: Option<String>,
    /// The registry's own web page for a repository (`{repository}` is replaced), e.g.
    /// `https://harbor.example.com/harbor/projects/1/repositories/{repository}`.
    #[serde(default)]
    pub console_url: Option<String>,
    /// Registry calls in flight at once.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Attempts for a call answered 429 or 5xx (with exponential backoff).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

impl OciConfig {
    /// The host in pull references: `pull_host`, or the URL's `host[:port]`.
    pub fn pull_host(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        self.pull_host.clone().unwrap_or_else(|| match self.url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        })
    }
}

fn default_concurrency() -> usize {
    8
}

fn default_attempts() -> u32 {
    4
}

/// Checks what serde cannot: names, regions, exactly one default ECR registry, limits.
pub fn validate(settings: &RegistrySettings, registries: &BTreeMap<String, RegistryDef>) -> Result<(), (String, String)> {
    let err = |key: String, m: &str| Err((key, m.to_string()));
    if settings.refresh_interval < Duration::from_secs(10) {
        return err("registry.refresh_interval".into(), "must be at least 10s");
    }
    if settings.max_manifest_bytes < 4096 {
        return err("registry.max_manifest_bytes".into(), "must be at least 4096");
    }
    let mut defaults = 0;
    for (name, def) in registries {
        let key = |field: &str| format!("registries.{name}.{field}");
        if let Err(rule) = nova_domain::image_links::check_registry_name(name) {
            return err(format!("registries.{name}"), &format!("registry name {rule}"));
        }
        match def {
            RegistryDef::Ecr(c) => {
                nova_domain::image::check_region(&c.region).or_else(|r| err(key("region"), r))?;
                nova_domain::image::check_account(&c.account_id).or_else(|r| err(key("account_id"), r))?;
                if c.max_concurrency == 0 {
                    return err(key("max_concurrency"), "must be at least 1");
                }
                defaults += usize::from(c.default);
            }
            RegistryDef::Oci(c) => {
                if !matches!(c.url.scheme(), "http" | "https") || c.url.host_str().is_none() {
                    return err(key("url"), "must be an http:// or https:// URL with a host");
                }
                if c.password.is_some() && c.username.is_none() {
                    return err(key("username"), "is required when a password is set");
                }
                if c.max_concurrency == 0 || c.max_attempts == 0 {
                    return err(key("max_concurrency"), "max_concurrency and max_attempts must be at least 1");
                }
            }
        }
    }
    if defaults > 1 {
        return err("registries".into(), "at most one ECR registry may set default = true");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        registries: BTreeMap<String, RegistryDef>,
    }

    #[test]
    fn tagged_tables_parse_and_reject_unknown_keys() {
        let t: T = toml::from_str(
            r#"
            [registries.aws-prod]
            type = "ecr"
            region = "eu-west-1"
            account_id = "123456789012"
            role_arn = "arn:aws:iam::123456789012:role/nova-read"
            [registries.harbor]
            type = "oci"
            url = "https://harbor.example.com"
            username = "robot$nova"
            password = { env = "HARBOR_TOKEN" }
            "#,
        )
        .unwrap();
        assert!(matches!(&t.registries["aws-prod"], RegistryDef::Ecr(c) if c.role_arn.is_some() && c.max_concurrency == 8));
        assert!(matches!(&t.registries["harbor"], RegistryDef::Oci(c) if c.password == Some(SecretRef::Env("HARBOR_TOKEN".into()))));
        validate(&RegistrySettings::default(), &t.registries).unwrap();
        let e = toml::from_str::<T>("[registries.x]\ntype = \"oci\"\nurl = \"http://h\"\npasword = { env = \"X\" }\n").err().unwrap().to_string();
        assert!(e.contains("pasword"), "{e}");
        // A password is a reference, never inline.
        assert!(toml::from_str::<T>("[registries.x]\ntype = \"oci\"\nurl = \"http://h\"\nusername = \"u\"\npassword = \"hunter2\"\n").is_err());
        let e = toml::from_str::<T>("[registries.x]\ntype = \"gcr\"\n").err().unwrap().to_string();
        assert!(e.contains("gcr"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let t: T = toml::from_str("[registries.x]\ntype = \"ecr\"\nregion = \"eu-west-1\"\naccount_id = \"12\"\n").unwrap();
        assert_eq!(validate(&RegistrySettings::default(), &t.registries).unwrap_err().0, "registries.x.account_id");
        let t: T = toml::from_str("[registries.Bad]\ntype = \"oci\"\nurl = \"http://h\"\n").unwrap();
        assert_eq!(validate(&RegistrySettings::default(), &t.registries).unwrap_err().0, "registries.Bad");
    }
}
