//! Organizations and sites.

use crate::conn::{Tx, Val};
use crate::{Result, StoreError};

/// [`ferry_core::model::validate_slug`], as a store error.
fn validate_slug(what: &str, value: &str) -> Result<()> {
    ferry_core::model::validate_slug(what, value).map_err(StoreError::Invalid)
}

pub use ferry_core::model::Site;

pub fn create_org(tx: &mut Tx<'_>, name: &str) -> Result<i64> {
    validate_slug("organization", name)?;
    if org_id(tx, name)?.is_some() {
        return Err(StoreError::Conflict(format!("organization {name:?} already exists")));
    }
    let now = ferry_core::model::now();
    tx.query_opt(
        "INSERT INTO orgs (name, created_at) VALUES ($1, $2) RETURNING id",
        &[Val::T(name), Val::T(&now)],
        |r| r.int(0),
    )?
    .ok_or_else(|| StoreError::no_id_returned("orgs"))
}

/// [`create_org`], recorded in the audit log as `actor`'s.
pub fn create_org_audited(tx: &mut Tx<'_>, name: &str, actor: &str) -> Result<i64> {
    let id = create_org(tx, name)?;
    let action =
        crate::audit::Action { actor, action: "org.create", site_id: None, target: name, before: None, after: None };
    crate::audit::record(tx, action)?;
    Ok(id)
}

/// [`create_site`], recorded in the audit log as `actor`'s.
pub fn create_site_audited(tx: &mut Tx<'_>, org: &str, slug: &str, actor: &str) -> Result<Site> {
    let created = create_site(tx, org, slug)?;
    let after = serde_json::json!({ "organization": org }).to_string();
    let action = crate::audit::Action {
        actor,
        action: "site.create",
        site_id: Some(created.id),
        target: slug,
        before: None,
        after: Some(&after),
    };
    crate::audit::record(tx, action)?;
    Ok(created)
}

/// Every site, by slug.
pub fn list_sites(tx: &mut Tx<'_>) -> Result<Vec<Site>> {
    tx.query_all("SELECT s.id, s.slug, o.name FROM sites s JOIN orgs o ON o.id = s.org_id ORDER BY s.slug", &[], |r| {
        Ok(Site { id: r.int(0)?, slug: r.text(1)?.to_owned(), org: r.text(2)?.to_owned() })
    })
}

pub fn org_id(tx: &mut Tx<'_>, name: &str) -> Result<Option<i64>> {
    tx.query_opt("SELECT id FROM orgs WHERE name = $1", &[Val::T(name)], |r| r.int(0))
}

pub fn create_site(tx: &mut Tx<'_>, org: &str, slug: &str) -> Result<Site> {
    validate_slug("site", slug)?;
    let org_id = org_id(tx, org)?.ok_or_else(|| {
        StoreError::NotFound(format!("no organization named {org:?}; create it with `ferry org create {org}`"))
    })?;
    // Site names are unique in the cloud, so that one is taken is said;
    // which organization holds it is not (it may be another's).
    if find_site(tx, slug)?.is_some() {
        return Err(StoreError::Conflict(format!("site name {slug:?} is already taken; choose another")));
    }
    let now = ferry_core::model::now();
    tx.execute(
        "INSERT INTO sites (org_id, slug, created_at) VALUES ($1, $2, $3)",
        &[Val::I(org_id), Val::T(slug), Val::T(&now)],
    )?;
    site(tx, slug)
}

pub fn find_site(tx: &mut Tx<'_>, slug: &str) -> Result<Option<Site>> {
    tx.query_opt(
        "SELECT s.id, s.slug, o.name FROM sites s JOIN orgs o ON o.id = s.org_id WHERE s.slug = $1",
        &[Val::T(slug)],
        |r| Ok(Site { id: r.int(0)?, slug: r.text(1)?.to_owned(), org: r.text(2)?.to_owned() }),
    )
}

/// The site named `slug`, or an error that says how to create it.
pub fn site(tx: &mut Tx<'_>, slug: &str) -> Result<Site> {
    find_site(tx, slug)?.ok_or_else(|| {
        StoreError::NotFound(format!("no site named {slug:?}; create it with `ferry site create <org> {slug}`"))
    })
}

/// The first copy run into `site_id` that is unfinished (`planning` or
/// `applying`), if any. While one is, the site takes no other run, import
/// or upgrade: the run maps its customers onto destination accounts it
/// planned, and would write onto whatever those writes changed.
pub fn unfinished_run_into(tx: &mut Tx<'_>, site_id: i64) -> Result<Option<i64>> {
    tx.query_opt(
        &format!(
            "SELECT MIN(id) FROM copy_runs WHERE destination_site_id = $1 AND state IN ({})",
            ferry_core::run::RunState::sql_list(&[
                ferry_core::run::RunState::Planning,
                ferry_core::run::RunState::Applying
            ])
        ),
        &[Val::I(site_id)],
        |r| r.opt_int(0),
    )
    .map(Option::flatten)
}

/// The message for work refused because run `run` into `site` is
/// unfinished.
pub fn unfinished_run_message(run: i64, site: &str, work: &str) -> String {
    format!(
        "copy run {run} into site {site} is unfinished; finish it (`ferry copy resume {run}`) or roll it back \
         (`ferry copy rollback {run}`) before {work}"
    )
}
