//! Embedded schema migrations, run when a store opens.

use crate::conn::{Backend, Store, Tx, Val};
use crate::{Result, StoreError};

struct Migration {
    version: u32,
    sqlite: &'static str,
    postgres: &'static str,
    /// Rows the SQL cannot compute, written in the same transaction.
    then: Option<fn(&mut Tx<'_>) -> Result<()>>,
}

/// Migration `version`, from the files of that name in both folders.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
            then: None,
        }
    };
    ($version:literal, $name:literal, then $then:path) => {
        Migration { then: Some($then), ..migration!($version, $name) }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_copy"),
    migration!(3, "0003_remediation"),
    migration!(4, "0004_server"),
    migration!(5, "0005_run_counts"),
    migration!(6, "0006_trust"),
    migration!(7, "0007_plans"),
    migration!(8, "0008_search", then crate::accounts::index_and_count),
    migration!(9, "0009_typed_runs", then canonical_times),
    migration!(10, "0010_delta_runs"),
    migration!(11, "0011_request_order"),
    migration!(12, "0012_arrivals"),
];

/// Times written before ferry kept one format (some carried `+00:00` and
/// nanoseconds) are written again in [`ferry_core::model::timestamp`]'s.
fn canonical_times(tx: &mut Tx<'_>) -> Result<()> {
    const COLUMNS: [(&str, &str, &str); 5] = [
        ("orgs", "id", "created_at"),
        ("sites", "id", "created_at"),
        ("copy_runs", "id", "started_at"),
        ("copy_runs", "id", "finished_at"),
        ("schema_migrations", "version", "applied_at"),
    ];
    for (table, key, column) in COLUMNS {
        let rows =
            tx.query_all(&format!("SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL"), &[], |r| {
                Ok((r.int(0)?, r.text(1)?.to_owned()))
            })?;
        for (id, value) in rows {
            let Ok(at) = chrono::DateTime::parse_from_rfc3339(&value) else { continue };
            let canonical = ferry_core::model::timestamp(at.with_timezone(&chrono::Utc));
            if canonical != value {
                tx.execute(
                    &format!("UPDATE {table} SET {column} = $2 WHERE {key} = $1"),
                    &[Val::I(id), Val::T(&canonical)],
                )?;
            }
        }
    }
    Ok(())
}

/// Tables a SQLite migration rebuilds (to change a constraint), and the
/// tables whose foreign keys point at them, checked before commit.
const REBUILT: [&str; 1] = ["copy_runs"];
const REBUILT_REFERRERS: [&str; 3] = ["copy_customers", "copy_projects", "copy_organizations"];

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
            if let Some(then) = migration.then {
                then(tx).map_err(|e| StoreError::Migration { version: migration.version, reason: e.to_string() })?;
            }
            let now = ferry_core::model::now();
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[Val::I(i64::from(migration.version)), Val::T(&now)],
            )?;
        }
        if backend == Backend::Sqlite {
            // Only what the rebuilt tables refer to: a database may hold
            // older dangling rows (copies once ran with foreign keys off),
            // which no migration should refuse to run over.
            for table in REBUILT_REFERRERS {
                let broken =
                    tx.query_opt(&format!("PRAGMA foreign_key_check({table})"), &[], |r| Ok(r.text(2)?.to_owned()))?;
                if let Some(parent) = broken.filter(|parent| REBUILT.contains(&parent.as_str())) {
                    return Err(StoreError::Migration {
                        version: u32::try_from(latest).unwrap_or(u32::MAX),
                        reason: format!("rows of {table} would lose their {parent}; nothing was migrated"),
                    });
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::conn::{Store, Val};

    /// A SQLite database as a ferry that knew only the first `known`
    /// migrations left it (foreign keys on, as ferry opens it).
    fn earlier_database(path: &std::path::Path, known: usize) -> rusqlite::Connection {
        let old = rusqlite::Connection::open(path).unwrap();
        old.pragma_update(None, "foreign_keys", "ON").unwrap();
        old.create_scalar_function("ferry_lower", 1, rusqlite::functions::FunctionFlags::SQLITE_UTF8, |ctx| {
            Ok(ferry_core::model::name_key(&ctx.get::<String>(0)?))
        })
        .unwrap();
        old.execute_batch("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
            .unwrap();
        for migration in &MIGRATIONS[..known] {
            old.execute_batch(migration.sqlite).unwrap();
            old.execute("INSERT INTO schema_migrations VALUES (?1, 'then')", [migration.version]).unwrap();
        }
        old
    }

    /// Migration 6 rebuilds `copy_runs` on SQLite (to allow `failed`): a
    /// database migrated by an earlier ferry keeps every run and decision,
    /// its foreign keys hold, and ids its unfinished runs reserved are kept
    /// from other writers.
    #[test]
    fn an_earlier_database_keeps_its_runs_through_migration_6() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = earlier_database(&path, 5);
        old.execute_batch(
            "INSERT INTO orgs (id, name, created_at) VALUES (1, 'acme', 'then');
             INSERT INTO sites (id, org_id, slug, created_at) VALUES (1, 1, 'eu', 'then'), (2, 1, 'us', 'then');
             INSERT INTO copy_runs (id, source_site_id, destination_site_id, options, state, phase, cursor,
                                    group_name, group_id, started_at, requests_copied)
             VALUES (3, 1, 2, '{}', 'applying', 1, 0, 'customers-from-eu', 7, 'then', 5);
             INSERT INTO copy_customers VALUES (3, 11, 42, NULL, 1, 'None', 'Portal-only', 0, 'po-x', 0, 0);",
        )
        .unwrap();
        drop(old);

        let mut store = Store::open(path.to_str().unwrap()).unwrap();
        let run = store
            .read(|tx| {
                tx.query_opt(
                    "SELECT state, phase, group_name, group_id, requests_copied, error FROM copy_runs WHERE id = 3",
                    &[],
                    |r| {
                        Ok((
                            r.text(0)?.to_owned(),
                            r.int(1)?,
                            r.text(2)?.to_owned(),
                            r.int(3)?,
                            r.int(4)?,
                            r.opt_text(5)?.map(str::to_owned),
                        ))
                    },
                )
            })
            .unwrap();
        assert_eq!(run, Some(("applying".to_owned(), 1, "customers-from-eu".to_owned(), 7, 5, None)));
        let reserved = |store: &mut Store, table: &str| {
            store
                .read(|tx| {
                    tx.query_opt("SELECT last_id FROM id_reservations WHERE table_name = $1", &[Val::T(table)], |r| {
                        r.int(0)
                    })
                })
                .unwrap()
        };
        assert_eq!(reserved(&mut store, "accounts"), Some(42));
        assert_eq!(reserved(&mut store, "groups"), Some(7));
        let checks =
            store.read(|tx| tx.query_all("PRAGMA foreign_key_check", &[], |r| Ok(r.text(0)?.to_owned()))).unwrap();
        assert!(checks.is_empty(), "{checks:?}");
        // `failed` is allowed now, and the decisions still belong to their
        // run (foreign keys on).
        store.write(|tx| tx.execute("UPDATE copy_runs SET state = 'failed', error = 'x' WHERE id = 3", &[])).unwrap();
        let refused = store.write(|tx| tx.execute("DELETE FROM copy_runs WHERE id = 3", &[])).unwrap_err();
        assert!(refused.to_string().contains("FOREIGN KEY"), "{refused}");
    }

    /// Migration 9 rebuilds `copy_runs` on SQLite: the runs and their
    /// decisions stay, `summary` goes, a phase ferry does not know is
    /// refused, and times an earlier ferry wrote with `+00:00` and
    /// nanoseconds are written again as milliseconds with `Z`; text that is
    /// no time is left as it is.
    #[test]
    fn migration_9_keeps_runs_and_writes_every_time_one_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = earlier_database(&path, 8);
        old.execute_batch(
            "INSERT INTO orgs (id, name, created_at) VALUES (1, 'acme', '2026-11-30T10:00:00.123456789+00:00');
             INSERT INTO sites (id, org_id, slug, created_at) VALUES (1, 1, 'eu', '2026-11-30T12:00:00+02:00'),
                                                               (2, 1, 'us', 'then');
             INSERT INTO copy_runs (id, source_site_id, destination_site_id, options, state, phase, cursor,
                                    started_at, finished_at, summary, requests_copied, error)
             VALUES (3, 1, 2, '{}', 'rolled_back', 4, 0, '2026-11-30T10:00:01.5Z',
                     '2026-11-30T10:05:00.000000001+00:00', '{\"x\": 1}', 0, NULL);
             INSERT INTO copy_customers VALUES (3, 11, 42, NULL, 1, 'None', 'Portal-only', 0, 'po-x', 0, 0);",
        )
        .unwrap();
        drop(old);

        let mut store = Store::open(path.to_str().unwrap()).unwrap();
        let times = store
            .read(|tx| {
                tx.query_all(
                    "SELECT created_at FROM orgs UNION ALL SELECT created_at FROM sites
                     UNION ALL SELECT started_at FROM copy_runs UNION ALL SELECT finished_at FROM copy_runs",
                    &[],
                    |r| Ok(r.text(0)?.to_owned()),
                )
            })
            .unwrap();
        assert_eq!(
            times,
            [
                "2026-11-30T10:00:00.123Z",
                "2026-11-30T10:00:00.000Z",
                "then",
                "2026-11-30T10:00:01.500Z",
                "2026-11-30T10:05:00.000Z"
            ]
        );
        let decisions = store
            .read(|tx| tx.query_opt("SELECT COUNT(*) FROM copy_customers WHERE run_id = 3", &[], |r| r.int(0)))
            .unwrap();
        assert_eq!(decisions, Some(1));
        assert!(store.read(|tx| tx.query_opt("SELECT summary FROM copy_runs", &[], |r| r.int(0))).is_err());
        let refused = store.write(|tx| tx.execute("UPDATE copy_runs SET phase = 5 WHERE id = 3", &[])).unwrap_err();
        assert!(refused.to_string().contains("CHECK"), "{refused}");
        let checks =
            store.read(|tx| tx.query_all("PRAGMA foreign_key_check", &[], |r| Ok(r.text(0)?.to_owned()))).unwrap();
        assert!(checks.is_empty(), "{checks:?}");
    }

    /// Migration 8 indexes the search terms of every account already
    /// there (computed in Rust) and counts every site's customers.
    #[test]
    fn migration_8_indexes_and_counts_the_customers_already_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = earlier_database(&path, 7);
        old.execute_batch(
            "INSERT INTO orgs (id, name, created_at) VALUES (1, 'acme', 'then');
             INSERT INTO sites (id, org_id, slug, created_at) VALUES (1, 1, 'eu', 'then');
             INSERT INTO accounts (id, kind, site_id, ext_id, email, email_key, display_name, name_key, active, email_verified)
             VALUES (1, 'customer', 1, 'p1', 'jose.muller@acme.test', 'jose.muller@acme.test', 'José Müller', 'josé müller', 1, 1),
                    (2, 'atlassian', NULL, 'a1', 'jose.muller@acme.test', 'jose.muller@acme.test', 'Jose', 'jose', 1, 1);
             INSERT INTO site_users (site_id, account_id) VALUES (1, 2);",
        )
        .unwrap();
        drop(old);

        let mut store = Store::open(path.to_str().unwrap()).unwrap();
        let terms = store
            .read(|tx| {
                tx.query_all("SELECT term FROM customer_terms ORDER BY term", &[], |r| Ok(r.text(0)?.to_owned()))
            })
            .unwrap();
        assert_eq!(
            terms,
            ["acme.test", "jose", "jose muller", "jose.muller@acme.test", "muller", "muller@acme.test", "test"]
        );
        let counts = store.read(|tx| crate::accounts::counts(tx, 1)).unwrap();
        assert_eq!(counts, crate::accounts::CustomerCounts { portal_only: 1, atlassian: 1, duplicates: Some(1) });
    }
}
