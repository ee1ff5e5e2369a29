//! The phase loop, and on SQLite the second connections that read ahead of
//! the writer (the run's maps, the source's lists, the next chunk of
//! requests) and the checkpointer beside it.

#[allow(unused_imports)]
use super::*;

/// Applies the phases of a planned run, chunk by chunk, until it is done.
pub(super) fn apply_phases(
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
pub(super) type MapsAhead<'scope> =
    (std::thread::ScopedJoinHandle<'scope, Result<(RunMaps, SourceLists), CopyError>>, Option<i64>);

/// What another connection read for the writer, with the writer's data
/// version from before the reading began.
pub(super) struct ReadAhead<T> {
    pub(super) value: T,
    pub(super) data_version: Option<i64>,
}

impl<T> ReadAhead<T> {
    /// The value, if no other connection has committed since the reading
    /// began (checked in the writer's transaction `tx`); otherwise `None`,
    /// and the writer reads it again itself.
    pub(super) fn fresh(self, tx: &mut Tx<'_>) -> Result<Option<T>, StoreError> {
        Ok((tx.sqlite_data_version()? == self.data_version).then_some(self.value))
    }
}

pub(super) fn apply_phases_with(
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
