//! What console pages share: the page chrome (header, banner, search, who is signed in), links
//! to entities, and table rows for lists of entities.

use nova_domain::EntityRef;

use crate::auth::Actor;
use crate::catalog::{EntityRecord, Snapshot};
use crate::http::AppState;

/// The part of the page around the content.
pub struct Chrome {
    pub title: String,
    pub demo: bool,
    /// The signed-in user's display name and page.
    pub user: Option<(String, String)>,
    /// Whether to offer the sign-in link.
    pub sign_in: bool,
    /// Current catalog errors, shown next to the link to them.
    pub errors: usize,
    /// The search box's text.
    pub search: String,
    /// Which navigation entry is current: `catalog`, `errors`, `locations`, `flags`, `audit`,
    /// `tokens`, `sign-in` or ``.
    pub section: &'static str,
}

impl Chrome {
    /// The chrome for a page of `section`.
    pub fn new(state: &AppState, actor: &Actor, title: impl Into<String>, section: &'static str) -> Self {
        Self {
            title: title.into(),
            demo: state.config.server.demo,
            user: actor.user().map(|u| (u.display_name.clone(), entity_href(&u.entity_ref))),
            sign_in: state.auth.dev_sign_in().is_ok(),
            errors: state.catalog.snapshot().errors.len(),
            search: String::new(),
            section,
        }
    }

    /// The chrome of an error page, which knows nothing about the request.
    pub fn bare(title: &str) -> Self {
        Self { title: title.to_string(), demo: false, user: None, sign_in: false, errors: 0, search: String::new(), section: "" }
    }
}

/// The console page of an entity: `/catalog/{namespace}/{kind}/{name}`.
pub fn entity_href(r: &EntityRef) -> String {
    format!("/catalog/{}/{}/{}", r.namespace(), r.kind(), r.name())
}

/// A link to an entity, or its reference as text when the catalog does not have it.
#[derive(Debug, Clone)]
pub struct EntityLink {
    pub href: Option<String>,
    pub text: String,
    /// The full reference (shown as a tooltip and in lists).
    pub reference: String,
}

impl EntityLink {
    /// A link to `r`, named by its title or display name when the catalog has it.
    pub fn new(snap: &Snapshot, r: &EntityRef) -> Self {
        match snap.get(r) {
            Some(record) => Self { href: Some(entity_href(&record.entity_ref)), text: display_name(record), reference: record.entity_ref.to_string() },
            None => Self { href: None, text: r.short(), reference: r.to_string() },
        }
    }
}

/// Title, else a User's or Group's profile display name, else the name.
pub fn display_name(record: &EntityRecord) -> String {
    record.display_name().to_string()
}

/// One entity in a table of entities.
pub struct EntityRow {
    pub link: EntityLink,
    pub kind: &'static str,
    pub spec_type: String,
    pub lifecycle: String,
    pub owner: Option<EntityLink>,
    pub system: Option<EntityLink>,
    pub description: String,
    pub tags: Vec<String>,
}

/// Longest description shown in a table cell.
const DESCRIPTION_CHARS: usize = 160;

impl EntityRow {
    pub fn new(snap: &Snapshot, e: &EntityRecord) -> Self {
        let s = &e.summary;
        let mut description: String = s.description.as_deref().unwrap_or_default().chars().take(DESCRIPTION_CHARS).collect();
        if s.description.as_ref().is_some_and(|d| d.chars().count() > DESCRIPTION_CHARS) {
            description.push('…');
        }
        Self {
            link: EntityLink::new(snap, &e.entity_ref),
            kind: e.kind.as_str(),
            spec_type: s.spec_type.clone().unwrap_or_default(),
            lifecycle: s.lifecycle.clone().unwrap_or_default(),
            owner: s.owner.as_ref().map(|o| EntityLink::new(snap, o)),
            system: s.system.as_ref().map(|o| EntityLink::new(snap, o)),
            description,
            tags: s.tags.clone(),
        }
    }
}

/// An external link from catalog data, only when it is `http(s)` or `mailto` (never
/// `javascript:` and friends).
pub fn safe_href(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")).then(|| url.to_string())
}

/// A time stored as Unix milliseconds, as `2026-11-24 09:30:12 UTC`.
pub fn time_text(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "never".into() };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_and_mail_links_are_links() {
        assert!(safe_href("https://grafana.example.com/d/x").is_some());
        assert!(safe_href("mailto:team@example.com").is_some());
        assert!(safe_href("javascript:alert(1)").is_none());
        assert!(safe_href(" JavaScript:alert(1)").is_none());
        assert!(safe_href("data:text/html,x").is_none());
        assert_eq!(time_text(Some(0)), "1970-01-01 00:00:00 UTC");
    }
}
