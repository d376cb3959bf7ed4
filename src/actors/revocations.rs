//! `Revocations`: everything that ends access tokens before they expire (API.md "Tokens"):
//! single tokens (`jti`, by `/logout` and RFC 7009), sessions (a login's token family, `sid`),
//! and subjects (every token of a user up to a moment: log out everywhere, deletion, admin
//! change). Each revocation is written to the database before it is acknowledged, and loaded
//! again at start; the in-memory [`DenyList`] answers the per-request check with three hash
//! lookups under one read lock, without any message.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::{DbConn, revocations, sessions};
use crate::tokens::AccessClaims;
use actix::prelude::*;
use chrono::{DateTime, Duration as TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How often revocations that no longer matter are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("database: {0}")]
    Database(String),
    #[error("revocations actor unavailable")]
    Unavailable,
}

impl From<DbUnavailable> for RevocationError {
    fn from(error: DbUnavailable) -> Self {
        Self::Database(error.to_string())
    }
}

impl From<DbError> for RevocationError {
    fn from(error: DbError) -> Self {
        Self::Database(error.to_string())
    }
}

/// Every access token of a subject issued before `valid_after` (unix seconds) is refused.
/// Tokens issued in that very second are told apart by session: every session the subject had
/// at the cutoff is revoked too, so only sessions started after it survive.
#[derive(Debug, Clone, Copy)]
struct SubjectCutoff {
    valid_after: i64,
    keep_until: i64,
}

#[derive(Debug, Default)]
struct Denied {
    /// jti → unix time after which the token is refused anyway.
    tokens: HashMap<Uuid, i64>,
    /// sid → unix time after which every token of the session is refused anyway.
    sessions: HashMap<Uuid, i64>,
    subjects: HashMap<Uuid, SubjectCutoff>,
}

/// Why a valid-looking token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Token,
    Session,
    Subject,
}

/// The deny list. Read by request handlers; written only by the [`Revocations`] actor.
#[derive(Debug, Default)]
pub struct DenyList {
    denied: RwLock<Denied>,
}

impl DenyList {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Denied> {
        self.denied.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Denied> {
        self.denied.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether (and why) a token with these claims has been revoked. O(1).
    pub fn check(&self, claims: &AccessClaims) -> Option<Denial> {
        let denied = self.read();
        if denied.tokens.contains_key(&claims.jti) {
            Some(Denial::Token)
        } else if denied.sessions.contains_key(&claims.sid) {
            Some(Denial::Session)
        } else if denied.subjects.get(&claims.sub).is_some_and(|cutoff| claims.iat < cutoff.valid_after) {
            Some(Denial::Subject)
        } else {
            None
        }
    }

    pub fn is_session_revoked(&self, sid: &Uuid) -> bool {
        self.read().sessions.contains_key(sid)
    }

    /// Entries held: revoked tokens, sessions and subjects.
    pub fn len(&self) -> usize {
        let denied = self.read();
        denied.tokens.len() + denied.sessions.len() + denied.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the three tables, for the README's memory figure and for metrics.
    /// hashbrown keeps a power-of-two number of buckets at most 7/8 full, each one entry plus a
    /// control byte.
    pub fn heap_bytes(&self) -> usize {
        fn table<K, V>(map: &HashMap<K, V>) -> usize {
            let capacity = map.capacity();
            if capacity == 0 {
                return 0;
            }
            let buckets =
                if capacity < 8 { (capacity + 1).next_power_of_two() } else { (capacity * 8 / 7).next_power_of_two() };
            buckets * (std::mem::size_of::<(K, V)>() + 1) + 16
        }
        let denied = self.read();
        table(&denied.tokens) + table(&denied.sessions) + table(&denied.subjects)
    }

    /// Drops entries that no longer matter at `now` (a token is accepted up to and including
    /// its `keep_until` second, so those stay). The pruned tables are built under the read
    /// lock, which verifications share, and swapped in under a brief write lock: the per-request
    /// check never waits for a pass over a large list. Only the actor calls this, and it
    /// inserts nothing meanwhile (no await between the copy and the swap).
    fn prune(&self, now: i64) {
        let pruned = {
            let denied = self.read();
            Denied {
                tokens: denied.tokens.iter().filter(|(_, until)| **until >= now).map(|(k, v)| (*k, *v)).collect(),
                sessions: denied.sessions.iter().filter(|(_, until)| **until >= now).map(|(k, v)| (*k, *v)).collect(),
                subjects: denied.subjects.iter().filter(|(_, c)| c.keep_until >= now).map(|(k, v)| (*k, *v)).collect(),
            }
        };
        let old = std::mem::replace(&mut *self.write(), pruned);
        drop(old); // freed outside the lock
    }
}

/// How far behind its high-water mark a sync looks again: a revocation whose transaction
/// committed late, or was stamped by another instance's slightly different clock, is still
/// picked up. Instances' clocks must agree within this (run NTP; JWT expiry needs it anyway).
const SYNC_MARGIN: TimeDelta = TimeDelta::seconds(30);

struct Revocations {
    db: Database,
    clock: SharedClock,
    list: Arc<DenyList>,
    /// Access token lifetime plus leeway: how long a revocation must be remembered.
    token_lifetime: TimeDelta,
    /// How often revocations made by other instances are picked up.
    poll_interval: Duration,
    /// The newest revocation time seen in the database.
    high_water: Arc<std::sync::Mutex<chrono::NaiveDateTime>>,
}

impl Actor for Revocations {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PRUNE_INTERVAL, |_, ctx| ctx.notify(Prune));
        ctx.run_interval(self.poll_interval, |_, ctx| ctx.notify(Sync));
    }
}

/// Picks up revocations other instances wrote (several instances on one PostgreSQL): every
/// row stamped since the high-water mark (minus a margin) is merged into the deny list.
#[derive(Message)]
#[rtype(result = "Result<usize, RevocationError>")]
struct Sync;

impl Handler<Sync> for Revocations {
    // Atomic: syncs never overlap, and the high-water mark only moves forward.
    type Result = AtomicResponse<Self, Result<usize, RevocationError>>;

    fn handle(&mut self, _: Sync, _: &mut Self::Context) -> Self::Result {
        let (db, list, lifetime, high_water) =
            (self.db.clone(), self.list.clone(), self.token_lifetime, self.high_water.clone());
        let since = *high_water.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) - SYNC_MARGIN;
        AtomicResponse::new(Box::pin(
            async move {
                let (tokens, families, subjects) = db
                    .query(move |conn| {
                        Ok((
                            revocations::revoked_since(conn, since)?,
                            sessions::revoked_families_since(conn, since)?,
                            sessions::subject_revocations_since(conn, since)?,
                        ))
                    })
                    .await?;
                let mut newest = since + SYNC_MARGIN;
                let mut denied = list.write();
                for (jti, expires_at, revoked_at) in &tokens {
                    if let Ok(jti) = Uuid::parse_str(jti) {
                        denied.tokens.insert(jti, expires_at.and_utc().timestamp());
                    }
                    newest = newest.max(*revoked_at);
                }
                for (sid, revoked_at) in &families {
                    if let Ok(sid) = Uuid::parse_str(sid) {
                        denied.sessions.insert(sid, (revoked_at.and_utc() + lifetime).timestamp());
                    }
                    newest = newest.max(*revoked_at);
                }
                for (subject, valid_after, expires_at, revoked_at) in &subjects {
                    if let Ok(subject) = Uuid::parse_str(subject) {
                        let incoming = SubjectCutoff {
                            valid_after: valid_after.and_utc().timestamp(),
                            keep_until: expires_at.and_utc().timestamp(),
                        };
                        let merged = denied.subjects.get(&subject).map_or(incoming, |known| SubjectCutoff {
                            valid_after: known.valid_after.max(incoming.valid_after),
                            keep_until: known.keep_until.max(incoming.keep_until),
                        });
                        denied.subjects.insert(subject, merged);
                    }
                    newest = newest.max(*revoked_at);
                }
                drop(denied);
                let mut mark = high_water.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                *mark = (*mark).max(newest);
                Ok(tokens.len() + families.len() + subjects.len())
            }
            .into_actor(self),
        ))
    }
}

/// Drops what is refused anyway by now; answers how many stored rows went.
#[derive(Message)]
#[rtype(result = "Result<usize, RevocationError>")]
struct Prune;

impl Handler<Prune> for Revocations {
    type Result = ResponseFuture<Result<usize, RevocationError>>;

    fn handle(&mut self, _: Prune, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        let revoked_before = (now - self.token_lifetime).naive_utc();
        Box::pin(async move {
            list.prune(now.timestamp());
            let pruned = db
                .query(move |conn| {
                    let tokens = revocations::prune(conn, now.naive_utc())?;
                    let sessions = sessions::prune(conn, now.naive_utc(), revoked_before)?;
                    // Housekeeping of the same kind: login counters idle for a day.
                    let counters = crate::db::throttle::prune(conn, (now - TimeDelta::days(1)).naive_utc())?;
                    Ok(tokens + sessions + counters)
                })
                .await
                .inspect_err(|error| log::warn!("pruning revocations failed (will retry): {error}"))?;
            if pruned > 0 {
                log::info!("pruned {pruned} expired revocation and session rows");
            }
            Ok(pruned)
        })
    }
}

/// Revokes one access token, valid until `expires_at`.
#[derive(Message)]
#[rtype(result = "Result<(), RevocationError>")]
struct RevokeToken {
    jti: Uuid,
    expires_at: DateTime<Utc>,
}

impl Handler<RevokeToken> for Revocations {
    type Result = ResponseFuture<Result<(), RevocationError>>;

    fn handle(&mut self, msg: RevokeToken, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        // Until exp plus the leeway an unrevoked copy would still be accepted.
        let keep_until = msg.expires_at + leeway();
        Box::pin(async move {
            let jti = msg.jti.to_string();
            db.query(move |conn| revocations::insert(conn, &jti, keep_until.naive_utc(), now.naive_utc())).await?;
            // Only once it is stored: an acknowledged revocation survives a restart.
            list.write().tokens.insert(msg.jti, keep_until.timestamp());
            Ok(())
        })
    }
}

fn leeway() -> TimeDelta {
    TimeDelta::seconds(crate::tokens::CLOCK_LEEWAY_SECS)
}

/// Revokes a session: every refresh token of the family and every access token issued from it.
#[derive(Message)]
#[rtype(result = "Result<(), RevocationError>")]
struct RevokeSession {
    sid: Uuid,
}

impl Handler<RevokeSession> for Revocations {
    type Result = ResponseFuture<Result<(), RevocationError>>;

    fn handle(&mut self, msg: RevokeSession, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        // Its access tokens were all issued before now, so they expire within one lifetime.
        let keep_until = now + self.token_lifetime;
        Box::pin(async move {
            let sid = msg.sid.to_string();
            db.query(move |conn| sessions::revoke_family(conn, &sid, now.naive_utc())).await?;
            list.write().sessions.insert(msg.sid, keep_until.timestamp());
            Ok(())
        })
    }
}

/// Which of a subject's tokens a subject-wide revocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectScope {
    /// Every token issued until now (log out everywhere, a role change).
    IssuedUntilNow,
    /// Every token, ever (the user is deleted: none can be issued again).
    Everything,
}

/// Far-future cutoff stored for [`SubjectScope::Everything`].
const FOREVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Work done in the same transaction as a subject revocation (e.g. deleting the user). It
/// returns its result and the user's `users.id` whose sessions are to be revoked, if any.
type SubjectChange<T, E> = Box<dyn FnOnce(&mut DbConn) -> Result<(T, Option<i32>), E> + Send>;

/// Ends the tokens of `subject` that `scope` names, together with `change`, atomically.
struct EndSubject<T, E> {
    subject: Uuid,
    scope: SubjectScope,
    change: SubjectChange<T, E>,
}

impl<T: 'static, E: 'static> Message for EndSubject<T, E> {
    type Result = Result<T, E>;
}

impl<T, E> Handler<EndSubject<T, E>> for Revocations
where
    T: Send + 'static,
    E: From<diesel::result::Error> + From<DbUnavailable> + Send + 'static,
{
    // Atomic: two subject revocations of one user cannot finish out of order and lower the cutoff.
    type Result = AtomicResponse<Self, Result<T, E>>;

    fn handle(&mut self, msg: EndSubject<T, E>, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        let keep_until = now + self.token_lifetime;
        let wanted = match msg.scope {
            SubjectScope::IssuedUntilNow => now.timestamp(),
            SubjectScope::Everything => FOREVER,
        };
        let earlier = list.read().subjects.get(&msg.subject).copied();
        let cutoff = SubjectCutoff {
            valid_after: earlier.map_or(wanted, |earlier| earlier.valid_after.max(wanted)),
            keep_until: earlier
                .map_or(keep_until.timestamp(), |earlier| earlier.keep_until.max(keep_until.timestamp())),
        };
        let stored_cutoff = DateTime::from_timestamp(cutoff.valid_after, 0).unwrap_or(now).naive_utc();
        let stored_until = DateTime::from_timestamp(cutoff.keep_until, 0).unwrap_or(keep_until).naive_utc();
        let (subject, change, naive_now) = (msg.subject, msg.change, now.naive_utc());
        AtomicResponse::new(Box::pin(
            async move {
                let (result, sessions) = db
                    .run(move |conn| {
                        crate::db::write_transaction(conn, |conn| -> Result<(T, Vec<String>), E> {
                            let (result, user_id) = change(conn)?;
                            let sessions = match user_id {
                                Some(user_id) => sessions::revoke_user_families(conn, user_id, naive_now)?,
                                None => Vec::new(),
                            };
                            sessions::revoke_subject(
                                conn,
                                &subject.to_string(),
                                stored_cutoff,
                                stored_until,
                                naive_now,
                            )?;
                            Ok((result, sessions))
                        })
                    })
                    .await?;
                let mut denied = list.write();
                denied.subjects.insert(subject, cutoff);
                for sid in sessions.iter().filter_map(|sid| Uuid::parse_str(sid).ok()) {
                    denied.sessions.insert(sid, keep_until.timestamp());
                }
                Ok(result)
            }
            .into_actor(self),
        ))
    }
}

/// Loads the revoked tokens still in force, a page at a time.
async fn load_revoked_tokens(db: &Database, now: chrono::NaiveDateTime) -> Result<HashMap<Uuid, i64>, RevocationError> {
    const PAGE: i64 = 20_000;
    let mut tokens = HashMap::new();
    let mut after = String::new();
    loop {
        let from = after.clone();
        let page = db.query(move |conn| revocations::live_page(conn, now, &from, PAGE)).await?;
        for (jti, keep_until) in &page {
            if let Ok(jti) = Uuid::parse_str(jti) {
                tokens.insert(jti, keep_until.and_utc().timestamp());
            }
        }
        match page.last() {
            Some((last, _)) if page.len() as i64 == PAGE => after.clone_from(last),
            _ => return Ok(tokens),
        }
    }
}

/// What handlers hold: the deny list to check, and the actor to revoke through.
#[derive(Clone)]
pub struct RevocationsHandle {
    list: Arc<DenyList>,
    addr: Addr<Revocations>,
}

impl RevocationsHandle {
    /// Loads every revocation still in force, then starts the actor. `token_lifetime` is the
    /// access token TTL plus the verification leeway.
    pub async fn start(
        db: Database,
        clock: SharedClock,
        token_lifetime: TimeDelta,
        poll_interval: Duration,
    ) -> Result<Self, RevocationError> {
        let now = clock.now();
        let (naive_now, revoked_since) = (now.naive_utc(), (now - token_lifetime).naive_utc());
        let (families, subjects) = db
            .query(move |conn| {
                Ok((
                    sessions::revoked_families_since(conn, revoked_since)?,
                    sessions::live_subject_revocations(conn, naive_now)?,
                ))
            })
            .await?;
        // Rows are written only by us; one whose id does not parse cannot match any token.
        let parse = |id: &str| Uuid::parse_str(id).ok();
        let mut denied = Denied {
            tokens: load_revoked_tokens(&db, naive_now).await?,
            sessions: families
                .iter()
                .filter_map(|(sid, revoked_at)| {
                    Some((parse(sid)?, (revoked_at.and_utc() + token_lifetime).timestamp()))
                })
                .collect(),
            subjects: subjects
                .iter()
                .filter_map(|(subject, valid_after, until)| {
                    let cutoff = SubjectCutoff {
                        valid_after: valid_after.and_utc().timestamp(),
                        keep_until: until.and_utc().timestamp(),
                    };
                    Some((parse(subject)?, cutoff))
                })
                .collect(),
        };
        denied.tokens.shrink_to_fit();
        let list = Arc::new(DenyList { denied: RwLock::new(denied) });
        log::info!("deny list loaded: {} entries, {} heap bytes", list.len(), list.heap_bytes());
        let high_water = Arc::new(std::sync::Mutex::new(naive_now));
        let addr = Revocations { db, clock, list: list.clone(), token_lifetime, poll_interval, high_water }.start();
        Ok(Self { list, addr })
    }

    pub fn deny_list(&self) -> &DenyList {
        &self.list
    }

    /// Revokes one access token; returns once the revocation is stored.
    pub async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> Result<(), RevocationError> {
        self.addr.send(RevokeToken { jti, expires_at }).await.map_err(|_| RevocationError::Unavailable)?
    }

    /// Revokes a session (token family); returns once stored.
    pub async fn revoke_session(&self, sid: Uuid) -> Result<(), RevocationError> {
        self.addr.send(RevokeSession { sid }).await.map_err(|_| RevocationError::Unavailable)?
    }

    /// Runs `change` and ends the tokens of `subject` that `scope` names (with every session of
    /// the user id `change` returns), in one transaction.
    pub async fn end_subject<T, E, F>(&self, subject: Uuid, scope: SubjectScope, change: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<(T, Option<i32>), E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + From<DbUnavailable> + From<RevocationError> + Send + 'static,
    {
        let message = EndSubject { subject, scope, change: Box::new(change) };
        self.addr.send(message).await.map_err(|_| E::from(RevocationError::Unavailable))?
    }

    /// Picks up other instances' revocations now instead of at the next poll.
    pub async fn sync_now(&self) -> Result<usize, RevocationError> {
        self.addr.send(Sync).await.map_err(|_| RevocationError::Unavailable)?
    }

    /// Prunes now instead of at the next interval (tests, and operators' tools).
    pub async fn prune_now(&self) -> Result<usize, RevocationError> {
        self.addr.send(Prune).await.map_err(|_| RevocationError::Unavailable)?
    }
}
