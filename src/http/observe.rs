//! What every request leaves behind: its count and latency in `/metrics`, and one access-log
//! line. Each resource of the route table is wrapped with its own [`RouteObserver`], built once
//! when the server starts, so a request costs neither an allocation for its route's name nor a
//! metric lookup by label strings.

use super::errors::AppError;
use crate::metrics::{Metrics, RouteMetrics};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{ResponseError as _, dev};
use std::sync::Arc;
use std::time::Instant;

/// The log target of the access log (`RUST_LOG=library_api::access=info` keeps only it).
const ACCESS_LOG: &str = "library_api::access";

/// Counts, times and logs the requests of one route.
pub struct RouteObserver {
    metrics: RouteMetrics,
    /// User records, errors included, are for the caller alone: no cache may keep them.
    personal: bool,
}

impl RouteObserver {
    /// An observer for the resource at `route`, or `unmatched` for requests no route serves.
    pub fn new(metrics: Arc<Metrics>, route: &'static str) -> Self {
        Self { personal: route.starts_with("/users"), metrics: RouteMetrics::new(metrics, route) }
    }

    /// Records the answer to a request that arrived at `started`.
    pub fn finish<B: MessageBody>(&self, response: &mut ServiceResponse<B>, started: Instant) {
        if self.personal {
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let elapsed = started.elapsed();
        let (method, status) = (response.request().method().as_str(), response.status().as_u16());
        self.metrics.record(method, status, elapsed);
        // Formatting a line costs more than answering /verify: only when someone reads it.
        if log::log_enabled!(target: ACCESS_LOG, log::Level::Info) {
            let request = response.request();
            let peer = request.peer_addr().map(|addr| addr.ip().to_string()).unwrap_or_else(|| "-".into());
            let size = match response.response().body().size() {
                actix_web::body::BodySize::Sized(bytes) => bytes.to_string(),
                _ => "-".into(),
            };
            // Never the query string, headers or body: they may hold secrets.
            log::info!(
                target: ACCESS_LOG,
                "{peer} {method} {route} {path} {status} {size} {ms:.3}ms",
                route = self.metrics.route(),
                path = request.path(),
                ms = elapsed.as_secs_f64() * 1000.0,
            );
        }
    }
}

/// The service for requests no route matches: a JSON 404, observed as route `unmatched`.
pub fn unmatched(
    metrics: Arc<Metrics>,
) -> impl dev::ServiceFactory<
    ServiceRequest,
    Config = (),
    Response = ServiceResponse,
    Error = actix_web::Error,
    InitError = (),
> {
    let observer = Arc::new(RouteObserver::new(metrics, "unmatched"));
    dev::fn_service(move |req: ServiceRequest| {
        let (observer, started) = (observer.clone(), Instant::now());
        async move {
            let mut response = req.into_response(AppError::NotFound("no such route").error_response());
            observer.finish(&mut response, started);
            Ok(response)
        }
    })
}
