//! Group and user pages: membership (direct and through sub-teams), the group tree, ownership
//! claims and what each owns.

use std::collections::BTreeSet;

use askama::Template;
use axum::response::Html;
use nova_domain::{EntityKind, EntityRef, RelationType};

use super::entity::{EntityHeader, Overview};
use super::view::{Chrome, EntityLink, EntityRow};
use super::{PageError, render};
use crate::catalog::{EntityRecord, Snapshot};
use crate::config::OwnershipMode;
use crate::http::AppState;

/// A member reached through a sub-team.
struct IndirectMember {
    user: EntityLink,
    via: EntityLink,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    header: EntityHeader,
    overview: Overview,
    parent: Vec<EntityLink>,
    children: Vec<EntityLink>,
    members: Vec<EntityLink>,
    indirect: Vec<IndirectMember>,
    owns: Vec<EntityRow>,
    /// The team's credentials page (groups in the default namespace); it checks access itself.
    credentials: Option<String>,
}

/// Entities a group or user owns directly, as table rows ordered by kind, then name.
fn owned_rows(snap: &Snapshot, owner: &EntityRecord) -> Vec<EntityRow> {
    let mut owned: Vec<&EntityRecord> = owner.related(RelationType::OwnerOf).filter_map(|r| snap.get(r)).collect();
    owned.sort_by_key(|e| (EntityKind::ALL.iter().position(|k| *k == e.kind), e.entity_ref.key()));
    owned.into_iter().map(|e| EntityRow::new(snap, e)).collect()
}

/// The group page: parent, children, members (direct and via sub-teams) and what it owns.
pub fn group_page(state: &AppState, snap: &Snapshot, group: &EntityRecord, chrome: Chrome, header: EntityHeader) -> Result<Html<String>, PageError> {
    let links = |kind: RelationType| group.related(kind).map(|r| EntityLink::new(snap, r)).collect::<Vec<_>>();
    let direct: BTreeSet<&EntityRef> = group.related(RelationType::HasMember).collect();
    let mut seen_users: BTreeSet<EntityRef> = direct.iter().map(|r| (*r).clone()).collect();
    let mut seen_groups: BTreeSet<EntityRef> = BTreeSet::from([group.entity_ref.clone()]);
    let mut queue: Vec<EntityRef> = group.related(RelationType::ParentOf).cloned().collect();
    let mut indirect = Vec::new();
    let mut i = 0;
    while i < queue.len() {
        let sub = queue[i].clone();
        i += 1;
        if !seen_groups.insert(sub.clone()) {
            continue;
        }
        let Some(sub_record) = snap.get(&sub) else { continue };
        for member in sub_record.related(RelationType::HasMember) {
            if seen_users.insert(member.clone()) {
                indirect.push(IndirectMember { user: EntityLink::new(snap, member), via: EntityLink::new(snap, &sub) });
            }
        }
        queue.extend(sub_record.related(RelationType::ParentOf).cloned());
    }
    render(&GroupPage {
        chrome,
        header,
        overview: Overview::new(snap, group, &state.config.observability),
        parent: links(RelationType::ChildOf),
        children: links(RelationType::ParentOf),
        members: direct.into_iter().map(|r| EntityLink::new(snap, r)).collect(),
        indirect,
        owns: owned_rows(snap, group),
        credentials: (group.entity_ref.namespace() == "default").then(|| format!("/teams/{}/credentials", group.entity_ref.name())),
    })
}

/// One ownership claim and why the user holds it.
struct Claim {
    link: EntityLink,
    reason: &'static str,
}

/// Something the user may act on as an owner, and the claim that makes them one.
struct Owned {
    row: EntityRow,
    via: EntityLink,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    header: EntityHeader,
    overview: Overview,
    groups: Vec<EntityLink>,
    claims: Vec<Claim>,
    transitive: bool,
    owns: Vec<Owned>,
}

/// The user page: groups, ownership claims ([`Snapshot::claims`]) and what those claims own.
pub fn user_page(state: &AppState, snap: &Snapshot, user: &EntityRecord, chrome: Chrome, header: EntityHeader) -> Result<Html<String>, PageError> {
    let mode = state.config.catalog.ownership;
    let direct: BTreeSet<&EntityRef> = user.related(RelationType::MemberOf).collect();
    let claim_refs = snap.claims(&user.entity_ref, mode);
    let claims = claim_refs
        .iter()
        .map(|c| Claim {
            link: EntityLink::new(snap, c),
            reason: if *c == user.entity_ref {
                "the user"
            } else if direct.contains(c) {
                "direct member"
            } else {
                "parent of one of their groups"
            },
        })
        .collect();
    let mut owns = Vec::new();
    for claim in &claim_refs {
        let Some(owner) = snap.get(claim) else { continue };
        let via = EntityLink::new(snap, claim);
        owns.extend(owned_rows(snap, owner).into_iter().map(|row| Owned { row, via: via.clone() }));
    }
    render(&UserPage {
        chrome,
        header,
        overview: Overview::new(snap, user, &state.config.observability),
        groups: direct.into_iter().map(|r| EntityLink::new(snap, r)).collect(),
        claims,
        transitive: mode == OwnershipMode::Transitive,
        owns,
    })
}
