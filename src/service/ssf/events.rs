//! What the transmitter says, and the outbox it says it through: each change that ends a
//! session, changes a password or a role, or deletes a user builds its [`Event`]s and calls
//! [`record`] inside its own transaction, last. The events commit with the change or not at
//! all, and the poll and push paths deliver them from the table (see `poll.rs`, `push.rs`).

use crate::db::{DbConn, sessions, ssf};
use crate::metrics::Metrics;
use crate::tokens::{EventType, session_subject, stream_subject, user_subject};
use chrono::{DateTime, Utc};
use diesel::QueryResult;
use serde_json::{Value, json};
use uuid::Uuid;

/// Why a session ended, as receivers are told (CAEP 1.0 §2: `initiating_entity` and
/// `reason_admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// `POST /logout`.
    Logout,
    /// `POST /logout/all`.
    LogoutEverywhere,
    /// A spent refresh token was presented again (RFC 6819 §5.2.2.3).
    RefreshTokenReuse,
    /// The session's refresh token was revoked (RFC 7009).
    TokenRevocation,
    /// The user ended it (`DELETE /users/me/sessions/{sid}`).
    EndedByUser,
    /// An administrator ended the user's sessions.
    EndedByAdmin,
    /// The user changed their password: every other session ends.
    PasswordChange,
    /// An administrator changed the user's role.
    RoleChange,
    /// An administrator deleted the user.
    UserDeleted,
    /// An administrator deleted the client the session was started through.
    ClientDeleted,
}

impl SessionEnd {
    /// CAEP `initiating_entity`: `user`, `admin`, `policy` or `system`.
    fn initiating_entity(self) -> &'static str {
        match self {
            Self::Logout
            | Self::LogoutEverywhere
            | Self::TokenRevocation
            | Self::EndedByUser
            | Self::PasswordChange => "user",
            Self::EndedByAdmin | Self::RoleChange | Self::UserDeleted | Self::ClientDeleted => "admin",
            Self::RefreshTokenReuse => "policy",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutEverywhere => "logout everywhere",
            Self::RefreshTokenReuse => "refresh token reuse detected",
            Self::TokenRevocation => "refresh token revoked",
            Self::EndedByUser => "session ended by the user",
            Self::EndedByAdmin => "sessions ended by an administrator",
            Self::PasswordChange => "password changed",
            Self::RoleChange => "role changed",
            Self::UserDeleted => "user deleted",
            Self::ClientDeleted => "client deleted",
        }
    }
}

/// One event, before it is queued for each stream that wants it.
#[derive(Debug, Clone)]
pub struct Event {
    kind: EventType,
    /// The SET's `sub_id`.
    subject: Value,
    /// The event's members.
    payload: Value,
    /// Verification events go to the one stream that asked; every other event to all streams
    /// that requested its type.
    only_stream: Option<String>,
}

impl Event {
    /// CAEP session-revoked for session `sid` of user `sub`.
    pub fn session_revoked(sub: &str, sid: &str, cause: SessionEnd, now: DateTime<Utc>) -> Self {
        Self::to_all(
            EventType::SessionRevoked,
            session_subject(sub, sid),
            json!({
                "event_timestamp": now.timestamp(),
                "initiating_entity": cause.initiating_entity(),
                "reason_admin": {"en": cause.reason()},
            }),
        )
    }

    /// CAEP credential-change: user `sub` changed their password.
    pub fn password_changed(sub: &str, now: DateTime<Utc>) -> Self {
        Self::to_all(
            EventType::CredentialChange,
            user_subject(sub),
            json!({
                "event_timestamp": now.timestamp(),
                "credential_type": "password",
                "change_type": "update",
                "initiating_entity": "user",
            }),
        )
    }

    /// CAEP token-claims-change: user `sub`'s tokens now carry `groups`.
    pub fn groups_changed(sub: &str, groups: &[&str], now: DateTime<Utc>) -> Self {
        Self::to_all(
            EventType::TokenClaimsChange,
            user_subject(sub),
            json!({
                "event_timestamp": now.timestamp(),
                "initiating_entity": "admin",
                "claims": {"groups": groups},
            }),
        )
    }

    /// RISC account-purged: user `sub` is deleted.
    pub fn account_purged(sub: &str) -> Self {
        Self::to_all(EventType::AccountPurged, user_subject(sub), json!({}))
    }

    /// SSF verification for stream `stream_id`, echoing the receiver's `state`.
    pub fn verification(stream_id: &str, state: Option<&str>) -> Self {
        let payload = match state {
            Some(state) => json!({"state": state}),
            None => json!({}),
        };
        Self {
            kind: EventType::Verification,
            subject: stream_subject(stream_id),
            payload,
            only_stream: Some(stream_id.to_string()),
        }
    }

    fn to_all(kind: EventType, subject: Value, payload: Value) -> Self {
        Self { kind, subject, payload, only_stream: None }
    }
}

/// A session-revoked event for each of `sids` that belongs to a user (the owner is read in the
/// caller's transaction).
fn sessions_revoked(
    conn: &mut DbConn,
    sids: &[Uuid],
    cause: SessionEnd,
    now: DateTime<Utc>,
) -> QueryResult<Vec<Event>> {
    let ids: Vec<String> = sids.iter().map(Uuid::to_string).collect();
    let mut owners = sessions::session_users(conn, &ids)?;
    // In the order given, which is the order the sessions were revoked.
    owners.sort_by_key(|(sid, _)| ids.iter().position(|id| id == sid));
    Ok(owners.iter().map(|(sid, sub)| Event::session_revoked(sub, sid, cause, now)).collect())
}

/// Queues a session-revoked event for each of `sids` (ended by `cause`), then `then` (the
/// change's own events), in the caller's transaction; call it last (see [`record`]).
pub fn record_session_ends(
    conn: &mut DbConn,
    metrics: &Metrics,
    sids: &[Uuid],
    cause: SessionEnd,
    then: Vec<Event>,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let mut events = sessions_revoked(conn, sids, cause, now)?;
    events.extend(then);
    record(conn, metrics, &events, now)
}

/// Queues `events` for every stream that takes them, in the caller's transaction; call it last
/// (on PostgreSQL it takes the lock that orders events by commit). Answers how many SETs were
/// queued. The `queued` metric is counted here: a transaction that then rolls back has
/// counted events it never queued.
pub fn record(conn: &mut DbConn, metrics: &Metrics, events: &[Event], now: DateTime<Utc>) -> QueryResult<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    ssf::lock_outbox(conn)?;
    let streams = ssf::accepting_streams(conn)?;
    let mut rows = Vec::new();
    for event in events {
        let txn = Uuid::new_v4().to_string();
        for stream in &streams {
            let wanted = match &event.only_stream {
                Some(stream_id) => *stream_id == stream.stream_id,
                None => stream.events_delivered.split_ascii_whitespace().any(|uri| uri == event.kind.uri()),
            };
            if wanted {
                rows.push(ssf::NewEvent {
                    stream_id: stream.stream_id.clone(),
                    jti: Uuid::new_v4().to_string(),
                    txn: txn.clone(),
                    event_type: event.kind.uri().to_string(),
                    subject: event.subject.to_string(),
                    payload: event.payload.to_string(),
                    created_at: now.naive_utc(),
                });
            }
        }
    }
    ssf::insert_events(conn, &rows)?;
    for row in &rows {
        let short_name = row.event_type.rsplit('/').next().unwrap_or_default();
        metrics.ssf.queued.with_label_values(&[short_name]).inc();
    }
    Ok(rows.len())
}
