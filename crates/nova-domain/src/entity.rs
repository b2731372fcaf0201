//! Catalog entities in Backstage's `backstage.io/v1alpha1` format, validated with its rules.

use serde_json::{Map, Value};

use crate::entity_ref::{DEFAULT_NAMESPACE, EntityRef};
use crate::names;
use crate::relations::{self, Relation, RelationField};

/// The kinds Nova understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    Component,
    System,
    Domain,
    Group,
    User,
    Resource,
    Api,
    Location,
}

impl EntityKind {
    /// Every kind, in the order the console lists them.
    pub const ALL: [EntityKind; 8] = [
        Self::Component,
        Self::Api,
        Self::Resource,
        Self::System,
        Self::Domain,
        Self::Group,
        Self::User,
        Self::Location,
    ];

    /// Parses a kind case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s))
    }

    /// The kind as Backstage spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Component => "Component",
            Self::System => "System",
            Self::Domain => "Domain",
            Self::Group => "Group",
            Self::User => "User",
            Self::Resource => "Resource",
            Self::Api => "API",
            Self::Location => "Location",
        }
    }

    fn required_spec(self) -> &'static [(&'static str, SpecField)] {
        use SpecField::*;
        match self {
            Self::Component => &[("type", Str), ("lifecycle", Str), ("owner", Str)],
            Self::Api => &[("type", Str), ("lifecycle", Str), ("owner", Str), ("definition", Str)],
            Self::Resource => &[("type", Str), ("owner", Str)],
            Self::System | Self::Domain => &[("owner", Str)],
            Self::Group => &[("type", Str), ("children", List)],
            Self::User => &[("memberOf", List)],
            Self::Location => &[],
        }
    }

    fn relation_fields(self) -> &'static [RelationField] {
        match self {
            Self::Component => relations::COMPONENT,
            Self::Api => relations::API,
            Self::Resource => relations::RESOURCE,
            Self::System => relations::SYSTEM,
            Self::Domain => relations::DOMAIN,
            Self::Group => relations::GROUP,
            Self::User => relations::USER,
            Self::Location => &[],
        }
    }
}

#[derive(Clone, Copy)]
enum SpecField {
    Str,
    List,
}

/// A validated entity in compact form, for holding many in memory: the document is kept as JSON
/// text. It is made only from an [`Entity`], so it is valid by construction.
#[derive(Debug, Clone)]
pub struct CompactEntity {
    kind: EntityKind,
    entity_ref: EntityRef,
    relations: Box<[Relation]>,
    json: Box<serde_json::value::RawValue>,
}

impl CompactEntity {
    /// The entity's kind.
    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// `kind:namespace/name`.
    pub fn entity_ref(&self) -> &EntityRef {
        &self.entity_ref
    }

    /// The relations the entity's own spec declares.
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }

    /// The document as JSON text.
    pub fn json(&self) -> &serde_json::value::RawValue {
        &self.json
    }

    /// The document, parsed.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.json.get()).expect("compact entities hold JSON that serde_json wrote")
    }
}

/// The API versions accepted for the built-in kinds.
pub const API_VERSIONS: [&str; 2] = ["backstage.io/v1alpha1", "backstage.io/v1beta1"];

/// One validation failure: the field (a dotted path) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self { field: field.into(), rule: rule.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

/// A validated entity. The JSON document is kept whole (unknown spec fields are preserved, as
/// Backstage does); `metadata.namespace` is filled in when it was omitted.
#[derive(Debug, Clone)]
pub struct Entity {
    kind: EntityKind,
    entity_ref: EntityRef,
    relations: Vec<Relation>,
    value: Value,
}

impl Entity {
    /// Validates one document. On failure every broken rule is returned, not only the first.
    pub fn from_value(mut value: Value) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(root) = value.as_object_mut() else {
            return Err(vec![FieldError::new("(document)", "must be a mapping with apiVersion, kind and metadata")]);
        };
        let kind = match root.get("kind") {
            Some(Value::String(k)) => match EntityKind::parse(k) {
                Some(kind) => Some(kind),
                None => {
                    let rule = match names::check_kind(k) {
                        Ok(()) => format!("unknown kind {k:?}; expected one of Component, API, Resource, System, Domain, Group, User, Location"),
                        Err(r) => r.to_string(),
                    };
                    errors.push(FieldError::new("kind", rule));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("kind", "must be a string"));
                None
            }
            None => {
                errors.push(FieldError::new("kind", "is required"));
                None
            }
        };
        match root.get("apiVersion") {
            Some(Value::String(v)) if API_VERSIONS.contains(&v.as_str()) => {}
            Some(Value::String(v)) => errors.push(FieldError::new(
                "apiVersion",
                format!("{v:?} is not supported; use backstage.io/v1alpha1 or backstage.io/v1beta1"),
            )),
            Some(_) => errors.push(FieldError::new("apiVersion", "must be a string")),
            None => errors.push(FieldError::new("apiVersion", "is required")),
        }
        let (name, namespace) = match root.get_mut("metadata") {
            Some(Value::Object(meta)) => validate_metadata(meta, &mut errors),
            Some(_) => {
                errors.push(FieldError::new("metadata", "must be a mapping"));
                (None, None)
            }
            None => {
                errors.push(FieldError::new("metadata", "is required"));
                (None, None)
            }
        };
        let mut relations = Vec::new();
        if let Some(kind) = kind {
            match root.get("spec") {
                Some(Value::Object(spec)) => {
                    validate_spec(kind, spec, namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE), &mut relations, &mut errors)
                }
                Some(_) => errors.push(FieldError::new("spec", "must be a mapping")),
                None if kind.required_spec().is_empty() => {}
                None => errors.push(FieldError::new("spec", "is required")),
            }
            if kind == EntityKind::Location {
                validate_location_spec(root.get("spec"), &mut errors);
            }
        }
        match (kind, name, errors.is_empty()) {
            (Some(kind), Some(name), true) => {
                let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
                let entity_ref = EntityRef::new(kind.as_str(), &namespace, &name);
                relations.sort();
                relations.dedup();
                Ok(Self { kind, entity_ref, relations, value })
            }
            _ => Err(errors),
        }
    }

    /// The compact form, for keeping many entities in memory.
    pub fn into_compact(self) -> CompactEntity {
        CompactEntity {
            kind: self.kind,
            json: serde_json::value::to_raw_value(&self.value).expect("entity documents serialize"),
            entity_ref: self.entity_ref,
            relations: self.relations.into_boxed_slice(),
        }
    }

    /// The entity's kind.
    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// `kind:namespace/name`.
    pub fn entity_ref(&self) -> &EntityRef {
        &self.entity_ref
    }

    /// The relations this entity's own spec declares (the catalog adds their reverses to the
    /// targets).
    pub fn relations(&self) -> &[Relation] {
        &self.relations
    }

    /// The whole document.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// A string at `metadata.<key>`.
    pub fn metadata_str(&self, key: &str) -> Option<&str> {
        self.value.get("metadata")?.get(key)?.as_str()
    }

    /// A string at `spec.<key>`.
    pub fn spec_str(&self, key: &str) -> Option<&str> {
        self.value.get("spec")?.get(key)?.as_str()
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.value.get("metadata")?.get("annotations")?.get(key)?.as_str()
    }

    /// `metadata.tags`.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.value
            .get("metadata")
            .and_then(|m| m.get("tags"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// For a Location: its targets (`spec.target` and `spec.targets`), in order.
    pub fn location_targets(&self) -> Vec<&str> {
        let spec = self.value.get("spec");
        let one = spec.and_then(|s| s.get("target")).and_then(Value::as_str);
        let many = spec.and_then(|s| s.get("targets")).and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
        one.into_iter().chain(many).collect()
    }
}

fn validate_metadata(meta: &mut Map<String, Value>, errors: &mut Vec<FieldError>) -> (Option<String>, Option<String>) {
    let name = match meta.get("name") {
        Some(Value::String(n)) => match names::check_object_name(n) {
            Ok(()) => Some(n.clone()),
            Err(rule) => {
                errors.push(FieldError::new("metadata.name", format!("{n:?} {rule}")));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("metadata.name", "must be a string"));
            None
        }
        None => {
            errors.push(FieldError::new("metadata.name", "is required"));
            None
        }
    };
    let namespace = match meta.get("namespace") {
        Some(Value::String(ns)) => match names::check_dns_label(ns) {
            Ok(()) => Some(ns.clone()),
            Err(rule) => {
                errors.push(FieldError::new("metadata.namespace", format!("{ns:?} {rule}")));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new("metadata.namespace", "must be a string"));
            None
        }
        None => {
            meta.insert("namespace".into(), Value::String(DEFAULT_NAMESPACE.into()));
            None
        }
    };
    for key in ["title", "description"] {
        if meta.get(key).is_some_and(|v| !v.is_string()) {
            errors.push(FieldError::new(format!("metadata.{key}"), "must be a string"));
        }
    }
    check_string_map(meta.get("labels"), "metadata.labels", Some(names::check_label_value), errors);
    check_string_map(meta.get("annotations"), "metadata.annotations", None, errors);
    match meta.get("tags") {
        None => {}
        Some(Value::Array(tags)) => {
            for (i, tag) in tags.iter().enumerate() {
                match tag.as_str() {
                    Some(t) => {
                        if let Err(rule) = names::check_tag(t) {
                            errors.push(FieldError::new(format!("metadata.tags[{i}]"), format!("{t:?} {rule}")));
                        }
                    }
                    None => errors.push(FieldError::new(format!("metadata.tags[{i}]"), "must be a string")),
                }
            }
        }
        Some(_) => errors.push(FieldError::new("metadata.tags", "must be a list of strings")),
    }
    match meta.get("links") {
        None => {}
        Some(Value::Array(links)) => {
            for (i, link) in links.iter().enumerate() {
                match link.get("url") {
                    Some(Value::String(u)) if !u.is_empty() => {}
                    _ => errors.push(FieldError::new(format!("metadata.links[{i}].url"), "is required and must be a non-empty string")),
                }
                for key in ["title", "icon", "type"] {
                    if link.get(key).is_some_and(|v| !v.is_string()) {
                        errors.push(FieldError::new(format!("metadata.links[{i}].{key}"), "must be a string"));
                    }
                }
            }
        }
        Some(_) => errors.push(FieldError::new("metadata.links", "must be a list of {url, title} mappings")),
    }
    (name, namespace)
}

fn check_string_map(
    value: Option<&Value>,
    field: &str,
    check_value: Option<fn(&str) -> Result<(), &'static str>>,
    errors: &mut Vec<FieldError>,
) {
    match value {
        None => {}
        Some(Value::Object(map)) => {
            for (key, v) in map {
                if let Err(rule) = names::check_key(key) {
                    errors.push(FieldError::new(format!("{field}.{key}"), format!("key {rule}")));
                }
                match v.as_str() {
                    Some(s) => {
                        if let Some(Err(rule)) = check_value.map(|c| c(s)) {
                            errors.push(FieldError::new(format!("{field}.{key}"), format!("value {s:?} {rule}")));
                        }
                    }
                    None => errors.push(FieldError::new(format!("{field}.{key}"), "value must be a string")),
                }
            }
        }
        Some(_) => errors.push(FieldError::new(field, "must be a mapping of strings")),
    }
}

fn validate_spec(
    kind: EntityKind,
    spec: &Map<String, Value>,
    namespace: &str,
    relations: &mut Vec<Relation>,
    errors: &mut Vec<FieldError>,
) {
    for (key, shape) in kind.required_spec() {
        let ok = match (shape, spec.get(*key)) {
            (SpecField::Str, Some(Value::String(s))) => !s.is_empty(),
            (SpecField::List, Some(Value::Array(_))) => true,
            _ => false,
        };
        if !ok {
            let rule = match shape {
                SpecField::Str => "is required and must be a non-empty string",
                SpecField::List => "is required and must be a list (it may be empty)",
            };
            errors.push(FieldError::new(format!("spec.{key}"), rule));
        }
    }
    for rf in kind.relation_fields() {
        let field = format!("spec.{}", rf.field);
        let values: Vec<(String, &Value)> = match spec.get(rf.field) {
            None => continue,
            Some(Value::Array(items)) if rf.many => items.iter().enumerate().map(|(i, v)| (format!("{field}[{i}]"), v)).collect(),
            Some(v) if !rf.many => vec![(field.clone(), v)],
            Some(_) => {
                errors.push(FieldError::new(field, "must be a list of entity references"));
                continue;
            }
        };
        for (path, v) in values {
            let Some(s) = v.as_str().filter(|s| !s.is_empty()) else {
                errors.push(FieldError::new(path, "must be a non-empty string (an entity reference)"));
                continue;
            };
            match EntityRef::parse_with(s, rf.default_kind, namespace) {
                Ok(target) => relations.push(Relation { kind: rf.relation, target }),
                Err(e) => errors.push(FieldError::new(path, e.to_string())),
            }
        }
    }
}

fn validate_location_spec(spec: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = spec.and_then(Value::as_object);
    let target = spec.and_then(|s| s.get("target"));
    let targets = spec.and_then(|s| s.get("targets"));
    if target.is_none() && targets.is_none() {
        errors.push(FieldError::new("spec.target", "a Location needs spec.target or spec.targets"));
    }
    if target.is_some_and(|t| !t.as_str().is_some_and(|s| !s.is_empty())) {
        errors.push(FieldError::new("spec.target", "must be a non-empty string"));
    }
    if let Some(t) = targets {
        if !t.as_array().is_some_and(|a| a.iter().all(|v| v.as_str().is_some_and(|s| !s.is_empty()))) {
            errors.push(FieldError::new("spec.targets", "must be a list of non-empty strings"));
        }
    }
    if let Some(p) = spec.and_then(|s| s.get("presence")) {
        if !matches!(p.as_str(), Some("required" | "optional")) {
            errors.push(FieldError::new("spec.presence", "must be \"required\" or \"optional\""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RelationType;
    use serde_json::json;

    fn component(spec: Value) -> Value {
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "svc"}, "spec": spec})
    }

    #[test]
    fn valid_component_gets_namespace_and_relations() {
        let e = Entity::from_value(component(json!({
            "type": "service", "lifecycle": "production", "owner": "team-a", "system": "payments",
            "dependsOn": ["resource:db"], "providesApis": ["pay-api"]
        })))
        .unwrap();
        assert_eq!(e.entity_ref().to_string(), "component:default/svc");
        assert_eq!(e.metadata_str("namespace"), Some("default"));
        let rels: Vec<String> = e.relations().iter().map(|r| format!("{} {}", r.kind.as_str(), r.target)).collect();
        assert!(rels.contains(&"ownedBy group:default/team-a".to_string()));
        assert!(rels.contains(&"partOf system:default/payments".to_string()));
        assert!(rels.contains(&"dependsOn resource:default/db".to_string()));
        assert!(rels.contains(&"providesApi api:default/pay-api".to_string()));
    }

    #[test]
    fn reports_every_error() {
        let errs = Entity::from_value(json!({
            "apiVersion": "v9", "kind": "Component",
            "metadata": {"name": "-bad-", "tags": ["UPPER"], "labels": {"x": 5}},
            "spec": {"type": "service", "dependsOn": ["nokind"]}
        }))
        .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        for f in ["apiVersion", "metadata.name", "metadata.tags[0]", "metadata.labels.x", "spec.lifecycle", "spec.owner", "spec.dependsOn[0]"] {
            assert!(fields.contains(&f), "missing {f} in {errs:?}");
        }
    }

    #[test]
    fn unknown_kind_and_non_mapping() {
        let errs = Entity::from_value(json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}})).unwrap_err();
        assert!(errs[0].rule.contains("unknown kind"));
        assert!(Entity::from_value(json!("just a string")).is_err());
    }

    #[test]
    fn group_requires_children_and_links_members() {
        let g = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "t", "namespace": "ops"},
            "spec": {"type": "team", "children": [], "parent": "org", "members": ["ann"]}});
        let e = Entity::from_value(g).unwrap();
        assert!(e.relations().iter().any(|r| r.kind == RelationType::ChildOf && r.target.to_string() == "group:ops/org"));
        assert!(e.relations().iter().any(|r| r.kind == RelationType::HasMember && r.target.to_string() == "user:ops/ann"));
        let bad = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "t"}, "spec": {"type": "team"}});
        assert_eq!(Entity::from_value(bad).unwrap_err()[0].field, "spec.children");
    }

    #[test]
    fn location_needs_target() {
        let l = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "l"}, "spec": {"targets": ["./a.yaml", "./b.yaml"]}});
        assert_eq!(Entity::from_value(l).unwrap().location_targets(), vec!["./a.yaml", "./b.yaml"]);
        let l = json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "l"}});
        assert!(Entity::from_value(l).is_err());
    }
}
