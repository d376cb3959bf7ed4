//! The OAuth 2.0 token endpoint (RFC 6749 §3.2): the client is authenticated first (§2.3.1),
//! then the grant — `password` (§4.3), `refresh_token` (§6), `client_credentials` (§4.4) — is
//! checked against what the client may use, and its scope against the client's (§3.3).

use super::clients::{self, ClientCredentials, allows_grant, grant_scope};
use super::sessions::{self, LoginError, RefreshError, SessionClient, TokenPair};
use super::{Failure, Services};
use crate::domain::UserAgent;
use std::net::IpAddr;

/// A token request, parsed (the grant and its parameters).
#[derive(Clone)]
pub enum TokenRequest {
    Password { username: String, password: String, scope: Option<String> },
    RefreshToken { refresh_token: String, scope: Option<String> },
    ClientCredentials { scope: Option<String> },
}

/// Never prints a password or a refresh token.
impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest").field("grant_type", &self.grant_type()).finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// The `grant_type` of the request.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::Password { .. } => "password",
            Self::RefreshToken { .. } => "refresh_token",
            Self::ClientCredentials { .. } => "client_credentials",
        }
    }
}

/// Why no token was issued: RFC 6749 §5.2's errors, and throttling.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// Client authentication failed: unknown, disabled, wrong or missing secret.
    #[error("client authentication failed")]
    InvalidClient,
    /// Wrong username or password, or a refresh token that is invalid, expired, spent, revoked
    /// or another client's.
    #[error("the grant is invalid, expired or revoked")]
    InvalidGrant,
    /// The client may not use this grant type.
    #[error("this client may not use this grant type")]
    UnauthorizedClient,
    /// A scope the client (or the session) was not given.
    #[error("the requested scope is not granted to this client")]
    InvalidScope,
    /// Too many failed logins (a password grant), as for `/login`.
    #[error("too many failed attempts")]
    Throttled { retry_after: chrono::Duration },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<LoginError> for OAuthError {
    fn from(error: LoginError) -> Self {
        match error {
            // A password over 72 bytes cannot be anyone's: the same answer as a wrong one.
            LoginError::InvalidCredentials | LoginError::Invalid(_) => Self::InvalidGrant,
            LoginError::Throttled { retry_after } => Self::Throttled { retry_after },
            LoginError::Failure(failure) => Self::Failure(failure),
        }
    }
}

impl From<RefreshError> for OAuthError {
    fn from(error: RefreshError) -> Self {
        match error {
            RefreshError::InvalidGrant => Self::InvalidGrant,
            RefreshError::InvalidScope => Self::InvalidScope,
            RefreshError::Failure(failure) => Self::Failure(failure),
        }
    }
}

/// Issues tokens for `request` from the client `credentials` prove, at client address `address`;
/// a password grant's session keeps `user_agent`.
pub async fn token(
    services: &Services,
    credentials: ClientCredentials,
    request: TokenRequest,
    address: IpAddr,
    user_agent: Option<UserAgent>,
) -> Result<TokenPair, OAuthError> {
    let client = clients::authenticate(services, credentials).await?.ok_or(OAuthError::InvalidClient)?;
    if !allows_grant(&client, request.grant_type()) {
        return Err(OAuthError::UnauthorizedClient);
    }
    match request {
        TokenRequest::Password { username, password, scope } => {
            let scope = grant_scope(&client.scope, scope.as_deref()).ok_or(OAuthError::InvalidScope)?;
            let session_client = SessionClient { client_id: client.client_id, scope };
            Ok(sessions::login(services, &username, &password, address, session_client, user_agent).await?)
        }
        TokenRequest::RefreshToken { refresh_token, scope } => {
            Ok(sessions::refresh(services, &client.client_id, &refresh_token, scope.as_deref()).await?)
        }
        TokenRequest::ClientCredentials { scope } => {
            // Only a client that can keep a secret may act for itself (§4.4).
            if !client.confidential {
                return Err(OAuthError::UnauthorizedClient);
            }
            let scope = grant_scope(&client.scope, scope.as_deref()).ok_or(OAuthError::InvalidScope)?;
            Ok(sessions::issue_service_token(services, &client.client_id, scope)?)
        }
    }
}
