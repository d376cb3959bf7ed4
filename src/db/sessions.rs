//! Queries on sessions (a login and its chain of refresh tokens), refresh tokens and
//! subject-wide revocations.

use super::DbConn;
use super::users::User;
use crate::schema::{refresh_tokens, sessions, subject_revocations, users};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub session_id: String,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub spent_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: i32,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// The OAuth client that started the session; only it may refresh.
    pub client_id: String,
    /// The scope granted at login (space-separated), carried by every token of the session.
    pub scope: String,
}

/// The session a login starts: its id, its client and the scope granted.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i32,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// The `User-Agent` of the login, already cut to size.
    pub user_agent: Option<&'a str>,
    /// The password version the login was checked against: if the user's password changed
    /// since, no session starts. (Not the hash: a concurrent login may store a stronger hash
    /// of the same password, which must not refuse this one.)
    pub password_version: i64,
}

/// Where a refresh token stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// Unspent, unexpired, its session not revoked: it may be exchanged once.
    Usable,
    /// Already exchanged (presenting it again is reuse).
    Spent,
    /// Expired, or its session was revoked.
    Dead,
}

impl RefreshTokenRow {
    /// The one rule of when a refresh token still counts (refresh, revocation, introspection).
    pub fn state(&self, session: &SessionRow, now: NaiveDateTime) -> RefreshTokenState {
        if session.revoked_at.is_some() {
            RefreshTokenState::Dead
        } else if self.spent_at.is_some() {
            RefreshTokenState::Spent
        } else if self.expires_at <= now {
            RefreshTokenState::Dead
        } else {
            RefreshTokenState::Usable
        }
    }
}

/// A refresh token with its session and user.
pub type RefreshTokenRecord = (RefreshTokenRow, SessionRow, User);

/// Starts `session` (a login) with its first refresh token, and returns the user as they are
/// at that moment (`None` if they, or the session's client, were deleted meanwhile, or the
/// user's password changed since it was checked — the read waits for a password change in
/// progress on PostgreSQL, `FOR SHARE`): tokens
/// are issued from this row, not from the one read before the password check, so a role change
/// made during the check is not lost.
pub fn start_session(
    conn: &mut DbConn,
    session: &NewSession<'_>,
    token_hash: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<Option<User>> {
    let (session_id, user_id) = (session.id, session.user_id);
    super::write_transaction(conn, |conn| {
        // PostgreSQL: FOR SHARE makes a concurrent role change or deletion wait for this login
        // (or this login wait for it), so its session is always seen by the change's sweep.
        let user = match conn {
            DbConn::Postgres(conn) => {
                users::table.find(user_id).select(User::as_select()).for_share().first(conn).optional()?
            }
            DbConn::Sqlite(conn) => users::table.find(user_id).select(User::as_select()).first(conn).optional()?,
        };
        let Some(user) = user.filter(|user| user.password_version == session.password_version) else {
            return Ok(None);
        };
        // A client deleted or disabled since it authenticated starts no session.
        if !super::clients::is_active_locked(conn, session.client_id)? {
            return Ok(None);
        }
        diesel::insert_into(sessions::table)
            .values((
                sessions::id.eq(session_id),
                sessions::user_id.eq(user_id),
                sessions::created_at.eq(now),
                sessions::expires_at.eq(expires_at),
                sessions::client_id.eq(session.client_id),
                sessions::scope.eq(session.scope),
                sessions::user_agent.eq(session.user_agent),
            ))
            .execute(conn)?;
        insert_refresh_token(conn, token_hash, session_id, now, expires_at)?;
        Ok(Some(user))
    })
}

fn insert_refresh_token(
    conn: &mut DbConn,
    token_hash: &str,
    session_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(refresh_tokens::table)
        .values((
            refresh_tokens::token_hash.eq(token_hash),
            refresh_tokens::session_id.eq(session_id),
            refresh_tokens::issued_at.eq(now),
            refresh_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .map(drop)
}

/// The refresh token with this hash, its session and its user.
pub fn find_refresh_token(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<RefreshTokenRecord>> {
    refresh_tokens::table
        .inner_join(sessions::table.inner_join(users::table))
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((RefreshTokenRow::as_select(), SessionRow::as_select(), User::as_select()))
        .first(conn)
        .optional()
}

/// [`find_refresh_token`], locking the rows on PostgreSQL in the order every transaction here
/// takes them — the user, then the session, then the token — so that none can deadlock with
/// another: the user `FOR SHARE` (a role change or deletion waits for this refresh, or it for
/// them), the token and its session `FOR UPDATE` (the token cannot be spent twice). SQLite's
/// write transaction already excludes every other writer.
fn find_refresh_token_locked(conn: &mut DbConn, token_hash: &str) -> QueryResult<Option<RefreshTokenRecord>> {
    let DbConn::Postgres(pg) = conn else {
        return find_refresh_token(conn, token_hash);
    };
    let owner = refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(sessions::user_id)
        .first::<i32>(pg)
        .optional()?;
    let Some(owner) = owner else { return Ok(None) };
    let Some(user) = users::table.find(owner).select(User::as_select()).for_share().first(pg).optional()? else {
        return Ok(None);
    };
    let token_and_session = refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((RefreshTokenRow::as_select(), SessionRow::as_select()))
        .for_update()
        .first(pg)
        .optional()?;
    Ok(token_and_session.map(|(token, session)| (token, session, user)))
}

/// What presenting a refresh token came to.
#[derive(Debug)]
pub enum Refresh {
    /// Spent; `new_hash` now stands in its place. Issue tokens for this user and session.
    Rotated { user: User, session: SessionRow },
    /// Already spent before: someone replayed it. The caller revokes the session.
    Reused { session_id: String },
    /// Unknown, expired, of a revoked session (or a deleted user), or presented by a client
    /// other than the session's.
    Invalid,
}

/// Spends refresh token `token_hash`, presented by client `client_id`, and stores `new_hash` in
/// the same session, atomically. Only the session's own client may refresh it.
pub fn rotate_refresh_token(
    conn: &mut DbConn,
    client_id: &str,
    token_hash: &str,
    new_hash: &str,
    now: NaiveDateTime,
    new_expires_at: NaiveDateTime,
) -> QueryResult<Refresh> {
    super::write_transaction(conn, |conn| {
        let Some((token, session, user)) = find_refresh_token_locked(conn, token_hash)? else {
            return Ok(Refresh::Invalid);
        };
        if session.client_id != client_id {
            return Ok(Refresh::Invalid);
        }
        match token.state(&session, now) {
            RefreshTokenState::Usable => {}
            RefreshTokenState::Spent => return Ok(Refresh::Reused { session_id: session.id }),
            RefreshTokenState::Dead => return Ok(Refresh::Invalid),
        }
        let spent = diesel::update(refresh_tokens::table.find(token_hash).filter(refresh_tokens::spent_at.is_null()))
            .set(refresh_tokens::spent_at.eq(now))
            .execute(conn)?;
        if spent != 1 {
            return Ok(Refresh::Reused { session_id: session.id });
        }
        insert_refresh_token(conn, new_hash, &session.id, now, new_expires_at)?;
        diesel::update(sessions::table.find(&session.id))
            .set((sessions::expires_at.eq(new_expires_at), sessions::last_refreshed_at.eq(now)))
            .execute(conn)?;
        Ok(Refresh::Rotated { user, session })
    })
}

/// Revokes one session (idempotent: the first revocation time stands); whether this call
/// ended it.
pub fn revoke_session(conn: &mut DbConn, session_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let revoked = diesel::update(sessions::table.find(session_id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(now))
        .execute(conn)?;
    Ok(revoked == 1)
}

/// Revokes every session of a user: their refresh tokens stop working. Returns the ids of the
/// sessions it revoked, so their access tokens can be refused at once too.
pub fn revoke_user_sessions(conn: &mut DbConn, user_id: i32, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let user_sessions = sessions::table.filter(sessions::user_id.eq(user_id)).filter(sessions::revoked_at.is_null());
    super::on_backend!(conn, |conn| diesel::update(user_sessions)
        .set(sessions::revoked_at.eq(now))
        .returning(sessions::id)
        .get_results(conn))
}

/// The user (`public_id`) of each of sessions `session_ids`, as `(session id, public id)`.
pub fn session_users(conn: &mut DbConn, session_ids: &[String]) -> QueryResult<Vec<(String, String)>> {
    if session_ids.is_empty() {
        return Ok(Vec::new());
    }
    sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq_any(session_ids))
        .select((sessions::id, users::public_id))
        .load(conn)
}

/// A session as its user sees it (`GET /users/me/sessions`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionSummary {
    pub id: String,
    pub client_id: String,
    pub created_at: NaiveDateTime,
    pub last_refreshed_at: Option<NaiveDateTime>,
    pub user_agent: Option<String>,
}

/// The live sessions of user `user_id` at `now` (neither revoked nor expired), newest first.
pub fn live_user_sessions(conn: &mut DbConn, user_id: i32, now: NaiveDateTime) -> QueryResult<Vec<SessionSummary>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(SessionSummary::as_select())
        .load(conn)
}

/// Revokes session `session_id` if it is a live session of user `user_id` at `now`; whether it
/// was.
pub fn revoke_live_user_session(
    conn: &mut DbConn,
    user_id: i32,
    session_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let revoked = diesel::update(
        sessions::table
            .find(session_id)
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now)),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?;
    Ok(revoked == 1)
}

/// Revokes every live session of a user but `keep` (the caller's own, if any); returns their
/// ids. Expired sessions are left alone: no token of theirs works any more.
pub fn revoke_other_user_sessions(
    conn: &mut DbConn,
    user_id: i32,
    keep: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<Vec<String>> {
    let others = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .filter(sessions::id.ne(keep.unwrap_or_default()));
    super::on_backend!(conn, |conn| diesel::update(others)
        .set(sessions::revoked_at.eq(now))
        .returning(sessions::id)
        .get_results(conn))
}

/// Revokes every session started by client `client_id`; returns their ids.
pub fn revoke_client_sessions(conn: &mut DbConn, client_id: &str, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let client_sessions =
        sessions::table.filter(sessions::client_id.eq(client_id)).filter(sessions::revoked_at.is_null());
    super::on_backend!(conn, |conn| diesel::update(client_sessions)
        .set(sessions::revoked_at.eq(now))
        .returning(sessions::id)
        .get_results(conn))
}

/// Refuses every access token of `subject` issued before `valid_after`, until `expires_at`,
/// merged with the cutoff stored before (the later cutoff, kept the longer time) in the same
/// statement, so revocations committing in any order never lower it. Returns the stored
/// `(valid_after, expires_at)`.
pub fn revoke_subject(
    conn: &mut DbConn,
    subject: &str,
    valid_after: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: NaiveDateTime,
) -> QueryResult<(NaiveDateTime, NaiveDateTime)> {
    // The same upsert in each dialect: PostgreSQL's GREATEST is SQLite's two-argument MAX.
    let (sql, greatest) = match conn {
        DbConn::Postgres(_) => (
            "INSERT INTO subject_revocations (subject, valid_after, expires_at, revoked_at) VALUES ($1, $2, $3, $4)",
            "GREATEST",
        ),
        DbConn::Sqlite(_) => (
            "INSERT INTO subject_revocations (subject, valid_after, expires_at, revoked_at) VALUES (?, ?, ?, ?)",
            "MAX",
        ),
    };
    let upsert = format!(
        "{sql} ON CONFLICT (subject) DO UPDATE SET \
         valid_after = {greatest}(subject_revocations.valid_after, excluded.valid_after), \
         expires_at = {greatest}(subject_revocations.expires_at, excluded.expires_at), \
         revoked_at = excluded.revoked_at \
         RETURNING valid_after, expires_at"
    );
    let query = diesel::sql_query(upsert)
        .bind::<Text, _>(subject)
        .bind::<Timestamp, _>(valid_after)
        .bind::<Timestamp, _>(expires_at)
        .bind::<Timestamp, _>(revoked_at);
    let stored: StoredCutoff = super::on_backend!(conn, |conn| query.get_result(conn))?;
    Ok((stored.valid_after, stored.expires_at))
}

#[derive(QueryableByName)]
struct StoredCutoff {
    #[diesel(sql_type = Timestamp)]
    valid_after: NaiveDateTime,
    #[diesel(sql_type = Timestamp)]
    expires_at: NaiveDateTime,
}

/// Sessions revoked at or after `since`: `(id, revoked_at)`.
pub fn revoked_sessions_since(conn: &mut DbConn, since: NaiveDateTime) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    sessions::table
        .filter(sessions::revoked_at.ge(since))
        .select((sessions::id, sessions::revoked_at.assume_not_null()))
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

/// Deletes what can no longer matter at `now`: expired refresh tokens, refresh tokens of revoked
/// sessions, expired subject
/// revocations, and expired sessions whose revocation (if any) has outlived every access token
/// issued from them (`revoked_before`). Returns the number of rows deleted.
pub fn prune(conn: &mut DbConn, now: NaiveDateTime, revoked_before: NaiveDateTime) -> QueryResult<usize> {
    super::write_transaction(conn, |conn| {
        let tokens = diesel::delete(refresh_tokens::table.filter(refresh_tokens::expires_at.le(now))).execute(conn)?;
        // A revoked session's refresh tokens are refused whatever they are; reuse detection has
        // nothing left to protect, so they go at once rather than at their expiry.
        let revoked = sessions::table.filter(sessions::revoked_at.is_not_null()).select(sessions::id);
        let ended =
            diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(revoked))).execute(conn)?;
        let subjects =
            diesel::delete(subject_revocations::table.filter(subject_revocations::expires_at.lt(now))).execute(conn)?;
        let expired_sessions = diesel::delete(
            sessions::table
                .filter(sessions::expires_at.le(now))
                .filter(sessions::revoked_at.is_null().or(sessions::revoked_at.lt(revoked_before))),
        )
        .execute(conn)?;
        Ok(tokens + ended + subjects + expired_sessions)
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
