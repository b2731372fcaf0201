//! Real CNCF distribution registries for tests (`docker-registry serve`), each on a free port
//! with its own storage: anonymous, htpasswd basic auth, or bearer tokens from an RS256 token
//! issuer run here (a real JWT the registry verifies against the issuer's certificate, as its
//! `auth.token` settings expect). Images are pushed through the Distribution API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// How the registry authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Basic,
    Token,
}

/// The reader's credentials (pull only); the pusher is separate.
pub const READER: (&str, &str) = ("nova-reader", "reader-s3cret");
pub const PUSHER: (&str, &str) = ("pusher", "pusher-s3cret");
const SERVICE: &str = "nova-test-registry";
const ISSUER: &str = "nova-test-issuer";

/// What the token issuer saw: (authenticated user or "-", scopes asked).
pub type IssuerLog = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// What a blob CDN (the registry's redirect target) saw: (path, had an Authorization header).
pub type CdnLog = Arc<Mutex<Vec<(String, bool)>>>;

/// A running registry.
pub struct TestRegistry {
    pub url: String,
    pub port: u16,
    pub auth: Auth,
    pub dir: tempfile::TempDir,
    pub issuer_log: IssuerLog,
    pub cdn_log: CdnLog,
    child: Child,
    key_pem: Option<Vec<u8>>,
    cert_der_b64: Option<String>,
    client: reqwest::Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where blob downloads go instead of the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    None,
    /// A CDN on this machine that serves the registry's storage and logs what it saw.
    LocalCdn,
    /// A fixed base URL (e.g. a metadata address Nova must refuse).
    To(String),
}

/// The docker-registry binary, or a loud skip (a failure under CI).
pub fn binary() -> Option<String> {
    let found = std::env::var("NOVA_TEST_REGISTRY_BIN").ok().or_else(|| Path::new("/usr/bin/docker-registry").exists().then(|| "/usr/bin/docker-registry".to_string()));
    super::require("docker-registry (CNCF distribution)", found, "apt-get install docker-registry; scripts/test exports NOVA_TEST_REGISTRY_BIN")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestRegistry {
    /// Starts a registry; `None` when docker-registry is not installed (outside CI).
    pub async fn start(auth: Auth) -> Option<Self> {
        Self::start_with(auth, Redirect::None).await
    }

    /// Starts a registry whose blob downloads redirect elsewhere.
    pub async fn start_with(auth: Auth, redirect: Redirect) -> Option<Self> {
        let bin = binary()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let issuer_log: IssuerLog = Arc::default();
        let cdn_log: CdnLog = Arc::default();
        let mut tasks = Vec::new();
        let mut key_pem = None;
        let mut cert_der_b64 = None;
        let auth_section = match auth {
            Auth::Anonymous => String::new(),
            Auth::Basic => {
                let mut file = String::new();
                for (u, p) in [READER, PUSHER] {
                    let out = Command::new("htpasswd").args(["-Bbn", u, p]).output();
                    let out = super::require("htpasswd (apache2-utils)", out.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()), "apt-get install apache2-utils")?;
                    file.push_str(&out);
                    file.push('\n');
                }
                std::fs::write(dir.path().join("htpasswd"), file).unwrap();
                format!("auth:\n  htpasswd:\n    realm: nova-test\n    path: {}\n", dir.path().join("htpasswd").display())
            }
            Auth::Token => {
                let (key, cert_pem, cert_der) = self_signed_cert(dir.path());
                std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
                let issuer_port = free_port();
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", issuer_port)).await.unwrap();
                let b64 = base64::engine::general_purpose::STANDARD.encode(&cert_der);
                tasks.push(tokio::spawn(serve_issuer(listener, key.clone(), b64.clone(), issuer_log.clone())));
                key_pem = Some(key);
                cert_der_b64 = Some(b64);
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{issuer_port}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    dir.path().join("cert.pem").display()
                )
            }
        };
        let storage = dir.path().join("storage");
        let middleware = match &redirect {
            Redirect::None => String::new(),
            Redirect::LocalCdn => {
                let cdn_port = free_port();
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", cdn_port)).await.unwrap();
                tasks.push(tokio::spawn(serve_cdn(listener, storage.clone(), cdn_log.clone())));
                format!("middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: http://localhost:{cdn_port}/\n")
            }
            Redirect::To(base) => format!("middleware:\n  storage:\n    - name: redirect\n      options:\n        baseurl: {base}\n"),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: nova-test\n{auth_section}{middleware}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin).arg("serve").arg(&config_path).stdout(Stdio::null()).stderr(log).spawn().expect("docker-registry starts");
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let reg = Self { url, port, auth, dir, issuer_log, cdn_log, child, key_pem, cert_der_b64, client, tasks };
        for _ in 0..200 {
            if reg.client.get(format!("{}/v2/", reg.url)).send().await.is_ok() {
                return Some(reg);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("docker-registry did not start: {}", std::fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default());
    }

    /// Stops the registry process (to test what Nova does when it is down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped registry again on the same port, storage and settings.
    pub async fn resume(&mut self) {
        let bin = binary().expect("it ran before");
        let log = std::fs::OpenOptions::new().append(true).open(self.dir.path().join("registry.log")).unwrap();
        self.child = Command::new(bin).arg("serve").arg(self.dir.path().join("config.yml")).stdout(Stdio::null()).stderr(log).spawn().expect("docker-registry starts");
        for _ in 0..200 {
            if self.client.get(format!("{}/v2/", self.url)).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("docker-registry did not start again");
    }

    /// `[registries.NAME]` for Nova's configuration, with the reader's password in a file.
    pub fn config(&self, password_file: Option<&Path>) -> nova::registry::RegistryDef {
        let mut t = toml::Table::new();
        t.insert("type".into(), "oci".into());
        t.insert("url".into(), self.url.clone().into());
        if self.auth != Auth::Anonymous {
            t.insert("username".into(), READER.0.into());
            let path = password_file.map(Path::to_path_buf).unwrap_or_else(|| {
                let p = self.dir.path().join("reader-password");
                std::fs::write(&p, READER.1).unwrap();
                p
            });
            let mut secret = toml::Table::new();
            secret.insert("file".into(), path.display().to_string().into());
            t.insert("password".into(), secret.into());
        }
        toml::Value::Table(t).try_into().expect("valid registry config")
    }

    /// The Authorization header the pusher sends.
    fn push_auth(&self, repository: &str) -> Option<String> {
        match self.auth {
            Auth::Anonymous => None,
            Auth::Basic => Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", PUSHER.0, PUSHER.1)))),
            Auth::Token => {
                let key = self.key_pem.as_ref().unwrap();
                let token = sign(key, self.cert_der_b64.as_ref().unwrap(), PUSHER.0, &[format!("repository:{repository}:pull,push")]);
                Some(format!("Bearer {token}"))
            }
        }
    }

    fn req(&self, method: reqwest::Method, url: &str, repository: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, url);
        if let Some(a) = self.push_auth(repository) {
            r = r.header("authorization", a);
        }
        r
    }

    /// Uploads a blob; answers its digest.
    pub async fn push_blob(&self, repository: &str, data: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        let start = self.req(reqwest::Method::POST, &format!("{}/v2/{repository}/blobs/uploads/", self.url), repository).send().await.unwrap();
        assert_eq!(start.status(), 202, "start upload: {}", start.text().await.unwrap_or_default());
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let mut put_url = reqwest::Url::parse(&self.url).unwrap().join(&location).unwrap();
        put_url.query_pairs_mut().append_pair("digest", &digest);
        let put = self.req(reqwest::Method::PUT, put_url.as_str(), repository).header("content-type", "application/octet-stream").body(data.to_vec()).send().await.unwrap();
        assert_eq!(put.status(), 201, "finish upload: {}", put.text().await.unwrap_or_default());
        digest
    }

    /// Puts a manifest under `reference` (a tag); answers its digest.
    pub async fn put_manifest(&self, repository: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
        let r = self
            .req(reqwest::Method::PUT, &format!("{}/v2/{repository}/manifests/{reference}", self.url), repository)
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "put manifest {repository}:{reference}: {}", r.text().await.unwrap_or_default());
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), digest);
        digest
    }

    /// GETs a manifest as the pusher: (status, content type, bytes).
    pub async fn get_manifest(&self, repository: &str, reference: &str) -> (u16, String, Vec<u8>) {
        let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
        let r = self.req(reqwest::Method::GET, &format!("{}/v2/{repository}/manifests/{reference}", self.url), repository).header("accept", accept).send().await.unwrap();
        let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), content_type, r.bytes().await.unwrap().to_vec())
    }

    /// Pushes a single-platform image; answers (manifest bytes, media type, digest, layer bytes).
    pub async fn push_image(&self, repository: &str, tags: &[&str], spec: &ImageSpec) -> PushedImage {
        let config = json!({
            "created": spec.created,
            "architecture": spec.architecture,
            "os": "linux",
            "variant": spec.variant,
            "config": {"Labels": spec.labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        let config_bytes = serde_json::to_vec(&config).unwrap();
        let config_digest = self.push_blob(repository, &config_bytes).await;
        let mut layers = Vec::new();
        for (i, size) in spec.layer_sizes.iter().enumerate() {
            let data: Vec<u8> = (0..*size).map(|j| ((j * 31 + i * 7 + spec.salt) % 251) as u8).collect();
            let d = self.push_blob(repository, &data).await;
            layers.push(json!({"mediaType": if spec.oci { "application/vnd.oci.image.layer.v1.tar+gzip" } else { "application/vnd.docker.image.rootfs.diff.tar.gzip" }, "digest": d, "size": size}));
        }
        let media_type = if spec.oci { "application/vnd.oci.image.manifest.v1+json" } else { "application/vnd.docker.distribution.manifest.v2+json" };
        let config_type = if spec.oci { "application/vnd.oci.image.config.v1+json" } else { "application/vnd.docker.container.image.v1+json" };
        let manifest = json!({"schemaVersion": 2, "mediaType": media_type, "config": {"mediaType": config_type, "digest": config_digest, "size": config_bytes.len()}, "layers": layers});
        let body = serde_json::to_vec_pretty(&manifest).unwrap();
        let mut digest = String::new();
        for tag in tags {
            digest = self.put_manifest(repository, tag, media_type, &body).await;
        }
        if tags.is_empty() {
            digest = self.put_manifest(repository, &format!("sha256:{}", hex::encode(Sha256::digest(&body))), media_type, &body).await;
        }
        PushedImage { digest, media_type: media_type.into(), body, size: spec.layer_sizes.iter().sum::<usize>() as i64 }
    }

    /// Attaches a SARIF scan report to `subject` the way `oras attach` does on a registry
    /// without the referrers API: an artifact manifest whose subject is the image, listed in the
    /// image's fallback tag (`sha256-<hex>`), which keeps earlier referrers. Answers the
    /// report's manifest digest.
    pub async fn attach_sarif(&self, repository: &str, subject: &PushedImage, sarif: &[u8], created: &str) -> String {
        const EMPTY: &str = "application/vnd.oci.empty.v1+json";
        const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
        const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
        let empty = self.push_blob(repository, b"{}").await;
        let layer = self.push_blob(repository, sarif).await;
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/sarif+json",
            "config": {"mediaType": EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/sarif+json", "digest": layer, "size": sarif.len()}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.body.len()},
            "annotations": {"org.opencontainers.image.created": created},
        });
        let body = serde_json::to_vec(&manifest).unwrap();
        let digest = self.put_manifest(repository, &format!("sha256:{}", hex::encode(Sha256::digest(&body))), OCI_MANIFEST, &body).await;
        let tag = subject.digest.replacen(':', "-", 1);
        let existing = self.req(reqwest::Method::GET, &format!("{}/v2/{repository}/manifests/{tag}", self.url), repository).header("accept", OCI_INDEX).send().await.unwrap();
        let mut manifests: Vec<Value> = if existing.status() == 200 { existing.json::<Value>().await.unwrap()["manifests"].as_array().cloned().unwrap_or_default() } else { Vec::new() };
        manifests.push(json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": body.len(), "artifactType": "application/sarif+json", "annotations": {"org.opencontainers.image.created": created}}));
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})).unwrap();
        self.put_manifest(repository, &tag, OCI_INDEX, &index).await;
        digest
    }

    /// Pushes a multi-platform index of `children` (already pushed, by digest) plus a BuildKit
    /// attestation entry that must not count as a platform.
    pub async fn push_index(&self, repository: &str, tags: &[&str], children: &[(&PushedImage, &str, Option<&str>)], oci: bool) -> PushedImage {
        let media_type = if oci { "application/vnd.oci.image.index.v1+json" } else { "application/vnd.docker.distribution.manifest.list.v2+json" };
        let mut manifests: Vec<Value> = children
            .iter()
            .map(|(img, arch, variant)| json!({"mediaType": img.media_type, "digest": img.digest, "size": img.body.len(), "platform": {"os": "linux", "architecture": arch, "variant": variant}}))
            .collect();
        if oci {
            let att = &children[0].0;
            manifests.push(json!({"mediaType": att.media_type, "digest": att.digest, "size": att.body.len(), "platform": {"os": "unknown", "architecture": "unknown"}, "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": att.digest}}));
        }
        let body = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})).unwrap();
        let mut digest = String::new();
        for tag in tags {
            digest = self.put_manifest(repository, tag, media_type, &body).await;
        }
        PushedImage { digest, media_type: media_type.into(), body, size: children.iter().map(|c| c.0.size).sum() }
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What to push.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub created: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub layer_sizes: Vec<usize>,
    pub oci: bool,
    /// Makes layer bytes (and so digests) differ between otherwise equal specs.
    pub salt: usize,
}

impl ImageSpec {
    /// A small amd64 image created at `created` with the revision and source labels.
    pub fn new(created: &str, revision: &str) -> Self {
        let labels = BTreeMap::from([
            ("org.opencontainers.image.revision".to_string(), revision.to_string()),
            ("org.opencontainers.image.source".to_string(), "https://git.example.com/payments/api".to_string()),
            ("org.opencontainers.image.version".to_string(), "1.2.3".to_string()),
        ]);
        Self { created: created.into(), architecture: "amd64".into(), variant: None, labels, layer_sizes: vec![1000, 234], oci: false, salt: revision.len() + created.len() }
    }
}

/// A pushed manifest.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
    /// Sum of layer sizes.
    pub size: i64,
}

/// A self-signed RSA certificate for the token issuer: (private key PEM, cert PEM, cert DER).
fn self_signed_cert(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let key = dir.join("issuer.key");
    let cert = dir.join("issuer.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=nova-test-issuer", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl made no certificate");
    let der = Command::new("openssl").args(["x509", "-outform", "DER", "-in"]).arg(&cert).output().expect("openssl runs").stdout;
    (std::fs::read(&key).unwrap(), std::fs::read(&cert).unwrap(), der)
}

/// Signs a registry token (RS256, the certificate in `x5c`) granting `scopes`
/// (`repository:NAME:ACTIONS`).
fn sign(key_pem: &[u8], cert_b64: &str, subject: &str, scopes: &[String]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let access: Vec<Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let claims = json!({"iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid::Uuid::new_v4().to_string(), "access": access});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(vec![cert_b64.to_string()]);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(key_pem).expect("issuer key")).expect("token signs")
}

/// The token issuer: basic auth as the reader grants pull (and only pull) on what is asked;
/// as the pusher, everything asked.
async fn serve_issuer(listener: tokio::net::TcpListener, key: Vec<u8>, cert_b64: String, log: IssuerLog) {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    #[derive(Clone)]
    struct S {
        key: Arc<Vec<u8>>,
        cert: Arc<String>,
        log: IssuerLog,
    }
    async fn token(State(s): State<S>, headers: HeaderMap, Query(q): Query<Vec<(String, String)>>) -> axum::response::Response {
        let user = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let scopes: Vec<String> = q.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
        s.log.lock().unwrap().push((user.as_deref().map(|u| u.split(':').next().unwrap_or("").to_string()).unwrap_or("-".into()), scopes.clone()));
        if user.as_deref() == Some(&format!("{}:{}", PUSHER.0, PUSHER.1)) {
            let t = sign(&s.key, &s.cert, PUSHER.0, &scopes);
            return axum::Json(json!({"token": t, "expires_in": 300})).into_response();
        }
        if user.as_deref() != Some(&format!("{}:{}", READER.0, READER.1)) {
            return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
        }
        // Grant pull only.
        let granted: Vec<String> = scopes
            .iter()
            .filter_map(|s| s.rsplit_once(':').map(|(res, acts)| (res, acts.split(',').any(|a| a == "pull"))))
            .filter(|(_, pull)| *pull)
            .map(|(res, _)| format!("{res}:pull"))
            .collect();
        let t = sign(&s.key, &s.cert, READER.0, &granted);
        axum::Json(json!({"token": t, "expires_in": 300})).into_response()
    }
    let app = axum::Router::new().route("/token", axum::routing::get(token)).with_state(S { key: Arc::new(key), cert: Arc::new(cert_b64), log });
    let _ = axum::serve(listener, app).await;
}

/// A stand-in for S3/a CDN: serves the registry's storage files at their paths and logs
/// whether the request carried credentials (it must not).
async fn serve_cdn(listener: tokio::net::TcpListener, root: PathBuf, log: CdnLog) {
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let root = root.clone();
        let log = log.clone();
        async move {
            log.lock().unwrap().push((uri.path().to_string(), headers.contains_key("authorization")));
            let rel = uri.path().trim_start_matches('/');
            if rel.contains("..") {
                return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
            }
            match std::fs::read(root.join(rel)) {
                Ok(b) => (StatusCode::OK, b).into_response(),
                Err(_) => (StatusCode::NOT_FOUND, Vec::new()).into_response(),
            }
        }
    });
    let _ = axum::serve(listener, app).await;
}

/// Starts Nova with `registries` configured and `catalog` (YAML documents) as its only
/// location; `tweak` adjusts the configuration further.
pub async fn nova(
    backend: super::Backend,
    registries: Vec<(&str, nova::registry::RegistryDef)>,
    catalog: &str,
    tweak: impl FnOnce(&mut nova::config::Config) + Send + 'static,
) -> super::TestApp {
    let dir = tempfile::tempdir().unwrap();
    super::write_file(dir.path(), "catalog.yaml", catalog);
    let registries: Vec<(String, nova::registry::RegistryDef)> = registries.into_iter().map(|(n, d)| (n.to_string(), d)).collect();
    super::spawn_app_with(
        backend,
        super::Options {
            locations: vec!["catalog.yaml".into()],
            dir: Some(dir),
            configure: Some(Box::new(move |c| {
                c.registries = registries.into_iter().collect();
                c.registry.min_refresh_interval = Duration::from_secs(60);
                c.registry.request_timeout = Duration::from_secs(5);
                tweak(c);
            })),
            ..Default::default()
        },
    )
    .await
}

/// A Component document with annotations.
pub fn component(name: &str, owner: &str, system: Option<&str>, annotations: &[(&str, &str)]) -> String {
    let mut a = String::new();
    for (k, v) in annotations {
        a.push_str(&format!("    {k}: '{v}'\n"));
    }
    let annotations = if a.is_empty() { String::new() } else { format!("  annotations:\n{a}") };
    let system = system.map(|s| format!("  system: {s}\n")).unwrap_or_default();
    format!("---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n{annotations}spec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n{system}")
}

/// GETs `path` until no repository in the view is pending (every linked repository was read
/// once, successfully or not); at most 30 s.
pub async fn settled(app: &super::TestApp, path: &str) -> Value {
    for _ in 0..300 {
        let v = app.get_json(path, 200).await;
        if v["repositories"].as_array().unwrap().iter().all(|r| r["status"]["state"] != "pending") {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} stayed pending");
}
