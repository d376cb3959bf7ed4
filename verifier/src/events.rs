//! Security Event Tokens (RFC 8417) from the issuer's Shared Signals stream: verification, and
//! what each event means for the deny list.

use crate::claims::Subject;
use crate::policy::{TokenRejection, VerificationKeys, checked_header};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The JOSE `typ` of a SET (RFC 8417 §2.3).
pub const SECURITY_EVENT_TOKEN_TYPE: &str = "secevent+jwt";

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const TOKEN_CLAIMS_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/token-claims-change";
const CREDENTIAL_CHANGE: &str = "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const ACCOUNT_PURGED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-purged";
const ACCOUNT_DISABLED: &str = "https://schemas.openid.net/secevent/risc/event-type/account-disabled";

/// The event types a follower asks its stream for.
pub(crate) const REQUESTED_EVENTS: [&str; 4] =
    [SESSION_REVOKED, TOKEN_CLAIMS_CHANGE, CREDENTIAL_CHANGE, ACCOUNT_PURGED];

/// The claims of a SET that matter here (SSF 1.0 §4).
#[derive(Debug, Deserialize)]
pub(crate) struct EventClaims {
    pub iat: i64,
    pub jti: String,
    pub sub_id: Option<Value>,
    pub events: Map<String, Value>,
}

/// Checks a SET of `issuer` for receiver `audience`: the same header rules as access tokens
/// but `typ` `secevent+jwt`, a key of the issuer's set, `iss` and `aud`; no `exp` (SETs have
/// none, SSF 1.0 §4.1.9).
pub(crate) fn verify_event(
    token: &str,
    keys: &VerificationKeys,
    issuer: &str,
    audience: &str,
) -> Result<EventClaims, TokenRejection> {
    let kid = checked_header(token, SECURITY_EVENT_TOKEN_TYPE)?;
    let key = keys.get(&kid).ok_or(TokenRejection::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    jsonwebtoken::decode::<EventClaims>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|error| TokenRejection::InvalidClaims(error.to_string()))
}

/// What one event asks of the deny list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revocation {
    /// Every token of session `sid` (CAEP session-revoked with a session in its subject).
    Session(Uuid),
    /// Tokens of the subject issued before unix time `since`: its claims changed (CAEP
    /// token-claims-change) or all its sessions ended (session-revoked naming only the user).
    IssuedBefore(Subject, i64),
    /// Every token of the subject: the account is gone (RISC account-purged, account-disabled).
    Everything(Subject),
    /// Nothing: a verification event, a password change (its session ends arrive as their own
    /// events), or an event type not followed.
    Nothing,
}

/// The deny-list change `claims` asks for.
pub(crate) fn revocation_of(claims: &EventClaims) -> Revocation {
    let Some((event_type, event)) = claims.events.iter().next() else { return Revocation::Nothing };
    // SSF 1.0 §4.1.1: the subject is the top-level sub_id; older transmitters put it inside the event.
    let Some(subject) = claims.sub_id.as_ref().or_else(|| event.get("subject")) else { return Revocation::Nothing };
    let since = event.get("event_timestamp").and_then(Value::as_i64).unwrap_or(claims.iat);
    let user = user_of(subject);
    match event_type.as_str() {
        SESSION_REVOKED => match (session_of(subject), user) {
            (Some(sid), _) => Revocation::Session(sid),
            (None, Some(user)) => Revocation::IssuedBefore(user, since),
            (None, None) => Revocation::Nothing,
        },
        TOKEN_CLAIMS_CHANGE => user.map_or(Revocation::Nothing, |user| Revocation::IssuedBefore(user, since)),
        ACCOUNT_PURGED | ACCOUNT_DISABLED => user.map_or(Revocation::Nothing, Revocation::Everything),
        _ => Revocation::Nothing,
    }
}

/// The `sub` a subject identifier names: an opaque (or `iss_sub`) identifier, or the `user` of
/// a complex subject (RFC 9493, SSF 1.0 §3.2).
fn user_of(subject: &Value) -> Option<Subject> {
    let simple = |identifier: &Value| match identifier.get("format").and_then(Value::as_str) {
        Some("opaque") => identifier.get("id").and_then(Value::as_str).and_then(|id| id.parse().ok()),
        Some("iss_sub") => identifier.get("sub").and_then(Value::as_str).and_then(|sub| sub.parse().ok()),
        _ => None,
    };
    match subject.get("format").and_then(Value::as_str) {
        Some("complex") => subject.get("user").and_then(simple),
        _ => simple(subject),
    }
}

/// The `sid` a complex subject's `session` names.
fn session_of(subject: &Value) -> Option<Uuid> {
    let session = subject.get("session")?;
    let id = session.get("id").and_then(Value::as_str)?;
    Uuid::parse_str(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{KID, keys, segment, sign_raw};
    use serde_json::json;

    fn event(event_type: &str, sub_id: Value, event: Value) -> EventClaims {
        let mut events = Map::new();
        events.insert(event_type.into(), event);
        EventClaims { iat: 1000, jti: "j".into(), sub_id: Some(sub_id), events }
    }

    #[test]
    fn each_event_becomes_its_revocation() {
        let user = Uuid::new_v4();
        let sid = Uuid::new_v4();
        let opaque = json!({"format": "opaque", "id": user.to_string()});
        let session =
            json!({"format": "complex", "user": opaque, "session": {"format": "opaque", "id": sid.to_string()}});
        let cases = [
            (
                "session",
                event(SESSION_REVOKED, session.clone(), json!({"event_timestamp": 900})),
                Revocation::Session(sid),
            ),
            (
                "all sessions",
                event(SESSION_REVOKED, opaque.clone(), json!({"event_timestamp": 900})),
                Revocation::IssuedBefore(Subject::User(user), 900),
            ),
            (
                "claims change",
                event(TOKEN_CLAIMS_CHANGE, opaque.clone(), json!({"event_timestamp": 950, "claims": {"groups": []}})),
                Revocation::IssuedBefore(Subject::User(user), 950),
            ),
            (
                "claims change without timestamp",
                event(TOKEN_CLAIMS_CHANGE, opaque.clone(), json!({})),
                Revocation::IssuedBefore(Subject::User(user), 1000),
            ),
            ("purged", event(ACCOUNT_PURGED, opaque.clone(), json!({})), Revocation::Everything(Subject::User(user))),
            (
                "iss_sub",
                event(ACCOUNT_PURGED, json!({"format": "iss_sub", "iss": "x", "sub": user.to_string()}), json!({})),
                Revocation::Everything(Subject::User(user)),
            ),
            ("password", event(CREDENTIAL_CHANGE, opaque.clone(), json!({})), Revocation::Nothing),
            ("unknown type", event("https://example/other", opaque.clone(), json!({})), Revocation::Nothing),
            (
                "email subject",
                event(ACCOUNT_PURGED, json!({"format": "email", "email": "a@b"}), json!({})),
                Revocation::Nothing,
            ),
            (
                "session id not a uuid",
                event(
                    SESSION_REVOKED,
                    json!({"format": "complex", "session": {"format": "opaque", "id": "x"}}),
                    json!({}),
                ),
                Revocation::Nothing,
            ),
        ];
        for (name, claims, expected) in cases {
            assert_eq!(revocation_of(&claims), expected, "{name}");
        }
    }

    #[test]
    fn only_sets_of_the_issuer_for_this_receiver_verify() {
        let claims =
            json!({"iss": "http://issuer", "aud": "receiver", "iat": 1, "jti": "j", "sub_id": {}, "events": {}});
        let set_header = segment(&json!({"alg": "RS256", "typ": "secevent+jwt", "kid": KID}));
        let good = sign_raw(&set_header, &segment(&claims));
        assert!(verify_event(&good, &keys(), "http://issuer", "receiver").is_ok());
        let cases = [
            ("other audience", verify_event(&good, &keys(), "http://issuer", "other")),
            ("other issuer", verify_event(&good, &keys(), "http://evil", "receiver")),
            (
                "an access token",
                verify_event(
                    &sign_raw(&segment(&json!({"alg": "RS256", "typ": "at+jwt", "kid": KID})), &segment(&claims)),
                    &keys(),
                    "http://issuer",
                    "receiver",
                ),
            ),
            ("unknown key", verify_event(&good, &VerificationKeys::new(), "http://issuer", "receiver")),
        ];
        for (name, outcome) in cases {
            assert!(outcome.is_err(), "{name} verified");
        }
    }
}
