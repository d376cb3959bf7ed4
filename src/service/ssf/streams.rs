//! Stream management (SSF 1.0 §8.1): a receiver — a registered client acting for itself with
//! scope `ssf` — creates, reads, updates, replaces and deletes its one stream, reads and sets
//! its status, and asks for verification events. Another client's stream is "not found".

use super::events::{self, Event};
use super::{POLL_METHOD, PUSH_METHOD, SSF_SCOPE, SsfError};
use crate::db::{DbConn, ssf};
use crate::service::Services;
use crate::tokens::{AccessClaims, EventType, Subject};
use chrono::Duration;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

/// How often a receiver may ask for a verification event (`min_verification_interval`).
pub const MIN_VERIFICATION_INTERVAL_SECS: i64 = 5;
/// Bounds on what a receiver may store.
const MAX_EVENTS_REQUESTED: usize = 32;
const MAX_URI_LEN: usize = 2048;
const MAX_DESCRIPTION_LEN: usize = 1000;
const MAX_AUTHORIZATION_LEN: usize = 4096;
const MAX_REASON_LEN: usize = 1000;

/// How a stream's SETs reach the receiver.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// The receiver polls (RFC 8936) at the URL we give it.
    Poll,
    /// We push (RFC 8935) to `endpoint_url`, sending `authorization_header` when given.
    Push { endpoint_url: String, authorization_header: Option<SecretString> },
}

/// The receiver-supplied properties of a stream (SSF §8.1.1); `None` leaves one as it is
/// (update) or sets its default (create, replace).
#[derive(Debug, Clone, Default)]
pub struct StreamProperties {
    pub delivery: Option<Delivery>,
    /// Event type URIs; default: every type we support.
    pub events_requested: Option<Vec<String>>,
    pub description: Option<String>,
}

/// Transmitter-supplied properties a receiver sent back with an update or replacement: SSF
/// §8.1.1.3 lets it, if each matches the stream's value (else 400).
#[derive(Debug, Clone, Default)]
pub struct EchoedProperties {
    pub iss: Option<String>,
    pub aud: Option<Vec<String>>,
    pub events_supported: Option<Vec<String>>,
    pub events_delivered: Option<Vec<String>>,
    pub min_verification_interval: Option<i64>,
}

impl EchoedProperties {
    /// Whether every property given matches `stream` as issued by `issuer`.
    fn check(&self, issuer: &str, stream: &ssf::StreamRow) -> Result<(), SsfError> {
        let same_set = |given: &Option<Vec<String>>, expected: Vec<&str>| {
            given.as_ref().is_none_or(|given| {
                let mut given: Vec<&str> = given.iter().map(String::as_str).collect();
                let mut expected = expected;
                given.sort_unstable();
                given.dedup();
                expected.sort_unstable();
                given == expected
            })
        };
        let mismatched = if self.iss.as_ref().is_some_and(|iss| iss != issuer) {
            Some("iss")
        } else if !same_set(&self.aud, vec![stream.client_id.as_str()]) {
            Some("aud")
        } else if !same_set(&self.events_supported, EventType::SUPPORTED.iter().map(|event| event.uri()).collect()) {
            Some("events_supported")
        } else if !same_set(&self.events_delivered, stream.events_delivered.split_ascii_whitespace().collect()) {
            Some("events_delivered")
        } else if self.min_verification_interval.is_some_and(|given| given != MIN_VERIFICATION_INTERVAL_SECS) {
            Some("min_verification_interval")
        } else {
            None
        };
        match mismatched {
            Some(name) => {
                Err(SsfError::Invalid(format!("{name} is set by the transmitter and does not match the stream")))
            }
            None => Ok(()),
        }
    }
}

/// The status of a stream (SSF §8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Events are delivered.
    Enabled,
    /// Events are held and delivered once enabled again.
    Paused,
    /// Nothing is delivered or held: queued events are dropped.
    Disabled,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Enabled, Self::Paused, Self::Disabled].into_iter().find(|status| status.as_str() == text)
    }
}

/// The receiver a token speaks for: a client acting for itself (client credentials) with scope
/// `ssf`. User tokens, and client tokens without the scope, are refused.
pub fn receiver(claims: &AccessClaims) -> Result<String, SsfError> {
    match &claims.sub {
        Subject::Client(client_id) if *client_id == claims.client_id && claims.has_scope(SSF_SCOPE) => {
            Ok(client_id.clone())
        }
        _ => Err(SsfError::NotAReceiver),
    }
}

/// Creates the caller's stream (a second one is [`SsfError::StreamExists`]).
pub async fn create(
    services: &Services,
    claims: &AccessClaims,
    properties: StreamProperties,
) -> Result<ssf::StreamRow, SsfError> {
    let client_id = receiver(claims)?;
    let stream_id = Uuid::new_v4().to_string();
    let now = services.clock.now().naive_utc();
    let settings = settings_for(services, &stream_id, properties, None)?;
    let stream = ssf::StreamRow {
        stream_id,
        client_id,
        delivery_method: settings.delivery_method,
        push_endpoint: settings.push_endpoint,
        push_authorization: settings.push_authorization,
        events_requested: settings.events_requested,
        events_delivered: settings.events_delivered,
        description: settings.description,
        status: StreamStatus::Enabled.as_str().to_string(),
        status_reason: None,
        created_at: now,
        verified_at: None,
        push_failures: 0,
        push_last_error: None,
        push_not_before: None,
        push_lease_token: None,
    };
    let row = stream.clone();
    services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            if ssf::stream_of_client(conn, &row.client_id)?.is_some() {
                return Err(SsfError::StreamExists);
            }
            ssf::insert_stream(conn, &row).map_err(|error| match error {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => SsfError::StreamExists,
                // The client was deleted since its token was issued.
                DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => SsfError::NotAReceiver,
                other => other.into(),
            })
        })
        .await?;
    log::info!("SSF stream {} created for client {}", stream.stream_id, stream.client_id);
    Ok(stream)
}

/// The caller's streams: the one named `stream_id`, or all of them (at most one).
pub async fn read(
    services: &Services,
    claims: &AccessClaims,
    stream_id: Option<&str>,
) -> Result<Vec<ssf::StreamRow>, SsfError> {
    let client_id = receiver(claims)?;
    let stream = services.db.read(move |conn| ssf::stream_of_client(conn, &client_id)).await?;
    match stream_id {
        Some(wanted) => Ok(vec![stream.filter(|stream| stream.stream_id == wanted).ok_or(SsfError::NoSuchStream)?]),
        None => Ok(stream.into_iter().collect()),
    }
}

/// The caller's stream named `stream_id`, read in the caller's transaction.
fn own_stream(conn: &mut DbConn, client_id: &str, stream_id: &str) -> Result<ssf::StreamRow, SsfError> {
    ssf::stream_of_client(conn, client_id)?.filter(|stream| stream.stream_id == stream_id).ok_or(SsfError::NoSuchStream)
}

/// Changes the receiver-supplied properties of the caller's stream `stream_id`: those given
/// (update, PATCH), or all of them, defaults for those not given (replace, PUT: a property left
/// out goes back to its default, as at creation).
pub async fn change(
    services: &Services,
    claims: &AccessClaims,
    stream_id: &str,
    properties: StreamProperties,
    echoed: EchoedProperties,
    replace: bool,
) -> Result<ssf::StreamRow, SsfError> {
    let client_id = receiver(claims)?;
    let current = {
        let (client_id, stream_id) = (client_id.clone(), stream_id.to_string());
        services.db.read(move |conn| Ok(own_stream(conn, &client_id, &stream_id))).await??
    };
    echoed.check(&services.issuer.issuer, &current)?;
    let properties = if replace { properties } else { merged(properties, &current) };
    let settings = settings_for(services, stream_id, properties, Some(&current))?;
    let stream_id = stream_id.to_string();
    let changed = services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            own_stream(conn, &client_id, &stream_id)?;
            Ok(ssf::update_stream(conn, &stream_id, &settings)?)
        })
        .await?;
    services.ssf.ring();
    Ok(changed)
}

/// An update's properties: the given ones, the stream's own for the rest.
fn merged(mut given: StreamProperties, current: &ssf::StreamRow) -> StreamProperties {
    if given.events_requested.is_none() {
        given.events_requested = Some(current.events_requested.split_ascii_whitespace().map(String::from).collect());
    }
    if given.description.is_none() {
        given.description = current.description.clone();
    }
    given
}

/// The stored form of `properties` for stream `stream_id`, checked. A push delivery given
/// without an `authorization_header` keeps the stream's current one if the endpoint is the same
/// (the header is never read back, so a read-modify-write cannot resend it).
fn settings_for(
    services: &Services,
    stream_id: &str,
    properties: StreamProperties,
    current: Option<&ssf::StreamRow>,
) -> Result<ssf::StreamSettings, SsfError> {
    let delivery = match (properties.delivery, current) {
        (Some(delivery), _) => delivery,
        (None, Some(current)) if current.delivery_method == PUSH_METHOD => Delivery::Push {
            endpoint_url: current.push_endpoint.clone().unwrap_or_default(),
            authorization_header: None,
        },
        (None, _) => Delivery::Poll,
    };
    let (delivery_method, push_endpoint, push_authorization) = match delivery {
        Delivery::Poll => (POLL_METHOD.to_string(), None, None),
        Delivery::Push { endpoint_url, authorization_header } => {
            check_push_endpoint(&endpoint_url, services.ssf.settings.allow_http)?;
            let sealed = match authorization_header {
                Some(header) => {
                    check_authorization_header(header.expose_secret())?;
                    Some(services.ssf.seal_authorization(stream_id, header.expose_secret())?)
                }
                None => current
                    .filter(|current| current.push_endpoint.as_deref() == Some(endpoint_url.as_str()))
                    .and_then(|current| current.push_authorization.clone()),
            };
            (PUSH_METHOD.to_string(), Some(endpoint_url), sealed)
        }
    };
    let requested = match properties.events_requested {
        Some(requested) => checked_event_list(requested)?,
        None => EventType::SUPPORTED.iter().map(|event| event.uri().to_string()).collect(),
    };
    let delivered: Vec<&str> = EventType::SUPPORTED
        .iter()
        .map(|event| event.uri())
        .filter(|uri| requested.iter().any(|wanted| wanted == uri))
        .collect();
    if let Some(description) = &properties.description
        && description.chars().count() > MAX_DESCRIPTION_LEN
    {
        return Err(SsfError::Invalid(format!("description: at most {MAX_DESCRIPTION_LEN} characters")));
    }
    Ok(ssf::StreamSettings {
        delivery_method,
        push_endpoint,
        push_authorization,
        events_requested: requested.join(" "),
        events_delivered: delivered.join(" "),
        description: properties.description,
    })
}

/// `events_requested`: URIs without spaces, at most [`MAX_EVENTS_REQUESTED`], duplicates
/// dropped. Types we do not support are kept as requested and not delivered (SSF §8.1.1).
fn checked_event_list(requested: Vec<String>) -> Result<Vec<String>, SsfError> {
    if requested.len() > MAX_EVENTS_REQUESTED {
        return Err(SsfError::Invalid(format!("events_requested: at most {MAX_EVENTS_REQUESTED} event types")));
    }
    let mut list: Vec<String> = Vec::with_capacity(requested.len());
    for uri in requested {
        if uri.is_empty() || uri.len() > MAX_URI_LEN || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SsfError::Invalid("events_requested: each entry must be an event type URI".into()));
        }
        if !list.contains(&uri) {
            list.push(uri);
        }
    }
    Ok(list)
}

/// A push endpoint: an absolute `https` URL (`http` only with `SSF_ALLOW_HTTP`), no credentials
/// in it, no fragment.
fn check_push_endpoint(endpoint: &str, allow_http: bool) -> Result<(), SsfError> {
    let invalid = |why: &str| SsfError::Invalid(format!("delivery.endpoint_url: {why}"));
    if endpoint.len() > MAX_URI_LEN {
        return Err(invalid("too long"));
    }
    let url = reqwest::Url::parse(endpoint).map_err(|_| invalid("not an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(invalid("must be an https URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not hold credentials (use authorization_header)"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment"));
    }
    Ok(())
}

/// An `Authorization` header value: visible ASCII and spaces, bounded.
fn check_authorization_header(value: &str) -> Result<(), SsfError> {
    if value.is_empty()
        || value.len() > MAX_AUTHORIZATION_LEN
        || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(SsfError::Invalid(format!(
            "delivery.authorization_header: 1–{MAX_AUTHORIZATION_LEN} visible ASCII characters"
        )));
    }
    Ok(())
}

/// Deletes the caller's stream `stream_id` and every event queued for it.
pub async fn delete(services: &Services, claims: &AccessClaims, stream_id: &str) -> Result<(), SsfError> {
    let client_id = receiver(claims)?;
    let stream_id = stream_id.to_string();
    let dropped = services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            ssf::lock_outbox(conn)?;
            own_stream(conn, &client_id, &stream_id)?;
            Ok(ssf::delete_stream(conn, &stream_id)?)
        })
        .await?;
    services.metrics.ssf.dropped.with_label_values(&["deleted"]).inc_by(dropped as u64);
    Ok(())
}

/// The caller's stream `stream_id`, for its status.
pub async fn status(services: &Services, claims: &AccessClaims, stream_id: &str) -> Result<ssf::StreamRow, SsfError> {
    let mut streams = read(services, claims, Some(stream_id)).await?;
    streams.pop().ok_or(SsfError::NoSuchStream)
}

/// Sets the status of the caller's stream `stream_id`. Disabling drops what is queued
/// (SSF §8.1.2: a disabled stream holds nothing); enabling resumes delivery of what a pause held.
pub async fn set_status(
    services: &Services,
    claims: &AccessClaims,
    stream_id: &str,
    status: StreamStatus,
    reason: Option<String>,
) -> Result<ssf::StreamRow, SsfError> {
    let client_id = receiver(claims)?;
    if reason.as_ref().is_some_and(|reason| reason.chars().count() > MAX_REASON_LEN) {
        return Err(SsfError::Invalid(format!("reason: at most {MAX_REASON_LEN} characters")));
    }
    let stream_id = stream_id.to_string();
    let (stream, dropped) = services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            ssf::lock_outbox(conn)?;
            own_stream(conn, &client_id, &stream_id)?;
            let dropped = if status == StreamStatus::Disabled { ssf::drop_queue(conn, &stream_id)? } else { 0 };
            Ok((ssf::set_status(conn, &stream_id, status.as_str(), reason.as_deref())?, dropped))
        })
        .await?;
    services.metrics.ssf.dropped.with_label_values(&["disabled"]).inc_by(dropped as u64);
    log::info!("SSF stream {} is now {}", stream.stream_id, stream.status);
    services.ssf.ring();
    Ok(stream)
}

/// Queues a verification event (SSF §8.1.4) on the caller's stream `stream_id`, echoing
/// `state`; at most one per [`MIN_VERIFICATION_INTERVAL_SECS`]. A disabled stream takes none
/// (400: enable it first).
pub async fn verify(
    services: &Services,
    claims: &AccessClaims,
    stream_id: &str,
    state: Option<String>,
) -> Result<(), SsfError> {
    let client_id = receiver(claims)?;
    if state.as_ref().is_some_and(|state| state.len() > MAX_URI_LEN) {
        return Err(SsfError::Invalid(format!("state: at most {MAX_URI_LEN} bytes")));
    }
    let (stream_id, now, metrics) = (stream_id.to_string(), services.clock.now(), services.metrics.clone());
    let not_since = (now - Duration::seconds(MIN_VERIFICATION_INTERVAL_SECS)).naive_utc();
    services
        .db
        .transaction(move |conn| -> Result<_, SsfError> {
            let stream = own_stream(conn, &client_id, &stream_id)?;
            if StreamStatus::parse(&stream.status) == Some(StreamStatus::Disabled) {
                return Err(SsfError::Invalid("the stream is disabled: enable it to verify it".into()));
            }
            if !ssf::claim_verification(conn, &stream_id, not_since, now.naive_utc())? {
                return Err(SsfError::VerifiedRecently { retry_after_secs: MIN_VERIFICATION_INTERVAL_SECS });
            }
            events::record(conn, &metrics, &[Event::verification(&stream_id, state.as_deref())], now)?;
            Ok(())
        })
        .await?;
    services.ssf.ring();
    Ok(())
}
