//! The revocation follower: a receiver of the issuer's Shared Signals stream (SSF 1.0 with RFC
//! 8936 poll delivery) that turns session, subject and account events into deny-list entries.
//!
//! - It authenticates with its own client's credentials (RFC 6749 §4.4, scope `ssf`) and
//!   creates that client's poll stream when there is none. A stream's events go to whoever
//!   acknowledges them, so each replica of a service needs a client of its own.
//! - Each SET is verified against the issuer's key set ([`crate::events::verify_event`]),
//!   applied to the deny list, saved (when a file is configured), and only then acknowledged,
//!   in the next poll: an event is never acknowledged before it is kept. A SET that does not
//!   verify is reported back as a `setErrs` entry (RFC 8936 §2.4.4).
//! - While the issuer cannot be reached it retries with backoff; the issuer keeps every
//!   unacknowledged event, so nothing is missed when it returns.

use crate::deny_list::{DenyList, DenyListEntries, DenyListWriter, SubjectCutoff};
use crate::discovery::transmitter_metadata;
use crate::events::{REQUESTED_EVENTS, Revocation, revocation_of, verify_event};
use crate::http::{self, FetchError};
use crate::jwks::RemoteKeys;
use crate::policy::TokenRejection;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RFC 8936 poll delivery.
const POLL_DELIVERY: &str = "urn:ietf:rfc:8936";
/// SETs asked for per poll.
const MAX_EVENTS: usize = 100;
/// A poll may be held open by the transmitter (long poll); allow for it.
const POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// The longest pause between retries while the issuer is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The shortest time between two polls that brought nothing (a transmitter that answers at
/// once instead of holding the poll open must not make this loop spin).
const MIN_EMPTY_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Access tokens are reused for at most this long, whatever their `expires_in`.
const MAX_TOKEN_REUSE: Duration = Duration::from_secs(3600);
/// How often entries that no longer matter are dropped.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Who the follower is and how long its entries matter.
#[derive(Clone)]
pub(crate) struct FollowerSettings {
    pub client_id: String,
    pub client_secret: String,
    /// Where the deny list is saved, if anywhere.
    pub save_to: Option<PathBuf>,
    /// The longest lifetime of the issuer's access tokens: how long an entry is kept.
    pub max_token_lifetime: Duration,
}

impl std::fmt::Debug for FollowerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("save_to", &self.save_to)
            .finish()
    }
}

/// Counters of the follower, for [`crate::VerifierStats`].
#[derive(Debug, Default)]
pub(crate) struct FollowerCounters {
    pub polls: AtomicU64,
    pub poll_failures: AtomicU64,
    pub events_received: AtomicU64,
    pub revocations_applied: AtomicU64,
    pub events_rejected: AtomicU64,
    /// Whether the last poll succeeded.
    pub connected: AtomicBool,
}

/// A running follower's state.
pub(crate) struct Follower {
    client: Client,
    issuer: String,
    token_endpoint: String,
    configuration_endpoint: String,
    status_endpoint: Option<String>,
    settings: FollowerSettings,
    keys: Arc<RemoteKeys>,
    list: Arc<DenyList>,
    writer: DenyListWriter,
    counters: Arc<FollowerCounters>,
    poll_url: String,
    access_token: Option<(String, Instant)>,
    last_prune: Instant,
}

/// What one poll leaves to send with the next.
#[derive(Default)]
struct Answer {
    ack: Vec<String>,
    set_errs: Map<String, Value>,
}

/// What one poll brought.
struct Polled {
    /// Acknowledgements and errors for the next poll.
    answer: Answer,
    /// Whether to pause before the next poll (an event could not be checked yet, or the
    /// stream had to be made again).
    retry_soon: bool,
    /// SETs received.
    received: usize,
}

#[derive(Deserialize)]
struct PollResponse {
    #[serde(default)]
    sets: Map<String, Value>,
    #[serde(default, rename = "moreAvailable")]
    more_available: bool,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// The deny-list file: a version and the entries.
#[derive(Serialize, Deserialize)]
struct SavedDenyList {
    version: u32,
    #[serde(flatten)]
    entries: DenyListEntries,
}

/// Reads a deny list saved by [`Follower`]; an absent file is an empty list.
pub(crate) fn load_deny_list(path: &Path) -> Result<DenyListEntries, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let saved: SavedDenyList = serde_json::from_slice(&bytes).map_err(|error| error.to_string())?;
            if saved.version != 1 {
                return Err(format!("unknown version {}", saved.version));
            }
            Ok(saved.entries)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(DenyListEntries::default()),
        Err(error) => Err(error.to_string()),
    }
}

/// Writes `entries` to `path` whole or not at all (a temporary file, synced, then renamed).
fn save_deny_list(path: &Path, entries: DenyListEntries) -> std::io::Result<()> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    let bytes = serde_json::to_vec(&SavedDenyList { version: 1, entries }).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the directory is synced.
    match path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        Some(directory) => std::fs::File::open(directory)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before they go into Basic.
fn form_encoded(value: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(value, UNRESERVED).to_string()
}

impl Follower {
    /// Finds the transmitter, gets a token and makes sure the client's poll stream exists, so
    /// that every event from now on reaches this follower.
    #[expect(clippy::too_many_arguments, reason = "the parts a verifier hands its follower, once")]
    pub async fn start(
        client: Client,
        issuer: &str,
        token_endpoint: String,
        settings: FollowerSettings,
        keys: Arc<RemoteKeys>,
        list: Arc<DenyList>,
        writer: DenyListWriter,
        counters: Arc<FollowerCounters>,
    ) -> Result<Self, FetchError> {
        let metadata = transmitter_metadata(&client, issuer).await?;
        let mut follower = Self {
            client,
            issuer: issuer.to_string(),
            token_endpoint,
            configuration_endpoint: metadata.configuration_endpoint,
            status_endpoint: metadata.status_endpoint,
            settings,
            keys,
            list,
            writer,
            counters,
            poll_url: String::new(),
            access_token: None,
            last_prune: Instant::now(),
        };
        follower.poll_url = follower.stream_endpoint().await?;
        follower.counters.connected.store(true, Ordering::Relaxed);
        Ok(follower)
    }

    /// Polls until `alive` has no strong reference left (the verifier is dropped; checked
    /// between polls, so within one long poll).
    pub async fn run(mut self, alive: Weak<()>) {
        let mut answer = Answer::default();
        let mut failures = 0u32;
        while alive.strong_count() > 0 {
            let started = Instant::now();
            match self.poll(&answer).await {
                Ok(polled) => {
                    answer = polled.answer;
                    failures = if polled.retry_soon { failures.saturating_add(1) } else { 0 };
                    self.counters.connected.store(true, Ordering::Relaxed);
                    if polled.received == 0 && failures == 0 {
                        tokio::time::sleep(MIN_EMPTY_POLL_INTERVAL.saturating_sub(started.elapsed())).await;
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    self.counters.poll_failures.fetch_add(1, Ordering::Relaxed);
                    self.counters.connected.store(false, Ordering::Relaxed);
                    log::warn!("revocation stream: poll failed ({failures} in a row), retrying: {error}");
                }
            }
            if failures > 0 {
                // 0.5 s, 1 s, 2 s … at most MAX_BACKOFF.
                let backoff = Duration::from_millis(250 << failures.min(8)).min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
            }
            self.prune_now_and_then();
        }
    }

    /// One poll: sends `previous`'s acknowledgements and errors, applies what comes back.
    async fn poll(&mut self, previous: &Answer) -> Result<Polled, FetchError> {
        let token = self.access_token().await?;
        let body = json!({
            "maxEvents": MAX_EVENTS,
            "returnImmediately": false,
            "ack": previous.ack,
            "setErrs": previous.set_errs,
        });
        let request = self.client.post(&self.poll_url).bearer_auth(token).json(&body).timeout(POLL_TIMEOUT);
        let response = http::send(request, &self.poll_url).await?;
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        match response.status() {
            StatusCode::UNAUTHORIZED => {
                self.access_token = None;
                return Err(FetchError::Status { url: self.poll_url.clone(), status: StatusCode::UNAUTHORIZED });
            }
            StatusCode::NOT_FOUND => {
                log::warn!("revocation stream: the stream is gone; creating a new one (events meanwhile are lost)");
                self.poll_url = self.stream_endpoint().await?;
                return Ok(Polled { answer: Answer::default(), retry_soon: true, received: 0 });
            }
            _ => {}
        }
        let polled: PollResponse = http::json(response, &self.poll_url).await?;
        if polled.more_available {
            log::debug!("revocation stream: more events available");
        }
        let received = polled.sets.len();
        let (answer, retry_soon) = self.apply(polled.sets).await?;
        Ok(Polled { answer, retry_soon, received })
    }

    /// Verifies and applies `sets`, saves the deny list, and returns their acknowledgements.
    async fn apply(&mut self, sets: Map<String, Value>) -> Result<(Answer, bool), FetchError> {
        let mut answer = Answer::default();
        let mut changed = false;
        let mut retry_soon = false;
        for (jti, set) in sets {
            self.counters.events_received.fetch_add(1, Ordering::Relaxed);
            let Some(set) = set.as_str() else {
                answer.set_errs.insert(jti, set_error("invalid_request", "not a compact JWS"));
                continue;
            };
            match self.verify(set).await {
                Ok(claims) if claims.jti == jti => {
                    changed |= self.deny(revocation_of(&claims));
                    answer.ack.push(jti);
                }
                Ok(_) => {
                    answer.set_errs.insert(jti, set_error("invalid_request", "jti differs from its key in sets"));
                }
                Err(TokenRejection::UnknownKey | TokenRejection::KeysUnavailable) => {
                    // Not acknowledged: it comes back once the key is known.
                    retry_soon = true;
                }
                Err(rejection) => {
                    self.counters.events_rejected.fetch_add(1, Ordering::Relaxed);
                    log::warn!("revocation stream: SET {jti} refused: {rejection}");
                    answer.set_errs.insert(jti, set_error("invalid_key", &rejection.to_string()));
                }
            }
        }
        if changed {
            self.save().await.map_err(|error| FetchError::invalid(&self.poll_url, error))?;
        }
        Ok((answer, retry_soon))
    }

    /// The SET's claims, refetching the issuer's keys (within the cooldown) for an unknown kid.
    async fn verify(&self, set: &str) -> Result<crate::events::EventClaims, TokenRejection> {
        let keys = self.keys.usable()?;
        match verify_event(set, &keys.keys, &self.issuer, &self.settings.client_id) {
            Err(TokenRejection::UnknownKey) if self.keys.after_unknown_kid(&keys).await => {
                verify_event(set, &self.keys.usable()?.keys, &self.issuer, &self.settings.client_id)
            }
            outcome => outcome,
        }
    }

    /// Adds `revocation` to the deny list; whether it changed anything.
    fn deny(&self, revocation: Revocation) -> bool {
        let now = unix_now();
        let lifetime = i64::try_from(self.settings.max_token_lifetime.as_secs()).unwrap_or(i64::MAX);
        let keep_until = now.saturating_add(lifetime);
        match revocation {
            Revocation::Session(sid) => self.writer.deny_sessions([sid], keep_until),
            Revocation::IssuedBefore(subject, since) => self.writer.deny_subject(
                subject,
                SubjectCutoff { valid_after: since, keep_until: since.max(now).saturating_add(lifetime) },
            ),
            Revocation::Everything(subject) => {
                self.writer.deny_subject(subject, SubjectCutoff { valid_after: i64::MAX, keep_until })
            }
            Revocation::Nothing => return false,
        }
        self.counters.revocations_applied.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Saves the deny list when a file is configured, off the async workers.
    async fn save(&self) -> Result<(), String> {
        let Some(path) = self.settings.save_to.clone() else { return Ok(()) };
        let entries = self.list.entries();
        tokio::task::spawn_blocking(move || save_deny_list(&path, entries))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| format!("saving the deny list: {error}"))
    }

    fn prune_now_and_then(&mut self) {
        if self.last_prune.elapsed() >= PRUNE_INTERVAL {
            self.writer.prune(unix_now());
            self.last_prune = Instant::now();
        }
    }

    /// A client-credentials access token with scope `ssf`, reused until shortly before it expires.
    async fn access_token(&mut self) -> Result<String, FetchError> {
        if let Some((token, refresh_at)) = &self.access_token
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let request = self
            .client
            .post(&self.token_endpoint)
            .basic_auth(form_encoded(&self.settings.client_id), Some(form_encoded(&self.settings.client_secret)))
            .form(&[("grant_type", "client_credentials"), ("scope", "ssf")]);
        let response = http::send(request, &self.token_endpoint).await?;
        let granted: TokenResponse = http::json(response, &self.token_endpoint).await?;
        let lifetime = Duration::from_secs(granted.expires_in.unwrap_or(60)).min(MAX_TOKEN_REUSE);
        let refresh_at = Instant::now() + lifetime.saturating_sub(Duration::from_secs(30)).max(lifetime / 2);
        self.access_token = Some((granted.access_token.clone(), refresh_at));
        Ok(granted.access_token)
    }

    /// The poll URL of this client's stream, created (poll delivery, the events followed) when
    /// the client has none.
    async fn stream_endpoint(&mut self) -> Result<String, FetchError> {
        let token = self.access_token().await?;
        let url = self.configuration_endpoint.clone();
        let response = http::send(self.client.get(&url).bearer_auth(&token), &url).await?;
        let existing = match response.status() {
            StatusCode::NOT_FOUND => None,
            _ => match http::json::<Value>(response, &url).await? {
                Value::Array(streams) => streams.into_iter().next(),
                stream @ Value::Object(_) => Some(stream),
                _ => None,
            },
        };
        let stream = match existing {
            Some(stream) => stream,
            None => {
                let body = json!({
                    "delivery": {"method": POLL_DELIVERY},
                    "events_requested": REQUESTED_EVENTS,
                    "description": "library-api-verifier revocation follower",
                });
                let response = http::send(self.client.post(&url).bearer_auth(&token).json(&body), &url).await?;
                http::json::<Value>(response, &url).await?
            }
        };
        let delivery = &stream["delivery"];
        if delivery["method"] != POLL_DELIVERY {
            return Err(FetchError::invalid(
                &url,
                format!(
                    "client {}'s stream delivers by {}; a follower needs a client of its own with a poll stream",
                    self.settings.client_id, delivery["method"]
                ),
            ));
        }
        let poll_url = delivery["endpoint_url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| FetchError::invalid(&url, "the stream has no endpoint_url"))?;
        let stream_id = stream["stream_id"].as_str().unwrap_or_default().to_string();
        self.request_every_followed_event(&stream, &stream_id, &token).await?;
        self.enable(&stream_id, &token).await?;
        log::info!("following revocations on stream {stream_id} as client {}", self.settings.client_id);
        Ok(poll_url)
    }

    /// Adds the followed event types a stream made earlier (by hand, or by an older follower)
    /// does not request.
    async fn request_every_followed_event(
        &self,
        stream: &Value,
        stream_id: &str,
        token: &str,
    ) -> Result<(), FetchError> {
        let requested: Vec<&str> =
            stream["events_requested"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if REQUESTED_EVENTS.iter().all(|event| requested.contains(event)) {
            return Ok(());
        }
        let mut events: Vec<&str> = requested;
        events.extend(REQUESTED_EVENTS.iter().filter(|event| !events.contains(event)).collect::<Vec<_>>());
        let url = &self.configuration_endpoint;
        let body = json!({"stream_id": stream_id, "events_requested": events});
        let response = http::send(self.client.patch(url).bearer_auth(token).json(&body), url).await?;
        http::json::<Value>(response, url).await.map(|_| log::info!("revocation stream: now requesting {events:?}"))
    }

    /// Makes sure the stream is enabled: a paused stream holds its events and a disabled one
    /// drops them, and either would leave revocations unseen while polls succeed.
    async fn enable(&self, stream_id: &str, token: &str) -> Result<(), FetchError> {
        let Some(url) = self.status_endpoint.as_deref() else { return Ok(()) };
        let query_url = format!("{url}?stream_id={}", form_encoded(stream_id));
        let response = http::send(self.client.get(&query_url).bearer_auth(token), url).await?;
        let status: Value = http::json(response, url).await?;
        if status["status"] == "enabled" {
            return Ok(());
        }
        log::warn!(
            "revocation stream: the stream was {} ({}); enabling it (a disabled stream dropped its events)",
            status["status"],
            status["reason"]
        );
        let body = json!({"stream_id": stream_id, "status": "enabled", "reason": "library-api-verifier started"});
        let response = http::send(self.client.post(url).bearer_auth(token).json(&body), url).await?;
        http::json::<Value>(response, url).await.map(|_| ())
    }
}

/// An RFC 8936 §2.4.4 `setErrs` member.
fn set_error(code: &str, description: &str) -> Value {
    json!({"err": code, "description": description})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Subject;
    use uuid::Uuid;

    #[test]
    fn a_saved_deny_list_loads_back_and_a_missing_one_is_empty() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("deny.json");
        assert_eq!(load_deny_list(&path), Ok(DenyListEntries::default()));
        let entries = DenyListEntries {
            tokens: vec![(Uuid::new_v4(), 10)],
            sessions: vec![(Uuid::new_v4(), 20)],
            subjects: vec![(Subject::User(Uuid::new_v4()), SubjectCutoff { valid_after: i64::MAX, keep_until: 30 })],
        };
        save_deny_list(&path, entries.clone()).expect("save");
        assert_eq!(load_deny_list(&path), Ok(entries));
        std::fs::write(&path, b"{not json").expect("write");
        assert!(load_deny_list(&path).is_err(), "a damaged file is an error, not an empty list");
    }

    #[test]
    fn client_credentials_are_form_encoded_for_basic() {
        assert_eq!(form_encoded("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(form_encoded("a b:c/+"), "a%20b%3Ac%2F%2B");
    }
}
