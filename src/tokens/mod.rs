//! Access tokens: the claims (RFC 9068 JWT profile for OAuth 2.0 access tokens), signing with a
//! key parsed once, and verification. Pure code: no actors, no I/O, time passed in.

mod cache;
mod deny_list;
mod issuer;
mod keys;
mod refresh;
mod snapshot;
mod verifier;
mod verify;

pub use cache::VerifiedTokenCache;
pub use deny_list::{Denial, DenyList, DenyListWriter, SubjectCutoff, SubjectRevocation};
pub use issuer::{IssueError, TokenIssuer};
pub use keys::{Jwk, Jwks, KeyError, SigningKey, generate_pkcs8};
pub use refresh::{MAX_REFRESH_TOKEN_LEN, NewRefreshToken, generate_refresh_token, hash_refresh_token};
pub use snapshot::{KeyRingSnapshot, SharedSnapshot};
pub use verifier::TokenVerifier;
pub use verify::{TokenRejection, VerificationKeys, VerificationPolicy, check_times, verify, verify_signature};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Tokens longer than this are rejected before any decoding (API.md "Tokens").
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds (API.md: at most 30 s).
pub const CLOCK_LEEWAY_SECS: i64 = 30;
/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The group that makes a user an administrator.
pub const ADMIN_GROUP: &str = "admin";

/// The claims of every access token we issue (API.md "Tokens").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// Who the token speaks for.
    pub sub: Subject,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Unique per token; what `/logout` revokes.
    pub jti: Uuid,
    /// The session (one login and its chain of refresh tokens) the token was issued from;
    /// revoking the session ends every token of that login.
    pub sid: Uuid,
    pub name: String,
    /// `[]` or `["admin"]`.
    pub groups: Vec<String>,
}

impl AccessClaims {
    /// Whether the token carries the `admin` group.
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|group| group == ADMIN_GROUP)
    }

    /// When the token stops being accepted anyway: `exp` plus the leeway.
    pub fn accepted_until(&self) -> i64 {
        self.exp.saturating_add(CLOCK_LEEWAY_SECS)
    }
}

/// Who a token speaks for: its `sub` claim (RFC 9068 §2.2). Today every subject is a user,
/// named by their `public_id`; registered OAuth clients are the next kind. Code that needs a
/// user asks [`Subject::user`] instead of assuming every `sub` is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A registered user, by `public_id`.
    User(Uuid),
}

impl Subject {
    /// The user's `public_id`, when the subject is a user.
    pub fn user(&self) -> Option<Uuid> {
        match self {
            Self::User(public_id) => Some(*public_id),
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(public_id) => public_id.fmt(f),
        }
    }
}

impl std::str::FromStr for Subject {
    type Err = uuid::Error;

    /// The `sub` as written in a token or stored with a revocation.
    fn from_str(sub: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(sub).map(Self::User)
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sub = std::borrow::Cow::<str>::deserialize(deserializer)?;
        sub.parse().map_err(|_| serde::de::Error::custom("sub is not a known kind of subject"))
    }
}

/// Fixtures shared by the token tests: one generated key, and claims that verify against the
/// policy `VerificationPolicy::new("http://issuer", "library-api")` at `now`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{AccessClaims, SigningKey, Subject, generate_pkcs8};
    use std::sync::OnceLock;
    use uuid::Uuid;

    pub fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_pkcs8(&generate_pkcs8(2048).expect("generate")).expect("parse"))
    }

    pub fn claims_at(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: Subject::User(Uuid::new_v4()),
            aud: "library-api".into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            name: "alice".into(),
            groups: vec![],
        }
    }
}
