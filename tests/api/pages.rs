//! `GET /authors` pages: keyset pagination (`after`) with an RFC 8288 `Link` to the next page,
//! `ETag` / 304, and the in-memory views behind `/authors` and `/users/me`, which no write may
//! leave stale: on SQLite not past the next request (whoever writes, another process included),
//! on PostgreSQL not past the poll interval for another instance's writes.

use crate::helpers::{Backend, Reply, TestApp, TestConfig, spawn_app, spawn_app_on, spawn_app_with};
use chrono::Utc;
use diesel::RunQueryDsl as _;
use library_api::db::{authors, users};
use library_api::domain::parse_author;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::json;
use std::time::{Duration, Instant};

/// Creates `count` authors with `token`; their ids in order.
async fn create_authors(app: &TestApp, token: &str, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for n in 0..count {
        let created = app.create_author(token, &format!("Author {n}"), &format!("Book {n}")).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        ids.push(created.body["id"].as_i64().expect("id"));
    }
    ids
}

fn ids_of(page: &Reply) -> Vec<i64> {
    page.body["authors"].as_array().expect("authors").iter().map(|author| author["id"].as_i64().expect("id")).collect()
}

/// The target of a `Link: <…>; rel="next"` header.
fn next_link(page: &Reply) -> Option<String> {
    let link = page.header("link")?;
    let target = link.strip_prefix('<')?.split_once('>')?;
    assert_eq!(target.1, r#"; rel="next""#, "{link}");
    Some(target.0.to_string())
}

async fn get_if_none_match(app: &TestApp, path: &str, token: &str, tags: &[&str]) -> Reply {
    let mut request = app.request(Method::GET, path).bearer_auth(token);
    for tag in tags {
        request = request.header("if-none-match", *tag);
    }
    app.send(request).await
}

#[actix_web::test]
async fn bad_page_queries_are_refused_with_a_json_error() {
    let app = spawn_app().await;
    let token = app.user_token("pager").await;
    let cases = [
        ("after=1&offset=0", StatusCode::BAD_REQUEST, "invalid_query", "after with offset"),
        ("offset=3&after=0", StatusCode::BAD_REQUEST, "invalid_query", "offset with after"),
        ("after=abc", StatusCode::BAD_REQUEST, "invalid_query", "non-numeric after"),
        ("after=1.5", StatusCode::BAD_REQUEST, "invalid_query", "fractional after"),
        ("after=", StatusCode::BAD_REQUEST, "invalid_query", "empty after"),
        ("after=99999999999999999999", StatusCode::BAD_REQUEST, "invalid_query", "after beyond 64 bits"),
        ("after=-1", StatusCode::UNPROCESSABLE_ENTITY, "invalid_page", "negative after"),
        ("after=5&limit=0", StatusCode::UNPROCESSABLE_ENTITY, "invalid_page", "limit 0 with after"),
        ("after=5&limit=101", StatusCode::UNPROCESSABLE_ENTITY, "invalid_page", "limit 101 with after"),
        ("limit=-1", StatusCode::UNPROCESSABLE_ENTITY, "invalid_page", "negative limit"),
        ("offset=-1", StatusCode::UNPROCESSABLE_ENTITY, "invalid_page", "negative offset"),
        ("before=3", StatusCode::BAD_REQUEST, "invalid_query", "unknown parameter"),
    ];
    for (query, status, code, case) in cases {
        let reply = app.get(&format!("/authors?{query}"), &token).await;
        assert_eq!((reply.status, reply.error_code()), (status, code), "{case}: {query} → {:?}", reply.body);
        assert!(reply.body["message"].is_string(), "{case}: the JSON envelope");
    }
}

#[rstest]
#[actix_web::test]
async fn following_link_next_visits_every_author_exactly_once(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("walker").await;
    let mut ids = create_authors(&app, &token, 8).await;
    // A gap: keyset pages do not depend on ids being dense.
    assert_eq!(app.delete(&format!("/authors/{}", ids.remove(3)), &token).await.status, StatusCode::NO_CONTENT);

    let mut seen = Vec::new();
    let mut path = "/authors?limit=3".to_string();
    let mut pages = 0;
    loop {
        let page = app.get(&path, &token).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {:?}", page.body);
        assert_eq!(page.body["total"], 7, "{path}");
        seen.extend(ids_of(&page));
        pages += 1;
        match next_link(&page) {
            Some(next) => {
                assert!(next.starts_with("/authors?after="), "relative, keyset: {next}");
                path = next;
            }
            None => break,
        }
        assert!(pages < 10, "the walk ends");
    }
    assert_eq!(seen, ids, "every author once, in id order");
    assert_eq!(pages, 3, "3 + 3 + 1");

    // An exactly full last page has no next page either.
    let last_two = app.get(&format!("/authors?after={}&limit=2", ids[4]), &token).await;
    assert_eq!((ids_of(&last_two), next_link(&last_two)), (ids[5..].to_vec(), None));
    // Offset pages (old clients) get the same keyset link from their last row.
    let offset_page = app.get("/authors?limit=2&offset=2", &token).await;
    assert_eq!(ids_of(&offset_page), ids[2..4].to_vec());
    assert_eq!(next_link(&offset_page), Some(format!("/authors?after={}&limit=2", ids[3])));
    // Past the end: an empty page with the total, and no link.
    for path in [format!("/authors?after={}", ids[6]), "/authors?after=99999999999".into(), "/authors?offset=50".into()]
    {
        let empty = app.get(&path, &token).await;
        assert_eq!((empty.status, ids_of(&empty), next_link(&empty)), (StatusCode::OK, vec![], None), "{path}");
        assert_eq!(empty.body["total"], 7, "{path}");
    }
}

#[rstest]
#[actix_web::test]
async fn etags_are_stable_answer_304_on_if_none_match_and_change_after_a_write(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("etags").await;
    let ids = create_authors(&app, &token, 2).await;

    for path in ["/authors?limit=10", &format!("/authors/{}", ids[0])] {
        let first = app.get(path, &token).await;
        let etag = first.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 20, "strong and quoted: {etag}");
        assert_eq!(app.get(path, &token).await.header("etag"), Some(&*etag), "{path}: stable across requests");

        let weak = format!("W/{etag}");
        let list = format!(r#""nope", {etag}"#);
        let matching: [&[&str]; 5] = [&[&etag], &[&weak], &[&list], &["*"], &[r#""other""#, &etag]];
        for tags in matching {
            let reply = get_if_none_match(&app, path, &token, tags).await;
            assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{path} with {tags:?}");
            assert_eq!(reply.header("etag"), Some(&*etag), "{path}: the 304 names the tag");
            assert_eq!(reply.header("cache-control"), Some("private, no-cache"), "{path}");
            assert_eq!(reply.body, serde_json::Value::Null, "{path}: no body");
        }
        for tags in [&[r#""other""#][..], &["garbage"], &[""]] {
            let reply = get_if_none_match(&app, path, &token, tags).await;
            assert_eq!((reply.status, reply.header("etag")), (StatusCode::OK, Some(&*etag)), "{path} with {tags:?}");
            assert_eq!(reply.header("cache-control"), Some("private, no-cache"), "{path}");
        }
    }

    let before = app.get("/authors?limit=10", &token).await.header("etag").map(str::to_string);
    let renamed = app
        .send(
            app.request(Method::PUT, &format!("/authors/{}", ids[0]))
                .bearer_auth(&token)
                .json(&json!({"name": "Renamed", "book": "Book 0", "country": "UK"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    let after = app.get("/authors?limit=10", &token).await;
    assert_ne!(after.header("etag").map(str::to_string), before, "a write changes the tag");
    let stale = get_if_none_match(&app, "/authors?limit=10", &token, &[before.as_deref().expect("tag")]).await;
    assert_eq!(stale.status, StatusCode::OK, "the old tag no longer matches");
    assert_eq!(stale.body["authors"][0]["name"], "Renamed");
}

/// Names of the authors `GET /authors` lists.
async fn listed_names(app: &TestApp, token: &str) -> Vec<String> {
    let page = app.get("/authors", token).await;
    assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
    page.body["authors"].as_array().expect("authors").iter().map(|a| a["name"].as_str().expect("name").into()).collect()
}

#[rstest]
#[actix_web::test]
async fn writes_through_the_api_are_visible_on_the_very_next_request(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let session = app.register_and_login("writer").await;
    let token = session.access;
    let admin = app.admin_token().await;

    // Authors: create, update, delete, each seen by the next read of a page read before.
    assert_eq!(listed_names(&app, &token).await, Vec::<String>::new());
    let id = create_authors(&app, &token, 1).await[0];
    assert_eq!(listed_names(&app, &token).await, ["Author 0"]);
    let path = format!("/authors/{id}");
    let replacement = json!({"name": "Author zero", "book": "Book 0", "country": "UK"});
    let updated = app.send(app.request(Method::PUT, &path).bearer_auth(&token).json(&replacement)).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(listed_names(&app, &token).await, ["Author zero"]);
    assert_eq!(app.delete(&path, &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(listed_names(&app, &token).await, Vec::<String>::new());

    // Users: a role change is seen by the next /users/me (the change ends old tokens: log in again).
    let me = app.get("/users/me", &token).await;
    assert_eq!(me.body["admin"], false);
    let public_id = me.body["public_id"].as_str().expect("public_id").to_string();
    let promoted = app
        .send(
            app.request(Method::PATCH, &format!("/users/{public_id}"))
                .bearer_auth(&admin)
                .json(&json!({"admin": true})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{:?}", promoted.body);
    let token = app.token_for("writer", crate::helpers::PASSWORD).await;
    assert_eq!(app.get("/users/me", &token).await.body["admin"], true);

    // A deleted user's authors lose their creator at once.
    create_authors(&app, &token, 1).await;
    assert_eq!(app.get("/authors", &admin).await.body["authors"][0]["created_by"], public_id.as_str());
    assert_eq!(app.delete(&format!("/users/{public_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/authors", &admin).await.body["authors"][0]["created_by"], serde_json::Value::Null);
}

#[actix_web::test]
async fn on_sqlite_a_write_by_another_connection_is_visible_on_the_next_request() {
    // Another connection to the same file: what the CLI (`library-api user create`, another
    // process) or any other writer does.
    let app = spawn_app().await;
    let token = app.user_token("bystander").await;
    create_authors(&app, &token, 1).await;
    assert_eq!(listed_names(&app, &token).await, ["Author 0"]);
    let me = app.get("/users/me", &token).await;
    assert_eq!(me.body["admin"], false);
    let public_id = me.body["public_id"].as_str().expect("public_id").to_string();

    let mut conn = app.db();
    let creator = users::find_by_public_id(&mut conn, &public_id).expect("query").expect("the user");
    let fields = parse_author("Written elsewhere", "Another book", "FR", false).expect("valid");
    authors::insert(&mut conn, &fields, creator.id, Utc::now().naive_utc()).expect("insert");
    assert_eq!(listed_names(&app, &token).await, ["Author 0", "Written elsewhere"]);

    users::set_admin(&mut conn, &public_id, true).expect("update");
    assert_eq!(app.get("/users/me", &token).await.body["admin"], true, "the same token, the new record");

    let first = listed_names(&app, &token).await;
    let first_id = app.get("/authors", &token).await.body["authors"][0]["id"].as_i64().expect("id");
    authors::delete(&mut conn, i32::try_from(first_id).expect("i32")).expect("delete");
    assert_eq!(listed_names(&app, &token).await, first[1..].to_vec());
}

#[actix_web::test]
async fn repeated_pages_and_user_records_are_served_from_memory() {
    // White-box: with migration 14's triggers gone, a change no longer moves the table versions,
    // so a page or record served before is served again as it was: it comes from memory.
    let app = spawn_app().await;
    let token = app.user_token("cached").await;
    create_authors(&app, &token, 1).await;
    let page = app.get("/authors", &token).await;
    let me = app.get("/users/me", &token).await;
    let mut conn = app.db();
    use diesel::connection::SimpleConnection as _;
    conn.batch_execute(
        "DROP TRIGGER authors_version_insert; DROP TRIGGER authors_version_update; DROP TRIGGER users_version_update;",
    )
    .expect("drop the triggers");
    // A table change that is not counted, then any counted one (the page must not be re-read
    // merely because something else was committed).
    diesel::sql_query("UPDATE authors SET name = 'Changed'").execute(&mut conn).expect("update");
    diesel::sql_query("UPDATE users SET admin = true").execute(&mut conn).expect("update");
    assert_eq!(app.get("/authors", &token).await.body, page.body, "the page from memory");
    assert_eq!(app.get("/users/me", &token).await.body, me.body, "the record from memory");
    // A write through the service (its insert trigger is gone too): this process's own writes
    // invalidate without the counts.
    assert_eq!(app.create_author(&token, "Second", "Second book").await.status, StatusCode::CREATED);
    assert_eq!(listed_names(&app, &token).await, ["Changed", "Second"]);
}

#[actix_web::test]
async fn on_postgres_another_instances_write_is_visible_within_the_poll_interval() {
    let Some(config) = TestConfig::on(Backend::Postgres) else { return };
    // One issuer, so that a token from a works at b.
    let config =
        TestConfig { issuer: Some("http://library.test".into()), revocation_poll_interval: "200ms".into(), ..config };
    let a = spawn_app_with(config.clone()).await;
    let b = spawn_app_with(config).await;
    let token = a.user_token("watcher").await;
    create_authors(&a, &token, 1).await;
    assert_eq!(listed_names(&a, &token).await, ["Author 0"], "cached at a");
    let me = a.get("/users/me", &token).await;
    assert_eq!(me.body["admin"], false, "cached at a");
    let public_id = me.body["public_id"].as_str().expect("public_id").to_string();

    // An author written through b, a user changed behind both instances' backs.
    let created = b.create_author(&token, "From b", "Book b").await;
    assert_eq!(created.status, StatusCode::CREATED);
    users::set_admin(&mut b.db(), &public_id, true).expect("update");

    let started = Instant::now();
    let limit = Duration::from_secs(2);
    loop {
        let names = listed_names(&a, &token).await;
        let admin = a.get("/users/me", &token).await.body["admin"].clone();
        if names == ["Author 0", "From b"] && admin == true {
            break;
        }
        assert!(started.elapsed() < limit, "not seen within {limit:?}: {names:?}, admin {admin}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("another instance's writes seen after {:?} (poll interval 200 ms)", started.elapsed());
}
