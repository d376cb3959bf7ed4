//! `/.well-known/jwks.json`, `/healthz`, `/readyz`.

use super::AppState;
use super::errors::AppError;
use super::openapi::{ErrorResponse, JwksDocument, Status};
use actix_web::http::header::{self, CacheControl, CacheDirective, ETag, EntityTag, IfNoneMatch};
use actix_web::web::{Data, Header};
use actix_web::{HttpResponse, Responder};
use std::time::Duration;

/// How long `/readyz` waits for the database.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /.well-known/jwks.json`: served from the key ring snapshot; `If-None-Match` → 304.
/// `max-age` follows the rotation schedule (see [`crate::key_schedule`]).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery", responses((status = 200, description = "the public keys", body = JwksDocument), (status = 304, description = "unchanged since the ETag given")))]
pub async fn jwks(state: Data<AppState>, if_none_match: Option<Header<IfNoneMatch>>) -> HttpResponse {
    let snapshot = state.key_ring.snapshot();
    let tag = EntityTag::new_strong(snapshot.etag.trim_matches('"').to_string());
    let max_age = u32::try_from(snapshot.jwks_max_age(state.clock.now())).unwrap_or(0);
    let cache = CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(max_age)]);
    let unchanged = match if_none_match.map(Header::into_inner) {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|candidate| candidate.weak_eq(&tag)),
        None => false,
    };
    if unchanged {
        return HttpResponse::NotModified().insert_header(ETag(tag)).insert_header(cache).finish();
    }
    HttpResponse::Ok()
        .insert_header(ETag(tag))
        .insert_header(cache)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(snapshot.jwks.to_vec())
}

/// `GET /.well-known/openid-configuration`: discovery metadata (OpenID Connect Discovery 1.0
/// §3, RFC 8414 §2) pointing verifiers at our JWKS and endpoints.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery", responses((status = 200, description = "discovery metadata", body = serde_json::Value)))]
pub async fn openid_configuration(state: Data<AppState>) -> HttpResponse {
    let issuer = state.tokens.issuer.trim_end_matches('/');
    HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)])).json(
        serde_json::json!({
            "issuer": state.tokens.issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "token_endpoint": format!("{issuer}/login"),
            "revocation_endpoint": format!("{issuer}/revoke"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": ["password", "refresh_token"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "claims_supported": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "name", "groups"],
        }),
    )
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "the process is up", body = Status)))]
pub async fn healthz() -> impl Responder {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers and the key ring can sign, else 503.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready", body = Status), (status = 503, description = "database or key ring unusable", body = ErrorResponse)))]
pub async fn readyz(state: Data<AppState>) -> Result<HttpResponse, AppError> {
    let database = state.db.query(crate::db::ping);
    match actix_web::rt::time::timeout(READINESS_TIMEOUT, database).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => return Err(AppError::Unavailable(format!("readiness: {error}"))),
        Err(_) => return Err(AppError::Unavailable("readiness: database did not answer in time".into())),
    }
    if state.key_ring.snapshot().current.is_none() {
        return Err(AppError::Unavailable("readiness: no current signing key".into()));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ready"})))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
/// `GET /metrics`: Prometheus text format. State owned elsewhere is read now, not cached.
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    let metrics = &state.metrics;
    let snapshot = state.key_ring.snapshot();
    for key_state in ["next", "current", "retired"] {
        let count = snapshot.keys.iter().filter(|key| key.state.as_str() == key_state).count();
        metrics.key_ring_keys.with_label_values(&[key_state]).set(count as i64);
    }
    let now = state.clock.now();
    let until = snapshot.next_activation.map_or(0, |activation| (activation - now).num_seconds().max(0));
    metrics.key_ring_seconds_until_rotation.set(until);
    metrics.deny_list_entries.set(state.revocations.deny_list().len() as i64);
    let pool = state.pool.state();
    metrics.db_pool_connections.with_label_values(&["idle"]).set(i64::from(pool.idle_connections));
    metrics.db_pool_connections.with_label_values(&["in_use"]).set(i64::from(pool.connections - pool.idle_connections));
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics.render())
}
