//! Every error status this API returns for bad client input, table-driven, one table per
//! endpoint. Each case checks the status, the `error` code of the JSON envelope, and that nothing
//! stored changed; a failure names its case.

use crate::helpers::{Backend, PASSWORD, TestApp, spawn_app_on};
use reqwest::{Method, RequestBuilder, StatusCode};
use rstest::rstest;
use serde_json::json;

/// A service with alice, bob and two of alice's authors: what the cases refer to.
struct Seeded {
    app: TestApp,
    alice: String,
    bob: String,
    /// Alice's "The Remains of the Day" by Kazuo Ishiguro.
    author_path: String,
}

/// `None` when the backend cannot be reached here (the test skips).
async fn seeded(backend: Backend) -> Option<Seeded> {
    let app = spawn_app_on(backend).await?;
    let alice = app.user_token("alice").await;
    let bob = app.user_token("bob").await;
    let author = app.create_author(&alice, "Kazuo Ishiguro", "The Remains of the Day").await;
    app.create_author(&alice, "Hilary Mantel", "Wolf Hall").await;
    let author_path = format!("/authors/{}", author.body["id"]);
    Some(Seeded { app, alice, bob, author_path })
}

/// A named bad request, with the status and `error` code it must get.
type Case = (&'static str, RequestBuilder, StatusCode, &'static str);

/// Sends each case in turn: the documented status and code, a message, a JSON body, and no change
/// to anything stored.
async fn each_gets_its_error_and_changes_nothing(app: &TestApp, cases: Vec<Case>) {
    for (name, request, status, code) in cases {
        let before = app.stored_rows();
        let reply = app.send(request).await;
        assert_eq!(reply.status, status, "{name}: {:?}", reply.body);
        assert_eq!(reply.error_code(), code, "{name}: {:?}", reply.body);
        assert!(reply.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}: message missing");
        assert_eq!(reply.header("content-type"), Some("application/json"), "{name}");
        assert_eq!(app.stored_rows(), before, "{name}: stored data changed");
    }
}

#[rstest]
#[actix_web::test]
async fn bad_register_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, .. }) = seeded(backend).await else { return };
    let oversized = json!({"name": "x".repeat(70 * 1024), "password": PASSWORD});
    let post = |path: &str| app.request(Method::POST, path);
    let json_post = |path: &str, body: &'static str| post(path).header("content-type", "application/json").body(body);
    let cases = vec![
        ("malformed JSON", json_post("/register", r#"{"name": "carol", "#), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "JSON that is not an object",
            json_post("/register", r#"["carol", "password1"]"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "duplicated key",
            json_post("/register", r#"{"name":"carol","name":"dave","password":"password1"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "invalid UTF-8",
            post("/register")
                .header("content-type", "application/json")
                .body(b"{\"name\":\"\xff\xfe\",\"password\":\"password1\"}".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "wrong types",
            post("/register").json(&json!({"name": 42, "password": PASSWORD})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        ("missing field", post("/register").json(&json!({"name": "carol"})), StatusCode::BAD_REQUEST, "invalid_body"),
        (
            "too-long name",
            post("/register").json(&json!({"name": "n".repeat(51), "password": PASSWORD})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "too-short name",
            post("/register").json(&json!({"name": "ab", "password": PASSWORD})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
        ),
        (
            "short password",
            post("/register").json(&json!({"name": "carol", "password": "short"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password",
        ),
        (
            "password over 72 bytes",
            post("/register").json(&json!({"name": "carol", "password": "p".repeat(73)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password",
        ),
        (
            "duplicate name",
            post("/register").json(&json!({"name": "alice", "password": PASSWORD})),
            StatusCode::CONFLICT,
            "name_taken",
        ),
        (
            "duplicate name in another case",
            post("/register").json(&json!({"name": "ALICE", "password": PASSWORD})),
            StatusCode::CONFLICT,
            "name_taken",
        ),
        (
            "wrong content type",
            post("/register").header("content-type", "text/plain").body(r#"{"name":"carol","password":"password1"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "no content type",
            post("/register").body(r#"{"name":"carol","password":"password1"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("oversized body", post("/register").json(&oversized), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_login_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, .. }) = seeded(backend).await else { return };
    let post = |path: &str| app.request(Method::POST, path);
    let json_post = |path: &str, body: &'static str| post(path).header("content-type", "application/json").body(body);
    let cases = vec![
        (
            "wrong password",
            post("/login").basic_auth("alice", Some("wrong password")),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "unknown user",
            post("/login").basic_auth("nobody", Some(PASSWORD)),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        ("no credentials", post("/login"), StatusCode::UNAUTHORIZED, "invalid_credentials"),
        (
            "malformed Basic header",
            post("/login").header("authorization", "Basic !!!"),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            "login password over 72 bytes",
            post("/login").json(&json!({"name": "alice", "password": "p".repeat(73)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_password",
        ),
        ("login with malformed JSON", json_post("/login", "{"), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "NUL in a login name",
            post("/login").json(&json!({"name": "ali\u{0}ce", "password": PASSWORD})),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_authors_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, alice, bob, author_path }) = seeded(backend).await else { return };
    let full_author = json!({"name": "Someone", "book": "Something", "country": "UK"});
    let post = |path: &str| app.request(Method::POST, path);
    let cases = vec![
        ("no token", post("/authors").json(&full_author), StatusCode::UNAUTHORIZED, "missing_token"),
        (
            "garbage token",
            post("/authors").bearer_auth("garbage").json(&full_author),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "garbage x-access-tokens",
            post("/authors").header("x-access-tokens", "a.b.c").json(&full_author),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            "duplicate author name",
            post("/authors")
                .bearer_auth(&bob)
                .json(&json!({"name": "Kazuo Ishiguro", "book": "Other", "country": "UK"})),
            StatusCode::CONFLICT,
            "author_taken",
        ),
        (
            "duplicate book",
            post("/authors").bearer_auth(&bob).json(&json!({"name": "Other", "book": "Wolf Hall", "country": "UK"})),
            StatusCode::CONFLICT,
            "book_taken",
        ),
        (
            "blank author name",
            post("/authors").bearer_auth(&bob).json(&json!({"name": "   ", "book": "B", "country": "UK"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_author",
        ),
        (
            "too-long country",
            post("/authors").bearer_auth(&bob).json(&json!({"name": "N", "book": "B", "country": "c".repeat(61)})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_author",
        ),
        (
            "booker_prize not a bool",
            post("/authors")
                .bearer_auth(&bob)
                .json(&json!({"name": "N", "book": "B", "country": "UK", "booker_prize": "yes"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "unknown author id",
            app.request(Method::GET, "/authors/99999").bearer_auth(&bob),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "non-numeric author id",
            app.request(Method::GET, "/authors/abc").bearer_auth(&bob),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "update of unknown id",
            app.request(Method::PUT, "/authors/99999").bearer_auth(&alice).json(&full_author),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "delete of unknown id",
            app.request(Method::DELETE, "/authors/99999").bearer_auth(&alice),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "update by non-creator",
            app.request(Method::PUT, &author_path).bearer_auth(&bob).json(&full_author),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "delete by non-creator",
            app.request(Method::DELETE, &author_path).bearer_auth(&bob),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "update to a taken book",
            app.request(Method::PUT, &author_path)
                .bearer_auth(&alice)
                .json(&json!({"name": "Kazuo Ishiguro", "book": "Wolf Hall", "country": "UK"})),
            StatusCode::CONFLICT,
            "book_taken",
        ),
        (
            "page size 0",
            app.request(Method::GET, "/authors?limit=0").bearer_auth(&bob),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_page",
        ),
        (
            "page size 101",
            app.request(Method::GET, "/authors?limit=101").bearer_auth(&bob),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_page",
        ),
        (
            "negative offset",
            app.request(Method::GET, "/authors?offset=-1").bearer_auth(&bob),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_page",
        ),
        (
            "page size not a number",
            app.request(Method::GET, "/authors?limit=ten").bearer_auth(&bob),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_refresh_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, .. }) = seeded(backend).await else { return };
    let post = |path: &str| app.request(Method::POST, path);
    let json_post = |path: &str, body: &'static str| post(path).header("content-type", "application/json").body(body);
    let cases = vec![
        ("refresh with malformed JSON", json_post("/token/refresh", "{"), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            "refresh token of the wrong type",
            post("/token/refresh").json(&json!({"refresh_token": 7})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "refresh as plain text",
            post("/token/refresh").header("content-type", "text/plain").body("x"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "unknown refresh token",
            post("/token/refresh").json(&json!({"refresh_token": "nope"})),
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_revoke_and_introspect_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, .. }) = seeded(backend).await else { return };
    let post = |path: &str| app.request(Method::POST, path);
    let cases = vec![
        (
            "revoke without a token",
            post("/revoke").json(&json!({"token_type_hint": "access_token"})),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "introspect without credentials",
            post("/introspect").json(&json!({"token": "x"})),
            StatusCode::UNAUTHORIZED,
            "missing_token",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_logout_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, bob, .. }) = seeded(backend).await else { return };
    let post = |path: &str| app.request(Method::POST, path);
    let cases = vec![(
        "logout with a bad flag",
        post("/logout?all=maybe").bearer_auth(&bob),
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_users_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, bob, .. }) = seeded(backend).await else { return };
    let cases = vec![
        (
            "non-admin lists users",
            app.request(Method::GET, "/users").bearer_auth(&bob),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "role change by a non-admin",
            app.request(Method::PATCH, "/users/00000000-0000-0000-0000-000000000000")
                .bearer_auth(&bob)
                .json(&json!({"admin": true})),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "user deletion by a non-admin",
            app.request(Method::DELETE, "/users/00000000-0000-0000-0000-000000000000").bearer_auth(&bob),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn bad_keys_requests_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, bob, .. }) = seeded(backend).await else { return };
    let post = |path: &str| app.request(Method::POST, path);
    let cases = vec![
        (
            "key listing by a non-admin",
            app.request(Method::GET, "/admin/keys").bearer_auth(&bob),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        ("rotation by a non-admin", post("/admin/keys/rotate").bearer_auth(&bob), StatusCode::FORBIDDEN, "forbidden"),
        (
            "key deletion by a non-admin",
            app.request(Method::DELETE, "/admin/keys/x").bearer_auth(&bob),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn unknown_routes_and_wrong_methods_get_the_documented_status_and_code_and_change_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(Seeded { app, .. }) = seeded(backend).await else { return };
    let cases = vec![
        ("unknown route", app.request(Method::GET, "/nowhere"), StatusCode::NOT_FOUND, "not_found"),
        (
            "wrong method",
            app.request(Method::DELETE, "/register"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    each_gets_its_error_and_changes_nothing(&app, cases).await;
}

#[rstest]
#[actix_web::test]
async fn failed_logins_challenge_for_basic_and_look_the_same_for_unknown_users(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.user_token("alice").await;
    let wrong_password = app.login_basic("alice", "wrong password").await;
    let unknown_user = app.login_basic("nobody", "wrong password").await;
    for reply in [&wrong_password, &unknown_user] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.header("www-authenticate"), Some(r#"Basic realm="library-api""#));
    }
    assert_eq!(wrong_password.body, unknown_user.body);
}

#[rstest]
#[actix_web::test]
async fn requests_without_a_token_get_a_bearer_challenge_without_an_error_code(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let reply = app.send(app.request(Method::GET, "/users/me")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some(r#"Bearer realm="library-api""#));
}
