//! The OAuth 2.0 endpoints: the token endpoint (RFC 6749 §3.2), revocation (RFC 7009) and
//! introspection (RFC 7662), for access and refresh tokens.

use super::auth::{TokenResponse, token_response};
use super::errors::{AppError, BodyErrors, DatabaseErrors, ErrorBody, TokenErrors, Unauthorized};
use super::extract::{ClientAddr, FormOrJson, FormParams, bearer_token, client_credentials, user_agent};
use crate::db::clients::ClientRow;
use crate::service::Services;
use crate::service::clients::{self, ClientCredentials};
use crate::service::oauth::{self, TokenRequest};
use crate::service::sessions::{self, Caller, PresentedToken};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

/// The parameters of a token request (for the OpenAPI document; the handler reads the form
/// strictly, see [`FormParams`]).
#[derive(Deserialize, utoipa::ToSchema)]
#[expect(dead_code, reason = "the schema of the form FormParams reads")]
pub struct TokenForm {
    /// `password`, `refresh_token` or `client_credentials`.
    grant_type: String,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    /// Space-separated scopes; omitted: every scope the client (or session) has.
    scope: Option<String>,
    /// `client_secret_post` and `none`; or use HTTP Basic (`client_secret_basic`).
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth/token` (RFC 6749 §3.2): the password, refresh_token and client_credentials
/// grants, for a client authenticated with HTTP Basic, `client_secret_post`, or `none`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "oauth_token",
    tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("basic" = [])),
    responses(
        (status = 200, description = "tokens (RFC 6749 §5.1)", body = TokenResponse),
        (status = 400, description = "RFC 6749 §5.2: invalid_request, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope", body = ErrorBody),
        (status = 401, description = "invalid_client (WWW-Authenticate: Basic)", body = ErrorBody),
        (status = 413, description = "body over 64 KiB", body = ErrorBody),
        (status = 429, description = "too many failed logins (Retry-After)", body = ErrorBody),
        DatabaseErrors,
    )
)]
pub async fn token(
    req: HttpRequest,
    services: Data<Services>,
    ClientAddr(address): ClientAddr,
    form: FormParams,
) -> Result<HttpResponse, AppError> {
    let request = token_request(&form)?;
    let credentials = client_credentials(&req, form.get("client_id"), form.get("client_secret"))?
        .ok_or(AppError::Unauthorized(Unauthorized::InvalidClient))?;
    let pair = oauth::token(&services, credentials, request, address, user_agent(&req)).await?;
    Ok(token_response(pair, false))
}

/// The grant a token request asks for, with its required parameters (RFC 6749 §4.3.2, §6,
/// §4.4.2).
fn token_request(form: &FormParams) -> Result<TokenRequest, AppError> {
    let required = |name: &'static str| {
        form.get(name)
            .map(str::to_string)
            .ok_or_else(|| AppError::bad_request("invalid_request", format!("the `{name}` parameter is required")))
    };
    let scope = form.get("scope").map(str::to_string);
    match required("grant_type")?.as_str() {
        "password" => {
            Ok(TokenRequest::Password { username: required("username")?, password: required("password")?, scope })
        }
        "refresh_token" => Ok(TokenRequest::RefreshToken { refresh_token: required("refresh_token")?, scope }),
        "client_credentials" => Ok(TokenRequest::ClientCredentials { scope }),
        _ => Err(AppError::bad_request(
            "unsupported_grant_type",
            "supported: password, refresh_token, client_credentials",
        )),
    }
}

/// The request of revocation and introspection: `token`, an optional `token_type_hint`, and,
/// for `client_secret_post`, the client's credentials.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenRequestBody {
    token: String,
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl TokenRequestBody {
    fn refresh_first(&self) -> bool {
        self.token_type_hint.as_deref() == Some("refresh_token")
    }
}

/// The caller of revocation or introspection: a client authenticated with HTTP Basic,
/// `client_secret_post` or (a public client, for revocation) `none` — wrong credentials: 401
/// `invalid_client` — else a Bearer token (an invalid one: 401), else nobody.
async fn caller(req: &HttpRequest, services: &Services, body: &TokenRequestBody) -> Result<Caller, AppError> {
    let credentials = client_credentials(req, body.client_id.as_deref(), body.client_secret.as_deref())?;
    if let Some(credentials) = credentials {
        return authenticated_client(services, credentials).await.map(Caller::Client);
    }
    match bearer_token(req) {
        Ok(token) => sessions::authenticate(services, token)
            .map(|claims| Caller::Token(std::sync::Arc::unwrap_or_clone(claims)))
            .map_err(|_| AppError::Unauthorized(Unauthorized::InvalidToken)),
        Err(AppError::Unauthorized(Unauthorized::MissingToken)) => Ok(Caller::Anonymous),
        Err(error) => Err(error),
    }
}

/// The client these credentials prove; anything else is `invalid_client`.
async fn authenticated_client(services: &Services, credentials: ClientCredentials) -> Result<ClientRow, AppError> {
    clients::authenticate(services, credentials).await?.ok_or(AppError::Unauthorized(Unauthorized::InvalidClient))
}

/// `POST /revoke` (RFC 7009). Holding a token is the authority to revoke it; a client that
/// authenticates revokes only tokens issued to it (others are left alone, and not disclosed).
/// Always 200 for a well-formed request: unknown, invalid or expired tokens need no revoking
/// (§2.2).
#[utoipa::path(
    post,
    path = "/revoke",
    operation_id = "revoke_token",
    tag = "oauth",
    request_body = TokenRequestBody,
    responses(
        (status = 200, description = "revoked (or nothing to revoke)"),
        (status = 401, description = "invalid_client, or an invalid Bearer token", body = ErrorBody),
        BodyErrors,
        DatabaseErrors,
    )
)]
pub async fn revoke(
    req: HttpRequest,
    services: Data<Services>,
    FormOrJson(body): FormOrJson<TokenRequestBody>,
) -> Result<HttpResponse, AppError> {
    let caller = caller(&req, &services, &body).await?;
    sessions::revoke(&services, &caller, &body.token, body.refresh_first()).await?;
    Ok(HttpResponse::Ok().finish())
}

/// An RFC 7662 introspection answer: `{"active": false}` for anything not active, else the
/// token's metadata (§2.2).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    active: bool,
    /// `Bearer` for an access token, `refresh_token` for a refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
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
    fn of(token: Option<PresentedToken>, issuer: &str, audience: &str) -> Self {
        match token {
            Some(PresentedToken::Access(claims)) => Self {
                active: true,
                token_type: Some("Bearer"),
                client_id: Some(claims.client_id),
                scope: Some(claims.scope),
                iss: Some(claims.iss),
                sub: Some(claims.sub.to_string()),
                aud: Some(claims.aud),
                username: claims.name,
                iat: Some(claims.iat),
                nbf: Some(claims.nbf),
                exp: Some(claims.exp),
                jti: Some(claims.jti.to_string()),
                sid: claims.sid.map(|sid| sid.to_string()),
                groups: Some(claims.groups),
            },
            Some(PresentedToken::Refresh((token, session, user))) => Self {
                active: true,
                token_type: Some("refresh_token"),
                client_id: Some(session.client_id),
                scope: Some(session.scope),
                iss: Some(issuer.to_string()),
                sub: Some(user.public_id),
                aud: Some(audience.to_string()),
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

/// `POST /introspect` (RFC 7662) for a user's access token, or a confidential client holding
/// the `introspect` scope (§2.1; as itself, or with a service token of its own): the token's metadata when it is active, else
/// only `{"active": false}` (§2.2) — whatever the reason.
#[utoipa::path(
    post,
    path = "/introspect",
    operation_id = "introspect_token",
    tag = "oauth",
    request_body = TokenRequestBody,
    security(("bearer" = []), ("basic" = [])),
    responses(
        (status = 200, description = "the token's state", body = Introspection),
        (status = 403, description = "insufficient_scope: the client lacks the `introspect` scope", body = ErrorBody),
        BodyErrors,
        TokenErrors,
        DatabaseErrors,
    )
)]
pub async fn introspect(
    req: HttpRequest,
    services: Data<Services>,
    FormOrJson(body): FormOrJson<TokenRequestBody>,
) -> Result<HttpResponse, AppError> {
    let caller = caller(&req, &services, &body).await?;
    let token = sessions::introspect(&services, &caller, &body.token, body.refresh_first()).await?;
    let answer = Introspection::of(token, &services.issuer.issuer, &services.issuer.audience);
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(answer))
}
