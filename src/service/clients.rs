//! Registered OAuth 2.0 clients (RFC 6749 §2): registration, listing, disabling, secret
//! rotation with a grace period, deletion (which ends every token and session of the client),
//! and client authentication (RFC 6749 §2.3.1: `client_secret_basic`, `client_secret_post`, and
//! `none` for public clients).

use super::revocation::{self, TokenScope};
use super::ssf::events::{self, SessionEnd};
use super::{Failure, Services, failures_pass_through};
use crate::db::clients::{self, ClientRow};
use crate::db::{DbConn, sessions};
use crate::metrics::Metrics;
use crate::tokens::{Subject, SubjectRevocation, generate_secret, secret_matches};
use chrono::{DateTime, NaiveDateTime, Utc};
use uuid::Uuid;

/// The grant types a client may be allowed (RFC 6749 §4.3, §6, §4.4).
pub const GRANT_TYPES: [&str; 3] = ["password", "refresh_token", "client_credentials"];
/// Scopes library-api itself checks: `introspect` (may introspect any token) and `ssf` (may
/// manage a Shared Signals stream). Any other scope is a label for downstream services.
pub const KNOWN_SCOPES: [&str; 2] = ["introspect", "ssf"];

/// Why a client operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no such client")]
    NotFound,
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("{0}")]
    InvalidMetadata(String),
    #[error("the built-in client cannot be deleted or disabled")]
    BuiltIn,
    #[error("a public client has no secret")]
    Public,
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(ClientError);

impl From<diesel::result::Error> for ClientError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failure(error.into())
    }
}

/// What an administrator asks for.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub confidential: bool,
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
}

/// A client as registered, with the secret when one was just made (shown once).
#[derive(Clone)]
pub struct Registered {
    pub client: ClientRow,
    pub secret: Option<String>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered").field("client_id", &self.client.client_id).finish_non_exhaustive()
    }
}

/// The words of a space-separated list (RFC 6749 §3.3: scope tokens are separated by spaces;
/// any other whitespace is part of a token, and no valid token has any).
pub fn words(list: &str) -> impl Iterator<Item = &str> {
    list.split(' ').filter(|word| !word.is_empty())
}

/// Limits that keep every token this client gets well under the verifier's size limit.
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_CHARS: usize = 64;

/// Whether `client_id` could name a client at all: what `PUBLIC_CLIENT_ID` allows, which is
/// also what [`register`] makes. Anything else is refused before it reaches the database
/// (PostgreSQL would refuse a NUL byte with an error of its own).
pub fn is_well_formed_id(client_id: &str) -> bool {
    crate::config::parse_client_id("client_id", client_id.to_string()).is_ok()
}

/// Checks `new` and registers it at `now` (also the `client create` command's way in).
pub fn register(conn: &mut DbConn, new: NewClient, now: NaiveDateTime) -> Result<Registered, ClientError> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ClientError::InvalidMetadata("name must be 1–100 characters".into()));
    }
    if new.grant_types.as_ref().is_some_and(Vec::is_empty) {
        return Err(ClientError::InvalidMetadata("grant_types must not be empty".into()));
    }
    let default_grants: &[&str] =
        if new.confidential { &["client_credentials"] } else { &["password", "refresh_token"] };
    let grants = new.grant_types.unwrap_or_else(|| default_grants.iter().map(|g| g.to_string()).collect());
    if let Some(unknown) = grants.iter().find(|grant| !GRANT_TYPES.contains(&grant.as_str())) {
        return Err(ClientError::InvalidMetadata(format!("unknown grant type {unknown:?}")));
    }
    if !new.confidential && grants.iter().any(|grant| grant == "client_credentials") {
        return Err(ClientError::InvalidMetadata("a public client cannot use client_credentials".into()));
    }
    let scope = new.scope.unwrap_or_default();
    // RFC 6749 §3.3: scope tokens are printable ASCII without space, `"` and `\`.
    if words(&scope).any(|token| !token.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')) {
        return Err(ClientError::InvalidMetadata("scope must be space-separated printable ASCII words".into()));
    }
    if words(&scope).count() > MAX_SCOPES || words(&scope).any(|token| token.len() > MAX_SCOPE_CHARS) {
        return Err(ClientError::InvalidMetadata(format!(
            "at most {MAX_SCOPES} scopes of at most {MAX_SCOPE_CHARS} characters"
        )));
    }
    let secret = new.confidential.then(generate_secret);
    let client = ClientRow {
        client_id: format!("svc-{}", Uuid::new_v4().simple()),
        name: name.to_string(),
        confidential: new.confidential,
        secret_hash: secret.as_ref().map(|secret| secret.hash.clone()),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        grant_types: dedup(grants.iter().map(String::as_str)),
        scope: dedup(words(&scope)),
        created_at: now,
        disabled: false,
    };
    clients::insert(conn, &client)?;
    Ok(Registered { client, secret: secret.map(|secret| secret.value) })
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for item in items {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join(" ")
}

/// Makes sure the built-in public client exists (at every start): grants `password` and
/// `refresh_token`, no scopes.
pub fn ensure_builtin(conn: &mut DbConn, client_id: &str, now: NaiveDateTime) -> diesel::QueryResult<()> {
    clients::insert_if_missing(
        conn,
        &ClientRow {
            client_id: client_id.to_string(),
            name: "built-in public client (/login, /token/refresh)".into(),
            confidential: false,
            secret_hash: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            grant_types: "password refresh_token".into(),
            scope: String::new(),
            created_at: now,
            disabled: false,
        },
    )
}

/// Registers a client.
pub async fn create(services: &Services, new: NewClient) -> Result<Registered, ClientError> {
    let now = services.clock.now().naive_utc();
    services.db.transaction(move |conn| register(conn, new, now)).await
}

/// Every client, oldest first (never a secret: [`ClientRow`] holds only hashes, which the
/// HTTP layer does not show either).
pub async fn list(services: &Services) -> Result<Vec<ClientRow>, ClientError> {
    Ok(services.db.read(clients::list).await?)
}

/// Disables or re-enables a client. A disabled client cannot authenticate or refresh.
pub async fn set_disabled(services: &Services, client_id: String, disabled: bool) -> Result<ClientRow, ClientError> {
    if !is_well_formed_id(&client_id) {
        return Err(ClientError::NotFound);
    }
    // /login and /token/refresh issue tokens for the built-in client without authenticating it.
    if client_id == services.public_client_id {
        return Err(ClientError::BuiltIn);
    }
    services
        .db
        .transaction(move |conn| {
            if !clients::set_disabled(conn, &client_id, disabled)? {
                return Err(ClientError::NotFound);
            }
            clients::find(conn, &client_id)?.ok_or(ClientError::NotFound)
        })
        .await
}

/// Gives a confidential client a new secret; the old one keeps working for the grace period
/// (CLIENT_SECRET_GRACE), so services can roll over without downtime.
pub async fn rotate_secret(
    services: &Services,
    client_id: String,
    grace: chrono::Duration,
) -> Result<Registered, ClientError> {
    let now = services.clock.now();
    services
        .db
        .transaction(move |conn| {
            let client = clients::find(conn, &client_id)?.ok_or(ClientError::NotFound)?;
            if !client.confidential {
                return Err(ClientError::Public);
            }
            let secret = generate_secret();
            let previous_until = (now + grace).naive_utc();
            clients::rotate_secret(conn, &client_id, &secret.hash, previous_until)?;
            let client = clients::find(conn, &client_id)?.ok_or(ClientError::NotFound)?;
            Ok(Registered { client, secret: Some(secret.value) })
        })
        .await
}

/// Deletes a client: every session it started and every token issued to it ends.
pub async fn delete(services: &Services, client_id: String) -> Result<(), ClientError> {
    let (builtin, now, lifetime) =
        (services.public_client_id.clone(), services.clock.now(), services.revocations.token_lifetime());
    let metrics = services.metrics.clone();
    let ended =
        services.db.transaction(move |conn| remove(conn, &metrics, &client_id, &builtin, now, lifetime)).await?;
    revocation::publish(services, ended).await?;
    Ok(())
}

/// Deletes client `client_id` (never `builtin`) in the caller's transaction, revoking every
/// session it started and, with a subject cutoff "forever", every token issued to it (also the
/// `client delete` command's way in: running instances pick the revocations up from the
/// database).
pub fn remove(
    conn: &mut DbConn,
    metrics: &Metrics,
    client_id: &str,
    builtin: &str,
    now: DateTime<Utc>,
    token_lifetime: chrono::Duration,
) -> Result<SubjectRevocation, ClientError> {
    if client_id == builtin {
        return Err(ClientError::BuiltIn);
    }
    if !is_well_formed_id(client_id) {
        return Err(ClientError::NotFound);
    }
    if !clients::delete(conn, client_id)? {
        return Err(ClientError::NotFound);
    }
    let sessions = sessions::revoke_client_sessions(conn, client_id, now.naive_utc())?;
    let subject = Subject::Client(client_id.to_string());
    let mut ended = revocation::end_subject_tokens(conn, &subject, None, TokenScope::Everything, now, token_lifetime)?;
    let sessions: Vec<Uuid> = sessions.iter().filter_map(|sid| Uuid::parse_str(sid).ok()).collect();
    // The client's own (client-credentials) tokens end too: RISC account-purged, subject the
    // client id, so that verifiers refuse them as this service does.
    let purged = vec![events::Event::account_purged(client_id)];
    events::record_session_ends(conn, metrics, &sessions, SessionEnd::ClientDeleted, purged, now)?;
    ended.sessions.extend(sessions);
    Ok(ended)
}

/// How a token request identified its client (RFC 6749 §2.3.1).
#[derive(Clone)]
pub struct ClientCredentials {
    pub client_id: String,
    /// `None` for a public client (`none`).
    pub secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// The client these credentials prove, or `None` (RFC 6749 §5.2 `invalid_client`): unknown,
/// disabled, a wrong or missing secret for a confidential client, or a secret sent for a public
/// one. Secrets are compared as SHA-256 hashes in constant time; the previous secret counts
/// until its grace period ends.
pub async fn authenticate(services: &Services, credentials: ClientCredentials) -> Result<Option<ClientRow>, Failure> {
    if !is_well_formed_id(&credentials.client_id) {
        return Ok(None);
    }
    let id = credentials.client_id.clone();
    let client = services.db.read(move |conn| clients::find(conn, &id)).await?;
    let now = services.clock.now();
    Ok(client.filter(|client| proves(client, credentials.secret.as_deref(), now)))
}

fn proves(client: &ClientRow, secret: Option<&str>, now: DateTime<Utc>) -> bool {
    if client.disabled {
        return false;
    }
    // An empty secret is no secret (some libraries send `client_id:` in Basic for public clients).
    match (client.confidential, secret.filter(|secret| !secret.is_empty())) {
        (false, None) => true,
        (true, Some(secret)) => {
            let current = client.secret_hash.as_deref().is_some_and(|hash| secret_matches(secret, hash));
            let previous_valid = client.previous_secret_expires_at.is_some_and(|until| until.and_utc() > now);
            let previous = previous_valid
                && client.previous_secret_hash.as_deref().is_some_and(|hash| secret_matches(secret, hash));
            current | previous
        }
        _ => false,
    }
}

/// Whether the client may use `grant_type`.
pub fn allows_grant(client: &ClientRow, grant_type: &str) -> bool {
    words(&client.grant_types).any(|grant| grant == grant_type)
}

/// The scope to grant for a request (RFC 6749 §3.3): all of `allowed` when none is asked for,
/// else exactly what was asked, if every scope asked for is allowed; `None` otherwise
/// (`invalid_scope`).
pub fn grant_scope(allowed: &str, requested: Option<&str>) -> Option<String> {
    match requested {
        None => Some(allowed.to_string()),
        Some(requested) => {
            let allowed: Vec<&str> = words(allowed).collect();
            words(requested).all(|scope| allowed.contains(&scope)).then(|| dedup(words(requested)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_omitted_scope_grants_everything_allowed_and_a_foreign_one_nothing() {
        assert_eq!(grant_scope("introspect reports", None).as_deref(), Some("introspect reports"));
        assert_eq!(grant_scope("introspect reports", Some("reports")).as_deref(), Some("reports"));
        assert_eq!(grant_scope("introspect reports", Some("reports reports")).as_deref(), Some("reports"));
        assert_eq!(grant_scope("introspect", Some("ssf")), None);
        assert_eq!(grant_scope("", Some("")).as_deref(), Some(""));
        assert_eq!(grant_scope("", None).as_deref(), Some(""));
    }

    #[test]
    fn secrets_prove_confidential_clients_and_public_clients_need_none() {
        let now = Utc::now();
        let secret = generate_secret();
        let old = generate_secret();
        let client = |confidential: bool, disabled: bool| ClientRow {
            client_id: "svc-x".into(),
            name: "x".into(),
            confidential,
            secret_hash: confidential.then(|| secret.hash.clone()),
            previous_secret_hash: Some(old.hash.clone()),
            previous_secret_expires_at: Some((now + chrono::Duration::hours(1)).naive_utc()),
            grant_types: "client_credentials".into(),
            scope: String::new(),
            created_at: now.naive_utc(),
            disabled,
        };
        assert!(proves(&client(true, false), Some(&secret.value), now));
        assert!(proves(&client(true, false), Some(&old.value), now), "the previous secret, within its grace");
        assert!(!proves(&client(true, false), Some(&old.value), now + chrono::Duration::hours(2)), "after it");
        assert!(!proves(&client(true, false), Some("wrong"), now));
        assert!(!proves(&client(true, false), None, now), "a confidential client must send its secret");
        assert!(!proves(&client(true, true), Some(&secret.value), now), "disabled");
        assert!(proves(&client(false, false), None, now));
        assert!(!proves(&client(false, false), Some(&secret.value), now), "a public client has no secret");
    }
}
