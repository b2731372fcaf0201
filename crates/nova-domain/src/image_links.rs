//! The catalog annotations that link a component to its image repositories, parsed once.
//!
//! | annotation | value |
//! |---|---|
//! | `amazon.com/ecr-repository-arn` | an ECR repository ARN |
//! | `aws.amazon.com/amazon-ecr-arn` | the same (the AWS Backstage plugin's spelling) |
//! | `amazon.com/ecr-repository-name` | a repository name in the default ECR registry's account and region |
//! | `nova.dev/image-repository` | `<registry name>/<repository path>` for a configured OCI registry |
//! | `nova.dev/image-tag-prefix` | the component's tag prefix in consolidated repositories |
//!
//! Each repository annotation holds one value or a comma-separated list; an entry may be
//! labelled with its environment, `dev=data-platform-dev, prod=data-platform-prod` (seed 002:
//! one consolidated repository per environment).

use std::fmt;

use crate::image::{EcrRepositoryArn, RepositoryName, TagPrefix};
use crate::names;

pub const ECR_ARN: &str = "amazon.com/ecr-repository-arn";
pub const ECR_ARN_BACKSTAGE_PLUGIN: &str = "aws.amazon.com/amazon-ecr-arn";
pub const ECR_NAME: &str = "amazon.com/ecr-repository-name";
pub const IMAGE_REPOSITORY: &str = "nova.dev/image-repository";
pub const IMAGE_TAG_PREFIX: &str = "nova.dev/image-tag-prefix";

/// Every annotation read here, in the order they are reported.
pub const ANNOTATIONS: [&str; 5] = [ECR_ARN, ECR_ARN_BACKSTAGE_PLUGIN, ECR_NAME, IMAGE_REPOSITORY, IMAGE_TAG_PREFIX];

/// Most repositories one component may link (one per environment is the common case).
pub const MAX_LINKS: usize = 16;

/// Where a linked repository lives, as the annotation says it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RepositoryLink {
    /// An ECR repository named by ARN (account and region included).
    EcrArn(EcrRepositoryArn),
    /// An ECR repository by name, in the default ECR registry's account and region.
    EcrName(RepositoryName),
    /// A repository in a registry from the configuration, by the registry's name.
    Registry { registry: String, repository: RepositoryName },
}

impl fmt::Display for RepositoryLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcrArn(a) => write!(f, "{a}"),
            Self::EcrName(n) => write!(f, "{n}"),
            Self::Registry { registry, repository } => write!(f, "{registry}/{repository}"),
        }
    }
}

/// One linked repository, with the environment label it was given, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedRepository {
    pub environment: Option<String>,
    /// The annotation it came from.
    pub annotation: &'static str,
    pub link: RepositoryLink,
}

/// A component's image links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLinks {
    pub repositories: Vec<LinkedRepository>,
    pub tag_prefix: Option<TagPrefix>,
}

/// A broken image annotation: which one, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{annotation}: {message}")]
pub struct LinkError {
    pub annotation: &'static str,
    pub message: String,
}

impl ImageLinks {
    /// Reads the image annotations through `get`. `Ok(None)` when the component has none;
    /// every broken annotation is reported.
    pub fn from_annotations<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Option<Self>, Vec<LinkError>> {
        let mut errors = Vec::new();
        let mut repositories = Vec::new();
        for annotation in [ECR_ARN, ECR_ARN_BACKSTAGE_PLUGIN, ECR_NAME, IMAGE_REPOSITORY] {
            let Some(value) = get(annotation) else { continue };
            for entry in value.split(',').map(str::trim) {
                match parse_entry(annotation, entry) {
                    Ok(r) => {
                        if !repositories.iter().any(|x: &LinkedRepository| x.link == r.link) {
                            repositories.push(r);
                        }
                    }
                    Err(message) => errors.push(LinkError { annotation, message }),
                }
            }
        }
        let tag_prefix = match get(IMAGE_TAG_PREFIX) {
            Some(p) => match TagPrefix::parse(p.trim()) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(LinkError { annotation: IMAGE_TAG_PREFIX, message: e.to_string() });
                    None
                }
            },
            None => None,
        };
        if repositories.len() > MAX_LINKS {
            errors.push(LinkError { annotation: IMAGE_REPOSITORY, message: format!("at most {MAX_LINKS} repositories per component") });
        }
        if tag_prefix.is_some() && repositories.is_empty() && errors.is_empty() {
            errors.push(LinkError { annotation: IMAGE_TAG_PREFIX, message: "names a tag prefix but no repository annotation is set".into() });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((!repositories.is_empty()).then_some(Self { repositories, tag_prefix }))
    }
}

fn parse_entry(annotation: &'static str, entry: &str) -> Result<LinkedRepository, String> {
    if entry.is_empty() {
        return Err("empty entry (a stray ',')".into());
    }
    let (environment, value) = match entry.split_once('=') {
        Some((env, v)) => {
            let env = env.trim();
            names::check_dns_label(env).map_err(|rule| format!("environment label {env:?} {rule}"))?;
            (Some(env.to_string()), v.trim())
        }
        None => (None, entry),
    };
    let link = match annotation {
        ECR_ARN | ECR_ARN_BACKSTAGE_PLUGIN => RepositoryLink::EcrArn(EcrRepositoryArn::parse(value).map_err(|e| e.to_string())?),
        ECR_NAME => RepositoryLink::EcrName(RepositoryName::parse(value).map_err(|e| e.to_string())?),
        _ => {
            let (registry, path) =
                value.split_once('/').ok_or_else(|| format!("{value:?} must be <registry name from the configuration>/<repository path>"))?;
            check_registry_name(registry).map_err(|rule| format!("registry name {registry:?} {rule}"))?;
            RepositoryLink::Registry { registry: registry.to_string(), repository: RepositoryName::parse(path).map_err(|e| e.to_string())? }
        }
    };
    Ok(LinkedRepository { environment, annotation, link })
}

/// A configured registry's name: a DNS label (lowercase letters, digits, inner '-').
pub fn check_registry_name(s: &str) -> Result<(), &'static str> {
    names::check_dns_label(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn links(pairs: &[(&str, &str)]) -> Result<Option<ImageLinks>, Vec<LinkError>> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ImageLinks::from_annotations(|k| map.get(k).map(String::as_str))
    }

    #[test]
    fn none_without_annotations() {
        assert_eq!(links(&[("backstage.io/source-location", "url:x")]).unwrap(), None);
    }

    #[test]
    fn every_spelling_parses() {
        let l = links(&[
            (ECR_ARN, "arn:aws:ecr:eu-west-1:123456789012:repository/a"),
            (ECR_ARN_BACKSTAGE_PLUGIN, "arn:aws:ecr:eu-west-1:123456789012:repository/a"),
            (ECR_NAME, "b"),
            (IMAGE_REPOSITORY, "dev=demo/data-platform-dev, prod=demo/data-platform-prod"),
            (IMAGE_TAG_PREFIX, "backend-"),
        ])
        .unwrap()
        .unwrap();
        // The plugin's spelling of the same ARN is not a second repository.
        assert_eq!(l.repositories.len(), 4);
        assert_eq!(l.repositories[2].environment.as_deref(), Some("dev"));
        assert_eq!(l.repositories[3].link.to_string(), "demo/data-platform-prod");
        assert_eq!(l.tag_prefix.unwrap().as_str(), "backend-");
    }

    #[test]
    fn every_broken_annotation_is_reported() {
        let e = links(&[
            (ECR_ARN, "arn:aws:ecr:eu-west-1:12:repository/a"),
            (IMAGE_REPOSITORY, "demo/Upper, nohost, Bad_Reg/x, demo/a/../b"),
            (IMAGE_TAG_PREFIX, "-x"),
        ])
        .unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(e.len(), 6, "{text:#?}");
        assert!(text[0].contains("12 digits"));
        assert!(text[1].contains("lowercase"));
        assert!(text[2].contains("<registry name"));
        assert!(text[3].contains("registry name \"Bad_Reg\""));
        assert!(text[4].contains("'..'"));
        assert!(text[5].starts_with(IMAGE_TAG_PREFIX));
    }

    #[test]
    fn prefix_alone_is_an_error() {
        let e = links(&[(IMAGE_TAG_PREFIX, "backend-")]).unwrap_err();
        assert!(e[0].message.contains("no repository annotation"));
    }
}
