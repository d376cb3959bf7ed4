//! Change tracking for in-memory caches of what `authors` and `users` hold. Triggers
//! (migration 14) count every change to those tables in `table_versions`; a [`ChangeWatch`]
//! turns the counts into one generation number per [`Table`], and a cache entry is valid only
//! while the generation it was built at is still current.
//!
//! How fresh the generation is depends on the backend, and only here:
//! - SQLite: exact. A dedicated connection asks `PRAGMA data_version` before every cached read;
//!   it changes whenever any other connection committed (ours, or another process's such as
//!   the CLI), and only then are the counts read again.
//! - PostgreSQL: the caller polls [`read`] and hands the result to [`ChangeWatch::observe`];
//!   changes by other instances are seen within the poll interval. When polls stop succeeding,
//!   [`ChangeWatch::current`] answers `None` (read the database) rather than go stale.
//!
//! On both, [`ChangeWatch::wrote`] invalidates at once after this process's own writes.

use super::{DbConn, DbManager};
use crate::schema::table_versions;
use diesel::prelude::*;
use diesel::r2d2::PooledConnection;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

diesel::table! {
    /// SQLite's `PRAGMA data_version` as a table-valued function: a static query, so diesel
    /// keeps it prepared.
    pragma_data_version (data_version) {
        data_version -> BigInt,
    }
}

/// A table whose changes cached views follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Authors = 0,
    Users = 1,
}

/// The change counts of the tracked tables, as the triggers keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Versions {
    pub authors: i64,
    pub users: i64,
}

impl Versions {
    fn get(self, table: Table) -> i64 {
        match table {
            Table::Authors => self.authors,
            Table::Users => self.users,
        }
    }
}

const TABLES: [Table; 2] = [Table::Authors, Table::Users];

/// The stored change counts (a point read of a two-row table).
pub fn read(conn: &mut DbConn) -> QueryResult<Versions> {
    let rows: Vec<(String, i64)> =
        table_versions::table.select((table_versions::name, table_versions::version)).load(conn)?;
    let count = |name: &str| rows.iter().find(|(row, _)| row == name).map_or(0, |(_, version)| *version);
    Ok(Versions { authors: count("authors"), users: count("users") })
}

/// Turns observed change counts and this process's own writes into generations.
pub struct ChangeWatch {
    /// Per [`Table`]: moves on whenever that table may have changed. Read by every request.
    generations: [AtomicU64; 2],
    freshness: Freshness,
}

enum Freshness {
    /// SQLite: asked on every read (see [`ChangeWatch::current`]).
    Sqlite(Mutex<SqliteWatch>),
    /// PostgreSQL: the poller's last result, good until a deadline.
    Polled(Polled),
}

struct SqliteWatch {
    conn: PooledConnection<DbManager>,
    /// `PRAGMA data_version` when `versions` was read; `None` before the first read or after
    /// an error.
    data_version: Option<i64>,
    versions: Versions,
}

struct Polled {
    /// The counts of the last successful poll.
    versions: Mutex<Versions>,
    /// Milliseconds since `epoch` after which a missed poll makes the generations unknown.
    fresh_until: AtomicU64,
    epoch: Instant,
    /// How long one poll's result is trusted: the poll interval and half as much again for the
    /// next poll's query to come back. A later or failed poll makes the generations unknown,
    /// so another instance's write is never served stale past 1.5 × the poll interval.
    max_age: Duration,
}

impl ChangeWatch {
    /// Exact tracking on SQLite through `conn`, a connection of its own (it must not be used
    /// for anything else: `data_version` ignores the connection's own commits).
    pub fn sqlite(mut conn: PooledConnection<DbManager>) -> QueryResult<Self> {
        // The watch runs on the HTTP workers (see `current`): never wait for a lock there. A
        // busy database makes `current` answer `None`, and the request reads the database.
        diesel::sql_query("PRAGMA busy_timeout = 0").execute(&mut *conn)?;
        let mut watch = SqliteWatch { conn, data_version: None, versions: Versions::default() };
        watch.refresh()?;
        Ok(Self { generations: Default::default(), freshness: Freshness::Sqlite(Mutex::new(watch)) })
    }

    /// Tracking by polling (PostgreSQL): `initial` is a first read of the counts, and the caller
    /// polls every `poll_interval` with [`Self::observe`].
    pub fn polled(initial: Versions, poll_interval: Duration) -> Self {
        let polled = Polled {
            versions: Mutex::new(initial),
            fresh_until: AtomicU64::new(0),
            epoch: Instant::now(),
            max_age: poll_interval + poll_interval / 2,
        };
        polled.trust_until(polled.epoch);
        Self { generations: Default::default(), freshness: Freshness::Polled(polled) }
    }

    /// Whether the caller must poll [`read`] and pass the results to [`Self::observe`].
    pub fn needs_polling(&self) -> bool {
        matches!(self.freshness, Freshness::Polled(_))
    }

    /// The generation of `table` now, or `None` when it cannot be known (then no cached view
    /// may be used or stored).
    ///
    /// On SQLite this is a synchronous call on the caller's (async) thread. That is deliberate:
    /// `PRAGMA data_version` only reads SQLite's shared-memory WAL index (no file I/O, no lock
    /// wait: the busy timeout is 0), about a microsecond under the mutex, whereas a trip through
    /// the database actor costs tens of microseconds and would be most of what the cache saves.
    /// The counts themselves are read (a point read of a page in the cache) only after some
    /// commit.
    pub fn current(&self, table: Table) -> Option<u64> {
        match &self.freshness {
            Freshness::Sqlite(watch) => {
                let mut watch = watch.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match watch.refresh() {
                    Ok(Some((old, new))) => self.advance(old, new),
                    Ok(None) => {}
                    Err(error) => {
                        log::debug!("change watch: {error}; reading the database instead");
                        return None;
                    }
                }
                // Still under the lock: a request that saw the new counts sees the new generation.
                Some(self.generations[table as usize].load(Ordering::Acquire))
            }
            Freshness::Polled(polled) => {
                let age = u64::try_from(polled.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                (age <= polled.fresh_until.load(Ordering::Acquire))
                    .then(|| self.generations[table as usize].load(Ordering::Acquire))
            }
        }
    }

    /// This process changed `table` (call after the commit): views built before are stale.
    pub fn wrote(&self, table: Table) {
        self.generations[table as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// A successful poll's result; `started` is when the poll's query was sent (what it saw is
    /// at least that fresh). Without a newer one within 1.5 × the poll interval, `current` answers `None`.
    pub fn observe(&self, new: Versions, started: Instant) {
        let Freshness::Polled(polled) = &self.freshness else { return };
        let old = std::mem::replace(&mut *polled.versions.lock().unwrap_or_else(|p| p.into_inner()), new);
        self.advance(old, new);
        polled.trust_until(started);
    }

    fn advance(&self, old: Versions, new: Versions) {
        for table in TABLES {
            if old.get(table) != new.get(table) {
                self.wrote(table);
            }
        }
    }
}

impl SqliteWatch {
    /// Reads the counts again if another connection committed since the last read: the old and
    /// new counts, or `None` when nothing was committed.
    fn refresh(&mut self) -> QueryResult<Option<(Versions, Versions)>> {
        let DbConn::Sqlite(conn) = &mut *self.conn else {
            return Err(diesel::result::Error::QueryBuilderError("the change watch needs SQLite".into()));
        };
        let data_version = pragma_data_version::table
            .select(pragma_data_version::data_version)
            .get_result::<i64>(conn)
            .inspect_err(|_| self.data_version = None)?;
        if self.data_version == Some(data_version) {
            return Ok(None);
        }
        // data_version first, then the counts: a commit in between changes data_version again,
        // so the next call reads the counts once more.
        let new = read(&mut self.conn).inspect_err(|_| self.data_version = None)?;
        self.data_version = Some(data_version);
        Ok(Some((std::mem::replace(&mut self.versions, new), new)))
    }
}

impl Polled {
    fn trust_until(&self, polled_at: Instant) {
        let until = (polled_at + self.max_age).saturating_duration_since(self.epoch);
        self.fresh_until.fetch_max(u64::try_from(until.as_millis()).unwrap_or(u64::MAX), Ordering::AcqRel);
    }
}
