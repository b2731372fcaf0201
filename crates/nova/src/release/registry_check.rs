//! Before an intake report is accepted: the reported repository must be one the component
//! links (its image annotations, resolved by [`crate::registry::Registries`]), and that
//! repository must hold a manifest with the reported digest (a `HEAD` by digest on OCI
//! registries, `DescribeImages` by digest on ECR). A repository is named as CI pushes to it,
//! `<pull host>/<repository>` (`registry.example.com/shop/app`), or as the catalog and Nova's
//! builds name it, `<registry name>/<repository>`.

use nova_domain::Digest;

use crate::catalog::EntityRecord;
use crate::http::AppError;
use crate::registry::{RegistryError, RegistryService};

/// Checks that `repository` is linked by `entity` and holds `digest`; the refusal names the
/// field and what was looked for.
pub async fn verify(registry: &RegistryService, entity: &EntityRecord, repository: &str, digest: &Digest) -> Result<(), AppError> {
    let component = &entity.entity_ref;
    let links = match registry.component_links(entity) {
        Ok(Some(links)) => links,
        Ok(None) => {
            return Err(AppError::invalid(
                "repository",
                format!("{component} links no image repository (nova.dev/image-repository or amazon.com/ecr-repository-* annotations), so {repository} cannot be checked"),
            ));
        }
        Err(errors) => return Err(AppError::invalid("repository", format!("{component}'s image annotations cannot be used: {}", errors.join("; ")))),
    };
    let registries = registry.registries();
    let mut known = Vec::new();
    for link in &links.repositories {
        let Some(r) = registries.get(&link.key.registry) else { continue };
        let names = [format!("{}/{}", r.provider.pull_host(), link.key.repository), link.key.to_string()];
        if !names.iter().any(|n| n == repository) {
            known.push(names[0].clone());
            continue;
        }
        return match r.provider.has_manifest(&link.key.repository, digest).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppError::invalid("digest", format!("{repository} (registry {}) has no manifest {digest}; push the image before reporting it", r.name))),
            Err(RegistryError::NotFound(why)) => Err(AppError::invalid("repository", format!("{repository} does not exist in registry {}: {why}", r.name))),
            Err(e) => Err(AppError::Unavailable(format!("cannot check registry {} for {digest} in {repository} ({}): {e}", r.name, e.category()))),
        };
    }
    Err(AppError::invalid("repository", format!("{repository} is not a repository {component} links; it links {}", known.join(", "))))
}
