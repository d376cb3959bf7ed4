//! The issuer's keys, fetched from its `jwks_uri` and cached (like `jose`'s
//! `createRemoteJWKSet` and Go's keyfunc, with HTTP caching):
//! - a background task refetches when the key set's `Cache-Control: max-age` runs out (clamped
//!   to [`KeyCacheSettings::min_max_age`]..[`KeyCacheSettings::max_max_age`]), revalidating with
//!   `If-None-Match`, so an unchanged set costs a 304;
//! - a token with an unknown `kid` asks for a refetch at most once per
//!   [`KeyCacheSettings::unknown_kid_cooldown`]; misses while that fetch is under way wait for
//!   it (one fetch serves them all), later ones within the cooldown are refused at once, so a
//!   storm of made-up `kid`s costs the issuer one request per cooldown;
//! - while the issuer cannot be reached, the last key set keeps verifying for
//!   [`KeyCacheSettings::max_stale`] after its last successful fetch; after that every token is
//!   refused with [`TokenRejection::KeysUnavailable`] rather than trusting keys that may have
//!   been withdrawn.
//!
//! All fetching happens on the one background task, on the runtime that built the verifier;
//! verification only reads the current key set (an `ArcSwap` load).

use crate::http::{self, FetchError};
use crate::policy::{TokenRejection, VerificationKeys};
use arc_swap::ArcSwap;
use jsonwebtoken::DecodingKey;
use reqwest::header::{CACHE_CONTROL, ETAG, HeaderMap, IF_NONE_MATCH};
use reqwest::{Client, StatusCode};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// How the key cache behaves; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyCacheSettings {
    /// The shortest time a fetched key set is used before it is revalidated, whatever its
    /// `max-age` (also the time between fetches when the issuer sends `no-cache`).
    pub min_max_age: Duration,
    /// The longest time a fetched key set is used before it is revalidated.
    pub max_max_age: Duration,
    /// How often an unknown `kid` may cause a fetch.
    pub unknown_kid_cooldown: Duration,
    /// How long after its last successful fetch a key set may still verify tokens.
    pub max_stale: Duration,
}

impl Default for KeyCacheSettings {
    fn default() -> Self {
        Self {
            min_max_age: Duration::from_secs(5),
            max_max_age: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

/// One fetched key set.
pub(crate) struct KeySet {
    /// The keys, by `kid`.
    pub keys: VerificationKeys,
    etag: Option<String>,
    /// Until when it is used without revalidation.
    fresh_until: Instant,
    /// Until when it may verify at all (its last successful fetch plus `max_stale`).
    usable_until: Instant,
}

/// Counters of the key cache, for [`crate::VerifierStats`].
#[derive(Debug, Default)]
pub(crate) struct KeyCacheCounters {
    pub fetches: AtomicU64,
    pub not_modified: AtomicU64,
    pub failures: AtomicU64,
    pub refused_unknown_kids: AtomicU64,
}

/// The cached key set, and what asks for and announces fetches.
pub(crate) struct RemoteKeys {
    client: Client,
    jwks_uri: String,
    settings: KeyCacheSettings,
    current: ArcSwap<KeySet>,
    /// Wakes the refresher for a fetch now.
    wake: Arc<Notify>,
    /// When the last finished fetch (successful or not) had started: what verifications
    /// waiting for a fetch watch. Only a fetch that started after it was asked for can answer
    /// a request (one already under way may have missed the key).
    finished: watch::Sender<Option<Instant>>,
    /// When an unknown `kid` last asked for a fetch.
    forced: Mutex<Option<Instant>>,
    pub counters: KeyCacheCounters,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl RemoteKeys {
    /// Fetches the key set at `jwks_uri` once (failing if it cannot) and starts the task that
    /// keeps it fresh; the task ends when the returned value is dropped.
    pub async fn start(client: Client, jwks_uri: String, settings: KeyCacheSettings) -> Result<Arc<Self>, FetchError> {
        let Fetched::New(first) = fetch(&client, &jwks_uri, None, &settings).await? else {
            return Err(FetchError::invalid(&jwks_uri, "answered 304 to a request without If-None-Match"));
        };
        let keys = Arc::new(Self {
            client,
            jwks_uri,
            settings,
            current: ArcSwap::from_pointee(first),
            wake: Arc::new(Notify::new()),
            finished: watch::channel(None).0,
            forced: Mutex::new(None),
            counters: KeyCacheCounters::default(),
        });
        keys.counters.fetches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(refresh_while_alive(Arc::downgrade(&keys), Arc::clone(&keys.wake)));
        Ok(keys)
    }

    /// The key set to verify with, unless it has been stale for too long.
    pub fn usable(&self) -> Result<Arc<KeySet>, TokenRejection> {
        let keys = self.current.load_full();
        if Instant::now() > keys.usable_until {
            return Err(TokenRejection::KeysUnavailable);
        }
        Ok(keys)
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.current.load().keys.len()
    }

    /// After `used` did not hold a token's `kid`: whether a newer key set is (now) there to try.
    /// Asks for a fetch unless one was asked for within the cooldown, and waits for it; waits
    /// for one already under way.
    pub async fn after_unknown_kid(&self, used: &Arc<KeySet>) -> bool {
        if !Arc::ptr_eq(&self.current.load(), used) {
            return true;
        }
        let mut finished = self.finished.subscribe();
        let requested = {
            let mut forced = self.forced.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match *forced {
                Some(requested) if requested.elapsed() < self.settings.unknown_kid_cooldown => {
                    if finished.borrow().is_some_and(|started| started >= requested) {
                        // That fetch has finished, and the set it brought lacks this kid too.
                        self.counters.refused_unknown_kids.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                    requested // under way: wait for it too
                }
                _ => {
                    let requested = Instant::now();
                    *forced = Some(requested);
                    self.wake.notify_one();
                    requested
                }
            }
        };
        let answered = async {
            loop {
                if finished.borrow_and_update().is_some_and(|started| started >= requested) {
                    return true;
                }
                if finished.changed().await.is_err() {
                    return false;
                }
            }
        };
        let wait = http::REQUEST_TIMEOUT + Duration::from_secs(1);
        tokio::time::timeout(wait, answered).await.unwrap_or(false)
    }

    /// When the refresher should fetch next, after `failures` failed fetches in a row.
    fn next_fetch(&self, failures: u32) -> Instant {
        if failures == 0 {
            return self.current.load().fresh_until;
        }
        // 1 s, 2 s, 4 s … at most the longest max-age (and at most a minute).
        let backoff = Duration::from_secs(1 << failures.min(6)).min(self.settings.max_max_age);
        Instant::now() + backoff
    }

    /// One revalidation or fetch; the outcome replaces the current key set, or leaves it.
    async fn refresh(&self) -> Result<(), FetchError> {
        let started = Instant::now();
        let current = self.current.load_full();
        self.counters.fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = fetch(&self.client, &self.jwks_uri, current.etag.as_deref(), &self.settings).await;
        let result = match outcome {
            Ok(Fetched::New(fetched)) => {
                self.current.store(Arc::new(fetched));
                Ok(())
            }
            Ok(Fetched::NotModified { fresh_until, usable_until }) => {
                // The same keys, fresh again for the max-age that came with the 304.
                self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
                let renewed =
                    KeySet { keys: current.keys.clone(), etag: current.etag.clone(), fresh_until, usable_until };
                self.current.store(Arc::new(renewed));
                Ok(())
            }
            Err(error) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                Err(error)
            }
        };
        self.finished.send_replace(Some(started));
        result
    }
}

impl Drop for RemoteKeys {
    fn drop(&mut self) {
        // Lets the refresher see that it is no longer needed.
        self.wake.notify_one();
    }
}

/// The refresher: sleeps until the key set needs revalidating (or a fetch is asked for), fetches,
/// and ends once the key cache is dropped.
async fn refresh_while_alive(keys: Weak<RemoteKeys>, wake: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        let Some(next) = keys.upgrade().map(|keys| keys.next_fetch(failures)) else { return };
        let _ = tokio::time::timeout_at(next.into(), wake.notified()).await;
        let Some(keys) = keys.upgrade() else { return };
        match keys.refresh().await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                log::warn!("JWKS fetch failed ({failures} in a row); cached keys stay in use: {error}");
            }
        }
    }
}

/// What a fetch brought.
enum Fetched {
    /// A key set (200).
    New(KeySet),
    /// The same key set as before (304), with new freshness.
    NotModified { fresh_until: Instant, usable_until: Instant },
}

/// GET `jwks_uri`, conditional when `etag` is given.
async fn fetch(
    client: &Client,
    jwks_uri: &str,
    etag: Option<&str>,
    settings: &KeyCacheSettings,
) -> Result<Fetched, FetchError> {
    let mut request = client.get(jwks_uri).header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let response = http::send(request, jwks_uri).await?;
    let fetched_at = Instant::now();
    let fresh_for = freshness(response.headers(), settings);
    if response.status() == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified {
            fresh_until: fetched_at + fresh_for,
            usable_until: fetched_at + settings.max_stale,
        });
    }
    let etag = response.headers().get(ETAG).and_then(|value| value.to_str().ok()).map(str::to_string);
    let set: JwkSet = http::json(response, jwks_uri).await?;
    let keys = usable_keys(set);
    if keys.is_empty() {
        return Err(FetchError::invalid(jwks_uri, "no RS256 signing key in the key set"));
    }
    Ok(Fetched::New(KeySet {
        keys,
        etag,
        fresh_until: fetched_at + fresh_for,
        usable_until: fetched_at + settings.max_stale,
    }))
}

/// The RSA signature keys of `set` usable for RS256, by `kid`; others are skipped.
fn usable_keys(set: JwkSet) -> VerificationKeys {
    set.keys
        .into_iter()
        .filter(|jwk| jwk.kty == "RSA")
        .filter(|jwk| jwk.use_.as_deref().is_none_or(|use_| use_ == "sig"))
        .filter(|jwk| jwk.alg.as_deref().is_none_or(|alg| alg == "RS256"))
        .filter_map(|jwk| {
            let key = DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?;
            Some((jwk.kid?, key))
        })
        .collect()
}

/// How long a response may be used: its `max-age` (0 for `no-cache`/`no-store`; a default of
/// five minutes when absent), clamped to the configured bounds.
fn freshness(headers: &HeaderMap, settings: &KeyCacheSettings) -> Duration {
    let mut max_age = None;
    for directive in headers.get_all(CACHE_CONTROL).iter().filter_map(|value| value.to_str().ok()) {
        for directive in directive.split(',').map(str::trim) {
            let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                max_age = Some(0);
            } else if name.eq_ignore_ascii_case("max-age")
                && let Ok(seconds) = value.trim_matches('"').parse::<u64>()
            {
                max_age = Some(max_age.map_or(seconds, |known: u64| known.min(seconds)));
            }
        }
    }
    let max_age = Duration::from_secs(max_age.unwrap_or(300));
    max_age.clamp(settings.min_max_age, settings.max_max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn freshness_follows_max_age_within_bounds() {
        let settings = KeyCacheSettings::default();
        for (cache_control, expected) in [
            (None, 300),
            (Some("public, max-age=600"), 600),
            (Some("max-age=0"), 5),
            (Some("no-cache"), 5),
            (Some("max-age=999999"), 3600),
            (Some("max-age=banana"), 300),
            (Some("max-age=60, max-age=30"), 30),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(value) = cache_control {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static(value));
            }
            assert_eq!(freshness(&headers, &settings), Duration::from_secs(expected), "{cache_control:?}");
        }
    }

    #[test]
    fn only_rs256_signature_keys_are_kept() {
        let (n, e) = crate::fixtures::jwk_components();
        let jwk = |kty: &str, use_: Option<&str>, alg: Option<&str>, kid: Option<&str>| Jwk {
            kty: kty.into(),
            use_: use_.map(Into::into),
            alg: alg.map(Into::into),
            kid: kid.map(Into::into),
            n: Some(n.clone()),
            e: Some(e.clone()),
        };
        let set = JwkSet {
            keys: vec![
                jwk("RSA", Some("sig"), Some("RS256"), Some("a")),
                jwk("RSA", None, None, Some("b")),
                jwk("RSA", Some("enc"), None, Some("c")),
                jwk("RSA", None, Some("PS256"), Some("d")),
                jwk("EC", None, None, Some("e")),
                jwk("RSA", None, None, None),
                Jwk { n: Some("!!".into()), ..jwk("RSA", None, None, Some("f")) },
            ],
        };
        let mut kept: Vec<_> = usable_keys(set).into_keys().collect();
        kept.sort();
        assert_eq!(kept, ["a", "b"]);
    }
}
