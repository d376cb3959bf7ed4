//! HTTP: shared state, the route table, and one module per resource. Handlers stay thin:
//! parse → authorize → message an actor → map to a response.

mod admin;
mod auth;
pub use auth::create_user;
mod authors;
pub mod errors;
pub mod extract;
mod users;
mod well_known;

use crate::actors::db::Database;
use crate::actors::key_ring::KeyRingHandle;
use crate::actors::passwords::Passwords;
use crate::actors::revocations::RevocationsHandle;
use crate::clock::SharedClock;
use crate::tokens::{self, AccessClaims, TokenRejection, VerificationPolicy};
use actix_web::web::{self, ServiceConfig};
use errors::AppError;

/// Token issuing parameters, fixed at start.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: chrono::Duration,
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
}

impl AppState {
    /// Verifies an access token against the published keys and the deny list. Reads snapshots
    /// only: no message, no database.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        let snapshot = self.key_ring.snapshot();
        let claims =
            tokens::verify(token, &snapshot.verification_keys, &self.tokens.policy, self.clock.now().timestamp())?;
        if self.revocations.is_revoked(&claims.jti) {
            return Err(TokenRejection::Revoked);
        }
        Ok(claims)
    }
}

/// The route table (API.md "Endpoints"). Resources answer a wrong method with 405.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/register").route(web::post().to(auth::register)))
        .service(web::resource("/login").route(web::post().to(auth::login)))
        .service(web::resource("/logout").route(web::post().to(auth::logout)))
        .service(web::resource("/users/me").route(web::get().to(users::me)))
        .service(web::resource("/users").route(web::get().to(users::list)))
        .service(web::resource("/authors").route(web::get().to(authors::list)).route(web::post().to(authors::create)))
        .service(web::resource("/author").route(web::post().to(authors::create)))
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
