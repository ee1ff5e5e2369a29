//! Organizations, sites, snapshots, customers and access.

use std::collections::BTreeMap;

use crate::extract::{Body, Path, Query};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ferry_core::email::Email;
use ferry_core::model::AccountType;
use ferry_core::search::Query as Search;
use ferry_snapshot::ImportError;
use ferry_store::accounts::{self, CustomerCursor, CustomerFilter, PageAt};
use ferry_store::sites::{self, Site};
use ferry_store::{Store, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminCaller;
use crate::{ApiError, ApiResult, AppState, ErrorBody};

/// The site `slug`, if the caller administers its organization.
pub(crate) fn admin_site(store: &mut Store, caller: &AdminCaller, slug: &str) -> ApiResult<Site> {
    let site = store.read(|tx| sites::site(tx, slug))?;
    caller.require_org(&site.org)?;
    Ok(site)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteInfo {
    pub site: String,
    pub org: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewOrg {
    pub org: String,
}

/// Organizations the caller administers.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "sites", responses((status = 200, body = Vec<String>), (status = 401, body = ErrorBody)))]
pub async fn list_orgs(caller: AdminCaller) -> Json<Vec<String>> {
    Json(caller.admin.orgs)
}

/// Creates an organization; the caller becomes its admin. A signed-in
/// admin only (403 `session_required` with an API token): a token acts in
/// its admin's organizations and never widens them. Creating one grants
/// nothing in any other organization.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "sites", request_body = NewOrg,
    responses((status = 201, body = Vec<String>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_org(
    State(state): State<AppState>,
    caller: AdminCaller,
    Body(body): Body<NewOrg>,
) -> ApiResult<(StatusCode, Json<Vec<String>>)> {
    if caller.via_token {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "organizations are created by a signed-in admin, not with an API token",
        ));
    }
    let actor = caller.actor.clone();
    let admin = caller.admin.id;
    let orgs = state
        .store(Some(actor.clone()), move |store| {
            Ok(store.write(|tx| {
                sites::create_org_audited(tx, &body.org, &actor)?;
                let org_id = sites::org_id(tx, &body.org)?.unwrap_or_default();
                web::add_org_admin(tx, admin, org_id)?;
                web::admin(tx, admin)
            })?)
        })
        .await?
        .map(|a| a.orgs)
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(orgs)))
}

/// Sites of the organizations the caller administers.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites", responses((status = 200, body = Vec<SiteInfo>), (status = 401, body = ErrorBody)))]
pub async fn list_sites(State(state): State<AppState>, caller: AdminCaller) -> ApiResult<Json<Vec<SiteInfo>>> {
    let all = state.store(None, |store| Ok(store.read(sites::list_sites)?)).await?;
    Ok(Json(
        all.into_iter()
            .filter(|s| caller.admin.orgs.contains(&s.org))
            .map(|s| SiteInfo { site: s.slug, org: s.org })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSite {
    pub site: String,
}

/// Creates a site in an organization the caller administers.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/sites", tag = "sites", request_body = NewSite, params(("org" = String, Path)),
    responses((status = 201, body = SiteInfo), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_site(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(org): Path<String>,
    Body(body): Body<NewSite>,
) -> ApiResult<(StatusCode, Json<SiteInfo>)> {
    caller.require_org(&org)?;
    let actor = caller.actor.clone();
    let site = state
        .store(None, move |store| Ok(store.write(|tx| sites::create_site_audited(tx, &org, &body.site, &actor))?))
        .await?;
    Ok((StatusCode::CREATED, Json(SiteInfo { site: site.slug, org: site.org })))
}

/// A site snapshot (SPEC §7): file name -> CSV text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// Rows imported per file.
    pub rows: BTreeMap<String, u64>,
}

/// Imports a snapshot into a site: all of it, or, with any bad row,
/// nothing (422 lists every problem as `file:line: reason`).
#[utoipa::path(post, path = "/api/v1/sites/{site}/import", tag = "sites", request_body = Snapshot, params(("site" = String, Path)),
    responses((status = 200, body = ImportResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, description = "the snapshot is larger than the server takes (the message says the limit)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_site(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    body: Result<Body<Snapshot>, ApiError>,
) -> ApiResult<Json<ImportResult>> {
    let Body(body) = body.map_err(|mut e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            e.message = format!(
                "the snapshot is larger than this server takes ({} bytes of JSON; FERRY_MAX_IMPORT_BYTES sets it); \
                 import it with `ferry site import` on the server's database",
                state.max_import_bytes
            );
        }
        e
    })?;
    for name in body.files.keys() {
        if !ferry_snapshot::FILES.iter().any(|(file, _)| file == name) {
            let known: Vec<&str> = ferry_snapshot::FILES.iter().map(|(f, _)| *f).collect();
            return Err(ApiError::invalid(format!(
                "unknown snapshot file {name:?}; the files are {}",
                known.join(", ")
            )));
        }
    }
    let actor = caller.actor.clone();
    state
        .store_long(Some(actor), move |store| {
            admin_site(store, &caller, &site)?;
            let dir = tempfile::tempdir().map_err(|e| ApiError::internal(format!("no scratch folder: {e}")))?;
            for (name, text) in &body.files {
                std::fs::write(dir.path().join(name), text)
                    .map_err(|e| ApiError::internal(format!("cannot stage {name}: {e}")))?;
            }
            match ferry_snapshot::import_site(store, &site, dir.path(), &mut ferry_snapshot::Quiet) {
                Ok(summary) => {
                    Ok(Json(ImportResult { rows: summary.rows.into_iter().map(|(f, n)| (f.to_owned(), n)).collect() }))
                }
                Err(ImportError::Invalid(problems)) => Err(ApiError {
                    details: problems.iter().map(ToString::to_string).collect(),
                    ..ApiError::invalid(format!("{} problem(s) in the snapshot; nothing was imported", problems.len()))
                }),
                Err(ImportError::Store(e)) => Err(e.into()),
                Err(e) => Err(ApiError::internal(e.to_string())),
            }
        })
        .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PullStarted {
    /// Poll `GET /api/v1/pulls/{pull}` for its progress and result.
    pub pull: u64,
}

/// Pulls a real Jira Service Management Cloud site (SPEC §8) into the site,
/// in the background: answers at once with the pull's id. The credentials
/// in the body are used for this pull only: never stored, never logged.
/// When the pull is done its snapshot is imported all or nothing.
#[utoipa::path(post, path = "/api/v1/sites/{site}/pull", tag = "sites", request_body = crate::pulls::PullRequest, params(("site" = String, Path)),
    responses((status = 202, body = PullStarted), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn pull_site(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    Body(request): Body<crate::pulls::PullRequest>,
) -> ApiResult<(StatusCode, Json<PullStarted>)> {
    let pull = crate::pulls::start(&state, caller, site, request).await?;
    Ok((StatusCode::ACCEPTED, Json(PullStarted { pull })))
}

/// Where a pull stands: its step and count while running; when done, the
/// rows imported, the hidden emails and what was left out; when failed,
/// why (nothing was written).
#[utoipa::path(get, path = "/api/v1/pulls/{pull}", tag = "sites", params(("pull" = u64, Path)),
    responses((status = 200, body = crate::pulls::PullStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pull_status(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(pull): Path<u64>,
) -> ApiResult<Json<crate::pulls::PullStatus>> {
    Ok(Json(crate::pulls::status(&state, &caller, pull)?))
}

/// Exports a site as a snapshot.
#[utoipa::path(get, path = "/api/v1/sites/{site}/export", tag = "sites", params(("site" = String, Path)),
    responses((status = 200, body = Snapshot), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_site(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
) -> ApiResult<Json<Snapshot>> {
    state
        .store_long(None, move |store| {
            admin_site(store, &caller, &site)?;
            let dir = tempfile::tempdir().map_err(|e| ApiError::internal(format!("no scratch folder: {e}")))?;
            ferry_snapshot::export_site(store, &site, dir.path()).map_err(|e| match e {
                ImportError::Store(e) => e.into(),
                e => ApiError::internal(e.to_string()),
            })?;
            let mut files = BTreeMap::new();
            for (name, _) in ferry_snapshot::FILES {
                let text = std::fs::read_to_string(dir.path().join(name))
                    .map_err(|e| ApiError::internal(format!("cannot read {name}: {e}")))?;
                files.insert(name.to_owned(), text);
            }
            Ok(Json(Snapshot { files }))
        })
        .await
}

/// `portal-only` or `atlassian`.
pub(crate) fn account_type(value: &str) -> ApiResult<AccountType> {
    AccountType::from_cli(value)
        .ok_or_else(|| ApiError::invalid(format!("type {value:?} is not known; use portal-only or atlassian")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomersQuery {
    /// `portal-only` or `atlassian`.
    #[serde(rename = "type")]
    #[param(value_type = Option<AccountTypeParam>)]
    pub account_type: Option<String>,
    /// Only emails with both a portal-only and an Atlassian account.
    #[serde(default)]
    pub duplicates: bool,
    /// Only customers with a word of their name or email that starts this
    /// search, accents and case aside (`murphy`, `example.com`, `jose`
    /// for José, `pat mur` for Pat Murphy).
    pub q: Option<String>,
    /// The `next` cursor of a page: the page after it (any text is a
    /// position: the page starts after the emails that sort at or before
    /// it).
    pub after: Option<String>,
    /// The `previous` cursor of a page: the page before it (ignored when
    /// `after` is given too).
    pub before: Option<String>,
    /// Rows per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// An account type as the API names it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AccountTypeParam {
    PortalOnly,
    Atlassian,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Customer {
    pub email: String,
    /// `portal-only` or `atlassian`.
    #[serde(rename = "type")]
    pub account_type: String,
    pub account_id: String,
    pub display_name: String,
    pub active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerPage {
    pub customers: Vec<Customer>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
    /// Pass as `before` for the previous page; absent on the first page.
    pub previous: Option<String>,
    /// How many customers all the pages hold; absent when not known now
    /// (a search that is too common, or duplicates while a copy into the
    /// site is writing its accounts).
    pub total: Option<u64>,
    /// The search matches more than 1,000 customers anywhere in a name or
    /// an email: the pages hold only those whose email starts with it.
    /// Search for more of the name or email.
    pub search_too_common: bool,
}

/// A page of a site's customers, by email then type.
#[utoipa::path(get, path = "/api/v1/sites/{site}/customers", tag = "sites", params(("site" = String, Path), CustomersQuery),
    responses((status = 200, body = CustomerPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn customers(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    Query(query): Query<CustomersQuery>,
) -> ApiResult<Json<CustomerPage>> {
    let page = customer_page(&state, caller, site, query).await?;
    Ok(Json(page))
}

pub(crate) async fn customer_page(
    state: &AppState,
    caller: AdminCaller,
    site: String,
    query: CustomersQuery,
) -> ApiResult<CustomerPage> {
    let query = PageQuery::parse(query)?;
    state.store(None, move |store| query.run(store, &caller, &site)).await
}

/// A customers page request, checked.
pub(crate) struct PageQuery {
    limit: usize,
    filter: CustomerFilter,
    at: PageAt,
    search: Searching,
}

/// What a customers page searches for.
pub(crate) enum Searching {
    /// Everyone: no search.
    No,
    /// No one: nothing in the search can start a word (`@@`).
    Nothing,
    For(Search),
}

impl PageQuery {
    pub(crate) fn parse(query: CustomersQuery) -> ApiResult<PageQuery> {
        let limit = query.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::invalid(format!("limit {limit} is out of range; use 1 to 500")));
        }
        let filter = CustomerFilter {
            account_type: query.account_type.as_deref().map(account_type).transpose()?,
            duplicates_only: query.duplicates,
        };
        // `after` wins over `before` (any pair of strings is a valid
        // request).
        let at = match (query.after.as_deref(), query.before.as_deref()) {
            (Some(after), _) => PageAt::After(parse_cursor(after)),
            (None, Some(before)) => PageAt::Before(parse_cursor(before)),
            (None, None) => PageAt::First,
        };
        let search = match query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            None => Searching::No,
            Some(q) => Search::parse(q).map_or(Searching::Nothing, Searching::For),
        };
        Ok(PageQuery { limit, filter, at, search })
    }

    /// The page, on a store connection.
    pub(crate) fn run(&self, store: &mut Store, caller: &AdminCaller, site: &str) -> ApiResult<CustomerPage> {
        let site = admin_site(store, caller, site)?;
        let (limit, filter) = (self.limit, self.filter);
        let page = match &self.search {
            // Nothing in the search can start a word: no one matches.
            Searching::Nothing => accounts::CustomerPage { total: Some(0), ..Default::default() },
            Searching::For(query) => {
                store.read(|tx| accounts::customer_page(tx, site.id, filter, Some(query), &self.at, limit))?
            }
            Searching::No => store.read(|tx| accounts::customer_page(tx, site.id, filter, None, &self.at, limit))?,
        };
        let rows = &page.rows;
        let cursor = |c: &accounts::CustomerRow| format!("{}|{}", c.email_key, c.account_type.cli_value());
        let next = rows.last().filter(|_| page.more_after).map(cursor);
        let previous = rows.first().filter(|_| page.more_before).map(cursor);
        let total = page.total;
        let customers = rows
            .iter()
            .map(|c| Customer {
                email: c.email.clone(),
                account_type: c.account_type.cli_value().to_owned(),
                account_id: c.account_id.clone(),
                display_name: c.display_name.clone(),
                active: c.active,
            })
            .collect();
        Ok(CustomerPage { customers, next, previous, total, search_too_common: page.too_common })
    }
}

/// A cursor is a position in the order of the list (normalized email,
/// then type): the `next` this API gave (`<email>|<type>`), or any other
/// text, which starts the page after every email that sorts at or before
/// it. So every string is a cursor, and none is an error.
fn parse_cursor(value: &str) -> CustomerCursor {
    if let Some((key, kind)) = value.rsplit_once('|')
        && let Some(account_type) = AccountType::from_cli(kind)
    {
        return CustomerCursor { email_key: key.to_owned(), account_type };
    }
    // The type that sorts last: past every row with this email.
    CustomerCursor { email_key: value.to_owned(), account_type: AccountType::PortalOnly }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    pub email: String,
    /// `portal-only` or `atlassian`; by default the Atlassian account when
    /// the site has both.
    #[serde(rename = "type")]
    #[param(value_type = Option<AccountTypeParam>)]
    pub account_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Access {
    /// Keys of the requests the customer can view, sorted.
    pub requests: Vec<String>,
}

/// The requests a customer signed in with this email can view (the access
/// rule, as `ferry access`).
#[utoipa::path(get, path = "/api/v1/sites/{site}/access", tag = "sites", params(("site" = String, Path), AccessQuery),
    responses((status = 200, body = Access), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn access(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    Query(query): Query<AccessQuery>,
) -> ApiResult<Json<Access>> {
    if query.email.is_empty() {
        return Err(ApiError::invalid("email is empty"));
    }
    // No customer can have an address that is not valid: that is "none".
    let email = Email::parse(&query.email)
        .map_err(|e| ApiError::not_found(format!("no customer with email {:?} on site {site} ({e})", query.email)))?;
    let prefer = query.account_type.as_deref().map(account_type).transpose()?;
    state
        .store(None, move |store| {
            let found = admin_site(store, &caller, &site)?;
            let requests = store.read(|tx| {
                let account = ferry_ops::access::find_customer(tx, (found.id, &site), &email, prefer)?;
                ferry_store::access::viewable_request_keys(tx, found.id, account)
            })?;
            Ok(Json(Access { requests }))
        })
        .await
}
