//! `/register`, `/login`, `/logout`.

use super::AppState;
use super::errors::{AppError, Unauthorized};
use super::extract::{AuthenticatedUser, JsonBody};
use crate::db::UniqueField;
use crate::db::users::{self, User};
use crate::domain::{Password, UserName, name_key};
use crate::tokens::{ADMIN_GROUP, AccessClaims};
use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::web::{Data, Payload};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
}

#[derive(Serialize)]
struct Registered {
    public_id: String,
    name: String,
    admin: bool,
}

/// `POST /register` → 201.
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

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    /// The seed's name for the access token, kept for its clients.
    token: &'a str,
}

/// `POST /login` with HTTP Basic (RFC 7617) or a JSON body → 200 with an access token.
pub async fn login(req: HttpRequest, payload: Payload, state: Data<AppState>) -> Result<HttpResponse, AppError> {
    let Credentials { name, password } = read_credentials(&req, payload).await?;
    if password.len() > Password::MAX_BYTES {
        // bcrypt would ignore the bytes past 72; such a password never matches, say so instead.
        Password::check_length(&password)?;
    }
    let key = name_key(&name);
    let user = state.db.query(move |conn| users::find_by_name_key(conn, &key)).await?;
    // Verified against a dummy hash when the user does not exist: same work, same answer.
    let matches = state.passwords.verify(&password, user.as_ref().map(|user| user.password_hash.clone())).await?;
    let user = user.filter(|_| matches).ok_or(AppError::Unauthorized(Unauthorized::InvalidCredentials))?;

    let (token, claims) = issue_access_token(&state, &user)?;
    Ok(HttpResponse::Ok()
        // RFC 6749 §5.1: token responses must not be cached.
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token: &token,
            token_type: "Bearer",
            expires_in: claims.exp - claims.iat,
            token: &token,
        }))
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

/// Signs a new access token for `user` with the current key (RFC 9068 claims).
fn issue_access_token(state: &AppState, user: &User) -> Result<(String, AccessClaims), AppError> {
    let now = state.clock.now().timestamp();
    let claims = AccessClaims {
        iss: state.tokens.issuer.clone(),
        sub: Uuid::parse_str(&user.public_id).map_err(|e| AppError::Internal(format!("stored public_id: {e}")))?,
        aud: state.tokens.audience.clone(),
        iat: now,
        nbf: now,
        exp: now + state.tokens.access_token_ttl.num_seconds(),
        jti: Uuid::new_v4(),
        name: user.name.clone(),
        groups: if user.admin { vec![ADMIN_GROUP.to_string()] } else { Vec::new() },
    };
    let snapshot = state.key_ring.snapshot();
    let key = snapshot.current.as_ref().ok_or_else(|| AppError::Unavailable("no current signing key".into()))?;
    let token = key.sign(&claims).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((token, claims))
}

/// `POST /logout` → 204; the presented token stops working.
pub async fn logout(
    state: Data<AppState>,
    AuthenticatedUser(claims): AuthenticatedUser,
) -> Result<HttpResponse, AppError> {
    let expires_at =
        chrono::DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| AppError::Internal("exp out of range".into()))?;
    state.revocations.revoke(claims.jti, expires_at).await?;
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
