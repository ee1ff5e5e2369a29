//! `copy run`, `resume`, `status` and `rollback`.
//!
//! A run first persists its decisions (the write-ahead plan) in one
//! transaction, then applies them in phases; every chunk commits its writes,
//! its links and its cursor together. Resume continues from the cursor, so
//! an interrupted run ends exactly as an uninterrupted one would.

use std::path::Path;
use std::time::Instant;

use ferry_core::model::{AccountType, GroupState};
use ferry_core::plan::{Outcome, Problem, Target, TypesHeld};
use ferry_store::bulk::{BulkWriter, OnConflict, RowBatch, TableSpec, write_batch};
use ferry_store::sites::{self, Site};
use ferry_store::{Backend, IdAllocator, Store, StoreError, Tx, Val, accounts, joined};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::load::{plan_copy_beside, validate_options};
use crate::report::{CustomerLine, ReportData, ReportKind, write_report};
use crate::{CopyError, Progress};
use ferry_core::planner::{CopyOptions, CopyPlan};
use ferry_core::run::{Phase, RunState};

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

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStatus {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub state: RunState,
    pub phase: Phase,
    pub cursor: i64,
    pub customers: u64,
    pub requests_copied: u64,
    pub group_name: Option<String>,
    /// The imported group's review state; `None` once rolled back or when
    /// none.
    pub group_state: Option<GroupState>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Why the run failed (state `failed`).
    pub error: Option<String>,
}

static COPY_CUSTOMERS: TableSpec = TableSpec {
    table: "copy_customers",
    columns: &[
        "run_id",
        "source_account_id",
        "destination_account_id",
        "matched_account_id",
        "outcome",
        "type_before",
        "type_after",
        "problems",
        "new_account_ext_id",
        "adds_site_user",
        "via_group",
    ],
    on_conflict: OnConflict::Fail,
};

static COPY_ORGANIZATIONS: TableSpec = TableSpec {
    table: "copy_organizations",
    columns: &["run_id", "source_organization_id", "destination_organization_id", "name", "created"],
    on_conflict: OnConflict::Fail,
};

use ferry_core::model::now;

/// [`validate_options`], and that no other run into the destination is
/// unfinished: everything `run` refuses before it starts (callers that
/// prepare something first, a report folder, check it too); the two sites.
pub fn check_can_start(tx: &mut Tx<'_>, options: &CopyOptions) -> Result<(Site, Site), CopyError> {
    let (source, destination) = validate_options(tx, options)?;
    match sites::unfinished_run_into(tx, destination.id)? {
        Some(run) => Err(CopyError::DestinationBusy { run, site: destination.slug }),
        None => Ok((source, destination)),
    }
}

/// Carries out a copy plan. `started` receives the run id before any work,
/// so a script can resume the run if this process dies. Options that are
/// wrong, and a destination another run is still copying into, are refused
/// before anything is written; a run whose planning or apply then fails
/// ends in state `failed` with its error.
pub fn run(
    store: &mut Store,
    options: &CopyOptions,
    progress: &mut dyn Progress,
    started: impl FnOnce(i64),
) -> Result<(i64, ReportData), CopyError> {
    let options_json = serde_json::to_string(options).map_err(|e| CopyError::Invalid(e.to_string()))?;
    let actor = store.actor().to_owned();
    let run_id = store.write(|tx| -> Result<i64, CopyError> {
        // Under the writers' lock: two runs started at once into one site
        // see each other.
        tx.lock_for_writing_ids()?;
        let (source, destination) = check_can_start(tx, options)?;
        let started_at = now();
        let run_id = tx
            .query_opt(
                "INSERT INTO copy_runs (source_site_id, destination_site_id, options, state, started_at)
                 VALUES ($1, $2, $3, $5, $4) RETURNING id",
                &[
                    Val::I(source.id),
                    Val::I(destination.id),
                    Val::T(&options_json),
                    Val::T(&started_at),
                    Val::T(RunState::Planning.as_str()),
                ],
                |r| r.int(0),
            )?
            .ok_or_else(|| StoreError::Decode {
                column: 0, reason: "INSERT … RETURNING id gave no row".to_owned()
            })?;
        let after =
            serde_json::json!({ "run": run_id, "state": RunState::Planning.as_str(), "options": options }).to_string();
        ferry_store::audit::record(
            tx,
            ferry_store::audit::Action {
                actor: &actor,
                action: "copy.run",
                site_id: Some(destination.id),
                target: &format!("run {run_id}"),
                before: None,
                after: Some(&after),
            },
        )?;
        Ok(run_id)
    })?;
    started(run_id);
    let data = continue_run(store, run_id, progress)?;
    Ok((run_id, data))
}

/// Whether run `run_id` can be resumed (it is planning or applying);
/// otherwise the reason, which changes nothing.
pub fn check_resumable(store: &mut Store, run_id: i64) -> Result<(), CopyError> {
    store.read(|tx| resumable(tx, run_id).map(|_| ()))
}

fn resumable(tx: &mut Tx<'_>, run_id: i64) -> Result<RunRow, CopyError> {
    let row = load_run(tx, run_id)?;
    match refusal(run_id, &row) {
        Some(refused) => Err(refused),
        None => Ok(row),
    }
}

/// Why run `run_id`, as `row` stands, cannot be resumed (or go on being
/// applied): `None` while it is planning or applying.
fn refusal(run_id: i64, row: &RunRow) -> Option<CopyError> {
    let message = match row.state {
        RunState::Planning | RunState::Applying => return None,
        RunState::Done => format!("run {run_id} is already done; there is nothing to resume and nothing was changed"),
        RunState::RolledBack => format!("run {run_id} was rolled back; start a new run (`ferry copy run`)"),
        RunState::Blocked => format!("run {run_id} was stopped by blocking conflicts; fix them and start a new run"),
        RunState::Failed => format!(
            "run {run_id} failed ({}); roll it back (`ferry copy rollback {run_id}`) and start a new run",
            row.error.as_deref().unwrap_or("no reason recorded")
        ),
    };
    Some(CopyError::NotResumable { run: run_id, state: row.state, message })
}

/// Finishes an interrupted run. A finished one (done, failed, blocked,
/// rolled back) is refused with the reason, and nothing is written.
pub fn resume(store: &mut Store, run_id: i64, progress: &mut dyn Progress) -> Result<ReportData, CopyError> {
    let actor = store.actor().to_owned();
    store.write(|tx| -> Result<(), CopyError> {
        let row = resumable(tx, run_id)?;
        let before =
            serde_json::json!({ "state": row.state.as_str(), "phase": row.phase.code(), "cursor": row.cursor })
                .to_string();
        ferry_store::audit::record(
            tx,
            ferry_store::audit::Action {
                actor: &actor,
                action: "copy.resume",
                site_id: Some(row.destination.id),
                target: &format!("run {run_id}"),
                before: Some(&before),
                after: None,
            },
        )?;
        Ok(())
    })?;
    continue_run(store, run_id, progress)
}

/// Records a failure of run `run_id` as its terminal state `failed` with
/// its error, so that a run that cannot go on never blocks other work; the
/// result is passed on. Only failures that would repeat on resume count:
/// the source changed under the run, a constraint the writes break. A
/// failure that may pass (a full disk, a busy or lost database, a
/// deadlock) leaves the run `applying` for `copy resume`, as a crash does.
/// Blocking conflicts (state `blocked`), another process's claim and a
/// rollback meanwhile are not failures of the run.
fn record_failure(
    store: &mut Store,
    run_id: i64,
    result: Result<ReportData, CopyError>,
) -> Result<ReportData, CopyError> {
    if let Err(e) = &result {
        let permanent = match e {
            CopyError::Conflicts(_) | CopyError::Claimed(_) | CopyError::NotResumable { .. } => false,
            CopyError::Store(store_error) => !store_error.is_transient(),
            _ => true,
        };
        if permanent {
            let error = e.to_string();
            tracing::warn!(run = run_id, "copy run failed: {error}");
            let _ = store.write(|tx| {
                let failed = tx.execute(
                    &format!(
                        "UPDATE copy_runs SET state = $4, error = $2, finished_at = $3
                         WHERE id = $1 AND state IN ({})",
                        RunState::sql_list(&[RunState::Planning, RunState::Applying])
                    ),
                    &[Val::I(run_id), Val::T(&error), Val::T(&now()), Val::T(RunState::Failed.as_str())],
                )?;
                // It may have stopped inside its accounts, which left the
                // destination's duplicates uncounted: no run will finish
                // them now.
                let destination =
                    tx.query_opt("SELECT destination_site_id FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| {
                        r.int(0)
                    })?;
                if let (1, Some(destination)) = (failed, destination) {
                    accounts::recount(tx, destination)?;
                }
                Ok::<_, StoreError>(())
            });
        }
    }
    result
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
        "SELECT r.options, r.state, r.phase, r.cursor, r.source_request_limit, r.group_id, s.slug, d.slug, r.error
         FROM copy_runs r JOIN sites s ON s.id = r.source_site_id JOIN sites d ON d.id = r.destination_site_id
         WHERE r.id = $1",
        &[Val::I(run_id)],
        |r| {
            Ok((
                r.text(0)?.to_owned(),
                r.parsed(1, "run state", RunState::parse)?,
                Phase::from_code(r.int(2)?).ok_or_else(|| StoreError::Decode {
                    column: 2,
                    reason: "copy_runs.phase is not a phase".to_owned(),
                })?,
                r.int(3)?,
                r.int(4)?,
                r.opt_int(5)?,
                r.text(6)?.to_owned(),
                r.text(7)?.to_owned(),
                r.opt_text(8)?.map(str::to_owned),
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

/// Any fixed number: PostgreSQL advisory locks from here on claim runs
/// (this plus the run's id), clear of the store's own locks.
const RUN_CLAIM: i64 = 0x6672_7279_0000_0000;

/// How long a run waits for another process's claim before giving up.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies run `run_id` while holding its claim: on PostgreSQL a session
/// advisory lock, so that of several processes (servers sharing a
/// database) one applies a run at a time; the lock goes with the
/// connection if the process dies. Chunks also re-check the run's cursor
/// under the writers' lock, so two appliers never apply a chunk twice.
fn continue_run(store: &mut Store, run_id: i64, progress: &mut dyn Progress) -> Result<ReportData, CopyError> {
    if store.backend() == Backend::Postgres {
        let params = [Val::I(RUN_CLAIM + run_id)];
        // A process killed a moment ago may still hold the claim until the
        // server notices its connection is gone: wait a while for it.
        let started = Instant::now();
        loop {
            let claimed = store
                .read(|tx| tx.query_opt("SELECT pg_try_advisory_lock($1)", &params, |r| r.bool(0)))?
                .unwrap_or(false);
            if claimed {
                break;
            }
            if started.elapsed() > CLAIM_WAIT {
                return Err(CopyError::Claimed(run_id));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let result = continue_claimed(store, run_id, progress);
        let released = store.read(|tx| tx.query_opt("SELECT pg_advisory_unlock($1)", &params, |r| r.bool(0)));
        return match (result, released) {
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e.into()),
            (Ok(data), Ok(_)) => Ok(data),
        };
    }
    // A second connection moves the write-ahead log into the database file
    // while this one goes on writing: the copying and syncing of each
    // checkpoint then costs the run no time of its own.
    let Some(mut checkpointer) = store.sqlite_sibling()? else {
        return store.with_checkpoints_every(CHECKPOINT_PAGES, |store| continue_claimed(store, run_id, progress));
    };
    store.with_checkpoints_every(CHECKPOINT_PAGES_BESIDE, |store| {
        std::thread::scope(|scope| {
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            scope.spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    // Busy (the writer checkpointing itself) is no harm:
                    // the next round catches up.
                    let _ = checkpointer.sqlite_checkpoint();
                }
            });
            let result = continue_claimed(store, run_id, progress);
            drop(stop);
            result
        })
    })
}

/// Whether another process holds run `run_id`'s claim now (PostgreSQL;
/// on SQLite, never). A hint for callers that answer before applying: the
/// applier takes the claim itself.
pub fn is_claimed(store: &mut Store, run_id: i64) -> Result<bool, CopyError> {
    if store.backend() != Backend::Postgres {
        return Ok(false);
    }
    let params = [Val::I(RUN_CLAIM + run_id)];
    let free =
        store.read(|tx| tx.query_opt("SELECT pg_try_advisory_lock($1)", &params, |r| r.bool(0)))?.unwrap_or(false);
    if free {
        store.read(|tx| tx.query_opt("SELECT pg_advisory_unlock($1)", &params, |r| r.bool(0)))?;
    }
    Ok(!free)
}

/// Plans (if need be) and applies run `run_id`, its claim held; a failure
/// is recorded before the claim goes (see [`record_failure`]), so no other
/// process takes the run up in between.
fn continue_claimed(store: &mut Store, run_id: i64, progress: &mut dyn Progress) -> Result<ReportData, CopyError> {
    let result = plan_and_apply(store, run_id, progress);
    record_failure(store, run_id, result)
}

fn plan_and_apply(store: &mut Store, run_id: i64, progress: &mut dyn Progress) -> Result<ReportData, CopyError> {
    let mut timings = std::collections::BTreeMap::new();
    let row = store.read(|tx| load_run(tx, run_id))?;
    match row.state {
        RunState::Planning => {
            let started = Instant::now();
            tracing::info!(run = run_id, from = %row.source.slug, to = %row.destination.slug, "planning copy run");
            persist_plan(store, run_id, &row.options)?;
            timings.insert("plan".to_owned(), started.elapsed().as_secs_f64());
            tracing::info!(run = run_id, seconds = started.elapsed().as_secs_f64(), "copy run planned");
        }
        // Done: another process finished it meanwhile; its report is read.
        RunState::Applying | RunState::Done => {}
        _ => return Err(refusal(run_id, &row).unwrap_or_else(|| CopyError::Invalid(format!("run {run_id}")))),
    }
    // SQLite: the report's customer lines depend only on the decisions
    // persisted above; a second connection reads them on another core
    // while this one applies.
    let mut sibling = store.sqlite_sibling()?;
    let version = store.read(|tx| tx.sqlite_data_version())?;
    std::thread::scope(|scope| {
        let lines = sibling.as_mut().map(|s| scope.spawn(move || s.read(|tx| report_customers(tx, run_id))));
        apply_phases(store, run_id, progress, &mut timings)?;
        let lines = match lines {
            Some(handle) => Some(ReadAhead { value: joined(handle)?, data_version: version }),
            None => None,
        };
        let mut data = store.read(|tx| {
            let lines = match lines {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            report_data(tx, run_id, lines)
        })?;
        data.timings.extend(timings);
        Ok(data)
    })
}

/// Applies the phases of a planned run, chunk by chunk, until it is done.
fn apply_phases(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    timings: &mut std::collections::BTreeMap<String, f64>,
) -> Result<(), CopyError> {
    // SQLite: the run's maps and the source's lists, which only the planned
    // decisions and the source decide, are read by a second connection
    // while the accounts phase runs.
    let (start, version) = store.read(|tx| Ok::<_, CopyError>((load_run(tx, run_id)?, tx.sqlite_data_version()?)))?;
    let mut early = match start.phase {
        Phase::Accounts => store.sqlite_sibling()?,
        _ => None,
    };
    std::thread::scope(|scope| {
        let ahead = early.as_mut().map(|other| {
            scope.spawn(move || {
                other.read(|tx| -> Result<(RunMaps, SourceLists), CopyError> {
                    let maps = load_run_maps(tx, run_id)?;
                    let lists = read_source_lists(tx, run_id, &maps)?;
                    Ok((maps, lists))
                })
            })
        });
        apply_phases_with(store, run_id, progress, timings, ahead.map(|handle| (handle, version)))
    })
}

/// The maps and lists being read ahead, and the writer's data version
/// from before the reading began.
type MapsAhead<'scope> =
    (std::thread::ScopedJoinHandle<'scope, Result<(RunMaps, SourceLists), CopyError>>, Option<i64>);

/// What another connection read for the writer, with the writer's data
/// version from before the reading began.
struct ReadAhead<T> {
    value: T,
    data_version: Option<i64>,
}

impl<T> ReadAhead<T> {
    /// The value, if no other connection has committed since the reading
    /// began (checked in the writer's transaction `tx`); otherwise `None`,
    /// and the writer reads it again itself.
    fn fresh(self, tx: &mut Tx<'_>) -> Result<Option<T>, StoreError> {
        Ok((tx.sqlite_data_version()? == self.data_version).then_some(self.value))
    }
}

fn apply_phases_with(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    timings: &mut std::collections::BTreeMap<String, f64>,
    mut ahead: Option<MapsAhead<'_>>,
) -> Result<(), CopyError> {
    let mut maps = None;
    let mut lists = None;
    for phase in [Phase::Accounts, Phase::Structure, Phase::Requests] {
        let name = phase.name();
        let started = Instant::now();
        // SQLite, requests: a second connection reads each chunk's source
        // rows while this one writes the chunk before it. What it reads is
        // the source alone, which the run never changes; each chunk is still
        // written in one transaction of this connection, which takes a
        // chunk read ahead only when it starts where the run stands.
        let mut reader = match phase {
            Phase::Requests => store.sqlite_sibling()?,
            _ => None,
        };
        std::thread::scope(|scope| -> Result<(), CopyError> {
            let (ahead_chunks, chunks) = std::sync::mpsc::sync_channel::<ReadAhead<Prefetched>>(1);
            let mut read_ahead = false;
            if let Some(reader) = reader.as_mut() {
                let (row, version) =
                    store.read(|tx| Ok::<_, CopyError>((load_run(tx, run_id)?, tx.sqlite_data_version()?)))?;
                if row.phase == Phase::Requests {
                    read_ahead = true;
                    scope.spawn(move || {
                        let mut from = row.cursor;
                        // A failed read is left to the writer, which reads
                        // that chunk itself and reports what fails.
                        while let Ok(chunk) = reader.read(|tx| read_chunk(tx, run_id, &row, from)) {
                            let next = chunk.as_ref().map(|c| c.to);
                            let ahead = ReadAhead { value: Prefetched { from, chunk }, data_version: version };
                            if ahead_chunks.send(ahead).is_err() {
                                break; // the writer stopped
                            }
                            match next {
                                Some(to) => from = to,
                                None => break,
                            }
                        }
                    });
                }
            }
            loop {
                let row = store.read(|tx| load_run(tx, run_id))?;
                match row.state {
                    RunState::Applying => {}
                    // Finished by another process meanwhile.
                    RunState::Done => return Ok(()),
                    RunState::RolledBack => {
                        return Err(CopyError::Invalid(format!(
                            "run {run_id} was rolled back while it was being applied"
                        )));
                    }
                    // Failed in another process meanwhile: stop, never spin.
                    _ => {
                        return Err(refusal(run_id, &row)
                            .unwrap_or_else(|| CopyError::Invalid(format!("run {run_id} is {}", row.state))));
                    }
                }
                if row.phase != phase {
                    return Ok(());
                }
                if phase >= Phase::Structure && maps.is_none() {
                    match ahead.take() {
                        Some((handle, version)) => {
                            let (read_maps, read_lists) = joined(handle)?;
                            // The maps are the run's own decisions; the
                            // lists hold only if no one else wrote since.
                            maps = Some(read_maps);
                            lists = Some(ReadAhead { value: read_lists, data_version: version });
                        }
                        None => maps = Some(store.read(|tx| load_run_maps(tx, run_id))?),
                    }
                }
                let prefetched = if read_ahead { chunks.recv().ok() } else { None };
                let structure_lists = if phase == Phase::Structure { lists.take() } else { None };
                // Foreign keys stay on, on SQLite as on PostgreSQL: a chunk
                // that would refer to a row another writer removed (a
                // rollback of another run, say) fails whole instead of
                // leaving a dangling reference. It costs SQLite about 13%
                // of a copy's time (4.1 s -> 4.7 s at 300,000 customers).
                store.write(|tx| apply_step(tx, run_id, &row, maps.as_ref(), progress, prefetched, structure_lists))?;
            }
        })?;
        timings.insert(name.to_owned(), started.elapsed().as_secs_f64());
        tracing::info!(run = run_id, phase = name, seconds = started.elapsed().as_secs_f64(), "copy phase applied");
    }
    Ok(())
}

/// Decides everything and writes the decisions, in one transaction; or
/// records that blocking conflicts stopped the run.
fn persist_plan(store: &mut Store, run_id: i64, options: &CopyOptions) -> Result<(), CopyError> {
    // SQLite: a second connection reads the destination while this one
    // reads the source (it reads only after the write lock is taken).
    let mut sibling = store.sqlite_sibling()?;
    let conflicts = store.write(|tx| -> Result<Vec<crate::Conflict>, CopyError> {
        tx.lock_for_writing_ids()?;
        if load_run(tx, run_id)?.state != RunState::Planning {
            return Ok(Vec::new()); // another process planned it meanwhile
        }
        let plan = plan_copy_beside(tx, sibling.as_mut(), options)?;
        if !plan.conflicts.is_empty() {
            tx.execute(
                "UPDATE copy_runs SET state = $3, finished_at = $2 WHERE id = $1",
                &[Val::I(run_id), Val::T(&now()), Val::T(RunState::Blocked.as_str())],
            )?;
            tracing::info!(run = run_id, conflicts = plan.conflicts.len(), "copy run blocked by conflicts");
            return Ok(plan.conflicts);
        }
        write_decisions(tx, run_id, &plan)?;
        tx.analyze(&["copy_customers", "copy_projects", "copy_organizations", "copy_runs"])?;
        Ok(Vec::new())
    })?;
    if conflicts.is_empty() { Ok(()) } else { Err(CopyError::Conflicts(conflicts)) }
}

fn write_decisions(tx: &mut Tx<'_>, run_id: i64, plan: &CopyPlan) -> Result<(), CopyError> {
    let mut account_ids = IdAllocator::start(tx, "accounts")?;
    let mut writer = BulkWriter::new(&COPY_CUSTOMERS);
    let mut batch = RowBatch::new(&COPY_CUSTOMERS);
    // In key order, so the table's b-tree grows at its end.
    let mut in_key_order: Vec<&crate::PlannedCustomer> = plan.customers.iter().collect();
    in_key_order.sort_unstable_by_key(|c| c.customer.account_id);
    for c in in_key_order {
        let destination = match c.decision.target {
            Target::Existing(id) => id,
            Target::NewPortalOnly => account_ids.next_id(),
        };
        let problems: i64 = c.decision.problems.iter().map(|p| p.bit()).sum();
        batch.push(&[
            Val::I(run_id),
            Val::I(c.customer.account_id),
            Val::I(destination),
            Val::from(c.decision.matched),
            Val::I(c.decision.outcome.code()),
            Val::T(c.decision.before.label()),
            Val::T(c.decision.after.label()),
            Val::I(problems),
            Val::from(c.new_ext_id.as_deref()),
            Val::B(c.adds_site_user),
            Val::B(c.via_group),
        ]);
        if batch.weight() > 1 << 20 {
            writer.write(tx, &batch)?;
            batch = RowBatch::new(&COPY_CUSTOMERS);
        }
    }
    writer.write(tx, &batch)?;
    writer.finish(tx)?;
    // The new accounts, projects, organizations and group are written by
    // later transactions: their ids are reserved now, in the transaction
    // that hands them out, so no other writer takes them meanwhile.
    account_ids.reserve(tx)?;

    let mut project_ids = IdAllocator::start(tx, "projects")?;
    for p in &plan.projects {
        let (destination, created) = match p.linked {
            Some(id) => (id, false),
            None => (project_ids.next_id(), true),
        };
        tx.execute(
            "INSERT INTO copy_projects (run_id, source_project_id, destination_project_id, destination_key, created)
             VALUES ($1, $2, $3, $4, $5)",
            &[Val::I(run_id), Val::I(p.source_id), Val::I(destination), Val::T(&p.destination_key), Val::B(created)],
        )?;
    }
    project_ids.reserve(tx)?;
    // A site may have tens of thousands of organizations: one bulk write,
    // not a statement (a round trip on PostgreSQL) each.
    let mut organization_ids = IdAllocator::start(tx, "organizations")?;
    let mut batch = RowBatch::with_capacity(&COPY_ORGANIZATIONS, plan.organizations.len(), 24);
    for o in &plan.organizations {
        let (destination, created) = match o.existing {
            Some(id) => (id, false),
            None => (organization_ids.next_id(), true),
        };
        batch.push(&[Val::I(run_id), Val::I(o.source_id), Val::I(destination), Val::T(&o.name), Val::B(created)]);
    }
    write_batch(tx, &batch)?;
    organization_ids.reserve(tx)?;
    let group_id = match &plan.group_name {
        Some(_) => {
            let mut group_ids = IdAllocator::start(tx, "groups")?;
            let id = group_ids.next_id();
            group_ids.reserve(tx)?;
            Some(id)
        }
        None => None,
    };
    tx.execute(
        "UPDATE copy_runs SET state = $6, phase = $2, cursor = 0, source_request_limit = $3,
                group_name = $4, group_id = $5
         WHERE id = $1",
        &[
            Val::I(run_id),
            Val::I(Phase::Accounts.code()),
            Val::I(plan.source_request_limit),
            Val::from(plan.group_name.as_deref()),
            Val::from(group_id),
            Val::T(RunState::Applying.as_str()),
        ],
    )?;
    Ok(())
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

/// One chunk of the current phase, in the caller's transaction.
fn apply_step(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: Option<&RunMaps>,
    progress: &mut dyn Progress,
    prefetched: Option<ReadAhead<Prefetched>>,
    lists: Option<ReadAhead<SourceLists>>,
) -> Result<(), CopyError> {
    tx.lock_for_writing_ids()?;
    let now = load_run(tx, run_id)?;
    if now.state != RunState::Applying || (now.phase, now.cursor) != (row.phase, row.cursor) {
        return Ok(()); // applied by another process meanwhile, or rolled back
    }
    if row.cursor == 0 {
        // Each phase joins what the one before it wrote.
        tx.analyze(&[
            "accounts",
            "site_users",
            "copy_links",
            "copy_grants",
            "projects",
            "organizations",
            "project_customers",
            "organization_members",
            "requests",
            "request_participants",
            "comments",
        ])?;
    }
    let (run, s, d) = (Val::I(run_id), Val::I(row.source.id), Val::I(row.destination.id));
    match row.phase {
        Phase::Accounts => {
            let end = tx
                .query_opt(
                    "SELECT MAX(source_account_id) FROM (SELECT source_account_id FROM copy_customers
                     WHERE run_id = $1 AND source_account_id > $2 ORDER BY source_account_id LIMIT $3) chunk",
                    &[run, Val::I(row.cursor), Val::I(chunk(ACCOUNT_CHUNK))],
                    |r| r.opt_int(0),
                )?
                .flatten();
            let Some(end) = end else {
                // Every account is written: the destination's duplicates
                // can be counted again.
                accounts::recount(tx, row.destination.id)?;
                set_cursor(tx, run_id, Phase::Structure, 0)?;
                return Ok(());
            };
            let range = [run, Val::I(row.cursor), Val::I(end), d, s];
            // The new accounts have the emails and names of source
            // accounts, whose search terms are indexed already.
            let portal_only = tx.execute(
                "INSERT INTO accounts (id, kind, site_id, ext_id, email, email_key, display_name, active, email_verified)
                 SELECT cc.destination_account_id, 'customer', CAST($4 AS BIGINT), cc.new_account_ext_id, a.email, a.email_key,
                        a.display_name, a.active, a.email_verified
                 FROM copy_customers cc JOIN accounts a ON a.id = cc.source_account_id
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3
                   AND cc.new_account_ext_id IS NOT NULL",
                &range[..4],
            )?;
            tx.execute(
                "INSERT INTO copy_grants (run_id, kind, a, b)
                 SELECT $1, 'site_user', CAST($4 AS BIGINT), cc.source_account_id FROM copy_customers cc
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3 AND cc.adds_site_user
                   AND NOT EXISTS (SELECT 1 FROM site_users su WHERE su.site_id = $4 AND su.account_id = cc.source_account_id)",
                &range[..4],
            )?;
            // As for every membership: the grants are exactly the new rows.
            let site_users = tx.execute(
                "INSERT INTO site_users (site_id, account_id)
                 SELECT a, b FROM copy_grants WHERE run_id = $1 AND kind = 'site_user' AND b > $2 AND b <= $3",
                &range[..3],
            )?;
            let change = accounts::CountChange {
                portal_only: i64::try_from(portal_only).unwrap_or(i64::MAX),
                atlassian: i64::try_from(site_users).unwrap_or(i64::MAX),
                duplicates: None,
            };
            accounts::change_counts(tx, row.destination.id, change)?;
            tx.execute(
                "INSERT INTO copy_links (source_site_id, destination_site_id, kind, source_id, destination_id, run_id)
                 SELECT CAST($5 AS BIGINT), CAST($4 AS BIGINT), 'account', cc.source_account_id, cc.destination_account_id, CAST($1 AS BIGINT) FROM copy_customers cc
                 WHERE cc.run_id = $1 AND cc.source_account_id > $2 AND cc.source_account_id <= $3 AND cc.outcome <> $6",
                &[range[0], range[1], range[2], range[3], range[4], Val::I(Outcome::AlreadyCopied.code())],
            )?;
            set_cursor(tx, run_id, Phase::Accounts, end)?;
            progress.step("accounts", end as u64, 0);
        }
        Phase::Structure => {
            let maps = maps.ok_or_else(|| CopyError::Invalid("the structure phase ran without its maps".to_owned()))?;
            let lists = match lists {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            apply_structure(tx, run_id, row, maps, lists)?;
            set_cursor(tx, run_id, Phase::Requests, 0)?;
            progress.step("projects and memberships", 1, 1);
        }
        Phase::Requests => {
            // Read ahead by another connection when it read from this
            // cursor and nothing else was committed since.
            let ahead = match prefetched {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            let source = match ahead {
                Some(ahead) if ahead.from == row.cursor => ahead.chunk,
                _ => read_chunk(tx, run_id, row, row.cursor)?,
            };
            let Some(source) = source else {
                set_cursor(tx, run_id, Phase::Done, 0)?;
                return Ok(());
            };
            let end = source.to;
            let maps = maps.ok_or_else(|| CopyError::Invalid("the requests phase ran without its maps".to_owned()))?;
            let copied = copy_requests(tx, run_id, row, maps, &source)?;
            tx.execute(
                "UPDATE copy_runs SET requests_copied = requests_copied + $2 WHERE id = $1",
                &[Val::I(run_id), Val::I(copied as i64)],
            )?;
            set_cursor(tx, run_id, Phase::Requests, end)?;
            progress.step("requests", end as u64, row.source_request_limit as u64);
        }
        _ => {}
    }
    Ok(())
}

/// The customer-list entries and organization memberships of the run's
/// source projects and organizations, mapped through the run's decisions
/// to destination ids, sorted, without repeats. The source alone: another
/// connection may read them ahead.
pub(crate) struct SourceLists {
    customers: Vec<(i64, i64)>,
    organization_members: Vec<(i64, i64)>,
}

fn read_source_lists(tx: &mut Tx<'_>, run_id: i64, maps: &RunMaps) -> Result<SourceLists, StoreError> {
    let mut read = |customer_list: bool, sql: &str| -> Result<Vec<(i64, i64)>, StoreError> {
        let mut pairs: Vec<(i64, i64)> = Vec::new();
        tx.query_each(sql, &[Val::I(run_id)], |r| {
            let account = r.int(1)?;
            // Portal-only customers that became Atlassian accounts reach
            // the projects through the imported group, never a list.
            let skip = customer_list && maps.via_group.contains(&account);
            if let (Some(&to), false) = (maps.accounts.get(&account), skip) {
                pairs.push((r.int(0)?, to));
            }
            Ok(())
        })?;
        pairs.sort_unstable();
        pairs.dedup();
        Ok(pairs)
    };
    Ok(SourceLists {
        // The Customer role on a source project: its customer list, and
        // every member of a group holding the role there, unless the group
        // is an imported group awaiting review or declined (its members
        // have no access on the source, so get none here).
        customers: read(
            true,
            &format!(
                "SELECT cp.destination_project_id, pc.account_id FROM copy_projects cp
             JOIN project_customers pc ON pc.project_id = cp.source_project_id WHERE cp.run_id = $1
             UNION ALL
             SELECT cp.destination_project_id, gm.account_id FROM copy_projects cp
             JOIN customer_roles cr ON cr.project_id = cp.source_project_id
             JOIN groups g ON g.id = cr.group_id AND {granting}
             JOIN group_members gm ON gm.group_id = cr.group_id WHERE cp.run_id = $1",
                granting = GroupState::grants_customer_role_sql("g.state")
            ),
        )?,
        organization_members: read(
            false,
            "SELECT co.destination_organization_id, m.account_id FROM copy_organizations co
             JOIN organization_members m ON m.organization_id = co.source_organization_id WHERE co.run_id = $1",
        )?,
    })
}

fn apply_structure(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: &RunMaps,
    lists: Option<SourceLists>,
) -> Result<(), CopyError> {
    let (run, s, d) = (Val::I(run_id), Val::I(row.source.id), Val::I(row.destination.id));
    tx.execute(
        "INSERT INTO projects (id, site_id, key, name)
         SELECT cp.destination_project_id, CAST($2 AS BIGINT), cp.destination_key, p.name
         FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id WHERE cp.run_id = $1 AND cp.created",
        &[run, d],
    )?;
    tx.execute(
        "INSERT INTO organizations (id, site_id, name)
         SELECT co.destination_organization_id, CAST($2 AS BIGINT), co.name FROM copy_organizations co WHERE co.run_id = $1 AND co.created",
        &[run, d],
    )?;
    for (kind, table, source_column, destination_column) in [
        ("project", "copy_projects", "source_project_id", "destination_project_id"),
        ("organization", "copy_organizations", "source_organization_id", "destination_organization_id"),
    ] {
        tx.execute(
            &format!(
                "INSERT INTO copy_links (source_site_id, destination_site_id, kind, source_id, destination_id, run_id)
                 SELECT CAST($2 AS BIGINT), CAST($3 AS BIGINT), '{kind}', {source_column}, {destination_column}, CAST($1 AS BIGINT) FROM {table} WHERE run_id = $1 AND created"
            ),
            &[run, s, d],
        )?;
    }
    // Memberships: record exactly the new ones as grants, then add them.
    // Customer lists and organization members (a million rows at scale)
    // are mapped in memory through the run's decisions and written in key
    // order; organizations' projects are few.
    let lists = match lists {
        Some(lists) => lists,
        None => read_source_lists(tx, run_id, maps)?,
    };
    for (kind, spec, existing_sql, mut pairs) in [
        (
            "customer",
            &PROJECT_CUSTOMERS,
            "SELECT pc.project_id, pc.account_id FROM copy_projects cp
             JOIN project_customers pc ON pc.project_id = cp.destination_project_id WHERE cp.run_id = $1",
            lists.customers,
        ),
        (
            "organization_member",
            &ORGANIZATION_MEMBERS,
            "SELECT m.organization_id, m.account_id FROM copy_organizations co
             JOIN organization_members m ON m.organization_id = co.destination_organization_id WHERE co.run_id = $1",
            lists.organization_members,
        ),
    ] {
        // What the destination already holds is read here, in the writer's
        // transaction.
        let mut existing = FxHashSet::default();
        tx.query_each(existing_sql, &[run], |r| {
            existing.insert((r.int(0)?, r.int(1)?));
            Ok(())
        })?;
        pairs.retain(|pair| !existing.contains(pair));
        let mut grants = RowBatch::new(&GRANTS);
        let mut members = RowBatch::new(spec);
        for (a, b) in pairs {
            grants.push(&[run, Val::T(kind), Val::I(a), Val::I(b)]);
            members.push(&[Val::I(a), Val::I(b)]);
        }
        write_batch(tx, &grants)?;
        write_batch(tx, &members)?;
    }
    tx.execute(
        "INSERT INTO copy_grants (run_id, kind, a, b)
         SELECT DISTINCT CAST($1 AS BIGINT), 'organization_project', co.destination_organization_id, cp.destination_project_id
         FROM organization_projects op
         JOIN copy_organizations co ON co.run_id = $1 AND co.source_organization_id = op.organization_id
         JOIN copy_projects cp ON cp.run_id = $1 AND cp.source_project_id = op.project_id
         WHERE NOT EXISTS (SELECT 1 FROM organization_projects t
                           WHERE t.organization_id = co.destination_organization_id AND t.project_id = cp.destination_project_id)",
        &[run],
    )?;
    tx.execute(
        "INSERT INTO organization_projects (organization_id, project_id)
         SELECT a, b FROM copy_grants WHERE run_id = $1 AND kind = 'organization_project'",
        &[run],
    )?;
    // The imported group: awaiting review, holding the Customer role of the
    // run's projects, so its members gain access only once approved.
    if let Some(group_id) = row.group_id {
        let name = tx
            .query_opt("SELECT group_name FROM copy_runs WHERE id = $1", &[run], |r| {
                Ok(r.opt_text(0)?.map(str::to_owned))
            })?
            .flatten()
            .unwrap_or_default();
        tx.execute(
            "INSERT INTO groups (id, site_id, name, name_key, state, created_by_run) VALUES ($1, $2, $3, $4, $6, $5)",
            &[
                Val::I(group_id),
                d,
                Val::T(&name),
                Val::T(&ferry_core::model::name_key(&name)),
                run,
                Val::T(GroupState::AwaitingReview.as_str()),
            ],
        )?;
        tx.execute(
            "INSERT INTO group_members (group_id, account_id)
             SELECT DISTINCT CAST($2 AS BIGINT), destination_account_id FROM copy_customers WHERE run_id = $1 AND outcome = $3",
            &[run, Val::I(group_id), Val::I(Outcome::MatchedAtlassian.code())],
        )?;
        tx.execute(
            "INSERT INTO customer_roles (project_id, group_id)
             SELECT destination_project_id, CAST($2 AS BIGINT) FROM copy_projects WHERE run_id = $1",
            &[run, Val::I(group_id)],
        )?;
    }
    Ok(())
}

static REQUESTS: TableSpec = TableSpec {
    table: "requests",
    columns: &[
        "id",
        "site_id",
        "project_id",
        "number",
        "summary",
        "status",
        "created",
        "reporter_id",
        "organization_id",
        "copied_from",
    ],
    on_conflict: OnConflict::Fail,
};
static REQUEST_LINKS: TableSpec = TableSpec {
    table: "copy_links",
    columns: &["source_site_id", "destination_site_id", "kind", "source_id", "destination_id", "run_id"],
    on_conflict: OnConflict::Fail,
};
static GRANTS: TableSpec =
    TableSpec { table: "copy_grants", columns: &["run_id", "kind", "a", "b"], on_conflict: OnConflict::Fail };
static PROJECT_CUSTOMERS: TableSpec =
    TableSpec { table: "project_customers", columns: &["project_id", "account_id"], on_conflict: OnConflict::Fail };
static ORGANIZATION_MEMBERS: TableSpec = TableSpec {
    table: "organization_members",
    columns: &["organization_id", "account_id"],
    on_conflict: OnConflict::Fail,
};
static PARTICIPANTS: TableSpec =
    TableSpec { table: "request_participants", columns: &["request_id", "account_id"], on_conflict: OnConflict::Fail };
static COMMENTS: TableSpec = TableSpec {
    table: "comments",
    columns: &["request_id", "author_id", "created", "body"],
    on_conflict: OnConflict::Fail,
};

/// The run's decisions the structure and requests phases map source ids
/// through; they never change once written, so they are read once per
/// process.
pub(crate) struct RunMaps {
    accounts: FxHashMap<i64, i64>,
    /// Source accounts whose access comes through the imported group.
    via_group: FxHashSet<i64>,
    /// Source project -> (destination project, source key).
    projects: FxHashMap<i64, (i64, String)>,
    organizations: FxHashMap<i64, i64>,
}

fn load_run_maps(tx: &mut Tx<'_>, run_id: i64) -> Result<RunMaps, StoreError> {
    let run = [Val::I(run_id)];
    let mut accounts = FxHashMap::default();
    let mut via_group = FxHashSet::default();
    tx.query_each(
        "SELECT source_account_id, destination_account_id, via_group FROM copy_customers WHERE run_id = $1",
        &run,
        |r| {
            let source = r.int(0)?;
            accounts.insert(source, r.int(1)?);
            if r.bool(2)? {
                via_group.insert(source);
            }
            Ok(())
        },
    )?;
    let mut projects = FxHashMap::default();
    tx.query_each(
        "SELECT cp.source_project_id, cp.destination_project_id, p.key
         FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id WHERE cp.run_id = $1",
        &run,
        |r| {
            projects.insert(r.int(0)?, (r.int(1)?, r.text(2)?.to_owned()));
            Ok(())
        },
    )?;
    let mut organizations = FxHashMap::default();
    tx.query_each(
        "SELECT source_organization_id, destination_organization_id FROM copy_organizations WHERE run_id = $1",
        &run,
        |r| {
            organizations.insert(r.int(0)?, r.int(1)?);
            Ok(())
        },
    )?;
    Ok(RunMaps { accounts, via_group, projects, organizations })
}

/// The source rows of one chunk of the requests phase: the requests with
/// ids in `(from, to]`, and the participants and comments of every request
/// in that range (those of requests outside the run's projects are skipped
/// when written). Text lives in one buffer.
struct SourceChunk {
    from: i64,
    to: i64,
    requests: Vec<SourceRequest>,
    participants: Vec<(i64, i64)>,
    comments: Vec<SourceComment>,
    text: String,
}

type Span = (usize, usize);

struct SourceRequest {
    id: i64,
    project: i64,
    number: i64,
    reporter: i64,
    organization: Option<i64>,
    summary: Span,
    status: Span,
    created: Span,
}

struct SourceComment {
    request: i64,
    author: i64,
    created: Span,
    body: Span,
}

impl SourceChunk {
    fn keep(&mut self, text: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(text);
        (start, self.text.len())
    }

    fn text(&self, (start, end): Span) -> &str {
        &self.text[start..end]
    }
}

/// A chunk read by another connection, and the cursor it was read from.
struct Prefetched {
    from: i64,
    /// `None`: no request is left after `from`.
    chunk: Option<SourceChunk>,
}

/// Reads the next chunk of the requests phase after `from`: the source
/// only, so another connection can read it ahead of the writer.
fn read_chunk(tx: &mut Tx<'_>, run_id: i64, row: &RunRow, from: i64) -> Result<Option<SourceChunk>, CopyError> {
    let end = tx
        .query_opt(
            "SELECT MAX(id) FROM (SELECT r.id FROM requests r
               JOIN copy_projects cp ON cp.run_id = $1 AND cp.source_project_id = +r.project_id
               WHERE r.id > $2 AND r.id <= $3 ORDER BY r.id LIMIT $4) chunk",
            &[Val::I(run_id), Val::I(from), Val::I(row.source_request_limit), Val::I(chunk(REQUEST_CHUNK))],
            |r| r.opt_int(0),
        )?
        .flatten();
    let Some(to) = end else { return Ok(None) };
    let range = [Val::I(from), Val::I(to)];
    let mut chunk = SourceChunk {
        from,
        to,
        requests: Vec::new(),
        participants: Vec::new(),
        comments: Vec::new(),
        text: String::new(),
    };
    tx.query_each(
        "SELECT id, project_id, number, summary, status, created, reporter_id, organization_id
         FROM requests WHERE id > $1 AND id <= $2 ORDER BY id",
        &range,
        |r| {
            let request = SourceRequest {
                id: r.int(0)?,
                project: r.int(1)?,
                number: r.int(2)?,
                summary: chunk.keep(r.text(3)?),
                status: chunk.keep(r.text(4)?),
                created: chunk.keep(r.text(5)?),
                reporter: r.int(6)?,
                organization: r.opt_int(7)?,
            };
            chunk.requests.push(request);
            Ok(())
        },
    )?;
    tx.query_each(
        "SELECT request_id, account_id FROM request_participants WHERE request_id > $1 AND request_id <= $2",
        &range,
        |r| {
            chunk.participants.push((r.int(0)?, r.int(1)?));
            Ok(())
        },
    )?;
    tx.query_each(
        "SELECT request_id, author_id, created, body FROM comments WHERE request_id > $1 AND request_id <= $2 ORDER BY id",
        &range,
        |r| {
            let comment =
                SourceComment { request: r.int(0)?, author: r.int(1)?, created: chunk.keep(r.text(2)?), body: chunk.keep(r.text(3)?) };
            chunk.comments.push(comment);
            Ok(())
        },
    )?;
    Ok(Some(chunk))
}

/// Copies the requests of `source` in the run's projects that no run has
/// copied yet, with their participants and comments: mapped through the
/// run's decisions, written in bulk. New requests take the ids after the
/// largest one, in source order, so a resumed chunk gives exactly what an
/// uninterrupted one gives.
fn copy_requests(
    tx: &mut Tx<'_>,
    run_id: i64,
    row: &RunRow,
    maps: &RunMaps,
    source: &SourceChunk,
) -> Result<usize, CopyError> {
    let (s, d) = (row.source.id, row.destination.id);
    let mut request_ids = IdAllocator::start(tx, "requests")?;
    let mut linked = FxHashSet::default();
    tx.query_each(
        "SELECT source_id FROM copy_links WHERE source_site_id = $1 AND destination_site_id = $2
         AND kind = 'request' AND source_id > $3 AND source_id <= $4",
        &[Val::I(s), Val::I(d), Val::I(source.from), Val::I(source.to)],
        |r| {
            linked.insert(r.int(0)?);
            Ok(())
        },
    )?;
    let unmapped = |what: &str, id: i64, request: i64| {
        StoreError::SourceChanged(format!(
            "run {run_id}: source request {request} now refers to {what} {id}, which was not on the source when the \
             run was planned (the source changed during the run); nothing of this chunk was written. Roll the run \
             back (`ferry copy rollback {run_id}`) and run the copy again"
        ))
    };
    let mut copied: FxHashMap<i64, i64> = FxHashMap::default();
    let mut requests = RowBatch::new(&REQUESTS);
    let mut links = RowBatch::new(&REQUEST_LINKS);
    let mut copied_from = String::new();
    for r in &source.requests {
        let Some((project, key)) = maps.projects.get(&r.project) else { continue };
        if linked.contains(&r.id) {
            continue;
        }
        let reporter = *maps.accounts.get(&r.reporter).ok_or_else(|| unmapped("account", r.reporter, r.id))?;
        let organization = r.organization.and_then(|o| maps.organizations.get(&o).copied());
        let next_id = request_ids.next_id();
        copied.insert(r.id, next_id);
        copied_from.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(copied_from, "{}/{key}-{}", row.source.slug, r.number);
        }
        requests.push(&[
            Val::I(next_id),
            Val::I(d),
            Val::I(*project),
            Val::I(r.number),
            Val::T(source.text(r.summary)),
            Val::T(source.text(r.status)),
            Val::T(source.text(r.created)),
            Val::I(reporter),
            Val::from(organization),
            Val::T(&copied_from),
        ]);
        links.push(&[Val::I(s), Val::I(d), Val::T("request"), Val::I(r.id), Val::I(next_id), Val::I(run_id)]);
    }
    write_batch(tx, &requests)?;
    write_batch(tx, &links)?;
    if copied.is_empty() {
        return Ok(0);
    }

    let mut participants: Vec<(i64, i64)> = Vec::new();
    for &(request, account) in &source.participants {
        if let Some(&destination) = copied.get(&request) {
            let to = *maps.accounts.get(&account).ok_or_else(|| unmapped("account", account, request))?;
            participants.push((destination, to));
        }
    }
    // Two source accounts may have become one destination account.
    participants.sort_unstable();
    participants.dedup();
    let mut batch = RowBatch::new(&PARTICIPANTS);
    for (request, account) in participants {
        batch.push(&[Val::I(request), Val::I(account)]);
    }
    write_batch(tx, &batch)?;

    let mut comments = RowBatch::new(&COMMENTS);
    for c in &source.comments {
        if let Some(&destination) = copied.get(&c.request) {
            let to = *maps.accounts.get(&c.author).ok_or_else(|| unmapped("account", c.author, c.request))?;
            comments.push(&[
                Val::I(destination),
                Val::I(to),
                Val::T(source.text(c.created)),
                Val::T(source.text(c.body)),
            ]);
        }
    }
    write_batch(tx, &comments)?;
    Ok(copied.len())
}

/// The report's line per customer of run `run_id`, from its persisted
/// decisions (which never change once planned), sorted.
fn report_customers(tx: &mut Tx<'_>, run_id: i64) -> Result<Vec<CustomerLine>, CopyError> {
    let mut customers = tx.query_all(
        "SELECT a.email, a.email_key, a.kind, a.ext_id, cc.type_before, cc.type_after, cc.outcome, m.ext_id, cc.problems
         FROM copy_customers cc
         JOIN accounts a ON a.id = cc.source_account_id
         LEFT JOIN accounts m ON m.id = cc.matched_account_id
         WHERE cc.run_id = $1",
        &[Val::I(run_id)],
        |r| {
            Ok(CustomerLine {
                email: r.text(0)?.to_owned(),
                email_key: r.text(1)?.to_owned(),
                source_type: r.parsed(2, "account type", AccountType::from_jira_value)?,
                source_ext_id: r.text(3)?.to_owned(),
                before: r.parsed(4, "account type held", TypesHeld::parse)?,
                after: r.parsed(5, "account type held", TypesHeld::parse)?,
                outcome: Outcome::from_code(r.int(6)?).ok_or_else(|| StoreError::Decode {
                    column: 6,
                    reason: "copy_customers.outcome is not an outcome code".to_owned(),
                })?,
                destination_ext_id: r.opt_text(7)?.map(str::to_owned),
                problems: Problem::from_bits(r.int(8)?),
            })
        },
    )?;
    // Unstable is enough: an account's site and id make every key unique.
    customers.sort_unstable_by(|a, b| {
        (a.email_key.as_str(), a.source_type, a.source_ext_id.as_str()).cmp(&(
            b.email_key.as_str(),
            b.source_type,
            b.source_ext_id.as_str(),
        ))
    });
    Ok(customers)
}

/// The report of a run, from its persisted decisions.
fn report_data(tx: &mut Tx<'_>, run_id: i64, customers: Option<Vec<CustomerLine>>) -> Result<ReportData, CopyError> {
    let row = load_run(tx, run_id)?;
    let customers = match customers {
        Some(lines) => lines,
        None => report_customers(tx, run_id)?,
    };
    let projects = tx.query_all(
        "SELECT p.key, cp.destination_key FROM copy_projects cp JOIN projects p ON p.id = cp.source_project_id
         WHERE cp.run_id = $1 ORDER BY p.key",
        &[Val::I(run_id)],
        |r| Ok((r.text(0)?.to_owned(), r.text(1)?.to_owned())),
    )?;
    let group_name = tx
        .query_opt("SELECT group_name FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| {
            Ok(r.opt_text(0)?.map(str::to_owned))
        })?
        .flatten();
    let count = |tx: &mut Tx<'_>, sql: &str| -> Result<u64, StoreError> {
        Ok(tx.query_opt(sql, &[Val::I(run_id)], |r| r.int(0))?.unwrap_or(0) as u64)
    };
    let requests = count(tx, "SELECT requests_copied FROM copy_runs WHERE id = $1")?;
    let organizations = count(tx, "SELECT COUNT(*) FROM copy_organizations WHERE run_id = $1")?;
    Ok(ReportData {
        kind: ReportKind::Run(run_id),
        options: row.options,
        projects,
        customers,
        conflicts: Vec::new(),
        group_name,
        requests,
        organizations,
        timings: Default::default(),
        state: row.state.as_str().to_owned(),
    })
}

/// Writes the report folder of run `run_id`.
pub fn write_run_report(store: &mut Store, run_id: i64, dir: &Path) -> Result<(), CopyError> {
    let data = store.read(|tx| report_data(tx, run_id, None))?;
    write_report(&data, dir)
}

/// The report of run `run_id` as it stands.
pub fn run_report(store: &mut Store, run_id: i64) -> Result<ReportData, CopyError> {
    store.read(|tx| report_data(tx, run_id, None))
}

/// Every run, newest first.
pub fn list_runs(store: &mut Store) -> Result<Vec<RunStatus>, CopyError> {
    let ids = store.read(|tx| tx.query_all("SELECT id FROM copy_runs ORDER BY id DESC", &[], |r| r.int(0)))?;
    ids.into_iter().map(|id| status(store, id)).collect()
}

/// Where run `run_id` stands.
pub fn status(store: &mut Store, run_id: i64) -> Result<RunStatus, CopyError> {
    store.read(|tx| {
        let row = load_run(tx, run_id)?;
        let (started_at, finished_at, group_name, error) = tx
            .query_opt(
                "SELECT started_at, finished_at, group_name, error FROM copy_runs WHERE id = $1",
                &[Val::I(run_id)],
                |r| {
                    Ok((
                        r.text(0)?.to_owned(),
                        r.opt_text(1)?.map(str::to_owned),
                        r.opt_text(2)?.map(str::to_owned),
                        r.opt_text(3)?.map(str::to_owned),
                    ))
                },
            )?
            .unwrap_or_default();
        let customers = tx
            .query_opt("SELECT COUNT(*) FROM copy_customers WHERE run_id = $1", &[Val::I(run_id)], |r| r.int(0))?
            .unwrap_or(0) as u64;
        let requests_copied = tx
            .query_opt("SELECT requests_copied FROM copy_runs WHERE id = $1", &[Val::I(run_id)], |r| r.int(0))?
            .unwrap_or(0) as u64;
        let group_state = tx.query_opt(
            "SELECT g.state FROM copy_runs r JOIN groups g ON g.id = r.group_id WHERE r.id = $1",
            &[Val::I(run_id)],
            |r| r.parsed(0, "group state", GroupState::parse),
        )?;
        Ok(RunStatus {
            id: run_id,
            from: row.source.slug,
            to: row.destination.slug,
            state: row.state,
            phase: row.phase,
            cursor: row.cursor,
            customers,
            requests_copied,
            group_name,
            group_state,
            started_at,
            finished_at,
            error,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check every read-ahead goes through: kept across the writer's
    /// own commits, dropped once another connection commits.
    #[test]
    fn a_read_ahead_is_dropped_once_another_connection_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Store::open(dir.path().join("r.db").to_str().unwrap()).unwrap();
        let mut other = writer.sqlite_sibling().unwrap().expect("a file has siblings");
        writer.write(|tx| tx.batch("CREATE TABLE t (x INTEGER)")).unwrap();
        let ahead = |writer: &mut Store| -> ReadAhead<&str> {
            ReadAhead { value: "read", data_version: writer.read(|tx| tx.sqlite_data_version()).unwrap() }
        };

        let kept = ahead(&mut writer);
        writer.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", &[])).unwrap();
        assert_eq!(writer.write(|tx| kept.fresh(tx)).unwrap(), Some("read"), "the writer's own commit");

        let dropped = ahead(&mut writer);
        other.write(|tx| tx.execute("INSERT INTO t (x) VALUES (2)", &[])).unwrap();
        assert_eq!(writer.write(|tx| dropped.fresh(tx)).unwrap(), None, "another connection's commit");
    }
}
