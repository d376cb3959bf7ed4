//! Issuing access tokens (RFC 9068): claims from the settings and the caller's identity, signed
//! with the key ring's current key, read from the live snapshot.

use super::{AccessClaims, KeyError, SharedSnapshot, Subject};
use chrono::Duration;
use uuid::Uuid;

/// Why no token could be issued. Neither is the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The ring has no current key yet (only before it is first loaded).
    #[error("no current signing key")]
    NoSigningKey,
    #[error(transparent)]
    Sign(#[from] KeyError),
}

/// Signs access tokens. Cheap to share: the keys are read from the snapshot per token.
#[derive(Clone)]
pub struct TokenIssuer {
    /// `iss` of every token, and discovery's `issuer`.
    pub issuer: String,
    /// `aud` of every token.
    pub audience: String,
    pub access_token_ttl: Duration,
    keys: SharedSnapshot,
}

impl TokenIssuer {
    /// An issuer signing with whatever key is current in `keys`.
    pub fn new(issuer: String, audience: String, access_token_ttl: Duration, keys: SharedSnapshot) -> Self {
        Self { issuer, audience, access_token_ttl, keys }
    }

    /// Signs a new access token for `sub` in session `sid`, issued at unix time `now`.
    pub fn issue(
        &self,
        sub: Subject,
        name: &str,
        groups: Vec<String>,
        sid: Uuid,
        now: i64,
    ) -> Result<(String, AccessClaims), IssueError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub,
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_token_ttl.num_seconds(),
            jti: Uuid::new_v4(),
            sid,
            name: name.to_string(),
            groups,
        };
        let snapshot = self.keys.load();
        let key = snapshot.current.as_ref().ok_or(IssueError::NoSigningKey)?;
        Ok((key.sign(&claims)?, claims))
    }
}
