//! Pulls from Jira Cloud (SPEC §8) started over the API or the console. A
//! pull runs in the background; its progress and result live in memory on
//! the server that started it (credentials never: they go to the pull and
//! are dropped with it). The import at its end is `site import`'s, all or
//! nothing, so a pull that stops (an error, a server that stops) has
//! written nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use ferry_jira::{PullProgress, PullReport, Secret};
use ferry_ops::pull::{Credentials, PullOptions};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::sites::admin_site;
use crate::auth::AdminCaller;
use crate::{ApiError, ApiResult, AppState};

/// Finished pulls kept for their pages, at most.
const KEPT: usize = 200;

/// Pulls running at once on one server (one per site at most).
const MAX_RUNNING: usize = 4;

/// The hosts a server pulls from by default (`FERRY_PULL_HOSTS` replaces
/// them): Jira Cloud sites and the organization admin API.
pub const DEFAULT_PULL_HOSTS: [&str; 3] = ["atlassian.net", "jira.com", "api.atlassian.com"];

/// What to pull: the site's address and the credentials, which are used
/// for this pull only, never stored and never logged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// `https://<name>.atlassian.net`.
    pub jira: String,
    /// The Atlassian account the API token belongs to.
    pub email: String,
    /// An API token of that account (basic auth).
    pub api_token: String,
    /// Project keys of the service desks to pull; all when absent or empty.
    #[serde(default)]
    pub projects: Vec<String>,
    /// The organization's id, with `admin_api_key`.
    #[serde(default)]
    pub org_id: Option<String>,
    /// An organization admin API key: email verification and hidden emails.
    #[serde(default)]
    pub admin_api_key: Option<String>,
    /// The organization admin API's address (default `https://api.atlassian.com`).
    #[serde(default)]
    pub admin_api: Option<String>,
}

impl std::fmt::Debug for PullRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequest")
            .field("jira", &self.jira)
            .field("projects", &self.projects)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PullState {
    Running,
    Done,
    Failed,
}

/// An account whose email the site hides.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HiddenAccount {
    pub account_id: String,
    pub account_type: String,
    pub display_name: String,
}

/// Where a pull stands, and what it found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PullStatus {
    pub pull: u64,
    pub site: String,
    pub jira: String,
    pub state: PullState,
    /// The step under way (or the last one), and how many items it met.
    pub step: String,
    pub items: u64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Rows imported per snapshot file (when done).
    pub rows: BTreeMap<String, u64>,
    pub hidden_emails: Vec<HiddenAccount>,
    /// Whether email verification was read from the organization admin API.
    pub verification_checked: bool,
    /// Atlassian accounts the organization does not manage (counted as verified).
    pub unmanaged: Vec<String>,
    pub skipped_accounts: Vec<String>,
    pub skipped_comments: u64,
    pub skipped_requests: u64,
    /// HTTP requests sent to the site, and how many were retries.
    pub requests: u64,
    pub retries: u64,
    /// What the pull told, one line each (as the CLI prints it).
    pub notes: Vec<String>,
    /// Why it failed (when failed): the stable code and the message.
    pub error_code: Option<String>,
    pub error: Option<String>,
    #[serde(skip)]
    pub(crate) org: String,
}

/// The pulls this server started.
#[derive(Default)]
pub struct Pulls {
    next: u64,
    jobs: BTreeMap<u64, PullStatus>,
}

pub(crate) type SharedPulls = Arc<Mutex<Pulls>>;

fn with<T>(pulls: &SharedPulls, f: impl FnOnce(&mut Pulls) -> T) -> T {
    let mut guard = pulls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f(&mut guard)
}

struct JobProgress {
    pulls: SharedPulls,
    id: u64,
}

impl PullProgress for JobProgress {
    fn step(&self, step: &str, items: u64) {
        with(&self.pulls, |p| {
            if let Some(job) = p.jobs.get_mut(&self.id) {
                step.clone_into(&mut job.step);
                job.items = items;
            }
        });
    }
}

/// Checks the request and the caller's right to the site, registers the
/// pull and starts it; its id.
pub(crate) async fn start(state: &AppState, caller: AdminCaller, site: String, request: PullRequest) -> ApiResult<u64> {
    let jira = ferry_jira::client::base_url(&request.jira, "jira").map_err(|e| ApiError::invalid(e.to_string()))?;
    allowed(state, &jira, "jira")?;
    if let Some(url) = request.admin_api.as_deref().filter(|u| !u.trim().is_empty()) {
        let admin = ferry_jira::client::base_url(url, "admin_api").map_err(|e| ApiError::invalid(e.to_string()))?;
        allowed(state, &admin, "admin_api")?;
    }
    if request.email.trim().is_empty() || request.api_token.trim().is_empty() {
        return Err(ApiError::invalid("email and api_token are required (an Atlassian account and its API token)"));
    }
    let options = PullOptions {
        jira: request.jira.trim().to_owned(),
        projects: request.projects.clone(),
        org_id: request.org_id.clone().filter(|s| !s.trim().is_empty()),
        admin_api: request.admin_api.clone().filter(|s| !s.trim().is_empty()),
    };
    let credentials = Credentials {
        email: request.email.trim().to_owned(),
        token: Secret::new(request.api_token.trim()),
        admin_key: request.admin_api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()).map(Secret::new),
    };
    drop(request);
    let config = ferry_ops::pull::config(&options, credentials)?;
    let actor = Some(caller.actor.clone());
    let checked_site = site.clone();
    let org = state
        .store(None, move |store| {
            let site = admin_site(store, &caller, &checked_site)?;
            Ok(site.org)
        })
        .await?;
    let pulls = state.pulls.clone();
    let id = with(&pulls, |p| {
        let running: Vec<&PullStatus> = p.jobs.values().filter(|j| j.state == PullState::Running).collect();
        if let Some(other) = running.iter().find(|j| j.site == site) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("pull {} into site {site} is still running; wait for it", other.pull),
            ));
        }
        if running.len() >= MAX_RUNNING {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{MAX_RUNNING} pulls are running on this server; start this one when one ends"),
            ));
        }
        p.next += 1;
        let id = p.next;
        p.jobs.insert(
            id,
            PullStatus {
                pull: id,
                site: site.clone(),
                jira: options.jira.clone(),
                state: PullState::Running,
                step: "starting".to_owned(),
                items: 0,
                started_at: ferry_core::model::now(),
                finished_at: None,
                rows: BTreeMap::new(),
                hidden_emails: Vec::new(),
                verification_checked: config.admin.is_some(),
                unmanaged: Vec::new(),
                skipped_accounts: Vec::new(),
                skipped_comments: 0,
                skipped_requests: 0,
                requests: 0,
                retries: 0,
                notes: Vec::new(),
                error_code: None,
                error: None,
                org,
            },
        );
        // Only the newest finished pulls are kept.
        let finished: Vec<u64> =
            p.jobs.iter().filter(|(_, j)| j.state != PullState::Running).map(|(id, _)| *id).collect();
        for old in finished.iter().take(finished.len().saturating_sub(KEPT)) {
            p.jobs.remove(old);
        }
        Ok(id)
    })?;
    let state = state.clone();
    let work = {
        let state = state.clone();
        tokio::spawn(async move { run(&state, id, &site, config, actor).await })
    };
    tokio::spawn(async move {
        // A pull that panicked fails; it never stays "running".
        let outcome = work.await.unwrap_or_else(|e| Err(ApiError::internal(format!("the pull stopped: {e}"))));
        with(&state.pulls, |p| {
            if let Some(job) = p.jobs.get_mut(&id) {
                job.finished_at = Some(ferry_core::model::now());
                match outcome {
                    Ok((report, rows)) => {
                        job.state = PullState::Done;
                        job.step = "done".to_owned();
                        job.notes = ferry_ops::pull::report_lines(&report);
                        job.rows = rows;
                        fill(job, report);
                    }
                    Err(e) => {
                        job.state = PullState::Failed;
                        job.error_code = Some(e.code.to_owned());
                        job.error = Some(if e.details.is_empty() {
                            e.message
                        } else {
                            format!("{}: {}", e.message, e.details.join("; "))
                        });
                    }
                }
            }
        });
    });
    Ok(id)
}

async fn run(
    state: &AppState,
    id: u64,
    site: &str,
    config: ferry_jira::PullConfig,
    actor: Option<String>,
) -> Result<(PullReport, BTreeMap<String, u64>), ApiError> {
    let progress = JobProgress { pulls: state.pulls.clone(), id };
    let pulled = ferry_ops::pull::fetch(&config, &progress).await?;
    drop(config);
    // Only now, with the whole site read, does anything reach the disk.
    let dir = tempfile::Builder::new()
        .prefix("ferry-pull-")
        .tempdir()
        .map_err(|e| ApiError::internal(format!("no scratch folder: {e}")))?;
    let path = dir.path().to_owned();
    let report = tokio::task::spawn_blocking(move || ferry_ops::pull::write(pulled, &path))
        .await
        .map_err(|e| ApiError::internal(format!("writing the pulled snapshot stopped: {e}")))??;
    progress.step("importing", report.counts.iter().map(|(_, n)| n).sum());
    let site = site.to_owned();
    let path = dir.path().to_owned();
    let rows = state
        .store_long(actor, move |store| {
            let summary = ferry_ops::pull::import(store, &site, &path, &mut ferry_snapshot::Quiet)?;
            Ok(summary.rows.into_iter().map(|(f, n)| (f.to_owned(), n)).collect::<BTreeMap<_, _>>())
        })
        .await?;
    Ok((report, rows))
}

fn fill(job: &mut PullStatus, report: PullReport) {
    job.hidden_emails = report
        .hidden_emails
        .into_iter()
        .map(|h| HiddenAccount {
            account_id: h.account_id,
            account_type: h.account_type.to_owned(),
            display_name: h.display_name,
        })
        .collect();
    job.verification_checked = report.verification_checked;
    job.unmanaged = report.unmanaged;
    job.skipped_accounts = report.skipped_accounts;
    job.skipped_comments = report.skipped_comments;
    job.skipped_requests = report.skipped_requests;
    job.requests = report.requests;
    job.retries = report.retries;
}

/// Pull `id`, if the caller administers its site's organization: another
/// organization's pull is not found (ids are sequential; a refusal would
/// tell which organizations exist).
pub(crate) fn status(state: &AppState, caller: &AdminCaller, id: u64) -> ApiResult<PullStatus> {
    let missing =
        || ApiError::not_found(format!("no pull {id} of yours on this server (pulls are kept in its memory)"));
    let job = with(&state.pulls, |p| p.jobs.get(&id).cloned()).ok_or_else(missing)?;
    if caller.require_org(&job.org).is_err() {
        return Err(missing());
    }
    Ok(job)
}

/// Refuses an address this server may not pull from: its host must be one
/// of `FERRY_PULL_HOSTS` (a name, or a domain its subdomains match), by
/// default Atlassian's own. An admin could otherwise make the server call
/// any host it reaches (its own loopback, the internal network).
fn allowed(state: &AppState, url: &ferry_jira::Url, what: &str) -> ApiResult<()> {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    let ok = state.pull_hosts.iter().any(|allowed| {
        let allowed = allowed.trim().trim_start_matches("*.").to_ascii_lowercase();
        !allowed.is_empty() && (host == allowed || host.ends_with(&format!(".{allowed}")))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what}: this server pulls only from {} (FERRY_PULL_HOSTS sets the list)",
            state.pull_hosts.join(", ")
        )))
    }
}
