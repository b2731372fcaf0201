//! Secret paths: `/`-separated segments, parsed once, the same in every store.

use std::fmt;

/// A path in the secret store, relative to the store's prefix: 1 to 16 segments of
/// `[A-Za-z0-9._-]`, none `.` or `..`, at most 256 characters. Valid as a Vault path, an AWS
/// Secrets Manager name and a file-store key alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretPath(String);

/// Why a string is not a [`SecretPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid secret path `{path}`: {rule}")]
pub struct PathError {
    path: String,
    rule: &'static str,
}

/// Longest path accepted.
const MAX_LEN: usize = 256;
/// Most segments accepted.
const MAX_SEGMENTS: usize = 16;
/// The segment under which team secrets live.
const TEAMS: &str = "teams";

impl SecretPath {
    /// Parses a path such as `teams/payments/git/main`.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        let fail = |rule| Err(PathError { path: path.chars().take(80).collect(), rule });
        if path.is_empty() || path.len() > MAX_LEN {
            return fail("must be 1 to 256 characters");
        }
        let segments: Vec<&str> = path.split('/').collect();
        if segments.len() > MAX_SEGMENTS {
            return fail("at most 16 segments");
        }
        for s in &segments {
            if s.is_empty() {
                return fail("no empty segments (no leading, trailing or double `/`)");
            }
            if *s == "." || *s == ".." {
                return fail("no `.` or `..` segments");
            }
            if !s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
                return fail("segments are made of A-Z, a-z, 0-9, `.`, `_` and `-`");
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// The path of a team's secret: `teams/<team>/<name>`; `name` may have several segments.
    pub fn team(team: &str, name: &str) -> Result<Self, PathError> {
        Self::parse(&format!("{TEAMS}/{team}/{name}"))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The team whose folder this is: `<team>` for `teams/<team>` and every path under it.
    pub fn team_name(&self) -> Option<&str> {
        let mut parts = self.0.splitn(3, '/');
        match (parts.next(), parts.next()) {
            (Some(TEAMS), Some(team)) => Some(team),
            _ => None,
        }
    }

    /// For a path under `teams/<team>/`, the rest (the credential's name).
    pub fn team_item(&self) -> Option<&str> {
        self.team_name().and_then(|t| self.0.get(TEAMS.len() + t.len() + 2..))
    }

    /// Whether `self` is `prefix` or lies under it, by whole segments.
    pub fn starts_with(&self, prefix: &SecretPath) -> bool {
        self.0 == prefix.0 || (self.0.starts_with(&prefix.0) && self.0.as_bytes().get(prefix.0.len()) == Some(&b'/'))
    }

    /// `self` followed by `rest`.
    pub fn join(&self, rest: &str) -> Result<Self, PathError> {
        Self::parse(&format!("{}/{rest}", self.0))
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SecretPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, PathError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        let sixteen = vec!["a"; 16].join("/");
        for ok in ["a", "teams/payments/git/main", "x.y_z-1/2", sixteen.as_str()] {
            assert!(SecretPath::parse(ok).is_ok(), "{ok}");
        }
        let (long, seventeen) = ("x".repeat(257), vec!["a"; 17].join("/"));
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a b", "a/ü", "a:b", long.as_str(), seventeen.as_str()] {
            assert!(SecretPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn team_paths_and_prefixes() {
        let p = SecretPath::team("payments", "git/main").unwrap();
        assert_eq!(p.as_str(), "teams/payments/git/main");
        assert_eq!(p.team_name(), Some("payments"));
        assert_eq!(p.team_item(), Some("git/main"));
        assert_eq!(SecretPath::parse("teams/payments").unwrap().team_name(), Some("payments"));
        assert_eq!(SecretPath::parse("teams/payments").unwrap().team_item(), None);
        assert_eq!(SecretPath::parse("teams").unwrap().team_name(), None);
        assert_eq!(SecretPath::parse("apps/x").unwrap().team_name(), None);
        assert!(p.starts_with(&SecretPath::parse("teams/payments").unwrap()));
        assert!(!p.starts_with(&SecretPath::parse("teams/pay").unwrap()));
        assert!(SecretPath::team("a/../b", "x").is_err());
    }
}
