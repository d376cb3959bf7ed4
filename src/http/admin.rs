//! Key ring administration (admin only): list, rotate now, delete a compromised key.

use super::errors::{AppError, DatabaseErrors, ErrorBody, ForbiddenError, NotFoundError, TokenErrors};
use super::extract::AdminUser;
use crate::service::{Services, keys};
use actix_web::HttpResponse;
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyView {
    kid: String,
    state: &'static str,
    created_at: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    retires_at: Option<DateTime<Utc>>,
}

/// `{"keys": […]}` of `GET /admin/keys`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

/// `{"kid"}` of `POST /admin/keys/rotate`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rotated {
    kid: String,
}

/// `GET /admin/keys`: every key with its state and times (never key material).
#[utoipa::path(
    get,
    path = "/admin/keys",
    operation_id = "list_signing_keys",
    tag = "keys",
    security(("bearer" = [])),
    responses((status = 200, description = "the key ring", body = KeyList), TokenErrors, ForbiddenError)
)]
pub async fn list_keys(services: Data<Services>, _: AdminUser) -> HttpResponse {
    let views: Vec<KeyView> = keys::ring(&services)
        .into_iter()
        .map(|key| KeyView {
            kid: key.kid,
            state: key.state.as_str(),
            created_at: key.created_at,
            activates_at: key.activates_at,
            retires_at: key.retires_at,
        })
        .collect();
    HttpResponse::Ok().json(KeyList { keys: views })
}

/// `POST /admin/keys/rotate`: the next key starts signing now; a new next key is made.
#[utoipa::path(
    post,
    path = "/admin/keys/rotate",
    operation_id = "rotate_signing_key",
    tag = "keys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the key that signs now", body = Rotated),
        (status = 409, description = "the next key is too fresh (Retry-After)", body = ErrorBody),
        TokenErrors,
        ForbiddenError,
        DatabaseErrors,
    )
)]
pub async fn rotate(services: Data<Services>, AdminUser(admin): AdminUser) -> Result<HttpResponse, AppError> {
    let kid = keys::rotate_now(&services).await?;
    log::info!("key rotation by admin {}: {kid} now signs", admin.sub);
    Ok(HttpResponse::Ok().json(Rotated { kid }))
}

/// `DELETE /admin/keys/{kid}`: the key leaves the JWKS and every token it signed is refused.
#[utoipa::path(
    delete,
    path = "/admin/keys/{kid}",
    operation_id = "delete_signing_key",
    tag = "keys",
    params(("kid" = String, Path, description = "key id")),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), TokenErrors, ForbiddenError, NotFoundError, DatabaseErrors)
)]
pub async fn delete_key(
    services: Data<Services>,
    AdminUser(admin): AdminUser,
    kid: Path<String>,
) -> Result<HttpResponse, AppError> {
    keys::delete_now(&services, &kid).await?;
    log::warn!("key {kid} deleted by admin {}; its tokens are no longer accepted", admin.sub);
    Ok(HttpResponse::NoContent().finish())
}
