//! The admin console's pages.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::{CookieJar, Form};
use ferry_copy::{ReportData, RunStatus};
use ferry_core::plan::Outcome;
use ferry_core::run::{Phase, RunState};
use ferry_remedy::{GroupDecision, Selection, UpgradeStatus};
use ferry_store::web::SessionOwner;
use serde::Deserialize;

use super::{ConsoleAdmin, Layout, UiError, UiResult, is_htmx, render, thousands};
use crate::api::copies::{PlanRequest, REPORT_FILES, report_download, report_files};
use crate::api::sites::{CustomersQuery, PageQuery, admin_site};
use crate::auth::{self, Caller, Credentials};
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/console", get(home))
        .route("/console/sites", post(create_site))
        .route("/console/sites/{site}/customers", get(customers))
        .route("/console/sites/{site}/upgrade", get(upgrade_preview).post(upgrade_confirm))
        .route("/console/sites/{site}/upgrade/done", get(upgrade_done))
        .route("/console/users", get(users))
        .route("/console/sites/{site}/groups/{group}", get(group))
        .route("/console/sites/{site}/groups/{group}/{decision}", get(confirm_decision).post(decide))
        .route("/console/copies", get(copies))
        .route("/console/copies/check", get(check))
        .route("/console/copies/run", post(run))
        .route("/console/plans", post(save_plan))
        .route("/console/plans/{plan}", get(plan_page))
        .route("/console/plans/{plan}/run", post(run_plan))
        .route("/console/copies/{run}", get(run_page))
        .route("/console/copies/{run}/progress", get(progress))
        .route("/console/copies/{run}/resume", post(resume_run))
        .route("/console/copies/{run}/rollback", get(confirm_rollback).post(rollback_run))
        .route("/console/copies/{run}/details", get(details))
        .route("/console/copies/{run}/files/{file}", get(file))
        .route("/console/copies/{run}/report.zip", get(zip))
        .route("/console/audit", get(audit))
        .route("/console/tokens", get(tokens).post(create_token))
        .route("/console/tokens/created/{reveal}", get(token_created))
        .route("/console/tokens/{id}/revoke", post(revoke_token))
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub layout: Layout,
    pub heading: String,
    pub action: String,
    pub error: Option<String>,
}

async fn sign_in_page() -> Response {
    render(&SignInPage {
        layout: Layout::default(),
        heading: "Sign in to ferry".into(),
        action: "/sign-in".into(),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    pub email: String,
    pub password: String,
}

async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Form(form): Form<SignInForm>,
) -> Response {
    match crate::api::session::admin_sign_in(&state, peer, &form.email, &form.password).await {
        Ok(id) => match auth::start_session(&state, SessionOwner::Admin(id)).await {
            Ok(session) => (jar.add(auth::session_cookie(auth::SessionKind::Admin, session)), Redirect::to("/console"))
                .into_response(),
            Err(e) => UiError(e).into_response(),
        },
        Err(e) => {
            let page = SignInPage {
                layout: Layout::default(),
                heading: "Sign in to ferry".into(),
                action: "/sign-in".into(),
                error: Some(e.message),
            };
            (e.status, render(&page)).into_response()
        }
    }
}

async fn sign_out(State(state): State<AppState>, caller: Caller, jar: CookieJar) -> Response {
    auth::end_session(&state, caller).await;
    (jar.add(auth::removal_cookie(auth::SessionKind::Admin)), Redirect::to("/sign-in")).into_response()
}

struct SiteRow {
    org: String,
    slug: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    orgs: Vec<String>,
    sites: Vec<SiteRow>,
}

async fn home(State(state): State<AppState>, admin: ConsoleAdmin) -> UiResult {
    let layout = admin.layout(&state).await?;
    let orgs = admin.admin.orgs.clone();
    let mine = orgs.clone();
    let sites = state.store(None, |store| Ok(store.read(ferry_store::sites::list_sites)?)).await?;
    let sites =
        sites.into_iter().filter(|s| mine.contains(&s.org)).map(|s| SiteRow { org: s.org, slug: s.slug }).collect();
    Ok(render(&HomePage { layout, orgs, sites }))
}

#[derive(Deserialize)]
struct NewSite {
    org: String,
    site: String,
}

async fn create_site(State(state): State<AppState>, admin: ConsoleAdmin, Form(form): Form<NewSite>) -> UiResult {
    let caller = admin.as_api();
    caller.require_org(&form.org)?;
    let actor = admin.actor.clone();
    state
        .store(None, move |store| {
            Ok(store.write(|tx| ferry_store::sites::create_site_audited(tx, &form.org, form.site.trim(), &actor))?)
        })
        .await?;
    Ok(Redirect::to("/console").into_response())
}

struct CustomerRow {
    email: String,
    display_name: String,
    type_label: &'static str,
    portal_only: bool,
    account_id: String,
    active: bool,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    layout: Layout,
    site: String,
    q: String,
    account_type: String,
    duplicates: bool,
    customers: Vec<CustomerRow>,
    next: Option<String>,
    previous: Option<String>,
    /// "50 of 1,234 customers", or what is known.
    shown: String,
    too_common: bool,
}

#[derive(Deserialize)]
struct CustomersForm {
    #[serde(default)]
    q: String,
    #[serde(rename = "type", default)]
    account_type: String,
    #[serde(default)]
    duplicates: bool,
    after: Option<String>,
    before: Option<String>,
}

async fn customers(
    State(state): State<AppState>,
    credentials: Credentials,
    Path(site): Path<String>,
    Query(form): Query<CustomersForm>,
) -> UiResult {
    let query = PageQuery::parse(CustomersQuery {
        account_type: Some(form.account_type.clone()).filter(|t| !t.is_empty()),
        duplicates: form.duplicates,
        q: Some(form.q.clone()),
        after: form.after.clone().filter(|a| !a.is_empty()),
        before: form.before.clone().filter(|b| !b.is_empty()),
        limit: Some(50),
    })?;
    // The hottest page: who is asking, the frame and the page in one trip
    // to the store.
    let slug = site.clone();
    let found = state
        .store(None, move |store| {
            let admin = match ConsoleAdmin::from_caller(credentials.resolve(store)?) {
                Ok(admin) => admin,
                Err(denied) => return Ok(Err(denied)),
            };
            let layout = super::layout_of(store, &admin.admin)?;
            Ok(Ok((layout, query.run(store, &admin.as_api(), &slug)?)))
        })
        .await?;
    let (layout, page) = match found {
        Ok(found) => found,
        Err(denied) => return Ok(denied.into_response()),
    };
    let too_common = page.search_too_common;
    let link = |side: &str, cursor: String| {
        let mut url = url_query(&[("q", &form.q), ("type", &form.account_type), (side, &cursor)]);
        if form.duplicates {
            url.push_str("&duplicates=true");
        }
        format!("/console/sites/{site}/customers?{url}")
    };
    let next = page.next.map(|cursor| link("after", cursor));
    let previous = page.previous.map(|cursor| link("before", cursor));
    let count = page.customers.len();
    let noun = |n: u64| if n == 1 { "customer" } else { "customers" };
    let shown = match page.total {
        Some(total) => format!("Showing {} of {} {}", thousands(count as u64), thousands(total), noun(total)),
        None => format!("Showing {} {}", thousands(count as u64), noun(count as u64)),
    };
    let customers = page
        .customers
        .into_iter()
        .map(|c| CustomerRow {
            portal_only: c.account_type == "portal-only",
            type_label: if c.account_type == "portal-only" { "Portal-only" } else { "Atlassian account" },
            email: c.email,
            display_name: c.display_name,
            account_id: c.account_id,
            active: c.active,
        })
        .collect();
    Ok(render(&CustomersPage {
        layout,
        site,
        q: form.q,
        account_type: form.account_type,
        duplicates: form.duplicates,
        customers,
        next,
        previous,
        shown,
        too_common,
    }))
}

/// Every byte but letters, digits and `-._~` (RFC 3986's unreserved).
const UNRESERVED_KEPT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `value`, percent-encoded for a URL's path or query: a name can never
/// add a path segment.
pub(crate) fn percent(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, UNRESERVED_KEPT).to_string()
}

/// `key=value&…`, percent-encoded.
fn url_query(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect::<Vec<_>>().join("&")
}

#[derive(Deserialize)]
struct UpgradeForm {
    #[serde(default)]
    email: Vec<String>,
    #[serde(default)]
    all_duplicates: bool,
}

struct UpgradeRow {
    email: String,
    portal: String,
    what: String,
    requests: String,
    participations: String,
    comments: String,
    lists: String,
    organizations: String,
}

#[derive(Template)]
#[template(path = "upgrade.html")]
struct UpgradePage {
    layout: Layout,
    site: String,
    dry_run: bool,
    summary: String,
    emails: Vec<String>,
    all_duplicates: bool,
    lines: Vec<UpgradeRow>,
}

/// The upgrade (or its dry run) a form asks for, on a site the admin
/// administers.
async fn run_upgrade(
    state: &AppState,
    admin: &ConsoleAdmin,
    site: &str,
    form: &UpgradeForm,
    dry_run: bool,
) -> UiResult<ferry_remedy::UpgradeReport> {
    let selection = upgrade_selection(form)?;
    let caller = admin.as_api();
    let slug = site.to_owned();
    Ok(state
        .store_long(Some(admin.actor.clone()), move |store| {
            admin_site(store, &caller, &slug)?;
            Ok(ferry_remedy::upgrade(store, &slug, &selection, dry_run, &mut ferry_remedy::Quiet)?)
        })
        .await?)
}

/// The accounts an upgrade form selects.
fn upgrade_selection(form: &UpgradeForm) -> Result<Selection, UiError> {
    if form.all_duplicates {
        Ok(Selection::AllDuplicates)
    } else if form.email.is_empty() {
        Err(ApiError::invalid("select at least one portal-only account to upgrade").into())
    } else {
        Ok(Selection::Emails(form.email.clone()))
    }
}

/// Bulk "Upgrade to Atlassian account", first step: the dry run, listing
/// exactly what would change, with a Confirm button (a page that changes
/// nothing, so it can be reloaded and bookmarked).
async fn upgrade_preview(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(site): Path<String>,
    axum_extra::extract::Query(form): axum_extra::extract::Query<UpgradeForm>,
) -> UiResult {
    upgrade_page(&state, &admin, site, form, true).await
}

/// The confirmed upgrade: done, then sent to a page with its counts.
async fn upgrade_confirm(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(site): Path<String>,
    Form(form): Form<UpgradeForm>,
) -> UiResult {
    let report = run_upgrade(&state, &admin, &site, &form, false).await?;
    let counts = [
        ("upgraded", report.upgraded()),
        ("created", report.created()),
        ("blocked", report.blocked()),
        ("already", report.already()),
    ];
    let query: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
    Ok(Redirect::to(&format!("/console/sites/{site}/upgrade/done?{}", query.join("&"))).into_response())
}

#[derive(Deserialize)]
struct UpgradeCounts {
    #[serde(default)]
    upgraded: usize,
    #[serde(default)]
    created: usize,
    #[serde(default)]
    blocked: usize,
    #[serde(default)]
    already: usize,
}

#[derive(Template)]
#[template(path = "upgrade_done.html")]
struct UpgradeDonePage {
    layout: Layout,
    site: String,
    counts: UpgradeCounts,
}

/// What a confirmed upgrade did (every account's line is in the audit log).
async fn upgrade_done(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(site): Path<String>,
    Query(counts): Query<UpgradeCounts>,
) -> UiResult {
    let caller = admin.as_api();
    let slug = site.clone();
    state.store(None, move |store| admin_site(store, &caller, &slug).map(|_| ())).await?;
    let layout = admin.layout(&state).await?;
    Ok(render(&UpgradeDonePage { layout, site, counts }))
}

async fn upgrade_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    site: String,
    form: UpgradeForm,
    dry_run: bool,
) -> UiResult {
    let report = run_upgrade(state, admin, &site, &form, dry_run).await?;
    let layout = admin.layout(state).await?;
    let count = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    let lines = report
        .lines
        .iter()
        .map(|l| {
            let what = match &l.status {
                UpgradeStatus::ToExisting { atlassian_ext_id } => {
                    format!("moves to Atlassian account {atlassian_ext_id}")
                }
                UpgradeStatus::ToNew { atlassian_ext_id } => {
                    format!("moves to new Atlassian account {atlassian_ext_id} (invitation pending)")
                }
                UpgradeStatus::AlreadyUpgraded { atlassian_ext_id } => {
                    format!("already merged into {atlassian_ext_id}")
                }
                UpgradeStatus::Blocked { reason } => format!("blocked: {reason}"),
            };
            let r = l.references;
            UpgradeRow {
                email: l.email.clone(),
                portal: l.portal_ext_id.clone(),
                what,
                requests: count(r.map(|r| r.requests_reported)),
                participations: count(r.map(|r| r.participations)),
                comments: count(r.map(|r| r.comments)),
                lists: count(r.map(|r| r.customer_lists)),
                organizations: count(r.map(|r| r.organizations)),
            }
        })
        .collect();
    let summary = if dry_run {
        format!(
            "{} account(s) would be upgraded ({} new Atlassian accounts), {} blocked, {} already upgraded. Nothing has changed yet.",
            report.upgraded(),
            report.created(),
            report.blocked(),
            report.already()
        )
    } else {
        format!(
            "Upgraded {} account(s) ({} new Atlassian accounts, invitations pending); {} blocked; {} already upgraded.",
            report.upgraded(),
            report.created(),
            report.blocked(),
            report.already()
        )
    };
    Ok(render(&UpgradePage {
        layout,
        site,
        dry_run,
        summary,
        emails: form.email,
        all_duplicates: form.all_duplicates,
        lines,
    }))
}

/// Group `name` of `site` (matched case-insensitively), as its review
/// shows it, on a site the admin administers.
async fn group_review(
    state: &AppState,
    admin: &ConsoleAdmin,
    site: &str,
    name: &str,
) -> UiResult<ferry_remedy::GroupReview> {
    let caller = admin.as_api();
    let (slug, wanted) = (site.to_owned(), name.to_owned());
    Ok(state
        .store_long(None, move |store| {
            admin_site(store, &caller, &slug)?;
            ferry_remedy::list_groups(store, &slug, false)?
                .into_iter()
                .find(|g| g.name.eq_ignore_ascii_case(&wanted))
                .ok_or_else(|| ApiError::not_found(format!("site {slug} has no group {wanted:?}")))
        })
        .await?)
}

/// A group's review state in the console's words.
pub(crate) fn group_state_label(state: ferry_core::model::GroupState) -> &'static str {
    match state {
        ferry_core::model::GroupState::Active => "active",
        ferry_core::model::GroupState::AwaitingReview => "awaiting review",
        ferry_core::model::GroupState::Declined => "declined",
    }
}

struct GroupRow {
    site: String,
    name: String,
    state: String,
    state_label: &'static str,
    run: String,
    members: usize,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    groups: Vec<GroupRow>,
}

/// User management: every imported group of the admin's sites, pending
/// ones first.
async fn users(State(state): State<AppState>, admin: ConsoleAdmin) -> UiResult {
    let layout = admin.layout(&state).await?;
    let orgs = admin.admin.orgs.clone();
    let mut groups = state
        .store_long(None, move |store| {
            let sites = store.read(ferry_store::sites::list_sites)?;
            let mut rows = Vec::new();
            for site in sites.into_iter().filter(|s| orgs.contains(&s.org)) {
                for g in ferry_remedy::list_groups(store, &site.slug, false)? {
                    if let Some(run) = g.run {
                        rows.push(GroupRow {
                            site: site.slug.clone(),
                            state: g.state.as_str().to_owned(),
                            state_label: group_state_label(g.state),
                            run: run.to_string(),
                            members: g.members.len(),
                            name: g.name,
                        });
                    }
                }
            }
            Ok(rows)
        })
        .await?;
    groups.sort_by_key(|g| g.state != "awaiting_review");
    Ok(render(&UsersPage { layout, groups }))
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    layout: Layout,
    site: String,
    name: String,
    state: String,
    state_label: &'static str,
    run: Option<i64>,
    projects: String,
    requests_gained: u64,
    members: Vec<(String, String)>,
    notice: Option<String>,
}

async fn group_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    site: String,
    name: String,
    notice: Option<String>,
) -> UiResult {
    let review = group_review(state, admin, &site, &name).await?;
    let layout = admin.layout(state).await?;
    Ok(render(&GroupPage {
        layout,
        site,
        name: review.name,
        state: review.state.as_str().to_owned(),
        state_label: group_state_label(review.state),
        run: review.run,
        projects: review.projects.join(", "),
        requests_gained: review.requests_gained,
        members: review.member_names.into_iter().zip(review.members).collect(),
        notice,
    }))
}

async fn group(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path((site, name)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> UiResult {
    let notice = match done.done.as_deref() {
        Some("approved") => Some("Approved: members now hold the Customer role on the copied projects."),
        Some("declined") => Some("Declined: members do not get the Customer role."),
        Some("unchanged") => Some("Nothing changed: the group already had this decision."),
        _ => None,
    };
    group_page(&state, &admin, site, name, notice.map(str::to_owned)).await
}

/// `?done=…` on the page a form redirects to: what the form did.
#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "confirm_decision.html")]
struct ConfirmDecisionPage {
    layout: Layout,
    site: String,
    name: String,
    decision: &'static str,
    members: usize,
    projects: String,
    requests_gained: u64,
}

/// Approve or Decline, asked once more, saying what will change.
async fn confirm_decision(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path((site, name, decision)): Path<(String, String, String)>,
) -> UiResult {
    let decision = match decision.as_str() {
        "approve" => "approve",
        "decline" => "decline",
        other => return Err(ApiError::not_found(format!("no action {other:?}")).into()),
    };
    let review = group_review(&state, &admin, &site, &name).await?;
    let layout = admin.layout(&state).await?;
    Ok(render(&ConfirmDecisionPage {
        layout,
        site,
        name: review.name,
        decision,
        members: review.members.len(),
        projects: review.projects.join(", "),
        requests_gained: review.requests_gained,
    }))
}

async fn decide(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path((site, name, decision)): Path<(String, String, String)>,
) -> UiResult {
    let decision = match decision.as_str() {
        "approve" => GroupDecision::Approve,
        "decline" => GroupDecision::Decline,
        other => return Err(ApiError::not_found(format!("no action {other:?}")).into()),
    };
    let caller = admin.as_api();
    let (slug, group) = (site.clone(), name.clone());
    let (review, changed) = state
        .store_long(Some(admin.actor.clone()), move |store| {
            admin_site(store, &caller, &slug)?;
            Ok(ferry_remedy::decide_group(store, &slug, &group, decision)?)
        })
        .await?;
    let done = match (decision, changed) {
        (GroupDecision::Approve, true) => "approved",
        (GroupDecision::Decline, true) => "declined",
        (_, false) => "unchanged",
    };
    Ok(Redirect::to(&format!("/console/sites/{site}/groups/{}?done={done}", percent(&review.name))).into_response())
}

struct RunRow {
    id: i64,
    from: String,
    to: String,
    state: String,
    customers: u64,
    started_at: String,
}

#[derive(Template)]
#[template(path = "copies.html")]
struct CopiesPage {
    layout: Layout,
    sites: Vec<String>,
    runs: Vec<RunRow>,
    plans: Vec<ferry_store::plans::SavedPlan>,
}

async fn copies(State(state): State<AppState>, admin: ConsoleAdmin) -> UiResult {
    let layout = admin.layout(&state).await?;
    let orgs = admin.admin.orgs.clone();
    let (sites, runs, plans) = state
        .store_long(None, move |store| {
            let sites: Vec<_> =
                store.read(ferry_store::sites::list_sites)?.into_iter().filter(|s| orgs.contains(&s.org)).collect();
            let mine = |slug: &str| sites.iter().any(|s| s.slug == slug);
            let runs: Vec<RunRow> = ferry_copy::list_runs(store)?
                .into_iter()
                .filter(|r| mine(&r.from) && mine(&r.to))
                .map(|r| RunRow {
                    id: r.id,
                    from: r.from,
                    to: r.to,
                    state: r.state.as_str().to_owned(),
                    customers: r.customers,
                    started_at: r.started_at,
                })
                .collect();
            let plans: Vec<_> =
                store.read(ferry_store::plans::list)?.into_iter().filter(|p| mine(&p.from) && mine(&p.to)).collect();
            Ok((sites.into_iter().map(|s| s.slug).collect(), runs, plans))
        })
        .await?;
    Ok(render(&CopiesPage { layout, sites, runs, plans }))
}

/// The plan form, as typed (and as a saved plan keeps it).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
struct PlanForm {
    from: String,
    to: String,
    #[serde(default)]
    projects: String,
    #[serde(default)]
    customers: String,
    #[serde(default)]
    organizations: String,
    #[serde(default)]
    renames: String,
}

impl PlanForm {
    fn request(&self) -> Result<PlanRequest, ApiError> {
        let list = |v: &str| -> Vec<String> {
            v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        let projects = list(&self.projects);
        let mut renames = std::collections::BTreeMap::new();
        for rename in list(&self.renames) {
            let (old, new) = rename
                .split_once('=')
                .ok_or_else(|| ApiError::invalid(format!("rename {rename:?} must look like OLD=NEW")))?;
            renames.insert(old.trim().to_owned(), new.trim().to_owned());
        }
        Ok(PlanRequest {
            from: self.from.clone(),
            to: self.to.clone(),
            projects: if projects.is_empty() { None } else { Some(projects) },
            customers: Some(self.customers.clone()).filter(|v| !v.is_empty()),
            organizations: Some(self.organizations.clone()).filter(|v| !v.is_empty()),
            renames,
        })
    }
}

/// One bar of the outcome chart.
struct Bar {
    label: &'static str,
    count: usize,
    y: usize,
    width: usize,
    color: &'static str,
}

struct Chart {
    bars: Vec<Bar>,
    height: usize,
    /// Customers whose outcome is uncertain (hidden emails, SPEC §8): how
    /// many, the first ones' source account ids, and why.
    uncertain_count: usize,
    uncertain: Vec<String>,
    uncertain_reason: &'static str,
}

/// The most uncertain customers a page names; Summary.json names all.
const UNCERTAIN_NAMED: usize = 50;

/// Customers per outcome, as bars (inline SVG: no script, no library).
fn chart(data: &ReportData) -> Chart {
    const COLORS: [&str; 7] = ["#0052cc", "#00875a", "#ff991f", "#6554c0", "#00b8d9", "#de350b", "#6b778c"];
    let counts: Vec<(Outcome, usize)> = Outcome::ALL.iter().map(|o| (*o, data.outcome_count(*o) as usize)).collect();
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, (outcome, count))| Bar {
            label: outcome.label(),
            count: *count,
            y: i * 22,
            width: count * 260 / max,
            color: COLORS[i % COLORS.len()],
        })
        .collect();
    let height = bars.len() * 22 + 4;
    Chart {
        bars,
        height,
        uncertain_count: data.uncertain().len(),
        uncertain: data.uncertain().iter().take(UNCERTAIN_NAMED).cloned().collect(),
        uncertain_reason: ferry_copy::UNCERTAIN_REASON,
    }
}

struct AttentionRow {
    email: String,
    source: String,
    destination: String,
    after: String,
    problem: String,
    next_step: String,
    state: &'static str,
}

fn attention_rows(data: &ReportData, states: Option<&[ferry_remedy::RowState]>) -> Vec<AttentionRow> {
    data.requires_attention()
        .into_iter()
        .enumerate()
        .map(|(i, [email, source, destination, after, problem, next_step])| AttentionRow {
            email,
            source,
            destination,
            after,
            problem,
            next_step,
            state: states.and_then(|s| s.get(i)).map_or("open", |s| s.as_str()),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "check.html")]
struct CheckPage {
    layout: Layout,
    /// The saved plan this check is of, if any.
    plan: Option<i64>,
    from: String,
    to: String,
    projects: String,
    customers: String,
    organizations: String,
    renames: String,
    chart: Chart,
    requests: u64,
    conflicts: Vec<String>,
    rows: Vec<AttentionRow>,
    with_state: bool,
}

/// A check is a prediction: nothing is written, so it is a page with the
/// plan in its address, to reload, bookmark and come back to.
async fn check(State(state): State<AppState>, admin: ConsoleAdmin, Query(form): Query<PlanForm>) -> UiResult {
    check_page(&state, &admin, form, None).await
}

/// Saves the plan form as a copy plan (after the checks a run makes of its
/// options), then shows it checked.
async fn save_plan(State(state): State<AppState>, admin: ConsoleAdmin, Form(form): Form<PlanForm>) -> UiResult {
    let options = form.request()?.options()?;
    let json = serde_json::to_string(&form).map_err(|e| ApiError::internal(e.to_string()))?;
    let caller = admin.as_api();
    let actor = admin.actor.clone();
    let id = state
        .store(None, move |store| {
            crate::api::copies::require_both(store, &caller, &options.from, &options.to)?;
            store.write(|tx| -> Result<i64, ApiError> {
                let (source, destination) = ferry_copy::validate_options(tx, &options)?;
                Ok(ferry_store::plans::save(tx, source.id, destination.id, &json, &actor)?)
            })
        })
        .await?;
    Ok(Redirect::to(&format!("/console/plans/{id}")).into_response())
}

/// Saved plan `id`, as the caller may see it (both sites its own), with
/// its form.
async fn saved_plan(state: &AppState, admin: &ConsoleAdmin, id: i64) -> UiResult<PlanForm> {
    let caller = admin.as_api();
    let plan = state
        .store(None, move |store| {
            let plan = store.read(|tx| ferry_store::plans::plan(tx, id))?;
            crate::api::copies::require_both(store, &caller, &plan.from, &plan.to)?;
            Ok(plan)
        })
        .await?;
    Ok(serde_json::from_str(&plan.options).map_err(|e| ApiError::internal(format!("plan {id} cannot be read: {e}")))?)
}

/// A saved plan, checked again now.
async fn plan_page(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let form = saved_plan(&state, &admin, id).await?;
    check_page(&state, &admin, form, Some(id)).await
}

/// Runs a saved plan; the browser goes to the run's page.
async fn run_plan(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let form = saved_plan(&state, &admin, id).await?;
    let started = crate::api::copies::start(&state, admin.as_api(), form.request()?).await?;
    Ok(Redirect::to(&format!("/console/copies/{started}")).into_response())
}

async fn check_page(state: &AppState, admin: &ConsoleAdmin, form: PlanForm, plan: Option<i64>) -> UiResult {
    let options = form.request()?.options()?;
    let caller = admin.as_api();
    let data = state
        .store_long(None, move |store| {
            crate::api::copies::require_both(store, &caller, &options.from, &options.to)?;
            let plan = store.read(|tx| ferry_copy::plan_copy(tx, &options))?;
            Ok(ReportData::from_plan(&plan, ferry_copy::ReportKind::Prediction))
        })
        .await?;
    let layout = admin.layout(state).await?;
    Ok(render(&CheckPage {
        layout,
        plan,
        chart: chart(&data),
        requests: data.requests,
        conflicts: data.conflicts.iter().map(|c| format!("{}: {} ({})", c.kind, c.problem, c.resolution)).collect(),
        rows: attention_rows(&data, None),
        with_state: false,
        from: form.from,
        to: form.to,
        projects: form.projects,
        customers: form.customers,
        organizations: form.organizations,
        renames: form.renames,
    }))
}

async fn run(State(state): State<AppState>, admin: ConsoleAdmin, Form(form): Form<PlanForm>) -> UiResult {
    let request = form.request()?;
    let started = crate::api::copies::start(&state, admin.as_api(), request).await?;
    Ok(Redirect::to(&format!("/console/copies/{started}")).into_response())
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    layout: Layout,
    run: RunStatus,
    finished: bool,
    state_label: &'static str,
    phase_label: &'static str,
    notice: Option<String>,
    /// The review banner again, for the page to swap in once the run is
    /// done (`None` inside a full page, which has it already).
    banner: Option<Layout>,
}

#[derive(Template)]
#[template(path = "run_progress.html")]
struct ProgressPartial {
    run: RunStatus,
    finished: bool,
    state_label: &'static str,
    phase_label: &'static str,
    banner: Option<Layout>,
}

/// Where an unfinished run is, in the console's words.
fn run_phase_label(run: &RunStatus) -> &'static str {
    match (run.state, run.phase) {
        (RunState::Planning, _) => Phase::NotStarted.label(),
        (_, Phase::NotStarted) => Phase::Done.label(),
        (_, phase) => phase.label(),
    }
}

#[derive(Template)]
#[template(path = "confirm_rollback.html")]
struct ConfirmRollbackPage {
    layout: Layout,
    run: RunStatus,
}

async fn confirm_rollback(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let run = admin_run(&state, &admin, id).await?;
    let layout = admin.layout(&state).await?;
    Ok(render(&ConfirmRollbackPage { layout, run }))
}

/// Rollback, as `copy rollback`: refused with every reason (shown as a
/// page) when later changes depend on the run.
async fn rollback_run(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let caller = admin.as_api();
    state
        .store_long(Some(admin.actor.clone()), move |store| {
            crate::api::copies::admin_run(store, &caller, id)?;
            ferry_copy::rollback(store, id).map(|_| ()).map_err(ApiError::from)
        })
        .await?;
    Ok(Redirect::to(&format!("/console/copies/{id}?done=rolled_back")).into_response())
}

/// Resume, as `copy resume`: refused (a page saying why) for a run that is
/// finished or being applied elsewhere; else it goes on in the background.
async fn resume_run(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    crate::api::copies::start_resume(&state, admin.as_api(), id).await?;
    Ok(Redirect::to(&format!("/console/copies/{id}?done=resumed")).into_response())
}

async fn admin_run(state: &AppState, admin: &ConsoleAdmin, run: i64) -> UiResult<RunStatus> {
    let caller = admin.as_api();
    Ok(state.store(None, move |store| crate::api::copies::admin_run(store, &caller, run)).await?)
}

fn finished(run: &RunStatus) -> bool {
    !run.state.is_unfinished()
}

async fn run_page(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> UiResult {
    let run = admin_run(&state, &admin, id).await?;
    let layout = admin.layout(&state).await?;
    let finished = finished(&run);
    let notice = match done.done.as_deref() {
        Some("rolled_back") => {
            Some("Rolled back: what the run created is removed and what it granted revoked.".to_owned())
        }
        Some("resumed") => Some("Resumed: the run goes on from where it stopped.".to_owned()),
        _ => None,
    };
    let (state_label, phase_label) = (run.state.label(), run_phase_label(&run));
    Ok(render(&RunPage { layout, run, finished, state_label, phase_label, notice, banner: None }))
}

async fn progress(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> UiResult {
    let run = admin_run(&state, &admin, id).await?;
    let finished = finished(&run);
    let (state_label, phase_label) = (run.state.label(), run_phase_label(&run));
    if is_htmx(&headers) {
        // Once the run is done, the review banner comes along, so that it
        // shows without a reload.
        let banner = if finished { Some(admin.layout(&state).await?) } else { None };
        Ok(render(&ProgressPartial { run, finished, state_label, phase_label, banner }))
    } else {
        let layout = admin.layout(&state).await?;
        Ok(render(&RunPage { layout, run, finished, state_label, phase_label, notice: None, banner: None }))
    }
}

#[derive(Template)]
#[template(path = "details.html")]
struct DetailsPage {
    layout: Layout,
    run: RunStatus,
    chart: Chart,
    requests: u64,
    files: Vec<&'static str>,
    rows: Vec<AttentionRow>,
    with_state: bool,
}

/// View details: the outcome chart, counts, downloads, and every
/// RequiresAttention row with its current state.
async fn details(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let run = admin_run(&state, &admin, id).await?;
    let destination = run.to.clone();
    let group = run.group_name.clone();
    let (data, states, files) = state
        .store_long(None, move |store| {
            let data = ferry_copy::run_report(store, id)?;
            let states = ferry_remedy::row_states(store, &destination, group.as_deref(), &data.attention_keys())?;
            let files = report_files(store, id)?.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
            Ok((data, states, files))
        })
        .await?;
    let layout = admin.layout(&state).await?;
    Ok(render(&DetailsPage {
        layout,
        chart: chart(&data),
        requests: data.requests,
        rows: attention_rows(&data, Some(&states)),
        with_state: true,
        files,
        run,
    }))
}

async fn file(State(state): State<AppState>, admin: ConsoleAdmin, Path((id, name)): Path<(i64, String)>) -> UiResult {
    admin_run(&state, &admin, id).await?;
    let Some(name) = REPORT_FILES.into_iter().find(|f| *f == name) else {
        return Err(ApiError::not_found(format!("a report has no file {name:?}")).into());
    };
    let files = state.store_long(None, move |store| report_files(store, id)).await?;
    Ok(report_download(files, id, name)?)
}

async fn zip(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    admin_run(&state, &admin, id).await?;
    let files = state.store_long(None, move |store| report_files(store, id)).await?;
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut archive = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            archive
                .start_file(format!("run-{id}/{name}"), options)
                .map_err(|e| ApiError::internal(format!("zip: {e}")))?;
            std::io::Write::write_all(&mut archive, &bytes).map_err(|e| ApiError::internal(format!("zip: {e}")))?;
        }
        archive.finish().map_err(|e| ApiError::internal(format!("zip: {e}")))?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"run-{id}-report.zip\"")),
        ],
        buffer.into_inner(),
    )
        .into_response())
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    site: String,
    target: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    entries: Vec<AuditRow>,
    filter: AuditFilter,
    sites: Vec<String>,
    actions: Vec<String>,
}

#[derive(Deserialize, Default)]
struct AuditFilter {
    #[serde(default)]
    site: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    /// From this time on: a date (its start, UTC) or an RFC 3339 time.
    #[serde(default)]
    since: String,
}

/// The audit log as a table, newest first, with filters (site, action,
/// actor, time) and each entry's before and after on demand.
async fn audit(State(state): State<AppState>, admin: ConsoleAdmin, Query(filter): Query<AuditFilter>) -> UiResult {
    let layout = admin.layout(&state).await?;
    let caller = admin.as_api();
    let since = Some(filter.since.trim())
        .filter(|s| !s.is_empty())
        .map(ferry_store::audit::parse_since)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("From: {e}")))?;
    let site = Some(filter.site.clone()).filter(|s| !s.is_empty());
    let all = crate::api::audit::visible_entries(&state, caller, site, since).await?;
    let mut actions: Vec<String> = all.iter().map(|e| e.action.clone()).collect();
    actions.sort();
    actions.dedup();
    let actor = filter.actor.trim().to_lowercase();
    let pretty = |json: Option<String>| -> String {
        json.map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text)
        })
        .unwrap_or_default()
    };
    let entries: Vec<AuditRow> = all
        .into_iter()
        .rev()
        .filter(|e| filter.action.is_empty() || e.action == filter.action)
        .filter(|e| actor.is_empty() || e.actor.to_lowercase().contains(&actor))
        .map(|e| AuditRow {
            at: e.at,
            actor: e.actor,
            action: e.action,
            site: e.site.unwrap_or_default(),
            target: e.target,
            before: pretty(e.before),
            after: pretty(e.after),
        })
        .collect();
    let sites = {
        let orgs = admin.admin.orgs.clone();
        state
            .store(None, move |store| {
                Ok(store
                    .read(ferry_store::sites::list_sites)?
                    .into_iter()
                    .filter(|s| orgs.contains(&s.org))
                    .map(|s| s.slug)
                    .collect::<Vec<_>>())
            })
            .await?
    };
    Ok(render(&AuditPage { layout, entries, filter, sites, actions }))
}

struct TokenRow {
    id: i64,
    name: String,
    created_at: String,
    revoked: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    created: Option<String>,
}

async fn tokens_page(state: &AppState, admin: &ConsoleAdmin, created: Option<String>) -> UiResult {
    let layout = admin.layout(state).await?;
    let id = admin.admin.id;
    let rows = state.store(None, move |store| Ok(store.read(|tx| ferry_store::web::tokens(tx, id))?)).await?;
    let tokens = rows
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            created_at: t.created_at,
            revoked: t.revoked_at.unwrap_or_default(),
        })
        .collect();
    Ok(render(&TokensPage { layout, tokens, created }))
}

async fn tokens(State(state): State<AppState>, admin: ConsoleAdmin) -> UiResult {
    tokens_page(&state, &admin, None).await
}

#[derive(Deserialize)]
struct NewToken {
    name: String,
}

/// How long a new token waits to be shown on the page after its form.
const REVEAL_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// Makes a token, then sends the browser to a page that shows it once: a
/// reload or Back never makes a second token.
async fn create_token(State(state): State<AppState>, admin: ConsoleAdmin, Form(form): Form<NewToken>) -> UiResult {
    let token = crate::api::session::new_token(&state, admin.admin.id, &form.name).await?;
    let reveal = crate::auth::random_secret()?;
    {
        let mut reveals = state.reveals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reveals.retain(|_, (_, _, at)| at.elapsed() < REVEAL_FOR);
        reveals.insert(reveal.clone(), (admin.admin.id, token.token, std::time::Instant::now()));
    }
    Ok(Redirect::to(&format!("/console/tokens/created/{reveal}")).into_response())
}

/// The new token, shown once to the admin who made it; after that (or on
/// another server) the page says it is not shown again.
async fn token_created(State(state): State<AppState>, admin: ConsoleAdmin, Path(reveal): Path<String>) -> UiResult {
    let token = {
        let mut reveals = state.reveals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match reveals.get(&reveal) {
            Some((owner, _, at)) if *owner == admin.admin.id && at.elapsed() < REVEAL_FOR => {
                reveals.remove(&reveal).map(|(_, token, _)| token)
            }
            _ => None,
        }
    };
    match token {
        Some(token) => tokens_page(&state, &admin, Some(token)).await,
        None => tokens_page(&state, &admin, Some(String::new())).await,
    }
}

async fn revoke_token(State(state): State<AppState>, admin: ConsoleAdmin, Path(id): Path<i64>) -> UiResult {
    let admin_id = admin.admin.id;
    state.store(None, move |store| Ok(store.write(|tx| ferry_store::web::revoke_token(tx, admin_id, id))?)).await?;
    Ok(Redirect::to("/console/tokens").into_response())
}
