//! `site pull` (SPEC §8), shared by the CLI and the API: credentials and
//! options into a [`PullConfig`], the pull into a snapshot folder, then the
//! snapshot into the site with `site import`'s all-or-nothing semantics.

use std::path::Path;

use ferry_jira::{AdminApi, Limits, PullConfig, PullProgress, PullReport, PulledSite, Secret};
use ferry_snapshot::{ImportError, ImportSummary, Progress};
use ferry_store::{Store, sites};

use crate::{Code, Error};

/// The organization admin API's default address.
pub const DEFAULT_ADMIN_API: &str = "https://api.atlassian.com";

/// What to pull, as the command line or the API body says it.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `--jira`: `https://<name>.atlassian.net`.
    pub jira: String,
    /// `--projects`; empty means every service desk.
    pub projects: Vec<String>,
    /// `--org-id`, with the admin key.
    pub org_id: Option<String>,
    /// `--admin-api`; `None` is [`DEFAULT_ADMIN_API`].
    pub admin_api: Option<String>,
}

/// The secrets of a pull: from the environment (CLI) or the request body
/// (API); never stored, never logged (`Secret`'s `Debug` is redacted).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub email: String,
    pub token: Secret,
    pub admin_key: Option<Secret>,
}

impl Credentials {
    /// `JIRA_EMAIL`, `JIRA_API_TOKEN` and optionally `ATLASSIAN_ADMIN_API_KEY`.
    pub fn from_env() -> Result<Credentials, Error> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let (Some(email), Some(token)) = (var("JIRA_EMAIL"), var("JIRA_API_TOKEN")) else {
            return Err(Error::invalid(
                "set JIRA_EMAIL (the Atlassian account's email) and JIRA_API_TOKEN (an API token from \
                 https://id.atlassian.com/manage-profile/security/api-tokens) in the environment",
            ));
        };
        Ok(Credentials { email, token: Secret::new(token), admin_key: var("ATLASSIAN_ADMIN_API_KEY").map(Secret::new) })
    }
}

/// The pull's configuration; refuses an admin key without an organization
/// id and the other way round, and project keys that are no keys.
pub fn config(options: &PullOptions, credentials: Credentials) -> Result<PullConfig, Error> {
    let admin = match (credentials.admin_key, options.org_id.as_deref().map(str::trim).filter(|s| !s.is_empty())) {
        (Some(key), Some(org_id)) => Some(AdminApi {
            url: options.admin_api.clone().unwrap_or_else(|| DEFAULT_ADMIN_API.to_owned()),
            org_id: org_id.to_owned(),
            key,
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::invalid(
                "ATLASSIAN_ADMIN_API_KEY is set but --org-id is not: the organization admin API needs the organization's id",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::invalid("--org-id needs ATLASSIAN_ADMIN_API_KEY (an organization admin API key)"));
        }
    };
    let mut projects = Vec::new();
    for key in &options.projects {
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::invalid(format!("--projects: {key:?} is not a project key")));
        }
        projects.push(key.to_owned());
    }
    Ok(PullConfig {
        site_url: options.jira.clone(),
        email: credentials.email,
        token: credentials.token,
        admin,
        projects: (!projects.is_empty()).then_some(projects),
        limits: Limits::default(),
    })
}

/// Refuses a pull into a site that does not exist, before any request.
pub fn check_site(store: &mut Store, site: &str) -> Result<(), Error> {
    store.read(|tx| sites::site(tx, site))?;
    Ok(())
}

/// Reads the site over the network; nothing is written yet.
pub async fn fetch(config: &PullConfig, progress: &dyn PullProgress) -> Result<PulledSite, Error> {
    Ok(ferry_jira::pull_site(config, progress).await?)
}

/// Writes a pulled site's snapshot into folder `dir`.
pub fn write(pulled: PulledSite, dir: &Path) -> Result<PullReport, Error> {
    Ok(pulled.write(dir)?)
}

/// Imports a pulled snapshot into `site`: all of it or nothing. A snapshot
/// the site refuses (its data contradicts what ferry holds) names each
/// problem.
pub fn import(store: &mut Store, site: &str, dir: &Path, progress: &mut dyn Progress) -> Result<ImportSummary, Error> {
    match ferry_snapshot::import_site(store, site, dir, progress) {
        Ok(summary) => Ok(summary),
        Err(ImportError::Invalid(problems)) => Err(Error::new(
            Code::Invalid,
            format!("the pulled site has {} problem(s) ferry cannot import; nothing was imported", problems.len()),
        )
        .with_details(problems.iter().map(ToString::to_string).collect())),
        Err(e) => Err(e.into()),
    }
}

/// What a pull tells the admin besides the row counts, one line each.
pub fn report_lines(report: &PullReport) -> Vec<String> {
    let mut lines = Vec::new();
    if report.verification_checked {
        lines.push(format!(
            "email verification: read from the organization admin API ({} Atlassian account(s) not managed by the organization count as verified{})",
            report.unmanaged.len(),
            if report.unmanaged.is_empty() { String::new() } else { format!(": {}", report.unmanaged.join(", ")) }
        ));
    } else {
        lines.push(
            "email verification: not read (no ATLASSIAN_ADMIN_API_KEY and --org-id): every Atlassian account counts as verified"
                .to_owned(),
        );
    }
    lines.push(format!(
        "hidden emails: {} account(s) whose email the site hides; they are never matched by email{}",
        report.hidden_emails.len(),
        if report.hidden_emails.is_empty() { "" } else { ":" }
    ));
    for hidden in &report.hidden_emails {
        lines.push(format!("  {} ({}) {}", hidden.account_id, hidden.account_type, hidden.display_name));
    }
    if !report.skipped_accounts.is_empty() || report.skipped_comments > 0 || report.skipped_requests > 0 {
        lines.push(format!(
            "left out: {} account(s) of other types (apps) or deleted, {} public comment(s) by them or on requests left out, {} request(s) reported by them or by no one",
            report.skipped_accounts.len(),
            report.skipped_comments,
            report.skipped_requests
        ));
    }
    lines.push(
        "customer access on desks open to anyone cannot be read through Atlassian's APIs: access is modelled from the customer lists and the Service Desk Customers role"
            .to_owned(),
    );
    lines.push(format!("{} HTTP request(s), {} of them retries", report.requests, report.retries));
    lines
}
