//! Access tokens: their shape (RFC 9068), verification from the JWKS alone, and every token
//! that must be refused (401 with an `invalid_token` Bearer challenge).

use crate::helpers::{
    Backend, PASSWORD, TestApp, encode_segment, foreign_signing_key, jwt_segments, kid_of, spawn_app_on,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use library_api::tokens::AccessClaims;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};

#[rstest]
#[actix_web::test]
async fn access_tokens_carry_the_rfc9068_header_and_every_claim(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    let (header, claims) = jwt_segments(&token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"].as_str(), Some(app.current_signing_key().kid()));
    let me = app.get("/users/me", &token).await;
    assert_eq!(claims["sub"], me.body["public_id"]);
    assert_eq!(claims["iss"].as_str(), Some(&*app.address));
    assert_eq!(claims["aud"], "library-api");
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["groups"], json!([]));
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["nbf"].as_i64().expect("nbf"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert_eq!((nbf, exp - iat), (iat, 1800));
    uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).expect("jti is a UUID");
    let second = app.token_for("alice", PASSWORD).await;
    assert_ne!(jwt_segments(&second).1["jti"], claims["jti"], "jti is unique per token");

    let (_, admin_claims) = jwt_segments(&app.admin_token().await);
    assert_eq!(admin_claims["groups"], json!(["admin"]));
}

#[rstest]
#[actix_web::test]
async fn a_token_verifies_with_nothing_but_the_published_jwks(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    let jwks = app.send(app.request(Method::GET, "/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "the current key and the next one, published ahead");
    for jwk in keys {
        assert_eq!(
            (jwk["kty"].as_str(), jwk["use"].as_str(), jwk["alg"].as_str()),
            (Some("RSA"), Some("sig"), Some("RS256"))
        );
        let mut members: Vec<_> = jwk.as_object().expect("object").keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"], "public members only");
    }
    let kid = kid_of(&token);
    let jwk = keys.iter().find(|jwk| jwk["kid"].as_str() == Some(&*kid)).expect("the signing key is published");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().expect("n"), jwk["e"].as_str().expect("e")).expect("JWK");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[&app.address]);
    validation.set_audience(&["library-api"]);
    let verified =
        jsonwebtoken::decode::<AccessClaims>(&token, &key, &validation).expect("verifies from the JWKS alone");
    assert_eq!(verified.claims.name.as_deref(), Some("alice"));
}

#[rstest]
#[actix_web::test]
async fn jwks_is_cacheable_and_answers_304_to_its_etag(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let first = app.send(app.request(Method::GET, "/.well-known/jwks.json")).await;
    let etag = first.header("etag").expect("etag").to_string();
    assert!(etag.starts_with('"'), "strong ETag: {etag}");
    assert!(first.header("cache-control").is_some_and(|value| value.starts_with("public, max-age=")));
    let revalidated = app.send(app.request(Method::GET, "/.well-known/jwks.json").header("if-none-match", &etag)).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    let other = app.send(app.request(Method::GET, "/.well-known/jwks.json").header("if-none-match", "\"other\"")).await;
    assert_eq!(other.status, StatusCode::OK);
}

/// Forgeries of a valid token, each wrong in exactly one way.
fn forgeries(app: &TestApp, token: &str) -> Vec<(&'static str, String)> {
    let key = app.current_signing_key();
    let (header, claims) = jwt_segments(token);
    let signature = token.rsplit('.').next().expect("signature");
    let with_claim = |name: &str, value: Value| {
        let mut claims = claims.clone();
        claims[name] = value;
        key.sign_raw(&encode_segment(&header), &encode_segment(&claims)).expect("sign")
    };
    let foreign_key = foreign_signing_key();

    // The classic algorithm confusion: HMAC keyed with the RSA public key as the verifier sees it.
    let public_pem = app.public_key_pem(key.kid());
    let mut hs256_header = Header::new(Algorithm::HS256);
    hs256_header.typ = Some("at+jwt".into());
    hs256_header.kid = Some(key.kid().to_string());
    let hs256 =
        jsonwebtoken::encode(&hs256_header, &claims, &EncodingKey::from_secret(public_pem.as_bytes())).expect("hs256");

    let mut tampered = claims.clone();
    tampered["groups"] = json!(["admin"]);
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("not-a-key-of-ours");
    vec![
        ("expired", with_claim("exp", json!(claims["iat"].as_i64().expect("iat") - 120))),
        ("nbf in the future", with_claim("nbf", json!(claims["iat"].as_i64().expect("iat") + 3600))),
        ("wrong iss", with_claim("iss", json!("http://evil.example"))),
        ("wrong aud", with_claim("aud", json!("another-service"))),
        ("tampered payload", format!("{}.{}.{}", encode_segment(&header), encode_segment(&tampered), signature)),
        (
            "signed by another key",
            foreign_key.sign_raw(&encode_segment(&header), &encode_segment(&claims)).expect("sign"),
        ),
        ("alg none", format!("{}.{}.", encode_segment(&none_header), encode_segment(&claims))),
        ("HS256 keyed with the public key", hs256),
        ("unknown kid", key.sign_raw(&encode_segment(&unknown_kid), &encode_segment(&claims)).expect("sign")),
        ("stripped signature", format!("{}.{}.", encode_segment(&header), encode_segment(&claims))),
    ]
}

#[rstest]
#[actix_web::test]
async fn forged_tokens_are_refused_with_an_invalid_token_challenge(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::OK, "the original is valid");
    for (name, forged) in forgeries(&app, &token) {
        for path in ["/users/me", "/authors"] {
            let reply = app.get(path, &forged).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name} at {path}: {:?}", reply.body);
            assert_eq!(reply.error_code(), "invalid_token", "{name} at {path}");
            assert_eq!(
                reply.header("www-authenticate"),
                Some(r#"Bearer realm="library-api", error="invalid_token""#),
                "{name}"
            );
        }
    }
}

#[rstest]
#[actix_web::test]
async fn a_token_expires_after_its_ttl_and_the_leeway(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    app.clock.advance(chrono::Duration::minutes(30));
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::OK, "within the leeway");
    app.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::UNAUTHORIZED, "expired");
}

#[rstest]
#[actix_web::test]
async fn a_token_is_not_valid_before_its_nbf(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    app.clock.advance(chrono::Duration::seconds(-31));
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::UNAUTHORIZED);
}

#[rstest]
#[actix_web::test]
async fn logout_revokes_exactly_the_presented_token(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    let other_session = app.token_for("alice", PASSWORD).await;
    let logout = app.logout(&token).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    let after = app.get("/users/me", &token).await;
    assert_eq!((after.status, after.error_code()), (StatusCode::UNAUTHORIZED, "invalid_token"));
    assert_eq!(app.logout(&token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/users/me", &other_session).await.status,
        StatusCode::OK,
        "another login of the same user is untouched"
    );
}

#[rstest]
#[actix_web::test]
async fn a_revoked_token_stays_refused_through_the_leeway_and_is_pruned_after_it(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    let revocations = &app.services.revocations;

    // Past exp but inside the leeway, an unrevoked copy would still pass: the entry must stay.
    app.clock.advance(chrono::Duration::minutes(30) + chrono::Duration::seconds(15));
    assert_eq!(revocations.prune_now().await.expect("prune"), 1, "only the revoked session's refresh token");
    assert_eq!(revocations.deny_list().len(), 2, "the token and its session");
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::UNAUTHORIZED);

    app.clock.advance(chrono::Duration::seconds(20));
    assert_eq!(revocations.prune_now().await.expect("prune"), 1, "the stored row is pruned");
    assert!(revocations.deny_list().is_empty(), "and the in-memory entry");
    assert_eq!(app.get("/users/me", &token).await.status, StatusCode::UNAUTHORIZED, "expired anyway");
}
