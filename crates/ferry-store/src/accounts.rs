//! Customers of a site: its portal-only accounts and its site users.

use ferry_core::model::AccountType;

use crate::Result;
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
    tx.query_each(&sql, &[Val::I(site_id)], |r| {
        let account_type = AccountType::from_jira_value(r.text(2)?).unwrap_or(AccountType::PortalOnly);
        each(CustomerRow {
            email: r.text(0)?.to_owned(),
            email_key: r.text(1)?.to_owned(),
            account_type,
            account_id: r.text(3)?.to_owned(),
            display_name: r.text(4)?.to_owned(),
            active: r.bool(5)?,
        })
    })
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

/// Where a page of customers starts: after this (email key, type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCursor {
    pub email_key: String,
    pub account_type: AccountType,
}

/// A name prefix shared by more accounts than this (of a site's portal-only
/// accounts, or of Atlassian accounts) is too common to search by.
pub const COMMON_NAME: i64 = 2_000;

/// Sort position of a type within one email: Atlassian first, as in
/// [`each_customer`] (which sorts by the stored kind).
fn type_rank(t: AccountType) -> u8 {
    match t {
        AccountType::Atlassian => 0,
        AccountType::PortalOnly => 1,
    }
}

/// A page of customers, and whether a name search matched too many names
/// to take part (then only emails were searched).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerPage {
    pub rows: Vec<CustomerRow>,
    pub name_too_common: bool,
}

/// One page of a site's customers (merged portal-only accounts left out),
/// sorted by normalized email then type, starting after `after`; with a
/// search (lowercased), only customers whose email or display name starts
/// with it. Each type is read from its email index from the cursor on, so a
/// page costs the same at the first row and the millionth. Name matches
/// come from the name index and are sorted by email: a prefix that more
/// than [`COMMON_NAME`] accounts share is left out (`name_too_common`), so
/// that no search reads more than that.
pub fn customer_page(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    search: Option<&str>,
    after: Option<&CustomerCursor>,
    limit: usize,
) -> Result<CustomerPage> {
    let mut rows = customer_page_where(tx, site_id, filter, search, None, after, limit)?;
    let mut name_too_common = false;
    if let Some(name) = search {
        let end = format!("{name}\u{10FFFF}");
        let sites = [
            ("site_id = $1", filter.account_type != Some(AccountType::Atlassian)),
            (
                "site_id IS NULL AND CAST($1 AS BIGINT) IS NOT NULL",
                filter.account_type != Some(AccountType::PortalOnly),
            ),
        ];
        for (site, wanted) in sites {
            if !wanted {
                continue;
            }
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM accounts WHERE {site} AND name_key >= $2 AND name_key < $3 LIMIT {}) m",
                COMMON_NAME + 1
            );
            let matches =
                tx.query_opt(&sql, &[Val::I(site_id), Val::T(name), Val::T(&end)], |r| r.int(0))?.unwrap_or(0);
            name_too_common |= matches > COMMON_NAME;
        }
        if !name_too_common {
            rows.extend(customer_page_where(tx, site_id, filter, None, Some(name), after, limit)?);
            rows.sort_by(|a, b| {
                (&a.email_key, type_rank(a.account_type)).cmp(&(&b.email_key, type_rank(b.account_type)))
            });
            rows.dedup_by(|a, b| a.email_key == b.email_key && a.account_type == b.account_type);
            rows.truncate(limit);
        }
    }
    Ok(CustomerPage { rows, name_too_common })
}

fn customer_page_where(
    tx: &mut Tx<'_>,
    site_id: i64,
    filter: CustomerFilter,
    email_prefix: Option<&str>,
    name_like: Option<&str>,
    after: Option<&CustomerCursor>,
    limit: usize,
) -> Result<Vec<CustomerRow>> {
    let from = after.map_or("", |c| c.email_key.as_str());
    let from = match email_prefix {
        Some(p) if p > from => p,
        _ => from,
    };
    let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
    let dup = filter.duplicates_only;
    let name = if name_like.is_some() { " AND a.name_key >= $4 AND a.name_key < $5" } else { "" };
    let dup_portal = format!("{}{name}", if dup { PORTAL_DUPLICATE } else { "" });
    let dup_atlassian = format!("{}{name}", if dup { ATLASSIAN_DUPLICATE } else { "" });
    let end = name_like.map(|p| format!("{p}\u{10FFFF}"));
    // SQLite's planner, without range statistics, may pick the wrong one
    // of the email and name indexes: ferry names each (PostgreSQL plans by
    // its statistics).
    let via = |email_index: &'static str| match (tx.backend(), name_like) {
        (crate::Backend::Postgres, _) => "",
        (crate::Backend::Sqlite, Some(_)) => " INDEXED BY accounts_name",
        (crate::Backend::Sqlite, None) => email_index,
    };
    let (via_portal, via_atlassian) =
        (via(" INDEXED BY accounts_portal_email"), via(" INDEXED BY accounts_atlassian_email"));
    let mut params = vec![Val::I(site_id), Val::T(from), Val::I(fetch)];
    if let (Some(prefix), Some(end)) = (name_like, end.as_deref()) {
        params.push(Val::T(prefix));
        params.push(Val::T(end));
    }
    let mut rows = Vec::new();
    let mut read = |tx: &mut Tx<'_>, sql: String| -> Result<()> {
        tx.query_each(&sql, &params, |r| {
            rows.push(CustomerRow {
                email: r.text(0)?.to_owned(),
                email_key: r.text(1)?.to_owned(),
                account_type: AccountType::from_jira_value(r.text(2)?).unwrap_or(AccountType::PortalOnly),
                account_id: r.text(3)?.to_owned(),
                display_name: r.text(4)?.to_owned(),
                active: r.bool(5)?,
            });
            Ok(())
        })
    };
    const COLUMNS: &str = "a.email, a.email_key, a.kind, a.ext_id, a.display_name, a.active";
    if filter.account_type != Some(AccountType::Atlassian) {
        read(
            tx,
            format!(
                "SELECT {COLUMNS} FROM accounts a{via_portal} WHERE a.site_id = $1 AND a.merged_into IS NULL AND a.email_key >= $2{dup_portal}
                 ORDER BY a.email_key LIMIT $3"
            ),
        )?;
    }
    if filter.account_type != Some(AccountType::PortalOnly) {
        read(
            tx,
            format!(
                "SELECT {COLUMNS} FROM accounts a{via_atlassian} WHERE a.site_id IS NULL AND a.email_key >= $2
                 AND EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $1 AND su.account_id = a.id){dup_atlassian}
                 ORDER BY a.email_key LIMIT $3"
            ),
        )?;
    }
    let key = |r: &CustomerRow| (r.email_key.clone(), type_rank(r.account_type));
    rows.sort_by_key(key);
    let past_cursor = |r: &CustomerRow| after.is_none_or(|c| key(r) > (c.email_key.clone(), type_rank(c.account_type)));
    // The email query reads on past its prefix (no upper bound); the name
    // query's range is exact in SQL (name_key), so nothing to re-check.
    let matches = |r: &CustomerRow| email_prefix.is_none_or(|p| r.email_key.starts_with(p));
    Ok(rows.into_iter().filter(|r| past_cursor(r) && matches(r)).take(limit).collect())
}

/// Account `id` as the access rule takes it, with its email.
pub fn site_account(tx: &mut Tx<'_>, id: i64) -> Result<Option<(SiteAccount, String)>> {
    tx.query_opt("SELECT kind, active, email FROM accounts WHERE id = $1", &[Val::I(id)], |r| {
        let account_type = AccountType::from_jira_value(r.text(0)?).unwrap_or(AccountType::PortalOnly);
        Ok((SiteAccount { id, account_type, active: r.bool(1)? }, r.text(2)?.to_owned()))
    })
}
