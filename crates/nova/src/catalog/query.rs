//! Backstage-compatible entity queries over a [`Snapshot`]: filters (AND inside one filter,
//! OR across filters), ordering, full-text search, cursor paging, field projection and facets.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::snapshot::{EntityRecord, Snapshot};

/// A query could not be understood; the message names the parameter.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// One condition: the key has one of the values, or (with no values) exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
}

/// `filter` parameters: each is a list of conditions that must all hold; an entity matches
/// when any filter matches. No filters match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter(pub Vec<Vec<Condition>>);

impl Filter {
    /// Parses `filter` parameters such as `kind=component,spec.type=service`. Repeating a key
    /// inside one filter means "any of these values".
    pub fn parse<'a>(params: impl IntoIterator<Item = &'a str>) -> Result<Self, QueryError> {
        let mut out = Vec::new();
        for param in params {
            let mut conds: Vec<Condition> = Vec::new();
            for statement in param.split(',') {
                let (key, value) = match statement.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim())),
                    None => (statement.trim(), None),
                };
                if key.is_empty() {
                    return Err(QueryError(format!("filter: invalid statement {statement:?}: the key is empty")));
                }
                let key = key.to_ascii_lowercase();
                match conds.iter_mut().find(|c| c.key == key) {
                    Some(c) => c.values.extend(value.map(str::to_lowercase)),
                    None => conds.push(Condition { key, values: value.map(str::to_lowercase).into_iter().collect() }),
                }
            }
            out.push(conds);
        }
        Ok(Self(out))
    }

    /// Entity ids (sorted) matching the filter.
    pub fn matches(&self, snap: &Snapshot) -> Vec<u32> {
        if self.0.is_empty() {
            return (0..snap.entities.len() as u32).collect();
        }
        let mut result: Vec<u32> = Vec::new();
        for conds in &self.0 {
            let mut set: Option<Vec<u32>> = None;
            for c in conds {
                let ids = condition_ids(snap, c);
                set = Some(match set {
                    None => ids,
                    Some(s) => intersect(&s, &ids),
                });
                if set.as_ref().is_some_and(Vec::is_empty) {
                    break;
                }
            }
            result = union(&result, &set.unwrap_or_default());
        }
        result
    }
}

fn condition_ids(snap: &Snapshot, c: &Condition) -> Vec<u32> {
    let Some(ki) = snap.index.get(c.key.as_str()) else { return Vec::new() };
    if c.values.is_empty() {
        return ki.all.clone();
    }
    let mut out = Vec::new();
    for v in &c.values {
        if let Some(p) = ki.values.get(v.as_str()) {
            out = if out.is_empty() { p.ids().to_vec() } else { union(&out, p.ids()) };
        }
    }
    out
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small.iter().copied().filter(|x| large.binary_search(x).is_ok()).collect()
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Asc,
    Desc,
}

/// `orderField=metadata.name,asc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    pub field: String,
    pub order: Direction,
}

impl OrderField {
    /// Parses `field[,asc|desc]`.
    pub fn parse(s: &str) -> Result<Self, QueryError> {
        let (field, order) = match s.split_once(',') {
            Some((f, "asc")) => (f, Direction::Asc),
            Some((f, "desc")) => (f, Direction::Desc),
            Some((_, o)) => return Err(QueryError(format!("orderField: invalid order {o:?}; use asc or desc"))),
            None => (s, Direction::Asc),
        };
        if field.trim().is_empty() {
            return Err(QueryError("orderField: the field is empty".into()));
        }
        Ok(Self { field: field.trim().to_lowercase(), order })
    }
}

/// The fields searched by a full-text filter when none are named. (Backstage searches only the
/// sort field, or the uid; Nova searches what people type.)
pub const DEFAULT_TEXT_FIELDS: [&str; 5] = ["metadata.name", "metadata.title", "metadata.description", "spec.profile.displayname", "metadata.tags"];

/// Everything that selects and orders a result set; it travels inside the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySpec {
    #[serde(rename = "f")]
    pub filter: Filter,
    #[serde(rename = "o", default)]
    pub order: Option<OrderField>,
    #[serde(rename = "t", default)]
    pub text: Option<String>,
    #[serde(rename = "tf", default)]
    pub text_fields: Vec<String>,
}

/// A position in a result set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(flatten)]
    pub spec: QuerySpec,
    #[serde(rename = "off")]
    pub offset: usize,
    /// The page size of the request that made the cursor, used when the next request names none.
    #[serde(rename = "l")]
    pub limit: usize,
    #[serde(rename = "n")]
    pub total: usize,
}

impl Cursor {
    /// Opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serializes"))
    }

    /// Parses the opaque form.
    pub fn decode(s: &str) -> Result<Self, QueryError> {
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| QueryError("cursor: malformed cursor, could not be parsed".into()))
    }
}

/// One page of results.
pub struct Page<'a> {
    pub items: Vec<&'a EntityRecord>,
    pub total: usize,
    pub next: Option<Cursor>,
    pub prev: Option<Cursor>,
}

impl QuerySpec {
    /// Ids matching filter and text, in result order.
    pub fn run(&self, snap: &Snapshot) -> Vec<u32> {
        let mut ids = self.filter.matches(snap);
        if let Some(term) = self.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let term = term.to_lowercase();
            let fields: Vec<String> = if self.text_fields.is_empty() {
                DEFAULT_TEXT_FIELDS.iter().map(|s| s.to_string()).collect()
            } else {
                self.text_fields.clone()
            };
            let mut hits: Vec<u32> = Vec::new();
            for f in &fields {
                if let Some(ki) = snap.index.get(f.as_str()) {
                    for (value, posting) in &ki.values {
                        if value.contains(term.as_str()) {
                            hits = union(&hits, posting.ids());
                        }
                    }
                }
            }
            ids = intersect(&ids, &hits);
        }
        if let Some(order) = &self.order {
            let ranks = snap.sort_ranks(&order.field);
            ids.sort_by(|&a, &b| {
                let (ra, rb) = (ranks[a as usize], ranks[b as usize]);
                let by_value = match (ra, rb) {
                    (Some(x), Some(y)) if order.order == Direction::Asc => x.cmp(&y),
                    (Some(x), Some(y)) => y.cmp(&x),
                    (Some(_), None) => Ordering::Less, // nulls last either way
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                by_value.then(a.cmp(&b))
            });
        }
        ids
    }

    /// One page starting at `offset`.
    pub fn page<'a>(&self, snap: &'a Snapshot, offset: usize, limit: usize) -> Page<'a> {
        let ids = self.run(snap);
        let total = ids.len();
        let end = (offset + limit).min(total);
        let items = ids.get(offset.min(total)..end).unwrap_or(&[]).iter().map(|&i| &snap.entities[i as usize]).collect();
        let cursor_at = |off: usize| Cursor { spec: self.clone(), offset: off, limit, total };
        Page {
            items,
            total,
            next: (end < total && limit > 0).then(|| cursor_at(end)),
            prev: (offset > 0).then(|| cursor_at(offset.saturating_sub(limit))),
        }
    }
}

/// Keeps only the named dotted fields of a document (Backstage's `fields` parameter).
pub fn project(value: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for f in fields {
        let parts: Vec<&str> = f.split('.').collect();
        copy_path(value, &parts, &mut out);
    }
    Value::Object(out)
}

fn copy_path(src: &Value, parts: &[&str], dst: &mut Map<String, Value>) {
    let Some((first, rest)) = parts.split_first() else { return };
    let Some(child) = src.get(first) else { return };
    if rest.is_empty() {
        dst.insert(first.to_string(), child.clone());
        return;
    }
    if let Value::Object(inner) = dst.entry(first.to_string()).or_insert_with(|| Value::Object(Map::new())) {
        copy_path(child, rest, inner);
    }
}

/// Parses `fields` parameters (comma-separated, repeatable).
pub fn parse_fields<'a>(params: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    params.into_iter().flat_map(|p| p.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// One facet value and how many matching entities have it.
#[derive(Debug, Clone, Serialize)]
pub struct FacetCount {
    pub value: String,
    pub count: usize,
}

/// Counts the values of `facet` among entities matching `filter`.
pub fn facet(snap: &Snapshot, facet: &str, matching: Option<&[u32]>) -> Vec<FacetCount> {
    let Some(ki) = snap.index.get(facet.to_lowercase().as_str()) else { return Vec::new() };
    let mut out: Vec<FacetCount> = ki
        .values
        .iter()
        .map(|(lower, p)| FacetCount { value: p.original(lower).to_string(), count: matching.map_or(p.ids().len(), |m| intersect(m, p.ids()).len()) })
        .filter(|f| f.count > 0)
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_like_backstage() {
        let f = Filter::parse(["kind=component,spec.type=service,kind=API", "metadata.annotations.x"]).unwrap();
        assert_eq!(f.0[0][0], Condition { key: "kind".into(), values: vec!["component".into(), "api".into()] });
        assert_eq!(f.0[1][0], Condition { key: "metadata.annotations.x".into(), values: vec![] });
        assert!(Filter::parse(["=x"]).is_err());
    }

    #[test]
    fn set_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 7]), vec![3, 7]);
        assert_eq!(union(&[1, 5], &[2, 5, 9]), vec![1, 2, 5, 9]);
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { spec: QuerySpec { text: Some("pay".into()), ..Default::default() }, offset: 20, limit: 10, total: 45 };
        let d = Cursor::decode(&c.encode()).unwrap();
        assert_eq!((d.offset, d.total, d.spec.text.as_deref()), (20, 45, Some("pay")));
        assert!(Cursor::decode("!!!").is_err());
    }

    #[test]
    fn projection_keeps_named_fields() {
        let v = serde_json::json!({"kind": "Component", "metadata": {"name": "a", "title": "A"}, "spec": {"owner": "x"}});
        let p = project(&v, &["kind".into(), "metadata.name".into(), "missing.x".into()]);
        assert_eq!(p, serde_json::json!({"kind": "Component", "metadata": {"name": "a"}}));
    }
}
