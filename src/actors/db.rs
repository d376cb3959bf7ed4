//! `DbExecutor`: the only place queries run. It lives on a `SyncArbiter` with one thread per
//! pooled connection, so blocking diesel calls never run on the async HTTP workers.

use crate::db::{DbConn, DbPool};
use actix::prelude::*;

/// The longest a request waits for its database work (queueing included).
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The database could not be reached (pool exhausted or broken, or the actor is gone).
#[derive(Debug, thiserror::Error)]
pub enum DbUnavailable {
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database actor unavailable or too slow")]
    Mailbox,
}

/// A query failed, or never ran because the database was unavailable.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
}

/// A unit of database work: a closure over a pooled connection.
struct Query<R, E>(Work<R, E>);

type Work<R, E> = Box<dyn FnOnce(&mut DbConn) -> Result<R, E> + Send>;

impl<R: 'static, E: 'static> Message for Query<R, E> {
    type Result = Result<R, E>;
}

/// Actor owning the connection pool.
struct DbExecutor {
    pool: DbPool,
}

impl Actor for DbExecutor {
    type Context = SyncContext<Self>;
}

impl<R: 'static, E: From<DbUnavailable> + 'static> Handler<Query<R, E>> for DbExecutor {
    type Result = Result<R, E>;

    fn handle(&mut self, Query(work): Query<R, E>, _: &mut Self::Context) -> Result<R, E> {
        let mut conn = self.pool.get().map_err(DbUnavailable::from)?;
        work(&mut conn)
    }
}

/// Cloneable handle to the database actor.
#[derive(Clone)]
pub struct Database {
    addr: Addr<DbExecutor>,
}

impl Database {
    /// Starts `threads` executor threads sharing `pool` (threads = pool size, so no thread ever
    /// waits for a connection another thread of ours holds).
    pub fn start(pool: DbPool, threads: usize) -> Self {
        let addr = SyncArbiter::start(threads, move || DbExecutor { pool: pool.clone() });
        Self { addr }
    }

    /// Runs read-only `work` (a plain query function returning diesel's `QueryResult`) on a
    /// database thread.
    pub async fn read<R, F>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut DbConn) -> diesel::QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.send(move |conn| work(conn).map_err(DbError::Query)).await
    }

    /// Runs `work`, which writes, on a database thread. Writes are told apart from reads so
    /// that they can be given their own path (SQLite has a single writer at a time).
    pub async fn write<R, F>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut DbConn) -> diesel::QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.send(move |conn| work(conn).map_err(DbError::Query)).await
    }

    /// Runs `work` in one write transaction (see [`crate::db::write_transaction`]): the
    /// service layer's rules, with their own error type.
    pub async fn transaction<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbConn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<diesel::result::Error> + From<DbUnavailable> + Send + 'static,
    {
        self.send(move |conn| crate::db::write_transaction(conn, work)).await
    }

    async fn send<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbConn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<DbUnavailable> + Send + 'static,
    {
        // Bounded: a database that stops answering costs a request a 503, not a hang.
        self.addr
            .send(Query(Box::new(work)))
            .timeout(QUERY_TIMEOUT)
            .await
            .map_err(|_| E::from(DbUnavailable::Mailbox))?
    }
}
