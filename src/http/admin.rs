//! Key ring administration (admin only): list, rotate now, delete a compromised key.

use super::AppState;
use super::errors::AppError;
use super::extract::AdminUser;
use actix_web::HttpResponse;
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Serialize)]
struct KeyView<'a> {
    kid: &'a str,
    state: &'static str,
    created_at: DateTime<Utc>,
    activates_at: DateTime<Utc>,
    retires_at: Option<DateTime<Utc>>,
}

/// `GET /admin/keys`: every key with its state and times (never key material).
pub async fn list_keys(state: Data<AppState>, _: AdminUser) -> HttpResponse {
    let snapshot = state.key_ring.snapshot();
    let keys: Vec<KeyView> = snapshot
        .keys
        .iter()
        .map(|key| KeyView {
            kid: &key.kid,
            state: key.state.as_str(),
            created_at: key.created_at,
            activates_at: key.activates_at,
            retires_at: key.retires_at,
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "keys": keys }))
}

/// `POST /admin/keys/rotate`: the next key starts signing now; a new next key is made.
pub async fn rotate(state: Data<AppState>, AdminUser(admin): AdminUser) -> Result<HttpResponse, AppError> {
    let kid = state.key_ring.rotate().await?;
    log::info!("key rotation by admin {} ({}): {kid} now signs", admin.name, admin.sub);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "kid": kid })))
}

/// `DELETE /admin/keys/{kid}`: the key leaves the JWKS and every token it signed is refused.
pub async fn delete_key(
    state: Data<AppState>,
    AdminUser(admin): AdminUser,
    kid: Path<String>,
) -> Result<HttpResponse, AppError> {
    state.key_ring.delete(&kid).await?;
    log::warn!("key {kid} deleted by admin {} ({}); its tokens are no longer accepted", admin.name, admin.sub);
    Ok(HttpResponse::NoContent().finish())
}
