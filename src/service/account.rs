//! Account self-service (issue 15, part 1): a user changes their password, lists their live
//! sessions and ends one of them; an administrator lists a user's sessions and ends them all.
//!
//! A password change is a login in disguise for whoever holds a stolen access token: the
//! current password is checked under the login throttle (the same counters, per account as
//! tried from one address and per address), and the new hash is made by the bcrypt pool like a
//! registration's. The change ends every *other* session of the user in the transaction that
//! stores the new hash; the caller's session (the `sid` of its token) stays.

use super::revocation::{self, TokenScope};
use super::ssf::events::{self, Event, SessionEnd};
use super::throttle::{self, AttemptKeys};
use super::{Failure, Services, failures_pass_through};
use crate::db::sessions::{self, SessionSummary};
use crate::db::table_versions::Table;
use crate::db::users::{self, User};
use crate::domain::{InvalidValue, Password, name_key};
use crate::tokens::{AccessClaims, Subject};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A service token (client credentials): it has no account.
    #[error("a service token cannot act as a user")]
    NotAUser,
    /// The token is valid but its user no longer exists.
    #[error("the token's user no longer exists")]
    NotACredential,
    /// The current password given is not the user's.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Too many wrong passwords for this account from this address, or from this address.
    #[error("too many failed attempts")]
    Throttled { retry_after: chrono::Duration },
    /// A current password over 72 bytes (it cannot be anyone's), as at login.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// Not a live session of this user (someone else's, unknown, malformed, or already ended).
    #[error("no such session")]
    NoSuchSession,
    /// An administrator named a user who does not exist.
    #[error("no such user")]
    NoSuchUser,
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(AccountError);

impl From<diesel::result::Error> for AccountError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failure(error.into())
    }
}

/// A live session as listed: `current` when it is the session of the token that asks.
#[derive(Debug)]
pub struct ListedSession {
    pub session: SessionSummary,
    pub current: bool,
}

/// The public id of the user a token speaks for; a service token has none.
fn user_of(claims: &AccessClaims) -> Result<Uuid, AccountError> {
    claims.sub.user().ok_or(AccountError::NotAUser)
}

/// Changes the caller's password from `current` to `new`, asked for from address `address`.
/// The current password is checked like a login's (throttled; a wrong one counts as a failed
/// login); on success every other session of the user ends, the calling one stays.
pub async fn change_password(
    services: &Services,
    claims: &AccessClaims,
    current: &str,
    new: Password,
    address: IpAddr,
) -> Result<(), AccountError> {
    let public_id = user_of(claims)?;
    if current.len() > Password::MAX_BYTES {
        // As at login: bcrypt would ignore the bytes past 72, so such a password never matches.
        Password::check_length(current)?;
    }
    let lookup = public_id.to_string();
    let user = services
        .db
        .read(move |conn| users::find_by_public_id(conn, &lookup))
        .await?
        .ok_or(AccountError::NotACredential)?;
    // The counters a login with the user's own name would touch.
    let attempt = Arc::new(AttemptKeys::new(&services.name_hasher, &name_key(&user.name), address));
    let (counted, rule, now) = (attempt.clone(), services.login_throttle, services.clock.now());
    if let Err(wait) = services.db.write(move |conn| throttle::begin_attempt(conn, &counted, &rule, now)).await? {
        log::info!("password change throttled for user {public_id} from {address}");
        services.metrics.login_throttled.inc();
        return Err(AccountError::Throttled { retry_after: wait });
    }
    if !services.passwords.verify(current, Some(user.password_hash.clone())).await? {
        let (rule, now) = (services.login_throttle, services.clock.now());
        services.db.write(move |conn| throttle::failed(conn, &attempt, &rule, now)).await?;
        log::info!("wrong current password in a password change for user {public_id} from {address}");
        return Err(AccountError::WrongPassword);
    }
    services.db.write(move |conn| throttle::succeeded(conn, &attempt)).await?;
    let new_hash = services.passwords.hash(new.expose()).await?;
    let ended = store_password(services, &user, new_hash, claims.sid).await;
    // Whatever the outcome: a write that timed out here may still have committed.
    services.views.wrote(Table::Users);
    let ended = ended?;
    log::info!("user {public_id} changed their password; {} other sessions ended", ended.len());
    Ok(revocation::publish_sessions(services, ended).await?)
}

/// Stores `new_hash` for `user` unless their password changed since it was checked, and revokes
/// every session of theirs but `keep`, in one transaction (the user row locked first, as every
/// change to a user's sessions does). Returns the sessions it ended.
async fn store_password(
    services: &Services,
    user: &User,
    new_hash: String,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, AccountError> {
    let (public_id, checked_version, now) = (user.public_id.clone(), user.password_version, services.clock.now());
    let metrics = services.metrics.clone();
    let ended = services
        .db
        .transaction(move |conn| -> Result<_, AccountError> {
            let user = users::lock_by_public_id(conn, &public_id)?.ok_or(AccountError::NotACredential)?;
            if user.password_version != checked_version {
                // Changed meanwhile (another change, or a reset): the password given is not the
                // current one any more.
                return Err(AccountError::WrongPassword);
            }
            users::set_password_hash(conn, user.id, &new_hash)?;
            let keep = keep.map(|sid| sid.to_string());
            let ended = sessions::revoke_other_user_sessions(conn, user.id, keep.as_deref(), now.naive_utc())?;
            let ended: Vec<Uuid> = ended.iter().filter_map(|sid| Uuid::parse_str(sid).ok()).collect();
            let changed = Event::password_changed(&public_id, now);
            events::record_session_ends(conn, &metrics, &ended, SessionEnd::PasswordChange, vec![changed], now)?;
            Ok(ended)
        })
        .await?;
    Ok(ended)
}

/// The caller's live sessions, newest first.
pub async fn own_sessions(services: &Services, claims: &AccessClaims) -> Result<Vec<ListedSession>, AccountError> {
    let public_id = user_of(claims)?;
    live_sessions(services, public_id, claims.sid).await?.ok_or(AccountError::NotACredential)
}

/// User `public_id`'s live sessions, newest first, for an administrator whose own session is
/// `caller_sid`.
pub async fn user_sessions(
    services: &Services,
    public_id: Uuid,
    caller_sid: Option<Uuid>,
) -> Result<Vec<ListedSession>, AccountError> {
    live_sessions(services, public_id, caller_sid).await?.ok_or(AccountError::NoSuchUser)
}

/// The live sessions of user `public_id` (`None`: no such user), `current` marking `caller_sid`.
async fn live_sessions(
    services: &Services,
    public_id: Uuid,
    caller_sid: Option<Uuid>,
) -> Result<Option<Vec<ListedSession>>, AccountError> {
    let now = services.clock.now().naive_utc();
    let found = services
        .db
        .read(move |conn| match users::find_by_public_id(conn, &public_id.to_string())? {
            Some(user) => sessions::live_user_sessions(conn, user.id, now).map(Some),
            None => Ok(None),
        })
        .await?;
    let caller_sid = caller_sid.map(|sid| sid.to_string());
    Ok(found.map(|found| {
        found
            .into_iter()
            .map(|session| ListedSession { current: caller_sid.as_ref() == Some(&session.id), session })
            .collect()
    }))
}

/// Ends session `sid` of the caller: its refresh tokens die and its access tokens are refused
/// at once. Anything that is not a live session of the caller's is [`AccountError::NoSuchSession`].
pub async fn end_own_session(services: &Services, claims: &AccessClaims, sid: &str) -> Result<(), AccountError> {
    let public_id = user_of(claims)?;
    let sid = Uuid::parse_str(sid).map_err(|_| AccountError::NoSuchSession)?;
    let (now, metrics) = (services.clock.now(), services.metrics.clone());
    services
        .db
        .transaction(move |conn| -> Result<_, AccountError> {
            let user = users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(AccountError::NotACredential)?;
            if !sessions::revoke_live_user_session(conn, user.id, &sid.to_string(), now.naive_utc())? {
                return Err(AccountError::NoSuchSession);
            }
            events::record_session_ends(conn, &metrics, &[sid], SessionEnd::EndedByUser, vec![], now)?;
            Ok(())
        })
        .await?;
    log::info!("user {public_id} ended their session {sid}");
    Ok(revocation::publish_sessions(services, vec![sid]).await?)
}

/// Ends every session of user `public_id` (an administrator's "log out everywhere" for them):
/// every token of theirs issued until now stops working.
pub async fn end_user_sessions(services: &Services, public_id: Uuid) -> Result<(), AccountError> {
    let (now, lifetime) = (services.clock.now(), services.revocations.token_lifetime());
    let metrics = services.metrics.clone();
    let ended = services
        .db
        .transaction(move |conn| -> Result<_, AccountError> {
            let user = users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(AccountError::NoSuchUser)?;
            let subject = Subject::User(public_id);
            let ended = revocation::end_subject_tokens(
                conn,
                &subject,
                Some(user.id),
                TokenScope::IssuedUntilNow,
                now,
                lifetime,
            )?;
            events::record_session_ends(conn, &metrics, &ended.sessions, SessionEnd::EndedByAdmin, vec![], now)?;
            Ok(ended)
        })
        .await?;
    Ok(revocation::publish(services, ended).await?)
}
