//! Remediation after a copy (SPEC §5): reviewing the imported groups a run
//! left awaiting review, and upgrading portal-only accounts to the Atlassian
//! account with the same email. Every change is audited in the transaction
//! that makes it.

mod attention;
mod groups;
mod upgrade;

pub use attention::{RowState, row_states};
pub use groups::{GroupDecision, GroupReview, decide_group, list_groups, pending_groups};
pub use upgrade::{Selection, UpgradeLine, UpgradeReport, UpgradeStatus, upgrade};

use ferry_store::StoreError;

/// Errors of remediation, with messages written for the admin.
#[derive(Debug, thiserror::Error)]
pub enum RemedyError {
    /// The request cannot be carried out as given; nothing was written.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Progress of a long remediation (bulk upgrades).
pub trait Progress {
    fn step(&mut self, done: u64, total: u64);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: u64, _: u64) {}
}
