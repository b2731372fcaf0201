//! Container image names: repositories, tags, digests, ECR repository ARNs, image references
//! and the catalog annotations that link a component to its repositories.
//!
//! The rules are the OCI Distribution specification's (repository path components, tag
//! grammar, digest grammar) and AWS's ARN format for ECR repositories.

use std::fmt;

/// Longest repository name accepted (ECR's limit; the OCI spec recommends 255 with a host).
pub const MAX_REPOSITORY_LEN: usize = 256;
/// Longest tag (OCI Distribution: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub const MAX_TAG_LEN: usize = 128;

/// Why an image name does not parse. Each message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageNameError {
    #[error("repository name {0:?}: {1}")]
    Repository(String, &'static str),
    #[error("tag {0:?}: {1}")]
    Tag(String, &'static str),
    #[error("tag prefix {0:?}: {1}")]
    TagPrefix(String, &'static str),
    #[error("digest {0:?}: {1}")]
    Digest(String, &'static str),
    #[error("ECR repository ARN {0:?}: {1}")]
    Arn(String, &'static str),
}

fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A repository path: `component(/component)*`, each component lowercase letters and digits
/// separated by `.`, `_`, `__` or runs of `-` (OCI Distribution's `path-component`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct RepositoryName(String);

impl RepositoryName {
    /// Parses a repository path.
    pub fn parse(s: &str) -> Result<Self, ImageNameError> {
        let err = |rule| ImageNameError::Repository(s.to_string(), rule);
        if s.is_empty() || s.len() > MAX_REPOSITORY_LEN {
            return Err(err("must be 1 to 256 characters long"));
        }
        if s.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(err("must be lowercase"));
        }
        for component in s.split('/') {
            check_path_component(component).map_err(err)?;
        }
        Ok(Self(s.to_string()))
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_path_component(c: &str) -> Result<(), &'static str> {
    let b = c.as_bytes();
    if b.is_empty() {
        return Err("path components must not be empty (no leading, trailing or double '/')");
    }
    if c == "." || c == ".." {
        return Err("path components must not be '.' or '..'");
    }
    if !lower_alnum(b[0]) || !lower_alnum(b[b.len() - 1]) {
        return Err("each path component must start and end with a lowercase letter or digit");
    }
    let mut i = 0;
    while i < b.len() {
        if lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or one or more '-'.
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err("may contain only lowercase letters, digits, '.', '_', '-' and '/'"),
        }
        if !b.get(i).copied().is_some_and(lower_alnum) {
            return Err("separators ('.', '_', '__', '-') must sit between letters or digits");
        }
    }
    Ok(())
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn tag_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')
}

/// An image tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ImageTag(String);

impl ImageTag {
    /// Parses a tag.
    pub fn parse(s: &str) -> Result<Self, ImageNameError> {
        let err = |rule| ImageNameError::Tag(s.to_string(), rule);
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_TAG_LEN {
            return Err(err("must be 1 to 128 characters long"));
        }
        if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
            return Err(err("must start with a letter, digit or '_'"));
        }
        if !b.iter().copied().all(tag_char) {
            return Err(err("may contain only letters, digits, '.', '_' and '-'"));
        }
        Ok(Self(s.to_string()))
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The tag prefix of a component in a consolidated repository (`backend-`): the start of a
/// valid tag, 1 to 127 characters, so at least one character is left for the version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TagPrefix(String);

impl TagPrefix {
    /// Parses a tag prefix.
    pub fn parse(s: &str) -> Result<Self, ImageNameError> {
        let err = |rule| ImageNameError::TagPrefix(s.to_string(), rule);
        let b = s.as_bytes();
        if b.is_empty() || b.len() >= MAX_TAG_LEN {
            return Err(err("must be 1 to 127 characters long"));
        }
        if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') || !b.iter().copied().all(tag_char) {
            return Err(err("must be the start of a valid tag: a letter, digit or '_', then letters, digits, '.', '_' or '-'"));
        }
        Ok(Self(s.to_string()))
    }

    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The rest of `tag` after this prefix, when the tag starts with it (case-sensitive, as
    /// tags are) and something is left.
    pub fn strip<'a>(&self, tag: &'a str) -> Option<&'a str> {
        tag.strip_prefix(self.0.as_str()).filter(|rest| !rest.is_empty())
    }

    /// Whether either prefix starts with the other, so a tag could belong to both.
    pub fn overlaps(&self, other: &TagPrefix) -> bool {
        self.0.starts_with(&other.0) || other.0.starts_with(&self.0)
    }
}

impl fmt::Display for TagPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest, `algorithm:encoded`: `sha256` (64 lowercase hex digits) or `sha512` (128).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// Parses a digest.
    pub fn parse(s: &str) -> Result<Self, ImageNameError> {
        let err = |rule| ImageNameError::Digest(s.to_string(), rule);
        let (algorithm, hex) = s.split_once(':').ok_or_else(|| err("must be algorithm:hex, e.g. sha256:<64 hex digits>"))?;
        let want = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(err("algorithm must be sha256 or sha512")),
        };
        if hex.len() != want || !hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return Err(err("encoded part must be lowercase hex of the algorithm's length"));
        }
        Ok(Self(s.to_string()))
    }

    /// The digest as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256:` and the first 12 hex digits, for compact display.
    pub fn short(&self) -> &str {
        let end = self.0.find(':').map_or(0, |i| i + 1) + 12;
        &self.0[..end.min(self.0.len())]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ECR repository ARN: `arn:<partition>:ecr:<region>:<12-digit account>:repository/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EcrRepositoryArn {
    pub partition: String,
    pub region: String,
    pub account_id: String,
    pub repository: RepositoryName,
}

impl EcrRepositoryArn {
    /// Parses an ARN.
    pub fn parse(s: &str) -> Result<Self, ImageNameError> {
        let err = |rule| ImageNameError::Arn(s.to_string(), rule);
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(err("must be arn:aws:ecr:<region>:<account id>:repository/<name>"));
        };
        if arn != "arn" {
            return Err(err("must start with 'arn:'"));
        }
        if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov" | "aws-iso" | "aws-iso-b" | "aws-iso-e" | "aws-iso-f" | "aws-eusc") {
            return Err(err("partition must be an AWS partition such as 'aws'"));
        }
        if service != "ecr" {
            return Err(err("service must be 'ecr'"));
        }
        check_region(region).map_err(err)?;
        check_account(account).map_err(err)?;
        let name = resource.strip_prefix("repository/").ok_or_else(|| err("resource must be repository/<name>"))?;
        let repository = RepositoryName::parse(name).map_err(|e| match e {
            ImageNameError::Repository(_, rule) => err(rule),
            other => other,
        })?;
        Ok(Self { partition: partition.into(), region: region.into(), account_id: account.into(), repository })
    }
}

impl fmt::Display for EcrRepositoryArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "arn:{}:ecr:{}:{}:repository/{}", self.partition, self.region, self.account_id, self.repository)
    }
}

/// An AWS region name such as `eu-west-1` or `us-gov-west-1`.
pub fn check_region(s: &str) -> Result<(), &'static str> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok();
    if ok { Ok(()) } else { Err("region must look like eu-west-1") }
}

/// A 12-digit AWS account id.
pub fn check_account(s: &str) -> Result<(), &'static str> {
    if s.len() == 12 && s.bytes().all(|c| c.is_ascii_digit()) { Ok(()) } else { Err("account id must be 12 digits") }
}

/// What identifies an image inside a repository: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ImageSelector {
    Tag(ImageTag),
    Digest(Digest),
}

/// A full image reference: `host[:port]/repository` followed by `:tag` or `@digest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// Registry host (and port), e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com`.
    pub host: String,
    pub repository: RepositoryName,
    pub selector: ImageSelector,
}

impl ImageReference {
    /// The reference pinned to a digest: what to pull when the same bytes must come back.
    pub fn by_digest(host: &str, repository: &RepositoryName, digest: &Digest) -> Self {
        Self { host: host.to_string(), repository: repository.clone(), selector: ImageSelector::Digest(digest.clone()) }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            ImageSelector::Tag(t) => write!(f, "{}/{}:{t}", self.host, self.repository),
            ImageSelector::Digest(d) => write!(f, "{}/{}@{d}", self.host, self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for ok in ["a", "payment-service", "data/etl-jobs", "a__b", "a---b", "x.y/z_w", "storefront/web2", &"a".repeat(256)] {
            assert!(RepositoryName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "Payment", "a/../b", "..", "a/./b", "/a", "a/", "a//b", "a___b", "-a", "a-", "a b", "a:b", "a@b", "é", &"a".repeat(257)] {
            assert!(RepositoryName::parse(bad).is_err(), "{bad}");
        }
        assert!(RepositoryName::parse("A").unwrap_err().to_string().contains("lowercase"));
        assert!(RepositoryName::parse("a/../b").unwrap_err().to_string().contains("'..'"));
    }

    #[test]
    fn tags_at_and_past_the_limit() {
        let max = format!("v{}", "1".repeat(127));
        assert_eq!(max.len(), 128);
        assert!(ImageTag::parse(&max).is_ok());
        assert!(ImageTag::parse(&format!("{max}1")).unwrap_err().to_string().contains("128"));
        for ok in ["latest", "v1.2.3", "_x", "backend-v1.0.0", "20261123T101500Z-abc1234"] {
            assert!(ImageTag::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", "a b"] {
            assert!(ImageTag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_strip_and_overlap() {
        let p = TagPrefix::parse("backend-").unwrap();
        assert_eq!(p.strip("backend-v1.0.0"), Some("v1.0.0"));
        assert_eq!(p.strip("backend-"), None);
        assert_eq!(p.strip("Backend-v1"), None);
        assert!(p.overlaps(&TagPrefix::parse("back").unwrap()));
        assert!(!p.overlaps(&TagPrefix::parse("frontend-").unwrap()));
        assert!(TagPrefix::parse(&"a".repeat(128)).is_err());
        assert!(TagPrefix::parse("-x").is_err());
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Digest::parse(&d).unwrap().short(), "sha256:abababababab");
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in ["sha256:abc", "md5:00", "sha256", &format!("sha256:{}", "AB".repeat(32))] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let a = EcrRepositoryArn::parse("arn:aws:ecr:eu-west-1:123456789012:repository/data/etl-jobs").unwrap();
        assert_eq!(a.region, "eu-west-1");
        assert_eq!(a.account_id, "123456789012");
        assert_eq!(a.repository.as_str(), "data/etl-jobs");
        assert_eq!(a.to_string(), "arn:aws:ecr:eu-west-1:123456789012:repository/data/etl-jobs");
        assert!(EcrRepositoryArn::parse("arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/x").is_ok());
        for (bad, rule) in [
            ("arn:aws:ecr:eu-west-1:123:repository/x", "12 digits"),
            ("arn:aws:s3:eu-west-1:123456789012:repository/x", "'ecr'"),
            ("arn:aws:ecr:EU:123456789012:repository/x", "region"),
            ("arn:aws:ecr:eu-west-1:123456789012:repo/x", "repository/<name>"),
            ("arn:aws:ecr:eu-west-1:123456789012:repository/X", "lowercase"),
            ("arn:aws:ecr:eu-west-1:123456789012:repository/a/../b", "'..'"),
            ("not an arn", "must be"),
        ] {
            let e = EcrRepositoryArn::parse(bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }

    #[test]
    fn references_print_for_pulling() {
        let repo = RepositoryName::parse("platform/nova").unwrap();
        let d = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
        assert_eq!(ImageReference::by_digest("registry.example.com:5000", &repo, &d).to_string(), format!("registry.example.com:5000/platform/nova@{d}"));
        let t = ImageReference { host: "h".into(), repository: repo, selector: ImageSelector::Tag(ImageTag::parse("v1").unwrap()) };
        assert_eq!(t.to_string(), "h/platform/nova:v1");
    }
}
