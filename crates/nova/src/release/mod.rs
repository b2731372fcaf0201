//! Release: immutable artifacts promoted by digest through ordered environments, behind gates,
//! written into GitOps repositories (docs/RELEASE.md).
//!
//! [`artifacts`] records images (from Nova's builds and, through [`intake`], external CI);
//! [`config`] reads `[environments.<name>]`; [`store`] keeps promotions, approvals and pins;
//! [`gitops`] writes the repository with `git` ([`kustomize`], [`yaml_path`] or [`helm_values`]
//! edits the file). [`Release`] is
//! the state machine: a promotion is `awaiting_approval` until its quorum, `waiting` for its
//! wait timer and the writer, `copying` when its environment keeps images in a repository of
//! its own ([`copy`]), `writing`, `verifying` when the environment checks the rollout
//! ([`verify`]), then `done` (with the commit) or `failed`; approvers may reject it, a newer
//! request supersedes it. The write runs as a leased [`WritePromotion`] job and the check as a
//! [`verify::VerifyPromotion`] job, so both resume after a restart. Every transition is audited.

pub mod argocd;
pub mod artifacts;
pub mod config;
pub mod copy;
pub mod gitops;
pub mod helm_values;
pub mod intake;
pub mod kustomize;
pub mod policy_gate;
pub mod registry_check;
mod rollback;
pub mod store;
pub mod verify;
mod yaml_edit;
pub mod yaml_path;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nova_domain::{Digest, EntityRef};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

pub use config::{EnvironmentConfig, Environments, ReleaseSettings};

use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::auth::Actor;
use crate::http::error::request_id;
use crate::http::{AppError, AppState};
use crate::jobs::{Job, JobOutcome, JobQueue, JobRunner};
use crate::registry::{RegistryDef, RegistrySettings};
use crate::secrets::SecretStore;
use crate::storage::{Db, now_ms};
use artifacts::{Artifact, ArtifactStore};
use store::{Pin, Promotion, PromotionState, PromotionStore};

/// The job that writes one promotion into its GitOps repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WritePromotion {
    pub promotion_id: String,
}

impl Job for WritePromotion {
    const KIND: &'static str = "release.write";
}

/// The recurring job that promotes new artifacts into the environment that auto-promotes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutoPromote {}

impl Job for AutoPromote {
    const KIND: &'static str = "release.auto";
}

/// How often auto-promotion looks for new artifacts.
const AUTO_EVERY: Duration = Duration::from_secs(3);

/// Who acts: a signed-in user, or Nova itself (auto-promotion).
pub struct Who {
    pub name: String,
    pub teams: Vec<String>,
    pub claims: Vec<EntityRef>,
    pub admin: bool,
}

impl Who {
    /// The signed-in user behind `actor`; anonymous callers must sign in.
    pub fn of(actor: &Actor, to: &str) -> Result<Self, AppError> {
        let user = actor.user().ok_or_else(|| AppError::Unauthorized(format!("Sign in to {to}.")))?;
        Ok(Self { name: user.entity_ref.to_string(), teams: actor.audit_teams(), claims: user.claims.clone(), admin: user.admin })
    }

    fn nova() -> Self {
        Self { name: "nova".into(), teams: Vec::new(), claims: Vec::new(), admin: false }
    }
}

/// What an owner asks for.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionRequest {
    /// The artifact's digest, `sha256:<64 hex digits>`.
    pub digest: String,
    /// The environment's name.
    pub environment: String,
    /// Platform admins only: skip the promotion-path gate (audited).
    #[serde(default)]
    pub override_path: bool,
}

/// One environment of a component: what runs there, what is on its way.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    pub name: String,
    pub order: i64,
    /// The promotion that put the current artifact there.
    pub current: Option<Promotion>,
    /// A rollback's pin: auto-promotion leaves the environment alone while it holds.
    pub pin: Option<Pin>,
    /// Promotions not finished yet, newest first.
    pub pending: Vec<Promotion>,
    pub approvals_needed: u32,
    pub approver_groups: Vec<String>,
    pub wait_seconds: u64,
    /// Whether the policy gate checks this environment's writes.
    pub policy_gate: bool,
    /// The web page of the current artifact's GitOps commit (`gitops.commit_url`).
    pub commit_url: Option<String>,
}

/// The release service over the app's database, jobs, audit log and secret store.
#[derive(Clone)]
pub struct Release {
    db: Db,
    jobs: JobQueue,
    audit: AuditLog,
    secrets: Arc<dyn SecretStore>,
    environments: Arc<Environments>,
    settings: ReleaseSettings,
    work_dir: PathBuf,
    max_attempts: u32,
    /// `[registries]`: where artifacts are copied from and to.
    registries: Arc<BTreeMap<String, RegistryDef>>,
    registry_settings: RegistrySettings,
    /// Where the copy's registry clients may follow redirects and token realms.
    outbound: crate::outbound::Outbound,
}

impl Release {
    /// The service over these parts; the error names a bad `[environments]` key.
    pub fn new(config: &crate::config::Config, db: Db, jobs: JobQueue, audit: AuditLog, secrets: Arc<dyn SecretStore>) -> anyhow::Result<Self> {
        let environments = Environments::from_config(&config.environments).map_err(|(k, m)| anyhow::anyhow!("config: {k}: {m}"))?;
        copy::check(&config.environments, &config.registries).and_then(|()| verify::check(&config.environments)).map_err(|(k, m)| anyhow::anyhow!("config: {k}: {m}"))?;
        Ok(Self {
            db,
            jobs,
            audit,
            secrets,
            environments: Arc::new(environments),
            settings: config.release.clone(),
            work_dir: config.server.data_dir.join("release"),
            max_attempts: config.jobs.max_attempts,
            registries: Arc::new(config.registries.clone()),
            registry_settings: config.registry.clone(),
            outbound: config.outbound(),
        })
    }

    /// The service for the running app.
    pub fn from_state(state: &AppState) -> Result<Self, AppError> {
        Self::new(&state.config, state.db.clone(), state.jobs.clone(), state.audit.clone(), state.secrets.clone()).map_err(AppError::Internal)
    }

    /// The environments, in order.
    pub fn environments(&self) -> &Environments {
        &self.environments
    }

    pub fn artifacts(&self) -> ArtifactStore {
        ArtifactStore::new(self.db.clone())
    }

    pub fn promotions(&self) -> PromotionStore {
        PromotionStore::new(self.db.clone())
    }

    async fn audit(&self, who: &Who, action: &str, target: &str, outcome: Outcome, details: Value) -> Result<(), AppError> {
        let event = AuditEvent { actor: who.name.clone(), teams: who.teams.clone(), action: action.into(), target: target.into(), outcome, request_id: request_id(), details };
        self.audit.record(event).await?;
        Ok(())
    }

    /// Asks for `req.digest` of `component` to be promoted to `req.environment` (the caller
    /// has been authorised). Refusals are audited and change nothing.
    pub async fn request(&self, who: &Who, component: &EntityRef, req: &PromotionRequest) -> Result<Promotion, AppError> {
        match self.create(who, component, req, false).await {
            Ok(p) => Ok(p),
            Err(e) => self.refuse(who, component, req, e).await,
        }
    }

    /// Audits a refused promotion request and answers the refusal.
    async fn refuse<T>(&self, who: &Who, component: &EntityRef, req: &PromotionRequest, e: AppError) -> Result<T, AppError> {
        let details = json!({ "environment": req.environment, "digest": req.digest, "refused": e.to_string() });
        let outcome = if matches!(e, AppError::Forbidden(_)) { Outcome::Denied } else { Outcome::Failure };
        self.audit(who, "release.promotion.request", &component.to_string(), outcome, details).await?;
        Err(e)
    }

    async fn create(&self, who: &Who, component: &EntityRef, req: &PromotionRequest, automatic: bool) -> Result<Promotion, AppError> {
        let target = component.to_string();
        let env = self.environments.get(&req.environment).ok_or_else(|| {
            let known = self.environments.names();
            AppError::invalid("environment", if known.is_empty() { "no environments are configured".to_string() } else { format!("must be one of: {known}") })
        })?;
        let digest = Digest::parse(req.digest.trim()).map_err(|e| AppError::invalid("digest", e.to_string()))?;
        let artifact = self.artifacts().by_digest(&target, digest.as_str()).await?.ok_or_else(|| AppError::invalid("digest", format!("{target} has no artifact with digest {digest}")))?;
        if req.override_path && !who.admin {
            return Err(AppError::Forbidden("Only platform admins may override the promotion path.".into()));
        }
        if !env.allows_ref(artifact.git_ref.as_deref()) {
            return Err(AppError::Conflict(format!(
                "{} may only receive artifacts built from {}; this one was built from {}",
                env.name,
                env.config.gates.refs.join(", "),
                artifact.git_ref.as_deref().unwrap_or("an unknown ref")
            )));
        }
        let promotions = self.promotions();
        let mut not_before = now_ms();
        if let Some(prev) = self.environments.previous(&env.name) {
            match promotions.deployed_at(&target, &prev.name, digest.as_str()).await? {
                Some(at) => not_before = not_before.max(at + env.config.gates.wait.unwrap_or_default().as_millis() as i64),
                None if req.override_path => {}
                None => {
                    return Err(AppError::Conflict(format!(
                        "{} has not been deployed in {}, which comes before {} (promotion path: {}); promote it there first",
                        artifact.digest_short(),
                        prev.name,
                        env.name,
                        self.environments.names()
                    )));
                }
            }
        }
        // A rollback goes back to an earlier artifact: one the environment ran before, or one
        // recorded before what it runs now (artifacts recorded in the same millisecond are
        // told apart by the first rule only).
        let rollback = match promotions.current(&target, &env.name).await? {
            Some(cur) if cur.digest != artifact.digest => {
                promotions.deployed_at(&target, &env.name, &artifact.digest).await?.is_some()
                    || self.artifacts().get(&cur.artifact_id).await?.is_some_and(|c| c.created_at > artifact.created_at)
            }
            _ => false,
        };
        let state = if env.config.gates.approvals > 0 { PromotionState::AwaitingApproval } else { PromotionState::Waiting };
        let new = store::NewPromotion {
            component_ref: &target,
            environment: &env.name,
            artifact_id: &artifact.id,
            requested_by: &who.name,
            state,
            rollback,
            automatic,
            not_before: Some(not_before),
        };
        let p = promotions.create(new).await?;
        let details = json!({ "promotion": p.id, "environment": env.name, "digest": artifact.digest, "repository": artifact.repository, "tags": artifact.tags,
            "state": state.as_str(), "rollback": rollback, "automatic": automatic, "overridePath": req.override_path });
        self.audit(who, "release.promotion.request", &target, Outcome::Success, details).await?;
        if state == PromotionState::Waiting {
            self.schedule(&p).await?;
        }
        Ok(p)
    }

    async fn schedule(&self, p: &Promotion) -> Result<(), AppError> {
        let at = p.not_before.unwrap_or_else(now_ms).max(now_ms());
        self.jobs.enqueue(&WritePromotion { promotion_id: p.id.clone() }, Some(&format!("release.write:{}", p.id)), at).await?;
        Ok(())
    }

    async fn find(&self, id: &str) -> Result<Promotion, AppError> {
        self.promotions().get(id).await?.ok_or_else(|| AppError::NotFound(format!("no promotion {id}")))
    }

    /// Why `who` may not approve (or reject) `p`, if they may not: only members of the
    /// environment's approver groups (or, without groups, owners of the component) may, and
    /// never the requester.
    pub fn refusal(&self, who: &Who, p: &Promotion, owner: Option<&EntityRef>, verb: &str) -> Option<String> {
        let Some(env) = self.environments.get(&p.environment) else { return Some(format!("Environment {} is no longer configured.", p.environment)) };
        if who.name == p.requested_by {
            Some(format!("You requested promotion {}; someone else must {verb} it.", p.id))
        } else if env.approver_groups.is_empty() {
            (!owner.is_some_and(|o| who.claims.contains(o))).then(|| format!("Only owners of {} may {verb} its promotions.", p.component_ref))
        } else {
            let groups: Vec<String> = env.approver_groups.iter().map(EntityRef::short).collect();
            (!env.approver_groups.iter().any(|g| who.claims.contains(g))).then(|| format!("Only members of {} may {verb} promotions to {}.", groups.join(" or "), env.name))
        }
    }

    async fn check_approver(&self, who: &Who, p: &Promotion, owner: Option<&EntityRef>, verb: &str) -> Result<(), AppError> {
        match self.refusal(who, p, owner, verb) {
            None => Ok(()),
            Some(why) => {
                self.audit(who, &format!("authz.deny.{verb}"), &p.component_ref, Outcome::Denied, json!({ "promotion": p.id, "reason": why })).await?;
                Err(AppError::Forbidden(why))
            }
        }
    }

    /// Adds `who`'s approval; with the quorum reached the promotion moves on to `waiting`.
    pub async fn approve(&self, who: &Who, id: &str, owner: Option<&EntityRef>) -> Result<Promotion, AppError> {
        let p = self.find(id).await?;
        self.check_approver(who, &p, owner, "approve").await?;
        if p.state != PromotionState::AwaitingApproval {
            return Err(AppError::Conflict(format!("promotion {id} is {}, not awaiting approval", p.state.as_str())));
        }
        if !self.promotions().approve(id, &who.name).await? {
            return Err(AppError::Conflict(format!("you have already approved promotion {id}")));
        }
        let p = self.find(id).await?;
        let needed = self.environments.get(&p.environment).map_or(0, |e| e.config.gates.approvals) as usize;
        self.audit(who, "release.promotion.approve", &p.component_ref, Outcome::Success, json!({ "promotion": id, "approvals": p.approvals.len(), "needed": needed })).await?;
        if p.approvals.len() >= needed && self.promotions().transition(id, PromotionState::AwaitingApproval, PromotionState::Waiting, None, None).await? {
            let approvers: Vec<&str> = p.approvals.iter().map(|a| a.approver.as_str()).collect();
            self.audit(who, "release.promotion.approved", &p.component_ref, Outcome::Success, json!({ "promotion": id, "approvers": approvers })).await?;
            self.schedule(&p).await?;
        }
        self.find(id).await
    }

    /// Rejects a promotion that is not written yet.
    pub async fn reject(&self, who: &Who, id: &str, owner: Option<&EntityRef>) -> Result<Promotion, AppError> {
        let p = self.find(id).await?;
        self.check_approver(who, &p, owner, "reject").await?;
        let reason = format!("rejected by {}", who.name);
        let moved = match p.state {
            PromotionState::AwaitingApproval | PromotionState::Waiting => self.promotions().transition(id, p.state, PromotionState::Rejected, Some(&reason), None).await?,
            _ => false,
        };
        if !moved {
            return Err(AppError::Conflict(format!("promotion {id} is {}; only promotions awaiting approval or waiting can be rejected", p.state.as_str())));
        }
        self.audit(who, "release.promotion.reject", &p.component_ref, Outcome::Success, json!({ "promotion": id })).await?;
        self.find(id).await
    }

    /// Releases a rollback's pin on an environment.
    pub async fn release_pin(&self, who: &Who, component: &EntityRef, environment: &str) -> Result<(), AppError> {
        if self.environments.get(environment).is_none() {
            return Err(AppError::invalid("environment", format!("must be one of: {}", self.environments.names())));
        }
        if !self.promotions().clear_pin(&component.to_string(), environment).await? {
            return Err(AppError::NotFound(format!("{environment} is not pinned for {component}")));
        }
        self.audit(who, "release.pin.release", &component.to_string(), Outcome::Success, json!({ "environment": environment })).await
    }

    /// Every environment of a component, in order.
    pub async fn status(&self, component: &EntityRef) -> Result<Vec<EnvironmentStatus>, AppError> {
        let target = component.to_string();
        let recent = self.promotions().list(&target, 200).await?;
        let mut out = Vec::new();
        for env in self.environments.all() {
            let g = &env.config.gates;
            let current = self.promotions().current(&target, &env.name).await?;
            out.push(EnvironmentStatus {
                name: env.name.clone(),
                order: env.config.order,
                commit_url: current.as_ref().and_then(|c| c.commit_sha.as_deref()).and_then(|sha| env.commit_link(sha)),
                policy_gate: g.policy,
                current,
                pin: self.promotions().pin(&target, &env.name).await?,
                pending: recent.iter().filter(|p| p.environment == env.name && p.state.is_pending()).cloned().collect(),
                approvals_needed: g.approvals,
                approver_groups: env.approver_groups.iter().map(ToString::to_string).collect(),
                wait_seconds: g.wait.unwrap_or_default().as_secs(),
            });
        }
        Ok(out)
    }

    /// The [`WritePromotion`] job: waits out the timer, copies the image when the environment
    /// keeps its own repository, writes, then verifies or records the outcome.
    pub async fn run_write(&self, job: WritePromotion, attempt: u32) -> Result<JobOutcome, String> {
        let e = |e: AppError| e.to_string();
        let Some(p) = self.promotions().get(&job.promotion_id).await.map_err(|e| e.to_string())? else { return Ok(JobOutcome::Done) };
        let mut state = p.state;
        match p.state {
            PromotionState::Waiting => {
                if let Some(at) = p.not_before.filter(|at| *at > now_ms()) {
                    return Ok(JobOutcome::RunAgainAt(at));
                }
                // A plan that cannot be made fails the promotion below, from `writing`.
                state = if matches!(self.copy_plan(&p), Ok(Some(_))) { PromotionState::Copying } else { PromotionState::Writing };
                if !self.promotions().transition(&p.id, PromotionState::Waiting, state, None, None).await.map_err(|e| e.to_string())? {
                    return Ok(JobOutcome::Done);
                }
                self.audit(&Who::nova(), &format!("release.promotion.{}", state.as_str()), &p.component_ref, Outcome::Success, json!({ "promotion": p.id })).await.map_err(e)?;
            }
            PromotionState::Copying | PromotionState::Writing => {} // the process that was at it stopped: again
            // Written; the process stopped before it scheduled the check.
            PromotionState::Verifying => return self.schedule_verify(&p.id).await.map(|()| JobOutcome::Done).map_err(e),
            _ => return Ok(JobOutcome::Done),
        }
        match self.copy_then_write(&p, &mut state).await {
            Ok(written) => {
                if self.begin_verify(&p, &written.commit).await.map_err(e)? {
                    return Ok(JobOutcome::Done);
                }
                self.promotions().transition(&p.id, PromotionState::Writing, PromotionState::Done, None, Some(&written.commit)).await.map_err(|e| e.to_string())?;
                self.finish(&p, &written.commit, Some(written.changed)).await.map_err(e)?;
                Ok(JobOutcome::Done)
            }
            Err(WriteFailure::Transient(reason)) if attempt < self.max_attempts => Err(reason),
            Err(WriteFailure::Transient(reason) | WriteFailure::Permanent(reason)) => {
                self.promotions().transition(&p.id, state, PromotionState::Failed, Some(&reason), None).await.map_err(|e| e.to_string())?;
                crate::telemetry::promotion_finished(&p.environment, "failed");
                self.audit(&Who::nova(), "release.promotion.failed", &p.component_ref, Outcome::Failure, json!({ "promotion": p.id, "reason": reason })).await.map_err(e)?;
                Ok(JobOutcome::Done)
            }
        }
    }

    /// The copy into the environment's repository (when it needs one), then the GitOps write
    /// naming where the image now is; `state` follows the promotion from `copying` to `writing`.
    async fn copy_then_write(&self, p: &Promotion, state: &mut PromotionState) -> Result<gitops::Written, WriteFailure> {
        let storage = |e: crate::storage::StorageError| WriteFailure::Transient(e.to_string());
        let plan = self.copy_plan(p)?;
        let repository = match &plan {
            Some(plan) => {
                self.copy(p, plan).await?;
                plan.target.reference()
            }
            // Named as a cluster pulls it: a configured registry's name becomes its pull host.
            None => copy::locate(&p.repository, &self.registries).map_or_else(|| p.repository.clone(), |l| l.reference()),
        };
        if *state == PromotionState::Copying {
            if self.promotions().transition(&p.id, PromotionState::Copying, PromotionState::Writing, None, None).await.map_err(storage)? {
                self.audit(&Who::nova(), "release.promotion.writing", &p.component_ref, Outcome::Success, json!({ "promotion": p.id })).await.map_err(|e| WriteFailure::Transient(e.to_string()))?;
            }
            *state = PromotionState::Writing;
        }
        self.promotions().set_deployed_repository(&p.id, &repository).await.map_err(storage)?;
        self.write(p, &repository).await
    }

    /// Records a promotion that is done (written, and verified when its environment checks):
    /// audited; a rollback pins the environment, an explicit promotion releases a pin.
    async fn finish(&self, p: &Promotion, commit: &str, changed: Option<bool>) -> Result<(), AppError> {
        let target = p.component_ref.as_str();
        crate::telemetry::promotion_finished(&p.environment, "done");
        self.audit(&Who::nova(), "release.promotion.done", target, Outcome::Success, json!({ "promotion": p.id, "environment": p.environment, "digest": p.digest, "commit": commit, "changed": changed })).await?;
        if p.rollback {
            self.promotions().set_pin(target, &p.environment, &p.id, &p.requested_by).await?;
            self.audit(&Who::nova(), "release.pin.set", target, Outcome::Success, json!({ "environment": p.environment, "promotion": p.id })).await?;
        } else if !p.automatic && self.promotions().clear_pin(target, &p.environment).await? {
            self.audit(&Who::nova(), "release.pin.release", target, Outcome::Success, json!({ "environment": p.environment, "promotion": p.id })).await?;
        }
        Ok(())
    }

    /// Writes `repository@digest` for `p` into its environment's GitOps repository.
    async fn write(&self, p: &Promotion, repository: &str) -> Result<gitops::Written, WriteFailure> {
        let env = self.environments.get(&p.environment).ok_or_else(|| WriteFailure::Permanent(format!("environment {} is no longer configured", p.environment)))?;
        let component = EntityRef::parse(&p.component_ref).map_err(|e| WriteFailure::Permanent(e.to_string()))?;
        let g = &env.config.gitops;
        let credential = match &g.credential {
            None => None,
            Some(r) => Some(r.resolve(&format!("environments.{}.gitops.credential", env.name), self.secrets.as_ref()).await.map_err(|e| WriteFailure::Transient(e.to_string()))?),
        };
        let approvers: Vec<&str> = p.approvals.iter().map(|a| a.approver.as_str()).collect();
        let message = format!(
            "Promote {} to {}: {}\n\nArtifact: {}@{} ({})\nPromotion: {}\nRequested-by: {}\nApproved-by: {}\n",
            component.short(),
            env.name,
            p.digest_short(),
            repository,
            p.digest,
            if p.tags.is_empty() { "no tags".to_string() } else { p.tags.join(", ") },
            p.id,
            p.requested_by,
            if approvers.is_empty() { "-".to_string() } else { approvers.join(", ") },
        );
        let gate = match env.config.gates.policy {
            true => Some(policy_gate::Gate::new(policy_gate::load(self.settings.policy.as_ref()).map_err(WriteFailure::Permanent)?)),
            false => None,
        };
        let w = gitops::GitOpsWrite {
            repository: g.repository.clone(),
            branch: g.branch.clone(),
            path: env.path_for(&component),
            target: env.write_target(p).map_err(WriteFailure::Permanent)?,
            new_name: repository.to_string(),
            digest: p.digest.clone(),
            message,
            username: g.username.clone(),
            credential,
            check: gate.as_ref().map(policy_gate::Gate::hook),
        };
        let limits = gitops::Limits { push_attempts: self.settings.push_attempts, git_timeout: self.settings.git_timeout };
        let written = gitops::write(&self.work_dir, &w, limits).await.map_err(|e| if e.permanent { WriteFailure::Permanent(e.message) } else { WriteFailure::Transient(e.message) });
        if let Some(result) = gate.as_ref().and_then(policy_gate::Gate::take) {
            self.record_policy(p, &result).await.map_err(|e| WriteFailure::Transient(e.to_string()))?;
        }
        written
    }

    /// Keeps the policy gate's result on the promotion and audits it.
    async fn record_policy(&self, p: &Promotion, result: &policy_gate::PolicyResult) -> Result<(), AppError> {
        policy_gate::record(&self.db, &p.id, result).await?;
        let outcome = if result.passed { Outcome::Success } else { Outcome::Failure };
        let blocking: Vec<&policy_gate::PolicyFinding> = result.findings.iter().filter(|f| f.mode != "audit").collect();
        let details = json!({ "promotion": p.id, "environment": p.environment, "directory": result.directory, "passed": result.passed, "blocking": blocking, "audit": result.audit_count() });
        self.audit(&Who::nova(), "release.promotion.policy", &p.component_ref, outcome, details).await
    }

    /// The [`AutoPromote`] job: promotes new artifacts into the first environment when it
    /// auto-promotes their ref, unless a rollback pinned it.
    pub async fn run_auto(&self) -> Result<JobOutcome, String> {
        let next = JobOutcome::RunAgainAt(now_ms() + AUTO_EVERY.as_millis() as i64);
        let Some(first) = self.environments.all().first().filter(|e| e.config.auto_promote.is_some()) else { return Ok(next) };
        let s = |e: crate::storage::StorageError| e.to_string();
        for artifact in self.artifacts().unchecked(50).await.map_err(s)? {
            self.auto_one(first, &artifact).await.map_err(|e| e.to_string())?;
            self.artifacts().mark_checked(&artifact.id).await.map_err(s)?;
        }
        Ok(next)
    }

    async fn auto_one(&self, env: &config::Environment, artifact: &Artifact) -> Result<(), AppError> {
        if !env.auto_promotes(artifact.git_ref.as_deref()) {
            return Ok(());
        }
        let target = artifact.component_ref.as_str();
        if let Some(pin) = self.promotions().pin(target, &env.name).await? {
            let details = json!({ "environment": env.name, "digest": artifact.digest, "pinnedBy": pin.pinned_by, "pin": pin.promotion_id });
            return self.audit(&Who::nova(), "release.promotion.auto-skipped", target, Outcome::Success, details).await;
        }
        let component = EntityRef::parse(target).map_err(|e| AppError::Internal(e.into()))?;
        let req = PromotionRequest { digest: artifact.digest.clone(), environment: env.name.clone(), override_path: false };
        if let Err(e) = self.create(&Who::nova(), &component, &req, true).await {
            self.audit(&Who::nova(), "release.promotion.request", target, Outcome::Failure, json!({ "environment": env.name, "digest": artifact.digest, "refused": e.to_string() })).await?;
        }
        Ok(())
    }
}

/// Why a write did not land.
enum WriteFailure {
    /// Worth retrying (the repository or the secret store was unreachable).
    Transient(String),
    /// Retrying cannot help (the file is missing or not a kustomization).
    Permanent(String),
}

/// Registers the release jobs and, when an environment auto-promotes, schedules auto-promotion.
/// Checks `[environments]` first.
pub async fn install(config: &crate::config::Config, db: &Db, jobs: &JobQueue, audit: &AuditLog, secrets: &Arc<dyn SecretStore>, runner: &mut JobRunner) -> anyhow::Result<()> {
    let release = Release::new(config, db.clone(), jobs.clone(), audit.clone(), secrets.clone())?;
    if release.environments.all().iter().any(|e| e.config.gates.policy) {
        policy_gate::load(config.release.policy.as_ref()).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    }
    let auto = release.environments.all().first().is_some_and(|e| e.config.auto_promote.is_some());
    let r = release.clone();
    runner.register::<WritePromotion, _, _>(move |job, meta| {
        let r = r.clone();
        async move { r.run_write(job, meta.attempt).await }
    });
    let r = release.clone();
    runner.register::<verify::VerifyPromotion, _, _>(move |job, _| {
        let r = r.clone();
        async move { r.run_verify(job).await }
    });
    runner.register::<AutoPromote, _, _>(move |_: AutoPromote, _| {
        let r = release.clone();
        async move { r.run_auto().await }
    });
    if auto {
        jobs.schedule_recurring(&AutoPromote {}, AutoPromote::KIND, now_ms()).await?;
    }
    Ok(())
}
