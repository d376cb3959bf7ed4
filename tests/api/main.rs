//! Integration tests: each test starts the real service on port 0 with its own database.

mod abuse;
mod account;
mod architecture;
mod cli;
mod cluster;
mod concurrency;
mod durability;
mod errors;
mod files;
mod flows;
mod hardening;
mod helpers;
mod key_ring;
mod names;
mod oauth;
mod observability;
mod pages;
mod persistence;
mod schema;
mod sessions;
mod sidecar;
mod ssf;
mod tokens;
mod verifier;
