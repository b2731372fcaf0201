//! What the HTTP backends share: the client, URLs built from path segments, and turning an
//! HTTP answer that is not a success into a [`BackendError`] a caller can act on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use url::Url;

use super::BackendError;

/// An HTTP client that never follows redirects (Jenkins answers with `201`/`303` and a
/// `Location` Nova reads itself) and gives up after `timeout`.
pub(super) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("nova/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Parses a configured base URL (`http` or `https`, no credentials, no query).
pub(super) fn base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{raw:?} must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use the user and token settings".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must not have a query or fragment"));
    }
    Ok(url)
}

/// `base` with `segments` appended (each percent-encoded as one segment) and `query`.
pub(super) fn join(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.path_segments_mut().expect("http URLs have a path").pop_if_empty().extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// `application/x-www-form-urlencoded` text of `pairs`.
pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

/// The connection failed or timed out: the service is unavailable. The message names the
/// service and its base URL, never a request's URL or parameters.
pub(super) fn transport(service: &str, base: &Url, e: reqwest::Error) -> BackendError {
    let why = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        let e = e.without_url();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    };
    BackendError::Unavailable(format!("cannot reach {service} at {base}: {why}"))
}

/// Whether the answer says "slow down" (429, or 403 with an exhausted rate limit or a
/// `retry-after`), and for how long.
pub(super) fn rate_limit(status: StatusCode, headers: &HeaderMap) -> Option<BackendError> {
    let exhausted = header(headers, "x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
    let retry_after_header = header(headers, "retry-after");
    let limited = status == StatusCode::TOO_MANY_REQUESTS || (status == StatusCode::FORBIDDEN && (exhausted || retry_after_header.is_some()));
    if !limited {
        return None;
    }
    let retry_after = retry_after_header.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs).or_else(|| {
        let reset = header(headers, "x-ratelimit-reset")?.trim().parse::<u64>().ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
    });
    Some(BackendError::RateLimited { retry_after })
}

/// A header's value as text, if present and visible ASCII.
pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What to say for the statuses every backend meets; the caller words them for its service.
pub(super) struct Wording {
    pub service: &'static str,
    pub unauthorized: String,
    pub forbidden: String,
    pub not_found: String,
}

/// The error for an answer that is not a success: 401, 403, 404, rate limits, 5xx. Other
/// statuses become `Protocol` with `detail` (a message from the service, already cleaned by
/// the caller).
pub(super) fn status_error(status: StatusCode, headers: &HeaderMap, wording: Wording, detail: &str) -> BackendError {
    if let Some(limited) = rate_limit(status, headers) {
        return limited;
    }
    let with_detail = |text: &str| if detail.is_empty() { text.to_string() } else { format!("{text}: {detail}") };
    match status {
        StatusCode::UNAUTHORIZED => BackendError::Unauthorized(wording.unauthorized),
        StatusCode::FORBIDDEN => BackendError::Forbidden(with_detail(&wording.forbidden)),
        StatusCode::NOT_FOUND => BackendError::NotFound(wording.not_found),
        StatusCode::REQUEST_TIMEOUT | StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            BackendError::Unavailable(format!("{} answered {status}", wording.service))
        }
        s if s.is_server_error() => BackendError::Unavailable(with_detail(&format!("{} answered {status}", wording.service))),
        s => BackendError::Protocol(with_detail(&format!("{} answered {s}", wording.service))),
    }
}

/// The body of an error answer, shortened to one line of at most 300 characters, with every
/// `secret` removed (a service may echo what it was sent).
pub(super) async fn error_text(resp: Response, secrets: &[&str]) -> String {
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or_default();
    clean(&message, secrets)
}

/// `text` on one line, at most 300 characters, with every `secret` replaced.
pub(super) fn clean(text: &str, secrets: &[&str]) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "**REDACTED**");
    }
    if text.chars().count() > 300 {
        text = text.chars().take(300).collect::<String>() + "…";
    }
    text
}

/// Milliseconds since the Unix epoch, now.
pub(super) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_encodes_each_segment() {
        let base = Url::parse("https://ci.example.com/jenkins/").unwrap();
        let url = join(&base, &["job", "a b", "job", "c/d", "api", "json"], &[("tree", "builds[number]")]);
        assert_eq!(url.as_str(), "https://ci.example.com/jenkins/job/a%20b/job/c%2Fd/api/json?tree=builds%5Bnumber%5D");
    }

    #[test]
    fn base_urls() {
        assert!(base_url("https://ci.example.com").is_ok());
        for bad in ["ftp://x", "https://u:p@x/", "https://x/?a=1", "not a url"] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
        // The error never echoes credentials.
        assert!(!base_url("https://u:hunter2@x/").unwrap_err().contains("hunter2"));
    }

    #[test]
    fn rate_limits_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(rate_limit(StatusCode::FORBIDDEN, &h).is_none());
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit(StatusCode::FORBIDDEN, &h), Some(BackendError::RateLimited { retry_after: Some(Duration::from_secs(7)) }));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 60;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let Some(BackendError::RateLimited { retry_after: Some(d) }) = rate_limit(StatusCode::FORBIDDEN, &h) else { panic!("rate limited") };
        assert!((55..=60).contains(&d.as_secs()), "{d:?}");
        assert_eq!(rate_limit(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new()), Some(BackendError::RateLimited { retry_after: None }));
    }

    #[test]
    fn clean_removes_secrets_and_shortens() {
        assert_eq!(clean("bad  value\nhunter2 here", &["hunter2", ""]), "bad value **REDACTED** here");
        assert_eq!(clean(&"x".repeat(400), &[]).chars().count(), 301);
    }
}
