//! The audit log: every admin action, who did it, when, and the state
//! before and after (JSON text), written in the action's own transaction so
//! an action and its record land together or not at all.

use crate::Result;
use crate::conn::{Tx, Val};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    pub actor: String,
    /// A dotted name: `site.import`, `copy.run`, `group.approve`, ...
    pub action: String,
    pub site: Option<String>,
    pub target: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What to record; `before`/`after` are JSON documents.
#[derive(Debug, Clone, Copy)]
pub struct Action<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub site_id: Option<i64>,
    pub target: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
}

pub use ferry_core::model::timestamp;

/// Appends one entry, in the caller's transaction.
pub fn record(tx: &mut Tx<'_>, a: Action<'_>) -> Result<()> {
    let at = timestamp(chrono::Utc::now());
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, site_id, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            Val::T(&at),
            Val::T(a.actor),
            Val::T(a.action),
            Val::from(a.site_id),
            Val::T(a.target),
            Val::from(a.before),
            Val::from(a.after),
        ],
    )?;
    Ok(())
}

/// Entries in the order they were written, optionally of one site and from
/// a time on (`since` in the log's own format).
pub fn list(tx: &mut Tx<'_>, site_id: Option<i64>, since: Option<&str>) -> Result<Vec<AuditEntry>> {
    tx.query_all(
        "SELECT l.id, l.at, l.actor, l.action, s.slug, l.target, l.before, l.after
         FROM audit_log l LEFT JOIN sites s ON s.id = l.site_id
         WHERE ($1 = 0 OR l.site_id = $1) AND l.at >= $2
         ORDER BY l.id",
        &[Val::I(site_id.unwrap_or(0)), Val::T(since.unwrap_or(""))],
        |r| {
            Ok(AuditEntry {
                id: r.int(0)?,
                at: r.text(1)?.to_owned(),
                actor: r.text(2)?.to_owned(),
                action: r.text(3)?.to_owned(),
                site: r.opt_text(4)?.map(str::to_owned),
                target: r.text(5)?.to_owned(),
                before: r.opt_text(6)?.map(str::to_owned),
                after: r.opt_text(7)?.map(str::to_owned),
            })
        },
    )
}

/// Reads a `since` bound: RFC 3339 (`2026-11-25T10:00:00Z`) or a date
/// (`2026-11-25`, from its midnight UTC), as a stored timestamp.
pub fn parse_since(value: &str) -> std::result::Result<String, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(timestamp(at.with_timezone(&chrono::Utc)));
    }
    if let Some(start) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(timestamp(start.and_utc()));
    }
    Err(format!("{value:?}: not a time (use RFC 3339 like 2026-11-25T10:00:00Z, or a date like 2026-11-25)"))
}
