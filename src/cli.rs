//! The command line: `serve` (default), `migrate`, `user create`, `keys list`.

use crate::actors::key_ring::{KeyRingError, TICK_INTERVAL, build_update, generate_keys, key_times, open_key};
use crate::clock::{Clock as _, SystemClock};
use crate::config::MasterKeySource;
use crate::config::{ConfigError, Settings, SettingsArgs};
use crate::db::{self, DbSetupError, signing_keys, users};
use crate::domain::{Password, UserName};
use crate::key_schedule::plan_rotation;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::startup::key_ring_config;
use crate::startup::{Application, StartupError};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "library-api", version, about = "Users, RS256 access tokens with a JWKS, and a small authors API.")]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Inspect the signing key ring.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password comes from LIBRARY_PASSWORD or a prompt.
    Create {
        name: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the stored keys and their states (no key material is printed).
    List,
    /// Rotate now: the next key starts signing, the current one retires, a new next key is made.
    /// A running service picks the change up within seconds.
    Rotate,
    /// Re-encrypt every private key under a new master key (master key rotation). Stop the
    /// service first, then start it with MASTER_KEY_FILE set to the new file.
    Rewrap {
        /// File holding the new master key (base64 of 32 bytes); created (mode 0600) if missing.
        #[arg(long)]
        new_master_key_file: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Database(#[from] DbSetupError),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("key ring: {0}")]
    KeyRing(#[from] KeyRingError),
    #[error("{0}")]
    Failed(String),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let settings = Settings::from_args(cli.settings)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::User { command: UserCommand::Create { name, admin } } => create_user(&settings, &name, admin),
        Command::Keys { command: KeysCommand::List } => list_keys(&settings),
        Command::Keys { command: KeysCommand::Rotate } => rotate_keys(&settings),
        Command::Keys { command: KeysCommand::Rewrap { new_master_key_file } } => {
            rewrap_keys(&settings, &new_master_key_file)
        }
    }
}

fn serve(settings: Settings) -> Result<(), CliError> {
    actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings, Arc::new(SystemClock)).await?;
        application.run_until_stopped().await.map_err(|e| CliError::Failed(format!("server stopped: {e}")))
    })
}

/// Opens the database and applies pending migrations, printing what was applied.
fn migrate(settings: &Settings) -> Result<(), CliError> {
    let (_, applied) = open_migrated(settings)?;
    println!("{} migration(s) applied to {}", applied.len(), settings.database.redacted());
    for version in applied {
        println!("  {version}");
    }
    Ok(())
}

/// Opens the database, applies pending migrations, and returns the pool and what was applied.
fn open_migrated(settings: &Settings) -> Result<(db::DbPool, Vec<String>), CliError> {
    let pool = db::connect(&settings.database, 1)?;
    let mut conn = pool.get().map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let applied = db::run_migrations(&mut conn)?;
    drop(conn);
    Ok((pool, applied))
}

fn create_user(settings: &Settings, name: &str, admin: bool) -> Result<(), CliError> {
    let name = UserName::parse(name).map_err(|e| CliError::Failed(e.message))?;
    let password = match std::env::var("LIBRARY_PASSWORD") {
        Ok(password) => password,
        Err(_) => rpassword::prompt_password(format!("Password for {}: ", name.as_str()))
            .map_err(|e| CliError::Failed(format!("cannot read the password: {e}")))?,
    };
    let password = Password::parse(password).map_err(|e| CliError::Failed(e.message))?;
    // Password::parse bounded it to 72 bytes, all of which bcrypt uses.
    let hash = bcrypt::hash(password.expose(), settings.bcrypt_cost).map_err(|e| CliError::Failed(e.to_string()))?;
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get().map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let now = chrono::Utc::now().naive_utc();
    let user =
        users::create(&mut conn, name.as_str(), &name.key(), &hash, admin, now).map_err(
            |e| match db::unique_violation(&e) {
                Some(_) => CliError::Failed(format!("the name {} is already taken", name.as_str())),
                None => CliError::Failed(format!("database: {e}")),
            },
        )?;
    println!("created {} {} ({})", if user.admin { "admin" } else { "user" }, user.name, user.public_id);
    Ok(())
}

fn list_keys(settings: &Settings) -> Result<(), CliError> {
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get().map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let keys = signing_keys::list(&mut conn).map_err(|e| CliError::Failed(format!("database: {e}")))?;
    println!("{:<44} {:<8} {:<20} {:<20} {:<20}", "KID", "STATE", "CREATED", "ACTIVATES", "RETIRES");
    for key in keys {
        let retires = key.retires_at.map_or_else(|| "-".to_string(), |t| t.format("%F %T").to_string());
        println!(
            "{:<44} {:<8} {:<20} {:<20} {:<20}",
            key.kid,
            key.state,
            key.created_at.format("%F %T"),
            key.activates_at.format("%F %T"),
            retires
        );
    }
    Ok(())
}

fn rotate_keys(settings: &Settings) -> Result<(), CliError> {
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get().map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let config = key_ring_config(settings)?;
    let rows = signing_keys::list(&mut conn).map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let master_key = MasterKey::load(&settings.master_key, rows.len())?;
    // Every stored key must open with this master key: never mix keys sealed under two.
    for row in &rows {
        open_key(&master_key, row)?;
    }
    let planned_at = SystemClock.now();
    let mut plan = plan_rotation(&key_times(&rows)?, &config.policy, planned_at).map_err(KeyRingError::from)?;
    // Removals are left to the running service, which applies them with its own settings.
    plan.remove.clear();
    let keys = generate_keys(&plan, config.key_bits)?;
    let update = build_update(&plan, keys, &master_key, config, planned_at, SystemClock.now())?;
    signing_keys::apply(&mut conn, &update).map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let signing =
        plan.promote.map(|promotion| promotion.promote).or_else(|| update.insert.first().map(|row| row.kid.clone()));
    println!("rotated: {} now signs", signing.unwrap_or_default());
    println!("a running service picks the change up within {}s", TICK_INTERVAL.as_secs());
    Ok(())
}

fn rewrap_keys(settings: &Settings, new_master_key_file: &Path) -> Result<(), CliError> {
    if let MasterKeySource::File(current) = &settings.master_key
        && current == new_master_key_file
    {
        return Err(CliError::Failed("--new-master-key-file must differ from the current MASTER_KEY_FILE".into()));
    }
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get().map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let rows = signing_keys::list(&mut conn).map_err(|e| CliError::Failed(format!("database: {e}")))?;
    let old_key = MasterKey::load(&settings.master_key, rows.len())?;
    // The new file is for this operation: create it if missing.
    let new_key = MasterKey::load(&MasterKeySource::File(new_master_key_file.to_path_buf()), 0)?;
    let resealed = rows
        .iter()
        .map(|row| {
            let der = old_key.open(&row.kid, &row.private_key_enc)?;
            Ok((row.kid.clone(), new_key.seal(&row.kid, &der)?))
        })
        .collect::<Result<Vec<_>, MasterKeyError>>()?;
    signing_keys::replace_sealed(&mut conn, &resealed).map_err(|e| match e {
        diesel::result::Error::RollbackTransaction => {
            CliError::Failed("the key ring changed while re-encrypting; stop the service and run this again".into())
        }
        other => CliError::Failed(format!("database: {other}")),
    })?;
    println!("re-encrypted {} key(s) under {}", resealed.len(), new_master_key_file.display());
    println!("start the service with MASTER_KEY_FILE={} (and MASTER_KEY unset)", new_master_key_file.display());
    Ok(())
}
