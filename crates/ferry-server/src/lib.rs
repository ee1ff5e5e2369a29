//! ferry's server (`ferry serve`): the REST API under `/api/v1` with its
//! OpenAPI document, for org admins and their scripts. Every route asks who
//! is calling ([`auth`]) and what they may touch; state-changing requests
//! from browsers must come from ferry's own pages (CSRF, by Fetch Metadata
//! and Origin); every response carries the security headers.

pub mod api;
pub mod auth;
mod error;
mod extract;
pub mod pulls;
mod state;
pub mod ui;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::{ApiError, ApiResult, ErrorBody};
pub use state::AppState;

/// The whole application: API, OpenAPI document, security layers.
pub fn app(state: AppState) -> Router {
    let (api, mut doc) = api::router(state.max_import_bytes).split_for_parts();
    api::document_errors(&mut doc);
    let mut doc = serde_json::to_value(&doc).unwrap_or_default();
    api::refine(&mut doc);
    let doc_json = doc.to_string();
    let mut router = api
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json) }),
        )
        .merge(ui::routes())
        .fallback(not_found)
        .with_state(state);
    // Browsers say where a request comes from; a state-changing request from
    // another origin is refused. Scripts (no Origin, no Sec-Fetch-Site)
    // authenticate with a token, which no other site can make a browser send.
    router = router.layer(CsrfLayer::new().with_rejection_response(|_: tower_http::csrf::ProtectionError| {
        let mut response = csrf_refusal().into_response();
        response.headers_mut().insert(CSRF_MARK, HeaderValue::from_static("1"));
        response
    }));
    // The console and help centers answer that refusal with a page, the
    // API with its JSON error.
    router = router.layer(axum::middleware::from_fn(
        |request: axum::extract::Request, next: axum::middleware::Next| async move {
            let page = !request.uri().path().starts_with("/api/");
            let mut response = next.run(request).await;
            if response.headers_mut().remove(CSRF_MARK).is_some() && page {
                return ui::UiError(csrf_refusal()).into_response();
            }
            response
        },
    ));
    for (name, value) in security_headers() {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
}

/// Marks the CSRF layer's refusal, for the layer above to render as a page
/// outside the API (never sent to the client).
const CSRF_MARK: &str = "x-ferry-csrf-refused";

fn csrf_refusal() -> ApiError {
    ApiError::forbidden_code(
        "csrf",
        "this form was sent from another site, so ferry refused it (CSRF protection); open the page in ferry and send it from there",
    )
}

/// What answers a path no route serves: under `/api/` the API's JSON error
/// (code `not_found`), elsewhere a plain page.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/api/") {
        ApiError::not_found(format!("no API route {}; the routes are listed at /api/v1/openapi.json", uri.path()))
            .into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, "not found").into_response()
    }
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

/// How long a connection may take to send a request's headers, counted
/// from when it opens or finished its previous request. A client that opens
/// a connection and sends nothing, or sends headers a byte a minute, is
/// disconnected then instead of holding a socket and a task forever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Connections one server serves at once (each holds a task and a socket;
/// the rest wait in the listen queue).
pub const MAX_CONNECTIONS: usize = 4096;

/// Serves `state` on `listener` until the process is stopped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    serve_with(listener, state, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with another header-read timeout (tests use a short one).
/// HTTP/1.1 on each accepted connection (a version-sniffing server would
/// wait for a first byte before any timeout applies); the peer's address
/// reaches handlers as axum's `ConnectInfo` (sign-in limits).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    header_read_timeout: std::time::Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;
    // A body must arrive as promptly as headers: a client that announces a
    // body and sends none is cut off, not waited for.
    let app = app(state).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(header_read_timeout));
    // Connections served at once; more wait in the listen queue.
    let open = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = match open.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return Ok(()), // never closed
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors: wait for connections to close.
                // A connection that failed while being accepted concerns
                // only its client: go on at once.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    tracing::warn!("cannot accept connections: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            // A connection that ends badly concerns only its client.
            let _ = builder.serve_connection(TokioIo::new(stream), service).with_upgrades().await;
        });
    }
}
