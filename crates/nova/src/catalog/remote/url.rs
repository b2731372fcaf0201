//! URL locations: one file over HTTP(S), fetched with reqwest (rustls) on the reading thread.
//!
//! Limits: `catalog.remote_timeout` for the whole request, `catalog.max_file_bytes` for the
//! body (checked against `Content-Length` and while reading), `catalog.max_redirects`. HTML
//! answers are refused (a web page, not a catalog file). Refreshes send `If-None-Match` with the
//! last entity tag and keep the previous read on 304. Names resolving to link-local or metadata
//! addresses are refused by the resolver, before any connection, on every redirect too.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use super::{RemoteContext, blocked_error, check_http_url, refusal};
use crate::catalog::error::{CatalogError, ErrorKind};
use crate::catalog::location::{Fetched, LocationRead, LocationSpec, ReadLimits, Source, SourceFile, SourceRead, too_large, utf8};

/// A URL location being read.
pub struct UrlSource<'a> {
    root: SourceFile,
    remote: &'a RemoteContext,
    limits: ReadLimits,
    client: Option<Client>,
    /// The root file, fetched by `root()` so that its failure fails the whole location (and
    /// every previous entity is kept).
    prefetched: Option<Fetched>,
}

fn fail(rule: &str, message: impl Into<String>) -> CatalogError {
    CatalogError::location("", ErrorKind::Location, rule, message)
}

fn url_file(url: &reqwest::Url) -> SourceFile {
    SourceFile { key: format!("url:{url}"), locator: url.to_string() }
}

impl<'a> UrlSource<'a> {
    /// A source for `spec`, which must be a URL location.
    pub fn new(spec: &LocationSpec, remote: &'a RemoteContext, limits: ReadLimits) -> Self {
        let url = check_http_url(&spec.target).expect("URL locations are validated when parsed");
        Self { root: url_file(&url), remote, limits, client: None, prefetched: None }
    }

    fn client(&mut self) -> Result<&Client, CatalogError> {
        if self.client.is_none() {
            let max = self.remote.max_redirects;
            let outbound = self.remote.outbound.clone();
            let resolver_outbound = outbound.clone();
            let policy = reqwest::redirect::Policy::custom(move |attempt| {
                let literal_blocked = attempt.url().host_str().and_then(|h| h.trim_matches(['[', ']']).parse().ok()).and_then(|ip| refusal(&outbound, ip)).is_some();
                if attempt.previous().contains(attempt.url()) {
                    attempt.error("redirect loop")
                } else if attempt.previous().len() > max {
                    attempt.error(format!("more than {max} redirects (catalog.max_redirects)"))
                } else if !matches!(attempt.url().scheme(), "http" | "https") {
                    attempt.error("redirect to a URL that is not http or https")
                } else if literal_blocked {
                    attempt.error("redirect to a link-local or metadata address")
                } else {
                    attempt.follow()
                }
            });
            let client = Client::builder()
                .timeout(self.remote.timeout)
                .connect_timeout(self.remote.timeout.min(std::time::Duration::from_secs(10)))
                .redirect(policy)
                .dns_resolver(Arc::new(CheckedResolver(resolver_outbound)))
                .user_agent(concat!("nova/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| fail("http-client", format!("cannot build the HTTP client: {}", chain(&e))))?;
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("just built"))
    }

    fn fetch(&mut self, url: &str, previous: Option<&SourceRead>) -> Result<Fetched, CatalogError> {
        let url = check_http_url(url).map_err(|e| fail("valid-target", e))?;
        if let Some(ip) = url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            && let Some(why) = refusal(&self.remote.outbound, ip)
        {
            return Err(blocked_error(url.host_str().unwrap_or_default(), why));
        }
        let credential = self.remote.credential_for(url.as_str())?;
        let max = self.limits.max_file_bytes;
        let timeout = self.remote.timeout;
        let client = self.client()?;
        let mut request = client.get(url.clone()).header(ACCEPT, "application/yaml, text/yaml, text/plain;q=0.9, */*;q=0.5");
        let etag = previous.filter(|p| p.ok).and_then(|p| p.etag.as_deref());
        if let Some(tag) = etag {
            request = request.header(IF_NONE_MATCH, tag);
        }
        if let Some(c) = credential {
            request = match c.username {
                Some(user) => request.basic_auth(user, Some(c.secret.expose())),
                None => request.header(AUTHORIZATION, format!("Bearer {}", c.secret.expose())),
            };
        }
        let mut response = request.send().map_err(|e| request_error(&e, timeout))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::Unchanged);
        }
        if !status.is_success() {
            return Err(fail("http-status", format!("{url} answered HTTP {status}")));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if content_type.starts_with("text/html") || content_type.starts_with("application/xhtml") {
            return Err(fail(
                "content-type",
                format!("{url} answered with an HTML page ({content_type}), not a YAML file; point the location at the raw file"),
            ));
        }
        if let Some(len) = response.content_length().filter(|l| *l > max) {
            return Err(too_large(len, max));
        }
        let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
        let mut body = Vec::new();
        (&mut response).take(max + 1).read_to_end(&mut body).map_err(|e| request_error_io(&e, timeout))?;
        if body.len() as u64 > max {
            return Err(CatalogError { message: format!("file is larger than the limit (catalog.max_file_bytes) of {max} bytes"), ..too_large(0, max) });
        }
        Ok(Fetched::Text { text: utf8(body)?, etag })
    }
}

impl Source for UrlSource<'_> {
    fn root(&mut self, previous: Option<&LocationRead>) -> Result<Vec<SourceFile>, CatalogError> {
        let root = self.root.clone();
        self.prefetched = Some(self.fetch(&root.locator, previous.and_then(|p| p.sources.get(&root.key)))?);
        Ok(vec![root])
    }

    fn resolve(&mut self, from: &SourceFile, target: &str) -> Result<Vec<SourceFile>, CatalogError> {
        let base = reqwest::Url::parse(&from.locator).map_err(|e| fail("valid-target", e.to_string()))?;
        let joined = base.join(target).map_err(|e| fail("valid-target", format!("target {target:?} is not a URL: {e}")))?;
        let url = check_http_url(joined.as_str()).map_err(|e| fail("valid-target", e))?;
        Ok(vec![url_file(&url)])
    }

    fn read(&mut self, file: &SourceFile, previous: Option<&SourceRead>) -> Result<Fetched, CatalogError> {
        if file.key == self.root.key
            && let Some(f) = self.prefetched.take()
        {
            return Ok(f);
        }
        self.fetch(&file.locator, previous)
    }
}

/// A resolver that refuses names with an address `[outbound]` refuses (metadata, link-local).
struct CheckedResolver(crate::outbound::Outbound);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        let outbound = self.0.clone();
        Box::pin(async move {
            if crate::outbound::Outbound::is_metadata_name(&host) {
                return Err(blocked_error(&host, "a cloud metadata host").message.into());
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(why) = addrs.iter().find_map(|a| refusal(&outbound, a.ip())) {
                return Err(blocked_error(&host, why).message.into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error and its causes, one sentence.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn request_error(e: &reqwest::Error, timeout: std::time::Duration) -> CatalogError {
    if e.is_timeout() {
        return timeout_error(timeout);
    }
    let text = chain(e);
    if e.is_redirect() {
        return fail("redirects", text);
    }
    if text.contains("Nova does not read catalog files from there") {
        return fail("allowed-address", text);
    }
    fail("reachable", text)
}

fn request_error_io(e: &std::io::Error, timeout: std::time::Duration) -> CatalogError {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<reqwest::Error>()) {
        Some(re) => request_error(re, timeout),
        None if e.kind() == std::io::ErrorKind::TimedOut => timeout_error(timeout),
        None => fail("reachable", format!("reading the answer failed: {e}")),
    }
}

fn timeout_error(timeout: std::time::Duration) -> CatalogError {
    fail("timeout", format!("no complete answer within {timeout:?} (catalog.remote_timeout)"))
}
