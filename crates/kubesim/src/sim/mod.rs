//! The simulated control plane: one task that follows every change and runs the
//! controllers a real cluster has (scheduler, kubelets, garbage collector,
//! namespace lifecycle, endpoints, PV binder, quota, workloads, CRDs).
//!
//! Controllers write through the same API paths as clients (admission included),
//! with their upstream field-manager names, so their writes look as they would
//! on a real cluster.

mod apps;
pub mod bootstrap;
pub mod capi;
pub(crate) mod crds;
mod endpoints;
mod gc;
mod kubelet;
mod namespaces;
mod quota;
mod scheduler;
pub(crate) mod storage;
mod workloads;

use crate::cluster::{Cluster, DeleteOpts, WriteOpts};
use crate::error::ApiError;
use crate::registry::ResId;
use crate::store::{Event, EventType};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Work scheduled for later (image pulls, grace periods, deadlines).
#[derive(Debug, Clone)]
pub enum Timer {
    PullDone {
        ns: String,
        name: String,
        uid: String,
    },
    BackOff {
        ns: String,
        name: String,
        uid: String,
    },
    Terminate {
        ns: String,
        name: String,
        uid: String,
    },
    Deadline {
        ns: String,
        name: String,
        uid: String,
    },
    /// A readiness probe's first success after its initialDelaySeconds.
    ProbeReady {
        ns: String,
        name: String,
        uid: String,
    },
    Evict {
        ns: String,
        name: String,
        uid: String,
    },
    OrphanCheck {
        res: ResId,
        ns: String,
        name: String,
        uid: String,
    },
}

/// Ids of the types the controllers care about.
#[derive(Clone, Copy)]
pub struct Ids {
    pub pods: ResId,
    pub nodes: ResId,
    pub namespaces: ResId,
    pub services: ResId,
    pub endpoints: ResId,
    pub slices: ResId,
    pub pvcs: ResId,
    pub pvs: ResId,
    pub quotas: ResId,
    pub deployments: ResId,
    pub replicasets: ResId,
    pub daemonsets: ResId,
    pub crds: ResId,
    pub serviceaccounts: ResId,
    pub configmaps: ResId,
    pub storageclasses: ResId,
}

impl Ids {
    fn resolve(c: &Cluster) -> Ids {
        let id = |g: &str, p: &str| c.resource(g, p).map(|(i, _)| i).unwrap_or(usize::MAX);
        Ids {
            pods: id("", "pods"),
            nodes: id("", "nodes"),
            namespaces: id("", "namespaces"),
            services: id("", "services"),
            endpoints: id("", "endpoints"),
            slices: id("discovery.k8s.io", "endpointslices"),
            pvcs: id("", "persistentvolumeclaims"),
            pvs: id("", "persistentvolumes"),
            quotas: id("", "resourcequotas"),
            deployments: id("apps", "deployments"),
            replicasets: id("apps", "replicasets"),
            daemonsets: id("apps", "daemonsets"),
            crds: id("apiextensions.k8s.io", "customresourcedefinitions"),
            serviceaccounts: id("", "serviceaccounts"),
            configmaps: id("", "configmaps"),
            storageclasses: id("storage.k8s.io", "storageclasses"),
        }
    }
}

pub struct Sim {
    pub c: Arc<Cluster>,
    pub ids: Ids,
    timers: mpsc::UnboundedSender<(Duration, Timer)>,
    sched: scheduler::Scheduler,
    kubelet: kubelet::Kubelet,
    endpoints: endpoints::Endpoints,
    quota_usage: quota::UsageCache,
    /// Namespaces whose quotas need recomputing after this batch.
    dirty_quota: BTreeSet<String>,
    /// Deployments, ReplicaSets and DaemonSets to reconcile after this batch.
    dirty_workloads: workloads::Dirty,
    /// The newest resourceVersion whose event has been handled: the caches
    /// above reflect the store up to here.
    seen_rv: u64,
}

pub fn spawn(cluster: Arc<Cluster>, shutdown: CancellationToken) -> JoinHandle<()> {
    let rx = cluster.subscribe();
    tokio::spawn(async move {
        let (ttx, trx) = mpsc::unbounded_channel();
        let mut sim = Sim::new(cluster, ttx);
        sim.run(rx, trx, shutdown).await;
    })
}

impl Sim {
    fn new(c: Arc<Cluster>, timers: mpsc::UnboundedSender<(Duration, Timer)>) -> Self {
        let ids = Ids::resolve(&c);
        Self {
            c,
            ids,
            timers,
            sched: scheduler::Scheduler::default(),
            kubelet: kubelet::Kubelet::default(),
            endpoints: endpoints::Endpoints::default(),
            quota_usage: quota::UsageCache::default(),
            dirty_quota: BTreeSet::new(),
            dirty_workloads: workloads::Dirty::everything(),
            seen_rv: 0,
        }
    }

    pub fn after(&self, d: Duration, t: Timer) {
        let _ = self.timers.send((d, t));
    }

    async fn run(
        &mut self,
        mut rx: broadcast::Receiver<Arc<Event>>,
        mut timers: mpsc::UnboundedReceiver<(Duration, Timer)>,
        shutdown: CancellationToken,
    ) {
        let (due_tx, mut due_rx) = mpsc::unbounded_channel::<Timer>();
        // Existing objects (a loaded state file, bootstrap) are seen once.
        self.initial_sync();
        let mut resync = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        self.handle(&ev);
                        // Drain whatever else is queued before the batch work.
                        while let Ok(ev) = rx.try_recv() {
                            self.handle(&ev);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "simulated controllers lagged; resyncing");
                        self.initial_sync();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some((d, t)) = timers.recv() => {
                    let tx = due_tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        let _ = tx.send(t);
                    });
                }
                Some(t) = due_rx.recv() => self.fire(t),
                _ = resync.tick() => {
                    self.dirty_workloads.all();
                    self.sched.retry_all = true;
                }
                _ = shutdown.cancelled() => return,
            }
            self.flush();
        }
    }

    fn initial_sync(&mut self) {
        // Quota usage is counted afresh (it may have missed events).
        self.quota_usage.clear();
        let (nodes, pods, nss, crds, pvcs, svcs) = self.c.read(|st| {
            let all = |id: ResId| st.store.range(id, None, None).map(|(_, o)| o.value()).collect::<Vec<_>>();
            self.seen_rv = self.seen_rv.max(st.store.rv());
            (
                all(self.ids.nodes),
                all(self.ids.pods),
                all(self.ids.namespaces),
                all(self.ids.crds),
                all(self.ids.pvcs),
                all(self.ids.services),
            )
        });
        let mut ep = std::mem::take(&mut self.endpoints);
        for s in &svcs {
            ep.service_event(self, EventType::Added, s);
        }
        for p in &pods {
            ep.pod_event(EventType::Added, p);
        }
        self.endpoints = ep;
        let mut k = std::mem::take(&mut self.kubelet);
        for n in &nodes {
            k.node_seen(self, n);
            self.sched.node_event(EventType::Added, n);
        }
        self.kubelet = k;
        for p in &pods {
            self.sched.pod_seen(p);
            self.kubelet_pod(p);
        }
        for ns in &nss {
            namespaces::reconcile(self, ns);
            self.dirty_quota.insert(name_of(ns).to_string());
        }
        for crd in &crds {
            crds::reconcile(self, crd);
        }
        for pvc in &pvcs {
            storage::reconcile_pvc(self, pvc);
        }
        self.sched.retry_all = true;
        self.dirty_workloads.all();
    }

    fn kubelet_pod(&mut self, pod: &Value) {
        let mut k = std::mem::take(&mut self.kubelet);
        k.pod_changed(self, pod);
        self.kubelet = k;
    }

    fn handle(&mut self, ev: &Event) {
        let ids = self.ids;
        self.seen_rv = self.seen_rv.max(ev.rv);
        // The object is decoded when something reads it: most events of a
        // busy cluster are of kinds no simulated controller handles (custom
        // resources, Events, ResourceQuotas...), which the quota counts
        // without reading them.
        let decoded = std::cell::OnceCell::new();
        let v = || decoded.get_or_init(|| ev.obj.value());
        let ns = ev.ns.to_string();
        if !ns.is_empty() {
            let gone = ev.typ == EventType::Deleted;
            let changed = self.quota_usage.observe(&self.c, ev.res, &ns, &ev.name, (!gone).then_some(v));
            if quota::recount_after(ev, ev.res == ids.quotas, changed) {
                self.dirty_quota.insert(ns.clone());
            }
        }
        if ev.res == ids.pods {
            self.sched.pod_event(ev.typ, v());
            if ev.typ != EventType::Deleted {
                self.kubelet_pod(v());
            } else {
                self.kubelet.pod_gone(v());
                storage::pod_gone(self, v());
            }
            self.endpoints.pod_event(ev.typ, v());
            // The ReplicaSet or DaemonSet that owns the pod counts its pods again.
            self.dirty_workloads.owners_of(&ids, &ns, v());
        } else if ev.res == ids.nodes {
            let mut k = std::mem::take(&mut self.kubelet);
            if ev.typ == EventType::Deleted {
                k.node_gone(self, v());
            } else {
                k.node_seen(self, v());
            }
            self.kubelet = k;
            self.sched.node_event(ev.typ, v());
            // Which nodes a DaemonSet runs on may have changed.
            self.dirty_workloads.all();
        } else if ev.res == ids.namespaces {
            if ev.typ != EventType::Deleted {
                namespaces::reconcile(self, v());
            }
        } else if ev.res == ids.services {
            let mut ep = std::mem::take(&mut self.endpoints);
            ep.service_event(self, ev.typ, v());
            self.endpoints = ep;
            if ev.typ != EventType::Deleted {
                endpoints::assign_load_balancer(self, v());
            }
        } else if ev.res == ids.pvcs {
            if ev.typ == EventType::Deleted {
                storage::pvc_gone(self, v());
            } else {
                storage::reconcile_pvc(self, v());
            }
        } else if ev.res == ids.pvs && ev.typ != EventType::Deleted {
            storage::pv_changed(self, v());
        } else if ev.res == ids.crds {
            crds::reconcile(self, v());
        } else if ev.res == ids.deployments || ev.res == ids.replicasets || ev.res == ids.daemonsets {
            // A workload changed: its own controller runs, and a ReplicaSet's
            // Deployment looks at its sets again (as upstream's watches do).
            if ev.typ != EventType::Deleted {
                self.dirty_workloads.mark(ev.res, &ns, &ev.name);
            }
            self.dirty_workloads.owners_of(&ids, &ns, v());
        } else if ev.res == ids.serviceaccounts && ev.typ == EventType::Added {
            // Pods wait for their service account: the namespace's workloads
            // that could not create theirs try again.
            self.dirty_workloads.namespace(&ev.ns);
        } else if ev.res == ids.storageclasses {
            for pvc in self.c.list_values("", "persistentvolumeclaims", None) {
                storage::reconcile_pvc(self, &pvc);
            }
        }
        // Namespaces being emptied look at every deletion inside them.
        if ev.typ == EventType::Deleted && !ns.is_empty() {
            namespaces::content_gone(self, &ns);
        }
        // The GC reads the object only for a deleting one's finalizers.
        gc::on_event(self, ev, ev.obj.deleting.then(v));
    }

    fn fire(&mut self, t: Timer) {
        match t {
            Timer::OrphanCheck { res, ns, name, uid } => gc::orphan_check(self, res, &ns, &name, &uid),
            other => {
                let mut k = std::mem::take(&mut self.kubelet);
                k.timer(self, other);
                self.kubelet = k;
            }
        }
    }

    /// Batch work after a burst of events.
    fn flush(&mut self) {
        let mut s = std::mem::take(&mut self.sched);
        s.run(self);
        self.sched = s;
        let mut ep = std::mem::take(&mut self.endpoints);
        ep.flush(self);
        self.endpoints = ep;
        let mut usage = std::mem::take(&mut self.quota_usage);
        let mut again = BTreeSet::new();
        for ns in std::mem::take(&mut self.dirty_quota) {
            if quota::reconcile_namespace(self, &mut usage, &ns) {
                again.insert(ns);
            }
        }
        self.dirty_quota = again;
        self.quota_usage = usage;
        let dirty = std::mem::take(&mut self.dirty_workloads);
        workloads::reconcile(self, dirty);
    }

    // ---- write helpers used by the controllers ----

    pub fn create(&self, res: ResId, ns: &str, obj: Value, manager: &str) -> Result<Arc<crate::store::Obj>, ApiError> {
        let version = self.c.def(res).map(|d| d.storage_version().to_string()).unwrap_or_default();
        self.c.create(res, &version, ns, obj, &WriteOpts::manager(manager))
    }

    pub fn delete(&self, res: ResId, ns: &str, name: &str, opts: DeleteOpts) {
        match self.c.delete(res, ns, name, &opts) {
            Ok(_) => {}
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(error = %e, ns, name, "simulated controller could not delete"),
        }
    }
}

pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

pub fn ns_of(v: &Value) -> &str {
    v.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("")
}

pub fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("")
}

pub fn is_deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

pub fn log_err<T>(what: &str, r: Result<T, ApiError>) -> Option<T> {
    match r {
        Ok(x) => Some(x),
        Err(e) if e.code == 404 || e.code == 409 => None,
        Err(e) => {
            tracing::debug!(error = %e, what, "simulated controller write refused");
            None
        }
    }
}
