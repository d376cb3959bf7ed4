//! Account self-service (issue 15, part 1): changing one's password (other sessions end, the
//! calling one stays; a wrong current password is a failed login, throttled like one), listing
//! one's sessions and ending one, and the administrators' view of a user's sessions.

use crate::helpers::{ADMIN_NAME, ADMIN_PASSWORD, Backend, PASSWORD, Reply, Session, TestApp, claim, spawn_app_on};
use chrono::Duration;
use library_api::clock::Clock as _;
use reqwest::{Method, RequestBuilder, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn change_request(app: &TestApp, token: &str) -> RequestBuilder {
    app.request(Method::PUT, "/users/me/password").bearer_auth(token)
}

async fn change_password(app: &TestApp, token: &str, current: &str, new: &str) -> Reply {
    app.send(change_request(app, token).json(&json!({"current_password": current, "new_password": new}))).await
}

/// The sid of an access token.
fn sid(access: &str) -> String {
    claim(access, "sid").as_str().expect("sid").to_string()
}

fn public_id(access: &str) -> String {
    claim(access, "sub").as_str().expect("sub").to_string()
}

/// `GET path` (a session list), which must succeed: its sessions.
async fn listed(app: &TestApp, path: &str, token: &str) -> Vec<Value> {
    let reply = app.get(path, token).await;
    assert_eq!(reply.status, StatusCode::OK, "GET {path}: {:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.body["sessions"].as_array().expect("sessions").clone()
}

fn sids(sessions: &[Value]) -> Vec<&str> {
    sessions.iter().map(|session| session["sid"].as_str().expect("sid")).collect()
}

/// A service token of a confidential client (client credentials).
async fn service_token(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    let client = app.post_json("/admin/clients", Some(&admin), &json!({"name": "reports", "confidential": true})).await;
    assert_eq!(client.status, StatusCode::CREATED, "{:?}", client.body);
    let (id, secret) = (client.body["client_id"].as_str().expect("id"), client.body["client_secret"].as_str());
    let reply = app
        .send(
            app.request(Method::POST, "/oauth/token")
                .basic_auth(id, secret)
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["access_token"].as_str().expect("access_token").to_string()
}

/// Whether `/users/me` takes this access token (a revoked session's tokens get 401).
async fn me_works(app: &TestApp, access: &str) -> bool {
    match app.get("/users/me", access).await.status {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("unexpected {other}"),
    }
}

#[rstest]
#[actix_web::test]
async fn a_password_change_ends_every_other_session_but_not_the_calling_one(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let laptop = app.register_and_login("alice").await;
    let phone = app.login("alice", PASSWORD).await;
    let tablet = app.login("alice", PASSWORD).await;
    let tablet_later = app.refreshed(&tablet.refresh).await;
    let bob = app.register_and_login("bob").await;

    let changed = change_password(&app, &laptop.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{:?}", changed.body);

    for (name, other) in [("phone", &phone), ("tablet", &tablet_later)] {
        assert!(!me_works(&app, &other.access).await, "{name}: its access token is refused at once");
        assert!(!app.refresh_works(&other.refresh).await, "{name}: its refresh token is dead (invalid_grant)");
    }
    assert!(!me_works(&app, &tablet.access).await, "an earlier access token of an ended session too");
    assert!(me_works(&app, &laptop.access).await, "the calling session stays");
    let laptop_later = app.refreshed(&laptop.refresh).await;
    assert!(me_works(&app, &laptop_later.access).await, "and can still be refreshed");
    assert!(me_works(&app, &bob.access).await, "other users are untouched");
    assert!(app.refresh_works(&bob.refresh).await);

    let old = app.login_basic("alice", PASSWORD).await;
    assert_eq!((old.status, old.error_code()), (StatusCode::UNAUTHORIZED, "invalid_credentials"), "the old password");
    app.login("alice", NEW_PASSWORD).await;
    let listed = listed(&app, "/users/me/sessions", &laptop_later.access).await;
    assert_eq!(listed.len(), 2, "the calling session and the new login: {listed:?}");
}

#[rstest]
#[actix_web::test]
async fn bad_password_changes_get_their_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    let other_device = app.login("alice", PASSWORD).await;
    let service = service_token(&app).await;
    let put = || change_request(&app, &alice.access);
    let body = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let raw = |text: &'static str| put().header("content-type", "application/json").body(text);
    let (bad, unauthorized, unprocessable) =
        (StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED, StatusCode::UNPROCESSABLE_ENTITY);
    let cases: Vec<(&str, RequestBuilder, StatusCode, &str)> = vec![
        ("malformed JSON", raw(r#"{"current_password": "#), bad, "invalid_json"),
        ("not an object", raw(r#"["a", "b"]"#), bad, "invalid_json"),
        (
            "duplicated key",
            raw(r#"{"current_password":"correct horse battery","new_password":"x1234567","new_password":"y1234567"}"#),
            bad,
            "invalid_json",
        ),
        ("missing new_password", put().json(&json!({"current_password": PASSWORD})), bad, "invalid_body"),
        ("missing current_password", put().json(&json!({"new_password": NEW_PASSWORD})), bad, "invalid_body"),
        (
            "wrong types",
            put().json(&json!({"current_password": PASSWORD, "new_password": 12345678})),
            bad,
            "invalid_body",
        ),
        ("not JSON", put().body("current_password=x"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("new password too short", put().json(&body(PASSWORD, "short")), unprocessable, "invalid_password"),
        ("new password over 72 bytes", put().json(&body(PASSWORD, &"p".repeat(73))), unprocessable, "invalid_password"),
        (
            "current password over 72 bytes",
            put().json(&body(&"p".repeat(73), NEW_PASSWORD)),
            unprocessable,
            "invalid_password",
        ),
        (
            "wrong current password",
            put().json(&body("not my password", NEW_PASSWORD)),
            unauthorized,
            "invalid_credentials",
        ),
        (
            "no token",
            app.request(Method::PUT, "/users/me/password").json(&body(PASSWORD, NEW_PASSWORD)),
            unauthorized,
            "missing_token",
        ),
        (
            "a service token",
            app.request(Method::PUT, "/users/me/password").bearer_auth(&service).json(&body(PASSWORD, NEW_PASSWORD)),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (name, request, status, code) in cases {
        let before = app.stored_rows();
        let reply = app.send(request).await;
        assert_eq!((reply.status, reply.error_code()), (status, code), "{name}: {:?}", reply.body);
        assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: message missing");
        assert_eq!(app.stored_rows(), before, "{name}: stored data changed");
        if code == "invalid_credentials" {
            assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"library-api\""), "{name}");
        }
    }
    assert!(me_works(&app, &other_device.access).await, "no failed change ends a session");
    app.login("alice", PASSWORD).await;
}

#[rstest]
#[actix_web::test]
async fn wrong_current_passwords_are_throttled_like_failed_logins(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    for attempt in 1..=5 {
        let reply = change_password(&app, &alice.access, "wrong password", NEW_PASSWORD).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let throttled = change_password(&app, &alice.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!((throttled.status, throttled.error_code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"));
    let wait: i64 = throttled.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    let login = app.login_basic("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS, "the same counter as /login");

    app.clock.advance(Duration::seconds(wait));
    let changed = change_password(&app, &alice.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "after the wait: {:?}", changed.body);
    app.login("alice", NEW_PASSWORD).await;

    // Failed logins count against a password change too.
    for _ in 0..5 {
        assert_eq!(app.login_basic("alice", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    let after_logins = change_password(&app, &alice.access, NEW_PASSWORD, PASSWORD).await;
    assert_eq!(after_logins.status, StatusCode::TOO_MANY_REQUESTS);
}

#[rstest]
#[actix_web::test]
async fn sessions_are_listed_newest_first_with_their_user_agent_and_the_current_one_marked(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    let long_agent = format!("Mozilla/5.0 {}", "é".repeat(400));
    let login_with_agent = |agent: String| {
        app.send(app.request(Method::POST, "/login").basic_auth("alice", Some(PASSWORD)).header("user-agent", agent))
    };
    let laptop = Session::from_reply(&login_with_agent(long_agent.clone()).await);
    app.clock.advance(Duration::seconds(2));
    let phone = Session::from_reply(&login_with_agent("LibraryPhone/1.0".into()).await);
    app.clock.advance(Duration::seconds(2));
    let form =
        [("grant_type", "password"), ("client_id", "library-app"), ("username", "alice"), ("password", PASSWORD)];
    let grant = app.send(app.request(Method::POST, "/oauth/token").header("user-agent", "cli/2").form(&form)).await;
    let cli = Session::from_reply(&grant);
    app.clock.advance(Duration::seconds(2));
    let ended = app.login("alice", PASSWORD).await;
    app.logout(&ended.access).await;

    let sessions = listed(&app, "/users/me/sessions", &phone.access).await;
    assert_eq!(sids(&sessions), [sid(&cli.access), sid(&phone.access), sid(&laptop.access)], "newest first");
    let current: Vec<bool> = sessions.iter().map(|session| session["current"].as_bool().expect("bool")).collect();
    assert_eq!(current, [false, true, false]);
    let agents: Vec<&Value> = sessions.iter().map(|session| &session["user_agent"]).collect();
    let cut: String = long_agent.chars().take(256).collect();
    assert_eq!(agents, [&json!("cli/2"), &json!("LibraryPhone/1.0"), &json!(cut)], "as sent, cut to 256 characters");
    for session in &sessions {
        assert_eq!(session["client_id"], "library-app");
        assert_eq!(session["last_refreshed_at"], Value::Null, "never refreshed yet");
        assert!(session["created_at"].as_str().is_some());
        let keys: Vec<&String> = session.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 6, "nothing more (no address): {keys:?}");
    }

    app.clock.advance(Duration::seconds(5));
    let refreshed_at = app.clock.now();
    let phone_later = app.refreshed(&phone.refresh).await;
    let sessions = listed(&app, "/users/me/sessions", &phone_later.access).await;
    let phone_row = sessions.iter().find(|session| session["sid"] == sid(&phone.access)).expect("listed");
    let stamp = phone_row["last_refreshed_at"].as_str().expect("set by the refresh");
    let stamp = chrono::DateTime::parse_from_rfc3339(stamp).expect("RFC 3339");
    assert!((stamp.timestamp() - refreshed_at.timestamp()).abs() <= 1, "{stamp} vs {refreshed_at}");
    assert_eq!(phone_row["current"], true, "a refreshed token keeps its session");

    app.clock.advance(Duration::days(14) + Duration::seconds(1));
    let fresh = app.login("alice", PASSWORD).await;
    let sessions = listed(&app, "/users/me/sessions", &fresh.access).await;
    assert_eq!(sids(&sessions), [sid(&fresh.access)], "expired sessions are not listed");
    assert_eq!(sessions[0]["user_agent"], Value::Null, "no User-Agent sent");

    let service = service_token(&app).await;
    let refused = app.get("/users/me/sessions", &service).await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::FORBIDDEN, "forbidden"));
}

#[rstest]
#[actix_web::test]
async fn a_user_ends_one_of_their_own_sessions_and_nobody_elses(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let laptop = app.register_and_login("alice").await;
    let phone = app.login("alice", PASSWORD).await;
    let bob = app.register_and_login("bob").await;

    let ended = app.delete(&format!("/users/me/sessions/{}", sid(&phone.access)), &laptop.access).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{:?}", ended.body);
    assert!(!me_works(&app, &phone.access).await, "its access tokens are refused at once");
    assert!(!app.refresh_works(&phone.refresh).await, "its refresh token is dead");
    assert!(me_works(&app, &laptop.access).await);
    assert_eq!(sids(&listed(&app, "/users/me/sessions", &laptop.access).await), [sid(&laptop.access)]);

    let unknown = uuid::Uuid::new_v4().to_string();
    for (name, target) in [
        ("already ended", sid(&phone.access)),
        ("someone else's", sid(&bob.access)),
        ("unknown", unknown),
        ("malformed", "not-a-session".to_string()),
    ] {
        let reply = app.delete(&format!("/users/me/sessions/{target}"), &laptop.access).await;
        assert_eq!((reply.status, reply.error_code()), (StatusCode::NOT_FOUND, "not_found"), "{name}");
    }
    assert!(me_works(&app, &bob.access).await, "bob's session is untouched");
    assert!(app.refresh_works(&bob.refresh).await);

    let own = app.delete(&format!("/users/me/sessions/{}", sid(&laptop.access)), &laptop.access).await;
    assert_eq!(own.status, StatusCode::NO_CONTENT, "ending the calling session is a logout");
    assert!(!me_works(&app, &laptop.access).await);
}

#[rstest]
#[actix_web::test]
async fn admins_list_and_end_a_users_sessions_and_nobody_else_may(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let laptop = app.register_and_login("alice").await;
    app.clock.advance(Duration::seconds(1));
    let phone = app.login("alice", PASSWORD).await;
    let bob = app.register_and_login("bob").await;
    let admin = app.login(ADMIN_NAME, ADMIN_PASSWORD).await;
    let alice_path = format!("/users/{}/sessions", public_id(&laptop.access));

    let sessions = listed(&app, &alice_path, &admin.access).await;
    assert_eq!(sids(&sessions), [sid(&phone.access), sid(&laptop.access)]);
    assert!(sessions.iter().all(|session| session["current"] == false), "not the admin's session");
    let own = listed(&app, &format!("/users/{}/sessions", public_id(&admin.access)), &admin.access).await;
    assert_eq!(own.len(), 1);
    assert_eq!((own[0]["sid"].as_str(), &own[0]["current"]), (Some(sid(&admin.access).as_str()), &json!(true)));

    let service = service_token(&app).await;
    let unknown = format!("/users/{}/sessions", uuid::Uuid::new_v4());
    for method in [Method::GET, Method::DELETE] {
        for (name, path, token, status) in [
            ("a user", &alice_path, &bob.access, StatusCode::FORBIDDEN),
            ("the user themselves", &alice_path, &laptop.access, StatusCode::FORBIDDEN),
            ("a service token", &alice_path, &service, StatusCode::FORBIDDEN),
            ("an unknown user", &unknown, &admin.access, StatusCode::NOT_FOUND),
            ("a malformed id", &"/users/not-a-uuid/sessions".to_string(), &admin.access, StatusCode::NOT_FOUND),
        ] {
            let reply = app.send(app.request(method.clone(), path).bearer_auth(token)).await;
            assert_eq!(reply.status, status, "{method} by {name}: {:?}", reply.body);
        }
    }
    assert!(me_works(&app, &laptop.access).await, "nothing refused ended anything");

    let ended = app.delete(&alice_path, &admin.access).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT, "{:?}", ended.body);
    for (name, session) in [("laptop", &laptop), ("phone", &phone)] {
        assert!(!me_works(&app, &session.access).await, "{name}");
        assert!(!app.refresh_works(&session.refresh).await, "{name}");
    }
    assert!(listed(&app, &alice_path, &admin.access).await.is_empty());
    assert!(me_works(&app, &bob.access).await, "other users are untouched");
    assert!(me_works(&app, &admin.access).await);
    app.clock.advance(Duration::seconds(1));
    let again = app.login("alice", PASSWORD).await;
    assert!(me_works(&app, &again.access).await, "a later login works");
}

#[rstest]
#[actix_web::test]
async fn a_login_checked_against_a_password_changed_since_starts_no_session(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    use library_api::db::{sessions, users};
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.register_and_login("alice").await;
    let mut conn = app.db();
    let stale = users::find_by_public_id(&mut conn, &public_id(&alice.access)).expect("read").expect("alice");
    let changed = change_password(&app, &alice.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);

    // What a login that checked the old password just before the change would now try.
    let now = chrono::Utc::now().naive_utc();
    let session = sessions::NewSession {
        id: &uuid::Uuid::new_v4().to_string(),
        user_id: stale.id,
        client_id: "library-app",
        scope: "",
        user_agent: None,
        password_version: stale.password_version,
    };
    let started = sessions::start_session(&mut conn, &session, "refresh-hash", now, now + Duration::days(1));
    assert!(started.expect("no error").is_none(), "no session on the old password");
    assert_eq!(listed(&app, "/users/me/sessions", &alice.access).await.len(), 1, "only the calling one");

    let current = users::find_by_public_id(&mut conn, &public_id(&alice.access)).expect("read").expect("alice");
    let session = sessions::NewSession { password_version: current.password_version, ..session };
    let started = sessions::start_session(&mut conn, &session, "refresh-hash", now, now + Duration::days(1));
    assert!(started.expect("no error").is_some(), "the same login checked against the new password");
}
