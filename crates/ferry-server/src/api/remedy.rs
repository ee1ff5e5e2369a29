//! Remediation: imported-group review and upgrades (SPEC §5).

use crate::extract::{Body, Path, Query};
use axum::Json;
use axum::extract::State;
use ferry_remedy::{GroupDecision, GroupReview, Selection, UpgradeStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::sites::admin_site;
use crate::auth::AdminCaller;
use crate::{ApiError, ApiResult, AppState, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupsQuery {
    /// Only imported groups awaiting review.
    #[serde(default)]
    pub pending: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    pub name: String,
    /// `awaiting_review`, `active` or `declined`.
    pub state: String,
    /// The copy run that imported it.
    pub run: Option<i64>,
    pub members: Vec<String>,
    /// Projects whose Customer role approval makes effective.
    pub projects: Vec<String>,
    /// Requests members can view only through this group.
    pub requests_gained: u64,
}

impl From<GroupReview> for Group {
    fn from(g: GroupReview) -> Group {
        Group {
            name: g.name,
            state: g.state.as_str().to_owned(),
            run: g.run,
            members: g.members,
            projects: g.projects,
            requests_gained: g.requests_gained,
        }
    }
}

/// A site's groups with their review state.
#[utoipa::path(get, path = "/api/v1/sites/{site}/groups", tag = "remediation", params(("site" = String, Path), GroupsQuery),
    responses((status = 200, body = Vec<Group>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn groups(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    Query(query): Query<GroupsQuery>,
) -> ApiResult<Json<Vec<Group>>> {
    state
        .store_long(None, move |store| {
            admin_site(store, &caller, &site)?;
            Ok(Json(ferry_remedy::list_groups(store, &site, query.pending)?.into_iter().map(Group::from).collect()))
        })
        .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    pub group: Group,
    /// False when the group already had this decision (nothing changed).
    pub changed: bool,
}

/// Approves or declines an imported group (`decision` is `approve` or
/// `decline`); idempotent.
#[utoipa::path(post, path = "/api/v1/sites/{site}/groups/{group}/{decision}", tag = "remediation",
    params(("site" = String, Path), ("group" = String, Path), ("decision" = String, Path, description = "approve or decline")),
    responses((status = 200, body = Decided), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path((site, group, decision)): Path<(String, String, String)>,
) -> ApiResult<Json<Decided>> {
    let decision = match decision.as_str() {
        "approve" => GroupDecision::Approve,
        "decline" => GroupDecision::Decline,
        other => return Err(ApiError::invalid(format!("decision {other:?} is not approve or decline"))),
    };
    let actor = caller.actor.clone();
    state
        .store_long(Some(actor), move |store| {
            admin_site(store, &caller, &site)?;
            let (group, changed) = ferry_remedy::decide_group(store, &site, &group, decision)?;
            Ok(Json(Decided { group: group.into(), changed }))
        })
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UpgradeRequest {
    /// Emails of the portal-only accounts to upgrade.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Every portal-only account beside an Atlassian site user.
    #[serde(default)]
    pub all_duplicates: bool,
    /// List exactly what would change; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UpgradeLine {
    pub email: String,
    pub portal_account: String,
    /// `upgraded`, `created` (a new Atlassian account, invitation pending),
    /// `already_upgraded` or `blocked`.
    pub status: String,
    pub atlassian_account: Option<String>,
    pub reason: Option<String>,
    /// Dry run: what would move.
    pub requests_reported: Option<u64>,
    pub participations: Option<u64>,
    pub comments: Option<u64>,
    pub customer_lists: Option<u64>,
    pub organizations: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upgraded {
    pub dry_run: bool,
    pub upgraded: usize,
    pub created: usize,
    pub blocked: usize,
    pub already_upgraded: usize,
    pub lines: Vec<UpgradeLine>,
}

/// Upgrades portal-only accounts to the Atlassian account with the same
/// email (or lists what would change, with `dry_run`).
#[utoipa::path(post, path = "/api/v1/sites/{site}/upgrade", tag = "remediation", request_body = UpgradeRequest, params(("site" = String, Path)),
    responses((status = 200, body = Upgraded), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upgrade(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(site): Path<String>,
    Body(body): Body<UpgradeRequest>,
) -> ApiResult<Json<Upgraded>> {
    let selection = match (body.all_duplicates, body.emails.is_empty()) {
        (true, true) => Selection::AllDuplicates,
        (false, false) => Selection::Emails(body.emails),
        (true, false) => return Err(ApiError::invalid("give emails or all_duplicates, not both")),
        (false, true) => return Err(ApiError::invalid("name at least one email, or set all_duplicates")),
    };
    let actor = caller.actor.clone();
    let dry_run = body.dry_run;
    state
        .store_long(Some(actor), move |store| {
            admin_site(store, &caller, &site)?;
            let report = ferry_remedy::upgrade(store, &site, &selection, dry_run, &mut ferry_remedy::Quiet)?;
            let lines = report
                .lines
                .iter()
                .map(|l| {
                    let (status, atlassian, reason) = match &l.status {
                        UpgradeStatus::ToExisting { atlassian_ext_id } => {
                            ("upgraded", Some(atlassian_ext_id.clone()), None)
                        }
                        UpgradeStatus::ToNew { atlassian_ext_id } => ("created", Some(atlassian_ext_id.clone()), None),
                        UpgradeStatus::AlreadyUpgraded { atlassian_ext_id } => {
                            ("already_upgraded", Some(atlassian_ext_id.clone()), None)
                        }
                        UpgradeStatus::Blocked { reason } => ("blocked", None, Some(reason.clone())),
                    };
                    let r = l.references;
                    UpgradeLine {
                        email: l.email.clone(),
                        portal_account: l.portal_ext_id.clone(),
                        status: status.to_owned(),
                        atlassian_account: atlassian,
                        reason,
                        requests_reported: r.map(|r| r.requests_reported),
                        participations: r.map(|r| r.participations),
                        comments: r.map(|r| r.comments),
                        customer_lists: r.map(|r| r.customer_lists),
                        organizations: r.map(|r| r.organizations),
                    }
                })
                .collect();
            Ok(Json(Upgraded {
                dry_run,
                upgraded: report.upgraded(),
                created: report.created(),
                blocked: report.blocked(),
                already_upgraded: report.already(),
                lines,
            }))
        })
        .await
}
