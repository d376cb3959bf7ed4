//! Refresh tokens: opaque random strings (256 bits), stored only as their SHA-256.
//!
//! A fast hash is enough here: unlike a password, the token has full entropy, so there is
//! nothing to brute-force; the hash only makes a stolen database useless for replay.

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

const TOKEN_BYTES: usize = 32;
/// Longer input cannot be one of ours; it is rejected without hashing.
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

/// A freshly generated refresh token and the hash to store.
pub struct NewRefreshToken {
    /// Given to the client once; never stored or logged.
    pub token: String,
    pub hash: String,
}

/// Makes a new refresh token from the system's secure random generator.
pub fn generate_refresh_token() -> NewRefreshToken {
    let mut bytes = [0u8; TOKEN_BYTES];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    let token = B64URL.encode(bytes);
    let hash = hash_refresh_token(&token);
    NewRefreshToken { token, hash }
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    B64URL.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_random_and_stored_only_as_a_hash() {
        let first = generate_refresh_token();
        let second = generate_refresh_token();
        assert_ne!(first.token, second.token);
        assert_eq!(B64URL.decode(&first.token).expect("base64url").len(), 32);
        assert_eq!(first.hash, hash_refresh_token(&first.token));
        assert!(!first.hash.contains(&first.token));
    }
}
