//! `spawn_app()`: the real service on port 0 with its own database (a temporary SQLite file, or
//! a fresh PostgreSQL database under [`on_postgres`]), a manual clock and cheap bcrypt, plus
//! request helpers that read like the API.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use diesel::{Connection as _, PgConnection, RunQueryDsl as _, SqliteConnection};
use library_api::actors::key_ring::open_key;
use library_api::clock::ManualClock;
use library_api::config::{Settings, SettingsArgs};
use library_api::db::DbConn;
use library_api::db::{authors, signing_keys, users};
use library_api::master_key::MasterKey;
use library_api::startup::{Application, StartupError};
use library_api::tokens::SigningKey;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery";
pub const ADMIN_NAME: &str = "root-admin";
pub const ADMIN_PASSWORD: &str = "admin password 1";

/// The PostgreSQL server tests use (trust auth); each test creates and drops its own database.
fn postgres_server() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The backend `TestConfig::default()` uses inside [`on_postgres`].
    static BACKEND: Backend;
}

fn current_backend() -> Backend {
    BACKEND.try_with(|backend| *backend).unwrap_or(Backend::Sqlite)
}

/// Whether PostgreSQL can be reached; without it, PostgreSQL tests skip with a printed reason,
/// unless REQUIRE_POSTGRES=1 makes that a failure.
pub fn postgres_available() -> bool {
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

/// Runs a test body with PostgreSQL as the backend of every `TestConfig::default()` in it.
pub async fn on_postgres(test: impl std::future::Future<Output = ()>) {
    if postgres_available() {
        BACKEND.scope(Backend::Postgres, test).await;
    }
}

/// Runs each listed test (an `async fn()` in the same module) on SQLite and on PostgreSQL:
/// `module::sqlite::name` and `module::postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[actix_web::test] async fn $name() { super::$name().await } )*
        }
        mod postgres {
            $( #[actix_web::test] async fn $name() { $crate::helpers::on_postgres(super::$name()).await } )*
        }
    };
}
pub(crate) use on_both_backends;

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
    /// Set under [`on_postgres`]: the database this test owns.
    pub postgres: Option<Arc<PgDatabase>>,
    pub key_ring_poll_interval: String,
    pub revocation_poll_interval: String,
    /// Reach the database through this URL instead (a proxy that can cut the connection).
    pub database_url_override: Option<String>,
    pub bcrypt_cost: String,
    pub login_failures_before_delay: String,
    pub ip_failures_before_delay: String,
    pub trusted_proxies: String,
}

impl Default for TestConfig {
    fn default() -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("randomness");
        Self {
            dir: Arc::new(tempfile::tempdir().expect("temp dir")),
            master_key: BASE64.encode(key),
            issuer: None,
            audience: "library-api".to_string(),
            key_rotation_interval: "24h".to_string(),
            clock_offset: chrono::Duration::zero(),
            master_key_file: None,
            postgres: (current_backend() == Backend::Postgres).then(|| Arc::new(PgDatabase::create())),
            key_ring_poll_interval: "5s".into(),
            revocation_poll_interval: "1s".into(),
            database_url_override: None,
            bcrypt_cost: "4".into(),
            login_failures_before_delay: "5".into(),
            // Every test client is 127.0.0.1: keep the per-address limit out of other tests' way.
            ip_failures_before_delay: "1000".into(),
            trusted_proxies: String::new(),
        }
    }
}

impl TestConfig {
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
            bind_addr: "127.0.0.1:0".into(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_token_ttl: "30m".into(),
            refresh_token_ttl: "14d".into(),
            key_rotation_interval: self.key_rotation_interval.clone(),
            rsa_key_bits: "2048".into(),
            master_key: if self.master_key_file.is_some() { None } else { Some(self.master_key.clone()) },
            master_key_file: self.master_key_file.clone(),
            bcrypt_cost: self.bcrypt_cost.clone(),
            admin_name: Some(ADMIN_NAME.into()),
            admin_password: Some(ADMIN_PASSWORD.into()),
            key_ring_poll_interval: self.key_ring_poll_interval.clone(),
            revocation_poll_interval: self.revocation_poll_interval.clone(),
            login_failures_before_delay: self.login_failures_before_delay.clone(),
            login_delay_cap: "1m".into(),
            ip_failures_before_delay: self.ip_failures_before_delay.clone(),
            ip_delay_cap: "15m".into(),
            trusted_proxies: self.trusted_proxies.clone(),
            token_cache_size: "10000".into(),
            db_pool_size: "4".into(),
        })
        .expect("test settings are valid")
    }
}

pub struct TestApp {
    pub address: String,
    pub config: TestConfig,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    /// The running app's shared state (actor handles), for white-box checks.
    pub state: actix_web::web::Data<library_api::http::AppState>,
    handle: actix_web::dev::ServerHandle,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestConfig::default()).await
}

pub async fn spawn_app_with(config: TestConfig) -> TestApp {
    try_spawn_app(config).await.expect("the app starts")
}

pub async fn try_spawn_app(config: TestConfig) -> Result<TestApp, StartupError> {
    let clock = Arc::new(ManualClock::new(Utc::now() + config.clock_offset));
    let application = Application::build(config.settings(), clock.clone()).await?;
    let address = format!("http://{}", application.address());
    let (handle, state) = (application.handle(), application.state());
    actix_web::rt::spawn(application.run_until_stopped());
    Ok(TestApp { address, config, clock, client: reqwest::Client::new(), state, handle })
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

    pub async fn register(&self, name: &str, password: &str) -> Reply {
        self.post_json("/register", None, &json!({"name": name, "password": password})).await
    }

    pub async fn login_basic(&self, name: &str, password: &str) -> Reply {
        self.send(self.request(Method::POST, "/login").basic_auth(name, Some(password))).await
    }

    pub async fn login_json(&self, name: &str, password: &str) -> Reply {
        self.post_json("/login", None, &json!({"name": name, "password": password})).await
    }

    /// Registers `name` with [`PASSWORD`] and returns an access token for it.
    pub async fn user_token(&self, name: &str) -> String {
        let registered = self.register(name, PASSWORD).await;
        assert_eq!(registered.status, StatusCode::CREATED, "register {name}: {:?}", registered.body);
        self.token_for(name, PASSWORD).await
    }

    pub async fn token_for(&self, name: &str, password: &str) -> String {
        let login = self.login_basic(name, password).await;
        assert_eq!(login.status, StatusCode::OK, "login {name}: {:?}", login.body);
        login.body["access_token"].as_str().expect("access_token").to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.token_for(ADMIN_NAME, ADMIN_PASSWORD).await
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
        self.state.key_ring.tick().await.expect("key ring tick");
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
        use library_api::schema::{refresh_tokens, revoked_tokens, subject_revocations, token_families};
        let users = users::list(&mut conn).expect("users");
        let authors = authors::page(&mut conn, 100, 0).expect("authors");
        let keys: Vec<(String, String)> =
            signing_keys::list(&mut conn).expect("keys").into_iter().map(|key| (key.kid, key.state)).collect();
        let families: Vec<(String, Option<chrono::NaiveDateTime>)> = token_families::table
            .select((token_families::id, token_families::revoked_at))
            .order(token_families::id)
            .load(&mut conn)
            .expect("families");
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
        format!("{users:?}\n{authors:?}\n{keys:?}\n{families:?}\n{refresh:?}\n{revoked:?}\n{subjects:?}")
    }

    /// The key that signs now, opened with the test's master key: lets tests forge tokens that
    /// differ from real ones in exactly one respect.
    pub fn current_signing_key(&self) -> SigningKey {
        let mut conn = self.db();
        let row = signing_keys::list(&mut conn)
            .expect("keys")
            .into_iter()
            .find(|row| row.state == "current")
            .expect("a current key");
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
