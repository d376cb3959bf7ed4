//! `Revocations`: owns the [`DenyList`] of access tokens refused before they expire (single
//! tokens by `jti`, sessions by `sid`, subjects up to a cutoff). Each revocation is stored
//! before it is acknowledged and loaded again at start; revocations made by other instances
//! (several on one PostgreSQL) are picked up by polling; entries are pruned once the tokens
//! they refuse have expired anyway. The per-request check reads the list, never this actor.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::{revocations, sessions};
use crate::tokens::{DenyList, DenyListWriter, Subject, SubjectCutoff, SubjectRevocation};
use actix::prelude::*;
use chrono::{DateTime, Duration as TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Arc;
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

/// How far behind its high-water mark a sync looks again: a revocation whose transaction
/// committed late, or was stamped by another instance's slightly different clock, is still
/// picked up. Instances' clocks must agree within this (run NTP; JWT expiry needs it anyway).
const SYNC_MARGIN: TimeDelta = TimeDelta::seconds(30);

struct Revocations {
    db: Database,
    clock: SharedClock,
    /// The only writer of the deny list (shared with the actor's own futures, never outside).
    list: Arc<DenyListWriter>,
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
                let (tokens, revoked_sessions, subjects) = db
                    .read(move |conn| {
                        Ok((
                            revocations::revoked_since(conn, since)?,
                            sessions::revoked_sessions_since(conn, since)?,
                            sessions::subject_revocations_since(conn, since)?,
                        ))
                    })
                    .await?;
                let mut newest = since + SYNC_MARGIN;
                for (jti, expires_at, revoked_at) in &tokens {
                    if let Ok(jti) = Uuid::parse_str(jti) {
                        list.deny_token(jti, expires_at.and_utc().timestamp());
                    }
                    newest = newest.max(*revoked_at);
                }
                for (sid, revoked_at) in &revoked_sessions {
                    if let Ok(sid) = Uuid::parse_str(sid) {
                        list.deny_sessions([sid], (revoked_at.and_utc() + lifetime).timestamp());
                    }
                    newest = newest.max(*revoked_at);
                }
                for (subject, valid_after, expires_at, revoked_at) in &subjects {
                    if let Ok(subject) = subject.parse::<Subject>() {
                        list.deny_subject(subject, cutoff_of(*valid_after, *expires_at));
                    }
                    newest = newest.max(*revoked_at);
                }
                let mut mark = high_water.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                *mark = (*mark).max(newest);
                Ok(tokens.len() + revoked_sessions.len() + subjects.len())
            }
            .into_actor(self),
        ))
    }
}

/// A stored subject revocation as the deny list holds it.
fn cutoff_of(valid_after: chrono::NaiveDateTime, expires_at: chrono::NaiveDateTime) -> SubjectCutoff {
    SubjectCutoff { valid_after: valid_after.and_utc().timestamp(), keep_until: expires_at.and_utc().timestamp() }
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
                .write(move |conn| {
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
        let keep_until = msg.expires_at + TimeDelta::seconds(crate::tokens::CLOCK_LEEWAY_SECS);
        Box::pin(async move {
            let jti = msg.jti.to_string();
            db.write(move |conn| revocations::insert(conn, &jti, keep_until.naive_utc(), now.naive_utc())).await?;
            // Only once it is stored: an acknowledged revocation survives a restart.
            list.deny_token(msg.jti, keep_until.timestamp());
            Ok(())
        })
    }
}

/// Adds a subject revocation that is already stored (by the transaction of the change it
/// belongs to: a deletion, a role change, "log out everywhere") to the deny list.
#[derive(Message)]
#[rtype(result = "()")]
struct Publish(SubjectRevocation);

impl Handler<Publish> for Revocations {
    type Result = ();

    fn handle(&mut self, Publish(revocation): Publish, _: &mut Self::Context) {
        self.list.deny_revocation(revocation);
    }
}

/// Adds sessions whose revocation is already stored (by the transaction of the change that
/// ended them: a password change, a user ending one of their sessions) to the deny list.
#[derive(Message)]
#[rtype(result = "()")]
struct PublishSessions(Vec<Uuid>);

impl Handler<PublishSessions> for Revocations {
    type Result = ();

    fn handle(&mut self, PublishSessions(sids): PublishSessions, _: &mut Self::Context) {
        // Their access tokens were all issued before now, so they expire within one lifetime.
        let keep_until = self.clock.now() + self.token_lifetime;
        self.list.deny_sessions(sids, keep_until.timestamp());
    }
}

/// Loads the revoked tokens still in force, a page at a time.
async fn load_revoked_tokens(db: &Database, now: chrono::NaiveDateTime) -> Result<HashMap<Uuid, i64>, RevocationError> {
    const PAGE: i64 = 20_000;
    let mut tokens = HashMap::new();
    let mut after = String::new();
    loop {
        let from = after.clone();
        let page = db.read(move |conn| revocations::live_page(conn, now, &from, PAGE)).await?;
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

/// What the rest of the service holds: the deny list to check, and the actor to revoke through.
#[derive(Clone)]
pub struct RevocationsHandle {
    list: Arc<DenyList>,
    addr: Addr<Revocations>,
    token_lifetime: TimeDelta,
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
        let (revoked_sessions, subjects) = db
            .read(move |conn| {
                Ok((
                    sessions::revoked_sessions_since(conn, revoked_since)?,
                    sessions::live_subject_revocations(conn, naive_now)?,
                ))
            })
            .await?;
        // Rows are written only by us; one whose id does not parse cannot match any token.
        let (list, writer) = DenyList::from_entries(
            load_revoked_tokens(&db, naive_now).await?,
            revoked_sessions.iter().filter_map(|(sid, revoked_at)| {
                Some((Uuid::parse_str(sid).ok()?, (revoked_at.and_utc() + token_lifetime).timestamp()))
            }),
            subjects.iter().filter_map(|(subject, valid_after, until)| {
                Some((subject.parse::<Subject>().ok()?, cutoff_of(*valid_after, *until)))
            }),
        );
        log::info!("deny list loaded: {} entries, {} heap bytes", list.len(), list.heap_bytes());
        let high_water = Arc::new(std::sync::Mutex::new(naive_now));
        let writer = Arc::new(writer);
        let addr = Revocations { db, clock, list: writer, token_lifetime, poll_interval, high_water }.start();
        Ok(Self { list, addr, token_lifetime })
    }

    /// The deny list, for the token verifier and metrics. Only the actor adds to it.
    pub fn deny_list(&self) -> Arc<DenyList> {
        self.list.clone()
    }

    /// How long a revocation matters: the access token lifetime plus the leeway.
    pub fn token_lifetime(&self) -> TimeDelta {
        self.token_lifetime
    }

    /// Revokes one access token; returns once the revocation is stored.
    pub async fn revoke_token(&self, jti: Uuid, expires_at: DateTime<Utc>) -> Result<(), RevocationError> {
        self.addr.send(RevokeToken { jti, expires_at }).await.map_err(|_| RevocationError::Unavailable)?
    }

    /// Makes a subject revocation that is already stored take effect here at once (other
    /// instances pick it up from the database).
    pub async fn publish(&self, revocation: SubjectRevocation) -> Result<(), RevocationError> {
        self.addr.send(Publish(revocation)).await.map_err(|_| RevocationError::Unavailable)
    }

    /// Makes session revocations that are already stored take effect here at once (other
    /// instances pick them up from the database).
    pub async fn publish_sessions(&self, sids: Vec<Uuid>) -> Result<(), RevocationError> {
        self.addr.send(PublishSessions(sids)).await.map_err(|_| RevocationError::Unavailable)
    }

    /// Prunes now instead of at the next interval (tests, and operators' tools).
    pub async fn prune_now(&self) -> Result<usize, RevocationError> {
        self.addr.send(Prune).await.map_err(|_| RevocationError::Unavailable)?
    }
}
