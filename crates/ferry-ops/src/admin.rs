//! Setting up who may sign in: org admins (from the command line) and the
//! demo (`ferry serve --demo`).

use ferry_core::email::Email;
use ferry_store::{Store, web};

use crate::error::{Error, Result};
use crate::secrets::{generate_password, hash_password};

/// Creates admin `email` of organization `org` (or, when the admin exists,
/// adds the organization and sets a new password) with a generated
/// password, which is returned: the store keeps only its argon2id hash.
pub fn create_admin(store: &mut Store, org: &str, email: &str) -> Result<String> {
    let parsed = Email::parse(email).map_err(|e| Error::invalid(e.to_string()))?;
    let password = generate_password()?;
    let hash = hash_password(&password)?;
    let actor = store.actor().to_owned();
    store.write(|tx| {
        web::upsert_admin(tx, org, parsed.original(), parsed.key(), &hash)?;
        let action = ferry_store::audit::Action {
            actor: &actor,
            action: "admin.create",
            site_id: None,
            target: parsed.original(),
            before: None,
            after: Some(&serde_json::json!({ "organization": org }).to_string()),
        };
        ferry_store::audit::record(tx, action)
    })?;
    Ok(password)
}

/// The demo admin's email.
pub const DEMO_ADMIN: &str = "admin@demo.example";

/// What `serve --demo` set up.
pub struct DemoSignIn {
    pub created_data: bool,
    pub email: &'static str,
    pub password: String,
    /// A customer the copy affects (a portal-only source customer with a
    /// request, matched to a verified Atlassian account on the destination:
    /// SPEC §3 case 3) and a help-center password for it.
    pub customer: Option<(String, String)>,
}

/// Creates the demo data (`customers` source customers) unless the demo
/// organization exists, and gives the demo admin a fresh password.
pub fn prepare_demo(store: &mut Store, customers: u64) -> Result<DemoSignIn> {
    let exists = store.read(|tx| ferry_store::sites::org_id(tx, ferry_snapshot::demo::ORG))?.is_some();
    if !exists {
        ferry_snapshot::demo::load_demo(store, customers, 1, &mut ferry_snapshot::Quiet).map_err(|e| match e {
            ferry_snapshot::ImportError::Store(e) => e.into(),
            // The demo's own data: a bad row is ferry's fault, not the caller's.
            e => Error::internal(e.to_string()),
        })?;
    }
    let password = create_admin(store, ferry_snapshot::demo::ORG, DEMO_ADMIN)?;
    let affected = store.read(|tx| {
        tx.query_opt(
            "SELECT b.email FROM accounts a
             JOIN sites s ON s.id = a.site_id AND s.slug = $1
             JOIN requests r ON r.reporter_id = a.id
             JOIN accounts b ON b.site_id IS NULL AND b.email_key = a.email_key AND b.email_verified AND b.active
             JOIN site_users su ON su.account_id = b.id AND su.site_id = (SELECT id FROM sites WHERE slug = $2)
             WHERE a.kind = 'customer' AND a.active AND a.email NOT LIKE '=%' ORDER BY a.id LIMIT 1",
            &[
                ferry_store::Val::T(ferry_snapshot::demo::SOURCE_SITE),
                ferry_store::Val::T(ferry_snapshot::demo::DESTINATION_SITE),
            ],
            |r| Ok(r.text(0)?.to_owned()),
        )
    })?;
    let customer = match affected {
        Some(email) => {
            let atlassian = Some(ferry_core::model::AccountType::Atlassian);
            let password = set_customer_password(store, ferry_snapshot::demo::DESTINATION_SITE, &email, atlassian)?;
            Some((email, password))
        }
        None => None,
    };
    Ok(DemoSignIn { created_data: !exists, email: DEMO_ADMIN, password, customer })
}

/// Gives the customer signing in to `site` with `email` (the Atlassian
/// account when the site has both, unless `prefer` says otherwise) a new
/// generated help-center password, which is returned.
pub fn set_customer_password(
    store: &mut Store,
    site: &str,
    email: &str,
    prefer: Option<ferry_core::model::AccountType>,
) -> Result<String> {
    let parsed = Email::parse(email).map_err(|e| Error::invalid(e.to_string()))?;
    let password = generate_password()?;
    let hash = hash_password(&password)?;
    let actor = store.actor().to_owned();
    store.write(|tx| {
        let found = ferry_store::sites::site(tx, site)?;
        let account = crate::access::find_customer(tx, (found.id, &found.slug), &parsed, prefer)?;
        web::set_account_password(tx, account.id, &hash)?;
        let after = serde_json::json!({ "account_type": account.account_type.cli_value() }).to_string();
        let action = ferry_store::audit::Action {
            actor: &actor,
            action: "customer.password",
            site_id: Some(found.id),
            target: parsed.original(),
            before: None,
            after: Some(&after),
        };
        ferry_store::audit::record(tx, action)
    })?;
    Ok(password)
}
