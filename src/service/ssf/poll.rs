//! Poll delivery (RFC 8936): the receiver POSTs to its stream's `endpoint_url` with its
//! acknowledgements and gets the oldest SETs not yet acknowledged, waiting up to
//! [`LONG_POLL_LIMIT`] for one when it asks to. A SET is sent again in every poll until it is
//! acknowledged (or reported in `setErrs`): delivery is at least once, in commit order.

use super::streams::{StreamStatus, receiver};
use super::{POLL_METHOD, SsfError, signed_set};
use crate::db::ssf;
use crate::service::{Failure, Services};
use crate::tokens::AccessClaims;
use std::time::{Duration, Instant};

/// The longest a poll waits for an event (RFC 8936 §2.4 long polling).
pub const LONG_POLL_LIMIT: Duration = Duration::from_secs(10);
/// While waiting, the queue is read again this often even without a bell (events queued by
/// another instance, or by the command line).
const RECHECK: Duration = Duration::from_millis(500);
/// The most SETs in one answer (also when the receiver names no `maxEvents`; `moreAvailable`
/// says when more are queued).
pub const MAX_EVENTS: u32 = 1000;

/// A receiver's report of a SET it could not accept (RFC 8936 §2.3 `setErrs`).
#[derive(Debug, Clone)]
pub struct SetError {
    pub jti: String,
    pub err: String,
    pub description: Option<String>,
}

/// A poll request (RFC 8936 §2.1).
#[derive(Debug, Clone, Default)]
pub struct PollRequest {
    /// `jti`s of SETs the receiver accepted.
    pub ack: Vec<String>,
    /// SETs the receiver refused: removed like acknowledged ones, and counted as failures.
    pub set_errors: Vec<SetError>,
    /// `None`: [`MAX_EVENTS`]; 0: acknowledge only.
    pub max_events: Option<u32>,
    /// `false` (the default): wait up to [`LONG_POLL_LIMIT`] for a SET.
    pub return_immediately: bool,
}

/// A poll's answer (RFC 8936 §2.2): `(jti, SET)` in commit order.
#[derive(Debug, Clone, Default)]
pub struct PollResponse {
    pub sets: Vec<(String, String)>,
    pub more_available: bool,
}

/// Serves one poll of the caller's stream `stream_id`.
pub async fn poll(
    services: &Services,
    claims: &AccessClaims,
    stream_id: &str,
    request: PollRequest,
) -> Result<PollResponse, SsfError> {
    let client_id = receiver(claims)?;
    let max_events = request.max_events.unwrap_or(MAX_EVENTS).min(MAX_EVENTS);
    // Listening before the first read: a ring between that read and the wait is not missed.
    let mut bell = services.ssf.listen();
    acknowledge(services, &client_id, stream_id, &request).await?;
    if max_events == 0 {
        return Ok(PollResponse::default());
    }
    let deadline = Instant::now() + LONG_POLL_LIMIT;
    loop {
        bell.borrow_and_update();
        let (client, stream) = (client_id.clone(), stream_id.to_string());
        let queued = services
            .db
            .read(move |conn| {
                let Some(stream) = ssf::stream_of_client(conn, &client)?.filter(|own| own.stream_id == stream) else {
                    return Ok(None);
                };
                if StreamStatus::parse(&stream.status) != Some(StreamStatus::Enabled) {
                    return Ok(Some(Vec::new()));
                }
                ssf::queued(conn, &stream.stream_id, i64::from(max_events) + 1).map(Some)
            })
            .await?
            .ok_or(SsfError::NoSuchStream)?;
        if !queued.is_empty() {
            return Ok(sign(services, &client_id, queued, max_events as usize).await?);
        }
        let now = Instant::now();
        if request.return_immediately || now >= deadline {
            return Ok(PollResponse::default());
        }
        let wait = RECHECK.min(deadline - now);
        if let Ok(Err(_)) = actix_web::rt::time::timeout(wait, bell.changed()).await {
            // The bell is gone (shutting down): wait out the interval instead of spinning.
            actix_web::rt::time::sleep(wait).await;
        }
    }
}

/// Removes the SETs the request acknowledges or reports as refused, and counts them.
async fn acknowledge(
    services: &Services,
    client_id: &str,
    stream_id: &str,
    request: &PollRequest,
) -> Result<(), SsfError> {
    let (client, stream) = (client_id.to_string(), stream_id.to_string());
    let acked = request.ack.clone();
    let refused: Vec<String> = request.set_errors.iter().map(|error| error.jti.clone()).collect();
    let (acknowledged, refused_count) = services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            let own = ssf::stream_of_client(conn, &client)?
                .filter(|own| own.stream_id == stream)
                .ok_or(SsfError::NoSuchStream)?;
            if own.delivery_method != POLL_METHOD {
                // Its SETs are pushed: a poll would take them from under the push worker.
                return Err(SsfError::Invalid("this stream delivers by push, not by poll".into()));
            }
            Ok((ssf::remove_events(conn, &stream, &acked)?, ssf::remove_events(conn, &stream, &refused)?))
        })
        .await?;
    for error in &request.set_errors {
        // The receiver's words, cut short and escaped: they go to our log.
        let said = |text: &str| text.chars().take(200).collect::<String>();
        log::warn!(
            "SSF receiver {client_id} refused SET {:?}: {:?} {:?}",
            said(&error.jti),
            said(&error.err),
            said(error.description.as_deref().unwrap_or_default())
        );
    }
    let metrics = &services.metrics.ssf;
    metrics.delivered.with_label_values(&["poll"]).inc_by(acknowledged as u64);
    metrics.failures.with_label_values(&["poll"]).inc_by(refused_count as u64);
    Ok(())
}

/// Signs the first `max` of `queued` for audience `aud` off the async workers (one RSA
/// signature each).
async fn sign(
    services: &Services,
    aud: &str,
    mut queued: Vec<ssf::EventRow>,
    max: usize,
) -> Result<PollResponse, Failure> {
    let more_available = queued.len() > max;
    queued.truncate(max);
    let (issuer, aud) = (services.issuer.clone(), aud.to_string());
    let sets = actix_web::rt::task::spawn_blocking(move || {
        queued
            .iter()
            .map(|event| Ok((event.jti.clone(), signed_set(&issuer, &aud, event)?)))
            .collect::<Result<Vec<_>, Failure>>()
    })
    .await
    .map_err(|error| Failure::Internal(format!("signing SETs: {error}")))??;
    Ok(PollResponse { sets, more_available })
}
