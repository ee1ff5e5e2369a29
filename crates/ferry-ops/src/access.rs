//! What a customer can view (SPEC §1), asked by email: `ferry access`, the
//! API's `GET /sites/{site}/access` and the tests ask it here.

use ferry_core::email::Email;
use ferry_core::model::AccountType;
use ferry_store::accounts::{self, SiteAccount};
use ferry_store::{Store, StoreError, Tx, sites};

use crate::error::{Error, Result};

/// The account of site `site_id` (spelled `site`) that signs in with
/// `email`: the Atlassian account when the site has both, unless `prefer`
/// says otherwise. None is a not-found error that names what was looked for.
pub fn find_customer(
    tx: &mut Tx<'_>,
    (site_id, site): (i64, &str),
    email: &Email,
    prefer: Option<AccountType>,
) -> Result<SiteAccount, StoreError> {
    accounts::find_by_email(tx, site_id, email.key(), prefer)?.ok_or_else(|| {
        let kind = prefer.map_or("customer", |t| match t {
            AccountType::PortalOnly => "portal-only account",
            AccountType::Atlassian => "Atlassian account",
        });
        StoreError::NotFound(format!("no {kind} with email {} on site {site}", email.original()))
    })
}

/// The keys of the requests on `site` that the customer signing in with
/// `email` can view, sorted. An email that is not valid is bad input; one
/// no account of the site has is not found (never "no requests").
pub fn customer_access(store: &mut Store, site: &str, email: &str, prefer: Option<AccountType>) -> Result<Vec<String>> {
    let email = Email::parse(email).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(store.read(|tx| {
        let found = sites::site(tx, site)?;
        let account = find_customer(tx, (found.id, &found.slug), &email, prefer)?;
        ferry_store::access::viewable_request_keys(tx, found.id, account)
    })?)
}
