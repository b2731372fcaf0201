//! The one place that decides what an actor may do: [`decide`]`(actor, action, target)`.
//!
//! Ownership is the model. A user's claims are their User reference, the groups they are a
//! direct member of and (by default) every ancestor of those groups, so a sub-team's members
//! act for the parent team too, while a parent team's members do not act for a sub-team. An
//! owner of a target is someone whose claims include the target's `ownedBy` group, or who is
//! its owning User. Platform admins (members of `auth.admin_group`) may do everything. Everyone
//! signed in may read; sensitive details (build logs, credential metadata, a team's audit
//! events) are for owners and admins. Anonymous callers may only read, and only when
//! `auth.anonymous_read` is on.
//!
//! Handlers call [`require`], which audits every denial.

use nova_domain::EntityRef;
use serde_json::json;

use crate::audit::{AuditEvent, Outcome};
use crate::auth::Actor;
use crate::http::error::request_id;
use crate::http::{AppError, AppState};

/// What an actor wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read catalog entities, image lists, build history.
    Read,
    /// Read what only owners see: build logs, credential metadata, a team's audit events.
    ReadSensitive,
    /// Start a build of a component.
    Build,
    /// Cancel a build.
    CancelBuild,
    /// Register, rotate or revoke a team's credentials.
    ManageCredentials,
    /// Promote an artifact, or roll back.
    Promote,
    /// Approve or reject a promotion (the approver groups are checked by the release module).
    Approve,
    /// Create and change feature flags.
    ManageFlags,
    /// Read the whole audit log.
    ReadAudit,
    /// Register and remove catalog locations.
    ManageLocations,
    /// Ask for fresh data now (re-read a catalog location, a registry): any signed-in user.
    Refresh,
    /// Anything else reserved to platform admins.
    Admin,
}

impl Action {
    /// Every action, for the policy table (docs/IDENTITY.md) and its test.
    pub const ALL: [Action; 12] = [
        Action::Read,
        Action::ReadSensitive,
        Action::Build,
        Action::CancelBuild,
        Action::ManageCredentials,
        Action::Promote,
        Action::Approve,
        Action::ManageFlags,
        Action::ReadAudit,
        Action::ManageLocations,
        Action::Refresh,
        Action::Admin,
    ];

    /// The action's name in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ReadSensitive => "read-sensitive",
            Action::Build => "build",
            Action::CancelBuild => "cancel-build",
            Action::ManageCredentials => "manage-credentials",
            Action::Promote => "promote",
            Action::Approve => "approve",
            Action::ManageFlags => "manage-flags",
            Action::ReadAudit => "read-audit",
            Action::ManageLocations => "manage-locations",
            Action::Refresh => "refresh",
            Action::Admin => "admin",
        }
    }

    fn owner_action(self) -> bool {
        matches!(self, Action::ReadSensitive | Action::Build | Action::CancelBuild | Action::ManageCredentials | Action::Promote | Action::Approve)
    }
}

/// What the action is on.
#[derive(Debug, Clone)]
pub enum Target {
    /// A catalog entity and the owner it names (`None` when it names none).
    Entity { entity: EntityRef, owner: Option<EntityRef> },
    /// A team (group): acting for it needs the group among one's claims.
    Team(EntityRef),
    /// The platform as a whole (flags, locations, the full audit log).
    Platform,
}

impl Target {
    /// The target's name in audit records.
    pub fn audit_name(&self) -> String {
        match self {
            Target::Entity { entity, .. } => entity.to_string(),
            Target::Team(g) => g.to_string(),
            Target::Platform => "platform".into(),
        }
    }

    fn owner(&self) -> Option<&EntityRef> {
        match self {
            Target::Entity { owner, .. } => owner.as_ref(),
            Target::Team(g) => Some(g),
            Target::Platform => None,
        }
    }
}

/// A decision, with the reason shown to a refused caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Not signed in (401).
    SignInRequired(String),
    /// Signed in but not allowed (403).
    Deny(String),
}

/// Decides whether `actor` may do `action` on `target`. `anonymous_read` is the
/// `auth.anonymous_read` setting.
pub fn decide(actor: &Actor, action: Action, target: &Target, anonymous_read: bool) -> Decision {
    let Some(user) = actor.user() else {
        return if action == Action::Read && anonymous_read {
            Decision::Allow
        } else {
            Decision::SignInRequired(format!("Sign in to {}.", describe(action)))
        };
    };
    if user.admin || matches!(action, Action::Read | Action::Refresh) {
        return Decision::Allow;
    }
    if action.owner_action() {
        return match target.owner() {
            Some(owner) if user.claims.contains(owner) => Decision::Allow,
            Some(owner) => Decision::Deny(format!(
                "Only members of {} (the owner of {}) and platform admins may {}; you are signed in as {}.",
                owner.short(),
                target.audit_name(),
                describe(action),
                user.entity_ref.short()
            )),
            None => Decision::Deny(format!("{} names no owner, so only platform admins may {}.", target.audit_name(), describe(action))),
        };
    }
    Decision::Deny(format!("Only platform admins may {}; you are signed in as {}.", describe(action), user.entity_ref.short()))
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Read => "read this",
        Action::ReadSensitive => "see these details",
        Action::Build => "build images of it",
        Action::CancelBuild => "cancel its builds",
        Action::ManageCredentials => "manage its credentials",
        Action::Promote => "promote it",
        Action::Approve => "approve its promotions",
        Action::ManageFlags => "change feature flags",
        Action::ReadAudit => "read the whole audit log",
        Action::ManageLocations => "change catalog locations",
        Action::Refresh => "refresh it",
        Action::Admin => "do this",
    }
}

/// Allows or refuses `action`: a refusal is audited and returned as a 401 or 403 problem
/// naming who owns the target.
pub async fn require(state: &AppState, actor: &Actor, action: Action, target: &Target) -> Result<(), AppError> {
    let (error, why) = match decide(actor, action, target, state.auth.anonymous_read) {
        Decision::Allow => return Ok(()),
        Decision::SignInRequired(m) => (AppError::Unauthorized(m.clone()), m),
        Decision::Deny(m) => (AppError::Forbidden(m.clone()), m),
    };
    record(state, actor, &format!("authz.deny.{}", action.as_str()), target.audit_name(), Outcome::Denied, json!({ "reason": why })).await?;
    Err(error)
}

/// Records an action an actor took (or tried and failed) in the audit log.
pub async fn record(state: &AppState, actor: &Actor, action: &str, target: String, outcome: Outcome, details: serde_json::Value) -> Result<(), AppError> {
    state.audit.record(event(actor, action, target, outcome, details)).await?;
    Ok(())
}

/// The audit event of an action an actor took, in this request (for `AuditLog::record_in`).
pub fn event(actor: &Actor, action: &str, target: String, outcome: Outcome, details: serde_json::Value) -> AuditEvent {
    AuditEvent { actor: actor.audit_name(), teams: actor.audit_teams(), action: action.to_string(), target, outcome, request_id: request_id(), details }
}

/// The target for a catalog entity, with its owner from the catalog.
pub fn entity_target(state: &AppState, entity: &EntityRef) -> Target {
    let snap = state.catalog.snapshot();
    let owner = snap.get(entity).and_then(|r| r.summary.owner.clone()).or_else(|| (entity.kind() == "user").then(|| entity.clone()));
    Target::Entity { entity: entity.clone(), owner }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{SignInMethod, User};

    fn r(s: &str) -> EntityRef {
        EntityRef::parse(s).unwrap()
    }

    fn user(name: &str, claims: &[&str], admin: bool) -> Actor {
        let me = r(&format!("user:{name}"));
        let mut all = vec![me.clone()];
        all.extend(claims.iter().map(|c| r(c)));
        Actor::User(User { entity_ref: me, display_name: name.into(), claims: all, method: SignInMethod::Dev, admin })
    }

    #[test]
    fn the_ownership_matrix() {
        let target = Target::Entity { entity: r("component:payment-service"), owner: Some(r("group:payments-core")) };
        let direct = user("a", &["group:payments-core", "group:payments"], false);
        let sub_team = user("b", &["group:payments-core-oncall", "group:payments-core"], false);
        let parent_only = user("c", &["group:payments"], false);
        let other = user("d", &["group:storefront"], false);
        let admin = user("e", &["group:platform"], true);
        assert_eq!(decide(&direct, Action::Build, &target, true), Decision::Allow);
        assert_eq!(decide(&sub_team, Action::Build, &target, true), Decision::Allow);
        assert!(matches!(decide(&parent_only, Action::Build, &target, true), Decision::Deny(m) if m.contains("payments-core")));
        assert!(matches!(decide(&other, Action::Build, &target, true), Decision::Deny(_)));
        assert!(matches!(decide(&Actor::Anonymous, Action::Build, &target, true), Decision::SignInRequired(_)));
        assert_eq!(decide(&admin, Action::Build, &target, true), Decision::Allow);

        // A team's credentials: its members and its sub-teams' members (whose claims include
        // the team), and admins; never another team, nor a parent team's members alone.
        let team = Target::Team(r("group:payments-core"));
        for action in [Action::ManageCredentials, Action::ReadSensitive] {
            assert_eq!(decide(&direct, action, &team, true), Decision::Allow);
            assert_eq!(decide(&sub_team, action, &team, true), Decision::Allow);
            assert_eq!(decide(&admin, action, &team, true), Decision::Allow);
            assert!(matches!(decide(&parent_only, action, &team, true), Decision::Deny(_)));
            assert!(matches!(decide(&other, action, &team, true), Decision::Deny(m) if m.contains("payments-core")));
            assert!(matches!(decide(&Actor::Anonymous, action, &team, true), Decision::SignInRequired(_)));
        }
    }

    #[test]
    fn reads_and_platform_actions() {
        let anyone = user("a", &[], false);
        assert_eq!(decide(&anyone, Action::Read, &Target::Platform, false), Decision::Allow);
        assert_eq!(decide(&Actor::Anonymous, Action::Read, &Target::Platform, true), Decision::Allow);
        assert!(matches!(decide(&Actor::Anonymous, Action::Read, &Target::Platform, false), Decision::SignInRequired(_)));
        assert!(matches!(decide(&anyone, Action::ManageFlags, &Target::Platform, true), Decision::Deny(_)));
        assert_eq!(decide(&user("x", &[], true), Action::ManageFlags, &Target::Platform, true), Decision::Allow);
        let unowned = Target::Entity { entity: r("component:orphan"), owner: None };
        assert!(matches!(decide(&anyone, Action::Build, &unowned, true), Decision::Deny(m) if m.contains("names no owner")));
        let own_user = Target::Entity { entity: r("user:a"), owner: Some(r("user:a")) };
        assert_eq!(decide(&anyone, Action::ReadSensitive, &own_user, true), Decision::Allow, "a user owns what their User entity owns");
    }
}
