//! A cache of verified access tokens (like Envoy's jwt_authn cache): presenting the same token
//! again skips the header parsing and RSA signature check.
//!
//! Safe by construction:
//! - keyed by the whole token, compared in constant time, so only the exact bytes that verified
//!   can hit, and a lookup reveals nothing about a cached token through its timing. (A SHA-256
//!   of the token as the key was the first design; hashing 1 kB cost more than the rest of a
//!   cached `/verify` together. The tokens are held in memory either way, in request buffers;
//!   they are never written anywhere.)
//! - bounded (`capacity` entries, evicted by quick_cache's CLOCK-Pro policy);
//! - a hit re-checks `exp`/`nbf` against the clock, so an entry never outlives its token;
//! - a hit re-checks that its signing key is still published, so deleting a key takes effect at
//!   once;
//! - revocation is not cached at all: callers check the deny list on every request.

use crate::claims::{AccessClaims, MAX_TOKEN_BYTES};
use crate::policy::{TokenRejection, VerificationKeys, VerificationPolicy, check_times, verify_signature};
use quick_cache::Equivalent;
use quick_cache::sync::Cache;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A verified token, as the cache keeps it.
struct CachedToken(Box<[u8]>);

/// A presented token, looked up without copying it.
struct PresentedToken<'a>(&'a [u8]);

// Both forms hash the same bytes the same way, as `Equivalent` requires.
impl Hash for CachedToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

impl Hash for PresentedToken<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

impl PartialEq for CachedToken {
    fn eq(&self, other: &Self) -> bool {
        same_bytes(&self.0, &other.0)
    }
}

impl Eq for CachedToken {}

impl Equivalent<CachedToken> for PresentedToken<'_> {
    fn equivalent(&self, cached: &CachedToken) -> bool {
        same_bytes(self.0, &cached.0)
    }
}

/// Whether `a` and `b` are the same bytes, in time that depends on their length only (lengths
/// are public: every token of a kind has about the same). Eight bytes at a time, with no early
/// exit, so a 1 kB token costs ~130 operations rather than a byte-wise loop's thousand.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((a_words, a_rest), (b_words, b_rest)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let words =
        a_words.iter().zip(b_words).fold(0u64, |diff, (x, y)| diff | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y)));
    let rest = a_rest.iter().zip(b_rest).fold(0u8, |diff, (x, y)| diff | (x ^ y));
    std::hint::black_box(words | u64::from(rest)) == 0
}

struct Verified {
    /// Shared with every caller of a hit: a hit costs a reference count, not a deep copy.
    claims: Arc<AccessClaims>,
    kid: String,
}

/// Tokens that verified, by their exact bytes, with their claims and signing key. Shared by
/// every request; bounded; a hit re-checks time and key (see the module documentation).
pub struct VerifiedTokenCache {
    entries: Option<Cache<CachedToken, Arc<Verified>>>,
}

impl VerifiedTokenCache {
    /// A cache of at most `capacity` tokens; 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self { entries: (capacity > 0).then(|| Cache::new(capacity)) }
    }

    /// Like [`crate::verify`], answered from the cache when this exact token verified before.
    pub fn verify(
        &self,
        token: &str,
        keys: &VerificationKeys,
        policy: &VerificationPolicy,
        now: i64,
    ) -> Result<Arc<AccessClaims>, TokenRejection> {
        let Some(entries) = &self.entries else {
            return crate::policy::verify(token, keys, policy, now).map(Arc::new);
        };
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejection::TooLarge);
        }
        let presented = PresentedToken(token.as_bytes());
        if let Some(hit) = entries.get(&presented) {
            if !keys.contains_key(&hit.kid) {
                entries.remove(&presented);
                return Err(TokenRejection::UnknownKey);
            }
            check_times(&hit.claims, now)?;
            return Ok(Arc::clone(&hit.claims));
        }
        let (claims, kid) = verify_signature(token, keys, policy)?;
        check_times(&claims, now)?;
        let claims = Arc::new(claims);
        entries.insert(CachedToken(token.as_bytes().into()), Arc::new(Verified { claims: Arc::clone(&claims), kid }));
        Ok(claims)
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{keys, sign};
    use std::collections::HashMap;

    const NOW: i64 = 1_800_000_000;

    fn claims() -> AccessClaims {
        crate::fixtures::claims_at(NOW)
    }

    #[test]
    fn a_hit_still_honours_expiry_and_key_deletion() {
        let keys = keys();
        let policy = VerificationPolicy::new("http://issuer", "library-api");
        let cache = VerifiedTokenCache::new(10);
        let token = sign(&claims());

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
    fn tokens_compare_by_every_byte() {
        for (a, b, same) in [
            ("", "", true),
            ("a", "a", true),
            ("abcdefgh", "abcdefgh", true),
            ("abcdefghi", "abcdefghi", true),
            ("abcdefghi", "abcdefghj", false),
            ("xbcdefghi", "abcdefghi", false),
            ("abcdefgh", "abcdefgH", false),
            ("abc", "abcd", false),
        ] {
            assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), same, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let keys = keys();
        let policy = VerificationPolicy::new("http://issuer", "library-api");
        let cache = VerifiedTokenCache::new(16);
        for _ in 0..200 {
            let token = sign(&claims());
            cache.verify(&token, &keys, &policy, NOW).expect("valid");
        }
        assert!(cache.len() <= 16, "{} entries", cache.len());
        assert!(VerifiedTokenCache::new(0).verify(&sign(&claims()), &keys, &policy, NOW).is_ok());
    }
}
