//! Copy plans: check, run (in the background), resume, status, rollback
//! and the report files.

use std::collections::BTreeMap;

use crate::extract::{Body, Path};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use ferry_copy::{CopyOptions, OrganizationMode, ReportData, RunStatus, Scope};
use ferry_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sites::admin_site;
use crate::auth::AdminCaller;
use crate::{ApiError, ApiResult, AppState, ErrorBody};

/// A copy plan (SPEC §2), as `copy check|run` takes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PlanRequest {
    pub from: String,
    pub to: String,
    /// Project keys to copy; every project when absent.
    pub projects: Option<Vec<String>>,
    /// `related` (default) or `all`.
    pub customers: Option<String>,
    /// `block` (default) or `merge`.
    pub organizations: Option<String>,
    /// Source project key -> key on the destination, for keys taken there.
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
}

impl PlanRequest {
    pub(crate) fn options(&self) -> ApiResult<CopyOptions> {
        let customers = match self.customers.as_deref() {
            None | Some("related") => Scope::Related,
            Some("all") => Scope::All,
            Some(other) => {
                return Err(ApiError::invalid(format!("customers {other:?} is not known; use related or all")));
            }
        };
        let organizations = match self.organizations.as_deref() {
            None | Some("block") => OrganizationMode::Block,
            Some("merge") => OrganizationMode::Merge,
            Some(other) => {
                return Err(ApiError::invalid(format!("organizations {other:?} is not known; use block or merge")));
            }
        };
        Ok(CopyOptions {
            from: self.from.clone(),
            to: self.to.clone(),
            projects: self.projects.clone(),
            customers,
            renames: self.renames.clone(),
            organizations,
        })
    }
}

/// Refuses unless the caller administers both sites of a copy.
pub(crate) fn require_both(store: &mut Store, caller: &AdminCaller, from: &str, to: &str) -> ApiResult<()> {
    admin_site(store, caller, from)?;
    admin_site(store, caller, to)?;
    Ok(())
}

/// Run `id`, if the caller administers both of its sites.
pub(crate) fn admin_run(store: &mut Store, caller: &AdminCaller, id: i64) -> ApiResult<RunStatus> {
    let status = ferry_copy::status(store, id)?;
    require_both(store, caller, &status.from, &status.to)?;
    Ok(status)
}

/// One RequiresAttention row (SPEC §4), named as the CSV's columns.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttentionRow {
    pub customer_email: String,
    pub account_type_on_source: String,
    pub account_type_on_destination: String,
    pub account_type_after_copying: String,
    pub problem: String,
    pub next_step: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictRow {
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub problem: String,
    pub resolution: String,
}

/// A report (predicted by a check, or a run's): Summary.json's content,
/// the RequiresAttention rows and the blocking conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Report {
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
    pub requires_attention: Vec<AttentionRow>,
    pub conflicts: Vec<ConflictRow>,
}

impl Report {
    pub(crate) fn of(data: &ReportData) -> Report {
        Report {
            summary: data.summary(),
            requires_attention: data
                .requires_attention()
                .into_iter()
                .map(|[email, source, destination, after, problem, next]| AttentionRow {
                    customer_email: email,
                    account_type_on_source: source,
                    account_type_on_destination: destination,
                    account_type_after_copying: after,
                    problem,
                    next_step: next,
                })
                .collect(),
            conflicts: data
                .conflicts
                .iter()
                .map(|c| ConflictRow {
                    kind: c.kind.to_owned(),
                    source: c.source.clone(),
                    destination: c.destination.clone(),
                    problem: c.problem.clone(),
                    resolution: c.resolution.clone(),
                })
                .collect(),
        }
    }
}

/// Predicts every outcome of a plan; writes nothing.
#[utoipa::path(post, path = "/api/v1/copies/check", tag = "copies", request_body = PlanRequest,
    responses((status = 200, body = Report), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    caller: AdminCaller,
    Body(plan): Body<PlanRequest>,
) -> ApiResult<Json<Report>> {
    let options = plan.options()?;
    state
        .store_long(None, move |store| {
            require_both(store, &caller, &options.from, &options.to)?;
            let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options))?;
            Ok(Json(Report::of(&ReportData::from_plan(&plan, ferry_copy::ReportKind::Prediction))))
        })
        .await
}

/// A run, as `copy status` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Run {
    pub id: i64,
    pub from: String,
    pub to: String,
    /// `planning`, `applying`, `done`, `blocked`, `failed` or `rolled_back`.
    pub state: String,
    pub phase: i64,
    pub cursor: i64,
    pub customers: u64,
    pub requests_copied: u64,
    pub group_name: Option<String>,
    /// `awaiting_review`, `active` (approved) or `declined`.
    pub group_state: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why the run failed (state `failed`).
    pub error: Option<String>,
}

impl From<RunStatus> for Run {
    fn from(s: RunStatus) -> Run {
        Run {
            id: s.id,
            from: s.from,
            to: s.to,
            state: s.state.as_str().to_owned(),
            phase: s.phase.code(),
            cursor: s.cursor,
            customers: s.customers,
            requests_copied: s.requests_copied,
            group_name: s.group_name,
            group_state: s.group_state.map(|g| g.as_str().to_owned()),
            started_at: s.started_at,
            finished_at: s.finished_at,
            error: s.error,
        }
    }
}

/// Runs between sites the caller administers, newest first.
#[utoipa::path(get, path = "/api/v1/copies", tag = "copies", responses((status = 200, body = Vec<Run>), (status = 401, body = ErrorBody)))]
pub async fn list_runs(State(state): State<AppState>, caller: AdminCaller) -> ApiResult<Json<Vec<Run>>> {
    state
        .store_long(None, move |store| {
            let runs = ferry_copy::list_runs(store)?;
            let sites = store.read(ferry_store::sites::list_sites)?;
            let org_of = |slug: &str| sites.iter().find(|s| s.slug == slug).map(|s| s.org.clone()).unwrap_or_default();
            let mine = |slug: &str| caller.admin.orgs.contains(&org_of(slug));
            Ok(Json(runs.into_iter().filter(|r| mine(&r.from) && mine(&r.to)).map(Run::from).collect()))
        })
        .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Started {
    pub run: i64,
}

/// Starts a run in the background; answers with its id at once. A plan with
/// blocking conflicts is refused (409) before anything is written.
#[utoipa::path(post, path = "/api/v1/copies", tag = "copies", request_body = PlanRequest,
    responses((status = 202, body = Started), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start_run(
    State(state): State<AppState>,
    caller: AdminCaller,
    Body(plan): Body<PlanRequest>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    let run = start(&state, caller, plan).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { run })))
}

/// Starts a run of `plan` in the background, once its sites are the
/// caller's and it has no blocking conflicts; the run's id.
pub(crate) async fn start(state: &AppState, caller: AdminCaller, plan: PlanRequest) -> ApiResult<i64> {
    let options = plan.options()?;
    // Conflicts are checked first (without deciding the customers, which the
    // run does) so that the caller hears of them, rather than of a run that
    // fails in the background.
    let checked = options.clone();
    let actor = caller.actor.clone();
    state
        .store(None, move |store| {
            require_both(store, &caller, &checked.from, &checked.to)?;
            let conflicts = store.read(|tx| ferry_copy::check_conflicts(tx, &checked))?;
            if conflicts.is_empty() { Ok(()) } else { Err(ferry_copy::CopyError::Conflicts(conflicts).into()) }
        })
        .await?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    state.spawn_store(actor, move |store| {
        let mut sender = Some(sender);
        let result = store.and_then(|store| {
            ferry_copy::run(store, &options, &mut ferry_copy::Quiet, |id| {
                if let Some(s) = sender.take() {
                    let _ = s.send(Ok(id));
                }
            })
            .map_err(ApiError::from)
        });
        if let (Err(e), Some(s)) = (result, sender.take()) {
            let _ = s.send(Err(e));
        }
    });
    receiver.await.map_err(|_| ApiError::internal("the run stopped before it started"))?
}

/// Where a run stands (poll it for progress).
#[utoipa::path(get, path = "/api/v1/copies/{run}", tag = "copies", params(("run" = i64, Path)),
    responses((status = 200, body = Run), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn run_status(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(run): Path<i64>,
) -> ApiResult<Json<Run>> {
    state.store(None, move |store| Ok(Json(admin_run(store, &caller, run)?.into()))).await
}

/// Finishes an interrupted run, in the background; 409 `run_claimed` when
/// another process is applying it now, 409 `run_done` when it is done and
/// 409 `not_resumable` when it failed, was blocked or rolled back (nothing
/// changes).
#[utoipa::path(post, path = "/api/v1/copies/{run}/resume", tag = "copies", params(("run" = i64, Path)),
    responses((status = 202, body = Started), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(run): Path<i64>,
) -> ApiResult<(StatusCode, Json<Started>)> {
    start_resume(&state, caller, run).await?;
    Ok((StatusCode::ACCEPTED, Json(Started { run })))
}

/// Resumes run `run` in the background, once it is the caller's, can be
/// resumed and no other process applies it (each refusal as the CLI's);
/// the outcome is the run's state, which status reports.
pub(crate) async fn start_resume(state: &AppState, caller: AdminCaller, run: i64) -> ApiResult<()> {
    let actor = caller.actor.clone();
    state
        .store(None, move |store| {
            admin_run(store, &caller, run)?;
            ferry_copy::check_resumable(store, run)?;
            if ferry_copy::is_claimed(store, run)? { Err(ferry_copy::CopyError::Claimed(run).into()) } else { Ok(()) }
        })
        .await?;
    state.spawn_store(actor, move |store| {
        if let Ok(store) = store {
            let _ = ferry_copy::resume(store, run, &mut ferry_copy::Quiet);
        }
    });
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RolledBack {
    pub requests: u64,
    pub accounts: u64,
    pub projects: u64,
    pub organizations: u64,
    pub grants: u64,
    pub group: Option<String>,
}

/// Removes what a run created and revokes what it granted; refuses (409,
/// each blocker in `details`) when later changes depend on it.
#[utoipa::path(post, path = "/api/v1/copies/{run}/rollback", tag = "copies", params(("run" = i64, Path)),
    responses((status = 200, body = RolledBack), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(run): Path<i64>,
) -> ApiResult<Json<RolledBack>> {
    let actor = caller.actor.clone();
    state
        .store_long(Some(actor), move |store| {
            admin_run(store, &caller, run)?;
            let s = ferry_copy::rollback(store, run)?;
            Ok(Json(RolledBack {
                requests: s.requests,
                accounts: s.accounts,
                projects: s.projects,
                organizations: s.organizations,
                grants: s.grants,
                group: s.group,
            }))
        })
        .await
}

/// A run's report.
#[utoipa::path(get, path = "/api/v1/copies/{run}/report", tag = "copies", params(("run" = i64, Path)),
    responses((status = 200, body = Report), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(run): Path<i64>,
) -> ApiResult<Json<Report>> {
    state
        .store_long(None, move |store| {
            admin_run(store, &caller, run)?;
            Ok(Json(Report::of(&ferry_copy::run_report(store, run)?)))
        })
        .await
}

/// The files of a report folder, by name.
pub const REPORT_FILES: [&str; 4] = ["RequiresAttention.csv", "Customers.csv", "Summary.json", "Conflicts.csv"];

/// The report files of run `run` (Conflicts.csv only when there are some).
pub(crate) fn report_files(store: &mut Store, run: i64) -> ApiResult<Vec<(&'static str, Vec<u8>)>> {
    let dir = tempfile::tempdir().map_err(|e| ApiError::internal(format!("no scratch folder: {e}")))?;
    ferry_copy::write_run_report(store, run, dir.path())?;
    let mut files = Vec::new();
    for name in REPORT_FILES {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            files.push((name, bytes));
        }
    }
    Ok(files)
}

/// One file of a run's report folder, exactly as `copy report` writes it.
#[utoipa::path(get, path = "/api/v1/copies/{run}/report/{file}", tag = "copies",
    params(("run" = i64, Path), ("file" = String, Path, description = "RequiresAttention.csv, Customers.csv, Summary.json or Conflicts.csv")),
    responses((status = 200, description = "The file: CSV, or JSON for Summary.json", content((String = "text/csv"), (Object = "application/json"))), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn report_file(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path((run, file)): Path<(i64, String)>,
) -> ApiResult<Response> {
    let Some(name) = REPORT_FILES.into_iter().find(|f| *f == file) else {
        return Err(ApiError::not_found(format!(
            "a report has no file {file:?}; the files are {}",
            REPORT_FILES.join(", ")
        )));
    };
    let files = state
        .store_long(None, move |store| {
            admin_run(store, &caller, run)?;
            report_files(store, run)
        })
        .await?;
    report_download(files, run, name)
}

/// File `name` of run `run`'s report files, as a download.
pub(crate) fn report_download(files: Vec<(&'static str, Vec<u8>)>, run: i64, name: &str) -> ApiResult<Response> {
    let bytes = files
        .into_iter()
        .find(|(f, _)| *f == name)
        .map(|(_, b)| b)
        .ok_or_else(|| ApiError::not_found(format!("run {run}'s report has no {name}")))?;
    let content_type = if name.ends_with(".json") { "application/json" } else { "text/csv; charset=utf-8" };
    let disposition = format!("attachment; filename=\"run-{run}-{name}\"");
    Ok(([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes)
        .into_response())
}
