//! ferry's server (`ferry serve`): the REST API under `/api/v1` with its
//! OpenAPI document, for org admins and their scripts. Every route asks who
//! is calling ([`auth`]) and what they may touch; state-changing requests
//! from browsers must come from ferry's own pages (CSRF, by Fetch Metadata
//! and Origin); every response carries the security headers.

pub mod admin;
pub mod api;
pub mod auth;
mod error;
mod extract;
mod state;
pub mod ui;

use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use state::AppState;

/// The whole application: API, OpenAPI document, security layers.
pub fn app(state: AppState) -> Router {
    let (api, doc) = api::router().split_for_parts();
    let doc_json = serde_json::to_string(&doc).unwrap_or_else(|_| "{}".to_owned());
    let mut router = api
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json) }),
        )
        .merge(ui::routes())
        .with_state(state);
    // Browsers say where a request comes from; a state-changing request from
    // another origin is refused. Scripts (no Origin, no Sec-Fetch-Site)
    // authenticate with a token, which no other site can make a browser send.
    router = router.layer(CsrfLayer::new().with_rejection_response(|_: tower_http::csrf::ProtectionError| {
        ApiError::forbidden_code("csrf", "this request came from another site; ferry refuses it (CSRF protection)")
            .into_response()
    }));
    for (name, value) in security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
}

/// Headers on every response: no framing, no sniffing, no referrer to
/// other sites, scripts and styles only from ferry itself.
fn security_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
            ),
        ),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// Serves `state` on `listener` until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>()).await
}
