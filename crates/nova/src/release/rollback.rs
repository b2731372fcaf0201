//! Rolling back: promoting again an artifact that an environment ran before its current one.
//! Without a digest, the one deployed there just before the current artifact; with one, it
//! must have been deployed there before. The promotion itself is an ordinary one (the
//! environment's gates apply); being older than the current artifact makes it a rollback,
//! which pins the environment once done.

use nova_domain::{Digest, EntityRef};

use super::store::{Promotion, PromotionState};
use super::{PromotionRequest, Release, Who};
use crate::http::AppError;

/// How far back in an environment's history a rollback looks.
const HISTORY: i64 = 500;

impl Release {
    /// Asks for a rollback of `environment` to `digest`, or to the artifact deployed there
    /// before the current one. Refusals are audited as promotion requests.
    pub async fn rollback(&self, who: &Who, component: &EntityRef, environment: &str, digest: Option<&str>) -> Result<Promotion, AppError> {
        let digest = match self.rollback_target(component, environment, digest).await {
            Ok(d) => d,
            Err(e) => {
                let req = PromotionRequest { digest: digest.unwrap_or_default().to_string(), environment: environment.to_string(), override_path: false };
                return self.refuse(who, component, &req, e).await;
            }
        };
        let req = PromotionRequest { digest, environment: environment.to_string(), override_path: false };
        self.request(who, component, &req).await
    }

    /// The digest to roll back to; the error names the field and what was looked for.
    async fn rollback_target(&self, component: &EntityRef, environment: &str, digest: Option<&str>) -> Result<String, AppError> {
        if self.environments().get(environment).is_none() {
            return Err(AppError::invalid("environment", format!("must be one of: {}", self.environments().names())));
        }
        let target = component.to_string();
        let mut history: Vec<Promotion> =
            self.promotions().list(&target, HISTORY).await?.into_iter().filter(|p| p.environment == environment && p.state == PromotionState::Done).collect();
        history.sort_by_key(|p| std::cmp::Reverse(p.finished_at));
        let Some(current) = history.first() else {
            return Err(AppError::Conflict(format!("nothing has been deployed in {environment} for {target}, so there is nothing to roll back to")));
        };
        match digest {
            None => history.iter().find(|p| p.digest != current.digest).map(|p| p.digest.clone()).ok_or_else(|| {
                AppError::Conflict(format!("{environment} has run only {} for {target}; there is no earlier artifact to roll back to", current.digest_short()))
            }),
            Some(raw) => {
                let d = Digest::parse(raw.trim()).map_err(|e| AppError::invalid("digest", e.to_string()))?;
                if d.as_str() == current.digest {
                    return Err(AppError::Conflict(format!("{} is what {environment} runs now; roll back to an earlier artifact", current.digest_short())));
                }
                if !history.iter().any(|p| p.digest == d.as_str()) {
                    return Err(AppError::invalid("digest", format!("{d} was never deployed in {environment} for {target}; a rollback goes to an artifact it ran before (promote other artifacts instead)")));
                }
                Ok(d.to_string())
            }
        }
    }
}
