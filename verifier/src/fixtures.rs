//! Test fixtures: one generated RSA key that signs like the issuer does, and claims that verify
//! against `VerificationPolicy::new("http://issuer", "library-api")` at a given time.

use crate::{AccessClaims, Subject, VerificationKeys};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::sync::OnceLock;
use uuid::Uuid;

/// The test key's `kid`.
pub const KID: &str = "test-key";

fn key_pair() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).expect("generate"))
}

/// The test key's public half, as the verifier holds it.
pub fn decoding_key() -> DecodingKey {
    let public = key_pair().public_key();
    DecodingKey::from_rsa_raw_components(
        public.modulus().big_endian_without_leading_zero(),
        public.exponent().big_endian_without_leading_zero(),
    )
}

/// The test key's JWK members `n` and `e`.
pub fn jwk_components() -> (String, String) {
    let public = key_pair().public_key();
    (
        B64URL.encode(public.modulus().big_endian_without_leading_zero()),
        B64URL.encode(public.exponent().big_endian_without_leading_zero()),
    )
}

/// The key set holding the test key.
pub fn keys() -> VerificationKeys {
    HashMap::from([(KID.to_string(), decoding_key())])
}

/// base64url of a JSON value.
pub fn segment(value: &serde_json::Value) -> String {
    B64URL.encode(value.to_string())
}

/// Signs `header_b64.payload_b64` as given with RS256.
pub fn sign_raw(header_b64: &str, payload_b64: &str) -> String {
    let signing_input = format!("{header_b64}.{payload_b64}");
    let mut signature = vec![0u8; key_pair().public_modulus_len()];
    key_pair().sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature).expect("sign");
    format!("{signing_input}.{}", B64URL.encode(signature))
}

/// Signs `claims` under the header the issuer uses for access tokens.
pub fn sign(claims: &impl serde::Serialize) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": KID});
    sign_raw(&segment(&header), &segment(&serde_json::to_value(claims).expect("claims")))
}

/// Claims of a user's token issued at `now`, valid for a minute.
pub fn claims_at(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://issuer".into(),
        sub: Subject::User(Uuid::new_v4()),
        aud: "library-api".into(),
        iat: now,
        nbf: now,
        exp: now + 60,
        jti: Uuid::new_v4(),
        client_id: "library-app".into(),
        scope: String::new(),
        sid: Some(Uuid::new_v4()),
        name: Some("alice".into()),
        groups: vec![],
    }
}
