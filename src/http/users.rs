//! `/users/me` and the admin listing `/users`. Password hashes never leave the database layer:
//! responses are built from [`UserView`], which has no such field.

use super::AppState;
use super::errors::{AppError, Unauthorized};
use super::extract::{AdminUser, AuthenticatedUser, JsonBody};
use super::openapi::ErrorResponse;
use crate::actors::revocations::SubjectScope;
use crate::db::users::{self, User};
use actix_web::HttpResponse;
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user as clients see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserView {
    public_id: String,
    name: String,
    admin: bool,
    created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        Self { public_id: user.public_id, name: user.name, admin: user.admin, created_at: user.created_at.and_utc() }
    }
}

/// `GET /users/me`.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])), responses((status = 200, description = "the caller", body = UserView), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn me(state: Data<AppState>, AuthenticatedUser(claims): AuthenticatedUser) -> Result<HttpResponse, AppError> {
    let public_id = claims.sub.to_string();
    let user = state.db.query(move |conn| users::find_by_public_id(conn, &public_id)).await?;
    // A valid token of a user that no longer exists is no credential.
    let user = user.ok_or(AppError::Unauthorized(Unauthorized::InvalidToken))?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
}

/// `GET /users` (admin).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), responses((status = 200, description = "every user", body = UserList), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn list(state: Data<AppState>, _: AdminUser) -> Result<HttpResponse, AppError> {
    let users = state.db.query(users::list).await?;
    Ok(HttpResponse::Ok().json(UserList { users: users.into_iter().map(UserView::from).collect() }))
}

/// A user's `public_id` from the path; anything that is not a UUID names no user.
fn public_id(path: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(path).map_err(|_| AppError::NotFound("no such user"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AdminChange {
    admin: bool,
}

/// `PATCH /users/{public_id}` `{"admin": bool}` (admin) → 200 user. A change ends the user's
/// existing tokens, so a demoted admin's old token no longer carries `groups: ["admin"]`.
#[utoipa::path(patch, path = "/users/{public_id}", tag = "users", request_body = AdminChange, params(("public_id" = String, Path, description = "the user's public_id")), security(("bearer" = [])), responses((status = 200, description = "the user", body = UserView), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn update(
    state: Data<AppState>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
    JsonBody(change): JsonBody<AdminChange>,
) -> Result<HttpResponse, AppError> {
    let subject = public_id(&path)?;
    let id = subject.to_string();
    let user = state
        .db
        .query(move |conn| users::find_by_public_id(conn, &id))
        .await?
        .ok_or(AppError::NotFound("no such user"))?;
    if user.admin == change.admin {
        return Ok(HttpResponse::Ok().json(UserView::from(user)));
    }
    let (id, admin) = (subject.to_string(), change.admin);
    let user = state
        .revocations
        .end_subject(subject, SubjectScope::IssuedUntilNow, move |conn| -> Result<(User, Option<i32>), AppError> {
            let user = users::set_admin(conn, &id, admin)?;
            let user_id = user.id;
            Ok((user, Some(user_id)))
        })
        .await?;
    log::info!(
        "admin {} set admin={} for {} ({}); their tokens were ended",
        caller.name,
        user.admin,
        user.name,
        user.public_id
    );
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

/// `DELETE /users/{public_id}` (admin) → 204; the user's tokens die with them.
#[utoipa::path(delete, path = "/users/{public_id}", tag = "users", params(("public_id" = String, Path, description = "the user's public_id")), security(("bearer" = [])), responses((status = 204, description = "deleted"), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn delete(
    state: Data<AppState>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
) -> Result<HttpResponse, AppError> {
    let subject = public_id(&path)?;
    let id = subject.to_string();
    state
        .revocations
        .end_subject(subject, SubjectScope::Everything, move |conn| -> Result<((), Option<i32>), AppError> {
            // Their sessions go with them (ON DELETE CASCADE); no token of theirs is valid again.
            match users::delete_by_public_id(conn, &id)? {
                0 => Err(AppError::NotFound("no such user")),
                _ => Ok(((), None)),
            }
        })
        .await?;
    log::info!("admin {} deleted user {subject}", caller.name);
    Ok(HttpResponse::NoContent().finish())
}
