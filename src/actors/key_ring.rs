//! `KeyRing`: owns the RSA signing keys and carries out the schedule of
//! [`crate::key_schedule`]: it makes keys (off the async workers), rotates them, removes retired
//! ones, and publishes an immutable [`KeyRingSnapshot`] that request handlers read without
//! messaging the actor, so signing, verification and the JWKS never queue on this mailbox.
//!
//! Every operation re-reads the ring from the database first, so a change made elsewhere (the
//! `keys` commands) is picked up at the next tick, and is applied with one transaction. How keys
//! are stored (sealed rows, generation) is [`crate::key_store`]'s, shared with those commands;
//! this module decides when.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::signing_keys::{self, SigningKeyRow};
use crate::key_schedule::{self, KeyPolicy, Plan, RotationRefused};
use crate::key_store::{self, KeyStoreError};
use crate::master_key::MasterKey;
use crate::tokens::{KeyRingSnapshot, SharedSnapshot, SigningKey};
use actix::prelude::*;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a key ring operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// A stored key cannot be opened (e.g. a wrong master key), or a new one made.
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    /// A forced rotation would start a key some verifiers may not have yet.
    #[error(transparent)]
    RotationRefused(#[from] RotationRefused),
    /// No key has that kid (or, after an operation, no key signs).
    #[error("no key with that kid")]
    UnknownKey,
    /// Another instance changed the ring meanwhile; the operation was rolled back.
    #[error("the key ring was changed concurrently; try again")]
    ConcurrentChange,
    /// The database failed or was unavailable.
    #[error("database: {0}")]
    Database(String),
    /// The actor or a key generation thread went away.
    #[error("key ring unavailable")]
    Interrupted,
}

impl From<DbUnavailable> for KeyRingError {
    fn from(error: DbUnavailable) -> Self {
        Self::Database(error.to_string())
    }
}

impl From<DbError> for KeyRingError {
    fn from(error: DbError) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match error {
            // A state that changed under us, or a second `next`/`current` key made elsewhere.
            DbError::Query(
                Error::RollbackTransaction | Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _),
            ) => Self::ConcurrentChange,
            other => Self::Database(other.to_string()),
        }
    }
}

/// Key size, timing rules, and how often the ring is re-read.
#[derive(Debug, Clone, Copy)]
pub struct KeyRingConfig {
    /// Size of generated RSA keys, in bits.
    pub key_bits: usize,
    /// When keys are made, rotated and removed.
    pub policy: KeyPolicy,
    /// How often the schedule is checked and the ring re-read (changes made by other
    /// instances or the CLI are picked up within this).
    pub poll_interval: Duration,
}

/// What the actor's operations share; cloned into each (serialized) operation.
#[derive(Clone)]
struct Ring {
    db: Database,
    master_key: Arc<MasterKey>,
    config: KeyRingConfig,
    clock: SharedClock,
    snapshot: SharedSnapshot,
    /// Keys already decrypted and parsed, by kid: each key is parsed once, not per reload.
    parsed: Arc<Mutex<HashMap<String, Arc<SigningKey>>>>,
}

/// What the actor is asked to do; each is planned against the ring as stored at that moment.
enum Operation {
    /// Checks the schedule: rotates, removes and creates keys that are due; picks up outside
    /// changes.
    Tick,
    /// Rotates now (admin).
    Rotate,
    /// Deletes a key at once (compromise).
    Delete(String),
}

impl Ring {
    /// Re-reads the ring, plans `operation` against it, carries the plan out, and publishes the
    /// result. Returns the kid of the current key.
    async fn run(&self, operation: Operation) -> Result<String, KeyRingError> {
        let rows = self.db.read(signing_keys::list).await?;
        let keys = key_store::key_times(&rows)?;
        let now = self.clock.now();
        let policy = &self.config.policy;
        let plan = match operation {
            Operation::Tick => key_schedule::plan(&keys, policy, now),
            Operation::Rotate => key_schedule::plan_rotation(&keys, policy, now)?,
            Operation::Delete(kid) => {
                key_schedule::plan_deletion(&keys, &kid, policy, now).ok_or(KeyRingError::UnknownKey)?
            }
        };
        let rows = if plan.is_empty() { rows } else { self.execute(&plan, now).await? };
        self.publish(&rows)
    }

    async fn execute(&self, plan: &Plan, planned_at: DateTime<Utc>) -> Result<Vec<SigningKeyRow>, KeyRingError> {
        let (plan_copy, bits) = (plan.clone(), self.config.key_bits);
        let keys = actix_web::rt::task::spawn_blocking(move || key_store::generate_keys(&plan_copy, bits))
            .await
            .map_err(|_| KeyRingError::Interrupted)??;
        // The old key signed until now, while the new keys were being generated.
        let now = self.clock.now();
        let update = key_store::build_update(plan, keys, &self.master_key, &self.config.policy, planned_at, now)?;
        let inserted: Vec<String> = update.insert.iter().map(|row| format!("{} ({})", row.kid, row.state)).collect();
        self.db.write(move |conn| signing_keys::apply(conn, &update)).await?;
        if let Some(promotion) = &plan.promote {
            log::info!(
                "key {} now signs; {} retired",
                promotion.promote,
                promotion.retire.as_deref().unwrap_or("no key")
            );
        }
        for (kid, state) in &plan.remove {
            log::info!("{state} key {kid} removed from the ring");
        }
        for key in inserted {
            log::info!("created key {key}");
        }
        Ok(self.db.read(signing_keys::list).await?)
    }

    /// Builds and publishes a snapshot of `rows`, parsing only keys not parsed before.
    fn publish(&self, rows: &[SigningKeyRow]) -> Result<String, KeyRingError> {
        let keys = key_store::key_times(rows)?;
        let mut parsed = self.parsed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        parsed.retain(|kid, _| rows.iter().any(|row| &row.kid == kid));
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            let key = match parsed.get(&row.kid) {
                Some(key) => key.clone(),
                None => {
                    let key = Arc::new(key_store::open_key(&self.master_key, row)?);
                    parsed.insert(row.kid.clone(), key.clone());
                    key
                }
            };
            published.push(key);
        }
        let unchanged = self.snapshot.load().keys == keys;
        if !unchanged {
            self.snapshot.store(Arc::new(KeyRingSnapshot::new(&published, keys, self.config.policy)));
        }
        self.snapshot.load().current.as_ref().map(|key| key.kid().to_string()).ok_or(KeyRingError::UnknownKey)
    }
}

/// The actor owning the ring. Its operations are atomic: one finishes before the next starts.
struct KeyRing {
    ring: Ring,
}

impl Actor for KeyRing {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.ring.config.poll_interval, |_, ctx| ctx.notify(Operate(Operation::Tick)));
    }
}

/// Carries out one operation; answers with the kid of the key that signs afterwards.
#[derive(Message)]
#[rtype(result = "Result<String, KeyRingError>")]
struct Operate(Operation);

impl Handler<Operate> for KeyRing {
    type Result = AtomicResponse<Self, Result<String, KeyRingError>>;

    fn handle(&mut self, Operate(operation): Operate, _: &mut Self::Context) -> Self::Result {
        let ring = self.ring.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let result = ring.run(operation).await;
                if let Err(error) = &result {
                    log::warn!("key ring: {error}");
                }
                result
            }
            .into_actor(self),
        ))
    }
}

/// What handlers hold: the current snapshot, and the actor for changes.
#[derive(Clone)]
pub struct KeyRingHandle {
    snapshot: SharedSnapshot,
    addr: Addr<KeyRing>,
}

impl KeyRingHandle {
    /// Starts the actor and brings the ring up to date (creating it on first start, rotating if
    /// a rotation fell due while the service was down). Fails when a stored key cannot be
    /// opened, e.g. under a wrong master key: it never silently makes a new ring.
    pub async fn start(
        db: Database,
        master_key: Arc<MasterKey>,
        config: KeyRingConfig,
        clock: SharedClock,
    ) -> Result<Self, KeyRingError> {
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(KeyRingSnapshot::empty(config.policy)));
        let ring = Ring { db, master_key, config, clock, snapshot: snapshot.clone(), parsed: Arc::default() };
        // The first load runs before the actor starts, so a failure stops the start. Instances
        // booting together on an empty database race to create the ring: the transactions
        // check the states they change and the loser rolls back, then adopts the winner's ring.
        match ring.run(Operation::Tick).await {
            Err(KeyRingError::ConcurrentChange) => {
                log::info!("another instance changed the key ring at the same moment; adopting it");
                ring.run(Operation::Tick).await?;
            }
            other => {
                other?;
            }
        }
        let addr = KeyRing { ring }.start();
        Ok(Self { snapshot, addr })
    }

    /// The ring as it is now. Cheap: an atomic load, no message.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<KeyRingSnapshot>> {
        self.snapshot.load()
    }

    /// The live view itself, for components that read the ring without holding this handle.
    /// The actor stays its only writer.
    pub fn shared_snapshot(&self) -> SharedSnapshot {
        self.snapshot.clone()
    }

    /// Runs the schedule now instead of at the next tick (tests drive a manual clock with it).
    pub async fn tick(&self) -> Result<String, KeyRingError> {
        self.operate(Operation::Tick).await
    }

    /// The next key starts signing now; returns its kid.
    pub async fn rotate(&self) -> Result<String, KeyRingError> {
        self.operate(Operation::Rotate).await
    }

    /// Deletes key `kid` at once: it leaves the JWKS and its tokens stop verifying.
    pub async fn delete(&self, kid: &str) -> Result<(), KeyRingError> {
        self.operate(Operation::Delete(kid.to_string())).await.map(drop)
    }

    async fn operate(&self, operation: Operation) -> Result<String, KeyRingError> {
        self.addr.send(Operate(operation)).await.map_err(|_| KeyRingError::Interrupted)?
    }
}
