//! The one error path of the HTTP layer: every handler returns [`AppError`], rendered as
//! `application/problem+json` (RFC 9457) with the request id. Unexpected errors are logged
//! once, here, and answered with a generic 500 that names the request id, never the cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::catalog::CatalogOpError;
use crate::catalog::query::QueryError;
use crate::storage::StorageError;

/// What error bodies need to know about the request being answered.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub id: String,
    pub method: String,
    pub path: String,
}

tokio::task_local! {
    /// The current request, set by the request-context middleware.
    pub static REQUEST: RequestInfo;
}

/// The current request id, or `-` outside a request.
pub fn request_id() -> String {
    REQUEST.try_with(|r| r.id.clone()).unwrap_or_else(|_| "-".into())
}

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: names the field and the rule it broke.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    /// A dependency Nova needs for this request is down or too slow.
    #[error("{0}")]
    Unavailable(String),
    /// The request body is larger than `server.max_body_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// The request took longer than `server.request_timeout`.
    #[error("{0}")]
    Timeout(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// Bad input in `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid-input",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::Conflict(_) => "conflict",
            Self::TooManyRequests { .. } => "too-many-requests",
            Self::Unavailable(_) => "unavailable",
            Self::TooLarge(_) => "too-large",
            Self::Timeout(_) => "timeout",
            Self::Internal(_) => "internal",
        }
    }

    /// The message shown to the caller (never the cause of an internal error).
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => format!("Nova failed to handle this request; the server log has the details under request id {}", request_id()),
            other => other.to_string(),
        }
    }

    /// Logs an unexpected error once, where it is answered.
    pub(crate) fn log(&self) {
        if let Self::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
    }
}

/// The `application/problem+json` body of every error Nova's API returns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The request id, also in the `x-request-id` header and on every log line of the request.
    #[serde(rename = "requestId")]
    pub request_id: String,
    /// For invalid input: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = Problem {
            kind: format!("https://nova.dev/problems/{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.public_message(),
            request_id: request_id(),
            field: match &self {
                Self::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Self::TooManyRequests { retry_after_secs, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl From<QueryError> for AppError {
    fn from(e: QueryError) -> Self {
        let (field, message) = e.0.split_once(": ").map(|(f, m)| (f.to_string(), m.to_string())).unwrap_or(("query".into(), e.0.clone()));
        Self::Invalid { field, message }
    }
}

impl From<CatalogOpError> for AppError {
    fn from(e: CatalogOpError) -> Self {
        match e {
            CatalogOpError::NotFound(_) => Self::NotFound(e.to_string()),
            CatalogOpError::Exists(_) | CatalogOpError::Configured(_) => Self::Conflict(e.to_string()),
            CatalogOpError::Invalid(m) => Self::invalid("target", m),
            CatalogOpError::Storage(s) => s.into(),
        }
    }
}

/// An [`AppError`] rendered in Backstage's error format, for the Backstage-compatible routes
/// under `/api/catalog`, so that Backstage clients understand it.
#[derive(Debug)]
pub struct BackstageError(pub AppError);

impl<E: Into<AppError>> From<E> for BackstageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for BackstageError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let name = match &self.0 {
            AppError::Invalid { .. } => "InputError",
            AppError::Unauthorized(_) => "AuthenticationError",
            AppError::Forbidden(_) => "NotAllowedError",
            AppError::NotFound(_) => "NotFoundError",
            AppError::Conflict(_) => "ConflictError",
            AppError::TooManyRequests { .. } | AppError::Unavailable(_) | AppError::Timeout(_) => "ServiceUnavailableError",
            AppError::TooLarge(_) => "InputError",
            AppError::Internal(_) => "Error",
        };
        let (method, url) = REQUEST.try_with(|r| (r.method.clone(), r.path.clone())).unwrap_or_default();
        let body = json!({
            "error": {"name": name, "message": self.0.public_message()},
            "request": {"method": method, "url": url},
            "response": {"statusCode": status.as_u16()},
            "requestId": request_id(),
        });
        (status, axum::Json(body)).into_response()
    }
}
