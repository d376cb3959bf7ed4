//! The claims of a library-api access token (RFC 9068, the JWT profile for OAuth 2.0 access
//! tokens) and who they speak for.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const CLOCK_LEEWAY_SECS: i64 = 30;
/// The JOSE `typ` of an access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The group that makes a user an administrator.
pub const ADMIN_GROUP: &str = "admin";

/// The claims of every access token library-api issues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer's URL.
    pub iss: String,
    /// Who the token speaks for.
    pub sub: Subject,
    /// The audience: the API the token is for.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Unique per token; what a logout of this one token revokes.
    pub jti: Uuid,
    /// The OAuth client the token was issued to (RFC 9068 §2.2).
    pub client_id: String,
    /// The granted scopes, space-separated (RFC 9068 §2.2.3); `""` for none.
    pub scope: String,
    /// The session (one login and its chain of refresh tokens) a user's token was issued from;
    /// revoking the session ends every token of that login. Service tokens have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The user's name; service tokens have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's groups: `[]` or `["admin"]`.
    pub groups: Vec<String>,
}

impl AccessClaims {
    /// Whether the token carries the `admin` group.
    pub fn is_admin(&self) -> bool {
        self.in_group(ADMIN_GROUP)
    }

    /// Whether the token carries group `wanted`.
    pub fn in_group(&self, wanted: &str) -> bool {
        self.groups.iter().any(|group| group == wanted)
    }

    /// When the token stops being accepted anyway: `exp` plus the leeway.
    pub fn accepted_until(&self) -> i64 {
        self.exp.saturating_add(CLOCK_LEEWAY_SECS)
    }

    /// Whether the token carries scope `wanted`.
    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|scope| scope == wanted)
    }
}

/// Who a token speaks for: its `sub` claim (RFC 9068 §2.2): a user, named by their
/// `public_id` (a UUID), or a registered OAuth client acting for itself (client credentials),
/// named by its `client_id` (never a UUID). Code that needs a user asks [`Subject::user`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A registered user, by `public_id`.
    User(Uuid),
    /// A registered client, by `client_id`.
    Client(String),
}

impl Subject {
    /// The user's `public_id`, when the subject is a user.
    pub fn user(&self) -> Option<Uuid> {
        match self {
            Self::User(public_id) => Some(*public_id),
            Self::Client(_) => None,
        }
    }
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(public_id) => public_id.fmt(f),
            Self::Client(client_id) => f.write_str(client_id),
        }
    }
}

/// A `sub` that names nothing: empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("empty subject")]
pub struct EmptySubject;

impl std::str::FromStr for Subject {
    type Err = EmptySubject;

    /// The `sub` as written in a token or stored with a revocation: a UUID names a user,
    /// anything else a client.
    fn from_str(sub: &str) -> Result<Self, Self::Err> {
        match Uuid::parse_str(sub) {
            Ok(public_id) => Ok(Self::User(public_id)),
            Err(_) if sub.is_empty() => Err(EmptySubject),
            Err(_) => Ok(Self::Client(sub.to_string())),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sub = std::borrow::Cow::<str>::deserialize(deserializer)?;
        sub.parse().map_err(|_| serde::de::Error::custom("sub is not a known kind of subject"))
    }
}
