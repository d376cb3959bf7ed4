//! `/authors` CRUD (and the seed's `POST /author`). Anyone authenticated may read and create;
//! only the creator or an admin may update or delete.

use super::AppState;
use super::errors::{AppError, Unauthorized};
use super::extract::{AuthenticatedUser, JsonBody};
use super::openapi::ErrorResponse;
use crate::db::DbConn;
use crate::db::authors::{self, AuthorFields, AuthorWithCreator};
use crate::db::users;
use crate::domain::parse_author;
use crate::tokens::AccessClaims;
use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{Data, Path, Query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const DEFAULT_PAGE_SIZE: i64 = 50;
const MAX_PAGE_SIZE: i64 = 100;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AuthorInput {
    name: String,
    book: String,
    country: String,
    #[serde(default)]
    booker_prize: bool,
}

impl AuthorInput {
    fn parse(self) -> Result<AuthorFields, AppError> {
        Ok(parse_author(&self.name, &self.book, &self.country, self.booker_prize)?)
    }
}

/// An author as clients see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorView {
    id: i32,
    name: String,
    book: String,
    country: String,
    booker_prize: bool,
    /// The creator's `public_id`; `null` once that user is deleted.
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<AuthorWithCreator> for AuthorView {
    fn from((author, created_by): AuthorWithCreator) -> Self {
        Self {
            id: author.id,
            name: author.name,
            book: author.book,
            country: author.country,
            booker_prize: author.booker_prize,
            created_by,
            created_at: author.created_at.and_utc(),
            updated_at: author.updated_at.and_utc(),
        }
    }
}

/// The caller's `users.id`; a token of a user that no longer exists is no credential.
fn caller_id(conn: &mut DbConn, claims: &AccessClaims) -> Result<i32, AppError> {
    users::find_by_public_id(conn, &claims.sub.to_string())?
        .map(|user| user.id)
        .ok_or(AppError::Unauthorized(Unauthorized::InvalidToken))
}

/// `POST /authors` → 201.
#[utoipa::path(post, path = "/authors", tag = "authors", request_body = AuthorInput, security(("bearer" = [])), responses((status = 201, description = "created", body = AuthorView), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 409, description = "conflict", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn create(
    state: Data<AppState>,
    AuthenticatedUser(claims): AuthenticatedUser,
    JsonBody(input): JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    let fields = input.parse()?;
    let now = state.clock.now().naive_utc();
    let author = state
        .db
        .run(move |conn| {
            let creator = caller_id(conn, &claims)?;
            let author = authors::insert(conn, &fields, creator, now)?;
            Ok::<_, AppError>((author, Some(claims.sub.to_string())))
        })
        .await?;
    let view = AuthorView::from(author);
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("/authors/{}", view.id))).json(view))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// 1..=100, default 50.
    limit: Option<i64>,
    /// At least 0, default 0.
    offset: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorPage {
    authors: Vec<AuthorView>,
    total: i64,
}

/// `POST /author`: the seed's name for `POST /authors`.
#[utoipa::path(post, path = "/author", tag = "authors", request_body = AuthorInput, security(("bearer" = [])), responses((status = 201, description = "created", body = AuthorView), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 409, description = "conflict", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn create_alias(
    state: Data<AppState>,
    user: AuthenticatedUser,
    body: JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    create(state, user, body).await
}

/// `GET /authors?limit=&offset=`, ordered by id.
#[utoipa::path(get, path = "/authors", tag = "authors", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "a page of authors", body = AuthorPage), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn list(
    state: Data<AppState>,
    _: AuthenticatedUser,
    Query(page): Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let offset = page.offset.unwrap_or(0);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) || offset < 0 {
        return Err(AppError::Unprocessable(crate::domain::InvalidValue {
            code: "invalid_page",
            message: format!("limit must be 1..={MAX_PAGE_SIZE} and offset at least 0"),
        }));
    }
    let (rows, total) = state.db.query(move |conn| authors::page(conn, limit, offset)).await?;
    Ok(HttpResponse::Ok().json(AuthorPage { authors: rows.into_iter().map(AuthorView::from).collect(), total }))
}

/// `GET /authors/{id}`.
#[utoipa::path(get, path = "/authors/{id}", tag = "authors", params(("id" = i32, Path, description = "author id")), security(("bearer" = [])), responses((status = 200, description = "the author", body = AuthorView), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn get(state: Data<AppState>, _: AuthenticatedUser, id: Path<i32>) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    let author =
        state.db.query(move |conn| authors::find(conn, id)).await?.ok_or(AppError::NotFound("no such author"))?;
    Ok(HttpResponse::Ok().json(AuthorView::from(author)))
}

/// Loads author `id` and checks the caller may change it: its creator or an admin.
fn load_for_change(conn: &mut DbConn, id: i32, claims: &AccessClaims) -> Result<(), AppError> {
    let (author, _) = authors::find(conn, id)?.ok_or(AppError::NotFound("no such author"))?;
    let caller = caller_id(conn, claims)?;
    if author.created_by == Some(caller) || claims.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden("only the creator or an admin may change this author"))
    }
}

/// `PUT /authors/{id}` (full body) → 200.
#[utoipa::path(put, path = "/authors/{id}", tag = "authors", request_body = AuthorInput, params(("id" = i32, Path, description = "author id")), security(("bearer" = [])), responses((status = 200, description = "the author", body = AuthorView), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 409, description = "conflict", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn update(
    state: Data<AppState>,
    AuthenticatedUser(claims): AuthenticatedUser,
    id: Path<i32>,
    JsonBody(input): JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    let (id, fields) = (id.into_inner(), input.parse()?);
    let now = state.clock.now().naive_utc();
    let author = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                load_for_change(conn, id, &claims)?;
                authors::update(conn, id, &fields, now)?;
                authors::find(conn, id)?.ok_or(AppError::NotFound("no such author"))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(AuthorView::from(author)))
}

/// `DELETE /authors/{id}` → 204.
#[utoipa::path(delete, path = "/authors/{id}", tag = "authors", params(("id" = i32, Path, description = "author id")), security(("bearer" = [])), responses((status = 204, description = "deleted"), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn delete(
    state: Data<AppState>,
    AuthenticatedUser(claims): AuthenticatedUser,
    id: Path<i32>,
) -> Result<HttpResponse, AppError> {
    let id = id.into_inner();
    state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                load_for_change(conn, id, &claims)?;
                authors::delete(conn, id).map_err(AppError::from)
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
