//! Catalog locations: where entity files are read from, and reading them.
//!
//! A location is a file, a directory (read recursively for `*.yaml`, `*.yml`), a glob, a git
//! repository (a file, directory or glob inside it, at a ref) or an HTTP(S) URL. Location
//! entities found in a file add more targets, resolved within the same source: relative to the
//! file on disk, inside the same repository and commit, or against the file's URL. A target that
//! is already being read is reported as a cycle instead of being read again.
//!
//! Reading goes through a [`Source`]: [`LocalSource`] here, the git and URL sources in
//! [`super::remote`]. The [`Reader`] only follows Location entities and records results.
// A `CatalogError` is what gets recorded for a file, so sources return it by value; it is
// produced at most once per file, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nova_domain::{CompactEntity, Entity, EntityKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{CatalogError, ErrorKind};
use super::remote::{GitSource, RemoteContext, UrlSource};
use crate::config::TypedLocation;

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
    /// A git repository: `URL#REF:PATH`, fetched shallowly into a cache.
    Git,
    /// An HTTP(S) URL of one file.
    Url,
}

impl LocationType {
    /// Parses the `type` of a location as the API and config spell it.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "file" => Ok(Self::File),
            "directory" | "dir" => Ok(Self::Directory),
            "glob" => Ok(Self::Glob),
            "git" => Ok(Self::Git),
            "url" => Ok(Self::Url),
            other => Err(format!("unknown location type {other:?}; expected file, directory, glob, git or url")),
        }
    }

    /// The type as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Directory => "directory",
            Self::Glob => "glob",
            Self::Git => "git",
            Self::Url => "url",
        }
    }

    /// Whether reading it goes over the network.
    pub fn is_remote(self) -> bool {
        matches!(self, Self::Git | Self::Url)
    }
}

/// A validated location: a type and a target — an absolute path, a URL, or for git the
/// canonical `URL#REF:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocationSpec {
    #[serde(rename = "type")]
    pub kind: LocationType,
    pub target: String,
}

/// The parts of a git location's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitTarget {
    /// What `git fetch` is given: `https://`, `http://`, `ssh://`, `git://`, `file://` or
    /// `user@host:path`.
    pub url: String,
    /// A branch, tag, commit or `HEAD`.
    pub reference: String,
    /// A file, directory or glob inside the repository, relative to its root.
    pub path: String,
}

/// The file a git location reads when it names no path, as in Backstage.
pub const DEFAULT_GIT_PATH: &str = "catalog-info.yaml";

impl GitTarget {
    /// Parses `URL[#REF[:PATH]]`, filling in `HEAD` and [`DEFAULT_GIT_PATH`].
    pub fn parse(target: &str) -> Result<Self, String> {
        let (url, fragment) = match target.rsplit_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (target, None),
        };
        let (reference, path) = match fragment.map(|f| f.split_once(':').unwrap_or((f, ""))) {
            Some((r, p)) => (r, p),
            None => ("", ""),
        };
        Self::from_parts(url, Some(reference).filter(|r| !r.is_empty()), Some(path).filter(|p| !p.is_empty()))
    }

    /// Validates each part.
    pub fn from_parts(url: &str, reference: Option<&str>, path: Option<&str>) -> Result<Self, String> {
        let url = url.trim();
        check_git_url(url)?;
        let reference = reference.map(str::trim).unwrap_or("HEAD");
        check_git_ref(reference)?;
        let path = normalize_repo_path(path.map(str::trim).unwrap_or(DEFAULT_GIT_PATH)).ok_or_else(|| "path: must stay inside the repository".to_string())?;
        if path.is_empty() {
            return Err("path: must name a file, directory or glob inside the repository".into());
        }
        Ok(Self { url: url.to_string(), reference: reference.to_string(), path })
    }

    /// The canonical target, `URL#REF:PATH`.
    pub fn target(&self) -> String {
        format!("{}#{}:{}", self.url, self.reference, self.path)
    }
}

fn check_git_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{url:?} is not a git URL"));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if !["https", "http", "ssh", "git", "file"].contains(&scheme) {
            return Err(format!("git URL scheme {scheme:?} is not allowed; use https, http, ssh, git or file"));
        }
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
        if parsed.password().is_some() || (scheme.starts_with("http") && !parsed.username().is_empty()) {
            return Err("credentials must not be written in the URL; configure them in catalog.credentials".into());
        }
        return Ok(());
    }
    // scp-like `user@host:path`: a colon before any slash.
    match url.split_once(':') {
        Some((host, _)) if !host.is_empty() && !host.contains('/') && !host.contains("::") => Ok(()),
        _ => Err(format!("{url:?} is not a git URL (https://, ssh://, git://, file:// or user@host:path)")),
    }
}

fn check_git_ref(r: &str) -> Result<(), String> {
    let bad = r.is_empty()
        || r.starts_with('-')
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with(".lock")
        || r.contains("..")
        || r.contains("@{")
        || r.chars().any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad { Err(format!("ref {r:?} is not a valid branch, tag or commit name")) } else { Ok(()) }
}

/// Normalizes a slash-separated path inside a repository; `None` when `..` leaves the root.
pub fn normalize_repo_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
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
        match kind {
            LocationType::Git => return Ok(Self { kind, target: GitTarget::parse(target)?.target() }),
            LocationType::Url => return Ok(Self { kind, target: super::remote::check_http_url(target)?.to_string() }),
            _ => {}
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

    /// Parses a configured table, where a git location may name `ref` and `path` separately.
    pub fn parse_typed(t: &TypedLocation, base: &Path) -> Result<Self, String> {
        if t.reference.is_none() && t.path.is_none() {
            return Self::parse(&t.kind, &t.target, base);
        }
        if LocationType::parse(&t.kind)? != LocationType::Git {
            return Err("ref and path are only for git locations".into());
        }
        if t.target.contains('#') {
            return Err("write ref and path either in the target (URL#REF:PATH) or as keys, not both".into());
        }
        let git = GitTarget::from_parts(&t.target, t.reference.as_deref(), t.path.as_deref())?;
        Ok(Self { kind: LocationType::Git, target: git.target() })
    }

    /// Parses a location written as one string, inferring the type from its shape:
    /// `git:URL#REF:PATH`, `url:URL` or a bare `http(s)://` URL, otherwise a path or glob.
    pub fn infer(target: &str, base: &Path) -> Result<Self, String> {
        let target = target.trim();
        if let Some(rest) = target.strip_prefix("git:") {
            return Self::parse("git", rest, base);
        }
        if let Some(rest) = target.strip_prefix("url:") {
            return Self::parse("url", rest, base);
        }
        if target.starts_with("https://") || target.starts_with("http://") {
            return Self::parse("url", target, base);
        }
        Self::parse("file", target, base)
    }

    /// How the location appears in errors and annotations: `file:/path`, `url:https://...`.
    pub fn display(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.target)
    }

    /// The parts of a git location.
    pub fn git(&self) -> Option<GitTarget> {
        (self.kind == LocationType::Git).then(|| GitTarget::parse(&self.target).expect("git targets are stored in canonical form"))
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

impl ReadLimits {
    /// The limits `[catalog]` sets.
    pub fn from_config(config: &crate::config::CatalogConfig) -> Self {
        Self { max_file_bytes: config.max_file_bytes, max_depth: 16 }
    }
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
    /// The HTTP entity tag of a URL file, sent as `If-None-Match` on the next refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Targets named by the file's Location entities: (entity ref, document, target).
    #[serde(skip)]
    pub targets: Vec<(String, usize, String)>,
}

impl SourceRead {
    /// A file that could not be read at all.
    fn failed(error: CatalogError) -> Self {
        Self { ok: false, entities: vec![], errors: vec![error], etag: None, targets: vec![] }
    }

    /// A previous read reused as it is (HTTP 304): its targets, which are not stored, are taken
    /// from its Location entities again.
    fn reused(previous: &SourceRead) -> Self {
        let mut read = previous.clone();
        read.targets = previous
            .entities
            .iter()
            .filter(|d| d.entity.kind() == EntityKind::Location)
            .flat_map(|d| {
                let r = d.entity.entity_ref().to_string();
                Entity::from_value(d.entity.to_value()).map(|e| e.location_targets().into_iter().map(|t| (r.clone(), d.document, t.to_string())).collect()).unwrap_or_else(|_| Vec::new())
            })
            .collect();
        read
    }
}

/// The result of reading one location: its files, keyed by `file:/path` (`git:...`, `url:...`),
/// in reading order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocationRead {
    pub sources: BTreeMap<String, SourceRead>,
    /// Files in the order they were read, which decides who wins a conflict.
    pub order: Vec<String>,
    /// A failure of the location as a whole (missing directory, bad glob, unreachable host).
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

/// A callback told about each file (its source key) as it is read, for progress bars.
pub type Progress = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// What reading a location needs besides the location.
pub struct ReadContext<'a> {
    pub limits: ReadLimits,
    /// Caches, timeouts and credentials for git and URL locations.
    pub remote: &'a RemoteContext,
    /// The last read of the same location: URL files are asked for with `If-None-Match`.
    pub previous: Option<&'a LocationRead>,
    pub progress: Option<&'a (dyn Fn(&str) + Send + Sync)>,
}

/// One file of a source: its key (as in [`LocationRead::sources`]) and where the source finds
/// it (a path, a path inside the repository, a URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub key: String,
    pub locator: String,
}

/// What a source answers for one file.
pub enum Fetched {
    /// The file's text, with the HTTP entity tag when there is one.
    Text { text: String, etag: Option<String> },
    /// The file has not changed since the previous read (HTTP 304).
    Unchanged,
}

/// Where a location's files come from. Implementations: [`LocalSource`], [`GitSource`],
/// [`UrlSource`]. Errors name the rule broken; the reader fills in the location.
pub trait Source {
    /// The files the location itself names (`previous` is the location's last read). An error
    /// here fails the location as a whole, so every previous entity is kept.
    fn root(&mut self, previous: Option<&LocationRead>) -> Result<Vec<SourceFile>, CatalogError>;
    /// The files a Location entity's `target` names, relative to the file `from`.
    fn resolve(&mut self, from: &SourceFile, target: &str) -> Result<Vec<SourceFile>, CatalogError>;
    /// A file's text; `previous` is that file's last read, for conditional requests.
    fn read(&mut self, file: &SourceFile, previous: Option<&SourceRead>) -> Result<Fetched, CatalogError>;
    /// The root files read and parsed up front, in order, by a source that can do so on every
    /// core; `None` reads each as the reader reaches it.
    fn read_roots(&mut self, _files: &[SourceFile]) -> Option<Vec<SourceRead>> {
        None
    }
}

/// Reads a location and every location its Location entities point at.
pub fn read_location(spec: &LocationSpec, ctx: &ReadContext<'_>) -> LocationRead {
    let mut read = match spec.kind {
        LocationType::File | LocationType::Directory | LocationType::Glob => read_with(&mut LocalSource { spec, limits: ctx.limits }, ctx),
        LocationType::Git => read_with(&mut GitSource::new(spec, ctx.remote, ctx.limits), ctx),
        LocationType::Url => read_with(&mut UrlSource::new(spec, ctx.remote, ctx.limits), ctx),
    };
    if let Some(e) = read.error.as_mut().filter(|e| e.location.is_empty()) {
        e.location = spec.display();
    }
    read
}

fn read_with(source: &mut dyn Source, ctx: &ReadContext<'_>) -> LocationRead {
    let mut reader = Reader { ctx, source, out: LocationRead::default(), visited: BTreeSet::new(), chain: Vec::new() };
    match reader.source.root(ctx.previous) {
        Ok(files) => {
            let mut parsed = reader.source.read_roots(&files).map(Vec::into_iter);
            for f in &files {
                let source = parsed.as_mut().and_then(Iterator::next);
                if !reader.visited.contains(&f.key) {
                    reader.read_file(f, 0, source);
                }
            }
        }
        Err(e) => reader.out.error = Some(e),
    }
    reader.out
}

/// Files, directories and globs on this machine's file system.
pub struct LocalSource<'a> {
    spec: &'a LocationSpec,
    limits: ReadLimits,
}

fn local_file(path: PathBuf) -> SourceFile {
    SourceFile { key: format!("file:{}", path.display()), locator: path.to_string_lossy().into_owned() }
}

impl Source for LocalSource<'_> {
    fn root(&mut self, _previous: Option<&LocationRead>) -> Result<Vec<SourceFile>, CatalogError> {
        Ok(expand(self.spec)?.into_iter().map(local_file).collect())
    }

    fn resolve(&mut self, from: &SourceFile, target: &str) -> Result<Vec<SourceFile>, CatalogError> {
        let base = Path::new(&from.locator).parent().unwrap_or(Path::new("/"));
        let spec = LocationSpec::infer(target, base).map_err(|e| CatalogError::location("", ErrorKind::Location, "valid-target", e))?;
        if spec.kind.is_remote() {
            let message = "a Location entity in a file location may only name files, directories or globs".to_string();
            return Err(CatalogError::location("", ErrorKind::Location, "valid-target", message));
        }
        Ok(expand(&spec)?.into_iter().map(local_file).collect())
    }

    fn read(&mut self, file: &SourceFile, _previous: Option<&SourceRead>) -> Result<Fetched, CatalogError> {
        read_text(Path::new(&file.locator), self.limits.max_file_bytes).map(|text| Fetched::Text { text, etag: None })
    }

    fn read_roots(&mut self, files: &[SourceFile]) -> Option<Vec<SourceRead>> {
        Some(parse_in_parallel(files, self.limits.max_file_bytes))
    }
}

/// Reads and parses one local file.
fn read_source(file: &SourceFile, max_bytes: u64) -> SourceRead {
    match read_text(Path::new(&file.locator), max_bytes) {
        Err(e) => SourceRead::failed(CatalogError { location: file.key.clone(), ..e }),
        Ok(text) => parse_documents(&file.key, &text),
    }
}

/// Reads and parses local files on every available core, keeping their order.
fn parse_in_parallel(files: &[SourceFile], max_bytes: u64) -> Vec<SourceRead> {
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

/// The files a local location names, sorted (without following Location entities).
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
        LocationType::Git | LocationType::Url => Err(fail("local", "not a location on this machine's file system".into())),
    }
}

/// Whether a file name is read when a directory is: `*.yaml` and `*.yml`.
pub fn is_catalog_file(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn walk_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() && is_catalog_file(&name) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

struct Reader<'c, 's> {
    ctx: &'c ReadContext<'c>,
    source: &'s mut dyn Source,
    out: LocationRead,
    /// Every file read so far: read once, even when several Location entities name it.
    visited: BTreeSet<String>,
    /// The files whose Location entities led to the one being read: naming one of them again
    /// is a cycle.
    chain: Vec<String>,
}

impl Reader<'_, '_> {
    /// Reads one file (or takes its already parsed content) and follows its Location entities.
    fn read_file(&mut self, file: &SourceFile, depth: usize, parsed: Option<SourceRead>) {
        if let Some(p) = self.ctx.progress {
            p(&file.key);
        }
        let key = file.key.clone();
        self.visited.insert(key.clone());
        self.out.order.push(key.clone());
        let previous = self.ctx.previous.and_then(|p| p.sources.get(&key));
        let source = match parsed {
            Some(parsed) => parsed,
            None => match self.source.read(file, previous) {
                Err(e) => SourceRead::failed(CatalogError { location: key.clone(), ..e }),
                Ok(Fetched::Text { text, etag }) => SourceRead { etag, ..parse_documents(&key, &text) },
                Ok(Fetched::Unchanged) => SourceRead::reused(previous.expect("a source answers Unchanged only when there is a previous read")),
            },
        };
        let nested = source.targets.clone();
        self.out.sources.insert(key.clone(), source);
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
            if depth >= self.ctx.limits.max_depth {
                let e = error(ErrorKind::Location, "max-depth", format!("Location entities nest deeper than {}", self.ctx.limits.max_depth));
                self.push_error(&key, e);
                continue;
            }
            let files = match self.source.resolve(file, &target) {
                Ok(files) => files,
                Err(e) => {
                    let message = if e.rule == "valid-target" { e.message } else { format!("target {target:?}: {}", e.message) };
                    self.push_error(&key, error(ErrorKind::Location, &e.rule, message));
                    continue;
                }
            };
            for f in files {
                if self.chain.contains(&f.key) || f.key == key {
                    let e = error(ErrorKind::Cycle, "no-cycles", format!("target {target:?} leads back to {}, which is being read; not reading it again", f.locator));
                    self.push_error(&key, e);
                } else if !self.visited.contains(&f.key) {
                    self.chain.push(key.clone());
                    self.read_file(&f, depth + 1, None);
                    self.chain.pop();
                }
            }
        }
    }

    fn push_error(&mut self, key: &str, e: CatalogError) {
        if let Some(s) = self.out.sources.get_mut(key) {
            s.errors.push(e);
        }
    }
}

fn read_text(path: &Path, max_bytes: u64) -> Result<String, CatalogError> {
    let fail = |kind, rule: &str, message: String| CatalogError::location(String::new(), kind, rule, message);
    let meta = std::fs::metadata(path).map_err(|e| fail(ErrorKind::Location, "readable", format!("cannot read file: {e}")))?;
    if meta.len() > max_bytes {
        return Err(too_large(meta.len(), max_bytes));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(ErrorKind::Location, "readable", format!("cannot read file: {e}")))?;
    utf8(bytes)
}

/// The error for a file over `catalog.max_file_bytes`.
pub fn too_large(size: u64, max_bytes: u64) -> CatalogError {
    CatalogError::location(String::new(), ErrorKind::TooLarge, "max-file-bytes", format!("file is {size} bytes; the limit (catalog.max_file_bytes) is {max_bytes}"))
}

/// Text from bytes, or the error for a file that is not UTF-8.
pub fn utf8(bytes: Vec<u8>) -> Result<String, CatalogError> {
    String::from_utf8(bytes).map_err(|_| CatalogError::location(String::new(), ErrorKind::Yaml, "utf-8", "file is not UTF-8 text"))
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
            return SourceRead::failed(CatalogError::location(key, ErrorKind::Yaml, "yaml-syntax", message));
        }
    };
    let mut out = SourceRead { ok: true, entities: Vec::with_capacity(docs.len()), errors: vec![], etag: None, targets: vec![] };
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

    fn read_local(spec: &LocationSpec, limits: ReadLimits) -> LocationRead {
        let remote = RemoteContext::new(std::env::temp_dir().join("nova-unit-unused"), &crate::config::CatalogConfig::default(), Default::default());
        read_location(spec, &ReadContext { limits, remote: &remote, previous: None, progress: None })
    }

    #[test]
    fn git_targets_are_canonical_and_checked() {
        let base = Path::new("/");
        let s = LocationSpec::infer("git:https://git.example.com/org/cat.git", base).unwrap();
        assert_eq!(s.display(), "git:https://git.example.com/org/cat.git#HEAD:catalog-info.yaml");
        let s = LocationSpec::infer("git:git@host:org/cat.git#v1.2:teams/./*/x.yaml", base).unwrap();
        assert_eq!(s.git().unwrap(), GitTarget { url: "git@host:org/cat.git".into(), reference: "v1.2".into(), path: "teams/*/x.yaml".into() });
        for bad in ["git:ext::sh -c id", "git:-uhttps://x", "git:https://x/r.git#main:../../etc/passwd", "git:https://x/r.git#ma in", "git:https://u:p@x/r.git", "git:https://x/r.git#--upload-pack=x"] {
            assert!(LocationSpec::infer(bad, base).is_err(), "{bad} must be refused");
        }
        let t = TypedLocation { kind: "git".into(), target: "https://x/r.git".into(), reference: Some("main".into()), path: Some("c/".into()) };
        assert_eq!(LocationSpec::parse_typed(&t, base).unwrap().target, "https://x/r.git#main:c");
        let t = TypedLocation { kind: "file".into(), target: "x".into(), reference: Some("main".into()), path: None };
        assert!(LocationSpec::parse_typed(&t, base).is_err());
        assert_eq!(LocationSpec::infer("https://h/a.yaml", base).unwrap().kind, LocationType::Url);
        assert!(LocationSpec::infer("url:ftp://h/a.yaml", base).is_err());
    }

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
        let read = read_local(&spec, LIMITS);
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
        let first = read_local(&spec, LIMITS);
        std::fs::write(&f, "kind: [broken").unwrap();
        let second = read_local(&spec, LIMITS).merge_previous(Some(&first));
        assert_eq!(second.entities().count(), 1);
        assert_eq!(second.errors().count(), 1);
        std::fs::remove_dir_all(dir.path()).unwrap();
        let third = read_local(&spec, LIMITS).merge_previous(Some(&second));
        assert_eq!(third.entities().count(), 1, "a vanished location keeps its entities");
        assert!(third.error.is_some());
    }

    #[test]
    fn too_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "big.yaml", &"#".repeat(2048));
        let spec = LocationSpec::infer(f.to_str().unwrap(), dir.path()).unwrap();
        let read = read_local(&spec, ReadLimits { max_file_bytes: 1024, max_depth: 8 });
        assert_eq!(read.errors().next().unwrap().kind, ErrorKind::TooLarge);
    }
}
