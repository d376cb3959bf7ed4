//! Sessions: refresh tokens with reuse detection, logout, logout everywhere, admin changes,
//! revocation persistence and pruning, RFC 7009 revocation and RFC 7662 introspection.

use crate::helpers::{Backend, PASSWORD, Session, TestConfig, claim, spawn_app_on, spawn_app_with};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::json;

#[rstest]
#[actix_web::test]
async fn a_refresh_token_is_spent_for_a_new_pair_in_the_same_session(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let first = app.register_and_login("alice").await;
    assert!(first.refresh.len() >= 43, "at least 256 bits");
    let reply = app.refresh(&first.refresh).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["token_type"], "Bearer");
    let second = Session::from_reply(&reply);
    assert_ne!(second.refresh, first.refresh);
    assert!(app.access_works(&second.access).await);
    assert_eq!(claim(&second.access, "sid"), claim(&first.access, "sid"), "same session");
    assert!(app.access_works(&first.access).await, "refreshing does not revoke the earlier access token");
    let third = app.refreshed(&second.refresh).await;
    assert!(app.access_works(&third.access).await);

    let mut conn = app.db();
    use diesel::prelude::*;
    let stored: Vec<String> = library_api::schema::refresh_tokens::table
        .select(library_api::schema::refresh_tokens::token_hash)
        .load(&mut conn)
        .expect("rows");
    assert_eq!(stored.len(), 3);
    for token in [&first.refresh, &second.refresh, &third.refresh] {
        assert!(!stored.contains(token), "refresh tokens are stored only as hashes");
    }
}

#[rstest]
#[actix_web::test]
async fn presenting_a_spent_refresh_token_revokes_the_whole_session_and_nothing_else(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let stolen = app.register_and_login("alice").await;
    let other_device = app.login("alice", PASSWORD).await;
    let bob = app.register_and_login("bob").await;
    let rotated = app.refreshed(&stolen.refresh).await;

    let replay = app.refresh(&stolen.refresh).await;
    assert_eq!((replay.status, replay.error_code()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    assert!(!app.refresh_works(&rotated.refresh).await, "the session's newest refresh token is revoked too");
    assert!(!app.access_works(&rotated.access).await, "and the session's access tokens");
    assert!(!app.access_works(&stolen.access).await);
    assert!(app.access_works(&other_device.access).await, "another login of the same user is untouched");
    assert!(app.refresh_works(&other_device.refresh).await);
    assert!(app.access_works(&bob.access).await);
}

#[rstest]
#[actix_web::test]
async fn an_expired_or_unknown_refresh_token_is_refused(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let session = app.register_and_login("alice").await;
    for garbage in ["", "garbage", &"x".repeat(500), &session.access] {
        assert!(!app.refresh_works(garbage).await, "{garbage:.20}");
    }
    let malformed = app
        .send(app.request(Method::POST, "/token/refresh").header("content-type", "application/json").body("{"))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    app.clock.advance(Duration::days(14) + Duration::seconds(1));
    assert!(!app.refresh_works(&session.refresh).await, "expired after REFRESH_TOKEN_TTL");
}

#[rstest]
#[actix_web::test]
async fn a_deleted_users_refresh_and_access_tokens_stop_working(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    let bob = app.register_and_login("bob").await;
    let author = app.create_author(&alice.access, "Ali Smith", "Autumn").await;
    let public_id = claim(&alice.access, "sub").as_str().expect("sub").to_string();
    let admin = app.admin_token().await;

    let deleted = app.delete(&format!("/users/{public_id}"), &admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!app.access_works(&alice.access).await);
    assert!(!app.refresh_works(&alice.refresh).await);
    assert_eq!(app.login_basic("alice", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert!(app.access_works(&bob.access).await, "other users are untouched");
    let kept = app.get(&format!("/authors/{}", author.body["id"]), &bob.access).await;
    assert_eq!((kept.status, &kept.body["created_by"]), (StatusCode::OK, &serde_json::Value::Null), "authors stay");

    let again = app.delete(&format!("/users/{public_id}"), &admin).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let not_uuid = app.delete("/users/not-a-uuid", &admin).await;
    assert_eq!(not_uuid.status, StatusCode::NOT_FOUND);
    let by_user = app.delete(&format!("/users/{public_id}"), &bob.access).await;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN);
}

#[rstest]
#[actix_web::test]
async fn logout_ends_the_token_and_its_session_but_no_other(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let laptop = app.register_and_login("alice").await;
    let laptop_later = app.refreshed(&laptop.refresh).await;
    let phone = app.login("alice", PASSWORD).await;
    let bob = app.register_and_login("bob").await;

    let logout = app.logout(&laptop_later.access).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(!app.access_works(&laptop_later.access).await);
    assert!(!app.access_works(&laptop.access).await, "the session's earlier access token too");
    assert!(!app.refresh_works(&laptop_later.refresh).await, "and its refresh token");
    assert!(app.access_works(&phone.access).await);
    assert!(app.refresh_works(&phone.refresh).await);
    assert!(app.access_works(&bob.access).await);
}

#[rstest]
#[actix_web::test]
async fn logout_everywhere_ends_every_token_the_user_holds_and_only_theirs(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let laptop = app.register_and_login("alice").await;
    let phone = app.login("alice", PASSWORD).await;
    let bob = app.register_and_login("bob").await;

    let logout = app.logout_everywhere(&phone.access).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    for session in [&laptop, &phone] {
        assert!(!app.access_works(&session.access).await);
        assert!(!app.refresh_works(&session.refresh).await);
    }
    assert!(app.access_works(&bob.access).await);
    assert!(app.refresh_works(&bob.refresh).await);

    // Logging in again at once (same second on the test clock) gives tokens that work.
    let fresh = app.login("alice", PASSWORD).await;
    assert!(app.access_works(&fresh.access).await);
    assert!(app.refresh_works(&fresh.refresh).await);
    let bad_flag = app.send(app.request(Method::POST, "/logout?all=yes").bearer_auth(&fresh.access)).await;
    assert_eq!(bad_flag.status, StatusCode::BAD_REQUEST);
}

#[rstest]
#[actix_web::test]
async fn a_demoted_admin_loses_the_admin_tokens_at_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let root = app.admin_token().await;
    let carol = app.register_and_login("carol").await;
    let bob = app.register_and_login("bob").await;
    let carol_id = claim(&carol.access, "sub").as_str().expect("sub").to_string();
    let patch = |token: &str, admin: bool| {
        app.request(Method::PATCH, &format!("/users/{carol_id}")).bearer_auth(token).json(&json!({ "admin": admin }))
    };

    let promoted = app.send(patch(&root, true)).await;
    assert_eq!((promoted.status, promoted.body["admin"].as_bool()), (StatusCode::OK, Some(true)));
    assert!(!app.access_works(&carol.access).await, "a change of role ends existing tokens");
    let carol_admin = app.login("carol", PASSWORD).await;
    assert_eq!(claim(&carol_admin.access, "groups"), json!(["admin"]));
    assert_eq!(app.get("/users", &carol_admin.access).await.status, StatusCode::OK);

    let unchanged = app.send(patch(&root, true)).await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert!(app.access_works(&carol_admin.access).await, "no change, no revocation");

    let demoted = app.send(patch(&root, false)).await;
    assert_eq!((demoted.status, demoted.body["admin"].as_bool()), (StatusCode::OK, Some(false)));
    assert!(!app.access_works(&carol_admin.access).await, "the old admin token is dead");
    assert!(!app.refresh_works(&carol_admin.refresh).await, "and cannot be refreshed into a new one");
    let carol_again = app.login("carol", PASSWORD).await;
    assert_eq!(claim(&carol_again.access, "groups"), json!([]));
    assert_eq!(app.get("/users", &carol_again.access).await.status, StatusCode::FORBIDDEN);
    assert!(app.access_works(&bob.access).await);
    assert!(app.access_works(&root).await, "the admin who made the change keeps their token");

    assert_eq!(app.send(patch(&bob.access, true)).await.status, StatusCode::FORBIDDEN);
    let wrong_type = app
        .send(
            app.request(Method::PATCH, &format!("/users/{carol_id}"))
                .bearer_auth(&root)
                .json(&json!({ "admin": "yes" })),
        )
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
}

#[rstest]
#[actix_web::test]
async fn revocations_survive_a_restart(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(config) = TestConfig::on(backend) else { return };
    let app = spawn_app_with(TestConfig { issuer: Some("http://library.test".into()), ..config }).await;
    let logged_out = app.register_and_login("alice").await;
    let everywhere = app.register_and_login("bob").await;
    let replayed = app.register_and_login("carol").await;
    let revoked_alone = app.register_and_login("dave").await;
    let deleted = app.register_and_login("erin").await;
    let demoted = app.register_and_login("frank").await;
    let untouched = app.register_and_login("grace").await;
    let admin = app.admin_token().await;
    let id_of = |session: &Session| claim(&session.access, "sub").as_str().expect("sub").to_string();

    assert_eq!(app.logout(&logged_out.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.logout_everywhere(&everywhere.access).await.status, StatusCode::NO_CONTENT);
    let carol_later = app.refreshed(&replayed.refresh).await;
    assert!(!app.refresh_works(&replayed.refresh).await);
    let revoke = app.request(Method::POST, "/revoke").form(&[("token", revoked_alone.access.as_str())]);
    assert_eq!(app.send(revoke).await.status, StatusCode::OK);
    let delete = app.request(Method::DELETE, &format!("/users/{}", id_of(&deleted))).bearer_auth(&admin);
    assert_eq!(app.send(delete).await.status, StatusCode::NO_CONTENT);
    let promote = app.request(Method::PATCH, &format!("/users/{}", id_of(&demoted))).bearer_auth(&admin);
    assert_eq!(app.send(promote.json(&json!({"admin": true}))).await.status, StatusCode::OK);
    let config = app.stop().await;

    // Each kind of revocation is held by a different table: each must come back.
    let app = spawn_app_with(config).await;
    let refused = [
        ("logout (jti and session)", &logged_out.access),
        ("logout-all (subject cutoff)", &everywhere.access),
        ("reuse (session)", &carol_later.access),
        ("RFC 7009 on an access token (jti only)", &revoked_alone.access),
        ("deleted user (subject, forever)", &deleted.access),
        ("role change (subject cutoff)", &demoted.access),
    ];
    for (name, token) in refused {
        assert!(!app.access_works(token).await, "{name}: accepted after the restart");
    }
    assert!(app.refresh_works(&revoked_alone.refresh).await, "revoking an access token left its session");
    assert!(app.access_works(&untouched.access).await);
    assert!(app.refresh_works(&untouched.refresh).await);
}

#[rstest]
#[actix_web::test]
async fn pruning_drops_only_revocations_that_no_longer_matter(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let early = app.register_and_login("alice").await;
    app.logout(&early.access).await;
    app.clock.advance(Duration::minutes(20));
    let late = app.register_and_login("bob").await;
    app.logout(&late.access).await;
    let revocations = &app.services.revocations;
    assert_eq!(revocations.deny_list().len(), 4, "two tokens and their two sessions");

    app.clock.advance(Duration::minutes(11)); // alice's token (and session) are past exp + leeway
    assert_eq!(
        revocations.prune_now().await.expect("prune"),
        3,
        "alice's stored token revocation, and both revoked sessions' refresh tokens"
    );
    assert_eq!(revocations.deny_list().len(), 2, "bob's entries remain");
    assert!(!app.access_works(&late.access).await, "bob's revoked token is still refused");
}

#[rstest]
#[actix_web::test]
async fn rfc7009_revocation_accepts_any_token_and_ends_what_it_names(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    let form = |token: &str| app.request(Method::POST, "/revoke").form(&[("token", token)]);

    let revoked_access = app.send(form(&alice.access)).await;
    assert_eq!(revoked_access.status, StatusCode::OK);
    assert!(!app.access_works(&alice.access).await);
    assert!(app.refresh_works(&alice.refresh).await, "revoking an access token leaves its refresh token");

    let bob = app.register_and_login("bob").await;
    let hinted = app
        .send(
            app.request(Method::POST, "/revoke")
                .json(&json!({"token": bob.refresh, "token_type_hint": "refresh_token"})),
        )
        .await;
    assert_eq!(hinted.status, StatusCode::OK);
    assert!(!app.refresh_works(&bob.refresh).await, "the refresh token is revoked");
    assert!(!app.access_works(&bob.access).await, "and the access tokens of its session (RFC 7009 §2.1)");

    for garbage in ["garbage", "a.b.c", &alice.access] {
        assert_eq!(app.send(form(garbage)).await.status, StatusCode::OK, "unknown or invalid tokens: 200 (§2.2)");
    }
    let missing = app.send(app.request(Method::POST, "/revoke").form(&[("nothing", "here")])).await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::BAD_REQUEST, "invalid_body"));
    let text =
        app.send(app.request(Method::POST, "/revoke").header("content-type", "text/plain").body("token=x")).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[rstest]
#[actix_web::test]
async fn rfc7662_introspection_describes_active_tokens_and_nothing_else(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    let caller = app.register_and_login("service").await;
    let introspect =
        |token: &str| app.request(Method::POST, "/introspect").bearer_auth(&caller.access).form(&[("token", token)]);

    let unauthenticated =
        app.send(app.request(Method::POST, "/introspect").form(&[("token", alice.access.as_str())])).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);

    let access = app.send(introspect(&alice.access)).await;
    assert_eq!(access.status, StatusCode::OK);
    assert_eq!(access.header("cache-control"), Some("no-store"));
    assert_eq!((access.body["active"].as_bool(), access.body["token_type"].as_str()), (Some(true), Some("Bearer")));
    assert_eq!(access.body["sub"], claim(&alice.access, "sub"));
    assert_eq!(access.body["username"], "alice");
    assert_eq!(access.body["exp"], claim(&alice.access, "exp"));

    let refresh_meta = app.send(introspect(&alice.refresh)).await;
    assert_eq!(refresh_meta.body["active"].as_bool(), Some(true));
    assert_eq!(refresh_meta.body["sid"], claim(&alice.access, "sid"));
    assert_eq!(refresh_meta.body["sub"], claim(&alice.access, "sub"));

    let spent = app.refreshed(&alice.refresh).await;
    let expired_user = app.register_and_login("old").await;
    for (name, token) in
        [("garbage", "garbage".to_string()), ("empty", String::new()), ("spent refresh token", alice.refresh.clone())]
    {
        let reply = app.send(introspect(&token)).await;
        assert_eq!((reply.status, &reply.body), (StatusCode::OK, &json!({"active": false})), "{name}");
    }
    app.logout(&spent.access).await;
    assert_eq!(app.send(introspect(&spent.access)).await.body, json!({"active": false}), "revoked");
    app.clock.advance(Duration::minutes(31));
    let caller_again = app.login("service", PASSWORD).await;
    let expired = app
        .send(
            app.request(Method::POST, "/introspect")
                .bearer_auth(&caller_again.access)
                .json(&json!({"token": expired_user.access})),
        )
        .await;
    assert_eq!(expired.body, json!({"active": false}), "expired");
}
