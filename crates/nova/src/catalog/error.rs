//! Catalog errors: one per broken location, file, document or entity. They are collected and
//! shown (`/api/v1/catalog/errors`, `nova catalog validate`), never thrown: the rest of the
//! catalog keeps loading.

use serde::{Deserialize, Serialize};

/// What went wrong, in broad strokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The location itself cannot be read (missing file, bad glob, unreachable host).
    Location,
    /// The file is larger than `catalog.max_file_bytes`.
    TooLarge,
    /// The file is not valid YAML or exceeds the parser's budgets (alias bombs, nesting).
    Yaml,
    /// A document is not a valid entity.
    Validation,
    /// Another location already defines an entity with the same reference.
    Conflict,
    /// A Location entity points back at a location already being read.
    Cycle,
}

/// One catalog error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogError {
    /// The location (or file within it) the error belongs to, e.g. `file:/srv/catalog/a.yaml`.
    pub location: String,
    /// 1-based index of the YAML document within the file, when the error is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The entity's reference, when it could be determined.
    #[serde(rename = "entityRef", skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
    /// The field (dotted path) at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The rule that was broken.
    pub rule: String,
    /// Broad category.
    pub kind: ErrorKind,
    /// A sentence for people.
    pub message: String,
}

impl CatalogError {
    /// An error about a whole location or file.
    pub fn location(location: impl Into<String>, kind: ErrorKind, rule: impl Into<String>, message: impl Into<String>) -> Self {
        Self { location: location.into(), document: None, entity_ref: None, field: None, rule: rule.into(), kind, message: message.into() }
    }

    /// `file:document: field: rule` (or `file: message` for whole-file errors), the form
    /// `nova catalog validate` prints.
    pub fn one_line(&self) -> String {
        let mut s = self.location.clone();
        if let Some(d) = self.document {
            s.push_str(&format!(":{d}"));
        }
        match &self.field {
            Some(f) if self.kind == ErrorKind::Validation => s.push_str(&format!(": {f}: {}", self.rule)),
            Some(f) => s.push_str(&format!(": {f}: {}", self.message)),
            None => s.push_str(&format!(": {}", self.message)),
        }
        s
    }
}
