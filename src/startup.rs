//! Builds the running service from [`Settings`]: database, actors, listener, HTTP server.
//! Tests build it the same way on port 0 and ask which port they got.

use crate::actors::db::Database;
use crate::actors::key_ring::{KeyRingConfig, KeyRingError, KeyRingHandle};
use crate::actors::passwords::{PasswordError, Passwords};
use crate::actors::revocations::{RevocationError, RevocationsHandle};
use crate::clock::SharedClock;
use crate::config::{InitialAdmin, Settings};
use crate::db::{self, DbPool, DbSetupError, users};
use crate::domain::{Password, UserName};
use crate::http::errors::json_envelope_for_framework_errors;
use crate::http::{self, AppState, TokenSettings};
use crate::key_schedule::KeyPolicy;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::tokens::{CLOCK_LEEWAY_SECS, VerificationPolicy, VerifiedTokenCache};
use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Logger};
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use secrecy::ExposeSecret;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// Why the service could not start. Each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Database(#[from] DbSetupError),
    #[error("key ring: {0}")]
    KeyRing(#[from] KeyRingError),
    #[error("revocations: {0}")]
    Revocations(#[from] RevocationError),
    #[error("password hasher: {0}")]
    Passwords(#[from] PasswordError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid ADMIN_NAME/ADMIN_PASSWORD: {0}")]
    InitialAdmin(String),
    #[error("invalid ACCESS_TOKEN_TTL or KEY_ROTATION_INTERVAL: out of range")]
    TokenTtl,
}

/// Opens the database and applies pending migrations (on a blocking thread).
pub async fn open_database(settings: &Settings) -> Result<DbPool, StartupError> {
    let (url, size) = (settings.database.clone(), settings.db_pool_size);
    let pool = actix_web::rt::task::spawn_blocking(move || -> Result<DbPool, DbSetupError> {
        let pool = db::connect(&url, size)?;
        let mut conn = pool.get().map_err(|e| DbSetupError::Open { url: url.redacted(), reason: e.to_string() })?;
        for version in db::run_migrations(&mut conn)? {
            log::info!("applied migration {version}");
        }
        Ok(pool)
    })
    .await
    .map_err(|e| DbSetupError::Migrate(e.to_string()))??;
    Ok(pool)
}

fn to_chrono(duration: std::time::Duration) -> Result<chrono::Duration, StartupError> {
    chrono::Duration::from_std(duration).map_err(|_| StartupError::TokenTtl)
}

/// Key size and schedule from the settings.
pub fn key_ring_config(settings: &Settings) -> Result<KeyRingConfig, StartupError> {
    let policy = KeyPolicy {
        rotation_interval: to_chrono(settings.key_rotation_interval)?,
        token_lifetime: to_chrono(settings.access_token_ttl)? + chrono::Duration::seconds(CLOCK_LEEWAY_SECS),
    };
    Ok(KeyRingConfig { key_bits: settings.rsa_key_bits, policy, poll_interval: settings.key_ring_poll_interval })
}

/// How many signing keys are stored (decides whether a missing master key file may be created).
pub async fn stored_key_count(pool: &DbPool) -> Result<usize, StartupError> {
    let pool = pool.clone();
    let count = actix_web::rt::task::spawn_blocking(move || -> Result<i64, DbSetupError> {
        let mut conn = pool.get().map_err(|e| DbSetupError::Migrate(e.to_string()))?;
        crate::db::signing_keys::count(&mut conn).map_err(|e| DbSetupError::Migrate(e.to_string()))
    })
    .await
    .map_err(|e| DbSetupError::Migrate(e.to_string()))??;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// A service that is listening and ready to run.
pub struct Application {
    address: SocketAddr,
    server: Server,
    state: Data<AppState>,
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartupError> {
        let pool = open_database(&settings).await?;
        let stored_keys = stored_key_count(&pool).await?;
        let master_key = Arc::new(MasterKey::load(&settings.master_key, stored_keys)?);
        let db = Database::start(pool.clone(), settings.db_pool_size as usize);
        let passwords = Passwords::start(settings.bcrypt_cost).await?;
        let key_ring_config = key_ring_config(&settings)?;
        let key_ring = KeyRingHandle::start(db.clone(), master_key, key_ring_config, clock.clone()).await?;
        let revocations = RevocationsHandle::start(
            db.clone(),
            clock.clone(),
            key_ring_config.policy.token_lifetime,
            settings.revocation_poll_interval,
        )
        .await?;

        let listener = TcpListener::bind(settings.bind_addr)
            .map_err(|source| StartupError::Bind { addr: settings.bind_addr, source })?;
        let address =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.bind_addr, source })?;
        let issuer = settings.issuer.clone().unwrap_or_else(|| format!("http://{address}"));
        let tokens = TokenSettings {
            policy: VerificationPolicy::new(&issuer, &settings.audience),
            issuer,
            audience: settings.audience.clone(),
            access_token_ttl: to_chrono(settings.access_token_ttl)?,
            refresh_token_ttl: to_chrono(settings.refresh_token_ttl)?,
        };
        let token_cache = VerifiedTokenCache::new(settings.token_cache_size);
        let state = Data::new(AppState {
            db,
            passwords,
            key_ring,
            revocations,
            clock,
            tokens,
            token_cache,
            login_throttle: settings.login_throttle,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            pool: pool.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
        });
        if let Some(admin) = &settings.initial_admin {
            ensure_admin(&state, admin).await?;
        }

        let server_state = state.clone();
        let server = HttpServer::new(move || {
            let metrics = server_state.metrics.clone();
            App::new()
                .app_data(server_state.clone())
                .app_data(http::path_config())
                .app_data(http::query_config())
                .wrap(ErrorHandlers::new().default_handler(json_envelope_for_framework_errors))
                .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
                // Per-route request counts and latencies for /metrics.
                .wrap_fn(move |req, service| {
                    let (metrics, started, method) =
                        (metrics.clone(), std::time::Instant::now(), req.method().to_string());
                    let response = service.call(req);
                    async move {
                        let response = response.await?;
                        let route = response.request().match_pattern().unwrap_or_else(|| "unmatched".into());
                        let status = response.status().as_u16().to_string();
                        metrics.http_requests.with_label_values(&[&route, &method, &status]).inc();
                        metrics
                            .http_duration
                            .with_label_values(&[&route, &method])
                            .observe(started.elapsed().as_secs_f64());
                        Ok(response)
                    }
                })
                // One line per request: address, method, route, path, status, size, time. Never
                // query strings, headers or bodies, which may hold secrets.
                .wrap(
                    Logger::new("%a %{method}xi %{route}xo %U %s %b %Dms")
                        .custom_request_replace("method", |req| req.method().to_string())
                        .custom_response_replace("route", |res| {
                            res.request().match_pattern().unwrap_or_else(|| "unmatched".into())
                        }),
                )
                .configure(http::routes)
                .default_service(web::to(http::not_found))
        })
        // Slow or idle clients cannot hold a worker's connection slots forever.
        .client_request_timeout(std::time::Duration::from_secs(10))
        .client_disconnect_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(75))
        // SIGTERM / SIGINT: stop accepting, finish in-flight requests (up to 30 s), then exit.
        .shutdown_timeout(30)
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr: address, source })?
        .run();
        log::info!("listening on http://{address} (issuer {})", state.tokens.issuer);
        Ok(Self { address, server, state })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The shared state, for in-process tests.
    pub fn state(&self) -> Data<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Creates the ADMIN_NAME admin when no user has that name yet.
async fn ensure_admin(state: &AppState, admin: &InitialAdmin) -> Result<(), StartupError> {
    let name = UserName::parse(&admin.name).map_err(|e| StartupError::InitialAdmin(e.message))?;
    let password = Password::parse(admin.password.expose_secret().to_string())
        .map_err(|e| StartupError::InitialAdmin(e.message))?;
    let key = name.key();
    let existing = state
        .db
        .query(move |conn| users::find_by_name_key(conn, &key))
        .await
        .map_err(|e| StartupError::InitialAdmin(e.to_string()))?;
    if existing.is_some() {
        log::info!("admin {} already exists", name.as_str());
        return Ok(());
    }
    let hash = state.passwords.hash(password.expose()).await?;
    match http::create_user(state, name, hash, true).await {
        Ok(user) => log::info!("created admin {} ({})", user.name, user.public_id),
        // Another instance starting at the same moment created it first.
        Err(http::errors::AppError::Conflict { .. }) => log::info!("admin {} already exists", admin.name),
        Err(error) => return Err(StartupError::InitialAdmin(error.to_string())),
    }
    Ok(())
}
