//! Access tokens: the claims (RFC 9068 JWT profile for OAuth 2.0 access tokens), signing with a
//! key parsed once, and verification. Pure code: no actors, no I/O, time passed in.

mod cache;
mod keys;
mod refresh;
mod verify;

pub use cache::VerifiedTokenCache;
pub use keys::{Jwk, KeyError, SigningKey, generate_pkcs8};
pub use refresh::{MAX_REFRESH_TOKEN_LEN, NewRefreshToken, generate_refresh_token, hash_refresh_token};
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
    /// The user's `public_id`.
    pub sub: Uuid,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Unique per token; what `/logout` revokes.
    pub jti: Uuid,
    /// The session (token family, one login) the token was issued from; revoking the family
    /// ends every token of that login.
    pub sid: Uuid,
    pub name: String,
    /// `[]` or `["admin"]`.
    pub groups: Vec<String>,
}

impl AccessClaims {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|group| group == ADMIN_GROUP)
    }
}

/// Fixtures shared by the token tests: one generated key, and claims that verify against the
/// policy `VerificationPolicy::new("http://issuer", "library-api")` at `now`.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{AccessClaims, SigningKey, generate_pkcs8};
    use std::sync::OnceLock;
    use uuid::Uuid;

    pub fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::from_pkcs8(&generate_pkcs8(2048).expect("generate")).expect("parse"))
    }

    pub fn claims_at(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer".into(),
            sub: Uuid::new_v4(),
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
