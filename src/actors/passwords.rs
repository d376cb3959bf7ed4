//! `PasswordHasher`: bcrypt on bounded threads of its own, so a login storm queues here instead
//! of starving the HTTP workers. Two pools, logins first: password *checks* (logins) get one
//! thread per core; new *hashes* (registrations, rehashes) get one thread and a bounded queue,
//! so a flood of registrations — from however many addresses — can take at most one core from
//! the logins, and is refused (503) rather than queued without end.

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
    /// Too many new hashes are already waiting.
    #[error("too many passwords are being hashed; try again")]
    Busy,
}

/// New hashes allowed to wait for the hashing thread; more are refused at once.
const MAX_WAITING_HASHES: usize = 16;

/// A new hash to make. It holds its place in the queue ([`WaitingSlot`]) until it is handled
/// or dropped, however its requester fares: a request abandoned by its client still counts
/// while its hash is queued, so abandoned requests cannot queue work without bound.
struct HashPassword(SecretString, #[expect(dead_code, reason = "held for its Drop")] WaitingSlot);

/// One place among the [`MAX_WAITING_HASHES`]; given back when dropped.
struct WaitingSlot(Arc<std::sync::atomic::AtomicUsize>);

impl WaitingSlot {
    /// A place, if one is free.
    fn take(waiting: &Arc<std::sync::atomic::AtomicUsize>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let taken = waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| (now < MAX_WAITING_HASHES).then_some(now + 1));
        taken.ok().map(|_| Self(waiting.clone()))
    }
}

impl Drop for WaitingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

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
    checks: Addr<PasswordHasher>,
    hashes: Addr<PasswordHasher>,
    waiting_hashes: Arc<std::sync::atomic::AtomicUsize>,
    cost: u32,
}

impl Passwords {
    /// Starts one checking thread per core and one hashing thread. Computes the dummy hash first
    /// (off the async workers).
    pub async fn start(cost: u32) -> Result<Self, PasswordError> {
        let dummy_hash: Arc<str> =
            actix_web::rt::task::spawn_blocking(move || bcrypt::hash("not a real password", cost))
                .await
                .map_err(|_| PasswordError::Unavailable)??
                .into();
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let dummy = dummy_hash.clone();
        let checks = SyncArbiter::start(threads, move || PasswordHasher { cost, dummy_hash: dummy.clone() });
        let hashes = SyncArbiter::start(1, move || PasswordHasher { cost, dummy_hash: dummy_hash.clone() });
        Ok(Self { checks, hashes, waiting_hashes: Arc::default(), cost })
    }

    /// A new hash of `password` at the configured cost; `Busy` when too many are waiting.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let slot = WaitingSlot::take(&self.waiting_hashes).ok_or(PasswordError::Busy)?;
        self.hashes
            .send(HashPassword(SecretString::from(password), slot))
            .await
            .map_err(|_| PasswordError::Unavailable)?
    }

    /// Like [`Passwords::hash`], but only when no other hash is waiting (a rehash at login
    /// must never wait behind a queue of registrations).
    pub async fn hash_if_idle(&self, password: &str) -> Result<String, PasswordError> {
        if self.waiting_hashes.load(std::sync::atomic::Ordering::Acquire) > 0 {
            return Err(PasswordError::Busy);
        }
        self.hash(password).await
    }

    /// `hash` is the stored hash, or `None` when the user does not exist.
    pub async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, PasswordError> {
        let msg = VerifyPassword { password: SecretString::from(password), hash };
        self.checks.send(msg).await.map_err(|_| PasswordError::Unavailable)?
    }

    /// Whether a stored hash was made at a lower cost than the configured one (BCRYPT_COST was
    /// raised since): the login that proves the password rehashes it.
    pub fn needs_rehash(&self, stored_hash: &str) -> bool {
        stored_hash.parse::<bcrypt::HashParts>().is_ok_and(|parts| parts.get_cost() < self.cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_places_are_bounded_and_given_back_when_dropped() {
        let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let held: Vec<WaitingSlot> =
            (0..MAX_WAITING_HASHES).map(|_| WaitingSlot::take(&waiting).expect("free")).collect();
        assert!(WaitingSlot::take(&waiting).is_none(), "full");
        drop(held);
        assert_eq!(waiting.load(std::sync::atomic::Ordering::Acquire), 0, "every place given back");
        assert!(WaitingSlot::take(&waiting).is_some());
    }
}
