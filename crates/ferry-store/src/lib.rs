//! ferry's store. One connection type over embedded SQLite (the default) and
//! PostgreSQL; SQL is written once with `$n` placeholders and runs on both
//! wherever the dialects agree. Capabilities live in their own modules
//! (`sites`, `accounts`, `access`); bulk paths in [`bulk`].

pub mod access;
pub mod accounts;
pub mod audit;
pub mod bulk;
mod conn;
mod migrate;
pub mod plans;
pub mod sites;
pub mod web;

pub use conn::{Backend, IdAllocator, Row, Store, Tx, Val, joined, redact_url};

/// Errors of the store layer. The message is fit for an admin; driver detail
/// is kept in the source chain.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {reason}")]
    Open { url: String, reason: String },
    /// The setting names no database, or one that does not exist where it
    /// must: bad input, nothing was written.
    #[error("cannot open database {url}: {reason}")]
    NoDatabase { url: String, reason: String },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("database schema migration {version} failed: {reason}")]
    Migration { version: u32, reason: String },
    #[error("{0}")]
    NotFound(String),
    /// A value that is not of its kind (a name, a key): bad input.
    #[error("{0}")]
    Invalid(String),
    /// The input contradicts what the database holds (a name taken, a
    /// state that refuses the action).
    #[error("{0}")]
    Conflict(String),
    /// The source site changed under a copy run in a way the run cannot
    /// follow: it repeats on resume.
    #[error("{0}")]
    SourceChanged(String),
    /// Writing outside the database failed (the output, a COPY stream).
    #[error("{0}")]
    Io(String),
    #[error("unexpected value in column {column}: {reason}")]
    Decode { column: String, reason: String },
}

impl StoreError {
    /// A value of column `column` that is not what ferry wrote there.
    pub fn decode(column: impl std::fmt::Display, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Decode { column: column.to_string(), reason: reason.to_string() }
    }

    /// A wait for a lock ran out (PostgreSQL's `lock_timeout`, SQLSTATE
    /// 55P03).
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, StoreError::Postgres(e) if e.code().is_some_and(|c| c.code() == "55P03"))
    }

    /// An `INSERT … RETURNING` that returned no row.
    pub fn no_id_returned(table: &str) -> StoreError {
        StoreError::Decode { column: format!("{table}.id"), reason: "INSERT … RETURNING id gave no row".to_owned() }
    }

    /// Whether the database refused a text value it cannot hold (PostgreSQL:
    /// a NUL character, SQLSTATE 22021): bad input, not a failure.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Postgres(e) if e.code().is_some_and(|c| c.code() == "22021"))
    }

    /// Whether the disk under the database is full or failing (SQLite's
    /// I/O and full errors; PostgreSQL's SQLSTATE classes 53 and 58): the
    /// admin frees space or mends the disk, then runs the command again.
    pub fn is_disk_failure(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::DiskFull)
            }
            StoreError::Postgres(e) => e.code().is_some_and(|c| matches!(c.code().get(..2), Some("53" | "58"))),
            _ => false,
        }
    }

    /// Whether the same work may succeed when tried again: the database was
    /// busy or locked, the disk full or failing, the connection lost, the
    /// transaction chosen as a deadlock's victim. Broken constraints, bad
    /// input and undecodable rows are not: they repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Open { .. } => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::OutOfMemory
                    | rusqlite::ErrorCode::FileLockingProtocolFailed
            ),
            StoreError::Sqlite(_) => false,
            // No server error: the connection or the network failed. Else
            // by SQLSTATE class: 08 connection, 40 rollback (serialization,
            // deadlock), 53 insufficient resources (disk full), 57 operator
            // intervention (shutdown, cancel), 58 system error (I/O).
            StoreError::Postgres(e) => match e.code() {
                None => true,
                Some(state) => matches!(state.code().get(..2), Some("08" | "40" | "53" | "57" | "58")),
            },
            StoreError::NoDatabase { .. }
            | StoreError::Migration { .. }
            | StoreError::NotFound(_)
            | StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::SourceChanged(_)
            | StoreError::Io(_)
            | StoreError::Decode { .. } => false,
        }
    }

    /// A stable code for scripts and the API.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "db_open",
            StoreError::NoDatabase { .. } => "no_database",
            StoreError::Sqlite(_) | StoreError::Postgres(_) | StoreError::Decode { .. } => "db",
            StoreError::Migration { .. } => "db_migration",
            StoreError::NotFound(_) => "not_found",
            StoreError::Invalid(_) => "invalid",
            StoreError::Conflict(_) => "conflict",
            StoreError::SourceChanged(_) => "source_changed",
            StoreError::Io(_) => "io",
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The server's own message for database errors ("db error" alone says
/// nothing); the driver's text otherwise.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
