//! `copy rollback`: removes what a run created and revokes what it granted,
//! or refuses, saying what depends on it.

use ferry_core::model::GroupState;
use ferry_core::run::RunState;
use ferry_store::{Store, Tx, Val};

use crate::CopyError;

/// The destination requests run `$1` copied: its links, found by the
/// run's site pair (the links' key) and then by run.
const RUN_REQUESTS: &str = "SELECT l.destination_id FROM copy_runs x JOIN copy_links l
    ON l.source_site_id = x.source_site_id AND l.destination_site_id = x.destination_site_id
   AND l.kind = 'request' AND l.run_id = x.id
    WHERE x.id = $1";

/// What a rollback removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollbackSummary {
    pub requests: u64,
    pub accounts: u64,
    pub projects: u64,
    pub organizations: u64,
    pub grants: u64,
    pub group: Option<String>,
}

/// Later changes that depend on run `run_id`; empty when it can be rolled
/// back.
pub fn rollback_blockers(tx: &mut Tx<'_>, run_id: i64) -> Result<Vec<String>, CopyError> {
    let run = [Val::I(run_id)];
    let mut blockers = Vec::new();
    // Later runs between the same two sites build on this one's links.
    let (unfinished, built) = (
        RunState::sql_list(&[RunState::Planning, RunState::Applying]),
        RunState::sql_list(&[RunState::Done, RunState::Failed]),
    );
    blockers.extend(tx.query_all(
        &format!(
            "SELECT 'run ' || CAST(l.id AS TEXT) || ' copied between the same sites after this run; roll it back first'
             FROM copy_runs r JOIN copy_runs l ON l.source_site_id = r.source_site_id
                  AND l.destination_site_id = r.destination_site_id AND l.id > r.id
             WHERE r.id = $1 AND l.state IN ({unfinished}, {built}) ORDER BY l.id"
        ),
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    // Any later run into the same site that is unfinished, or that built
    // on accounts this run created (a copy from another site matched them
    // by email): removing them would pull rows from under it.
    blockers.extend(tx.query_all(
        &format!(
            "SELECT 'run ' || CAST(l.id AS TEXT) || ' into the same site is unfinished; finish it (ferry copy resume '
                    || CAST(l.id AS TEXT) || ') or roll it back first'
             FROM copy_runs r JOIN copy_runs l ON l.destination_site_id = r.destination_site_id AND l.id > r.id
                  AND l.source_site_id <> r.source_site_id
             WHERE r.id = $1 AND l.state IN ({unfinished}) ORDER BY l.id"
        ),
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    blockers.extend(tx.query_all(
        &format!(
            "SELECT 'run ' || CAST(l.id AS TEXT) || ' copied customers onto accounts this run created; roll it back first'
             FROM copy_runs r JOIN copy_runs l ON l.destination_site_id = r.destination_site_id AND l.id > r.id
                  AND l.source_site_id <> r.source_site_id
             WHERE r.id = $1 AND l.state IN ({built})
               AND EXISTS (SELECT 1 FROM copy_customers lc WHERE lc.run_id = l.id AND lc.destination_account_id IN
                             (SELECT destination_account_id FROM copy_customers
                              WHERE run_id = $1 AND new_account_ext_id IS NOT NULL))
             ORDER BY l.id"
        ),
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    // An admin decided on the run's imported group.
    blockers.extend(tx.query_all(
        "SELECT g.name, g.state FROM copy_runs r JOIN groups g ON g.id = r.group_id WHERE r.id = $1 AND g.state <> $2",
        &[run[0], Val::T(GroupState::AwaitingReview.as_str())],
        |r| {
            let decided = if r.parsed(1, "group state", GroupState::parse)?.grants_customer_role() {
                "approved"
            } else {
                "declined"
            };
            Ok(format!("group {} was {decided} after this run; rolling back would undo that decision", r.text(0)?))
        },
    )?);
    // Upgrades that merged an account into one of the run's accounts, or
    // one of them into another: rolling back would take away what moved.
    let created =
        "SELECT destination_account_id FROM copy_customers WHERE run_id = $1 AND new_account_ext_id IS NOT NULL";
    let touched = "SELECT destination_account_id FROM copy_customers WHERE run_id = $1";
    blockers.extend(tx.query_all(
        &format!(
            "SELECT 'customer ' || a.email || ' was upgraded to an Atlassian account after this run; rolling back would undo what the upgrade moved'
             FROM accounts a JOIN copy_runs r ON r.id = $1
             WHERE a.site_id = r.destination_site_id AND a.merged_into IS NOT NULL AND a.merged_at >= r.started_at
               AND (a.id IN ({touched}) OR a.merged_into IN ({touched}))
             ORDER BY a.email_key, a.id"
        ),
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    let ours = RUN_REQUESTS;
    blockers.extend(tx.query_all(
        &format!(
            "SELECT 'request ' || p.key || '-' || CAST(r.number AS TEXT) || ' was raised after this run by a customer it created'
             FROM requests r JOIN projects p ON p.id = r.project_id
             WHERE r.reporter_id IN ({created}) AND r.id NOT IN ({ours})
             ORDER BY p.key, r.number"
        ),
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    blockers.extend(tx.query_all(
        "SELECT 'request ' || p.key || '-' || CAST(d.number AS TEXT) || ' has comments added after this run'
             FROM copy_runs x JOIN copy_links l ON l.source_site_id = x.source_site_id
               AND l.destination_site_id = x.destination_site_id AND l.kind = 'request' AND l.run_id = x.id
             JOIN requests d ON d.id = l.destination_id JOIN projects p ON p.id = d.project_id
             WHERE x.id = $1
               AND (SELECT COUNT(*) FROM comments c WHERE c.request_id = l.destination_id)
                 > (SELECT COUNT(*) FROM comments c WHERE c.request_id = l.source_id)
             ORDER BY p.key, d.number",
        &run,
        |r| Ok(r.text(0)?.to_owned()),
    )?);
    Ok(blockers)
}

/// Rolls back run `run_id` in one transaction, or refuses with every
/// blocker.
pub fn rollback(store: &mut Store, run_id: i64) -> Result<RollbackSummary, CopyError> {
    let actor = store.actor().to_owned();
    // The large deletes below index what they match: on SQLite in
    // temporary files, so memory does not grow with the run.
    store.with_temp_files(|store| rollback_in(store, run_id, &actor))
}

fn rollback_in(store: &mut Store, run_id: i64, actor: &str) -> Result<RollbackSummary, CopyError> {
    store.write(|tx| {
        // Under the writers' lock: a chunk being applied (by this or another
        // process) finishes first, and sees the run rolled back after.
        tx.lock_for_writing_ids()?;
        let state = tx
            .query_opt("SELECT state FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| {
                r.parsed(0, "run state", RunState::parse)
            })?
            .ok_or_else(|| ferry_store::StoreError::NotFound(format!("no copy run {run_id}")))?;
        match state {
            // A failed run may have applied some chunks: those go. A run
            // killed while planning wrote no decisions: it just ends.
            RunState::Planning | RunState::Applying | RunState::Done | RunState::Failed => {}
            // Refused by the run's state (API 409, CLI exit 2).
            RunState::RolledBack => {
                return Err(ferry_store::StoreError::Conflict(format!("run {run_id} is already rolled back")).into());
            }
            RunState::Blocked => {
                return Err(ferry_store::StoreError::Conflict(format!(
                    "run {run_id} is blocked: it changed nothing to roll back"
                ))
                .into());
            }
        }
        let blockers = rollback_blockers(tx, run_id)?;
        if !blockers.is_empty() {
            return Err(CopyError::RollbackRefused { run: run_id, blockers });
        }
        let run = [Val::I(run_id)];
        let mut summary = RollbackSummary::default();
        let requests = RUN_REQUESTS;
        tx.execute(&format!("DELETE FROM comments WHERE request_id IN ({requests})"), &run)?;
        tx.execute(&format!("DELETE FROM request_participants WHERE request_id IN ({requests})"), &run)?;
        summary.requests = tx.execute(&format!("DELETE FROM requests WHERE id IN ({requests})"), &run)?;
        summary.group = tx
            .query_opt(
                "SELECT g.name FROM copy_runs r JOIN groups g ON g.id = r.group_id WHERE r.id = $1",
                &run,
                |r| Ok(r.text(0)?.to_owned()),
            )?;
        let group = "SELECT group_id FROM copy_runs WHERE id = $1";
        tx.execute(&format!("DELETE FROM customer_roles WHERE group_id IN ({group})"), &run)?;
        tx.execute(&format!("DELETE FROM group_members WHERE group_id IN ({group})"), &run)?;
        tx.execute(&format!("DELETE FROM groups WHERE id IN ({group})"), &run)?;
        for (kind, table, first, second) in [
            ("customer", "project_customers", "project_id", "account_id"),
            ("organization_member", "organization_members", "organization_id", "account_id"),
            ("organization_project", "organization_projects", "organization_id", "project_id"),
            ("site_user", "site_users", "site_id", "account_id"),
        ] {
            summary.grants += tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM copy_grants g WHERE g.run_id = $1
                     AND g.kind = '{kind}' AND g.a = {table}.{first} AND g.b = {table}.{second})"
                ),
                &run,
            )?;
        }
        summary.organizations = tx.execute(
            "DELETE FROM organizations WHERE id IN
             (SELECT destination_organization_id FROM copy_organizations WHERE run_id = $1 AND created)",
            &run,
        )?;
        summary.projects = tx.execute(
            "DELETE FROM projects WHERE id IN (SELECT destination_project_id FROM copy_projects WHERE run_id = $1 AND created)",
            &run,
        )?;
        // Help-center sign-ins of the accounts about to go: their ids may
        // be handed out again.
        tx.execute(
            "DELETE FROM web_sessions WHERE account_id IN
             (SELECT destination_account_id FROM copy_customers WHERE run_id = $1 AND new_account_ext_id IS NOT NULL)",
            &run,
        )?;
        summary.accounts = tx.execute(
            "DELETE FROM accounts WHERE id IN
             (SELECT destination_account_id FROM copy_customers WHERE run_id = $1 AND new_account_ext_id IS NOT NULL)",
            &run,
        )?;
        tx.execute(
            "DELETE FROM copy_links
             WHERE source_site_id = (SELECT source_site_id FROM copy_runs WHERE id = $1)
               AND destination_site_id = (SELECT destination_site_id FROM copy_runs WHERE id = $1)
               AND run_id = $1",
            &run,
        )?;
        tx.execute("DELETE FROM copy_grants WHERE run_id = $1", &run)?;
        tx.execute("UPDATE copy_runs SET state = $3, finished_at = $2, requests_copied = 0 WHERE id = $1", &[
            Val::I(run_id),
            Val::T(&ferry_core::model::now()),
            Val::T(RunState::RolledBack.as_str()),
        ])?;
        let destination = tx
            .query_opt("SELECT destination_site_id FROM copy_runs WHERE id = $1", &run, |r| r.int(0))?
            .unwrap_or_default();
        ferry_store::accounts::recount(tx, destination)?;
        tracing::info!(
            run = run_id,
            requests = summary.requests,
            accounts = summary.accounts,
            grants = summary.grants,
            "copy run rolled back"
        );
        let after = serde_json::json!({
            "state": RunState::RolledBack.as_str(),
            "requests_removed": summary.requests,
            "accounts_removed": summary.accounts,
            "projects_removed": summary.projects,
            "organizations_removed": summary.organizations,
            "grants_revoked": summary.grants,
            "group_removed": summary.group,
        })
        .to_string();
        ferry_store::audit::record(tx, ferry_store::audit::Action {
            actor,
            action: "copy.rollback",
            site_id: Some(destination),
            target: &format!("run {run_id}"),
            before: Some(&serde_json::json!({ "state": state }).to_string()),
            after: Some(&after),
        })?;
        Ok(summary)
    })
}
