//! `/users/me` and the admin endpoints `/users`, `/users/{public_id}`. Password hashes never
//! leave the database layer: responses are built from [`UserView`], which has no such field.

use super::errors::{AppError, BodyErrors, ConflictError, DatabaseErrors, ForbiddenError, NotFoundError, TokenErrors};
use super::extract::{AdminUser, AuthenticatedUser, JsonBody};
use crate::db::users::User;
use crate::service::cache::Rendered;
use crate::service::{Failure, Services, users};
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// User records are personal: never stored by a shared cache, nor by the browser.
fn private_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header(CacheControl(vec![CacheDirective::NoStore]));
    response
}

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
#[utoipa::path(
    get,
    path = "/users/me",
    operation_id = "get_current_user",
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, description = "the caller", body = UserView), TokenErrors, DatabaseErrors)
)]
pub async fn me(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
) -> Result<HttpResponse, AppError> {
    let view = users::me(&services, &claims.sub, |user| {
        let body = serde_json::to_vec(&UserView::from(user))
            .map_err(|e| Failure::Internal(format!("serializing a response: {e}")))?;
        Ok(Rendered::new(body, None))
    })
    .await?;
    Ok(private_response().content_type("application/json").body(view.body.clone()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct UserList {
    users: Vec<UserView>,
}

/// `GET /users` (admin).
#[utoipa::path(
    get,
    path = "/users",
    operation_id = "list_users",
    tag = "users",
    security(("bearer" = [])),
    responses((status = 200, description = "every user", body = UserList), TokenErrors, ForbiddenError, DatabaseErrors)
)]
pub async fn list(services: Data<Services>, _: AdminUser) -> Result<HttpResponse, AppError> {
    let users = users::list(&services).await?;
    Ok(private_response().json(UserList { users: users.into_iter().map(UserView::from).collect() }))
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
/// existing tokens.
#[utoipa::path(
    patch,
    path = "/users/{public_id}",
    operation_id = "set_user_admin",
    tag = "users",
    request_body = AdminChange,
    params(("public_id" = String, Path, description = "the user's public_id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the user", body = UserView),
        BodyErrors,
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn update(
    services: Data<Services>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
    JsonBody(change): JsonBody<AdminChange>,
) -> Result<HttpResponse, AppError> {
    let user = users::set_admin(&services, public_id(&path)?, change.admin).await?;
    log::info!("admin {} set admin={} for {}; a change ends their tokens", caller.sub, user.admin, user.public_id);
    Ok(private_response().json(UserView::from(user)))
}

/// `DELETE /users/{public_id}` (admin) → 204; the user's tokens die with them.
#[utoipa::path(
    delete,
    path = "/users/{public_id}",
    operation_id = "delete_user",
    tag = "users",
    params(("public_id" = String, Path, description = "the user's public_id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn delete(
    services: Data<Services>,
    AdminUser(caller): AdminUser,
    path: Path<String>,
) -> Result<HttpResponse, AppError> {
    let subject = public_id(&path)?;
    users::delete(&services, subject).await?;
    log::info!("admin {} deleted user {subject}", caller.sub);
    Ok(HttpResponse::NoContent().finish())
}
