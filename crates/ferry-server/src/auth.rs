//! Who is asking. Admins authenticate with a session cookie (console) or an
//! API token (scripts); customers with a help-center session of one site.
//! Passwords are hashed with argon2id; session ids and API tokens are 32
//! random bytes, stored as SHA-256 (no per-request Argon2 cost).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use ferry_store::web::{self, Admin, SessionOwner};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub const SESSION_COOKIE: &str = "ferry_session";
/// The help centers' session cookie, apart from the admins' one (path
/// `/help`), so that a customer signing in to a help center in the same
/// browser never signs the admin out of the console, nor the other way.
pub const HELP_COOKIE: &str = "ferry_help_session";

/// Which session a request's path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// The console and the API.
    Admin,
    /// The help centers under `/help`.
    Help,
}

impl SessionKind {
    pub fn of_path(path: &str) -> SessionKind {
        if path == "/help" || path.starts_with("/help/") { SessionKind::Help } else { SessionKind::Admin }
    }

    fn cookie_name(self) -> &'static str {
        match self {
            SessionKind::Admin => SESSION_COOKIE,
            SessionKind::Help => HELP_COOKIE,
        }
    }

    fn cookie_path(self) -> &'static str {
        match self {
            SessionKind::Admin => "/",
            SessionKind::Help => "/help",
        }
    }
}
/// How long a sign-in lasts.
pub const SESSION_HOURS: i64 = 12;

/// A fresh secret (32 random bytes, hex): session ids, API tokens.
pub fn random_secret() -> ApiResult<String> {
    Ok(ferry_ops::secrets::random_secret()?)
}

pub use ferry_ops::secrets::verify_password;

/// How a secret is stored and looked up.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Prefix of API tokens, so that a leaked one is recognizable.
pub const TOKEN_PREFIX: &str = "ferry_";

/// The session cookie of `kind` for `id`: HttpOnly, SameSite=Lax; it
/// lasts as long as the browser session, and the server forgets the session
/// after [`SESSION_HOURS`] whatever the browser keeps.
pub fn session_cookie(kind: SessionKind, id: String) -> Cookie<'static> {
    Cookie::build((kind.cookie_name(), id)).http_only(true).same_site(SameSite::Lax).path(kind.cookie_path()).build()
}

/// The cookie that tells the browser to drop the session of `kind`.
pub fn removal_cookie(kind: SessionKind) -> Cookie<'static> {
    let mut cookie = session_cookie(kind, String::new());
    cookie.make_removal();
    cookie
}

pub fn session_expiry() -> String {
    ferry_store::audit::timestamp(chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS))
}

/// Creates a session for `owner`; returns the cookie value (the only copy
/// of the id: the store keeps its hash).
pub async fn start_session(state: &AppState, owner: SessionOwner) -> ApiResult<String> {
    let id = random_secret()?;
    let hash = secret_hash(&id);
    state
        .store(None, move |store| Ok(store.write(|tx| web::create_session(tx, &hash, owner, &session_expiry()))?))
        .await?;
    Ok(id)
}

/// Forgets the caller's session (admin or customer), if any: signing out.
pub async fn end_session(state: &AppState, caller: Caller) {
    let session = match caller {
        Caller::Admin { session, .. } => session,
        Caller::Customer { session, .. } => Some(session),
        Caller::Anonymous => None,
    };
    if let Some(id) = session {
        let hash = secret_hash(&id);
        let _ = state.store(None, move |store| Ok(store.write(|tx| web::delete_session(tx, &hash))?)).await;
    }
}

/// The caller, as far as credentials go.
#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    Admin { admin: Admin, via_token: bool, session: Option<String> },
    Customer { account_id: i64, site_id: i64, session: String },
}

impl Caller {
    /// The audit log's `actor` for this caller.
    pub fn actor(&self) -> Option<String> {
        match self {
            Caller::Admin { admin, via_token: true, .. } => Some(format!("api:{}", admin.email)),
            Caller::Admin { admin, .. } => Some(format!("console:{}", admin.email)),
            _ => None,
        }
    }
}

/// The credentials a request carries, read without the store: an API
/// token, a session cookie, or none.
#[derive(Debug, Clone)]
pub enum Credentials {
    Token(String),
    Session(String),
    None,
}

impl Credentials {
    /// The credentials of a request to `path`: a bearer token, or the
    /// session cookie of the part of the site `path` is in.
    pub fn of(headers: &axum::http::HeaderMap, path: &str) -> ApiResult<Credentials> {
        if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(ApiError::unauthorized)?;
            return Ok(Credentials::Token(token.to_owned()));
        }
        let jar = CookieJar::from_headers(headers);
        let cookie = SessionKind::of_path(path).cookie_name();
        Ok(match jar.get(cookie).map(|c| c.value().to_owned()).filter(|v| !v.is_empty()) {
            Some(id) => Credentials::Session(id),
            None => Credentials::None,
        })
    }

    /// Who these credentials belong to, on a store connection.
    pub fn resolve(self, store: &mut ferry_store::Store) -> ApiResult<Caller> {
        match self {
            Credentials::Token(token) => {
                let hash = secret_hash(&token);
                let admin = store
                    .read(|tx| match web::token_admin(tx, &hash)? {
                        Some(id) => web::admin(tx, id),
                        None => Ok(None),
                    })?
                    .ok_or_else(|| {
                        ApiError::new(
                            axum::http::StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "the API token is unknown or revoked",
                        )
                    })?;
                Ok(Caller::Admin { admin, via_token: true, session: None })
            }
            Credentials::Session(id) => {
                let hash = secret_hash(&id);
                let caller = store.read(|tx| {
                    Ok::<_, ferry_store::StoreError>(match web::session(tx, &hash)? {
                        Some(SessionOwner::Admin(admin)) => web::admin(tx, admin)?.map(|admin| Caller::Admin {
                            admin,
                            via_token: false,
                            session: Some(id),
                        }),
                        Some(SessionOwner::Customer { account_id, site_id }) => {
                            Some(Caller::Customer { account_id, site_id, session: id })
                        }
                        None => None,
                    })
                })?;
                Ok(caller.unwrap_or(Caller::Anonymous))
            }
            Credentials::None => Ok(Caller::Anonymous),
        }
    }
}

impl FromRequestParts<AppState> for Credentials {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> ApiResult<Credentials> {
        Credentials::of(&parts.headers, parts.uri.path())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Caller> {
        let credentials = Credentials::of(&parts.headers, parts.uri.path())?;
        if matches!(credentials, Credentials::None) {
            return Ok(Caller::Anonymous);
        }
        state.store(None, move |store| credentials.resolve(store)).await
    }
}

/// An org admin (by session or API token); anyone else is refused.
#[derive(Debug, Clone)]
pub struct AdminCaller {
    pub admin: Admin,
    pub via_token: bool,
    pub actor: String,
}

impl AdminCaller {
    /// Refuses unless the admin administers `org`.
    pub fn require_org(&self, org: &str) -> ApiResult<()> {
        if self.admin.orgs.iter().any(|o| o == org) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("you are not an admin of organization {org:?}")))
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<AdminCaller> {
        match Caller::from_request_parts(parts, state).await? {
            caller @ Caller::Admin { .. } => {
                let actor = caller.actor().unwrap_or_default();
                let Caller::Admin { admin, via_token, .. } = caller else { return Err(ApiError::unauthorized()) };
                Ok(AdminCaller { admin, via_token, actor })
            }
            Caller::Customer { .. } => {
                Err(ApiError::forbidden("this needs an org admin; customers sign in to the help center only"))
            }
            Caller::Anonymous => Err(ApiError::unauthorized()),
        }
    }
}
