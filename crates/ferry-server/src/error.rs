//! One mapping from every layer's errors to HTTP: a status, a stable code
//! and a message fit for an admin. Driver detail never leaves the server.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::io::Write as _;

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
    /// `run_unfinished`, `rate_limited`, `session_required`, `csrf`,
    /// `internal`.
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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(m) => ApiError::not_found(m.clone()),
            StoreError::Invalid(m) => ApiError::invalid(m.clone()),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m.clone()),
            _ if e.is_unstorable_text() => {
                ApiError::invalid("a text value holds a NUL character, which the database cannot store")
            }
            _ => {
                // The detail (which may quote rows) goes to the server's log
                // only; the caller gets the stable code.
                // stderr may be closed (`ferry serve 2>&1 | head`): then
                // the line is dropped, never a panic.
                let _ = writeln!(std::io::stderr(), "ferry serve: database error: {e}");
                ApiError::internal(format!("database error ({}); the server's log has the detail", e.code()))
            }
        }
    }
}

impl From<CopyError> for ApiError {
    fn from(e: CopyError) -> ApiError {
        match e {
            CopyError::Invalid(m) => ApiError::invalid(m),
            CopyError::Conflicts(conflicts) => ApiError {
                status: StatusCode::CONFLICT,
                code: "blocking_conflicts",
                message: format!("{} blocking conflict(s); nothing was copied", conflicts.len()),
                details: conflicts.iter().map(|c| format!("{}: {} ({})", c.kind, c.problem, c.resolution)).collect(),
                retry_after: None,
            },
            CopyError::RollbackRefused { run, blockers } => ApiError {
                status: StatusCode::CONFLICT,
                code: "rollback_refused",
                message: format!("run {run} cannot be rolled back"),
                details: blockers,
                retry_after: None,
            },
            e @ CopyError::Claimed(_) => ApiError::new(StatusCode::CONFLICT, "run_claimed", e.to_string()),
            CopyError::NotResumable { state, message, .. } => {
                let code = if state == ferry_core::run::RunState::Done { "run_done" } else { "not_resumable" };
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            e @ CopyError::DestinationBusy { .. } => {
                ApiError::new(StatusCode::CONFLICT, "run_unfinished", e.to_string())
            }
            CopyError::Store(e) => e.into(),
            e @ CopyError::Report { .. } => ApiError::internal(e.to_string()),
        }
    }
}

impl From<RemedyError> for ApiError {
    fn from(e: RemedyError) -> ApiError {
        match e {
            RemedyError::Invalid(m) => ApiError::invalid(m),
            RemedyError::Store(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
