//! Key ring operations. For the admin endpoints, through the running key ring actor
//! ([`ring`], [`rotate_now`], [`delete_now`]). For the `keys` commands, on the stored ring
//! itself: listing, rotating, and re-encrypting under a new master key (with the service
//! stopped). Each of those works on one connection and stores keys exactly as the key ring
//! actor does ([`crate::key_store`]); a running service picks a rotation up at its next poll.

use super::{Failure, Services};
use crate::actors::key_ring::KeyRingError;
use crate::clock::Clock;
use crate::config::MasterKeySource;
use crate::db::DbConn;
use crate::db::{signing_keys, ssf};
use crate::key_schedule::{self, KeyPolicy, KeyTimes, RotationRefused};
use crate::key_store::{self, KeyStoreError};
use crate::master_key::{MasterKey, MasterKeyError};
use chrono::NaiveDateTime;

/// Every key of the running ring with its state and times (never key material).
pub fn ring(services: &Services) -> Vec<KeyTimes> {
    services.key_ring.snapshot().keys.clone()
}

/// Why the running ring refused an administrator's change.
#[derive(Debug, thiserror::Error)]
pub enum RingChangeError {
    /// Rotating now would start signing with a key some verifiers may not have fetched yet.
    #[error(transparent)]
    TooSoon(#[from] RotationRefused),
    #[error("no key with that kid")]
    UnknownKey,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<KeyRingError> for RingChangeError {
    fn from(error: KeyRingError) -> Self {
        match error {
            KeyRingError::RotationRefused(refused) => Self::TooSoon(refused),
            KeyRingError::UnknownKey => Self::UnknownKey,
            other => Self::Failure(other.into()),
        }
    }
}

/// Rotates now: the next key starts signing; returns its kid.
pub async fn rotate_now(services: &Services) -> Result<String, RingChangeError> {
    Ok(services.key_ring.rotate().await?)
}

/// Deletes key `kid` at once (a compromised key): it leaves the JWKS and every token it signed
/// is refused.
pub async fn delete_now(services: &Services, kid: &str) -> Result<(), RingChangeError> {
    services.key_ring.delete(kid).await?;
    services.metrics.revocations.with_label_values(&["key"]).inc();
    Ok(())
}

/// Why a key operation failed. The messages are what the `keys` commands print.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    /// The master key could not be loaded, or does not open a stored key.
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error("key ring: {0}")]
    Store(#[from] KeyStoreError),
    #[error("key ring: {0}")]
    RotationRefused(#[from] RotationRefused),
    /// Keys were added or removed while being re-encrypted (a service was running); nothing
    /// was changed.
    #[error("the key ring changed while re-encrypting; stop the service and run this again")]
    RingChanged,
}

/// One stored key as listed: its state and times, never key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    pub kid: String,
    /// As stored: `next`, `current` or `retired`.
    pub state: String,
    pub created_at: NaiveDateTime,
    pub activates_at: NaiveDateTime,
    pub retires_at: Option<NaiveDateTime>,
}

/// Every stored key, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<KeySummary>, KeysError> {
    Ok(signing_keys::list(conn)?
        .into_iter()
        .map(|row| KeySummary {
            kid: row.kid,
            state: row.state,
            created_at: row.created_at,
            activates_at: row.activates_at,
            retires_at: row.retires_at,
        })
        .collect())
}

/// The master key `source` names. A missing key file is created only while no key is stored:
/// a new master key could never open keys sealed under the old one.
pub fn load_master_key(conn: &mut DbConn, source: &MasterKeySource) -> Result<MasterKey, KeysError> {
    let stored = signing_keys::count(conn)?;
    Ok(MasterKey::load(source, usize::try_from(stored).unwrap_or(usize::MAX))?)
}

/// Rotates now, without the service: the next key starts signing, the current one retires, and
/// a new next key of `key_bits` bits is made. Returns the kid that signs now.
///
/// Refused like an admin rotation when the next key is too young. Removals of expired keys are
/// left to the running service, which applies them with its own settings.
pub fn rotate_offline(
    conn: &mut DbConn,
    master_key: &MasterKey,
    key_bits: usize,
    policy: &KeyPolicy,
    clock: &dyn Clock,
) -> Result<String, KeysError> {
    let rows = signing_keys::list(conn)?;
    // Every stored key must open with this master key: never mix keys sealed under two.
    for row in &rows {
        key_store::open_key(master_key, row)?;
    }
    let planned_at = clock.now();
    let mut plan = key_schedule::plan_rotation(&key_store::key_times(&rows)?, policy, planned_at)?;
    // Removals are left to the running service (see above).
    plan.remove.clear();
    let keys = key_store::generate_keys(&plan, key_bits)?;
    let update = key_store::build_update(&plan, keys, master_key, policy, planned_at, clock.now())?;
    signing_keys::apply(conn, &update)?;
    let signing =
        plan.promote.map(|promotion| promotion.promote).or_else(|| update.insert.first().map(|row| row.kid.clone()));
    Ok(signing.unwrap_or_default())
}

/// Re-encrypts every stored private key from `old` to `new` (master key rotation) in one
/// transaction. Returns how many keys were re-encrypted.
pub fn rewrap(conn: &mut DbConn, old: &MasterKey, new: &MasterKey) -> Result<usize, KeysError> {
    let rows = signing_keys::list(conn)?;
    let resealed = key_store::reseal(&rows, old, new)?;
    crate::db::write_transaction(conn, |conn| -> Result<(), KeysError> {
        signing_keys::replace_sealed(conn, &resealed)?;
        // Read and re-sealed inside the transaction: a header changed meanwhile is not lost.
        for (stream_id, sealed) in reseal_push_authorizations(conn, old, new)? {
            ssf::replace_push_authorization(conn, &stream_id, &sealed)?;
        }
        Ok(())
    })
    .map_err(|error| match error {
        KeysError::Database(diesel::result::Error::RollbackTransaction) => KeysError::RingChanged,
        other => other,
    })?;
    Ok(resealed.len())
}

/// The sealed `Authorization` headers of push streams (SSF), re-sealed under `new`.
fn reseal_push_authorizations(
    conn: &mut DbConn,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Vec<(String, Vec<u8>)>, KeysError> {
    let mut resealed = Vec::new();
    for (stream_id, sealed) in ssf::push_authorizations(conn)? {
        let label = crate::service::ssf::authorization_label(&stream_id);
        let header = old.open(&label, &sealed)?;
        resealed.push((stream_id, new.seal(&label, &header)?));
    }
    Ok(resealed)
}
