//! Sessions: refresh tokens with reuse detection, logout, logout everywhere, admin changes,
//! revocation persistence and pruning, RFC 7009 revocation and RFC 7662 introspection.

use crate::helpers::{PASSWORD, Reply, TestApp, TestConfig, spawn_app, spawn_app_with};
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An access token and a refresh token from one login.
struct Session {
    access: String,
    refresh: String,
}

async fn login(app: &TestApp, name: &str) -> Session {
    let reply = app.login_json(name, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let refresh = reply.body["refresh_token"].as_str().expect("refresh_token").to_string();
    Session { access: reply.body["access_token"].as_str().expect("access_token").to_string(), refresh }
}

async fn register_and_login(app: &TestApp, name: &str) -> Session {
    assert_eq!(app.register(name, PASSWORD).await.status, StatusCode::CREATED);
    login(app, name).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post_json("/token/refresh", None, &json!({ "refresh_token": refresh_token })).await
}

async fn refreshed(app: &TestApp, refresh_token: &str) -> Session {
    let reply = refresh(app, refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    Session {
        access: reply.body["access_token"].as_str().expect("access_token").to_string(),
        refresh: reply.body["refresh_token"].as_str().expect("refresh_token").to_string(),
    }
}

/// Whether an access token is accepted. `GET /authors` checks the token alone (no lookup of
/// the user), so this sees exactly what the deny list decides.
async fn works(app: &TestApp, access: &str) -> bool {
    match app.get("/authors", access).await.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("unexpected {other}"),
    }
}

async fn refresh_works(app: &TestApp, refresh_token: &str) -> bool {
    let reply = refresh(app, refresh_token).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => {
            assert_eq!(reply.error_code(), "invalid_grant");
            false
        }
        other => panic!("unexpected {other}"),
    }
}

fn claim(token: &str, name: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("json");
    claims[name].clone()
}

async fn a_refresh_token_is_spent_for_a_new_pair_in_the_same_session() {
    let app = spawn_app().await;
    let first = register_and_login(&app, "alice").await;
    assert!(first.refresh.len() >= 43, "at least 256 bits");
    let reply = refresh(&app, &first.refresh).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["token_type"], "Bearer");
    let second = refreshed_from(&reply);
    assert_ne!(second.refresh, first.refresh);
    assert!(works(&app, &second.access).await);
    assert_eq!(claim(&second.access, "sid"), claim(&first.access, "sid"), "same session");
    assert!(works(&app, &first.access).await, "refreshing does not revoke the earlier access token");
    let third = refreshed(&app, &second.refresh).await;
    assert!(works(&app, &third.access).await);

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

fn refreshed_from(reply: &Reply) -> Session {
    Session {
        access: reply.body["access_token"].as_str().expect("access_token").to_string(),
        refresh: reply.body["refresh_token"].as_str().expect("refresh_token").to_string(),
    }
}

async fn presenting_a_spent_refresh_token_revokes_the_whole_session_and_nothing_else() {
    let app = spawn_app().await;
    let stolen = register_and_login(&app, "alice").await;
    let other_device = login(&app, "alice").await;
    let bob = register_and_login(&app, "bob").await;
    let rotated = refreshed(&app, &stolen.refresh).await;

    let replay = refresh(&app, &stolen.refresh).await;
    assert_eq!((replay.status, replay.error_code()), (StatusCode::UNAUTHORIZED, "invalid_grant"));
    assert!(!refresh_works(&app, &rotated.refresh).await, "the family's newest refresh token is revoked too");
    assert!(!works(&app, &rotated.access).await, "and the family's access tokens");
    assert!(!works(&app, &stolen.access).await);
    assert!(works(&app, &other_device.access).await, "another login of the same user is untouched");
    assert!(refresh_works(&app, &other_device.refresh).await);
    assert!(works(&app, &bob.access).await);
}

async fn an_expired_or_unknown_refresh_token_is_refused() {
    let app = spawn_app().await;
    let session = register_and_login(&app, "alice").await;
    for garbage in ["", "garbage", &"x".repeat(500), &session.access] {
        assert!(!refresh_works(&app, garbage).await, "{garbage:.20}");
    }
    let malformed = app
        .send(app.request(Method::POST, "/token/refresh").header("content-type", "application/json").body("{"))
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    app.clock.advance(Duration::days(14) + Duration::seconds(1));
    assert!(!refresh_works(&app, &session.refresh).await, "expired after REFRESH_TOKEN_TTL");
}

async fn a_deleted_users_refresh_and_access_tokens_stop_working() {
    let app = spawn_app().await;
    let alice = register_and_login(&app, "alice").await;
    let bob = register_and_login(&app, "bob").await;
    let author = app.create_author(&alice.access, "Ali Smith", "Autumn").await;
    let public_id = claim(&alice.access, "sub").as_str().expect("sub").to_string();
    let admin = app.admin_token().await;

    let deleted = app.send(app.request(Method::DELETE, &format!("/users/{public_id}")).bearer_auth(&admin)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(!works(&app, &alice.access).await);
    assert!(!refresh_works(&app, &alice.refresh).await);
    assert_eq!(app.login_basic("alice", PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    assert!(works(&app, &bob.access).await, "other users are untouched");
    let kept = app.get(&format!("/authors/{}", author.body["id"]), &bob.access).await;
    assert_eq!((kept.status, &kept.body["created_by"]), (StatusCode::OK, &serde_json::Value::Null), "authors stay");

    let again = app.send(app.request(Method::DELETE, &format!("/users/{public_id}")).bearer_auth(&admin)).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let not_uuid = app.send(app.request(Method::DELETE, "/users/not-a-uuid").bearer_auth(&admin)).await;
    assert_eq!(not_uuid.status, StatusCode::NOT_FOUND);
    let by_user = app.send(app.request(Method::DELETE, &format!("/users/{public_id}")).bearer_auth(&bob.access)).await;
    assert_eq!(by_user.status, StatusCode::FORBIDDEN);
}

async fn logout_ends_the_token_and_its_session_but_no_other() {
    let app = spawn_app().await;
    let laptop = register_and_login(&app, "alice").await;
    let laptop_later = refreshed(&app, &laptop.refresh).await;
    let phone = login(&app, "alice").await;
    let bob = register_and_login(&app, "bob").await;

    let logout = app.send(app.request(Method::POST, "/logout").bearer_auth(&laptop_later.access)).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(!works(&app, &laptop_later.access).await);
    assert!(!works(&app, &laptop.access).await, "the session's earlier access token too");
    assert!(!refresh_works(&app, &laptop_later.refresh).await, "and its refresh token");
    assert!(works(&app, &phone.access).await);
    assert!(refresh_works(&app, &phone.refresh).await);
    assert!(works(&app, &bob.access).await);
}

async fn logout_everywhere_ends_every_token_the_user_holds_and_only_theirs() {
    let app = spawn_app().await;
    let laptop = register_and_login(&app, "alice").await;
    let phone = login(&app, "alice").await;
    let bob = register_and_login(&app, "bob").await;

    let logout = app.send(app.request(Method::POST, "/logout?all=true").bearer_auth(&phone.access)).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    for session in [&laptop, &phone] {
        assert!(!works(&app, &session.access).await);
        assert!(!refresh_works(&app, &session.refresh).await);
    }
    assert!(works(&app, &bob.access).await);
    assert!(refresh_works(&app, &bob.refresh).await);

    // Logging in again at once (same second on the test clock) gives tokens that work.
    let fresh = login(&app, "alice").await;
    assert!(works(&app, &fresh.access).await);
    assert!(refresh_works(&app, &fresh.refresh).await);
    let bad_flag = app.send(app.request(Method::POST, "/logout?all=yes").bearer_auth(&fresh.access)).await;
    assert_eq!(bad_flag.status, StatusCode::BAD_REQUEST);
}

async fn a_demoted_admin_loses_the_admin_tokens_at_once() {
    let app = spawn_app().await;
    let root = app.admin_token().await;
    let carol = register_and_login(&app, "carol").await;
    let bob = register_and_login(&app, "bob").await;
    let carol_id = claim(&carol.access, "sub").as_str().expect("sub").to_string();
    let patch = |token: &str, admin: bool| {
        app.request(Method::PATCH, &format!("/users/{carol_id}")).bearer_auth(token).json(&json!({ "admin": admin }))
    };

    let promoted = app.send(patch(&root, true)).await;
    assert_eq!((promoted.status, promoted.body["admin"].as_bool()), (StatusCode::OK, Some(true)));
    assert!(!works(&app, &carol.access).await, "a change of role ends existing tokens");
    let carol_admin = login(&app, "carol").await;
    assert_eq!(claim(&carol_admin.access, "groups"), json!(["admin"]));
    assert_eq!(app.get("/users", &carol_admin.access).await.status, StatusCode::OK);

    let unchanged = app.send(patch(&root, true)).await;
    assert_eq!(unchanged.status, StatusCode::OK);
    assert!(works(&app, &carol_admin.access).await, "no change, no revocation");

    let demoted = app.send(patch(&root, false)).await;
    assert_eq!((demoted.status, demoted.body["admin"].as_bool()), (StatusCode::OK, Some(false)));
    assert!(!works(&app, &carol_admin.access).await, "the old admin token is dead");
    assert!(!refresh_works(&app, &carol_admin.refresh).await, "and cannot be refreshed into a new one");
    let carol_again = login(&app, "carol").await;
    assert_eq!(claim(&carol_again.access, "groups"), json!([]));
    assert_eq!(app.get("/users", &carol_again.access).await.status, StatusCode::FORBIDDEN);
    assert!(works(&app, &bob.access).await);
    assert!(works(&app, &root).await, "the admin who made the change keeps their token");

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

async fn revocations_survive_a_restart() {
    let app = spawn_app_with(TestConfig { issuer: Some("http://library.test".into()), ..TestConfig::default() }).await;
    let logged_out = register_and_login(&app, "alice").await;
    let everywhere = register_and_login(&app, "bob").await;
    let replayed = register_and_login(&app, "carol").await;
    let revoked_alone = register_and_login(&app, "dave").await;
    let deleted = register_and_login(&app, "erin").await;
    let demoted = register_and_login(&app, "frank").await;
    let untouched = register_and_login(&app, "grace").await;
    let admin = app.admin_token().await;
    let id_of = |session: &Session| claim(&session.access, "sub").as_str().expect("sub").to_string();

    let post = |path: &str, token: &str| app.request(Method::POST, path).bearer_auth(token);
    assert_eq!(app.send(post("/logout", &logged_out.access)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.send(post("/logout?all=true", &everywhere.access)).await.status, StatusCode::NO_CONTENT);
    let carol_later = refreshed(&app, &replayed.refresh).await;
    assert!(!refresh_works(&app, &replayed.refresh).await);
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
        assert!(!works(&app, token).await, "{name}: accepted after the restart");
    }
    assert!(refresh_works(&app, &revoked_alone.refresh).await, "revoking an access token left its session");
    assert!(works(&app, &untouched.access).await);
    assert!(refresh_works(&app, &untouched.refresh).await);
}

async fn pruning_drops_only_revocations_that_no_longer_matter() {
    let app = spawn_app().await;
    let early = register_and_login(&app, "alice").await;
    app.send(app.request(Method::POST, "/logout").bearer_auth(&early.access)).await;
    app.clock.advance(Duration::minutes(20));
    let late = register_and_login(&app, "bob").await;
    app.send(app.request(Method::POST, "/logout").bearer_auth(&late.access)).await;
    let revocations = &app.state.revocations;
    assert_eq!(revocations.deny_list().len(), 4, "two tokens and their two sessions");

    app.clock.advance(Duration::minutes(11)); // alice's token (and session) are past exp + leeway
    assert_eq!(revocations.prune_now().await.expect("prune"), 1, "alice's stored token revocation");
    assert_eq!(revocations.deny_list().len(), 2, "bob's entries remain");
    assert!(!works(&app, &late.access).await, "bob's revoked token is still refused");
}

async fn rfc7009_revocation_accepts_any_token_and_ends_what_it_names() {
    let app = spawn_app().await;
    let alice = register_and_login(&app, "alice").await;
    let form = |token: &str| app.request(Method::POST, "/revoke").form(&[("token", token)]);

    let revoked_access = app.send(form(&alice.access)).await;
    assert_eq!(revoked_access.status, StatusCode::OK);
    assert!(!works(&app, &alice.access).await);
    assert!(refresh_works(&app, &alice.refresh).await, "revoking an access token leaves its refresh token");

    let bob = register_and_login(&app, "bob").await;
    let hinted = app
        .send(
            app.request(Method::POST, "/revoke")
                .json(&json!({"token": bob.refresh, "token_type_hint": "refresh_token"})),
        )
        .await;
    assert_eq!(hinted.status, StatusCode::OK);
    assert!(!refresh_works(&app, &bob.refresh).await, "the refresh token is revoked");
    assert!(!works(&app, &bob.access).await, "and the access tokens of its session (RFC 7009 §2.1)");

    for garbage in ["garbage", "a.b.c", &alice.access] {
        assert_eq!(app.send(form(garbage)).await.status, StatusCode::OK, "unknown or invalid tokens: 200 (§2.2)");
    }
    let missing = app.send(app.request(Method::POST, "/revoke").form(&[("nothing", "here")])).await;
    assert_eq!((missing.status, missing.error_code()), (StatusCode::BAD_REQUEST, "invalid_body"));
    let text =
        app.send(app.request(Method::POST, "/revoke").header("content-type", "text/plain").body("token=x")).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn rfc7662_introspection_describes_active_tokens_and_nothing_else() {
    let app = spawn_app().await;
    let alice = register_and_login(&app, "alice").await;
    let caller = register_and_login(&app, "service").await;
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

    let spent = refreshed(&app, &alice.refresh).await;
    let expired_user = register_and_login(&app, "old").await;
    for (name, token) in
        [("garbage", "garbage".to_string()), ("empty", String::new()), ("spent refresh token", alice.refresh.clone())]
    {
        let reply = app.send(introspect(&token)).await;
        assert_eq!((reply.status, &reply.body), (StatusCode::OK, &json!({"active": false})), "{name}");
    }
    app.send(app.request(Method::POST, "/logout").bearer_auth(&spent.access)).await;
    assert_eq!(app.send(introspect(&spent.access)).await.body, json!({"active": false}), "revoked");
    app.clock.advance(Duration::minutes(31));
    let caller_again = login(&app, "service").await;
    let expired = app
        .send(
            app.request(Method::POST, "/introspect")
                .bearer_auth(&caller_again.access)
                .json(&json!({"token": expired_user.access})),
        )
        .await;
    assert_eq!(expired.body, json!({"active": false}), "expired");
}

crate::helpers::on_both_backends!(
    a_refresh_token_is_spent_for_a_new_pair_in_the_same_session,
    presenting_a_spent_refresh_token_revokes_the_whole_session_and_nothing_else,
    an_expired_or_unknown_refresh_token_is_refused,
    a_deleted_users_refresh_and_access_tokens_stop_working,
    logout_ends_the_token_and_its_session_but_no_other,
    logout_everywhere_ends_every_token_the_user_holds_and_only_theirs,
    a_demoted_admin_loses_the_admin_tokens_at_once,
    revocations_survive_a_restart,
    pruning_drops_only_revocations_that_no_longer_matter,
    rfc7009_revocation_accepts_any_token_and_ends_what_it_names,
    rfc7662_introspection_describes_active_tokens_and_nothing_else,
);
