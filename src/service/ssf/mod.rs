//! The Shared Signals transmitter (OpenID SSF 1.0, CAEP 1.0, RISC): other services learn of
//! session ends, password and role changes and deletions from Security Event Tokens (RFC 8417)
//! they poll (RFC 8936) or receive by push (RFC 8935).
//!
//! - `events`: the events and the outbox they are queued in, in the transaction of the change;
//! - `streams`: stream management (SSF §8.1) for receivers, registered clients with scope `ssf`;
//! - `poll`: RFC 8936 delivery, with long polling;
//! - `push`: RFC 8935 delivery, the background worker, and the retention sweep.

pub mod events;
pub mod poll;
pub mod push;
pub mod streams;

use super::Failure;
use crate::config::SsfSettings;
use crate::master_key::MasterKey;
use std::sync::Arc;
use tokio::sync::watch;
use zeroize::Zeroizing;

/// `delivery.method` of a poll stream (RFC 8936).
pub const POLL_METHOD: &str = "urn:ietf:rfc:8936";
/// `delivery.method` of a push stream (RFC 8935).
pub const PUSH_METHOD: &str = "urn:ietf:rfc:8935";
/// The scope a client needs to manage its stream and poll it.
pub const SSF_SCOPE: &str = "ssf";

/// The transmitter's shared state: its settings, the key that seals push `Authorization`
/// headers, and the bell rung after a transaction that queued events commits (long polls and
/// the push worker wait on it instead of only re-reading the table).
pub struct Transmitter {
    pub settings: SsfSettings,
    master_key: Arc<MasterKey>,
    bell: watch::Sender<u64>,
}

impl Transmitter {
    pub fn new(settings: SsfSettings, master_key: Arc<MasterKey>) -> Self {
        Self { settings, master_key, bell: watch::Sender::new(0) }
    }

    /// Tells waiting deliveries that events may have been queued (call after the commit).
    pub fn ring(&self) {
        self.bell.send_modify(|rings| *rings = rings.wrapping_add(1));
    }

    /// A listener for [`Transmitter::ring`].
    pub fn listen(&self) -> watch::Receiver<u64> {
        self.bell.subscribe()
    }

    /// Seals a push stream's `Authorization` header value (AES-256-GCM under the master key,
    /// bound to the stream: a sealed value moved to another stream does not open).
    fn seal_authorization(&self, stream_id: &str, header: &str) -> Result<Vec<u8>, Failure> {
        self.master_key
            .seal(&authorization_label(stream_id), header.as_bytes())
            .map_err(|error| Failure::Internal(error.to_string()))
    }

    /// Opens what [`Transmitter::seal_authorization`] sealed.
    fn open_authorization(&self, stream_id: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failure> {
        self.master_key
            .open(&authorization_label(stream_id), sealed)
            .map_err(|error| Failure::Internal(error.to_string()))
    }
}

/// The associated data a stream's sealed `Authorization` header is bound to (never a key id:
/// those are base64url thumbprints, without spaces).
pub fn authorization_label(stream_id: &str) -> String {
    format!("ssf stream {stream_id} authorization")
}

/// Why a stream operation or a poll was refused.
#[derive(Debug, thiserror::Error)]
pub enum SsfError {
    /// Not a client acting for itself with scope `ssf`.
    #[error("a receiver's client-credentials token with scope `ssf` is required")]
    NotAReceiver,
    /// No stream of the caller's has that id (another client's is not disclosed).
    #[error("no such stream")]
    NoSuchStream,
    /// The caller has a stream already (one per receiver).
    #[error("this receiver has a stream already")]
    StreamExists,
    #[error("{0}")]
    Invalid(String),
    /// A verification was asked for sooner than `min_verification_interval` after the last.
    #[error("verification requested too soon")]
    VerifiedRecently { retry_after_secs: i64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<diesel::result::Error> for SsfError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Failure(error.into())
    }
}

super::failures_pass_through!(SsfError);

/// The SET of queued event `event` for audience `aud`, signed now with the current key.
pub fn signed_set(
    issuer: &crate::tokens::TokenIssuer,
    aud: &str,
    event: &crate::db::ssf::EventRow,
) -> Result<String, Failure> {
    let stored = |json: &str| {
        serde_json::from_str::<serde_json::Value>(json)
            .map_err(|error| Failure::Internal(format!("stored event {}: {error}", event.jti)))
    };
    let claims = crate::tokens::SecurityEventClaims::new(
        &issuer.issuer,
        aud,
        event.created_at.and_utc().timestamp(),
        (&event.jti, &event.txn),
        stored(&event.subject)?,
        &event.event_type,
        stored(&event.payload)?,
    );
    Ok(issuer.sign_event(&claims)?)
}
