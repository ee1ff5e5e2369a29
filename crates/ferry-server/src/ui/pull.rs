//! The console's "Pull from Jira Cloud" (SPEC §8): a form per site, then a
//! page that follows the pull's progress until it is imported or failed.
//! The form's secrets go to the pull only: never echoed, stored or logged.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum_extra::extract::Form;
use serde::Deserialize;

use super::{ConsoleAdmin, Layout, UiResult, is_htmx, render};
use crate::AppState;
use crate::api::sites::admin_site;
use crate::pulls::{PullRequest, PullState, PullStatus};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/sites/{site}/pull", get(form).post(start))
        .route("/console/pulls/{pull}", get(page))
        .route("/console/pulls/{pull}/progress", get(progress))
}

#[derive(Template)]
#[template(path = "pull_form.html")]
struct FormPage {
    layout: Layout,
    site: String,
}

async fn form(State(state): State<AppState>, admin: ConsoleAdmin, Path(site): Path<String>) -> UiResult {
    let caller = admin.as_api();
    let checked = site.clone();
    state.store(None, move |store| admin_site(store, &caller, &checked).map(|_| ())).await?;
    let layout = admin.layout(&state).await?;
    Ok(render(&FormPage { layout, site }))
}

/// The form as posted. Not `Debug`: it holds the API token.
#[derive(Deserialize)]
struct PullForm {
    jira: String,
    email: String,
    api_token: String,
    #[serde(default)]
    projects: String,
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    admin_api_key: String,
    #[serde(default)]
    admin_api: String,
}

async fn start(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(site): Path<String>,
    Form(form): Form<PullForm>,
) -> UiResult {
    let request = PullRequest {
        jira: form.jira,
        email: form.email,
        api_token: form.api_token,
        projects: form.projects.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect(),
        org_id: Some(form.org_id).filter(|s| !s.trim().is_empty()),
        admin_api_key: Some(form.admin_api_key).filter(|s| !s.trim().is_empty()),
        admin_api: Some(form.admin_api).filter(|s| !s.trim().is_empty()),
    };
    let pull = crate::pulls::start(&state, admin.as_api(), site, request).await?;
    Ok(Redirect::to(&format!("/console/pulls/{pull}")).into_response())
}

#[derive(Template)]
#[template(path = "pull.html")]
struct PullPage {
    layout: Layout,
    pull: PullStatus,
    finished: bool,
}

#[derive(Template)]
#[template(path = "pull_progress.html")]
struct ProgressPartial {
    pull: PullStatus,
    finished: bool,
}

async fn page(State(state): State<AppState>, admin: ConsoleAdmin, Path(pull): Path<u64>) -> UiResult {
    let pull = crate::pulls::status(&state, &admin.as_api(), pull)?;
    let layout = admin.layout(&state).await?;
    let finished = pull.state != PullState::Running;
    Ok(render(&PullPage { layout, pull, finished }))
}

async fn progress(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(pull): Path<u64>,
    headers: HeaderMap,
) -> UiResult {
    let pull = crate::pulls::status(&state, &admin.as_api(), pull)?;
    let finished = pull.state != PullState::Running;
    if is_htmx(&headers) {
        Ok(render(&ProgressPartial { pull, finished }))
    } else {
        let layout = admin.layout(&state).await?;
        Ok(render(&PullPage { layout, pull, finished }))
    }
}
