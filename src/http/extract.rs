//! Extractors: a strict JSON body, the authenticated caller, the client's address.

use super::errors::{AppError, Unauthorized};
use crate::domain::UserAgent;
use crate::service::clients::ClientCredentials;
use crate::service::{Services, sessions};
use crate::tokens::AccessClaims;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{BytesMut, Data};
use actix_web::{FromRequest, HttpRequest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt as _;
use futures_util::future::{LocalBoxFuture, Ready, ready};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::net::IpAddr;

/// The longest a request body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Largest JSON body accepted (API.md "Errors": 413 above it).
pub const JSON_BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body: `Content-Type: application/json` (else 415), at most 64 KiB (else 413),
/// UTF-8, an object, no duplicated keys, and the shape of `T` (else 400).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = has_json_content_type(req);
        let body = read_body(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(AppError::UnsupportedMediaType);
            }
            parse_json_object(&body.await?).map(JsonBody)
        })
    }
}

/// A request body as JSON (like [`JsonBody`]) or as `application/x-www-form-urlencoded`, the
/// encoding OAuth endpoints use (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(Debug)]
pub struct FormOrJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for FormOrJson<T> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let (is_json, is_form) =
            (has_json_content_type(req), has_content_type(req, "application/x-www-form-urlencoded"));
        let body = read_body(req, payload);
        Box::pin(async move {
            let body = if is_json || is_form { body.await? } else { return Err(AppError::UnsupportedMediaType) };
            if is_json {
                return parse_json_object(&body).map(FormOrJson);
            }
            serde_urlencoded::from_bytes(&body)
                .map(FormOrJson)
                .map_err(|e| AppError::bad_request("invalid_body", format!("the form does not fit this request: {e}")))
        })
    }
}

/// A query string holding only the parameters `T` declares (with `#[serde(deny_unknown_fields)]`),
/// else 400 `invalid_query`: a mistyped `?ALL=true` must not silently do less than asked.
/// Parameters whose names start with `_` (the usual cache-busters) are ignored.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequest for StrictQuery<T> {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_strict_query(req.query_string()).map(StrictQuery))
    }
}

fn parse_strict_query<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    let invalid = |e: &dyn std::fmt::Display| AppError::bad_request("invalid_query", e.to_string());
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| invalid(&e))?;
    let kept: Vec<(String, String)> = pairs.into_iter().filter(|(name, _)| !name.starts_with('_')).collect();
    let query = serde_urlencoded::to_string(&kept).map_err(|e| invalid(&e))?;
    serde_urlencoded::from_str(&query).map_err(|e| invalid(&e))
}

/// The parameters of an `application/x-www-form-urlencoded` body, as OAuth endpoints take them
/// (RFC 6749 §3.2): any other content type, or a parameter given twice (§3.2: "MUST NOT be
/// included more than once"), is a 400 `invalid_request`.
#[derive(Debug)]
pub struct FormParams(pub Vec<(String, String)>);

impl FormParams {
    /// The value of parameter `name`, if present; an empty value counts as absent (RFC 6749
    /// §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).filter(|value| !value.is_empty())
    }
}

impl FromRequest for FormParams {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_form = has_content_type(req, "application/x-www-form-urlencoded");
        let body = read_body(req, payload);
        Box::pin(async move {
            if !is_form {
                return Err(AppError::bad_request(
                    "invalid_request",
                    "send the parameters as application/x-www-form-urlencoded (RFC 6749 §3.2)",
                ));
            }
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body.await?)
                .map_err(|_| AppError::bad_request("invalid_request", "the form cannot be read"))?;
            let mut seen = HashSet::new();
            if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
                return Err(AppError::bad_request("invalid_request", format!("parameter `{name}` is given twice")));
            }
            Ok(FormParams(pairs))
        })
    }
}

/// Client credentials sent with HTTP Basic (RFC 6749 §2.3.1 `client_secret_basic`): the
/// client id and secret are form-urlencoded, then joined by `:`. `None` without a Basic
/// header; a Basic header that cannot be read is a failed client authentication.
pub fn basic_client_credentials(req: &HttpRequest) -> Result<Option<ClientCredentials>, AppError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else { return Ok(None) };
    let invalid = || AppError::Unauthorized(Unauthorized::InvalidClient);
    let value = value.to_str().map_err(|_| invalid())?;
    let Some((scheme, encoded)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = BASE64.decode(encoded.trim()).map_err(|_| invalid())?;
    let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(invalid)?;
    let form_decode = |part: &str| -> Result<String, AppError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={part}")).map_err(|_| invalid())?;
        Ok(pairs.into_iter().next().map(|(_, value)| value).unwrap_or_default())
    };
    Ok(Some(ClientCredentials { client_id: form_decode(id)?, secret: Some(form_decode(secret)?) }))
}

/// The client a request identifies (RFC 6749 §2.3.1): HTTP Basic, or `client_id` (with
/// `client_secret` for a confidential client) among the form parameters — never both.
pub fn client_credentials(
    req: &HttpRequest,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<Option<ClientCredentials>, AppError> {
    match (basic_client_credentials(req)?, client_id) {
        (Some(_), Some(_)) | (Some(_), None) if client_secret.is_some() => Err(AppError::bad_request(
            "invalid_request",
            "use one client authentication method: HTTP Basic or client_secret in the body",
        )),
        (Some(basic), None) => Ok(Some(basic)),
        (Some(basic), Some(id)) if id == basic.client_id => Ok(Some(basic)),
        (Some(_), Some(_)) => {
            Err(AppError::bad_request("invalid_request", "client_id differs from the HTTP Basic client"))
        }
        (None, Some(id)) => {
            Ok(Some(ClientCredentials { client_id: id.to_string(), secret: client_secret.map(str::to_string) }))
        }
        (None, None) => Ok(None),
    }
}

/// Reads the whole body, refusing more than [`JSON_BODY_LIMIT`] bytes (413) before reading
/// them when `Content-Length` already says so.
fn read_body(req: &HttpRequest, payload: &mut Payload) -> LocalBoxFuture<'static, Result<BytesMut, AppError>> {
    let declared_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if declared_length.is_some_and(|length| length > JSON_BODY_LIMIT) {
            return Err(AppError::PayloadTooLarge);
        }
        // A body trickled in slowly cannot hold a worker's attention for long.
        let read = async move {
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|_| AppError::bad_request("invalid_body", "the request body could not be read"))?;
                if body.len() + chunk.len() > JSON_BODY_LIMIT {
                    return Err(AppError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        actix_web::rt::time::timeout(BODY_READ_TIMEOUT, read)
            .await
            .unwrap_or_else(|_| Err(AppError::bad_request("body_timeout", "the request body took too long to arrive")))
    })
}

fn has_content_type(req: &HttpRequest, expected: &str) -> bool {
    content_type_essence(req).is_some_and(|essence| essence == expected)
}

fn content_type_essence(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
}

/// `application/json` or any `application/*+json`, with any parameters.
pub fn has_json_content_type(req: &HttpRequest) -> bool {
    content_type_essence(req).is_some_and(|essence| {
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// Parses a JSON object strictly (see [`JsonBody`]).
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| AppError::bad_request("invalid_json", "the body is not valid UTF-8"))?;
    let mut structure = serde_json::Deserializer::from_str(text);
    structure
        .deserialize_map(StrictVisitor)
        .and_then(|_| structure.end())
        .map_err(|e| AppError::bad_request("invalid_json", format!("the body is not a valid JSON object: {e}")))?;
    serde_json::from_str(text)
        .map_err(|e| AppError::bad_request("invalid_body", format!("the body does not fit this request: {e}")))
}

/// Walks any JSON value and fails on an object with a repeated key, which serde_json would
/// otherwise resolve silently (last one wins) — a classic parser-differential trick.
struct StrictVisitor;

impl<'de> de::Deserialize<'de> for StrictVisitor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictVisitor;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<StrictVisitor>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<StrictVisitor>()?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
        }
        Ok(self)
    }
}

/// The access token of a request: `Authorization: Bearer …` (RFC 6750 §2.1), else the seed's
/// `x-access-tokens` header.
pub fn bearer_token(req: &HttpRequest) -> Result<&str, AppError> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = header_text(value)?;
        if let Some((scheme, token)) = value.split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Ok(token.trim_ascii());
        }
    }
    match req.headers().get(X_ACCESS_TOKENS) {
        Some(value) => header_text(value).map(str::trim_ascii),
        None => Err(AppError::Unauthorized(Unauthorized::MissingToken)),
    }
}

/// The seed's token header.
const X_ACCESS_TOKENS: header::HeaderName = header::HeaderName::from_static("x-access-tokens");

/// A token header's text. UTF-8 validation (vectorised) instead of `HeaderValue::to_str`'s
/// byte-by-byte check, which costs more than the rest of `/verify`'s parsing for a 1 kB token:
/// anything that is not a token's base64url and dots is refused by the verifier anyway.
fn header_text(value: &header::HeaderValue) -> Result<&str, AppError> {
    std::str::from_utf8(value.as_bytes()).map_err(|_| AppError::Unauthorized(Unauthorized::InvalidToken))
}

/// The caller, authenticated by a valid access token (every check of API.md "Tokens").
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub AccessClaims);

impl FromRequest for AuthenticatedUser {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(AuthenticatedUser))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AccessClaims, AppError> {
    let services = req.app_data::<Data<Services>>().ok_or_else(|| AppError::Internal("Services missing".into()))?;
    let token = bearer_token(req)?;
    sessions::authenticate(services, token)
        .map(std::sync::Arc::unwrap_or_clone)
        .map_err(|_| AppError::Unauthorized(Unauthorized::InvalidToken))
}

/// An authenticated caller in the `admin` group; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AccessClaims);

impl FromRequest for AdminUser {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|claims| {
            if claims.is_admin() { Ok(AdminUser(claims)) } else { Err(AppError::Forbidden("administrators only")) }
        }))
    }
}

/// The request's `User-Agent`, cut to size (kept with a session started by a login).
pub fn user_agent(req: &HttpRequest) -> Option<UserAgent> {
    req.headers().get(header::USER_AGENT).and_then(|value| UserAgent::from_header(value.as_bytes()))
}

/// Reverse proxies whose `X-Forwarded-For` names the real client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpAddr>);

/// The client's address: the peer, or, when the peer is a trusted reverse proxy, the last
/// `X-Forwarded-For` entry that is not one of ours (earlier entries are the client's to forge).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequest for ClientAddr {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Missing, it would silently count every client behind a proxy as the proxy.
        ready(match req.app_data::<Data<TrustedProxies>>() {
            Some(trusted) => Ok(ClientAddr(client_ip(req, &trusted.0))),
            None => Err(AppError::Internal("TrustedProxies missing".into())),
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code, reason = "only its parsing is tested")]
        name: String,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Flags {
        #[serde(default)]
        all: bool,
    }

    #[test]
    fn strict_queries_refuse_unknown_parameters_but_ignore_underscored_ones() {
        assert_eq!(parse_strict_query::<Flags>("all=true").expect("valid"), Flags { all: true });
        assert_eq!(parse_strict_query::<Flags>("").expect("valid"), Flags { all: false });
        assert_eq!(parse_strict_query::<Flags>("_=123&_cache=x").expect("cache-busters"), Flags { all: false });
        for bad in ["ALL=true", "all=true&x=1", "all=maybe", "%ZZ"] {
            assert_eq!(parse_strict_query::<Flags>(bad).expect_err(bad).code(), "invalid_query", "{bad}");
        }
    }

    #[test]
    fn strict_json_rejects_what_serde_would_let_through() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"name":"a","name":"b"}"#, "invalid_json"),
            (br#"{"name":"a","x":{"k":1,"k":2}}"#, "invalid_json"),
            (br#"["name"]"#, "invalid_json"),
            (b"\"name\"", "invalid_json"),
            (b"{\"name\":\"\xff\"}", "invalid_json"),
            (br#"{"name":"a"} trailing"#, "invalid_json"),
            (br#"{"name":"a""#, "invalid_json"),
            (br#"{"name":5}"#, "invalid_body"),
            (br#"{}"#, "invalid_body"),
        ];
        for (body, code) in cases {
            let error = parse_json_object::<Body>(body).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(error.code(), *code, "{}", String::from_utf8_lossy(body));
        }
        assert!(parse_json_object::<Body>(br#"{"name":"a","extra":[1,{"k":null}]}"#).is_ok());
    }
}

/// Fuzzing request-body parsing with generated input (a bounded run on every `cargo test`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only parsing is exercised")]
    struct Credentials {
        name: String,
        password: String,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_bytes_give_a_value_or_a_400_never_a_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(error) = parse_json_object::<Credentials>(&body) {
                prop_assert!(matches!(error.code(), "invalid_json" | "invalid_body"), "{}", error.code());
            }
        }

        #[test]
        fn json_shaped_input_gives_a_value_or_a_400(name in any::<Option<String>>(), extra in r#"[a-z"{}:,\[\] 0-9]{0,64}"#) {
            let body = match &name {
                Some(name) => format!(r#"{{"name":{},"password":"x","extra":{extra}}}"#, serde_json::to_string(name).unwrap_or_default()),
                None => format!("{{{extra}}}"),
            };
            if let Err(error) = parse_json_object::<Credentials>(body.as_bytes()) {
                prop_assert!(matches!(error.code(), "invalid_json" | "invalid_body"), "{}", error.code());
            }
        }
    }
}
