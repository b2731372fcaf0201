//! Copying an image by digest from one repository to another, keeping its digest: the
//! manifest or index exactly as stored, every child manifest, the config and layer blobs, then
//! the artifact's tags. Whatever the target already has is skipped (`HEAD`), so a copy that
//! was interrupted resumes where it stopped. Blobs are mounted across repositories of one
//! registry where it allows, and streamed from the source otherwise.

use nova_domain::Digest;
use serde::Serialize;

use super::client::Client;
use super::manifest::{AnyManifest, ManifestKind};
use super::push::{self, Mount, RawManifest};
use crate::registry::provider::RegistryError;

/// Deepest nesting of indexes followed (an index of indexes is allowed; deeper is refused).
const MAX_DEPTH: u32 = 3;

/// One side of a copy: a registry client and a repository in it.
pub struct Endpoint<'a> {
    pub client: &'a Client,
    pub repository: &'a str,
}

/// What a copy did, for the audit record and tests.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// Manifests (indexes and images) put into the target.
    pub manifests_copied: u32,
    /// Manifests the target already had.
    pub manifests_present: u32,
    /// Blobs linked by a cross-repository mount.
    pub blobs_mounted: u32,
    /// Blobs streamed from the source.
    pub blobs_streamed: u32,
    /// Blobs the target already had.
    pub blobs_present: u32,
    /// Bytes streamed.
    pub bytes_streamed: u64,
    /// Tags put (those already pointing at the digest are not counted).
    pub tags_put: u32,
}

/// Copies `digest` from `from` into `to` with `tags`. `mount` says whether both are in one
/// registry (so the target may link blobs from the source repository); `chunk` is the upload
/// request size.
pub async fn copy_image(from: &Endpoint<'_>, to: &Endpoint<'_>, mount: bool, digest: &Digest, tags: &[String], chunk: usize) -> Result<CopyReport, RegistryError> {
    let mut copy = Copy { from, to, mount, chunk, report: CopyReport::default() };
    let root = copy.manifest(digest.as_str(), 0).await?;
    let push_scope = push::push_scope(to.repository);
    for tag in tags {
        if push::manifest_digest(to.client, to.repository, tag, &push_scope).await?.as_deref() == Some(digest.as_str()) {
            continue;
        }
        let manifest = match &root {
            Some(m) => m.clone(),
            None => push::get_manifest(to.client, to.repository, digest.as_str()).await?,
        };
        push::put_manifest(to.client, to.repository, tag, &manifest).await?;
        copy.report.tags_put += 1;
    }
    Ok(copy.report)
}

struct Copy<'a> {
    from: &'a Endpoint<'a>,
    to: &'a Endpoint<'a>,
    mount: bool,
    chunk: usize,
    report: CopyReport,
}

impl Copy<'_> {
    /// Copies one manifest and what it references; answers it when it was read (`None`: the
    /// target had it, with everything it references, since registries refuse dangling manifests).
    async fn manifest(&mut self, digest: &str, depth: u32) -> Result<Option<RawManifest>, RegistryError> {
        Digest::parse(digest).map_err(|e| RegistryError::BadResponse(format!("a manifest names a bad digest: {e}")))?;
        if depth >= MAX_DEPTH {
            return Err(RegistryError::BadResponse(format!("manifest {digest}: indexes nested deeper than {MAX_DEPTH} are not copied")));
        }
        if push::manifest_digest(self.to.client, self.to.repository, digest, &push::push_scope(self.to.repository)).await?.is_some() {
            self.report.manifests_present += 1;
            return Ok(None);
        }
        let raw = push::get_manifest(self.from.client, self.from.repository, digest).await?;
        let (parsed, kind, _) = AnyManifest::parse(&raw.bytes, Some(&raw.media_type)).map_err(RegistryError::BadResponse)?;
        match kind {
            ManifestKind::Index => {
                for child in &parsed.manifests {
                    Box::pin(self.manifest(&child.digest, depth + 1)).await?;
                }
            }
            ManifestKind::Image => {
                for blob in parsed.config.iter().chain(&parsed.layers) {
                    self.blob(&blob.digest).await?;
                }
            }
        }
        push::put_manifest(self.to.client, self.to.repository, digest, &raw).await?;
        self.report.manifests_copied += 1;
        Ok(Some(raw))
    }

    async fn blob(&mut self, digest: &str) -> Result<(), RegistryError> {
        Digest::parse(digest).map_err(|e| RegistryError::BadResponse(format!("a manifest names a bad blob digest: {e}")))?;
        let (to, from) = (self.to, self.from);
        if push::blob_exists(to.client, to.repository, digest).await? {
            self.report.blobs_present += 1;
            return Ok(());
        }
        let upload = if self.mount {
            match push::mount(to.client, to.repository, digest, from.repository).await? {
                Mount::Mounted => {
                    self.report.blobs_mounted += 1;
                    return Ok(());
                }
                Mount::Upload(url) => url,
            }
        } else {
            push::start_upload(to.client, to.repository).await?
        };
        let source = from.client.blob_response(from.repository, digest).await?;
        self.report.bytes_streamed += push::upload(to.client, to.repository, upload, digest, source, self.chunk).await?;
        self.report.blobs_streamed += 1;
        Ok(())
    }
}
