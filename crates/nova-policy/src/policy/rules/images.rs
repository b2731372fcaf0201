//! `disallow-latest-tag` and `restrict-image-registries`: what every container runs.

use super::{Findings, containers};
use crate::policy::tree::Tree;
use crate::policy::workload::{Container, Group, Workload};

/// Both rules look at every container, init and ephemeral ones included.
const ALL_GROUPS: &[Group] = &[Group::Regular, Group::Init, Group::Ephemeral];

/// An image reference taken apart: `[registry/]repository[:tag][@digest]`.
#[derive(Debug, PartialEq, Eq)]
struct ImageRef<'a> {
    /// The registry host as written (`ghcr.io`, `host:5000`), if the reference names one.
    registry: Option<&'a str>,
    /// The repository path after the registry.
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    fn parse(image: &'a str) -> ImageRef<'a> {
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (image, None),
        };
        // A `:` after the last `/` starts the tag; one before it is a registry port.
        let last_slash = name.rfind('/').map_or(0, |at| at + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(at) => (&name[..last_slash + at], Some(&name[last_slash + at + 1..])),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        ImageRef {
            registry,
            repository,
            tag,
            digest,
        }
    }

    /// The reference with Docker Hub's implicit registry and `library/` spelled out, as
    /// a container runtime resolves it: `nginx:1.27` is `docker.io/library/nginx:1.27`.
    fn canonical(&self, image: &str) -> String {
        match self.registry {
            Some(_) => image.to_owned(),
            None if self.repository.contains('/') => format!("docker.io/{image}"),
            None => format!("docker.io/library/{image}"),
        }
    }
}

/// Whether `image` (canonical) is within `allowed`: a registry host (`ghcr.io`,
/// `host:5000`), a path prefix ending in `/`, or a repository (`docker.io/library/nginx`).
/// The entry must end where a component of the reference does, so `ghcr.io` does not allow
/// `ghcr.io.evil.example/x`, nor `host` allow `host:5000/x`.
fn is_allowed(image: &str, allowed: &str) -> bool {
    let Some(rest) = image.strip_prefix(allowed) else {
        return false;
    };
    allowed.ends_with('/')
        || rest.starts_with('/')
        || (allowed.contains('/') && (rest.is_empty() || rest.starts_with([':', '@'])))
}

/// The image of `container`, or the violation when it has none.
fn image<'t>(
    container: &Container<'_>,
    tree: &'t Tree<'_>,
    findings: &mut Findings,
) -> Option<&'t str> {
    let image = tree
        .get(container.node, "image")
        .and_then(|i| tree.text(i))
        .filter(|i| !i.trim().is_empty());
    if image.is_none() {
        findings
            .violations
            .push(format!("{} has no image", container.label()));
    }
    image
}

pub(super) fn check_tags(workload: &Workload<'_>, tree: &Tree<'_>, findings: &mut Findings) {
    for container in containers(workload, ALL_GROUPS, findings) {
        let Some(image) = image(container, tree, findings) else {
            continue;
        };
        let reference = ImageRef::parse(image);
        let problem = match (reference.tag, reference.digest) {
            (_, Some(_)) => continue,
            (None, None) => "has no tag",
            (Some("latest"), None) => "uses the latest tag",
            (Some(_), None) => continue,
        };
        findings.violations.push(format!(
            "{}: image {image:?} {problem}; pin a version or a digest",
            container.label()
        ));
    }
}

pub(super) fn check_registries(
    allowed: &[String],
    workload: &Workload<'_>,
    tree: &Tree<'_>,
    findings: &mut Findings,
) {
    for container in containers(workload, ALL_GROUPS, findings) {
        let Some(image) = image(container, tree, findings) else {
            continue;
        };
        let canonical = ImageRef::parse(image).canonical(image);
        if !allowed.iter().any(|prefix| is_allowed(&canonical, prefix)) {
            findings.violations.push(format!(
                "{}: image {image:?} is not from an allowed registry ({})",
                container.label(),
                allowed.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(image: &str) -> (Option<&str>, &str, Option<&str>, Option<&str>) {
        let r = ImageRef::parse(image);
        (r.registry, r.repository, r.tag, r.digest)
    }

    #[test]
    fn references_are_taken_apart() {
        assert_eq!(parts("nginx"), (None, "nginx", None, None));
        assert_eq!(parts("nginx:1.27"), (None, "nginx", Some("1.27"), None));
        assert_eq!(
            parts("team/app:latest"),
            (None, "team/app", Some("latest"), None)
        );
        assert_eq!(
            parts("host:5000/app"),
            (Some("host:5000"), "app", None, None)
        );
        assert_eq!(
            parts("host:5000/team/app:2"),
            (Some("host:5000"), "team/app", Some("2"), None)
        );
        assert_eq!(
            parts("localhost/app:1"),
            (Some("localhost"), "app", Some("1"), None)
        );
        assert_eq!(
            parts("ghcr.io/a/b@sha256:abc"),
            (Some("ghcr.io"), "a/b", None, Some("sha256:abc"))
        );
        assert_eq!(
            parts("app:latest@sha256:abc"),
            (None, "app", Some("latest"), Some("sha256:abc"))
        );
    }

    #[test]
    fn canonical_references_spell_out_docker_hub() {
        let canonical = |image| ImageRef::parse(image).canonical(image);
        assert_eq!(canonical("nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(canonical("team/app"), "docker.io/team/app");
        assert_eq!(canonical("ghcr.io/a/b"), "ghcr.io/a/b");
    }

    #[test]
    fn allowed_entries_end_at_a_component_boundary() {
        assert!(is_allowed("ghcr.io/acme/app:1", "ghcr.io"));
        assert!(is_allowed("ghcr.io/acme/app:1", "ghcr.io/acme/"));
        assert!(is_allowed("ghcr.io/acme/app:1", "ghcr.io/acme/app"));
        assert!(is_allowed(
            "docker.io/library/nginx@sha256:1",
            "docker.io/library/nginx"
        ));
        assert!(is_allowed("host:5000/app", "host:5000"));
        assert!(!is_allowed("ghcr.io.evil.example/app", "ghcr.io"));
        assert!(!is_allowed("host:5000/app", "host"));
        assert!(!is_allowed("ghcr.io/acme-evil/app", "ghcr.io/acme"));
        assert!(!is_allowed("ghcr.io/acme/application", "ghcr.io/acme/app"));
    }
}
