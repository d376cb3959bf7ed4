//! Abuse hardening (issue "Identity and abuse hardening"): bcrypt cost upgrades, registration
//! floods, the last admin, strict query strings, what the throttle table and caches may keep.

use crate::helpers::{ADMIN_NAME, Backend, PASSWORD, TestConfig, spawn_app_on, spawn_app_with, try_spawn_app};
use diesel::prelude::*;
use library_api::db::users;
use library_api::schema::login_throttle;
use library_api::startup::StartupError;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::json;

fn cost_of(hash: &str) -> u32 {
    hash.split('$').nth(2).and_then(|cost| cost.parse().ok()).expect("a bcrypt hash")
}

#[rstest]
#[actix_web::test]
async fn a_login_rehashes_a_password_stored_at_a_lower_cost(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(config).await;
    assert_eq!(app.register("alice", PASSWORD).await.status, StatusCode::CREATED);
    let stored = |app: &crate::helpers::TestApp| {
        let alice = users::list(&mut app.db()).expect("users").into_iter().find(|user| user.name == "alice");
        alice.expect("alice").password_hash
    };
    assert_eq!(cost_of(&stored(&app)), 4);
    let config = app.stop().await;

    let app = spawn_app_with(TestConfig { bcrypt_cost: "5".into(), ..config }).await;
    assert_eq!(app.login_basic("alice", "wrong password!").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cost_of(&stored(&app)), 4, "a failed login changes nothing");
    app.login("alice", PASSWORD).await;
    let upgraded = stored(&app);
    assert_eq!(cost_of(&upgraded), 5, "the login that proved the password rehashed it");
    app.login("alice", PASSWORD).await;
    assert_eq!(stored(&app), upgraded, "once: the next login leaves it alone");
}

/// Logins racing to store a stronger hash of the same password all succeed: a rehash is not a
/// password change, so the one that stored its hash first refuses none of the others.
#[rstest]
#[actix_web::test]
async fn concurrent_logins_that_rehash_all_succeed(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(config).await;
    assert_eq!(app.register("alice", PASSWORD).await.status, StatusCode::CREATED);
    let config = app.stop().await;

    let app = spawn_app_with(TestConfig { bcrypt_cost: "5".into(), ..config }).await;
    let logins = futures_util::future::join_all((0..4).map(|_| app.login_basic("alice", PASSWORD))).await;
    let statuses: Vec<StatusCode> = logins.iter().map(|login| login.status).collect();
    assert!(statuses.iter().all(|status| *status == StatusCode::OK), "{statuses:?}");
}

#[rstest]
#[actix_web::test]
async fn registrations_are_limited_per_address_and_window(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(TestConfig { registrations_per_address: "3".into(), ..config }).await;
    for name in ["reg-one", "reg-two", "reg-three"] {
        assert_eq!(app.register(name, PASSWORD).await.status, StatusCode::CREATED, "{name}");
    }
    let refused = app.register("reg-four", PASSWORD).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    let retry_after: i64 = refused.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((3000..=3600).contains(&retry_after), "until the window ends: {retry_after}");
    let taken = app.register("reg-one", PASSWORD).await;
    assert_eq!(taken.status, StatusCode::TOO_MANY_REQUESTS, "every attempt counts, a taken name too");

    app.clock.advance(chrono::Duration::hours(1) + chrono::Duration::seconds(1));
    assert_eq!(app.register("reg-four", PASSWORD).await.status, StatusCode::CREATED, "a new window");
}

#[rstest]
#[actix_web::test]
async fn the_last_admin_can_be_neither_demoted_nor_deleted(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let me = app.get("/users/me", &admin).await.body["public_id"].as_str().expect("id").to_string();
    let demote = app.request(Method::PATCH, &format!("/users/{me}")).bearer_auth(&admin).json(&json!({"admin": false}));
    let delete = app.request(Method::DELETE, &format!("/users/{me}")).bearer_auth(&admin);
    for (case, request) in [("demote", demote), ("delete", delete)] {
        let reply = app.send(request).await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::CONFLICT, "last_admin"), "{case}");
    }
    assert!(app.get("/users/me", &admin).await.body["admin"].as_bool().expect("admin"), "still an admin");
}

#[rstest]
#[actix_web::test]
async fn two_admins_demoting_each_other_at_once_leave_one_admin(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let root = app.admin_token().await;
    for round in 0..5 {
        let name = format!("second-{round}");
        let second = app.register_and_login(&name).await;
        let second_id = app.get("/users/me", &second.access).await.body["public_id"].as_str().expect("id").to_string();
        let promote = app.request(Method::PATCH, &format!("/users/{second_id}")).bearer_auth(&root);
        assert_eq!(app.send(promote.json(&json!({"admin": true}))).await.status, StatusCode::OK);
        let second_admin = app.token_for(&name, PASSWORD).await;
        let root_id = app.get("/users/me", &root).await.body["public_id"].as_str().expect("id").to_string();

        let demote = |token: &str, target: &str| {
            app.send(
                app.request(Method::PATCH, &format!("/users/{target}"))
                    .bearer_auth(token)
                    .json(&json!({"admin": false})),
            )
        };
        let (first, other) = tokio::join!(demote(&root, &second_id), demote(&second_admin, &root_id));
        let statuses = [first.status, other.status];
        assert!(statuses.iter().all(|status| !status.is_server_error()), "round {round}: {statuses:?}");
        let admins = users::list(&mut app.db()).expect("users").into_iter().filter(|user| user.admin).count();
        assert_eq!(admins, 1, "round {round}: exactly one admin is left ({statuses:?})");
        assert!(
            statuses.contains(&StatusCode::CONFLICT) || statuses.contains(&StatusCode::UNAUTHORIZED),
            "{statuses:?}"
        );
        // Start the next round from root as the one admin.
        if !users::list(&mut app.db()).expect("users").into_iter().any(|user| user.admin && user.name == ADMIN_NAME) {
            return; // the second admin won; the invariant held, which is what this test is about
        }
    }
}

#[actix_web::test]
async fn admin_name_of_an_existing_non_admin_stops_the_start() {
    let config = TestConfig::sqlite();
    let app = spawn_app_with(config).await;
    assert_eq!(app.register("squatter", PASSWORD).await.status, StatusCode::CREATED);
    let config = app.stop().await;
    match try_spawn_app(TestConfig { admin_name: "squatter".into(), ..config }).await {
        Err(StartupError::AdminNameTaken(name)) => assert_eq!(name, "squatter"),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started with ADMIN_NAME naming a non-admin"),
    }
}

#[rstest]
#[actix_web::test]
async fn query_strings_hold_only_known_parameters(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    let cases = [
        (Method::GET, "/authors?limit=5&x=1", StatusCode::BAD_REQUEST),
        (Method::GET, "/authors?LIMIT=5", StatusCode::BAD_REQUEST),
        (Method::GET, "/authors?limit=5&_=1700000000", StatusCode::OK),
        (Method::POST, "/logout?ALL=true", StatusCode::BAD_REQUEST),
        (Method::GET, "/verify?x=1&group=", StatusCode::FORBIDDEN),
        (Method::GET, "/verify?x=1", StatusCode::OK),
    ];
    for (method, path, status) in cases {
        let reply = app.send(app.request(method.clone(), path).bearer_auth(&token)).await;
        assert_eq!(reply.status, status, "{method} {path}: {:?}", reply.body);
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(reply.error_code(), "invalid_query", "{method} {path}");
        }
    }
    assert!(app.access_works(&token).await, "the mistyped ?ALL=true ended nothing");
}

#[rstest]
#[actix_web::test]
async fn the_throttle_table_never_holds_a_typed_name(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let typed = "my-secret-passw0rd";
    assert_eq!(app.login_basic(typed, "whatever it is").await.status, StatusCode::UNAUTHORIZED);
    let keys: Vec<String> = login_throttle::table.select(login_throttle::key).load(&mut app.db()).expect("keys");
    assert!(keys.iter().any(|key| key.starts_with("user:")), "the attempt was counted: {keys:?}");
    assert!(keys.iter().all(|key| !key.contains(typed)), "{keys:?}");
}

#[rstest]
#[actix_web::test]
async fn personal_answers_are_never_cached_and_authors_are_revalidated(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let (token, admin) = (app.user_token("alice").await, app.admin_token().await);
    let introspect = app.request(Method::POST, "/introspect").bearer_auth(&token).form(&[("token", token.as_str())]);
    let cases = [
        ("/users/me", app.request(Method::GET, "/users/me").bearer_auth(&token), "no-store"),
        ("/users", app.request(Method::GET, "/users").bearer_auth(&admin), "no-store"),
        ("/introspect", introspect, "no-store"),
        ("/authors", app.request(Method::GET, "/authors").bearer_auth(&token), "private, no-cache"),
    ];
    for (path, request, expected) in cases {
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.headers["cache-control"].to_str().expect("ascii"), expected, "{path}");
    }
}
