//! `/register`, `/login`, `/logout`.

use super::AppState;
use super::errors::{AppError, Unauthorized};
use super::extract::{AuthenticatedUser, FormOrJson, JsonBody};
use super::openapi::ErrorResponse;
use crate::actors::revocations::SubjectScope;
use crate::db::UniqueField;
use crate::db::sessions::{self, Refresh};
use crate::db::users::{self, User};
use crate::domain::{Password, UserName, name_key};
use crate::throttle::{self, AttemptKeys};
use crate::tokens::{AccessClaims, MAX_REFRESH_TOKEN_LEN, generate_refresh_token, hash_refresh_token};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::{Data, Payload, Query};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

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
#[utoipa::path(post, path = "/register", tag = "users", request_body = Credentials, responses((status = 201, description = "registered", body = Registered), (status = 400, description = "malformed request", body = ErrorResponse), (status = 409, description = "conflict", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn register(state: Data<AppState>, JsonBody(body): JsonBody<Credentials>) -> Result<HttpResponse, AppError> {
    let name = UserName::parse(&body.name)?;
    let password = Password::parse(body.password)?;
    // Cheap early answer for a taken name, before spending a bcrypt hash on it. The unique
    // index still decides races between concurrent registrations.
    let key = name.key();
    if state.db.query(move |conn| users::find_by_name_key(conn, &key)).await?.is_some() {
        return Err(AppError::conflict(UniqueField::UserName));
    }
    let password_hash = state.passwords.hash(password.expose()).await?;
    let user = create_user(&state, name, password_hash, false).await?;
    Ok(HttpResponse::Created().json(Registered { public_id: user.public_id, name: user.name, admin: user.admin }))
}

/// Inserts a user whose password is already hashed.
pub async fn create_user(
    state: &AppState,
    name: UserName,
    password_hash: String,
    admin: bool,
) -> Result<User, AppError> {
    let now = state.clock.now().naive_utc();
    state
        .db
        .run(move |conn| {
            users::create(conn, name.as_str(), &name.key(), &password_hash, admin, now).map_err(AppError::from)
        })
        .await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: &'a str,
    /// The seed's name for the access token, kept for its clients.
    token: &'a str,
}

/// The token pair response (RFC 6749 §5.1): never cached.
fn token_response(access_token: &str, claims: &AccessClaims, refresh_token: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: claims.exp - claims.iat,
            refresh_token,
            token: access_token,
        })
}

/// `POST /login` with HTTP Basic (RFC 7617) or a JSON body → 200 with an access token and a
/// refresh token; the login starts a new session (token family).
#[utoipa::path(post, path = "/login", tag = "tokens", request_body(content = Option<Credentials>, description = "JSON credentials, or none with HTTP Basic"), security((), ("basic" = [])), responses((status = 200, description = "a token pair", body = TokenResponse), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "wrong name or password", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 422, description = "invalid values", body = ErrorResponse), (status = 429, description = "too many failed attempts (Retry-After)", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn login(req: HttpRequest, payload: Payload, state: Data<AppState>) -> Result<HttpResponse, AppError> {
    let Credentials { name, password } = read_credentials(&req, payload).await?;
    if password.len() > Password::MAX_BYTES {
        // bcrypt would ignore the bytes past 72; such a password never matches, say so instead.
        Password::check_length(&password)?;
    }
    // No registered name has control characters (PostgreSQL would refuse a NUL byte outright)
    // or is that long: such a name is counted and checked like any unknown one, never looked up.
    let impossible_name = name.chars().any(char::is_control) || name.len() > 4 * UserName::MAX_CHARS;
    let key = if impossible_name { "<impossible name>".to_string() } else { name_key(&name) };
    let attempt = Arc::new(AttemptKeys::new(&key, client_ip(&req, &state.trusted_proxies)));
    let (counted, throttle, now) = (attempt.clone(), state.login_throttle, state.clock.now());
    if let Err(wait) = state.db.query(move |conn| throttle::begin_attempt(conn, &counted, &throttle, now)).await? {
        log::info!("login throttled for {:?}", name);
        state.metrics.login_throttled.inc();
        return Err(AppError::TooManyRequests { retry_after_secs: (wait.num_milliseconds() + 999) / 1000 });
    }
    if impossible_name {
        state.passwords.verify(&password, None).await?;
        let (throttle, now) = (state.login_throttle, state.clock.now());
        state.db.query(move |conn| throttle::failed(conn, &attempt, &throttle, now)).await?;
        return Err(AppError::Unauthorized(Unauthorized::InvalidCredentials));
    }
    let user = state.db.query(move |conn| users::find_by_name_key(conn, &key)).await?;
    // Verified against a dummy hash when the user does not exist: same work, same answer.
    let matches = state.passwords.verify(&password, user.as_ref().map(|user| user.password_hash.clone())).await?;
    let Some(user) = user.filter(|_| matches) else {
        let (throttle, now) = (state.login_throttle, state.clock.now());
        state.db.query(move |conn| throttle::failed(conn, &attempt, &throttle, now)).await?;
        return Err(AppError::Unauthorized(Unauthorized::InvalidCredentials));
    };
    state.db.query(move |conn| throttle::succeeded(conn, &attempt)).await?;

    let sid = Uuid::new_v4();
    let refresh = generate_refresh_token();
    let now = state.clock.now();
    let (family, user_id, hash) = (sid.to_string(), user.id, refresh.hash.clone());
    let expires_at = (now + state.tokens.refresh_token_ttl).naive_utc();
    // Tokens are issued from the user as they are once the session exists (a role change or a
    // deletion during the password check is not missed).
    let user = state
        .db
        .query(move |conn| sessions::start_family(conn, &family, user_id, &hash, now.naive_utc(), expires_at))
        .await?
        .ok_or(AppError::Unauthorized(Unauthorized::InvalidCredentials))?;
    let (access_token, claims) = state.issue_access_token(&user, sid)?;
    state.metrics.tokens_issued.with_label_values(&["password"]).inc();
    Ok(token_response(&access_token, &claims, &refresh.token))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// `POST /token/refresh` → 200 with a new pair; the presented refresh token is spent. Presenting
/// a spent one again revokes its whole session (refresh token reuse detection, RFC 6819
/// §5.2.2.3): one of the two parties holding it is an attacker, and we cannot tell which.
#[utoipa::path(post, path = "/token/refresh", tag = "tokens", request_body = RefreshRequest, responses((status = 200, description = "a new token pair", body = TokenResponse), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "invalid, expired, spent or revoked refresh token", body = ErrorResponse), (status = 413, description = "body over 64 KiB", body = ErrorResponse), (status = 415, description = "not JSON", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn refresh(
    state: Data<AppState>,
    FormOrJson(body): FormOrJson<RefreshRequest>,
) -> Result<HttpResponse, AppError> {
    let invalid = AppError::Unauthorized(Unauthorized::InvalidGrant);
    if body.refresh_token.is_empty() || body.refresh_token.len() > MAX_REFRESH_TOKEN_LEN {
        return Err(invalid);
    }
    let presented = hash_refresh_token(&body.refresh_token);
    let replacement = generate_refresh_token();
    let now = state.clock.now();
    let (new_hash, expires_at) = (replacement.hash.clone(), (now + state.tokens.refresh_token_ttl).naive_utc());
    let outcome = state
        .db
        .query(move |conn| sessions::rotate_refresh_token(conn, &presented, &new_hash, now.naive_utc(), expires_at))
        .await?;
    match outcome {
        Refresh::Rotated { user, family_id } => {
            let sid = Uuid::parse_str(&family_id).map_err(|e| AppError::Internal(format!("stored family id: {e}")))?;
            let (access_token, claims) = state.issue_access_token(&user, sid)?;
            state.metrics.tokens_issued.with_label_values(&["refresh_token"]).inc();
            Ok(token_response(&access_token, &claims, &replacement.token))
        }
        Refresh::Reused { family_id } => {
            log::warn!("refresh token reuse detected: session {family_id} revoked");
            if let Ok(sid) = Uuid::parse_str(&family_id) {
                state.revocations.revoke_session(sid).await?;
                state.metrics.revocations.with_label_values(&["session"]).inc();
            }
            Err(invalid)
        }
        Refresh::Invalid => Err(invalid),
    }
}

/// The client's address: the peer, or, when the peer is a trusted reverse proxy, the last
/// `X-Forwarded-For` entry that is not one of ours (earlier entries are the client's to forge).
fn client_ip(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer = req.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let forwarded =
        req.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok()).collect::<Vec<_>>().join(",");
    for entry in forwarded.split(',').rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted_proxies.contains(&ip) => continue,
            Ok(ip) => return ip,
            // Something our proxies did not write: everything left of it is the client's to forge.
            Err(_) => return peer,
        }
    }
    peer
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
pub struct LogoutQuery {
    /// `true`: end every token of the user, on every device.
    #[serde(default)]
    all: bool,
}

/// `POST /logout` → 204: the presented access token and its session (refresh tokens and every
/// access token of that login) stop working. `?all=true`: every token the user holds, issued
/// until now, stops working, on every device.
#[utoipa::path(post, path = "/logout", tag = "tokens", params(LogoutQuery), security(("bearer" = [])), responses((status = 204, description = "logged out"), (status = 400, description = "malformed request", body = ErrorResponse), (status = 401, description = "missing or invalid token", body = ErrorResponse), (status = 503, description = "database unavailable", body = ErrorResponse)))]
pub async fn logout(
    state: Data<AppState>,
    AuthenticatedUser(claims): AuthenticatedUser,
    Query(query): Query<LogoutQuery>,
) -> Result<HttpResponse, AppError> {
    if query.all {
        let subject = claims.sub.to_string();
        state
            .revocations
            .end_subject(claims.sub, SubjectScope::IssuedUntilNow, move |conn| -> Result<((), Option<i32>), AppError> {
                let user = users::find_by_public_id(conn, &subject)?;
                Ok(((), user.map(|user| user.id)))
            })
            .await?;
        state.metrics.revocations.with_label_values(&["subject"]).inc();
    } else {
        let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0)
            .ok_or_else(|| AppError::Internal("exp out of range".into()))?;
        state.revocations.revoke_token(claims.jti, expires_at).await?;
        state.revocations.revoke_session(claims.sid).await?;
        state.metrics.revocations.with_label_values(&["token"]).inc();
        state.metrics.revocations.with_label_values(&["session"]).inc();
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
