//! What every request shares: a pool of store connections (the store is
//! synchronous, so store work runs on tokio's blocking threads) and the
//! sign-in rate limiter.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ferry_store::{Store, StoreError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{ApiError, ApiResult};

/// Opens [`Store`]s for the pool.
#[derive(Debug)]
pub struct StoreManager {
    url: String,
}

impl r2d2::ManageConnection for StoreManager {
    type Connection = Store;
    type Error = StoreError;

    fn connect(&self) -> Result<Store, StoreError> {
        Store::open(&self.url)
    }

    fn is_valid(&self, store: &mut Store) -> Result<(), StoreError> {
        store.read(|tx| tx.query_opt("SELECT CAST(1 AS BIGINT)", &[], |r| r.int(0)).map(|_| ()))
    }

    fn has_broken(&self, store: &mut Store) -> bool {
        store.is_broken()
    }
}

/// The pool, dropped on a thread of its own: closing a PostgreSQL
/// connection blocks, which tokio forbids on its worker threads (where the
/// last clone of the state may go when the server stops).
struct Pool(Option<r2d2::Pool<StoreManager>>);

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl Pool {
    fn get(&self) -> r2d2::Pool<StoreManager> {
        match &self.0 {
            Some(pool) => pool.clone(),
            None => unreachable_pool(),
        }
    }
}

#[allow(clippy::panic, reason = "the pool is only taken in drop")]
fn unreachable_pool() -> r2d2::Pool<StoreManager> {
    panic!("the store pool was used after it was dropped")
}

#[derive(Clone)]
pub struct AppState {
    pool: Arc<Pool>,
    /// Store work admitted at once: requests queue here, in order, rather
    /// than as parked threads racing for a connection.
    admitted: Arc<tokio::sync::Semaphore>,
    /// Sign-in attempts per email.
    pub(crate) sign_ins_per_email: Arc<DefaultKeyedRateLimiter<String>>,
    /// Sign-in attempts per client address (an office shares one).
    pub(crate) sign_ins_per_address: Arc<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// The largest snapshot body an import takes, in bytes.
    pub(crate) max_import_bytes: usize,
    /// New API tokens waiting to be shown once on the page the console's
    /// form redirects to: reveal id -> (admin, token, when). In memory
    /// only (a token's text is never stored), for a few minutes.
    pub(crate) reveals: Arc<std::sync::Mutex<std::collections::HashMap<String, Reveal>>>,
    /// Pulls from Jira Cloud this server started (in memory only).
    pub(crate) pulls: crate::pulls::SharedPulls,
    /// Hosts pulls may read from (`FERRY_PULL_HOSTS`, comma-separated).
    pub(crate) pull_hosts: Vec<String>,
}

/// A new token waiting to be shown: its admin, its text, when it was made.
pub(crate) type Reveal = (i64, String, std::time::Instant);

/// The largest snapshot an import over the API takes by default: 1 GiB of
/// JSON, a 2,000,000-customer demo's snapshot with room to spare (the
/// 1,000,000-customer one is about 420 MB). `FERRY_MAX_IMPORT_BYTES`
/// changes it. Other bodies keep axum's 2 MB.
pub const MAX_IMPORT_BYTES: usize = 1 << 30;

/// Store work at once: a few per core (SQLite reads are CPU work; more at
/// once only adds switching), within the pool's connections.
fn admitted() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2).clamp(2, POOL_SIZE as usize)
}

const POOL_SIZE: u32 = 16;

/// Sign-in attempts allowed per minute for one email, and from one address.
const SIGN_INS_PER_EMAIL: u32 = 10;
const SIGN_INS_PER_ADDRESS: u32 = 60;

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl AppState {
    /// Connects to the store at `url` (and migrates it).
    pub fn open(url: &str) -> Result<AppState, StoreError> {
        // Opening the first connection migrates the schema; the pool then
        // opens the rest lazily.
        drop(Store::open(url)?);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            // A closed connection is dropped when returned (has_broken); a
            // test query on every checkout would cost a query per request.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(StoreManager { url: url.to_owned() })
            .map_err(|e| StoreError::Open { url: ferry_store::redact_url(url), reason: e.to_string() })?;
        Ok(AppState {
            admitted: Arc::new(tokio::sync::Semaphore::new(admitted())),
            pool: Arc::new(Pool(Some(pool))),
            sign_ins_per_email: Arc::new(RateLimiter::keyed(per_minute(SIGN_INS_PER_EMAIL))),
            sign_ins_per_address: Arc::new(RateLimiter::keyed(per_minute(SIGN_INS_PER_ADDRESS))),
            reveals: Arc::default(),
            pulls: Arc::default(),
            pull_hosts: match std::env::var("FERRY_PULL_HOSTS") {
                Ok(hosts) if !hosts.trim().is_empty() => {
                    hosts.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect()
                }
                _ => crate::pulls::DEFAULT_PULL_HOSTS.iter().map(|h| (*h).to_owned()).collect(),
            },
            max_import_bytes: std::env::var("FERRY_MAX_IMPORT_BYTES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(MAX_IMPORT_BYTES),
        })
    }

    /// The same state allowing pulls from these hosts (tests: a fake site
    /// on this machine).
    pub fn with_pull_hosts(mut self, hosts: &[&str]) -> AppState {
        self.pull_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        self
    }

    /// The same state with another import body limit.
    pub fn with_max_import_bytes(mut self, bytes: usize) -> AppState {
        self.max_import_bytes = bytes;
        self
    }

    /// Runs `work` with a store connection on a blocking thread, admitted
    /// with the other quick work (page views, lookups).
    pub async fn store<T, F>(&self, actor: Option<String>, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> ApiResult<T> + Send + 'static,
    {
        let _permit = self.admitted.acquire().await.map_err(|_| ApiError::internal("the server is shutting down"))?;
        self.store_long(actor, work).await
    }

    /// [`AppState::store`] for work that may take seconds or minutes (an
    /// import, a check or an upgrade of a million rows): not counted among
    /// the quick work, so it never holds page views up.
    pub async fn store_long<T, F>(&self, actor: Option<String>, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> ApiResult<T> + Send + 'static,
    {
        let pool = self.pool.get();
        tokio::task::spawn_blocking(move || {
            let mut store = pool.get().map_err(|e| ApiError::internal(format!("no database connection: {e}")))?;
            store.set_actor(actor.unwrap_or_else(|| "server".to_owned()));
            // Work that panics midway may leave the connection with a
            // setting of its own (foreign keys off for a bulk write): such a
            // connection goes, it is not pooled again.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut store))) {
                Ok(result) => result,
                Err(panic) => {
                    store.mark_broken();
                    std::panic::resume_unwind(panic)
                }
            }
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's work stopped: {e}")))?
    }

    /// Runs `work` with a store connection on a thread of its own (long
    /// work: a copy run), without waiting for it.
    pub fn spawn_store<F>(&self, actor: String, work: F)
    where
        F: FnOnce(ApiResult<&mut Store>) + Send + 'static,
    {
        let pool = self.pool.get();
        std::thread::spawn(move || match pool.get() {
            Ok(mut store) => {
                store.set_actor(actor);
                // A panic midway may leave the connection holding a run's
                // claim: such a connection goes, it is not pooled again.
                let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(Ok(&mut store))));
                if finished.is_err() {
                    store.mark_broken();
                }
            }
            Err(e) => work(Err(ApiError::internal(format!("no database connection: {e}")))),
        });
    }
}
