//! `Revocations`: the deny list of access tokens revoked before they expire (`/logout`).
//! Every revocation is written to the database before it is acknowledged, so it survives a
//! restart; the in-memory [`DenyList`] answers the per-request check without any message.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::revocations;
use crate::tokens::CLOCK_LEEWAY_SECS;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use uuid::Uuid;

/// How often revocations of tokens that have expired anyway are dropped.
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

/// Revoked token ids with the time (unix seconds) after which the token is refused anyway. Read by request handlers; written only
/// by the [`Revocations`] actor.
#[derive(Debug, Default)]
pub struct DenyList {
    revoked: RwLock<HashMap<Uuid, i64>>,
}

impl DenyList {
    pub fn is_revoked(&self, jti: &Uuid) -> bool {
        self.revoked.read().unwrap_or_else(|poisoned| poisoned.into_inner()).contains_key(jti)
    }

    pub fn len(&self) -> usize {
        self.revoked.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, jti: Uuid, expires_at: i64) {
        self.revoked.write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(jti, expires_at);
    }

    fn prune(&self, now: i64) {
        self.revoked.write().unwrap_or_else(|poisoned| poisoned.into_inner()).retain(|_, expires_at| *expires_at > now);
    }
}

struct Revocations {
    db: Database,
    clock: SharedClock,
    list: Arc<DenyList>,
}

impl Actor for Revocations {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PRUNE_INTERVAL, |_, ctx| ctx.notify(Prune));
    }
}

/// Drops revocations of tokens that are refused anyway by now; answers how many rows went.
#[derive(Message)]
#[rtype(result = "Result<usize, RevocationError>")]
struct Prune;

impl Handler<Prune> for Revocations {
    type Result = ResponseFuture<Result<usize, RevocationError>>;

    fn handle(&mut self, _: Prune, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        Box::pin(async move {
            list.prune(now.timestamp());
            let pruned =
                db.query(move |conn| revocations::prune(conn, now.naive_utc())).await.inspect_err(|error| {
                    log::warn!("pruning revocations failed (will retry): {error}");
                })?;
            if pruned > 0 {
                log::info!("pruned {pruned} expired revocations");
            }
            Ok(pruned)
        })
    }
}

/// Revokes token `jti`, valid until `expires_at`.
///
/// The entry is kept until `expires_at` plus the verification leeway: until then an unrevoked
/// copy of the token would still be accepted.
#[derive(Message)]
#[rtype(result = "Result<(), RevocationError>")]
struct Revoke {
    jti: Uuid,
    expires_at: DateTime<Utc>,
}

impl Handler<Revoke> for Revocations {
    type Result = ResponseFuture<Result<(), RevocationError>>;

    fn handle(&mut self, msg: Revoke, _: &mut Self::Context) -> Self::Result {
        let (db, list, now) = (self.db.clone(), self.list.clone(), self.clock.now());
        Box::pin(async move {
            let jti = msg.jti.to_string();
            let keep_until = msg.expires_at + chrono::Duration::seconds(CLOCK_LEEWAY_SECS);
            let expires_at = keep_until.naive_utc();
            db.query(move |conn| revocations::insert(conn, &jti, expires_at, now.naive_utc())).await?;
            // Only once it is stored: an acknowledged revocation survives a restart.
            list.insert(msg.jti, keep_until.timestamp());
            Ok(())
        })
    }
}

/// What handlers hold: the deny list to check, and the actor to revoke through.
#[derive(Clone)]
pub struct RevocationsHandle {
    list: Arc<DenyList>,
    addr: Addr<Revocations>,
}

impl RevocationsHandle {
    /// Loads the revocations of tokens that have not expired yet, then starts the actor.
    pub async fn start(db: Database, clock: SharedClock) -> Result<Self, RevocationError> {
        let now = clock.now();
        let live = db.query(move |conn| revocations::live(conn, now.naive_utc())).await?;
        let list = Arc::new(DenyList::default());
        for (jti, expires_at) in live {
            // Rows are written only by us; one that does not parse cannot match any token.
            if let Ok(jti) = Uuid::parse_str(&jti) {
                list.insert(jti, expires_at.and_utc().timestamp());
            }
        }
        let addr = Revocations { db, clock, list: list.clone() }.start();
        Ok(Self { list, addr })
    }

    pub fn is_revoked(&self, jti: &Uuid) -> bool {
        self.list.is_revoked(jti)
    }

    /// Revokes a token; returns once the revocation is stored.
    pub async fn revoke(&self, jti: Uuid, expires_at: DateTime<Utc>) -> Result<(), RevocationError> {
        self.addr.send(Revoke { jti, expires_at }).await.map_err(|_| RevocationError::Unavailable)?
    }

    /// Prunes now instead of at the next interval (tests, and operators' tools).
    pub async fn prune_now(&self) -> Result<usize, RevocationError> {
        self.addr.send(Prune).await.map_err(|_| RevocationError::Unavailable)?
    }

    pub fn deny_list(&self) -> &DenyList {
        &self.list
    }
}
