//! The copy engine (SPEC §2-§4): load the source and destination views,
//! decide every outcome with the pure matrix of `ferry_core::plan`, persist
//! those decisions (the write-ahead plan), apply them in chunks that each
//! commit their writes with their progress, and write the reports.
//!
//! Both sites live in one ferry database. Accounts and memberships move as
//! set-based SQL driven by the persisted decisions; requests, participants
//! and comments stream through ferry in id order, mapped through those
//! decisions held in memory, and are written with the bulk writer (`COPY`
//! on PostgreSQL).

mod apply;
mod load;
mod report;
mod rollback;

pub use apply::{
    RunStatus, check_can_start, check_resumable, is_claimed, list_runs, resume, resume_reporting, run, run_report,
    run_reporting, set_plan_part, status,
};
pub use ferry_core::planner::{Conflict, CopyOptions, CopyPlan, OrganizationMode, PlannedCustomer, Scope};
pub use load::{
    PlanParts, check_conflicts, plan_copy, plan_copy_reading_whole_destination, plan_in_parts, planned_in_parts,
    validate_options,
};
pub use report::{
    LineTotals, ReportData, ReportKind, UNCERTAIN_REASON, check_reporting, line_of, prepare_report_dir,
    write_plan_report, write_report, write_run_report,
};
pub use rollback::{RollbackSummary, rollback, rollback_blockers};

use ferry_store::StoreError;

/// Errors of the copy engine, with messages written for the admin.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The request cannot be carried out as given (unknown project, same
    /// site twice…). Nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The plan has blocking conflicts; nothing was written.
    #[error("{} blocking conflict(s); nothing was copied:\n{}", .0.len(), .0.iter().map(|c| format!("  {}: {} ({})", c.kind, c.problem, c.resolution)).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<Conflict>),
    /// Later changes depend on the run; nothing was rolled back.
    #[error("run {run} cannot be rolled back:\n{}", .blockers.iter().map(|b| format!("  {b}")).collect::<Vec<_>>().join("\n"))]
    RollbackRefused { run: i64, blockers: Vec<String> },
    /// Another process is applying the run now (PostgreSQL: it holds the
    /// run's lock); nothing was done.
    #[error("copy run {0} is being applied by another ferry process; wait for it to finish (`ferry copy status {0}`)")]
    Claimed(i64),
    /// The run is finished (done, failed, blocked or rolled back): resume
    /// has nothing to do and changes nothing.
    #[error("{message}")]
    NotResumable { run: i64, state: ferry_core::run::RunState, message: String },
    /// Another run into the same destination site is unfinished; a second
    /// one would plan against what the first has not written yet. Nothing
    /// was written.
    #[error("{}", ferry_store::sites::unfinished_run_message(*.run, .site, &format!("starting another run into {}", .site)))]
    DestinationBusy { run: i64, site: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write report {path}: {reason}")]
    Report { path: String, reason: String },
}

impl From<ferry_core::planner::PlanError> for CopyError {
    fn from(e: ferry_core::planner::PlanError) -> CopyError {
        use ferry_core::planner::PlanError;
        match e {
            PlanError::Invalid(m) => CopyError::Invalid(m),
            PlanError::NotFound(m) => CopyError::Store(StoreError::NotFound(m)),
            PlanError::Conflict(m) => CopyError::Store(StoreError::Conflict(m)),
        }
    }
}

/// Progress of a run, for a bar on a terminal or a line in a log.
pub trait Progress {
    /// `done` of `total` units of `phase` complete.
    fn step(&mut self, phase: &str, done: u64, total: u64);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _: &str, _: u64, _: u64) {}
}
