//! Fresh databases for integration tests, on both backends, over real
//! connections: a temporary SQLite file, or a new database on the PostgreSQL
//! server named by `FERRY_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when the test ends.

pub mod jira;

use std::sync::atomic::{AtomicU32, Ordering};

use ferry_store::Store;

pub use ferry_store::Backend;

/// The server the PostgreSQL half of the suite runs on.
pub fn postgres_admin_url() -> String {
    std::env::var("FERRY_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One test's own database.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: tempfile::TempDir,
    pg_database: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    /// A new empty database. Panics (failing the test) when the backend is
    /// unreachable: a suite that silently skips PostgreSQL proves nothing.
    #[allow(clippy::expect_used, clippy::panic)]
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        match backend {
            Backend::Sqlite => {
                let url = dir.path().join("ferry.db").display().to_string();
                TestDb { url, backend, _dir: dir, pg_database: None }
            }
            Backend::Postgres => {
                let name = format!(
                    "ferry_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0)
                );
                let admin = postgres_admin_url();
                let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin} is not reachable ({e}); start it or set FERRY_TEST_PG")
                });
                client
                    .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"))
                    .expect("create test database");
                // FERRY_TEST_PG names a database (…/postgres); swap it for ours.
                let server = admin.rsplit_once('/').map_or(admin.as_str(), |(server, _)| server);
                let url = format!("{server}/{name}");
                TestDb { url, backend, _dir: dir, pg_database: Some(name) }
            }
        }
    }

    /// Opens (and migrates) the database.
    #[allow(clippy::expect_used)]
    pub fn store(&self) -> Store {
        Store::open(&self.url).expect("open test store")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_database
            && let Ok(mut client) = postgres::Client::connect(&postgres_admin_url(), postgres::NoTls)
        {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// Declares each listed test function (taking a [`Backend`]) once per
/// backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::Backend::Postgres) } )*
        }
    };
}

/// Every file in `dir` by name, with its text (an export, a report).
/// A folder that cannot be read fails the test.
#[allow(clippy::panic)]
pub fn read_folder(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    let read = || -> std::io::Result<std::collections::BTreeMap<String, String>> {
        let mut files = std::collections::BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.insert(name, std::fs::read_to_string(&path)?);
        }
        Ok(files)
    };
    read().unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
}

/// The seed's story on six customers (`examples/story` in the repository).
pub fn story_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/story")
}

/// What `ferry access <site> <email> [--type]` prints: the keys of the
/// requests that customer can view, sorted (`ferry_ops::access`, as the CLI
/// and the API ask it). A customer the site has no account for fails the
/// test, so "no account" never passes for "no access".
#[allow(clippy::panic)]
pub fn access(
    store: &mut Store,
    site: &str,
    email: &str,
    prefer: Option<ferry_core::model::AccountType>,
) -> Vec<String> {
    match ferry_ops::access::customer_access(store, site, email, prefer) {
        Ok(keys) => keys,
        Err(e) => panic!("access of {email} on {site}: {e}"),
    }
}

/// Asserts the database's own integrity checks pass: on SQLite
/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` (SQLite checks
/// foreign keys only when told to); PostgreSQL enforces its constraints on
/// every statement, so there is nothing to ask.
#[allow(clippy::expect_used, clippy::panic)]
pub fn assert_integrity(store: &mut Store) {
    assert_counts_kept(store);
    if store.backend() != Backend::Sqlite {
        return;
    }
    let (integrity, foreign_keys) = store
        .read(|tx| {
            let integrity = tx.query_all("PRAGMA integrity_check", &[], |r| Ok(r.text(0)?.to_owned()))?;
            let foreign_keys = tx.query_all("PRAGMA foreign_key_check", &[], |r| {
                Ok(format!("{} row {:?} -> {}", r.text(0)?, r.opt_int(1)?, r.text(2)?))
            })?;
            Ok::<_, ferry_store::StoreError>((integrity, foreign_keys))
        })
        .expect("integrity checks");
    assert_eq!(integrity, ["ok"], "PRAGMA integrity_check");
    assert!(foreign_keys.is_empty(), "PRAGMA foreign_key_check: {foreign_keys:?}");
}

/// Every site's kept customer counts (the customers page's totals) are
/// the ones its rows give now, on either backend. Duplicates may be
/// unknown only while a copy into the site is unfinished.
#[allow(clippy::expect_used)]
pub fn assert_counts_kept(store: &mut Store) {
    let sites = store
        .read(|tx| {
            let ids = tx.query_all("SELECT id, slug FROM sites", &[], |r| Ok((r.int(0)?, r.text(1)?.to_owned())))?;
            let mut sites = Vec::new();
            for (id, slug) in ids {
                let kept = ferry_store::accounts::counts(tx, id)?;
                let actual = ferry_store::accounts::counts_from_rows(tx, id)?;
                let copying = ferry_store::sites::unfinished_run_into(tx, id)?.is_some();
                sites.push((slug, kept, actual, copying));
            }
            Ok::<_, ferry_store::StoreError>(sites)
        })
        .expect("customer counts");
    for (slug, kept, actual, copying) in sites {
        if copying && kept.duplicates.is_none() {
            assert_eq!((kept.portal_only, kept.atlassian), (actual.portal_only, actual.atlassian), "counts of {slug}");
        } else {
            assert_eq!(kept, actual, "customer counts of {slug}");
        }
    }
}
