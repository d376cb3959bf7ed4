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
/// (PostgreSQL: `FOR UPDATE`; SQLite: the transaction already holds the write lock).
pub fn lock(conn: &mut DbConn, key: &str, now: NaiveDateTime) -> QueryResult<ThrottleRow> {
    let fresh = ThrottleRow { key: key.to_string(), failures: 0, blocked_until: None, updated_at: now };
    super::on_backend!(conn, |conn| diesel::insert_into(login_throttle::table)
        .values(&fresh)
        .on_conflict(login_throttle::key)
        .do_nothing()
        .execute(conn))?;
    match conn {
        DbConn::Postgres(conn) => {
            login_throttle::table.find(key).select(ThrottleRow::as_select()).for_update().first(conn)
        }
        DbConn::Sqlite(conn) => login_throttle::table.find(key).select(ThrottleRow::as_select()).first(conn),
    }
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
