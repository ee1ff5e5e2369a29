//! Who applies a run: on PostgreSQL the process holding the run's advisory
//! lock; another process waits for it, then finds the run done.

#[allow(unused_imports)]
use super::*;

/// Any fixed number: PostgreSQL advisory locks from here on claim runs
/// (this plus the run's id), clear of the store's own locks.
pub(super) const RUN_CLAIM: i64 = 0x6672_7279_0000_0000;

/// How long a run waits for another process's claim before giving up.
pub(super) const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Applies run `run_id` while holding its claim: on PostgreSQL a session
/// advisory lock, so that of several processes (servers sharing a
/// database) one applies a run at a time; the lock goes with the
/// connection if the process dies. Chunks also re-check the run's cursor
/// under the writers' lock, so two appliers never apply a chunk twice.
pub(super) fn continue_run(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    report: Option<&Path>,
) -> Result<ReportData, CopyError> {
    if store.backend() == Backend::Postgres {
        let params = [Val::I(RUN_CLAIM + run_id)];
        // A process killed a moment ago may still hold the claim until the
        // server notices its connection is gone: wait a while for it, as a
        // lock waiter PostgreSQL shows (`pg_locks`, not granted).
        let waited = store.read(|tx| -> Result<(), StoreError> {
            // A statement timeout shorter than the wait (set for the role,
            // say) must not cut it short.
            tx.batch(&format!(
                "SET LOCAL lock_timeout = '{wait}ms'; SET LOCAL statement_timeout = '{statement}ms'",
                wait = CLAIM_WAIT.as_millis(),
                statement = CLAIM_WAIT.as_millis() + 5_000
            ))?;
            tx.query_opt("SELECT pg_advisory_lock($1)", &params, |_| Ok(()))?;
            Ok(())
        });
        match waited {
            Ok(()) => {}
            Err(e) if e.is_lock_timeout() => return Err(CopyError::Claimed(run_id)),
            Err(e) => return Err(e.into()),
        }
        let result = continue_claimed(store, run_id, progress, report);
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
        return store
            .with_checkpoints_every(CHECKPOINT_PAGES, |store| continue_claimed(store, run_id, progress, report));
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
            let result = continue_claimed(store, run_id, progress, report);
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
pub(super) fn continue_claimed(
    store: &mut Store,
    run_id: i64,
    progress: &mut dyn Progress,
    report: Option<&Path>,
) -> Result<ReportData, CopyError> {
    let result = plan_and_apply(store, run_id, progress, report);
    record_failure(store, run_id, result)
}
