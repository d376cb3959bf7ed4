//! The Shared Signals transmitter's HTTP side (OpenID SSF 1.0): `/.well-known/ssf-configuration`,
//! stream management at `/ssf/stream` (§8.1.1), `/ssf/status` (§8.1.2), `/ssf/verify` (§8.1.4)
//! and RFC 8936 polling at each stream's `/ssf/poll/{stream_id}`. Receivers authenticate with a
//! client-credentials access token holding scope `ssf`.

use super::errors::{
    AppError, BodyErrors, ConflictError, DatabaseErrors, ErrorBody, NotFoundError, SsfReceiverError, TokenErrors,
};
use super::extract::{AuthenticatedUser, JsonBody, StrictQuery};
use crate::db::ssf::StreamRow;
use crate::service::Services;
use crate::service::ssf::poll::{self, PollRequest, PollResponse, SetError};
use crate::service::ssf::streams::{
    self, Delivery, EchoedProperties, MIN_VERIFICATION_INTERVAL_SECS, StreamProperties, StreamStatus,
};
use crate::service::ssf::{POLL_METHOD, PUSH_METHOD, push};
use crate::tokens::EventType;
use actix_web::HttpResponse;
use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::web::{Data, Path};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The issuer URL without a trailing slash, to build endpoint URLs on.
fn base(services: &Services) -> &str {
    services.issuer.issuer.trim_end_matches('/')
}

/// `GET /.well-known/ssf-configuration`: the transmitter's metadata (SSF §7.1).
#[utoipa::path(
    get,
    path = "/.well-known/ssf-configuration",
    operation_id = "get_ssf_configuration",
    tag = "shared signals",
    responses((status = 200, description = "SSF transmitter configuration metadata", body = serde_json::Value))
)]
pub async fn configuration(services: Data<Services>) -> HttpResponse {
    let base = base(&services);
    super::well_known::metadata_document(&serde_json::json!({
        "spec_version": "1_0",
        "issuer": services.issuer.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "delivery_methods_supported": [PUSH_METHOD, POLL_METHOD],
        "configuration_endpoint": format!("{base}/ssf/stream"),
        "status_endpoint": format!("{base}/ssf/status"),
        "verification_endpoint": format!("{base}/ssf/verify"),
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "default_subjects": "ALL",
    }))
}

/// How a stream's SETs are delivered. Poll: `endpoint_url` is ours (where to poll). Push: the
/// receiver's `endpoint_url` and, optionally, the `authorization_header` to send there — stored
/// encrypted and never returned.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeliveryInput {
    /// `urn:ietf:rfc:8936` (poll) or `urn:ietf:rfc:8935` (push).
    method: String,
    /// Push: the receiver's https URL. Poll: ignored (ours).
    endpoint_url: Option<String>,
    /// Push only: the `Authorization` value to send with each SET.
    authorization_header: Option<String>,
}

/// A stream configuration as a receiver sends it: the receiver-supplied properties, `stream_id`
/// for an update or replacement, and optionally transmitter-supplied ones read before (which
/// must then match).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct StreamInput {
    /// Update and replace: the stream (or `?stream_id=`).
    stream_id: Option<String>,
    /// Default (create, replace): poll.
    delivery: Option<DeliveryInput>,
    /// Event type URIs; default (create, replace): every type supported. Unsupported types are
    /// not delivered.
    events_requested: Option<Vec<String>>,
    description: Option<String>,
    iss: Option<String>,
    /// A string or an array of strings.
    #[schema(value_type = Option<Object>)]
    aud: Option<Value>,
    events_supported: Option<Vec<String>>,
    events_delivered: Option<Vec<String>>,
    min_verification_interval: Option<i64>,
}

impl StreamInput {
    fn properties(&mut self) -> Result<StreamProperties, AppError> {
        let delivery = match self.delivery.take() {
            None => None,
            Some(delivery) if delivery.method == POLL_METHOD => {
                if delivery.authorization_header.is_some() {
                    return Err(invalid("delivery.authorization_header applies to push delivery only"));
                }
                Some(Delivery::Poll)
            }
            Some(delivery) if delivery.method == PUSH_METHOD => Some(Delivery::Push {
                endpoint_url: delivery
                    .endpoint_url
                    .ok_or_else(|| invalid("push delivery needs delivery.endpoint_url"))?,
                authorization_header: delivery.authorization_header.map(SecretString::from),
            }),
            Some(_) => {
                return Err(invalid(format!("delivery.method: supported are {POLL_METHOD} and {PUSH_METHOD}")));
            }
        };
        Ok(StreamProperties {
            delivery,
            events_requested: self.events_requested.take(),
            description: self.description.take(),
        })
    }

    fn echoed(&mut self) -> Result<EchoedProperties, AppError> {
        let aud = match self.aud.take() {
            None => None,
            Some(Value::String(aud)) => Some(vec![aud]),
            Some(Value::Array(values)) => Some(
                values
                    .into_iter()
                    .map(|value| value.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("aud: a string or an array of strings"))?,
            ),
            Some(_) => return Err(invalid("aud: a string or an array of strings")),
        };
        Ok(EchoedProperties {
            iss: self.iss.take(),
            aud,
            events_supported: self.events_supported.take(),
            events_delivered: self.events_delivered.take(),
            min_verification_interval: self.min_verification_interval.take(),
        })
    }
}

fn invalid(message: impl Into<String>) -> AppError {
    AppError::bad_request("invalid_request", message)
}

/// `delivery` of a stream configuration.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    method: String,
    /// Poll: where to poll. Push: where SETs are sent.
    endpoint_url: Option<String>,
}

/// A stream configuration (SSF §8.1.1). A push stream's `authorization_header` is never shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamConfiguration {
    stream_id: String,
    iss: String,
    /// The receiver's client id.
    aud: String,
    events_supported: Vec<&'static str>,
    events_requested: Vec<String>,
    events_delivered: Vec<String>,
    delivery: DeliveryView,
    /// Seconds between two verification requests.
    min_verification_interval: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

fn configuration_of(services: &Services, stream: StreamRow) -> StreamConfiguration {
    let words = |list: &str| list.split_ascii_whitespace().map(String::from).collect();
    let endpoint_url = if stream.delivery_method == POLL_METHOD {
        Some(format!("{}/ssf/poll/{}", base(services), stream.stream_id))
    } else {
        stream.push_endpoint
    };
    StreamConfiguration {
        iss: services.issuer.issuer.clone(),
        aud: stream.client_id,
        events_supported: EventType::SUPPORTED.iter().map(|event| event.uri()).collect(),
        events_requested: words(&stream.events_requested),
        events_delivered: words(&stream.events_delivered),
        delivery: DeliveryView { method: stream.delivery_method, endpoint_url },
        min_verification_interval: MIN_VERIFICATION_INTERVAL_SECS,
        description: stream.description,
        stream_id: stream.stream_id,
    }
}

fn no_store(mut response: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    response.insert_header(CacheControl(vec![CacheDirective::NoStore]));
    response
}

/// `?stream_id=`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The stream (the caller's).
    stream_id: Option<String>,
}

/// `POST /ssf/stream` → 201: creates the caller's stream (one per receiver: a second → 409).
#[utoipa::path(
    post,
    path = "/ssf/stream",
    operation_id = "create_ssf_stream",
    tag = "shared signals",
    request_body = StreamInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "the new stream's configuration", body = StreamConfiguration),
        SsfReceiverError,
        BodyErrors,
        TokenErrors,
        ConflictError,
        DatabaseErrors,
    )
)]
pub async fn create_stream(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    JsonBody(mut body): JsonBody<StreamInput>,
) -> Result<HttpResponse, AppError> {
    let stream = streams::create(&services, &claims, body.properties()?).await?;
    Ok(no_store(HttpResponse::Created()).json(configuration_of(&services, stream)))
}

/// `GET /ssf/stream[?stream_id=]`: the stream named, or an array of the caller's streams.
#[utoipa::path(
    get,
    path = "/ssf/stream",
    operation_id = "get_ssf_stream",
    tag = "shared signals",
    params(StreamQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "with `stream_id`: that stream's configuration; without: an array of the caller's (at most one)", body = StreamConfiguration),
        (status = 400, description = "unknown query parameter", body = ErrorBody),
        SsfReceiverError,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn read_stream(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<StreamQuery>,
) -> Result<HttpResponse, AppError> {
    let found = streams::read(&services, &claims, query.stream_id.as_deref()).await?;
    let mut configurations: Vec<_> = found.into_iter().map(|stream| configuration_of(&services, stream)).collect();
    Ok(match (query.stream_id, configurations.pop()) {
        (Some(_), Some(configuration)) => no_store(HttpResponse::Ok()).json(configuration),
        (_, last) => no_store(HttpResponse::Ok()).json(last.into_iter().collect::<Vec<_>>()),
    })
}

/// The stream an update names: in the body (SSF) or the query, the same if in both.
fn stream_to_change(query: StreamQuery, body: &StreamInput) -> Result<String, AppError> {
    match (query.stream_id, body.stream_id.clone()) {
        (Some(query), Some(body)) if query != body => Err(invalid("stream_id differs between query and body")),
        (Some(id), _) | (None, Some(id)) => Ok(id),
        (None, None) => Err(invalid("stream_id is required")),
    }
}

async fn change_stream(
    services: Data<Services>,
    claims: crate::tokens::AccessClaims,
    query: StreamQuery,
    mut body: StreamInput,
    replace: bool,
) -> Result<HttpResponse, AppError> {
    let stream_id = stream_to_change(query, &body)?;
    let (properties, echoed) = (body.properties()?, body.echoed()?);
    let stream = streams::change(&services, &claims, &stream_id, properties, echoed, replace).await?;
    Ok(no_store(HttpResponse::Ok()).json(configuration_of(&services, stream)))
}

/// `PATCH /ssf/stream`: changes the receiver-supplied properties given; the others stay.
#[utoipa::path(
    patch,
    path = "/ssf/stream",
    operation_id = "update_ssf_stream",
    tag = "shared signals",
    params(StreamQuery),
    request_body = StreamInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the updated configuration", body = StreamConfiguration),
        SsfReceiverError,
        BodyErrors,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn update_stream(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<StreamQuery>,
    JsonBody(body): JsonBody<StreamInput>,
) -> Result<HttpResponse, AppError> {
    change_stream(services, claims, query, body, false).await
}

/// `PUT /ssf/stream`: replaces the receiver-supplied properties (those left out: defaults).
#[utoipa::path(
    put,
    path = "/ssf/stream",
    operation_id = "replace_ssf_stream",
    tag = "shared signals",
    params(StreamQuery),
    request_body = StreamInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the replaced configuration", body = StreamConfiguration),
        SsfReceiverError,
        BodyErrors,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn replace_stream(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<StreamQuery>,
    JsonBody(body): JsonBody<StreamInput>,
) -> Result<HttpResponse, AppError> {
    change_stream(services, claims, query, body, true).await
}

/// `DELETE /ssf/stream?stream_id=` → 204: the stream and its queued events are gone.
#[utoipa::path(
    delete,
    path = "/ssf/stream",
    operation_id = "delete_ssf_stream",
    tag = "shared signals",
    params(StreamQuery),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted, with its queue"),
        (status = 400, description = "no stream_id", body = ErrorBody),
        SsfReceiverError,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn delete_stream(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<StreamQuery>,
) -> Result<HttpResponse, AppError> {
    let stream_id = query.stream_id.ok_or_else(|| invalid("stream_id is required"))?;
    streams::delete(&services, &claims, &stream_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A stream's status (SSF §8.1.2), and for a push stream how delivery is going.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StreamStatusView {
    stream_id: String,
    /// `enabled`, `paused` or `disabled`.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Push streams: consecutive failed pushes (0 while pushes succeed).
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_failures: Option<i32>,
    /// Push streams: the last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_delivery_error: Option<String>,
    /// Push streams that are failing: when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_delivery_attempt_at: Option<DateTime<Utc>>,
}

fn status_of(stream: StreamRow) -> StreamStatusView {
    let is_push = stream.delivery_method == PUSH_METHOD;
    StreamStatusView {
        next_delivery_attempt_at: push::retry_at(&stream),
        delivery_failures: is_push.then_some(stream.push_failures),
        last_delivery_error: stream.push_last_error.filter(|_| is_push),
        stream_id: stream.stream_id,
        status: stream.status,
        reason: stream.status_reason,
    }
}

/// `GET /ssf/status?stream_id=`.
#[utoipa::path(
    get,
    path = "/ssf/status",
    operation_id = "get_ssf_stream_status",
    tag = "shared signals",
    params(StreamQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the stream's status", body = StreamStatusView),
        (status = 400, description = "no stream_id", body = ErrorBody),
        SsfReceiverError,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn read_status(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    StrictQuery(query): StrictQuery<StreamQuery>,
) -> Result<HttpResponse, AppError> {
    let stream_id = query.stream_id.ok_or_else(|| invalid("stream_id is required"))?;
    let stream = streams::status(&services, &claims, &stream_id).await?;
    Ok(no_store(HttpResponse::Ok()).json(status_of(stream)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct StatusInput {
    stream_id: String,
    /// `enabled`, `paused` (events are held) or `disabled` (queued events are dropped).
    status: String,
    reason: Option<String>,
}

/// `POST /ssf/status`: sets the stream's status.
#[utoipa::path(
    post,
    path = "/ssf/status",
    operation_id = "set_ssf_stream_status",
    tag = "shared signals",
    request_body = StatusInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the stream's new status", body = StreamStatusView),
        SsfReceiverError,
        BodyErrors,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn set_status(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    JsonBody(body): JsonBody<StatusInput>,
) -> Result<HttpResponse, AppError> {
    let status = StreamStatus::parse(&body.status).ok_or_else(|| invalid("status: enabled, paused or disabled"))?;
    let stream = streams::set_status(&services, &claims, &body.stream_id, status, body.reason).await?;
    Ok(no_store(HttpResponse::Ok()).json(status_of(stream)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct VerificationInput {
    stream_id: String,
    /// Echoed in the verification event.
    state: Option<String>,
}

/// `POST /ssf/verify` → 204: a verification event is queued on the stream.
#[utoipa::path(
    post,
    path = "/ssf/verify",
    operation_id = "verify_ssf_stream",
    tag = "shared signals",
    request_body = VerificationInput,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "a verification event is queued"),
        SsfReceiverError,
        (status = 429, description = "sooner than min_verification_interval after the last (Retry-After)", body = ErrorBody),
        BodyErrors,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn verify(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    JsonBody(body): JsonBody<VerificationInput>,
) -> Result<HttpResponse, AppError> {
    streams::verify(&services, &claims, &body.stream_id, body.state).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A receiver's report of a SET it refused (RFC 8936 §2.4.4).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetErrorInput {
    /// A SET error code (RFC 8935 §2.4), e.g. `invalid_key`.
    err: String,
    description: Option<String>,
}

/// A poll (RFC 8936 §2.1).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollInput {
    /// `jti`s of SETs received: they are not sent again.
    #[serde(default)]
    ack: Vec<String>,
    /// SETs refused, by `jti`: not sent again either.
    #[serde(default, rename = "setErrs")]
    set_errs: BTreeMap<String, SetErrorInput>,
    /// The most SETs to return (0: acknowledge only; at most 1000).
    #[schema(minimum = 0)]
    max_events: Option<u32>,
    /// `false` (default): wait up to 10 s for a SET when none is queued.
    #[serde(default)]
    return_immediately: bool,
}

/// A poll's answer (RFC 8936 §2.2).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PollOutput {
    /// `{jti: SET}`, members in the order of commit.
    #[schema(value_type = Object)]
    sets: OrderedSets,
    more_available: bool,
}

/// `sets` written as a JSON object whose members keep the order of commit (a map type would
/// sort them by `jti`).
pub struct OrderedSets(Vec<(String, String)>);

impl Serialize for OrderedSets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (jti, set) in &self.0 {
            map.serialize_entry(jti, set)?;
        }
        map.end()
    }
}

impl From<PollResponse> for PollOutput {
    fn from(response: PollResponse) -> Self {
        Self { sets: OrderedSets(response.sets), more_available: response.more_available }
    }
}

/// `POST /ssf/poll/{stream_id}` (RFC 8936): acknowledges, then answers the oldest SETs not yet
/// acknowledged, waiting up to 10 s for one unless `returnImmediately`.
#[utoipa::path(
    post,
    path = "/ssf/poll/{stream_id}",
    operation_id = "poll_ssf_stream",
    tag = "shared signals",
    params(("stream_id" = String, Path, description = "the caller's stream")),
    request_body = PollInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "SETs, oldest first", body = PollOutput),
        SsfReceiverError,
        BodyErrors,
        TokenErrors,
        NotFoundError,
        DatabaseErrors,
    )
)]
pub async fn poll(
    services: Data<Services>,
    AuthenticatedUser(claims): AuthenticatedUser,
    stream_id: Path<String>,
    JsonBody(body): JsonBody<PollInput>,
) -> Result<HttpResponse, AppError> {
    let request = PollRequest {
        ack: body.ack,
        set_errors: body
            .set_errs
            .into_iter()
            .map(|(jti, error)| SetError { jti, err: error.err, description: error.description })
            .collect(),
        max_events: body.max_events,
        return_immediately: body.return_immediately,
    };
    let response = poll::poll(&services, &claims, &stream_id, request).await?;
    Ok(no_store(HttpResponse::Ok()).json(PollOutput::from(response)))
}
