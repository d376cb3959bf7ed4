//! Token revocation (RFC 7009) and introspection (RFC 7662), for access and refresh tokens.

use super::AppState;
use super::errors::AppError;
use super::extract::{AuthenticatedUser, FormOrJson};
use super::openapi::{ErrorResponse, Introspection};
use crate::db::sessions::{self, RefreshTokenRecord};
use crate::tokens::{AccessClaims, MAX_REFRESH_TOKEN_LEN, hash_refresh_token};
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::Data;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// The request of both endpoints: `token` and an optional `token_type_hint`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequest {
    token: String,
    token_type_hint: Option<String>,
}

impl TokenRequest {
    fn refresh_first(&self) -> bool {
        self.token_type_hint.as_deref() == Some("refresh_token")
    }
}

/// A refresh token still usable at `now` (unspent, unexpired, session not revoked, user exists).
async fn live_refresh_token(state: &AppState, token: &str) -> Result<Option<RefreshTokenRecord>, AppError> {
    if token.is_empty() || token.len() > MAX_REFRESH_TOKEN_LEN {
        return Ok(None);
    }
    let hash = hash_refresh_token(token);
    let record = state.db.query(move |conn| sessions::find_refresh_token(conn, &hash)).await?;
    let now = state.clock.now().naive_utc();
    Ok(record
        .filter(|(token, family, _)| token.spent_at.is_none() && token.expires_at > now && family.revoked_at.is_none()))
}

/// `POST /revoke` (RFC 7009). Holding a token is the authority to revoke it. An access token is
/// revoked alone; a refresh token revokes its whole session, access tokens included (§2.1).
/// Always 200 for a well-formed request: unknown, invalid or expired tokens need no revoking (§2.2).
#[utoipa::path(post, path = "/revoke", tag = "tokens", request_body = TokenRequest, responses((status = 200, description = "revoked (or nothing to revoke)"), (status = 400, description = "malformed request", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn revoke(
    state: Data<AppState>,
    FormOrJson(request): FormOrJson<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let as_access = || state.verify_access_token(&request.token).ok();
    let access = if request.refresh_first() { None } else { as_access() };
    if let Some(claims) = access {
        revoke_access_token(&state, &claims).await?;
    } else if let Some((_, family, _)) = live_refresh_token(&state, &request.token).await? {
        if let Ok(sid) = Uuid::parse_str(&family.id) {
            state.revocations.revoke_session(sid).await?;
        }
    } else if let Some(claims) = as_access() {
        revoke_access_token(&state, &claims).await?;
    }
    Ok(HttpResponse::Ok().finish())
}

async fn revoke_access_token(state: &AppState, claims: &AccessClaims) -> Result<(), AppError> {
    let expires_at =
        chrono::DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| AppError::Internal("exp out of range".into()))?;
    Ok(state.revocations.revoke_token(claims.jti, expires_at).await?)
}

/// `POST /introspect` (RFC 7662) for an authenticated caller: the token's metadata when it is
/// active, else only `{"active": false}` (§2.2) — whatever the reason.
#[utoipa::path(post, path = "/introspect", tag = "tokens", request_body = TokenRequest, security(("bearer" = [])), responses((status = 200, description = "the token's state", body = Introspection), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn introspect(
    state: Data<AppState>,
    _caller: AuthenticatedUser,
    FormOrJson(request): FormOrJson<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let as_access = || state.verify_access_token(&request.token).ok().map(|claims| access_metadata(&claims));
    let mut answer = if request.refresh_first() { None } else { as_access() };
    if answer.is_none() {
        answer = live_refresh_token(&state, &request.token).await?.map(|record| refresh_metadata(&record));
    }
    if answer.is_none() && request.refresh_first() {
        answer = as_access();
    }
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(answer.unwrap_or_else(|| json!({ "active": false }))))
}

fn access_metadata(claims: &AccessClaims) -> serde_json::Value {
    json!({
        "active": true,
        // RFC 7662 §2.2: the token type of RFC 6749 §7.1.
        "token_type": "Bearer",
        "iss": claims.iss,
        "sub": claims.sub,
        "aud": claims.aud,
        "username": claims.name,
        "iat": claims.iat,
        "nbf": claims.nbf,
        "exp": claims.exp,
        "jti": claims.jti,
        "sid": claims.sid,
        "groups": claims.groups,
    })
}

fn refresh_metadata((token, family, user): &RefreshTokenRecord) -> serde_json::Value {
    json!({
        "active": true,
        "sub": user.public_id,
        "username": user.name,
        "iat": token.issued_at.and_utc().timestamp(),
        "exp": token.expires_at.and_utc().timestamp(),
        "sid": family.id,
    })
}
