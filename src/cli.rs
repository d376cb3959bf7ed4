//! The command line: `serve` (default), `migrate`, `user create`, `keys list|rotate|rewrap`.
//! Each command parses its arguments, calls the library, and prints; the work is done elsewhere.

use crate::clock::Clock as _;
use crate::clock::SystemClock;
use crate::config::MasterKeySource;
use crate::config::{ConfigError, Settings, SettingsArgs};
use crate::db::{self, DbSetupError};
use crate::domain::{Password, UserName};
use crate::http::ClientView;
use crate::master_key::{MasterKey, MasterKeyError};
use crate::service::clients::{self, ClientError, NewClient};
use crate::service::keys::{self, KeysError};
use crate::service::users::{self, UserError};
use crate::startup::{Application, StartupError};
use crate::startup::{db_backend, key_ring_config};
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
    /// Manage registered OAuth 2.0 clients (prints the same JSON as /admin/clients).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Confidential unless --public; its secret is printed once.
    Create {
        name: String,
        /// A public client (no secret): for apps that cannot keep one.
        #[arg(long)]
        public: bool,
        /// An allowed grant type (repeatable): password, refresh_token, client_credentials.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Space-separated scopes.
        #[arg(long)]
        scope: Option<String>,
    },
    /// List the registered clients (never a secret).
    List,
    /// Delete a client: every token and session of it ends.
    Delete { client_id: String },
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

/// Why a command failed; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error(transparent)]
    Setup(#[from] DbSetupError),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("database: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// A name, password or flag that cannot be used; the message says why.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("the name {0} is already taken")]
    NameTaken(String),
    #[error(transparent)]
    User(UserError),
    #[error("client: {0}")]
    Client(#[from] ClientError),
    #[error("cannot read the password: {0}")]
    ReadPassword(std::io::Error),
    #[error("{0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("server stopped: {0}")]
    Server(std::io::Error),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let settings = Settings::from_args(cli.settings)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => migrate(&settings),
        Command::User { command: UserCommand::Create { name, admin } } => create_user(&settings, &name, admin),
        Command::Keys { command: KeysCommand::List } => list_keys(&settings),
        Command::Client { command } => client_command(&settings, command),
        Command::Keys { command: KeysCommand::Rotate } => rotate_keys(&settings),
        Command::Keys { command: KeysCommand::Rewrap { new_master_key_file } } => {
            rewrap_keys(&settings, &new_master_key_file)
        }
    }
}

fn serve(settings: Settings) -> Result<(), CliError> {
    actix_web::rt::System::new().block_on(async move {
        let application = Application::build(settings, Arc::new(SystemClock)).await?;
        application.run_until_stopped().await.map_err(CliError::Server)
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
    let pool = db::connect(&db_backend(&settings.database), &settings.database.redacted(), 1)?;
    let mut conn = pool.get()?;
    let applied = db::run_migrations(&mut conn)?;
    drop(conn);
    Ok((pool, applied))
}

fn client_command(settings: &Settings, command: ClientCommand) -> Result<(), CliError> {
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get()?;
    let now = SystemClock.now();
    clients::ensure_builtin(&mut conn, &settings.public_client_id, now.naive_utc())?;
    let json = match command {
        ClientCommand::Create { name, public, grants, scope } => {
            let grant_types = (!grants.is_empty()).then_some(grants);
            let new = NewClient { name, confidential: !public, grant_types, scope };
            serde_json::to_string_pretty(&ClientView::from(clients::register(&mut conn, new, now.naive_utc())?))
        }
        ClientCommand::List => {
            let list: Vec<ClientView> =
                db::clients::list(&mut conn)?.into_iter().map(|client| ClientView::new(client, None)).collect();
            serde_json::to_string_pretty(&serde_json::json!({ "clients": list }))
        }
        ClientCommand::Delete { client_id } => {
            let lifetime = key_ring_config(settings)?.policy.token_lifetime;
            db::write_transaction(&mut conn, |conn| {
                clients::remove(
                    conn,
                    &crate::metrics::Metrics::new(),
                    &client_id,
                    &settings.public_client_id,
                    now,
                    lifetime,
                )
            })?;
            serde_json::to_string_pretty(&serde_json::json!({ "deleted": client_id }))
        }
    };
    println!("{}", json.unwrap_or_default());
    Ok(())
}

fn create_user(settings: &Settings, name: &str, admin: bool) -> Result<(), CliError> {
    let name = UserName::parse(name).map_err(|e| CliError::InvalidArgument(e.message))?;
    let password = match std::env::var("LIBRARY_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            rpassword::prompt_password(format!("Password for {}: ", name.as_str())).map_err(CliError::ReadPassword)?
        }
    };
    let password = Password::parse(password).map_err(|e| CliError::InvalidArgument(e.message))?;
    // Password::parse bounded it to 72 bytes, all of which bcrypt uses.
    let hash = bcrypt::hash(password.expose(), settings.bcrypt_cost)?;
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get()?;
    let user = users::insert(&mut conn, &name, &hash, admin, SystemClock.now().naive_utc()).map_err(|e| match e {
        UserError::NameTaken => CliError::NameTaken(name.as_str().to_string()),
        other => CliError::User(other),
    })?;
    println!("created {} {} ({})", if user.admin { "admin" } else { "user" }, user.name, user.public_id);
    Ok(())
}

fn list_keys(settings: &Settings) -> Result<(), CliError> {
    let (pool, _) = open_migrated(settings)?;
    let keys = keys::list(&mut *pool.get()?)?;
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
    let mut conn = pool.get()?;
    let config = key_ring_config(settings)?;
    let master_key = keys::load_master_key(&mut conn, &settings.master_key)?;
    let signing = keys::rotate_offline(&mut conn, &master_key, config.key_bits, &config.policy, &SystemClock)?;
    println!("rotated: {signing} now signs");
    println!(
        "a running service picks the change up within {}",
        humantime::format_duration(settings.key_ring_poll_interval)
    );
    Ok(())
}

fn rewrap_keys(settings: &Settings, new_master_key_file: &Path) -> Result<(), CliError> {
    if let MasterKeySource::File(current) = &settings.master_key
        && current == new_master_key_file
    {
        return Err(CliError::InvalidArgument(
            "--new-master-key-file must differ from the current MASTER_KEY_FILE".into(),
        ));
    }
    let (pool, _) = open_migrated(settings)?;
    let mut conn = pool.get()?;
    let old_key = keys::load_master_key(&mut conn, &settings.master_key)?;
    // The new file is for this operation: create it if missing.
    let new_key = MasterKey::load(&MasterKeySource::File(new_master_key_file.to_path_buf()), 0)?;
    let count = keys::rewrap(&mut conn, &old_key, &new_key)?;
    println!("re-encrypted {count} key(s) under {}", new_master_key_file.display());
    println!("start the service with MASTER_KEY_FILE={} (and MASTER_KEY unset)", new_master_key_file.display());
    Ok(())
}
