//! Security Event Tokens (RFC 8417) as the OpenID Shared Signals Framework 1.0 profiles them:
//! the event types we emit (CAEP 1.0, RISC, SSF), their subjects (RFC 9493 subject identifiers,
//! SSF complex subjects) and the claims of a SET. Signing is [`super::TokenIssuer::sign_event`].

use serde::Serialize;
use serde_json::{Map, Value, json};

/// The JOSE `typ` of a SET (RFC 8417 §2.3): never `at+jwt`, so a SET is never taken for an
/// access token and the other way round. Verifiers check SETs with the same constant.
pub use library_api_verifier::SECURITY_EVENT_TOKEN_TYPE;

/// The events we emit. [`EventType::uri`] is what receivers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// CAEP 1.0 §3.1: a session ended (one event per session).
    SessionRevoked,
    /// CAEP 1.0 §3.3: a password changed.
    CredentialChange,
    /// CAEP 1.0 §3.2: claims of the user's tokens changed (the admin role: `groups`).
    TokenClaimsChange,
    /// RISC 1.0 §2.1: the account is gone.
    AccountPurged,
    /// SSF 1.0 §8.1.4.1: the receiver asked for one to test its stream.
    Verification,
}

impl EventType {
    /// Every event type a stream may request (`events_supported`); verification events are
    /// delivered whatever a stream requests (SSF §8.1.4).
    pub const SUPPORTED: [EventType; 4] =
        [Self::SessionRevoked, Self::CredentialChange, Self::TokenClaimsChange, Self::AccountPurged];

    pub const fn uri(self) -> &'static str {
        match self {
            Self::SessionRevoked => "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
            Self::CredentialChange => "https://schemas.openid.net/secevent/caep/event-type/credential-change",
            Self::TokenClaimsChange => "https://schemas.openid.net/secevent/caep/event-type/token-claims-change",
            Self::AccountPurged => "https://schemas.openid.net/secevent/risc/event-type/account-purged",
            Self::Verification => "https://schemas.openid.net/secevent/ssf/event-type/verification",
        }
    }

    pub fn from_uri(uri: &str) -> Option<Self> {
        [Self::Verification].into_iter().chain(Self::SUPPORTED).find(|event| event.uri() == uri)
    }
}

/// A user, as an RFC 9493 opaque identifier: the `sub` of their access tokens.
pub fn user_subject(sub: &str) -> Value {
    json!({"format": "opaque", "id": sub})
}

/// One session of a user, as an SSF 1.0 complex subject (§3.2): the user (their `sub`) and the
/// session (the `sid` claim of its access tokens), so a receiver can match the event against
/// the tokens it holds.
pub fn session_subject(sub: &str, sid: &str) -> Value {
    json!({
        "format": "complex",
        "user": {"format": "opaque", "id": sub},
        "session": {"format": "opaque", "id": sid},
    })
}

/// A stream, as the subject of a verification event (SSF §8.1.4.1).
pub fn stream_subject(stream_id: &str) -> Value {
    json!({"format": "opaque", "id": stream_id})
}

/// The claims of one SET (SSF 1.0 §4): one event, its subject in the top-level `sub_id`, no
/// `sub` and no `exp`.
#[derive(Debug, Serialize)]
pub struct SecurityEventClaims<'a> {
    pub iss: &'a str,
    /// The stream's audience: the receiver's client id.
    pub aud: &'a str,
    /// When the event was queued (the commit of the change), the same on every delivery.
    pub iat: i64,
    pub jti: &'a str,
    /// Shared by the SETs of one event sent to several receivers (SSF §4).
    pub txn: &'a str,
    pub sub_id: Value,
    /// `{event type URI: event members}`.
    pub events: Map<String, Value>,
}

impl<'a> SecurityEventClaims<'a> {
    /// The claims of one stored event.
    pub fn new(
        iss: &'a str,
        aud: &'a str,
        iat: i64,
        (jti, txn): (&'a str, &'a str),
        sub_id: Value,
        event_type: &str,
        event: Value,
    ) -> Self {
        let mut events = Map::new();
        events.insert(event_type.to_string(), event);
        Self { iss, aud, iat, jti, txn, sub_id, events }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_round_trips_through_its_uri() {
        for event in [EventType::Verification].into_iter().chain(EventType::SUPPORTED) {
            assert_eq!(EventType::from_uri(event.uri()), Some(event));
        }
        assert_eq!(EventType::from_uri("https://schemas.openid.net/secevent/caep/event-type/unknown"), None);
    }

    #[test]
    fn a_session_is_a_complex_subject_of_user_and_session() {
        let subject = session_subject("u-1", "s-1");
        assert_eq!(subject["format"], "complex");
        assert_eq!(subject["user"], json!({"format": "opaque", "id": "u-1"}));
        assert_eq!(subject["session"], json!({"format": "opaque", "id": "s-1"}));
    }
}
