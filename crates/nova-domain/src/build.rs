//! What a build request names, parsed so that nothing a caller writes can become an option,
//! a path outside the repository, or a second command: git refs, paths inside the repository,
//! and build-argument names.

use std::fmt;

/// Why a build parameter was refused; names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildParamError(pub String);

fn refuse(s: impl Into<String>) -> BuildParamError {
    BuildParamError(s.into())
}

fn no_controls(s: &str) -> Result<(), BuildParamError> {
    if s.chars().any(|c| c.is_control()) {
        return Err(refuse("must not contain control characters (newlines, tabs, NUL)"));
    }
    Ok(())
}

/// A git ref to build: a branch, a tag, `refs/...`, or a commit id. Refused: a leading `-`
/// (an option to git), anything `git check-ref-format` refuses (`..`, `@{`, `\`, spaces,
/// `~^:?*[`, a trailing `.lock` or `/`), and more than 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct GitRef(String);

impl GitRef {
    /// Parses a ref as a person writes it.
    pub fn parse(s: &str) -> Result<Self, BuildParamError> {
        if s.is_empty() {
            return Err(refuse("must not be empty"));
        }
        if s.len() > 255 {
            return Err(refuse("must be at most 255 bytes"));
        }
        no_controls(s)?;
        if s.starts_with('-') {
            return Err(refuse("must not start with '-'"));
        }
        if let Some(c) = s.chars().find(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')) {
            return Err(refuse(format!("must not contain {c:?}")));
        }
        if s.contains("..") || s.contains("@{") || s.contains("//") {
            return Err(refuse("must not contain '..', '@{' or '//'"));
        }
        if s == "@" || s.starts_with('/') || s.ends_with('/') || s.ends_with('.') || s.ends_with(".lock") {
            return Err(refuse("must not be '@', start or end with '/', or end with '.' or '.lock'"));
        }
        if s.split('/').any(|part| part.starts_with('.')) {
            return Err(refuse("no component may start with '.'"));
        }
        Ok(Self(s.to_string()))
    }

    /// The ref as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it looks like a full or abbreviated commit id (7 to 40 hex digits).
    pub fn is_commit(&self) -> bool {
        (7..=40).contains(&self.0.len()) && self.0.chars().all(|c| c.is_ascii_hexdigit())
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path inside the repository (a Dockerfile or a build context), normalised: relative, `/`
/// separated, no `.` or empty components, no `..`, no component starting with `-`, at most
/// 1024 bytes. The repository root is `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RepoPath(String);

impl RepoPath {
    /// Parses and normalises a path (`./docker//Dockerfile` becomes `docker/Dockerfile`).
    pub fn parse(s: &str) -> Result<Self, BuildParamError> {
        if s.is_empty() {
            return Err(refuse("must not be empty"));
        }
        if s.len() > 1024 {
            return Err(refuse("must be at most 1024 bytes"));
        }
        no_controls(s)?;
        if s.starts_with('/') || s.starts_with('\\') {
            return Err(refuse("must be relative to the repository root, not absolute"));
        }
        if s.contains('\\') {
            return Err(refuse("must use '/' as the separator"));
        }
        let mut parts = Vec::new();
        for part in s.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(refuse("must not contain '..'")),
                p if p.starts_with('-') => return Err(refuse("no component may start with '-'")),
                p => parts.push(p),
            }
        }
        // A drive letter (`C:`) is judged after normalising, so that `./C:/x` is refused as
        // `C:/x` is, and the normalised form of an accepted path is itself accepted.
        if parts.first().is_some_and(|p| p.chars().nth(1) == Some(':')) {
            return Err(refuse("must be relative to the repository root, not absolute"));
        }
        Ok(Self(if parts.is_empty() { ".".into() } else { parts.join("/") }))
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory that contains this path (`.` for a file at the root).
    pub fn parent(&self) -> RepoPath {
        match self.0.rsplit_once('/') {
            Some((dir, _)) => RepoPath(dir.to_string()),
            None => RepoPath(".".into()),
        }
    }

    /// Whether this is the repository root.
    pub fn is_root(&self) -> bool {
        self.0 == "."
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A build-argument name: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct BuildArgName(String);

impl BuildArgName {
    /// Parses a name.
    pub fn parse(s: &str) -> Result<Self, BuildParamError> {
        let mut chars = s.chars();
        let ok = s.len() <= 128
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok { Ok(Self(s.to_string())) } else { Err(refuse(format!("{s:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 128 bytes)"))) }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_refs() {
        for ok in ["main", "release/1.2", "v1.0.0", "refs/heads/feature-x", "a1b2c3d", "feature_x"] {
            assert!(GitRef::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "--upload-pack=evil", "a..b", "a b", "a\nb", "x@{1}", "a:b", "ref.lock", "/main", "main/", ".hidden", "a/.b", &"x".repeat(256), "a\\b", "a*"] {
            assert!(GitRef::parse(bad).is_err(), "{bad:?}");
        }
        assert!(GitRef::parse("0123abcd").unwrap().is_commit());
        assert!(!GitRef::parse("main").unwrap().is_commit());
    }

    #[test]
    fn repo_paths() {
        assert_eq!(RepoPath::parse("./docker//Dockerfile").unwrap().as_str(), "docker/Dockerfile");
        assert_eq!(RepoPath::parse("Dockerfile").unwrap().parent().as_str(), ".");
        assert_eq!(RepoPath::parse("services/api/Dockerfile").unwrap().parent().as_str(), "services/api");
        assert!(RepoPath::parse(".").unwrap().is_root());
        for bad in ["", "/abs", "../../etc/passwd", "docker/../../x", "a/../b", "-f", "docker/--output=x", "a\nb", "C:/x", "./C:/x", ".//.:///:0", "a\\b", &"a".repeat(1025)] {
            assert!(RepoPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn build_arg_names() {
        assert!(BuildArgName::parse("GO_VERSION").is_ok());
        assert!(BuildArgName::parse("_x1").is_ok());
        for bad in ["", "1X", "A-B", "A B", "A=B", "$X"] {
            assert!(BuildArgName::parse(bad).is_err(), "{bad:?}");
        }
    }
}

/// Checks an image tag against the OCI distribution grammar `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn check_image_tag(s: &str) -> Result<(), BuildParamError> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err(refuse("must not be empty")),
        Some(c) if !(c.is_ascii_alphanumeric() || c == '_') => return Err(refuse("must start with a letter, digit or '_'")),
        Some(_) => {}
    }
    if s.len() > 128 {
        return Err(refuse("must be at most 128 characters"));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(refuse(format!("must contain only letters, digits, '.', '_' and '-', not {c:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod image_tag_tests {
    use super::check_image_tag;

    #[test]
    fn follows_the_oci_grammar() {
        for ok in ["v1", "_x", "1.2.3-rc_1", &"a".repeat(128)] {
            assert!(check_image_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", "a b", "a\nb", &"a".repeat(129)] {
            assert!(check_image_tag(bad).is_err(), "{bad}");
        }
    }
}
