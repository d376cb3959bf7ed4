//! `/.well-known/jwks.json`, `/healthz`, `/readyz`.

use super::errors::{AppError, ErrorBody};
use crate::service::{Services, clients, health};
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

/// The authorization server metadata (RFC 8414 §2): only what exists. No authorization
/// endpoint, so no response types; no ID tokens, so no ID-token fields.
fn server_metadata(services: &Services) -> serde_json::Value {
    let issuer = services.issuer.issuer.trim_end_matches('/');
    let client_auth = ["client_secret_basic", "client_secret_post"];
    serde_json::json!({
        "issuer": services.issuer.issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "grant_types_supported": clients::GRANT_TYPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": client_auth,
        "scopes_supported": clients::KNOWN_SCOPES,
        "response_types_supported": [],
        "service_documentation": format!("{issuer}/docs"),
    })
}

fn metadata_response(services: &Services) -> HttpResponse {
    metadata_document(&server_metadata(services))
}

/// A metadata document (RFC 8414, OpenID Discovery, SSF): public, cacheable for an hour.
pub(super) fn metadata_document(body: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(3600)]))
        .json(body)
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414 §3).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "get_oauth_authorization_server_metadata",
    tag = "discovery",
    responses((status = 200, description = "authorization server metadata (RFC 8414)", body = serde_json::Value))
)]
pub async fn oauth_authorization_server(services: Data<Services>) -> HttpResponse {
    metadata_response(&services)
}

/// `GET /.well-known/openid-configuration`: the same metadata, where OpenID Connect Discovery
/// clients look for it (there are no ID tokens).
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "get_openid_configuration",
    tag = "discovery",
    responses((status = 200, description = "the same metadata", body = serde_json::Value))
)]
pub async fn openid_configuration(services: Data<Services>) -> HttpResponse {
    metadata_response(&services)
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
