//! Whether a RequiresAttention row still needs the admin: each Problem is
//! resolved by the remediation its Next step names (SPEC §4, §5).

use ferry_core::model::GroupState;
use ferry_core::plan::Problem;
use ferry_store::{Store, Tx, Val, sites};

use crate::RemedyError;

/// Where a RequiresAttention row stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Open,
    Resolved,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Open => "open",
            RowState::Resolved => "resolved",
        }
    }
}

/// The state of each `(normalized email, problem)` row of a run into `destination`,
/// whose imported group is `group`:
/// - matched an Atlassian account (group review): resolved once the group
///   is approved or declined;
/// - duplicate accounts, unverified email: resolved once no unmerged
///   portal-only account with the email is left (upgraded);
/// - inactive on source or on destination: resolved once the customer's
///   destination account is active.
pub fn row_states(
    store: &mut Store,
    destination: &str,
    group: Option<&str>,
    rows: &[(String, Problem)],
) -> Result<Vec<RowState>, RemedyError> {
    Ok(store.read(|tx| {
        let site = sites::site(tx, destination)?;
        let group_decided = match group {
            Some(name) => tx
                .query_opt(
                    "SELECT state FROM groups WHERE site_id = $1 AND name = $2",
                    &[Val::I(site.id), Val::T(name)],
                    |r| Ok(r.text(0)? != GroupState::AwaitingReview.as_str()),
                )?
                .unwrap_or(true),
            None => true,
        };
        rows.iter()
            .map(|(key, problem)| {
                let resolved = match problem {
                    Problem::PortalMatchedAtlassian => group_decided,
                    Problem::DuplicateAccounts | Problem::UnverifiedAtlassian => !portal_only_left(tx, site.id, key)?,
                    Problem::InactiveOnSource | Problem::InactiveOnDestination => any_active(tx, site.id, key)?,
                };
                Ok(if resolved { RowState::Resolved } else { RowState::Open })
            })
            .collect::<Result<Vec<_>, ferry_store::StoreError>>()
    })?)
}

fn portal_only_left(tx: &mut Tx<'_>, site_id: i64, key: &str) -> Result<bool, ferry_store::StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM accounts WHERE site_id = $1 AND email_key = $2 AND merged_into IS NULL",
            &[Val::I(site_id), Val::T(key)],
            |_| Ok(()),
        )?
        .is_some())
}

/// Whether the customer has an active account on the site (portal-only, or
/// an Atlassian site user).
fn any_active(tx: &mut Tx<'_>, site_id: i64, key: &str) -> Result<bool, ferry_store::StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM accounts WHERE site_id = $1 AND email_key = $2 AND merged_into IS NULL AND active
             UNION ALL
             SELECT 1 FROM accounts a JOIN site_users su ON su.account_id = a.id AND su.site_id = $1
             WHERE a.site_id IS NULL AND a.email_key = $2 AND a.active",
            &[Val::I(site_id), Val::T(key)],
            |_| Ok(()),
        )?
        .is_some())
}
