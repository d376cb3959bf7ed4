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
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    public_id: &'a str,
    name: &'a str,
    name_key: &'a str,
    password_hash: &'a str,
    admin: bool,
    created_at: NaiveDateTime,
}

/// Inserts a user with a fresh random `public_id`; a taken name fails with a unique violation
/// on `users.name_key`.
pub fn create(
    conn: &mut DbConn,
    name: &str,
    name_key: &str,
    password_hash: &str,
    admin: bool,
    now: NaiveDateTime,
) -> QueryResult<User> {
    let public_id = uuid::Uuid::new_v4().to_string();
    let new_user = NewUser { public_id: &public_id, name, name_key, password_hash, admin, created_at: now };
    super::on_backend!(conn, |conn| diesel::insert_into(users::table)
        .values(&new_user)
        .returning(User::as_returning())
        .get_result(conn))
}

pub fn find_by_name_key(conn: &mut DbConn, name_key: &str) -> QueryResult<Option<User>> {
    users::table.filter(users::name_key.eq(name_key)).select(User::as_select()).first(conn).optional()
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
