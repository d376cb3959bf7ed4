//! `KeyRing`: owns the RSA signing keys. It loads them from the database (decrypting each with
//! the master key), creates the first key when there is none, and publishes an immutable
//! [`KeyRingSnapshot`] that request handlers read without messaging the actor: signing and
//! verification never queue on this mailbox.

use super::db::{Database, DbError, DbUnavailable};
use crate::clock::SharedClock;
use crate::db::signing_keys::{self, SigningKeyRow};
use crate::master_key::{MasterKey, MasterKeyError};
use crate::tokens::{Jwk, KeyError, SigningKey, VerificationKeys, generate_pkcs8};
use actix::prelude::*;
use arc_swap::ArcSwap;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// States of a key (API.md "Key ring lifecycle").
pub const STATE_NEXT: &str = "next";
pub const STATE_CURRENT: &str = "current";
pub const STATE_RETIRED: &str = "retired";

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored key {stored} decrypts to a key whose thumbprint is {actual}")]
    KidMismatch { stored: String, actual: String },
    #[error("database: {0}")]
    Database(String),
    #[error("key generation was interrupted")]
    Interrupted,
}

impl From<DbUnavailable> for KeyRingError {
    fn from(error: DbUnavailable) -> Self {
        Self::Database(error.to_string())
    }
}

impl From<DbError> for KeyRingError {
    fn from(error: DbError) -> Self {
        Self::Database(error.to_string())
    }
}

/// What the rest of the service sees of the ring at one moment. Replaced whole on every change.
pub struct KeyRingSnapshot {
    /// The key that signs new tokens (`None` only before the ring is first loaded).
    pub current: Option<Arc<SigningKey>>,
    /// Every published key, by kid, for verification.
    pub verification_keys: VerificationKeys,
    /// The serialized JWKS document (RFC 7517 §5), built once per change.
    pub jwks: Arc<[u8]>,
    /// Strong ETag of `jwks`: changes exactly when the key set does.
    pub etag: String,
}

impl KeyRingSnapshot {
    fn empty() -> Self {
        Self::from_keys(&[], None)
    }

    fn from_keys(published: &[Arc<SigningKey>], current: Option<Arc<SigningKey>>) -> Self {
        #[derive(Serialize)]
        struct Jwks<'a> {
            keys: Vec<&'a Jwk>,
        }
        let jwks = serde_json::to_vec(&Jwks { keys: published.iter().map(|key| key.jwk()).collect() })
            .expect("a JWKS of strings serializes");
        let etag = format!("\"{}\"", B64URL.encode(&digest::digest(&digest::SHA256, &jwks).as_ref()[..16]));
        let verification_keys = published.iter().map(|key| (key.kid().to_string(), key.decoding_key())).collect();
        Self { current, verification_keys, jwks: jwks.into(), etag }
    }
}

/// The actor owning the ring.
pub struct KeyRing {
    db: Database,
    master_key: Arc<MasterKey>,
    key_bits: usize,
    clock: SharedClock,
    snapshot: Arc<ArcSwap<KeyRingSnapshot>>,
}

impl Actor for KeyRing {
    type Context = Context<Self>;
}

/// Loads the ring from the database and makes sure a current key exists, creating one if not.
#[derive(Message)]
#[rtype(result = "Result<(), KeyRingError>")]
pub struct LoadKeyRing;

impl Handler<LoadKeyRing> for KeyRing {
    type Result = AtomicResponse<Self, Result<(), KeyRingError>>;

    fn handle(&mut self, _: LoadKeyRing, _: &mut Self::Context) -> Self::Result {
        // Atomic: a second load waits, so two loads can never both create a first key.
        let (db, master_key, bits, clock, snapshot) =
            (self.db.clone(), self.master_key.clone(), self.key_bits, self.clock.clone(), self.snapshot.clone());
        AtomicResponse::new(Box::pin(
            async move {
                let mut rows = db.query(signing_keys::list).await?;
                if !rows.iter().any(|row| row.state == STATE_CURRENT) {
                    let row = create_key(&master_key, bits, STATE_CURRENT, clock.now()).await?;
                    let stored = row.clone();
                    db.query(move |conn| signing_keys::insert(conn, &stored)).await?;
                    log::info!("created signing key {}", row.kid);
                    rows.push(row);
                }
                snapshot.store(Arc::new(build_snapshot(&master_key, &rows)?));
                Ok(())
            }
            .into_actor(self),
        ))
    }
}

/// Generates a key (on a blocking thread: RSA generation is CPU-heavy) and seals it for storage.
async fn create_key(
    master_key: &MasterKey,
    bits: usize,
    state: &str,
    now: DateTime<Utc>,
) -> Result<SigningKeyRow, KeyRingError> {
    let der = actix_web::rt::task::spawn_blocking(move || generate_pkcs8(bits))
        .await
        .map_err(|_| KeyRingError::Interrupted)??;
    let kid = SigningKey::from_pkcs8(&der)?.kid().to_string();
    Ok(SigningKeyRow {
        private_key_enc: master_key.seal(&kid, &der)?,
        kid,
        state: state.to_string(),
        algorithm: "RS256".to_string(),
        created_at: now.naive_utc(),
        activates_at: now.naive_utc(),
        retires_at: None,
    })
}

/// Decrypts and parses every stored key (each exactly once) into a snapshot.
fn build_snapshot(master_key: &MasterKey, rows: &[SigningKeyRow]) -> Result<KeyRingSnapshot, KeyRingError> {
    let mut published = Vec::with_capacity(rows.len());
    let mut current = None;
    for row in rows {
        let key = Arc::new(open_key(master_key, row)?);
        if row.state == STATE_CURRENT {
            current = Some(key.clone());
        }
        published.push(key);
    }
    Ok(KeyRingSnapshot::from_keys(&published, current))
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

/// What handlers hold: the current snapshot, and the actor for changes.
#[derive(Clone)]
pub struct KeyRingHandle {
    snapshot: Arc<ArcSwap<KeyRingSnapshot>>,
    addr: Addr<KeyRing>,
}

impl KeyRingHandle {
    /// Starts the actor and loads the ring; fails (and the service does not start) when a stored
    /// key cannot be opened, e.g. under a wrong master key. It never silently makes a new ring.
    pub async fn start(
        db: Database,
        master_key: Arc<MasterKey>,
        key_bits: usize,
        clock: SharedClock,
    ) -> Result<Self, KeyRingError> {
        let snapshot = Arc::new(ArcSwap::from_pointee(KeyRingSnapshot::empty()));
        let addr = KeyRing { db, master_key, key_bits, clock, snapshot: snapshot.clone() }.start();
        addr.send(LoadKeyRing).await.map_err(|_| KeyRingError::Interrupted)??;
        Ok(Self { snapshot, addr })
    }

    /// The ring as it is now. Cheap: an atomic load, no message.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<KeyRingSnapshot>> {
        self.snapshot.load()
    }

    /// Reloads the ring from the database.
    pub async fn reload(&self) -> Result<(), KeyRingError> {
        self.addr.send(LoadKeyRing).await.map_err(|_| KeyRingError::Interrupted)?
    }
}
