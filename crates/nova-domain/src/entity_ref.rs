//! Entity references: `[kind:][namespace/]name`, compared case-insensitively.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::names;

/// The namespace an entity is in when it names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A reference to a catalog entity, e.g. `component:default/payment-service`.
///
/// Kind and namespace are stored lowercase; the name keeps its spelling for display.
/// Equality and hashing ignore case, as Backstage's do. The text is shared, so cloning a
/// reference (relations hold many) costs a reference count.
#[derive(Clone, Eq)]
pub struct EntityRef {
    /// `kind:namespace/name`.
    text: Arc<str>,
    /// Byte offset of the `:` after the kind.
    colon: u32,
    /// Byte offset of the `/` after the namespace.
    slash: u32,
}

/// Why a string is not an entity reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    #[error("entity reference {0:?} has no kind (write it as kind:namespace/name)")]
    MissingKind(String),
    #[error("entity reference {0:?} has an empty namespace")]
    EmptyNamespace(String),
    #[error("entity reference {0:?} has an empty name")]
    EmptyName(String),
    #[error("entity reference {reference:?}: {part} {rule}")]
    Invalid { reference: String, part: &'static str, rule: &'static str },
}

impl EntityRef {
    /// Builds a reference from parts that were already validated.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        let text = format!("{}:{}/{name}", kind.to_ascii_lowercase(), namespace.to_ascii_lowercase());
        Self { colon: kind.len() as u32, slash: (kind.len() + 1 + namespace.len()) as u32, text: text.into() }
    }

    /// Parses `[kind:][namespace/]name`, filling in `default_kind` and `default_namespace`
    /// where the string omits them (Backstage's `parseEntityRef`).
    pub fn parse_with(s: &str, default_kind: Option<&str>, default_namespace: &str) -> Result<Self, RefError> {
        let s = s.trim();
        let (kind, rest) = match s.split_once(':') {
            Some((k, rest)) => (Some(k), rest),
            None => (None, s),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, rest),
        };
        let kind = match kind.or(default_kind) {
            Some(k) if !k.is_empty() => k,
            _ => return Err(RefError::MissingKind(s.to_string())),
        };
        let namespace = namespace.unwrap_or(default_namespace);
        if namespace.is_empty() {
            return Err(RefError::EmptyNamespace(s.to_string()));
        }
        if name.is_empty() {
            return Err(RefError::EmptyName(s.to_string()));
        }
        let invalid = |part, rule| RefError::Invalid { reference: s.to_string(), part, rule };
        names::check_kind(kind).map_err(|r| invalid("kind", r))?;
        names::check_object_name(namespace).map_err(|r| invalid("namespace", r))?;
        names::check_object_name(name).map_err(|r| invalid("name", r))?;
        Ok(Self::new(kind, namespace, name))
    }

    /// Parses a full or partial reference with no default kind, in the default namespace.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        Self::parse_with(s, None, DEFAULT_NAMESPACE)
    }

    /// The kind, lowercase.
    pub fn kind(&self) -> &str {
        &self.text[..self.colon as usize]
    }

    /// The namespace, lowercase.
    pub fn namespace(&self) -> &str {
        &self.text[self.colon as usize + 1..self.slash as usize]
    }

    /// The name as written in the entity.
    pub fn name(&self) -> &str {
        &self.text[self.slash as usize + 1..]
    }

    /// `kind:namespace/name`, without allocating.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The fully lowercased form, used as a lookup key.
    pub fn key(&self) -> String {
        self.text.to_ascii_lowercase()
    }

    /// The shortest form a person would write: the namespace is left out when it is `default`.
    pub fn short(&self) -> String {
        if self.namespace() == DEFAULT_NAMESPACE {
            format!("{}:{}", self.kind(), self.name())
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityRef({self})")
    }
}

impl PartialEq for EntityRef {
    fn eq(&self, other: &Self) -> bool {
        // Kind and namespace are stored lowercase, so this ignores case in the name only.
        self.text.eq_ignore_ascii_case(&other.text)
    }
}

impl Hash for EntityRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.text.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl PartialOrd for EntityRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntityRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.kind(), self.namespace())
            .cmp(&(other.kind(), other.namespace()))
            .then_with(|| {
                let (a, b) = (self.name().bytes(), other.name().bytes());
                a.map(|c| c.to_ascii_lowercase()).cmp(b.map(|c| c.to_ascii_lowercase()))
            })
    }
}

impl serde::Serialize for EntityRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for EntityRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntityRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_partial_refs() {
        let r = EntityRef::parse("Component:Default/Payment-Service").unwrap();
        assert_eq!(r.to_string(), "component:default/Payment-Service");
        assert_eq!(r.key(), "component:default/payment-service");
        let g = EntityRef::parse_with("team-a", Some("Group"), "ops").unwrap();
        assert_eq!(g.to_string(), "group:ops/team-a");
        assert_eq!(EntityRef::parse("user:jdoe").unwrap().short(), "user:jdoe");
    }

    #[test]
    fn compares_case_insensitively() {
        assert_eq!(EntityRef::parse("user:default/JDoe").unwrap(), EntityRef::parse("USER:jdoe").unwrap());
    }

    #[test]
    fn refuses_bad_refs() {
        assert!(matches!(EntityRef::parse("jdoe"), Err(RefError::MissingKind(_))));
        assert!(matches!(EntityRef::parse("user:/jdoe"), Err(RefError::EmptyNamespace(_))));
        assert!(matches!(EntityRef::parse("user:default/"), Err(RefError::EmptyName(_))));
        assert!(EntityRef::parse("user:default/a/b").is_err());
        assert!(EntityRef::parse("user:a b").is_err());
    }
}
