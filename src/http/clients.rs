//! `/admin/clients`: registered OAuth 2.0 clients (admin only). A secret is shown once, when it
//! is made; listings never show a secret or its hash.

use super::errors::{
    AppError, BodyErrors, ConflictError, DatabaseErrors, ForbiddenError, InvalidValuesError, NotFoundError, TokenErrors,
};
use super::extract::{AdminUser, JsonBody};
use crate::db::clients::ClientRow;
use crate::service::Services;
use crate::service::clients::{self, NewClient, Registered};
use actix_web::HttpResponse;
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A client as administrators see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientView {
    client_id: String,
    /// Only when it was just made: shown once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    name: String,
    confidential: bool,
    grant_types: Vec<String>,
    /// Space-separated.
    scope: String,
    created_at: DateTime<Utc>,
    disabled: bool,
}

impl ClientView {
    /// The client, with `secret` if one was just made.
    pub fn new(client: ClientRow, secret: Option<String>) -> Self {
        Self {
            grant_types: clients::words(&client.grant_types).map(str::to_string).collect(),
            client_id: client.client_id,
            client_secret: secret,
            name: client.name,
            confidential: client.confidential,
            scope: client.scope,
            created_at: client.created_at.and_utc(),
            disabled: client.disabled,
        }
    }
}

impl From<Registered> for ClientView {
    fn from(registered: Registered) -> Self {
        Self::new(registered.client, registered.secret)
    }
}

/// `POST /admin/clients`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ClientInput {
    name: String,
    confidential: bool,
    /// Default: `["client_credentials"]` for a confidential client, `["password", "refresh_token"]` for a public one.
    grant_types: Option<Vec<String>>,
    /// Space-separated; default none.
    scope: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientList {
    clients: Vec<ClientView>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ClientChange {
    disabled: bool,
}

/// `POST /admin/clients` → 201 with the client (and its secret, once, if confidential).
#[utoipa::path(
    post,
    path = "/admin/clients",
    operation_id = "create_client",
    tag = "clients",
    request_body = ClientInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "registered; a confidential client's secret is shown this once", body = ClientView),
        BodyErrors,
        InvalidValuesError,
        TokenErrors,
        ForbiddenError,
        DatabaseErrors,
    )
)]
pub async fn create(
    services: Data<Services>,
    AdminUser(admin): AdminUser,
    JsonBody(input): JsonBody<ClientInput>,
) -> Result<HttpResponse, AppError> {
    let new = NewClient {
        name: input.name,
        confidential: input.confidential,
        grant_types: input.grant_types,
        scope: input.scope,
    };
    let registered = clients::create(&services, new).await?;
    log::info!("admin {} registered client {}", admin.sub, registered.client.client_id);
    Ok(HttpResponse::Created().json(ClientView::from(registered)))
}

/// `GET /admin/clients`.
#[utoipa::path(
    get,
    path = "/admin/clients",
    operation_id = "list_clients",
    tag = "clients",
    security(("bearer" = [])),
    responses((status = 200, description = "every client (never a secret)", body = ClientList), TokenErrors, ForbiddenError, DatabaseErrors)
)]
pub async fn list(services: Data<Services>, _: AdminUser) -> Result<HttpResponse, AppError> {
    let clients = clients::list(&services).await?;
    Ok(HttpResponse::Ok()
        .json(ClientList { clients: clients.into_iter().map(|client| ClientView::new(client, None)).collect() }))
}

/// `PATCH /admin/clients/{client_id}` `{"disabled": bool}`.
#[utoipa::path(
    patch,
    path = "/admin/clients/{client_id}",
    operation_id = "set_client_disabled",
    tag = "clients",
    request_body = ClientChange,
    params(("client_id" = String, Path, description = "the client's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the client", body = ClientView),
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
    _: AdminUser,
    client_id: Path<String>,
    JsonBody(change): JsonBody<ClientChange>,
) -> Result<HttpResponse, AppError> {
    let client = clients::set_disabled(&services, client_id.into_inner(), change.disabled).await?;
    Ok(HttpResponse::Ok().json(ClientView::new(client, None)))
}

/// `POST /admin/clients/{client_id}/secret`: a new secret (shown once); the old one keeps
/// working for CLIENT_SECRET_GRACE.
#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/secret",
    operation_id = "rotate_client_secret",
    tag = "clients",
    params(("client_id" = String, Path, description = "the client's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the client with its new secret", body = ClientView), TokenErrors, ForbiddenError, NotFoundError, ConflictError, DatabaseErrors)
)]
pub async fn rotate_secret(
    services: Data<Services>,
    _: AdminUser,
    client_id: Path<String>,
) -> Result<HttpResponse, AppError> {
    let registered = clients::rotate_secret(&services, client_id.into_inner(), services.client_secret_grace).await?;
    Ok(HttpResponse::Ok().json(ClientView::from(registered)))
}

/// `DELETE /admin/clients/{client_id}`: every token and session of the client ends.
#[utoipa::path(
    delete,
    path = "/admin/clients/{client_id}",
    operation_id = "delete_client",
    tag = "clients",
    params(("client_id" = String, Path, description = "the client's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), TokenErrors, ForbiddenError, NotFoundError, ConflictError, DatabaseErrors)
)]
pub async fn delete(
    services: Data<Services>,
    AdminUser(admin): AdminUser,
    client_id: Path<String>,
) -> Result<HttpResponse, AppError> {
    let client_id = client_id.into_inner();
    clients::delete(&services, client_id.clone()).await?;
    log::info!("admin {} deleted client {client_id}; its tokens and sessions ended", admin.sub);
    Ok(HttpResponse::NoContent().finish())
}
