//! RSA signing keys: generated with the `rsa` crate, parsed once into an aws-lc-rs key pair,
//! and published as a JWK (RFC 7517) whose `kid` is its RFC 7638 thumbprint.

use super::ACCESS_TOKEN_TYPE;
use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::DecodingKey;
use rsa::pkcs8::EncodePrivateKey as _;
use serde::Serialize;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generate(String),
    #[error("stored private key is not a usable RSA key: {0}")]
    Parse(String),
    #[error("signing failed")]
    Sign,
}

/// Generates a new RSA private key of `bits` bits and returns it as PKCS#8 DER.
///
/// CPU-heavy (about 0.1 s for 2048 bits in release builds): call it off the async workers.
pub fn generate_pkcs8(bits: usize) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut rng = rsa::rand_core::UnwrapErr(getrandom::SysRng);
    let private_key = rsa::PrivateKey::new(&mut rng, bits).map_err(|e| KeyError::Generate(e.to_string()))?;
    let der = private_key.to_pkcs8_der().map_err(|e| KeyError::Generate(e.to_string()))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// A JWK Set (RFC 7517 §5): the body of `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The public half of a signing key as published in the JWKS (RFC 7517 §4, RFC 7518 §6.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// A parsed RSA key: signs tokens (when current) and verifies them.
pub struct SigningKey {
    kid: String,
    key_pair: RsaKeyPair,
    /// base64url of this key's JOSE header, computed once.
    header_b64: String,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: &'static str,
    typ: &'a str,
    kid: &'a str,
}

impl SigningKey {
    /// Parses a PKCS#8 DER private key. This is the only place a private key is parsed.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let key_pair = RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Parse(e.to_string()))?;
        let public = key_pair.public_key();
        let n = B64URL.encode(public.modulus().big_endian_without_leading_zero());
        let e = B64URL.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&n, &e);
        let header = JoseHeader { alg: "RS256", typ: ACCESS_TOKEN_TYPE, kid: &kid };
        let header_b64 = B64URL.encode(serde_json::to_vec(&header).map_err(|e| KeyError::Parse(e.to_string()))?);
        let jwk = Jwk { kty: "RSA", use_: "sig", alg: "RS256", kid: kid.clone(), n, e };
        Ok(Self { kid, key_pair, header_b64, jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The key jsonwebtoken verifies with (public components only).
    pub fn decoding_key(&self) -> DecodingKey {
        let public = self.key_pair.public_key();
        DecodingKey::from_rsa_raw_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        )
    }

    /// Signs `claims` as a compact JWS with RS256 (RFC 7515 §7.1) under this key's header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        self.sign_raw(&self.header_b64, &B64URL.encode(payload))
    }

    /// Signs `claims` as a compact JWS with RS256 whose header names media type `typ` (a
    /// Security Event Token's `secevent+jwt`, RFC 8417 §2.3), so one kind of token can never
    /// pass for another.
    pub fn sign_typed<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let header = JoseHeader { alg: "RS256", typ, kid: &self.kid };
        let header_b64 = B64URL.encode(serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?);
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        self.sign_raw(&header_b64, &B64URL.encode(payload))
    }

    /// Signs `header_b64.payload_b64` as given. Tests use it to build hostile tokens with a real key.
    pub fn sign_raw(&self, header_b64: &str, payload_b64: &str) -> Result<String, KeyError> {
        let mut token = String::with_capacity(
            header_b64.len() + payload_b64.len() + 2 + self.key_pair.public_modulus_len() * 4 / 3 + 4,
        );
        token.push_str(header_b64);
        token.push('.');
        token.push_str(payload_b64);
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), token.as_bytes(), &mut signature)
            .map_err(|_| KeyError::Sign)?;
        token.push('.');
        B64URL.encode_string(&signature, &mut token);
        Ok(token)
    }
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    B64URL.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // The example key of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(thumbprint(n, "AQAB"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn a_generated_key_signs_tokens_that_its_jwk_verifies() {
        let der = generate_pkcs8(2048).expect("generate");
        let key = SigningKey::from_pkcs8(&der).expect("parse");
        assert_eq!(key.jwk().kid, key.kid());
        let token = key.sign(&serde_json::json!({"sub": "x"})).expect("sign");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(
            (header.alg, header.typ.as_deref(), header.kid.as_deref()),
            (jsonwebtoken::Algorithm::RS256, Some("at+jwt"), Some(key.kid()))
        );
        let jwk_key = DecodingKey::from_rsa_components(&key.jwk().n, &key.jwk().e).expect("jwk");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &jwk_key, &validation).expect("verifies with the JWK");
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(matches!(SigningKey::from_pkcs8(b"not a key"), Err(KeyError::Parse(_))));
    }
}
