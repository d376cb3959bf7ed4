//! Verifications per second of the verifier crate with cached keys (`Verifier::verify`, its
//! verified-token cache off, so every call checks the RSA signature) beside
//! `jsonwebtoken::decode` alone (the same key, an equivalent `Validation`, the same claims type)
//! on the same tokens; then the crate with its verified-token cache on, for reference. The two
//! sides alternate for ROUNDS rounds on one thread; the figure is the median of the per-round
//! ratios. Run by bench/verifier.
//!
//! Usage: verify_rate ISSUER_URL TOKENS_FILE [ROUNDS] [SECONDS_PER_SIDE]

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use library_api_verifier::{AccessClaims, Verifier};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(issuer), Some(tokens_file)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: verify_rate ISSUER_URL TOKENS_FILE [ROUNDS] [SECONDS_PER_SIDE]");
        std::process::exit(2);
    };
    let rounds: usize = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(5);
    let per_side = Duration::from_secs_f64(args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1.0));
    let tokens: Vec<String> =
        std::fs::read_to_string(tokens_file).expect("tokens file").lines().map(str::to_string).collect();
    assert!(!tokens.is_empty(), "no tokens");

    let crate_uncached =
        Verifier::builder(issuer, "library-api").token_cache_capacity(0).build().await.expect("verifier");
    let crate_cached = Verifier::builder(issuer, "library-api").build().await.expect("verifier");
    let (key, validation) = plain_jsonwebtoken(issuer, &tokens[0]).await;
    for token in &tokens {
        crate_uncached.verify(token).await.expect("the crate accepts the token");
        jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).expect("jsonwebtoken accepts the token");
    }

    let mut ratios = Vec::new();
    let (mut crate_rates, mut plain_rates, mut cached_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let plain = rate(per_side, &tokens, |token| {
            std::hint::black_box(jsonwebtoken::decode::<AccessClaims>(token, &key, &validation).is_ok());
        });
        let mut crate_side = 0.0;
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < per_side {
            for token in &tokens {
                std::hint::black_box(crate_uncached.verify(token).await.is_ok());
                calls += 1;
            }
            crate_side = calls as f64 / started.elapsed().as_secs_f64();
        }
        let mut cached = 0.0;
        let started = Instant::now();
        let mut calls = 0u64;
        while started.elapsed() < per_side / 4 {
            for token in &tokens {
                std::hint::black_box(crate_cached.verify(token).await.is_ok());
                calls += 1;
            }
            cached = calls as f64 / started.elapsed().as_secs_f64();
        }
        println!(
            "round {round}: jsonwebtoken::decode {plain:>9.0}/s   crate {crate_side:>9.0}/s   ratio {:.3}   crate, token cache on {cached:>10.0}/s",
            crate_side / plain
        );
        ratios.push(crate_side / plain);
        crate_rates.push(crate_side);
        plain_rates.push(plain);
        cached_rates.push(cached);
    }
    println!(
        "median: jsonwebtoken::decode {:.0}/s, crate {:.0}/s, crate/decode {:.3} (overhead {:.1} %), token cache on {:.0}/s",
        median(&mut plain_rates),
        median(&mut crate_rates),
        median(&mut ratios.clone()),
        (1.0 / median(&mut ratios) - 1.0) * 100.0,
        median(&mut cached_rates)
    );
}

/// Calls `verify` on the tokens in turn for `per_side`; calls per second.
fn rate(per_side: Duration, tokens: &[String], mut verify: impl FnMut(&str)) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < per_side {
        for token in tokens {
            verify(token);
            calls += 1;
        }
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What a service doing it by hand would hold: the token's key from the JWKS and a
/// `Validation` of the same checks (RS256, iss, aud, required claims; times with 30 s leeway).
async fn plain_jsonwebtoken(issuer: &str, token: &str) -> (DecodingKey, Validation) {
    let jwks: serde_json::Value =
        reqwest::get(format!("{issuer}/.well-known/jwks.json")).await.expect("JWKS").json().await.expect("JSON");
    let kid = jsonwebtoken::decode_header(token).expect("header").kid.expect("kid");
    let jwk = jwks["keys"].as_array().expect("keys").iter().find(|key| key["kid"] == kid.as_str()).expect("the kid");
    let key = DecodingKey::from_rsa_components(jwk["n"].as_str().expect("n"), jwk["e"].as_str().expect("e"))
        .expect("RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["library-api"]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = 30;
    (key, validation)
}
