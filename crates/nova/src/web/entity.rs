//! Entity pages: `/catalog/{namespace}/{kind}/{name}[/{tab}]`. Components have tabs
//! ([`COMPONENT_TABS`]); groups and users are drawn by `org.rs`, systems and domains by
//! `system.rs`, and every other kind by the generic page here. What all of them share — the
//! header and the overview (about, links, relations) — is built here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Html;
use nova_domain::{EntityKind, EntityRef, RelationType};
use serde_json::Value;

use super::view::{Chrome, EntityLink, display_name, safe_href};
use super::{PageError, org, render, system};
use crate::auth::Actor;
use crate::catalog::{EntityRecord, Snapshot};
use crate::http::params::Params;
use crate::http::{AppError, AppState};

/// What a component tab is given.
pub struct TabContext {
    pub state: AppState,
    pub actor: Actor,
    pub snap: Arc<Snapshot>,
    pub entity: EntityRef,
    /// The page's query string (tabs with filters read theirs from it).
    pub params: Params,
}

/// A tab's rendered panel (HTML from its own askama template, so already escaped).
pub type TabFuture = Pin<Box<dyn Future<Output = Result<String, PageError>> + Send>>;

/// One tab of the component page.
pub struct Tab {
    /// The last segment of the tab's URL.
    pub slug: &'static str,
    pub label: &'static str,
    pub render: fn(TabContext) -> TabFuture,
}

/// The component page's tabs, in order; the first is the default. Adding a tab is one line here
/// plus its render function (the Images, Builds and Deployments issues add theirs).
pub const COMPONENT_TABS: &[Tab] = &[
    Tab { slug: "overview", label: "Overview", render: overview_tab },
    Tab { slug: "images", label: "Images", render: super::images::images_tab },
    Tab { slug: "builds", label: "Builds", render: super::builds::builds_tab },
    Tab { slug: "deployments", label: "Deployments", render: super::deployments::deployments_tab },
];

/// `GET /catalog/{namespace}/{kind}/{name}`.
pub async fn overview(State(state): State<AppState>, actor: Actor, Path((namespace, kind, name)): Path<(String, String, String)>, params: Params) -> Result<Html<String>, PageError> {
    entity_page(state, actor, &namespace, &kind, &name, None, params).await
}

/// `GET /catalog/{namespace}/{kind}/{name}/{tab}`.
pub async fn tab(
    State(state): State<AppState>,
    actor: Actor,
    Path((namespace, kind, name, tab)): Path<(String, String, String, String)>,
    params: Params,
) -> Result<Html<String>, PageError> {
    entity_page(state, actor, &namespace, &kind, &name, Some(&tab), params).await
}

async fn entity_page(state: AppState, actor: Actor, namespace: &str, kind: &str, name: &str, tab: Option<&str>, params: Params) -> Result<Html<String>, PageError> {
    let not_found = || AppError::NotFound(format!("There is no {kind} named {name} in namespace {namespace} in the catalog."));
    let entity_ref = EntityRef::parse(&format!("{kind}:{namespace}/{name}")).map_err(|_| not_found())?;
    let snap = state.catalog.snapshot();
    let record = snap.get(&entity_ref).ok_or_else(not_found)?;
    if tab.is_some() && record.kind != EntityKind::Component {
        return Err(not_found().into());
    }
    let chrome = Chrome::new(&state, &actor, display_name(record), "catalog");
    let header = EntityHeader::new(record, &actor);
    match record.kind {
        EntityKind::Component => component_page(state, actor, snap.clone(), record.entity_ref.clone(), chrome, header, tab, params).await,
        EntityKind::Group => org::group_page(&state, &snap, record, chrome, header),
        EntityKind::User => org::user_page(&state, &snap, record, chrome, header),
        EntityKind::System | EntityKind::Domain => system::page(&snap, record, chrome, header, &state.config.observability),
        _ => render(&GenericPage { chrome, header, overview: Overview::new(&snap, record, &state.config.observability) }),
    }
}

/// The top of every entity page.
pub struct EntityHeader {
    pub kind: &'static str,
    pub title: String,
    pub reference: String,
    pub tags: Vec<String>,
    /// Set when the signed-in user holds the owner's claim: the owner's name.
    pub yours: Option<String>,
}

impl EntityHeader {
    pub fn new(record: &EntityRecord, actor: &Actor) -> Self {
        let yours = record.summary.owner.as_ref().filter(|o| actor.holds_claim(o)).map(|o| o.short());
        Self { kind: record.kind.as_str(), title: display_name(record), reference: record.entity_ref.to_string(), tags: record.summary.tags.clone(), yours }
    }
}

/// One line of an entity's "About" list: text, a link to an entity, or an external link.
pub struct AboutRow {
    pub label: &'static str,
    pub text: String,
    pub entity: Option<EntityLink>,
    pub href: Option<String>,
}

impl AboutRow {
    fn text(label: &'static str, text: impl Into<String>) -> Self {
        Self { label, text: text.into(), entity: None, href: None }
    }

    fn entity(label: &'static str, snap: &Snapshot, r: &EntityRef) -> Self {
        Self { label, text: String::new(), entity: Some(EntityLink::new(snap, r)), href: None }
    }
}

/// An external link: metadata.links, observability deep links, the source repository.
pub struct ExternalLink {
    pub text: String,
    /// `None` when the URL is not http(s)/mailto: it is shown as text, never as a link.
    pub href: Option<String>,
    pub url: String,
    /// Shown beside the link, e.g. placeholders that could not be filled in.
    pub note: Option<String>,
}

impl ExternalLink {
    fn new(text: impl Into<String>, url: &str) -> Self {
        Self { text: text.into(), href: safe_href(url), url: url.to_string(), note: None }
    }
}

/// A named list of related entities.
pub struct RelationGroup {
    pub label: &'static str,
    pub links: Vec<EntityLink>,
}

/// What the overview shows: description, about, links, relations.
pub struct Overview {
    pub description: String,
    pub about: Vec<AboutRow>,
    pub links: Vec<ExternalLink>,
    pub relations: Vec<RelationGroup>,
}

/// The relations each kind's overview lists (groups, users, systems and domains have sections
/// of their own).
fn relation_sections(kind: EntityKind) -> &'static [(RelationType, &'static str)] {
    use RelationType::*;
    match kind {
        EntityKind::Component => &[
            (DependsOn, "Depends on"),
            (DependencyOf, "Dependency of"),
            (ProvidesApi, "Provides APIs"),
            (ConsumesApi, "Consumes APIs"),
            (HasPart, "Subcomponents"),
        ],
        EntityKind::Api => &[(ApiProvidedBy, "Provided by"), (ApiConsumedBy, "Consumed by")],
        EntityKind::Resource => &[(DependsOn, "Depends on"), (DependencyOf, "Dependency of")],
        _ => &[],
    }
}

/// The annotations that hold observability deep links, with their labels.
pub const OBSERVABILITY_ANNOTATIONS: [(&str, &str); 2] = [("grafana.io/loki-query-url", "Logs (Grafana Loki)"), ("grafana.io/dashboard-url", "Dashboard (Grafana)")];

/// An observability annotation's link for one entity: the URL with its placeholders filled,
/// and the placeholders that could not be, each with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservabilityLink {
    pub url: String,
    pub unfilled: Vec<String>,
}

/// Fills the `${...}` placeholders of an observability annotation for `entity`:
/// `${BASE_DOMAIN}` from `observability.base_domain`, `${NAMESPACE}` from the entity's
/// `backstage.io/kubernetes-namespace` (else `observability.default_namespace`) and
/// `${APP_NAME}` from its name. Values are percent-encoded. A placeholder that is unknown or
/// has no value is left as written and reported, so the page shows what is missing.
pub fn observability_link(template: &str, entity: &EntityRecord, config: &crate::config::ObservabilityConfig) -> ObservabilityLink {
    let value = entity.value();
    let namespace = value["metadata"]["annotations"]["backstage.io/kubernetes-namespace"].as_str().map(str::to_string).or_else(|| config.default_namespace.clone());
    let mut url = String::new();
    let mut unfilled = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        url.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else { break };
        let placeholder = &rest[start..start + len + 1];
        let filled = match &placeholder[2..placeholder.len() - 1] {
            "BASE_DOMAIN" => config.base_domain.clone().ok_or("observability.base_domain is not set"),
            "NAMESPACE" => namespace.clone().ok_or("no backstage.io/kubernetes-namespace annotation and no observability.default_namespace"),
            "APP_NAME" => Ok(value["metadata"]["name"].as_str().unwrap_or(entity.entity_ref.name()).to_string()),
            _ => Err("unknown placeholder (known: BASE_DOMAIN, NAMESPACE, APP_NAME)"),
        };
        match filled {
            Ok(v) => url.push_str(&percent_encoding::utf8_percent_encode(&v, URL_VALUE).to_string()),
            Err(why) => {
                url.push_str(placeholder);
                unfilled.push(format!("{placeholder}: {why}"));
            }
        }
        rest = &rest[start + len + 1..];
    }
    url.push_str(rest);
    ObservabilityLink { url, unfilled }
}

/// What is percent-encoded in a filled-in value: everything but unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

impl Overview {
    /// The overview of `record`; `observability` fills the placeholders of Grafana links.
    pub fn new(snap: &Snapshot, record: &EntityRecord, observability: &crate::config::ObservabilityConfig) -> Self {
        let value = record.value();
        let spec = &value["spec"];
        let s = &record.summary;
        let mut about = Vec::new();
        if let Some(owner) = &s.owner {
            about.push(AboutRow::entity("Owner", snap, owner));
        }
        if let Some(system) = &s.system {
            about.push(AboutRow::entity("System", snap, system));
        }
        if record.kind == EntityKind::System
            && let Some(domain) = record.related(RelationType::PartOf).find(|r| r.kind() == "domain")
        {
            about.push(AboutRow::entity("Domain", snap, domain));
        }
        if let Some(t) = &s.spec_type {
            about.push(AboutRow::text("Type", t));
        }
        if let Some(l) = &s.lifecycle {
            about.push(AboutRow::text("Lifecycle", l));
        }
        if let Some(email) = spec["profile"]["email"].as_str() {
            about.push(AboutRow { href: safe_href(&format!("mailto:{email}")), ..AboutRow::text("Email", email) });
        }
        let annotations = &value["metadata"]["annotations"];
        if let Some(ns) = annotations["backstage.io/kubernetes-namespace"].as_str() {
            about.push(AboutRow::text("Kubernetes namespace", ns));
        }
        let mut links = Vec::new();
        if let Some(source) = annotations["backstage.io/source-location"].as_str() {
            let url = source.strip_prefix("url:").unwrap_or(source);
            links.push(ExternalLink::new("Source repository", url));
        }
        for (key, label) in OBSERVABILITY_ANNOTATIONS {
            if let Some(t) = annotations[key].as_str() {
                let link = observability_link(t, record, observability);
                let note = (!link.unfilled.is_empty()).then(|| format!("not filled in: {}", link.unfilled.join("; ")));
                links.push(ExternalLink { note, ..ExternalLink::new(label, &link.url) });
            }
        }
        for link in value["metadata"]["links"].as_array().into_iter().flatten() {
            let Some(url) = link["url"].as_str() else { continue };
            let text = link["title"].as_str().unwrap_or(url);
            links.push(ExternalLink::new(text, url));
        }
        if record.kind == EntityKind::Location {
            let targets = spec["target"].as_str().into_iter().chain(spec["targets"].as_array().into_iter().flatten().filter_map(Value::as_str));
            about.extend(targets.map(|t| AboutRow::text("Target", t)));
        }
        let relations = relation_sections(record.kind)
            .iter()
            .map(|(kind, label)| RelationGroup { label, links: record.related(*kind).map(|r| EntityLink::new(snap, r)).collect() })
            .collect();
        Self { description: s.description.clone().unwrap_or_default(), about, links, relations }
    }
}

#[derive(Template)]
#[template(path = "entity.html")]
struct GenericPage {
    chrome: Chrome,
    header: EntityHeader,
    overview: Overview,
}

struct TabLink {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "component.html")]
struct ComponentPage {
    chrome: Chrome,
    header: EntityHeader,
    tabs: Vec<TabLink>,
    tab_label: &'static str,
    body: String,
}

async fn component_page(
    state: AppState,
    actor: Actor,
    snap: Arc<Snapshot>,
    entity: EntityRef,
    chrome: Chrome,
    header: EntityHeader,
    tab: Option<&str>,
    params: Params,
) -> Result<Html<String>, PageError> {
    let base = super::view::entity_href(&entity);
    let current = match tab {
        None => &COMPONENT_TABS[0],
        Some(slug) => COMPONENT_TABS
            .iter()
            .find(|t| t.slug == slug)
            .ok_or_else(|| AppError::NotFound(format!("{} has no tab {slug:?}", entity.short())))?,
    };
    let tabs = COMPONENT_TABS
        .iter()
        .enumerate()
        .map(|(i, t)| TabLink { label: t.label, href: if i == 0 { base.clone() } else { format!("{base}/{}", t.slug) }, current: t.slug == current.slug })
        .collect();
    let body = (current.render)(TabContext { state, actor, snap, entity, params }).await?;
    render(&ComponentPage { chrome, header, tabs, tab_label: current.label, body })
}

#[derive(Template)]
#[template(path = "component_overview.html")]
struct OverviewTab {
    overview: Overview,
}

fn overview_tab(ctx: TabContext) -> TabFuture {
    Box::pin(async move {
        let record = ctx.snap.get(&ctx.entity).ok_or_else(|| AppError::NotFound(format!("{} is no longer in the catalog", ctx.entity)))?;
        let tab = OverviewTab { overview: Overview::new(&ctx.snap, record, &ctx.state.config.observability) };
        tab.render().map_err(|e| PageError(AppError::Internal(e.into())))
    })
}
