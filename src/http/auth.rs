//! `/register`, `/login`, `/token/refresh`, `/logout`.

use super::errors::{AppError, BodyErrors, DatabaseErrors, ErrorBody, InvalidValuesError, TokenErrors, Unauthorized};
use super::extract::{AuthenticatedUser, ClientAddr, FormOrJson, JsonBody, StrictQuery, user_agent};
use crate::domain::{Password, UserName};
use crate::service::sessions::{self, SessionClient, TokenPair};
use crate::service::{Services, users};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::{Data, Payload};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    name: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Registered {
    public_id: String,
    name: String,
    admin: bool,
}

/// `POST /register` → 201.
#[utoipa::path(
    post,
    path = "/register",
    operation_id = "register",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 201, description = "registered", body = Registered),
        (status = 409, description = "the name is taken", body = ErrorBody),
        (status = 429, description = "too many registrations from this address (Retry-After)", body = ErrorBody),
        BodyErrors,
        InvalidValuesError,
        DatabaseErrors,
    )
)]
pub async fn register(
    services: Data<Services>,
    ClientAddr(address): ClientAddr,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, AppError> {
    let name = UserName::parse(&body.name)?;
    let password = Password::parse(body.password)?;
    let user = users::register(&services, name, password, address).await?;
    Ok(HttpResponse::Created().json(Registered { public_id: user.public_id, name: user.name, admin: user.admin }))
}

/// A token response (RFC 6749 §5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    /// Absent for a client-credentials grant (RFC 6749 §4.4.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The granted scopes, space-separated (RFC 6749 §5.1).
    scope: String,
    /// The seed's name for the access token, kept for its clients (`/login`, `/token/refresh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// The token response (RFC 6749 §5.1): never cached. `seed_fields` adds the seed's `token`.
pub(super) fn token_response(pair: TokenPair, seed_fields: bool) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            expires_in: pair.claims.exp - pair.claims.iat,
            token: seed_fields.then(|| pair.access_token.clone()),
            access_token: pair.access_token,
            token_type: "Bearer",
            refresh_token: pair.refresh_token,
            scope: pair.claims.scope,
        })
}

/// `POST /login` with HTTP Basic (RFC 7617) or a JSON body → 200 with an access token and a
/// refresh token; the login starts a new session.
#[utoipa::path(
    post,
    path = "/login",
    operation_id = "login",
    tag = "tokens",
    request_body(content = Option<Credentials>, description = "JSON credentials, or none with HTTP Basic"),
    security((), ("basic" = [])),
    responses(
        (status = 200, description = "a token pair", body = TokenResponse),
        (status = 401, description = "wrong name or password", body = ErrorBody),
        (status = 429, description = "too many failed attempts (Retry-After)", body = ErrorBody),
        BodyErrors,
        InvalidValuesError,
        DatabaseErrors,
    )
)]
pub async fn login(
    req: HttpRequest,
    payload: Payload,
    services: Data<Services>,
    ClientAddr(client): ClientAddr,
) -> Result<HttpResponse, AppError> {
    let Credentials { name, password } = read_credentials(&req, payload).await?;
    let session_client = SessionClient::builtin(&services);
    let pair = sessions::login(&services, &name, &password, client, session_client, user_agent(&req)).await?;
    Ok(token_response(pair, true))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /token/refresh` → 200 with a new pair; the presented refresh token is spent, and
/// presenting it again revokes its session.
#[utoipa::path(
    post,
    path = "/token/refresh",
    operation_id = "refresh_token",
    tag = "tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "a new token pair", body = TokenResponse),
        (status = 400, description = "`invalid_grant`: an invalid, expired, spent or revoked refresh token", body = ErrorBody),
        BodyErrors,
        DatabaseErrors,
    )
)]
pub async fn refresh(
    services: Data<Services>,
    FormOrJson(body): FormOrJson<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let pair = sessions::refresh(&services, &services.public_client_id, &body.refresh_token, None).await?;
    Ok(token_response(pair, true))
}

/// Basic credentials if an `Authorization: Basic` header is present, else the JSON body.
async fn read_credentials(req: &HttpRequest, payload: Payload) -> Result<Credentials, AppError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        return parse_basic(value.as_bytes()).ok_or(AppError::Unauthorized(Unauthorized::InvalidCredentials));
    }
    if req.headers().get(header::CONTENT_TYPE).is_none() {
        // No credentials at all: challenge for Basic, as the seed did.
        return Err(AppError::Unauthorized(Unauthorized::InvalidCredentials));
    }
    Ok(JsonBody::<Credentials>::from_request(req, &mut payload.into_inner()).await?.0)
}

fn parse_basic(header_value: &[u8]) -> Option<Credentials> {
    let value = std::str::from_utf8(header_value).ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some(Credentials { name: name.to_string(), password: password.to_string() })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogoutQuery {
    /// `true`: end every token of the user, on every device.
    #[serde(default)]
    all: bool,
}

/// `POST /logout` → 204: the presented access token and its session (refresh tokens and every
/// access token of that login) stop working. `?all=true`: every token the user holds, issued
/// until now, stops working, on every device.
#[utoipa::path(
    post,
    path = "/logout",
    operation_id = "logout",
    tag = "tokens",
    params(LogoutQuery),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "logged out"),
        (status = 400, description = "malformed query string", body = ErrorBody),
        TokenErrors,
        DatabaseErrors,
    )
)]
pub async fn logout(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<LogoutQuery>,
) -> Result<HttpResponse, AppError> {
    if query.all {
        sessions::log_out_everywhere(&services, &claims.sub).await?;
    } else {
        sessions::log_out(&services, &claims).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_split_at_the_first_colon() {
        let header = format!("Basic {}", BASE64.encode("alice:pass:word"));
        let credentials = parse_basic(header.as_bytes()).expect("valid");
        assert_eq!((credentials.name.as_str(), credentials.password.as_str()), ("alice", "pass:word"));
        for bad in ["Bearer abc", "Basic !!!", "Basic", &format!("Basic {}", BASE64.encode("no-colon"))] {
            assert!(parse_basic(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
