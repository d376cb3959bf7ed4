//! Verifying access tokens the way every request needs it: the checks of [`super::verify`]
//! against the keys the ring publishes now (through the verified-token cache), then the deny
//! list. Reads snapshots only: no message, no database.

use super::{AccessClaims, DenyList, SharedSnapshot, TokenRejection, VerificationPolicy, VerifiedTokenCache};
use std::sync::Arc;

/// Everything verification reads, held together so every caller checks the same things.
pub struct TokenVerifier {
    policy: VerificationPolicy,
    keys: SharedSnapshot,
    cache: VerifiedTokenCache,
    deny_list: Arc<DenyList>,
}

impl TokenVerifier {
    /// A verifier for tokens `policy` accepts, signed by a key in `keys`, not in `deny_list`.
    pub fn new(
        policy: VerificationPolicy,
        keys: SharedSnapshot,
        cache: VerifiedTokenCache,
        deny_list: Arc<DenyList>,
    ) -> Self {
        Self { policy, keys, cache, deny_list }
    }

    /// The claims of `token` at unix time `now`, or why it is refused (including revocation).
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenRejection> {
        let snapshot = self.keys.load();
        let claims = self.cache.verify(token, &snapshot.verification_keys, &self.policy, now)?;
        match self.deny_list.check(&claims) {
            Some(denial) => Err(TokenRejection::Revoked(denial)),
            None => Ok(claims),
        }
    }

    /// The verified-token cache (for tests and metrics).
    pub fn cache(&self) -> &VerifiedTokenCache {
        &self.cache
    }

    /// The deny list consulted on every verification.
    pub fn deny_list(&self) -> &DenyList {
        &self.deny_list
    }
}
