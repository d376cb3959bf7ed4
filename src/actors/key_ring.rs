//! `KeyRing`: owns the RSA signing keys and carries out the schedule of
//! [`crate::key_schedule`]: it makes keys (off the async workers), rotates them, removes retired
//! ones, and publishes an immutable [`KeyRingSnapshot`] that request handlers read without
//! messaging the actor, so signing, verification and the JWKS never queue on this mailbox.
//!
//! Every operation re-reads the ring from the database first, so a change made elsewhere (the
//! `keys` commands) is picked up at the next tick, and is applied with one transaction.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::signing_keys::{self, PromotionRow, RingUpdate, SigningKeyRow};
use crate::key_schedule::{self, KeyPolicy, KeyState, KeyTimes, Plan, RotationRefused};
use crate::master_key::{MasterKey, MasterKeyError};
use crate::tokens::{Jwk, KeyError, SigningKey, VerificationKeys, generate_pkcs8};
use actix::prelude::*;
use arc_swap::ArcSwap;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zeroize::Zeroizing;

/// The default of KEY_RING_POLL_INTERVAL: how often the ring checks its schedule and re-reads
/// the database.
pub const TICK_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored key {stored} decrypts to a key whose thumbprint is {actual}")]
    KidMismatch { stored: String, actual: String },
    #[error("stored key {kid} has an unknown state or times")]
    Corrupt { kid: String },
    #[error(transparent)]
    RotationRefused(#[from] RotationRefused),
    #[error("no key with that kid")]
    UnknownKey,
    #[error("the key ring was changed concurrently; try again")]
    ConcurrentChange,
    #[error("database: {0}")]
    Database(String),
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

/// What the rest of the service sees of the ring at one moment. Replaced whole on every change.
pub struct KeyRingSnapshot {
    /// The key that signs new tokens (`None` only before the ring is first loaded).
    pub current: Option<Arc<SigningKey>>,
    /// Every published key (next, current, retired) by kid, for verification.
    pub verification_keys: VerificationKeys,
    /// The serialized JWKS document (RFC 7517 §5), built once per change.
    pub jwks: Arc<[u8]>,
    /// Strong ETag of `jwks`: changes exactly when the key set does.
    pub etag: String,
    /// Every key's state and times, oldest first.
    pub keys: Vec<KeyTimes>,
    /// When the next key starts signing.
    pub next_activation: Option<DateTime<Utc>>,
    pub policy: KeyPolicy,
}

impl KeyRingSnapshot {
    fn empty(policy: KeyPolicy) -> Self {
        Self::new(&[], Vec::new(), policy)
    }

    fn new(published: &[Arc<SigningKey>], keys: Vec<KeyTimes>, policy: KeyPolicy) -> Self {
        #[derive(Serialize)]
        struct Jwks<'a> {
            keys: Vec<&'a Jwk>,
        }
        // A struct of strings always serializes; the fallback only keeps this path panic-free.
        let jwks = serde_json::to_vec(&Jwks { keys: published.iter().map(|key| key.jwk()).collect() })
            .unwrap_or_else(|_| br#"{"keys":[]}"#.to_vec());
        let etag = format!("\"{}\"", B64URL.encode(&digest::digest(&digest::SHA256, &jwks).as_ref()[..16]));
        let verification_keys = published.iter().map(|key| (key.kid().to_string(), key.decoding_key())).collect();
        let current_kid = keys.iter().find(|key| key.state == KeyState::Current).map(|key| key.kid.as_str());
        let current = published.iter().find(|key| Some(key.kid()) == current_kid).cloned();
        let next_activation = key_schedule::next_activation(&keys, &policy);
        Self { current, verification_keys, jwks: jwks.into(), etag, keys, next_activation, policy }
    }

    /// The JWKS `max-age` at `now` (see [`KeyPolicy::jwks_max_age`]).
    pub fn jwks_max_age(&self, now: DateTime<Utc>) -> i64 {
        self.policy.jwks_max_age(self.next_activation, now)
    }
}

/// Key size, timing rules, and how often the ring is re-read.
#[derive(Debug, Clone, Copy)]
pub struct KeyRingConfig {
    pub key_bits: usize,
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
    snapshot: Arc<ArcSwap<KeyRingSnapshot>>,
    /// Keys already decrypted and parsed, by kid: each key is parsed once, not per reload.
    parsed: Arc<Mutex<HashMap<String, Arc<SigningKey>>>>,
}

enum Operation {
    Tick,
    Rotate,
    Delete(String),
}

impl Ring {
    /// Re-reads the ring, plans `operation` against it, carries the plan out, and publishes the
    /// result. Returns the kid of the current key.
    async fn run(&self, operation: Operation) -> Result<String, KeyRingError> {
        let rows = self.db.query(signing_keys::list).await?;
        let keys = key_times(&rows)?;
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
        let keys = actix_web::rt::task::spawn_blocking(move || generate_keys(&plan_copy, bits))
            .await
            .map_err(|_| KeyRingError::Interrupted)??;
        // The old key signed until now, while the new keys were being generated.
        let now = self.clock.now();
        let update = build_update(plan, keys, &self.master_key, self.config, planned_at, now)?;
        let inserted: Vec<String> = update.insert.iter().map(|row| format!("{} ({})", row.kid, row.state)).collect();
        self.db.run(move |conn| signing_keys::apply(conn, &update).map_err(DbError::from)).await?;
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
        Ok(self.db.query(signing_keys::list).await?)
    }

    /// Builds and publishes a snapshot of `rows`, parsing only keys not parsed before.
    fn publish(&self, rows: &[SigningKeyRow]) -> Result<String, KeyRingError> {
        let keys = key_times(rows)?;
        let mut parsed = self.parsed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        parsed.retain(|kid, _| rows.iter().any(|row| &row.kid == kid));
        let mut published = Vec::with_capacity(rows.len());
        for row in rows {
            let key = match parsed.get(&row.kid) {
                Some(key) => key.clone(),
                None => {
                    let key = Arc::new(open_key(&self.master_key, row)?);
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

/// Private keys generated for a plan, not yet sealed or stored.
pub struct GeneratedKeys {
    current: Option<(String, Zeroizing<Vec<u8>>)>,
    next: Option<(String, Zeroizing<Vec<u8>>)>,
}

/// Generates the keys `plan` needs. CPU-heavy: call it off the async workers.
pub fn generate_keys(plan: &Plan, bits: usize) -> Result<GeneratedKeys, KeyRingError> {
    let generate = || -> Result<(String, Zeroizing<Vec<u8>>), KeyRingError> {
        let der = generate_pkcs8(bits)?;
        Ok((SigningKey::from_pkcs8(&der)?.kid().to_string(), der))
    };
    Ok(GeneratedKeys {
        current: if plan.create_current { Some(generate()?) } else { None },
        next: if plan.create_next.is_some() { Some(generate()?) } else { None },
    })
}

/// Turns `plan` (made at `planned_at`) and its generated keys into the database update that
/// carries it out at `now`. `now` is read after the keys were generated, so recorded times
/// match when the change takes effect.
pub fn build_update(
    plan: &Plan,
    keys: GeneratedKeys,
    master_key: &MasterKey,
    config: KeyRingConfig,
    planned_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RingUpdate, KeyRingError> {
    let interval = config.policy.rotation_interval;
    let row = |(kid, der): (String, Zeroizing<Vec<u8>>),
               state: KeyState,
               activates_at: DateTime<Utc>,
               retires_at: Option<DateTime<Utc>>| {
        Ok::<_, KeyRingError>(SigningKeyRow {
            private_key_enc: master_key.seal(&kid, &der)?,
            kid,
            state: state.as_str().to_string(),
            algorithm: "RS256".to_string(),
            created_at: now.naive_utc(),
            activates_at: activates_at.naive_utc(),
            retires_at: retires_at.map(|time| time.naive_utc()),
        })
    };
    let mut insert = Vec::new();
    if let Some(key) = keys.current {
        insert.push(row(key, KeyState::Current, now, Some(now + interval))?);
    }
    if let (Some(key), Some(activates_at)) = (keys.next, plan.create_next) {
        insert.push(row(key, KeyState::Next, activates_at + (now - planned_at), None)?);
    }
    let promotion = plan.promote.as_ref().map(|promotion| PromotionRow {
        retire: promotion.retire.clone(),
        promote: promotion.promote.clone(),
        now: now.naive_utc(),
        retires_at: (now + interval).naive_utc(),
    });
    let remove = plan.remove.iter().map(|(kid, state)| (kid.clone(), state.as_str().to_string())).collect();
    Ok(RingUpdate { remove, promotion, insert })
}

/// The schedule's view of stored rows.
pub fn key_times(rows: &[SigningKeyRow]) -> Result<Vec<KeyTimes>, KeyRingError> {
    rows.iter()
        .map(|row| {
            Ok(KeyTimes {
                kid: row.kid.clone(),
                state: KeyState::parse(&row.state).ok_or_else(|| KeyRingError::Corrupt { kid: row.kid.clone() })?,
                created_at: row.created_at.and_utc(),
                activates_at: row.activates_at.and_utc(),
                retires_at: row.retires_at.map(|time| time.and_utc()),
            })
        })
        .collect()
}

/// Decrypts and parses one stored key, checking it is the key its kid names.
pub fn open_key(master_key: &MasterKey, row: &SigningKeyRow) -> Result<SigningKey, KeyRingError> {
    let der = master_key.open(&row.kid, &row.private_key_enc)?;
    let key = SigningKey::from_pkcs8(&der)?;
    if key.kid() != row.kid {
        return Err(KeyRingError::KidMismatch { stored: row.kid.clone(), actual: key.kid().to_string() });
    }
    Ok(key)
}

/// The actor owning the ring. Its operations are atomic: one finishes before the next starts.
struct KeyRing {
    ring: Ring,
}

impl Actor for KeyRing {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.ring.config.poll_interval, |_, ctx| ctx.notify(Tick));
    }
}

/// Checks the schedule: rotates, removes and creates keys that are due; picks up outside changes.
#[derive(Message)]
#[rtype(result = "Result<String, KeyRingError>")]
struct Tick;

/// Rotates now (admin / CLI).
#[derive(Message)]
#[rtype(result = "Result<String, KeyRingError>")]
struct Rotate;

/// Deletes a key at once (compromise).
#[derive(Message)]
#[rtype(result = "Result<String, KeyRingError>")]
struct DeleteKey(String);

impl KeyRing {
    fn operate(&self, operation: Operation) -> AtomicResponse<Self, Result<String, KeyRingError>> {
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

impl Handler<Tick> for KeyRing {
    type Result = AtomicResponse<Self, Result<String, KeyRingError>>;

    fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
        self.operate(Operation::Tick)
    }
}

impl Handler<Rotate> for KeyRing {
    type Result = AtomicResponse<Self, Result<String, KeyRingError>>;

    fn handle(&mut self, _: Rotate, _: &mut Self::Context) -> Self::Result {
        self.operate(Operation::Rotate)
    }
}

impl Handler<DeleteKey> for KeyRing {
    type Result = AtomicResponse<Self, Result<String, KeyRingError>>;

    fn handle(&mut self, msg: DeleteKey, _: &mut Self::Context) -> Self::Result {
        self.operate(Operation::Delete(msg.0))
    }
}

/// What handlers hold: the current snapshot, and the actor for changes.
#[derive(Clone)]
pub struct KeyRingHandle {
    snapshot: Arc<ArcSwap<KeyRingSnapshot>>,
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
        let snapshot = Arc::new(ArcSwap::from_pointee(KeyRingSnapshot::empty(config.policy)));
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

    /// Runs the schedule now instead of at the next tick (tests drive a manual clock with it).
    pub async fn tick(&self) -> Result<String, KeyRingError> {
        self.addr.send(Tick).await.map_err(|_| KeyRingError::Interrupted)?
    }

    /// The next key starts signing now; returns its kid.
    pub async fn rotate(&self) -> Result<String, KeyRingError> {
        self.addr.send(Rotate).await.map_err(|_| KeyRingError::Interrupted)?
    }

    /// Deletes key `kid` at once: it leaves the JWKS and its tokens stop verifying.
    pub async fn delete(&self, kid: &str) -> Result<(), KeyRingError> {
        self.addr.send(DeleteKey(kid.to_string())).await.map_err(|_| KeyRingError::Interrupted)?.map(drop)
    }
}
