//! Site snapshots (SPEC §7): a folder of CSV files that `site import` reads
//! and `site export` writes, and the demo generator that produces them.

pub mod demo;
mod export;
mod import;
mod index;

pub use export::export_site;
pub use import::{ImportError, ImportSummary, Problem, import_into, import_site};

/// The snapshot files, in the order an import reads them (each file refers
/// only to files before it), with their exact headers as export writes
/// them. Import also takes `groups.csv` without its `state` column (every
/// group it creates is then active).
pub const FILES: [(&str, &[&str]); 9] = [
    ("accounts.csv", &["account_id", "account_type", "email", "display_name", "active", "email_verified"]),
    ("projects.csv", &["project_key", "name"]),
    ("groups.csv", &["group_name", "account_id", "state"]),
    ("customer_roles.csv", &["project_key", "group_name"]),
    ("organizations.csv", &["organization", "account_id"]),
    ("organization_projects.csv", &["organization", "project_key"]),
    ("customers.csv", &["project_key", "account_id"]),
    (
        "requests.csv",
        &[
            "request_key",
            "project_key",
            "summary",
            "status",
            "created",
            "reporter_id",
            "participant_ids",
            "organization",
        ],
    ),
    ("comments.csv", &["request_key", "author_id", "created", "body"]),
];

/// Progress of long work, for a bar on a terminal or a line in a log.
pub trait Progress {
    /// `rows` rows of `file` done so far.
    fn rows(&mut self, file: &str, rows: u64);
    /// `file` is complete with `rows` rows.
    fn file_done(&mut self, file: &str, rows: u64);
}

/// Progress that goes nowhere (tests, library callers).
pub struct Quiet;

impl Progress for Quiet {
    fn rows(&mut self, _: &str, _: u64) {}
    fn file_done(&mut self, _: &str, _: u64) {}
}
