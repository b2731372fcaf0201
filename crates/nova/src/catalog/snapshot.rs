//! An immutable, fully indexed view of the catalog, rebuilt whenever a location changes and
//! swapped in atomically. Queries never touch the database.
//!
//! The search index follows Backstage's `search` table: every leaf of the final entity
//! document becomes a lowercased `(key, value)` pair (arrays of strings also produce
//! `key.item = true`), relations become `relations.<type> = targetRef`. Filters intersect the
//! posting lists of those pairs.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nova_domain::{Entity, EntityKind, EntityRef, Relation, RelationType};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{CatalogError, ErrorKind};
use super::location::LocationRead;
use crate::config::OwnershipMode;

/// Longest key or value indexed, as in Backstage.
const MAX_SEARCH_LEN: usize = 200;

/// The fields a list view needs without parsing the entity's JSON.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub title: Option<String>,
    /// `spec.profile.displayName` of users and groups.
    pub profile_name: Option<String>,
    pub description: Option<String>,
    pub owner: Option<EntityRef>,
    pub system: Option<EntityRef>,
    pub lifecycle: Option<String>,
    pub spec_type: Option<String>,
    pub tags: Vec<String>,
}

/// One entity in the snapshot.
#[derive(Debug)]
pub struct EntityRecord {
    pub entity_ref: EntityRef,
    pub kind: EntityKind,
    pub uid: String,
    /// The final document as served by the API (with uid, etag, managed-by annotations and
    /// relations), serialized once.
    pub json: Bytes,
    pub summary: Summary,
    /// Every relation (declared and reverse), sorted.
    pub relations: Vec<Relation>,
}

impl EntityRecord {
    /// Parses the stored document (for detail views and `fields` projections).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).expect("snapshot JSON is produced by serde_json")
    }

    /// Targets of relations of one type.
    pub fn related(&self, kind: RelationType) -> impl Iterator<Item = &EntityRef> {
        self.relations.iter().filter(move |r| r.kind == kind).map(|r| &r.target)
    }

    /// `title` if set, else a user's or group's profile display name, else the name.
    pub fn display_name(&self) -> &str {
        self.summary.title.as_deref().or(self.summary.profile_name.as_deref()).unwrap_or(self.entity_ref.name())
    }
}

#[derive(Debug, Default)]
pub(super) struct Posting {
    /// The value as first written (facets show it).
    pub original: Box<str>,
    pub ids: Vec<u32>,
}

#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    pub values: HashMap<Box<str>, Posting>,
    /// Every entity that has the key at all (including null values).
    pub all: Vec<u32>,
}

/// One input location for a snapshot build: its display name and what was read.
pub struct SnapshotInput<'a> {
    pub origin: String,
    pub read: &'a LocationRead,
}

/// The indexed catalog.
#[derive(Debug)]
pub struct Snapshot {
    pub entities: Vec<EntityRecord>,
    by_key: HashMap<String, u32>,
    by_uid: HashMap<String, u32>,
    pub(super) index: HashMap<Box<str>, KeyIndex>,
    pub errors: Vec<CatalogError>,
    /// Counts by kind, for metrics and the console.
    pub kind_counts: Vec<(EntityKind, usize)>,
    sort_cache: Mutex<HashMap<String, Arc<Vec<Option<u32>>>>>,
}

impl Snapshot {
    /// An empty catalog.
    pub fn empty() -> Self {
        Self::build(&[])
    }

    /// Builds the snapshot: resolves conflicts (first location wins), adds reverse relations,
    /// renders every entity once and indexes it.
    pub fn build(inputs: &[SnapshotInput<'_>]) -> Self {
        let mut errors: Vec<CatalogError> = Vec::new();
        let mut chosen: Vec<(&Entity, &str, &str)> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for input in inputs {
            errors.extend(input.read.errors().cloned());
            for (source, doc) in input.read.entities() {
                let key = doc.entity.entity_ref().key();
                if let Some(first) = seen.get(&key) {
                    errors.push(CatalogError {
                        location: source.to_string(),
                        document: Some(doc.document),
                        entity_ref: Some(doc.entity.entity_ref().to_string()),
                        field: Some("metadata.name".into()),
                        rule: "unique-entity".into(),
                        kind: ErrorKind::Conflict,
                        message: format!("{} is already defined by {first}; this definition is ignored", doc.entity.entity_ref()),
                    });
                    continue;
                }
                seen.insert(key, source.to_string());
                chosen.push((&doc.entity, source, input.origin.as_str()));
            }
        }
        chosen.sort_by_key(|(e, _, _)| e.entity_ref().key());

        let positions: HashMap<String, usize> = chosen.iter().enumerate().map(|(i, (e, _, _))| (e.entity_ref().key(), i)).collect();
        let mut relations: Vec<BTreeSet<Relation>> = vec![BTreeSet::new(); chosen.len()];
        for (i, (entity, _, _)) in chosen.iter().enumerate() {
            for rel in entity.relations() {
                relations[i].insert(rel.clone());
                if let Some(&j) = positions.get(&rel.target.key()) {
                    relations[j].insert(Relation { kind: rel.kind.reverse(), target: entity.entity_ref().clone() });
                }
            }
        }

        let mut snapshot = Snapshot {
            entities: Vec::with_capacity(chosen.len()),
            by_key: HashMap::with_capacity(chosen.len()),
            by_uid: HashMap::with_capacity(chosen.len()),
            index: HashMap::new(),
            errors,
            kind_counts: Vec::new(),
            sort_cache: Mutex::new(HashMap::new()),
        };
        let mut kinds: HashMap<EntityKind, usize> = HashMap::new();
        for (i, ((entity, source, origin), rels)) in chosen.into_iter().zip(relations).enumerate() {
            let id = i as u32;
            let rels: Vec<Relation> = rels.into_iter().collect();
            let value = final_document(entity, source, origin, &rels);
            index_entity(&mut snapshot.index, id, &value, &rels);
            let uid = value["metadata"]["uid"].as_str().unwrap_or_default().to_string();
            let json = Bytes::from(serde_json::to_vec(&value).expect("entity JSON serializes"));
            *kinds.entry(entity.kind()).or_default() += 1;
            snapshot.by_key.insert(entity.entity_ref().key(), id);
            snapshot.by_uid.insert(uid.clone(), id);
            snapshot.entities.push(EntityRecord {
                entity_ref: entity.entity_ref().clone(),
                kind: entity.kind(),
                uid,
                json,
                summary: summarize(entity),
                relations: rels,
            });
        }
        snapshot.kind_counts = EntityKind::ALL.iter().map(|k| (*k, kinds.get(k).copied().unwrap_or(0))).collect();
        snapshot
    }

    /// Looks an entity up by reference (case-insensitive).
    pub fn get(&self, entity_ref: &EntityRef) -> Option<&EntityRecord> {
        self.by_key.get(&entity_ref.key()).map(|&i| &self.entities[i as usize])
    }

    /// The id (index into `entities`) of a reference.
    pub fn id_of(&self, entity_ref: &EntityRef) -> Option<u32> {
        self.by_key.get(&entity_ref.key()).copied()
    }

    /// Looks an entity up by its uid.
    pub fn get_by_uid(&self, uid: &str) -> Option<&EntityRecord> {
        self.by_uid.get(uid).map(|&i| &self.entities[i as usize])
    }

    /// The ownership claims of a user: their own reference, the groups they are a direct member
    /// of, and (in transitive mode) every ancestor of those groups. A user unknown to the
    /// catalog has only their own reference.
    pub fn claims(&self, user: &EntityRef, mode: OwnershipMode) -> Vec<EntityRef> {
        let mut claims = vec![user.clone()];
        let Some(record) = self.get(user) else { return claims };
        let mut queue: Vec<EntityRef> = record.related(RelationType::MemberOf).cloned().collect();
        let mut seen: BTreeSet<EntityRef> = BTreeSet::new();
        while let Some(group) = queue.pop() {
            if !seen.insert(group.clone()) {
                continue;
            }
            if mode == OwnershipMode::Transitive {
                if let Some(g) = self.get(&group) {
                    queue.extend(g.related(RelationType::ChildOf).cloned());
                }
            }
        }
        claims.extend(seen);
        claims
    }

    /// Per-entity rank of the values of `key` (lowercased), for sorting; `None` where the entity
    /// has no value. Computed once per key per snapshot.
    pub(super) fn sort_ranks(&self, key: &str) -> Arc<Vec<Option<u32>>> {
        let mut cache = self.sort_cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache.get(key) {
            return r.clone();
        }
        let mut ranks = vec![None; self.entities.len()];
        if let Some(ki) = self.index.get(key) {
            let mut values: Vec<(&str, &Posting)> = ki.values.iter().map(|(v, p)| (&**v, p)).collect();
            values.sort_by(|a, b| a.0.cmp(b.0));
            for (rank, (_, posting)) in values.iter().enumerate() {
                for &id in &posting.ids {
                    // An entity with several values sorts by its smallest.
                    let slot = &mut ranks[id as usize];
                    if slot.is_none() {
                        *slot = Some(rank as u32);
                    }
                }
            }
        }
        let ranks = Arc::new(ranks);
        cache.insert(key.to_string(), ranks.clone());
        ranks
    }
}

fn summarize(e: &Entity) -> Summary {
    let rel = |kind: RelationType| e.relations().iter().find(|r| r.kind == kind).map(|r| r.target.clone());
    Summary {
        title: e.metadata_str("title").map(str::to_string),
        profile_name: e.value()["spec"]["profile"]["displayName"].as_str().map(str::to_string),
        description: e.metadata_str("description").map(str::to_string),
        owner: rel(RelationType::OwnedBy),
        system: e.relations().iter().find(|r| r.kind == RelationType::PartOf && r.target.kind() == "system").map(|r| r.target.clone()),
        lifecycle: e.spec_str("lifecycle").map(str::to_string),
        spec_type: e.spec_str("type").map(str::to_string),
        tags: e.tags().map(str::to_string).collect(),
    }
}

/// The document as Backstage serves it: uid, etag, managed-by annotations and relations added.
fn final_document(entity: &Entity, source: &str, origin: &str, relations: &[Relation]) -> Value {
    let mut value = entity.value().clone();
    let key = entity.entity_ref().key();
    let content_hash = Sha256::digest(serde_json::to_vec(entity.value()).unwrap_or_default());
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("uid".into(), Value::String(uid_for(&key)));
        meta.insert("etag".into(), Value::String(hex::encode(&content_hash[..10])));
        let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.entry("backstage.io/managed-by-location").or_insert_with(|| Value::String(source.to_string()));
            a.entry("backstage.io/managed-by-origin-location").or_insert_with(|| Value::String(origin.to_string()));
        }
    }
    let rels: Vec<Value> = relations
        .iter()
        .map(|r| serde_json::json!({"type": r.kind.as_str(), "targetRef": r.target.to_string()}))
        .collect();
    value.as_object_mut().expect("entities are mappings").insert("relations".into(), Value::Array(rels));
    value
}

/// A stable uid derived from the entity reference, formatted as a UUID.
fn uid_for(key: &str) -> String {
    let h = Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5-style marker
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

const SPECIAL_KEYS: [&str; 7] = ["attachments", "relations", "status", "metadata.name", "metadata.namespace", "metadata.uid", "metadata.etag"];

fn index_entity(index: &mut HashMap<Box<str>, KeyIndex>, id: u32, value: &Value, relations: &[Relation]) {
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    traverse(&mut pairs, "", value);
    let meta = &value["metadata"];
    for key in ["metadata.name", "metadata.namespace", "metadata.uid"] {
        let field = key.trim_start_matches("metadata.");
        pairs.push((key.to_string(), meta.get(field).and_then(Value::as_str).map(str::to_string)));
    }
    for r in relations {
        pairs.push((format!("relations.{}", r.kind.as_str()), Some(r.target.to_string())));
    }
    for (key, original) in pairs {
        let key = key.to_lowercase();
        if key.len() > MAX_SEARCH_LEN {
            continue;
        }
        let ki = index.entry(key.into_boxed_str()).or_default();
        if ki.all.last() != Some(&id) {
            ki.all.push(id);
        }
        let Some(original) = original.filter(|v| v.len() <= MAX_SEARCH_LEN) else { continue };
        let lower = original.to_lowercase();
        let posting = ki.values.entry(lower.into_boxed_str()).or_insert_with(|| Posting { original: original.into_boxed_str(), ids: Vec::new() });
        if posting.ids.last() != Some(&id) {
            posting.ids.push(id);
        }
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn traverse(out: &mut Vec<(String, Option<String>)>, path: &str, v: &Value) {
    if SPECIAL_KEYS.contains(&path) {
        return;
    }
    match v {
        Value::Null => out.push((path.to_string(), None)),
        Value::String(_) | Value::Bool(_) | Value::Number(_) => out.push((path.to_string(), scalar_text(v))),
        Value::Array(items) => {
            for item in items {
                traverse(out, path, item);
                if let Value::String(s) = item {
                    out.push((format!("{path}.{s}"), Some("true".into())));
                }
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                traverse(out, &p, child);
            }
        }
    }
}

/// A digest of a location's read result, to notice changes made by another replica.
pub fn digest_of(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}
