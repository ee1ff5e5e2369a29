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
