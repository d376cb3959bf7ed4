//! Issuing access tokens (RFC 9068): claims from the settings and the caller's identity, signed
//! with the key ring's current key, read from the live snapshot.

use super::{AccessClaims, KeyError, SECURITY_EVENT_TOKEN_TYPE, SecurityEventClaims, SharedSnapshot, Subject};
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

/// What a token is issued for: who, through which client, with what scope; for a user, the
/// session, name and groups.
#[derive(Debug, Clone)]
pub struct Grant {
    pub sub: Subject,
    pub client_id: String,
    pub scope: String,
    pub sid: Option<Uuid>,
    pub name: Option<String>,
    pub groups: Vec<String>,
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

    /// Signs a new access token for `grant`, issued at unix time `now`.
    pub fn issue(&self, grant: Grant, now: i64) -> Result<(String, AccessClaims), IssueError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: grant.sub,
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_token_ttl.num_seconds(),
            jti: Uuid::new_v4(),
            client_id: grant.client_id,
            scope: grant.scope,
            sid: grant.sid,
            name: grant.name,
            groups: grant.groups,
        };
        let snapshot = self.keys.load();
        let key = snapshot.current.as_ref().ok_or(IssueError::NoSigningKey)?;
        Ok((key.sign(&claims)?, claims))
    }

    /// Signs a Security Event Token with the current key (`typ: secevent+jwt`). Called when the
    /// SET is delivered, so an event queued before a rotation is signed by a key receivers can
    /// still fetch.
    pub fn sign_event(&self, claims: &SecurityEventClaims) -> Result<String, IssueError> {
        let snapshot = self.keys.load();
        let key = snapshot.current.as_ref().ok_or(IssueError::NoSigningKey)?;
        Ok(key.sign_typed(SECURITY_EVENT_TOKEN_TYPE, claims)?)
    }
}
