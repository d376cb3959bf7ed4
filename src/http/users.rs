//! `/users/me` and the admin listing `/users`. Password hashes never leave the database layer:
//! responses are built from [`UserView`], which has no such field.

use super::AppState;
use super::errors::{AppError, Unauthorized};
use super::extract::{AdminUser, AuthenticatedUser};
use crate::db::users::{self, User};
use actix_web::HttpResponse;
use actix_web::web::Data;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A user as clients see it.
#[derive(Serialize)]
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
pub async fn me(state: Data<AppState>, AuthenticatedUser(claims): AuthenticatedUser) -> Result<HttpResponse, AppError> {
    let public_id = claims.sub.to_string();
    let user = state.db.query(move |conn| users::find_by_public_id(conn, &public_id)).await?;
    // A valid token of a user that no longer exists is no credential.
    let user = user.ok_or(AppError::Unauthorized(Unauthorized::InvalidToken))?;
    Ok(HttpResponse::Ok().json(UserView::from(user)))
}

#[derive(Serialize)]
struct UserList {
    users: Vec<UserView>,
}

/// `GET /users` (admin).
pub async fn list(state: Data<AppState>, _: AdminUser) -> Result<HttpResponse, AppError> {
    let users = state.db.query(users::list).await?;
    Ok(HttpResponse::Ok().json(UserList { users: users.into_iter().map(UserView::from).collect() }))
}
