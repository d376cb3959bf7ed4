//! Who gets logged out when, written once. A user's tokens end in three ways:
//! - one access token ([`revoke_access_token`]: `/logout`, RFC 7009);
//! - one session, every token of one login ([`revoke_session`], or [`publish_sessions`] for
//!   sessions another service transaction revoked: a password change, a user ending one of
//!   their sessions);
//!
//! Every session that ends, and every change that calls for a subject cutoff, also queues its
//! Shared Signals events in the same transaction (`ssf::events`); publishing rings the
//! transmitter's bell once the transaction has committed.
//! - every token of a subject up to a cutoff ([`end_subject_tokens`]), inside the transaction
//!   of the change that calls for it: "log out everywhere", a role change, a deletion.

use super::ssf::events::{self, SessionEnd};
use super::{Failure, Services};
use crate::db::{DbConn, sessions};
use crate::tokens::{AccessClaims, Subject, SubjectCutoff, SubjectRevocation};
use chrono::{DateTime, Duration, Utc};
use diesel::QueryResult;
use uuid::Uuid;

/// Which of a subject's tokens a subject-wide revocation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenScope {
    /// Every token issued until now (log out everywhere, a role change).
    IssuedUntilNow,
    /// Every token, ever (the user is deleted: none can be issued again).
    Everything,
}

/// Far-future cutoff stored for [`TokenScope::Everything`].
const FOREVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// Ends the tokens of `subject` that `scope` names, inside the caller's write transaction:
/// revokes every session of user `user_id` (when given) and stores the subject's cutoff, merged
/// with any earlier one by the database (see [`sessions::revoke_subject`]). The caller
/// publishes the result to the deny list once the transaction has committed.
pub fn end_subject_tokens(
    conn: &mut DbConn,
    subject: &Subject,
    user_id: Option<i32>,
    scope: TokenScope,
    now: DateTime<Utc>,
    token_lifetime: Duration,
) -> QueryResult<SubjectRevocation> {
    let keep_until = now + token_lifetime;
    let valid_after = match scope {
        TokenScope::IssuedUntilNow => now,
        TokenScope::Everything => DateTime::from_timestamp(FOREVER, 0).unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    let revoked_sessions = match user_id {
        Some(user_id) => sessions::revoke_user_sessions(conn, user_id, now.naive_utc())?,
        None => Vec::new(),
    };
    let (stored_valid_after, stored_until) = sessions::revoke_subject(
        conn,
        &subject.to_string(),
        valid_after.naive_utc(),
        keep_until.naive_utc(),
        now.naive_utc(),
    )?;
    Ok(SubjectRevocation {
        subject: subject.clone(),
        cutoff: SubjectCutoff {
            valid_after: stored_valid_after.and_utc().timestamp(),
            keep_until: stored_until.and_utc().timestamp(),
        },
        sessions: revoked_sessions.iter().filter_map(|sid| Uuid::parse_str(sid).ok()).collect(),
        sessions_keep_until: keep_until.timestamp(),
    })
}

/// Revokes one access token until it expires.
pub async fn revoke_access_token(services: &Services, claims: &AccessClaims) -> Result<(), Failure> {
    let expires_at =
        DateTime::from_timestamp(claims.exp, 0).ok_or_else(|| Failure::Internal("exp out of range".into()))?;
    services.revocations.revoke_token(claims.jti, expires_at).await?;
    services.metrics.revocations.with_label_values(&["token"]).inc();
    Ok(())
}

/// Revokes one session: its refresh tokens and every access token issued from it. Its
/// session-revoked event is queued in the same transaction (nothing, if it had ended already).
pub async fn revoke_session(services: &Services, sid: Uuid, cause: SessionEnd) -> Result<(), Failure> {
    let (now, metrics) = (services.clock.now(), services.metrics.clone());
    services
        .db
        .transaction(move |conn| -> Result<_, Failure> {
            if sessions::revoke_session(conn, &sid.to_string(), now.naive_utc())? {
                events::record_session_ends(conn, &metrics, &[sid], cause, vec![], now)?;
            }
            Ok(())
        })
        .await?;
    // Published even if it had ended before: this instance may not have heard of it yet.
    publish_sessions(services, vec![sid]).await
}

/// Makes a stored subject revocation take effect in this instance's deny list at once.
pub async fn publish(services: &Services, revocation: SubjectRevocation) -> Result<(), Failure> {
    services.ssf.ring();
    services.revocations.publish(revocation).await?;
    services.metrics.revocations.with_label_values(&["subject"]).inc();
    Ok(())
}

/// Makes session revocations stored by the caller's transaction take effect in this instance's
/// deny list at once: every access token of those sessions is refused from now on.
pub async fn publish_sessions(services: &Services, sids: Vec<Uuid>) -> Result<(), Failure> {
    // The transaction that ended them has committed: its events are there to deliver.
    services.ssf.ring();
    if sids.is_empty() {
        return Ok(());
    }
    let count = sids.len() as u64;
    services.revocations.publish_sessions(sids).await?;
    services.metrics.revocations.with_label_values(&["session"]).inc_by(count);
    Ok(())
}
