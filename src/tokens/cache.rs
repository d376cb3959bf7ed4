//! A cache of verified access tokens (like Envoy's jwt_authn cache): presenting the same token
//! again skips the header parsing and RSA signature check.
//!
//! Safe by construction:
//! - keyed by the SHA-256 of the whole token, so only the exact bytes that verified can hit;
//! - bounded (`capacity` entries, evicted by quick_cache's CLOCK-Pro policy);
//! - a hit re-checks `exp`/`nbf` against the clock, so an entry never outlives its token;
//! - a hit re-checks that its signing key is still published, so deleting a key takes effect at
//!   once;
//! - revocation is not cached at all: callers check the deny list on every request.

use super::verify::{TokenRejection, VerificationKeys, VerificationPolicy, check_times, verify_signature};
use super::{AccessClaims, MAX_TOKEN_BYTES};
use aws_lc_rs::digest;
use quick_cache::sync::Cache;
use std::sync::Arc;

struct Verified {
    claims: AccessClaims,
    kid: String,
}

pub struct VerifiedTokenCache {
    entries: Option<Cache<[u8; 32], Arc<Verified>>>,
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` tokens; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self { entries: (capacity > 0).then(|| Cache::new(capacity)) }
    }

    /// Like [`super::verify`], answered from the cache when this exact token verified before.
    pub fn verify(
        &self,
        token: &str,
        keys: &VerificationKeys,
        policy: &VerificationPolicy,
        now: i64,
    ) -> Result<AccessClaims, TokenRejection> {
        let Some(entries) = &self.entries else {
            return super::verify(token, keys, policy, now);
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::TooLarge);
        }
        let key: [u8; 32] =
            digest::digest(&digest::SHA256, token.as_bytes()).as_ref().try_into().expect("SHA-256 is 32 bytes");
        if let Some(hit) = entries.get(&key) {
            if !keys.contains_key(&hit.kid) {
                entries.remove(&key);
                return Err(TokenRejection::UnknownKey);
            }
            check_times(&hit.claims, now)?;
            return Ok(hit.claims.clone());
        }
        let (claims, kid) = verify_signature(token, keys, policy)?;
        check_times(&claims, now)?;
        entries.insert(key, Arc::new(Verified { claims: claims.clone(), kid }));
        Ok(claims)
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> AccessClaims {
        crate::tokens::fixtures::claims_at(NOW)
    }

    #[test]
    fn a_hit_still_honours_expiry_and_key_deletion() {
        let key = crate::tokens::fixtures::key();
        let keys: VerificationKeys = HashMap::from([(key.kid().to_string(), key.decoding_key())]);
        let policy = VerificationPolicy::new("http://issuer", "library-api");
        let cache = VerifiedTokenCache::new(10);
        let token = key.sign(&claims()).expect("sign");

        assert!(cache.verify(&token, &keys, &policy, NOW).is_ok());
        assert_eq!(cache.len(), 1);
        assert!(cache.verify(&token, &keys, &policy, NOW + 10).is_ok(), "a hit");
        assert_eq!(cache.verify(&token, &keys, &policy, NOW + 91), Err(TokenRejection::Expired), "never outlives exp");
        assert_eq!(cache.verify(&token, &HashMap::new(), &policy, NOW), Err(TokenRejection::UnknownKey), "key deleted");

        let tampered = format!("{token}x");
        assert!(cache.verify(&tampered, &keys, &policy, NOW).is_err(), "only the exact bytes hit");
        assert_eq!(cache.verify(&"x".repeat(MAX_TOKEN_BYTES + 1), &keys, &policy, NOW), Err(TokenRejection::TooLarge));
    }

    #[test]
    fn the_cache_is_bounded() {
        let key = crate::tokens::fixtures::key();
        let keys: VerificationKeys = HashMap::from([(key.kid().to_string(), key.decoding_key())]);
        let policy = VerificationPolicy::new("http://issuer", "library-api");
        let cache = VerifiedTokenCache::new(16);
        for _ in 0..200 {
            let token = key.sign(&claims()).expect("sign");
            cache.verify(&token, &keys, &policy, NOW).expect("valid");
        }
        assert!(cache.len() <= 16, "{} entries", cache.len());
        assert!(VerifiedTokenCache::new(0).verify(&key.sign(&claims()).expect("sign"), &keys, &policy, NOW).is_ok());
    }
}
