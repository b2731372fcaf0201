//! System and domain pages: a system's components, APIs and resources; a domain's systems and
//! their components and APIs.

use askama::Template;
use axum::response::Html;
use nova_domain::{EntityKind, RelationType};

use super::entity::{EntityHeader, Overview};
use super::view::{Chrome, EntityRow};
use super::{PageError, render};
use crate::catalog::{EntityRecord, Snapshot};

/// A titled table of entities.
struct Part {
    title: &'static str,
    rows: Vec<EntityRow>,
}

#[derive(Template)]
#[template(path = "system.html")]
struct SystemPage {
    chrome: Chrome,
    header: EntityHeader,
    overview: Overview,
    parts: Vec<Part>,
}

/// The parts of `parent` (its `hasPart` relations) of one kind, by name.
fn parts_of<'a>(snap: &'a Snapshot, parent: &EntityRecord, kind: EntityKind) -> Vec<&'a EntityRecord> {
    let mut out: Vec<&EntityRecord> = parent.related(RelationType::HasPart).filter_map(|r| snap.get(r)).filter(|e| e.kind == kind).collect();
    out.sort_by_key(|e| e.entity_ref.key());
    out
}

/// A system page (components, APIs, resources) or a domain page (systems, and the components
/// and APIs of those systems).
pub fn page(snap: &Snapshot, record: &EntityRecord, chrome: Chrome, header: EntityHeader, observability: &crate::config::ObservabilityConfig) -> Result<Html<String>, PageError> {
    let rows = |records: Vec<&EntityRecord>| records.into_iter().map(|e| EntityRow::new(snap, e)).collect::<Vec<_>>();
    let parts = if record.kind == EntityKind::Domain {
        let systems = parts_of(snap, record, EntityKind::System);
        let in_systems = |kind| {
            let mut all: Vec<&EntityRecord> = systems.iter().flat_map(|s| parts_of(snap, s, kind)).collect();
            all.sort_by_key(|e| e.entity_ref.key());
            all.dedup_by_key(|e| e.entity_ref.key());
            all
        };
        vec![
            Part { title: "Components", rows: rows(in_systems(EntityKind::Component)) },
            Part { title: "APIs", rows: rows(in_systems(EntityKind::Api)) },
            Part { title: "Systems", rows: rows(systems.clone()) },
        ]
    } else {
        vec![
            Part { title: "Components", rows: rows(parts_of(snap, record, EntityKind::Component)) },
            Part { title: "APIs", rows: rows(parts_of(snap, record, EntityKind::Api)) },
            Part { title: "Resources", rows: rows(parts_of(snap, record, EntityKind::Resource)) },
        ]
    };
    render(&SystemPage { chrome, header, overview: Overview::new(snap, record, observability), parts })
}
