//! The write side of the Distribution API, over [`Client`]: existence checks (`HEAD`),
//! manifests read as exact bytes and put back by digest or tag, cross-repository blob mounts,
//! and blob uploads streamed from another registry's response (one monolithic `PUT` for a small
//! blob, `PATCH` chunks then a closing `PUT` for a large one), checked against the digest.

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use super::client::{Client, Payload};
use super::manifest::MANIFEST_ACCEPT;
use crate::registry::provider::RegistryError;

/// Blob bytes sent per upload request; a blob up to this size goes in one `PUT`.
pub const UPLOAD_CHUNK: usize = 8 * 1024 * 1024;

const OCTET_STREAM: &str = "application/octet-stream";

/// A manifest exactly as the registry stored it: its bytes and media type decide its digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Bytes,
    pub media_type: String,
}

/// What a mount request did.
pub enum Mount {
    /// The registry linked the blob from the other repository.
    Mounted,
    /// It could not (or would not): an upload was started at this URL instead.
    Upload(url::Url),
}

/// The token scope for pushing to `repository`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn status_error(what: &str, status: StatusCode) -> RegistryError {
    match status {
        StatusCode::NOT_FOUND => RegistryError::NotFound(format!("{what}: the registry answered {status}")),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Denied(format!("{what}: the registry answered {status}")),
        s => RegistryError::BadResponse(format!("{what}: the registry answered {s}")),
    }
}

/// Whether the blob is in the repository.
pub async fn blob_exists(client: &Client, repository: &str, digest: &str) -> Result<bool, RegistryError> {
    let url = client.url(&format!("v2/{repository}/blobs/{digest}"), &[]);
    let response = client.send(Method::HEAD, url, None, &push_scope(repository)).await?;
    match response.status() {
        s if s.is_success() || s.is_redirection() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        s => Err(status_error(&format!("HEAD blob {digest} in {repository}"), s)),
    }
}

/// The digest the manifest `reference` (a digest or tag) has in the repository, if it is there.
pub async fn manifest_digest(client: &Client, repository: &str, reference: &str, scope: &str) -> Result<Option<String>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{reference}"), &[]);
    let response = client.send(Method::HEAD, url, Some(MANIFEST_ACCEPT), scope).await?;
    match response.status() {
        s if s.is_success() => Ok(response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| reference.starts_with("sha256:").then(|| reference.to_string()))),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(status_error(&format!("HEAD manifest {reference} in {repository}"), s)),
    }
}

/// Reads the manifest with `digest` as stored, refusing bytes that do not hash to it.
pub async fn get_manifest(client: &Client, repository: &str, digest: &str) -> Result<RawManifest, RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{digest}"), &[]);
    let response = client.send(Method::GET, url, Some(MANIFEST_ACCEPT), &format!("repository:{repository}:pull")).await?;
    if !response.status().is_success() {
        return Err(status_error(&format!("manifest {digest} in {repository}"), response.status()));
    }
    let body = client.read(response).await?;
    if sha256(&body.bytes) != digest {
        return Err(RegistryError::BadResponse(format!("manifest {digest} in {repository}: the content does not match its digest")));
    }
    let content_type = body.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
    }
    let named = serde_json::from_slice::<Typed>(&body.bytes).ok().and_then(|t| t.media_type);
    let media_type = named.or(content_type).ok_or_else(|| RegistryError::BadResponse(format!("manifest {digest} in {repository} has no media type")))?;
    Ok(RawManifest { bytes: body.bytes, media_type })
}

/// Puts the manifest under `reference` (its digest or a tag), byte for byte.
pub async fn put_manifest(client: &Client, repository: &str, reference: &str, manifest: &RawManifest) -> Result<(), RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{reference}"), &[]);
    let body = Payload::new(&manifest.media_type, manifest.bytes.clone());
    let response = client.send_body(Method::PUT, url, None, Some(&body), &push_scope(repository)).await?;
    if response.status() != StatusCode::CREATED && !response.status().is_success() {
        return Err(status_error(&format!("PUT manifest {reference} in {repository}"), response.status()));
    }
    Ok(())
}

/// Asks the registry to link blob `digest` from repository `from` (same registry); when it
/// cannot, the upload it started instead is answered.
pub async fn mount(client: &Client, repository: &str, digest: &str, from: &str) -> Result<Mount, RegistryError> {
    let url = client.url(&format!("v2/{repository}/blobs/uploads/"), &[("mount", digest), ("from", from)]);
    let scope = format!("{} repository:{from}:pull", push_scope(repository));
    let response = client.send_body(Method::POST, url, None, Some(&Payload::new(OCTET_STREAM, Bytes::new())), &scope).await?;
    match response.status() {
        StatusCode::CREATED => Ok(Mount::Mounted),
        StatusCode::ACCEPTED => Ok(Mount::Upload(location(client, &response)?)),
        s => Err(status_error(&format!("mount blob {digest} into {repository}"), s)),
    }
}

/// Starts an upload session.
pub async fn start_upload(client: &Client, repository: &str) -> Result<url::Url, RegistryError> {
    let url = client.url(&format!("v2/{repository}/blobs/uploads/"), &[]);
    let response = client.send_body(Method::POST, url, None, Some(&Payload::new(OCTET_STREAM, Bytes::new())), &push_scope(repository)).await?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(status_error(&format!("start an upload into {repository}"), response.status()));
    }
    location(client, &response)
}

fn location(client: &Client, response: &reqwest::Response) -> Result<url::Url, RegistryError> {
    let value = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError::BadResponse("an upload answer without a Location header".into()))?;
    client.resolve(value)
}

/// Streams `source` (a blob being read from wherever it lives) into the upload at `upload`,
/// `chunk` bytes per request, and closes it with the digest. Bytes that do not hash to
/// `digest` are refused before the upload is closed. Answers the bytes sent.
pub async fn upload(client: &Client, repository: &str, mut upload: url::Url, digest: &str, mut source: reqwest::Response, chunk: usize) -> Result<u64, RegistryError> {
    let scope = push_scope(repository);
    let mut hasher = Sha256::new();
    let mut buffer = BytesMut::new();
    let mut sent: u64 = 0;
    let read_error = |e: reqwest::Error| RegistryError::Unavailable(format!("reading blob {digest} from its source failed: {}", e.without_url()));
    while let Some(bytes) = source.chunk().await.map_err(read_error)? {
        hasher.update(&bytes);
        buffer.extend_from_slice(&bytes);
        while buffer.len() >= chunk {
            let part = buffer.split_to(chunk).freeze();
            upload = patch(client, &scope, upload, sent, part.clone()).await?;
            sent += part.len() as u64;
        }
    }
    if format!("sha256:{}", hex::encode(hasher.finalize())) != digest {
        return Err(RegistryError::BadResponse(format!("blob {digest}: the source's bytes do not match its digest")));
    }
    // The rest (a small blob: all of it) goes with the closing PUT.
    let rest = buffer.freeze();
    let total = sent + rest.len() as u64;
    upload.query_pairs_mut().append_pair("digest", digest);
    let response = client.send_body(Method::PUT, upload, None, Some(&Payload::new(OCTET_STREAM, rest)), &scope).await?;
    if response.status() != StatusCode::CREATED {
        return Err(status_error(&format!("finish the upload of blob {digest} into {repository}"), response.status()));
    }
    Ok(total)
}

/// Sends one chunk at `offset`; answers where the next goes.
async fn patch(client: &Client, scope: &str, upload: url::Url, offset: u64, part: Bytes) -> Result<url::Url, RegistryError> {
    let end = offset + part.len() as u64 - 1;
    let body = Payload { content_type: OCTET_STREAM, bytes: part, content_range: Some(format!("{offset}-{end}")) };
    let response = client.send_body(Method::PATCH, upload, None, Some(&body), scope).await?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(status_error(&format!("upload bytes {offset}-{end}"), response.status()));
    }
    location(client, &response)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
