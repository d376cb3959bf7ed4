//! Integration tests: each test starts the real service on port 0 with its own database.

mod architecture;
mod cli;
mod cluster;
mod concurrency;
mod durability;
mod errors;
mod flows;
mod hardening;
mod helpers;
mod key_ring;
mod oauth;
mod observability;
mod persistence;
mod schema;
mod sessions;
mod sidecar;
mod tokens;
