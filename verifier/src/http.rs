//! The few HTTP calls the verifier makes to the issuer, with bounded bodies and timeouts.

use reqwest::{Client, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Metadata, JWKS and poll answers larger than this are refused (a poll answer of 100 SETs is
/// about 100 kB).
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How long one ordinary request to the issuer may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the issuer failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer: connection refused, timeout, TLS failure.
    #[error("{url}: {source}")]
    Transport {
        /// What was requested.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with an unexpected status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// What was requested.
        url: String,
        /// The status received.
        status: StatusCode,
    },
    /// An answer that is not the document expected.
    #[error("{url}: {reason}")]
    Invalid {
        /// What was requested.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl FetchError {
    pub(crate) fn invalid(url: &str, reason: impl Into<String>) -> Self {
        Self::Invalid { url: url.to_string(), reason: reason.into() }
    }
}

/// The client every request goes through: rustls, timeouts, no redirects (a verifier follows
/// the issuer's own URLs only).
pub(crate) fn client() -> Result<Client, FetchError> {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("library-api-verifier/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| FetchError::Transport { url: "(the HTTP client itself)".into(), source })
}

/// Sends `request` for `url` and returns the response, whatever its status.
pub(crate) async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<Response, FetchError> {
    request.send().await.map_err(|source| FetchError::Transport { url: url.to_string(), source })
}

/// The body of `response`, refused when larger than [`MAX_DOCUMENT_BYTES`].
pub(crate) async fn body(mut response: Response, url: &str) -> Result<Vec<u8>, FetchError> {
    if response.content_length().is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64) {
        return Err(FetchError::invalid(url, "document too large"));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|source| FetchError::Transport { url: url.to_string(), source })?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::invalid(url, "document too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The JSON body of a 2xx `response`.
pub(crate) async fn json<T: DeserializeOwned>(response: Response, url: &str) -> Result<T, FetchError> {
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status { url: url.to_string(), status });
    }
    let body = body(response, url).await?;
    serde_json::from_slice(&body).map_err(|error| FetchError::invalid(url, format!("not the JSON expected: {error}")))
}
