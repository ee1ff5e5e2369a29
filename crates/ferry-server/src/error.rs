//! One mapping from every layer's errors to HTTP: a status, a stable code
//! and a message fit for an admin. Driver detail never leaves the server.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use ferry_copy::CopyError;
use ferry_remedy::RemedyError;
use ferry_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra lines (blocking conflicts, rollback blockers).
    pub details: Vec<String>,
    /// Seconds after which a refused request may be tried again (sent as
    /// `Retry-After`).
    pub retry_after: Option<u64>,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for scripts: `unauthorized`, `forbidden`, `not_found`,
    /// `invalid`, `unsupported_media_type`, `conflict`, `blocking_conflicts`,
    /// `rollback_refused`, `run_claimed`, `run_done`, `not_resumable`,
    /// `run_unfinished`, `source_changed`, `remote`, `rate_limited`,
    /// `session_required`, `csrf`, `internal`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Vec::new(), retry_after: None }
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in, or send an API token as `Authorization: Bearer <token>`",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn forbidden_code(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_owned(), message: self.message, details: self.details },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

/// Every operation's error reaches HTTP through [`ferry_ops::Error`]: its
/// code decides the status, as it decides the CLI's exit status.
impl From<ferry_ops::Error> for ApiError {
    fn from(e: ferry_ops::Error) -> ApiError {
        if let Some(code) = e.store_code {
            // The detail (which may quote rows or paths) goes to the
            // server's log only; the caller gets the stable code.
            tracing::error!(code, "database error: {}", e.message);
        }
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = e.public_message();
        ApiError { status, code: e.code.as_str(), message, details: e.details, retry_after: None }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ferry_ops::Error::from(e).into()
    }
}

impl From<CopyError> for ApiError {
    fn from(e: CopyError) -> ApiError {
        ferry_ops::Error::from(e).into()
    }
}

impl From<RemedyError> for ApiError {
    fn from(e: RemedyError) -> ApiError {
        ferry_ops::Error::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
