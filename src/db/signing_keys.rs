//! Queries on `signing_keys`. Private keys arrive here already sealed by the master key.

use super::DbConn;
use crate::schema::signing_keys;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    /// `next`, `current` or `retired`.
    pub state: String,
    pub algorithm: String,
    /// PKCS#8 DER sealed by [`crate::master_key::MasterKey::seal`].
    pub private_key_enc: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub activates_at: NaiveDateTime,
    pub retires_at: Option<NaiveDateTime>,
}

/// Every stored key, oldest first.
pub fn list(conn: &mut DbConn) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .order((signing_keys::created_at, signing_keys::kid))
        .select(SigningKeyRow::as_select())
        .load(conn)
}

pub fn insert(conn: &mut DbConn, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table).values(row).execute(conn).map(drop)
}
