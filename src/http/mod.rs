//! HTTP: shared state, the route table, and one module per resource. Handlers stay thin:
//! parse → authorize → message an actor → map to a response.

mod admin;
mod auth;
mod oauth;
pub mod openapi;
pub use auth::create_user;
mod authors;
pub mod errors;
pub mod extract;
mod users;
mod verify;
mod well_known;

use crate::actors::db::Database;
use crate::actors::key_ring::KeyRingHandle;
use crate::actors::passwords::Passwords;
use crate::actors::revocations::RevocationsHandle;
use crate::clock::SharedClock;
use crate::db::users::User;
use crate::tokens::{self, AccessClaims, TokenRejection, VerificationPolicy, VerifiedTokenCache};
use actix_web::web::{self, ServiceConfig};
use errors::AppError;
use uuid::Uuid;

/// Token issuing parameters, fixed at start.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    pub policy: VerificationPolicy,
}

/// Everything handlers share: handles to the actors and the token settings.
pub struct AppState {
    pub db: Database,
    pub passwords: Passwords,
    pub key_ring: KeyRingHandle,
    pub revocations: RevocationsHandle,
    pub clock: SharedClock,
    pub tokens: TokenSettings,
    pub token_cache: VerifiedTokenCache,
    pub login_throttle: crate::throttle::LoginThrottle,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// For the pool gauges of `/metrics`.
    pub pool: crate::db::DbPool,
    /// Reverse proxies whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AppState {
    /// Verifies an access token against the published keys and the deny list. Reads snapshots
    /// only: no message, no database.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        let snapshot = self.key_ring.snapshot();
        let now = self.clock.now().timestamp();
        let claims = self
            .token_cache
            .verify(token, &snapshot.verification_keys, &self.tokens.policy, now)
            .inspect_err(|_| {
                self.metrics.verifications.with_label_values(&["invalid"]).inc();
            })?;
        let outcome = match self.revocations.deny_list().check(&claims) {
            Some(_) => Err(TokenRejection::Revoked),
            None => Ok(claims),
        };
        self.metrics.verifications.with_label_values(&[if outcome.is_ok() { "valid" } else { "revoked" }]).inc();
        outcome
    }

    /// Signs a new access token for `user` in session `sid`, with the current key (RFC 9068).
    pub fn issue_access_token(&self, user: &User, sid: Uuid) -> Result<(String, AccessClaims), AppError> {
        let sub = Uuid::parse_str(&user.public_id).map_err(|e| AppError::Internal(format!("stored public_id: {e}")))?;
        let now = self.clock.now().timestamp();
        let claims = AccessClaims {
            iss: self.tokens.issuer.clone(),
            sub,
            aud: self.tokens.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.tokens.access_token_ttl.num_seconds(),
            jti: Uuid::new_v4(),
            sid,
            name: user.name.clone(),
            groups: if user.admin { vec![tokens::ADMIN_GROUP.to_string()] } else { Vec::new() },
        };
        let snapshot = self.key_ring.snapshot();
        let key = snapshot.current.as_ref().ok_or_else(|| AppError::Unavailable("no current signing key".into()))?;
        let token = key.sign(&claims).map_err(|e| AppError::Internal(e.to_string()))?;
        Ok((token, claims))
    }
}

/// The route table (API.md "Endpoints"). Resources answer a wrong method with 405.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/register").route(web::post().to(auth::register)))
        .service(web::resource("/login").route(web::post().to(auth::login)))
        .service(web::resource("/logout").route(web::post().to(auth::logout)))
        .service(web::resource("/token/refresh").route(web::post().to(auth::refresh)))
        .service(web::resource("/revoke").route(web::post().to(oauth::revoke)))
        .service(web::resource("/introspect").route(web::post().to(oauth::introspect)))
        .service(web::resource("/verify").route(web::route().to(verify::verify)))
        .service(web::resource("/users/me").route(web::get().to(users::me)))
        .service(web::resource("/users").route(web::get().to(users::list)))
        .service(
            web::resource("/users/{public_id}")
                .route(web::patch().to(users::update))
                .route(web::delete().to(users::delete)),
        )
        .service(web::resource("/authors").route(web::get().to(authors::list)).route(web::post().to(authors::create)))
        .service(web::resource("/author").route(web::post().to(authors::create_alias)))
        .service(
            web::resource("/authors/{id}")
                .route(web::get().to(authors::get))
                .route(web::put().to(authors::update))
                .route(web::delete().to(authors::delete)),
        )
        .service(web::resource("/admin/keys").route(web::get().to(admin::list_keys)))
        .service(web::resource("/admin/keys/rotate").route(web::post().to(admin::rotate)))
        .service(web::resource("/admin/keys/{kid}").route(web::delete().to(admin::delete_key)))
        .service(web::resource("/.well-known/jwks.json").route(web::get().to(well_known::jwks)))
        .service(
            web::resource("/.well-known/openid-configuration").route(web::get().to(well_known::openid_configuration)),
        )
        .service(web::resource("/healthz").route(web::get().to(well_known::healthz)))
        .service(web::resource("/openapi.json").route(web::get().to(openapi::document)))
        .service(web::resource("/metrics").route(web::get().to(well_known::metrics)))
        .service(web::resource("/docs").route(web::get().to(openapi::docs_page)))
        .service(web::resource("/readyz").route(web::get().to(well_known::readyz)));
}

/// Path parameters that do not parse name nothing that exists.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| AppError::NotFound("no such resource").into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| AppError::bad_request("invalid_query", error.to_string()).into())
}

/// Answers requests for routes that do not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound("no such route"))
}
