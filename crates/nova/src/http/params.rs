//! Query-string parameters that may repeat (`filter=a&filter=b`), as Backstage's API uses them.

use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;

/// All query parameters in order, repeated keys kept.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A non-negative integer parameter, or an error naming it.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, super::AppError> {
        self.get(key)
            .map(|v| v.parse::<usize>().map_err(|_| super::AppError::invalid(key, format!("must be a non-negative integer, got {v:?}"))))
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RawQuery(q) = RawQuery::from_request_parts(parts, state).await?;
        Ok(Params(q.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()))
    }
}
