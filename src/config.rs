//! One typed [`Settings`] struct, read once from command-line flags and the environment.
//! Every setting is validated here, so a bad value stops the process at start with one line
//! that names the setting (API.md "Configuration").

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use secrecy::{SecretBox, SecretString};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Length of the master key that encrypts private keys at rest (AES-256-GCM).
pub const MASTER_KEY_LEN: usize = 32;

const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest accepted access token lifetime: a revoked token lingers in the deny list that long.
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
const MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(60);
const MAX_ROTATION_INTERVAL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The raw settings as clap reads them; [`Settings::from_args`] checks them.
#[derive(Clone, Args)]
pub struct SettingsArgs {
    /// SQLite path or sqlite://PATH.
    #[arg(long, env = "DATABASE_URL", default_value = "library.db", global = true)]
    pub database_url: String,
    /// Listen address; port 0 picks a free port (the real one is logged).
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub bind_addr: String,
    /// `iss` of every token [default: http://{BIND_ADDR}].
    #[arg(long, env = "ISSUER", global = true)]
    pub issuer: Option<String>,
    /// `aud` of every token.
    #[arg(long, env = "AUDIENCE", default_value = "library-api", global = true)]
    pub audience: String,
    /// Access token lifetime (humantime: 90s, 30m, 1h).
    #[arg(long, env = "ACCESS_TOKEN_TTL", default_value = "30m", global = true)]
    pub access_token_ttl: String,
    /// Refresh token lifetime (humantime).
    #[arg(long, env = "REFRESH_TOKEN_TTL", default_value = "14d", global = true)]
    pub refresh_token_ttl: String,
    /// How long a key signs before the next one takes over.
    #[arg(long, env = "KEY_ROTATION_INTERVAL", default_value = "24h", global = true)]
    pub key_rotation_interval: String,
    /// Size of generated RSA keys: 2048, 3072 or 4096.
    #[arg(long, env = "RSA_KEY_BITS", default_value = "2048", global = true)]
    pub rsa_key_bits: String,
    /// Base64 of 32 bytes that encrypt private keys at rest. Unset: MASTER_KEY_FILE is used.
    #[arg(long, env = "MASTER_KEY", hide_env_values = true, global = true)]
    pub master_key: Option<String>,
    /// File holding the master key [default: {db dir}/library.master.key]; created when missing.
    #[arg(long, env = "MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// bcrypt cost, 4..=31.
    #[arg(long, env = "BCRYPT_COST", default_value = "12", global = true)]
    pub bcrypt_cost: String,
    /// With ADMIN_PASSWORD: this admin is created at start if missing.
    #[arg(long, env = "ADMIN_NAME", global = true)]
    pub admin_name: Option<String>,
    /// With ADMIN_NAME: the password of the admin created at start.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true, global = true)]
    pub admin_password: Option<String>,
    /// How often each instance re-reads the key ring (picks up rotations made elsewhere).
    #[arg(long, env = "KEY_RING_POLL_INTERVAL", default_value = "5s", global = true)]
    pub key_ring_poll_interval: String,
    /// How often each instance picks up revocations made by other instances.
    #[arg(long, env = "REVOCATION_POLL_INTERVAL", default_value = "1s", global = true)]
    pub revocation_poll_interval: String,
    /// Failed logins per account answered without delay; later ones wait 1 s, 2 s, 4 s, …
    #[arg(long, env = "LOGIN_FAILURES_BEFORE_DELAY", default_value = "5", global = true)]
    pub login_failures_before_delay: String,
    /// The longest wait for an account (kept short: an attacker must not lock real users out).
    #[arg(long, env = "LOGIN_DELAY_CAP", default_value = "1m", global = true)]
    pub login_delay_cap: String,
    /// Failed logins per client address answered without delay.
    #[arg(long, env = "IP_FAILURES_BEFORE_DELAY", default_value = "20", global = true)]
    pub ip_failures_before_delay: String,
    /// The longest wait for a client address.
    #[arg(long, env = "IP_DELAY_CAP", default_value = "15m", global = true)]
    pub ip_delay_cap: String,
    /// Comma-separated addresses of reverse proxies whose X-Forwarded-For is trusted.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Verified access tokens kept in memory so a repeated token skips the signature check (0: off).
    #[arg(long, env = "TOKEN_CACHE_SIZE", default_value = "10000", global = true)]
    pub token_cache_size: String,
    /// HTTP worker threads (0: one per CPU core).
    #[arg(long, env = "HTTP_WORKERS", default_value = "0", global = true)]
    pub http_workers: String,
    /// Database connections, and threads of the database actor.
    #[arg(long, env = "DB_POOL_SIZE", default_value = "8", global = true)]
    pub db_pool_size: String,
    /// client_id of the built-in public OAuth client that `/login` and `/token/refresh` use.
    #[arg(long, env = "PUBLIC_CLIENT_ID", default_value = "library-app", global = true)]
    pub public_client_id: String,
    /// How long a client's previous secret keeps working after a rotation (humantime).
    #[arg(long, env = "CLIENT_SECRET_GRACE", default_value = "24h", global = true)]
    pub client_secret_grace: String,
    /// Registrations allowed per client address in each REGISTRATION_WINDOW (0: no limit).
    #[arg(long, env = "REGISTRATIONS_PER_ADDRESS", default_value = "30", global = true)]
    pub registrations_per_address: String,
    /// The window REGISTRATIONS_PER_ADDRESS counts in (humantime, at most 24h).
    #[arg(long, env = "REGISTRATION_WINDOW", default_value = "1h", global = true)]
    pub registration_window: String,
    /// How long a Shared Signals event waits for its receiver before it is dropped (humantime).
    #[arg(long, env = "SSF_EVENT_RETENTION", default_value = "7d", global = true)]
    pub ssf_event_retention: String,
    /// Allow push streams to plain-http endpoints (tests only: Authorization headers in clear).
    #[arg(long, env = "SSF_ALLOW_HTTP", default_value = "false", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub ssf_allow_http: bool,
}

impl std::fmt::Debug for SettingsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "[redacted]");
        f.debug_struct("SettingsArgs")
            .field("database_url", &self.database_url)
            .field("bind_addr", &self.bind_addr)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("rsa_key_bits", &self.rsa_key_bits)
            .field("master_key", &redacted(&self.master_key))
            .field("master_key_file", &self.master_key_file)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("admin_name", &self.admin_name)
            .field("admin_password", &redacted(&self.admin_password))
            .field("key_ring_poll_interval", &self.key_ring_poll_interval)
            .field("revocation_poll_interval", &self.revocation_poll_interval)
            .field("login_failures_before_delay", &self.login_failures_before_delay)
            .field("login_delay_cap", &self.login_delay_cap)
            .field("ip_failures_before_delay", &self.ip_failures_before_delay)
            .field("ip_delay_cap", &self.ip_delay_cap)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("token_cache_size", &self.token_cache_size)
            .field("http_workers", &self.http_workers)
            .field("db_pool_size", &self.db_pool_size)
            .field("public_client_id", &self.public_client_id)
            .field("client_secret_grace", &self.client_secret_grace)
            .field("registrations_per_address", &self.registrations_per_address)
            .field("registration_window", &self.registration_window)
            .field("ssf_event_retention", &self.ssf_event_retention)
            .field("ssf_allow_http", &self.ssf_allow_http)
            .finish()
    }
}

/// Where the master key comes from.
#[derive(Debug)]
pub enum MasterKeySource {
    /// Given directly (MASTER_KEY).
    Inline(SecretBox<[u8; MASTER_KEY_LEN]>),
    /// Read from, or created at, this path (MASTER_KEY_FILE).
    File(PathBuf),
}

/// The admin account to ensure at start (ADMIN_NAME / ADMIN_PASSWORD).
#[derive(Debug)]
pub struct InitialAdmin {
    pub name: String,
    pub password: SecretString,
}

/// Which database, and where.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A `postgres://…` connection URL.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// For logs: a PostgreSQL URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    let credentials = &url[scheme + 3..at];
                    let user = credentials.split(':').next().unwrap_or_default();
                    format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
                }
                _ => url.clone(),
            },
        }
    }
}

/// When failed logins start to cost time, and how much at most (the delays themselves are
/// computed where logins are throttled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures answered without delay; the one that reaches this number starts the delays.
    pub free_failures: i32,
    /// The first delay; each further failure doubles it.
    pub base_delay: chrono::Duration,
    pub max_delay: chrono::Duration,
}

/// The login throttling rules for accounts and for client addresses.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub account: ThrottleRule,
    pub ip: ThrottleRule,
    /// A counter untouched this long starts over.
    pub forget_after: chrono::Duration,
}

/// How many registrations one client address may make per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationLimit {
    /// 0: no limit.
    pub per_address: u32,
    pub window: chrono::Duration,
}

/// Validated settings. Secrets are wrapped so `Debug` cannot print them.
#[derive(Debug)]
pub struct Settings {
    pub database: DatabaseUrl,
    pub bind_addr: SocketAddr,
    pub issuer: Option<String>,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub key_rotation_interval: Duration,
    pub rsa_key_bits: usize,
    pub master_key: MasterKeySource,
    pub bcrypt_cost: u32,
    pub initial_admin: Option<InitialAdmin>,
    pub key_ring_poll_interval: Duration,
    pub revocation_poll_interval: Duration,
    pub login_throttle: LoginThrottle,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub token_cache_size: usize,
    /// HTTP worker threads; 0 means one per CPU core.
    pub http_workers: usize,
    pub db_pool_size: u32,
    pub public_client_id: String,
    pub client_secret_grace: Duration,
    pub registration_limit: RegistrationLimit,
    pub ssf: SsfSettings,
}

/// The Shared Signals transmitter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsfSettings {
    /// Events not acknowledged within this are dropped (and counted).
    pub event_retention: Duration,
    /// Push streams may name `http://` endpoints (tests); otherwise `https://` only.
    pub allow_http: bool,
}

/// A setting that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {reason}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub reason: String,
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { setting, reason: reason.into() }
}

impl Settings {
    pub fn from_args(args: SettingsArgs) -> Result<Self, ConfigError> {
        let database = parse_database_url(&args.database_url)?;
        let master_key = match args.master_key {
            Some(encoded) => {
                MasterKeySource::Inline(parse_master_key(&encoded).map_err(|reason| invalid("MASTER_KEY", reason))?)
            }
            None => MasterKeySource::File(args.master_key_file.unwrap_or_else(|| default_master_key_file(&database))),
        };
        Ok(Self {
            bind_addr: parse_bind_addr(&args.bind_addr)?,
            issuer: parse_issuer(args.issuer)?,
            audience: non_empty("AUDIENCE", args.audience)?,
            access_token_ttl: parse_ttl("ACCESS_TOKEN_TTL", &args.access_token_ttl, MIN_TTL, MAX_ACCESS_TOKEN_TTL)?,
            refresh_token_ttl: parse_ttl(
                "REFRESH_TOKEN_TTL",
                &args.refresh_token_ttl,
                MIN_ROTATION_INTERVAL,
                MAX_ROTATION_INTERVAL,
            )?,
            key_rotation_interval: parse_ttl(
                "KEY_ROTATION_INTERVAL",
                &args.key_rotation_interval,
                MIN_ROTATION_INTERVAL,
                MAX_ROTATION_INTERVAL,
            )?,
            rsa_key_bits: parse_key_bits(&args.rsa_key_bits)?,
            bcrypt_cost: parse_in_range("BCRYPT_COST", &args.bcrypt_cost, 4..=31)?,
            initial_admin: parse_initial_admin(args.admin_name, args.admin_password)?,
            key_ring_poll_interval: parse_ttl(
                "KEY_RING_POLL_INTERVAL",
                &args.key_ring_poll_interval,
                Duration::from_millis(100),
                Duration::from_secs(10),
            )?,
            revocation_poll_interval: parse_ttl(
                "REVOCATION_POLL_INTERVAL",
                &args.revocation_poll_interval,
                Duration::from_millis(100),
                // Revocations must reach every instance within 2 s, query time included.
                Duration::from_secs(1),
            )?,
            login_throttle: LoginThrottle {
                account: throttle_rule(
                    "LOGIN_FAILURES_BEFORE_DELAY",
                    &args.login_failures_before_delay,
                    "LOGIN_DELAY_CAP",
                    &args.login_delay_cap,
                )?,
                ip: throttle_rule(
                    "IP_FAILURES_BEFORE_DELAY",
                    &args.ip_failures_before_delay,
                    "IP_DELAY_CAP",
                    &args.ip_delay_cap,
                )?,
                forget_after: chrono::Duration::hours(1),
            },
            trusted_proxies: parse_trusted_proxies(&args.trusted_proxies)?,
            token_cache_size: parse_in_range("TOKEN_CACHE_SIZE", &args.token_cache_size, 0..=1_000_000)? as usize,
            http_workers: parse_in_range("HTTP_WORKERS", &args.http_workers, 0..=256)? as usize,
            db_pool_size: parse_in_range("DB_POOL_SIZE", &args.db_pool_size, 1..=64)?,
            public_client_id: parse_client_id("PUBLIC_CLIENT_ID", args.public_client_id)?,
            registration_limit: RegistrationLimit {
                per_address: parse_in_range(
                    "REGISTRATIONS_PER_ADDRESS",
                    &args.registrations_per_address,
                    0..=1_000_000,
                )?,
                window: chrono::Duration::from_std(parse_ttl(
                    "REGISTRATION_WINDOW",
                    &args.registration_window,
                    MIN_TTL,
                    Duration::from_secs(24 * 60 * 60),
                )?)
                .map_err(|_| invalid("REGISTRATION_WINDOW", "out of range"))?,
            },
            client_secret_grace: parse_ttl(
                "CLIENT_SECRET_GRACE",
                &args.client_secret_grace,
                Duration::ZERO,
                MAX_ROTATION_INTERVAL,
            )?,
            ssf: SsfSettings {
                event_retention: parse_ttl(
                    "SSF_EVENT_RETENTION",
                    &args.ssf_event_retention,
                    Duration::from_secs(60),
                    MAX_ROTATION_INTERVAL,
                )?,
                allow_http: args.ssf_allow_http,
            },
            database,
            master_key,
        })
    }
}

/// A client id: 1–100 characters of `A-Z a-z 0-9 . _ ~ -`, and not a UUID (a UUID `sub` names
/// a user).
pub fn parse_client_id(setting: &'static str, id: String) -> Result<String, ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".-_~".contains(c);
    if id.is_empty() || id.len() > 100 || !id.chars().all(allowed) {
        return Err(invalid(setting, "expected 1–100 characters of A-Z a-z 0-9 . _ ~ -"));
    }
    if uuid::Uuid::parse_str(&id).is_ok() {
        return Err(invalid(setting, "a client id must not look like a UUID (user ids are UUIDs)"));
    }
    Ok(id)
}

fn parse_database_url(url: &str) -> Result<DatabaseUrl, ConfigError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(DatabaseUrl::Postgres(url.to_string()));
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    if path.is_empty() || path == ":memory:" || path.contains("://") {
        return Err(invalid("DATABASE_URL", "expected a SQLite file path, sqlite://PATH or postgres://…"));
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

/// Beside the SQLite file; in the working directory for PostgreSQL.
fn default_master_key_file(database: &DatabaseUrl) -> PathBuf {
    let dir = match database {
        DatabaseUrl::Sqlite(path) => path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new(".")),
        DatabaseUrl::Postgres(_) => Path::new("."),
    };
    dir.join("library.master.key")
}

/// Decodes a master key: base64 of exactly 32 bytes.
pub fn parse_master_key(encoded: &str) -> Result<SecretBox<[u8; MASTER_KEY_LEN]>, String> {
    let bytes =
        BASE64.decode(encoded.trim()).map_err(|_| "expected base64 of 32 bytes (not valid base64)".to_string())?;
    let key: [u8; MASTER_KEY_LEN] =
        bytes.as_slice().try_into().map_err(|_| format!("expected base64 of 32 bytes, got {} bytes", bytes.len()))?;
    Ok(SecretBox::new(Box::new(key)))
}

/// `HOST:PORT`, or `:PORT` for that port on the loopback interface (never all interfaces by
/// accident).
fn parse_bind_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    let with_host = if value.starts_with(':') { format!("127.0.0.1{value}") } else { value.to_string() };
    with_host
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid("BIND_ADDR", format!("'{value}' is not HOST:PORT")))
}

fn parse_issuer(issuer: Option<String>) -> Result<Option<String>, ConfigError> {
    match issuer {
        None => Ok(None),
        Some(issuer) if issuer.starts_with("https://") || issuer.starts_with("http://") => Ok(Some(issuer)),
        Some(issuer) => Err(invalid("ISSUER", format!("'{issuer}' is not an http(s) URL"))),
    }
}

fn non_empty(setting: &'static str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() { Err(invalid(setting, "must not be empty")) } else { Ok(value) }
}

fn parse_ttl(setting: &'static str, value: &str, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let ttl = humantime::parse_duration(value).map_err(|e| invalid(setting, format!("'{value}': {e}")))?;
    if ttl < min || ttl > max {
        let (min, max) = (humantime::format_duration(min), humantime::format_duration(max));
        return Err(invalid(setting, format!("must be between {min} and {max}")));
    }
    Ok(ttl)
}

fn parse_key_bits(value: &str) -> Result<usize, ConfigError> {
    match value.trim() {
        "2048" => Ok(2048),
        "3072" => Ok(3072),
        "4096" => Ok(4096),
        _ => Err(invalid("RSA_KEY_BITS", format!("'{value}' is not one of 2048, 3072, 4096"))),
    }
}

fn parse_in_range(
    setting: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, ConfigError> {
    value.trim().parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        invalid(setting, format!("'{value}' is not a whole number in {}..={}", range.start(), range.end()))
    })
}

fn throttle_rule(
    failures_setting: &'static str,
    failures: &str,
    cap_setting: &'static str,
    cap: &str,
) -> Result<ThrottleRule, ConfigError> {
    let free_failures = parse_in_range(failures_setting, failures, 1..=1_000)? as i32;
    let cap = parse_ttl(cap_setting, cap, Duration::from_secs(1), Duration::from_secs(24 * 60 * 60))?;
    Ok(ThrottleRule {
        free_failures,
        base_delay: chrono::Duration::seconds(1),
        max_delay: chrono::Duration::from_std(cap).map_err(|_| invalid(cap_setting, "out of range"))?,
    })
}

fn parse_trusted_proxies(value: &str) -> Result<Vec<std::net::IpAddr>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| item.parse().map_err(|_| invalid("TRUSTED_PROXIES", format!("'{item}' is not an IP address"))))
        .collect()
}

fn parse_initial_admin(name: Option<String>, password: Option<String>) -> Result<Option<InitialAdmin>, ConfigError> {
    match (name, password) {
        (None, None) => Ok(None),
        (Some(name), Some(password)) => Ok(Some(InitialAdmin { name, password: SecretString::from(password) })),
        (Some(_), None) => Err(invalid("ADMIN_PASSWORD", "must be set together with ADMIN_NAME")),
        (None, Some(_)) => Err(invalid("ADMIN_NAME", "must be set together with ADMIN_PASSWORD")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    fn settings_from(args: &[&str]) -> Result<Settings, ConfigError> {
        let cli =
            TestCli::try_parse_from(std::iter::once("library-api").chain(args.iter().copied())).expect("flags parse");
        Settings::from_args(cli.settings)
    }

    #[test]
    fn defaults_are_valid_and_put_the_master_key_beside_the_database() {
        let settings = settings_from(&["--database-url", "sqlite://data/lib.db"]).expect("valid");
        assert_eq!(settings.database, DatabaseUrl::Sqlite(PathBuf::from("data/lib.db")));
        assert_eq!(settings.access_token_ttl, Duration::from_secs(30 * 60));
        assert_eq!(settings.rsa_key_bits, 2048);
        assert!(
            matches!(settings.master_key, MasterKeySource::File(ref p) if p == Path::new("data/library.master.key"))
        );
    }

    #[test]
    fn each_bad_setting_is_named_in_the_error() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bcrypt-cost", "3"], "BCRYPT_COST"),
            (&["--bcrypt-cost", "x"], "BCRYPT_COST"),
            (&["--rsa-key-bits", "1024"], "RSA_KEY_BITS"),
            (&["--access-token-ttl", "soon"], "ACCESS_TOKEN_TTL"),
            (&["--access-token-ttl", "0s"], "ACCESS_TOKEN_TTL"),
            (&["--access-token-ttl", "300000years"], "ACCESS_TOKEN_TTL"),
            (&["--bind-addr", "nowhere"], "BIND_ADDR"),
            (&["--key-rotation-interval", "10s"], "KEY_ROTATION_INTERVAL"),
            (&["--refresh-token-ttl", "2s"], "REFRESH_TOKEN_TTL"),
            (&["--login-failures-before-delay", "0"], "LOGIN_FAILURES_BEFORE_DELAY"),
            (&["--ip-delay-cap", "forever"], "IP_DELAY_CAP"),
            (&["--trusted-proxies", "10.0.0.1,nope"], "TRUSTED_PROXIES"),
            (&["--master-key", "c2hvcnQ="], "MASTER_KEY"),
            (&["--master-key", "!!"], "MASTER_KEY"),
            (&["--issuer", "library"], "ISSUER"),
            (&["--admin-name", "root"], "ADMIN_PASSWORD"),
            (&["--database-url", "mysql://localhost/x"], "DATABASE_URL"),
            (&["--database-url", ""], "DATABASE_URL"),
        ];
        for (args, setting) in cases {
            let error = settings_from(args).expect_err(&format!("{args:?} should be rejected"));
            assert_eq!(error.setting, *setting, "{args:?}");
            assert!(error.to_string().contains(setting), "{args:?}: {error}");
        }
    }

    #[test]
    fn postgres_urls_select_postgres_and_never_log_the_password() {
        let settings = settings_from(&["--database-url", "postgres://app:s3cret@db:5432/library"]).expect("valid");
        assert!(matches!(settings.database, DatabaseUrl::Postgres(_)));
        assert_eq!(settings.database.redacted(), "postgres://app:***@db:5432/library");
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn a_bind_address_without_host_means_loopback() {
        let settings = settings_from(&["--bind-addr", ":0"]).expect("valid");
        assert_eq!(settings.bind_addr, "127.0.0.1:0".parse::<SocketAddr>().expect("addr"));
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let args =
            ["--admin-name", "root", "--admin-password", "hunter2hunter2", "--master-key", &BASE64.encode([9u8; 32])];
        let cli = TestCli::try_parse_from(std::iter::once("library-api").chain(args.iter().copied())).expect("flags");
        assert!(!format!("{:?}", cli.settings).contains("hunter2"));
        assert!(!format!("{:?}", cli.settings).contains(&BASE64.encode([9u8; 32])));
        let settings = Settings::from_args(cli.settings).expect("valid");
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
