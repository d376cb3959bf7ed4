//! Account self-service (issue 15, part 1): `PUT /users/me/password`, `GET /users/me/sessions`,
//! `DELETE /users/me/sessions/{sid}`, and for administrators `GET|DELETE
//! /users/{public_id}/sessions`.

use super::errors::{
    AppError, BodyErrors, DatabaseErrors, ErrorBody, ForbiddenError, InvalidValuesError, NotFoundError, TokenErrors,
};
use super::extract::{AdminUser, AuthenticatedUser, ClientAddr, JsonBody};
use crate::domain::Password;
use crate::service::Services;
use crate::service::account::{self, ListedSession};
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// No `Debug`: the passwords are never printed.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    current_password: String,
    /// The rules of `/register`: 8–72 bytes.
    new_password: String,
}

/// `PUT /users/me/password` → 204: the caller's password changes, and every other session of
/// theirs ends (the calling one stays).
#[utoipa::path(
    put,
    path = "/users/me/password",
    operation_id = "change_password",
    tag = "account",
    request_body = PasswordChange,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "changed; every other session of the user ended"),
        (status = 401, description = "missing or invalid token, or `invalid_credentials`: the current password is wrong", body = ErrorBody),
        (status = 429, description = "too many wrong passwords (Retry-After), counted as failed logins", body = ErrorBody),
        BodyErrors,
        ForbiddenError,
        InvalidValuesError,
        DatabaseErrors,
    )
)]
pub async fn change_password(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    ClientAddr(address): ClientAddr,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<HttpResponse, AppError> {
    let new_password = Password::parse(body.new_password)?;
    account::change_password(&services, &claims, &body.current_password, new_password, address).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A live session as its user sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// The session id: the `sid` claim of its access tokens.
    sid: String,
    /// The OAuth client it was started for.
    client_id: String,
    created_at: DateTime<Utc>,
    /// `null` until its first refresh.
    last_refreshed_at: Option<DateTime<Utc>>,
    /// The `User-Agent` sent at login, cut to 256 characters; `null` if none was sent.
    user_agent: Option<String>,
    /// Whether it is the session of the token that asks.
    current: bool,
}

impl From<ListedSession> for SessionView {
    fn from(ListedSession { session, current }: ListedSession) -> Self {
        Self {
            sid: session.id,
            client_id: session.client_id,
            created_at: session.created_at.and_utc(),
            last_refreshed_at: session.last_refreshed_at.map(|at| at.and_utc()),
            user_agent: session.user_agent,
            current,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Live sessions (neither ended nor expired), newest first.
    sessions: Vec<SessionView>,
}

fn session_list(sessions: Vec<ListedSession>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(SessionList { sessions: sessions.into_iter().map(SessionView::from).collect() })
}

/// `GET /users/me/sessions`: the caller's live sessions, newest first.
#[utoipa::path(
    get,
    path = "/users/me/sessions",
    operation_id = "list_my_sessions",
    tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the caller's live sessions", body = SessionList),
        TokenErrors,
        ForbiddenError,
        DatabaseErrors,
    )
)]
pub async fn my_sessions(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
) -> Result<HttpResponse, AppError> {
    Ok(session_list(account::own_sessions(&services, &claims).await?))
}

/// `DELETE /users/me/sessions/{sid}` → 204: that session's tokens stop working at once.
#[utoipa::path(
    delete,
    path = "/users/me/sessions/{sid}",
    operation_id = "end_my_session",
    tag = "account",
    params(("sid" = String, Path, description = "the session id (`sid` claim)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "the session ended"),
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn end_my_session(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    sid: Path<String>,
) -> Result<HttpResponse, AppError> {
    account::end_own_session(&services, &claims, &sid).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's `public_id` from the path; anything that is not a UUID names no user.
fn public_id(path: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(path).map_err(|_| AppError::NotFound("no such user"))
}

/// `GET /users/{public_id}/sessions` (admin): that user's live sessions, newest first.
#[utoipa::path(
    get,
    path = "/users/{public_id}/sessions",
    operation_id = "list_user_sessions",
    tag = "account",
    params(("public_id" = String, Path, description = "the user's public_id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the user's live sessions", body = SessionList),
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn user_sessions(
    services: Data<Services>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
) -> Result<HttpResponse, AppError> {
    Ok(session_list(account::user_sessions(&services, public_id(&path)?, caller.sid).await?))
}

/// `DELETE /users/{public_id}/sessions` (admin) → 204: every token of that user issued until now
/// stops working, on every device.
#[utoipa::path(
    delete,
    path = "/users/{public_id}/sessions",
    operation_id = "end_user_sessions",
    tag = "account",
    params(("public_id" = String, Path, description = "the user's public_id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "every session of the user ended"),
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn end_user_sessions(
    services: Data<Services>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
) -> Result<HttpResponse, AppError> {
    let subject = public_id(&path)?;
    account::end_user_sessions(&services, subject).await?;
    log::info!("admin {} ended every session of user {subject}", caller.sub);
    Ok(HttpResponse::NoContent().finish())
}
