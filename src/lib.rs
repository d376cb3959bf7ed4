//! library-api: registers users, issues RS256 access tokens from an encrypted RSA key ring,
//! publishes the JWKS and serves a small authors API. `main.rs` only parses the command line and
//! calls into [`startup`] or [`cli`].

pub mod actors;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod key_schedule;
pub mod key_store;
pub mod master_key;
pub mod metrics;
pub mod schema;
pub mod service;
pub mod startup;
pub mod tokens;
