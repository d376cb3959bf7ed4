//! Queries on token families, refresh tokens and subject-wide revocations (sessions).

use super::DbConn;
use super::users::User;
use crate::schema::{refresh_tokens, subject_revocations, token_families, users};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub spent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = token_families)]
pub struct FamilyRow {
    pub id: String,
    pub user_id: i32,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

/// A refresh token with its family and user.
pub type RefreshTokenRecord = (RefreshTokenRow, FamilyRow, User);

/// Starts family `family_id` (a login) of user `user_id` with its first refresh token, and
/// returns the user as they are at that moment (`None` if they were deleted meanwhile): tokens
/// are issued from this row, not from the one read before the password check, so a role change
/// made during the check is not lost.
pub fn start_family(
    conn: &mut DbConn,
    family_id: &str,
    user_id: i32,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<Option<User>> {
    super::write_transaction(conn, |conn| {
        // PostgreSQL: FOR SHARE makes a concurrent role change or deletion wait for this login
        // (or this login wait for it), so its family is always seen by the change's sweep.
        let user = match conn {
            DbConn::Postgres(conn) => {
                users::table.find(user_id).select(User::as_select()).for_share().first(conn).optional()?
            }
            DbConn::Sqlite(conn) => users::table.find(user_id).select(User::as_select()).first(conn).optional()?,
        };
        let Some(user) = user else {
            return Ok(None);
        };
        diesel::insert_into(token_families::table)
            .values((
                token_families::id.eq(family_id),
                token_families::user_id.eq(user_id),
                token_families::created_at.eq(now),
                token_families::expires_at.eq(expires_at),
            ))
            .execute(conn)?;
        insert_refresh_token(conn, token_hash, family_id, now, expires_at)?;
        Ok(Some(user))
    })
}

fn insert_refresh_token(
    conn: &mut DbConn,
    token_hash: &str,
    family_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::family_id.eq(family_id),
            refresh_tokens::issued_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The refresh token with this hash, its family and its user.
pub fn find_refresh_token(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<RefreshTokenRecord>> {
    refresh_tokens::table
        .inner_join(token_families::table.inner_join(users::table))
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((RefreshTokenRow::as_select(), FamilyRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// [`find_refresh_token`], locking the rows on PostgreSQL (`FOR UPDATE`: the token cannot be
/// spent twice, and a role change or deletion of the user waits for this refresh, or it for
/// them). SQLite's write transaction already excludes every other writer.
fn find_refresh_token_locked(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<RefreshTokenRecord>> {
    match conn {
        DbConn::Postgres(conn) => refresh_tokens::table
            .inner_join(token_families::table.inner_join(users::table))
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((RefreshTokenRow::as_select(), FamilyRow::as_select(), User::as_select()))
            .for_update()
            .first(conn)
            .optional(),
        sqlite @ DbConn::Sqlite(_) => find_refresh_token(sqlite, token_hash),
    }
}

/// What presenting a refresh token came to.
#[derive(Debug)]
pub enum Refresh {
    /// Spent; `new_hash` now stands in its place. Issue tokens for this user and family.
    Rotated { user: User, family_id: String },
    /// Already spent before: someone replayed it. The caller revokes the family.
    Reused { family_id: String },
    /// Unknown, expired, or of a revoked family (or a deleted user).
    Invalid,
}

/// Spends refresh token `token_hash` and stores `new_hash` in the same family, atomically.
pub fn rotate_refresh_token(
    conn: &mut DbConn,
    token_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
    new_expires_at: NaiveDateTime,
) -> QueryResult<Refresh> {
    super::write_transaction(conn, |conn| {
        let Some((token, family, user)) = find_refresh_token_locked(conn, token_hash)? else {
            return Ok(Refresh::Invalid);
        };
        if family.revoked_at.is_some() {
            return Ok(Refresh::Invalid);
        }
        if token.spent_at.is_some() {
            return Ok(Refresh::Reused { family_id: family.id });
        }
        if token.expires_at <= now {
            return Ok(Refresh::Invalid);
        }
        let spent = diesel::update(refresh_tokens::table.find(token_hash).filter(refresh_tokens::spent_at.is_null()))
            .set(refresh_tokens::spent_at.eq(now))
            .execute(conn)?;
        if spent != 1 {
            return Ok(Refresh::Reused { family_id: family.id });
        }
        insert_refresh_token(conn, new_hash, &family.id, now, new_expires_at)?;
        diesel::update(token_families::table.find(&family.id))
            .set(token_families::expires_at.eq(new_expires_at))
            .execute(conn)?;
        Ok(Refresh::Rotated { user, family_id: family.id })
    })
}

/// Revokes one family (idempotent: the first revocation time stands).
pub fn revoke_family(conn: &mut DbConn, family_id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(token_families::table.find(family_id).filter(token_families::revoked_at.is_null()))
        .set(token_families::revoked_at.eq(now))
        .execute(conn)
        .map(drop)
}

/// Revokes every family of a user: their refresh tokens stop working. Returns the ids of the
/// families it revoked, so their access tokens can be refused at once too.
pub fn revoke_user_families(conn: &mut DbConn, user_id: i32, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let families =
        token_families::table.filter(token_families::user_id.eq(user_id)).filter(token_families::revoked_at.is_null());
    super::on_backend!(conn, |conn| diesel::update(families)
        .set(token_families::revoked_at.eq(now))
        .returning(token_families::id)
        .get_results(conn))
}

/// Refuses every access token of `subject` issued at or before `valid_after`, until `expires_at`.
pub fn revoke_subject(
    conn: &mut DbConn,
    subject: &str,
    valid_after: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: NaiveDateTime,
) -> QueryResult<()> {
    let row = (
        subject_revocations::subject.eq(subject),
        subject_revocations::valid_after.eq(valid_after),
        subject_revocations::expires_at.eq(expires_at),
        subject_revocations::revoked_at.eq(revoked_at),
    );
    super::on_backend!(conn, |conn| diesel::insert_into(subject_revocations::table)
        .values(row)
        .on_conflict(subject_revocations::subject)
        .do_update()
        .set((
            subject_revocations::valid_after.eq(excluded(subject_revocations::valid_after)),
            subject_revocations::expires_at.eq(excluded(subject_revocations::expires_at)),
            subject_revocations::revoked_at.eq(excluded(subject_revocations::revoked_at)),
        ))
        .execute(conn))
    .map(drop)
}

/// Families revoked at or after `since`: `(id, revoked_at)`.
pub fn revoked_families_since(conn: &mut DbConn, since: NaiveDateTime) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    token_families::table
        .filter(token_families::revoked_at.ge(since))
        .select((token_families::id, token_families::revoked_at.assume_not_null()))
        .load(conn)
}

/// Subject revocations still in force at `now` (inclusive): `(subject, valid_after, expires_at)`.
pub fn live_subject_revocations(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> QueryResult<Vec<(String, NaiveDateTime, NaiveDateTime)>> {
    subject_revocations::table
        .filter(subject_revocations::expires_at.ge(now))
        .select((subject_revocations::subject, subject_revocations::valid_after, subject_revocations::expires_at))
        .load(conn)
}

/// Deletes what can no longer matter at `now`: expired refresh tokens, expired subject
/// revocations, and expired families whose revocation (if any) has outlived every access token
/// issued from them (`revoked_before`). Returns the number of rows deleted.
pub fn prune(conn: &mut DbConn, now: NaiveDateTime, revoked_before: NaiveDateTime) -> QueryResult<usize> {
    super::write_transaction(conn, |conn| {
        let tokens = diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.le(now))).execute(conn)?;
        let subjects =
            diesel::delete(subject_revocations::table.filter(subject_revocations::expires_at.lt(now))).execute(conn)?;
        let families = diesel::delete(
            token_families::table
                .filter(token_families::expires_at.le(now))
                .filter(token_families::revoked_at.is_null().or(token_families::revoked_at.lt(revoked_before))),
        )
        .execute(conn)?;
        Ok(tokens + subjects + families)
    })
}

/// Subject revocations recorded at or after `since` (by any instance):
/// `(subject, valid_after, expires_at, revoked_at)`.
pub fn subject_revocations_since(
    conn: &mut DbConn,
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, NaiveDateTime, NaiveDateTime, NaiveDateTime)>> {
    subject_revocations::table
        .filter(subject_revocations::revoked_at.ge(since))
        .select((
            subject_revocations::subject,
            subject_revocations::valid_after,
            subject_revocations::expires_at,
            subject_revocations::revoked_at,
        ))
        .load(conn)
}
