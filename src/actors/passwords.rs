//! `PasswordHasher`: bcrypt on a `SyncArbiter` with one thread per core. bcrypt is deliberately
//! slow; keeping it on its own bounded threads means a login storm queues here instead of
//! starving the HTTP workers.

use crate::domain::Password;
use actix::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// bcrypt keys on at most 72 bytes. Longer passwords are refused here too (not only by
/// [`Password::parse`]) rather than silently cut; up to 72 every byte counts. (The crate's
/// `non_truncating_*` functions also refuse exactly 72 bytes, because they count the C-style
/// terminator, so the length is checked here and the plain functions are used.)
const MAX_PASSWORD_BYTES: usize = Password::MAX_BYTES;

fn check_length(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES { Err(PasswordError::TooLong) } else { Ok(()) }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("bcrypt failed: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("password hasher unavailable")]
    Unavailable,
}

struct HashPassword(SecretString);

impl Message for HashPassword {
    type Result = Result<String, PasswordError>;
}

/// Checks `password` against `hash`; with no hash (unknown user) it checks a dummy hash of the
/// same cost, so the answer takes as long either way and cannot tell whether a name exists.
struct VerifyPassword {
    password: SecretString,
    hash: Option<String>,
}

impl Message for VerifyPassword {
    type Result = Result<bool, PasswordError>;
}

struct PasswordHasher {
    cost: u32,
    dummy_hash: Arc<str>,
}

impl Actor for PasswordHasher {
    type Context = SyncContext<Self>;
}

impl Handler<HashPassword> for PasswordHasher {
    type Result = Result<String, PasswordError>;

    fn handle(&mut self, msg: HashPassword, _: &mut Self::Context) -> Self::Result {
        let password = msg.0.expose_secret();
        check_length(password)?;
        Ok(bcrypt::hash(password, self.cost)?)
    }
}

impl Handler<VerifyPassword> for PasswordHasher {
    type Result = Result<bool, PasswordError>;

    fn handle(&mut self, msg: VerifyPassword, _: &mut Self::Context) -> Self::Result {
        let password = msg.password.expose_secret();
        check_length(password)?;
        match msg.hash {
            Some(hash) => Ok(bcrypt::verify(password, &hash)?),
            None => {
                // Same work as a real check; the result is ignored.
                let _ = bcrypt::verify(password, &self.dummy_hash);
                Ok(false)
            }
        }
    }
}

/// Cloneable handle to the hasher threads.
#[derive(Clone)]
pub struct Passwords {
    addr: Addr<PasswordHasher>,
}

impl Passwords {
    /// Starts one hasher thread per core. Computes the dummy hash first (off the async workers).
    pub async fn start(cost: u32) -> Result<Self, PasswordError> {
        let dummy_hash: Arc<str> =
            actix_web::rt::task::spawn_blocking(move || bcrypt::hash("not a real password", cost))
                .await
                .map_err(|_| PasswordError::Unavailable)??
                .into();
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let addr = SyncArbiter::start(threads, move || PasswordHasher { cost, dummy_hash: dummy_hash.clone() });
        Ok(Self { addr })
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.addr.send(HashPassword(SecretString::from(password))).await.map_err(|_| PasswordError::Unavailable)?
    }

    /// `hash` is the stored hash, or `None` when the user does not exist.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, PasswordError> {
        let msg = VerifyPassword { password: SecretString::from(password), hash };
        self.addr.send(msg).await.map_err(|_| PasswordError::Unavailable)?
    }
}
