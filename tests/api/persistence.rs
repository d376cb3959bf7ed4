//! What must survive a restart, and what must never be stored or returned in the clear.

use crate::helpers::{
    Backend, PASSWORD, TestConfig, random_master_key, spawn_app, spawn_app_on, spawn_app_with, try_spawn_app,
};
use library_api::startup::StartupError;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[actix_web::test]
async fn a_token_issued_before_a_restart_still_works_after_it(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    // A fixed issuer: the default one names the bound port, which port 0 changes on restart.
    let app = spawn_app_with(TestConfig { issuer: Some("http://library.test".into()), ..config }).await;
    let token = app.user_token("alice").await;
    let kid_before = app.current_signing_key().kid().to_string();
    let revoked = app.token_for("alice", PASSWORD).await;
    assert_eq!(app.logout(&revoked).await.status, StatusCode::NO_CONTENT);
    let config = app.stop().await;

    let restarted = spawn_app_with(config).await;
    assert_eq!(restarted.get("/users/me", &token).await.status, StatusCode::OK);
    assert_eq!(restarted.current_signing_key().kid(), kid_before, "the same key, not a new ring");
    assert_eq!(restarted.get("/users/me", &revoked).await.status, StatusCode::UNAUTHORIZED, "revocations survive too");
}

#[actix_web::test]
async fn the_private_key_is_never_stored_in_plaintext() {
    let app = spawn_app().await;
    app.user_token("alice").await;
    let der = app.private_key_der(app.current_signing_key().kid());

    let mut stored = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", app.config.database_path().display());
        stored.extend(std::fs::read(&path).unwrap_or_default());
    }
    assert!(stored.len() > 4096, "the database files were read");
    // Any 32-byte run of the DER (which holds the private exponent and primes) would betray it.
    for window in der.chunks(32).filter(|chunk| chunk.len() == 32) {
        assert!(
            !stored.windows(32).any(|candidate| candidate == window),
            "plaintext private key material found in the database files"
        );
    }
}

#[rstest]
#[actix_web::test]
async fn a_wrong_master_key_stops_the_start_instead_of_making_a_new_ring(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let config = app.stop().await;
    let wrong = TestConfig { master_key: random_master_key(), ..config };
    match try_spawn_app(wrong).await {
        Err(error @ StartupError::KeyRing(_)) => assert!(error.to_string().contains("master key"), "{error}"),
        Err(other) => panic!("unexpected error: {other}"),
        Ok(_) => panic!("started with a wrong master key"),
    }
}

#[rstest]
#[actix_web::test]
async fn users_are_listed_for_admins_without_password_hashes_and_stored_as_bcrypt(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.user_token("alice").await;
    let admin = app.admin_token().await;
    let reply = app.get("/users", &admin).await;
    assert_eq!(reply.status, StatusCode::OK);
    let users = reply.body["users"].as_array().expect("users");
    let names: Vec<_> = users.iter().map(|user| user["name"].as_str().unwrap_or_default()).collect();
    assert_eq!(names, ["root-admin", "alice"]);
    for user in users {
        let mut fields: Vec<_> = user.as_object().expect("object").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["admin", "created_at", "name", "public_id"]);
    }
    assert!(!reply.body.to_string().contains("$2"), "no bcrypt hash anywhere in the response");

    let mut conn = app.db();
    for user in library_api::db::users::list(&mut conn).expect("users") {
        assert!(user.password_hash.starts_with("$2b$04$"), "bcrypt with the configured cost: {}", user.name);
        assert!(!user.password_hash.contains(PASSWORD));
    }
}

/// A deleted client's tokens are refused by a subject cutoff keyed by the `client_id` (not a
/// UUID): it must come back after a restart, as user cutoffs do.
#[rstest]
#[actix_web::test]
async fn a_deleted_clients_service_token_stays_refused_after_a_restart(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(config).await;
    let admin = app.admin_token().await;
    let created = app
        .send(
            app.request(Method::POST, "/admin/clients")
                .bearer_auth(&admin)
                .json(&json!({"name": "reports", "confidential": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let (id, secret) =
        (created.body["client_id"].as_str().expect("id"), created.body["client_secret"].as_str().expect("secret"));
    let granted = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    let token = granted.body["access_token"].as_str().expect("access_token").to_string();
    assert_eq!(app.get("/authors", &token).await.status, StatusCode::OK, "a service token reads authors");

    let deleted = app.send(app.request(Method::DELETE, &format!("/admin/clients/{id}")).bearer_auth(&admin)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/authors", &token).await.status, StatusCode::UNAUTHORIZED, "refused at once");
    let config = app.stop().await;

    let app = spawn_app_with(config).await;
    assert_eq!(app.get("/authors", &token).await.status, StatusCode::UNAUTHORIZED, "and after a restart");
}
