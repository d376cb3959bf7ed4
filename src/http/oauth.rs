//! Token revocation (RFC 7009) and introspection (RFC 7662), for access and refresh tokens.

use super::errors::{AppError, BodyErrors, DatabaseErrors, TokenErrors};
use super::extract::{AuthenticatedUser, FormOrJson};
use crate::service::Services;
use crate::service::sessions::{self, PresentedToken};
use crate::tokens::AccessClaims;
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::Data;
use serde::{Deserialize, Serialize};

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

/// `POST /revoke` (RFC 7009). Holding a token is the authority to revoke it. Always 200 for a
/// well-formed request: unknown, invalid or expired tokens need no revoking (§2.2).
#[utoipa::path(
    post,
    path = "/revoke",
    operation_id = "revoke_token",
    tag = "tokens",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "revoked (or nothing to revoke)"),
        BodyErrors,
        DatabaseErrors,
    )
)]
pub async fn revoke(
    services: Data<Services>,
    FormOrJson(request): FormOrJson<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    sessions::revoke(&services, &request.token, request.refresh_first()).await?;
    Ok(HttpResponse::Ok().finish())
}

/// An RFC 7662 introspection answer: `{"active": false}` for anything not active, else the
/// token's metadata (§2.2).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    active: bool,
    /// `Bearer` for an access token (the token type of RFC 6749 §7.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<Vec<String>>,
}

impl Introspection {
    fn of_access_token(claims: AccessClaims) -> Self {
        Self {
            active: true,
            token_type: Some("Bearer"),
            iss: Some(claims.iss),
            sub: Some(claims.sub.to_string()),
            aud: Some(claims.aud),
            username: Some(claims.name),
            iat: Some(claims.iat),
            nbf: Some(claims.nbf),
            exp: Some(claims.exp),
            jti: Some(claims.jti.to_string()),
            sid: Some(claims.sid.to_string()),
            groups: Some(claims.groups),
        }
    }

    fn of(token: Option<PresentedToken>) -> Self {
        match token {
            Some(PresentedToken::Access(claims)) => Self::of_access_token(claims),
            Some(PresentedToken::Refresh((token, session, user))) => Self {
                active: true,
                sub: Some(user.public_id),
                username: Some(user.name),
                iat: Some(token.issued_at.and_utc().timestamp()),
                exp: Some(token.expires_at.and_utc().timestamp()),
                sid: Some(session.id),
                ..Self::default()
            },
            None => Self::default(),
        }
    }
}

/// `POST /introspect` (RFC 7662) for an authenticated caller: the token's metadata when it is
/// active, else only `{"active": false}` (§2.2) — whatever the reason.
#[utoipa::path(
    post,
    path = "/introspect",
    operation_id = "introspect_token",
    tag = "tokens",
    request_body = TokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the token's state", body = Introspection),
        BodyErrors,
        TokenErrors,
        DatabaseErrors,
    )
)]
pub async fn introspect(
    services: Data<Services>,
    _caller: AuthenticatedUser,
    FormOrJson(request): FormOrJson<TokenRequest>,
) -> Result<HttpResponse, AppError> {
    let token = sessions::identify(&services, &request.token, request.refresh_first()).await?;
    Ok(HttpResponse::Ok().insert_header(CacheControl(vec![CacheDirective::NoStore])).json(Introspection::of(token)))
}
