//! Backstage-compatible catalog API under `/api/catalog`: same paths, parameters and response
//! shapes as Backstage's catalog backend, so Backstage clients and scripts work against Nova.
//! Errors use Backstage's error body ([`BackstageError`]).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use nova_domain::EntityRef;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::Params;
use crate::audit::Outcome;
use crate::auth::Actor;
use crate::authz::{self, Action, Target};
use super::{AppError, AppState, BackstageError};
use crate::catalog::query::{Cursor, Filter, OrderField, QuerySpec, facet, parse_fields, project};
use crate::catalog::snapshot::EntityRecord;
use crate::catalog::StoredLocation;

/// Default page size of `/entities/by-query`, as in Backstage.
const DEFAULT_LIMIT: usize = 200;
/// Largest page a caller may ask for.
const MAX_LIMIT: usize = 10_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/entities", get(list_entities))
        .route("/entities/by-query", get(query_entities))
        .route("/entities/by-name/{kind}/{namespace}/{name}", get(entity_by_name))
        .route("/entities/by-uid/{uid}", get(entity_by_uid))
        .route("/entities/by-refs", post(entities_by_refs))
        .route("/entity-facets", get(entity_facets))
        .route("/locations", get(list_locations).post(add_location))
        .route("/locations/{id}", get(get_location).delete(delete_location))
}

type Result<T> = std::result::Result<T, BackstageError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], Body::from(body)).into_response()
}

/// Writes one entity, projecting fields when asked (otherwise the stored bytes are copied).
fn write_entity(out: &mut Vec<u8>, e: &EntityRecord, fields: &[String]) {
    if fields.is_empty() {
        out.extend_from_slice(&e.json);
    } else {
        serde_json::to_writer(&mut *out, &project(&e.value(), fields)).expect("JSON serializes");
    }
}

/// Writes entities as a JSON array.
fn write_items(out: &mut Vec<u8>, items: &[&EntityRecord], fields: &[String]) {
    out.push(b'[');
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_entity(out, e, fields);
    }
    out.push(b']');
}

fn limit_param(params: &Params) -> std::result::Result<Option<usize>, AppError> {
    let limit = params.usize("limit")?;
    if limit.is_some_and(|l| l > MAX_LIMIT) {
        return Err(AppError::invalid("limit", format!("must be at most {MAX_LIMIT}")));
    }
    Ok(limit)
}

/// `GET /entities/by-query`.
async fn query_entities(State(state): State<AppState>, params: Params) -> Result<Response> {
    let snap = state.catalog.snapshot();
    let fields = parse_fields(params.all("fields"));
    let limit = limit_param(&params)?;
    let (spec, offset, limit) = match params.get("cursor") {
        Some(c) => {
            let cursor = Cursor::decode(c)?;
            (cursor.spec, cursor.offset, limit.unwrap_or(cursor.limit))
        }
        None => {
            let order = params.all("orderField").next().map(OrderField::parse).transpose()?;
            let spec = QuerySpec {
                filter: Filter::parse(params.all("filter"))?,
                order,
                text: params.get("fullTextFilterTerm").map(str::to_string),
                text_fields: parse_fields(params.all("fullTextFilterFields")).into_iter().map(|f| f.to_lowercase()).collect(),
            };
            (spec, params.usize("offset")?.unwrap_or(0), limit.unwrap_or(DEFAULT_LIMIT))
        }
    };
    let page = spec.page(&snap, offset, limit);
    let mut out = Vec::with_capacity(page.items.iter().map(|e| e.json.len() + 1).sum::<usize>() + 256);
    out.extend_from_slice(b"{\"items\":");
    write_items(&mut out, &page.items, &fields);
    let mut page_info = serde_json::Map::new();
    if let Some(n) = &page.next {
        page_info.insert("nextCursor".into(), Value::String(n.encode()));
    }
    if let Some(p) = &page.prev {
        page_info.insert("prevCursor".into(), Value::String(p.encode()));
    }
    out.extend_from_slice(format!(",\"totalItems\":{},\"pageInfo\":", page.total).as_bytes());
    serde_json::to_writer(&mut out, &page_info).expect("JSON serializes");
    out.push(b'}');
    Ok(json_response(StatusCode::OK, out))
}

/// `GET /entities`: the older list endpoint (filter, fields, offset, limit, order).
async fn list_entities(State(state): State<AppState>, params: Params) -> Result<Response> {
    let snap = state.catalog.snapshot();
    let order = params.all("order").next().map(|o| {
        // Backstage spells it `order=asc:metadata.name`.
        let (dir, field) = o.split_once(':').unwrap_or(("asc", o));
        OrderField::parse(&format!("{field},{dir}"))
    });
    let spec = QuerySpec { filter: Filter::parse(params.all("filter"))?, order: order.transpose()?, ..Default::default() };
    let offset = params.usize("offset")?.unwrap_or(0);
    let limit = limit_param(&params)?.unwrap_or(usize::MAX);
    let page = spec.page(&snap, offset, limit);
    let mut out = Vec::new();
    write_items(&mut out, &page.items, &parse_fields(params.all("fields")));
    Ok(json_response(StatusCode::OK, out))
}

fn entity_response(record: Option<&EntityRecord>, what: impl FnOnce() -> String) -> Result<Response> {
    match record {
        Some(e) => Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], Body::from(Bytes::clone(&e.json))).into_response()),
        None => Err(AppError::NotFound(format!("No entity named '{}' found", what())).into()),
    }
}

/// `GET /entities/by-name/{kind}/{namespace}/{name}`.
async fn entity_by_name(State(state): State<AppState>, Path((kind, namespace, name)): Path<(String, String, String)>) -> Result<Response> {
    let r = EntityRef::parse(&format!("{kind}:{namespace}/{name}")).map_err(|e| AppError::invalid("entityRef", e.to_string()))?;
    let snap = state.catalog.snapshot();
    entity_response(snap.get(&r), || r.to_string())
}

/// `GET /entities/by-uid/{uid}`.
async fn entity_by_uid(State(state): State<AppState>, Path(uid): Path<String>) -> Result<Response> {
    let snap = state.catalog.snapshot();
    entity_response(snap.get_by_uid(&uid), || format!("uid {uid}"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ByRefs {
    entity_refs: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /entities/by-refs`: items in request order, `null` for unknown refs.
async fn entities_by_refs(State(state): State<AppState>, params: Params, body: Bytes) -> Result<Response> {
    let req: ByRefs = serde_json::from_slice(&body).map_err(|e| AppError::invalid("entityRefs", format!("request body must be {{\"entityRefs\": [...]}}: {e}")))?;
    if req.entity_refs.len() > MAX_LIMIT {
        return Err(AppError::invalid("entityRefs", format!("at most {MAX_LIMIT} references per request")).into());
    }
    let snap = state.catalog.snapshot();
    let filter = Filter::parse(params.all("filter"))?;
    let allowed = (!filter.0.is_empty()).then(|| filter.matches(&snap));
    let mut fields = req.fields;
    fields.extend(parse_fields(params.all("fields")));
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"items\":[");
    for (i, r) in req.entity_refs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let found = EntityRef::parse(r)
            .ok()
            .and_then(|r| snap.id_of(&r))
            .filter(|id| allowed.as_ref().is_none_or(|ids| ids.binary_search(id).is_ok()));
        match found {
            Some(id) => write_entity(&mut out, &snap.entities[id as usize], &fields),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b"]}");
    Ok(json_response(StatusCode::OK, out))
}

/// `GET /entity-facets?facet=kind&filter=...`.
async fn entity_facets(State(state): State<AppState>, params: Params) -> Result<Json<Value>> {
    let snap = state.catalog.snapshot();
    let filter = Filter::parse(params.all("filter"))?;
    let matching = (!filter.0.is_empty()).then(|| filter.matches(&snap));
    let mut facets = serde_json::Map::new();
    let names: Vec<&str> = params.all("facet").collect();
    if names.is_empty() {
        return Err(AppError::invalid("facet", "at least one facet parameter is required").into());
    }
    for name in names {
        facets.insert(name.to_string(), json!(facet(&snap, name, matching.as_deref())));
    }
    Ok(Json(json!({ "facets": facets })))
}

fn location_json(l: &StoredLocation) -> Value {
    json!({"id": l.id, "type": l.spec.kind.as_str(), "target": l.spec.target})
}

/// `GET /locations`.
async fn list_locations(State(state): State<AppState>) -> Result<Json<Value>> {
    let locations = state.catalog.locations().await?;
    Ok(Json(Value::Array(locations.iter().map(|l| json!({"data": location_json(l)})).collect())))
}

/// `GET /locations/{id}`.
async fn get_location(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let locations = state.catalog.locations().await?;
    let l = locations.iter().find(|l| l.id == id).ok_or_else(|| AppError::NotFound(format!("Found no location with ID {id}")))?;
    Ok(Json(location_json(l)))
}

#[derive(Deserialize)]
struct NewLocation {
    #[serde(rename = "type")]
    kind: String,
    target: String,
}

/// `POST /locations[?dryRun=true]`: registers and reads the location in the same request.
async fn add_location(State(state): State<AppState>, actor: Actor, params: Params, body: Bytes) -> Result<Response> {
    authz::require(&state, &actor, Action::ManageLocations, &Target::Platform).await?;
    let req: NewLocation =
        serde_json::from_slice(&body).map_err(|e| AppError::invalid("body", format!("must be {{\"type\": ..., \"target\": ...}}: {e}")))?;
    let dry_run = params.get("dryRun").is_some_and(|v| v == "true");
    let spec = state.catalog.parse_location(&req.kind, &req.target)?;
    state.catalog.check_registrable(&spec)?;
    let result = state.catalog.register(spec.clone(), dry_run).await;
    if !dry_run {
        let (outcome, error) = match &result {
            Ok(_) => (Outcome::Success, None),
            Err(e) => (Outcome::Failure, Some(e.to_string())),
        };
        let details = json!({ "type": spec.kind.as_str(), "target": spec.target, "error": error });
        authz::record(&state, &actor, "catalog.location.register", spec.display(), outcome, details).await?;
    }
    let registered = result?;
    let mut body = json!({
        "location": location_json(&registered.location),
        "entities": registered.entities,
    });
    if !registered.errors.is_empty() {
        body["errors"] = json!(registered.errors);
    }
    if dry_run {
        let exists = state.catalog.locations().await?.iter().any(|l| l.spec == registered.location.spec);
        body["exists"] = json!(exists);
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /locations/{id}`.
async fn delete_location(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<StatusCode> {
    authz::require(&state, &actor, Action::ManageLocations, &Target::Platform).await?;
    let result = state.catalog.unregister(&id).await;
    let outcome = if result.is_ok() { Outcome::Success } else { Outcome::Failure };
    authz::record(&state, &actor, "catalog.location.delete", format!("location:{id}"), outcome, json!({})).await?;
    result?;
    Ok(StatusCode::NO_CONTENT)
}
