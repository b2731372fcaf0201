//! The OCI and Docker v2 manifest formats Nova reads: image manifests, indexes (manifest
//! lists) and image configs. Schema 1 is never asked for and refused if sent.

use std::collections::BTreeMap;

use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header for manifests: the four current formats, and nothing that lets a
/// registry down-convert to schema 1 (which changes the digest).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    pub platform: Option<PlatformSpec>,
    pub annotations: BTreeMap<String, String>,
}

/// A descriptor's platform.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Any manifest: the fields of an image manifest and of an index, told apart by media type.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct AnyManifest {
    pub schema_version: u32,
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
}

/// What a manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

impl AnyManifest {
    /// Parses a manifest, using the response's content type when the body names none.
    pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<(Self, ManifestKind, String), String> {
        let m: AnyManifest = serde_json::from_slice(body).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
        if m.schema_version != 2 {
            return Err(format!("manifest schema version {} is not supported (only schema 2 / OCI)", m.schema_version));
        }
        let content_type = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        let media_type = m.media_type.clone().or(content_type).unwrap_or_default();
        let kind = match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => ManifestKind::Index,
            OCI_MANIFEST | DOCKER_MANIFEST => ManifestKind::Image,
            // OCI allows omitting mediaType: tell by shape.
            _ if !m.manifests.is_empty() => ManifestKind::Index,
            _ if m.config.is_some() => ManifestKind::Image,
            other => return Err(format!("unsupported manifest media type {other:?}")),
        };
        Ok((m, kind, media_type))
    }

    /// Compressed size of an image manifest's layers.
    pub fn layer_size(&self) -> i64 {
        self.layers.iter().map(|l| l.size.max(0)).sum()
    }

    /// An index's platform entries, without attestation manifests (BuildKit stores provenance
    /// as `unknown/unknown` entries).
    pub fn platform_entries(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|d| {
            d.annotations.get("vnd.docker.reference.type").is_none_or(|t| t != "attestation-manifest")
                && d.platform.as_ref().is_none_or(|p| p.os != "unknown")
        })
    }
}

/// The parts of an image config Nova shows.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ImageConfig {
    pub created: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub config: ConfigSection,
}

/// The `config` section of an image config.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct ConfigSection {
    #[serde(rename = "Labels")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_media_type_and_shape() {
        let (_, k, _) = AnyManifest::parse(br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#, None).unwrap();
        assert_eq!(k, ManifestKind::Index);
        let (m, k, mt) = AnyManifest::parse(br#"{"schemaVersion":2,"config":{"digest":"sha256:x","size":3},"layers":[{"size":5},{"size":7}]}"#, Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8")).unwrap();
        assert_eq!((k, mt.as_str(), m.layer_size()), (ManifestKind::Image, OCI_MANIFEST, 12));
        assert!(AnyManifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).unwrap_err().contains("schema version 1"));
        assert!(AnyManifest::parse(b"<html>", None).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn attestations_are_not_platforms() {
        let (m, _, _) = AnyManifest::parse(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
              {"digest":"sha256:b","size":1,"platform":{"os":"unknown","architecture":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#,
            None,
        )
        .unwrap();
        assert_eq!(m.platform_entries().count(), 1);
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms("2026-11-23T10:00:00Z"), Some(1_795_428_000_000));
        assert_eq!(rfc3339_ms("2026-11-23T10:00:00.123456789Z"), Some(1_795_428_000_123));
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
