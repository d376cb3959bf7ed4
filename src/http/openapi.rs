//! The OpenAPI 3.1 document of the whole API (utoipa, generated from the handlers' own
//! annotations, so it cannot drift from the routes silently), served at `/openapi.json`, and an
//! offline docs page at `/docs` (one HTML file compiled into the binary; nothing from a CDN).

use super::admin::{KeyList, KeyView, Rotated};
use super::auth::{Credentials, RefreshRequest, Registered, TokenResponse};
use super::authors::{AuthorInput, AuthorPage, AuthorView};
use super::oauth::TokenRequest;
use super::users::{AdminChange, UserList, UserView};
use super::{admin, auth, authors, oauth, users, verify, well_known};
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use serde::Serialize;
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error response (API.md "Errors").
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    /// snake_case code, e.g. `invalid_token`.
    pub error: String,
    /// For humans.
    pub message: String,
}

/// `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// An RFC 7662 introspection answer: `{"active": false}` for anything not valid.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub token_type: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub username: Option<String>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub jti: Option<String>,
    pub sid: Option<String>,
    pub groups: Option<Vec<String>>,
}

/// One public key (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct JwkDocument {
    pub kty: String,
    #[serde(rename = "use")]
    #[schema(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// The JWKS (RFC 7517 §5).
#[derive(Serialize, ToSchema)]
pub struct JwksDocument {
    pub keys: Vec<JwkDocument>,
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "library-api", description = "Users, RS256 access tokens with a JWKS and a revocation list, and a small authors API."),
    paths(
        auth::register, auth::login, auth::refresh, auth::logout,
        users::me, users::list, users::update, users::delete,
        authors::create, authors::create_alias, authors::list, authors::get, authors::update, authors::delete,
        oauth::revoke, oauth::introspect, verify::verify,
        well_known::jwks, well_known::openid_configuration, well_known::healthz, well_known::readyz, well_known::metrics,
        admin::list_keys, admin::rotate, admin::delete_key,
    ),
    components(schemas(
        ErrorResponse, Status, Introspection, JwkDocument, JwksDocument, Credentials, Registered, TokenResponse,
        RefreshRequest, UserView, UserList, AdminChange, AuthorInput, AuthorView, AuthorPage, TokenRequest,
        KeyView, KeyList, Rotated,
    )),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// The document, serialized once.
fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into()))
}

/// `GET /openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(300)]))
        .content_type(ContentType::json())
        .body(json())
}

/// `GET /docs`: a self-contained page that renders `/openapi.json`.
pub async fn docs_page() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'",
        ))
        .content_type(ContentType::html())
        .body(include_str!("assets/docs.html"))
}
