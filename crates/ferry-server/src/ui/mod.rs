//! Server-rendered pages: the admin console (`/console`, askama templates
//! and vendored htmx) and the help center (`/help/<site>`). Pages call the
//! same library functions as the API; an htmx request (`HX-Request`) for a
//! page that has a partial gets the partial.

mod console;
mod help;
mod pull;

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use ferry_store::web::Admin;

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// The vendored htmx: its file name carries its version, and pages load it
/// with this Subresource Integrity hash (a test recomputes it).
pub const HTMX_FILE: &str = "htmx-2.0.11.min.js";
pub const HTMX_SRI: &str = "sha384-2OatzQy1H+Zd/IIrjr1TcuDGqLXeHhbooAyJY1KdQMKnr4LZ22k31GBLdYKHmVjg";
pub const HTMX: &[u8] = include_bytes!("../../static/htmx-2.0.11.min.js");
const CSS: &str = include_str!("../../static/ferry.css");

/// What every page's frame shows: who is signed in, and how many imported
/// groups await review (the User management banner).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub admin: Option<String>,
    pub pending: usize,
    /// Where the banner's Review now goes: the one group waiting, or the
    /// list when several are.
    pub review_link: String,
}

/// A page that could not be shown, as a page.
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: String,
    message: String,
    details: Vec<String>,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let page = ErrorPage {
            layout: Layout::default(),
            status: e.status.canonical_reason().unwrap_or("Error").to_owned(),
            message: e.message,
            details: e.details,
        };
        (e.status, render(&page)).into_response()
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

/// A page as HTML (a template error is a bug, shown as a 500 page).
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("page error: {e}")).into_response(),
    }
}

/// An org admin signed in to the console. Anyone else is sent to sign in.
pub struct ConsoleAdmin {
    pub admin: Admin,
    pub actor: String,
}

/// Why someone gets no console page.
#[derive(Debug, Clone, Copy)]
pub enum Denied {
    /// Not signed in: to the sign-in page.
    SignIn,
    /// A customer: the console is not theirs.
    Customer,
    /// An API token: the console is for people signed in (a token must
    /// not, say, mint tokens through it).
    Token,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn => Redirect::to("/sign-in").into_response(),
            Denied::Customer => {
                UiError(ApiError::forbidden("the console is for org admins; customers use their site's help center"))
                    .into_response()
            }
            Denied::Token => {
                UiError(ApiError::forbidden("the console needs a signed-in admin; API tokens are for /api/v1"))
                    .into_response()
            }
        }
    }
}

impl ConsoleAdmin {
    /// The console admin `caller` is, or why not.
    pub fn from_caller(caller: Caller) -> Result<ConsoleAdmin, Denied> {
        let actor = caller.actor().unwrap_or_default();
        match caller {
            Caller::Admin { via_token: true, .. } => Err(Denied::Token),
            Caller::Admin { admin, .. } => Ok(ConsoleAdmin { admin, actor }),
            Caller::Customer { .. } => Err(Denied::Customer),
            Caller::Anonymous => Err(Denied::SignIn),
        }
    }
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ConsoleAdmin, Response> {
        match Caller::from_request_parts(parts, state).await {
            Ok(caller) => ConsoleAdmin::from_caller(caller).map_err(IntoResponse::into_response),
            Err(e) => Err(UiError(e).into_response()),
        }
    }
}

impl ConsoleAdmin {
    /// The frame of a console page, with the review banner's count for the
    /// sites this admin administers.
    pub async fn layout(&self, state: &AppState) -> UiResult<Layout> {
        let admin = self.admin.clone();
        Ok(state.store(None, move |store| layout_of(store, &admin)).await?)
    }

    /// The same caller, as the API's authorization checks take it.
    pub fn as_api(&self) -> crate::auth::AdminCaller {
        crate::auth::AdminCaller { admin: self.admin.clone(), via_token: false, actor: self.actor.clone() }
    }
}

/// [`ConsoleAdmin::layout`] on a connection a page already holds.
pub fn layout_of(store: &mut ferry_store::Store, admin: &Admin) -> Result<Layout, ApiError> {
    let groups = ferry_remedy::pending_groups(store)?;
    let sites = store.read(ferry_store::sites::list_sites)?;
    let mine: Vec<&(String, String)> = groups
        .iter()
        .filter(|(site, _)| sites.iter().any(|s| &s.slug == site && admin.orgs.contains(&s.org)))
        .collect();
    let review_link = match mine.as_slice() {
        [(site, group)] => format!("/console/sites/{site}/groups/{}", console::percent(group)),
        _ => "/console/users".to_owned(),
    };
    Ok(Layout { admin: Some(admin.email.clone()), pending: mine.len(), review_link })
}

/// Whether a request came from htmx (and wants a partial).
pub fn is_htmx(headers: &axum::http::HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/{file}", get(static_file))
        .merge(console::routes())
        .merge(help::routes())
        .merge(pull::routes())
}

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let immutable = "public, max-age=31536000, immutable";
    match file.as_str() {
        HTMX_FILE => {
            ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, immutable)], HTMX).into_response()
        }
        "ferry.css" => ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "no-cache")], CSS).into_response(),
        _ => UiError(ApiError::not_found(format!("no file {file:?}"))).into_response(),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}
