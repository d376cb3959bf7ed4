//! Push delivery (RFC 8935) and the outbox's housekeeping, in one background task per instance
//! ([`run`]). Each round it finds push streams with events due, takes a stream's lease (one
//! instance pushes a stream at a time: the lease is a conditional update of the stream's row),
//! and POSTs its SETs one by one, oldest first, each removed once the receiver accepted it. A
//! failure stops the stream's round and backs off exponentially (capped); the stream's status
//! shows the failures. It also drops events older than the retention and keeps the
//! oldest-event gauge.

use super::{PUSH_METHOD, signed_set};
use crate::db::ssf::{self, PushOutcome};
use crate::service::{Failure, Services};
use actix_web::http::header;
use actix_web::web::Data;
use chrono::{DateTime, Duration as TimeDelta, Utc};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Rounds run at least this often (and at once when the bell rings).
const TICK: Duration = Duration::from_secs(1);
/// How often events past the retention are dropped.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How long a stream's push lease lasts; a round stops pushing well before it ends.
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// The longest one push may take (connect, send, answer).
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait after a failure; each further consecutive failure doubles it, up to the cap.
const FIRST_BACKOFF_MS: i64 = 1_000;
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1_000;
/// SETs read per query while pushing.
const BATCH: i64 = 50;

/// The push worker: runs until the process (or, in tests, the runtime) ends.
pub async fn run(services: Data<Services>) {
    let client = match reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .connect_timeout(PUSH_TIMEOUT)
        // The Authorization header is for the endpoint the receiver named, nowhere else.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("library-api/", env!("CARGO_PKG_VERSION"), " (SSF transmitter)"))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            log::error!("SSF push worker not started: {error}");
            return;
        }
    };
    let mut bell = services.ssf.listen();
    let mut last_sweep: Option<Instant> = None;
    loop {
        bell.borrow_and_update();
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
            drop_expired(&services).await;
            last_sweep = Some(Instant::now());
        }
        track_oldest(&services).await;
        if let Err(error) = push_due(&services, &client).await {
            log::warn!("SSF push round failed (will retry): {error}");
        }
        if let Ok(Err(_)) = actix_web::rt::time::timeout(TICK, bell.changed()).await {
            actix_web::rt::time::sleep(TICK).await;
        }
    }
}

/// Drops events older than the retention, and counts them.
async fn drop_expired(services: &Services) {
    let retention = TimeDelta::from_std(services.ssf.settings.event_retention).unwrap_or(TimeDelta::days(7));
    let cutoff = (services.clock.now() - retention).naive_utc();
    match services.db.write(move |conn| ssf::drop_older_than(conn, cutoff)).await {
        Ok(0) => {}
        Ok(dropped) => {
            log::warn!("dropped {dropped} SSF events older than the retention, never acknowledged");
            services.metrics.ssf.dropped.with_label_values(&["retention"]).inc_by(dropped as u64);
        }
        Err(error) => log::warn!("dropping expired SSF events failed (will retry): {error}"),
    }
}

/// Sets the age gauge of the oldest unacknowledged event.
async fn track_oldest(services: &Services) {
    if let Ok(oldest) = services.db.read(ssf::oldest_queued).await {
        let age = oldest.map_or(0, |at| (services.clock.now().naive_utc() - at).num_seconds().max(0));
        services.metrics.ssf.oldest_unacknowledged_seconds.set(age);
    }
}

/// Pushes every stream that has events due and whose lease this instance gets.
async fn push_due(services: &Services, client: &reqwest::Client) -> Result<(), Failure> {
    let now = services.clock.now().naive_utc();
    let due = services.db.read(move |conn| ssf::due_push_streams(conn, PUSH_METHOD, now)).await?;
    for stream_id in due {
        push_stream(services, client, &stream_id).await?;
    }
    Ok(())
}

/// One round of stream `stream_id`: under its lease, its queued SETs in order until the queue
/// is empty, a push fails, or the round has used half the lease.
async fn push_stream(services: &Services, client: &reqwest::Client, stream_id: &str) -> Result<(), Failure> {
    let token = Uuid::new_v4().to_string();
    let now = services.clock.now();
    let stream = {
        let (stream_id, token) = (stream_id.to_string(), token.clone());
        let (at, until) = (now.naive_utc(), (now + LEASE).naive_utc());
        services.db.write(move |conn| ssf::lease_for_push(conn, &stream_id, &token, at, until)).await?
    };
    let Some(stream) = stream else {
        return Ok(()); // another instance is pushing it
    };
    let outcome = push_queue(services, client, &stream).await;
    let failed_at = services.clock.now();
    let error = match &outcome {
        Ok(()) => None,
        Err(error) => {
            services.metrics.ssf.failures.with_label_values(&["push"]).inc();
            log::warn!("SSF push to stream {stream_id} failed: {error}");
            Some(error.clone())
        }
    };
    let retry_at = failed_at + backoff(stream.push_failures.saturating_add(1));
    let (stream_id, token) = (stream_id.to_string(), token.clone());
    services
        .db
        .write(move |conn| {
            let outcome = match &error {
                None => PushOutcome::Succeeded,
                Some(error) => PushOutcome::Failed { error, retry_at: retry_at.naive_utc() },
            };
            ssf::release_push_lease(conn, &stream_id, &token, outcome)
        })
        .await?;
    Ok(())
}

/// The wait after the `failures`-th consecutive failure: 1 s, 2 s, 4 s, … up to 5 min, plus up
/// to 10 % jitter so receivers coming back are not hit by every transmitter at once.
fn backoff(failures: i32) -> TimeDelta {
    let exponent = failures.saturating_sub(1).clamp(0, 20) as u32;
    let base = FIRST_BACKOFF_MS.saturating_mul(1 << exponent).min(MAX_BACKOFF_MS);
    let jitter = i64::from(getrandom::u32().unwrap_or(0)) % (base / 10 + 1);
    TimeDelta::milliseconds(base + jitter)
}

/// Pushes `stream`'s queue until it is empty; the first failure ends the round (its text is
/// what the stream's status shows).
async fn push_queue(services: &Services, client: &reqwest::Client, stream: &ssf::StreamRow) -> Result<(), String> {
    let endpoint = stream.push_endpoint.clone().ok_or("the stream has no push endpoint")?;
    let authorization = match &stream.push_authorization {
        Some(sealed) => Some(
            services
                .ssf
                .open_authorization(&stream.stream_id, sealed)
                .map_err(|_| "the stored authorization_header does not open under the master key".to_string())?,
        ),
        None => None,
    };
    let started = Instant::now();
    let round = (LEASE / 2).to_std().unwrap_or(Duration::from_secs(30));
    while started.elapsed() < round {
        let stream_id = stream.stream_id.clone();
        let batch = services
            .db
            .read(move |conn| ssf::queued(conn, &stream_id, BATCH))
            .await
            .map_err(|error| format!("reading the queue: {error}"))?;
        if batch.is_empty() {
            break;
        }
        for event in batch {
            let set = signed_set(&services.issuer, &stream.client_id, &event).map_err(|error| error.to_string())?;
            let mut request = client
                .post(&endpoint)
                .header(header::CONTENT_TYPE.as_str(), "application/secevent+jwt")
                .header(header::ACCEPT.as_str(), "application/json")
                .body(set);
            if let Some(value) = &authorization {
                request = request.header(header::AUTHORIZATION.as_str(), value.as_slice());
            }
            let answer = request.send().await.map_err(|error| describe(&error))?;
            let status = answer.status();
            if status.is_success() {
                services.metrics.ssf.delivered.with_label_values(&["push"]).inc();
            } else if status == reqwest::StatusCode::BAD_REQUEST {
                // RFC 8935 §2.3: the receiver refused this SET ({"err", "description"}); sending
                // it again would be refused again. It is dropped and counted.
                let body = answer.text().await.unwrap_or_default();
                log::warn!("SSF receiver refused SET {} on stream {}: {body:.200}", event.jti, stream.stream_id);
                services.metrics.ssf.failures.with_label_values(&["push"]).inc();
            } else {
                return Err(format!("the receiver answered HTTP {}", status.as_u16()));
            }
            let id = event.id;
            services
                .db
                .write(move |conn| ssf::remove_event(conn, id))
                .await
                .map_err(|error| format!("removing a delivered event: {error}"))?;
        }
    }
    Ok(())
}

/// A transport error as the stream's status shows it: its class only, so the status cannot be
/// used to probe what a push endpoint's network answers.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the receiver did not answer in time".into()
    } else if error.is_connect() {
        "could not connect to the receiver".into()
    } else {
        // Only the class of failure goes to the stream's status (a receiver reads it); the
        // details to our log.
        log::debug!("SSF push error: {error}");
        "the push request failed".into()
    }
}

/// When a failing stream is tried again, for its status.
pub fn retry_at(stream: &ssf::StreamRow) -> Option<DateTime<Utc>> {
    stream
        .push_not_before
        .filter(|_| stream.push_failures > 0 && stream.push_lease_token.is_none())
        .map(|at| at.and_utc())
}
