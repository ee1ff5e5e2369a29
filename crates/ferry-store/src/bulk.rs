//! Bulk writes at the database's own speed. SQLite: one cached prepared
//! statement per table inside the caller's transaction. PostgreSQL: `COPY`
//! into a temporary staging table, then one set-based `INSERT … SELECT` that
//! applies the same conflict rule.

use std::io::Write;

use crate::conn::{Tx, Val};
use crate::{Result, StoreError};

/// What a row does when its key already exists.
#[derive(Debug, Clone, Copy)]
pub enum OnConflict {
    /// Replace the other columns of the row with this key.
    Upsert(&'static [&'static str]),
    /// Keep the existing row (set-like tables).
    Ignore,
    /// Insert only if no row has exactly these column values (tables
    /// without a natural key, such as comments).
    SkipSameContent,
}

/// A table a bulk writer fills.
#[derive(Debug)]
pub struct TableSpec {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    pub on_conflict: OnConflict,
}

/// Buffers rows for one table; [`BulkWriter::finish`] must be called before
/// the transaction commits.
pub struct BulkWriter {
    spec: &'static TableSpec,
    sqlite_insert: String,
    pg_buffer: Vec<u8>,
    pg_stage_ready: bool,
    rows: u64,
}

const PG_FLUSH_BYTES: usize = 4 << 20;

impl BulkWriter {
    pub fn new(spec: &'static TableSpec) -> BulkWriter {
        BulkWriter {
            spec,
            sqlite_insert: sqlite_insert(spec),
            pg_buffer: Vec::new(),
            pg_stage_ready: false,
            rows: 0,
        }
    }

    /// Writes (SQLite) or stages (PostgreSQL) one row, columns in the order
    /// of the spec.
    pub fn push(&mut self, tx: &mut Tx<'_>, row: &[Val<'_>]) -> Result<()> {
        debug_assert_eq!(row.len(), self.spec.columns.len());
        self.rows += 1;
        match tx {
            Tx::Sqlite(t) => {
                let mut stmt = t.prepare_cached(&self.sqlite_insert)?;
                stmt.execute(rusqlite::params_from_iter(row.iter()))?;
            }
            Tx::Postgres(_) => {
                encode_copy_row(&mut self.pg_buffer, row);
                if self.pg_buffer.len() >= PG_FLUSH_BYTES {
                    self.flush_pg(tx)?;
                }
            }
        }
        Ok(())
    }

    /// Applies everything pushed so far; returns the number of rows pushed.
    pub fn finish(&mut self, tx: &mut Tx<'_>) -> Result<u64> {
        if let Tx::Postgres(_) = tx {
            self.flush_pg(tx)?;
            if self.pg_stage_ready {
                if let Tx::Postgres(t) = tx {
                    t.batch_execute(&pg_merge(self.spec))?;
                    t.batch_execute(&format!("TRUNCATE {}", stage_name(self.spec)))?;
                }
            }
        }
        Ok(std::mem::take(&mut self.rows))
    }

    fn flush_pg(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        let Tx::Postgres(t) = tx else { return Ok(()) };
        if self.pg_buffer.is_empty() {
            return Ok(());
        }
        let stage = stage_name(self.spec);
        let columns = self.spec.columns.join(", ");
        if !self.pg_stage_ready {
            t.batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS SELECT {columns} FROM {} WITH NO DATA",
                self.spec.table
            ))?;
            self.pg_stage_ready = true;
        }
        let mut writer = t.copy_in(&format!("COPY {stage} ({columns}) FROM STDIN"))?;
        writer
            .write_all(&self.pg_buffer)
            .map_err(|e| StoreError::Conflict(format!("COPY into {stage} failed: {e}")))?;
        writer.finish()?;
        self.pg_buffer.clear();
        Ok(())
    }
}

fn stage_name(spec: &TableSpec) -> String {
    format!("ferry_stage_{}", spec.table)
}

fn sqlite_insert(spec: &TableSpec) -> String {
    let columns = spec.columns.join(", ");
    let params: Vec<String> = (1..=spec.columns.len()).map(|i| format!("?{i}")).collect();
    let params = params.join(", ");
    match spec.on_conflict {
        OnConflict::Upsert(key) => format!(
            "INSERT INTO {} ({columns}) VALUES ({params}) ON CONFLICT ({}) {}",
            spec.table,
            key.join(", "),
            update_clause(spec, key)
        ),
        OnConflict::Ignore => {
            format!("INSERT INTO {} ({columns}) VALUES ({params}) ON CONFLICT DO NOTHING", spec.table)
        }
        OnConflict::SkipSameContent => {
            let same: Vec<String> =
                spec.columns.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 1)).collect();
            format!(
                "INSERT INTO {t} ({columns}) SELECT {params} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {})",
                same.join(" AND "),
                t = spec.table
            )
        }
    }
}

fn update_clause(spec: &TableSpec, key: &[&str]) -> String {
    let sets: Vec<String> = spec
        .columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    if sets.is_empty() { "DO NOTHING".to_owned() } else { format!("DO UPDATE SET {}", sets.join(", ")) }
}

fn pg_merge(spec: &TableSpec) -> String {
    let columns = spec.columns.join(", ");
    let stage = stage_name(spec);
    match spec.on_conflict {
        OnConflict::Upsert(key) => format!(
            "INSERT INTO {} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT ({}) {}",
            spec.table,
            key.join(", "),
            update_clause(spec, key)
        ),
        OnConflict::Ignore => {
            format!("INSERT INTO {} ({columns}) SELECT {columns} FROM {stage} ON CONFLICT DO NOTHING", spec.table)
        }
        OnConflict::SkipSameContent => {
            let same: Vec<String> = spec.columns.iter().map(|c| format!("t.{c} = s.{c}")).collect();
            let picked: Vec<String> = spec.columns.iter().map(|c| format!("s.{c}")).collect();
            format!(
                "INSERT INTO {t} ({columns}) SELECT DISTINCT {} FROM {stage} s WHERE NOT EXISTS (SELECT 1 FROM {t} t WHERE {})",
                picked.join(", "),
                same.join(" AND "),
                t = spec.table
            )
        }
    }
}

/// One line of PostgreSQL's COPY text format.
fn encode_copy_row(out: &mut Vec<u8>, row: &[Val<'_>]) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match *value {
            Val::I(v) => {
                let _ = write!(out, "{v}");
            }
            Val::B(v) => out.push(if v { b't' } else { b'f' }),
            Val::Null => out.extend_from_slice(b"\\N"),
            Val::T(text) => {
                for &b in text.as_bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    static T: TableSpec =
        TableSpec { table: "t", columns: &["id", "name"], on_conflict: OnConflict::Upsert(&["id"]) };

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        let mut out = Vec::new();
        encode_copy_row(&mut out, &[Val::I(7), Val::T("a\tb\\c\nd"), Val::Null, Val::B(true)]);
        assert_eq!(out, b"7\ta\\tb\\\\c\\nd\t\\N\tt\n");
    }

    #[test]
    fn upsert_updates_the_non_key_columns() {
        assert_eq!(
            sqlite_insert(&T),
            "INSERT INTO t (id, name) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET name = excluded.name"
        );
    }
}
