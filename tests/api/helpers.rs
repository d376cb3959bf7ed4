//! What the tests share: the real service on port 0 with its own database on a chosen
//! [`Backend`] (a temporary SQLite file, or a fresh PostgreSQL database), a manual clock and cheap
//! bcrypt; request helpers that read like the API (login, refresh, logout); checks of what is
//! stored; and JWT decoding.
//!
//! A test that runs on both backends takes the backend as a parameter:
//!
//! ```text
//! #[rstest]
//! #[actix_web::test]
//! async fn logout_ends_the_session(#[values(Backend::Sqlite, Backend::Postgres)] backend: Backend) {
//!     let Some(app) = spawn_app_on(backend).await else { return }; // PostgreSQL unreachable
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as B64URL};
use chrono::Utc;
use diesel::{Connection as _, PgConnection, RunQueryDsl as _, SqliteConnection};
use library_api::clock::ManualClock;
use library_api::config::{Settings, SettingsArgs};
use library_api::db::DbConn;
use library_api::db::signing_keys::SigningKeyRow;
use library_api::db::{authors, signing_keys, users};
use library_api::key_store::open_key;
use library_api::master_key::MasterKey;
use library_api::startup::{Application, StartupError};
use library_api::tokens::{SigningKey, generate_pkcs8};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _};
use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery";
pub const ADMIN_NAME: &str = "root-admin";
pub const ADMIN_PASSWORD: &str = "admin password 1";

/// The database a test's service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Whether a test can run on this backend here. Without a reachable PostgreSQL, PostgreSQL
    /// tests skip with a printed reason, unless REQUIRE_POSTGRES=1 makes that a failure.
    pub fn available(self) -> bool {
        match self {
            Self::Sqlite => true,
            Self::Postgres => postgres_available(),
        }
    }
}

/// The PostgreSQL server tests use (trust auth); each test creates and drops its own database.
fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn postgres_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let available =
        *AVAILABLE.get_or_init(|| PgConnection::establish(&format!("{}/postgres", postgres_server())).is_ok());
    if !available {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but PostgreSQL is not reachable at {}",
            postgres_server()
        );
        eprintln!(
            "skipping: PostgreSQL is not reachable at {}; set REQUIRE_POSTGRES=1 to make this a failure",
            postgres_server()
        );
    }
    available
}

/// A PostgreSQL database made for one test, dropped with it.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let name = format!("library_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&format!("{}/postgres", postgres_server())).expect("PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create the test database");
        Self { url: format!("{}/{name}", postgres_server()), name }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&format!("{}/postgres", postgres_server())) {
            let _ =
                diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin);
        }
    }
}

/// A fresh random master key, base64 as MASTER_KEY takes it.
pub fn random_master_key() -> String {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("randomness");
    BASE64.encode(key)
}

/// What a test may vary about the service it starts.
#[derive(Clone)]
pub struct TestConfig {
    /// Shared with an earlier app to restart on the same database.
    pub dir: Arc<TempDir>,
    pub master_key: String,
    pub issuer: Option<String>,
    pub audience: String,
    pub key_rotation_interval: String,
    /// Where the app's manual clock starts, relative to the real time.
    pub clock_offset: chrono::Duration,
    /// Read the master key from this file instead of MASTER_KEY.
    pub master_key_file: Option<PathBuf>,
    /// On PostgreSQL: the database this test owns. `None` on SQLite.
    pub postgres: Option<Arc<PgDatabase>>,
    pub key_ring_poll_interval: String,
    pub revocation_poll_interval: String,
    /// Reach the database through this URL instead (a proxy that can cut the connection).
    pub database_url_override: Option<String>,
    pub bcrypt_cost: String,
    pub login_failures_before_delay: String,
    pub ip_failures_before_delay: String,
    pub trusted_proxies: String,
    /// REGISTRATIONS_PER_ADDRESS: every test client is 127.0.0.1, so off unless a test wants it.
    pub registrations_per_address: String,
    /// ADMIN_NAME (with ADMIN_PASSWORD).
    pub admin_name: String,
    /// BIND_ADDR: port 0 unless a test needs a restart on the same address.
    pub bind_addr: String,
}

impl TestConfig {
    /// Settings for a service on `backend`, with a database of its own; `None` when that backend
    /// cannot be reached here (the test then skips, see [`Backend::available`]).
    pub fn on(backend: Backend) -> Option<Self> {
        if !backend.available() {
            return None;
        }
        let postgres = (backend == Backend::Postgres).then(|| Arc::new(PgDatabase::create()));
        Some(Self { postgres, ..Self::sqlite() })
    }

    /// Settings for a service on a temporary SQLite file (for tests of one backend only: the
    /// CLI, SIGKILL durability, files on disk).
    pub fn sqlite() -> Self {
        Self {
            dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            master_key: random_master_key(),
            issuer: None,
            audience: "library-api".to_string(),
            key_rotation_interval: "24h".to_string(),
            clock_offset: chrono::Duration::zero(),
            master_key_file: None,
            postgres: None,
            key_ring_poll_interval: "5s".into(),
            revocation_poll_interval: "1s".into(),
            database_url_override: None,
            bcrypt_cost: "4".into(),
            login_failures_before_delay: "5".into(),
            // Every test client is 127.0.0.1: keep the per-address limit out of other tests' way.
            ip_failures_before_delay: "1000".into(),
            trusted_proxies: String::new(),
            registrations_per_address: "0".into(),
            admin_name: ADMIN_NAME.into(),
            bind_addr: "127.0.0.1:0".into(),
        }
    }

    /// The SQLite file (SQLite-only tests: CLI, SIGKILL durability, files on disk).
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("library.db")
    }

    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database_url_override {
            return url.clone();
        }
        match &self.postgres {
            Some(database) => database.url.clone(),
            None => self.database_path().display().to_string(),
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::from_args(SettingsArgs {
            database_url: self.database_url(),
            bind_addr: self.bind_addr.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_token_ttl: "30m".into(),
            refresh_token_ttl: "14d".into(),
            key_rotation_interval: self.key_rotation_interval.clone(),
            rsa_key_bits: "2048".into(),
            master_key: if self.master_key_file.is_some() { None } else { Some(self.master_key.clone()) },
            master_key_file: self.master_key_file.clone(),
            bcrypt_cost: self.bcrypt_cost.clone(),
            admin_name: Some(self.admin_name.clone()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            key_ring_poll_interval: self.key_ring_poll_interval.clone(),
            revocation_poll_interval: self.revocation_poll_interval.clone(),
            login_failures_before_delay: self.login_failures_before_delay.clone(),
            login_delay_cap: "1m".into(),
            ip_failures_before_delay: self.ip_failures_before_delay.clone(),
            ip_delay_cap: "15m".into(),
            trusted_proxies: self.trusted_proxies.clone(),
            token_cache_size: "10000".into(),
            http_workers: "0".into(),
            db_pool_size: "4".into(),
            public_client_id: "library-app".into(),
            client_secret_grace: "24h".into(),
            registrations_per_address: self.registrations_per_address.clone(),
            registration_window: "1h".into(),
            ssf_event_retention: "7d".into(),
            ssf_allow_http: true,
        })
        .expect("test settings are valid")
    }
}

pub struct TestApp {
    pub address: String,
    pub config: TestConfig,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    /// The running app's service layer (actor handles), for white-box checks.
    pub services: actix_web::web::Data<library_api::service::Services>,
    handle: actix_web::dev::ServerHandle,
}

/// The service on `backend`; `None` when that backend cannot be reached here (the test skips).
pub async fn spawn_app_on(backend: Backend) -> Option<TestApp> {
    Some(spawn_app_with(TestConfig::on(backend)?).await)
}

/// The service on SQLite, for tests of one backend only.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestConfig::sqlite()).await
}

pub async fn spawn_app_with(config: TestConfig) -> TestApp {
    try_spawn_app(config).await.expect("the app starts")
}

pub async fn try_spawn_app(config: TestConfig) -> Result<TestApp, StartupError> {
    let clock = Arc::new(ManualClock::new(Utc::now() + config.clock_offset));
    let application = Application::build(config.settings(), clock.clone()).await?;
    let address = format!("http://{}", application.address());
    let (handle, services) = (application.handle(), application.services());
    actix_web::rt::spawn(application.run_until_stopped());
    Ok(TestApp { address, config, clock, client: reqwest::Client::new(), services, handle })
}

/// A response read whole: status, headers and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        Self { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn error_code(&self) -> &str {
        self.body["error"].as_str().unwrap_or("<no error code>")
    }
}

/// An access token and a refresh token from one login or one refresh.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

impl Session {
    /// The tokens of a successful login or refresh answer.
    pub fn from_reply(reply: &Reply) -> Self {
        Self {
            access: reply.body["access_token"].as_str().expect("access_token").to_string(),
            refresh: reply.body["refresh_token"].as_str().expect("refresh_token").to_string(),
        }
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{}", self.address, path))
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        let mut request = self.request(Method::POST, path).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::GET, path).bearer_auth(token)).await
    }

    /// A POST without a body, with `token` as Bearer.
    pub async fn post(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::POST, path).bearer_auth(token)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.send(self.request(Method::DELETE, path).bearer_auth(token)).await
    }

    pub async fn register(&self, name: &str, password: &str) -> Reply {
        self.post_json("/register", None, &json!({"name": name, "password": password})).await
    }

    pub async fn login_basic(&self, name: &str, password: &str) -> Reply {
        self.send(self.request(Method::POST, "/login").basic_auth(name, Some(password))).await
    }

    pub async fn login_json(&self, name: &str, password: &str) -> Reply {
        self.post_json("/login", None, &json!({"name": name, "password": password})).await
    }

    /// Logs `name` in (Basic), which must succeed: its access and refresh tokens.
    pub async fn login(&self, name: &str, password: &str) -> Session {
        let login = self.login_basic(name, password).await;
        assert_eq!(login.status, StatusCode::OK, "login {name}: {:?}", login.body);
        Session::from_reply(&login)
    }

    /// Registers `name` with [`PASSWORD`], which must succeed, and logs it in.
    pub async fn register_and_login(&self, name: &str) -> Session {
        let registered = self.register(name, PASSWORD).await;
        assert_eq!(registered.status, StatusCode::CREATED, "register {name}: {:?}", registered.body);
        self.login(name, PASSWORD).await
    }

    /// Registers `name` with [`PASSWORD`] and returns an access token for it.
    pub async fn user_token(&self, name: &str) -> String {
        self.register_and_login(name).await.access
    }

    /// An access token from a new login of `name`.
    pub async fn token_for(&self, name: &str, password: &str) -> String {
        self.login(name, password).await.access
    }

    pub async fn admin_token(&self) -> String {
        self.token_for(ADMIN_NAME, ADMIN_PASSWORD).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post_json("/token/refresh", None, &json!({ "refresh_token": refresh_token })).await
    }

    /// Spends `refresh_token`, which must succeed, for a new pair.
    pub async fn refreshed(&self, refresh_token: &str) -> Session {
        let reply = self.refresh(refresh_token).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        Session::from_reply(&reply)
    }

    /// Whether an access token is accepted. `GET /authors` checks the token alone (no lookup of
    /// the user), so this sees exactly what the deny list decides.
    pub async fn access_works(&self, access: &str) -> bool {
        match self.get("/authors", access).await.status {
            StatusCode::OK => true,
            StatusCode::UNAUTHORIZED => false,
            other => panic!("unexpected {other}"),
        }
    }

    /// Whether a refresh token is accepted; a refusal must be 400 `invalid_grant` (RFC 6749 §5.2).
    pub async fn refresh_works(&self, refresh_token: &str) -> bool {
        let reply = self.refresh(refresh_token).await;
        match reply.status {
            StatusCode::OK => true,
            StatusCode::BAD_REQUEST => {
                assert_eq!(reply.error_code(), "invalid_grant");
                false
            }
            other => panic!("unexpected {other}"),
        }
    }

    /// `POST /logout`: ends this token and its session.
    pub async fn logout(&self, token: &str) -> Reply {
        self.post("/logout", token).await
    }

    /// `POST /logout?all=true`: ends every token of the token's user.
    pub async fn logout_everywhere(&self, token: &str) -> Reply {
        self.post("/logout?all=true", token).await
    }

    pub async fn jwks(&self) -> Reply {
        self.send(self.request(Method::GET, "/.well-known/jwks.json")).await
    }

    /// The kids the JWKS publishes now.
    pub async fn published_kids(&self) -> Vec<String> {
        let jwks = self.jwks().await;
        jwks.body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|key| key["kid"].as_str().expect("kid").to_string())
            .collect()
    }

    /// Moves the app's clock and lets the key ring act on the new time.
    pub async fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
        self.services.key_ring.tick().await.expect("key ring tick");
    }

    pub async fn create_author(&self, token: &str, name: &str, book: &str) -> Reply {
        self.post_json("/authors", Some(token), &json!({"name": name, "book": book, "country": "UK"})).await
    }

    /// A direct connection to the app's database, for checking what is stored.
    pub fn db(&self) -> DbConn {
        match &self.config.postgres {
            Some(database) => DbConn::Postgres(PgConnection::establish(&database.url).expect("open the test database")),
            None => DbConn::Sqlite(
                SqliteConnection::establish(&self.config.database_path().display().to_string())
                    .expect("open the test database"),
            ),
        }
    }

    /// Everything stored in users and authors, to show that a rejected request changed nothing.
    pub fn stored_rows(&self) -> String {
        let mut conn = self.db();
        use diesel::prelude::*;
        use library_api::schema::{refresh_tokens, revoked_tokens, sessions, subject_revocations};
        let users = users::list(&mut conn).expect("users");
        let authors = authors::page(&mut conn, &library_api::domain::Page::parse(Some(100), None, None).expect("page"))
            .expect("authors");
        let keys: Vec<(String, String)> =
            signing_keys::list(&mut conn).expect("keys").into_iter().map(|key| (key.kid, key.state)).collect();
        let sessions: Vec<(String, Option<chrono::NaiveDateTime>)> = sessions::table
            .select((sessions::id, sessions::revoked_at))
            .order(sessions::id)
            .load(&mut conn)
            .expect("sessions");
        let refresh: Vec<(String, Option<chrono::NaiveDateTime>)> = refresh_tokens::table
            .select((refresh_tokens::token_hash, refresh_tokens::spent_at))
            .order(refresh_tokens::token_hash)
            .load(&mut conn)
            .expect("refresh");
        let revoked: Vec<String> = revoked_tokens::table
            .select(revoked_tokens::jti)
            .order(revoked_tokens::jti)
            .load(&mut conn)
            .expect("revoked");
        let subjects: Vec<String> = subject_revocations::table
            .select(subject_revocations::subject)
            .order(subject_revocations::subject)
            .load(&mut conn)
            .expect("subjects");
        // Login counters are left out: a failed login is meant to change them.
        format!("{users:?}\n{authors:?}\n{keys:?}\n{sessions:?}\n{refresh:?}\n{revoked:?}\n{subjects:?}")
    }

    /// Every stored signing key, oldest first.
    fn stored_keys(&self) -> Vec<SigningKeyRow> {
        signing_keys::list(&mut self.db()).expect("keys")
    }

    /// The stored row of key `kid`: its private key sealed by the master key.
    pub fn stored_key(&self, kid: &str) -> SigningKeyRow {
        self.stored_keys().into_iter().find(|row| row.kid == kid).unwrap_or_else(|| panic!("no stored key {kid}"))
    }

    /// The private key of `kid` as stored, opened with the test's master key (PKCS#8 DER).
    pub fn private_key_der(&self, kid: &str) -> Vec<u8> {
        let row = self.stored_key(kid);
        self.master_key().open(kid, &row.private_key_enc).expect("opens with the master key").to_vec()
    }

    /// The public key of `kid` as a verifier would hold it (PEM): for algorithm-confusion attacks.
    pub fn public_key_pem(&self, kid: &str) -> String {
        rsa::PrivateKey::from_pkcs8_der(&self.private_key_der(kid))
            .expect("der")
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("pem")
    }

    /// The key that signs now, opened with the test's master key: lets tests forge tokens that
    /// differ from real ones in exactly one respect.
    pub fn current_signing_key(&self) -> SigningKey {
        let row = self.stored_keys().into_iter().find(|row| row.state == "current").expect("a current key");
        open_key(&self.master_key(), &row).expect("the key opens")
    }

    pub fn master_key(&self) -> MasterKey {
        let bytes: [u8; 32] = BASE64.decode(&self.config.master_key).expect("base64").try_into().expect("32 bytes");
        MasterKey::from_bytes(&bytes)
    }

    /// Stops the server, keeping this handle (its client, its database) usable.
    pub async fn halt(&self) {
        self.handle.stop(true).await;
    }

    pub async fn stop(self) -> TestConfig {
        self.handle.stop(true).await;
        self.config
    }
}

/// A signing key of no ring of ours.
pub fn foreign_signing_key() -> SigningKey {
    SigningKey::from_pkcs8(&generate_pkcs8(2048).expect("generate")).expect("parse")
}

/// The `kid` in a JWT's header.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).expect("header").kid.expect("kid")
}

/// A JWT segment (base64url, unpadded) decoded as JSON.
pub fn decode_segment(segment: &str) -> Value {
    serde_json::from_slice(&B64URL.decode(segment).expect("base64url")).expect("json")
}

/// JSON encoded as a JWT segment (base64url, unpadded).
pub fn encode_segment(value: &Value) -> String {
    B64URL.encode(value.to_string())
}

/// A JWT's header and claims, decoded without verifying anything.
pub fn jwt_segments(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || decode_segment(parts.next().expect("segment"));
    (next(), next())
}

/// One claim of a JWT (`Value::Null` when absent), decoded without verifying anything.
pub fn claim(token: &str, name: &str) -> Value {
    jwt_segments(token).1[name].clone()
}

/// The server binary built by cargo, as a process of its own (for SIGKILL and SIGTERM), on the
/// SQLite file of `config`.
pub struct ServerProcess {
    pub child: Child,
    pub address: String,
}

impl ServerProcess {
    /// Starts the binary and waits for its "listening on" line.
    pub fn start(config: &TestConfig) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &TestConfig, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_library-api"));
        for (name, value) in env {
            command.env(name, value);
        }
        if !env.iter().any(|(name, _)| *name == "BCRYPT_COST") {
            command.env("BCRYPT_COST", "4");
        }
        let mut child = command
            .env("DATABASE_URL", config.database_path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("MASTER_KEY", &config.master_key)
            .env("ADMIN_NAME", ADMIN_NAME)
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "info")
            // Every test client is 127.0.0.1.
            .env("REGISTRATIONS_PER_ADDRESS", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr");
        let (found, address) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let address = address.recv_timeout(Duration::from_secs(60)).expect("the server reports its address");
        Self { child, address }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// The admin's login, which must succeed: an access token.
    pub async fn admin_token(&self, client: &reqwest::Client) -> String {
        let reply = client
            .post(format!("{}/login", self.address))
            .basic_auth(ADMIN_NAME, Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("login");
        assert_eq!(reply.status(), StatusCode::OK);
        reply.json::<Value>().await.expect("json")["access_token"].as_str().expect("token").to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample line (`name{labels} value`) of a Prometheus text exposition.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
