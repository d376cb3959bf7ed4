//! Opaque secrets — refresh tokens and client secrets: random strings of 256 bits, stored only
//! as their SHA-256.
//!
//! A fast hash is enough here: unlike a password, a secret has full entropy, so there is
//! nothing to brute-force; the hash only makes a stolen database useless for replay. (bcrypt
//! would also cap client authentication at a few per second.)

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

const TOKEN_BYTES: usize = 32;
/// Longer input cannot be one of ours; it is rejected without hashing.
pub const MAX_SECRET_LEN: usize = 128;

/// A freshly generated secret and the hash to store.
pub struct NewSecret {
    /// Given to the client once; never stored or logged.
    pub value: String,
    pub hash: String,
}

/// Makes a new secret from the system's secure random generator.
pub fn generate_secret() -> NewSecret {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    let value = B64URL.encode(bytes);
    let hash = hash_secret(&value);
    NewSecret { value, hash }
}

/// Whether `presented` is the secret whose stored form is `stored`, compared in constant time.
pub fn secret_matches(presented: &str, stored: &str) -> bool {
    presented.len() <= MAX_SECRET_LEN
        && aws_lc_rs::constant_time::verify_slices_are_equal(hash_secret(presented).as_bytes(), stored.as_bytes())
            .is_ok()
}

/// The stored form of a secret.
pub fn hash_secret(secret: &str) -> String {
    B64URL.encode(digest::digest(&digest::SHA256, secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_random_and_stored_only_as_a_hash() {
        let first = generate_secret();
        let second = generate_secret();
        assert_ne!(first.value, second.value);
        assert_eq!(B64URL.decode(&first.value).expect("base64url").len(), 32);
        assert_eq!(first.hash, hash_secret(&first.value));
        assert!(!first.hash.contains(&first.value));
        assert!(secret_matches(&first.value, &first.hash));
        assert!(!secret_matches(&second.value, &first.hash));
        assert!(!secret_matches(&"x".repeat(MAX_SECRET_LEN + 1), &first.hash));
    }
}
