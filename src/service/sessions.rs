//! Sessions: logging in (with throttling), refreshing, logging out, and the OAuth endpoints
//! that act on a token someone holds (RFC 7009 revocation, RFC 7662 introspection).
//!
//! A *session* is one login: its chain of refresh tokens (each spent when exchanged) and every
//! access token issued from them, whose `sid` claim is the session id.

use super::clients::{grant_scope, words};
use super::revocation::{self, TokenScope};
use super::ssf::events::{self, SessionEnd};
use super::throttle::{self, AttemptKeys};
use super::{Failure, Services, failures_pass_through};
use crate::db::clients::ClientRow;
use crate::db::sessions::{self, NewSession, Refresh, RefreshTokenRecord, RefreshTokenState};
use crate::db::users::{self, User};
use crate::domain::{InvalidValue, Password, UserAgent, UserName, legacy_name_key, name_key};
use crate::tokens::{
    ADMIN_GROUP, AccessClaims, Grant, MAX_SECRET_LEN, Subject, TokenRejection, generate_secret, hash_secret,
};
use std::net::IpAddr;
use std::sync::Arc;
use uuid::Uuid;

/// What a login, a refresh or a client-credentials grant hands out.
#[derive(Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub claims: AccessClaims,
    /// Given to the client once; only its hash is stored. None for service tokens.
    pub refresh_token: Option<String>,
}

/// The client a session is started for, and the scope granted to it.
#[derive(Debug, Clone)]
pub struct SessionClient {
    pub client_id: String,
    pub scope: String,
}

impl SessionClient {
    /// The built-in public client `/login` and `/token/refresh` issue tokens for (no scopes).
    pub fn builtin(services: &Services) -> Self {
        Self { client_id: services.public_client_id.clone(), scope: String::new() }
    }
}

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password: one answer for both.
    #[error("wrong name or password")]
    InvalidCredentials,
    /// Too many failures from this address, or at this account from this address.
    #[error("too many failed attempts")]
    Throttled { retry_after: chrono::Duration },
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(LoginError);

impl From<diesel::result::Error> for LoginError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failure(error.into())
    }
}

/// Why a refresh token was not exchanged.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired, spent (reuse: its session is now revoked) or revoked (RFC 6749 §5.2
    /// `invalid_grant`).
    #[error("invalid refresh token")]
    InvalidGrant,
    /// A scope the session was not granted (RFC 6749 §6).
    #[error("scope not granted to this session")]
    InvalidScope,
    #[error(transparent)]
    Failure(#[from] Failure),
}
failures_pass_through!(RefreshError);

impl From<diesel::result::Error> for RefreshError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failure(error.into())
    }
}

/// The stand-in lookup key of a name no user can have.
const IMPOSSIBLE_NAME: &str = "<impossible name>";

/// Logs `name` in with `password` from address `client`, for OAuth client `session_client`:
/// checks the throttle, the credentials, then starts a session and issues its first pair. The
/// session keeps `user_agent` (shown in the user's list of sessions), never the address.
pub async fn login(
    services: &Services,
    name: &str,
    password: &str,
    client: IpAddr,
    session_client: SessionClient,
    user_agent: Option<UserAgent>,
) -> Result<TokenPair, LoginError> {
    if password.len() > Password::MAX_BYTES {
        // bcrypt would ignore the bytes past 72; such a password never matches, say so instead.
        Password::check_length(password)?;
    }
    let key = lookup_key(name);
    let attempt = Arc::new(AttemptKeys::new(&services.name_hasher, key.as_deref().unwrap_or(IMPOSSIBLE_NAME), client));
    let (counted, rule, now) = (attempt.clone(), services.login_throttle, services.clock.now());
    if let Err(wait) = services.db.write(move |conn| throttle::begin_attempt(conn, &counted, &rule, now)).await? {
        // Never the typed name: it may be a password typed into the wrong field.
        log::info!("login throttled for an account tried from {client}");
        services.metrics.login_throttled.inc();
        return Err(LoginError::Throttled { retry_after: wait });
    }
    let Some(user) = validate_credentials(services, name, key, password).await? else {
        let (rule, now) = (services.login_throttle, services.clock.now());
        services.db.write(move |conn| throttle::failed(conn, &attempt, &rule, now)).await?;
        return Err(LoginError::InvalidCredentials);
    };
    services.db.write(move |conn| throttle::succeeded(conn, &attempt)).await?;
    let rehash = upgraded_hash(services, &user, password).await;
    // A user deleted during the password check, or whose password changed meanwhile, has no
    // session to start.
    let checked = CheckedLogin {
        user_id: user.id,
        password_hash: user.password_hash,
        password_version: user.password_version,
        rehash,
        user_agent,
    };
    start_session(services, checked, session_client).await?.ok_or(LoginError::InvalidCredentials)
}

/// A new hash of `password` when the user's stored one has a lower cost than BCRYPT_COST (it
/// was raised since): stored by the login's transaction, so the timing of a wrong password no
/// longer tells an old account from an unknown name. Best effort: when other hashes are waiting
/// (a registration flood) the upgrade waits for a later login rather than delay this one.
async fn upgraded_hash(services: &Services, user: &User, password: &str) -> Option<String> {
    if !services.passwords.needs_rehash(&user.password_hash) {
        return None;
    }
    services
        .passwords
        .hash_if_idle(password)
        .await
        .inspect_err(|error| log::info!("password rehash of user {} postponed: {error}", user.public_id))
        .ok()
}

/// The lookup key of a name as typed at login; `None` for a name no user can have (control
/// characters, which PostgreSQL would refuse outright as a NUL, or far too long): such a name is
/// counted and checked like any unknown one, never looked up.
fn lookup_key(name: &str) -> Option<String> {
    let impossible = name.chars().any(char::is_control) || name.len() > 4 * UserName::MAX_CHARS;
    (!impossible).then(|| name_key(name))
}

/// The user these credentials name, if the password is theirs. Unknown names are checked
/// against a dummy hash: the same work, the same answer. Among users the name rules left as
/// they were (no skeleton), the name's key from before the rules is tried first: two users
/// registered earlier whose names now map to one key (an NFD and an NFC "josé") each still find
/// their own account by typing their own name. Users registered under the rules are found by
/// their case-mapped key alone.
async fn validate_credentials(
    services: &Services,
    name: &str,
    key: Option<String>,
    password: &str,
) -> Result<Option<User>, LoginError> {
    let user = match key {
        Some(key) => {
            let legacy = legacy_name_key(name);
            services
                .db
                .read(move |conn| match users::find_legacy_by_name_key(conn, &legacy)? {
                    Some(user) => Ok(Some(user)),
                    None => users::find_by_name_key(conn, &key),
                })
                .await?
        }
        None => None,
    };
    let matches = services.passwords.verify(password, user.as_ref().map(|user| user.password_hash.clone())).await?;
    Ok(user.filter(|_| matches))
}

/// A login whose password was checked: the user, the hash and password version it was checked
/// against, a new hash at a higher cost if one is due, and the login's `User-Agent`.
struct CheckedLogin {
    user_id: i32,
    password_hash: String,
    password_version: i64,
    rehash: Option<String>,
    user_agent: Option<UserAgent>,
}

/// Starts a session for a checked login and issues its first pair (storing the rehash, if any,
/// in the same transaction); `None` if the user was deleted, or their password changed, since
/// the check: a password change ends every other session, and a login with the old password
/// that was still in flight must not slip in after it. Tokens are issued from the user as they
/// are once the session exists, so a role change made during the password check is not missed.
async fn start_session(
    services: &Services,
    login: CheckedLogin,
    client: SessionClient,
) -> Result<Option<TokenPair>, Failure> {
    let sid = Uuid::new_v4();
    let refresh = generate_secret();
    let now = services.clock.now();
    let hash = refresh.hash.clone();
    let expires_at = (now + services.refresh_token_ttl).naive_utc();
    let stored_client = client.clone();
    let user = services
        .db
        .transaction(move |conn| -> Result<_, crate::actors::db::DbError> {
            let CheckedLogin { user_id, password_hash, password_version, rehash, user_agent } = login;
            // Only over the hash that was checked: a password changed meanwhile stays changed.
            if let Some(upgraded) = &rehash {
                users::upgrade_password_hash(conn, user_id, &password_hash, upgraded)?;
            }
            let session = NewSession {
                id: &sid.to_string(),
                user_id,
                client_id: &stored_client.client_id,
                scope: &stored_client.scope,
                user_agent: user_agent.as_ref().map(UserAgent::as_str),
                password_version,
            };
            Ok(sessions::start_session(conn, &session, &hash, now.naive_utc(), expires_at)?)
        })
        .await?;
    let Some(user) = user else { return Ok(None) };
    let pair = issue_pair(services, &user, sid, client, refresh.value)?;
    services.metrics.tokens_issued.password.inc();
    Ok(Some(pair))
}

/// An access token for `user` in session `sid` of `client`, paired with `refresh_token`.
fn issue_pair(
    services: &Services,
    user: &User,
    sid: Uuid,
    client: SessionClient,
    refresh_token: String,
) -> Result<TokenPair, Failure> {
    let sub: Subject = user.public_id.parse().map_err(|e| Failure::Internal(format!("stored public_id: {e}")))?;
    let grant = Grant {
        sub,
        client_id: client.client_id,
        scope: client.scope,
        sid: Some(sid),
        name: Some(user.name.clone()),
        groups: if user.admin { vec![ADMIN_GROUP.to_string()] } else { Vec::new() },
    };
    let (access_token, claims) = services.issuer.issue(grant, services.clock.now().timestamp())?;
    Ok(TokenPair { access_token, claims, refresh_token: Some(refresh_token) })
}

/// A token for a registered client acting for itself (RFC 6749 §4.4): `sub` is the client id;
/// no session, no refresh token.
pub fn issue_service_token(services: &Services, client_id: &str, scope: String) -> Result<TokenPair, Failure> {
    let grant = Grant {
        sub: Subject::Client(client_id.to_string()),
        client_id: client_id.to_string(),
        scope,
        sid: None,
        name: None,
        groups: Vec::new(),
    };
    let (access_token, claims) = services.issuer.issue(grant, services.clock.now().timestamp())?;
    services.metrics.tokens_issued.client_credentials.inc();
    Ok(TokenPair { access_token, claims, refresh_token: None })
}

/// Exchanges a refresh token, presented by client `client_id`, for a new pair; the presented
/// one is spent. Presenting a spent one again revokes its whole session (refresh token reuse
/// detection, RFC 6819 §5.2.2.3): one of the two parties holding it is an attacker, and we
/// cannot tell which. `scope` may narrow the session's scope for the new access token (RFC 6749
/// §6); asking for more is `invalid_scope`.
pub async fn refresh(
    services: &Services,
    client_id: &str,
    refresh_token: &str,
    scope: Option<&str>,
) -> Result<TokenPair, RefreshError> {
    if refresh_token.is_empty() || refresh_token.len() > MAX_SECRET_LEN {
        return Err(RefreshError::InvalidGrant);
    }
    if let Some(requested) = scope {
        // The scope is checked before the token is spent; an unusable token or another
        // client's is invalid_grant whatever the scope (and its reuse is still detected below).
        let hash = hash_secret(refresh_token);
        let record = services.db.read(move |conn| sessions::find_refresh_token(conn, &hash)).await?;
        let now = services.clock.now().naive_utc();
        if let Some((token, session, _)) = record
            && session.client_id == client_id
            && token.state(&session, now) == RefreshTokenState::Usable
            && grant_scope(&session.scope, Some(requested)).is_none()
        {
            return Err(RefreshError::InvalidScope);
        }
    }
    let presented = hash_secret(refresh_token);
    let replacement = generate_secret();
    let now = services.clock.now();
    let (new_hash, expires_at) = (replacement.hash.clone(), (now + services.refresh_token_ttl).naive_utc());
    let outcome = services
        .db
        .write({
            let client_id = client_id.to_string();
            move |conn| {
                sessions::rotate_refresh_token(conn, &client_id, &presented, &new_hash, now.naive_utc(), expires_at)
            }
        })
        .await?;
    match outcome {
        Refresh::Rotated { user, session } => {
            let sid = Uuid::parse_str(&session.id).map_err(|e| Failure::Internal(format!("stored session id: {e}")))?;
            let scope =
                scope.and_then(|requested| grant_scope(&session.scope, Some(requested))).unwrap_or(session.scope);
            let client = SessionClient { client_id: session.client_id, scope };
            let pair = issue_pair(services, &user, sid, client, replacement.value)?;
            services.metrics.tokens_issued.refresh_token.inc();
            Ok(pair)
        }
        Refresh::Reused { session_id } => {
            log::warn!("refresh token reuse detected: session {session_id} revoked");
            if let Ok(sid) = Uuid::parse_str(&session_id) {
                revocation::revoke_session(services, sid, SessionEnd::RefreshTokenReuse).await?;
            }
            Err(RefreshError::InvalidGrant)
        }
        Refresh::Invalid => Err(RefreshError::InvalidGrant),
    }
}

/// The claims of a valid, unrevoked access token (every check of API.md "Tokens"), counted
/// in the metrics.
pub fn authenticate(services: &Services, token: &str) -> Result<Arc<AccessClaims>, TokenRejection> {
    let outcome = services.verifier.verify(token, services.clock.now().timestamp());
    let verifications = &services.metrics.verifications;
    match &outcome {
        Ok(_) => verifications.valid.inc(),
        Err(TokenRejection::Revoked(_)) => verifications.revoked.inc(),
        Err(_) => verifications.invalid.inc(),
    }
    if let Err(rejection) = &outcome {
        log::debug!("token rejected: {rejection}");
    }
    outcome
}

/// What a token lacks for a request that requires groups and scopes (the `/verify` sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lacking {
    Group,
    Scope,
}

/// Whether `claims` carry every group and every scope required: a token passes only with all.
pub fn authorize(claims: &AccessClaims, groups: &[String], scopes: &[String]) -> Result<(), Lacking> {
    if !groups.iter().all(|group| claims.groups.contains(group)) {
        return Err(Lacking::Group);
    }
    if !scopes.iter().all(|scope| claims.has_scope(scope)) {
        return Err(Lacking::Scope);
    }
    Ok(())
}

/// Logs out the session of the presented access token: that token and every token of its
/// login stop working. A service token has no session: only the token itself ends.
pub async fn log_out(services: &Services, claims: &AccessClaims) -> Result<(), Failure> {
    revocation::revoke_access_token(services, claims).await?;
    match claims.sid {
        Some(sid) => revocation::revoke_session(services, sid, SessionEnd::Logout).await,
        None => Ok(()),
    }
}

/// Logs the subject out everywhere: every token issued until now stops working, on every
/// device; every session of theirs is revoked. The user row is locked first, as every change to
/// a user's sessions does (user, then sessions), so this waits for a refresh or a role change
/// of the same user instead of deadlocking with it.
pub async fn log_out_everywhere(services: &Services, subject: &Subject) -> Result<(), LogoutError> {
    if subject.user().is_none() {
        return Err(LogoutError::NotAUser);
    }
    let (subject, now, lifetime) = (subject.clone(), services.clock.now(), services.revocations.token_lifetime());
    let metrics = services.metrics.clone();
    let ended = services
        .db
        .transaction(move |conn| -> Result<_, Failure> {
            let user = match subject.user() {
                Some(public_id) => users::lock_by_public_id(conn, &public_id.to_string())?,
                None => None,
            };
            let user_id = user.map(|user| user.id);
            let ended =
                revocation::end_subject_tokens(conn, &subject, user_id, TokenScope::IssuedUntilNow, now, lifetime)?;
            events::record_session_ends(conn, &metrics, &ended.sessions, SessionEnd::LogoutEverywhere, vec![], now)?;
            Ok(ended)
        })
        .await?;
    Ok(revocation::publish(services, ended).await?)
}

/// Why "log out everywhere" did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// A service token: there is no user whose sessions could end.
    #[error("only a user's token can log out everywhere")]
    NotAUser,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// A refresh token that is still usable (the one rule of [`RefreshTokenState`]).
async fn usable_refresh_token(services: &Services, token: &str) -> Result<Option<RefreshTokenRecord>, Failure> {
    if token.is_empty() || token.len() > MAX_SECRET_LEN {
        return Ok(None);
    }
    let hash = hash_secret(token);
    let record = services.db.read(move |conn| sessions::find_refresh_token(conn, &hash)).await?;
    let now = services.clock.now().naive_utc();
    Ok(record.filter(|(token, session, _)| token.state(session, now) == RefreshTokenState::Usable))
}

/// What a presented token (RFC 7009 / RFC 7662 `token`) turned out to be.
#[derive(Debug)]
pub enum PresentedToken {
    Access(AccessClaims),
    Refresh(RefreshTokenRecord),
}

/// Finds out what `token` is, trying the kind `refresh_first` hints at first (RFC 7009 §2.1:
/// the hint only speeds up the lookup). `None`: not a token that is active now.
pub async fn identify(
    services: &Services,
    token: &str,
    refresh_first: bool,
) -> Result<Option<PresentedToken>, Failure> {
    let as_access =
        || authenticate(services, token).ok().map(|claims| PresentedToken::Access(Arc::unwrap_or_clone(claims)));
    if !refresh_first && let Some(access) = as_access() {
        return Ok(Some(access));
    }
    if let Some(record) = usable_refresh_token(services, token).await? {
        return Ok(Some(PresentedToken::Refresh(record)));
    }
    Ok(if refresh_first { as_access() } else { None })
}

/// Who asks to introspect or revoke a token (RFC 7662 §2.1, RFC 7009 §2.1).
#[derive(Debug)]
pub enum Caller {
    /// A valid access token (Bearer).
    Token(AccessClaims),
    /// An authenticated client.
    Client(ClientRow),
    Anonymous,
}

/// Why an introspection was refused.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    #[error("introspection needs an access token or client credentials")]
    Unauthenticated,
    /// A public client, or a client (or service token) without the `introspect` scope.
    #[error("introspection needs a confidential client with the `introspect` scope")]
    InsufficientScope,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// RFC 7662: what `token` is, for a caller allowed to ask — a user's access token, or a
/// confidential client holding `introspect` (as itself, or through a service token of its own).
/// `None`: not active, whatever the reason.
pub async fn introspect(
    services: &Services,
    caller: &Caller,
    token: &str,
    refresh_first: bool,
) -> Result<Option<PresentedToken>, IntrospectError> {
    let allowed = match caller {
        Caller::Token(claims) => claims.sub.user().is_some() || claims.has_scope(INTROSPECT_SCOPE),
        Caller::Client(client) => client.confidential && words(&client.scope).any(|scope| scope == INTROSPECT_SCOPE),
        Caller::Anonymous => return Err(IntrospectError::Unauthenticated),
    };
    if !allowed {
        return Err(IntrospectError::InsufficientScope);
    }
    Ok(identify(services, token, refresh_first).await?)
}

/// The scope that lets a client introspect any token.
const INTROSPECT_SCOPE: &str = "introspect";

/// RFC 7009: holding a token is the authority to revoke it. An access token is revoked alone; a
/// refresh token revokes its whole session, access tokens included (§2.1). Unknown, invalid or
/// expired tokens need no revoking (§2.2). A client that authenticates revokes only tokens
/// issued to it (§2.1); others are left alone, and that is not disclosed.
pub async fn revoke(services: &Services, caller: &Caller, token: &str, refresh_first: bool) -> Result<(), Failure> {
    let issued_to_caller = |client_id: &str| match caller {
        Caller::Client(client) => client.client_id == client_id,
        Caller::Token(_) | Caller::Anonymous => true,
    };
    match identify(services, token, refresh_first).await? {
        Some(PresentedToken::Access(claims)) if issued_to_caller(&claims.client_id) => {
            revocation::revoke_access_token(services, &claims).await
        }
        Some(PresentedToken::Refresh((_, session, _))) if issued_to_caller(&session.client_id) => {
            match Uuid::parse_str(&session.id) {
                Ok(sid) => revocation::revoke_session(services, sid, SessionEnd::TokenRevocation).await,
                Err(_) => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::fixtures::claims_at;

    #[test]
    fn a_token_is_authorized_only_with_every_required_group_and_scope() {
        let claims = AccessClaims {
            groups: vec!["admin".into()],
            scope: "reports introspect".into(),
            ..claims_at(1_800_000_000)
        };
        let owned = |items: &[&str]| items.iter().map(|item| item.to_string()).collect::<Vec<_>>();
        assert_eq!(authorize(&claims, &[], &[]), Ok(()));
        assert_eq!(authorize(&claims, &owned(&["admin"]), &owned(&["reports", "introspect"])), Ok(()));
        assert_eq!(authorize(&claims, &owned(&["admin", "staff"]), &[]), Err(Lacking::Group));
        assert_eq!(authorize(&claims, &[], &owned(&["report"])), Err(Lacking::Scope), "whole words only");
    }
}
