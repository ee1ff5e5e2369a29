//! Pulls a real Jira Service Management Cloud site over its public REST
//! APIs into a site snapshot (SPEC §8): the same nine files `site import`
//! reads (SPEC §7).
//!
//! - [`client`]: one HTTP client that behaves well on a real tenant: each
//!   API's own paging, `429`/`503` honoured, bounded retries with jittered
//!   backoff, a bound on requests in flight, time-outs, errors that name the
//!   path and status but never a credential.
//! - [`pull`]: which endpoint each part of §7 comes from, and the snapshot
//!   it writes.

pub mod client;
mod pull;

use std::fmt;
use std::time::Duration;

pub use pull::{PullReport, PulledSite, pull_site, pull_snapshot};
pub use reqwest::Url;

/// A credential: never printed, never logged (its `Debug` is redacted).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The organization admin API, for email verification and hidden emails.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// Default `https://api.atlassian.com`.
    pub url: String,
    pub org_id: String,
    pub key: Secret,
}

/// Where and how to pull.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// `https://<name>.atlassian.net`.
    pub site_url: String,
    pub email: String,
    pub token: Secret,
    pub admin: Option<AdminApi>,
    /// Project keys to pull (`--projects`); `None` pulls every service desk.
    pub projects: Option<Vec<String>>,
    pub limits: Limits,
}

/// How hard the client may push a tenant.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight at once.
    pub in_flight: usize,
    /// Retries of one request after `429`, `503` or a network failure.
    pub retries: u32,
    /// Time-out of one request.
    pub timeout: Duration,
    /// The longest wait between two tries (a `Retry-After` above it is
    /// waited for no longer than this).
    pub max_wait: Duration,
    /// Items asked per page.
    pub page_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            in_flight: 8,
            retries: 6,
            timeout: Duration::from_secs(30),
            max_wait: Duration::from_secs(60),
            page_size: 50,
        }
    }
}

/// Why a pull stopped. Nothing is written when a pull stops.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The site answered with an error status.
    #[error("{method} {path} answered {status}{}", detail(.message))]
    Status { method: &'static str, path: String, status: u16, message: String },
    /// The site could not be reached, or timed out, after every retry.
    #[error("{method} {path} failed: {reason}")]
    Network { method: &'static str, path: String, reason: String },
    /// The site answered something that is not what its API documents.
    #[error("{path}: unexpected answer: {reason}")]
    Unexpected { path: String, reason: String },
    /// The command itself is wrong (a URL, a project key).
    #[error("{0}")]
    Config(String),
    /// Writing the snapshot failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn detail(message: &str) -> String {
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

/// Progress of a pull: which step, and how many items it has met so far.
pub trait PullProgress: Send + Sync {
    fn step(&self, step: &str, items: u64);
}

/// Progress that goes nowhere.
pub struct Silent;

impl PullProgress for Silent {
    fn step(&self, _: &str, _: u64) {}
}
