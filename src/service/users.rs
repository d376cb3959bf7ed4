//! Users: registration, the caller's own record, and the administrators' changes (role,
//! deletion), each of which ends the user's existing tokens in the same transaction.

use super::cache::Rendered;
use super::revocation::{self, TokenScope};
use super::ssf::events::{self, Event, SessionEnd};
use super::throttle;
use super::{Failure, Services, failures_pass_through};
use crate::db::table_versions::Table;
use crate::db::users::{self, NameKeys, User};
use crate::db::{DbConn, UniqueField, unique_violation};
use crate::domain::{Password, UserName, stored_name_skeletons};
use crate::tokens::{ADMIN_GROUP, Subject};
use diesel::Connection as _;
use std::sync::Arc;
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
    /// Too many registrations from this address in the current window.
    #[error("too many registrations from this address")]
    Throttled { retry_after: chrono::Duration },
    /// Demoting or deleting the last admin would leave nobody able to administer the service.
    #[error("the last admin cannot be demoted or deleted")]
    LastAdmin,
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

/// Registers a new user, asked for from client address `address`.
pub async fn register(
    services: &Services,
    name: UserName,
    password: Password,
    address: std::net::IpAddr,
) -> Result<User, UserError> {
    // The address's budget first: even the look-alike check below costs work.
    let (limit, now) = (services.registration_limit, services.clock.now());
    if let Err(wait) = services.db.write(move |conn| throttle::begin_registration(conn, address, &limit, now)).await? {
        services.metrics.registrations_throttled.inc();
        return Err(UserError::Throttled { retry_after: wait });
    }
    // Cheap early answer for a taken name (or a look-alike of one), before spending a bcrypt
    // hash on it. The unique indexes still decide races between concurrent registrations.
    let checked = name.clone();
    if services.db.read(move |conn| name_taken(conn, &checked)).await? {
        return Err(UserError::NameTaken);
    }
    let password_hash = services.passwords.hash(password.expose()).await?;
    create(services, name, password_hash, false).await
}

fn keys(name: &UserName) -> NameKeys<'_> {
    NameKeys { key: name.key(), skeleton: name.skeleton(), shown_skeleton: name.shown_skeleton() }
}

/// Whether `name`, or a name that looks like it, is registered.
fn name_taken(conn: &mut DbConn, name: &UserName) -> diesel::QueryResult<bool> {
    Ok(users::name_taken(conn, keys(name))? || looks_like_a_stored_name(conn, name)?)
}

/// Whether `name` looks like a name stored before the name rules whose skeletons the unique
/// indexes do not hold (see [`backfill_names`]). Such names are only ever fewer (every new user
/// has skeletons), so checking them before an insert is not racy.
fn looks_like_a_stored_name(conn: &mut DbConn, name: &UserName) -> diesel::QueryResult<bool> {
    Ok(users::without_skeletons(conn)?.iter().any(|stored| {
        let (skeleton, shown_skeleton) = stored_name_skeletons(&stored.name);
        skeleton == name.skeleton() || shown_skeleton == name.shown_skeleton()
    }))
}

/// Inserts a user whose password is already hashed (also the `user create` command's way in).
pub fn insert(
    conn: &mut DbConn,
    name: &UserName,
    password_hash: &str,
    admin: bool,
    now: chrono::NaiveDateTime,
) -> Result<User, UserError> {
    if looks_like_a_stored_name(conn, name)? {
        return Err(UserError::NameTaken);
    }
    Ok(users::create_named(conn, name.as_str(), keys(name), password_hash, admin, now)?)
}

async fn create(services: &Services, name: UserName, password_hash: String, admin: bool) -> Result<User, UserError> {
    let now = services.clock.now().naive_utc();
    services.db.transaction(move |conn| insert(conn, &name, &password_hash, admin, now)).await
}

/// What [`backfill_names`] left as it was: users stored before the name rules. No name is
/// changed and no user dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LegacyNames {
    /// Names the PRECIS profile refuses (invisible or compatibility characters, …). They keep
    /// their old lowercase key, which login falls back to for such names: they log in as before.
    pub refused: usize,
    /// Names that look like another user's (a skeleton is taken). They have their case-mapped
    /// key and log in as before.
    pub look_alikes: usize,
    /// Public ids of users whose case-mapped name is another user's (e.g. the NFD spelling of
    /// an NFC name, or the fullwidth form of an ASCII one). They keep their old key and log in
    /// with their own spelling (login tries the old key first); other spellings of the name
    /// find the other user.
    pub key_taken: Vec<String>,
}

impl LegacyNames {
    pub fn total(&self) -> usize {
        self.refused + self.look_alikes + self.key_taken.len()
    }
}

/// Gives users stored before the name rules their case-mapped key and skeletons, oldest first,
/// where the name passes the profile and neither is another user's. Run at every start: a name
/// left out is taken up once the user it collided with is gone.
pub async fn backfill_names(services: &Services) -> Result<LegacyNames, UserError> {
    services.db.transaction(backfill).await
}

fn backfill(conn: &mut DbConn) -> Result<LegacyNames, UserError> {
    let mut legacy = LegacyNames::default();
    for user in users::without_skeletons(conn)? {
        let Ok(name) = UserName::parse(&user.name) else {
            legacy.refused += 1;
            continue;
        };
        if !unless_taken(conn, |conn| users::set_name_key(conn, user.id, name.key()))? {
            legacy.key_taken.push(user.public_id);
        } else if !unless_taken(conn, |conn| {
            users::set_skeletons(conn, user.id, name.skeleton(), name.shown_skeleton())
        })? {
            legacy.look_alikes += 1;
        }
    }
    Ok(legacy)
}

/// Runs `write` in a savepoint: `false`, and nothing written, if it hit a unique constraint.
fn unless_taken(
    conn: &mut DbConn,
    write: impl FnOnce(&mut DbConn) -> diesel::QueryResult<usize>,
) -> Result<bool, UserError> {
    match conn.transaction(write) {
        Ok(_) => Ok(true),
        Err(error) if unique_violation(&error).is_some() => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// What [`ensure_admin`] found or did.
#[derive(Debug)]
pub enum AdminSetup {
    Created(User),
    /// An admin of that name exists already.
    Exists,
    /// A user of that name exists and is not an admin (perhaps a squatter): the operator must
    /// decide.
    ExistsNotAdmin,
}

/// Creates the configured initial admin unless a user of that name exists.
pub async fn ensure_admin(services: &Services, name: UserName, password: Password) -> Result<AdminSetup, UserError> {
    let key = name.key().to_string();
    let lookup = key.clone();
    if let Some(user) = services.db.read(move |conn| users::find_by_name_key(conn, &lookup)).await? {
        return Ok(if user.admin { AdminSetup::Exists } else { AdminSetup::ExistsNotAdmin });
    }
    let hash = services.passwords.hash(password.expose()).await?;
    match create(services, name, hash, true).await {
        Ok(user) => Ok(AdminSetup::Created(user)),
        // Another instance starting at the same moment created it first; or the name looks like
        // another user's, which is no admin.
        Err(UserError::NameTaken) if key_registered(services, key).await? => Ok(AdminSetup::Exists),
        Err(error) => Err(error),
    }
}

async fn key_registered(services: &Services, key: String) -> Result<bool, UserError> {
    Ok(services.db.read(move |conn| users::find_by_name_key(conn, &key)).await?.is_some())
}

/// The caller's own record, as `render` turns it into a response body: from memory while no
/// user changed since it was rendered (see [`super::cache`]).
pub async fn me<R>(services: &Services, subject: &Subject, render: R) -> Result<Arc<Rendered>, UserError>
where
    R: FnOnce(User) -> Result<Rendered, Failure>,
{
    let public_id = subject.user().ok_or(UserError::NotAUser)?;
    let subject = subject.clone();
    services
        .views
        .user_body(public_id, || async move {
            let user = services.db.read(move |conn| Ok(token_user(conn, &subject))).await??;
            Ok(render(user)?)
        })
        .await
}

/// Every user, oldest first.
pub async fn list(services: &Services) -> Result<Vec<User>, UserError> {
    Ok(services.db.read(users::list).await?)
}

/// The rule that keeps the service administrable: the last admin can be neither demoted nor
/// deleted. `admins` are the ids of every admin, locked by the caller's transaction *before* the
/// user is (always in id order, so two admins demoting each other at once cannot deadlock, and
/// the second sees the first's change and is refused).
fn refuse_last_admin(user: &User, admins: &[i32]) -> Result<(), UserError> {
    if user.admin && admins.iter().all(|id| *id == user.id) { Err(UserError::LastAdmin) } else { Ok(()) }
}

/// Grants or withdraws the admin role. A change ends the user's existing tokens, so a demoted
/// admin's old token no longer carries `groups: ["admin"]`.
pub async fn set_admin(services: &Services, public_id: Uuid, admin: bool) -> Result<User, UserError> {
    let (now, lifetime) = (services.clock.now(), services.revocations.token_lifetime());
    let metrics = services.metrics.clone();
    let changed = services
        .db
        .transaction(move |conn| -> Result<_, UserError> {
            let admins = if admin { Vec::new() } else { users::lock_admins(conn)? };
            let user = users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(UserError::NotFound)?;
            if user.admin == admin {
                return Ok((user, None));
            }
            refuse_last_admin(&user, &admins)?;
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
            let groups_changed = Event::groups_changed(&user.public_id, if admin { &[ADMIN_GROUP] } else { &[] }, now);
            events::record_session_ends(
                conn,
                &metrics,
                &ended.sessions,
                SessionEnd::RoleChange,
                vec![groups_changed],
                now,
            )?;
            Ok((user, Some(ended)))
        })
        .await;
    // Whatever the outcome: a write that timed out here may still have committed.
    services.views.wrote(Table::Users);
    let (user, ended) = changed?;
    if let Some(ended) = ended {
        revocation::publish(services, ended).await?;
    }
    Ok(user)
}

/// Deletes a user; no token of theirs is accepted again. Their sessions go with them (ON
/// DELETE CASCADE); their authors stay, without a creator.
pub async fn delete(services: &Services, public_id: Uuid) -> Result<(), UserError> {
    let (now, lifetime) = (services.clock.now(), services.revocations.token_lifetime());
    let metrics = services.metrics.clone();
    let ended = services
        .db
        .transaction(move |conn| -> Result<_, UserError> {
            let admins = users::lock_admins(conn)?;
            let user = users::lock_by_public_id(conn, &public_id.to_string())?.ok_or(UserError::NotFound)?;
            refuse_last_admin(&user, &admins)?;
            let subject = Subject::User(public_id);
            // Its sessions are revoked (not only deleted with the user) so each gets its event.
            let ended =
                revocation::end_subject_tokens(conn, &subject, Some(user.id), TokenScope::Everything, now, lifetime)?;
            // The events first: their sessions' owner is read from the user row.
            let purged = Event::account_purged(&user.public_id);
            events::record_session_ends(conn, &metrics, &ended.sessions, SessionEnd::UserDeleted, vec![purged], now)?;
            users::delete_by_public_id(conn, &public_id.to_string())?;
            Ok(ended)
        })
        .await;
    // Their authors lost their creator (see migration 14).
    services.views.wrote(Table::Users);
    services.views.wrote(Table::Authors);
    let ended = ended?;
    revocation::publish(services, ended).await?;
    Ok(())
}
