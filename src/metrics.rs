//! Prometheus metrics (`GET /metrics`, text exposition format). Counters are updated where the
//! events happen; gauges of state owned elsewhere (key ring, deny list, connection pool) are
//! read when scraped, so they are never stale.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// One registry per running service (tests run many services in one process).
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub tokens_issued: IntCounterVec,
    pub verifications: IntCounterVec,
    pub revocations: IntCounterVec,
    pub login_throttled: IntCounter,
    pub registrations_throttled: IntCounter,
    pub key_ring_keys: IntGaugeVec,
    pub key_ring_seconds_until_rotation: IntGauge,
    pub deny_list_entries: IntGauge,
    pub db_pool_connections: IntGaugeVec,
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
        Self {
            http_requests: counter(
                "http_requests_total",
                "Requests answered, by route, method and status.",
                &["route", "method", "status"],
            ),
            tokens_issued: counter("tokens_issued_total", "Access tokens issued, by grant.", &["grant"]),
            verifications: counter("token_verifications_total", "Access token checks, by outcome.", &["outcome"]),
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
