//! Queries on `revoked_tokens`.

use super::DbConn;
use crate::schema::revoked_tokens;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Records that token `jti` is revoked; `expires_at` is when it would be refused anyway
/// (its `exp` plus the verification leeway). Revoking twice is not an error.
pub fn insert(conn: &mut DbConn, jti: &str, expires_at: NaiveDateTime, now: NaiveDateTime) -> QueryResult<()> {
    let row =
        (revoked_tokens::jti.eq(jti), revoked_tokens::expires_at.eq(expires_at), revoked_tokens::revoked_at.eq(now));
    super::on_backend!(conn, |conn| diesel::insert_into(revoked_tokens::table)
        .values(row)
        .on_conflict(revoked_tokens::jti)
        .do_nothing()
        .execute(conn))
    .map(drop)
}

/// Up to `limit` revocations still in force at `now` with a jti after `after`, in jti order:
/// `(jti, expires_at)`. Paged so that a large deny list loads without a large transient copy.
pub fn live_page(
    conn: &mut DbConn,
    now: NaiveDateTime,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    revoked_tokens::table
        .filter(revoked_tokens::expires_at.ge(now))
        .filter(revoked_tokens::jti.gt(after))
        .order(revoked_tokens::jti)
        .limit(limit)
        .select((revoked_tokens::jti, revoked_tokens::expires_at))
        .load(conn)
}

/// Inserts many revocations at once (benchmarks and tests seed large deny lists with it).
pub fn insert_many(conn: &mut DbConn, rows: &[(String, NaiveDateTime)], now: NaiveDateTime) -> QueryResult<()> {
    super::write_transaction(conn, |conn| {
        // SQLite allows 32,766 bound parameters per statement; three per row.
        for chunk in rows.chunks(10_000) {
            let values: Vec<_> = chunk
                .iter()
                .map(|(jti, expires_at)| {
                    (
                        revoked_tokens::jti.eq(jti),
                        revoked_tokens::expires_at.eq(*expires_at),
                        revoked_tokens::revoked_at.eq(now),
                    )
                })
                .collect();
            super::on_backend!(conn, |conn| diesel::insert_into(revoked_tokens::table).values(&values).execute(conn))?;
        }
        Ok(())
    })
}

/// Deletes revocations whose tokens are refused anyway before `now`; returns how many.
pub fn prune(conn: &mut DbConn, now: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now))).execute(conn)
}

/// Revocations recorded at or after `since` (by any instance): `(jti, expires_at, revoked_at)`.
pub fn revoked_since(
    conn: &mut DbConn,
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, NaiveDateTime, NaiveDateTime)>> {
    revoked_tokens::table
        .filter(revoked_tokens::revoked_at.ge(since))
        .select((revoked_tokens::jti, revoked_tokens::expires_at, revoked_tokens::revoked_at))
        .load(conn)
}
