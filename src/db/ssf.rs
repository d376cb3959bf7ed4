//! Queries on `ssf_streams` (Shared Signals streams, one per receiver) and `ssf_events` (the
//! outbox of events not yet acknowledged by their stream's receiver).

use super::DbConn;
use crate::schema::{clients, ssf_events, ssf_streams};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Key of the PostgreSQL advisory lock a transaction takes before it writes events and holds
/// until it commits: transactions that write events commit one at a time, so event ids follow
/// commit order and receivers get events in that order. (SQLite has one writer anyway.)
const OUTBOX_LOCK: i64 = 0x6c69_6272_6172_7902;

/// A stream as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ssf_streams)]
pub struct StreamRow {
    pub stream_id: String,
    /// The receiver: the stream's audience.
    pub client_id: String,
    /// `urn:ietf:rfc:8936` (poll) or `urn:ietf:rfc:8935` (push).
    pub delivery_method: String,
    /// Push only: where SETs are sent.
    pub push_endpoint: Option<String>,
    /// Push only: the `Authorization` header value to send, sealed under the master key.
    pub push_authorization: Option<Vec<u8>>,
    /// Space-separated event type URIs.
    pub events_requested: String,
    /// Space-separated event type URIs.
    pub events_delivered: String,
    pub description: Option<String>,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: NaiveDateTime,
    /// When the receiver last asked for a verification event.
    pub verified_at: Option<NaiveDateTime>,
    /// Consecutive failed pushes (0 while pushes succeed).
    pub push_failures: i32,
    pub push_last_error: Option<String>,
    /// No push before this: the end of the current lease, or after a failure the retry time.
    pub push_not_before: Option<NaiveDateTime>,
    /// Who holds the push lease (a random token per round).
    pub push_lease_token: Option<String>,
}

/// What a receiver may change of its stream.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = ssf_streams, treat_none_as_null = true)]
pub struct StreamSettings {
    pub delivery_method: String,
    pub push_endpoint: Option<String>,
    pub push_authorization: Option<Vec<u8>>,
    pub events_requested: String,
    pub events_delivered: String,
    pub description: Option<String>,
}

pub fn insert_stream(conn: &mut DbConn, stream: &StreamRow) -> QueryResult<()> {
    diesel::insert_into(ssf_streams::table).values(stream).execute(conn).map(drop)
}

/// The stream of client `client_id`, if it has one.
pub fn stream_of_client(conn: &mut DbConn, client_id: &str) -> QueryResult<Option<StreamRow>> {
    ssf_streams::table
        .filter(ssf_streams::client_id.eq(client_id))
        .select(StreamRow::as_select())
        .first(conn)
        .optional()
}

/// Replaces what a receiver may change of stream `stream_id`.
pub fn update_stream(conn: &mut DbConn, stream_id: &str, settings: &StreamSettings) -> QueryResult<StreamRow> {
    diesel::update(ssf_streams::table.find(stream_id)).set(settings).execute(conn)?;
    ssf_streams::table.find(stream_id).select(StreamRow::as_select()).first(conn)
}

/// Deletes stream `stream_id` and its queue; answers how many queued events went with it.
pub fn delete_stream(conn: &mut DbConn, stream_id: &str) -> QueryResult<usize> {
    let dropped = drop_queue(conn, stream_id)?;
    diesel::delete(ssf_streams::table.find(stream_id)).execute(conn)?;
    Ok(dropped)
}

/// Deletes every event queued for stream `stream_id`; answers how many.
pub fn drop_queue(conn: &mut DbConn, stream_id: &str) -> QueryResult<usize> {
    diesel::delete(ssf_events::table.filter(ssf_events::stream_id.eq(stream_id))).execute(conn)
}

/// Sets the status of stream `stream_id`.
pub fn set_status(conn: &mut DbConn, stream_id: &str, status: &str, reason: Option<&str>) -> QueryResult<StreamRow> {
    diesel::update(ssf_streams::table.find(stream_id))
        .set((ssf_streams::status.eq(status), ssf_streams::status_reason.eq(reason)))
        .execute(conn)?;
    ssf_streams::table.find(stream_id).select(StreamRow::as_select()).first(conn)
}

/// Records a verification request at `now` if the last one was before `not_since`; whether it
/// was recorded (the receiver asked too often otherwise).
pub fn claim_verification(
    conn: &mut DbConn,
    stream_id: &str,
    not_since: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let claimed = diesel::update(
        ssf_streams::table
            .find(stream_id)
            .filter(ssf_streams::verified_at.is_null().or(ssf_streams::verified_at.le(not_since))),
    )
    .set(ssf_streams::verified_at.eq(now))
    .execute(conn)?;
    Ok(claimed == 1)
}

/// Every push stream's sealed `Authorization` header, as `(stream_id, sealed)`.
pub fn push_authorizations(conn: &mut DbConn) -> QueryResult<Vec<(String, Vec<u8>)>> {
    let rows: Vec<(String, Option<Vec<u8>>)> = ssf_streams::table
        .filter(ssf_streams::push_authorization.is_not_null())
        .select((ssf_streams::stream_id, ssf_streams::push_authorization))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(id, sealed)| Some((id, sealed?))).collect())
}

/// Stores a re-sealed `Authorization` header (the master key changed).
pub fn replace_push_authorization(conn: &mut DbConn, stream_id: &str, sealed: &[u8]) -> QueryResult<()> {
    diesel::update(ssf_streams::table.find(stream_id))
        .set(ssf_streams::push_authorization.eq(sealed))
        .execute(conn)
        .map(drop)
}

/// A stream that takes events: its id and the event types it wants (space-separated).
#[derive(Debug, Clone, Queryable)]
pub struct Audience {
    pub stream_id: String,
    pub events_delivered: String,
}

/// The streams events are queued for: every stream not disabled (a paused one holds them).
pub fn accepting_streams(conn: &mut DbConn) -> QueryResult<Vec<Audience>> {
    ssf_streams::table
        .filter(ssf_streams::status.ne("disabled"))
        .select((ssf_streams::stream_id, ssf_streams::events_delivered))
        .load(conn)
}

/// An event to queue for one stream.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ssf_events)]
pub struct NewEvent {
    pub stream_id: String,
    pub jti: String,
    /// The SET's `txn`: the same in every stream's copy of one event.
    pub txn: String,
    pub event_type: String,
    /// The SET's `sub_id`, as JSON.
    pub subject: String,
    /// The event's members, as JSON.
    pub payload: String,
    pub created_at: NaiveDateTime,
}

/// A queued event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ssf_events)]
pub struct EventRow {
    pub id: i32,
    pub stream_id: String,
    pub jti: String,
    pub txn: String,
    pub event_type: String,
    pub subject: String,
    pub payload: String,
    pub created_at: NaiveDateTime,
}

/// Takes the outbox lock until the caller's transaction ends (PostgreSQL; SQLite has one writer
/// anyway). Transactions that queue events take it before they read the streams, and so do
/// those that delete or disable a stream: events follow commit order, and never land on a
/// stream deleted or disabled meanwhile.
pub fn lock_outbox(conn: &mut DbConn) -> QueryResult<()> {
    if let DbConn::Postgres(pg) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({OUTBOX_LOCK})")).execute(pg)?;
    }
    Ok(())
}

/// Queues `events` in the caller's transaction, which holds [`lock_outbox`].
pub fn insert_events(conn: &mut DbConn, events: &[NewEvent]) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    super::on_backend!(conn, |conn| diesel::insert_into(ssf_events::table).values(events).execute(conn)).map(drop)
}

/// Up to `limit` events queued for stream `stream_id`, oldest first.
pub fn queued(conn: &mut DbConn, stream_id: &str, limit: i64) -> QueryResult<Vec<EventRow>> {
    ssf_events::table
        .filter(ssf_events::stream_id.eq(stream_id))
        .order(ssf_events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
}

/// Deletes the events of stream `stream_id` named by `jtis` (acknowledged, or refused by the
/// receiver); answers how many there were.
pub fn remove_events(conn: &mut DbConn, stream_id: &str, jtis: &[String]) -> QueryResult<usize> {
    if jtis.is_empty() {
        return Ok(0);
    }
    diesel::delete(ssf_events::table.filter(ssf_events::stream_id.eq(stream_id)).filter(ssf_events::jti.eq_any(jtis)))
        .execute(conn)
}

/// Deletes event `id` (pushed and accepted); whether it was still queued.
pub fn remove_event(conn: &mut DbConn, id: i32) -> QueryResult<bool> {
    Ok(diesel::delete(ssf_events::table.find(id)).execute(conn)? == 1)
}

/// Deletes events queued before `cutoff` (retention); answers how many.
pub fn drop_older_than(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(ssf_events::table.filter(ssf_events::created_at.lt(cutoff))).execute(conn)
}

/// When the oldest queued event was queued.
pub fn oldest_queued(conn: &mut DbConn) -> QueryResult<Option<NaiveDateTime>> {
    ssf_events::table.select(diesel::dsl::min(ssf_events::created_at)).first(conn)
}

/// Push streams with events to push at `now`: enabled, not backing off, not leased by another
/// instance, their client not disabled.
pub fn due_push_streams(conn: &mut DbConn, push_method: &str, now: NaiveDateTime) -> QueryResult<Vec<String>> {
    let has_events = diesel::dsl::exists(ssf_events::table.filter(ssf_events::stream_id.eq(ssf_streams::stream_id)));
    ssf_streams::table
        .inner_join(clients::table)
        .filter(ssf_streams::delivery_method.eq(push_method))
        .filter(ssf_streams::status.eq("enabled"))
        .filter(clients::disabled.eq(false))
        .filter(ssf_streams::push_not_before.is_null().or(ssf_streams::push_not_before.le(now)))
        .filter(has_events)
        .select(ssf_streams::stream_id)
        .load(conn)
}

/// Takes the push lease of stream `stream_id` until `until` under `token`, unless another
/// instance holds it (or the stream is backing off after a failure); answers the stream if this caller got it. The conditional update is the
/// lock: on PostgreSQL a concurrent one waits for this row and then finds the lease taken.
pub fn lease_for_push(
    conn: &mut DbConn,
    stream_id: &str,
    token: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<Option<StreamRow>> {
    let leased = diesel::update(
        ssf_streams::table
            .find(stream_id)
            .filter(ssf_streams::push_not_before.is_null().or(ssf_streams::push_not_before.le(now))),
    )
    .set((ssf_streams::push_lease_token.eq(token), ssf_streams::push_not_before.eq(until)))
    .execute(conn)?;
    if leased == 0 {
        return Ok(None);
    }
    ssf_streams::table.find(stream_id).select(StreamRow::as_select()).first(conn).optional()
}

/// How a push round ended, for the stream's status.
pub enum PushOutcome<'a> {
    /// Everything pushed was accepted (or there was nothing left).
    Succeeded,
    /// A push failed: `error` (for the status), retry from `retry_at`.
    Failed { error: &'a str, retry_at: NaiveDateTime },
}

/// Ends the push lease `token` of stream `stream_id`, recording how the round went.
pub fn release_push_lease(conn: &mut DbConn, stream_id: &str, token: &str, outcome: PushOutcome) -> QueryResult<()> {
    let held = ssf_streams::table.find(stream_id).filter(ssf_streams::push_lease_token.eq(token));
    let released = ssf_streams::push_lease_token.eq(None::<String>);
    match outcome {
        PushOutcome::Succeeded => diesel::update(held)
            .set((released, ssf_streams::push_failures.eq(0), ssf_streams::push_not_before.eq(None::<NaiveDateTime>)))
            .execute(conn),
        PushOutcome::Failed { error, retry_at } => diesel::update(held)
            .set((
                released,
                ssf_streams::push_failures.eq(ssf_streams::push_failures + 1),
                ssf_streams::push_last_error.eq(error),
                ssf_streams::push_not_before.eq(retry_at),
            ))
            .execute(conn),
    }
    .map(drop)
}
