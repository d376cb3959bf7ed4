//! `/verify[?group=NAME]`: the sidecar check behind nginx `auth_request` (API.md).
//!
//! nginx turns any status other than 2xx, 401 and 403 from the auth subrequest into a 500 for
//! the client, so this handler answers only those three, whatever the request: any method, any
//! body (never read), any query string. On 200 it passes who the caller is in `X-Auth-User`
//! (the `sub`), `X-Auth-Name` and `X-Auth-Groups`; on 401 nginx forwards our RFC 6750
//! `WWW-Authenticate` challenge to the client.

use super::errors::{AppError, ErrorBody, REALM, TokenErrors, Unauthorized};
use super::extract::bearer_token;
use crate::service::Services;
use crate::service::sessions::{self, Lacking};
use actix_web::http::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Bytes escaped in `X-Auth-Name`: everything outside visible ASCII, and `%` itself, so a name
/// in any script arrives as a valid header value (decode it with any URL-decoding function).
const NAME_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// `GET|HEAD|POST|… /verify[?group=NAME]` → 200, 401 or 403, nothing else.
#[utoipa::path(
    get,
    path = "/verify",
    operation_id = "verify_token",
    tag = "sidecar",
    params(
        ("group" = Option<String>, Query, description = "a group the token must carry (repeatable)"),
        ("scope" = Option<String>, Query, description = "a scope the token must carry (repeatable)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "valid; X-Auth-User, X-Auth-Name, X-Auth-Groups, X-Auth-Scope headers"),
        (status = 403, description = "the token lacks a required group or scope", body = ErrorBody),
        TokenErrors,
    )
)]
pub async fn verify(req: HttpRequest, services: Data<Services>) -> HttpResponse {
    let claims = match bearer_token(&req).and_then(|token| {
        sessions::authenticate(&services, token).map_err(|_| AppError::Unauthorized(Unauthorized::InvalidToken))
    }) {
        Ok(claims) => claims,
        Err(error) => return error.error_response(),
    };
    let (Some(groups), Some(scopes)) = (required(req.query_string(), "group"), required(req.query_string(), "scope"))
    else {
        return AppError::Forbidden("the query string cannot be read").error_response();
    };
    match sessions::authorize(&claims, &groups, &scopes) {
        Ok(()) => {}
        Err(Lacking::Group) => return AppError::Forbidden("the token lacks a required group").error_response(),
        Err(Lacking::Scope) => return insufficient_scope(&scopes),
    }
    let mut response = HttpResponse::Ok().finish();
    let headers = response.headers_mut();
    let name = claims.name.as_deref().unwrap_or_default();
    for (header, value) in [
        (X_AUTH_USER, claims.sub.to_string()),
        (X_AUTH_NAME, utf8_percent_encode(name, NAME_ESCAPES).to_string()),
        (X_AUTH_GROUPS, claims.groups.join(",")),
        (X_AUTH_SCOPE, claims.scope.clone()),
    ] {
        // Every value is header-safe (a UUID or client id, escaped name, validated groups and
        // scopes); one that were not would be left out rather than fail the request.
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(header, value);
        }
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

// Header names parsed once, not on every request.
const X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
const X_AUTH_NAME: HeaderName = HeaderName::from_static("x-auth-name");
const X_AUTH_GROUPS: HeaderName = HeaderName::from_static("x-auth-groups");
const X_AUTH_SCOPE: HeaderName = HeaderName::from_static("x-auth-scope");

/// 403 with the RFC 6750 §3.1 challenge naming the scopes that were required.
fn insufficient_scope(scopes: &[String]) -> HttpResponse {
    let mut response = AppError::InsufficientScope("the token lacks a required scope").error_response();
    let challenge = format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"", scopes.join(" "));
    // A scope that cannot be a header value (it is the client's own query) leaves the challenge out.
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(actix_web::http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Every value of parameter `wanted` in the query string; `None` when it is not a valid query
/// string.
fn required(query: &str, wanted: &str) -> Option<Vec<String>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    Some(pairs.into_iter().filter(|(name, _)| name == wanted).map(|(_, value)| value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_every_group_parameter() {
        assert_eq!(required("", "group"), Some(vec![]));
        assert_eq!(required("group=admin&x=1", "group"), Some(vec!["admin".to_string()]));
        assert_eq!(required("group=a&group=b", "group"), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(required("group=%E2%9C%93", "group"), Some(vec!["✓".to_string()]));
        // Bytes that are not UTF-8 decode to U+FFFD, which no group is named: such a request gets 403.
        assert_eq!(required("group=%FF", "group"), Some(vec!["\u{FFFD}".to_string()]));
    }

    #[test]
    fn names_become_valid_header_values() {
        let encoded = utf8_percent_encode("Zoë 100%\n", NAME_ESCAPES).to_string();
        assert_eq!(encoded, "Zo%C3%AB 100%25%0A");
        assert!(actix_web::http::header::HeaderValue::from_str(&encoded).is_ok());
    }
}
