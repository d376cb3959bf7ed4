//! What the service tells operators: /metrics, and a graceful shutdown.

use crate::helpers::{ADMIN_NAME, ADMIN_PASSWORD, Backend, PASSWORD, ServerProcess, TestConfig, sample, spawn_app_on};
use reqwest::StatusCode;
use rstest::rstest;
use std::time::{Duration, Instant};

#[rstest]
#[actix_web::test]
async fn metrics_report_requests_tokens_verifications_revocations_and_state(
    #[values(Backend::Sqlite, Backend::Postgres)] backend: Backend,
) {
    let Some(app) = spawn_app_on(backend).await else { return };
    let token = app.user_token("alice").await;
    app.get("/authors", &token).await;
    app.get("/authors", "garbage").await;
    app.logout(&token).await;
    app.get("/authors", &token).await;
    for _ in 0..6 {
        app.login_basic("alice", "wrong password").await;
    }

    let reply = app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics");
    assert_eq!(reply.status(), StatusCode::OK);
    assert!(reply.headers()["content-type"].to_str().expect("type").starts_with("text/plain; version=0.0.4"));
    let text = reply.text().await.expect("text");
    let expect = |series: &str, at_least: f64| {
        let value = sample(&text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"));
        assert!(value >= at_least, "{series} = {value}, expected at least {at_least}");
    };
    expect(r#"library_api_http_requests_total{method="GET",route="/authors",status="200"}"#, 1.0);
    expect(r#"library_api_http_requests_total{method="GET",route="/authors",status="401"}"#, 2.0);
    expect(r#"library_api_http_request_duration_seconds_count{method="GET",route="/authors"}"#, 3.0);
    expect(r#"library_api_tokens_issued_total{grant="password"}"#, 1.0);
    expect(r#"library_api_token_verifications_total{outcome="valid"}"#, 1.0);
    expect(r#"library_api_token_verifications_total{outcome="invalid"}"#, 1.0);
    expect(r#"library_api_token_verifications_total{outcome="revoked"}"#, 1.0);
    expect(r#"library_api_revocations_total{kind="token"}"#, 1.0);
    expect("library_api_login_throttled_total", 1.0);
    expect(r#"library_api_key_ring_keys{state="current"}"#, 1.0);
    expect(r#"library_api_key_ring_keys{state="next"}"#, 1.0);
    expect("library_api_key_ring_seconds_until_rotation", 3600.0);
    expect("library_api_deny_list_entries", 2.0);
    expect(r#"library_api_db_pool_connections{state="idle"}"#, 0.0);
    assert!(!text.contains(PASSWORD) && !text.contains(&token), "no secrets in metrics");
}

#[actix_web::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    // A slow bcrypt (about a second per hash) keeps a login in flight while SIGTERM arrives.
    let config = TestConfig::sqlite();
    let mut server = ServerProcess::start_with(&config, &[("BCRYPT_COST", "14")]);
    let client = reqwest::Client::new();
    let login = client.post(format!("{}/login", server.address)).basic_auth(ADMIN_NAME, Some(ADMIN_PASSWORD)).send();
    let in_flight = actix_web::rt::spawn(login);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id().to_string();
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(signalled.success());
    let response = in_flight.await.expect("task").expect("the in-flight login is answered");
    assert_eq!(response.status(), StatusCode::OK, "the request in flight completes");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean exit: {status:?}");
    assert!(client.get(format!("{}/healthz", server.address)).send().await.is_err(), "no longer listening");
}
