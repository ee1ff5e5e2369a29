//! Copy plans saved from the console: a plan's sites and options, kept so
//! an admin can come back to it, check it again and run it.

use crate::conn::{Tx, Val};
use crate::{Result, StoreError, audit};

/// A saved copy plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPlan {
    pub id: i64,
    pub from: String,
    pub to: String,
    /// The options as the form gave them (JSON, read by the console).
    pub options: String,
    pub created_by: String,
    pub created_at: String,
}

const COLUMNS: &str = "p.id, s.slug, d.slug, p.options, p.created_by, p.created_at
    FROM copy_plans p JOIN sites s ON s.id = p.source_site_id JOIN sites d ON d.id = p.destination_site_id";

fn row(r: &crate::Row<'_>) -> Result<SavedPlan> {
    Ok(SavedPlan {
        id: r.int(0)?,
        from: r.text(1)?.to_owned(),
        to: r.text(2)?.to_owned(),
        options: r.text(3)?.to_owned(),
        created_by: r.text(4)?.to_owned(),
        created_at: r.text(5)?.to_owned(),
    })
}

/// Saves a plan from site `source` to site `destination` (their ids),
/// audited as `copy.plan` on the destination; its id.
pub fn save(tx: &mut Tx<'_>, source: i64, destination: i64, options: &str, actor: &str) -> Result<i64> {
    let now = audit::timestamp(chrono::Utc::now());
    let id = tx
        .query_opt(
            "INSERT INTO copy_plans (source_site_id, destination_site_id, options, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[Val::I(source), Val::I(destination), Val::T(options), Val::T(actor), Val::T(&now)],
            |r| r.int(0),
        )?
        .ok_or_else(|| StoreError::no_id_returned("plans"))?;
    audit::record(
        tx,
        audit::Action {
            actor,
            action: "copy.plan",
            site_id: Some(destination),
            target: &format!("plan {id}"),
            before: None,
            after: Some(options),
        },
    )?;
    Ok(id)
}

/// Plan `id`.
pub fn plan(tx: &mut Tx<'_>, id: i64) -> Result<SavedPlan> {
    tx.query_opt(&format!("SELECT {COLUMNS} WHERE p.id = $1"), &[Val::I(id)], row)?
        .ok_or_else(|| StoreError::NotFound(format!("no copy plan {id}")))
}

/// Every saved plan, newest first.
pub fn list(tx: &mut Tx<'_>) -> Result<Vec<SavedPlan>> {
    tx.query_all(&format!("SELECT {COLUMNS} ORDER BY p.id DESC"), &[], row)
}
