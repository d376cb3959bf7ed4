//! The database layer: a connection pool, embedded migrations and plain query functions on
//! `&mut DbConn` returning `QueryResult`. Nothing here knows about HTTP or actors; handlers reach
//! these functions only through the [`crate::actors::db::DbExecutor`].
//!
//! Everything outside this module names the backend only through [`DbConn`], so a PostgreSQL
//! backend slots in here (e.g. as a diesel `MultiConnection`) without touching handlers.

pub mod authors;
pub mod revocations;
pub mod sessions;
pub mod signing_keys;
pub mod users;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{QueryResult, RunQueryDsl as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::path::Path;
use std::time::Duration;

/// The connection type every query function takes.
pub type DbConn = SqliteConnection;
/// The pool the database actor draws from.
pub type DbPool = Pool<ConnectionManager<DbConn>>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a connection waits for another writer before SQLite reports "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection before the request gets a 503.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    #[error("cannot open database {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("cannot run database migrations: {0}")]
    Migrate(String),
}

/// Per-connection SQLite settings, applied to every connection the pool opens.
///
/// WAL lets readers run beside the one writer; `synchronous = FULL` makes every commit durable
/// before the 2xx goes out (a SIGKILL or power cut right after loses nothing); `busy_timeout`
/// makes concurrent writers queue instead of failing; foreign keys are off by default in SQLite.
#[derive(Debug, Clone, Copy)]
struct SqliteConnectionSettings;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqliteConnectionSettings {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
            BUSY_TIMEOUT.as_millis()
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Opens (creating if needed) the database at `path` with `size` pooled connections.
pub fn connect(path: &Path, size: u32) -> Result<DbPool, DbSetupError> {
    let manager = ConnectionManager::<DbConn>::new(path.to_string_lossy());
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(POOL_CHECKOUT_TIMEOUT)
        .connection_customizer(Box::new(SqliteConnectionSettings))
        .build(manager)
        .map_err(|e| DbSetupError::Open { path: path.display().to_string(), reason: e.to_string() })
}

/// Applies pending migrations and returns the versions it applied.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbSetupError> {
    let applied = conn.run_pending_migrations(MIGRATIONS).map_err(|e| DbSetupError::Migrate(e.to_string()))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// A unique value a write collided with, named independently of the backend's error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    UserName,
    AuthorName,
    AuthorBook,
    /// Any other unique constraint (not expected from client input).
    Other,
}

/// For a unique-constraint violation, which unique value it was.
pub fn unique_violation(error: &DieselError) -> Option<UniqueField> {
    let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = error else {
        return None;
    };
    // SQLite names the column: "UNIQUE constraint failed: users.name_key".
    let column = info.message().strip_prefix("UNIQUE constraint failed: ").unwrap_or_default();
    Some(match column {
        "users.name_key" => UniqueField::UserName,
        "authors.name" => UniqueField::AuthorName,
        "authors.book" => UniqueField::AuthorBook,
        _ => UniqueField::Other,
    })
}

/// A trivial query: does the database answer?
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(drop)
}

/// Whether the error means the database was too busy to answer in time (worth a 503, not a 500).
pub fn is_busy(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info) if info.message().contains("database is locked") || info.message().contains("database is busy"))
}

/// A transaction that reads and then writes. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that upgrades from reader to writer fails at once
/// with SQLITE_BUSY when another writer got in between, instead of waiting its turn.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DieselError>,
{
    conn.immediate_transaction(work)
}
