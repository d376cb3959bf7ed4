//! How the key ring is stored: stored rows ↔ the schedule's key times, private keys sealed and
//! opened under the master key, and the keys a plan of [`crate::key_schedule`] needs, generated
//! and turned into one database update. Shared by the key ring actor and the `keys` commands, so
//! both store the ring the same way; it knows nothing of actors.

use crate::db::signing_keys::{PromotionRow, RingUpdate, SigningKeyRow};
use crate::key_schedule::{KeyPolicy, KeyState, KeyTimes, Plan};
use crate::master_key::{MasterKey, MasterKeyError};
use crate::tokens::{KeyError, SigningKey, generate_pkcs8};
use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

/// A stored key that cannot be used, or a new one that could not be made or sealed.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored key {stored} decrypts to a key whose thumbprint is {actual}")]
    KidMismatch { stored: String, actual: String },
    #[error("stored key {kid} has an unknown state or times")]
    Corrupt { kid: String },
}

/// The schedule's view of stored rows.
pub fn key_times(rows: &[SigningKeyRow]) -> Result<Vec<KeyTimes>, KeyStoreError> {
    rows.iter()
        .map(|row| {
            Ok(KeyTimes {
                kid: row.kid.clone(),
                state: KeyState::parse(&row.state).ok_or_else(|| KeyStoreError::Corrupt { kid: row.kid.clone() })?,
                created_at: row.created_at.and_utc(),
                activates_at: row.activates_at.and_utc(),
                retires_at: row.retires_at.map(|time| time.and_utc()),
            })
        })
        .collect()
}

/// Decrypts and parses one stored key, checking it is the key its kid names.
pub fn open_key(master_key: &MasterKey, row: &SigningKeyRow) -> Result<SigningKey, KeyStoreError> {
    let der = master_key.open(&row.kid, &row.private_key_enc)?;
    let key = SigningKey::from_pkcs8(&der)?;
    if key.kid() != row.kid {
        return Err(KeyStoreError::KidMismatch { stored: row.kid.clone(), actual: key.kid().to_string() });
    }
    Ok(key)
}

/// Every stored private key re-encrypted from `old` to `new`, as `(kid, sealed)` pairs
/// (master key rotation). The key material itself is unchanged.
pub fn reseal(
    rows: &[SigningKeyRow],
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Vec<(String, Vec<u8>)>, MasterKeyError> {
    rows.iter()
        .map(|row| {
            let der = old.open(&row.kid, &row.private_key_enc)?;
            Ok((row.kid.clone(), new.seal(&row.kid, &der)?))
        })
        .collect()
}

/// Private keys generated for a plan, not yet sealed or stored.
pub struct GeneratedKeys {
    current: Option<(String, Zeroizing<Vec<u8>>)>,
    next: Option<(String, Zeroizing<Vec<u8>>)>,
}

/// Generates the keys `plan` needs. CPU-heavy: call it off the async workers.
pub fn generate_keys(plan: &Plan, bits: usize) -> Result<GeneratedKeys, KeyStoreError> {
    let generate = || -> Result<(String, Zeroizing<Vec<u8>>), KeyStoreError> {
        let der = generate_pkcs8(bits)?;
        Ok((SigningKey::from_pkcs8(&der)?.kid().to_string(), der))
    };
    Ok(GeneratedKeys {
        current: if plan.create_current { Some(generate()?) } else { None },
        next: if plan.create_next.is_some() { Some(generate()?) } else { None },
    })
}

/// Turns `plan` (made at `planned_at`) and its generated keys into the database update that
/// carries it out at `now`, sealing the new private keys under `master_key`. `now` is read after
/// the keys were generated, so recorded times match when the change takes effect.
pub fn build_update(
    plan: &Plan,
    keys: GeneratedKeys,
    master_key: &MasterKey,
    policy: &KeyPolicy,
    planned_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<RingUpdate, KeyStoreError> {
    let interval = policy.rotation_interval;
    let row = |(kid, der): (String, Zeroizing<Vec<u8>>),
               state: KeyState,
               activates_at: DateTime<Utc>,
               retires_at: Option<DateTime<Utc>>| {
        Ok::<_, KeyStoreError>(SigningKeyRow {
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
