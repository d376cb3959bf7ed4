//! The key ring's lifecycle over HTTP, driven by the app's manual clock: no test sleeps through
//! a rotation interval.

use crate::helpers::{Backend, PASSWORD, Reply, TestApp, TestConfig, kid_of, spawn_app_with};
use chrono::Duration;
use library_api::clock::Clock as _;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// One hour between rotations: the JWKS max-age ceiling is then 15 min, and a next key must be
/// published 30 min before it may sign. `None` when `backend` cannot be reached (the test skips).
fn hourly(backend: Backend) -> Option<TestConfig> {
    Some(TestConfig { key_rotation_interval: "1h".into(), ..TestConfig::on(backend)? })
}

fn max_age(reply: &Reply) -> i64 {
    let cache_control = reply.header("cache-control").expect("cache-control");
    cache_control.strip_prefix("public, max-age=").and_then(|age| age.parse().ok()).expect("public, max-age=N")
}

/// `(kid, state)` of every key, from `GET /admin/keys` (with a fresh admin token: the clock moves).
async fn keys_by_state(app: &TestApp) -> Vec<(String, String)> {
    let reply = app.get("/admin/keys", &app.admin_token().await).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| (key["kid"].as_str().expect("kid").to_string(), key["state"].as_str().expect("state").to_string()))
        .collect()
}

fn kid_in(keys: &[(String, String)], state: &str) -> String {
    keys.iter()
        .find(|(_, s)| s == state)
        .map(|(kid, _)| kid.clone())
        .unwrap_or_else(|| panic!("no {state} key in {keys:?}"))
}

#[rstest]
#[actix_web::test]
async fn the_ring_rotates_on_schedule_publishing_ahead_and_removing_after_the_token_lifetime(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = hourly(backend) else { return };
    let app = spawn_app_with(config).await;
    let keys = keys_by_state(&app).await;
    let (k1, k2) = (kid_in(&keys, "current"), kid_in(&keys, "next"));
    assert_eq!(app.published_kids().await, [k1.clone(), k2.clone()], "the next key is published before it signs");
    let first = app.jwks().await;
    assert_eq!(max_age(&first), 15 * 60, "the ceiling for an hourly rotation");
    let first_etag = first.header("etag").expect("etag").to_string();
    assert_eq!(kid_of(&app.user_token("alice").await), k1);

    // Shortly before the rotation, caches must expire before the next key signs.
    app.advance(Duration::minutes(50)).await;
    assert_eq!(max_age(&app.jwks().await), 10 * 60 - 30);
    app.advance(Duration::minutes(9) + Duration::seconds(45)).await;
    assert_eq!(max_age(&app.jwks().await), 0);
    let signed_by_k1 = app.token_for("alice", PASSWORD).await;
    assert_eq!(app.jwks().await.header("etag"), Some(&*first_etag), "no change to the key set, no new ETag");

    app.advance(Duration::seconds(15)).await; // the rotation is due
    let keys = keys_by_state(&app).await;
    assert_eq!((kid_in(&keys, "current"), kid_in(&keys, "retired")), (k2.clone(), k1.clone()));
    let k3 = kid_in(&keys, "next");
    assert_eq!(app.published_kids().await, [k1.clone(), k2.clone(), k3.clone()]);
    assert_eq!(kid_of(&app.token_for("alice", PASSWORD).await), k2, "the former next key signs now");
    let rotated = app.jwks().await;
    let rotated_etag = rotated.header("etag").expect("etag").to_string();
    assert_ne!(rotated_etag, first_etag, "a new key set, a new ETag");
    let stale = app.send(app.request(Method::GET, "/.well-known/jwks.json").header("if-none-match", &first_etag)).await;
    assert_eq!(stale.status, StatusCode::OK);
    let fresh =
        app.send(app.request(Method::GET, "/.well-known/jwks.json").header("if-none-match", &rotated_etag)).await;
    assert_eq!(fresh.status, StatusCode::NOT_MODIFIED);

    // A retired key verifies its tokens until they have all expired, then leaves the ring.
    app.advance(Duration::minutes(29)).await;
    assert_eq!(app.get("/users/me", &signed_by_k1).await.status, StatusCode::OK, "signed by the retired key");
    assert!(app.published_kids().await.contains(&k1));
    app.advance(Duration::minutes(1) + Duration::seconds(30)).await;
    assert!(app.published_kids().await.contains(&k1), "kept for the propagation slack too");
    app.advance(Duration::minutes(1)).await;
    assert_eq!(app.published_kids().await, [k2.clone(), k3.clone()], "removed after TTL + leeway + slack");
    assert_eq!(app.get("/users/me", &signed_by_k1).await.status, StatusCode::UNAUTHORIZED);
    assert!(!keys_by_state(&app).await.iter().any(|(kid, _)| *kid == k1));

    // And so on, rotation after rotation.
    let mut signer = k2;
    for _ in 0..3 {
        app.advance(Duration::hours(1)).await;
        let keys = keys_by_state(&app).await;
        let current = kid_in(&keys, "current");
        assert_ne!(current, signer);
        assert_eq!(keys.iter().filter(|(_, state)| state == "next").count(), 1);
        signer = current;
    }
}

#[rstest]
#[actix_web::test]
async fn verifiers_that_cache_the_jwks_for_max_age_never_meet_an_unknown_kid(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = hourly(backend) else { return };
    let app = spawn_app_with(config).await;
    let admin_token = || app.admin_token();
    // Three verifiers that fetched at different moments; each keeps its copy for exactly max-age.
    let mut verifiers: Vec<(chrono::DateTime<chrono::Utc>, HashSet<String>)> = Vec::new();
    app.register("alice", PASSWORD).await;
    let mut signers = HashSet::new();
    for step in 0..150 {
        app.advance(Duration::minutes(4)).await;
        {
            // A forced rotation whenever the ring allows one; refusals are expected in between.
            let reply = app.post("/admin/keys/rotate", &admin_token().await).await;
            assert!(matches!(reply.status, StatusCode::OK | StatusCode::CONFLICT), "{:?}", reply.body);
        }
        if step < 3 {
            verifiers.push((app.clock.now() - Duration::seconds(1), HashSet::new()));
        }
        let now = app.clock.now();
        for (expires, cached) in &mut verifiers {
            if now >= *expires {
                let jwks = app.jwks().await;
                *expires = now + Duration::seconds(max_age(&jwks));
                *cached = jwks.body["keys"]
                    .as_array()
                    .expect("keys")
                    .iter()
                    .map(|k| k["kid"].as_str().expect("kid").to_string())
                    .collect();
            }
        }
        let kid = kid_of(&app.token_for("alice", PASSWORD).await);
        for (index, (_, cached)) in verifiers.iter().enumerate() {
            assert!(cached.contains(&kid), "step {step}: verifier {index} lacks {kid}: {cached:?}");
        }
        signers.insert(kid);
    }
    assert!(signers.len() >= 8, "many rotations happened: {}", signers.len());
}

#[rstest]
#[actix_web::test]
async fn admins_rotate_and_delete_keys_and_a_deleted_keys_tokens_die_at_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = hourly(backend) else { return };
    let app = spawn_app_with(config).await;
    let user = app.user_token("alice").await;
    for (method, path) in
        [(Method::GET, "/admin/keys"), (Method::POST, "/admin/keys/rotate"), (Method::DELETE, "/admin/keys/x")]
    {
        let reply = app.send(app.request(method, path).bearer_auth(&user)).await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::FORBIDDEN, "forbidden"), "{path}");
    }
    let admin = app.admin_token().await;
    let keys = keys_by_state(&app).await;
    let (k1, k2) = (kid_in(&keys, "current"), kid_in(&keys, "next"));

    let too_soon = app.post("/admin/keys/rotate", &admin).await;
    assert_eq!((too_soon.status, too_soon.error_code()), (StatusCode::CONFLICT, "rotation_too_soon"));
    let retry_after: i64 = too_soon.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=30 * 60).contains(&retry_after), "{retry_after}");

    app.advance(Duration::minutes(30)).await;
    let rotated = app.post("/admin/keys/rotate", &admin).await;
    assert_eq!((rotated.status, rotated.body["kid"].as_str()), (StatusCode::OK, Some(&*k2)));
    assert_eq!(kid_of(&app.token_for("alice", PASSWORD).await), k2);
    assert_eq!(app.get("/users/me", &user).await.status, StatusCode::OK, "k1 is retired, its tokens still verify");

    // k2 is compromised: delete it. Its tokens die at once, and the next key takes over.
    let signed_by_k2 = app.token_for("alice", PASSWORD).await;
    let deleted = app.delete(&format!("/admin/keys/{k2}"), &admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/users/me", &signed_by_k2).await.status, StatusCode::UNAUTHORIZED);
    assert!(!app.published_kids().await.contains(&k2));
    let new_token = app.token_for("alice", PASSWORD).await;
    assert_ne!(kid_of(&new_token), k2);
    assert_eq!(app.get("/users/me", &new_token).await.status, StatusCode::OK);
    let keys = keys_by_state(&app).await;
    assert_eq!(keys.iter().filter(|(_, state)| state == "next").count(), 1, "a new next key was made");

    // Deleting the retired k1 ends its tokens too.
    let deleted = app.delete(&format!("/admin/keys/{k1}"), &app.admin_token().await).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/users/me", &user).await.status, StatusCode::UNAUTHORIZED);
    let unknown = app.delete("/admin/keys/nope", &app.admin_token().await).await;
    assert_eq!((unknown.status, unknown.error_code()), (StatusCode::NOT_FOUND, "not_found"));
}

#[rstest]
#[actix_web::test]
async fn forced_rotations_under_load_never_fail_a_request(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    // Rotations every 2 minutes are allowed with a 4-minute interval (max-age ceiling 1 min).
    let app = Arc::new(spawn_app_with(TestConfig { key_rotation_interval: "4m".into(), ..config }).await);
    for i in 0..4 {
        app.register(&format!("client{i}"), PASSWORD).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let succeeded = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let (app, stop, succeeded) = (app.clone(), stop.clone(), succeeded.clone());
            actix_web::rt::spawn(async move {
                let mut token = app.token_for(&format!("client{i}"), PASSWORD).await;
                for round in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if round % 5 == 0 {
                        token = app.token_for(&format!("client{i}"), PASSWORD).await;
                    }
                    let reply = app.get("/authors", &token).await;
                    assert_eq!(reply.status, StatusCode::OK, "client {i} round {round}: {:?}", reply.body);
                    succeeded.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let admin = app.admin_token().await;
    let mut signers = HashSet::new();
    for _ in 0..5 {
        app.advance(Duration::minutes(2)).await;
        let reply = app.post("/admin/keys/rotate", &admin).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        signers.insert(reply.body["kid"].as_str().expect("kid").to_string());
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("a client failed a request");
    }
    assert_eq!(signers.len(), 5);
    assert!(succeeded.load(Ordering::Relaxed) > 20, "the load ran");
}

#[rstest]
#[actix_web::test]
async fn a_rotation_that_fell_due_while_the_service_was_down_happens_at_start(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = hourly(backend) else { return };
    let app = spawn_app_with(TestConfig { issuer: Some("http://library.test".into()), ..config }).await;
    let next = kid_in(&keys_by_state(&app).await, "next");
    let config = app.stop().await;

    let restarted = spawn_app_with(TestConfig { clock_offset: Duration::hours(3), ..config }).await;
    let keys = keys_by_state(&restarted).await;
    assert_eq!(kid_in(&keys, "current"), next, "rotated at start");
    assert_eq!(keys.iter().filter(|(_, state)| state == "next").count(), 1);
}

#[rstest]
#[actix_web::test]
async fn discovery_points_at_the_jwks_and_the_endpoints(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(TestConfig { issuer: Some("https://auth.example.test".into()), ..config }).await;
    for path in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
        let reply = app.send(app.request(Method::GET, path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let doc = &reply.body;
        assert_eq!(doc["issuer"], "https://auth.example.test", "{path}");
        assert_eq!(doc["jwks_uri"], "https://auth.example.test/.well-known/jwks.json", "{path}");
        assert_eq!(doc["token_endpoint"], "https://auth.example.test/oauth/token", "{path}");
        assert_eq!(doc["revocation_endpoint"], "https://auth.example.test/revoke", "{path}");
        assert_eq!(doc["introspection_endpoint"], "https://auth.example.test/introspect", "{path}");
        assert_eq!(doc["response_types_supported"], serde_json::json!([]), "no authorization endpoint: {path}");
        assert!(doc.get("id_token_signing_alg_values_supported").is_none(), "no ID tokens: {path}");
    }
}
