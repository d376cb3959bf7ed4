//! The seed's flow end to end, once as the seed's clients did it (Basic login, `x-access-tokens`)
//! and once the modern way (JSON login, `Authorization: Bearer`).

use crate::helpers::{Backend, PASSWORD, Reply, TestApp, spawn_app, spawn_app_on};
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};

/// How a client authenticates, and how it logs in.
#[derive(Clone, Copy, Debug)]
enum ClientStyle {
    SeedBasicAndXAccessTokens,
    JsonAndBearer,
}

impl ClientStyle {
    async fn login(self, app: &TestApp, name: &str) -> Reply {
        match self {
            Self::SeedBasicAndXAccessTokens => app.login_basic(name, PASSWORD).await,
            Self::JsonAndBearer => app.login_json(name, PASSWORD).await,
        }
    }

    async fn call(self, app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let mut request = app.request(method, path);
        request = match self {
            Self::SeedBasicAndXAccessTokens => request.header("x-access-tokens", token),
            Self::JsonAndBearer => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        app.send(request).await
    }
}

/// Register, log in, and every authors call, in one client style.
async fn whole_flow(app: &TestApp, style: ClientStyle) {
    let registered = app.register("alice", PASSWORD).await;
    assert_eq!(registered.status, StatusCode::CREATED);
    assert_eq!(registered.body["name"], "alice");
    assert_eq!(registered.body["admin"], false);
    let public_id = registered.body["public_id"].as_str().expect("public_id").to_string();
    uuid::Uuid::parse_str(&public_id).expect("public_id is a UUID");

    let login = style.login(app, "alice").await;
    assert_eq!(login.status, StatusCode::OK, "{style:?} login: {:?}", login.body);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 1800);
    assert_eq!(login.body["token"], login.body["access_token"], "seed clients read `token`");
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let token = login.body["access_token"].as_str().expect("token").to_string();
    let me = style.call(app, Method::GET, "/users/me", &token, None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        (me.body["public_id"].as_str(), me.body["name"].as_str(), me.body["admin"].as_bool()),
        (Some(&*public_id), Some("alice"), Some(false))
    );

    let author =
        json!({"name": "Kazuo Ishiguro", "book": "The Remains of the Day", "country": "UK", "booker_prize": true});
    let created = style.call(app, Method::POST, "/authors", &token, Some(author)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_i64().expect("id");
    assert_eq!(created.header("location"), Some(&*format!("/authors/{id}")));
    assert_eq!(created.body["created_by"], public_id.as_str());
    assert_eq!(created.body["booker_prize"], true);

    let via_alias = style
        .call(
            app,
            Method::POST,
            "/author",
            &token,
            Some(json!({"name": "Hilary Mantel", "book": "Wolf Hall", "country": "UK"})),
        )
        .await;
    assert_eq!(via_alias.status, StatusCode::CREATED, "the seed's /author alias");
    assert_eq!(via_alias.body["booker_prize"], false, "booker_prize defaults to false");

    let list = style.call(app, Method::GET, "/authors", &token, None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["authors"][0]["name"], "Kazuo Ishiguro");
    let second_page = style.call(app, Method::GET, "/authors?limit=1&offset=1", &token, None).await;
    assert_eq!(second_page.body["authors"].as_array().map(Vec::len), Some(1));
    assert_eq!(second_page.body["authors"][0]["name"], "Hilary Mantel");

    let fetched = style.call(app, Method::GET, &format!("/authors/{id}"), &token, None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created.body);

    let replacement = json!({"name": "  Kazuo Ishiguro ", "book": "Klara and the Sun", "country": "Japan"});
    let updated = style.call(app, Method::PUT, &format!("/authors/{id}"), &token, Some(replacement)).await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(
        (updated.body["name"].as_str(), updated.body["book"].as_str(), updated.body["booker_prize"].as_bool()),
        (Some("Kazuo Ishiguro"), Some("Klara and the Sun"), Some(false))
    );
    assert_eq!(updated.body["created_at"], created.body["created_at"]);

    let deleted = style.call(app, Method::DELETE, &format!("/authors/{id}"), &token, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = style.call(app, Method::GET, &format!("/authors/{id}"), &token, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(style.call(app, Method::GET, "/authors", &token, None).await.body["total"], 1);
}

#[rstest]
#[actix_web::test]
async fn seed_flow_with_basic_login_and_x_access_tokens_header(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    whole_flow(&app, ClientStyle::SeedBasicAndXAccessTokens).await;
}

#[rstest]
#[actix_web::test]
async fn seed_flow_with_json_login_and_bearer_header(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    whole_flow(&app, ClientStyle::JsonAndBearer).await;
}

#[rstest]
#[actix_web::test]
async fn an_admin_may_change_and_delete_any_author(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.user_token("alice").await;
    let created = app.create_author(&alice, "Ben Okri", "The Famished Road").await;
    let path = format!("/authors/{}", created.body["id"]);
    let admin = app.admin_token().await;
    let updated = app
        .send(
            app.request(Method::PUT, &path)
                .bearer_auth(&admin)
                .json(&json!({"name": "Ben Okri", "book": "Starbook", "country": "Nigeria"})),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["created_by"], created.body["created_by"], "the creator stays the creator");
    assert_eq!(app.delete(&path, &admin).await.status, StatusCode::NO_CONTENT);
}

#[rstest]
#[actix_web::test]
async fn health_and_readiness_answer(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let health = app.send(app.request(Method::GET, "/healthz")).await;
    assert_eq!((health.status, health.body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let ready = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!((ready.status, ready.body["status"].as_str()), (StatusCode::OK, Some("ready")));
    assert_eq!(ready.header("x-content-type-options"), Some("nosniff"));
}

#[rstest]
#[actix_web::test]
async fn a_72_byte_password_works_and_every_one_of_its_bytes_counts(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let password = format!("{}A", "p".repeat(71));
    assert_eq!(app.register("longpass", &password).await.status, StatusCode::CREATED);
    assert_eq!(app.login_basic("longpass", &password).await.status, StatusCode::OK);
    assert_eq!(app.login_json("longpass", &password).await.status, StatusCode::OK);
    let differs_in_last_byte = format!("{}B", "p".repeat(71));
    assert_eq!(app.login_basic("longpass", &differs_in_last_byte).await.status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn the_openapi_document_and_the_offline_docs_page_are_served() {
    let app = spawn_app().await;
    let doc = app.send(app.request(Method::GET, "/openapi.json")).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().is_some_and(|version| version.starts_with("3.1")));
    for path in
        ["/register", "/login", "/token/refresh", "/logout", "/authors", "/authors/{id}", "/verify", "/admin/keys"]
    {
        assert!(doc.body["paths"].get(path).is_some(), "{path} is documented");
    }
    let docs = app.client.get(format!("{}/docs", app.address)).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("/openapi.json") && !html.contains("https://"), "self-contained: nothing from a CDN");
}
