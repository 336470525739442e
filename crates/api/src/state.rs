//! What every handler shares, and the background tasks that keep it current.

use crate::auth::{CREDENTIALS_LABEL, Credentials, Principal, bearer};
use crate::hub::Hub;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use controller::config::Settings;
use controller::index::{Index, OnError};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use resources::{Template, Tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How the API is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// An admin token besides those in Secrets (`PADDOCK_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Interval of SSE heartbeats.
    pub heartbeat: Duration,
    /// Events kept for `Last-Event-ID` resumption.
    pub replay_log: usize,
    /// Timeout of ordinary (non-streaming) requests.
    pub request_timeout: Duration,
    /// Where tenant kubeconfigs point (`POST /v1/tenants/{tenant}/kubeconfig`
    /// answers 503 without it).
    pub cluster_access: Option<crate::cluster_access::ClusterAccess>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            admin_token: None,
            heartbeat: Duration::from_secs(15),
            replay_log: 10_000,
            request_timeout: Duration::from_secs(30),
            cluster_access: None,
        }
    }
}

pub struct Shared {
    pub client: Client,
    /// One start at a time per Idempotency-Key in this process.
    pub keyed_starts: crate::keylock::KeyLocks,
    /// Instance heartbeat tokens read lately.
    pub heartbeat_tokens: crate::heartbeats::Tokens,
    /// Tenants' file servers, for the file browser.
    pub file_servers: crate::file_servers::FileServers,
    pub config: Config,
    pub creds: Credentials,
    pub hub: Arc<Hub>,
    /// Tenants and templates as the watches see them: requests read these
    /// instead of asking the cluster (a miss falls back to a GET).
    pub tenants: Store<Tenant>,
    pub templates: Store<Template>,
    /// The tenants' ResourceQuotas (what each namespace uses).
    pub quotas: Store<k8s_openapi::api::core::v1::ResourceQuota>,
    /// The metrics registry `/metrics` serves, and the API's metrics in it.
    pub telemetry: crate::metrics::Telemetry,
    ready: Vec<Arc<AtomicBool>>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// A tenant from the watch (shared, not copied), or from the cluster if
    /// the watch has not seen it yet; never another installation's.
    pub async fn tenant(&self, name: &str) -> Result<Option<Arc<Tenant>>, kube::Error> {
        if let Some(t) = self.tenants.get(&ObjectRef::new(name)) {
            return Ok(Some(t));
        }
        let got = Api::<Tenant>::all(self.client.clone()).get_opt(name).await?;
        Ok(got.filter(|t| self.settings().in_scope(t.metadata.labels.as_ref())).map(Arc::new))
    }

    /// A template from the watch (shared, not copied), or from the cluster if
    /// the watch has not seen it yet; never another installation's.
    pub async fn template(&self, name: &str) -> Result<Option<Arc<Template>>, kube::Error> {
        if let Some(t) = self.templates.get(&ObjectRef::new(name)) {
            return Ok(Some(t));
        }
        let got = Api::<Template>::all(self.client.clone()).get_opt(name).await?;
        Ok(got.filter(|t| self.settings().in_scope(t.metadata.labels.as_ref())).map(Arc::new))
    }

    pub fn settings(&self) -> &Settings {
        &self.config.settings
    }

    /// The namespace of a tenant.
    /// What tenant `tenant`'s namespace uses of its quota, from the watch.
    pub fn usage(&self, tenant: &str) -> Vec<crate::model::QuotaUse> {
        let ns = self.namespace(tenant);
        let r = ObjectRef::new(resources::vocabulary::TENANT_QUOTA).within(&ns);
        self.quotas.get(&r).map(|q| crate::model::quota_use(&q)).unwrap_or_default()
    }

    pub fn namespace(&self, tenant: &str) -> String {
        resources::vocabulary::tenant_namespace(&self.config.settings.namespace_prefix, tenant)
    }

    /// The tenant a namespace belongs to, by the installation's prefix.
    pub fn tenant_of(&self, ns: &str) -> Option<String> {
        ns.strip_prefix(&self.config.settings.namespace_prefix).filter(|t| !t.is_empty()).map(str::to_string)
    }

    /// What is still missing before the API can answer correctly.
    pub fn waiting_for(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (flag, what) in self.ready.iter().zip(["the credentials watch", "the tenant watch", "the template watch"]) {
            if !flag.load(Ordering::Relaxed) {
                out.push(what.to_string());
            }
        }
        if !self.hub.ready() {
            out.push("the instance watch".to_string());
        }
        out
    }
}

/// Background tasks of the API, aborted when dropped, and the shared
/// watches its stores are filled from (kept running while it is kept).
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
    _index: Index,
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Mirrors `api` into a store; the flag turns true once the first list is in.
fn mirror<K>(
    api: Api<K>,
    wc: watcher::Config,
    what: &'static str,
    metrics: Arc<crate::metrics::ApiMetrics>,
) -> (Store<K>, Arc<AtomicBool>, Vec<JoinHandle<()>>)
where
    K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let feed = tokio::spawn(async move {
        let mut s = reflector::reflector(writer, watcher::watcher(api, wc)).default_backoff().boxed();
        while let Some(r) = s.next().await {
            if let Err(e) = r {
                metrics.watch_error(what);
                controller::error::report_watch_error(what, &e);
            }
        }
    });
    let (store, flag, ready) = listed(store);
    (store, flag, vec![feed, ready])
}

/// A shared store, and a flag that turns true once its first list is in.
fn listed<K>(store: Store<K>) -> (Store<K>, Arc<AtomicBool>, JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let flag = Arc::new(AtomicBool::new(false));
    let (f, ready_store) = (flag.clone(), store.clone());
    let ready = tokio::spawn(async move {
        // Not `wait_until_ready`: see `controller::cache::listed_within`.
        if controller::cache::listed_within(&ready_store, Duration::MAX).await {
            f.store(true, Ordering::Relaxed);
        }
    });
    (store, flag, ready)
}

/// Starts the watches the API reads from and returns the shared state;
/// `telemetry` is what `/metrics` serves.
pub fn start(client: Client, config: Config, telemetry: crate::metrics::Telemetry) -> (AppState, Background) {
    let m = telemetry.api.clone();
    let on_error: OnError = Arc::new(move |what, _| m.watch_error(what));
    let index =
        Index::new(telemetry.requests.client(client.clone(), "index"), on_error, config.settings.scope_selector());
    start_with(index, client, config, telemetry)
}

/// [`start`] reading Tenants, Templates and Instances from the process's
/// shared watches `index` (which the reconcilers, in the same process, read too).
pub fn start_with(
    index: Index,
    client: Client,
    config: Config,
    telemetry: crate::metrics::Telemetry,
) -> (AppState, Background) {
    let client = telemetry.requests.client(client, "api");
    let ns = config.settings.system_namespace.clone();
    let wc = watcher::Config::default().labels(CREDENTIALS_LABEL);
    let m = &telemetry.api;
    let (secrets, creds_ready, mut tasks) =
        mirror(Api::<Secret>::namespaced(client.clone(), &ns), wc, "credentials", m.clone());
    let (tenants, tenants_ready, t) = listed(index.tenants().store());
    tasks.push(t);
    let (templates, templates_ready, t) = listed(index.templates().store());
    tasks.push(t);
    let hub = Hub::new(&config.settings.namespace_prefix, config.replay_log);
    telemetry.api.watch_hub(hub.clone());
    tasks.push(tokio::spawn(hub.clone().run(index.instances().subscribe())));
    let creds = Credentials::new(config.admin_token.clone(), ns, secrets);
    let ready = vec![creds_ready, tenants_ready, templates_ready];
    let keyed_starts = crate::keylock::KeyLocks::default();
    let quotas = index.tenant_quotas().store();
    let state = Arc::new(Shared {
        client,
        keyed_starts,
        heartbeat_tokens: Default::default(),
        file_servers: Default::default(),
        config,
        creds,
        hub,
        tenants,
        templates,
        quotas,
        telemetry,
        ready,
    });
    (state, Background { tasks, _index: index })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).map(|h| h.to_str().unwrap_or(""));
        let token = bearer(header)?;
        let p = state
            .creds
            .verify(token)
            .ok_or_else(|| Problem::unauthorized("the token is not valid (expired, revoked, or never issued)"))?;
        tracing::Span::current().record("principal", p.label());
        Ok(p)
    }
}
