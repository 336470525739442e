//! The controller's Prometheus metrics (prometheus-client, no global
//! registry): what [`Metrics::register`] puts in a registry is what
//! `/metrics` serves. Counters and histograms are updated where things
//! happen; gauges of state (instances by phase, warm pools, leadership) are
//! read from the controller's caches at scrape time, so they cannot drift.
//!
//! Every name and label is listed in docs/observability.md.

use crate::leader::Leadership;
use crate::pool::Pools;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use resources::Instance;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: &'static str,
    /// `success`, `waiting` (something still in progress) or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaunchLabels {
    /// `warm` (claimed from a pool) or `cold`.
    pub launch: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub launch: &'static str,
    /// `scheduled`, `pulled` or `ready`.
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: &'static str,
    /// `Normal` or `Warning`.
    pub r#type: &'static str,
    pub reason: String,
}

/// What an error is, for `paddock_reconcile_errors_total{category}`.
pub trait Categorize {
    /// `None` when it is not a failure (waiting for something in progress).
    fn category(&self) -> Option<&'static str>;
}

impl Categorize for kube::Error {
    fn category(&self) -> Option<&'static str> {
        Some(match self {
            kube::Error::Api(s) => match s.code {
                409 => "conflict",
                404 => "not_found",
                403 => "forbidden",
                400 | 422 => "invalid",
                429 => "throttled",
                c if c >= 500 => "server",
                _ => "api",
            },
            kube::Error::SerdeError(_) => "decode",
            _ => "transport",
        })
    }
}

impl Categorize for crate::error::Error {
    fn category(&self) -> Option<&'static str> {
        match self {
            crate::error::Error::Kube(e) => e.category(),
            crate::error::Error::Finalizer(_) => Some("finalizer"),
            crate::error::Error::Waiting(_) => None,
            crate::error::Error::Panicked(_) => Some("panic"),
            crate::error::Error::Sealed(_) => Some("sealed"),
        }
    }
}

/// The caches the scrape-time gauges read, filled in as the reconcilers start.
#[derive(Default)]
struct Views {
    instances: Mutex<Option<Store<Instance>>>,
    pools: Mutex<Option<Arc<Pools>>>,
    leadership: Mutex<Option<Leadership>>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Views")
    }
}

/// The controller's metrics. `Metrics::default()` records into nothing that
/// is served (tests, and callers without `/metrics`).
pub struct Metrics {
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_seconds: Family<ControllerLabel, Histogram>,
    errors: Family<ErrorLabels, Counter>,
    start_seconds: Family<LaunchLabels, Histogram>,
    start_phase_seconds: Family<PhaseLabels, Histogram>,
    watch_restarts: Family<ControllerLabel, Counter>,
    events: Family<EventLabels, Counter>,
    events_dropped: Family<KindLabel, Counter>,
    idle: Family<IdleLabels, Counter>,
    cluster_repairs: Family<RepairLabels, Counter>,
    resumes: Family<TemplateLabel, Counter>,
    views: Arc<Views>,
    /// Requests this process's clients sent to the API server.
    pub requests: crate::requests::Requests,
    /// Why a reconciler stopped while it should be running, if one did.
    stopped: Mutex<Option<String>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepairLabels {
    /// `ApiServer`, `Nodes`, `Drift` or `Rollout`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IdleLabels {
    pub template: String,
    /// `Suspend` or `Stop`.
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TemplateLabel {
    pub template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

fn reconcile_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn start_histogram() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            reconcile_seconds: Family::new_with_constructor(reconcile_histogram),
            errors: Family::default(),
            start_seconds: Family::new_with_constructor(start_histogram),
            start_phase_seconds: Family::new_with_constructor(start_histogram),
            watch_restarts: Family::default(),
            events: Family::default(),
            events_dropped: Family::default(),
            idle: Family::default(),
            cluster_repairs: Family::default(),
            resumes: Family::default(),
            views: Arc::default(),
            requests: crate::requests::Requests::default(),
            stopped: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Metrics registered in `registry` (give it the prefix `paddock`).
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self::default();
        registry.register("reconciles", "Reconciles by controller and result", m.reconciles.clone());
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took, by controller",
            Unit::Seconds,
            m.reconcile_seconds.clone(),
        );
        registry.register("reconcile_errors", "Failed reconciles by controller and error category", m.errors.clone());
        registry.register_with_unit(
            "instance_start",
            "Instance start latency (request to every pod Ready) by launch type",
            Unit::Seconds,
            m.start_seconds.clone(),
        );
        registry.register_with_unit(
            "instance_start_phase",
            "Time from the request to each start phase (scheduled, pulled, ready) by launch type",
            Unit::Seconds,
            m.start_phase_seconds.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watch errors after which a controller's watch restarts (with back-off)",
            m.watch_restarts.clone(),
        );
        registry.register("events", "Kubernetes Events recorded by kind, type and reason", m.events.clone());
        registry.register(
            "events_dropped",
            "Kubernetes Events dropped because the queue to the API server was full",
            m.events_dropped.clone(),
        );
        registry.register(
            "idle_reaps",
            "Instances suspended or stopped for idleness, by template and action",
            m.idle.clone(),
        );
        registry.register(
            "cluster_repairs",
            "Repairs of tenant clusters, by what was repaired",
            m.cluster_repairs.clone(),
        );
        registry.register("instance_resumes", "Suspended instances resumed, by template", m.resumes.clone());
        registry.register_collector(Box::new(StateCollector(m.views.clone())));
        m.requests.register(registry);
        Arc::new(m)
    }

    /// Records that a reconciler stopped while it should run: the process is
    /// no longer healthy (`/healthz` says so and why).
    pub fn reconciler_stopped(&self, why: String) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Why the process is unhealthy (a reconciler stopped), if it is.
    pub fn unhealthy(&self) -> Option<String> {
        self.stopped.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs one reconcile, counting its result and timing it.
    /// A panic in `work` is caught here: logged, counted
    /// (`paddock_reconcile_errors{category="panic"}`) and returned as an
    /// error, which the controller retries with back-off, so one object that
    /// trips a bug never stops the controller for every other object.
    pub async fn reconcile<T, E: Categorize + From<crate::error::Panic>>(
        &self,
        controller: &'static str,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        use futures::FutureExt;
        let started = Instant::now();
        let out = match std::panic::AssertUnwindSafe(work).catch_unwind().await {
            Ok(out) => out,
            Err(payload) => {
                let panic = crate::error::Panic::of(payload.as_ref());
                tracing::error!(controller, error = %panic, "a reconcile panicked; it is retried with back-off");
                Err(E::from(panic))
            }
        };
        self.reconcile_seconds.get_or_create(&ControllerLabel { controller }).observe(started.elapsed().as_secs_f64());
        let result = match &out {
            Ok(_) => "success",
            Err(e) => match e.category() {
                None => "waiting",
                Some(category) => {
                    self.errors.get_or_create(&ErrorLabels { controller, category }).inc();
                    "error"
                }
            },
        };
        self.reconciles.get_or_create(&ReconcileLabels { controller, result }).inc();
        out
    }

    /// Counts (and logs, see [`crate::error::report_watch_error`]) what a
    /// controller's run stream reports besides reconciles: a watch error
    /// means the watch restarts, with backoff.
    pub fn run_result<R, Q>(
        &self,
        controller: &'static str,
        r: &Result<R, kube::runtime::controller::Error<Q, kube::runtime::watcher::Error>>,
    ) {
        if let Err(kube::runtime::controller::Error::QueueError(e)) = r {
            self.watch_restarts.get_or_create(&ControllerLabel { controller }).inc();
            crate::error::report_watch_error(controller, e);
        }
    }

    /// What the shared watches ([`crate::index::Index`]) call on a watch
    /// error: counted as a restart of the kind's watch.
    pub fn watch_errors(self: &Arc<Self>) -> crate::index::OnError {
        let m = self.clone();
        Arc::new(move |kind, _| {
            m.watch_restarts.get_or_create(&ControllerLabel { controller: kind }).inc();
        })
    }

    /// Records an instance that just became Running: seconds from the
    /// request to each phase it went through.
    pub fn started(&self, warm: bool, scheduled: Option<f64>, pulled: Option<f64>, ready: f64) {
        let launch = if warm { "warm" } else { "cold" };
        self.start_seconds.get_or_create(&LaunchLabels { launch }).observe(ready);
        for (phase, v) in [("scheduled", scheduled), ("pulled", pulled), ("ready", Some(ready))] {
            if let Some(v) = v {
                self.start_phase_seconds.get_or_create(&PhaseLabels { launch, phase }).observe(v);
            }
        }
    }

    /// Counts a Kubernetes Event recorded on a `kind` object.
    pub fn event(&self, kind: &'static str, warning: bool, reason: &str) {
        let r#type = if warning { "Warning" } else { "Normal" };
        self.events.get_or_create(&EventLabels { kind, r#type, reason: reason.to_string() }).inc();
    }

    /// Counts a repair of a tenant cluster.
    pub fn cluster_repaired(&self, kind: &'static str) {
        self.cluster_repairs.get_or_create(&RepairLabels { kind }).inc();
    }

    /// Counts an instance of `template` suspended or stopped for idleness.
    pub fn idle_reaped(&self, template: &str, action: resources::template::IdleAction) {
        let action = match action {
            resources::template::IdleAction::Suspend => "Suspend",
            resources::template::IdleAction::Stop => "Stop",
        };
        self.idle.get_or_create(&IdleLabels { template: template.to_string(), action }).inc();
    }

    /// Counts a suspended instance of `template` resumed.
    pub fn resumed(&self, template: &str) {
        self.resumes.get_or_create(&TemplateLabel { template: template.to_string() }).inc();
    }

    /// Counts an Event dropped because the queue was full.
    pub fn event_dropped(&self, kind: &'static str) {
        self.events_dropped.get_or_create(&KindLabel { kind }).inc();
    }

    /// The instance cache `paddock_instances` is read from.
    pub fn watch_instances(&self, store: Store<Instance>) {
        *self.views.instances.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// The warm-pool counters the `paddock_pool_*` metrics are read from.
    pub fn watch_pools(&self, pools: Arc<Pools>) {
        *self.views.pools.lock().unwrap_or_else(|e| e.into_inner()) = Some(pools);
    }

    /// Where `paddock_leader` is read from.
    pub fn watch_leadership(&self, leadership: Leadership) {
        *self.views.leadership.lock().unwrap_or_else(|e| e.into_inner()) = Some(leadership);
    }
}

/// Gauges and counters read from the caches at scrape time.
#[derive(Debug)]
struct StateCollector(Arc<Views>);

fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (labels, v) in values {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, v) in values {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let store = self.0.instances.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(store) = store {
            let mut by: BTreeMap<(String, String), i64> = BTreeMap::new();
            for i in store.state() {
                let phase = i.status.as_ref().and_then(|s| s.phase).map_or("Pending", |p| p.as_str()).to_string();
                *by.entry((phase, i.spec.template.clone())).or_default() += 1;
            }
            gauge_family(
                &mut encoder,
                "instances",
                "Instances by phase and template (from the controller's cache)",
                by.into_iter().map(|((phase, template), n)| (vec![("phase", phase), ("template", template)], n)),
            )?;
        }
        let pools = self.0.pools.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(pools) = pools {
            let all = pools.snapshot();
            let pods = all.iter().flat_map(|(t, s)| {
                [("ready", &s.ready), ("starting", &s.starting), ("claimed", &s.claimed)].map(|(state, v)| {
                    (vec![("template", t.clone()), ("state", state.to_string())], v.load(Ordering::Relaxed) as i64)
                })
            });
            gauge_family(&mut encoder, "pool_pod_sets", "Warm pool pod sets by template and state", pods)?;
            gauge_family(
                &mut encoder,
                "pool_size",
                "Warm pool size wanted (spec.warmPool.size) by template",
                all.iter().map(|(t, s)| (vec![("template", t.clone())], s.size.load(Ordering::Relaxed) as i64)),
            )?;
            type Pick = fn(&crate::pool::Stats) -> &std::sync::atomic::AtomicU64;
            let counters: [(&str, &str, Pick); 4] = [
                ("pool_claims", "Pod sets claimed from a warm pool by template", |s| &s.claims),
                ("pool_claim_conflicts", "Claims lost to a concurrent claim (retried on another set)", |s| {
                    &s.conflicts
                }),
                ("pool_refills", "Pod sets created to fill a warm pool", |s| &s.refills),
                ("pool_failures", "Warm pod sets that failed (not Ready, image pull, crash) and were replaced", |s| {
                    &s.failures
                }),
            ];
            for (name, help, pick) in counters {
                counter_family(
                    &mut encoder,
                    name,
                    help,
                    all.iter().map(|(t, s)| (vec![("template", t.clone())], pick(s).load(Ordering::Relaxed))),
                )?;
            }
        }
        let leadership = self.0.leadership.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(l) = leadership {
            gauge_family(
                &mut encoder,
                "leader",
                "1 while this replica leads (runs the reconcilers), 0 on standby",
                [(Vec::<(&str, String)>::new(), i64::from(l.is_leader()))],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_counted_as_a_panic() {
        let mut registry = Registry::with_prefix("paddock");
        let m = Metrics::register(&mut registry);
        let r: Result<(), crate::error::Error> =
            m.reconcile("instance", async { panic!("adding signed duration to timestamp overflowed") }).await;
        let e = r.unwrap_err();
        assert!(matches!(e, crate::error::Error::Panicked(_)), "{e}");
        assert!(e.to_string().contains("overflowed"), "{e}");
        // The controller goes on: the next reconcile runs.
        assert!(m.reconcile("instance", async { Ok::<_, crate::error::Error>(()) }).await.is_ok());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(r#"paddock_reconcile_errors_total{controller="instance",category="panic"} 1"#), "{text}");
        assert_eq!(m.unhealthy(), None);
        m.reconciler_stopped("the instance reconciler stopped".into());
        assert_eq!(m.unhealthy().as_deref(), Some("the instance reconciler stopped"));
    }
}
