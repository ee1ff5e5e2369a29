//! Upgrade portal-only accounts to the Atlassian account with the same
//! email (SPEC §5). Every reference moves (reporter, participant, comment
//! author, customer lists, organization memberships), duplicates collapse,
//! and the portal-only account is deactivated with `merged_into`. Accounts
//! are upgraded in batches, each batch one transaction; an account is never
//! half-upgraded, and upgrading it again changes nothing.

use std::collections::{HashMap, HashSet};

use ferry_core::email::Email;
use ferry_store::audit;
use ferry_store::bulk::{OnConflict, RowBatch, TableSpec, write_batch};
use ferry_store::sites::{self, Site};
use ferry_store::{Backend, IdAllocator, Store, StoreError, Tx, Val};

use crate::{Progress, RemedyError};

/// Which portal-only accounts to upgrade.
#[derive(Debug, Clone)]
pub enum Selection {
    /// These emails (as typed; normalized here).
    Emails(Vec<String>),
    /// Every portal-only account whose email also has an Atlassian account
    /// among the site's users.
    AllDuplicates,
}

/// What happens (or would happen) to one portal-only account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeStatus {
    /// Moves to this existing Atlassian account.
    ToExisting { atlassian_ext_id: String },
    /// A new Atlassian account is created (email unverified, invitation
    /// pending) and the account moves to it.
    ToNew { atlassian_ext_id: String },
    /// Upgraded before: merged into this account. Nothing changes.
    AlreadyUpgraded { atlassian_ext_id: String },
    /// Cannot be upgraded, for this reason. Nothing changes.
    Blocked { reason: String },
}

/// References of one account that an upgrade moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct References {
    pub requests_reported: u64,
    pub participations: u64,
    pub comments: u64,
    pub customer_lists: u64,
    pub organizations: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeLine {
    pub email: String,
    pub portal_ext_id: String,
    pub status: UpgradeStatus,
    /// Filled by a dry run: exactly what would move.
    pub references: Option<References>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpgradeReport {
    /// One line per account, sorted by normalized email.
    pub lines: Vec<UpgradeLine>,
    pub dry_run: bool,
}

impl UpgradeReport {
    fn count(&self, f: impl Fn(&UpgradeStatus) -> bool) -> usize {
        self.lines.iter().filter(|l| f(&l.status)).count()
    }
    pub fn upgraded(&self) -> usize {
        self.count(|s| matches!(s, UpgradeStatus::ToExisting { .. } | UpgradeStatus::ToNew { .. }))
    }
    pub fn created(&self) -> usize {
        self.count(|s| matches!(s, UpgradeStatus::ToNew { .. }))
    }
    pub fn blocked(&self) -> usize {
        self.count(|s| matches!(s, UpgradeStatus::Blocked { .. }))
    }
    pub fn already(&self) -> usize {
        self.count(|s| matches!(s, UpgradeStatus::AlreadyUpgraded { .. }))
    }
}

/// Accounts per round of statements (bounds the mapping table).
const BATCH: usize = 250_000;

struct Candidate {
    portal_id: i64,
    email: String,
    portal_ext_id: String,
    merged_into: Option<i64>,
    active: bool,
}

struct Atlassian {
    id: i64,
    ext_id: String,
    active: bool,
    verified: bool,
    site_user: bool,
}

static NEW_ATLASSIAN: TableSpec = TableSpec {
    table: "accounts",
    columns: &[
        "id",
        "kind",
        "site_id",
        "ext_id",
        "email",
        "email_key",
        "display_name",
        "active",
        "email_verified",
        "invitation_pending",
    ],
    on_conflict: OnConflict::Fail,
};
static MAP: TableSpec =
    TableSpec { table: "ferry_upgrade_map", columns: &["portal_id", "atlassian_id"], on_conflict: OnConflict::Fail };
static AUDIT: TableSpec = TableSpec {
    table: "audit_log",
    columns: &["at", "actor", "action", "site_id", "target", "before", "after"],
    on_conflict: OnConflict::Fail,
};

/// Upgrades (or, with `dry_run`, lists exactly what upgrading would change
/// for) the selected portal-only accounts of `site`.
pub fn upgrade(
    store: &mut Store,
    site: &str,
    selection: &Selection,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<UpgradeReport, RemedyError> {
    let actor = store.actor().to_owned();
    // SQLite: a second connection finds half of all duplicates while this
    // one finds the other half.
    let mut sibling = match selection {
        Selection::AllDuplicates => store.sqlite_sibling()?,
        Selection::Emails(_) => None,
    };
    // One transaction, under the writers' lock: every decision is made on
    // what the database holds when it is carried out, and no other writer
    // (a copy, an import, another upgrade) changes the accounts meanwhile.
    // Every id written comes from the database itself, so SQLite's per-row
    // foreign-key lookups are skipped (as for bulk imports). The file is
    // read through SQLite's page cache, not a memory map: a map of the whole
    // file was 10-20% faster at 850,000 customers, but every page it touches
    // counts in the process's resident size, once per connection (4.8 GB at
    // 10,000,000 customers).
    store.write_checked_bulk(|tx| {
        tx.lock_for_writing_ids()?;
        // Resolve every account first: an unknown email is bad input and
        // stops everything before anything is written.
        // Sorted by normalized email.
        let (site, planned) = resolve(tx, sibling.as_mut(), site, selection)?;
        let mut report = UpgradeReport { lines: Vec::with_capacity(planned.len()), dry_run };
        let total = planned.len() as u64;
        let mut done = 0u64;
        let mut planned = planned;
        while !planned.is_empty() {
            // (The whole list when it fits one round: no copy.)
            let rest = planned.split_off(planned.len().min(BATCH));
            let batch = std::mem::replace(&mut planned, rest);
            done += batch.len() as u64;
            apply_batch(tx, &site, batch, dry_run, &actor, &mut report.lines)?;
            progress.step(done, total);
        }
        tracing::info!(
            site = %site.slug,
            dry_run,
            upgraded = report.upgraded(),
            blocked = report.blocked(),
            "upgrade decided"
        );
        Ok(report)
    })
}

type Planned = (Candidate, Option<Atlassian>);

/// A row of `SELECT {COLUMNS} FROM accounts a`.
fn candidate(r: &ferry_store::Row<'_>) -> Result<Candidate, StoreError> {
    Ok(Candidate {
        portal_id: r.int(0)?,
        email: r.text(1)?.to_owned(),
        portal_ext_id: r.text(2)?.to_owned(),
        merged_into: r.opt_int(3)?,
        active: r.bool(4)?,
    })
}

/// Which count of [`References`] a query fills.
type Field = fn(&mut References) -> &mut u64;

fn resolve(
    tx: &mut Tx<'_>,
    sibling: Option<&mut Store>,
    site: &str,
    selection: &Selection,
) -> Result<(Site, Vec<Planned>), RemedyError> {
    let site = sites::site(tx, site)?;
    // A run still applying maps source accounts to the destination accounts
    // it planned; merging one of those now would strand what it writes next.
    if let Some(run) = sites::unfinished_run_into(tx, site.id)? {
        return Err(StoreError::Conflict(sites::unfinished_run_message(run, &site.slug, "upgrading accounts")).into());
    }
    const COLUMNS: &str = "a.id, a.email, a.ext_id, a.merged_into, a.active";
    let emails = match selection {
        Selection::Emails(emails) if emails.is_empty() => {
            return Err(RemedyError::Invalid("name at least one email, or --all-duplicates".to_owned()));
        }
        Selection::Emails(emails) => emails,
        Selection::AllDuplicates => {
            let planned = match sibling {
                None => find_duplicates(tx, site.id, (1, 0))?.into_iter().map(|(_, p)| p).collect(),
                Some(sibling) => std::thread::scope(|scope| {
                    // The sibling reads only after this transaction holds
                    // the write lock, so both halves see the same database.
                    let other = scope.spawn(|| sibling.read(|other| find_duplicates(other, site.id, (2, 1))));
                    let mine = find_duplicates(tx, site.id, (2, 0));
                    let other = ferry_store::joined(other);
                    Ok::<_, RemedyError>(merge_by_key(mine?, other?))
                })?,
            };
            return Ok((site, planned));
        }
    };
    // Each named account (the unmerged one first), keyed by normalized
    // email; an unknown email is bad input.
    let mut candidates = Vec::with_capacity(emails.len());
    let mut seen = HashSet::new();
    for raw in emails {
        // No account can have an address that is not valid.
        let email = Email::parse(raw).map_err(|e| {
            StoreError::NotFound(format!(
                "site {} has no portal-only account with email {raw:?} ({e}); nothing was upgraded",
                site.slug
            ))
        })?;
        if !seen.insert(email.key().to_owned()) {
            continue;
        }
        let found = tx.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM accounts a WHERE a.site_id = $1 AND a.email_key = $2
                 ORDER BY (a.merged_into IS NOT NULL), a.id"
            ),
            &[Val::I(site.id), Val::T(email.key())],
            candidate,
        )?;
        match found {
            Some(c) => candidates.push((email.key().to_owned(), c)),
            None => {
                return Err(StoreError::NotFound(format!(
                    "site {} has no portal-only account with email {raw}; nothing was upgraded",
                    site.slug
                ))
                .into());
            }
        }
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    // The Atlassian account with each email, and whether it is already a
    // user of the site.
    let mut planned = Vec::with_capacity(candidates.len());
    for (key, c) in candidates {
        let target = tx.query_opt(
            "SELECT a.id, a.ext_id, a.active, a.email_verified,
                    EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $1 AND su.account_id = a.id)
             FROM accounts a WHERE a.site_id IS NULL AND a.email_key = $2",
            &[Val::I(site.id), Val::T(&key)],
            |r| {
                Ok(Atlassian {
                    id: r.int(0)?,
                    ext_id: r.text(1)?.to_owned(),
                    active: r.bool(2)?,
                    verified: r.bool(3)?,
                    site_user: r.bool(4)?,
                })
            },
        )?;
        planned.push((c, target));
    }
    Ok((site, planned))
}

/// The unmerged portal-only accounts of `site_id` beside an Atlassian site
/// user with the same email, with that account, keyed and ordered by
/// normalized email: those whose id is `part.1` modulo `part.0` (so that
/// connections can share the work).
fn find_duplicates(tx: &mut Tx<'_>, site_id: i64, part: (i64, i64)) -> Result<Vec<(String, Planned)>, StoreError> {
    // One pass over the site's unmerged portal-only accounts in that
    // index's order (SQLite is told to take it; left to itself it walks the
    // name index and takes twice as long).
    let hint = match tx.backend() {
        Backend::Sqlite => " INDEXED BY accounts_portal_email",
        Backend::Postgres => "",
    };
    let mut found = Vec::new();
    tx.query_each(
        &format!(
            "SELECT a.id, a.email, a.ext_id, a.merged_into, a.active, b.id, b.ext_id, b.active, b.email_verified,
                    a.email_key
             FROM accounts a{hint}
             JOIN accounts b ON b.site_id IS NULL AND b.email_key = a.email_key
             JOIN site_users su ON su.site_id = $1 AND su.account_id = b.id
             WHERE a.site_id = $1 AND a.merged_into IS NULL AND a.id % $2 = $3
             ORDER BY a.email_key"
        ),
        &[Val::I(site_id), Val::I(part.0), Val::I(part.1)],
        |r| {
            let target = Atlassian {
                id: r.int(5)?,
                ext_id: r.text(6)?.to_owned(),
                active: r.bool(7)?,
                verified: r.bool(8)?,
                site_user: true,
            };
            found.push((r.text(9)?.to_owned(), (candidate(r)?, Some(target))));
            Ok(())
        },
    )?;
    Ok(found)
}

/// Two lists ordered by key (keys unique across both) as one.
fn merge_by_key(a: Vec<(String, Planned)>, b: Vec<(String, Planned)>) -> Vec<Planned> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some((_, planned)) => merged.push(planned),
            None => return merged,
        }
    }
}

fn apply_batch(
    tx: &mut Tx<'_>,
    site: &Site,
    batch: Vec<Planned>,
    dry_run: bool,
    actor: &str,
    lines: &mut Vec<UpgradeLine>,
) -> Result<(), RemedyError> {
    let first_line = lines.len();
    // Sized up front: a hundred thousand accounts make large buffers, and
    // growing them would copy each one into fresh memory again and again.
    let mut portal_ids = Vec::with_capacity(batch.len());
    let mut ids = IdAllocator::start(tx, "accounts")?;
    let mut new_accounts = RowBatch::new(&NEW_ATLASSIAN);
    let mut map = RowBatch::with_capacity(&MAP, batch.len(), 0);
    let mut new_site_users: Vec<i64> = Vec::new();
    let mut audit_rows = RowBatch::with_capacity(&AUDIT, if dry_run { 0 } else { batch.len() }, 256);
    let at = audit::timestamp(chrono::Utc::now());
    let mut taken_ext: Option<HashSet<String>> = None;
    // What the batch does to the site's counts.
    let mut change = ferry_store::accounts::CountChange { duplicates: Some(0), ..Default::default() };
    let (mut before, mut after) = (String::new(), String::new());
    for (c, target) in batch {
        let status = if let Some(merged) = c.merged_into {
            let ext = tx
                .query_opt("SELECT ext_id FROM accounts WHERE id = $1", &[Val::I(merged)], |r| {
                    Ok(r.text(0)?.to_owned())
                })?
                .unwrap_or_default();
            UpgradeStatus::AlreadyUpgraded { atlassian_ext_id: ext }
        } else if !c.active {
            UpgradeStatus::Blocked {
                reason:
                    "the portal-only account is inactive; an upgrade would hand its requests to an active account, \
                         so reactivate it first if the customer should keep access"
                        .to_owned(),
            }
        } else {
            match target {
                Some(a) if !a.verified => UpgradeStatus::Blocked {
                    reason: format!(
                        "Atlassian account {} with this email has an unverified email; its owner must verify it before the upgrade",
                        a.ext_id
                    ),
                },
                Some(a) if !a.active => UpgradeStatus::Blocked {
                    reason: format!("Atlassian account {} with this email is inactive; reactivate it first", a.ext_id),
                },
                Some(a) => {
                    map.push(&[Val::I(c.portal_id), Val::I(a.id)]);
                    if a.site_user {
                        // Both were on the site: a duplicate, gone now.
                        change.duplicates = change.duplicates.map(|d| d - 1);
                    } else {
                        new_site_users.push(a.id);
                    }
                    UpgradeStatus::ToExisting { atlassian_ext_id: a.ext_id }
                }
                None => {
                    let taken = match &mut taken_ext {
                        Some(t) => t,
                        None => taken_ext.insert(atlassian_ext_ids(tx)?),
                    };
                    let ext = new_ext_id(&site.slug, &c.portal_ext_id, taken);
                    let (email_key, display_name) = tx
                        .query_opt(
                            "SELECT email_key, display_name FROM accounts WHERE id = $1",
                            &[Val::I(c.portal_id)],
                            |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
                        )?
                        .ok_or_else(|| RemedyError::Invalid(format!("account {} vanished", c.portal_ext_id)))?;
                    let id = ids.next_id();
                    new_accounts.push(&[
                        Val::I(id),
                        Val::T("atlassian"),
                        Val::Null,
                        Val::T(&ext),
                        Val::T(&c.email),
                        Val::T(&email_key),
                        Val::T(&display_name),
                        Val::B(true),
                        Val::B(false),
                        Val::B(true),
                    ]);
                    map.push(&[Val::I(c.portal_id), Val::I(id)]);
                    new_site_users.push(id);
                    UpgradeStatus::ToNew { atlassian_ext_id: ext }
                }
            }
        };
        if !dry_run
            && let UpgradeStatus::ToExisting { atlassian_ext_id } | UpgradeStatus::ToNew { atlassian_ext_id } = &status
        {
            // The same JSON objects as everywhere in the log, written
            // straight into reused buffers.
            before.clear();
            before.push_str(r#"{"account":"#);
            json_string(&mut before, &c.portal_ext_id);
            before.push_str(if c.active {
                r#","active":true,"type":"portal-only"}"#
            } else {
                r#","active":false,"type":"portal-only"}"#
            });
            after.clear();
            after.push_str(r#"{"active":false,"atlassian_account_created":"#);
            after.push_str(if matches!(status, UpgradeStatus::ToNew { .. }) { "true" } else { "false" });
            after.push_str(r#","merged_into":"#);
            json_string(&mut after, atlassian_ext_id);
            after.push('}');
            audit_rows.push(&[
                Val::T(&at),
                Val::T(actor),
                Val::T("customer.upgrade"),
                Val::I(site.id),
                Val::T(&c.email),
                Val::T(&before),
                Val::T(&after),
            ]);
        }
        portal_ids.push(c.portal_id);
        lines.push(UpgradeLine { email: c.email, portal_ext_id: c.portal_ext_id, status, references: None });
    }

    // The portal-only -> Atlassian pairs of this batch, as a table to join.
    match tx.backend() {
        Backend::Sqlite => tx.batch(
            "CREATE TEMP TABLE IF NOT EXISTS ferry_upgrade_map (portal_id INTEGER PRIMARY KEY, atlassian_id INTEGER NOT NULL);
             DELETE FROM ferry_upgrade_map;",
        )?,
        Backend::Postgres => tx.batch(
            "CREATE TEMP TABLE IF NOT EXISTS ferry_upgrade_map (portal_id BIGINT PRIMARY KEY, atlassian_id BIGINT NOT NULL)
             ON COMMIT DROP;
             TRUNCATE ferry_upgrade_map;",
        )?,
    }
    write_batch(tx, &map)?;

    if dry_run {
        let references = count_references(tx)?;
        for (line, id) in lines[first_line..].iter_mut().zip(&portal_ids) {
            if matches!(line.status, UpgradeStatus::ToExisting { .. } | UpgradeStatus::ToNew { .. }) {
                line.references = Some(references.get(id).copied().unwrap_or_default());
            }
        }
        return Ok(());
    }

    write_batch(tx, &new_accounts)?;
    change.portal_only = -(map.rows() as i64);
    for account in new_site_users {
        change.atlassian += tx.execute(
            "INSERT INTO site_users (site_id, account_id) SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT)
             WHERE NOT EXISTS (SELECT 1 FROM site_users WHERE site_id = $1 AND account_id = $2)",
            &[Val::I(site.id), Val::I(account)],
        )? as i64;
    }
    // Any error rolls the whole transaction back, so SQLite need not keep
    // a journal to undo one half-done statement (OR FAIL): every page a
    // statement touches would otherwise be copied once more.
    let or_fail = match tx.backend() {
        Backend::Sqlite => " OR FAIL",
        Backend::Postgres => "",
    };
    // (Written as IN: SQLite knows nothing of the map's size and, given a
    // join, may walk a whole index of the table instead.)
    for (table, column) in [("requests", "reporter_id"), ("comments", "author_id")] {
        tx.execute(
            &format!(
                "UPDATE{or_fail} {table} AS t
                 SET {column} = (SELECT atlassian_id FROM ferry_upgrade_map m WHERE m.portal_id = t.{column})
                 WHERE t.{column} IN (SELECT portal_id FROM ferry_upgrade_map)"
            ),
            &[],
        )?;
    }
    // Lists: the Atlassian account joins each list the portal-only account
    // was on (once, when it already was), then the portal-only entry goes.
    // Memberships the Atlassian account gains are new (stamped now): a
    // later copy from this site reads them as arrivals.
    let stamp = tx.stamp()?;
    for (table, key, seq) in [
        ("request_participants", "request_id", None),
        ("project_customers", "project_id", Some(stamp)),
        ("organization_members", "organization_id", Some(stamp)),
    ] {
        let (seq_column, seq_value) = match seq {
            Some(stamp) => (", seq".to_owned(), format!(", {stamp}")),
            None => (String::new(), String::new()),
        };
        tx.execute(
            &format!(
                "INSERT{or_fail} INTO {table} ({key}, account_id{seq_column})
                 SELECT x.{key}, m.atlassian_id{seq_value} FROM {table} x JOIN ferry_upgrade_map m ON m.portal_id = x.account_id
                 WHERE true ON CONFLICT DO NOTHING"
            ),
            &[],
        )?;
        tx.execute(&format!("DELETE FROM {table} WHERE account_id IN (SELECT portal_id FROM ferry_upgrade_map)"), &[])?;
    }
    tx.execute(
        &format!(
            "UPDATE{or_fail} accounts AS t SET active = FALSE, merged_into = m.atlassian_id, merged_at = $1
             FROM ferry_upgrade_map m WHERE t.id = m.portal_id"
        ),
        &[Val::T(&at)],
    )?;
    write_batch(tx, &audit_rows)?;
    ferry_store::accounts::change_counts(tx, site.id, change)?;
    Ok(())
}

/// References each mapped portal-only account holds, by account id.
fn count_references(tx: &mut Tx<'_>) -> Result<HashMap<i64, References>, StoreError> {
    let mut counts: HashMap<i64, References> = HashMap::new();
    let queries: [(&str, Field); 5] = [
        (
            "SELECT m.portal_id, COUNT(*) FROM requests x JOIN ferry_upgrade_map m ON m.portal_id = x.reporter_id GROUP BY m.portal_id",
            |r| &mut r.requests_reported,
        ),
        (
            "SELECT m.portal_id, COUNT(*) FROM request_participants x JOIN ferry_upgrade_map m ON m.portal_id = x.account_id GROUP BY m.portal_id",
            |r| &mut r.participations,
        ),
        (
            "SELECT m.portal_id, COUNT(*) FROM comments x JOIN ferry_upgrade_map m ON m.portal_id = x.author_id GROUP BY m.portal_id",
            |r| &mut r.comments,
        ),
        (
            "SELECT m.portal_id, COUNT(*) FROM project_customers x JOIN ferry_upgrade_map m ON m.portal_id = x.account_id GROUP BY m.portal_id",
            |r| &mut r.customer_lists,
        ),
        (
            "SELECT m.portal_id, COUNT(*) FROM organization_members x JOIN ferry_upgrade_map m ON m.portal_id = x.account_id GROUP BY m.portal_id",
            |r| &mut r.organizations,
        ),
    ];
    for (sql, field) in queries {
        tx.query_each(sql, &[], |r| {
            *field(counts.entry(r.int(0)?).or_default()) = r.int(1)? as u64;
            Ok(())
        })?;
    }
    Ok(counts)
}

/// Appends `text` to `out` as a JSON string.
fn json_string(out: &mut String, text: &str) {
    // Serializing a string cannot fail.
    if let Ok(quoted) = serde_json::to_string(text) {
        out.push_str(&quoted);
    }
}

fn atlassian_ext_ids(tx: &mut Tx<'_>) -> Result<HashSet<String>, StoreError> {
    let mut taken = HashSet::new();
    tx.query_each("SELECT ext_id FROM accounts WHERE site_id IS NULL", &[], |r| {
        taken.insert(r.text(0)?.to_owned());
        Ok(())
    })?;
    Ok(taken)
}

/// A new Atlassian account's id: readable, tied to the account it came
/// from, unique in the cloud.
fn new_ext_id(site: &str, portal_ext_id: &str, taken: &mut HashSet<String>) -> String {
    let base = format!("aa-{site}-{portal_ext_id}");
    let mut candidate = base.clone();
    let mut n = 1;
    while !taken.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyed(keys: &[&str]) -> Vec<(String, Planned)> {
        keys.iter()
            .map(|k| {
                let c = Candidate {
                    portal_id: 0,
                    email: (*k).to_owned(),
                    portal_ext_id: String::new(),
                    merged_into: None,
                    active: true,
                };
                ((*k).to_owned(), (c, None))
            })
            .collect()
    }

    #[test]
    fn halves_read_apart_merge_into_one_list_by_email() {
        let emails = |planned: Vec<Planned>| planned.into_iter().map(|(c, _)| c.email).collect::<Vec<_>>();
        let merged = merge_by_key(keyed(&["a", "c", "d", "h"]), keyed(&["b", "e", "f", "g", "i"]));
        assert_eq!(emails(merged), ["a", "b", "c", "d", "e", "f", "g", "h", "i"]);
        assert_eq!(emails(merge_by_key(keyed(&[]), keyed(&["x", "y"]))), ["x", "y"]);
        assert_eq!(emails(merge_by_key(keyed(&["x", "y"]), keyed(&[]))), ["x", "y"]);
    }

    #[test]
    fn new_account_ids_never_collide() {
        let mut taken: HashSet<String> = ["aa-us-po-1".to_owned(), "aa-us-po-1-2".to_owned()].into();
        assert_eq!(new_ext_id("us", "po-1", &mut taken), "aa-us-po-1-3");
        assert_eq!(new_ext_id("us", "po-2", &mut taken), "aa-us-po-2");
        assert_eq!(new_ext_id("us", "po-2", &mut taken), "aa-us-po-2-2");
    }
}
