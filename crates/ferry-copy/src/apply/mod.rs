//! `copy run`, `resume`, `status` and `rollback`.
//!
//! A run first persists its decisions (the write-ahead plan) in one
//! transaction, then applies them in phases; every chunk commits its writes,
//! its links and its cursor together. Resume continues from the cursor, so
//! an interrupted run ends exactly as an uninterrupted one would.
//!
//! One concern per file: `lifecycle` (start, resume, refusals, failures,
//! plan-then-apply), `claims` (which process applies a run), `decisions`
//! (persisting the plan), `read_ahead` (the phase loop and SQLite's second
//! connections), `phases` (accounts and structure chunks, the run's maps),
//! `requests` (request chunks), `status` (runs and their reports).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_core::model::{AccountType, GroupState};
use ferry_core::plan::{Outcome, Problem, Target, TypesHeld};
use ferry_store::bulk::{BulkWriter, OnConflict, RowBatch, TableSpec, write_batch};
use ferry_store::sites::{self, Site};
use ferry_store::{Backend, IdAllocator, Store, StoreError, Tx, Val, accounts, joined};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::load::{PlanParts, plan_in_parts, planned_in_parts, validate_options};
use crate::report::{
    CustomerLine, LineRef, LineTotals, LineWriter, ReportData, ReportKind, discard_partial_lines, write_report,
};
use crate::{CopyError, Progress};
use ferry_core::model::now;
use ferry_core::planner::{CopyOptions, CopyPlan};
use ferry_core::run::{Phase, RunState};

mod claims;
mod decisions;
mod lifecycle;
mod phases;
mod read_ahead;
mod requests;
mod status;

// Each part sees the others' items (and these imports) through
// `use super::*`.
#[allow(unused_imports)]
use {claims::*, decisions::*, lifecycle::*, phases::*, read_ahead::*, requests::*, status::*};

pub use claims::is_claimed;
pub(crate) use decisions::plan_parts;
pub use decisions::set_plan_part;
pub use lifecycle::{check_can_start, check_resumable, resume, resume_reporting, run, run_reporting};
pub use status::{RunStatus, list_runs, run_report, status, write_run_report};

const ACCOUNT_CHUNK: i64 = 200_000;
const REQUEST_CHUNK: i64 = 200_000;

/// Write-ahead log pages between checkpoints while a run applies (80 MB),
/// when no second connection checkpoints beside it.
const CHECKPOINT_PAGES: u32 = 20_000;
/// With one: the log the writer lets grow before it checkpoints itself, in
/// case the other falls behind (800 MB).
const CHECKPOINT_PAGES_BESIDE: u32 = 200_000;
/// How often the second connection moves the log into the file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Rows per chunk: each chunk is one transaction and one resume point.
/// `FERRY_COPY_CHUNK` overrides the defaults (smaller chunks: more resume
/// points; the crash tests use it).
fn chunk(default: i64) -> i64 {
    std::env::var("FERRY_COPY_CHUNK").ok().and_then(|v| v.parse().ok()).filter(|n: &i64| *n > 0).unwrap_or(default)
}

struct RunRow {
    source: Site,
    destination: Site,
    options: CopyOptions,
    state: RunState,
    phase: Phase,
    cursor: i64,
    source_request_limit: i64,
    group_id: Option<i64>,
    /// Why the run failed (state `failed`).
    error: Option<String>,
}

fn load_run(tx: &mut Tx<'_>, run_id: i64) -> Result<RunRow, CopyError> {
    let row = tx.query_opt(
        "SELECT r.options, r.state, r.phase, r.cursor, r.source_request_limit, r.group_id, s.slug AS source,
                d.slug AS destination, r.error
         FROM copy_runs r JOIN sites s ON s.id = r.source_site_id JOIN sites d ON d.id = r.destination_site_id
         WHERE r.id = $1",
        &[Val::I(run_id)],
        |r| {
            Ok((
                r.text("options")?.to_owned(),
                r.parsed("state", "run state", RunState::parse)?,
                r.coded("phase", "phase", Phase::from_code)?,
                r.int("cursor")?,
                r.int("source_request_limit")?,
                r.opt_int("group_id")?,
                r.text("source")?.to_owned(),
                r.text("destination")?.to_owned(),
                r.opt_text("error")?.map(str::to_owned),
            ))
        },
    )?;
    let Some((options, state, phase, cursor, source_request_limit, group_id, from, to, error)) = row else {
        return Err(StoreError::NotFound(format!("no copy run {run_id}")).into());
    };
    let options: CopyOptions = serde_json::from_str(&options)
        .map_err(|e| CopyError::Invalid(format!("run {run_id} has unreadable options: {e}")))?;
    Ok(RunRow {
        source: sites::site(tx, &from)?,
        destination: sites::site(tx, &to)?,
        options,
        state,
        phase,
        cursor,
        source_request_limit,
        group_id,
        error,
    })
}

fn set_cursor(tx: &mut Tx<'_>, run_id: i64, phase: Phase, cursor: i64) -> Result<(), StoreError> {
    if phase == Phase::Done {
        tx.execute(
            "UPDATE copy_runs SET phase = $2, cursor = $3, state = $5, finished_at = $4 WHERE id = $1",
            &[Val::I(run_id), Val::I(phase.code()), Val::I(cursor), Val::T(&now()), Val::T(RunState::Done.as_str())],
        )?;
    } else {
        tx.execute(
            "UPDATE copy_runs SET phase = $2, cursor = $3 WHERE id = $1",
            &[Val::I(run_id), Val::I(phase.code()), Val::I(cursor)],
        )?;
    }
    Ok(())
}
