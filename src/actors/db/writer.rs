//! SQLite's single writer: one connection on a thread of its own that applies the service's
//! writes in arrival order, so no two threads of ours ever contend for SQLite's write lock (the
//! loser would sleep in SQLite's busy handler).
//!
//! Group commit: the thread takes what is queued (up to [`MAX_BATCH`] writes), begins one
//! `BEGIN IMMEDIATE` transaction, runs each write in a savepoint of its own (a write that fails
//! rolls back itself only), and commits once — one fsync (`synchronous = FULL`) for the batch.
//! Only then does each caller get its result: an acknowledged write is a durable write. When
//! the commit fails, every write of the batch is answered with an error, whatever it returned.

use super::{DbUnavailable, QUERY_TIMEOUT};
use crate::db::{self, DbConn, DbManager, DbSetupError};
use diesel::Connection as _;
use diesel::r2d2::ManageConnection as _;
use futures_channel::oneshot;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

/// Writes waiting beyond this many are refused at once (a 503), so a database that cannot
/// keep up costs failed requests rather than unbounded memory and ever longer waits.
const QUEUE_CAPACITY: usize = 1024;
/// The most writes committed together: bounds how long the first of a batch waits for the rest.
const MAX_BATCH: usize = 64;

/// Answers a write's caller once the fate of its batch is known: `Err` says why the batch did
/// not commit.
type Reply = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A write: runs in a savepoint of the batch transaction and holds its typed result in the
/// [`Reply`] it returns, until the commit.
type Job = Box<dyn FnOnce(&mut DbConn) -> Reply + Send>;

/// Handle to the writer thread. The thread ends when the last handle is dropped, after the
/// writes already queued.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: SyncSender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`; `manager` opens a new connection should it break.
    pub(super) fn start(conn: DbConn, manager: DbManager) -> Result<Self, DbSetupError> {
        Self::with_capacity(conn, manager, QUEUE_CAPACITY)
    }

    fn with_capacity(conn: DbConn, manager: DbManager, capacity: usize) -> Result<Self, DbSetupError> {
        // Detached: it ends by itself with the last handle.
        Self::spawn(conn, manager, capacity).map(|(writer, _thread)| writer)
    }

    fn spawn(
        conn: DbConn,
        manager: DbManager,
        capacity: usize,
    ) -> Result<(Self, std::thread::JoinHandle<()>), DbSetupError> {
        let (jobs, queue) = mpsc::sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || serve(conn, &manager, &queue))
            .map_err(|e| DbSetupError::Writer(e.to_string()))?;
        Ok((Self { jobs }, thread))
    }

    /// Runs `work` on the writer thread; its result once its batch has committed.
    pub(super) async fn run<R, E, F>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(&mut DbConn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<diesel::result::Error> + From<DbUnavailable> + Send + 'static,
    {
        let answer = self.submit(work)?;
        match actix::clock::timeout(QUERY_TIMEOUT, answer).await {
            Ok(Ok(result)) => result,
            // Dropped unrun: the writer could not begin a transaction, or a write of the same
            // batch panicked (both logged by the writer).
            Ok(Err(oneshot::Canceled)) => Err(DbUnavailable::NotCommitted("the writer could not run it".into()).into()),
            Err(_) => Err(DbUnavailable::Mailbox.into()),
        }
    }

    /// Queues `work` (in arrival order) and returns where its result will come.
    fn submit<R, E, F>(&self, work: F) -> Result<oneshot::Receiver<Result<R, E>>, DbUnavailable>
    where
        F: FnOnce(&mut DbConn) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<diesel::result::Error> + From<DbUnavailable> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller gave up (timed out, or its request went away): write nothing.
            if reply.is_canceled() {
                return Box::new(|_| {});
            }
            // A savepoint: `conn` is in the batch's transaction.
            let result = conn.transaction(work);
            Box::new(move |committed| {
                let answer = match committed {
                    Ok(()) => result,
                    Err(reason) => Err(E::from(DbUnavailable::NotCommitted(reason.to_string()))),
                };
                // The caller may have gone meanwhile; nothing to tell then.
                let _ = reply.send(answer);
            })
        });
        self.jobs.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => DbUnavailable::WritesQueued,
            TrySendError::Disconnected(_) => DbUnavailable::Mailbox,
        })?;
        Ok(answer)
    }
}

/// The writer thread: batches until every handle is gone and the queue is empty.
fn serve(conn: DbConn, manager: &DbManager, queue: &Receiver<Job>) {
    let mut conn = Some(conn);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        if conn.is_none() {
            conn = manager.connect().inspect_err(|e| log::error!("cannot reopen the database writer: {e}")).ok();
        }
        if let Some(writer) = conn.as_mut() {
            commit_batch(writer, &mut batch);
            // A transaction left open (a write panicked) or a failed rollback: start afresh.
            // Closing the connection rolls back whatever it left uncommitted.
            if manager.has_broken(writer) {
                log::warn!("the database writer connection is broken; reopening it");
                conn = None;
            }
        }
        // Writes left unrun are dropped: their callers hear that nothing was committed.
        batch.clear();
    }
}

/// Runs `jobs` in one transaction, each in a savepoint, commits, then answers each caller.
fn commit_batch(conn: &mut DbConn, jobs: &mut Vec<Job>) {
    if let Err(error) = db::begin_write(conn) {
        log::error!("cannot begin a write transaction: {error}");
        return;
    }
    let mut replies: Vec<Reply> = Vec::with_capacity(jobs.len());
    for job in jobs.drain(..) {
        match panic::catch_unwind(AssertUnwindSafe(|| job(conn))) {
            Ok(reply) => replies.push(reply),
            Err(_) => {
                // A bug. The savepoint it left open is rolled back with the whole batch when
                // `serve` closes the connection.
                log::error!("a database write panicked: no write of its batch is committed");
                answer_all(replies, Err("another write of its batch failed"));
                return;
            }
        }
        // SQLite ends a transaction itself on some errors (disk full, I/O errors); diesel
        // notices when the savepoint's release or rollback fails. The batch so far is lost
        // then: say so, and go on in a new transaction.
        match db::begin_write(conn) {
            Ok(false) => {}
            Ok(true) => {
                log::error!("the database rolled back a batch of {} writes", replies.len());
                answer_all(replies.drain(..), Err("the database rolled the transaction back"));
            }
            Err(error) => {
                log::error!("cannot begin a write transaction: {error}");
                answer_all(replies, Err("the database rolled the transaction back"));
                return;
            }
        }
    }
    let committed = db::commit(conn).map_err(|error| {
        log::error!("commit of a batch of {} writes failed: {error}", replies.len());
        error.to_string()
    });
    answer_all(replies, committed.as_ref().map(|_| ()).map_err(String::as_str));
}

fn answer_all(replies: impl IntoIterator<Item = Reply>, committed: Result<(), &str>) {
    for reply in replies {
        reply(committed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::db::DbError;
    use crate::db::Backend;
    use diesel::connection::SimpleConnection as _;
    use diesel::sql_types::BigInt;
    use diesel::{QueryResult, RunQueryDsl as _};
    use std::sync::mpsc as std_mpsc;

    #[derive(diesel::QueryableByName)]
    struct Value {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    /// A writer on a new SQLite file with a table `log(value)`, and a second connection to
    /// look at what was committed.
    fn writer_on_temp_file(capacity: usize) -> (Writer, DbConn, tempfile::TempDir) {
        let (dir, manager) = temp_manager();
        let conn = manager.connect().expect("open");
        let observer = manager.connect().expect("open");
        (Writer::with_capacity(conn, manager, capacity).expect("writer"), observer, dir)
    }

    fn temp_manager() -> (tempfile::TempDir, DbManager) {
        let dir = tempfile::tempdir().expect("temp dir");
        let manager = DbManager::new(Backend::Sqlite(dir.path().join("writer.db")));
        let mut conn = manager.connect().expect("open");
        conn.batch_execute(
            "CREATE TABLE log (value INTEGER NOT NULL UNIQUE); \
             CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .expect("schema");
        (dir, manager)
    }

    fn insert(value: i64) -> impl FnOnce(&mut DbConn) -> Result<(), DbError> + Send + 'static {
        move |conn| {
            diesel::sql_query(format!("INSERT INTO log (value) VALUES ({value})")).execute(conn)?;
            Ok(())
        }
    }

    fn stored(conn: &mut DbConn) -> Vec<i64> {
        let rows: QueryResult<Vec<Value>> = diesel::sql_query("SELECT value FROM log ORDER BY rowid").load(conn);
        rows.expect("log").into_iter().map(|row| row.value).collect()
    }

    /// Holds the writer thread in a write of its own until the returned sender is dropped or
    /// used, so that what is queued meanwhile forms the next batch.
    fn hold(writer: &Writer) -> (std_mpsc::Sender<()>, oneshot::Receiver<Result<(), DbError>>) {
        let (started_tx, started) = std_mpsc::channel();
        let (release, released) = std_mpsc::channel::<()>();
        let held = writer
            .submit(move |_: &mut DbConn| -> Result<(), DbError> {
                started_tx.send(()).expect("test waits");
                let _ = released.recv();
                Ok(())
            })
            .expect("queued");
        started.recv().expect("the writer runs the holding write");
        (release, held)
    }

    #[actix_web::test]
    async fn a_failing_write_in_a_batch_rolls_back_itself_only() {
        let (writer, mut observer, _dir) = writer_on_temp_file(16);
        let (release, held) = hold(&writer);
        // Queued while the writer is busy: one batch of three.
        let first = writer.submit(insert(1)).expect("queued");
        let failing = writer
            .submit(|conn: &mut DbConn| -> Result<(), DbError> {
                insert(2)(conn)?;
                insert(1)(conn) // a duplicate: fails after writing 2, which must go too
            })
            .expect("queued");
        let third = writer.submit(insert(3)).expect("queued");
        drop(release);

        held.await.expect("answered").expect("held write");
        first.await.expect("answered").expect("first write committed");
        assert!(matches!(failing.await.expect("answered"), Err(DbError::Query(_))), "the duplicate fails");
        third.await.expect("answered").expect("third write committed");
        assert_eq!(stored(&mut observer), [1, 3]);
    }

    #[actix_web::test]
    async fn a_failed_commit_answers_every_write_of_the_batch_with_an_error() {
        let (writer, mut observer, _dir) = writer_on_temp_file(16);
        let (release, held) = hold(&writer);
        let before = writer.submit(insert(1)).expect("queued");
        // A deferred foreign key is checked at COMMIT only: the whole batch fails there.
        let orphan = writer
            .submit(|conn: &mut DbConn| -> Result<(), DbError> {
                diesel::sql_query("INSERT INTO child (parent) VALUES (42)").execute(conn)?;
                Ok(())
            })
            .expect("queued");
        let after = writer.submit(insert(2)).expect("queued");
        drop(release);

        held.await.expect("answered").expect("held write");
        for (name, answer) in [("before", before), ("orphan", orphan), ("after", after)] {
            let result = answer.await.expect("answered");
            assert!(matches!(result, Err(DbError::Unavailable(DbUnavailable::NotCommitted(_)))), "{name}: {result:?}");
        }
        assert_eq!(stored(&mut observer), Vec::<i64>::new(), "nothing of the batch was committed");
        // The writer goes on.
        writer.run(insert(3)).await.expect("a later write commits");
        assert_eq!(stored(&mut observer), [3]);
    }

    #[actix_web::test]
    async fn writes_are_applied_in_arrival_order() {
        let (writer, mut observer, _dir) = writer_on_temp_file(1024);
        let answers: Vec<_> = (0..300).map(|value| writer.submit(insert(value)).expect("queued")).collect();
        for answer in answers {
            answer.await.expect("answered").expect("committed");
        }
        assert_eq!(stored(&mut observer), (0..300).collect::<Vec<_>>());
    }

    #[actix_web::test]
    async fn a_full_queue_refuses_the_write_at_once() {
        let (writer, mut observer, _dir) = writer_on_temp_file(2);
        let (release, held) = hold(&writer);
        let queued = [writer.submit(insert(1)).expect("queued"), writer.submit(insert(2)).expect("queued")];
        let refused = writer.submit(insert(3));
        assert!(matches!(refused, Err(DbUnavailable::WritesQueued)), "the third waiting write is refused");
        drop(release);
        held.await.expect("answered").expect("held write");
        for answer in queued {
            answer.await.expect("answered").expect("committed");
        }
        assert_eq!(stored(&mut observer), [1, 2]);
    }

    #[actix_web::test]
    async fn a_write_that_panics_fails_its_batch_and_the_writer_goes_on() {
        let (writer, mut observer, _dir) = writer_on_temp_file(16);
        let (release, held) = hold(&writer);
        let before = writer.submit(insert(1)).expect("queued");
        let panicking = writer
            .submit(|conn: &mut DbConn| -> Result<(), DbError> {
                insert(2)(conn)?;
                panic!("a bug in a write");
            })
            .expect("queued");
        drop(release);
        held.await.expect("answered").expect("held write");
        assert!(matches!(before.await.expect("answered"), Err(DbError::Unavailable(_))));
        assert!(panicking.await.is_err(), "dropped unanswered");
        writer.run(insert(3)).await.expect("a later write commits on a new connection");
        assert_eq!(stored(&mut observer), [3]);
    }

    #[actix_web::test]
    async fn the_writer_thread_ends_with_its_last_handle_after_the_queued_writes() {
        let (dir, manager) = temp_manager();
        let (writer, thread) = Writer::spawn(manager.connect().expect("open"), manager.clone(), 16).expect("writer");
        let (release, held) = hold(&writer);
        let queued = writer.submit(insert(1)).expect("queued");
        drop(writer);
        drop(release);
        thread.join().expect("the writer thread ends");
        held.await.expect("answered").expect("held write");
        queued.await.expect("answered").expect("the queued write was committed before the end");
        assert_eq!(stored(&mut manager.connect().expect("open")), [1]);
        drop(dir);
    }
}
