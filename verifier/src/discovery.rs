//! Finding the issuer's endpoints from its metadata: RFC 8414 (OAuth 2.0 Authorization Server
//! Metadata) for the JWKS and token endpoint, SSF 1.0 §7 for the stream management endpoint.

use crate::http::{self, FetchError};
use reqwest::Client;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// What the verifier needs of the authorization server metadata.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ServerMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: Option<String>,
}

/// What the revocation follower needs of the transmitter's metadata.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TransmitterMetadata {
    pub issuer: String,
    pub configuration_endpoint: String,
    pub status_endpoint: Option<String>,
}

/// The well-known URL `name` of `issuer`: inserted between the host and any path
/// (RFC 8414 §3.1, SSF 1.0 §7.2).
pub(crate) fn well_known(issuer: &str, name: &str) -> String {
    let issuer = issuer.trim_end_matches('/');
    let authority_start = issuer.find("://").map_or(0, |scheme_end| scheme_end + 3);
    match issuer[authority_start..].find('/') {
        Some(path_start) => {
            let (origin, path) = issuer.split_at(authority_start + path_start);
            format!("{origin}/.well-known/{name}{path}")
        }
        None => format!("{issuer}/.well-known/{name}"),
    }
}

/// Metadata documents that name their issuer.
pub(crate) trait NamesIssuer {
    fn issuer(&self) -> &str;
}

impl NamesIssuer for ServerMetadata {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl NamesIssuer for TransmitterMetadata {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// The authorization server metadata of `issuer` (RFC 8414).
pub(crate) async fn server_metadata(client: &Client, issuer: &str) -> Result<ServerMetadata, FetchError> {
    metadata(client, issuer, "oauth-authorization-server").await
}

/// The SSF transmitter metadata of `issuer` (SSF 1.0 §7).
pub(crate) async fn transmitter_metadata(client: &Client, issuer: &str) -> Result<TransmitterMetadata, FetchError> {
    metadata(client, issuer, "ssf-configuration").await
}

/// The well-known document `name` of `issuer`, whose `issuer` must be exactly `issuer`
/// (RFC 8414 §3.3, SSF 1.0 §7.2: otherwise the metadata must not be used).
async fn metadata<T: DeserializeOwned + NamesIssuer>(
    client: &Client,
    issuer: &str,
    name: &str,
) -> Result<T, FetchError> {
    let url = well_known(issuer, name);
    let metadata: T = http::json(http::send(client.get(&url), &url).await?, &url).await?;
    if metadata.issuer() != issuer {
        return Err(FetchError::invalid(&url, format!("names issuer {:?}, not {issuer:?}", metadata.issuer())));
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_go_between_host_and_path() {
        for (issuer, expected) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/.well-known/x"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/.well-known/x"),
            ("https://auth.example/tenant/a", "https://auth.example/.well-known/x/tenant/a"),
        ] {
            assert_eq!(well_known(issuer, "x"), expected, "{issuer}");
        }
    }
}
