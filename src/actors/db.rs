//! The only place queries run, off the async HTTP workers. Reads (and on PostgreSQL every
//! query) go to `DbExecutor`, a `SyncArbiter` with one thread per pooled connection. On SQLite,
//! which has one writer at a time, writes go instead to the writer thread ([`writer`]): one
//! connection applying writes in arrival order, several per transaction (group commit), each
//! acknowledged after the commit that made it durable. So our own threads never wait for each
//! other in SQLite's busy handler.

mod writer;

use crate::db::{Connections, DbConn, DbPool, DbSetupError, is_connection_closed};
use actix::prelude::*;
use writer::Writer;

/// The longest a request waits for its database work (queueing included).
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The database could not be reached (pool exhausted or broken, or the actor is gone).
#[derive(Debug, thiserror::Error)]
pub enum DbUnavailable {
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("database actor unavailable or too slow")]
    Mailbox,
    /// The writer thread's queue is full: the database cannot keep up with the writes.
    #[error("too many writes queued for the database")]
    WritesQueued,
    /// The write ran but its transaction did not commit, or it never ran: nothing was written.
    #[error("write not committed: {0}")]
    NotCommitted(String),
}

/// A query failed, or never ran because the database was unavailable.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error(transparent)]
    Unavailable(#[from] DbUnavailable),
}

/// A unit of database work for the executor: a closure over the pool, so that it checks out
/// its connection itself (and may check out another, see [`Database::read`]).
struct Query<R, E>(Work<R, E>);

type Work<R, E> = Box<dyn FnOnce(&DbPool) -> Result<R, E> + Send>;

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

impl<R: 'static, E: 'static> Handler<Query<R, E>> for DbExecutor {
    type Result = Result<R, E>;

    fn handle(&mut self, Query(work): Query<R, E>, _: &mut Self::Context) -> Result<R, E> {
        work(&self.pool)
    }
}

/// Cloneable handle to the database actor (and, on SQLite, the writer thread). The writer
/// thread stops once the last handle is dropped, after the writes already queued.
#[derive(Clone)]
pub struct Database {
    addr: Addr<DbExecutor>,
    /// SQLite's writer thread; `None` on PostgreSQL, where writes share the pool.
    writer: Option<Writer>,
}

impl Database {
    /// Starts `threads` executor threads sharing the pool (threads = pool size, so no thread
    /// ever waits for a connection another thread of ours holds) and, for SQLite, the writer
    /// thread on the writer connection. Needs a running actix `System`.
    pub fn start(connections: Connections, threads: usize) -> Result<Self, DbSetupError> {
        let Connections { pool, writer } = connections;
        let writer = writer.map(|(conn, manager)| Writer::start(conn, manager)).transpose()?;
        let addr = SyncArbiter::start(threads, move || DbExecutor { pool: pool.clone() });
        Ok(Self { addr, writer })
    }

    /// Runs read-only `work` (a plain query function returning diesel's `QueryResult`) on a
    /// database thread. Connections are not tested before use, so when the first one turns out
    /// closed (a PostgreSQL restart) `work` runs again on another — a read may be repeated —
    /// until one answers or the pool is out of connections to try.
    pub async fn read<R, F>(&self, mut work: F) -> Result<R, DbError>
    where
        F: FnMut(&mut DbConn) -> diesel::QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.send(move |pool: &DbPool| {
            // A closed connection is dropped when it goes back (`DbManager::has_broken`), so
            // each retry gets another one, ending with a freshly opened one.
            let mut retries = pool.max_size();
            loop {
                let mut conn = pool.get().map_err(DbUnavailable::from)?;
                match work(&mut conn) {
                    Err(error) if retries > 0 && is_connection_closed(&error) => {
                        log::warn!("database connection closed ({error}); retrying the read on another");
                        retries -= 1;
                    }
                    result => return result.map_err(DbError::Query),
                }
            }
        })
        .await
    }

    /// Runs `work`, which writes. On SQLite it goes to the writer thread and runs in a savepoint
    /// of a batch transaction (all of it or none of it is written); it returns once the batch
    /// has committed. On PostgreSQL it runs on a pooled connection as it is.
    pub async fn write<R, F>(&self, work: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut DbConn) -> diesel::QueryResult<R> + Send + 'static,
        R: Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.run(move |conn| work(conn).map_err(DbError::Query)).await,
            None => {
                self.send(move |pool| work(&mut *pool.get().map_err(DbUnavailable::from)?).map_err(DbError::Query))
                    .await
            }
        }
    }

    /// Runs `work` in one write transaction: the service layer's rules, with their own error
    /// type. On SQLite that is a savepoint in the writer thread's batch, which holds the write
    /// lock already; on PostgreSQL [`crate::db::write_transaction`] on a pooled connection.
    /// When the transaction cannot even begin there (a connection closed by a PostgreSQL
    /// restart: connections are not tested before use), nothing has run, so it begins again
    /// on another connection instead of failing the request.
    pub async fn transaction<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbConn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<diesel::result::Error> + From<DbUnavailable> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.run(work).await,
            None => {
                self.send(move |pool| {
                    let mut work = Some(work);
                    let mut retries = pool.max_size();
                    loop {
                        let mut conn = pool.get().map_err(DbUnavailable::from)?;
                        // The loop goes round only while `work` has not been taken, so it is always
                        // there; were it not, the answer is an error, never a panic on this thread.
                        let result = crate::db::write_transaction(&mut conn, |conn| match work.take() {
                            Some(work) => work(conn),
                            None => Err(E::from(DbUnavailable::Mailbox)),
                        });
                        if result.is_ok() || work.is_none() || retries == 0 {
                            return result;
                        }
                        // BEGIN failed: that connection is dropped when it goes back.
                        log::warn!("could not begin a transaction; beginning again on another connection");
                        retries -= 1;
                    }
                })
                .await
            }
        }
    }

    async fn send<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&DbPool) -> Result<R, E> + Send + 'static,
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
