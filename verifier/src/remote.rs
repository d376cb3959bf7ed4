//! [`Verifier`]: the policy, the issuer's cached keys, a verified-token cache and the deny list,
//! put together for a service that accepts the issuer's tokens.

use crate::cache::VerifiedTokenCache;
use crate::claims::AccessClaims;
use crate::deny_list::DenyList;
use crate::discovery::server_metadata;
use crate::follower::{Follower, FollowerCounters, FollowerSettings, load_deny_list};
use crate::http::{self, FetchError};
use crate::jwks::{KeyCacheSettings, RemoteKeys};
use crate::policy::{TokenRejection, VerificationPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a [`Verifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The issuer's metadata or key set could not be fetched or is not usable.
    #[error("the issuer's metadata or keys: {0}")]
    Issuer(#[source] FetchError),
    /// The issuer's metadata names no token endpoint, which the revocation follower needs.
    #[error("the issuer's metadata names no token_endpoint")]
    NoTokenEndpoint,
    /// The revocation follower could not find or create its stream.
    #[error("the revocation stream: {0}")]
    Stream(#[source] FetchError),
    /// The saved deny list could not be read.
    #[error("the deny list file {path}: {reason}")]
    DenyListFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The longest duration a setting takes: longer ones are cut to it (a year is past any sane
/// value, and keeps `Instant` arithmetic far from overflow).
const LONGEST_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);

/// Configures a [`Verifier`]; made by [`Verifier::builder`].
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    keys: KeyCacheSettings,
    token_cache_capacity: usize,
    follower: Option<FollowerSettings>,
    save_to: Option<PathBuf>,
    max_token_lifetime: Duration,
}

impl VerifierBuilder {
    /// Follows the issuer's revocations over its Shared Signals stream, as OAuth client
    /// `client_id` (a confidential client with scope `ssf`; one per replica of the service,
    /// since a stream's events go to whoever acknowledges them).
    pub fn follow_revocations(mut self, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        self.follower = Some(FollowerSettings {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            save_to: None,
            max_token_lifetime: self.max_token_lifetime,
        });
        self
    }

    /// Saves the deny list to `path` after every change, and loads it at start, so a restart
    /// does not forget revocations (with [`Self::follow_revocations`]).
    pub fn deny_list_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.save_to = Some(path.into());
        self
    }

    /// How often a token with an unknown `kid` may make the verifier refetch the key set
    /// (default 30 s).
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.keys.unknown_kid_cooldown = cooldown.min(LONGEST_SETTING);
        self
    }

    /// Bounds on how long a fetched key set is used before revalidation, whatever its
    /// `Cache-Control: max-age` says (default 5 s to 1 h).
    pub fn key_set_max_age_bounds(mut self, shortest: Duration, longest: Duration) -> Self {
        let (shortest, longest) = (shortest.min(LONGEST_SETTING), longest.min(LONGEST_SETTING));
        self.keys.min_max_age = shortest.min(longest);
        self.keys.max_max_age = longest.max(shortest);
        self
    }

    /// How long after its last successful fetch the key set keeps verifying while the issuer
    /// cannot be reached (default 24 h). After that every token is refused with
    /// [`TokenRejection::KeysUnavailable`].
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.keys.max_stale = max_stale.min(LONGEST_SETTING);
        self
    }

    /// How many verified tokens are remembered, so that presenting one again skips the RSA
    /// check (default 10 000; 0 turns the cache off). Expiry, key deletion and revocation are
    /// checked on every hit.
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.token_cache_capacity = capacity;
        self
    }

    /// The longest lifetime of the issuer's access tokens (default 24 h): how long a
    /// revocation is kept.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime.min(LONGEST_SETTING);
        self
    }

    /// Fetches the issuer's metadata and keys (and, when following revocations, makes sure its
    /// stream exists), then starts the background tasks that keep them current. Must be called
    /// within a Tokio runtime (actix-web's included), which runs those tasks. The issuer must
    /// be reachable: otherwise this fails, naming the URL (retry, or let a supervisor restart
    /// the service), since without keys no token could be accepted anyway.
    pub async fn build(self) -> Result<Verifier, SetupError> {
        let client = http::client().map_err(SetupError::Issuer)?;
        let metadata = server_metadata(&client, &self.issuer).await.map_err(SetupError::Issuer)?;
        let keys = RemoteKeys::start(client.clone(), metadata.jwks_uri.clone(), self.keys)
            .await
            .map_err(SetupError::Issuer)?;
        let saved = match &self.save_to {
            Some(path) => {
                load_deny_list(path).map_err(|reason| SetupError::DenyListFile { path: path.clone(), reason })?
            }
            None => Default::default(),
        };
        let (deny_list, writer) = DenyList::from_entries(saved.tokens, saved.sessions, saved.subjects);
        let alive = Arc::new(());
        let follower_counters = match self.follower {
            Some(mut settings) => {
                settings.save_to = self.save_to.clone();
                settings.max_token_lifetime = self.max_token_lifetime;
                let token_endpoint = metadata.token_endpoint.clone().ok_or(SetupError::NoTokenEndpoint)?;
                let counters = Arc::new(FollowerCounters::default());
                let follower = Follower::start(
                    client,
                    &self.issuer,
                    token_endpoint,
                    settings,
                    Arc::clone(&keys),
                    Arc::clone(&deny_list),
                    writer,
                    Arc::clone(&counters),
                )
                .await
                .map_err(SetupError::Stream)?;
                tokio::spawn(follower.run(Arc::downgrade(&alive)));
                Some(counters)
            }
            None => None,
        };
        log::info!(
            "verifying tokens of {} for audience {} with {} key(s) from {}",
            self.issuer,
            self.audience,
            keys.len(),
            metadata.jwks_uri
        );
        let policy = VerificationPolicy::new(&self.issuer, &self.audience);
        Ok(Verifier {
            inner: Arc::new(Inner {
                policy,
                realm: self.audience.into(),
                keys,
                cache: VerifiedTokenCache::new(self.token_cache_capacity),
                deny_list,
                follower: follower_counters,
                _alive: alive,
            }),
        })
    }
}

/// Verifies access tokens of one issuer for one audience; cheap to clone (one shared state).
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = library_api_verifier::Verifier::builder("https://auth.example", "library-api")
///     .follow_revocations("my-service", "its-secret")
///     .build()
///     .await?;
/// let claims = verifier.verify("eyJ...").await?;
/// println!("{} {:?}", claims.sub, claims.groups);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    policy: VerificationPolicy,
    realm: Arc<str>,
    keys: Arc<RemoteKeys>,
    cache: VerifiedTokenCache,
    deny_list: Arc<DenyList>,
    follower: Option<Arc<FollowerCounters>>,
    /// The follower polls while this lives.
    _alive: Arc<()>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("realm", &self.inner.realm).finish_non_exhaustive()
    }
}

/// What a [`Verifier`] has done so far, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierStats {
    /// Requests for the key set, including revalidations.
    pub key_set_fetches: u64,
    /// Revalidations answered 304 Not Modified.
    pub key_set_not_modified: u64,
    /// Requests for the key set that failed.
    pub key_set_fetch_failures: u64,
    /// Unknown `kid`s refused without a fetch because of the cooldown.
    pub unknown_kids_refused: u64,
    /// Keys held now.
    pub keys: usize,
    /// Verified tokens remembered now.
    pub cached_tokens: usize,
    /// Deny-list entries now.
    pub denied: usize,
    /// Polls of the revocation stream answered.
    pub revocation_polls: u64,
    /// Polls of the revocation stream that failed.
    pub revocation_poll_failures: u64,
    /// SETs received from the stream.
    pub revocation_events: u64,
    /// Deny-list changes made from them.
    pub revocations_applied: u64,
    /// Whether the last poll of the revocation stream succeeded (`false` without a follower).
    pub revocation_stream_connected: bool,
}

impl Verifier {
    /// A builder for a verifier of tokens whose `iss` is exactly `issuer` (the issuer's URL,
    /// where its metadata is found) and whose `aud` is `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: KeyCacheSettings::default(),
            token_cache_capacity: 10_000,
            follower: None,
            save_to: None,
            max_token_lifetime: Duration::from_secs(24 * 3600),
        }
    }

    /// The claims of `token` (the bearer token itself, without `Bearer `), or why it is refused:
    /// the issuer's whole policy, then the deny list. Answers at once for a known key; a token
    /// with an unknown `kid` may wait for one key set fetch (see [`VerifierBuilder::unknown_kid_cooldown`]).
    pub async fn verify(&self, token: &str) -> Result<Arc<AccessClaims>, TokenRejection> {
        let inner = &self.inner;
        let now = unix_now();
        let keys = inner.keys.usable()?;
        let claims = match inner.cache.verify(token, &keys.keys, &inner.policy, now) {
            Err(TokenRejection::UnknownKey) if inner.keys.after_unknown_kid(&keys).await => {
                inner.cache.verify(token, &inner.keys.usable()?.keys, &inner.policy, now)?
            }
            outcome => outcome?,
        };
        match inner.deny_list.check(&claims) {
            Some(denial) => Err(TokenRejection::Revoked(denial)),
            None => Ok(claims),
        }
    }

    /// The realm of RFC 6750 challenges: the audience.
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The realm, shared (what each extracted request keeps without copying it).
    #[cfg(feature = "actix-web")]
    pub(crate) fn shared_realm(&self) -> Arc<str> {
        Arc::clone(&self.inner.realm)
    }

    /// What the verifier has done so far.
    pub fn stats(&self) -> VerifierStats {
        let inner = &self.inner;
        let keys = &inner.keys.counters;
        let follower = |read: fn(&FollowerCounters) -> u64| inner.follower.as_deref().map_or(0, read);
        VerifierStats {
            key_set_fetches: keys.fetches.load(Ordering::Relaxed),
            key_set_not_modified: keys.not_modified.load(Ordering::Relaxed),
            key_set_fetch_failures: keys.failures.load(Ordering::Relaxed),
            unknown_kids_refused: keys.refused_unknown_kids.load(Ordering::Relaxed),
            keys: inner.keys.len(),
            cached_tokens: inner.cache.len(),
            denied: inner.deny_list.len(),
            revocation_polls: follower(|counters| counters.polls.load(Ordering::Relaxed)),
            revocation_poll_failures: follower(|counters| counters.poll_failures.load(Ordering::Relaxed)),
            revocation_events: follower(|counters| counters.events_received.load(Ordering::Relaxed)),
            revocations_applied: follower(|counters| counters.revocations_applied.load(Ordering::Relaxed)),
            revocation_stream_connected: inner
                .follower
                .as_deref()
                .is_some_and(|counters| counters.connected.load(Ordering::Relaxed)),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}
