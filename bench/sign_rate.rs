//! Token signing rate on one thread, for `bench/signing`.
//!
//! Compares the service's signer (an aws-lc-rs `RsaKeyPair` parsed once, signing the JWS
//! directly) with `jsonwebtoken::encode`, which re-parses the private key for every token.
//! Prints one line per signer: `sign_rate <name> <signs per second>`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use library_api::tokens::{AccessClaims, SigningKey, generate_pkcs8};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn rate(seconds: f64, mut sign: impl FnMut() -> String) -> f64 {
    let (start, mut count) = (Instant::now(), 0u64);
    let budget = Duration::from_secs_f64(seconds);
    while start.elapsed() < budget {
        black_box(sign());
        count += 1;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = std::env::args().nth(1).and_then(|arg| arg.parse().ok()).unwrap_or(5.0);
    let bits: usize = std::env::args().nth(2).and_then(|arg| arg.parse().ok()).unwrap_or(2048);
    let der = generate_pkcs8(bits).expect("key generation");
    let key = SigningKey::from_pkcs8(&der).expect("key");
    let claims = AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: library_api::tokens::Subject::User(uuid::Uuid::new_v4()),
        aud: "library-api".into(),
        iat: 1_800_000_000,
        nbf: 1_800_000_000,
        exp: 1_800_001_800,
        jti: uuid::Uuid::new_v4(),
        client_id: "library-app".into(),
        scope: String::new(),
        sid: Some(uuid::Uuid::new_v4()),
        name: Some("alice".into()),
        groups: vec![],
    };
    let service = rate(seconds, || key.sign(&claims).expect("sign"));
    println!("sign_rate library-api {service:.1}");

    let pkcs1 = rsa::PrivateKey::from_pkcs8_der(&der).expect("pkcs8").to_pkcs1_der().expect("pkcs1");
    let encoding_key = EncodingKey::from_rsa_der(pkcs1.as_bytes());
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(key.kid().to_string());
    let reparsing = rate(seconds, || jsonwebtoken::encode(&header, &claims, &encoding_key).expect("encode"));
    println!("sign_rate jsonwebtoken-encode {reparsing:.1}");
}
