//! Access tokens: signing with a key parsed once, Security Event Tokens, and verification against
//! the ring's keys. The claims (RFC 9068 JWT profile for OAuth 2.0 access tokens) and the
//! verification policy come from the `library-api-verifier` crate. Pure code: no actors, no
//! I/O, time passed in.

mod issuer;
mod keys;
mod secrets;
mod set;
mod snapshot;
mod verifier;

pub use issuer::{Grant, IssueError, TokenIssuer};
pub use keys::{Jwk, Jwks, KeyError, SigningKey, generate_pkcs8};
// The claims and the verification policy live in the verifier crate, which other services use:
// one implementation, so the service and its verifiers cannot drift apart.
pub use library_api_verifier::{
    ACCESS_TOKEN_TYPE, ADMIN_GROUP, AccessClaims, CLOCK_LEEWAY_SECS, Denial, DenyList, DenyListWriter, EmptySubject,
    MAX_TOKEN_BYTES, Subject, SubjectCutoff, SubjectRevocation, TokenRejection, VerificationKeys, VerificationPolicy,
    VerifiedTokenCache, check_times, verify, verify_signature,
};
pub use secrets::{MAX_SECRET_LEN, NewSecret, generate_secret, hash_secret, secret_matches};
pub use set::{
    EventType, SECURITY_EVENT_TOKEN_TYPE, SecurityEventClaims, session_subject, stream_subject, user_subject,
};
pub use snapshot::{KeyRingSnapshot, SharedSnapshot};
pub use verifier::TokenVerifier;

/// Fixtures shared by the service's token tests: claims that verify against the policy
/// `VerificationPolicy::new("http://issuer", "library-api")` at `now`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{AccessClaims, Subject};
    use uuid::Uuid;

    pub fn claims_at(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: Subject::User(Uuid::new_v4()),
            aud: "library-api".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: Uuid::new_v4(),
            client_id: "library-app".into(),
            scope: String::new(),
            sid: Some(Uuid::new_v4()),
            name: Some("alice".into()),
            groups: vec![],
        }
    }
}
