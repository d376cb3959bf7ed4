//! The one error type of the HTTP boundary. Every failure a handler can meet becomes an
//! [`AppError`], which answers with API.md's JSON envelope [`ErrorBody`]. The service layer's
//! typed errors are mapped to responses here, in one place. 5xx bodies never describe the
//! cause; the log does.

use crate::db::UniqueField;
use crate::domain::InvalidValue;
use crate::key_schedule::RotationRefused;
use crate::service::Failure;
use crate::service::account::AccountError;
use crate::service::authors::AuthorError;
use crate::service::clients::ClientError;
use crate::service::keys::RingChangeError;
use crate::service::oauth::OAuthError;
use crate::service::sessions::{IntrospectError, LoginError, LogoutError, RefreshError};
use crate::service::ssf::SsfError;
use crate::service::users::UserError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};

/// The realm in every `WWW-Authenticate` challenge.
pub const REALM: &str = "library-api";

/// Why a request is unauthenticated; decides the `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unauthorized {
    /// Login failed: wrong name or password (one answer for both).
    InvalidCredentials,
    /// No access token was sent (RFC 6750 §3.1: no error code in the challenge).
    MissingToken,
    /// A token was sent and is not acceptable.
    InvalidToken,
    /// OAuth client authentication failed (RFC 6749 §5.2 `invalid_client`).
    InvalidClient,
    /// A password change named a wrong current password: `invalid_credentials`, as a failed
    /// login, with the same challenge.
    WrongPassword,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("unauthorized: {0:?}")]
    Unauthorized(Unauthorized),
    #[error("{0}")]
    Forbidden(&'static str),
    /// 403 for a token or client that lacks a scope the operation needs (RFC 6750 §3.1).
    #[error("{0}")]
    InsufficientScope(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: &'static str },
    /// 409 for an operation that will be allowed later; `Retry-After` says when.
    #[error("{message}")]
    TooSoon { code: &'static str, message: String, retry_after_secs: i64 },
    #[error("too many failed attempts; try again later")]
    TooManyRequests { retry_after_secs: i64 },
    /// 429 for a request made sooner than allowed after the last one (not a failure count).
    #[error("{message}")]
    RateLimited { message: &'static str, retry_after_secs: i64 },
    #[error("request body larger than 64 KiB")]
    PayloadTooLarge,
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error(transparent)]
    Unprocessable(#[from] InvalidValue),
    /// A dependency is down or overloaded; the string is for the log only.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the string is for the log only.
    #[error("internal: {0}")]
    Internal(String),
}

/// The body of every error response (API.md "Errors"; RFC 6749 §5.2 for OAuth errors), and
/// its OpenAPI schema. `error_description` and `message` hold the same text: OAuth clients read
/// the first, the seed's clients the second, so one envelope serves both.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// snake_case code, e.g. `invalid_token`, `invalid_grant`.
    pub error: String,
    /// For humans (RFC 6749 §5.2).
    pub error_description: String,
    /// For humans (the same text).
    pub message: String,
}

impl ErrorBody {
    fn new(error: &str, message: String) -> Self {
        Self { error: error.to_string(), error_description: message.clone(), message }
    }
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    /// The 409 for a unique value that is already taken.
    pub fn conflict(field: UniqueField) -> Self {
        let (code, message) = match field {
            UniqueField::UserName => ("name_taken", "that name is already registered"),
            UniqueField::AuthorName => ("author_taken", "an author with that name already exists"),
            UniqueField::AuthorBook => ("book_taken", "an author with that book already exists"),
            UniqueField::Other => ("conflict", "conflicts with an existing record"),
        };
        Self::Conflict { code, message }
    }

    /// The snake_case code of the envelope.
    pub fn code(&self) -> &str {
        match self {
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } | Self::TooSoon { code, .. } => code,
            Self::Unauthorized(Unauthorized::InvalidCredentials | Unauthorized::WrongPassword) => "invalid_credentials",
            Self::Unauthorized(Unauthorized::MissingToken) => "missing_token",
            Self::Unauthorized(Unauthorized::InvalidToken) => "invalid_token",
            Self::Unauthorized(Unauthorized::InvalidClient) => "invalid_client",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::TooManyRequests { .. } => "too_many_attempts",
            Self::RateLimited { .. } => "too_many_requests",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unprocessable(invalid) => invalid.code,
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Unauthorized(Unauthorized::InvalidCredentials) => "wrong name or password".into(),
            Self::Unauthorized(Unauthorized::WrongPassword) => "the current password is wrong".into(),
            Self::Unauthorized(Unauthorized::MissingToken) => {
                "an access token is required (Authorization: Bearer)".into()
            }
            Self::Unauthorized(Unauthorized::InvalidToken) => "the access token is invalid, expired or revoked".into(),
            Self::Unauthorized(Unauthorized::InvalidClient) => {
                "client authentication failed (unknown client, wrong or missing secret, or disabled)".into()
            }
            Self::Unavailable(_) => "the service is temporarily unavailable; try again".into(),
            Self::Internal(_) => "internal error".into(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } | Self::TooSoon { .. } => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(cause) => log::error!("internal error: {cause}"),
            Self::Unavailable(cause) => log::warn!("unavailable: {cause}"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized(kind) => {
                response.insert_header((header::WWW_AUTHENTICATE, challenge(*kind)));
            }
            Self::TooSoon { retry_after_secs, .. }
            | Self::TooManyRequests { retry_after_secs }
            | Self::RateLimited { retry_after_secs, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody::new(self.code(), self.public_message()))
    }
}

fn challenge(kind: Unauthorized) -> String {
    match kind {
        Unauthorized::InvalidCredentials | Unauthorized::InvalidClient | Unauthorized::WrongPassword => {
            format!("Basic realm=\"{REALM}\"")
        }
        Unauthorized::MissingToken => format!("Bearer realm=\"{REALM}\""),
        Unauthorized::InvalidToken => format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
    }
}

impl From<Failure> for AppError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Unavailable(cause) => Self::Unavailable(cause),
            Failure::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<LoginError> for AppError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::InvalidCredentials => Self::Unauthorized(Unauthorized::InvalidCredentials),
            LoginError::Throttled { retry_after } => {
                Self::TooManyRequests { retry_after_secs: whole_seconds_up(retry_after) }
            }
            LoginError::Invalid(invalid) => Self::Unprocessable(invalid),
            LoginError::Failure(failure) => failure.into(),
        }
    }
}

/// The invalid_grant answer (RFC 6749 §5.2): what OAuth clients take as "log in again".
fn invalid_grant(message: &str) -> AppError {
    AppError::bad_request("invalid_grant", message)
}

impl From<RefreshError> for AppError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::InvalidGrant => {
                invalid_grant("the refresh token is invalid, expired, already used or revoked; log in again")
            }
            RefreshError::InvalidScope => Self::bad_request("invalid_scope", error.to_string()),
            RefreshError::Failure(failure) => failure.into(),
        }
    }
}

impl From<OAuthError> for AppError {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::InvalidClient => Self::Unauthorized(Unauthorized::InvalidClient),
            OAuthError::InvalidGrant => invalid_grant(
                "wrong username or password, or a refresh token that is invalid, expired, spent or revoked",
            ),
            OAuthError::UnauthorizedClient => Self::bad_request("unauthorized_client", error.to_string()),
            OAuthError::InvalidScope => Self::bad_request("invalid_scope", error.to_string()),
            OAuthError::Throttled { retry_after } => {
                Self::TooManyRequests { retry_after_secs: whole_seconds_up(retry_after) }
            }
            OAuthError::Failure(failure) => failure.into(),
        }
    }
}

impl From<IntrospectError> for AppError {
    fn from(error: IntrospectError) -> Self {
        match error {
            IntrospectError::Unauthenticated => Self::Unauthorized(Unauthorized::MissingToken),
            IntrospectError::InsufficientScope => {
                Self::InsufficientScope("introspection needs a confidential client with the `introspect` scope")
            }
            IntrospectError::Failure(failure) => failure.into(),
        }
    }
}

impl From<LogoutError> for AppError {
    fn from(error: LogoutError) -> Self {
        match error {
            LogoutError::NotAUser => Self::Forbidden("a service token has no user to log out everywhere"),
            LogoutError::Failure(failure) => failure.into(),
        }
    }
}

impl From<ClientError> for AppError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::NotFound => Self::NotFound("no such client"),
            ClientError::InvalidMetadata(message) => {
                Self::Unprocessable(InvalidValue { code: "invalid_client_metadata", message })
            }
            ClientError::BuiltIn => {
                Self::Conflict { code: "builtin_client", message: "the built-in client cannot be deleted or disabled" }
            }
            ClientError::Public => Self::Conflict { code: "public_client", message: "a public client has no secret" },
            ClientError::Failure(failure) => failure.into(),
        }
    }
}

impl From<UserError> for AppError {
    fn from(error: UserError) -> Self {
        match error {
            UserError::NotFound => Self::NotFound("no such user"),
            UserError::NameTaken => Self::conflict(UniqueField::UserName),
            UserError::Throttled { retry_after } => {
                Self::TooManyRequests { retry_after_secs: whole_seconds_up(retry_after) }
            }
            UserError::LastAdmin => {
                Self::Conflict { code: "last_admin", message: "the last admin cannot be demoted or deleted" }
            }
            UserError::NotACredential => Self::Unauthorized(Unauthorized::InvalidToken),
            UserError::NotAUser => Self::Forbidden("a service token cannot act as a user"),
            UserError::Failure(failure) => failure.into(),
        }
    }
}

impl From<AccountError> for AppError {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::NotAUser => Self::Forbidden("a service token cannot act as a user"),
            AccountError::NotACredential => Self::Unauthorized(Unauthorized::InvalidToken),
            AccountError::WrongPassword => Self::Unauthorized(Unauthorized::WrongPassword),
            AccountError::Throttled { retry_after } => {
                Self::TooManyRequests { retry_after_secs: whole_seconds_up(retry_after) }
            }
            AccountError::Invalid(invalid) => Self::Unprocessable(invalid),
            AccountError::NoSuchSession => Self::NotFound("no such session"),
            AccountError::NoSuchUser => Self::NotFound("no such user"),
            AccountError::Failure(failure) => failure.into(),
        }
    }
}

impl From<SsfError> for AppError {
    fn from(error: SsfError) -> Self {
        match error {
            SsfError::NotAReceiver => {
                Self::InsufficientScope("a client-credentials access token with scope `ssf` is required")
            }
            SsfError::NoSuchStream => Self::NotFound("no such stream"),
            SsfError::StreamExists => Self::Conflict {
                code: "stream_exists",
                message: "this receiver has a stream already (one per receiver): read, update or delete it",
            },
            SsfError::Invalid(message) => Self::bad_request("invalid_request", message),
            SsfError::VerifiedRecently { retry_after_secs } => Self::RateLimited {
                message: "verification requested sooner than min_verification_interval after the last",
                retry_after_secs,
            },
            SsfError::Failure(failure) => failure.into(),
        }
    }
}

impl From<AuthorError> for AppError {
    fn from(error: AuthorError) -> Self {
        match error {
            AuthorError::NotFound => Self::NotFound("no such author"),
            AuthorError::NotAllowed => Self::Forbidden("only the creator or an admin may change this author"),
            AuthorError::NotACredential => Self::Unauthorized(Unauthorized::InvalidToken),
            AuthorError::NotAUser => Self::Forbidden("a service token cannot act as a user"),
            AuthorError::Taken(field) => Self::conflict(field),
            AuthorError::Failure(failure) => failure.into(),
        }
    }
}

/// A wait in whole seconds, rounded up (for `Retry-After`).
fn whole_seconds_up(wait: chrono::Duration) -> i64 {
    (wait.num_milliseconds() + 999) / 1000
}

impl From<RingChangeError> for AppError {
    fn from(error: RingChangeError) -> Self {
        match error {
            RingChangeError::TooSoon(RotationRefused::NextTooYoung { earliest, wait }) => Self::TooSoon {
                code: "rotation_too_soon",
                message: format!(
                    "the next key was published too recently for every verifier to have it; rotation is possible from {}. \
                     For a compromised key use DELETE /admin/keys/{{kid}}",
                    earliest.to_rfc3339()
                ),
                retry_after_secs: whole_seconds_up(wait),
            },
            RingChangeError::UnknownKey => Self::NotFound("no key with that kid"),
            RingChangeError::Failure(failure) => failure.into(),
        }
    }
}

/// Gives responses the framework makes itself (unknown route, wrong method, …) the same JSON
/// envelope. Responses that already carry JSON pass through untouched.
pub fn json_envelope_for_framework_errors<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = response
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let status = response.status();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        status if status.is_server_error() => "internal_error",
        _ => "bad_request",
    };
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let body = serde_json::to_string(&ErrorBody::new(code, message)).unwrap_or_default();
    let (request, response) = response.into_parts();
    let mut response = response.set_body(BoxBody::new(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(request, response).map_into_right_body()))
}

/// The documented response of an error status: the [`ErrorBody`] envelope.
fn error_response(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(<ErrorBody as ToSchema>::name()))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build().into()
}

/// Declares a set of error responses that operations share in their OpenAPI `responses(…)`
/// (utoipa `IntoResponses`), so each status is described once.
macro_rules! error_responses {
    ($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? }) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                BTreeMap::from([$(($status.to_string(), error_response($description))),+])
            }
        }
    };
}

error_responses!(
    /// A JSON (or form) request body that could not be read.
    BodyErrors {
        "400" => "malformed request",
        "413" => "body over 64 KiB",
        "415" => "unsupported content type",
    }
);
error_responses!(
    /// Well-formed values the operation does not accept (names, passwords, author fields).
    InvalidValuesError { "422" => "invalid values" }
);
error_responses!(
    /// Operations that need an access token.
    TokenErrors { "401" => "missing or invalid token" }
);
error_responses!(
    /// Operations that use the database.
    DatabaseErrors { "503" => "database unavailable" }
);
error_responses!(
    /// Operations only some callers may perform.
    ForbiddenError { "403" => "not allowed" }
);
error_responses!(
    /// Operations on a resource named in the path.
    NotFoundError { "404" => "not found" }
);
error_responses!(
    /// Shared Signals receiver operations: only a client-credentials token with scope `ssf`.
    SsfReceiverError { "403" => "not a client-credentials token with scope `ssf`" }
);
error_responses!(
    /// Operations that may collide with a unique value.
    ConflictError { "409" => "conflict" }
);
