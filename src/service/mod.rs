//! The rules of the service, one module per capability. Each offers sync functions on
//! `&mut DbConn` that hold a rule and its transaction, and async operations that orchestrate
//! the actors and return typed errors; `http/` parses requests, calls these, and maps the
//! results and errors to responses. Nothing here knows HTTP.

pub mod account;
pub mod authors;
pub mod cache;
pub mod clients;
pub mod health;
pub mod keys;
pub mod oauth;
pub mod revocation;
pub mod sessions;
pub mod ssf;
pub mod throttle;
pub mod users;

use crate::actors::db::{Database, DbError, DbUnavailable};
use crate::actors::key_ring::{KeyRingError, KeyRingHandle};
use crate::actors::passwords::{PasswordError, Passwords};
use crate::actors::revocations::{RevocationError, RevocationsHandle};
use crate::clock::SharedClock;
use crate::config::LoginThrottle;
use crate::db::{DbPool, is_busy};
use crate::metrics::Metrics;
use crate::tokens::{IssueError, TokenIssuer, TokenVerifier};
use std::sync::Arc;

/// Everything the operations need: handles to the actors, the token issuer and verifier, the
/// clock and the settings that shape the rules. Built once at start; shared by every request.
pub struct Services {
    pub db: Database,
    pub passwords: Passwords,
    pub key_ring: KeyRingHandle,
    pub revocations: RevocationsHandle,
    pub clock: SharedClock,
    pub issuer: TokenIssuer,
    pub verifier: TokenVerifier,
    pub refresh_token_ttl: chrono::Duration,
    pub login_throttle: LoginThrottle,
    pub registration_limit: crate::config::RegistrationLimit,
    /// Keys the throttle table's account counters without storing typed names.
    pub name_hasher: throttle::NameHasher,
    /// The built-in public client `/login` and `/token/refresh` issue tokens for.
    pub public_client_id: String,
    /// How long a client's previous secret keeps working after a rotation.
    pub client_secret_grace: chrono::Duration,
    pub metrics: Arc<Metrics>,
    /// For the pool gauges of `/metrics`: every connection on PostgreSQL; on SQLite the
    /// readers (the writer thread's one connection is not pooled).
    pub pool: DbPool,
    /// `/authors` pages and `/users/me` bodies served from memory while they are current.
    pub views: Arc<cache::Views>,
    /// The Shared Signals transmitter's settings, sealing key and bell.
    pub ssf: ssf::Transmitter,
}

/// A failure no client can fix: a dependency is down, or something is broken. The string is
/// for the log only.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The database or an actor is unavailable or overloaded; worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<diesel::result::Error> for Failure {
    fn from(error: diesel::result::Error) -> Self {
        if is_busy(&error) {
            Self::Unavailable(format!("database busy: {error}"))
        } else {
            Self::Internal(format!("database: {error}"))
        }
    }
}

impl From<DbUnavailable> for Failure {
    fn from(error: DbUnavailable) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<DbError> for Failure {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Query(error) => error.into(),
            DbError::Unavailable(error) => error.into(),
        }
    }
}

impl From<PasswordError> for Failure {
    fn from(error: PasswordError) -> Self {
        match error {
            PasswordError::Unavailable | PasswordError::Busy => Self::Unavailable(error.to_string()),
            // Lengths are checked before a password reaches the hasher.
            PasswordError::TooLong | PasswordError::Bcrypt(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<RevocationError> for Failure {
    fn from(error: RevocationError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

impl From<IssueError> for Failure {
    fn from(error: IssueError) -> Self {
        match error {
            IssueError::NoSigningKey => Self::Unavailable(error.to_string()),
            IssueError::Sign(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<KeyRingError> for Failure {
    fn from(error: KeyRingError) -> Self {
        match error {
            KeyRingError::ConcurrentChange | KeyRingError::Database(_) | KeyRingError::Interrupted => {
                Self::Unavailable(error.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Implements `From` for the infrastructure errors an operation's error type passes through
/// its `Failure` variant.
macro_rules! failures_pass_through {
    ($error:ty) => {
        impl From<$crate::actors::db::DbUnavailable> for $error {
            fn from(error: $crate::actors::db::DbUnavailable) -> Self {
                Self::Failure(error.into())
            }
        }
        impl From<$crate::actors::revocations::RevocationError> for $error {
            fn from(error: $crate::actors::revocations::RevocationError) -> Self {
                Self::Failure(error.into())
            }
        }
        impl From<$crate::actors::passwords::PasswordError> for $error {
            fn from(error: $crate::actors::passwords::PasswordError) -> Self {
                Self::Failure(error.into())
            }
        }
        impl From<$crate::tokens::IssueError> for $error {
            fn from(error: $crate::tokens::IssueError) -> Self {
                Self::Failure(error.into())
            }
        }
        /// A query that failed is classified by the error's own `From<diesel::result::Error>`.
        impl From<$crate::actors::db::DbError> for $error {
            fn from(error: $crate::actors::db::DbError) -> Self {
                match error {
                    $crate::actors::db::DbError::Query(error) => error.into(),
                    $crate::actors::db::DbError::Unavailable(error) => error.into(),
                }
            }
        }
    };
}
pub(crate) use failures_pass_through;
