//! The audit log.

use crate::extract::Query;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::sites::admin_site;
use crate::auth::AdminCaller;
use crate::{ApiError, ApiResult, AppState, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries of this site.
    pub site: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub site: Option<String>,
    pub target: String,
    /// JSON, as recorded.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Admin actions, oldest first: on the caller's organizations' sites, and
/// the caller's own organization-level actions.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: AdminCaller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    // The API takes an RFC 3339 time (as its document says); the CLI's
    // `--since` also takes a bare date.
    let since = query
        .since
        .as_deref()
        .map(|value| match chrono::DateTime::parse_from_rfc3339(value) {
            Ok(_) => ferry_store::audit::parse_since(value),
            Err(e) => Err(format!("{value:?} is not an RFC 3339 time like 2026-11-25T10:00:00Z ({e})")),
        })
        .transpose()
        .map_err(|e| ApiError::invalid(format!("since {e}")))?;
    Ok(Json(visible_entries(&state, caller, query.site, since).await?))
}

/// The audit entries `caller` may see: those of its organizations' sites,
/// and its own organization-level actions; oldest first.
pub(crate) async fn visible_entries(
    state: &AppState,
    caller: AdminCaller,
    site: Option<String>,
    since: Option<String>,
) -> ApiResult<Vec<AuditEntry>> {
    state
        .store(None, move |store| {
            let site_id = match &site {
                Some(slug) => Some(admin_site(store, &caller, slug)?.id),
                None => None,
            };
            let entries = store.read(|tx| ferry_store::audit::list(tx, site_id, since.as_deref()))?;
            let sites = store.read(ferry_store::sites::list_sites)?;
            let visible = |site: &Option<String>| match site {
                Some(slug) => sites.iter().any(|s| &s.slug == slug && caller.admin.orgs.contains(&s.org)),
                None => false,
            };
            let own_actors = [format!("console:{}", caller.admin.email), format!("api:{}", caller.admin.email)];
            // An entry without a site concerns an organization (creating
            // it, the demo, an admin of it): visible to that
            // organization's admins, and to whoever acted.
            let organization_of = |e: &ferry_store::audit::AuditEntry| -> Option<String> {
                match e.action.as_str() {
                    "org.create" | "demo.create" => Some(e.target.clone()),
                    "admin.create" => e
                        .after
                        .as_deref()
                        .and_then(|after| serde_json::from_str::<serde_json::Value>(after).ok())
                        .and_then(|after| after["organization"].as_str().map(str::to_owned)),
                    _ => None,
                }
            };
            let mine = |e: &ferry_store::audit::AuditEntry| {
                own_actors.contains(&e.actor) || organization_of(e).is_some_and(|org| caller.admin.orgs.contains(&org))
            };
            Ok(entries
                .into_iter()
                .filter(|e| visible(&e.site) || (e.site.is_none() && site_id.is_none() && mine(e)))
                .map(|e| AuditEntry {
                    at: e.at,
                    actor: e.actor,
                    action: e.action,
                    site: e.site,
                    target: e.target,
                    before: e.before,
                    after: e.after,
                })
                .collect())
        })
        .await
}
