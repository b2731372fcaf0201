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
use nova_domain::{CompactEntity, EntityKind, EntityRef, Relation, RelationType};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{CatalogError, ErrorKind};
use super::location::LocationRead;
use crate::config::OwnershipMode;

/// Hash maps of the index: a fast, per-process-seeded hasher (the default SipHash was 5% of
/// a catalog load).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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

/// The entities that have one value of one key.
#[derive(Debug)]
pub(super) struct Posting {
    /// The value as first written, when it differs from its lowercased form (facets show it).
    original: Option<Box<str>>,
    ids: Ids,
}

/// Entity ids, sorted; most values belong to a single entity, which needs no allocation.
#[derive(Debug)]
enum Ids {
    One(u32),
    Many(Vec<u32>),
}

impl Posting {
    fn new(original: String, lower: &str, id: u32) -> Self {
        Self { original: (original != lower).then(|| original.into_boxed_str()), ids: Ids::One(id) }
    }

    /// The entities, sorted.
    pub fn ids(&self) -> &[u32] {
        match &self.ids {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    /// The value as first written, given its lowercased form (the map key).
    pub fn original<'a>(&'a self, lower: &'a str) -> &'a str {
        self.original.as_deref().unwrap_or(lower)
    }

    fn push(&mut self, id: u32) {
        match &mut self.ids {
            Ids::One(first) if *first != id => self.ids = Ids::Many(vec![*first, id]),
            Ids::One(_) => {}
            Ids::Many(ids) if ids.last() != Some(&id) => ids.push(id),
            Ids::Many(_) => {}
        }
    }

    fn shrink(&mut self) {
        if let Ids::Many(ids) = &mut self.ids {
            ids.shrink_to_fit();
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    pub values: Map<Box<str>, Posting>,
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
    by_key: Map<String, u32>,
    by_uid: Map<String, u32>,
    pub(super) index: Index,
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
    /// renders every entity once and indexes it. Rendering runs on every core.
    pub fn build(inputs: &[SnapshotInput<'_>]) -> Self {
        let mut errors: Vec<CatalogError> = Vec::new();
        let mut chosen: Vec<(String, &CompactEntity, &str, &str)> = Vec::new();
        let mut seen: Map<String, &str> = Map::default();
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
                seen.insert(key.clone(), source);
                chosen.push((key, &doc.entity, source, input.origin.as_str()));
            }
        }
        chosen.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        let positions: Map<&str, usize> = chosen.iter().enumerate().map(|(i, (k, ..))| (k.as_str(), i)).collect();
        let mut relations: Vec<BTreeSet<Relation>> = vec![BTreeSet::new(); chosen.len()];
        for (i, (_, entity, _, _)) in chosen.iter().enumerate() {
            for rel in entity.relations() {
                relations[i].insert(rel.clone());
                if let Some(&j) = positions.get(rel.target.key().as_str()) {
                    relations[j].insert(Relation { kind: rel.kind.reverse(), target: entity.entity_ref().clone() });
                }
            }
        }

        let work: Vec<(&CompactEntity, &str, &str, Vec<Relation>)> =
            chosen.iter().zip(relations).map(|((_, e, source, origin), rels)| (*e, *source, *origin, rels.into_iter().collect())).collect();
        let (entities, mut index) = render_all(work);
        for ki in index.values_mut() {
            ki.all.shrink_to_fit();
            ki.values.shrink_to_fit();
            ki.values.values_mut().for_each(Posting::shrink);
        }
        Snapshot {
            by_key: entities.iter().enumerate().map(|(i, r)| (r.entity_ref.key(), i as u32)).collect(),
            by_uid: entities.iter().enumerate().map(|(i, r)| (r.uid.clone(), i as u32)).collect(),
            kind_counts: EntityKind::ALL.iter().map(|k| (*k, entities.iter().filter(|r| r.kind == *k).count())).collect(),
            entities,
            index,
            errors,
            sort_cache: Mutex::new(HashMap::new()),
        }
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
                for &id in posting.ids() {
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

/// The search index: lowercased key → its values and the entities that have them.
pub(super) type Index = Map<Box<str>, KeyIndex>;

/// Renders and indexes entities on every available core. Each thread takes a contiguous run of
/// ids and builds its own index; the partial indexes are then appended in id order, so every
/// posting list stays sorted.
fn render_all(work: Vec<(&CompactEntity, &str, &str, Vec<Relation>)>) -> (Vec<EntityRecord>, Index) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let threads = if work.len() < 512 { 1 } else { threads };
    let chunk = work.len().div_ceil(threads).max(1);
    let mut chunks: Vec<(u32, Vec<_>)> = Vec::new();
    let mut work = work.into_iter();
    let mut first = 0u32;
    loop {
        let c: Vec<_> = work.by_ref().take(chunk).collect();
        if c.is_empty() {
            break;
        }
        let n = c.len() as u32;
        chunks.push((first, c));
        first += n;
    }
    let render_chunk = |(first, items): (u32, Vec<(&CompactEntity, &str, &str, Vec<Relation>)>)| {
        let mut index = Index::default();
        let records: Vec<EntityRecord> = items
            .into_iter()
            .enumerate()
            .map(|(i, (e, s, o, r))| render(e, s, o, r, &mut index, first + i as u32))
            .collect();
        (records, index)
    };
    let parts: Vec<(Vec<EntityRecord>, Index)> = if chunks.len() <= 1 {
        chunks.into_iter().map(render_chunk).collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks.into_iter().map(|c| scope.spawn(move || render_chunk(c))).collect();
            handles.into_iter().map(|h| h.join().expect("rendering does not panic")).collect()
        })
    };
    let mut records = Vec::new();
    let mut index = Index::default();
    for (r, part) in parts {
        records.extend(r);
        merge_index(&mut index, part);
    }
    (records, index)
}

/// Appends a partial index whose ids all follow those already in `into`.
fn merge_index(into: &mut Index, part: Index) {
    if into.is_empty() {
        *into = part;
        return;
    }
    for (key, ki) in part {
        let target = into.entry(key).or_default();
        target.all.extend(ki.all);
        for (value, posting) in ki.values {
            match target.values.get_mut(&value) {
                Some(p) => posting.ids().iter().for_each(|&id| p.push(id)),
                None => {
                    target.values.insert(value, posting);
                }
            }
        }
    }
}

/// The document as Backstage serves it (uid, etag, managed-by annotations and relations
/// added), serialized once, with its summary; its search pairs go into `index` under `id`.
fn render(entity: &CompactEntity, source: &str, origin: &str, relations: Vec<Relation>, index: &mut Index, id: u32) -> EntityRecord {
    let mut value = entity.to_value();
    let uid = uid_for(&entity.entity_ref().key());
    let etag = hex::encode(&Sha256::digest(entity.json().get().as_bytes())[..10]);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("uid".into(), Value::String(uid.clone()));
        meta.insert("etag".into(), Value::String(etag));
        let annotations = meta.entry("annotations").or_insert_with(|| Value::Object(serde_json::Map::new()));
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
    Indexer::index(index, id, &value, &relations);
    let summary = summarize(&value, entity.relations());
    let mut json = serde_json::to_vec(&value).expect("entity JSON serializes");
    json.shrink_to_fit();
    let json = Bytes::from(json);
    EntityRecord { entity_ref: entity.entity_ref().clone(), kind: entity.kind(), uid, json, summary, relations }
}

fn summarize(value: &Value, declared: &[Relation]) -> Summary {
    let meta = |k: &str| value["metadata"].get(k).and_then(Value::as_str).map(str::to_string);
    let spec = |k: &str| value.get("spec").and_then(|s| s.get(k)).and_then(Value::as_str).map(str::to_string);
    let rel = |kind: RelationType, target_kind: Option<&str>| {
        declared.iter().find(|r| r.kind == kind && target_kind.is_none_or(|k| r.target.kind() == k)).map(|r| r.target.clone())
    };
    Summary {
        title: meta("title"),
        profile_name: value.get("spec").and_then(|s| s.get("profile")).and_then(|p| p.get("displayName")).and_then(Value::as_str).map(str::to_string),
        description: meta("description"),
        owner: rel(RelationType::OwnedBy, None),
        system: rel(RelationType::PartOf, Some("system")),
        lifecycle: spec("lifecycle"),
        spec_type: spec("type"),
        tags: value["metadata"].get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect(),
    }
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

/// Adds one entity's search pairs to an index, as Backstage's `buildEntitySearch` derives them:
/// every leaf of the final document, `key.item = true` for strings in arrays, the
/// always-present name/namespace/uid, and `relations.<type> = targetRef`. Keys and values are
/// matched lowercased. Buffers are reused and lookups borrow, so only new keys and values
/// allocate: the index is built without a pile of short-lived strings.
struct Indexer<'a> {
    index: &'a mut Index,
    id: u32,
    path: String,
    lower: String,
    scratch: String,
}

impl<'a> Indexer<'a> {
    fn index(index: &'a mut Index, id: u32, value: &Value, relations: &[Relation]) {
        let mut ix = Indexer { index, id, path: String::new(), lower: String::new(), scratch: String::new() };
        ix.visit(value);
        let meta = &value["metadata"];
        for (key, field) in [("metadata.name", "name"), ("metadata.namespace", "namespace"), ("metadata.uid", "uid")] {
            ix.path.clear();
            ix.path.push_str(key);
            ix.add(meta.get(field).and_then(Value::as_str));
        }
        for r in relations {
            ix.path.clear();
            ix.path.push_str("relations.");
            ix.path.push_str(&r.kind.as_str().to_ascii_lowercase());
            ix.add(Some(r.target.as_str()));
        }
    }

    fn visit(&mut self, v: &Value) {
        if SPECIAL_KEYS.contains(&self.path.as_str()) {
            return;
        }
        match v {
            Value::Null => self.add(None),
            Value::String(s) => self.add(Some(s)),
            Value::Bool(b) => self.add(Some(if *b { "true" } else { "false" })),
            Value::Number(n) => {
                let text = n.to_string();
                self.add(Some(&text));
            }
            Value::Array(items) => {
                for item in items {
                    self.visit(item);
                    if let Value::String(s) = item {
                        let len = self.path.len();
                        self.path.push('.');
                        push_lower(&mut self.path, s);
                        self.add(Some("true"));
                        self.path.truncate(len);
                    }
                }
            }
            Value::Object(map) => {
                for (k, child) in map {
                    let len = self.path.len();
                    if len > 0 {
                        self.path.push('.');
                    }
                    push_lower(&mut self.path, k);
                    self.visit(child);
                    self.path.truncate(len);
                }
            }
        }
    }

    /// Adds `value` (or a null) under the current path.
    fn add(&mut self, value: Option<&str>) {
        if self.path.len() > MAX_SEARCH_LEN {
            return;
        }
        let id = self.id;
        let ki = match self.index.get_mut(self.path.as_str()) {
            Some(ki) => ki,
            None => self.index.entry(self.path.as_str().into()).or_default(),
        };
        if ki.all.last() != Some(&id) {
            ki.all.push(id);
        }
        let Some(original) = value.filter(|v| v.len() <= MAX_SEARCH_LEN) else { return };
        self.lower.clear();
        push_lower(&mut self.lower, original);
        match ki.values.get_mut(self.lower.as_str()) {
            Some(p) => p.push(id),
            None => {
                self.scratch.clear();
                self.scratch.push_str(original);
                let posting = Posting::new(std::mem::take(&mut self.scratch), &self.lower, id);
                ki.values.insert(self.lower.as_str().into(), posting);
            }
        }
    }
}

/// Appends `s` lowercased (as JavaScript's `toLocaleLowerCase` does for these strings).
fn push_lower(out: &mut String, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else {
        out.push_str(&s.to_lowercase());
    }
}

/// A digest of a location's read result, to notice changes made by another replica.
pub fn digest_of(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}
