//! The verifier crate and its example resource server, started next to the service (issue 16):
//! tokens work at the example; logouts, session ends, demotions, user and client deletions reach it within
//! two seconds with no call per request to the service; rotations and key deletion fail no
//! request but the deleted key's; a storm of unknown `kid`s costs one key set fetch per
//! cooldown; with the service stopped, cached keys keep verifying and the follower resumes.

use crate::helpers::{
    ADMIN_NAME, ADMIN_PASSWORD, PASSWORD, TestApp, TestConfig, claim, encode_segment, foreign_signing_key, spawn_app,
    spawn_app_with,
};
use library_api::clock::Clock as _;
use library_api_verifier::Verifier;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::time::{Duration, Instant};

// `allow`, not `expect`: rustc does not count dead code inside a module towards an expectation on it.
#[allow(dead_code, reason = "the example reads its settings from the environment; the tests set them")]
#[path = "../../verifier/examples/resource_server.rs"]
mod resource_server;

/// How soon a revocation at the service must reach the example.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(2);

/// The example resource server, running in this test.
struct Example {
    address: String,
    verifier: Verifier,
    client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl Example {
    async fn start(verifier: Verifier) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let server = resource_server::serve(verifier.clone(), listener).expect("serve");
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self { address, verifier, client: reqwest::Client::new(), handle }
    }

    /// The example as its `main` configures it, following revocations as `client`.
    async fn following(app: &TestApp, client: (String, String), deny_list_file: Option<std::path::PathBuf>) -> Self {
        let settings = resource_server::Settings {
            issuer_url: app.address.clone(),
            audience: "library-api".into(),
            bind_addr: "127.0.0.1:0".parse().expect("address"),
            ssf_client: Some(client),
            deny_list_file,
        };
        Self::start(settings.verifier().await.expect("the verifier starts")).await
    }

    /// `GET path` with `token`: status and JSON body.
    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the example answers");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    async fn status(&self, path: &str, token: &str) -> StatusCode {
        self.get(path, Some(token)).await.0
    }

    /// Asks `/whoami` with `token` until it is refused; fails if that takes longer than `deadline`.
    async fn refused_within(&self, token: &str, deadline: Duration, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            match self.status("/whoami", token).await {
                StatusCode::UNAUTHORIZED => return started.elapsed(),
                StatusCode::OK => {}
                other => panic!("{what}: unexpected {other}"),
            }
            assert!(started.elapsed() < deadline, "{what}: still accepted after {deadline:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// A confidential client with scope `ssf` for the example's follower: its id and secret.
async fn ssf_client(app: &TestApp, admin: &str, name: &str) -> (String, String) {
    let reply = app
        .post_json("/admin/clients", Some(admin), &json!({"name": name, "confidential": true, "scope": "ssf"}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    (reply.body["client_id"].as_str().expect("id").into(), reply.body["client_secret"].as_str().expect("secret").into())
}

/// A client-credentials access token of the client.
async fn client_token(app: &TestApp, client_id: &str, secret: &str) -> String {
    let request = app
        .request(reqwest::Method::POST, "/oauth/token")
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    let reply = app.send(request).await;
    reply.body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token for {client_id}: {:?}", reply.body))
        .to_string()
}

/// Requests the service has answered, by route, from its metrics.
async fn requests_by_route(app: &TestApp) -> Vec<(String, f64)> {
    let metrics = app.client.get(format!("{}/metrics", app.address)).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    metrics
        .lines()
        .filter(|line| line.starts_with("library_api_http_requests_total{"))
        .filter_map(|line| {
            let route = line.split("route=\"").nth(1)?.split('"').next()?.to_string();
            Some((route, line.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// Requests answered on `route`.
async fn requests_on(app: &TestApp, route: &str) -> f64 {
    requests_by_route(app).await.iter().filter(|(seen, _)| seen == route).map(|(_, count)| count).sum()
}

/// Requests answered on any route but the revocation stream's polls and the metrics themselves.
async fn requests_but_polls(app: &TestApp) -> f64 {
    let routes = requests_by_route(app).await;
    routes.iter().filter(|(route, _)| !route.starts_with("/ssf/poll") && route != "/metrics").map(|(_, n)| n).sum()
}

fn public_id(reply: &crate::helpers::Reply) -> String {
    reply.body["public_id"].as_str().expect("public_id").to_string()
}

/// Registers `name` and returns its public id.
async fn register(app: &TestApp, name: &str) -> String {
    let reply = app.register(name, PASSWORD).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    public_id(&reply)
}

async fn set_admin(app: &TestApp, admin: &str, public_id: &str, promoted: bool) {
    let request = app
        .request(reqwest::Method::PATCH, &format!("/users/{public_id}"))
        .bearer_auth(admin)
        .json(&json!({"admin": promoted}));
    assert_eq!(app.send(request).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn the_example_serves_valid_tokens_and_refuses_each_kind_of_revocation_within_two_seconds() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let example = Example::following(&app, ssf_client(&app, &admin, "resource-server").await, None).await;

    // A token works, and the example answers with its claims.
    let alice = app.register_and_login("alice").await;
    let (status, _, body) = example.get("/whoami", Some(&alice.access)).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    assert_eq!(
        body,
        json!({"sub": claim(&alice.access, "sub"), "name": "alice", "groups": [], "scope": claim(&alice.access, "scope")})
    );
    assert_eq!(example.status("/admin-only", &alice.access).await, StatusCode::FORBIDDEN);
    assert_eq!(example.status("/admin-only", &admin).await, StatusCode::OK);

    // RFC 6750 §3: no token is a bare challenge; a bad one names invalid_token.
    let (status, headers, _) = example.get("/whoami", None).await;
    assert_eq!(
        (status, headers.get("www-authenticate").map(|v| v.to_str().expect("ascii"))),
        (StatusCode::UNAUTHORIZED, Some("Bearer realm=\"library-api\""))
    );
    let (status, headers, body) = example.get("/whoami", Some("not.a.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"].to_str().expect("ascii").contains("error=\"invalid_token\""));
    assert_eq!(body["error"], "invalid_token");

    // Verification makes no call to the service: only the follower's polls reach it.
    let before = requests_but_polls(&app).await;
    for _ in 0..50 {
        assert_eq!(example.status("/whoami", &alice.access).await, StatusCode::OK);
    }
    assert_eq!(requests_but_polls(&app).await, before, "requests to the service while verifying");

    // A logout.
    assert_eq!(app.logout(&alice.access).await.status, StatusCode::NO_CONTENT);
    example.refused_within(&alice.access, REVOCATION_DEADLINE, "after a logout").await;

    // A session ended from another session; the other session is untouched.
    let (kept, ended) = (app.login("alice", PASSWORD).await, app.login("alice", PASSWORD).await);
    assert_eq!(example.status("/whoami", &ended.access).await, StatusCode::OK);
    let sid = claim(&ended.access, "sid");
    let reply = app.delete(&format!("/users/me/sessions/{}", sid.as_str().expect("sid")), &kept.access).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    example.refused_within(&ended.access, REVOCATION_DEADLINE, "after the session ended").await;
    assert_eq!(example.status("/whoami", &kept.access).await, StatusCode::OK);

    // A demotion: the admin's old token no longer passes; a new login is a plain user.
    let bob_id = register(&app, "bob").await;
    set_admin(&app, &admin, &bob_id, true).await;
    let bob = app.login("bob", PASSWORD).await;
    assert_eq!(example.status("/admin-only", &bob.access).await, StatusCode::OK);
    set_admin(&app, &admin, &bob_id, false).await;
    example.refused_within(&bob.access, REVOCATION_DEADLINE, "after the demotion").await;
    let bob_again = app.login("bob", PASSWORD).await;
    assert_eq!(example.status("/whoami", &bob_again.access).await, StatusCode::OK);
    assert_eq!(example.status("/admin-only", &bob_again.access).await, StatusCode::FORBIDDEN);

    // A deletion.
    let carol_id = register(&app, "carol").await;
    let carol = app.login("carol", PASSWORD).await;
    assert_eq!(example.status("/whoami", &carol.access).await, StatusCode::OK);
    assert_eq!(app.delete(&format!("/users/{carol_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    example.refused_within(&carol.access, REVOCATION_DEADLINE, "after the deletion").await;

    // A deleted client's own tokens.
    let (service_id, service_secret) = ssf_client(&app, &admin, "doomed service").await;
    let service_token = client_token(&app, &service_id, &service_secret).await;
    let (status, _, body) = example.get("/whoami", Some(&service_token)).await;
    assert_eq!((status, &body["sub"]), (StatusCode::OK, &json!(service_id)));
    assert_eq!(app.delete(&format!("/admin/clients/{service_id}"), &admin).await.status, StatusCode::NO_CONTENT);
    example.refused_within(&service_token, REVOCATION_DEADLINE, "after the client's deletion").await;

    let stats = example.verifier.stats();
    assert!(stats.revocations_applied >= 5, "{stats:?}");
    assert_eq!(requests_on(&app, "/.well-known/jwks.json").await, 1.0, "one key set fetch, at start");
    example.stop().await;
}

/// The time the service's next key starts signing.
async fn next_activation(app: &TestApp) -> chrono::DateTime<chrono::Utc> {
    let keys = app.get("/admin/keys", &app.admin_token().await).await;
    keys.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["state"] == "next")
        .and_then(|key| key["activates_at"].as_str())
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .expect("a next key with its activation time")
        .with_timezone(&chrono::Utc)
}

/// The example, revalidating the key set every second or two (so that a key's deletion shows
/// within a test).
async fn example_revalidating_often(app: &TestApp) -> Example {
    let verifier = Verifier::builder(&app.address, "library-api")
        .key_set_max_age_bounds(Duration::from_secs(1), Duration::from_secs(2))
        .build()
        .await
        .expect("the verifier starts");
    Example::start(verifier).await
}

/// Asks for each token until every one is accepted or refused as `expected` says.
async fn assert_statuses(example: &Example, tokens: &[String], expected: &[StatusCode]) {
    for (index, (token, expected)) in tokens.iter().zip(expected).enumerate() {
        assert_eq!(
            example.status("/whoami", token).await,
            *expected,
            "token {index} ({})",
            crate::helpers::kid_of(token)
        );
    }
}

#[actix_web::test]
async fn a_scheduled_rotation_fails_no_request_and_a_deleted_key_fails_only_its_own_tokens() {
    // The service's clock starts so that its next key activates ten seconds from now: tokens
    // issued on either side of the scheduled rotation are valid by the example's real clock.
    let interval = chrono::Duration::hours(24);
    let config = TestConfig { clock_offset: chrono::Duration::seconds(10) - interval, ..TestConfig::sqlite() };
    let app = spawn_app_with(config).await;
    let activation = next_activation(&app).await;
    app.advance(activation - app.clock.now() - chrono::Duration::seconds(5)).await;
    let example = example_revalidating_often(&app).await;
    register(&app, "dora").await;
    let mut tokens = vec![app.token_for("dora", PASSWORD).await];

    app.advance(chrono::Duration::seconds(10)).await;
    tokens.push(app.token_for("dora", PASSWORD).await);
    let (old_kid, new_kid) = (crate::helpers::kid_of(&tokens[0]), crate::helpers::kid_of(&tokens[1]));
    assert_ne!(old_kid, new_kid, "the next key signs after the scheduled rotation");
    assert_statuses(&example, &tokens, &[StatusCode::OK, StatusCode::OK]).await;

    // Deleting the retired key: its token is refused once the example revalidates; the other
    // never fails meanwhile.
    let admin = app.token_for(ADMIN_NAME, ADMIN_PASSWORD).await;
    assert_eq!(app.delete(&format!("/admin/keys/{old_kid}"), &admin).await.status, StatusCode::NO_CONTENT);
    let started = Instant::now();
    while example.status("/whoami", &tokens[0]).await == StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(5), "the deleted key's token is still accepted");
        assert_eq!(example.status("/whoami", &tokens[1]).await, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_statuses(&example, &tokens, &[StatusCode::UNAUTHORIZED, StatusCode::OK]).await;
    example.stop().await;
}

#[actix_web::test]
async fn a_forced_rotation_fails_no_request() {
    // The service's keys were made three hours ago, so the next one has been published long
    // enough for a forced rotation; its clock is then brought to the real time.
    let config = TestConfig { clock_offset: -chrono::Duration::hours(3), ..TestConfig::sqlite() };
    let app = spawn_app_with(config).await;
    app.advance(chrono::Utc::now() - app.clock.now()).await;
    let example = example_revalidating_often(&app).await;
    register(&app, "dora").await;
    let mut tokens = vec![app.token_for("dora", PASSWORD).await];

    let admin = app.token_for(ADMIN_NAME, ADMIN_PASSWORD).await;
    let rotated = app.post("/admin/keys/rotate", &admin).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    tokens.push(app.token_for("dora", PASSWORD).await);
    assert_ne!(crate::helpers::kid_of(&tokens[0]), crate::helpers::kid_of(&tokens[1]));
    assert_statuses(&example, &tokens, &[StatusCode::OK, StatusCode::OK]).await;
    example.stop().await;
}

/// A token shaped like the service's, signed by a key of no ring, naming `kid`.
fn token_with_kid(kid: &str, like: &str) -> String {
    let key = foreign_signing_key_once();
    let header = encode_segment(&json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}));
    let payload = like.split('.').nth(1).expect("payload");
    key.sign_raw(&header, payload).expect("sign")
}

fn foreign_signing_key_once() -> &'static library_api::tokens::SigningKey {
    static KEY: std::sync::OnceLock<library_api::tokens::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(foreign_signing_key)
}

#[actix_web::test]
async fn a_storm_of_unknown_kids_costs_at_most_one_key_set_fetch_per_cooldown() {
    let app = spawn_app().await;
    let cooldown = Duration::from_secs(2);
    let verifier = Verifier::builder(&app.address, "library-api")
        .unknown_kid_cooldown(cooldown)
        .build()
        .await
        .expect("the verifier starts");
    let example = Example::start(verifier).await;
    let good = app.user_token("erin").await;

    for storm in 1..=2 {
        let before = requests_on(&app, "/.well-known/jwks.json").await;
        let forged: Vec<String> = (0..200).map(|i| token_with_kid(&format!("storm-{storm}-{i}"), &good)).collect();
        let started = Instant::now();
        let statuses =
            futures_util::future::join_all(forged.iter().map(|token| example.status("/whoami", token))).await;
        assert!(statuses.iter().all(|status| *status == StatusCode::UNAUTHORIZED), "storm {storm}: {statuses:?}");
        assert_eq!(example.status("/whoami", &good).await, StatusCode::OK, "a good token during storm {storm}");
        let fetches = requests_on(&app, "/.well-known/jwks.json").await - before;
        assert!(started.elapsed() < cooldown, "the storm outlasted the cooldown; the bound below would not hold");
        assert!(fetches <= 1.0, "storm {storm}: {fetches} key set fetches within one cooldown");
        tokio::time::sleep(cooldown).await;
    }
    let stats = example.verifier.stats();
    assert!(stats.unknown_kids_refused > 0 && stats.key_set_fetches <= 3, "{stats:?}");
    example.stop().await;
}

/// A port free now, for a service that must come back on the same address.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

#[actix_web::test]
async fn with_the_service_stopped_cached_keys_keep_verifying_and_the_follower_resumes_when_it_returns() {
    let config = TestConfig { bind_addr: format!("127.0.0.1:{}", free_port()), ..TestConfig::sqlite() };
    let app = spawn_app_with(config).await;
    let admin = app.admin_token().await;
    let example = Example::following(&app, ssf_client(&app, &admin, "resource-server").await, None).await;
    register(&app, "frank").await;
    let (seen, unseen, later) = (
        app.token_for("frank", PASSWORD).await,
        app.token_for("frank", PASSWORD).await,
        app.token_for("frank", PASSWORD).await,
    );
    assert_eq!(example.status("/whoami", &seen).await, StatusCode::OK);

    let config = app.stop().await;
    let started = Instant::now();
    while example.verifier.stats().revocation_poll_failures == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the follower never noticed the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A token it has verified before, and one it has not: the cached keys verify both.
    assert_eq!(example.status("/whoami", &seen).await, StatusCode::OK);
    assert_eq!(example.status("/whoami", &unseen).await, StatusCode::OK);

    let app = spawn_app_with(config).await;
    assert_eq!(app.logout(&later).await.status, StatusCode::NO_CONTENT);
    let took = example.refused_within(&later, Duration::from_secs(10), "a logout after the service returned").await;
    assert!(example.verifier.stats().revocation_stream_connected);
    eprintln!("the follower resumed; the logout reached the example after {took:?}");
    example.stop().await;
}

#[actix_web::test]
async fn a_restarted_example_remembers_revocations_from_its_deny_list_file() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let client = ssf_client(&app, &admin, "resource-server").await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let file = directory.path().join("deny-list.json");
    let token = app.user_token("grace").await;

    let example = Example::following(&app, client.clone(), Some(file.clone())).await;
    assert_eq!(example.status("/whoami", &token).await, StatusCode::OK);
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    example.refused_within(&token, REVOCATION_DEADLINE, "after a logout").await;
    example.stop().await;
    let saved = std::fs::read_to_string(&file).expect("the deny list was saved");
    assert!(saved.contains(claim(&token, "sid").as_str().expect("sid")), "{saved}");

    // The event was acknowledged: only the file can tell the new example about it.
    let restarted = Example::following(&app, client, Some(file)).await;
    assert_eq!(restarted.status("/whoami", &token).await, StatusCode::UNAUTHORIZED);
    restarted.stop().await;
}

#[actix_web::test]
async fn the_follower_enables_a_paused_stream_and_requests_the_events_it_follows() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (client_id, secret) = ssf_client(&app, &admin, "resource-server").await;
    let receiver = client_token(&app, &client_id, &secret).await;
    let session_revoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
    let body = json!({"delivery": {"method": "urn:ietf:rfc:8936"}, "events_requested": [session_revoked]});
    let stream = app.post_json("/ssf/stream", Some(&receiver), &body).await;
    assert_eq!(stream.status, StatusCode::CREATED, "{:?}", stream.body);
    let stream_id = stream.body["stream_id"].as_str().expect("stream_id").to_string();
    let paused =
        app.post_json("/ssf/status", Some(&receiver), &json!({"stream_id": stream_id, "status": "paused"})).await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);

    let example = Example::following(&app, (client_id, secret), None).await;
    let status = app.get(&format!("/ssf/status?stream_id={stream_id}"), &receiver).await;
    assert_eq!(status.body["status"], "enabled");
    let configuration = app.get(&format!("/ssf/stream?stream_id={stream_id}"), &receiver).await;
    let requested = configuration.body["events_requested"].as_array().expect("events_requested").len();
    assert_eq!(requested, 4, "{:?}", configuration.body);

    let token = app.user_token("heidi").await;
    assert_eq!(example.status("/whoami", &token).await, StatusCode::OK);
    assert_eq!(app.logout(&token).await.status, StatusCode::NO_CONTENT);
    example.refused_within(&token, REVOCATION_DEADLINE, "after a logout").await;
    example.stop().await;
}
