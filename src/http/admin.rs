//! Key ring administration (admin only): list, rotate now, delete a compromised key.

use super::AppState;
use super::errors::AppError;
use super::extract::AdminUser;
use super::openapi::ErrorResponse;
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
#[utoipa::path(get, path = "/admin/keys", tag = "keys", security(("bearer" = [])), responses((status = 200, description = "the key ring", body = KeyList), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse)))]
pub async fn list_keys(state: Data<AppState>, _: AdminUser) -> HttpResponse {
    let snapshot = state.key_ring.snapshot();
    let keys: Vec<KeyView> = snapshot
        .keys
        .iter()
        .map(|key| KeyView {
            kid: key.kid.clone(),
            state: key.state.as_str(),
            created_at: key.created_at,
            activates_at: key.activates_at,
            retires_at: key.retires_at,
        })
        .collect();
    HttpResponse::Ok().json(KeyList { keys })
}

/// `POST /admin/keys/rotate`: the next key starts signing now; a new next key is made.
#[utoipa::path(post, path = "/admin/keys/rotate", tag = "keys", security(("bearer" = [])), responses((status = 200, description = "the key that signs now", body = Rotated), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 409, description = "the next key is too fresh (Retry-After)", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn rotate(state: Data<AppState>, AdminUser(admin): AdminUser) -> Result<HttpResponse, AppError> {
    let kid = state.key_ring.rotate().await?;
    log::info!("key rotation by admin {} ({}): {kid} now signs", admin.name, admin.sub);
    Ok(HttpResponse::Ok().json(Rotated { kid }))
}

/// `DELETE /admin/keys/{kid}`: the key leaves the JWKS and every token it signed is refused.
#[utoipa::path(delete, path = "/admin/keys/{kid}", tag = "keys", params(("kid" = String, Path, description = "key id")), security(("bearer" = [])), responses((status = 204, description = "deleted"), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 403, description = "not allowed", body = ErrorResponse), (status = 404, description = "not found", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn delete_key(
    state: Data<AppState>,
    AdminUser(admin): AdminUser,
    kid: Path<String>,
) -> Result<HttpResponse, AppError> {
    state.key_ring.delete(&kid).await?;
    log::warn!("key {kid} deleted by admin {} ({}); its tokens are no longer accepted", admin.name, admin.sub);
    Ok(HttpResponse::NoContent().finish())
}
