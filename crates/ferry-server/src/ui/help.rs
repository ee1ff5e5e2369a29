//! The help center of each site (`/help/<site>`): a customer signs in (a
//! portal-only account with its site password, an Atlassian account with
//! its own) and sees "My requests" and each request with its comments, as
//! the access rule decides and nothing else.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::{CookieJar, Form};
use ferry_core::email::Email;
use ferry_store::access::{self, CommentView, RequestSummary};
use ferry_store::web::{self, SessionOwner};
use ferry_store::{StoreError, sites};

use super::console::{SignInForm, SignInPage};
use super::{Layout, UiError, UiResult, render};
use crate::auth::{self, Caller, Credentials};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/help/{site}", get(my_requests))
        .route("/help/{site}/sign-in", get(sign_in_page).post(sign_in))
        .route("/help/{site}/sign-out", post(sign_out))
        .route("/help/{site}/requests/{key}", get(request))
}

/// The customer (account, site) these credentials sign in to help center
/// `slug`, or `None` when they do not (the page then sends to sign-in).
fn customer_of(
    store: &mut ferry_store::Store,
    credentials: Credentials,
    slug: &str,
) -> Result<Option<(i64, i64)>, ApiError> {
    let Caller::Customer { account_id, site_id, .. } = credentials.resolve(store)? else {
        return Ok(None);
    };
    match store.read(|tx| sites::find_site(tx, slug))? {
        Some(found) if found.id == site_id => Ok(Some((account_id, site_id))),
        Some(_) => Ok(None),
        None => Err(ApiError::not_found(format!("no help center named {slug:?}"))),
    }
}

fn sign_in_form(site: &str, error: Option<String>) -> SignInPage {
    SignInPage {
        layout: Layout::default(),
        heading: format!("Help center · {site}"),
        action: format!("/help/{site}/sign-in"),
        error,
    }
}

async fn sign_in_page(State(state): State<AppState>, Path(site): Path<String>) -> UiResult {
    let wanted = site.clone();
    let exists = state.store(None, move |store| Ok(store.read(|tx| sites::find_site(tx, &wanted))?)).await?;
    if exists.is_none() {
        return Err(ApiError::not_found(format!("no help center named {site:?}")).into());
    }
    Ok(render(&sign_in_form(&site, None)))
}

/// The account of `site` whose password matches: the Atlassian account
/// first (as `ferry access` prefers it), then the portal-only one.
async fn check_customer(
    state: &AppState,
    peer: SocketAddr,
    site: &str,
    email: &str,
    password: &str,
) -> Result<(i64, i64), ApiError> {
    let email = Email::parse(email).map_err(|e| ApiError::invalid(e.to_string()))?;
    crate::api::session::check_rate(state, peer, email.key())?;
    let (slug, key, password) = (site.to_owned(), email.key().to_owned(), password.to_owned());
    state
        .store(None, move |store| {
            let (site, mut candidates) = store.read(|tx| {
                let site = sites::site(tx, &slug)?;
                let candidates = web::customer_credentials(tx, site.id, &key)?;
                Ok::<_, StoreError>((site, candidates))
            })?;
            candidates.sort_by_key(|c| !c.atlassian);
            let mut found = None;
            for c in &candidates {
                if let Some(hash) = &c.password_hash
                    && auth::verify_password(&password, hash)
                {
                    found = Some(c.account_id);
                    break;
                }
            }
            if candidates.iter().all(|c| c.password_hash.is_none()) {
                // Same cost as a wrong password, so the answer's timing does
                // not tell which emails have accounts.
                auth::verify_password(&password, crate::api::session::DUMMY_HASH);
            }
            found.map(|account| (account, site.id)).ok_or_else(|| {
                ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", "wrong email or password")
            })
        })
        .await
}

async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(site): Path<String>,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    match check_customer(&state, peer, &site, &form.email, &form.password).await {
        Ok((account_id, site_id)) => {
            match auth::start_session(&state, SessionOwner::Customer { account_id, site_id }).await {
                Ok(session) => (
                    jar.add(auth::session_cookie(auth::SessionKind::Help, session)),
                    Redirect::to(&format!("/help/{site}")),
                )
                    .into_response(),
                Err(e) => UiError(e).into_response(),
            }
        }
        Err(e) => (e.status, render(&sign_in_form(&site, Some(e.message)))).into_response(),
    }
}

async fn sign_out(State(state): State<AppState>, caller: Caller, Path(site): Path<String>, jar: CookieJar) -> Response {
    auth::end_session(&state, caller).await;
    (jar.add(auth::removal_cookie(auth::SessionKind::Help)), Redirect::to(&format!("/help/{site}/sign-in")))
        .into_response()
}

#[derive(Template)]
#[template(path = "help_requests.html")]
struct MyRequests {
    layout: Layout,
    site: String,
    who: String,
    requests: Vec<RequestSummary>,
}

/// Who is signed in, and what they may view, by the access rule.
fn visible_in(
    store: &mut ferry_store::Store,
    account_id: i64,
    site_id: i64,
) -> Result<(String, Vec<RequestSummary>), ApiError> {
    Ok(store.read(|tx| {
        let (account, email) = ferry_store::accounts::site_account(tx, account_id)?
            .ok_or_else(|| StoreError::NotFound("your account no longer exists".to_owned()))?;
        let who = format!("{email} ({})", account.account_type.label());
        Ok::<_, StoreError>((who, access::viewable_requests(tx, site_id, account)?))
    })?)
}

async fn my_requests(State(state): State<AppState>, credentials: Credentials, Path(site): Path<String>) -> Response {
    // Who is asking and what they may view, in one trip to the store.
    let slug = site.clone();
    let found = state
        .store(None, move |store| match customer_of(store, credentials, &slug)? {
            Some((account_id, site_id)) => Ok(Some(visible_in(store, account_id, site_id)?)),
            None => Ok(None),
        })
        .await;
    match found {
        Ok(Some((who, requests))) => render(&MyRequests { layout: Layout::default(), site, who, requests }),
        Ok(None) => Redirect::to(&format!("/help/{site}/sign-in")).into_response(),
        Err(e) => UiError(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "help_request.html")]
struct RequestPage {
    layout: Layout,
    site: String,
    key: String,
    summary: String,
    status: String,
    created: String,
    comments: Vec<CommentView>,
}

async fn request(
    State(state): State<AppState>,
    credentials: Credentials,
    Path((site, key)): Path<(String, String)>,
) -> Response {
    // Who is asking, what they may view, and the request's comments: one
    // trip to the store.
    let (slug, wanted) = (site.clone(), key.clone());
    let found = state
        .store(None, move |store| {
            let Some((account_id, site_id)) = customer_of(store, credentials, &slug)? else {
                return Ok(None);
            };
            let (_, requests) = visible_in(store, account_id, site_id)?;
            // A request the customer may not view is answered as one that
            // does not exist: its key tells nothing.
            let summary = requests
                .into_iter()
                .find(|r| r.key == wanted)
                .ok_or_else(|| ApiError::not_found(format!("you have no request {wanted}")))?;
            let comments = store.read(|tx| access::request_comments(tx, summary.id))?;
            Ok(Some((summary, comments)))
        })
        .await;
    match found {
        Ok(Some((summary, comments))) => render(&RequestPage {
            layout: Layout::default(),
            site,
            key: summary.key,
            summary: summary.summary,
            status: summary.status,
            created: summary.created,
            comments,
        }),
        Ok(None) => Redirect::to(&format!("/help/{site}/sign-in")).into_response(),
        Err(e) => UiError(e).into_response(),
    }
}
