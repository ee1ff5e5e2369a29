//! A run's life: starting it (audited), resuming it, refusing what its
//! state forbids, recording a failure that would repeat, and the plan-then-
//! apply sequence that ends in its report.

#[allow(unused_imports)]
use super::*;

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
    run_reporting(store, options, progress, started, None)
}

/// [`run`], writing the report's customer lines into the folder
/// `report_dir` names for the run while the run applies (the lines are not
/// held in memory: [`crate::write_report`] then completes the folder).
pub fn run_reporting(
    store: &mut Store,
    options: &CopyOptions,
    progress: &mut dyn Progress,
    started: impl FnOnce(i64),
    report_dir: Option<&dyn Fn(i64) -> PathBuf>,
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
            .ok_or_else(|| StoreError::no_id_returned("copy_runs"))?;
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
    let dir = report_dir.map(|dir_of| dir_of(run_id));
    let data = continue_run(store, run_id, progress, dir.as_deref())?;
    Ok((run_id, data))
}

/// Whether run `run_id` can be resumed (it is planning or applying);
/// otherwise the reason, which changes nothing.
pub fn check_resumable(store: &mut Store, run_id: i64) -> Result<(), CopyError> {
    store.read(|tx| resumable(tx, run_id).map(|_| ()))
}

pub(super) fn resumable(tx: &mut Tx<'_>, run_id: i64) -> Result<RunRow, CopyError> {
    let row = load_run(tx, run_id)?;
    match refusal(run_id, &row) {
        Some(refused) => Err(refused),
        None => Ok(row),
    }
}

/// Why run `run_id`, as `row` stands, cannot be resumed (or go on being
/// applied): `None` while it is planning or applying.
pub(super) fn refusal(run_id: i64, row: &RunRow) -> Option<CopyError> {
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
    resume_reporting(store, run_id, progress, None)
}

/// [`resume`], writing the report's customer lines into `report_dir` while
/// the run applies (see [`run_reporting`]).
pub fn resume_reporting(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    report_dir: Option<&Path>,
) -> Result<ReportData, CopyError> {
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
    continue_run(store, run_id, progress, report_dir)
}

/// Records a failure of run `run_id` as its terminal state `failed` with
/// its error, so that a run that cannot go on never blocks other work; the
/// result is passed on. Only failures that would repeat on resume count:
/// the source changed under the run, a constraint the writes break. A
/// failure that may pass (a full disk, a busy or lost database, a
/// deadlock) leaves the run `applying` for `copy resume`, as a crash does.
/// Blocking conflicts (state `blocked`), another process's claim and a
/// rollback meanwhile are not failures of the run.
pub(super) fn record_failure(
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
            tracing::info!(run = run_id, "copy run failed: {error}");
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

pub(super) fn plan_and_apply(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    report: Option<&Path>,
) -> Result<ReportData, CopyError> {
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
    let mut data = match report {
        Some(dir) => {
            let written = apply_writing_lines(store, run_id, progress, &mut timings, dir);
            if written.is_err() {
                discard_partial_lines(dir);
            }
            written?
        }
        None => apply_reading_lines(store, run_id, progress, &mut timings)?,
    };
    data.timings.extend(timings);
    Ok(data)
}

/// Applies the run while another connection writes the report's customer
/// lines into `dir`: they depend only on the decisions persisted when the
/// run was planned, so they are written during the apply, on another core,
/// straight from the database to the files.
fn apply_writing_lines(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    timings: &mut std::collections::BTreeMap<String, f64>,
    dir: &Path,
) -> Result<ReportData, CopyError> {
    let mut reader = store.reader()?;
    let totals = std::thread::scope(|scope| {
        let lines = reader.as_mut().map(|r| scope.spawn(move || write_report_lines(r, run_id, dir)));
        let applied = apply_phases(store, run_id, progress, timings);
        let lines = lines.map(joined);
        applied?;
        lines.unwrap_or_else(|| write_report_lines(store, run_id, dir))
    })?;
    store.read(|tx| report_data(tx, run_id, ReportLines::Written(dir.to_owned(), totals)))
}

/// Applies the run and reads the report's customer lines into memory (on
/// SQLite, on a second connection beside the apply).
fn apply_reading_lines(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    timings: &mut std::collections::BTreeMap<String, f64>,
) -> Result<ReportData, CopyError> {
    let mut sibling = store.sqlite_sibling()?;
    let version = store.read(|tx| tx.sqlite_data_version())?;
    std::thread::scope(|scope| {
        let lines = sibling.as_mut().map(|s| scope.spawn(move || s.read(|tx| report_customers(tx, run_id))));
        apply_phases(store, run_id, progress, timings)?;
        let lines = match lines {
            Some(handle) => Some(ReadAhead { value: joined(handle)?, data_version: version }),
            None => None,
        };
        store.read(|tx| {
            let lines = match lines {
                Some(ahead) => ahead.fresh(tx)?,
                None => None,
            };
            report_data(tx, run_id, lines.map_or(ReportLines::Read, ReportLines::Held))
        })
    })
}
