//! Verifies library-api access tokens in other services.
//!
//! - [`Verifier`] is configured with the issuer's URL and the audience; it finds the `jwks_uri`
//!   in the issuer's metadata (RFC 8414), caches the JWKS (honouring `Cache-Control: max-age`,
//!   revalidating with `If-None-Match`, refetching on an unknown `kid` at most once per cooldown,
//!   serving cached keys for a bounded time while the issuer is unreachable) and checks every
//!   token with the issuer's own policy ([`VerificationPolicy`]: the service verifies through
//!   this crate too, so the two cannot drift).
//! - Optionally it follows the issuer's revocations over its Shared Signals stream (RFC 8936
//!   poll delivery; see [`VerifierBuilder::follow_revocations`]): logouts, ended sessions, role
//!   changes and deleted users are refused within seconds, without a call per request.
//! - With the `actix-web` feature (on by default), [`Authenticated`] is an extractor that answers
//!   RFC 6750 401/403 challenges; other frameworks call [`Verifier::verify`].
//!
//! The building blocks the issuer uses itself are public too: [`verify`] (the whole policy
//! against a key set, at a given time), [`VerifiedTokenCache`] and [`DenyList`].

#![warn(missing_docs)]

#[cfg(feature = "actix-web")]
mod actix;
mod cache;
mod claims;
mod deny_list;
mod discovery;
mod events;
mod follower;
mod http;
mod jwks;
mod policy;
mod remote;

#[cfg(test)]
mod fixtures;

/// The README's examples, compiled as doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(feature = "actix-web")]
pub use actix::{AuthError, Authenticated};
pub use cache::VerifiedTokenCache;
pub use claims::{
    ACCESS_TOKEN_TYPE, ADMIN_GROUP, AccessClaims, CLOCK_LEEWAY_SECS, EmptySubject, MAX_TOKEN_BYTES, Subject,
};
pub use deny_list::{Denial, DenyList, DenyListEntries, DenyListWriter, SubjectCutoff, SubjectRevocation};
pub use events::SECURITY_EVENT_TOKEN_TYPE;
pub use http::FetchError;
pub use policy::{TokenRejection, VerificationKeys, VerificationPolicy, check_times, verify, verify_signature};
pub use remote::{SetupError, Verifier, VerifierBuilder, VerifierStats};
