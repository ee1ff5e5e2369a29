//! Gathers the facts the access rule needs from the store, then lets
//! [`ferry_core::access::can_view_request`] decide.

use std::collections::HashMap;

use ferry_core::access::{AccessFacts, can_view_request};
use ferry_core::model::GroupState;

use crate::Result;
use crate::accounts::SiteAccount;
use crate::conn::{Tx, Val};

/// A request as the help center lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    pub id: i64,
    pub key: String,
    pub summary: String,
    pub status: String,
    pub created: String,
}

/// Keys of the requests on `site_id` that `account` can view, sorted.
pub fn viewable_request_keys(tx: &mut Tx<'_>, site_id: i64, account: SiteAccount) -> Result<Vec<String>> {
    Ok(viewable_requests(tx, site_id, account)?.into_iter().map(|r| r.key).collect())
}

/// The requests on `site_id` that `account` can view, sorted by key.
pub fn viewable_requests(tx: &mut Tx<'_>, site_id: i64, account: SiteAccount) -> Result<Vec<RequestSummary>> {
    struct Candidate {
        request: RequestSummary,
        project_id: i64,
        is_reporter: bool,
        is_participant: bool,
        in_organization: bool,
    }
    let candidates = tx.query_all(
        "SELECT p.key || '-' || r.number, r.project_id,
                r.reporter_id = $2,
                EXISTS (SELECT 1 FROM request_participants p WHERE p.request_id = r.id AND p.account_id = $2),
                EXISTS (SELECT 1 FROM organization_members m WHERE m.organization_id = r.organization_id AND m.account_id = $2),
                r.id, r.summary, r.status, r.created
         FROM requests r JOIN projects p ON p.id = r.project_id
         WHERE r.site_id = $1 AND (
               r.reporter_id = $2
            OR r.id IN (SELECT request_id FROM request_participants WHERE account_id = $2)
            OR r.organization_id IN (SELECT organization_id FROM organization_members WHERE account_id = $2))",
        &[Val::I(site_id), Val::I(account.id)],
        |r| {
            Ok(Candidate {
                request: RequestSummary {
                    id: r.int(5)?,
                    key: r.text(0)?.to_owned(),
                    summary: r.text(6)?.to_owned(),
                    status: r.text(7)?.to_owned(),
                    created: r.text(8)?.to_owned(),
                },
                project_id: r.int(1)?,
                is_reporter: r.bool(2)?,
                is_participant: r.bool(3)?,
                in_organization: r.bool(4)?,
            })
        },
    )?;
    let mut project_access: HashMap<i64, (bool, Vec<GroupState>)> = HashMap::new();
    let mut visible = Vec::new();
    for candidate in candidates {
        let (in_customer_list, role_group_states) = match project_access.entry(candidate.project_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(project_customer_access(tx, candidate.project_id, account.id)?).clone()
            }
        };
        let facts = AccessFacts {
            viewer_active: account.active,
            in_customer_list,
            role_group_states,
            is_reporter: candidate.is_reporter,
            is_participant: candidate.is_participant,
            in_shared_organization: candidate.in_organization,
        };
        if can_view_request(&facts) {
            visible.push(candidate.request);
        }
    }
    visible.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok(visible)
}

/// A comment on a request, with its author's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentView {
    pub author: String,
    pub created: String,
    pub body: String,
}

/// The comments of request `request_id`, oldest first.
pub fn request_comments(tx: &mut Tx<'_>, request_id: i64) -> Result<Vec<CommentView>> {
    tx.query_all(
        "SELECT a.display_name, c.created, c.body FROM comments c JOIN accounts a ON a.id = c.author_id
         WHERE c.request_id = $1 ORDER BY c.created, c.id",
        &[Val::I(request_id)],
        |r| {
            Ok(CommentView {
                author: r.text(0)?.to_owned(),
                created: r.text(1)?.to_owned(),
                body: r.text(2)?.to_owned(),
            })
        },
    )
}

/// Whether `account_id` is on the project's customer list, and the states of
/// the groups it is in that hold the project's Customer role.
fn project_customer_access(tx: &mut Tx<'_>, project_id: i64, account_id: i64) -> Result<(bool, Vec<GroupState>)> {
    let params = [Val::I(project_id), Val::I(account_id)];
    let listed = tx
        .query_opt("SELECT 1 FROM project_customers WHERE project_id = $1 AND account_id = $2", &params, |_| Ok(()))?
        .is_some();
    let states = tx.query_all(
        "SELECT g.state FROM customer_roles cr
         JOIN groups g ON g.id = cr.group_id
         JOIN group_members gm ON gm.group_id = g.id
         WHERE cr.project_id = $1 AND gm.account_id = $2",
        &params,
        |r| r.parsed(0, "group state", GroupState::parse),
    )?;
    Ok((listed, states))
}
