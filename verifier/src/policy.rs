//! The validation policy of library-api access tokens (RFC 8725 §3, RFC 9068 §4), the one
//! implementation the issuer and every verifier share: the header is checked before any key is
//! chosen, the key comes only from the issuer's key set by `kid` (never from `jku`, `x5u`,
//! `jwk` or `x5c`), and the signature and `iss`/`aud` are checked by jsonwebtoken. Time is
//! checked against the caller's clock.

use crate::claims::{ACCESS_TOKEN_TYPE, AccessClaims, CLOCK_LEEWAY_SECS, MAX_TOKEN_BYTES};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;

/// The public keys tokens may be signed with, by `kid`.
pub type VerificationKeys = HashMap<String, DecodingKey>;

/// Why a token was not accepted. Worth a debug log line; clients should only ever be told
/// `invalid_token` (RFC 6750 §3.1), except for [`TokenRejection::KeysUnavailable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not three base64url segments with a JSON header.
    #[error("not a compact JWS")]
    Malformed,
    /// `alg` other than RS256 (including `none` and every HMAC).
    #[error("algorithm other than RS256")]
    UnsupportedAlgorithm,
    /// `typ` other than `at+jwt`: an ID token, a SET or another kind of JWT.
    #[error("typ is not at+jwt")]
    WrongType,
    /// A `crit` header member: no extension is understood (RFC 7515 §4.1.11).
    #[error("crit header present")]
    CriticalHeader,
    /// No `kid`: no key can be chosen (and refetching the key set would not help).
    #[error("no kid")]
    MissingKeyId,
    /// A `kid` the issuer does not publish.
    #[error("kid not in the key set")]
    UnknownKey,
    /// The signature does not verify with the key named by `kid`.
    #[error("bad signature")]
    BadSignature,
    /// A required claim is missing or malformed, or `iss`/`aud` do not match.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// Past `exp` plus the leeway.
    #[error("expired")]
    Expired,
    /// Before `nbf` minus the leeway.
    #[error("not yet valid")]
    NotYetValid,
    /// Valid, but revoked: the deny list refuses it.
    #[error("revoked ({})", .0.as_str())]
    Revoked(crate::Denial),
    /// The issuer's keys could not be fetched for longer than the verifier may serve cached
    /// ones: no token can be checked (a remote [`crate::Verifier`] only).
    #[error("the issuer's keys are unavailable")]
    KeysUnavailable,
}

/// Issuer and audience every token must carry, as a jsonwebtoken `Validation` built once.
#[derive(Debug, Clone)]
pub struct VerificationPolicy {
    validation: Validation,
}

impl VerificationPolicy {
    /// The policy for tokens of `issuer` (the `iss` claim, exactly) for `audience`.
    pub fn new(issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        // exp and nbf are checked below against the injected clock, not the system time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Self { validation }
    }
}

/// The header members we look at. Unknown members (`jku`, `x5u`, `jwk`, `x5c`, …) are ignored:
/// a key is only ever found by `kid` in the issuer's own key set.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    /// True when the member is present at all, even as `null`.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// Verifies `token` at unix time `now`; returns its claims when every check passes.
pub fn verify(
    token: &str,
    keys: &VerificationKeys,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<AccessClaims, TokenRejection> {
    let (claims, _kid) = verify_signature(token, keys, policy)?;
    check_times(&claims, now)?;
    Ok(claims)
}

/// Every check but the time: header, key, signature, `iss`, `aud`, required claims. Returns the
/// claims and the `kid` that verified them. This is the expensive part (an RSA verification).
pub fn verify_signature(
    token: &str,
    keys: &VerificationKeys,
    policy: &VerificationPolicy,
) -> Result<(AccessClaims, String), TokenRejection> {
    let kid = checked_header(token, ACCESS_TOKEN_TYPE)?;
    let key = keys.get(&kid).ok_or(TokenRejection::UnknownKey)?;
    let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &policy.validation).map_err(reject)?.claims;
    Ok((claims, kid))
}

/// The `kid` of a compact JWS whose header passes every check made before a key is chosen: size,
/// shape, no `crit`, `alg` RS256 and `typ` `media_type` (RFC 8725 §3.11: explicit typing, so one
/// kind of token never passes for another).
pub(crate) fn checked_header(token: &str, media_type: &str) -> Result<String, TokenRejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenRejection::TooLarge);
    }
    let header = parse_header(token)?;
    // RFC 7515 §4.1.11: a recipient that does not understand a listed extension must reject;
    // we understand none.
    if header.crit {
        return Err(TokenRejection::CriticalHeader);
    }
    if header.alg != "RS256" {
        return Err(TokenRejection::UnsupportedAlgorithm);
    }
    // RFC 7515 §4.1.9: the typ may omit the "application/" prefix; compared case-insensitively.
    let typ = header.typ.as_deref().unwrap_or_default();
    let typ = typ.get(..12).filter(|prefix| prefix.eq_ignore_ascii_case("application/")).map_or(typ, |_| &typ[12..]);
    if !typ.eq_ignore_ascii_case(media_type) {
        return Err(TokenRejection::WrongType);
    }
    header.kid.ok_or(TokenRejection::MissingKeyId)
}

/// `exp` and `nbf` at unix time `now`, with [`CLOCK_LEEWAY_SECS`] of leeway.
pub fn check_times(claims: &AccessClaims, now: i64) -> Result<(), TokenRejection> {
    if now > claims.exp.saturating_add(CLOCK_LEEWAY_SECS) {
        return Err(TokenRejection::Expired);
    }
    if claims.nbf.saturating_sub(CLOCK_LEEWAY_SECS) > now {
        return Err(TokenRejection::NotYetValid);
    }
    Ok(())
}

fn parse_header(token: &str) -> Result<Header, TokenRejection> {
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(TokenRejection::Malformed);
    };
    let json = B64URL.decode(header).map_err(|_| TokenRejection::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenRejection::Malformed)
}

fn reject(error: jsonwebtoken::errors::Error) -> TokenRejection {
    match error.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidRsaKey(_) => TokenRejection::BadSignature,
        ErrorKind::InvalidAlgorithm => TokenRejection::UnsupportedAlgorithm,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => TokenRejection::Malformed,
        other => TokenRejection::InvalidClaims(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{KID, keys, sign, sign_raw};
    use serde_json::json;
    use uuid::Uuid;

    const NOW: i64 = 1_800_000_000;

    fn policy() -> VerificationPolicy {
        VerificationPolicy::new("http://issuer", "library-api")
    }

    fn claims() -> serde_json::Value {
        json!({"iss": "http://issuer", "sub": Uuid::new_v4(), "aud": "library-api", "iat": NOW, "nbf": NOW,
               "exp": NOW + 60, "jti": Uuid::new_v4(), "client_id": "library-app", "scope": "", "sid": Uuid::new_v4(), "name": "alice", "groups": []})
    }

    fn with(
        mut claims: serde_json::Value,
        edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> serde_json::Value {
        edit(claims.as_object_mut().expect("object"));
        claims
    }

    fn header(value: serde_json::Value) -> String {
        B64URL.encode(value.to_string())
    }

    fn payload(value: &serde_json::Value) -> String {
        B64URL.encode(value.to_string())
    }

    #[test]
    fn a_token_we_signed_verifies() {
        let token = sign(&claims());
        let verified = verify(&token, &keys(), &policy(), NOW).expect("valid");
        assert_eq!(verified.name.as_deref(), Some("alice"));
    }

    #[test]
    fn each_bad_token_is_rejected_for_its_reason() {
        let kid = KID;
        let good_header = header(json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}));
        let signed = |header: &str, claims: &serde_json::Value| sign_raw(header, &payload(claims));
        let good = sign(&claims());
        let cases: Vec<(&str, String, TokenRejection)> = vec![
            ("too large", "a".repeat(MAX_TOKEN_BYTES + 1), TokenRejection::TooLarge),
            ("two segments", good.rsplit_once('.').expect("prefix").0.to_string(), TokenRejection::Malformed),
            ("four segments", format!("{good}.x"), TokenRejection::Malformed),
            (
                "alg none",
                format!("{}.{}.", header(json!({"alg": "none", "typ": "at+jwt", "kid": kid})), payload(&claims())),
                TokenRejection::UnsupportedAlgorithm,
            ),
            (
                "HS256",
                signed(&header(json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})), &claims()),
                TokenRejection::UnsupportedAlgorithm,
            ),
            ("no typ", signed(&header(json!({"alg": "RS256", "kid": kid})), &claims()), TokenRejection::WrongType),
            (
                "typ JWT",
                signed(&header(json!({"alg": "RS256", "typ": "JWT", "kid": kid})), &claims()),
                TokenRejection::WrongType,
            ),
            (
                "crit",
                signed(&header(json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "crit": ["exp"]})), &claims()),
                TokenRejection::CriticalHeader,
            ),
            (
                "unknown kid",
                signed(&header(json!({"alg": "RS256", "typ": "at+jwt", "kid": "other"})), &claims()),
                TokenRejection::UnknownKey,
            ),
            (
                "no kid",
                signed(&header(json!({"alg": "RS256", "typ": "at+jwt"})), &claims()),
                TokenRejection::MissingKeyId,
            ),
            (
                "tampered payload",
                format!(
                    "{}.{}.{}",
                    good_header,
                    payload(&with(claims(), |c| {
                        c.insert("groups".into(), json!(["admin"]));
                    })),
                    good.rsplit('.').next().expect("sig")
                ),
                TokenRejection::BadSignature,
            ),
            (
                "expired",
                signed(
                    &good_header,
                    &with(claims(), |c| {
                        c.insert("exp".into(), json!(NOW - CLOCK_LEEWAY_SECS - 1));
                    }),
                ),
                TokenRejection::Expired,
            ),
            (
                "nbf in the future",
                signed(
                    &good_header,
                    &with(claims(), |c| {
                        c.insert("nbf".into(), json!(NOW + CLOCK_LEEWAY_SECS + 1));
                    }),
                ),
                TokenRejection::NotYetValid,
            ),
        ];
        for (name, token, expected) in cases {
            assert_eq!(verify(&token, &keys(), &policy(), NOW).expect_err(name), expected, "{name}");
        }
    }

    #[test]
    fn missing_or_wrong_claims_are_rejected() {
        let good_header = header(json!({"alg": "RS256", "typ": "at+jwt", "kid": KID}));
        type Edit = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;
        let edits: Vec<(&str, Edit)> = vec![
            (
                "wrong iss",
                Box::new(|c| {
                    c.insert("iss".into(), json!("http://evil"));
                }),
            ),
            (
                "wrong aud",
                Box::new(|c| {
                    c.insert("aud".into(), json!("other"));
                }),
            ),
            (
                "no iss",
                Box::new(|c| {
                    c.remove("iss");
                }),
            ),
            (
                "no aud",
                Box::new(|c| {
                    c.remove("aud");
                }),
            ),
            (
                "no exp",
                Box::new(|c| {
                    c.remove("exp");
                }),
            ),
            (
                "no nbf",
                Box::new(|c| {
                    c.remove("nbf");
                }),
            ),
            (
                "no jti",
                Box::new(|c| {
                    c.remove("jti");
                }),
            ),
            // A service token has no sid (RFC 9068 allows it); every token has a client_id and a scope.
            (
                "no client_id",
                Box::new(|c| {
                    c.remove("client_id");
                }),
            ),
            (
                "no scope",
                Box::new(|c| {
                    c.remove("scope");
                }),
            ),
            (
                "no sub",
                Box::new(|c| {
                    c.remove("sub");
                }),
            ),
            (
                "empty sub",
                Box::new(|c| {
                    c.insert("sub".into(), json!(""));
                }),
            ),
            (
                "sub not a string",
                Box::new(|c| {
                    c.insert("sub".into(), json!(42));
                }),
            ),
            (
                "exp as string",
                Box::new(|c| {
                    c.insert("exp".into(), json!(format!("{}", NOW + 60)));
                }),
            ),
        ];
        for (name, edit) in edits {
            let token = sign_raw(&good_header, &payload(&with(claims(), edit)));
            assert!(verify(&token, &keys(), &policy(), NOW).is_err(), "{name} should be rejected");
        }
    }

    #[test]
    fn leeway_is_thirty_seconds_at_most() {
        let token = sign(&claims());
        assert!(verify(&token, &keys(), &policy(), NOW + 60 + CLOCK_LEEWAY_SECS).is_ok());
        assert_eq!(verify(&token, &keys(), &policy(), NOW + 61 + CLOCK_LEEWAY_SECS), Err(TokenRejection::Expired));
    }
}

/// Fuzzing the verification path with generated input (a bounded run on every `cargo test`).
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const NOW: i64 = 1_800_000_000;

    fn valid_token() -> &'static str {
        static TOKEN: OnceLock<String> = OnceLock::new();
        TOKEN.get_or_init(|| crate::fixtures::sign(&crate::fixtures::claims_at(NOW)))
    }

    fn check(token: &str) -> Result<AccessClaims, TokenRejection> {
        verify(token, &crate::fixtures::keys(), &VerificationPolicy::new("http://issuer", "library-api"), NOW)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_input_is_refused_without_panicking(input in ".{0,600}") {
            prop_assert!(check(&input).is_err());
        }

        #[test]
        fn token_shaped_garbage_is_refused(header in "[A-Za-z0-9_-]{0,80}", payload in "[A-Za-z0-9_-]{0,200}", signature in "[A-Za-z0-9_=+/-]{0,400}") {
            let token = format!("{header}.{payload}.{signature}");
            prop_assert!(check(&token).is_err());
        }

        #[test]
        fn any_single_character_change_to_a_valid_token_is_refused(position in 0usize..10_000, replacement in "[A-Za-z0-9_.=-]") {
            let token = valid_token();
            prop_assert!(check(token).is_ok());
            let position = position % token.len();
            let mut mutated = token.to_string();
            mutated.replace_range(position..=position, &replacement);
            prop_assume!(mutated != token);
            prop_assert!(check(&mutated).is_err(), "accepted a token changed at {}", position);
        }
    }
}
