//! Several instances on one PostgreSQL database, and PostgreSQL going away. PostgreSQL only.

use crate::helpers::{Backend, PASSWORD, TestApp, TestConfig, kid_of, spawn_app_with};
use reqwest::{Method, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Settings for instances sharing one PostgreSQL database: short polls. `None` when PostgreSQL
/// cannot be reached (the test skips).
fn cluster_config() -> Option<TestConfig> {
    Some(TestConfig {
        issuer: Some("http://library.test".into()),
        key_ring_poll_interval: "200ms".into(),
        revocation_poll_interval: "200ms".into(),
        ..TestConfig::on(Backend::Postgres)?
    })
}

/// Waits (up to `limit`, real time) until `check` holds; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within {limit:?}");
}

async fn status(app: &TestApp, path: &str, token: &str) -> StatusCode {
    app.get(path, token).await.status
}

#[actix_web::test]
async fn two_instances_share_tokens_keys_and_revocations() {
    let Some(config) = cluster_config() else { return };
    let a = spawn_app_with(config.clone()).await;
    let b = spawn_app_with(config).await;
    assert_eq!(a.published_kids().await, b.published_kids().await, "one key ring, one JWKS");

    let alice = a.user_token("alice").await;
    assert_eq!(status(&b, "/authors", &alice).await, StatusCode::OK, "a token from A works at B");
    let bob = b.user_token("bob").await;
    assert_eq!(status(&a, "/authors", &bob).await, StatusCode::OK, "and the other way round");

    // Revocations at A are enforced at B within 2 s.
    let logout = a.logout(&alice).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    within(Duration::from_secs(2), || async { status(&b, "/authors", &alice).await == StatusCode::UNAUTHORIZED }).await;
    let bob_everywhere = a.token_for("bob", PASSWORD).await;
    a.logout_everywhere(&bob_everywhere).await;
    within(Duration::from_secs(2), || async { status(&b, "/verify", &bob).await == StatusCode::UNAUTHORIZED }).await;

    // A rotation at A (3 h later on both clocks, so the next key may sign): B signs with the new
    // key and publishes A's new next key within its poll.
    a.clock.advance(chrono::Duration::hours(3));
    b.clock.advance(chrono::Duration::hours(3));
    let admin = a.admin_token().await;
    let rotated = a.post("/admin/keys/rotate", &admin).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_kid = rotated.body["kid"].as_str().expect("kid").to_string();
    within(Duration::from_secs(3), || async {
        kid_of(&b.token_for("bob", PASSWORD).await) == new_kid && b.published_kids().await == a.published_kids().await
    })
    .await;
}

#[actix_web::test]
async fn sessions_ended_by_their_user_at_one_instance_are_refused_at_the_other() {
    let Some(config) = cluster_config() else { return };
    let a = spawn_app_with(config.clone()).await;
    let b = spawn_app_with(config).await;
    let laptop = a.register_and_login("alice").await;
    let phone = b.login("alice", PASSWORD).await;
    let tablet = b.login("alice", PASSWORD).await;
    assert_eq!(status(&b, "/authors", &phone.access).await, StatusCode::OK);

    let sid = crate::helpers::claim(&tablet.access, "sid");
    let ended = a.delete(&format!("/users/me/sessions/{}", sid.as_str().expect("sid")), &laptop.access).await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    within(Duration::from_secs(2), || async {
        status(&b, "/authors", &tablet.access).await == StatusCode::UNAUTHORIZED
    })
    .await;

    let change = serde_json::json!({"current_password": PASSWORD, "new_password": "another passphrase"});
    let changed = a.send(a.request(Method::PUT, "/users/me/password").bearer_auth(&laptop.access).json(&change)).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{:?}", changed.body);
    within(Duration::from_secs(2), || async {
        status(&b, "/authors", &phone.access).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert_eq!(status(&b, "/authors", &laptop.access).await, StatusCode::OK, "the calling session stays everywhere");
}

#[actix_web::test]
async fn instances_booting_together_on_an_empty_database_make_one_key_ring() {
    let Some(config) = cluster_config() else { return };
    let (a, b) = futures_util::future::join(spawn_app_with(config.clone()), spawn_app_with(config)).await;
    assert_eq!(a.published_kids().await, b.published_kids().await);
    assert_eq!(a.published_kids().await.len(), 2, "one current and one next key, not two rings");
    let (from_a, from_b) = (a.user_token("alice").await, b.token_for("alice", PASSWORD).await);
    assert_eq!(kid_of(&from_a), kid_of(&from_b), "both sign with the same key");
}

/// A TCP proxy to PostgreSQL that can cut every connection and refuse new ones.
struct PgProxy {
    address: String,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl PgProxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (accept_up, accept_connections) = (up.clone(), connections.clone());
        actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_up.load(Ordering::SeqCst) {
                    continue; // refused: dropped at once
                }
                let forward = actix_web::rt::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().expect("lock").push(forward);
            }
        });
        Self { address, up, connections }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[actix_web::test]
async fn a_postgres_outage_is_a_503_and_the_service_recovers() {
    let Some(mut config) = TestConfig::on(Backend::Postgres) else { return };
    let proxy = PgProxy::start().await;
    let database = config.postgres.clone().expect("a PostgreSQL test database");
    config.database_url_override = Some(database.url.replace("127.0.0.1:5432", &proxy.address));
    let app = spawn_app_with(config).await;
    let token = app.user_token("alice").await;
    assert_eq!(app.send(app.request(Method::GET, "/readyz")).await.status, StatusCode::OK);

    proxy.cut();
    let ready = app.send(app.request(Method::GET, "/readyz")).await;
    assert_eq!((ready.status, ready.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    let authors = app.get("/authors", &token).await;
    assert_eq!((authors.status, authors.error_code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
    assert!(!authors.body.to_string().contains("5432"), "no internals in the body");
    assert_eq!(status(&app, "/verify", &token).await, StatusCode::OK, "verification needs no database");

    proxy.restore();
    within(Duration::from_secs(15), || async {
        app.send(app.request(Method::GET, "/readyz")).await.status == StatusCode::OK
            && status(&app, "/authors", &token).await == StatusCode::OK
    })
    .await;
}

/// Pooled connections are not tested before use: after PostgreSQL dropped them all (a restart),
/// the next read finds its connection closed and runs again on another, and so does a write
/// transaction whose BEGIN fails (nothing ran yet), so no request fails.
#[actix_web::test]
async fn after_postgres_drops_every_connection_the_next_read_still_succeeds() {
    let Some(mut config) = TestConfig::on(Backend::Postgres) else { return };
    let proxy = PgProxy::start().await;
    let database = config.postgres.clone().expect("a PostgreSQL test database");
    config.database_url_override = Some(database.url.replace("127.0.0.1:5432", &proxy.address));
    let app = spawn_app_with(config).await;
    let token = app.user_token("alice").await;
    // Several requests at once, so that the pool holds several open connections.
    let statuses = futures_util::future::join_all((0..8).map(|_| status(&app, "/users/me", &token))).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK), "{statuses:?}");

    proxy.cut(); // every connection closed, as by a restart of the server
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    proxy.restore();
    for _ in 0..3 {
        let ready = app.send(app.request(Method::GET, "/readyz")).await;
        assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.body);
    }

    // Open several connections again, drop them all, then write: the transaction begins anew.
    let statuses = futures_util::future::join_all((0..8).map(|_| status(&app, "/users/me", &token))).await;
    assert!(statuses.iter().all(|status| *status == StatusCode::OK), "{statuses:?}");
    proxy.cut();
    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    proxy.restore();
    let body = serde_json::json!({"name": "After Restart", "book": "Reconnected", "country": "PL"});
    let created = app.post_json("/authors", Some(&token), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
}
