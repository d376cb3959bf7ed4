//! OAuth 2.0 (issue 12): the three grants of `POST /oauth/token` and its RFC 6749 §5.2 errors,
//! the error envelope, client authentication (basic, post, none), login throttling on the
//! password grant, the admin clients API and the `client` commands, scopes, service tokens on
//! user endpoints, `/verify`, introspection and revocation by clients, the metadata documents and
//! the metrics. Each failure names its case.

use crate::helpers::{
    ADMIN_NAME, ADMIN_PASSWORD, Backend, PASSWORD, Reply, Session, TestApp, TestConfig, claim, jwt_segments, sample,
    spawn_app, spawn_app_on, spawn_app_with,
};
use chrono::Duration;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, RequestBuilder, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The built-in public client (`PUBLIC_CLIENT_ID`'s default) that `/login` issues tokens for.
const BUILT_IN: &str = "library-app";

/// A registered client as the tests hold it: its id and, when confidential, its secret.
#[derive(Debug, Clone)]
struct Client {
    id: String,
    secret: Option<String>,
}

impl Client {
    fn secret(&self) -> &str {
        self.secret.as_deref().expect("a confidential client has a secret")
    }

    /// The same client presenting another secret.
    fn with_secret(&self, secret: &str) -> Self {
        Self { id: self.id.clone(), secret: Some(secret.to_string()) }
    }

    /// `client_secret_basic`: HTTP Basic with both parts form-urlencoded (RFC 6749 §2.3.1).
    fn basic(&self, request: RequestBuilder) -> RequestBuilder {
        request.basic_auth(form_encoded(&self.id), Some(form_encoded(self.secret())))
    }

    /// `client_secret_post`: `fields` plus `client_id` and `client_secret`.
    fn post_fields<'a>(&'a self, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut form = fields.to_vec();
        form.extend([("client_id", self.id.as_str()), ("client_secret", self.secret())]);
        form
    }
}

/// One value encoded as `application/x-www-form-urlencoded` does it.
fn form_encoded(value: &str) -> String {
    let pair = serde_urlencoded::to_string([("v", value)]).expect("encodes");
    pair["v=".len()..].to_string()
}

/// A space-separated scope string (a JSON string) as a set; `None` when it is not a string.
fn scopes(value: &Value) -> Option<BTreeSet<String>> {
    value.as_str().map(|scope| scope.split_whitespace().map(str::to_string).collect())
}

fn scope_set(scope: &str) -> Option<BTreeSet<String>> {
    scopes(&json!(scope))
}

/// `POST /oauth/token` with a form body.
fn token_request(app: &TestApp, form: &[(&str, &str)]) -> RequestBuilder {
    app.request(Method::POST, "/oauth/token").form(form)
}

/// The password grant for a public client authenticating with `none`.
async fn password_grant(app: &TestApp, client_id: &str, username: &str, password: &str) -> Reply {
    let form = [("grant_type", "password"), ("client_id", client_id), ("username", username), ("password", password)];
    app.send(token_request(app, &form)).await
}

/// A successful password grant's tokens.
async fn password_session(app: &TestApp, client_id: &str, username: &str) -> Session {
    let reply = password_grant(app, client_id, username, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "password grant of {username} for {client_id}: {:?}", reply.body);
    Session::from_reply(&reply)
}

/// The refresh-token grant for a public client authenticating with `none`.
async fn refresh_grant(app: &TestApp, client_id: &str, refresh_token: &str) -> Reply {
    let form = [("grant_type", "refresh_token"), ("client_id", client_id), ("refresh_token", refresh_token)];
    app.send(token_request(app, &form)).await
}

/// The client-credentials grant, the client authenticating with Basic.
async fn client_credentials(app: &TestApp, client: &Client, scope: Option<&str>) -> Reply {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(scope.map(|scope| ("scope", scope)));
    app.send(client.basic(token_request(app, &form))).await
}

/// A service token (client credentials), which must be issued.
async fn service_token(app: &TestApp, client: &Client) -> String {
    let reply = client_credentials(app, client, None).await;
    assert_eq!(reply.status, StatusCode::OK, "client credentials of {}: {:?}", client.id, reply.body);
    reply.body["access_token"].as_str().expect("access_token").to_string()
}

async fn register_client(app: &TestApp, admin: &str, body: &Value) -> Reply {
    app.post_json("/admin/clients", Some(admin), body).await
}

/// Registers a client, which must succeed.
async fn new_client(app: &TestApp, admin: &str, name: &str, confidential: bool, scope: &str) -> Client {
    let reply = register_client(app, admin, &json!({"name": name, "confidential": confidential, "scope": scope})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "register client {name}: {:?}", reply.body);
    Client {
        id: reply.body["client_id"].as_str().expect("client_id").to_string(),
        secret: reply.body["client_secret"].as_str().map(str::to_string),
    }
}

/// A confidential client (client credentials only) with `scope`.
async fn confidential_client(app: &TestApp, admin: &str, name: &str, scope: &str) -> Client {
    new_client(app, admin, name, true, scope).await
}

/// A public client (password and refresh token) with `scope`.
async fn public_client(app: &TestApp, admin: &str, name: &str, scope: &str) -> Client {
    new_client(app, admin, name, false, scope).await
}

async fn set_disabled(app: &TestApp, admin: &str, client: &Client, disabled: bool) -> Reply {
    let request = app.request(Method::PATCH, &format!("/admin/clients/{}", client.id)).bearer_auth(admin);
    app.send(request.json(&json!({ "disabled": disabled }))).await
}

/// `GET /admin/clients`, which must succeed: the listed clients.
async fn listed_clients(app: &TestApp, admin: &str) -> Vec<Value> {
    let reply = app.get("/admin/clients", admin).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["clients"].as_array().expect("clients").clone()
}

fn listed<'a>(clients: &'a [Value], client_id: &str) -> Option<&'a Value> {
    clients.iter().find(|client| client["client_id"] == client_id)
}

/// `POST /introspect` of `token`, the client authenticating with Basic.
async fn introspect_as(app: &TestApp, client: &Client, token: &str) -> Reply {
    app.send(client.basic(app.request(Method::POST, "/introspect").form(&[("token", token)]))).await
}

/// Whether `token` is active, asked by a client holding `introspect`.
async fn active(app: &TestApp, introspector: &Client, token: &str) -> bool {
    let reply = introspect_as(app, introspector, token).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["active"].as_bool().expect("active")
}

/// An error answer as the contract has it: the status, the `error` code, a non-empty
/// `error_description` repeated as `message`, a JSON body; a 401 `invalid_client` of the token
/// endpoint challenges for Basic.
fn assert_error(reply: &Reply, status: StatusCode, code: &str, case: &str) {
    assert_eq!(reply.status, status, "{case}: {:?}", reply.body);
    assert_eq!(reply.error_code(), code, "{case}: {:?}", reply.body);
    let description = reply.body["error_description"].as_str();
    assert!(description.is_some_and(|text| !text.is_empty()), "{case}: error_description missing: {:?}", reply.body);
    assert_eq!(reply.body["message"].as_str(), description, "{case}: message repeats error_description");
    assert!(reply.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{case}: not JSON");
}

/// The Basic challenge a 401 `invalid_client` carries (RFC 6749 §5.2).
fn assert_basic_challenge(reply: &Reply, case: &str) {
    assert_eq!(reply.header("www-authenticate"), Some(r#"Basic realm="library-api""#), "{case}");
}

/// A successful token answer: 200, never cached (RFC 6749 §5.1), a Bearer token.
fn assert_token_response(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{case}: {:?}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{case}");
    assert_eq!(reply.header("pragma"), Some("no-cache"), "{case}");
    assert_eq!(reply.body["token_type"], "Bearer", "{case}");
    assert_eq!(reply.body["expires_in"], 1800, "{case}: ACCESS_TOKEN_TTL");
    assert!(reply.body["access_token"].is_string(), "{case}: {:?}", reply.body);
    assert!(reply.body["scope"].is_string(), "{case}: scope is always answered: {:?}", reply.body);
}

// Grants

#[rstest]
#[actix_web::test]
async fn the_password_grant_of_the_built_in_client_issues_user_tokens_that_name_the_client(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;

    let reply = password_grant(&app, BUILT_IN, "alice", PASSWORD).await;
    assert_token_response(&reply, "password grant");
    assert_eq!(reply.body["scope"], "", "the built-in client holds no scope");
    let session = Session::from_reply(&reply);
    let me = app.get("/users/me", &session.access).await;
    assert_eq!(me.status, StatusCode::OK, "a user token works on user endpoints");

    let (header, claims) = jwt_segments(&session.access);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("at+jwt")));
    for name in ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "sid"] {
        assert!(!claims[name].is_null(), "claim {name} missing: {claims}");
    }
    assert_eq!(claims["sub"], me.body["public_id"]);
    assert_eq!(claims["client_id"], BUILT_IN);
    assert_eq!(claims["scope"], "");
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["groups"], json!([]));

    let admin = password_grant(&app, BUILT_IN, ADMIN_NAME, ADMIN_PASSWORD).await;
    assert_token_response(&admin, "the admin's password grant");
    assert_eq!(claim(admin.body["access_token"].as_str().expect("token"), "groups"), json!(["admin"]));

    let login = app.login("alice", PASSWORD).await;
    assert_eq!(claim(&login.access, "client_id"), BUILT_IN, "/login issues tokens for the built-in client");
    assert_eq!(claim(&login.access, "scope"), "");
}

#[rstest]
#[actix_web::test]
async fn the_refresh_token_grant_rotates_and_a_replayed_token_ends_the_session(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    let first = password_session(&app, BUILT_IN, "alice").await;
    let other_login = app.login("alice", PASSWORD).await;

    let reply = refresh_grant(&app, BUILT_IN, &first.refresh).await;
    assert_token_response(&reply, "refresh grant");
    assert_eq!(reply.body["scope"], "");
    let second = Session::from_reply(&reply);
    assert_ne!(second.refresh, first.refresh, "rotated");
    assert_eq!(claim(&second.access, "sid"), claim(&first.access, "sid"), "same session");
    assert_eq!(claim(&second.access, "client_id"), BUILT_IN);
    assert!(app.access_works(&second.access).await);
    // The built-in client's refresh tokens are one family whichever endpoint spends them.
    let third = app.refreshed(&second.refresh).await;

    let replay = refresh_grant(&app, BUILT_IN, &second.refresh).await;
    assert_error(&replay, StatusCode::BAD_REQUEST, "invalid_grant", "replayed refresh token");
    let newest = refresh_grant(&app, BUILT_IN, &third.refresh).await;
    assert_error(
        &newest,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "the session's newest refresh token after a replay",
    );
    for (name, access) in [("first", &first.access), ("second", &second.access), ("third", &third.access)] {
        assert!(!app.access_works(access).await, "the session's {name} access token ends with it");
    }

    assert!(app.access_works(&other_login.access).await, "another login of the same user is untouched");
    let login_refresh = refresh_grant(&app, BUILT_IN, &other_login.refresh).await;
    assert_token_response(&login_refresh, "a /login refresh token spent through the refresh grant");
}

#[rstest]
#[actix_web::test]
async fn the_client_credentials_grant_issues_a_service_token_without_a_refresh_token(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let reports = confidential_client(&app, &admin, "reports", "introspect reports").await;

    let reply = client_credentials(&app, &reports, None).await;
    assert_token_response(&reply, "client credentials");
    assert!(reply.body.get("refresh_token").is_none(), "no refresh token: {:?}", reply.body);
    assert_eq!(scopes(&reply.body["scope"]), scope_set("introspect reports"), "omitted scope: all the client's");

    let token = reply.body["access_token"].as_str().expect("access_token");
    let (header, claims) = jwt_segments(token);
    assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some("RS256"), Some("at+jwt")));
    for name in ["iss", "aud", "iat", "nbf", "exp", "jti"] {
        assert!(!claims[name].is_null(), "claim {name} missing: {claims}");
    }
    assert_eq!(claims["sub"], json!(reports.id), "the subject is the client");
    assert_eq!(claims["client_id"], json!(reports.id));
    assert_eq!(scopes(&claims["scope"]), scope_set("introspect reports"));
    assert_eq!(claims["groups"], json!([]));
    for absent in ["sid", "name"] {
        assert!(claims.get(absent).is_none(), "a service token has no {absent}: {claims}");
    }
    assert!(app.access_works(token).await);
}

// Errors of the token endpoint

#[rstest]
#[actix_web::test]
async fn bad_token_requests_get_their_rfc_6749_error(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let reports = confidential_client(&app, &admin, "reports", "reports").await;
    let mobile = public_client(&app, &admin, "mobile", "").await;
    let kiosk = json!({"name": "kiosk", "confidential": false, "grant_types": ["password"]});
    let kiosk = register_client(&app, &admin, &kiosk).await.body["client_id"].as_str().expect("client_id").to_string();
    let disabled = confidential_client(&app, &admin, "disabled", "").await;
    assert_eq!(set_disabled(&app, &admin, &disabled, true).await.status, StatusCode::OK);
    let deleted = confidential_client(&app, &admin, "deleted", "").await;
    assert_eq!(app.delete(&format!("/admin/clients/{}", deleted.id), &admin).await.status, StatusCode::NO_CONTENT);
    let mobile_session = password_session(&app, &mobile.id, "alice").await;
    let spent = password_session(&app, BUILT_IN, "alice").await;
    app.refreshed(&spent.refresh).await;
    let nobody = Client { id: "no-such-client".into(), secret: Some("no secret".into()) };
    let wrong_secret = reports.with_secret("wrong secret");

    let token = |form: &[(&str, &str)]| token_request(&app, form);
    let password_form = |client_id: &'static str| {
        vec![("grant_type", "password"), ("client_id", client_id), ("username", "alice"), ("password", PASSWORD)]
    };
    let as_mobile = |form: &[(&str, &str)]| {
        let mut form = form.to_vec();
        form.push(("client_id", mobile.id.as_str()));
        token_request(&app, &form)
    };
    let client_credentials = [("grant_type", "client_credentials")];
    let bad_request = StatusCode::BAD_REQUEST;
    let unauthorized = StatusCode::UNAUTHORIZED;
    let cases: Vec<(&str, RequestBuilder, StatusCode, &str)> = vec![
        (
            "missing grant_type",
            token(&[("client_id", BUILT_IN), ("username", "alice"), ("password", PASSWORD)]),
            bad_request,
            "invalid_request",
        ),
        (
            "missing username",
            token(&[("grant_type", "password"), ("client_id", BUILT_IN), ("password", PASSWORD)]),
            bad_request,
            "invalid_request",
        ),
        (
            "missing password",
            token(&[("grant_type", "password"), ("client_id", BUILT_IN), ("username", "alice")]),
            bad_request,
            "invalid_request",
        ),
        (
            "missing refresh_token",
            token(&[("grant_type", "refresh_token"), ("client_id", BUILT_IN)]),
            bad_request,
            "invalid_request",
        ),
        (
            "JSON body",
            app.request(Method::POST, "/oauth/token").json(&json!({
                "grant_type": "password", "client_id": BUILT_IN, "username": "alice", "password": PASSWORD,
            })),
            bad_request,
            "invalid_request",
        ),
        (
            "wrong password",
            token(&[("grant_type", "password"), ("client_id", BUILT_IN), ("username", "alice"), ("password", "wrong")]),
            bad_request,
            "invalid_grant",
        ),
        (
            "unknown user",
            token(&[
                ("grant_type", "password"),
                ("client_id", BUILT_IN),
                ("username", "nobody"),
                ("password", PASSWORD),
            ]),
            bad_request,
            "invalid_grant",
        ),
        (
            "unknown refresh token",
            token(&[("grant_type", "refresh_token"), ("client_id", BUILT_IN), ("refresh_token", "nope")]),
            bad_request,
            "invalid_grant",
        ),
        (
            "an access token as refresh token",
            token(&[
                ("grant_type", "refresh_token"),
                ("client_id", BUILT_IN),
                ("refresh_token", spent.access.as_str()),
            ]),
            bad_request,
            "invalid_grant",
        ),
        (
            "spent refresh token",
            token(&[
                ("grant_type", "refresh_token"),
                ("client_id", BUILT_IN),
                ("refresh_token", spent.refresh.as_str()),
            ]),
            bad_request,
            "invalid_grant",
        ),
        (
            "refresh token of another client",
            token(&[
                ("grant_type", "refresh_token"),
                ("client_id", BUILT_IN),
                ("refresh_token", mobile_session.refresh.as_str()),
            ]),
            bad_request,
            "invalid_grant",
        ),
        (
            "authorization_code grant",
            token(&[("grant_type", "authorization_code"), ("client_id", BUILT_IN), ("code", "x")]),
            bad_request,
            "unsupported_grant_type",
        ),
        (
            "made-up grant",
            token(&[("grant_type", "magic"), ("client_id", BUILT_IN)]),
            bad_request,
            "unsupported_grant_type",
        ),
        (
            "the built-in client asks for a scope",
            token(&[password_form(BUILT_IN), vec![("scope", "introspect")]].concat()),
            bad_request,
            "invalid_scope",
        ),
        (
            "a confidential client asks beyond its scopes",
            reports.basic(token(&[("grant_type", "client_credentials"), ("scope", "reports ssf")])),
            bad_request,
            "invalid_scope",
        ),
        (
            "a refresh asking for a scope the client lacks",
            as_mobile(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", mobile_session.refresh.as_str()),
                ("scope", "read"),
            ]),
            bad_request,
            "invalid_scope",
        ),
        (
            "a confidential client asks for the password grant",
            reports.basic(token(&[("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)])),
            bad_request,
            "unauthorized_client",
        ),
        (
            "a public client asks for client credentials",
            as_mobile(&client_credentials),
            bad_request,
            "unauthorized_client",
        ),
        (
            "a public client without the refresh grant asks for it",
            token(&[
                ("grant_type", "refresh_token"),
                ("client_id", kiosk.as_str()),
                ("refresh_token", mobile_session.refresh.as_str()),
            ]),
            bad_request,
            "unauthorized_client",
        ),
        (
            "the built-in client asks for client credentials",
            token(&[("grant_type", "client_credentials"), ("client_id", BUILT_IN)]),
            bad_request,
            "unauthorized_client",
        ),
        (
            "no client with a password grant",
            token(&[("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)]),
            unauthorized,
            "invalid_client",
        ),
        ("no client with client credentials", token(&client_credentials), unauthorized, "invalid_client"),
        (
            "unknown client by none",
            token(&[
                ("grant_type", "password"),
                ("client_id", "nobody"),
                ("username", "alice"),
                ("password", PASSWORD),
            ]),
            unauthorized,
            "invalid_client",
        ),
        ("unknown client by Basic", nobody.basic(token(&client_credentials)), unauthorized, "invalid_client"),
        ("wrong secret by Basic", wrong_secret.basic(token(&client_credentials)), unauthorized, "invalid_client"),
        (
            "wrong secret by client_secret_post",
            token(&wrong_secret.post_fields(&client_credentials)),
            unauthorized,
            "invalid_client",
        ),
        (
            "malformed Basic header",
            token(&client_credentials).header("authorization", "Basic !!!"),
            unauthorized,
            "invalid_client",
        ),
        (
            "a confidential client without its secret",
            token(&[("grant_type", "client_credentials"), ("client_id", reports.id.as_str())]),
            unauthorized,
            "invalid_client",
        ),
        ("disabled client", disabled.basic(token(&client_credentials)), unauthorized, "invalid_client"),
        ("deleted client", deleted.basic(token(&client_credentials)), unauthorized, "invalid_client"),
    ];
    for (case, request, status, code) in cases {
        let reply = app.send(request).await;
        assert_error(&reply, status, code, case);
        if status == StatusCode::UNAUTHORIZED {
            assert_basic_challenge(&reply, case);
        }
        assert!(reply.body.get("access_token").is_none(), "{case}: no token");
    }
}

#[rstest]
#[actix_web::test]
async fn every_error_response_repeats_its_message_as_error_description(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.user_token("alice").await;
    let post = |path: &str| app.request(Method::POST, path);
    let cases = [
        ("unknown route", app.request(Method::GET, "/nowhere")),
        ("wrong method", app.request(Method::DELETE, "/register")),
        ("no token", app.request(Method::GET, "/users/me")),
        ("garbage token", app.request(Method::GET, "/users/me").bearer_auth("garbage")),
        ("non-admin", app.request(Method::GET, "/users").bearer_auth(&alice)),
        ("malformed JSON", post("/register").header("content-type", "application/json").body("{")),
        ("wrong content type", post("/register").header("content-type", "text/plain").body("x")),
        ("short password", post("/register").json(&json!({"name": "carol", "password": "short"}))),
        ("duplicate name", post("/register").json(&json!({"name": "alice", "password": PASSWORD}))),
        ("oversized body", post("/register").json(&json!({"name": "x".repeat(70 * 1024), "password": PASSWORD}))),
        ("wrong login", post("/login").basic_auth("alice", Some("wrong password"))),
        ("introspect without credentials", post("/introspect").form(&[("token", "x")])),
    ];
    for (case, request) in cases {
        let reply = app.send(request).await;
        assert!(reply.status.is_client_error(), "{case}: {}", reply.status);
        assert_error(&reply, reply.status, reply.error_code(), case);
    }
}

// Client authentication

#[rstest]
#[actix_web::test]
async fn confidential_clients_authenticate_by_basic_or_post_and_public_clients_by_none(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let reports = confidential_client(&app, &admin, "reports", "reports").await;
    let mobile = public_client(&app, &admin, "mobile", "read write").await;
    let form = [("grant_type", "client_credentials")];
    // RFC 6749 §2.3.1: the server form-decodes both parts, so escaping every byte changes nothing.
    let escaped = |value: &str| utf8_percent_encode(value, NON_ALPHANUMERIC).to_string();

    let methods = [
        ("client_secret_basic", reports.basic(token_request(&app, &form))),
        (
            "client_secret_basic with every byte escaped",
            token_request(&app, &form).basic_auth(escaped(&reports.id), Some(escaped(reports.secret()))),
        ),
        ("client_secret_post", token_request(&app, &reports.post_fields(&form))),
    ];
    for (method, request) in methods {
        let reply = app.send(request).await;
        assert_token_response(&reply, method);
        let token = reply.body["access_token"].as_str().expect("access_token");
        assert_eq!(claim(token, "client_id"), json!(reports.id), "{method}");
    }

    let reply = password_grant(&app, &mobile.id, "alice", PASSWORD).await;
    assert_token_response(&reply, "none, password grant");
    assert_eq!(scopes(&reply.body["scope"]), scope_set("read write"));
    let session = Session::from_reply(&reply);
    assert_eq!(claim(&session.access, "client_id"), json!(mobile.id));
    assert_eq!(scopes(&claim(&session.access, "scope")), scope_set("read write"), "a user token carries the scope");
    let refreshed = refresh_grant(&app, &mobile.id, &session.refresh).await;
    assert_token_response(&refreshed, "none, refresh grant");
    assert_eq!(claim(refreshed.body["access_token"].as_str().expect("token"), "client_id"), json!(mobile.id));

    // A confidential client may hold the user grants too; it must then authenticate for them.
    let body = json!({"name": "portal", "confidential": true, "grant_types": ["password", "refresh_token"]});
    let portal = register_client(&app, &admin, &body).await;
    assert_eq!(portal.status, StatusCode::CREATED, "{:?}", portal.body);
    let portal = Client {
        id: portal.body["client_id"].as_str().expect("client_id").to_string(),
        secret: portal.body["client_secret"].as_str().map(str::to_string),
    };
    let user_form = [("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)];
    let reply = app.send(portal.basic(token_request(&app, &user_form))).await;
    assert_token_response(&reply, "a confidential client's password grant");
    let session = Session::from_reply(&reply);
    assert_eq!(claim(&session.access, "client_id"), json!(portal.id));
    let without_secret = refresh_grant(&app, &portal.id, &session.refresh).await;
    assert_error(&without_secret, StatusCode::UNAUTHORIZED, "invalid_client", "a confidential client's bare refresh");
    let refresh_form = [("grant_type", "refresh_token"), ("refresh_token", session.refresh.as_str())];
    let reply = app.send(token_request(&app, &portal.post_fields(&refresh_form))).await;
    assert_token_response(&reply, "a confidential client's refresh, client_secret_post");
}

#[rstest]
#[actix_web::test]
async fn password_grant_failures_are_throttled_like_logins(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    app.register("alice", PASSWORD).await;
    for attempt in 1..=5 {
        let reply = password_grant(&app, BUILT_IN, "alice", "wrong password").await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_grant", &format!("wrong password, attempt {attempt}"));
    }

    let throttled = password_grant(&app, BUILT_IN, "alice", PASSWORD).await;
    assert_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", "even the right password waits");
    let retry_after =
        |reply: &Reply| -> i64 { reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After") };
    assert!((1..=60).contains(&retry_after(&throttled)), "{}", retry_after(&throttled));
    let login = app.login_basic("alice", PASSWORD).await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS, "/login counts the grant's failures too");

    app.clock.advance(Duration::seconds(retry_after(&throttled).max(retry_after(&login))));
    assert_token_response(&password_grant(&app, BUILT_IN, "alice", PASSWORD).await, "after the wait");
}

// The admin clients API

#[rstest]
#[actix_web::test]
async fn admins_register_clients_with_the_documented_defaults_and_the_secret_is_shown_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;

    let confidential = register_client(&app, &admin, &json!({"name": "reports", "confidential": true})).await;
    assert_eq!(confidential.status, StatusCode::CREATED, "{:?}", confidential.body);
    let body = &confidential.body;
    let client_id = body["client_id"].as_str().expect("client_id").to_string();
    let secret = body["client_secret"].as_str().expect("the secret, this once").to_string();
    assert!(!client_id.is_empty() && !secret.is_empty());
    assert_eq!(body["name"], "reports");
    assert_eq!(body["confidential"], true);
    assert_eq!(body["grant_types"], json!(["client_credentials"]), "default for a confidential client");
    assert_eq!(body["scope"], "", "default scope");
    assert_eq!(body["disabled"], false);
    assert!(body["created_at"].is_string(), "{body}");

    let public = register_client(&app, &admin, &json!({"name": "mobile", "confidential": false})).await;
    assert_eq!(public.status, StatusCode::CREATED, "{:?}", public.body);
    assert!(public.body.get("client_secret").is_none_or(Value::is_null), "a public client has no secret");
    assert_eq!(public.body["confidential"], false);
    assert_eq!(public.body["grant_types"], json!(["password", "refresh_token"]), "default for a public client");
    assert_eq!(public.body["scope"], "");

    let explicit = register_client(
        &app,
        &admin,
        &json!({"name": "n".repeat(100), "confidential": true, "grant_types": ["client_credentials"],
                "scope": "introspect reports"}),
    )
    .await;
    assert_eq!(explicit.status, StatusCode::CREATED, "a 100-character name: {:?}", explicit.body);
    assert_eq!(scopes(&explicit.body["scope"]), scope_set("introspect reports"));

    let clients = listed_clients(&app, &admin).await;
    let listing = serde_json::to_string(&clients).expect("json");
    assert!(!listing.contains(&secret), "the secret is never listed");
    for client in &clients {
        let fields: Vec<&String> = client.as_object().expect("object").keys().collect();
        assert!(
            fields.iter().all(|field| !field.contains("secret") && !field.contains("hash")),
            "no secret or hash: {client}"
        );
    }
    let reports = listed(&clients, &client_id).expect("reports is listed");
    for field in ["name", "confidential", "grant_types", "scope", "created_at", "disabled"] {
        assert_eq!(reports[field], confidential.body[field], "listed {field}");
    }
    let public_id = public.body["client_id"].as_str().expect("client_id");
    assert!(listed(&clients, public_id).is_some(), "mobile is listed");
    let built_in = listed(&clients, BUILT_IN).expect("the built-in client is listed");
    assert_eq!(built_in["confidential"], false);
    assert_eq!(built_in["grant_types"], json!(["password", "refresh_token"]));
    assert_eq!(built_in["scope"], "");

    let client = Client { id: client_id, secret: Some(secret) };
    assert_token_response(&client_credentials(&app, &client, None).await, "the secret shown once works");
}

#[rstest]
#[actix_web::test]
async fn bad_client_registrations_get_422_and_register_nothing(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let metadata = Some("invalid_client_metadata");
    let cases = [
        (
            "a public client with client credentials",
            json!({"name": "x", "confidential": false, "grant_types": ["client_credentials"]}),
            metadata,
        ),
        ("an unknown grant type", json!({"name": "x", "confidential": true, "grant_types": ["implicit"]}), metadata),
        (
            "an unsupported grant type among known ones",
            json!({"name": "x", "confidential": false, "grant_types": ["password", "authorization_code"]}),
            metadata,
        ),
        ("an empty name", json!({"name": "", "confidential": true}), None),
        ("a name of 101 characters", json!({"name": "n".repeat(101), "confidential": true}), None),
    ];
    for (case, body, code) in cases {
        let reply = register_client(&app, &admin, &body).await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, code.unwrap_or(reply.error_code()), case);
    }
    let clients = listed_clients(&app, &admin).await;
    assert_eq!(clients.len(), 1, "only the built-in client: {clients:?}");
}

#[rstest]
#[actix_web::test]
async fn only_admins_may_manage_clients(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    let alice = app.user_token("alice").await;
    let service = service_token(&app, &reports).await;
    let path = format!("/admin/clients/{}", reports.id);
    let secret_path = format!("{path}/secret");
    let requests = [
        ("list", Method::GET, "/admin/clients", None),
        ("register", Method::POST, "/admin/clients", Some(json!({"name": "x", "confidential": true}))),
        ("disable", Method::PATCH, path.as_str(), Some(json!({"disabled": true}))),
        ("rotate the secret", Method::POST, secret_path.as_str(), None),
        ("delete", Method::DELETE, path.as_str(), None),
    ];
    for (who, token) in [("a user", alice.as_str()), ("a service token", service.as_str())] {
        for (what, method, path, body) in &requests {
            let mut request = app.request(method.clone(), path).bearer_auth(token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let reply = app.send(request).await;
            assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &format!("{who} may not {what}"));
        }
    }
    let anonymous = app.send(app.request(Method::GET, "/admin/clients")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_token_response(&client_credentials(&app, &reports, None).await, "the client is unchanged");
}

#[rstest]
#[actix_web::test]
async fn a_disabled_client_can_no_longer_authenticate_or_refresh_but_keeps_its_tokens(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    let mobile = public_client(&app, &admin, "mobile", "").await;
    let service = service_token(&app, &reports).await;
    let session = password_session(&app, &mobile.id, "alice").await;

    for client in [&reports, &mobile] {
        let reply = set_disabled(&app, &admin, client, true).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(
            (reply.body["client_id"].as_str(), reply.body["disabled"].as_bool()),
            (Some(&*client.id), Some(true))
        );
    }
    let refusals = [
        ("client credentials", client_credentials(&app, &reports, None).await),
        ("password grant", password_grant(&app, &mobile.id, "alice", PASSWORD).await),
        ("refresh grant", refresh_grant(&app, &mobile.id, &session.refresh).await),
    ];
    for (case, reply) in &refusals {
        assert_error(reply, StatusCode::UNAUTHORIZED, "invalid_client", &format!("{case} of a disabled client"));
        assert_basic_challenge(reply, case);
    }
    assert!(app.access_works(&service).await, "disabling ends no token by itself");
    assert!(app.access_works(&session.access).await, "nor a session");
    let clients = listed_clients(&app, &admin).await;
    assert_eq!(listed(&clients, &reports.id).expect("listed")["disabled"], true);

    for client in [&reports, &mobile] {
        assert_eq!(set_disabled(&app, &admin, client, false).await.body["disabled"], false);
    }
    assert_token_response(&client_credentials(&app, &reports, None).await, "enabled again");
    assert_token_response(&refresh_grant(&app, &mobile.id, &session.refresh).await, "the session outlived the pause");
}

#[rstest]
#[actix_web::test]
async fn a_rotated_secret_leaves_the_old_one_valid_for_the_grace_period_only(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let reports = confidential_client(&app, &admin, "reports", "reports").await;
    let mobile = public_client(&app, &admin, "mobile", "").await;

    let rotated = app.post(&format!("/admin/clients/{}/secret", reports.id), &admin).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_eq!(rotated.body["client_id"], json!(reports.id));
    assert_eq!(rotated.body["name"], "reports");
    assert_eq!(rotated.body["scope"], "reports");
    let new_secret = rotated.body["client_secret"].as_str().expect("the new secret");
    assert_ne!(new_secret, reports.secret());
    let renewed = reports.with_secret(new_secret);
    assert!(!serde_json::to_string(&listed_clients(&app, &admin).await).expect("json").contains(new_secret));

    let public = app.post(&format!("/admin/clients/{}/secret", mobile.id), &admin).await;
    assert_error(&public, StatusCode::CONFLICT, "public_client", "a public client has no secret to rotate");

    assert_token_response(&client_credentials(&app, &renewed, None).await, "the new secret");
    assert_token_response(&client_credentials(&app, &reports, None).await, "the old secret, just rotated");
    app.advance(Duration::hours(23)).await;
    assert_token_response(&client_credentials(&app, &reports, None).await, "the old secret within CLIENT_SECRET_GRACE");
    app.advance(Duration::hours(1) + Duration::seconds(1)).await;
    let expired = client_credentials(&app, &reports, None).await;
    assert_error(&expired, StatusCode::UNAUTHORIZED, "invalid_client", "the old secret after CLIENT_SECRET_GRACE");
    assert_token_response(&client_credentials(&app, &renewed, None).await, "the new secret still");
}

#[rstest]
#[actix_web::test]
async fn deleting_a_client_ends_its_tokens_and_sessions_and_nothing_else(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let gateway = confidential_client(&app, &admin, "gateway", "introspect").await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    let mobile = public_client(&app, &admin, "mobile", "").await;
    let service = service_token(&app, &reports).await;
    let mobile_session = password_session(&app, &mobile.id, "alice").await;
    let app_session = password_session(&app, BUILT_IN, "alice").await;
    let gateway_token = service_token(&app, &gateway).await;

    for client in [&reports, &mobile] {
        let deleted = app.delete(&format!("/admin/clients/{}", client.id), &admin).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    }
    assert!(!app.access_works(&service).await, "the deleted client's service token ends");
    assert!(!app.access_works(&mobile_session.access).await, "its user's access token ends");
    assert!(!active(&app, &gateway, &mobile_session.refresh).await, "and the session's refresh token");
    let refresh = refresh_grant(&app, &mobile.id, &mobile_session.refresh).await;
    assert_error(&refresh, StatusCode::UNAUTHORIZED, "invalid_client", "refresh by a deleted client");

    assert!(app.access_works(&app_session.access).await, "another client's session of the same user lives on");
    assert_token_response(&refresh_grant(&app, BUILT_IN, &app_session.refresh).await, "another client's refresh");
    assert!(app.access_works(&gateway_token).await, "another client's service token lives on");
    let clients = listed_clients(&app, &admin).await;
    assert!(listed(&clients, &reports.id).is_none() && listed(&clients, &mobile.id).is_none(), "{clients:?}");

    let again = app.delete(&format!("/admin/clients/{}", reports.id), &admin).await;
    assert_error(&again, StatusCode::NOT_FOUND, "not_found", "deleting an unknown client");
    let built_in = app.delete(&format!("/admin/clients/{BUILT_IN}"), &admin).await;
    assert_error(&built_in, StatusCode::CONFLICT, "builtin_client", "deleting the built-in client");
    assert_token_response(&password_grant(&app, BUILT_IN, "alice", PASSWORD).await, "the built-in client stays");
}

// Scopes and service tokens

#[rstest]
#[actix_web::test]
async fn an_omitted_scope_grants_all_of_the_clients_scopes_and_an_asked_scope_only_that(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let gateway = confidential_client(&app, &admin, "gateway", "introspect reports").await;
    let plain = confidential_client(&app, &admin, "plain", "").await;
    let cases = [
        ("omitted", &gateway, None, "introspect reports"),
        ("one of two", &gateway, Some("reports"), "reports"),
        ("both, in another order", &gateway, Some("reports introspect"), "introspect reports"),
        ("a client without scopes", &plain, None, ""),
    ];
    for (case, client, asked, granted) in cases {
        let reply = client_credentials(&app, client, asked).await;
        assert_token_response(&reply, case);
        assert_eq!(scopes(&reply.body["scope"]), scope_set(granted), "{case}: answered scope");
        let token = reply.body["access_token"].as_str().expect("token");
        assert_eq!(scopes(&claim(token, "scope")), scope_set(granted), "{case}: scope claim");
    }
    for (case, client, asked) in [
        ("a scope the client lacks", &gateway, "ssf"),
        ("one held and one lacking", &gateway, "reports ssf"),
        ("any scope of a client without scopes", &plain, "reports"),
    ] {
        let reply = client_credentials(&app, client, Some(asked)).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope", case);
    }
}

#[rstest]
#[actix_web::test]
async fn service_tokens_are_refused_on_user_endpoints_and_read_authors(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    let alice = app.user_token("alice").await;
    let author = app.create_author(&alice, "Kazuo Ishiguro", "The Remains of the Day").await;
    let author_path = format!("/authors/{}", author.body["id"]);
    let service = service_token(&app, &reports).await;
    let new_author = json!({"name": "Hilary Mantel", "book": "Wolf Hall", "country": "UK"});

    let refused = [
        ("GET /users/me", app.request(Method::GET, "/users/me")),
        ("POST /authors", app.request(Method::POST, "/authors").json(&new_author)),
        ("PUT an author", app.request(Method::PUT, &author_path).json(&new_author)),
        ("DELETE an author", app.request(Method::DELETE, &author_path)),
        ("POST /logout?all=true", app.request(Method::POST, "/logout?all=true")),
    ];
    for (case, request) in refused {
        let reply = app.send(request.bearer_auth(&service)).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &format!("{case} with a service token"));
    }
    for path in ["/authors", author_path.as_str()] {
        assert_eq!(app.get(path, &service).await.status, StatusCode::OK, "GET {path} accepts a service token");
    }
    assert_eq!(app.get(&author_path, &alice).await.body["name"], "Kazuo Ishiguro", "nothing was changed");

    let logout = app.logout(&service).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{:?}", logout.body);
    assert!(!app.access_works(&service).await, "logout revokes the service token");
    assert!(app.access_works(&service_token(&app, &reports).await).await, "and not the client");
}

#[rstest]
#[actix_web::test]
async fn verify_names_the_client_and_its_scope_and_requires_asked_scopes(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let gateway = confidential_client(&app, &admin, "gateway", "introspect reports").await;
    let service = service_token(&app, &gateway).await;
    let narrow = client_credentials(&app, &gateway, Some("reports")).await;
    let narrow = narrow.body["access_token"].as_str().expect("token").to_string();
    let alice = app.user_token("alice").await;
    let verify =
        |token: &str, query: &str| app.send(app.request(Method::GET, &format!("/verify{query}")).bearer_auth(token));

    let reply = verify(&service, "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-auth-user"), Some(gateway.id.as_str()), "the client is the caller");
    assert_eq!(reply.header("x-auth-scope"), claim(&service, "scope").as_str(), "the token's scope string");
    assert_eq!(scopes(&json!(reply.header("x-auth-scope"))), scope_set("introspect reports"));
    assert_eq!(reply.header("x-auth-name"), Some(""), "a client has no name");
    assert_eq!(reply.header("x-auth-groups"), Some(""));
    let user = verify(&alice, "").await;
    assert_eq!((user.status, user.header("x-auth-scope")), (StatusCode::OK, Some("")), "user tokens too");

    let cases = [
        ("a held scope", &service, "?scope=reports", StatusCode::OK),
        ("two held scopes", &service, "?scope=reports&scope=introspect", StatusCode::OK),
        ("a held and a missing scope", &service, "?scope=reports&scope=ssf", StatusCode::FORBIDDEN),
        ("a missing scope", &service, "?scope=ssf", StatusCode::FORBIDDEN),
        ("the scope a narrowed token kept", &narrow, "?scope=reports", StatusCode::OK),
        ("the scope a narrowed token left out", &narrow, "?scope=introspect", StatusCode::FORBIDDEN),
        ("a scope of a user token", &alice, "?scope=reports", StatusCode::FORBIDDEN),
        ("a group of a service token", &service, "?group=admin", StatusCode::FORBIDDEN),
    ];
    for (case, token, query, status) in cases {
        assert_eq!(verify(token, query).await.status, status, "{case}: /verify{query}");
    }
}

// Introspection and revocation by clients

#[rstest]
#[actix_web::test]
async fn a_client_holding_introspect_introspects_any_token_by_basic_or_post(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let gateway = confidential_client(&app, &admin, "gateway", "introspect").await;
    let reports = confidential_client(&app, &admin, "reports", "reports").await;
    let alice = password_session(&app, BUILT_IN, "alice").await;
    let service = service_token(&app, &reports).await;
    let introspect = || app.request(Method::POST, "/introspect");

    for (method, request) in [
        ("Basic", gateway.basic(introspect().form(&[("token", &alice.access)]))),
        ("client_secret_post", introspect().form(&gateway.post_fields(&[("token", alice.access.as_str())]))),
        ("Basic with a JSON body", gateway.basic(introspect().json(&json!({"token": alice.access})))),
    ] {
        let reply = app.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {:?}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{method}");
        let body = &reply.body;
        assert_eq!(body["active"], true, "{method}: {body}");
        assert_eq!(body["client_id"], BUILT_IN, "{method}");
        assert_eq!(body["scope"], "", "{method}");
        assert_eq!(body["token_type"], "Bearer", "{method}");
        assert_eq!(body["username"], "alice", "{method}");
        assert_eq!(body["groups"], json!([]), "{method}");
        for field in ["sub", "exp", "iat", "nbf", "iss", "aud", "jti", "sid"] {
            assert_eq!(body[field], claim(&alice.access, field), "{method}: {field}");
        }
    }

    let described = introspect_as(&app, &gateway, &service).await;
    let body = &described.body;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], json!(reports.id));
    assert_eq!(body["sub"], json!(reports.id));
    assert_eq!(body["scope"], "reports");
    assert_eq!(body["token_type"], "Bearer");
    for field in ["exp", "iat", "iss", "aud"] {
        assert_eq!(body[field], claim(&service, field), "service token: {field}");
    }

    let refresh = introspect_as(&app, &gateway, &alice.refresh).await;
    let body = &refresh.body;
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "refresh_token");
    assert_eq!(body["client_id"], BUILT_IN);
    assert_eq!(body["scope"], "");
    assert_eq!(body["sub"], claim(&alice.access, "sub"));
    for field in ["exp", "iat"] {
        assert!(body[field].is_i64(), "refresh token: {field} in {body}");
    }
    for field in ["iss", "aud"] {
        assert_eq!(body[field], claim(&alice.access, field), "refresh token: {field}");
    }
}

#[rstest]
#[actix_web::test]
async fn introspection_refuses_clients_without_introspect_or_with_wrong_credentials(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let gateway = confidential_client(&app, &admin, "gateway", "introspect").await;
    let reports = confidential_client(&app, &admin, "reports", "reports").await;
    let service = service_token(&app, &reports).await;
    let wrong = gateway.with_secret("wrong secret");
    let nobody = Client { id: "no-such-client".into(), secret: Some("no secret".into()) };
    let paused = confidential_client(&app, &admin, "paused", "introspect").await;
    assert_eq!(set_disabled(&app, &admin, &paused, true).await.status, StatusCode::OK);
    let introspect = || app.request(Method::POST, "/introspect");
    let token = [("token", service.as_str())];

    let cases = [
        (
            "no introspect scope, Basic",
            reports.basic(introspect().form(&token)),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            "no introspect scope, client_secret_post",
            introspect().form(&reports.post_fields(&token)),
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        ("wrong secret, Basic", wrong.basic(introspect().form(&token)), StatusCode::UNAUTHORIZED, "invalid_client"),
        (
            "wrong secret, client_secret_post",
            introspect().form(&wrong.post_fields(&token)),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        ("unknown client, Basic", nobody.basic(introspect().form(&token)), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("a disabled client", paused.basic(introspect().form(&token)), StatusCode::UNAUTHORIZED, "invalid_client"),
    ];
    for (case, request, status, code) in cases {
        let reply = app.send(request).await;
        assert_error(&reply, status, code, case);
        assert!(reply.body.get("active").is_none(), "{case}: nothing disclosed");
    }
    let anonymous = app.send(introspect().form(&token)).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "no credentials at all");
    let public = app.send(introspect().form(&[("token", service.as_str()), ("client_id", BUILT_IN)])).await;
    // A public client proves only its id: it may revoke its own tokens, never introspect.
    assert_error(&public, StatusCode::FORBIDDEN, "insufficient_scope", "a public client introspecting");
}

#[rstest]
#[actix_web::test]
async fn a_client_revokes_its_own_tokens_and_silently_not_another_clients(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    let other = confidential_client(&app, &admin, "other", "").await;
    let alice = password_session(&app, BUILT_IN, "alice").await;
    let revoke = || app.request(Method::POST, "/revoke");
    let revoke_basic = |client: &Client, token: &str| client.basic(revoke().form(&[("token", token)]));

    let by_basic = service_token(&app, &reports).await;
    assert_eq!(app.send(revoke_basic(&reports, &by_basic)).await.status, StatusCode::OK);
    assert!(!app.access_works(&by_basic).await, "revoked with Basic");
    let by_post = service_token(&app, &reports).await;
    let revoked = app.send(revoke().form(&reports.post_fields(&[("token", by_post.as_str())]))).await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert!(!app.access_works(&by_post).await, "revoked with client_secret_post");

    let others = service_token(&app, &other).await;
    for (case, token) in
        [("another client's", &others), ("a user's", &alice.access), ("a user's refresh", &alice.refresh)]
    {
        let reply = app.send(revoke_basic(&reports, token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{case} token: 200, nothing disclosed");
    }
    assert!(app.access_works(&others).await, "another client's token is not revoked");
    assert!(app.access_works(&alice.access).await, "nor a user's of another client");
    let refreshed = refresh_grant(&app, BUILT_IN, &alice.refresh).await;
    assert_token_response(&refreshed, "nor a refresh token of another client");

    let kept = service_token(&app, &reports).await;
    let wrong = reports.with_secret("wrong secret");
    for (case, request) in [
        ("Basic", revoke_basic(&wrong, &kept)),
        ("client_secret_post", revoke().form(&wrong.post_fields(&[("token", kept.as_str())]))),
    ] {
        let reply = app.send(request).await;
        assert_error(
            &reply,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            &format!("revoke with a wrong secret, {case}"),
        );
    }
    assert!(app.access_works(&kept).await, "a refused revocation revokes nothing");

    let anonymous = app.send(revoke().form(&[("token", &alice.access)])).await;
    assert_eq!(anonymous.status, StatusCode::OK, "holding the token is still the authority");
    assert!(!app.access_works(&alice.access).await);
}

// The legacy refresh endpoint, metadata and metrics

#[rstest]
#[actix_web::test]
async fn the_legacy_refresh_endpoint_answers_a_bad_refresh_token_with_400_invalid_grant(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let first = app.register_and_login("alice").await;
    app.refreshed(&first.refresh).await;
    let mobile = public_client(&app, &app.admin_token().await, "mobile", "").await;
    let mobile_session = password_session(&app, &mobile.id, "alice").await;
    for (case, token) in [
        ("unknown", "nope"),
        ("empty", ""),
        ("an access token", first.access.as_str()),
        ("another client's", mobile_session.refresh.as_str()),
        ("spent", first.refresh.as_str()),
    ] {
        let reply = app.refresh(token).await;
        assert_error(
            &reply,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            &format!("{case} refresh token on /token/refresh"),
        );
    }
}

#[rstest]
#[actix_web::test]
async fn both_metadata_documents_describe_the_token_endpoint_truthfully(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(config) = TestConfig::on(backend) else { return };
    let issuer = "https://auth.example.test";
    let app = spawn_app_with(TestConfig { issuer: Some(issuer.into()), ..config }).await;
    let set = |values: &[&str]| -> BTreeSet<String> { values.iter().map(|value| value.to_string()).collect() };
    let as_set = |value: &Value| -> Option<BTreeSet<String>> {
        value.as_array()?.iter().map(|value| value.as_str().map(str::to_string)).collect()
    };

    let mut documents = Vec::new();
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let reply = app.send(app.request(Method::GET, path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(reply.header("content-type").is_some_and(|t| t.starts_with("application/json")), "{path}");
        let doc = &reply.body;
        assert_eq!(doc["issuer"], issuer, "{path}");
        assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"), "{path}");
        assert_eq!(doc["token_endpoint"], format!("{issuer}/oauth/token"), "{path}");
        assert_eq!(doc["revocation_endpoint"], format!("{issuer}/revoke"), "{path}");
        assert_eq!(doc["introspection_endpoint"], format!("{issuer}/introspect"), "{path}");
        assert_eq!(
            as_set(&doc["grant_types_supported"]),
            Some(set(&["password", "refresh_token", "client_credentials"])),
            "{path}"
        );
        assert_eq!(
            as_set(&doc["token_endpoint_auth_methods_supported"]),
            Some(set(&["client_secret_basic", "client_secret_post", "none"])),
            "{path}"
        );
        assert_eq!(
            as_set(&doc["introspection_endpoint_auth_methods_supported"]),
            Some(set(&["client_secret_basic", "client_secret_post"])),
            "{path}"
        );
        let revocation_methods = as_set(&doc["revocation_endpoint_auth_methods_supported"]);
        assert!(
            revocation_methods
                .is_some_and(|methods| set(&["client_secret_basic", "client_secret_post"]).is_subset(&methods)),
            "{path}: {}",
            doc["revocation_endpoint_auth_methods_supported"]
        );
        assert_eq!(as_set(&doc["scopes_supported"]), Some(set(&["introspect", "ssf"])), "{path}");
        assert_eq!(doc["response_types_supported"], json!([]), "{path}: no authorization endpoint");
        let fields = doc.as_object().expect("object");
        assert!(fields.keys().all(|field| !field.starts_with("id_token")), "{path}: no ID tokens: {doc}");
        let mut doc = doc.clone();
        doc.as_object_mut().expect("object").remove("subject_types_supported");
        documents.push(doc);
    }
    assert_eq!(documents[0], documents[1], "the two documents say the same");
}

#[rstest]
#[actix_web::test]
async fn metrics_count_tokens_by_grant_and_key_deletions(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    app.register("alice", PASSWORD).await;
    let reports = confidential_client(&app, &admin, "reports", "").await;
    service_token(&app, &reports).await;
    service_token(&app, &reports).await;
    let session = password_session(&app, BUILT_IN, "alice").await;
    assert_token_response(&refresh_grant(&app, BUILT_IN, &session.refresh).await, "refresh grant");
    let keys = app.get("/admin/keys", &admin).await;
    let next = keys.body["keys"].as_array().expect("keys").iter().find(|key| key["state"] == "next").expect("next");
    let kid = next["kid"].as_str().expect("kid");
    assert_eq!(app.delete(&format!("/admin/keys/{kid}"), &admin).await.status, StatusCode::NO_CONTENT);

    let text = app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics");
    let text = text.text().await.expect("text");
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"));
    assert_eq!(value(r#"library_api_tokens_issued_total{grant="client_credentials"}"#), 2.0);
    assert_eq!(value(r#"library_api_tokens_issued_total{grant="refresh_token"}"#), 1.0);
    assert_eq!(
        value(r#"library_api_tokens_issued_total{grant="password"}"#),
        2.0,
        "the admin's login and alice's grant"
    );
    assert_eq!(value(r#"library_api_revocations_total{kind="key"}"#), 1.0);
}

/// One backend: the commands work on the SQLite file while the service runs on it.
#[actix_web::test]
async fn the_client_commands_create_list_and_delete_clients_as_the_api_does() {
    let app = spawn_app().await;
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_library-api"))
            .arg("client")
            .args(args)
            .env("DATABASE_URL", app.config.database_path())
            .env("MASTER_KEY", &app.config.master_key)
            .output()
            .expect("the binary runs");
        let json = serde_json::from_slice::<Value>(&output.stdout).unwrap_or(Value::Null);
        (output.status.success(), json, String::from_utf8_lossy(&output.stderr).into_owned())
    };

    let (ok, created, stderr) = cli(&["create", "reports", "--scope", "reports introspect"]);
    assert!(ok, "{stderr}");
    assert_eq!(created["name"], "reports");
    assert_eq!(created["confidential"], true);
    assert_eq!(created["grant_types"], json!(["client_credentials"]));
    assert_eq!(scopes(&created["scope"]), scope_set("introspect reports"));
    let reports = Client {
        id: created["client_id"].as_str().expect("client_id").to_string(),
        secret: Some(created["client_secret"].as_str().expect("the secret, printed once").to_string()),
    };
    let (ok, public, stderr) = cli(&["create", "mobile", "--public", "--grant", "password"]);
    assert!(ok, "{stderr}");
    assert_eq!((public["confidential"].as_bool(), &public["grant_types"]), (Some(false), &json!(["password"])));
    assert!(public.get("client_secret").is_none_or(Value::is_null));
    let (ok, _, _) = cli(&["create", "bad", "--public", "--grant", "client_credentials"]);
    assert!(!ok, "a public client with client credentials is refused");

    let service = service_token(&app, &reports).await;
    let (ok, listed, stderr) = cli(&["list"]);
    assert!(ok, "{stderr}");
    let clients = listed["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 3, "reports, mobile and the built-in client: {clients:?}");
    assert!(listed.to_string().find(reports.secret()).is_none(), "never a secret");
    assert_eq!(clients, &listed_clients(&app, &app.admin_token().await).await, "the same JSON as the API");

    let (ok, _, stderr) = cli(&["delete", &reports.id]);
    assert!(ok, "{stderr}");
    let started = std::time::Instant::now();
    while app.access_works(&service).await {
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "the running service ends the client's tokens");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = client_credentials(&app, &reports, None).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "invalid_client", "a client deleted by the CLI");
    let (ok, _, _) = cli(&["delete", BUILT_IN]);
    assert!(!ok, "the built-in client cannot be deleted");
}

/// Input at the edges of the OAuth endpoints: odd client ids never reach the database as a 500,
/// empty parameters count as absent (RFC 6749 §3.1), and the rules hold for service tokens too.
#[rstest]
#[actix_web::test]
async fn edge_cases_of_oauth_requests_get_clear_answers(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let admin = app.admin_token().await;
    let reporter = confidential_client(&app, &admin, "reporter", "reports").await;
    let auditor = confidential_client(&app, &admin, "auditor", "introspect").await;
    let user_token = app.user_token("alice").await;
    let nul_id = Client { id: "svc-\u{0}x".into(), secret: Some("s".into()) };
    let long_id = Client { id: "x".repeat(5000), secret: Some("s".into()) };

    let cases: Vec<(&str, RequestBuilder, StatusCode, &str)> = vec![
        ("a NUL byte in client_id (post)", token_request(&app, &[("grant_type", "client_credentials"), ("client_id", "a\u{0}b")]), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("a NUL byte in client_id (Basic)", nul_id.basic(token_request(&app, &[("grant_type", "client_credentials")])), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("a 5000-byte client_id", long_id.basic(token_request(&app, &[("grant_type", "client_credentials")])), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("a NUL byte in client_id at /introspect", nul_id.basic(app.request(Method::POST, "/introspect").form(&[("token", "t")])), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("a NUL byte in client_id at /revoke", nul_id.basic(app.request(Method::POST, "/revoke").form(&[("token", "t")])), StatusCode::UNAUTHORIZED, "invalid_client"),
        ("an empty grant_type", token_request(&app, &[("grant_type", ""), ("client_id", BUILT_IN)]), StatusCode::BAD_REQUEST, "invalid_request"),
        ("an empty username", token_request(&app, &[("grant_type", "password"), ("username", ""), ("password", PASSWORD), ("client_id", BUILT_IN)]), StatusCode::BAD_REQUEST, "invalid_request"),
        ("a NUL byte in an admin path", app.request(Method::PATCH, "/admin/clients/a%00b").bearer_auth(&admin).json(&json!({"disabled": true})), StatusCode::NOT_FOUND, "not_found"),
        ("disabling the built-in client", app.request(Method::PATCH, &format!("/admin/clients/{BUILT_IN}")).bearer_auth(&admin).json(&json!({"disabled": true})), StatusCode::CONFLICT, "builtin_client"),
        ("no grant types", app.request(Method::POST, "/admin/clients").bearer_auth(&admin).json(&json!({"name": "n", "confidential": true, "grant_types": []})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_client_metadata"),
        ("33 scopes", app.request(Method::POST, "/admin/clients").bearer_auth(&admin).json(&json!({"name": "n", "confidential": true, "scope": (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>().join(" ")})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_client_metadata"),
        ("a 65-character scope", app.request(Method::POST, "/admin/clients").bearer_auth(&admin).json(&json!({"name": "n", "confidential": true, "scope": "s".repeat(65)})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_client_metadata"),
        ("a tab inside a scope", app.request(Method::POST, "/admin/clients").bearer_auth(&admin).json(&json!({"name": "n", "confidential": true, "scope": "a\tb"})), StatusCode::UNPROCESSABLE_ENTITY, "invalid_client_metadata"),
    ];
    for (case, request, status, code) in cases {
        let reply = app.send(request).await;
        assert_error(&reply, status, code, case);
    }

    // An empty scope parameter is no scope parameter: every scope of the client is granted.
    let empty_scope =
        app.send(reporter.basic(token_request(&app, &[("grant_type", "client_credentials"), ("scope", "")]))).await;
    assert_eq!((empty_scope.status, empty_scope.body["scope"].as_str()), (StatusCode::OK, Some("reports")));

    // A service token introspects only when its client holds `introspect`; a user token may.
    let without = service_token(&app, &reporter).await;
    let with = service_token(&app, &auditor).await;
    let bearer_introspect = |token: &str| {
        app.request(Method::POST, "/introspect").bearer_auth(token).form(&[("token", user_token.as_str())])
    };
    let refused = app.send(bearer_introspect(&without)).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "insufficient_scope", "a service token without introspect");
    for token in [&with, &user_token] {
        let reply = app.send(bearer_introspect(token)).await;
        assert_eq!((reply.status, reply.body["active"].as_bool()), (StatusCode::OK, Some(true)), "{:?}", reply.body);
    }

    // A service token is refused on author changes whether or not the author exists.
    for (method, path) in [(Method::PUT, "/authors/999999"), (Method::DELETE, "/authors/999999")] {
        let request = app.request(method.clone(), path).bearer_auth(&without);
        let reply = app.send(request.json(&json!({"name": "n", "book": "b", "country": "c"}))).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "forbidden", &format!("{method} {path} with a service token"));
    }
}
