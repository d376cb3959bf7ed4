//! Failed-login counters (`login_throttle`).

use super::DbConn;
use crate::schema::login_throttle;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = login_throttle)]
#[diesel(treat_none_as_null = true)]
pub struct ThrottleRow {
    pub key: String,
    pub failures: i32,
    pub blocked_until: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

/// The counter for `key`, created empty if missing, locked for the rest of the transaction
/// (PostgreSQL: the upsert's row lock; SQLite: the transaction already holds the write lock).
/// One statement, so a counter deleted meanwhile by a concurrent successful login is simply
/// created again (an insert followed by a separate `SELECT … FOR UPDATE` found no row then).
pub fn lock(conn: &mut DbConn, key: &str, now: NaiveDateTime) -> QueryResult<ThrottleRow> {
    let fresh = ThrottleRow { key: key.to_string(), failures: 0, blocked_until: None, updated_at: now };
    super::on_backend!(conn, |conn| diesel::insert_into(login_throttle::table)
        .values(&fresh)
        .on_conflict(login_throttle::key)
        .do_update()
        // A no-op update: it locks the existing row and returns it as it is.
        .set(login_throttle::key.eq(diesel::upsert::excluded(login_throttle::key)))
        .returning(ThrottleRow::as_returning())
        .get_result(conn))
}

pub fn save(conn: &mut DbConn, row: &ThrottleRow) -> QueryResult<()> {
    diesel::update(login_throttle::table.find(&row.key)).set(row).execute(conn).map(drop)
}

pub fn clear(conn: &mut DbConn, key: &str) -> QueryResult<()> {
    diesel::delete(login_throttle::table.find(key)).execute(conn).map(drop)
}

/// Deletes counters untouched since `before`.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_throttle::table.filter(login_throttle::updated_at.lt(before))).execute(conn)
}
