//! Embedded schema migrations, run when a store opens.

use crate::conn::{Backend, Store, Val};
use crate::{Result, StoreError};

struct Migration {
    version: u32,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_copy.sql"),
        postgres: include_str!("../migrations/postgres/0002_copy.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_remediation.sql"),
        postgres: include_str!("../migrations/postgres/0003_remediation.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_server.sql"),
        postgres: include_str!("../migrations/postgres/0004_server.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_run_counts.sql"),
        postgres: include_str!("../migrations/postgres/0005_run_counts.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_trust.sql"),
        postgres: include_str!("../migrations/postgres/0006_trust.sql"),
    },
];

/// Any fixed number: the advisory lock that keeps two processes from
/// migrating one PostgreSQL database at once.
const MIGRATION_LOCK: i64 = 0x6665_7272_7901;

pub(crate) fn run(store: &mut Store) -> Result<()> {
    let backend = store.backend();
    // Most opens find nothing to do: check under a read, so that opening a
    // store never waits behind a long write (a copy, an import).
    let latest = MIGRATIONS.iter().map(|m| i64::from(m.version)).max().unwrap_or(0);
    let current = store
        .read(|tx| tx.query_opt("SELECT MAX(version) FROM schema_migrations", &[], |r| r.opt_int(0)))
        .ok()
        .flatten()
        .flatten();
    if current == Some(latest) {
        return Ok(());
    }
    if let Some(newer) = current.filter(|v| *v > latest) {
        return Err(StoreError::Migration {
            version: u32::try_from(newer).unwrap_or(u32::MAX),
            reason: format!(
                "the database was migrated by a newer ferry (schema version {newer}; this ferry knows up to {latest}); \
                 use that version or newer"
            ),
        });
    }
    // SQLite rebuilds a table to change a constraint, which needs foreign
    // keys off (SQLite's own procedure); they are checked before commit.
    store.write_checked_bulk(|tx| {
        if backend == Backend::Postgres {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[Val::I(MIGRATION_LOCK)])?;
        }
        tx.batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )?;
        let applied: Vec<i64> = tx.query_all("SELECT version FROM schema_migrations", &[], |r| r.int(0))?;
        for migration in MIGRATIONS {
            if applied.contains(&i64::from(migration.version)) {
                continue;
            }
            let sql = match backend {
                Backend::Sqlite => migration.sqlite,
                Backend::Postgres => migration.postgres,
            };
            tx.batch(sql).map_err(|e| StoreError::Migration { version: migration.version, reason: e.to_string() })?;
            let now = chrono::Utc::now().to_rfc3339();
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[Val::I(i64::from(migration.version)), Val::T(&now)],
            )?;
        }
        if backend == Backend::Sqlite {
            let broken = tx.query_opt("PRAGMA foreign_key_check", &[], |r| Ok(r.text(0)?.to_owned()))?;
            if let Some(table) = broken {
                return Err(StoreError::Migration {
                    version: u32::try_from(latest).unwrap_or(u32::MAX),
                    reason: format!("a foreign key of table {table} would be broken; nothing was migrated"),
                });
            }
        }
        Ok(())
    })
}
