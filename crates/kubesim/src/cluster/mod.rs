//! The cluster: registry + store behind one lock, and the operations the HTTP
//! layer and the simulated controllers share (so that both go through the same
//! defaulting, validation and admission).

mod delete;
mod read;
mod update;
mod write;

pub use delete::{DeleteOpts, DeleteOutcome, Propagation};
pub use read::{ListOpts, ListResult, WatchStart, field_supported, filter_event};
pub use write::{View, WriteOpts};

use crate::config::SimConfig;
use crate::registry::{Registry, ResId, ResourceDef};
use crate::store::{Event, Extract, Key, Obj, Store};
use parking_lot::RwLock;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast;

pub struct State {
    pub registry: Registry,
    pub store: Store,
    pub config: Arc<SimConfig>,
}

impl State {
    pub fn res(&self, group: &str, plural: &str) -> Option<(ResId, Arc<ResourceDef>)> {
        self.registry.find(group, plural).map(|(i, d)| (i, d.clone()))
    }

    pub fn get_value(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let (id, _) = self.registry.find(group, plural)?;
        self.store.get(id, ns, name).map(|o| o.value())
    }

    /// Whether namespace `ns` is being deleted (None when there is no such
    /// namespace), from what the store noted when it was written: admission
    /// asks on every create, and upstream answers from its informer's cache
    /// rather than by reading the object.
    pub fn namespace_terminating(&self, ns: &str) -> Option<bool> {
        let (id, def) = self.registry.find("", "namespaces")?;
        let o = self.store.get(id, "", ns)?;
        let phase = def.field_selectors.iter().position(|p| p == "status.phase").and_then(|i| o.fields.get(i));
        Some(o.deleting || phase.is_some_and(|p| &**p == "Terminating"))
    }

    pub fn list_values(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        let Some((id, _)) = self.registry.find(group, plural) else {
            return vec![];
        };
        self.store.range(id, ns, None).map(|(_, o)| o.value()).collect()
    }

    /// [`State::list_values`] for kinds read on many writes: each object is
    /// decoded once per version and shared (see [`crate::store::Obj::shared_value`]).
    pub fn list_shared(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        let Some((id, _)) = self.registry.find(group, plural) else {
            return vec![];
        };
        self.store.range(id, ns, None).map(|(_, o)| o.shared_value()).collect()
    }

    pub fn encode(&self, def: &ResourceDef, value: &Value, rv: u64) -> Obj {
        Store::encode(value, rv, &Extract { field_paths: &def.field_selectors })
    }

    pub(crate) fn key(def: &ResourceDef, ns: &str, name: &str) -> Key {
        (if def.namespaced { ns.into() } else { "".into() }, name.into())
    }
}

/// RFC 3339 time with second precision, as Kubernetes renders metav1.Time.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub struct Cluster {
    pub(crate) state: RwLock<State>,
    /// The registry as of its last change, readable without the state lock:
    /// every request resolves its type here, and waiting for the state lock
    /// behind a write only for that held up every request (and the async
    /// worker serving it) for as long as any write took.
    published: RwLock<Arc<Registry>>,
    pub config: Arc<SimConfig>,
    /// Watch streams open now, by resource plural (for tests and benchmarks).
    pub(crate) open_watches: parking_lot::Mutex<std::collections::HashMap<String, usize>>,
    /// HTTP requests served, for benchmarks that count API-server work.
    pub requests: RequestCounts,
    /// What requests would cost a real API server, when the config asks
    /// for a cost model (benchmarks).
    pub costs: Option<crate::cost::Costs>,
    /// A simulated outage: while set, every request answers 503 (a workload
    /// cluster whose API server is down; see `sim::capi`).
    pub outage: std::sync::atomic::AtomicBool,
}

/// Requests served over HTTP since start: reads (GET, including list and
/// watch) and writes (POST, PUT, PATCH, DELETE), and each by the verb the
/// real API server's `apiserver_request_total` names it with.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub reads: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
    by_verb: [std::sync::atomic::AtomicU64; VERBS.len()],
    /// By (verb, group, resource, subresource), as upstream's metric labels them.
    by_resource: parking_lot::Mutex<std::collections::BTreeMap<ResourceKey, u64>>,
    /// Writes stored, by resource (`pods`, `pods/status`), whoever made
    /// them: HTTP requests and the simulated controllers.
    stored: parking_lot::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Every (RBAC verb, API group, resource[/subresource]) served, as an
    /// authorizer would see the requests: what a client's Role must allow.
    access: parking_lot::Mutex<std::collections::BTreeSet<(&'static str, String, String)>>,
}

/// (verb, group, resource, subresource) of a request.
type ResourceKey = (&'static str, String, String, String);

/// The verbs of upstream's `apiserver_request_total`; the first three read.
pub const VERBS: [&str; 9] = ["GET", "LIST", "WATCH", "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

impl RequestCounts {
    /// Counts one request with `verb` (one of [`VERBS`]; others are ignored)
    /// to `resource` (group, resource, subresource) when it names one.
    pub fn count(&self, verb: &str, resource: Option<(&str, &str, &str)>) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(i) = VERBS.iter().position(|v| *v == verb) else { return };
        self.by_verb[i].fetch_add(1, Relaxed);
        if i < 3 { &self.reads } else { &self.writes }.fetch_add(1, Relaxed);
        if let Some((group, res, sub)) = resource {
            *self.by_resource.lock().entry((VERBS[i], group.into(), res.into(), sub.into())).or_default() += 1;
        }
    }

    /// Notes a request's RBAC attributes (see [`RequestCounts::access`]).
    pub fn note_access(&self, verb: &'static str, group: &str, resource: String) {
        self.access.lock().insert((verb, group.to_string(), resource));
    }

    /// Every (RBAC verb, API group, resource[/subresource]) served so far, sorted.
    pub fn access(&self) -> Vec<(String, String, String)> {
        self.access.lock().iter().map(|(v, g, r)| (v.to_string(), g.clone(), r.clone())).collect()
    }

    /// `apiserver_request_total` by verb in the Prometheus text format.
    pub fn exposition(&self) -> String {
        let mut out = String::from(
            "# HELP apiserver_request_total Counter of apiserver requests broken out by verb.\n\
             # TYPE apiserver_request_total counter\n",
        );
        // By resource where the request named one (as upstream's labels), and
        // the rest (paths that name none) by verb alone.
        let by_resource = self.by_resource.lock().clone();
        for (v, n) in VERBS.iter().zip(&self.by_verb) {
            let mut n = n.load(std::sync::atomic::Ordering::Relaxed);
            for ((verb, group, res, sub), k) in by_resource.iter().filter(|(key, _)| key.0 == *v) {
                n = n.saturating_sub(*k);
                out.push_str(&format!(
                    "apiserver_request_total{{component=\"apiserver\",group=\"{group}\",resource=\"{res}\",subresource=\"{sub}\",verb=\"{verb}\"}} {k}\n"
                ));
            }
            if n > 0 {
                out.push_str(&format!("apiserver_request_total{{component=\"apiserver\",verb=\"{v}\"}} {n}\n"));
            }
        }
        out
    }

    /// Notes a write the store made to `resource` (see [`RequestCounts::stored`]).
    pub fn note_stored(&self, resource: String) {
        *self.stored.lock().entry(resource).or_default() += 1;
    }

    /// Writes stored so far by resource (`pods`, `pods/status`), HTTP
    /// requests' and the simulated controllers' alike.
    pub fn stored(&self) -> std::collections::BTreeMap<String, u64> {
        self.stored.lock().clone()
    }

    /// Writes served over HTTP so far by resource (`pods`, `pods/status`).
    pub fn http_writes(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for ((verb, _, res, sub), n) in self.by_resource.lock().iter() {
            if VERBS.iter().position(|v| v == verb).is_some_and(|i| i >= 3) {
                let key = if sub.is_empty() { res.clone() } else { format!("{res}/{sub}") };
                *out.entry(key).or_default() += n;
            }
        }
        out
    }

    /// Writes served so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads served so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Counts a watch stream as open for as long as it lives.
pub(crate) struct WatchGuard {
    cluster: Arc<Cluster>,
    plural: String,
}

impl WatchGuard {
    pub(crate) fn new(cluster: Arc<Cluster>, plural: &str) -> Self {
        *cluster.open_watches.lock().entry(plural.to_string()).or_default() += 1;
        Self { cluster, plural: plural.to_string() }
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(n) = self.cluster.open_watches.lock().get_mut(&self.plural) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Cluster {
    /// Watch streams open now on the resource with this plural.
    pub fn open_watches(&self, plural: &str) -> usize {
        self.open_watches.lock().get(plural).copied().unwrap_or(0)
    }

    pub fn new(config: SimConfig) -> Arc<Self> {
        let config = Arc::new(config);
        let registry = Registry::with_builtins();
        let mut store = Store::new(config.history);
        if let Some((services, _)) = registry.find("", "services") {
            store.allocations.track(services);
        }
        Arc::new(Self {
            published: RwLock::new(Arc::new(registry.clone())),
            state: RwLock::new(State { registry, store, config: config.clone() }),
            open_watches: Default::default(),
            requests: RequestCounts::default(),
            costs: config.cost.clone().map(crate::cost::Costs::new),
            outage: std::sync::atomic::AtomicBool::new(false),
            config,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.state.read().store.subscribe()
    }

    /// The resource types served now.
    pub fn registry(&self) -> Arc<Registry> {
        self.published.read().clone()
    }

    pub fn resource(&self, group: &str, plural: &str) -> Option<(ResId, Arc<ResourceDef>)> {
        self.registry().find(group, plural).map(|(i, d)| (i, d.clone()))
    }

    pub fn def(&self, id: ResId) -> Option<Arc<ResourceDef>> {
        self.registry().get(id).cloned()
    }

    pub fn current_rv(&self) -> u64 {
        self.state.read().store.rv()
    }

    /// Runs a closure with read access to the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.read())
    }

    pub fn get_value(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.state.read().get_value(group, plural, ns, name)
    }

    pub fn list_values(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.state.read().list_values(group, plural, ns)
    }

    pub fn list_shared(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.state.read().list_shared(group, plural, ns)
    }

    /// Registers (or refreshes) the custom resource type of a CRD.
    pub fn register_crd(&self, crd: &Value) -> Result<ResId, String> {
        let def = crate::registry::def_from_crd(crd)?;
        let mut st = self.state.write();
        let id = st.registry.upsert_custom(def);
        *self.published.write() = Arc::new(st.registry.clone());
        Ok(id)
    }

    /// Removes a custom resource type and all its objects.
    pub fn unregister(&self, id: ResId) {
        let mut st = self.state.write();
        st.store.drop_table(id);
        st.registry.remove(id);
        *self.published.write() = Arc::new(st.registry.clone());
    }

    /// Number of stored objects of a type.
    pub fn count(&self, id: ResId) -> usize {
        self.state.read().store.count(id)
    }
}
