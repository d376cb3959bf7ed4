//! `/verify` for nginx `auth_request`: directly (only 200/401/403 for any input), and behind a
//! real nginx running deploy/nginx/library-api.conf in front of a tiny upstream.

use crate::helpers::{Backend, PASSWORD, TestApp, foreign_signing_key, kid_of, spawn_app, spawn_app_on};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use library_api::clock::Clock as _;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[rstest]
#[actix_web::test]
async fn verify_answers_only_200_401_or_403_whatever_the_request(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let alice = app.user_token("alice").await;
    let admin = app.admin_token().await;
    let methods =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS];
    let queries = ["", "?group=admin", "?group=", "?group=%FF%FE", "?group=a&group=b", "?%%%", "?group", "?x=1&&&="];
    let tokens: [(&str, Option<&str>); 6] = [
        ("no token", None),
        ("alice", Some(&alice)),
        ("admin", Some(&admin)),
        ("garbage", Some("garbage")),
        ("three dots", Some("a.b.c")),
        ("huge", Some(&"x".repeat(20_000))),
    ];
    for method in &methods {
        for query in queries {
            for (name, token) in tokens {
                let mut request = app.request(method.clone(), &format!("/verify{query}")).body("{\"not\": json");
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let reply = app.send(request.header("content-type", "application/xml")).await;
                assert!(
                    matches!(reply.status, StatusCode::OK | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
                    "{method} /verify{query} with {name}: {}",
                    reply.status
                );
                let expected = match (name, query) {
                    // "?%%%" decodes leniently to no parameter at all: no group required.
                    ("alice", "" | "?x=1&&&=" | "?%%%") | ("admin", "" | "?group=admin" | "?x=1&&&=" | "?%%%") => {
                        StatusCode::OK
                    }
                    ("alice" | "admin", _) => StatusCode::FORBIDDEN,
                    _ => StatusCode::UNAUTHORIZED,
                };
                assert_eq!(reply.status, expected, "{method} /verify{query} with {name}");
            }
        }
    }
}

#[rstest]
#[actix_web::test]
async fn verify_passes_the_callers_identity_and_challenges_everyone_else(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    assert_eq!(app.register("Zoë", PASSWORD).await.status, StatusCode::CREATED);
    let zoe = app.token_for("Zoë", PASSWORD).await;
    let me = app.get("/users/me", &zoe).await;

    let ok = app.send(app.request(Method::GET, "/verify").header("x-access-tokens", &zoe)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.header("x-auth-user"), me.body["public_id"].as_str());
    assert_eq!(ok.header("x-auth-name"), Some("Zo%C3%AB"), "percent-encoded UTF-8");
    assert_eq!(ok.header("x-auth-groups"), Some(""));
    let admin = app.send(app.request(Method::GET, "/verify?group=admin").bearer_auth(app.admin_token().await)).await;
    assert_eq!(admin.header("x-auth-groups"), Some("admin"));

    let missing = app.send(app.request(Method::GET, "/verify")).await;
    assert_eq!(missing.header("www-authenticate"), Some(r#"Bearer realm="library-api""#));
    let invalid = app.send(app.request(Method::GET, "/verify").bearer_auth("nope")).await;
    assert_eq!(invalid.header("www-authenticate"), Some(r#"Bearer realm="library-api", error="invalid_token""#));

    app.logout_everywhere(&zoe).await;
    let revoked = app.send(app.request(Method::GET, "/verify").bearer_auth(&zoe)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "logout-all reaches /verify at once, cache or not");
}

#[rstest]
#[actix_web::test]
async fn a_cached_token_is_refused_at_once_after_logout_or_key_deletion(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    for _ in 0..3 {
        assert_eq!(app.send(app.request(Method::GET, "/verify").bearer_auth(&token)).await.status, StatusCode::OK);
    }
    assert!(!app.services.verifier.cache().is_empty(), "the token is cached");
    app.logout(&token).await;
    assert_eq!(
        app.send(app.request(Method::GET, "/verify").bearer_auth(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let other = app.token_for("alice", PASSWORD).await;
    assert_eq!(app.send(app.request(Method::GET, "/verify").bearer_auth(&other)).await.status, StatusCode::OK);
    let kid = kid_of(&other);
    let admin = app.admin_token().await;
    let deleted = app.delete(&format!("/admin/keys/{kid}"), &admin).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.send(app.request(Method::GET, "/verify").bearer_auth(&other)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A hit skips the signature check: the cache answers even when the key map it is given
    // could not verify the token (the real service never does that; this proves the skip).
    let cached = app.token_for("alice", PASSWORD).await;
    let policy = library_api::tokens::VerificationPolicy::new(&app.address, "library-api");
    let ring = app.services.key_ring.snapshot();
    let now = app.clock.now().timestamp();
    app.services.verifier.cache().verify(&cached, &ring.verification_keys, &policy, now).expect("verified and cached");
    let impostor = foreign_signing_key();
    let wrong_keys: library_api::tokens::VerificationKeys =
        ring.verification_keys.keys().map(|kid| (kid.clone(), impostor.decoding_key())).collect();
    assert!(library_api::tokens::verify(&cached, &wrong_keys, &policy, now).is_err(), "these keys cannot verify it");
    assert!(
        app.services.verifier.cache().verify(&cached, &wrong_keys, &policy, now).is_ok(),
        "but the cache hit skips the check"
    );

    let short_lived = app.token_for("alice", PASSWORD).await;
    assert_eq!(app.send(app.request(Method::GET, "/verify").bearer_auth(&short_lived)).await.status, StatusCode::OK);
    app.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(
        app.send(app.request(Method::GET, "/verify").bearer_auth(&short_lived)).await.status,
        StatusCode::UNAUTHORIZED,
        "a cached token never outlives its exp"
    );
}

/// nginx, or the reason it cannot be used here (a failure when REQUIRE_NGINX=1).
fn nginx_binary() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        assert!(std::env::var("REQUIRE_NGINX").as_deref() != Ok("1"), "REQUIRE_NGINX=1 but nginx is not installed");
        eprintln!(
            "skipping: nginx is not installed (apt-get install -y nginx); set REQUIRE_NGINX=1 to make this a failure"
        );
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running nginx (a single process: `master_process off`, so stopping it leaves no workers
/// behind); stopped when dropped.
struct Nginx {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx with the shipped deploy/nginx/library-api.conf, pointed at our ports.
fn start_nginx(binary: &str, library_api: &str, upstream: &str) -> Nginx {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let shipped = include_str!("../../deploy/nginx/library-api.conf");
    let site = shipped
        .replace("server 127.0.0.1:8080;", &format!("server {library_api};"))
        .replace("server 127.0.0.1:9000;", &format!("server {upstream};"))
        .replace("listen 127.0.0.1:8000;", &format!("listen 127.0.0.1:{port};"));
    assert_ne!(site, shipped, "the shipped config names the addresses this test replaces");
    let root = dir.path().display();
    std::fs::write(dir.path().join("library-api.conf"), site).expect("write site");
    let main = format!(
        "daemon off;\nmaster_process off;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {root}/body;\n proxy_temp_path {root}/proxy;\n \
         fastcgi_temp_path {root}/fastcgi;\n uwsgi_temp_path {root}/uwsgi;\n scgi_temp_path {root}/scgi;\n \
         include {root}/library-api.conf;\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), main).expect("write nginx.conf");
    // Workers may run as an unprivileged user: let them into the directory.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let child = Command::new(binary)
        .args(["-p", &root.to_string(), "-c", &format!("{root}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let address = format!("127.0.0.1:{port}");
    let error_log = dir.path().join("error.log");
    // From here on, dropping the guard stops nginx, also when the start fails below.
    let nginx = Nginx { child, address: format!("http://{address}"), _dir: dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return nginx;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nginx did not start: {}", std::fs::read_to_string(error_log).unwrap_or_default());
}

/// The protected app: echoes the path and the X-Auth-* headers it received.
async fn echo(req: HttpRequest) -> HttpResponse {
    let header = |name: &str| req.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_string);
    HttpResponse::Ok().json(json!({
        "path": req.path(),
        "x_auth_user": header("x-auth-user"),
        "x_auth_name": header("x-auth-name"),
        "x_auth_groups": header("x-auth-groups"),
    }))
}

fn start_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr").to_string();
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
    actix_web::rt::spawn(server);
    address
}

async fn through(
    app: &TestApp,
    nginx: &Nginx,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, Value, Option<String>) {
    let mut request = app.client.get(format!("{}{path}", nginx.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("nginx answers");
    let status = response.status();
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

#[actix_web::test]
async fn nginx_auth_request_protects_an_upstream_with_the_shipped_config() {
    let Some(binary) = nginx_binary() else { return };
    let app = spawn_app().await;
    let upstream = start_upstream();
    let nginx = start_nginx(binary, app.address.trim_start_matches("http://"), &upstream);
    let alice = app.user_token("alice").await;
    let alice_id = app.get("/users/me", &alice).await.body["public_id"].as_str().expect("id").to_string();
    let admin = app.admin_token().await;

    let (status, _, challenge) = through(&app, &nginx, "/books", None, &[]).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="library-api""#)),
        "no token"
    );

    let (status, seen, _) = through(&app, &nginx, "/books", Some(&alice), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen, json!({"path": "/books", "x_auth_user": alice_id, "x_auth_name": "alice", "x_auth_groups": null}));

    let forged =
        [("X-Auth-User", "00000000-0000-0000-0000-000000000000"), ("X-Auth-Groups", "admin"), ("X-Auth-Name", "root")];
    let (status, seen, _) = through(&app, &nginx, "/books", Some(&alice), &forged).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (seen["x_auth_user"].as_str(), &seen["x_auth_groups"]),
        (Some(&*alice_id), &Value::Null),
        "forged headers replaced"
    );
    assert_eq!(seen["x_auth_name"], "alice", "forged X-Auth-Name replaced");
    let (status, _, _) = through(&app, &nginx, "/books", None, &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "forged headers alone get nowhere");

    // A header flood from the client never reaches /verify (only the token headers do), so it
    // cannot turn the check into an error that nginx would answer with 500.
    let flood: Vec<(String, String)> = (0..150).map(|i| (format!("x-flood-{i}"), "x".repeat(20))).collect();
    let flood: Vec<(&str, &str)> = flood.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let (status, _, _) = through(&app, &nginx, "/books", Some(&alice), &flood).await;
    // (The echo upstream itself may refuse that many headers with 431: that is its answer,
    // reached only because the check passed.)
    assert!(
        matches!(status, StatusCode::OK | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        "{status}: the check broke"
    );

    let (status, _, _) = through(&app, &nginx, "/admin/stats", Some(&alice), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong group");
    let (status, seen, _) = through(&app, &nginx, "/admin/stats", Some(&admin), &[]).await;
    assert_eq!((status, seen["x_auth_groups"].as_str()), (StatusCode::OK, Some("admin")));

    app.logout(&alice).await;
    let (status, _, challenge) = through(&app, &nginx, "/books", Some(&alice), &[]).await;
    assert_eq!(
        (status, challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="library-api", error="invalid_token""#)),
        "revoked"
    );

    // With library-api down, nginx fails closed with a 500.
    app.halt().await;
    let (status, _, _) = through(&app, &nginx, "/books", Some(&admin), &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

/// The admin gate holds however the path is spelled, as long as an upstream could read it as
/// its `/admin` (Tomcat and Spring match case-insensitively or strip `;` parameters; nginx
/// decodes `%61` before matching but passes the raw URI on), and it leaves other paths alone.
#[actix_web::test]
async fn nginx_gates_admin_paths_however_they_are_spelled() {
    let Some(binary) = nginx_binary() else { return };
    let app = spawn_app().await;
    let upstream = start_upstream();
    let nginx = start_nginx(binary, app.address.trim_start_matches("http://"), &upstream);
    let alice = app.user_token("alice").await;
    let admin = app.admin_token().await;

    let gated = [
        "/admin/x",
        "/ADMIN/x",
        "/Admin/x",
        "/admin;x/y",
        "/%61dmin/x",
        "/%41DMIN/x",
        "/adm%69n;jsessionid=1/x",
        "/admin%3Bx/y",
        "/admin%2Fx",
        "//admin/x",
        "/admin",
        "/ADMIN",
        "/admin;x",
        "/admin.json",
        "/admin/x?group=none",
    ];
    for path in gated {
        let (status, _, challenge) = through(&app, &nginx, path, None, &[]).await;
        assert_eq!((status, challenge.is_some()), (StatusCode::UNAUTHORIZED, true), "{path} without a token");
        let (status, seen, _) = through(&app, &nginx, path, Some(&alice), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} with a token without the admin group: {seen}");
        let (status, seen, _) = through(&app, &nginx, path, Some(&admin), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path} with an admin token");
        let raw = path.split('?').next().unwrap_or(path);
        assert_eq!(
            (seen["path"].as_str(), seen["x_auth_groups"].as_str()),
            (Some(raw), Some("admin")),
            "{path}: the upstream gets the raw path, and the admin's groups"
        );
    }

    // Paths that only begin with the same letters, or hold `admin` further down, need any valid
    // token, no more.
    for path in ["/administrators", "/adminx", "/ADMINISTRATION/x", "/books/admin/x", "/books/admin;x", "/my-admin"] {
        let (status, _, _) = through(&app, &nginx, path, None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without a token");
        let (status, seen, _) = through(&app, &nginx, path, Some(&alice), &[]).await;
        assert_eq!((status, seen["path"].as_str()), (StatusCode::OK, Some(path)), "{path} with any valid token");
    }

    // An empty, `.` or `..` segment with parameters is normalized away by Tomcat or Spring past
    // nginx's idea of the path (`/books/..;/admin/x`, `/.;/admin/x` and `/;/admin/x` are their
    // `/admin/x`): refused, even for admins.
    for path in [
        "/books/..;/admin/x",
        "/books/%2e%2e;/admin/x",
        "/books/..;jsessionid=1/admin/x",
        "/..;/admin",
        "/.;/admin/x",
        "/;/admin/x",
        "/%2e;/admin/x",
    ] {
        for token in [None, Some(alice.as_str()), Some(admin.as_str())] {
            let (status, seen, _) = through(&app, &nginx, path, token, &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {seen}");
        }
    }
}
