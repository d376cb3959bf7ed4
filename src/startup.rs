//! Builds the running service from [`Settings`]: database, actors, listener, HTTP server.
//! Tests build it the same way on port 0 and ask which port they got.

use crate::actors::db::Database;
use crate::actors::key_ring::{KeyRingConfig, KeyRingError, KeyRingHandle};
use crate::actors::passwords::{PasswordError, Passwords};
use crate::actors::revocations::{RevocationError, RevocationsHandle};
use crate::clock::SharedClock;
use crate::config::{DatabaseUrl, InitialAdmin, Settings};
use crate::db::{self, DbPool, DbSetupError};
use crate::domain::{Password, UserName};
use crate::http::errors::json_envelope_for_framework_errors;
use crate::http::{self, TrustedProxies};
use crate::key_schedule::KeyPolicy;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::service::Services;
use crate::service::users::{self, AdminSetup};
use crate::tokens::{CLOCK_LEEWAY_SECS, TokenIssuer, TokenVerifier, VerificationPolicy, VerifiedTokenCache};
use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers};
use actix_web::web::Data;
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
    #[error("cannot register the built-in client (PUBLIC_CLIENT_ID): {0}")]
    BuiltinClient(String),
    #[error(
        "ADMIN_NAME {0} belongs to an existing user who is not an admin: choose another ADMIN_NAME, or promote that user if it is really yours"
    )]
    AdminNameTaken(String),
    #[error("cannot create the initial admin: {0}")]
    CreateAdmin(crate::service::users::UserError),
    #[error("invalid ACCESS_TOKEN_TTL or KEY_ROTATION_INTERVAL: out of range")]
    TokenTtl,
}

/// The database layer's name for the database the settings name.
pub fn db_backend(url: &DatabaseUrl) -> db::Backend {
    match url {
        DatabaseUrl::Sqlite(path) => db::Backend::Sqlite(path.clone()),
        DatabaseUrl::Postgres(url) => db::Backend::Postgres(url.clone()),
    }
}

/// Opens the database and applies pending migrations (on a blocking thread).
pub async fn open_database(settings: &Settings) -> Result<db::Connections, StartupError> {
    let (backend, name, size) = (db_backend(&settings.database), settings.database.redacted(), settings.db_pool_size);
    let connections = actix_web::rt::task::spawn_blocking(move || -> Result<db::Connections, DbSetupError> {
        let (connections, applied) = db::open(&backend, &name, size)?;
        for version in applied {
            log::info!("applied migration {version}");
        }
        Ok(connections)
    })
    .await
    .map_err(|e| DbSetupError::Migrate(e.to_string()))??;
    Ok(connections)
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
    services: Data<Services>,
}

impl Application {
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartupError> {
        // Checked before any actor starts, so a bad value stops the start with its message alone.
        let initial_admin = settings.initial_admin.as_ref().map(parse_initial_admin).transpose()?;
        let connections = open_database(&settings).await?;
        let pool = connections.pool.clone();
        let stored_keys = stored_key_count(&pool).await?;
        let master_key = Arc::new(MasterKey::load(&settings.master_key, stored_keys)?);
        let db = Database::start(connections, settings.db_pool_size as usize)?;
        let passwords = Passwords::start(settings.bcrypt_cost).await?;
        let key_ring_config = key_ring_config(&settings)?;
        let name_hasher = crate::service::throttle::NameHasher::new(&master_key.derive("login throttle names"));
        let transmitter = crate::service::ssf::Transmitter::new(settings.ssf, master_key.clone());
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
        let verifier = TokenVerifier::new(
            VerificationPolicy::new(&issuer, &settings.audience),
            key_ring.shared_snapshot(),
            VerifiedTokenCache::new(settings.token_cache_size),
            revocations.deny_list(),
        );
        let issuer = TokenIssuer::new(
            issuer,
            settings.audience.clone(),
            to_chrono(settings.access_token_ttl)?,
            key_ring.shared_snapshot(),
        );
        let views = crate::service::cache::Views::start(
            &db,
            &db_backend(&settings.database),
            &settings.database.redacted(),
            settings.revocation_poll_interval,
        )
        .await?;
        let services = Data::new(Services {
            db,
            passwords,
            key_ring,
            revocations,
            clock,
            issuer,
            verifier,
            refresh_token_ttl: to_chrono(settings.refresh_token_ttl)?,
            login_throttle: settings.login_throttle,
            name_hasher,
            registration_limit: settings.registration_limit,
            public_client_id: settings.public_client_id.clone(),
            client_secret_grace: to_chrono(settings.client_secret_grace)?,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            pool: pool.clone(),
            views,
            ssf: transmitter,
        });
        ensure_builtin_client(&services).await?;
        backfill_user_names(&services).await?;
        if let Some((name, password)) = initial_admin {
            ensure_admin(&services, name, password).await?;
        }
        let trusted_proxies = Data::new(TrustedProxies(settings.trusted_proxies.clone()));
        actix_web::rt::spawn(crate::service::ssf::push::run(services.clone()));

        let server_services = services.clone();
        let server = HttpServer::new(move || {
            let metrics = server_services.metrics.clone();
            App::new()
                .app_data(server_services.clone())
                .app_data(trusted_proxies.clone())
                .app_data(http::path_config())
                .app_data(http::query_config())
                .wrap(ErrorHandlers::new().default_handler(json_envelope_for_framework_errors))
                .wrap(DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
                // Each route counts, times and logs its requests (http::observe).
                .configure(http::routes(&metrics))
                .default_service(http::unmatched(metrics))
        })
        // Slow or idle clients cannot hold a worker's connection slots forever.
        .client_request_timeout(std::time::Duration::from_secs(10))
        .client_disconnect_timeout(std::time::Duration::from_secs(5))
        .keep_alive(std::time::Duration::from_secs(75))
        // SIGTERM / SIGINT: stop accepting, finish in-flight requests (up to 30 s), then exit.
        .shutdown_timeout(30)
        .workers(http_workers(settings.http_workers))
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr: address, source })?
        .run();
        log::info!("listening on http://{address} (issuer {})", services.issuer.issuer);
        Ok(Self { address, server, services })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The service layer's handles, for in-process tests.
    pub fn services(&self) -> Data<Services> {
        self.services.clone()
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// HTTP_WORKERS, with 0 meaning one worker per CPU core (actix-web's default).
fn http_workers(configured: usize) -> usize {
    if configured > 0 { configured } else { std::thread::available_parallelism().map_or(1, usize::from) }
}

/// Registers the built-in public client (PUBLIC_CLIENT_ID) unless it exists.
async fn ensure_builtin_client(services: &Services) -> Result<(), StartupError> {
    let (client_id, now) = (services.public_client_id.clone(), services.clock.now().naive_utc());
    services
        .db
        .write(move |conn| crate::service::clients::ensure_builtin(conn, &client_id, now))
        .await
        .map_err(|e| StartupError::BuiltinClient(e.to_string()))
}

/// Keys and skeletons for the users stored before the name rules (see README "User names");
/// one warning for those left as they were.
async fn backfill_user_names(services: &Services) -> Result<(), StartupError> {
    let legacy = users::backfill_names(services)
        .await
        .map_err(|e| StartupError::Database(DbSetupError::Migrate(format!("user names: {e}"))))?;
    if legacy.total() > 0 {
        log::warn!(
            "{} user name(s) from before the name rules kept as they were: {} refused by the PRECIS profile \
             and {} look-alike(s) of another user's name log in as before; {} spell another user's name \
             once case-mapped and log in only with their own spelling: {:?}",
            legacy.total(),
            legacy.refused,
            legacy.look_alikes,
            legacy.key_taken.len(),
            legacy.key_taken
        );
    }
    Ok(())
}

/// ADMIN_NAME and ADMIN_PASSWORD, checked like any registration.
fn parse_initial_admin(admin: &InitialAdmin) -> Result<(UserName, Password), StartupError> {
    let name = UserName::parse(&admin.name).map_err(|e| StartupError::InitialAdmin(e.message))?;
    let password = Password::parse(admin.password.expose_secret().to_string())
        .map_err(|e| StartupError::InitialAdmin(e.message))?;
    Ok((name, password))
}

/// Creates the ADMIN_NAME admin when no user has that name yet.
async fn ensure_admin(services: &Services, name: UserName, password: Password) -> Result<(), StartupError> {
    let shown = name.as_str().to_string();
    match users::ensure_admin(services, name, password).await {
        Ok(AdminSetup::Created(user)) => log::info!("created admin {} ({})", user.name, user.public_id),
        Ok(AdminSetup::Exists) => log::info!("admin {shown} already exists"),
        Ok(AdminSetup::ExistsNotAdmin) => return Err(StartupError::AdminNameTaken(shown)),
        Err(error) => return Err(StartupError::CreateAdmin(error)),
    }
    Ok(())
}
