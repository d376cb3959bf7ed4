//! Users: registration, the caller's own record, and the administrators' changes (role,
//! deletion), each of which ends the user's existing tokens in the same transaction.

use super::revocation::{self, TokenScope};
use super::{Failure, Services, failures_pass_through};
use crate::db::users::{self, User};
use crate::db::{DbConn, UniqueField, unique_violation};
use crate::domain::{Password, UserName};
use crate::tokens::Subject;
use uuid::Uuid;

/// Why a user operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user")]
    NotFound,
    #[error("that name is already registered")]
    NameTaken,
    /// The token is valid but its user no longer exists.
    #[error("the token's user no longer exists")]
    NotACredential,
    /// A service token (client credentials) on an operation for users.
    #[error("a service token cannot act as a user")]
    NotAUser,
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(UserError);

impl From<diesel::result::Error> for UserError {
    fn from(error: diesel::result::Error) -> Self {
        match unique_violation(&error) {
            Some(UniqueField::UserName) => Self::NameTaken,
            _ => Self::Failure(error.into()),
        }
    }
}

/// The user a token speaks for. A valid token of a user who no longer exists is no credential,
/// and a service token speaks for no user: the one place these rules live.
pub fn token_user(conn: &mut DbConn, subject: &Subject) -> Result<User, UserError> {
    let public_id = subject.user().ok_or(UserError::NotAUser)?;
    users::find_by_public_id(conn, &public_id.to_string())?.ok_or(UserError::NotACredential)
}

/// Registers a new user.
pub async fn register(services: &Services, name: UserName, password: Password) -> Result<User, UserError> {
    // Cheap early answer for a taken name, before spending a bcrypt hash on it. The unique
    // index still decides races between concurrent registrations.
    let key = name.key();
    if services.db.read(move |conn| users::find_by_name_key(conn, &key)).await?.is_some() {
        return Err(UserError::NameTaken);
    }
    let password_hash = services.passwords.hash(password.expose()).await?;
    create(services, name, password_hash, false).await
}

/// Inserts a user whose password is already hashed (also the `user create` command's way in).
pub fn insert(
    conn: &mut DbConn,
    name: &UserName,
    password_hash: &str,
    admin: bool,
    now: chrono::NaiveDateTime,
) -> Result<User, UserError> {
    Ok(users::create(conn, name.as_str(), &name.key(), password_hash, admin, now)?)
}

async fn create(services: &Services, name: UserName, password_hash: String, admin: bool) -> Result<User, UserError> {
    let now = services.clock.now().naive_utc();
    services.db.transaction(move |conn| insert(conn, &name, &password_hash, admin, now)).await
}

/// What [`ensure_admin`] found or did.
#[derive(Debug)]
pub enum AdminSetup {
    Created(User),
    /// A user of that name exists already.
    Exists,
}

/// Creates the configured initial admin unless a user of that name exists.
pub async fn ensure_admin(services: &Services, name: UserName, password: Password) -> Result<AdminSetup, UserError> {
    let key = name.key();
    if services.db.read(move |conn| users::find_by_name_key(conn, &key)).await?.is_some() {
        return Ok(AdminSetup::Exists);
    }
    let hash = services.passwords.hash(password.expose()).await?;
    match create(services, name, hash, true).await {
        Ok(user) => Ok(AdminSetup::Created(user)),
        // Another instance starting at the same moment created it first.
        Err(UserError::NameTaken) => Ok(AdminSetup::Exists),
        Err(error) => Err(error),
    }
}

/// The caller's own record.
pub async fn me(services: &Services, subject: &Subject) -> Result<User, UserError> {
    let subject = subject.clone();
    services.db.read(move |conn| Ok(token_user(conn, &subject))).await?
}

/// Every user, oldest first.
pub async fn list(services: &Services) -> Result<Vec<User>, UserError> {
    Ok(services.db.read(users::list).await?)
}

/// Grants or withdraws the admin role. A change ends the user's existing tokens, so a demoted
/// admin's old token no longer carries `groups: ["admin"]`.
pub async fn set_admin(services: &Services, public_id: Uuid, admin: bool) -> Result<User, UserError> {
    let (now, lifetime) = (services.clock.now(), services.revocations.token_lifetime());
    let (user, ended) = services
        .db
        .transaction(move |conn| -> Result<_, UserError> {
            let user = users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(UserError::NotFound)?;
            if user.admin == admin {
                return Ok((user, None));
            }
            let user = users::set_admin(conn, &user.public_id, admin)?;
            let subject = Subject::User(public_id);
            let ended = revocation::end_subject_tokens(
                conn,
                &subject,
                Some(user.id),
                TokenScope::IssuedUntilNow,
                now,
                lifetime,
            )?;
            Ok((user, Some(ended)))
        })
        .await?;
    if let Some(ended) = ended {
        revocation::publish(services, ended).await?;
    }
    Ok(user)
}

/// Deletes a user; no token of theirs is accepted again. Their sessions go with them (ON
/// DELETE CASCADE); their authors stay, without a creator.
pub async fn delete(services: &Services, public_id: Uuid) -> Result<(), UserError> {
    let (now, lifetime) = (services.clock.now(), services.revocations.token_lifetime());
    let ended = services
        .db
        .transaction(move |conn| -> Result<_, UserError> {
            users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(UserError::NotFound)?;
            let subject = Subject::User(public_id);
            let ended = revocation::end_subject_tokens(conn, &subject, None, TokenScope::Everything, now, lifetime)?;
            users::delete_by_public_id(conn, &public_id.to_string())?;
            Ok(ended)
        })
        .await?;
    revocation::publish(services, ended).await?;
    Ok(())
}
