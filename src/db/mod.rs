//! The database layer: connections ([`open`]: on SQLite one writer connection and a pool of
//! read-only ones; on PostgreSQL one pool), embedded migrations and plain query functions on
//! `&mut DbConn` returning `QueryResult`. Nothing here knows about HTTP or actors; handlers reach
//! these functions only through the database actor (`actors::db`), which runs SQLite's writes
//! on one thread of their own.
//!
//! Everything outside this module names the backend only through [`DbConn`], so a PostgreSQL
//! backend slots in here (e.g. as a diesel `MultiConnection`) without touching handlers.

pub mod authors;
pub mod clients;
pub mod revocations;
pub mod sessions;
pub mod signing_keys;
pub mod ssf;
pub mod table_versions;
pub mod throttle;
pub mod users;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult, RunQueryDsl as _};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The connection every query function takes: SQLite or PostgreSQL, one code path for both
/// (a diesel `MultiConnection`).
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$conn` bound to the inner connection of whichever backend is active.
/// For the few statements the `MultiConnection` cannot express for both at once (upserts,
/// `RETURNING`, batch inserts), while the query itself is still written once.
macro_rules! on_backend {
    ($conn:expr, |$inner:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Postgres($inner) => $body,
            $crate::db::DbConn::Sqlite($inner) => $body,
        }
    };
}
pub(crate) use on_backend;

/// The pool the database actor draws from.
pub type DbPool = Pool<DbManager>;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite connection waits for another writer before reporting "database is locked".
/// Within the service there is one writer connection, so this only ever waits for another
/// process (the CLI) writing the same file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a pooled connection (or for PostgreSQL to accept one) before
/// the request gets a 503.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);
/// Pooled connections idle this long are closed (all but one, r2d2's `min_idle`) and reopened
/// on demand. Connections are not tested when checked out (that would be a second query, on
/// PostgreSQL a second round trip, per request): one that broke is dropped after its first
/// error (see [`DbManager::has_broken`]), most that sat idle long enough to go stale (a
/// firewall's idle cut) are replaced before use, and a read that still meets a closed one runs
/// again on another (`actors::db`).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Key of the PostgreSQL advisory lock held while migrating, so instances starting together
/// do not both migrate.
const MIGRATION_LOCK: i64 = 0x6c69_6272_6172_7901;

/// Which database to open, and where. Callers translate their settings into this, so this
/// layer never depends on how the service is configured.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (created if missing).
    Sqlite(PathBuf),
    /// A `postgres://…` connection URL (it may hold a password: never log it).
    Postgres(String),
}

/// Never the PostgreSQL URL itself, which may hold a password.
impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// `name` is how the caller names the database to people: without credentials.
    #[error("cannot open database {name}: {reason}")]
    Open { name: String, reason: String },
    #[error("cannot run database migrations: {0}")]
    Migrate(String),
    #[error("cannot start the database writer thread: {0}")]
    Writer(String),
}

/// Opens connections of the backend the caller names (never guessing from the URL: a
/// PostgreSQL outage must not turn into a new SQLite file named after the URL).
#[derive(Debug, Clone)]
pub struct DbManager {
    backend: Backend,
    /// SQLite: `PRAGMA query_only`, so a write sent down the read path fails instead of
    /// competing with the writer thread for the write lock.
    read_only: bool,
}

impl DbManager {
    /// Opens writable connections to `backend`.
    pub fn new(backend: Backend) -> Self {
        Self { backend, read_only: false }
    }

    /// Opens connections that refuse writes on SQLite (PostgreSQL: as [`DbManager::new`]).
    pub fn read_only(backend: Backend) -> Self {
        Self { backend, read_only: true }
    }
}

impl ManageConnection for DbManager {
    type Connection = DbConn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConn, Self::Error> {
        match &self.backend {
            Backend::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                conn.batch_execute(&sqlite_pragmas()).map_err(diesel::r2d2::Error::QueryError)?;
                if self.read_only {
                    conn.batch_execute("PRAGMA query_only = ON").map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConn::Sqlite(conn))
            }
            Backend::Postgres(url) => PgConnection::establish(&with_postgres_timeouts(url))
                .map(DbConn::Postgres)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    /// Cheap, no query: a transaction left open, or a transaction manager in error. diesel puts
    /// a PostgreSQL connection's manager in error when libpq reports the connection bad, so a
    /// connection the server closed is dropped after the query that found out.
    fn has_broken(&self, conn: &mut DbConn) -> bool {
        match conn {
            DbConn::Postgres(conn) => diesel::r2d2::R2D2Connection::is_broken(conn),
            DbConn::Sqlite(conn) => diesel::r2d2::R2D2Connection::is_broken(conn),
        }
    }
}

/// Adds libpq timeouts the URL does not set itself, so a PostgreSQL that stops answering
/// (packets dropped rather than refused) turns into errors, hence 503s, instead of requests
/// that hang: a connect timeout, TCP keepalives, and a statement timeout.
fn with_postgres_timeouts(url: &str) -> String {
    let defaults = [
        ("connect_timeout", "3"),
        ("keepalives", "1"),
        ("keepalives_idle", "10"),
        ("keepalives_interval", "5"),
        ("keepalives_count", "2"),
        ("options", "-c%20statement_timeout%3D10000"),
    ];
    let mut url = url.to_string();
    for (name, value) in defaults {
        if !url.contains(&format!("{name}=")) {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("{name}={value}"));
        }
    }
    url
}

/// Per-connection SQLite settings. WAL lets readers run beside the one writer;
/// `synchronous = FULL` makes every commit durable before the 2xx goes out (a SIGKILL or power
/// cut right after loses nothing); `busy_timeout` makes a writer wait for another process's
/// write (the command line beside a running service) instead of failing — within the service
/// writes never contend, they share one connection; foreign keys are off by default in SQLite.
fn sqlite_pragmas() -> String {
    format!(
        "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        BUSY_TIMEOUT.as_millis()
    )
}

/// A pool of `size` writable connections to `backend` (the SQLite file is created if needed,
/// mode 0600, see [`make_sqlite_files_private`]): for the command line, which writes beside a
/// running service (another process) and has no writer thread. Connections are opened lazily,
/// so a PostgreSQL that is down at start is reported by the first use. `name` names the
/// database in errors; pass it without credentials.
pub fn connect(backend: &Backend, name: &str, size: u32) -> Result<DbPool, DbSetupError> {
    if let Backend::Sqlite(path) = backend {
        make_sqlite_files_private(path).map_err(|reason| DbSetupError::Open { name: name.to_string(), reason })?;
    }
    pool(DbManager::new(backend.clone()), name, size)
}

fn pool(manager: DbManager, name: &str, size: u32) -> Result<DbPool, DbSetupError> {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(POOL_CHECKOUT_TIMEOUT)
        // No `SELECT 1` per checkout: see POOL_IDLE_TIMEOUT.
        .test_on_check_out(false)
        .idle_timeout(Some(POOL_IDLE_TIMEOUT))
        .build(manager)
        .map_err(|e| DbSetupError::Open { name: name.to_string(), reason: e.to_string() })
}

/// The connections a running service works on.
pub struct Connections {
    /// Reads; on PostgreSQL writes too. On SQLite its connections are read-only.
    pub pool: DbPool,
    /// SQLite only: the one connection every write of the service goes through (on a thread of
    /// its own, see `actors::db`), and how to open another like it should it break.
    pub writer: Option<(DbConn, DbManager)>,
}

/// Opens the database for a running service and applies pending migrations (returning the
/// versions applied). On SQLite: the writer connection first (it creates the file, switches it
/// to WAL and migrates), then `size` read-only connections. On PostgreSQL: a pool of `size`,
/// migrated through one of its connections. `name` names the database in errors; pass it
/// without credentials.
pub fn open(backend: &Backend, name: &str, size: u32) -> Result<(Connections, Vec<String>), DbSetupError> {
    let open_error = |reason: String| DbSetupError::Open { name: name.to_string(), reason };
    match backend {
        Backend::Sqlite(path) => {
            make_sqlite_files_private(path).map_err(open_error)?;
            let manager = DbManager::new(backend.clone());
            let mut writer = manager.connect().map_err(|e| open_error(e.to_string()))?;
            let applied = run_migrations(&mut writer)?;
            let pool = pool(DbManager::read_only(backend.clone()), name, size)?;
            Ok((Connections { pool, writer: Some((writer, manager)) }, applied))
        }
        Backend::Postgres(_) => {
            let pool = pool(DbManager::new(backend.clone()), name, size)?;
            let applied = run_migrations(&mut *pool.get().map_err(|e| open_error(e.to_string()))?)?;
            Ok((Connections { pool, writer: None }, applied))
        }
    }
}

/// The files SQLite keeps beside the database in WAL mode.
const SQLITE_SIDE_FILES: [&str; 2] = ["-wal", "-shm"];

/// Makes the SQLite database readable and writable by its owner only, before SQLite opens it:
/// a missing file is created with mode 0600; an existing database, `-wal` or `-shm` file that
/// group or others may access loses those bits (with a warning). SQLite creates `-wal`, `-shm`
/// (and a `-journal`) with the mode of the database file itself, so they follow it; the umask
/// plays no part after the first file.
///
/// Existing files are changed by path (`stat`, `chmod`), never opened: closing a descriptor of
/// a file SQLite has open in this process would drop SQLite's POSIX locks on it. A `file:` URI
/// (diesel opens with `SQLITE_OPEN_URI`) is left to SQLite.
fn make_sqlite_files_private(path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Ok(());
    }
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        // Created by someone else in between: tightened below like any existing file.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
        Err(error) => return Err(format!("cannot create {} (mode 0600): {error}", path.display())),
    }
    make_private(path)?;
    for suffix in SQLITE_SIDE_FILES {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        make_private(Path::new(&side))?;
    }
    Ok(())
}

/// Clears the group and other permission bits of the file at `path`, if there is one.
fn make_private(path: &Path) -> Result<(), String> {
    let mode = match fs::metadata(path) {
        Ok(metadata) => metadata.permissions().mode() & 0o7777,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let private = mode & !0o077;
    fs::set_permissions(path, fs::Permissions::from_mode(private)).map_err(|e| {
        format!(
            "{} is accessible by group or others (mode {mode:04o}) and cannot be made private: {e}; run: chmod 600 {}",
            path.display(),
            path.display()
        )
    })?;
    log::warn!("{} was accessible by group or others: mode {mode:04o} changed to {private:04o}", path.display());
    Ok(())
}

/// Applies pending migrations and returns the versions it applied. On PostgreSQL it holds an
/// advisory lock meanwhile, so instances starting together migrate one after the other.
pub fn run_migrations(conn: &mut DbConn) -> Result<Vec<String>, DbSetupError> {
    let migrate = |error: &dyn std::fmt::Display| DbSetupError::Migrate(error.to_string());
    let versions =
        |applied: Vec<diesel::migration::MigrationVersion<'_>>| applied.iter().map(ToString::to_string).collect();
    match conn {
        DbConn::Sqlite(conn) => conn.run_pending_migrations(SQLITE_MIGRATIONS).map(versions).map_err(|e| migrate(&e)),
        DbConn::Postgres(conn) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .execute(conn)
                .map_err(|e| migrate(&e))?;
            let applied: Result<Vec<String>, _> =
                conn.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions).map_err(|e| migrate(&e));
            let unlocked = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(conn);
            let applied = applied?;
            unlocked.map_err(|e| migrate(&e))?;
            Ok(applied)
        }
    }
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
    // PostgreSQL names the constraint (see migrations/postgres); SQLite names the column in its
    // message: "UNIQUE constraint failed: users.name_key".
    let name =
        info.constraint_name().unwrap_or_else(|| info.message().trim_start_matches("UNIQUE constraint failed: "));
    Some(match name {
        // A name's key or one of its look-alike skeletons (domain::UserName).
        "users.name_key"
        | "users_name_key_key"
        | "users.name_skeleton"
        | "users_name_skeleton_key"
        | "users.shown_skeleton"
        | "users_shown_skeleton_key" => UniqueField::UserName,
        "authors.name" | "authors_name_key" => UniqueField::AuthorName,
        "authors.book" | "authors_book_key" => UniqueField::AuthorBook,
        _ => UniqueField::Other,
    })
}

/// A trivial query: does the database answer?
pub fn ping(conn: &mut DbConn) -> QueryResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).map(drop)
}

/// Whether the error means the database was busy or went away (worth a 503, not a 500).
pub fn is_busy(error: &DieselError) -> bool {
    match error {
        // The connection went away, or PostgreSQL aborted the transaction (a deadlock or a
        // serialization conflict): a retry may well succeed.
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure,
            _,
        )
        | DieselError::BrokenTransactionManager => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("deadlock detected")
                || message.contains("database is busy")
                || message.contains("server closed the connection")
                || message.contains("terminating connection")
        }
        _ => false,
    }
}

/// Whether the error says the connection itself is gone (a PostgreSQL restart, a cut network):
/// the same query on another connection may well succeed.
pub fn is_connection_closed(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => true,
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("server closed the connection")
                || message.contains("terminating connection")
                || message.contains("no connection to the server")
        }
        _ => false,
    }
}

/// Begins a write transaction unless one is open already: `Ok(true)` when it began one,
/// `Ok(false)` when the connection was in a transaction (nothing is sent then). On SQLite it is
/// `BEGIN IMMEDIATE`, which takes the write lock now: a deferred transaction that upgrades from
/// reader to writer fails at once with SQLITE_BUSY when another writer got in between, instead
/// of waiting its turn. On PostgreSQL a plain `BEGIN`.
pub fn begin_write(conn: &mut DbConn) -> QueryResult<bool> {
    let began = match conn {
        DbConn::Sqlite(sqlite) => AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE"),
        DbConn::Postgres(pg) => AnsiTransactionManager::begin_transaction_sql(pg, "BEGIN"),
    };
    match began {
        Ok(()) => Ok(true),
        Err(DieselError::AlreadyInTransaction) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Commits the transaction [`begin_write`] began. On failure diesel rolls it back; a connection
/// it could not roll back reports itself broken (`ManageConnection::has_broken`).
pub fn commit(conn: &mut DbConn) -> QueryResult<()> {
    <DbConn as Connection>::TransactionManager::commit_transaction(conn)
}

/// Rolls back the transaction [`begin_write`] began.
pub fn rollback(conn: &mut DbConn) -> QueryResult<()> {
    <DbConn as Connection>::TransactionManager::rollback_transaction(conn)
}

/// A transaction that reads and then writes. On SQLite, outside a transaction it begins with
/// `BEGIN IMMEDIATE` (see [`begin_write`]); inside one — the writer thread's batch, which holds
/// the write lock already — it is a savepoint. PostgreSQL needs nothing special: the
/// state-checking updates of the callers decide races there.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DieselError>,
{
    if matches!(conn, DbConn::Postgres(_)) || !begin_write(conn)? {
        return conn.transaction(work);
    }
    match work(conn) {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        // As diesel's own `transaction`: the work's error matters more than a failed rollback
        // of a connection that is broken anyway.
        Err(error) => match rollback(conn) {
            Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}
