//! Prometheus metrics (`GET /metrics`, text exposition format). Counters are updated where the
//! events happen; gauges of state owned elsewhere (key ring, deny list, connection pool) are
//! read when scraped, so they are never stale.
//!
//! Hot paths hold metric handles, never label strings: looking a labelled series up by its
//! label values hashes strings and takes a lock on every request. [`RouteMetrics`] keeps one
//! route's handles, created on first use of each method and status and reused after.

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One registry per running service (tests run many services in one process).
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub tokens_issued: IssuedCounters,
    pub verifications: VerificationCounters,
    pub revocations: IntCounterVec,
    pub login_throttled: IntCounter,
    pub registrations_throttled: IntCounter,
    pub key_ring_keys: IntGaugeVec,
    pub key_ring_seconds_until_rotation: IntGauge,
    pub deny_list_entries: IntGauge,
    pub db_pool_connections: IntGaugeVec,
    pub ssf: SsfCounters,
}

/// The Shared Signals transmitter's metrics.
pub struct SsfCounters {
    /// Events queued, by event type (the URI's last segment): one per stream it is queued for.
    pub queued: IntCounterVec,
    /// SETs acknowledged by their receiver, by delivery method (`poll`, `push`).
    pub delivered: IntCounterVec,
    /// Failed deliveries, by method: pushes that failed, SETs a receiver reported as errors.
    pub failures: IntCounterVec,
    /// Events dropped unacknowledged, by why (`retention`, `disabled`, `deleted`).
    pub dropped: IntCounterVec,
    /// Age of the oldest event not yet acknowledged (0: none queued).
    pub oldest_unacknowledged_seconds: IntGauge,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("library_api".into()), None).expect("a valid prefix");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("registered once");
            metric
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(metric.clone())).expect("registered once");
            metric
        };
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "Time to answer a request, by route.")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route", "method"],
        )
        .expect("valid metric");
        registry.register(Box::new(http_duration.clone())).expect("registered once");
        let login_throttled =
            IntCounter::new("login_throttled_total", "Logins answered 429 by the throttle.").expect("valid");
        registry.register(Box::new(login_throttled.clone())).expect("registered once");
        let registrations_throttled =
            IntCounter::new("registrations_throttled_total", "Registrations answered 429 by the per-address limit.")
                .expect("valid");
        registry.register(Box::new(registrations_throttled.clone())).expect("registered once");
        let seconds = IntGauge::new("key_ring_seconds_until_rotation", "Seconds until the next key starts signing.")
            .expect("valid");
        registry.register(Box::new(seconds.clone())).expect("registered once");
        let deny =
            IntGauge::new("deny_list_entries", "Revoked tokens, sessions and users held in memory.").expect("valid");
        registry.register(Box::new(deny.clone())).expect("registered once");
        let oldest = IntGauge::new(
            "ssf_oldest_unacknowledged_event_age_seconds",
            "Age of the oldest Shared Signals event not yet acknowledged by its receiver.",
        )
        .expect("valid");
        registry.register(Box::new(oldest.clone())).expect("registered once");
        let ssf = SsfCounters {
            queued: counter("ssf_events_queued_total", "Shared Signals events queued, by event type.", &["event"]),
            delivered: counter(
                "ssf_events_delivered_total",
                "Security Event Tokens acknowledged by their receiver, by delivery method.",
                &["method"],
            ),
            failures: counter(
                "ssf_delivery_failures_total",
                "Failed SET deliveries (failed pushes, SETs a receiver refused), by method.",
                &["method"],
            ),
            dropped: counter("ssf_events_dropped_total", "Events dropped unacknowledged, by reason.", &["reason"]),
            oldest_unacknowledged_seconds: oldest,
        };
        Self {
            ssf,
            http_requests: counter(
                "http_requests_total",
                "Requests answered, by route, method and status.",
                &["route", "method", "status"],
            ),
            tokens_issued: IssuedCounters::new(&counter(
                "tokens_issued_total",
                "Access tokens issued, by grant.",
                &["grant"],
            )),
            verifications: VerificationCounters::new(&counter(
                "token_verifications_total",
                "Access token checks, by outcome.",
                &["outcome"],
            )),
            revocations: counter("revocations_total", "Revocations, by what they end.", &["kind"]),
            key_ring_keys: gauge("key_ring_keys", "Keys in the ring, by state (all are published).", &["state"]),
            db_pool_connections: gauge("db_pool_connections", "Database connections, by state.", &["state"]),
            http_duration,
            login_throttled,
            registrations_throttled,
            key_ring_seconds_until_rotation: seconds,
            deny_list_entries: deny,
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `token_verifications_total` by outcome, as handles (one per outcome).
pub struct VerificationCounters {
    pub valid: IntCounter,
    pub revoked: IntCounter,
    pub invalid: IntCounter,
}

impl VerificationCounters {
    fn new(by_outcome: &IntCounterVec) -> Self {
        Self {
            valid: by_outcome.with_label_values(&["valid"]),
            revoked: by_outcome.with_label_values(&["revoked"]),
            invalid: by_outcome.with_label_values(&["invalid"]),
        }
    }
}

/// `tokens_issued_total` by grant, as handles (one per grant).
pub struct IssuedCounters {
    pub password: IntCounter,
    pub refresh_token: IntCounter,
    pub client_credentials: IntCounter,
}

impl IssuedCounters {
    fn new(by_grant: &IntCounterVec) -> Self {
        Self {
            password: by_grant.with_label_values(&["password"]),
            refresh_token: by_grant.with_label_values(&["refresh_token"]),
            client_credentials: by_grant.with_label_values(&["client_credentials"]),
        }
    }
}

/// The methods a route's handles are kept for; any other method takes the labelled lookup.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// The statuses the service answers; any other status takes the labelled lookup.
const STATUSES: [u16; 17] = [200, 201, 204, 304, 400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 500, 503];

/// One route's request counters and latency histograms (`http_requests_total`,
/// `http_request_duration_seconds`), built once when the server starts.
pub struct RouteMetrics {
    route: &'static str,
    metrics: Arc<Metrics>,
    methods: [MethodMetrics; METHODS.len()],
}

#[derive(Default)]
struct MethodMetrics {
    duration: OnceLock<Histogram>,
    requests: [OnceLock<IntCounter>; STATUSES.len()],
}

impl RouteMetrics {
    /// Handles for `route` (a path pattern such as `/authors/{id}`, or `unmatched`).
    pub fn new(metrics: Arc<Metrics>, route: &'static str) -> Self {
        Self { route, metrics, methods: Default::default() }
    }

    /// The route pattern, as metrics and logs name it.
    pub fn route(&self) -> &'static str {
        self.route
    }

    /// Counts one request answered with `status` after `elapsed`.
    pub fn record(&self, method: &str, status: u16, elapsed: Duration) {
        let Some(index) = METHODS.iter().position(|known| *known == method) else {
            // Any other method (clients may invent them) counts as OTHER, so a client cannot
            // grow the number of series; rare, so the labelled lookup is fine.
            self.metrics.http_requests.with_label_values(&[self.route, "OTHER", &status.to_string()]).inc();
            self.metrics.http_duration.with_label_values(&[self.route, "OTHER"]).observe(elapsed.as_secs_f64());
            return;
        };
        let (method, slots) = (METHODS[index], &self.methods[index]);
        let duration =
            slots.duration.get_or_init(|| self.metrics.http_duration.with_label_values(&[self.route, method]));
        duration.observe(elapsed.as_secs_f64());
        match STATUSES.iter().position(|known| *known == status) {
            Some(at) => slots.requests[at]
                .get_or_init(|| {
                    self.metrics.http_requests.with_label_values(&[self.route, method, &status.to_string()])
                })
                .inc(),
            None => self.metrics.http_requests.with_label_values(&[self.route, method, &status.to_string()]).inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_count_like_labelled_lookups() {
        let metrics = Arc::new(Metrics::new());
        let route = RouteMetrics::new(metrics.clone(), "/authors/{id}");
        for (method, status) in [("GET", 200), ("GET", 200), ("GET", 404), ("BREW", 418), ("DELETE", 299)] {
            route.record(method, status, Duration::from_millis(1));
        }
        let count = |method: &str, status: &str| {
            metrics.http_requests.with_label_values(&["/authors/{id}", method, status]).get()
        };
        assert_eq!(
            (count("GET", "200"), count("GET", "404"), count("OTHER", "418"), count("DELETE", "299")),
            (2, 1, 1, 1)
        );
        assert_eq!(metrics.http_duration.with_label_values(&["/authors/{id}", "GET"]).get_sample_count(), 3);
        assert_eq!(route.route(), "/authors/{id}");
    }
}
