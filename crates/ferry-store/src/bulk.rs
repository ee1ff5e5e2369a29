//! Bulk writes at the database's own speed. Rows are gathered in
//! [`RowBatch`]es (owned, so they can cross threads) and written by a
//! [`BulkWriter`]. SQLite: one prepared statement per batch inside the
//! caller's transaction. PostgreSQL: `COPY` straight into the table when
//! every key is new ([`OnConflict::Fail`]); otherwise into a temporary
//! staging table, then one set-based `INSERT … SELECT` that applies the
//! same conflict rule.

use std::io::Write;

use crate::conn::{Tx, Val};
use crate::{Result, StoreError};

/// What a row does when its key already exists.
#[derive(Debug, Clone, Copy)]
pub enum OnConflict {
    /// Plain insert: the caller guarantees the key is new.
    Fail,
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

#[derive(Debug, Clone, Copy)]
enum Cell {
    I(i64),
    T(u32, u32),
    B(bool),
    Null,
}

/// Rows for one table, owned: text lives in one buffer.
#[derive(Debug)]
pub struct RowBatch {
    pub spec: &'static TableSpec,
    cells: Vec<Cell>,
    text: String,
}

impl RowBatch {
    pub fn new(spec: &'static TableSpec) -> RowBatch {
        RowBatch { spec, cells: Vec::new(), text: String::new() }
    }

    /// A batch with room for `rows` rows of about `text_per_row` bytes of
    /// text each, for a caller that knows its size: a large batch grown
    /// step by step copies itself into fresh memory at every step.
    pub fn with_capacity(spec: &'static TableSpec, rows: usize, text_per_row: usize) -> RowBatch {
        RowBatch {
            spec,
            cells: Vec::with_capacity(rows * spec.columns.len()),
            text: String::with_capacity(rows * text_per_row),
        }
    }

    /// Appends one row, columns in the order of the spec.
    pub fn push(&mut self, row: &[Val<'_>]) {
        debug_assert_eq!(row.len(), self.spec.columns.len());
        for value in row {
            self.cells.push(match *value {
                Val::I(v) => Cell::I(v),
                Val::B(v) => Cell::B(v),
                Val::Null => Cell::Null,
                Val::T(t) => {
                    let start = self.text.len() as u32;
                    self.text.push_str(t);
                    Cell::T(start, self.text.len() as u32)
                }
            });
        }
    }

    pub fn rows(&self) -> usize {
        self.cells.len() / self.spec.columns.len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Bytes held, to decide when a batch is worth sending.
    pub fn weight(&self) -> usize {
        self.cells.len() * 16 + self.text.len()
    }

    /// The values of cells `range` (whole rows), in order.
    fn values(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Val<'_>> {
        self.cells[range].iter().map(|c| match *c {
            Cell::I(v) => Val::I(v),
            Cell::B(v) => Val::B(v),
            Cell::Null => Val::Null,
            Cell::T(s, e) => Val::T(&self.text[s as usize..e as usize]),
        })
    }

    fn each_row(&self, mut f: impl FnMut(&[Val<'_>]) -> Result<()>) -> Result<()> {
        let width = self.spec.columns.len();
        let mut row: Vec<Val<'_>> = Vec::with_capacity(width);
        for chunk in self.cells.chunks(width) {
            row.clear();
            row.extend(chunk.iter().map(|c| match *c {
                Cell::I(v) => Val::I(v),
                Cell::B(v) => Val::B(v),
                Cell::Null => Val::Null,
                Cell::T(s, e) => Val::T(&self.text[s as usize..e as usize]),
            }));
            f(&row)?;
        }
        Ok(())
    }
}

/// Writes batches of one table; [`BulkWriter::finish`] must be called
/// before the transaction commits.
pub struct BulkWriter {
    spec: &'static TableSpec,
    sqlite_insert: String,
    /// The same insert for [`SQLITE_ROWS_PER_INSERT`] rows at once, where
    /// the conflict rule allows a multi-row VALUES list.
    sqlite_multi_insert: Option<String>,
    pg_buffer: Vec<u8>,
    pg_stage_ready: bool,
    rows: u64,
}

const PG_FLUSH_BYTES: usize = 8 << 20;
const SQLITE_ROWS_PER_INSERT: usize = 50;

impl BulkWriter {
    pub fn new(spec: &'static TableSpec) -> BulkWriter {
        BulkWriter {
            spec,
            sqlite_insert: sqlite_insert(spec, 1),
            sqlite_multi_insert: match spec.on_conflict {
                OnConflict::SkipSameContent => None,
                _ => Some(sqlite_insert(spec, SQLITE_ROWS_PER_INSERT)),
            },
            pg_buffer: Vec::new(),
            pg_stage_ready: false,
            rows: 0,
        }
    }

    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }

    /// Writes (SQLite) or stages (PostgreSQL) every row of `batch`.
    pub fn write(&mut self, tx: &mut Tx<'_>, batch: &RowBatch) -> Result<()> {
        self.rows += batch.rows() as u64;
        match tx {
            Tx::Sqlite(t) => {
                // Many rows per statement: SQLite's cost per executed
                // statement is larger than its cost per row.
                let width = self.spec.columns.len();
                let rows = batch.rows();
                let full = match self.sqlite_multi_insert.as_ref() {
                    Some(_) => rows / SQLITE_ROWS_PER_INSERT,
                    None => 0,
                };
                if let Some(multi) = &self.sqlite_multi_insert {
                    let mut stmt = t.prepare_cached(multi)?;
                    for chunk in 0..full {
                        let from = chunk * SQLITE_ROWS_PER_INSERT;
                        let values = batch.values(from * width..(from + SQLITE_ROWS_PER_INSERT) * width);
                        stmt.execute(rusqlite::params_from_iter(values))?;
                    }
                }
                let mut stmt = t.prepare_cached(&self.sqlite_insert)?;
                for row in full * SQLITE_ROWS_PER_INSERT..rows {
                    stmt.execute(rusqlite::params_from_iter(batch.values(row * width..(row + 1) * width)))?;
                }
            }
            Tx::Postgres(_) => {
                batch.each_row(|row| {
                    encode_copy_row(&mut self.pg_buffer, row);
                    Ok(())
                })?;
                if self.pg_buffer.len() >= PG_FLUSH_BYTES {
                    self.flush_pg(tx)?;
                }
            }
        }
        Ok(())
    }

    /// Applies everything written so far; returns the number of rows.
    pub fn finish(&mut self, tx: &mut Tx<'_>) -> Result<u64> {
        self.flush_pg(tx)?;
        if let (Tx::Postgres(t), true) = (tx, self.pg_stage_ready) {
            t.batch_execute(&pg_merge(self.spec))?;
            t.batch_execute(&format!("TRUNCATE {}", stage_name(self.spec)))?;
        }
        Ok(std::mem::take(&mut self.rows))
    }

    fn flush_pg(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        let Tx::Postgres(t) = tx else { return Ok(()) };
        if self.pg_buffer.is_empty() {
            return Ok(());
        }
        let columns = self.spec.columns.join(", ");
        if let OnConflict::Fail = self.spec.on_conflict {
            // Every key is new: straight into the table.
            let table = self.spec.table;
            let mut writer = t.copy_in(&format!("COPY {table} ({columns}) FROM STDIN"))?;
            writer.write_all(&self.pg_buffer).map_err(|e| StoreError::Io(format!("COPY into {table} failed: {e}")))?;
            writer.finish()?;
            self.pg_buffer.clear();
            return Ok(());
        }
        let stage = stage_name(self.spec);
        if !self.pg_stage_ready {
            t.batch_execute(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DROP AS SELECT {columns} FROM {} WITH NO DATA",
                self.spec.table
            ))?;
            self.pg_stage_ready = true;
        }
        let mut writer = t.copy_in(&format!("COPY {stage} ({columns}) FROM STDIN"))?;
        writer.write_all(&self.pg_buffer).map_err(|e| StoreError::Io(format!("COPY into {stage} failed: {e}")))?;
        writer.finish()?;
        self.pg_buffer.clear();
        Ok(())
    }
}

/// Writes one batch and applies it at once; returns the number of rows.
pub fn write_batch(tx: &mut Tx<'_>, batch: &RowBatch) -> Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let started = crate::conn::trace_sql().then(std::time::Instant::now);
    let mut writer = BulkWriter::new(batch.spec);
    writer.write(tx, batch)?;
    let written = writer.finish(tx)?;
    crate::conn::trace(started, &format!("bulk write {}", batch.spec.table), written);
    Ok(written)
}

/// Each conflict rule stages apart: writers of one table with different
/// rules (new rows and updated rows) must never merge each other's rows.
fn stage_name(spec: &TableSpec) -> String {
    let rule = match spec.on_conflict {
        OnConflict::Fail => "new",
        OnConflict::Upsert(_) => "upsert",
        OnConflict::Ignore => "ignore",
        OnConflict::SkipSameContent => "dedupe",
    };
    format!("ferry_stage_{}_{rule}", spec.table)
}

fn sqlite_insert(spec: &TableSpec, rows: usize) -> String {
    let columns = spec.columns.join(", ");
    let width = spec.columns.len();
    let tuple = |row: usize| {
        let params: Vec<String> = (1..=width).map(|i| format!("?{}", row * width + i)).collect();
        format!("({})", params.join(", "))
    };
    let tuples: Vec<String> = (0..rows).map(tuple).collect();
    let insert = format!("INSERT INTO {} ({columns}) VALUES {}", spec.table, tuples.join(", "));
    match spec.on_conflict {
        OnConflict::Fail => insert,
        OnConflict::Upsert(key) => format!("{insert} ON CONFLICT ({}) {}", key.join(", "), update_clause(spec, key)),
        OnConflict::Ignore => format!("{insert} ON CONFLICT DO NOTHING"),
        OnConflict::SkipSameContent => {
            let params: Vec<String> = (1..=width).map(|i| format!("?{i}")).collect();
            let same: Vec<String> = spec.columns.iter().enumerate().map(|(i, c)| format!("{c} = ?{}", i + 1)).collect();
            format!(
                "INSERT INTO {t} ({columns}) SELECT {} WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE {})",
                params.join(", "),
                same.join(" AND "),
                t = spec.table
            )
        }
    }
}

fn update_clause(spec: &TableSpec, key: &[&str]) -> String {
    let sets: Vec<String> =
        spec.columns.iter().filter(|c| !key.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
    if sets.is_empty() { "DO NOTHING".to_owned() } else { format!("DO UPDATE SET {}", sets.join(", ")) }
}

fn pg_merge(spec: &TableSpec) -> String {
    let columns = spec.columns.join(", ");
    let stage = stage_name(spec);
    let insert = format!("INSERT INTO {} ({columns}) SELECT {columns} FROM {stage}", spec.table);
    match spec.on_conflict {
        OnConflict::Fail => insert,
        OnConflict::Upsert(key) => format!("{insert} ON CONFLICT ({}) {}", key.join(", "), update_clause(spec, key)),
        OnConflict::Ignore => format!("{insert} ON CONFLICT DO NOTHING"),
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

    static T: TableSpec = TableSpec { table: "t", columns: &["id", "name"], on_conflict: OnConflict::Upsert(&["id"]) };

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        let mut out = Vec::new();
        encode_copy_row(&mut out, &[Val::I(7), Val::T("a\tb\\c\nd"), Val::Null, Val::B(true)]);
        assert_eq!(out, b"7\ta\\tb\\\\c\\nd\t\\N\tt\n");
    }

    #[test]
    fn upsert_updates_the_non_key_columns() {
        assert_eq!(
            sqlite_insert(&T, 1),
            "INSERT INTO t (id, name) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET name = excluded.name"
        );
        assert_eq!(
            sqlite_insert(&T, 2),
            "INSERT INTO t (id, name) VALUES (?1, ?2), (?3, ?4) ON CONFLICT (id) DO UPDATE SET name = excluded.name"
        );
    }

    #[test]
    fn writers_of_one_table_with_different_rules_stage_apart() {
        static NEW: TableSpec = TableSpec { table: "t", columns: &["id", "name"], on_conflict: OnConflict::Fail };
        assert_ne!(stage_name(&NEW), stage_name(&T));
    }

    #[test]
    fn a_batch_gives_back_the_rows_it_was_given() {
        let mut batch = RowBatch::new(&T);
        batch.push(&[Val::I(1), Val::T("ä")]);
        batch.push(&[Val::I(2), Val::Null]);
        let mut seen = Vec::new();
        batch
            .each_row(|row| {
                seen.push(format!("{row:?}"));
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, ["[I(1), T(\"ä\")]", "[I(2), Null]"]);
        assert_eq!(batch.rows(), 2);
    }
}
