//! Queries on `revoked_tokens`.

use super::DbConn;
use crate::schema::revoked_tokens;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Records that token `jti` is revoked; `expires_at` is when it would be refused anyway
/// (its `exp` plus the verification leeway). Revoking twice is not an error.
pub fn insert(conn: &mut DbConn, jti: &str, expires_at: NaiveDateTime, now: NaiveDateTime) -> QueryResult<()> {
    diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::expires_at.eq(expires_at),
            revoked_tokens::revoked_at.eq(now),
        ))
        .on_conflict(revoked_tokens::jti)
        .do_nothing()
        .execute(conn)
        .map(drop)
}

/// Revocations of tokens that have not yet expired at `now`: `(jti, expires_at)`.
pub fn live(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    revoked_tokens::table
        .filter(revoked_tokens::expires_at.gt(now))
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
}

/// Deletes revocations of tokens that expired before `now`; returns how many.
pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now))).execute(conn)
}
