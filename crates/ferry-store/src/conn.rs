//! The connection abstraction: a store is one SQLite connection or one
//! PostgreSQL client; all work happens inside a [`Tx`].

use std::borrow::Cow;
use std::io::Write as _;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use crate::{Result, StoreError};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parameter or a value to bind. Borrowed, so binding never allocates.
#[derive(Debug, Clone, Copy)]
pub enum Val<'a> {
    I(i64),
    T(&'a str),
    B(bool),
    Null,
}

impl<'a> From<i64> for Val<'a> {
    fn from(v: i64) -> Self {
        Val::I(v)
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::T(v)
    }
}
impl<'a> From<bool> for Val<'a> {
    fn from(v: bool) -> Self {
        Val::B(v)
    }
}
impl<'a> From<Option<i64>> for Val<'a> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Val::Null, Val::I)
    }
}
impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Val::Null, Val::T)
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Val::I(v) => ValueRef::Integer(v),
            Val::T(v) => ValueRef::Text(v.as_bytes()),
            Val::B(v) => ValueRef::Integer(i64::from(v)),
            Val::Null => ValueRef::Null,
        }))
    }
}

impl ToSql for Val<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Val::I(v) if *ty == Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
            Val::I(v) => v.to_sql(ty, out),
            Val::T(v) => v.to_sql(ty, out),
            Val::B(v) => v.to_sql(ty, out),
            Val::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A ferry store: one open connection with the schema migrated.
pub struct Store {
    conn: Conn,
    /// Set when work on this connection stopped midway (a panic): session
    /// state such as a run's claim may remain, so it must not be reused.
    broken: bool,
    /// Who acts through this store, for the audit log ("cli:<user>", an
    /// admin's email); "system" until set.
    actor: String,
    /// PostgreSQL: the URL it was opened with, for [`Store::reader`].
    url: Option<String>,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// SQLite's page cache of a connection, in KiB (negative, as the pragma
/// takes it): 256 MB for the connection that writes.
const WRITER_CACHE_KIB: i64 = -262_144;
/// ... and 32 MB for a sibling that reads beside it.
const SIBLING_CACHE_KIB: i64 = -32_768;

impl Store {
    /// Names who the following actions are audited as.
    pub fn set_actor(&mut self, actor: impl Into<String>) {
        self.actor = actor.into();
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Opens `url`: `postgres://…`/`postgresql://…` for a server, otherwise
    /// an SQLite file (`sqlite://path`, `sqlite:path` or a plain path),
    /// created if missing. Migrations run before the store is returned. A
    /// URL that names no database (empty, `sqlite:`, `:memory:`, whose
    /// writes would vanish) is refused.
    pub fn open(url: &str) -> Result<Store> {
        Store::open_with(url, true)
    }

    /// [`Store::open`] for work on a database that must exist already (any
    /// command but creating the first organization or the demo): a missing
    /// SQLite file is refused, not created empty.
    pub fn open_existing(url: &str) -> Result<Store> {
        Store::open_with(url, false)
    }

    fn open_with(url: &str, create: bool) -> Result<Store> {
        let conn = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| StoreError::Open { url: redact_url(url), reason: e.to_string() })?;
            Conn::Postgres(Box::new(client))
        } else {
            let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
            if path.trim().is_empty() || path == ":memory:" || path.starts_with("file::memory:") {
                return Err(StoreError::NoDatabase {
                    url: url.to_owned(),
                    reason: "it names no database file (set --db or FERRY_DB to a file path or a postgres:// URL; \
                             an empty or in-memory database would lose every write)"
                        .to_owned(),
                });
            }
            let mut flags = rusqlite::OpenFlags::default();
            if !create {
                flags.remove(rusqlite::OpenFlags::SQLITE_OPEN_CREATE);
            }
            let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(|e| {
                if !create && !std::path::Path::new(path).exists() {
                    StoreError::NoDatabase {
                        url: url.to_owned(),
                        reason: "no such database file (this command never creates one: check --db or FERRY_DB, \
                                 or create an organization or the demo first)"
                            .to_owned(),
                    }
                } else {
                    StoreError::Open { url: url.to_owned(), reason: e.to_string() }
                }
            })?;
            // Imports and copy planning hold the write lock for seconds at a
            // million rows; other writers wait rather than fail.
            conn.busy_timeout(Duration::from_secs(60))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.set_prepared_statement_cache_capacity(64);
            // Unicode lowercase, as PostgreSQL's lower() (SQLite's own folds
            // ASCII only): name search finds "Øyvind" by "øyvind".
            conn.create_scalar_function(
                "ferry_lower",
                1,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8
                    | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
                |ctx| Ok(ferry_core::model::name_key(&ctx.get::<String>(0)?)),
            )?;
            Conn::Sqlite(conn)
        };
        let postgres = matches!(conn, Conn::Postgres(_));
        let mut store =
            Store { conn, broken: false, actor: "system".to_owned(), url: postgres.then(|| url.to_owned()) };
        crate::migrate::run(&mut store)?;
        Ok(store)
    }

    /// Another connection to the same SQLite file, to read beside this one
    /// on another core; `None` on PostgreSQL or an in-memory database.
    /// Open it before this store starts a write transaction (opening checks
    /// the schema). Read after that transaction has taken the write lock and
    /// before it writes, it sees exactly what the transaction sees.
    pub fn sqlite_sibling(&self) -> Result<Option<Store>> {
        match &self.conn {
            Conn::Sqlite(conn) => match conn.path() {
                Some(path) if !path.is_empty() => {
                    let sibling = Store::open_existing(path)?;
                    if let Conn::Sqlite(conn) = &sibling.conn {
                        // It reads beside the writer, mostly once through:
                        // the operating system's cache holds the file, and a
                        // page cache of the writer's size would only add to
                        // the process's memory.
                        conn.pragma_update(None, "cache_size", SIBLING_CACHE_KIB)?;
                    }
                    Ok(Some(sibling))
                }
                _ => Ok(None),
            },
            Conn::Postgres(_) => Ok(None),
        }
    }

    /// Another connection to the same database, for a long read on another
    /// thread beside this connection's writes (a run's report lines while
    /// it applies): [`Store::sqlite_sibling`] on SQLite, a second connection
    /// on PostgreSQL; `None` where there is none to open.
    pub fn reader(&self) -> Result<Option<Store>> {
        match &self.url {
            Some(url) => Store::open_existing(url).map(Some),
            None => self.sqlite_sibling(),
        }
    }

    /// SQLite: moves what the write-ahead log holds into the database file
    /// as far as readers allow, without waiting for any connection
    /// (`PRAGMA wal_checkpoint(PASSIVE)`); a writer on another connection
    /// meanwhile goes on. PostgreSQL: nothing to do.
    pub fn sqlite_checkpoint(&mut self) -> Result<()> {
        if let Conn::Sqlite(conn) = &self.conn {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs `work` in a write transaction, committed only if it returns Ok.
    /// On SQLite the transaction takes the write lock up front, so id
    /// allocation inside it cannot race another writer.
    pub fn write<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin(rusqlite::TransactionBehavior::Immediate)?;
        let value = work(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Store::write`] for bulk loads whose rows the caller has already
    /// checked against each other (an import validates every reference).
    /// SQLite then skips its per-row foreign-key lookups, which cost more
    /// than the inserts themselves; PostgreSQL keeps checking, set-based.
    /// SQLite's temporary tables and sorts go to temporary files meanwhile,
    /// not memory: a bulk load may gather and sort tens of millions of rows.
    pub fn write_checked_bulk<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if let Conn::Sqlite(conn) = &self.conn {
            conn.pragma_update(None, "foreign_keys", "OFF").map_err(StoreError::from)?;
        }
        let result = self.with_temp_files(|store| store.write(work));
        if let Conn::Sqlite(conn) = &self.conn {
            conn.pragma_update(None, "foreign_keys", "ON").map_err(StoreError::from)?;
        }
        result
    }

    /// Runs `work` with SQLite's temporary tables and sorts in temporary
    /// files instead of memory (`temp_store`): for work that sorts or
    /// gathers a whole site (millions of rows), whose memory would otherwise
    /// grow with it. Small sorts stay in memory either way. PostgreSQL
    /// spills large sorts by itself: just runs `work`.
    pub fn with_temp_files<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.with_sqlite_setting("temp_store", 1, 2, work)
    }

    /// Runs `work` with SQLite moving its write-ahead log into the database
    /// file only once the log holds `pages` pages (the default is 1,000,
    /// about 4 MB). A long run of bulk transactions then writes each hot
    /// page to the file once per checkpoint rather than once per commit,
    /// and syncs the file less often; a reader meanwhile finds more in the
    /// log. PostgreSQL: just runs `work`.
    pub fn with_checkpoints_every<T, E: From<StoreError>>(
        &mut self,
        pages: u32,
        work: impl FnOnce(&mut Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.with_sqlite_setting("wal_autocheckpoint", i64::from(pages), 1000, work)
    }

    /// Sets an SQLite pragma to `during` for `work`, then to `after` (the
    /// connection's default; these helpers do not nest).
    fn with_sqlite_setting<T, E: From<StoreError>>(
        &mut self,
        pragma: &str,
        during: i64,
        after: i64,
        work: impl FnOnce(&mut Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if let Conn::Sqlite(conn) = &self.conn {
            conn.pragma_update(None, pragma, during).map_err(StoreError::from)?;
        }
        let result = work(self);
        // The work's outcome stands (it may have committed); a connection
        // that cannot be set back is not used again.
        if let Conn::Sqlite(conn) = &self.conn
            && conn.pragma_update(None, pragma, after).is_err()
        {
            self.broken = true;
        }
        result
    }

    /// Whether the connection is gone (PostgreSQL closed it) or was marked
    /// broken; a SQLite file is otherwise never.
    pub fn is_broken(&self) -> bool {
        self.broken
            || match &self.conn {
                Conn::Postgres(client) => client.is_closed(),
                Conn::Sqlite(_) => false,
            }
    }

    /// Marks the connection as not to be reused (see [`Store::is_broken`]).
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Runs `work` in a transaction that sees one consistent snapshot.
    pub fn read<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Tx<'_>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut tx = self.begin(rusqlite::TransactionBehavior::Deferred)?;
        let value = work(&mut tx)?;
        tx.commit()?;
        Ok(value)
    }

    fn begin(&mut self, behavior: rusqlite::TransactionBehavior) -> Result<Tx<'_>> {
        Ok(match &mut self.conn {
            Conn::Sqlite(conn) => Tx::Sqlite(conn.transaction_with_behavior(behavior)?),
            Conn::Postgres(client) => Tx::Postgres(client.transaction()?),
        })
    }
}

/// The result of a scoped thread (one reading on a sibling connection,
/// say); a panic there goes on in the caller.
pub fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Hides the password of a connection URL in messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***@{}", &url[..scheme_end], &url[at + 1..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// An open transaction on either backend.
pub enum Tx<'c> {
    Sqlite(rusqlite::Transaction<'c>),
    Postgres(postgres::Transaction<'c>),
}

/// One result row.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// A column of a result row: its name (`r.int("id")`), which survives a
/// change to the select list, or its position.
pub trait Column: rusqlite::RowIndex + postgres::row::RowIndex + std::fmt::Display + Copy {}
impl Column for usize {}
impl Column for &str {}

impl Row<'_> {
    pub fn int(&self, c: impl Column) -> Result<i64> {
        Ok(match self {
            Row::Sqlite(r) => r.get(c)?,
            Row::Postgres(r) => r.try_get(c)?,
        })
    }

    pub fn opt_int(&self, c: impl Column) -> Result<Option<i64>> {
        Ok(match self {
            Row::Sqlite(r) => r.get(c)?,
            Row::Postgres(r) => r.try_get(c)?,
        })
    }

    pub fn text(&self, c: impl Column) -> Result<&str> {
        Ok(match self {
            Row::Sqlite(r) => r.get_ref(c)?.as_str().map_err(|e| StoreError::decode(c, e))?,
            Row::Postgres(r) => r.try_get(c)?,
        })
    }

    pub fn opt_text(&self, c: impl Column) -> Result<Option<&str>> {
        Ok(match self {
            Row::Sqlite(r) => r.get_ref(c)?.as_str_or_null().map_err(|e| StoreError::decode(c, e))?,
            Row::Postgres(r) => r.try_get(c)?,
        })
    }

    /// Column `c` as one of ferry's enums, read by `parse` from the text the
    /// schema keeps; a value that is not one is a decode error naming it,
    /// never a default.
    pub fn parsed<T>(&self, c: impl Column, what: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
        let value = self.text(c)?;
        parse(value).ok_or_else(|| StoreError::decode(c, format!("{value:?} is not a {what}")))
    }

    /// Column `c` as one of ferry's enums stored as a number.
    pub fn coded<T>(&self, c: impl Column, what: &str, from_code: impl Fn(i64) -> Option<T>) -> Result<T> {
        let value = self.int(c)?;
        from_code(value).ok_or_else(|| StoreError::decode(c, format!("{value} is not a {what}")))
    }

    pub fn bool(&self, c: impl Column) -> Result<bool> {
        Ok(match self {
            Row::Sqlite(r) => r.get(c)?,
            Row::Postgres(r) => r.try_get(c)?,
        })
    }
}

/// SQLite spells numbered parameters `?n`; ferry's SQL uses `$n` for both.
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    // Inside a string literal ('…', '' escaping a quote) or a quoted
    // identifier ("…"), `$1` is text, not a parameter.
    let mut quoted: Option<char> = None;
    while let Some(c) = chars.next() {
        match quoted {
            Some(q) if c == q => quoted = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quoted = Some(c),
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    Cow::Owned(out)
}

fn pg_params<'a>(params: &'a [Val<'a>]) -> impl ExactSizeIterator<Item = &'a dyn ToSql> {
    params.iter().map(|p| p as &dyn ToSql)
}

impl<'c> Tx<'c> {
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) fn commit(self) -> Result<()> {
        let started = trace_sql().then(std::time::Instant::now);
        match self {
            Tx::Sqlite(tx) => tx.commit()?,
            Tx::Postgres(tx) => tx.commit()?,
        }
        trace(started, "COMMIT", 0);
        Ok(())
    }

    /// Runs several statements without parameters (schema changes).
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.execute_batch(sql)?,
            Tx::Postgres(tx) => tx.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Runs one statement; returns the number of rows it changed. With
    /// `FERRY_TRACE_SQL` set, prints each statement's time (never its
    /// parameters) to stderr.
    pub fn execute(&mut self, sql: &str, params: &[Val<'_>]) -> Result<u64> {
        let started = trace_sql().then(std::time::Instant::now);
        let changed = match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(&sqlite_sql(sql))?;
                stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64
            }
            Tx::Postgres(tx) => {
                let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                tx.execute(sql, &params)?
            }
        };
        trace(started, sql, changed);
        Ok(changed)
    }

    /// Streams the rows of a query through `each`, one at a time.
    pub fn query_each(
        &mut self,
        sql: &str,
        params: &[Val<'_>],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        let started = trace_sql().then(std::time::Instant::now);
        let mut seen = 0u64;
        let mut each = |row: &Row<'_>| {
            seen += 1;
            each(row)
        };
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(&sqlite_sql(sql))?;
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(row) = rows.next()? {
                    each(&Row::Sqlite(row))?;
                }
            }
            Tx::Postgres(tx) => {
                let mut rows = tx.query_raw(sql, pg_params(params))?;
                while let Some(row) = rows.next()? {
                    each(&Row::Postgres(&row))?;
                }
            }
        }
        trace(started, sql, seen);
        Ok(())
    }

    /// The first row of a query, if any, mapped by `map`.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Val<'_>],
        map: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut map = Some(map);
        let mut found = None;
        self.query_each(sql, params, |row| {
            if let Some(map) = map.take() {
                found = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Every row of a query, mapped by `map`.
    pub fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[Val<'_>],
        mut map: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, params, |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Refreshes the planner's statistics of `tables` after bulk writes.
    /// Without them both planners take a table of a million rows for empty
    /// and pick joins that probe it once per row of another. SQLite samples
    /// (`analysis_limit`), so this costs milliseconds.
    pub fn analyze(&mut self, tables: &[&str]) -> Result<()> {
        match self {
            Tx::Postgres(tx) => tx.batch_execute(&format!("ANALYZE {}", tables.join(", ")))?,
            Tx::Sqlite(tx) => {
                let mut sql = String::from("PRAGMA analysis_limit = 1000;");
                for table in tables {
                    sql.push_str(&format!(" ANALYZE {table};"));
                }
                tx.execute_batch(&sql)?;
            }
        }
        Ok(())
    }

    /// SQLite: a number that changes whenever another connection commits
    /// (this connection's own commits, and checkpoints, leave it as it is),
    /// so work read ahead by another connection can be checked for being
    /// still what this one would read. PostgreSQL: `None`.
    pub fn sqlite_data_version(&mut self) -> Result<Option<i64>> {
        match self {
            Tx::Sqlite(tx) => Ok(Some(tx.query_row("PRAGMA data_version", [], |r| r.get(0))?)),
            Tx::Postgres(_) => Ok(None),
        }
    }

    /// Takes the lock every id-allocating writer holds: SQLite's write
    /// transaction already is one; on PostgreSQL an advisory lock until
    /// commit.
    pub fn lock_for_writing_ids(&mut self) -> Result<()> {
        if let Tx::Postgres(tx) = self {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        }
        Ok(())
    }

    /// A stamp for the memberships this transaction writes (their `seq`):
    /// the clock, advanced by one. On PostgreSQL the clock's row stays
    /// locked until commit, so a stamp is always above the clock another
    /// transaction reads ([`Tx::clock`]) before this one commits: a run's
    /// mark never passes a membership it could not see.
    pub fn stamp(&mut self) -> Result<i64> {
        self.query_opt("UPDATE ferry_clock SET value = value + 1 WHERE id = 1 RETURNING value", &[], |r| r.int(0))?
            .ok_or_else(|| StoreError::Invalid("the database has no ferry_clock row".to_owned()))
    }

    /// The clock as committed: every membership stamped at or below it is
    /// visible to this transaction's later reads.
    pub fn clock(&mut self) -> Result<i64> {
        Ok(self.query_opt("SELECT value FROM ferry_clock WHERE id = 1", &[], |r| r.int(0))?.unwrap_or(0))
    }
}

/// The advisory lock of id-allocating writers on PostgreSQL.
const WRITE_LOCK: i64 = 0x6665_7272_7902;

/// Hands out ids for one table inside one transaction, under the writers'
/// lock. The table's ids are never taken from a database default: the next
/// id is above both `MAX(id)` and the table's reservation (ids a copy plan
/// handed out for rows it writes later, see [`IdAllocator::reserve`]), so
/// it is unique on both backends and needs no round trip per row.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    table: &'static str,
    next: i64,
}

impl IdAllocator {
    pub fn start(tx: &mut Tx<'_>, table: &'static str) -> Result<IdAllocator> {
        tx.lock_for_writing_ids()?;
        let max = tx.query_opt(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), &[], |r| r.int(0))?.unwrap_or(0);
        let reserved = tx
            .query_opt("SELECT last_id FROM id_reservations WHERE table_name = $1", &[Val::T(table)], |r| r.int(0))?
            .unwrap_or(0);
        Ok(IdAllocator { table, next: max.max(reserved) + 1 })
    }

    pub fn next_id(&mut self) -> i64 {
        self.next += 1;
        self.next - 1
    }

    /// Keeps every id handed out so far from every later allocator, in the
    /// caller's transaction, for ids whose rows are written by later
    /// transactions (a copy plan's new accounts, projects, organizations
    /// and group). Ids whose rows the same transaction writes need not be
    /// reserved: `MAX(id)` already covers them. Every allocated table has
    /// its row (migration 6).
    pub fn reserve(&self, tx: &mut Tx<'_>) -> Result<()> {
        tx.execute(
            "UPDATE id_reservations SET last_id = $2 WHERE table_name = $1 AND last_id < $2",
            &[Val::T(self.table), Val::I(self.next - 1)],
        )?;
        Ok(())
    }
}

pub(crate) fn trace(started: Option<std::time::Instant>, sql: &str, rows: u64) {
    if let Some(started) = started {
        let head: String = sql.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(90).collect();
        static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let first = *FIRST.get_or_init(|| started);
        let _ = writeln!(
            std::io::stderr(),
            "sql {:>8.3}s {rows:>9} rows  at {:>8.3}s  {head}",
            started.elapsed().as_secs_f64(),
            started.duration_since(first).as_secs_f64()
        );
    }
}

/// Whether `FERRY_TRACE_SQL` asks for statement timings (read once).
pub(crate) fn trace_sql() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FERRY_TRACE_SQL").is_some())
}

#[cfg(test)]
mod tests {

    #[test]
    fn parameters_are_renumbered_outside_quotes_only() {
        assert_eq!(
            super::sqlite_sql("SELECT $1, '$2', 'it''s $3', \"$4\", $5"),
            "SELECT ?1, '$2', 'it''s $3', \"$4\", ?5"
        );
        assert_eq!(super::sqlite_sql("SELECT 1"), "SELECT 1");
    }

    use super::*;

    #[test]
    fn numbered_parameters_become_sqlite_spelling() {
        assert_eq!(sqlite_sql("SELECT $1, $2 WHERE x = $10"), "SELECT ?1, ?2 WHERE x = ?10");
        assert_eq!(sqlite_sql("SELECT 1"), "SELECT 1");
    }

    /// What the copy's read-ahead relies on: only another connection's
    /// commit moves the number, never this connection's own commits nor a
    /// checkpoint by another.
    #[test]
    fn the_data_version_moves_only_with_another_connections_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let mut store = Store::open(path.to_str().unwrap()).unwrap();
        let mut other = store.sqlite_sibling().unwrap().expect("a file has siblings");
        let version = |s: &mut Store| s.read(|tx| tx.sqlite_data_version()).unwrap();
        store.write(|tx| tx.batch("CREATE TABLE t (x INTEGER)")).unwrap();
        let before = version(&mut store);
        store.write(|tx| tx.execute("INSERT INTO t (x) VALUES (1)", &[])).unwrap();
        assert_eq!(version(&mut store), before, "its own commit");
        other.sqlite_checkpoint().unwrap();
        assert_eq!(version(&mut store), before, "a checkpoint");
        other.write(|tx| tx.execute("INSERT INTO t (x) VALUES (2)", &[])).unwrap();
        assert_ne!(version(&mut store), before, "another connection's commit");
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
