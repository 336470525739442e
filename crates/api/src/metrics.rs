//! The API's Prometheus metrics and the `/metrics` endpoint.
//!
//! Requests are counted and timed by a middleware, labelled with the route
//! template (`/v1/tenants/{tenant}/instances`, never the tenant's name, so
//! the label set stays small and names do not leak); the live-status figures
//! are read from the hub at scrape time. Every name is listed in docs/observability.md.

use crate::hub::Hub;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The content type of the text exposition format prometheus-client writes.
pub const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: &'static str,
}

/// The API's metrics.
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    watch_errors: Family<WatchLabels, Counter>,
    hub: Arc<OnceLock<Arc<Hub>>>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            // 0.5 ms .. ~16 s
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))),
            watch_errors: Family::default(),
            hub: Arc::default(),
        }
    }
}

impl ApiMetrics {
    /// Metrics registered in `registry` (give it the prefix `paddock`).
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        registry.register("api_requests", "API requests by route, method and status code", m.requests.clone());
        registry.register_with_unit(
            "api_request_duration",
            "API request latency (to the response head; streams are not timed to their end) by route and method",
            Unit::Seconds,
            m.duration.clone(),
        );
        registry.register(
            "api_watch_errors",
            "Errors of the API's watches (credentials, tenants, templates, instances); each restarts the watch",
            m.watch_errors.clone(),
        );
        registry.register_collector(Box::new(HubCollector(m.hub.clone())));
        Arc::new(m)
    }

    /// The hub the SSE figures are read from.
    pub fn watch_hub(&self, hub: Arc<Hub>) {
        let _ = self.hub.set(hub);
    }

    pub fn watch_error(&self, watch: &'static str) {
        self.watch_errors.get_or_create(&WatchLabels { watch }).inc();
    }

    fn request(&self, route: String, method: String, code: u16, seconds: f64) {
        self.duration.get_or_create(&RouteLabels { route: route.clone(), method: method.clone() }).observe(seconds);
        self.requests.get_or_create(&RequestLabels { route, method, code }).inc();
    }
}

/// A registry and the API metrics in it: what `/metrics` serves.
#[derive(Clone)]
pub struct Telemetry {
    pub registry: Arc<Registry>,
    pub api: Arc<ApiMetrics>,
    /// The reconcilers' metrics when they run in this process (their health
    /// is then the process's: `/healthz`).
    pub controller: Option<Arc<controller::metrics::Metrics>>,
    /// Requests this process sent to the API server
    /// (`paddock_kube_requests_total`), the reconcilers' included.
    pub requests: controller::requests::Requests,
}

impl Telemetry {
    /// A registry holding only the API's metrics.
    pub fn api_only() -> Self {
        let mut registry = Registry::with_prefix("paddock");
        let api = ApiMetrics::register(&mut registry);
        let requests = controller::requests::Requests::default();
        requests.register(&mut registry);
        Self { registry: Arc::new(registry), api, controller: None, requests }
    }

    /// A registry holding the controller's and the API's metrics (`paddock
    /// serve`, `paddock dev`).
    pub fn with_controller() -> (Self, Arc<controller::metrics::Metrics>) {
        let mut registry = Registry::with_prefix("paddock");
        let controller = controller::metrics::Metrics::register(&mut registry);
        let api = ApiMetrics::register(&mut registry);
        let requests = controller.requests.clone();
        (Self { registry: Arc::new(registry), api, controller: Some(controller.clone()), requests }, controller)
    }
}

/// A registry in the text exposition format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// The answer to `GET /metrics`.
pub fn exposition(registry: &Registry) -> Response {
    match render(registry) {
        Ok(body) => ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Counts and times every request by its route template, and tells the
/// client how long the API took in a `Server-Timing: app;dur=<ms>` header
/// (W3C Server Timing; a streamed answer's is the time to its first byte).
pub async fn track(State(m): State<Arc<ApiMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().into());
    let method = req.method().to_string();
    let mut response = next.run(req).await;
    let took = started.elapsed().as_secs_f64();
    m.request(route, method, response.status().as_u16(), took);
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={:.3}", took * 1000.0)) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

/// Live-status figures read from the hub at scrape time.
struct HubCollector(Arc<OnceLock<Arc<Hub>>>);

impl std::fmt::Debug for HubCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubCollector")
    }
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(hub) = self.0.get() else { return Ok(()) };
        let s = &hub.stats;
        let g = ConstGauge::new(s.clients.load(Ordering::Relaxed) as i64);
        g.encode(encoder.encode_descriptor("sse_clients", "Open SSE streams", None, g.metric_type())?)?;
        let counters = [
            (
                "sse_events",
                "Instance status events the hub emitted (each fanned out to the streams that see it)",
                &s.events,
            ),
            ("sse_deliveries", "SSE frames written to clients (events, snapshots and replays)", &s.delivered),
            ("api_watch_starts", "Times the API's shared Instance watch (re)started with a full list", &s.watch_starts),
        ];
        for (name, help, v) in counters {
            let c = ConstCounter::new(v.load(Ordering::Relaxed));
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}
