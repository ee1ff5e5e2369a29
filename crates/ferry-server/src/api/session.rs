//! Signing in and out, and API tokens.

use std::net::SocketAddr;

use crate::extract::{Body, Path};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum_extra::extract::CookieJar;
use ferry_store::web::{self, SessionOwner};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{self, AdminCaller, Caller};
use crate::{ApiError, ApiResult, AppState, ErrorBody};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SignIn {
    pub email: String,
    pub password: String,
}

/// The signed-in admin.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub email: String,
    /// Organizations this admin administers.
    pub orgs: Vec<String>,
}

/// A stand-in hash, checked when the email is unknown so that a wrong email
/// takes as long as a wrong password.
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3PzUr7LPhWF2zixbqRaVb1jOfR3Gk9ZrvHGNZBo/gLg";

/// Checks the sign-in rate limits for this client address and email.
pub(crate) fn check_rate(state: &AppState, peer: SocketAddr, email_key: &str) -> ApiResult<()> {
    // Keys seen once and quiet since are forgotten now and then, so that
    // trying many emails does not grow the limiters for good.
    if state.sign_ins_per_email.len() > 10_000 {
        state.sign_ins_per_email.retain_recent();
    }
    if state.sign_ins_per_address.len() > 10_000 {
        state.sign_ins_per_address.retain_recent();
    }
    // An address over its limit does not use up the email's attempts, or
    // one address could keep an admin out.
    let limited = state.sign_ins_per_address.check_key(&peer.ip()).is_err()
        || state.sign_ins_per_email.check_key(&email_key.to_owned()).is_err();
    if limited {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many sign-in attempts; wait a minute and try again",
        );
        error.retry_after = Some(60);
        return Err(error);
    }
    Ok(())
}

/// Checks an admin's email and password; the admin's id when they match.
pub(crate) async fn admin_sign_in(state: &AppState, peer: SocketAddr, email: &str, password: &str) -> ApiResult<i64> {
    if email.is_empty() {
        return Err(ApiError::invalid("email is empty"));
    }
    // An address that is not valid belongs to no admin: the same answer as
    // a wrong password, after the same rate limit.
    let key = ferry_core::email::lookup_key(email);
    check_rate(state, peer, &key)?;
    let password = password.to_owned();
    state
        .store(None, move |store| {
            let found = store.read(|tx| web::admin_credentials(tx, &key))?;
            let hash = found.as_ref().map_or(DUMMY_HASH, |(_, h)| h.as_str());
            match (auth::verify_password(&password, hash), found) {
                (true, Some((id, _))) => Ok(id),
                _ => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong email or password")),
            }
        })
        .await
}

/// Sign in as an org admin: sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn, security(()),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Body(body): Body<SignIn>,
) -> ApiResult<(CookieJar, Json<Me>)> {
    let id = admin_sign_in(&state, peer, &body.email, &body.password).await?;
    let session = auth::start_session(&state, SessionOwner::Admin(id)).await?;
    let admin = state
        .store(None, move |store| Ok(store.read(|tx| web::admin(tx, id))?))
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    Ok((
        jar.add(auth::session_cookie(auth::SessionKind::Admin, session)),
        Json(Me { email: admin.email, orgs: admin.orgs }),
    ))
}

/// Sign out: ends this browser's session (admin or customer).
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", security(()), responses((status = 204)))]
pub async fn sign_out(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> ApiResult<(StatusCode, CookieJar)> {
    auth::end_session(&state, caller).await;
    Ok((StatusCode::NO_CONTENT, jar.add(auth::removal_cookie(auth::SessionKind::Admin))))
}

/// Who is signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn me(caller: AdminCaller) -> Json<Me> {
    Json(Me { email: caller.admin.email, orgs: caller.admin.orgs })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    /// What the token is for (shown in the console).
    pub name: String,
}

/// A new token. `token` is shown this once; ferry keeps only its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// The signed-in admin's API tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "session",
    responses((status = 200, body = Vec<Token>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(State(state): State<AppState>, caller: AdminCaller) -> ApiResult<Json<Vec<Token>>> {
    let id = caller.admin.id;
    let rows = state.store(None, move |store| Ok(store.read(|tx| web::tokens(tx, id))?)).await?;
    Ok(Json(
        rows.into_iter()
            .map(|t| Token { id: t.id, name: t.name, created_at: t.created_at, revoked_at: t.revoked_at })
            .collect(),
    ))
}

fn require_session(caller: &AdminCaller) -> ApiResult<()> {
    if caller.via_token {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_required",
            "API tokens are created and revoked by a signed-in admin, not with another token",
        ))
    } else {
        Ok(())
    }
}

/// Creates an API token for the signed-in admin (needs a session).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "session", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: AdminCaller,
    Body(body): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    require_session(&caller)?;
    Ok((StatusCode::CREATED, Json(new_token(&state, caller.admin.id, &body.name).await?)))
}

/// Creates an API token named `name` for admin `admin`.
pub(crate) async fn new_token(state: &AppState, admin: i64, name: &str) -> ApiResult<CreatedToken> {
    // Taken as given (the document's 1 to 100 characters, counted as it
    // counts them: code points).
    let name = name.to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name the token (1 to 100 characters)"));
    }
    let token = format!("{}{}", auth::TOKEN_PREFIX, auth::random_secret()?);
    let hash = auth::secret_hash(&token);
    let stored_name = name.clone();
    let id = state
        .store(None, move |store| Ok(store.write(|tx| web::create_token(tx, admin, &stored_name, &hash))?))
        .await?;
    Ok(CreatedToken { id, name, token })
}

/// Revokes one of the signed-in admin's API tokens (needs a session).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "session", params(("id" = i64, Path, description = "token id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    require_session(&caller)?;
    let admin = caller.admin.id;
    let revoked = state.store(None, move |store| Ok(store.write(|tx| web::revoke_token(tx, admin, id))?)).await?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("you have no live API token {id}")))
    }
}
