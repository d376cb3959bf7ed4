//! The actix-web extractor: [`Authenticated`] verifies the request's bearer token (RFC 6750
//! §2.1) with the app's [`Verifier`] and answers failures with RFC 6750 §3 challenges.

use crate::claims::AccessClaims;
use crate::policy::TokenRejection;
use crate::remote::Verifier;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The verified claims of the request's bearer token. Register the [`Verifier`] as app data
/// (`App::new().app_data(web::Data::new(verifier))` or `.app_data(verifier)`), then take
/// `Authenticated` as a handler argument; a request without a valid token never reaches the
/// handler. Dereferences to [`AccessClaims`].
#[derive(Debug, Clone)]
pub struct Authenticated {
    claims: Arc<AccessClaims>,
    realm: Arc<str>,
}

impl Authenticated {
    /// The verified claims.
    pub fn claims(&self) -> &Arc<AccessClaims> {
        &self.claims
    }

    /// `Ok` when the token carries group `group`; else a 403 to return from the handler.
    pub fn require_group(&self, group: &str) -> Result<(), AuthError> {
        match self.claims.in_group(group) {
            true => Ok(()),
            false => Err(AuthError::new(&self.realm, Failure::MissingGroup(group.to_string()))),
        }
    }

    /// `Ok` when the token carries scope `scope`; else a 403 `insufficient_scope` challenge
    /// naming it (RFC 6750 §3.1).
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        match self.claims.has_scope(scope) {
            true => Ok(()),
            false => Err(AuthError::new(&self.realm, Failure::MissingScope(scope.to_string()))),
        }
    }
}

impl std::ops::Deref for Authenticated {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.claims
    }
}

/// Why a request was not let through, answered as RFC 6750 §3 prescribes: 401 with a
/// `WWW-Authenticate: Bearer` challenge (with `error="invalid_token"` when a token was sent),
/// 403 `insufficient_scope` for a missing group or scope, 503 while the issuer's keys are
/// unavailable. The JSON body carries `error` and `error_description`; the reason a token was
/// refused is logged at debug level, never sent.
#[derive(Debug)]
pub struct AuthError {
    realm: Arc<str>,
    failure: Failure,
}

#[derive(Debug)]
enum Failure {
    /// No `Authorization: Bearer` header (RFC 6750 §3.1: no error code then).
    NoToken,
    InvalidToken(TokenRejection),
    MissingGroup(String),
    MissingScope(String),
    KeysUnavailable,
    /// No [`Verifier`] registered as app data: a bug in the app, answered 500.
    NotConfigured,
}

impl AuthError {
    fn new(realm: &Arc<str>, failure: Failure) -> Self {
        Self { realm: Arc::clone(realm), failure }
    }

    /// The refused token's rejection, when a token was refused.
    pub fn rejection(&self) -> Option<&TokenRejection> {
        match &self.failure {
            Failure::InvalidToken(rejection) => Some(rejection),
            _ => None,
        }
    }

    fn code_and_description(&self) -> (&'static str, String) {
        match &self.failure {
            Failure::NoToken => ("invalid_request", "a bearer token is required".into()),
            Failure::InvalidToken(_) => ("invalid_token", "the access token is invalid, expired or revoked".into()),
            Failure::MissingGroup(group) => ("insufficient_scope", format!("the token lacks group {group}")),
            Failure::MissingScope(scope) => ("insufficient_scope", format!("the token lacks scope {scope}")),
            Failure::KeysUnavailable => ("temporarily_unavailable", "tokens cannot be checked now".into()),
            Failure::NotConfigured => ("server_error", "internal error".into()),
        }
    }

    fn challenge(&self) -> Option<String> {
        let realm = &self.realm;
        let (code, description) = self.code_and_description();
        match &self.failure {
            Failure::NoToken => Some(format!("Bearer realm=\"{realm}\"")),
            Failure::InvalidToken(_) | Failure::MissingGroup(_) => {
                Some(format!("Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{description}\""))
            }
            Failure::MissingScope(scope) => Some(format!(
                "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{description}\", scope=\"{scope}\""
            )),
            Failure::KeysUnavailable | Failure::NotConfigured => None,
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.code_and_description().1)
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self.failure {
            Failure::NoToken | Failure::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Failure::MissingGroup(_) | Failure::MissingScope(_) => StatusCode::FORBIDDEN,
            Failure::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Failure::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, description) = self.code_and_description();
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        // A group or scope that cannot be a header value (the app's own string) leaves the
        // challenge out rather than fail.
        if let Some(challenge) = self.challenge().and_then(|challenge| HeaderValue::from_str(&challenge).ok()) {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if matches!(self.failure, Failure::KeysUnavailable) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        response.json(serde_json::json!({"error": code, "error_description": description}))
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme is
/// case-insensitive).
fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn verifier_of(req: &HttpRequest) -> Option<Verifier> {
    req.app_data::<web::Data<Verifier>>()
        .map(|data| data.get_ref().clone())
        .or_else(|| req.app_data::<Verifier>().cloned())
}

impl FromRequest for Authenticated {
    type Error = AuthError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AuthError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(verifier) = verifier_of(req) else {
            log::error!("Authenticated used without a Verifier registered as app data");
            return Box::pin(std::future::ready(Err(AuthError::new(&Arc::from(""), Failure::NotConfigured))));
        };
        let realm = verifier.shared_realm();
        let token = bearer_token(req).map(str::to_string);
        Box::pin(async move {
            let Some(token) = token else { return Err(AuthError::new(&realm, Failure::NoToken)) };
            match verifier.verify(&token).await {
                Ok(claims) => Ok(Authenticated { claims, realm }),
                Err(TokenRejection::KeysUnavailable) => Err(AuthError::new(&realm, Failure::KeysUnavailable)),
                Err(rejection) => {
                    log::debug!("bearer token refused: {rejection}");
                    Err(AuthError::new(&realm, Failure::InvalidToken(rejection)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use actix_web::test::TestRequest;

    fn error(failure: Failure) -> AuthError {
        AuthError::new(&Arc::from("library-api"), failure)
    }

    #[actix_web::test]
    async fn each_failure_has_its_status_challenge_and_body() {
        let cases = [
            (Failure::NoToken, 401, Some("Bearer realm=\"library-api\""), "invalid_request"),
            (
                Failure::InvalidToken(TokenRejection::Expired),
                401,
                Some(
                    "Bearer realm=\"library-api\", error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\"",
                ),
                "invalid_token",
            ),
            (
                Failure::MissingScope("write".into()),
                403,
                Some(
                    "Bearer realm=\"library-api\", error=\"insufficient_scope\", error_description=\"the token lacks scope write\", scope=\"write\"",
                ),
                "insufficient_scope",
            ),
            (Failure::MissingGroup("admin".into()), 403, None, "insufficient_scope"),
            (Failure::KeysUnavailable, 503, None, "temporarily_unavailable"),
        ];
        for (failure, status, challenge, code) in cases {
            let name = format!("{failure:?}");
            let response = error(failure).error_response();
            assert_eq!(response.status().as_u16(), status, "{name}");
            let sent = response.headers().get(header::WWW_AUTHENTICATE).map(|value| value.to_str().expect("ascii"));
            if let Some(challenge) = challenge {
                assert_eq!(sent, Some(challenge), "{name}");
            }
            let body = to_bytes(response.into_body()).await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(body["error"], code, "{name}");
        }
    }

    #[test]
    fn only_bearer_credentials_are_taken() {
        for (header_value, expected) in [
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer abc"), Some("abc")),
            (Some("BEARER  abc"), Some("abc")),
            (Some("Bearer "), None),
            (Some("Basic abc"), None),
            (Some("Bearerabc"), None),
            (None, None),
        ] {
            let mut request = TestRequest::default();
            if let Some(value) = header_value {
                request = request.insert_header((header::AUTHORIZATION, value));
            }
            let request = request.to_http_request();
            assert_eq!(bearer_token(&request), expected, "{header_value:?}");
        }
    }
}
