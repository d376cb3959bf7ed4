//! Attacks: login throttling (parallel bursts, per address, timing), and a JWT attack suite
//! (RFC 8725, PortSwigger's JWT labs) against every place a token is accepted.

use crate::helpers::{
    Backend, PASSWORD, TestApp, TestConfig, encode_segment, foreign_signing_key, jwt_segments, spawn_app, spawn_app_on,
    spawn_app_with,
};
use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE as B64URL_PADDED, URL_SAFE_NO_PAD as B64URL};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};
use std::time::Instant;

#[rstest]
#[actix_web::test]
async fn burst_of_wrong_passwords_gets_no_more_attempts_than_the_limit(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    let attempts = (0..20).map(|_| app.login_basic("alice", "wrong password"));
    let replies = futures_util::future::join_all(attempts).await;
    let checked = replies.iter().filter(|reply| reply.status == StatusCode::UNAUTHORIZED).count();
    let throttled: Vec<_> = replies.iter().filter(|reply| reply.status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert!(checked <= 5, "{checked} passwords were checked; the limit is 5");
    assert_eq!(checked + throttled.len(), 20, "only 401 or 429");
    for reply in throttled {
        assert_eq!(reply.error_code(), "too_many_attempts");
        let retry_after: i64 = reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }

    // The real user is delayed, not locked out: after the wait, the right password works.
    let blocked = app.login_basic("alice", PASSWORD).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: i64 = blocked.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    app.clock.advance(chrono::Duration::seconds(wait));
    assert_eq!(app.login_basic("alice", PASSWORD).await.status, StatusCode::OK, "works after the backoff");
    assert_eq!(
        app.login_basic("alice", "wrong again").await.status,
        StatusCode::UNAUTHORIZED,
        "the count started over"
    );
}

#[rstest]
#[actix_web::test]
async fn delays_grow_and_are_capped(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    for _ in 0..5 {
        assert_eq!(app.login_basic("alice", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    let mut waits = Vec::new();
    for _ in 0..9 {
        let reply = app.login_basic("alice", "wrong password").await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        let wait: i64 = reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
        waits.push(wait);
        app.clock.advance(chrono::Duration::seconds(wait));
        assert_eq!(
            app.login_basic("alice", "wrong password").await.status,
            StatusCode::UNAUTHORIZED,
            "one try per wait"
        );
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60], "doubling, capped at LOGIN_DELAY_CAP");
}

#[rstest]
#[actix_web::test]
async fn one_address_guessing_at_many_accounts_is_slowed_too(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(TestConfig { ip_failures_before_delay: "3".into(), ..config }).await;
    for name in ["anna", "bert", "carl"] {
        assert_eq!(app.login_basic(name, "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let fourth = app.login_basic("dora", "guess").await;
    assert_eq!((fourth.status, fourth.error_code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
}

#[rstest]
#[actix_web::test]
async fn an_attacker_elsewhere_cannot_make_the_real_user_wait(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    // Behind a trusted proxy, X-Forwarded-For tells clients apart.
    let app = spawn_app_with(TestConfig {
        trusted_proxies: "127.0.0.1".into(),
        ip_failures_before_delay: "20".into(),
        ..config
    })
    .await;
    app.register("alice", PASSWORD).await;
    let from = |ip: &str, password: &str| {
        app.request(Method::POST, "/login")
            .header("x-forwarded-for", ip)
            .basic_auth("alice", Some(password.to_string()))
    };
    for _ in 0..10 {
        app.send(from("203.0.113.9", "guess")).await;
    }
    assert_eq!(
        app.send(from("203.0.113.9", "guess")).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker waits"
    );
    let real = app.send(from("198.51.100.7", PASSWORD)).await;
    assert_eq!(real.status, StatusCode::OK, "the real user, elsewhere, does not");
    // A forged entry left of a value our proxy did not write is not trusted.
    let spoofed = app.request(Method::POST, "/login").header("x-forwarded-for", "198.51.100.7, not-an-ip, 203.0.113.9");
    let spoofed = app.send(spoofed.basic_auth("alice", Some("guess"))).await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS, "counted as the attacker's address");
}

#[rstest]
#[actix_web::test]
async fn forwarded_for_is_ignored_without_a_trusted_proxy_and_successes_cost_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(TestConfig { ip_failures_before_delay: "3".into(), ..config }).await;
    app.register("alice", PASSWORD).await;
    for _ in 0..10 {
        assert_eq!(app.login_basic("alice", PASSWORD).await.status, StatusCode::OK, "successes never count");
    }
    for (i, name) in ["anna", "bert", "carl"].iter().enumerate() {
        let request = app.request(Method::POST, "/login").header("x-forwarded-for", format!("192.0.2.{i}"));
        assert_eq!(app.send(request.basic_auth(name, Some("guess"))).await.status, StatusCode::UNAUTHORIZED);
    }
    let fourth = app.request(Method::POST, "/login").header("x-forwarded-for", "192.0.2.99");
    assert_eq!(
        app.send(fourth.basic_auth("dora", Some("guess"))).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "a forged X-Forwarded-For changes nothing"
    );
}

#[rstest]
#[actix_web::test]
async fn token_responses_are_never_cached(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    let login = app.login_json("alice", PASSWORD).await;
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let refresh_token = login.body["refresh_token"].as_str().expect("refresh").to_string();
    let refreshed = app.refresh(&refresh_token).await;
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
}

/// One backend: the password check, not the database, is what is timed.
#[actix_web::test]
async fn an_unknown_users_failure_takes_about_as_long_as_a_known_users() {
    // A real bcrypt cost, so the password check dominates the time of a request.
    let app = spawn_app_with(TestConfig {
        bcrypt_cost: "10".into(),
        login_failures_before_delay: "1000".into(),
        ..TestConfig::sqlite()
    })
    .await;
    app.register("alice", PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..8 {
        for (name, samples) in [("alice", &mut known), ("nobody-at-all", &mut unknown)] {
            let started = Instant::now();
            assert_eq!(app.login_basic(name, "wrong password").await.status, StatusCode::UNAUTHORIZED);
            samples.push(started.elapsed().as_secs_f64());
        }
    }
    let median = |samples: &mut Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    let ratio = unknown / known;
    assert!((0.5..2.0).contains(&ratio), "unknown {unknown:.4}s vs known {known:.4}s (ratio {ratio:.2})");
}

/// Named hostile variants of a valid token, each of which must be refused.
fn attacks(app: &TestApp, token: &str) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = token.split('.').collect();
    let ((header, claims), signature) = (jwt_segments(token), parts[2]);
    let ours = app.current_signing_key();
    let kid = ours.kid().to_string();
    let foreign = foreign_signing_key();
    let with_header = |edit: &dyn Fn(&mut Value)| {
        let mut header = header.clone();
        edit(&mut header);
        header
    };
    let with_claims = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut claims = claims.clone();
        edit(claims.as_object_mut().expect("object"));
        claims
    };
    let signed =
        |header: &Value, claims: &Value| ours.sign_raw(&encode_segment(header), &encode_segment(claims)).expect("sign");
    let unsigned = |alg: &str| {
        format!("{}.{}.", encode_segment(&with_header(&|h| h["alg"] = json!(alg))), encode_segment(&claims))
    };

    // The public key as a verifier would hold it, used as an HMAC secret (algorithm confusion).
    let public_pem = app.public_key_pem(&kid);
    let hmac = |alg: Algorithm| {
        let mut hs = Header::new(alg);
        hs.typ = Some("at+jwt".into());
        hs.kid = Some(kid.clone());
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(public_pem.as_bytes())).expect("hmac")
    };
    let foreign_jwk = serde_json::to_value(foreign.jwk()).expect("jwk");

    let mut attacks = vec![
        ("alg none", unsigned("none")),
        ("alg None", unsigned("None")),
        ("alg NONE", unsigned("NONE")),
        ("HS256 keyed with our public key", hmac(Algorithm::HS256)),
        ("HS384 keyed with our public key", hmac(Algorithm::HS384)),
        ("RS256 signed by a foreign key under our kid", foreign.sign_raw(parts[0], parts[1]).expect("sign")),
        (
            "embedded jwk of the signing (foreign) key",
            foreign
                .sign_raw(
                    &encode_segment(&with_header(&|h| {
                        h["jwk"] = foreign_jwk.clone();
                        h["kid"] = json!(foreign.kid());
                    })),
                    parts[1],
                )
                .expect("sign"),
        ),
        (
            "embedded jwk under our kid",
            foreign
                .sign_raw(&encode_segment(&with_header(&|h| h["jwk"] = foreign_jwk.clone())), parts[1])
                .expect("sign"),
        ),
        (
            "jku pointing elsewhere",
            foreign
                .sign_raw(
                    &encode_segment(&with_header(&|h| {
                        h["jku"] = json!("https://evil.example/jwks.json");
                        h["kid"] = json!(foreign.kid());
                    })),
                    parts[1],
                )
                .expect("sign"),
        ),
        (
            "x5u pointing elsewhere",
            foreign
                .sign_raw(
                    &encode_segment(&with_header(&|h| h["x5u"] = json!("https://evil.example/cert.pem"))),
                    parts[1],
                )
                .expect("sign"),
        ),
        ("kid path traversal", signed(&with_header(&|h| h["kid"] = json!("../../../../dev/null")), &claims)),
        ("SQL-looking kid", signed(&with_header(&|h| h["kid"] = json!("x' UNION SELECT 'secret' --")), &claims)),
        ("stripped signature", format!("{}.{}.", parts[0], parts[1])),
        ("no signature segment", format!("{}.{}", parts[0], parts[1])),
        ("trailing segment", format!("{token}.extra")),
        ("trailing dot", format!("{token}.")),
        (
            "padded base64url signature",
            format!("{}.{}.{}", parts[0], parts[1], B64URL_PADDED.encode(B64URL.decode(signature).expect("sig"))),
        ),
        (
            "standard base64 signature",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                base64::engine::general_purpose::STANDARD.encode(B64URL.decode(signature).expect("sig"))
            ),
        ),
        ("duplicate claims", {
            let raw = claims.to_string();
            let duplicated = raw.replacen('{', &format!("{{\"sub\":\"{}\",", uuid::Uuid::new_v4()), 1);
            ours.sign_raw(parts[0], &B64URL.encode(duplicated)).expect("sign")
        }),
        (
            "exp as a string",
            signed(
                &header,
                &with_claims(&|c| {
                    let exp = c["exp"].to_string();
                    c.insert("exp".into(), json!(exp));
                }),
            ),
        ),
        (
            "nbf as a string",
            signed(
                &header,
                &with_claims(&|c| {
                    let nbf = c["nbf"].to_string();
                    c.insert("nbf".into(), json!(nbf));
                }),
            ),
        ),
        ("huge token", format!("{}.{}.{}", parts[0], B64URL.encode(vec![b'a'; 9 * 1024]), signature)),
        ("crit header", signed(&with_header(&|h| h["crit"] = json!(["exp"])), &claims)),
        ("typ JWT", signed(&with_header(&|h| h["typ"] = json!("JWT")), &claims)),
    ];
    for claim in ["exp", "jti", "sub", "iss", "aud", "nbf", "client_id", "scope"] {
        let name: &'static str = Box::leak(format!("missing {claim}").into_boxed_str());
        attacks.push((
            name,
            signed(
                &header,
                &with_claims(&|c| {
                    c.remove(claim);
                }),
            ),
        ));
    }
    attacks
}

#[rstest]
#[actix_web::test]
async fn every_jwt_attack_is_refused_everywhere_a_token_is_accepted(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    for path in ["/verify", "/users/me", "/authors"] {
        assert_eq!(app.get(path, &token).await.status, StatusCode::OK, "the untouched token works at {path}");
    }
    for (name, forged) in attacks(&app, &token) {
        for path in ["/verify", "/users/me", "/authors"] {
            let reply = app.get(path, &forged).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name} at {path}");
        }
        let seed_header = app.send(app.request(Method::GET, "/authors").header("x-access-tokens", &forged)).await;
        assert_eq!(seed_header.status, StatusCode::UNAUTHORIZED, "{name} in x-access-tokens");
    }
}

/// One backend: no header here depends on the database.
#[actix_web::test]
async fn responses_carry_security_headers_and_no_server_version() {
    let app = spawn_app().await;
    for path in ["/healthz", "/nowhere", "/.well-known/jwks.json"] {
        let reply = app.send(app.request(Method::GET, path)).await;
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert!(reply.header("server").is_none(), "{path} names its server");
    }
    let login = app.login_basic("nobody", "x").await;
    assert_eq!(login.header("x-content-type-options"), Some("nosniff"));
}
