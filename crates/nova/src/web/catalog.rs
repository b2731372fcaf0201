//! The catalog list: full-text search, facets (kind, type, owner, system, lifecycle, tag) with
//! counts, sorting and paging, all in the URL so that a view can be shared as a link. Answered
//! by the catalog's query engine ([`crate::catalog::query`]).

use askama::Template;
use axum::extract::State;
use axum::response::Html;
use nova_domain::EntityRef;

use super::view::{Chrome, EntityLink, EntityRow};
use super::{PageError, render};
use crate::auth::Actor;
use crate::catalog::Snapshot;
use crate::catalog::query::{Condition, Direction, Filter, OrderField, QuerySpec, facet};
use crate::http::AppState;
use crate::http::params::Params;

/// Rows per page.
pub const PAGE_SIZE: usize = 25;
/// Facet values shown per facet (selected values are always shown).
const FACET_VALUES: usize = 12;

/// A filterable field: its URL parameter, label and search key.
struct FacetDef {
    param: &'static str,
    label: &'static str,
    key: &'static str,
    /// For relation facets: the kind of entity the values name (`owner=payments-core` is
    /// `group:default/payments-core`); only values of that kind are offered.
    ref_kind: Option<&'static str>,
}

const FACETS: [FacetDef; 6] = [
    FacetDef { param: "kind", label: "Kind", key: "kind", ref_kind: None },
    FacetDef { param: "type", label: "Type", key: "spec.type", ref_kind: None },
    FacetDef { param: "owner", label: "Owner", key: "relations.ownedby", ref_kind: Some("group") },
    FacetDef { param: "system", label: "System", key: "relations.partof", ref_kind: Some("system") },
    FacetDef { param: "lifecycle", label: "Lifecycle", key: "spec.lifecycle", ref_kind: None },
    FacetDef { param: "tag", label: "Tag", key: "metadata.tags", ref_kind: None },
];

/// Sort orders, in the order of the table's columns: URL value, label, search key.
const SORTS: [(&str, &str, &str); 5] = [
    ("name", "Name", "metadata.name"),
    ("kind", "Kind", "kind"),
    ("type", "Type", "spec.type"),
    ("owner", "Owner", "relations.ownedby"),
    ("lifecycle", "Lifecycle", "spec.lifecycle"),
];

/// The view the URL asks for.
#[derive(Debug, Clone, Default)]
struct View {
    q: String,
    /// Selected values per facet, in [`FACETS`] order, as written in the URL.
    selected: Vec<Vec<String>>,
    /// A key of [`SORTS`], `-` first for descending.
    sort: String,
    page: usize,
}

impl View {
    fn from_params(params: &Params) -> Self {
        let selected = FACETS
            .iter()
            .map(|f| {
                let mut values: Vec<String> = params.all(f.param).map(str::trim).filter(|v| !v.is_empty()).map(|v| normalize(f, v)).collect();
                values.dedup();
                values
            })
            .collect();
        let sort = params.get("sort").filter(|s| SORTS.iter().any(|(k, _, _)| *k == s.trim_start_matches('-'))).unwrap_or("name").to_string();
        let page = params.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
        Self { q: params.get("q").unwrap_or_default().trim().to_string(), selected, sort, page }
    }

    /// The URL of this view.
    fn href(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            s.append_pair("q", &self.q);
        }
        for (f, values) in FACETS.iter().zip(&self.selected) {
            for v in values {
                s.append_pair(f.param, v);
            }
        }
        if self.sort != "name" {
            s.append_pair("sort", &self.sort);
        }
        if self.page > 1 {
            s.append_pair("page", &self.page.to_string());
        }
        let query = s.finish();
        if query.is_empty() { "/catalog".into() } else { format!("/catalog?{query}") }
    }

    fn with(&self, change: impl FnOnce(&mut View)) -> String {
        let mut v = self.clone();
        v.page = 1;
        change(&mut v);
        v.href()
    }

    /// Conditions of every facet but `skip` (so a facet's counts show what choosing another of
    /// its values would give).
    fn spec(&self, skip: Option<usize>) -> QuerySpec {
        let conditions: Vec<Condition> = FACETS
            .iter()
            .zip(&self.selected)
            .enumerate()
            .filter(|(i, (_, values))| Some(*i) != skip && !values.is_empty())
            .map(|(_, (f, values))| Condition { key: f.key.into(), values: values.iter().map(|v| v.to_lowercase()).collect() })
            .collect();
        let filter = if conditions.is_empty() { Filter::default() } else { Filter(vec![conditions]) };
        QuerySpec { filter, order: None, text: Some(self.q.clone()).filter(|q| !q.is_empty()), text_fields: Vec::new() }
    }
}

/// Relation facets accept short references (`owner=payments-core`) and use full ones.
fn normalize(f: &FacetDef, value: &str) -> String {
    match f.ref_kind {
        Some(kind) => EntityRef::parse_with(value, Some(kind), "default").map(|r| r.to_string()).unwrap_or_else(|_| value.to_string()),
        None => value.to_string(),
    }
}

struct FacetValue {
    text: String,
    count: usize,
    selected: bool,
    /// The URL with this value toggled.
    href: String,
}

struct FacetView {
    param: &'static str,
    label: &'static str,
    values: Vec<FacetValue>,
    /// How many values were not shown.
    hidden: usize,
}

struct SortLink {
    label: &'static str,
    href: String,
    /// `ascending`, `descending` or `none`, for `aria-sort`.
    state: &'static str,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    chrome: Chrome,
    q: String,
    /// Hidden inputs that keep the facets when the search form is sent.
    keep: Vec<(&'static str, String)>,
    facets: Vec<FacetView>,
    sorts: Vec<SortLink>,
    rows: Vec<EntityRow>,
    total: usize,
    first: usize,
    last: usize,
    prev: Option<String>,
    next: Option<String>,
    page: usize,
    pages: usize,
    clear: Option<String>,
}

/// `GET /` and `GET /catalog`.
pub async fn list(State(state): State<AppState>, actor: Actor, params: Params) -> Result<Html<String>, PageError> {
    let snap = state.catalog.snapshot();
    let view = View::from_params(&params);
    let facets = FACETS.iter().enumerate().map(|(i, f)| facet_view(&snap, &view, i, f)).collect();
    let (field, direction) = match view.sort.strip_prefix('-') {
        Some(k) => (k, Direction::Desc),
        None => (view.sort.as_str(), Direction::Asc),
    };
    let key = SORTS.iter().find(|(k, _, _)| *k == field).map(|(_, _, key)| *key).unwrap_or("metadata.name");
    let spec = QuerySpec { order: Some(OrderField { field: key.into(), order: direction }), ..view.spec(None) };
    let offset = (view.page - 1) * PAGE_SIZE;
    let page = spec.page(&snap, offset, PAGE_SIZE);
    let pages = page.total.div_ceil(PAGE_SIZE).max(1);
    let sorts = SORTS
        .iter()
        .map(|(k, label, _)| {
            let state = if *k == field { if direction == Direction::Asc { "ascending" } else { "descending" } } else { "none" };
            let next = if state == "ascending" { format!("-{k}") } else { k.to_string() };
            SortLink { label, href: view.with(|v| v.sort = next), state }
        })
        .collect();
    let mut keep: Vec<(&'static str, String)> = FACETS.iter().zip(&view.selected).flat_map(|(f, vs)| vs.iter().map(move |v| (f.param, v.clone()))).collect();
    if view.sort != "name" {
        keep.push(("sort", view.sort.clone()));
    }
    let filtered = !view.q.is_empty() || view.selected.iter().any(|v| !v.is_empty());
    let mut chrome = Chrome::new(&state, &actor, "Catalog", "catalog");
    chrome.search = view.q.clone();
    let rows: Vec<EntityRow> = page.items.iter().map(|e| EntityRow::new(&snap, e)).collect();
    render(&CatalogPage {
        chrome,
        q: view.q.clone(),
        keep,
        facets,
        sorts,
        first: if rows.is_empty() { 0 } else { offset + 1 },
        last: offset + rows.len(),
        rows,
        total: page.total,
        prev: (view.page > 1).then(|| View { page: view.page - 1, ..view.clone() }.href()),
        next: page.next.is_some().then(|| View { page: view.page + 1, ..view.clone() }.href()),
        page: view.page,
        pages,
        clear: filtered.then(|| "/catalog".to_string()),
    })
}

fn facet_view(snap: &Snapshot, view: &View, index: usize, f: &FacetDef) -> FacetView {
    let matching = view.spec(Some(index)).run(snap);
    let selected = &view.selected[index];
    let mut counts = facet(snap, f.key, Some(&matching));
    if let Some(kind) = f.ref_kind {
        let prefix = format!("{kind}:");
        counts.retain(|c| c.value.to_ascii_lowercase().starts_with(&prefix));
    }
    let is_selected = |value: &str| selected.iter().any(|s| s.eq_ignore_ascii_case(value));
    let total = counts.len();
    let mut shown: Vec<_> = counts.iter().enumerate().filter(|(i, c)| *i < FACET_VALUES || is_selected(&c.value)).map(|(_, c)| c).collect();
    // Selected values with no matches still appear, so they can be removed.
    let missing: Vec<crate::catalog::query::FacetCount> = selected
        .iter()
        .filter(|s| !counts.iter().any(|c| c.value.eq_ignore_ascii_case(s)))
        .map(|s| crate::catalog::query::FacetCount { value: s.clone(), count: 0 })
        .collect();
    shown.extend(missing.iter());
    let hidden = total.saturating_sub(shown.len() - missing.len());
    let values = shown
        .into_iter()
        .map(|c| {
            let on = is_selected(&c.value);
            let value = c.value.clone();
            let href = view.with(|v| {
                let list = &mut v.selected[index];
                if on {
                    list.retain(|s| !s.eq_ignore_ascii_case(&value));
                } else {
                    list.push(value.clone());
                }
            });
            let text = match f.ref_kind {
                Some(_) => EntityRef::parse(&c.value).map(|r| EntityLink::new(snap, &r).text).unwrap_or_else(|_| c.value.clone()),
                None => c.value.clone(),
            };
            FacetValue { text, count: c.count, selected: on, href }
        })
        .collect();
    FacetView { param: f.param, label: f.label, values, hidden }
}
