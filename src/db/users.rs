//! Queries on `users`.

use super::DbConn;
use crate::schema::users;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i32,
    pub public_id: String,
    pub name: String,
    pub password_hash: String,
    pub admin: bool,
    pub created_at: NaiveDateTime,
    /// Moves on with every password change (never with a rehash of the same password).
    pub password_version: i64,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    public_id: &'a str,
    name: &'a str,
    name_key: &'a str,
    name_skeleton: Option<&'a str>,
    shown_skeleton: Option<&'a str>,
    password_hash: &'a str,
    admin: bool,
    created_at: NaiveDateTime,
}

/// What makes a name unique: its lookup key and its two confusable skeletons (see
/// `domain::UserName`).
#[derive(Debug, Clone, Copy)]
pub struct NameKeys<'a> {
    pub key: &'a str,
    pub skeleton: &'a str,
    pub shown_skeleton: &'a str,
}

/// Inserts a user with a fresh random `public_id`; a taken name fails with a unique violation
/// on `users.name_key`, `users.name_skeleton` or `users.shown_skeleton`.
pub fn create_named(
    conn: &mut DbConn,
    name: &str,
    keys: NameKeys<'_>,
    password_hash: &str,
    admin: bool,
    now: NaiveDateTime,
) -> QueryResult<User> {
    let skeletons = (Some(keys.skeleton), Some(keys.shown_skeleton));
    insert(conn, name, keys.key, skeletons, password_hash, admin, now)
}

/// Inserts a user by name key alone, without skeletons, as users stored before the name rules
/// are (seeding, benchmarks): the start-up backfill gives it its skeletons. A taken key fails
/// with a unique violation on `users.name_key`.
pub fn create(
    conn: &mut DbConn,
    name: &str,
    name_key: &str,
    password_hash: &str,
    admin: bool,
    now: NaiveDateTime,
) -> QueryResult<User> {
    insert(conn, name, name_key, (None, None), password_hash, admin, now)
}

fn insert(
    conn: &mut DbConn,
    name: &str,
    name_key: &str,
    (name_skeleton, shown_skeleton): (Option<&str>, Option<&str>),
    password_hash: &str,
    admin: bool,
    now: NaiveDateTime,
) -> QueryResult<User> {
    let public_id = uuid::Uuid::new_v4().to_string();
    let new_user = NewUser {
        public_id: &public_id,
        name,
        name_key,
        name_skeleton,
        shown_skeleton,
        password_hash,
        admin,
        created_at: now,
    };
    super::on_backend!(conn, |conn| diesel::insert_into(users::table)
        .values(&new_user)
        .returning(User::as_returning())
        .get_result(conn))
}

pub fn find_by_name_key(conn: &mut DbConn, name_key: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::name_key.eq(name_key)).select(User::as_select()).first(conn).optional()
}

/// Whether a user holds this key or either of these skeletons.
pub fn name_taken(conn: &mut DbConn, keys: NameKeys<'_>) -> QueryResult<bool> {
    let taken = users::table
        .filter(
            users::name_key
                .eq(keys.key)
                .or(users::name_skeleton.eq(keys.skeleton))
                .or(users::shown_skeleton.eq(keys.shown_skeleton)),
        )
        .select(users::id)
        .first::<i32>(conn)
        .optional()?;
    Ok(taken.is_some())
}

/// The users stored before the name rules whose skeletons are not set (the start-up backfill
/// sets them where it can), oldest first.
pub fn without_skeletons(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table.filter(users::name_skeleton.is_null()).order(users::id).select(User::as_select()).load(conn)
}

/// Sets the lookup key of user `id`; a unique violation on `users.name_key` if another user
/// holds it.
pub fn set_name_key(conn: &mut DbConn, id: i32, key: &str) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id))).set(users::name_key.eq(key)).execute(conn)
}

/// Sets the skeletons of user `id` unless they are set already; a unique violation if another
/// user holds one of them.
pub fn set_skeletons(conn: &mut DbConn, id: i32, skeleton: &str, shown_skeleton: &str) -> QueryResult<usize> {
    diesel::update(users::table.filter(users::id.eq(id)).filter(users::name_skeleton.is_null()))
        .set((users::name_skeleton.eq(skeleton), users::shown_skeleton.eq(shown_skeleton)))
        .execute(conn)
}

/// A user stored before the name rules (no skeleton yet, see the start-up backfill) under this
/// key: the only users login looks up by the key names had before the rules.
pub fn find_legacy_by_name_key(conn: &mut DbConn, name_key: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::name_key.eq(name_key))
        .filter(users::name_skeleton.is_null())
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_public_id(conn: &mut DbConn, public_id: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::public_id.eq(public_id)).select(User::as_select()).first(conn).optional()
}

/// [`find_by_public_id`] inside a write transaction, locking the row on PostgreSQL
/// (`FOR UPDATE`): changes to one user (role, deletion, ending their tokens) happen one after
/// the other, on every instance, and a login or refresh waits for them (each reads the user
/// `FOR SHARE` before its session).
/// SQLite's write transaction already excludes every other writer.
pub fn lock_by_public_id(conn: &mut DbConn, public_id: &str) -> QueryResult<Option<User>> {
    match conn {
        DbConn::Postgres(conn) => users::table
            .filter(users::public_id.eq(public_id))
            .select(User::as_select())
            .for_update()
            .first(conn)
            .optional(),
        sqlite @ DbConn::Sqlite(_) => find_by_public_id(sqlite, public_id),
    }
}

/// The ids of every admin, in id order, locked on PostgreSQL (`FOR UPDATE`) until the caller's
/// transaction ends (SQLite's write transaction already excludes other writers).
pub fn lock_admins(conn: &mut DbConn) -> QueryResult<Vec<i32>> {
    let admins = users::table.filter(users::admin.eq(true)).order(users::id).select(users::id);
    match conn {
        DbConn::Postgres(conn) => admins.for_update().load(conn),
        sqlite @ DbConn::Sqlite(_) => admins.load(sqlite),
    }
}

/// Replaces a user's password hash (a password change).
pub fn set_password_hash(conn: &mut DbConn, user_id: i32, password_hash: &str) -> QueryResult<()> {
    diesel::update(users::table.find(user_id))
        .set((users::password_hash.eq(password_hash), users::password_version.eq(users::password_version + 1)))
        .execute(conn)
        .map(drop)
}

/// Replaces a user's password hash `from` by `to` (a rehash at a higher cost), unless it is no
/// longer `from` (the password was changed meanwhile: the change stands).
pub fn upgrade_password_hash(conn: &mut DbConn, user_id: i32, from: &str, to: &str) -> QueryResult<()> {
    diesel::update(users::table.find(user_id).filter(users::password_hash.eq(from)))
        .set(users::password_hash.eq(to))
        .execute(conn)
        .map(drop)
}

/// Every user, oldest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<User>> {
    users::table.order(users::id).select(User::as_select()).load(conn)
}

/// Sets a user's admin flag; `NotFound` when there is no such user.
pub fn set_admin(conn: &mut DbConn, public_id: &str, admin: bool) -> QueryResult<User> {
    super::on_backend!(conn, |conn| diesel::update(users::table.filter(users::public_id.eq(public_id)))
        .set(users::admin.eq(admin))
        .returning(User::as_returning())
        .get_result(conn))
}

/// Deletes a user (their sessions go with them; their authors stay, without a creator).
/// Returns how many users were deleted (0 or 1).
pub fn delete_by_public_id(conn: &mut DbConn, public_id: &str) -> QueryResult<usize> {
    diesel::delete(users::table.filter(users::public_id.eq(public_id))).execute(conn)
}
