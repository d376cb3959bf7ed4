//! Queries on `clients`: registered OAuth 2.0 clients.

use super::DbConn;
use crate::schema::clients;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    /// SHA-256 of the current secret (confidential clients only).
    pub secret_hash: Option<String>,
    /// SHA-256 of the secret before the last rotation, valid until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    /// Space-separated grant types.
    pub grant_types: String,
    /// Space-separated scopes.
    pub scope: String,
    pub created_at: NaiveDateTime,
    pub disabled: bool,
}

pub fn insert(conn: &mut DbConn, client: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(clients::table).values(client).execute(conn).map(drop)
}

/// Inserts `client` unless a client with its id exists (the built-in client, at every start).
pub fn insert_if_missing(conn: &mut DbConn, client: &ClientRow) -> QueryResult<()> {
    super::on_backend!(conn, |conn| diesel::insert_into(clients::table)
        .values(client)
        .on_conflict(clients::client_id)
        .do_nothing()
        .execute(conn))
    .map(drop)
}

/// Whether client `client_id` exists and is enabled, locking its row on PostgreSQL
/// (`FOR SHARE`): a session started in the same transaction is then seen by a concurrent
/// deletion's sweep, or the deletion comes first and this answers `false`.
pub fn is_active_locked(conn: &mut DbConn, client_id: &str) -> QueryResult<bool> {
    let query = clients::table.find(client_id).filter(clients::disabled.eq(false)).select(clients::client_id);
    let found: Option<String> = match conn {
        DbConn::Postgres(conn) => query.for_share().first(conn).optional()?,
        DbConn::Sqlite(conn) => query.first(conn).optional()?,
    };
    Ok(found.is_some())
}

pub fn find(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<ClientRow>> {
    clients::table.find(client_id).select(ClientRow::as_select()).first(conn).optional()
}

/// Every client, oldest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<ClientRow>> {
    clients::table.order((clients::created_at, clients::client_id)).select(ClientRow::as_select()).load(conn)
}

/// Sets the `disabled` flag; `false` when there is no such client.
pub fn set_disabled(conn: &mut DbConn, client_id: &str, disabled: bool) -> QueryResult<bool> {
    diesel::update(clients::table.find(client_id)).set(clients::disabled.eq(disabled)).execute(conn).map(|n| n == 1)
}

/// Replaces the secret; the one it replaces (read in the same statement, so concurrent
/// rotations cannot lose one) stays valid until `previous_expires_at`.
pub fn rotate_secret(
    conn: &mut DbConn,
    client_id: &str,
    new_hash: &str,
    previous_expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(clients::table.find(client_id))
        .set((
            clients::previous_secret_hash.eq(clients::secret_hash),
            clients::secret_hash.eq(new_hash),
            clients::previous_secret_expires_at.eq(previous_expires_at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a client; `false` when there was none.
pub fn delete(conn: &mut DbConn, client_id: &str) -> QueryResult<bool> {
    diesel::delete(clients::table.find(client_id)).execute(conn).map(|n| n == 1)
}
