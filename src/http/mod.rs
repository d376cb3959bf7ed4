//! HTTP: the route table, extractors, and one module per resource. Handlers stay thin: parse
//! the request, call [`crate::service`], map the result (errors map in [`errors`]).

mod account;
mod admin;
mod auth;
mod authors;
mod clients;
mod conditional;
pub mod errors;
pub mod extract;
mod oauth;
mod observe;
pub mod openapi;
mod routes;
mod ssf;
mod users;
mod verify;
mod well_known;

pub use clients::ClientView;
pub use extract::TrustedProxies;
pub use observe::unmatched;
pub use routes::{RouteTable, route_table};

use crate::metrics::Metrics;
use actix_web::web::{self, ServiceConfig};
use errors::AppError;
use std::sync::Arc;

/// Registers every route of [`route_table`], observed into `metrics`.
pub fn routes(metrics: &Arc<Metrics>) -> impl FnOnce(&mut ServiceConfig) + '_ {
    move |cfg| route_table().register(cfg, metrics)
}

/// Path parameters that do not parse name nothing that exists.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| AppError::NotFound("no such resource").into())
}

/// A query string that does not fit its handler is a 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|error, _| AppError::bad_request("invalid_query", error.to_string()).into())
}
