//! Catalog locations: where entity files are read from, and reading them.
//!
//! A location is a file, a directory (read recursively for `*.yaml`, `*.yml`) or a glob.
//! Location entities found in a file add more targets, relative to that file; a target that is
//! already being read is reported as a cycle instead of being read again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nova_domain::{CompactEntity, Entity, EntityKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{CatalogError, ErrorKind};

/// The kinds of location Nova reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocationType {
    /// A single file, or (as Backstage's `file` type is commonly used) a directory or glob.
    File,
    /// A directory, read recursively.
    Directory,
    /// A glob pattern such as `teams/*/catalog-info.yaml`.
    Glob,
}

impl LocationType {
    /// Parses the `type` of a location as the API and config spell it.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "directory" | "dir" => Ok(Self::Directory),
            "glob" => Ok(Self::Glob),
            "url" | "git" => Err(format!("location type {s:?} is not supported by this version of Nova; use file, directory or glob")),
            other => Err(format!("unknown location type {other:?}; expected file, directory or glob")),
        }
    }

    /// The type as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Glob => "glob",
        }
    }
}

/// A validated location: a type and an absolute target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocationSpec {
    #[serde(rename = "type")]
    pub kind: LocationType,
    pub target: String,
}

impl LocationSpec {
    /// Parses a type and target, making relative paths absolute against `base`.
    pub fn parse(kind: &str, target: &str, base: &Path) -> Result<Self, String> {
        let kind = LocationType::parse(kind)?;
        let target = target.trim();
        if target.is_empty() {
            return Err("target must not be empty".into());
        }
        if target.contains('\0') || target.contains('\n') {
            return Err("target must not contain control characters".into());
        }
        let target = target.strip_prefix("file://").unwrap_or(target);
        let absolute = if Path::new(target).is_absolute() { PathBuf::from(target) } else { base.join(target) };
        let target = normalize(&absolute).to_string_lossy().into_owned();
        let is_glob = target.contains(['*', '?', '[']);
        let kind = match kind {
            LocationType::File if is_glob => LocationType::Glob,
            LocationType::File if Path::new(&target).is_dir() => LocationType::Directory,
            other => other,
        };
        Ok(Self { kind, target })
    }

    /// Parses a configured location string, inferring the type from its shape.
    pub fn infer(target: &str, base: &Path) -> Result<Self, String> {
        Self::parse("file", target, base)
    }

    /// How the location appears in errors and annotations: `file:/path`.
    pub fn display(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.target)
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Limits applied while reading.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_file_bytes: u64,
    /// How deep Location entities may nest.
    pub max_depth: usize,
}

/// One entity read from a file, with its 1-based document index.
#[derive(Debug, Clone)]
pub struct ParsedDoc {
    pub document: usize,
    pub entity: CompactEntity,
}

#[derive(Serialize)]
struct StoredDocRef<'a> {
    document: usize,
    entity: &'a serde_json::value::RawValue,
}

/// Stored form of a parsed document: the entity's JSON, validated again when loaded.
#[derive(Deserialize)]
struct StoredDoc {
    document: usize,
    entity: Value,
}

impl Serialize for ParsedDoc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredDocRef { document: self.document, entity: self.entity.json() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ParsedDoc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = StoredDoc::deserialize(d)?;
        let entity = Entity::from_value(stored.entity)
            .map_err(|errors| serde::de::Error::custom(format!("stored entity no longer valid: {}", errors[0])))?;
        Ok(Self { document: stored.document, entity: entity.into_compact() })
    }
}

/// The result of reading one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceRead {
    /// False when the file could not be read or parsed at all; the previous entities of this
    /// file are then kept until a read succeeds.
    pub ok: bool,
    pub entities: Vec<ParsedDoc>,
    pub errors: Vec<CatalogError>,
    /// Targets named by the file's Location entities: (entity ref, document, target).
    #[serde(skip)]
    pub targets: Vec<(String, usize, String)>,
}

/// The result of reading one location: its files, keyed by `file:/path`, in reading order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocationRead {
    pub sources: BTreeMap<String, SourceRead>,
    /// Files in the order they were read, which decides who wins a conflict.
    pub order: Vec<String>,
    /// A failure of the location as a whole (missing directory, bad glob).
    pub error: Option<CatalogError>,
}

impl LocationRead {
    /// Carries over what a failed read must not lose: when the location as a whole failed, all
    /// previous files; when one file failed, that file's previous entities.
    pub fn merge_previous(mut self, previous: Option<&LocationRead>) -> Self {
        let Some(prev) = previous else { return self };
        if self.error.is_some() {
            let error = self.error.take();
            return Self { error, ..prev.clone() };
        }
        for (key, source) in self.sources.iter_mut() {
            if !source.ok {
                if let Some(old) = prev.sources.get(key) {
                    source.entities = old.entities.clone();
                }
            }
        }
        self
    }

    /// Every entity, in reading order, with the file it came from.
    pub fn entities(&self) -> impl Iterator<Item = (&str, &ParsedDoc)> {
        self.order
            .iter()
            .filter_map(|k| self.sources.get_key_value(k))
            .flat_map(|(k, s)| s.entities.iter().map(move |d| (k.as_str(), d)))
    }

    /// Every error, location-level first.
    pub fn errors(&self) -> impl Iterator<Item = &CatalogError> {
        self.error.iter().chain(self.order.iter().filter_map(|k| self.sources.get(k)).flat_map(|s| s.errors.iter()))
    }
}

/// A callback told about each file as it is read (for progress bars).
pub type Progress = std::sync::Arc<dyn Fn(&Path) + Send + Sync>;

/// Reads a location and every location its Location entities point at.
pub fn read_location(spec: &LocationSpec, limits: ReadLimits, progress: Option<&(dyn Fn(&Path) + Send + Sync)>) -> LocationRead {
    let mut reader = Reader { limits, out: LocationRead::default(), visited: BTreeSet::new(), chain: Vec::new(), progress };
    match expand(spec) {
        Ok(files) => {
            let parsed = parse_in_parallel(&files, limits.max_file_bytes);
            for (f, source) in files.iter().zip(parsed) {
                if !reader.visited.contains(f) {
                    reader.read_file(f, 0, Some(source));
                }
            }
        }
        Err(e) => reader.out.error = Some(e),
    }
    reader.out
}

fn source_key(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// The files a location names, sorted (without following Location entities).
pub fn expand(spec: &LocationSpec) -> Result<Vec<PathBuf>, CatalogError> {
    let fail = |rule: &str, message: String| CatalogError::location(spec.display(), ErrorKind::Location, rule, message);
    match spec.kind {
        LocationType::File => {
            let p = PathBuf::from(&spec.target);
            if p.is_dir() {
                return walk_dir(&p).map_err(|e| fail("readable", format!("cannot read directory: {e}")));
            }
            if !p.exists() {
                return Err(fail("exists", "file does not exist".into()));
            }
            Ok(vec![p])
        }
        LocationType::Directory => {
            let p = PathBuf::from(&spec.target);
            if !p.is_dir() {
                return Err(fail("exists", "directory does not exist".into()));
            }
            walk_dir(&p).map_err(|e| fail("readable", format!("cannot read directory: {e}")))
        }
        LocationType::Glob => {
            let paths = glob::glob(&spec.target).map_err(|e| fail("glob", format!("invalid glob pattern: {}", e.msg)))?;
            let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).filter(|p| p.is_file()).collect();
            files.sort();
            Ok(files)
        }
    }
}

fn walk_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

struct Reader<'p> {
    limits: ReadLimits,
    out: LocationRead,
    /// Every file read so far: read once, even when several Location entities name it.
    visited: BTreeSet<PathBuf>,
    /// The files whose Location entities led to the one being read: naming one of them again
    /// is a cycle.
    chain: Vec<PathBuf>,
    progress: Option<&'p (dyn Fn(&Path) + Send + Sync)>,
}

impl Reader<'_> {
    /// Reads one file (or takes its already parsed content) and follows its Location entities.
    fn read_file(&mut self, path: &Path, depth: usize, parsed: Option<SourceRead>) {
        if let Some(p) = self.progress {
            p(path);
        }
        let key = source_key(path);
        self.visited.insert(path.to_path_buf());
        self.out.order.push(key.clone());
        let source = parsed.unwrap_or_else(|| read_source(path, self.limits.max_file_bytes));
        let nested = source.targets.clone();
        self.out.sources.insert(key.clone(), source);
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        for (entity_ref, document, target) in nested {
            let error = |kind, rule: &str, message: String| CatalogError {
                location: key.clone(),
                document: Some(document),
                entity_ref: Some(entity_ref.clone()),
                field: Some("spec.target".into()),
                rule: rule.into(),
                kind,
                message,
            };
            let pushed = match LocationSpec::infer(&target, &base) {
                Err(e) => Err(error(ErrorKind::Location, "valid-target", e)),
                Ok(_) if depth >= self.limits.max_depth => {
                    Err(error(ErrorKind::Location, "max-depth", format!("Location entities nest deeper than {}", self.limits.max_depth)))
                }
                Ok(spec) => match expand(&spec) {
                    Err(e) => Err(error(ErrorKind::Location, &e.rule, format!("target {target:?}: {}", e.message))),
                    Ok(files) => {
                        for f in files {
                            if self.chain.contains(&f) || f == path {
                                let e = error(ErrorKind::Cycle, "no-cycles", format!("target {target:?} leads back to {}, which is being read; not reading it again", f.display()));
                                self.push_error(&key, e);
                            } else if !self.visited.contains(&f) {
                                self.chain.push(path.to_path_buf());
                                self.read_file(&f, depth + 1, None);
                                self.chain.pop();
                            }
                        }
                        Ok(())
                    }
                },
            };
            if let Err(e) = pushed {
                self.push_error(&key, e);
            }
        }
    }

    fn push_error(&mut self, key: &str, e: CatalogError) {
        if let Some(s) = self.out.sources.get_mut(key) {
            s.errors.push(e);
        }
    }
}

/// Reads and parses one file.
fn read_source(path: &Path, max_bytes: u64) -> SourceRead {
    let key = source_key(path);
    match read_text(path, max_bytes) {
        Err(e) => SourceRead { ok: false, entities: vec![], errors: vec![CatalogError { location: key, ..e }], targets: vec![] },
        Ok(text) => parse_documents(&key, &text),
    }
}

/// Reads and parses files on every available core, keeping their order.
fn parse_in_parallel(files: &[PathBuf], max_bytes: u64) -> Vec<SourceRead> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8).min(files.len().max(1));
    if threads <= 1 {
        return files.iter().map(|f| read_source(f, max_bytes)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<SourceRead>> = (0..files.len()).map(|_| None).collect();
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(f) = files.get(i) else { break };
                    let source = read_source(f, max_bytes);
                    slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(source);
                }
            });
        }
    });
    results.into_iter().map(|r| r.expect("every file was parsed")).collect()
}

fn read_text(path: &Path, max_bytes: u64) -> Result<String, CatalogError> {
    let fail = |kind, rule: &str, message: String| CatalogError::location(String::new(), kind, rule, message);
    let meta = std::fs::metadata(path).map_err(|e| fail(ErrorKind::Location, "readable", format!("cannot read file: {e}")))?;
    if meta.len() > max_bytes {
        return Err(fail(
            ErrorKind::TooLarge,
            "max-file-bytes",
            format!("file is {} bytes; the limit (catalog.max_file_bytes) is {max_bytes}", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(ErrorKind::Location, "readable", format!("cannot read file: {e}")))?;
    String::from_utf8(bytes).map_err(|_| fail(ErrorKind::Yaml, "utf-8", "file is not UTF-8 text".into()))
}

/// Parses a multi-document YAML text into validated entities and per-document errors.
pub fn parse_documents(key: &str, text: &str) -> SourceRead {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 100_000,
            max_nodes: 5_000_000,
            max_events: 20_000_000,
            max_depth: 64,
        },
    };
    let docs: Vec<Value> = match serde_saphyr::from_multiple_with_options(text, options) {
        Ok(d) => d,
        Err(e) => {
            let rendered = e.render_with_options(serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off });
            let message = format!("not valid YAML: {rendered}");
            return SourceRead {
                ok: false,
                entities: vec![],
                errors: vec![CatalogError::location(key, ErrorKind::Yaml, "yaml-syntax", message)],
                targets: vec![],
            };
        }
    };
    let mut out = SourceRead { ok: true, entities: Vec::with_capacity(docs.len()), errors: vec![], targets: vec![] };
    for (i, doc) in docs.into_iter().enumerate() {
        let document = i + 1;
        let guessed_ref = guess_ref(&doc);
        match Entity::from_value(doc) {
            Ok(entity) => {
                if entity.kind() == EntityKind::Location {
                    let r = entity.entity_ref().to_string();
                    out.targets.extend(entity.location_targets().into_iter().map(|t| (r.clone(), document, t.to_string())));
                }
                out.entities.push(ParsedDoc { document, entity: entity.into_compact() });
            }
            Err(errors) => out.errors.extend(errors.into_iter().map(|fe| CatalogError {
                location: key.to_string(),
                document: Some(document),
                entity_ref: guessed_ref.clone(),
                message: format!("{} {}", fe.field, fe.rule),
                field: Some(fe.field),
                rule: fe.rule,
                kind: ErrorKind::Validation,
            })),
        }
    }
    out
}

/// The reference an invalid document would have had, when its kind and name are readable.
fn guess_ref(doc: &Value) -> Option<String> {
    let kind = doc.get("kind")?.as_str()?;
    let meta = doc.get("metadata")?;
    let name = meta.get("name")?.as_str()?;
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("default");
    Some(format!("{}:{}/{}", kind.to_ascii_lowercase(), ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReadLimits = ReadLimits { max_file_bytes: 1 << 20, max_depth: 8 };

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    const GROUP: &str = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n";

    #[test]
    fn invalid_document_does_not_stop_the_file() {
        let text = format!("{GROUP}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\nspec: {{}}\n---\n{}", GROUP.replace("team-a", "team-b"));
        let r = parse_documents("file:/t.yaml", &text);
        assert_eq!(r.entities.len(), 2);
        assert!(r.errors.iter().all(|e| e.document == Some(2) && e.entity_ref.as_deref() == Some("component:default/x")));
        assert!(r.errors.iter().any(|e| e.field.as_deref() == Some("spec.owner")));
    }

    #[test]
    fn yaml_errors_and_alias_bombs_are_reported() {
        let r = parse_documents("file:/t.yaml", "a: [unclosed");
        assert!(!r.ok && r.errors[0].kind == ErrorKind::Yaml);
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..12 {
            let prev = (b'a' + (i - 1) as u8) as char;
            let cur = (b'a' + i as u8) as char;
            bomb.push_str(&format!("{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        let r = parse_documents("file:/bomb.yaml", &bomb);
        assert!(!r.ok, "alias bomb must be refused");
    }

    #[test]
    fn location_entities_are_followed_and_cycles_reported() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "teams/a.yaml", GROUP);
        let root = write(
            dir.path(),
            "all.yaml",
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\nspec:\n  targets: [./teams/a.yaml, ./all.yaml]\n",
        );
        let spec = LocationSpec::infer(root.to_str().unwrap(), dir.path()).unwrap();
        let read = read_location(&spec, LIMITS, None);
        let refs: Vec<String> = read.entities().map(|(_, d)| d.entity.entity_ref().to_string()).collect();
        assert_eq!(refs, vec!["location:default/root", "group:default/team-a"]);
        assert!(read.errors().any(|e| e.kind == ErrorKind::Cycle));
    }

    #[test]
    fn failed_file_keeps_previous_entities() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "a.yaml", GROUP);
        let spec = LocationSpec::infer(dir.path().to_str().unwrap(), dir.path()).unwrap();
        assert_eq!(spec.kind, LocationType::Directory);
        let first = read_location(&spec, LIMITS, None);
        std::fs::write(&f, "kind: [broken").unwrap();
        let second = read_location(&spec, LIMITS, None).merge_previous(Some(&first));
        assert_eq!(second.entities().count(), 1);
        assert_eq!(second.errors().count(), 1);
        std::fs::remove_dir_all(dir.path()).unwrap();
        let third = read_location(&spec, LIMITS, None).merge_previous(Some(&second));
        assert_eq!(third.entities().count(), 1, "a vanished location keeps its entities");
        assert!(third.error.is_some());
    }

    #[test]
    fn too_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "big.yaml", &"#".repeat(2048));
        let spec = LocationSpec::infer(f.to_str().unwrap(), dir.path()).unwrap();
        let read = read_location(&spec, ReadLimits { max_file_bytes: 1024, max_depth: 8 }, None);
        assert_eq!(read.errors().next().unwrap().kind, ErrorKind::TooLarge);
    }
}
