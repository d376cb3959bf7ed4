//! What the rest of the service sees of the key ring at one moment: the signing key, the
//! verification keys, the serialized JWKS. The key ring actor builds a new snapshot on every
//! change and swaps it in whole; signing, verification and the JWKS read it without a message.

use super::{Jwks, SigningKey, VerificationKeys};
use crate::key_schedule::{self, KeyPolicy, KeyState, KeyTimes};
use arc_swap::ArcSwap;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The live view of the ring: the actor stores, everyone else loads.
pub type SharedSnapshot = Arc<ArcSwap<KeyRingSnapshot>>;

/// What the rest of the service sees of the ring at one moment. Replaced whole on every change.
pub struct KeyRingSnapshot {
    /// The key that signs new tokens (`None` only before the ring is first loaded).
    pub current: Option<Arc<SigningKey>>,
    /// Every published key (next, current, retired) by kid, for verification.
    pub verification_keys: VerificationKeys,
    /// The serialized JWKS document (RFC 7517 §5), built once per change.
    pub jwks: Arc<[u8]>,
    /// Strong ETag of `jwks`: changes exactly when the key set does.
    pub etag: String,
    /// Every key's state and times, oldest first.
    pub keys: Vec<KeyTimes>,
    /// When the next key starts signing.
    pub next_activation: Option<DateTime<Utc>>,
    pub policy: KeyPolicy,
}

impl KeyRingSnapshot {
    /// A ring with no keys (before the first load).
    pub fn empty(policy: KeyPolicy) -> Self {
        Self::new(&[], Vec::new(), policy)
    }

    /// The snapshot of `published` keys with their schedule `keys`.
    pub fn new(published: &[Arc<SigningKey>], keys: Vec<KeyTimes>, policy: KeyPolicy) -> Self {
        // A struct of strings always serializes; the fallback only keeps this path panic-free.
        let jwks = serde_json::to_vec(&Jwks { keys: published.iter().map(|key| key.jwk().clone()).collect() })
            .unwrap_or_else(|_| br#"{"keys":[]}"#.to_vec());
        let etag = format!("\"{}\"", B64URL.encode(&digest::digest(&digest::SHA256, &jwks).as_ref()[..16]));
        let verification_keys = published.iter().map(|key| (key.kid().to_string(), key.decoding_key())).collect();
        let current_kid = keys.iter().find(|key| key.state == KeyState::Current).map(|key| key.kid.as_str());
        let current = published.iter().find(|key| Some(key.kid()) == current_kid).cloned();
        let next_activation = key_schedule::next_activation(&keys, &policy);
        Self { current, verification_keys, jwks: jwks.into(), etag, keys, next_activation, policy }
    }

    /// The JWKS `max-age` at `now` (see [`KeyPolicy::jwks_max_age`]).
    pub fn jwks_max_age(&self, now: DateTime<Utc>) -> i64 {
        self.policy.jwks_max_age(self.next_activation, now)
    }
}
