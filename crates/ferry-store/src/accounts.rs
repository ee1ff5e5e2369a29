//! Customers of a site: its portal-only accounts and its site users.

use ferry_core::model::AccountType;
use ferry_core::search::{self, Query};

use crate::Result;
use crate::bulk::{OnConflict, RowBatch, TableSpec};
use crate::conn::{Tx, Val};

/// One customer account as the customer list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    pub email: String,
    pub email_key: String,
    pub account_type: AccountType,
    pub account_id: String,
    pub display_name: String,
    pub active: bool,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CustomerFilter {
    pub account_type: Option<AccountType>,
    /// Only emails that have both a portal-only account (not merged) and an
    /// Atlassian account on the site.
    pub duplicates_only: bool,
}

const PORTAL: &str = "SELECT a.email, a.email_key, a.kind, a.ext_id, a.display_name, a.active
    FROM accounts a WHERE a.site_id = $1";
const PORTAL_DUPLICATE: &str = " AND a.merged_into IS NULL AND EXISTS (SELECT 1 FROM accounts b
    JOIN site_users su ON su.account_id = b.id AND su.site_id = $1
    WHERE b.site_id IS NULL AND b.email_key = a.email_key)";
const ATLASSIAN: &str = "SELECT a.email, a.email_key, a.kind, a.ext_id, a.display_name, a.active
    FROM site_users su JOIN accounts a ON a.id = su.account_id WHERE su.site_id = $1";
const ATLASSIAN_DUPLICATE: &str = " AND EXISTS (SELECT 1 FROM accounts b
    WHERE b.site_id = $1 AND b.email_key = a.email_key AND b.merged_into IS NULL)";

/// Streams a site's customers sorted by normalized email, then type.
pub fn each_customer(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    mut each: impl FnMut(CustomerRow) -> Result<()>,
) -> Result<()> {
    let mut parts = Vec::new();
    let dup = filter.duplicates_only;
    if filter.account_type != Some(AccountType::Atlassian) {
        parts.push(format!("{PORTAL}{}", if dup { PORTAL_DUPLICATE } else { "" }));
    }
    if filter.account_type != Some(AccountType::PortalOnly) {
        parts.push(format!("{ATLASSIAN}{}", if dup { ATLASSIAN_DUPLICATE } else { "" }));
    }
    let sql = format!("SELECT * FROM ({}) c ORDER BY 2, 3, 4", parts.join(" UNION ALL "));
    tx.query_each(&sql, &[Val::I(site_id)], |r| each(customer_row(r)?))
}

/// An account of a site found by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteAccount {
    pub id: i64,
    pub account_type: AccountType,
    pub active: bool,
}

/// The account a customer signing in with `email_key` uses on the site: the
/// Atlassian account when the site has both, unless `prefer` says otherwise.
pub fn find_by_email(
    tx: &mut Tx<'_>,
    site_id: i64,
    email_key: &str,
    prefer: Option<AccountType>,
) -> Result<Option<SiteAccount>> {
    let atlassian = if prefer == Some(AccountType::PortalOnly) {
        None
    } else {
        tx.query_opt(
            "SELECT a.id, a.active FROM accounts a
             JOIN site_users su ON su.account_id = a.id AND su.site_id = $1
             WHERE a.site_id IS NULL AND a.email_key = $2",
            &[Val::I(site_id), Val::T(email_key)],
            |r| Ok(SiteAccount { id: r.int(0)?, account_type: AccountType::Atlassian, active: r.bool(1)? }),
        )?
    };
    if atlassian.is_some() || prefer == Some(AccountType::Atlassian) {
        return Ok(atlassian);
    }
    tx.query_opt(
        "SELECT id, active FROM accounts WHERE site_id = $1 AND email_key = $2 ORDER BY (merged_into IS NOT NULL), id",
        &[Val::I(site_id), Val::T(email_key)],
        |r| Ok(SiteAccount { id: r.int(0)?, account_type: AccountType::PortalOnly, active: r.bool(1)? }),
    )
}

/// A position in the customer list (normalized email, then type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCursor {
    pub email_key: String,
    pub account_type: AccountType,
}

/// Which page of the list: the first, the one after a position, or the
/// one before it (a previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageAt {
    First,
    After(CustomerCursor),
    Before(CustomerCursor),
}

/// A search matching more customers than this (anywhere in a name or an
/// email) is too common to list by match: the page lists the customers
/// whose email starts with it instead, and says so.
pub const SEARCH_LIMIT: usize = 1_000;

/// A search whose index range holds more terms than this is too common
/// as well (however few emails they belong to), so that no search reads
/// more of the index.
pub const SEARCH_TERMS: usize = 3 * SEARCH_LIMIT;

/// Sort position of a type within one email: Atlassian first, as in
/// [`each_customer`] (which sorts by the stored kind).
fn type_rank(t: AccountType) -> u8 {
    match t {
        AccountType::Atlassian => 0,
        AccountType::PortalOnly => 1,
    }
}

fn sort_key(r: &CustomerRow) -> (&str, u8) {
    (r.email_key.as_str(), type_rank(r.account_type))
}

fn cursor_key(c: &CustomerCursor) -> (&str, u8) {
    (c.email_key.as_str(), type_rank(c.account_type))
}

/// One page of customers, in list order, with what lies around it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerPage {
    pub rows: Vec<CustomerRow>,
    /// How many customers the whole list (every page) holds; `None` when
    /// not known now: duplicates while a copy into the site is writing its
    /// accounts, or a search too common to count.
    pub total: Option<u64>,
    /// Customers of the list come before the first row.
    pub more_before: bool,
    /// Customers of the list come after the last row.
    pub more_after: bool,
    /// The search matched more than [`SEARCH_LIMIT`] customers: the list
    /// holds only those whose email starts with it.
    pub too_common: bool,
}

/// Terms of the search index ([`ferry_core::search::terms`]) by email.
pub static CUSTOMER_TERMS: TableSpec =
    TableSpec { table: "customer_terms", columns: &["term", "email_key"], on_conflict: OnConflict::Ignore };

/// Search terms a bulk load gathers in the order its accounts come
/// ([`stage_terms`]), to be added to the index in the index's own order at
/// the end ([`index_staged_terms`]).
pub static STAGED_TERMS: TableSpec =
    TableSpec { table: "ferry_staged_terms", columns: &["term", "email_key"], on_conflict: OnConflict::Fail };

/// Starts gathering search terms in a temporary table of this transaction
/// ([`STAGED_TERMS`]). Added one account at a time, the terms land all over
/// the index: at ten million customers (sixty million terms) the index no
/// longer fits in the cache and each insert is a read from disk. Gathered
/// first and added sorted, each page of the index is written once.
pub fn stage_terms(tx: &mut Tx<'_>) -> Result<()> {
    match tx.backend() {
        crate::Backend::Sqlite => tx.batch(
            "CREATE TEMP TABLE IF NOT EXISTS ferry_staged_terms (term TEXT NOT NULL, email_key TEXT NOT NULL);
             DELETE FROM ferry_staged_terms;",
        ),
        crate::Backend::Postgres => tx.batch(
            "CREATE TEMP TABLE IF NOT EXISTS ferry_staged_terms (term TEXT NOT NULL, email_key TEXT NOT NULL)
                 ON COMMIT DROP;
             TRUNCATE ferry_staged_terms;",
        ),
    }
}

/// Adds the terms [`stage_terms`] gathered to the search index (on SQLite
/// sorted as the index is: the database sorts, in temporary files, see
/// [`crate::Store::write_checked_bulk`]), and drops the gathering table.
pub fn index_staged_terms(tx: &mut Tx<'_>) -> Result<()> {
    match tx.backend() {
        crate::Backend::Sqlite => tx.batch(
            "INSERT OR IGNORE INTO customer_terms (term, email_key)
                 SELECT term, email_key FROM ferry_staged_terms ORDER BY term, email_key;
             DROP TABLE temp.ferry_staged_terms;",
        ),
        // PostgreSQL merges them as its bulk writer merges any staged rows
        // (sorting them first is not measured yet).
        crate::Backend::Postgres => tx.batch(
            "INSERT INTO customer_terms (term, email_key) SELECT term, email_key FROM ferry_staged_terms
                 ON CONFLICT DO NOTHING;
             DROP TABLE ferry_staged_terms;",
        ),
    }
}

/// Adds the search terms of a customer with this email and name.
pub fn push_terms(batch: &mut RowBatch, email_key: &str, display_name: &str) {
    for term in search::terms(email_key, display_name) {
        batch.push(&[Val::T(&term), Val::T(email_key)]);
    }
}

/// Indexes every account's terms and counts every site's customers
/// (migration 8, once).
pub(crate) fn index_and_count(tx: &mut Tx<'_>) -> Result<()> {
    for site in tx.query_all("SELECT id FROM sites", &[], |r| r.int(0))? {
        recount(tx, site)?;
    }
    let mut after = i64::MIN;
    loop {
        let chunk = tx.query_all(
            "SELECT id, email_key, display_name FROM accounts WHERE id > $1 ORDER BY id LIMIT 20000",
            &[Val::I(after)],
            |r| Ok((r.int(0)?, r.text(1)?.to_owned(), r.text(2)?.to_owned())),
        )?;
        let Some(last) = chunk.last() else { return Ok(()) };
        after = last.0;
        let mut batch = RowBatch::new(&CUSTOMER_TERMS);
        for (_, email_key, name) in &chunk {
            push_terms(&mut batch, email_key, name);
        }
        crate::bulk::write_batch(tx, &batch)?;
    }
}

/// A site's customer counts, as the customers page totals them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CustomerCounts {
    /// Portal-only accounts not merged into an Atlassian account.
    pub portal_only: u64,
    /// Site users.
    pub atlassian: u64,
    /// Emails with both; `None` while a copy into the site is writing.
    pub duplicates: Option<u64>,
}

const COUNT_PORTAL: &str = "SELECT COUNT(*) FROM accounts a WHERE a.site_id = $1 AND a.merged_into IS NULL";
const COUNT_ATLASSIAN: &str = "SELECT COUNT(*) FROM site_users su WHERE su.site_id = $1";
const COUNT_DUPLICATES: &str = "SELECT COUNT(*) FROM site_users su JOIN accounts b ON b.id = su.account_id
    JOIN accounts a ON a.site_id = su.site_id AND a.email_key = b.email_key AND a.merged_into IS NULL
    WHERE su.site_id = $1";

/// Counts a site's customers again, from its rows: every write that
/// changes them (import, upgrade, rollback, the end of a copy's accounts)
/// calls this in its own transaction.
pub fn recount(tx: &mut Tx<'_>, site_id: i64) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO customer_counts (site_id, portal_only, atlassian, duplicates)
             SELECT CAST($1 AS BIGINT), ({COUNT_PORTAL}), ({COUNT_ATLASSIAN}), ({COUNT_DUPLICATES})
             ON CONFLICT (site_id) DO UPDATE SET portal_only = excluded.portal_only,
                atlassian = excluded.atlassian, duplicates = excluded.duplicates"
        ),
        &[Val::I(site_id)],
    )?;
    Ok(())
}

/// A change to a site's counts, made by the write that causes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountChange {
    pub portal_only: i64,
    pub atlassian: i64,
    /// `None`: the duplicates are not known until the writer recounts (a
    /// copy, at the end of its accounts).
    pub duplicates: Option<i64>,
}

/// Applies `change` to a site's kept counts (in the writer's transaction).
pub fn change_counts(tx: &mut Tx<'_>, site_id: i64, change: CountChange) -> Result<()> {
    if change.portal_only == 0 && change.atlassian == 0 && change.duplicates.unwrap_or(0) == 0 {
        return Ok(());
    }
    let duplicates = match change.duplicates {
        Some(d) => Val::I(d),
        None => Val::Null,
    };
    // A site nothing was counted for yet counts its rows first.
    if tx
        .query_opt("SELECT site_id FROM customer_counts WHERE site_id = $1", &[Val::I(site_id)], |r| r.int(0))?
        .is_none()
    {
        return recount(tx, site_id);
    }
    tx.execute(
        "UPDATE customer_counts SET portal_only = portal_only + $2, atlassian = atlassian + $3,
            duplicates = duplicates + CAST($4 AS BIGINT) WHERE site_id = $1",
        &[Val::I(site_id), Val::I(change.portal_only), Val::I(change.atlassian), duplicates],
    )?;
    Ok(())
}

/// A site's counts as kept (zero for a site nothing was written to).
pub fn counts(tx: &mut Tx<'_>, site_id: i64) -> Result<CustomerCounts> {
    let kept = tx.query_opt(
        "SELECT portal_only, atlassian, duplicates FROM customer_counts WHERE site_id = $1",
        &[Val::I(site_id)],
        |r| {
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(CustomerCounts { portal_only: n(r.int(0)?), atlassian: n(r.int(1)?), duplicates: r.opt_int(2)?.map(n) })
        },
    )?;
    Ok(kept.unwrap_or(CustomerCounts { duplicates: Some(0), ..CustomerCounts::default() }))
}

/// A site's counts computed from its rows now (to check the kept ones).
pub fn counts_from_rows(tx: &mut Tx<'_>, site_id: i64) -> Result<CustomerCounts> {
    let mut count = |sql: &str| -> Result<u64> {
        Ok(tx.query_opt(sql, &[Val::I(site_id)], |r| r.int(0))?.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    };
    Ok(CustomerCounts {
        portal_only: count(COUNT_PORTAL)?,
        atlassian: count(COUNT_ATLASSIAN)?,
        duplicates: Some(count(COUNT_DUPLICATES)?),
    })
}

/// One page of a site's customers (merged portal-only accounts left out),
/// sorted by normalized email then type.
///
/// Without a search, each type is read from its email index from the
/// position on (forwards, or backwards for a previous page), so a page
/// costs the same at the first row and the millionth, and the total is the
/// kept count. With a search ([`ferry_core::search::matches`]), the term
/// index gives the emails that can match; at most [`SEARCH_LIMIT`] of them
/// are read, checked and counted exactly. A search more common than that
/// lists the customers whose email starts with it (`too_common`).
pub fn customer_page(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    search: Option<&Query>,
    at: &PageAt,
    limit: usize,
) -> Result<CustomerPage> {
    let counts = counts(tx, site_id)?;
    let Some(query) = search else {
        let total = if filter.duplicates_only {
            counts.duplicates.map(|d| {
                // Each duplicate email is one row of each type.
                if filter.account_type.is_some() { d } else { 2 * d }
            })
        } else {
            Some(match filter.account_type {
                Some(AccountType::PortalOnly) => counts.portal_only,
                Some(AccountType::Atlassian) => counts.atlassian,
                None => counts.portal_only + counts.atlassian,
            })
        };
        let mut page = list_page(tx, site_id, filter, None, at, limit)?;
        page.total = total;
        return Ok(page);
    };
    let (start, end) = query.range();
    // A small site is searched whole: the term index serves every site at
    // once, and other sites' customers must not make a search of this one
    // too common.
    let small = counts.portal_only + counts.atlassian <= SEARCH_TERMS as u64;
    if !small {
        // Whether more than SEARCH_LIMIT emails can match: read at most
        // SEARCH_TERMS index entries (an email has a few terms in one
        // range: its name's word and its email's, say), never the whole
        // range.
        let mut emails = std::collections::HashSet::new();
        let mut entries = 0;
        tx.query_each(
            &format!("SELECT email_key FROM customer_terms WHERE term >= $1 AND term < $2 LIMIT {}", SEARCH_TERMS + 1),
            &[Val::T(&start), Val::T(&end)],
            |r| {
                entries += 1;
                emails.insert(r.text(0)?.to_owned());
                Ok(())
            },
        )?;
        if entries > SEARCH_TERMS || emails.len() > SEARCH_LIMIT {
            let mut page = list_page(tx, site_id, filter, Some(query.email_prefix()), at, limit)?;
            page.too_common = true;
            return Ok(page);
        }
    }
    let mut rows = Vec::new();
    let matching = if small {
        ""
    } else {
        "AND a.email_key IN (SELECT ct.email_key FROM customer_terms ct WHERE ct.term >= $2 AND ct.term < $3)"
    };
    let site = [Val::I(site_id)];
    let params = [Val::I(site_id), Val::T(&start), Val::T(&end)];
    for kind in kinds(filter) {
        let sql = match (small, kind) {
            // A small site's site users, from the site's side.
            (true, AccountType::Atlassian) => {
                format!("{ATLASSIAN}{}", if filter.duplicates_only { ATLASSIAN_DUPLICATE } else { "" })
            }
            _ => kind_query(tx.backend(), kind, filter, matching, ""),
        };
        tx.query_each(&sql, if small { &site[..] } else { &params[..] }, |r| {
            let row = customer_row(r)?;
            // The index was built from the normalized email: so is the check.
            if search::matches(query, &row.email_key, &row.display_name) {
                rows.push(row);
            }
            Ok(())
        })?;
    }
    rows.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let total = Some(rows.len() as u64);
    let (from, to) = match at {
        PageAt::First => (0, limit.min(rows.len())),
        PageAt::After(c) => {
            let from = rows.partition_point(|r| sort_key(r) <= cursor_key(c));
            (from, (from + limit).min(rows.len()))
        }
        PageAt::Before(c) => {
            let to = rows.partition_point(|r| sort_key(r) < cursor_key(c));
            (to.saturating_sub(limit), to)
        }
    };
    let (more_before, more_after) = (from > 0, to < rows.len());
    rows.truncate(to);
    rows.drain(..from);
    Ok(CustomerPage { rows, total, more_before, more_after, too_common: false })
}

/// The types a filter lists.
fn kinds(filter: CustomerFilter) -> impl Iterator<Item = AccountType> {
    [AccountType::Atlassian, AccountType::PortalOnly]
        .into_iter()
        .filter(move |k| filter.account_type.is_none_or(|t| t == *k))
}

fn customer_row(r: &crate::Row<'_>) -> Result<CustomerRow> {
    Ok(CustomerRow {
        email: r.text(0)?.to_owned(),
        email_key: r.text(1)?.to_owned(),
        account_type: r.parsed(2, "account type", AccountType::from_jira_value)?,
        account_id: r.text(3)?.to_owned(),
        display_name: r.text(4)?.to_owned(),
        active: r.bool(5)?,
    })
}

/// The customers of one type on site `$1` (merged ones left out), with
/// `condition` on `a` and ending in `tail` (an order and a limit).
fn kind_query(
    backend: crate::Backend,
    kind: AccountType,
    filter: CustomerFilter,
    condition: &str,
    tail: &str,
) -> String {
    const COLUMNS: &str = "a.email, a.email_key, a.kind, a.ext_id, a.display_name, a.active";
    // SQLite's planner, without range statistics, may scan a whole site
    // instead: ferry names the email index (PostgreSQL plans by its
    // statistics).
    let via = |index: &str| match backend {
        crate::Backend::Postgres => String::new(),
        crate::Backend::Sqlite => format!(" INDEXED BY {index}"),
    };
    let dup = filter.duplicates_only;
    match kind {
        AccountType::PortalOnly => format!(
            "SELECT {COLUMNS} FROM accounts a{} WHERE a.site_id = $1 AND a.merged_into IS NULL {condition}{} {tail}",
            via("accounts_portal_email"),
            if dup { PORTAL_DUPLICATE } else { "" }
        ),
        AccountType::Atlassian => format!(
            "SELECT {COLUMNS} FROM accounts a{} WHERE a.site_id IS NULL {condition}
             AND EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $1 AND su.account_id = a.id){} {tail}",
            via("accounts_atlassian_email"),
            if dup { ATLASSIAN_DUPLICATE } else { "" }
        ),
    }
}

/// A page of the whole list (or of the emails starting with `prefix`),
/// read from the email indexes at the page's position.
fn list_page(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    prefix: Option<&str>,
    at: &PageAt,
    limit: usize,
) -> Result<CustomerPage> {
    let side = |tx: &mut Tx<'_>, pivot: Option<(&CustomerCursor, bool)>, forward: bool, n: usize| {
        list_side(tx, site_id, filter, prefix, pivot, forward, n)
    };
    let (rows, more_before, more_after) = match at {
        PageAt::First => {
            let mut rows = side(tx, None, true, limit + 1)?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            (rows, false, more)
        }
        PageAt::After(c) => {
            let mut rows = side(tx, Some((c, false)), true, limit + 1)?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let before = !side(tx, Some((c, true)), false, 1)?.is_empty();
            (rows, before, more)
        }
        PageAt::Before(c) => {
            let mut rows = side(tx, Some((c, false)), false, limit + 1)?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            rows.reverse();
            let after = !side(tx, Some((c, true)), true, 1)?.is_empty();
            (rows, more, after)
        }
    };
    Ok(CustomerPage { rows, total: None, more_before, more_after, too_common: false })
}

/// Up to `n` customers next to `pivot` (all if none) going `forward` (or
/// backwards), in that order: strictly past the pivot, or also at it when
/// `inclusive`.
fn list_side(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    prefix: Option<&str>,
    pivot: Option<(&CustomerCursor, bool)>,
    forward: bool,
    n: usize,
) -> Result<Vec<CustomerRow>> {
    // One range per side, its bounds worked out here: given two lower
    // bounds, SQLite may seek by the smaller and scan up to the other.
    const LAST: &str = "\u{10FFFF}\u{10FFFF}";
    let pivot_key = pivot.map(|(c, _)| c.email_key.as_str());
    let prefix_end = prefix.map(|p| format!("{p}\u{10FFFF}"));
    let (low, high, condition, order) = if forward {
        let low = pivot_key.into_iter().chain(prefix).max().unwrap_or("");
        (low, prefix_end.as_deref().unwrap_or(LAST), "AND a.email_key >= $2 AND a.email_key < $4", "ASC")
    } else {
        let high = pivot_key.into_iter().chain(prefix_end.as_deref()).min().unwrap_or(LAST);
        (prefix.unwrap_or(""), high, "AND a.email_key >= $4 AND a.email_key <= $2", "DESC")
    };
    let (from, to) = if forward { (low, high) } else { (high, low) };
    // One email has at most one row of each type: one more than asked
    // covers the pivot's own email.
    let fetch = i64::try_from(n + 1).unwrap_or(i64::MAX);
    let params = [Val::I(site_id), Val::T(from), Val::I(fetch), Val::T(to)];
    let mut rows = Vec::new();
    for kind in kinds(filter) {
        let sql = kind_query(tx.backend(), kind, filter, condition, &format!("ORDER BY a.email_key {order} LIMIT $3"));
        tx.query_each(&sql, &params, |r| {
            rows.push(customer_row(r)?);
            Ok(())
        })?;
    }
    rows.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    if !forward {
        rows.reverse();
    }
    let past = |r: &CustomerRow| match pivot {
        None => true,
        Some((c, inclusive)) => {
            let (k, p) = (sort_key(r), cursor_key(c));
            if inclusive && k == p {
                return true;
            }
            if forward { k > p } else { k < p }
        }
    };
    Ok(rows.into_iter().filter(|r| past(r)).take(n).collect())
}

/// Account `id` as the access rule takes it, with its email.
pub fn site_account(tx: &mut Tx<'_>, id: i64) -> Result<Option<(SiteAccount, String)>> {
    tx.query_opt("SELECT kind, active, email FROM accounts WHERE id = $1", &[Val::I(id)], |r| {
        let account_type = r.parsed(0, "account type", AccountType::from_jira_value)?;
        Ok((SiteAccount { id, account_type, active: r.bool(1)? }, r.text(2)?.to_owned()))
    })
}
