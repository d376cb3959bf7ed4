//! `/authors` CRUD (and the seed's `POST /author`). Anyone authenticated may read and create;
//! only the creator or an admin may update or delete (see [`crate::service::authors`]).

use super::conditional;
use super::errors::{
    AppError, BodyErrors, ConflictError, DatabaseErrors, ForbiddenError, InvalidValuesError, NotFoundError, TokenErrors,
};
use super::extract::{AuthenticatedUser, JsonBody, StrictQuery};
use crate::db::authors::{AuthorWithCreator, PageRows};
use crate::domain::{AuthorFields, Page, parse_author};
use crate::service::cache::Rendered;
use crate::service::{Failure, Services, authors};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// Reads of authors need a token: no shared cache may keep them, and a browser revalidates.
fn revalidated() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header(CacheControl(vec![CacheDirective::Private, CacheDirective::NoCache]));
    response
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

/// `POST /authors` → 201.
#[utoipa::path(
    post,
    path = "/authors",
    operation_id = "create_author",
    tag = "authors",
    request_body = AuthorInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = AuthorView),
        BodyErrors,
        InvalidValuesError,
        TokenErrors,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn create(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    JsonBody(input): JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    let author = authors::create(&services, claims, input.parse()?).await?;
    let view = AuthorView::from(author);
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("/authors/{}", view.id))).json(view))
}

/// `POST /author`: the seed's name for `POST /authors`.
#[utoipa::path(
    post,
    path = "/author",
    operation_id = "create_author_seed_alias",
    tag = "authors",
    request_body = AuthorInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "created", body = AuthorView),
        BodyErrors,
        InvalidValuesError,
        TokenErrors,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn create_alias(
    services: Data<Services>,
    user: AuthenticatedUser,
    body: JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    create(services, user, body).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1..=100, default 50.
    limit: Option<i64>,
    /// At least 0, default 0. Not with `after`. The database still reads every skipped row:
    /// prefer `after` (or follow the `Link` header).
    offset: Option<i64>,
    /// Keyset pagination: the authors whose id is greater than this (at least 0), usually the
    /// last id of the previous page. Not with `offset`.
    #[param(minimum = 0)]
    after: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorPage {
    authors: Vec<AuthorView>,
    total: i64,
}

/// The JSON bytes of a response body.
fn json_bytes(value: &impl Serialize) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value).map_err(|e| Failure::Internal(format!("serializing a response: {e}")))
}

/// A page as sent: the JSON body and, unless it is the last page, an RFC 8288 `Link` to the
/// next one (relative; keyset from this page's last id, whether this page was asked for by
/// `after` or by `offset`).
fn render_page(page: &Page, PageRows { rows, total, more }: PageRows) -> Result<Rendered, Failure> {
    let next = rows.last().filter(|_| more).map(|(last, _)| last.id);
    let link = next.map(|after| format!("</authors?after={after}&limit={}>; rel=\"next\"", page.limit));
    let body = AuthorPage { authors: rows.into_iter().map(AuthorView::from).collect(), total };
    Ok(Rendered::new(json_bytes(&body)?, link))
}

/// `GET /authors?limit=&after=` (or `offset=`), ordered by id.
#[utoipa::path(
    get,
    path = "/authors",
    operation_id = "list_authors",
    tag = "authors",
    params(
        PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "entity tags the client holds (RFC 9110 §13.1.2): a match answers 304"),
    ),
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "a page of authors",
            body = AuthorPage,
            headers(
                ("ETag" = String, description = "strong entity tag of the body: the same on every instance for the same body"),
                ("Link" = String, description = "RFC 8288 link to the next page, `</authors?after=ID&limit=N>; rel=\"next\"`; absent on the last page"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
            )
        ),
        (
            status = 304,
            description = "not modified: `If-None-Match` names the current entity tag; no body",
            headers(
                ("ETag" = String, description = "the current entity tag"),
                ("Link" = String, description = "as on the 200"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
            )
        ),
        (status = 400, description = "malformed query string, or both `after` and `offset`", body = super::errors::ErrorBody),
        (status = 422, description = "limit, offset or after out of range", body = super::errors::ErrorBody),
        TokenErrors,
        DatabaseErrors,
    )
)]
pub async fn list(
    services: Data<Services>,
    _: AuthenticatedUser,
    req: HttpRequest,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<HttpResponse, AppError> {
    if query.after.is_some() && query.offset.is_some() {
        return Err(AppError::bad_request("invalid_query", "after and offset cannot be combined: use one"));
    }
    let page = Page::parse(query.limit, query.offset, query.after)?;
    let view = authors::page(&services, page, render_page).await?;
    Ok(conditional::respond(&req, revalidated(), &view))
}

/// `GET /authors/{id}`.
#[utoipa::path(
    get,
    path = "/authors/{id}",
    operation_id = "get_author",
    tag = "authors",
    params(
        ("id" = i32, Path, description = "author id"),
        ("If-None-Match" = Option<String>, Header, description = "entity tags the client holds (RFC 9110 §13.1.2): a match answers 304"),
    ),
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "the author",
            body = AuthorView,
            headers(
                ("ETag" = String, description = "strong entity tag of the body"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
            )
        ),
        (
            status = 304,
            description = "not modified: `If-None-Match` names the current entity tag; no body",
            headers(
                ("ETag" = String, description = "the current entity tag"),
                ("Cache-Control" = String, description = "`private, no-cache`"),
            )
        ),
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn get(
    services: Data<Services>,
    _: AuthenticatedUser,
    req: HttpRequest,
    id: Path<i32>,
) -> Result<HttpResponse, AppError> {
    let author = authors::get(&services, id.into_inner()).await?;
    let view = Rendered::new(json_bytes(&AuthorView::from(author))?, None);
    Ok(conditional::respond(&req, revalidated(), &view))
}

/// `PUT /authors/{id}` (full body) → 200.
#[utoipa::path(
    put,
    path = "/authors/{id}",
    operation_id = "update_author",
    tag = "authors",
    request_body = AuthorInput,
    params(("id" = i32, Path, description = "author id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the author", body = AuthorView),
        BodyErrors,
        InvalidValuesError,
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn update(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    id: Path<i32>,
    JsonBody(input): JsonBody<AuthorInput>,
) -> Result<HttpResponse, AppError> {
    let author = authors::update(&services, claims, id.into_inner(), input.parse()?).await?;
    Ok(HttpResponse::Ok().json(AuthorView::from(author)))
}

/// `DELETE /authors/{id}` → 204.
#[utoipa::path(
    delete,
    path = "/authors/{id}",
    operation_id = "delete_author",
    tag = "authors",
    params(("id" = i32, Path, description = "author id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        TokenErrors,
        ForbiddenError,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn delete(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    id: Path<i32>,
) -> Result<HttpResponse, AppError> {
    authors::delete(&services, claims, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
