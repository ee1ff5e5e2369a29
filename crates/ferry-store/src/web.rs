//! Who may use the server: org admins (console and API), their browser
//! sessions and API tokens, and customers signed in to a site's help center.
//! Only hashes are stored here; hashing and checking live in the server.

use crate::conn::{Tx, Val};
use crate::{Result, StoreError};

/// An org admin, with the organizations it administers (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: i64,
    pub email: String,
    pub orgs: Vec<String>,
}

/// Whose browser a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOwner {
    Admin(i64),
    /// A customer account signed in to one site's help center.
    Customer {
        account_id: i64,
        site_id: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

fn now() -> String {
    crate::audit::timestamp(chrono::Utc::now())
}

/// Creates the admin `email` of `org`, or, when it exists, sets its
/// password and adds `org` to what it administers. Returns its id.
pub fn upsert_admin(tx: &mut Tx<'_>, org: &str, email: &str, email_key: &str, password_hash: &str) -> Result<i64> {
    let org_id = crate::sites::org_id(tx, org)?.ok_or_else(|| {
        StoreError::NotFound(format!("no organization named {org:?}; create it with `ferry org create {org}`"))
    })?;
    let existing = tx.query_opt("SELECT id FROM admins WHERE email_key = $1", &[Val::T(email_key)], |r| r.int(0))?;
    let id = match existing {
        Some(id) => {
            tx.execute("UPDATE admins SET password_hash = $1 WHERE id = $2", &[Val::T(password_hash), Val::I(id)])?;
            // A new password ends every sign-in made with the old one.
            tx.execute("DELETE FROM web_sessions WHERE admin_id = $1", &[Val::I(id)])?;
            id
        }
        None => {
            tx.execute(
                "INSERT INTO admins (email_key, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
                &[Val::T(email_key), Val::T(email), Val::T(password_hash), Val::T(&now())],
            )?;
            tx.query_opt("SELECT id FROM admins WHERE email_key = $1", &[Val::T(email_key)], |r| r.int(0))?
                .ok_or_else(|| StoreError::NotFound(format!("admin {email} vanished")))?
        }
    };
    add_org_admin(tx, id, org_id)?;
    Ok(id)
}

/// Makes the admin an admin of the organization too (idempotent).
pub fn add_org_admin(tx: &mut Tx<'_>, admin_id: i64, org_id: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO org_admins (admin_id, org_id) SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT)
         WHERE NOT EXISTS (SELECT 1 FROM org_admins WHERE admin_id = $1 AND org_id = $2)",
        &[Val::I(admin_id), Val::I(org_id)],
    )?;
    Ok(())
}

/// The id and password hash of the admin with this normalized email.
pub fn admin_credentials(tx: &mut Tx<'_>, email_key: &str) -> Result<Option<(i64, String)>> {
    tx.query_opt("SELECT id, password_hash FROM admins WHERE email_key = $1", &[Val::T(email_key)], |r| {
        Ok((r.int(0)?, r.text(1)?.to_owned()))
    })
}

pub fn admin(tx: &mut Tx<'_>, id: i64) -> Result<Option<Admin>> {
    let Some(email) =
        tx.query_opt("SELECT email FROM admins WHERE id = $1", &[Val::I(id)], |r| Ok(r.text(0)?.to_owned()))?
    else {
        return Ok(None);
    };
    let orgs = tx.query_all(
        "SELECT o.name FROM org_admins oa JOIN orgs o ON o.id = oa.org_id WHERE oa.admin_id = $1 ORDER BY o.name",
        &[Val::I(id)],
        |r| Ok(r.text(0)?.to_owned()),
    )?;
    Ok(Some(Admin { id, email, orgs }))
}

pub fn create_session(tx: &mut Tx<'_>, id_hash: &str, owner: SessionOwner, expires_at: &str) -> Result<()> {
    let (admin, account, site) = match owner {
        SessionOwner::Admin(id) => (Val::I(id), Val::Null, Val::Null),
        SessionOwner::Customer { account_id, site_id } => (Val::Null, Val::I(account_id), Val::I(site_id)),
    };
    // Expired sessions go as new ones come: the table never grows unbounded.
    let now = now();
    tx.execute("DELETE FROM web_sessions WHERE expires_at < $1", &[Val::T(&now)])?;
    tx.execute(
        "INSERT INTO web_sessions (id_hash, admin_id, account_id, site_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[Val::T(id_hash), admin, account, site, Val::T(&now), Val::T(expires_at)],
    )?;
    Ok(())
}

/// The owner of the unexpired session with this id hash.
pub fn session(tx: &mut Tx<'_>, id_hash: &str) -> Result<Option<SessionOwner>> {
    tx.query_opt(
        "SELECT admin_id, account_id, site_id FROM web_sessions WHERE id_hash = $1 AND expires_at > $2",
        &[Val::T(id_hash), Val::T(&now())],
        |r| {
            Ok(match r.opt_int(0)? {
                Some(admin) => SessionOwner::Admin(admin),
                None => SessionOwner::Customer { account_id: r.int(1)?, site_id: r.int(2)? },
            })
        },
    )
}

pub fn delete_session(tx: &mut Tx<'_>, id_hash: &str) -> Result<()> {
    tx.execute("DELETE FROM web_sessions WHERE id_hash = $1", &[Val::T(id_hash)])?;
    Ok(())
}

pub fn create_token(tx: &mut Tx<'_>, admin_id: i64, name: &str, token_hash: &str) -> Result<i64> {
    tx.execute(
        "INSERT INTO api_tokens (admin_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        &[Val::I(admin_id), Val::T(name), Val::T(token_hash), Val::T(&now())],
    )?;
    tx.query_opt("SELECT id FROM api_tokens WHERE token_hash = $1", &[Val::T(token_hash)], |r| r.int(0))?
        .ok_or_else(|| StoreError::NotFound("the new API token vanished".to_owned()))
}

pub fn tokens(tx: &mut Tx<'_>, admin_id: i64) -> Result<Vec<TokenRow>> {
    tx.query_all(
        "SELECT id, name, created_at, revoked_at FROM api_tokens WHERE admin_id = $1 ORDER BY id",
        &[Val::I(admin_id)],
        |r| {
            Ok(TokenRow {
                id: r.int(0)?,
                name: r.text(1)?.to_owned(),
                created_at: r.text(2)?.to_owned(),
                revoked_at: r.opt_text(3)?.map(str::to_owned),
            })
        },
    )
}

/// Revokes the admin's token `id`; false when it has no such live token.
pub fn revoke_token(tx: &mut Tx<'_>, admin_id: i64, id: i64) -> Result<bool> {
    let changed = tx.execute(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND admin_id = $3 AND revoked_at IS NULL",
        &[Val::T(&now()), Val::I(id), Val::I(admin_id)],
    )?;
    Ok(changed > 0)
}

/// The admin owning the live token with this hash.
pub fn token_admin(tx: &mut Tx<'_>, token_hash: &str) -> Result<Option<i64>> {
    tx.query_opt(
        "SELECT admin_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        &[Val::T(token_hash)],
        |r| r.int(0),
    )
}

/// A customer account that may sign in to `site`'s help center with this
/// email: the unmerged portal-only account of the site, or an Atlassian
/// account that is a user of the site. Inactive accounts cannot sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCredentials {
    pub account_id: i64,
    pub atlassian: bool,
    pub password_hash: Option<String>,
}

pub fn customer_credentials(tx: &mut Tx<'_>, site_id: i64, email_key: &str) -> Result<Vec<CustomerCredentials>> {
    tx.query_all(
        "SELECT a.id, a.kind, a.password_hash FROM accounts a
         WHERE a.site_id = $1 AND a.email_key = $2 AND a.merged_into IS NULL AND a.active
         UNION ALL
         SELECT a.id, a.kind, a.password_hash FROM accounts a
         JOIN site_users su ON su.account_id = a.id AND su.site_id = $1
         WHERE a.site_id IS NULL AND a.email_key = $2 AND a.active",
        &[Val::I(site_id), Val::T(email_key)],
        |r| {
            Ok(CustomerCredentials {
                account_id: r.int(0)?,
                atlassian: r.text(1)? == "atlassian",
                password_hash: r.opt_text(2)?.map(str::to_owned),
            })
        },
    )
}

/// Sets the password (hash) of an account: a portal-only account's site
/// password, or an Atlassian account's own.
pub fn set_account_password(tx: &mut Tx<'_>, account_id: i64, password_hash: &str) -> Result<()> {
    tx.execute("UPDATE accounts SET password_hash = $1 WHERE id = $2", &[Val::T(password_hash), Val::I(account_id)])?;
    // A new password ends every sign-in made with the old one.
    tx.execute("DELETE FROM web_sessions WHERE account_id = $1", &[Val::I(account_id)])?;
    Ok(())
}
