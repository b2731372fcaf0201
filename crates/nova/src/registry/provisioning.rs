//! Where a repository came from (seed 000 §7): AWS Service Catalog marks what it provisions
//! with `aws:servicecatalog:*` tags; anything else was "provisioned externally". Reading this
//! never fails a page: unreadable tags say so.

use serde::Serialize;

use super::provider::RepositoryInfo;

pub const PROVISIONED_PRODUCT_ARN: &str = "aws:servicecatalog:provisionedProductArn";
pub const PRODUCT_ARN: &str = "aws:servicecatalog:productArn";
pub const PORTFOLIO_ARN: &str = "aws:servicecatalog:portfolioArn";

/// A repository's provisioning origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", tag = "origin")]
pub enum Provisioning {
    /// Provisioned by AWS Service Catalog.
    #[serde(rename_all = "camelCase")]
    ServiceCatalog {
        provisioned_product_arn: String,
        /// The provisioned product's id (`pp-...`).
        provisioned_product_id: Option<String>,
        product_arn: Option<String>,
        portfolio_arn: Option<String>,
        /// The provisioned product in the AWS console.
        link: Option<String>,
    },
    /// Not provisioned by Service Catalog.
    #[serde(rename_all = "camelCase")]
    External {
        /// Where to ask for a migration (`registry.migration_request_url`).
        migration_request_url: Option<String>,
    },
    /// The repository's tags could not be read.
    Unknown { reason: String },
}

/// The provisioning origin from a repository's facts; `migration_template` is
/// `registry.migration_request_url` (`{repository}` replaced).
pub fn provisioning(info: &RepositoryInfo, repository: &str, migration_template: &str) -> Provisioning {
    let Some(tags) = &info.tags else {
        if let Some(reason) = &info.tags_error {
            return Provisioning::Unknown { reason: reason.clone() };
        }
        return external(repository, migration_template);
    };
    let Some(pp) = tags.get(PROVISIONED_PRODUCT_ARN).filter(|v| !v.is_empty()) else { return external(repository, migration_template) };
    // arn:aws:servicecatalog:<region>:<account>:stack/<product name>/<pp-id>
    let parts: Vec<&str> = pp.split(':').collect();
    let region = parts.get(3).filter(|r| nova_domain::image::check_region(r).is_ok());
    let id = pp.rsplit('/').next().filter(|id| id.starts_with("pp-")).map(str::to_string);
    let link = match (region, &id) {
        (Some(r), Some(id)) => Some(format!("https://{r}.console.aws.amazon.com/servicecatalog/home?region={r}#/provisioned-products/{id}")),
        _ => None,
    };
    Provisioning::ServiceCatalog {
        provisioned_product_arn: pp.clone(),
        provisioned_product_id: id,
        product_arn: tags.get(PRODUCT_ARN).cloned(),
        portfolio_arn: tags.get(PORTFOLIO_ARN).cloned(),
        link,
    }
}

fn external(repository: &str, template: &str) -> Provisioning {
    let url = (!template.is_empty()).then(|| template.replace("{repository}", &percent_encoding::utf8_percent_encode(repository, percent_encoding::NON_ALPHANUMERIC).to_string()));
    Provisioning::External { migration_request_url: url }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(tags: &[(&str, &str)]) -> RepositoryInfo {
        RepositoryInfo { tags: Some(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()), ..Default::default() }
    }

    #[test]
    fn service_catalog_tags_give_the_product_and_a_link() {
        let p = provisioning(
            &info(&[
                (PROVISIONED_PRODUCT_ARN, "arn:aws:servicecatalog:eu-west-1:123456789012:stack/ecr-repository/pp-abc123"),
                (PRODUCT_ARN, "arn:aws:catalog:eu-west-1:123456789012:product/prod-x"),
            ]),
            "payments/api",
            "",
        );
        let Provisioning::ServiceCatalog { provisioned_product_id, link, product_arn, portfolio_arn, .. } = p else { panic!("{p:?}") };
        assert_eq!(provisioned_product_id.as_deref(), Some("pp-abc123"));
        assert_eq!(link.unwrap(), "https://eu-west-1.console.aws.amazon.com/servicecatalog/home?region=eu-west-1#/provisioned-products/pp-abc123");
        assert!(product_arn.is_some() && portfolio_arn.is_none());
    }

    #[test]
    fn otherwise_external_with_the_migration_link_or_unknown() {
        let p = provisioning(&info(&[("team", "x")]), "payments/api", "https://jira.example.com/create?summary=Migrate+{repository}");
        assert_eq!(p, Provisioning::External { migration_request_url: Some("https://jira.example.com/create?summary=Migrate+payments%2Fapi".into()) });
        assert_eq!(provisioning(&RepositoryInfo::default(), "x", ""), Provisioning::External { migration_request_url: None });
        let unreadable = RepositoryInfo { tags_error: Some("AccessDeniedException: no".into()), ..Default::default() };
        assert!(matches!(provisioning(&unreadable, "x", ""), Provisioning::Unknown { .. }));
    }
}
