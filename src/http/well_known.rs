//! `/.well-known/jwks.json`, `/healthz`, `/readyz`.

use super::errors::{AppError, ErrorBody};
use crate::service::{Services, health};
use crate::tokens::Jwks;
use actix_web::http::header::{self, CacheControl, CacheDirective, ETag, EntityTag, IfNoneMatch};
use actix_web::web::{Data, Header};
use actix_web::{HttpResponse, Responder};
use serde::Serialize;

/// `GET /.well-known/jwks.json`: served from the key ring snapshot; `If-None-Match` → 304.
/// `max-age` follows the rotation schedule (see [`crate::key_schedule`]).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "get_jwks",
    tag = "discovery",
    responses(
        (status = 200, description = "the public keys", body = Jwks),
        (status = 304, description = "unchanged since the ETag given"),
    )
)]
pub async fn jwks(services: Data<Services>, if_none_match: Option<Header<IfNoneMatch>>) -> HttpResponse {
    let snapshot = services.key_ring.snapshot();
    let tag = EntityTag::new_strong(snapshot.etag.trim_matches('"').to_string());
    let max_age = u32::try_from(snapshot.jwks_max_age(services.clock.now())).unwrap_or(0);
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
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "get_openid_configuration",
    tag = "discovery",
    responses((status = 200, description = "discovery metadata", body = serde_json::Value))
)]
pub async fn openid_configuration(services: Data<Services>) -> HttpResponse {
    let issuer = services.issuer.issuer.trim_end_matches('/');
    HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)])).json(
        serde_json::json!({
            "issuer": services.issuer.issuer,
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

/// The body of `/healthz` and `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (the process is up) or `ready`.
    status: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "get_health",
    tag = "operations",
    responses((status = 200, description = "the process is up", body = Status))
)]
pub async fn healthz() -> impl Responder {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// `GET /readyz`: 200 when the database answers and the key ring can sign, else 503.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "get_readiness",
    tag = "operations",
    responses(
        (status = 200, description = "ready", body = Status),
        (status = 503, description = "database or key ring unusable", body = ErrorBody),
    )
)]
pub async fn readyz(services: Data<Services>) -> Result<HttpResponse, AppError> {
    health::readiness(&services).await?;
    Ok(HttpResponse::Ok().json(Status { status: "ready" }))
}

/// `GET /metrics`: Prometheus text format. State owned elsewhere is read now, not cached.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"))
)]
pub async fn metrics(services: Data<Services>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(health::metrics_text(&services))
}
