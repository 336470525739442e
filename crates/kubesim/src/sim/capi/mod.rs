//! Cluster API, played by kubesim (with the simulated controllers, unless
//! `SimConfig::cluster_api` is off): no machine here can boot VMs, so
//! kubesim serves the Cluster API CRDs and does what Cluster API's
//! controllers and providers would, closely enough for a client of Cluster
//! API (Paddock's cluster reconciler) to be tested against it.
//!
//! - **CRDs**: upstream's `v1beta1` schemas of `Cluster`, `Machine`,
//!   `MachineDeployment`, `MachineHealthCheck`, `KubeadmControlPlane`,
//!   `KubeadmConfigTemplate` and `ClusterResourceSet` (descriptions left
//!   out; upstream serves `v1beta2` too, through a conversion webhook kubesim
//!   does not have), and an infrastructure provider of kubesim's own:
//!   `KubesimCluster`, `KubesimMachineTemplate`, `KubesimMachine`.
//! - **Provisioning**: a `Cluster` whose infrastructure is a `KubesimCluster`
//!   gets a workload cluster ([`workload`]): another kubesim in this
//!   process, whose kubeconfig (with a bearer token) goes into the
//!   `<cluster>-kubeconfig` Secret as Cluster API writes it. The control
//!   plane's and each MachineDeployment's replicas become `Machine`s
//!   ([`machines`]), which boot after `SimConfig::machine_boot` and join the
//!   workload cluster as nodes.
//! - **Health**: a MachineHealthCheck deletes a machine whose node has had an
//!   unhealthy condition for longer than its timeout, and the owner makes a
//!   new one. A `KubeadmControlPlane` rollout (`spec.rolloutAfter`) replaces
//!   the control-plane machines.
//! - **Faults**, to test what repairs them: the annotation
//!   [`FAULT_API_SERVER`]`: Down` on a Cluster takes its workload API server
//!   down (503 to every request) until a control-plane rollout replaces it;
//!   [`FAULT_NODE_READY`]`: "False"` on a Machine makes its node NotReady.
//!   Deleting a MachineDeployment or a KubeadmControlPlane by hand works as
//!   it would upstream.
//!
//! What it leaves out: MachineSets (a MachineDeployment owns its machines
//! directly), KubeadmConfigs (a machine's bootstrap data is rendered from
//! the template's `users` straight into its Secret), ClusterClass and
//! topology, and any other infrastructure kind (the Cluster stays
//! Provisioning and says why).

mod machines;
mod status;
mod workload;

use crate::cluster::{Cluster, DeleteOpts, WriteOpts};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const CORE: &str = "cluster.x-k8s.io";
pub const CONTROL_PLANE: &str = "controlplane.cluster.x-k8s.io";
pub const BOOTSTRAP: &str = "bootstrap.cluster.x-k8s.io";
pub const INFRA: &str = "infrastructure.cluster.x-k8s.io";
/// The label Cluster API puts on every object of a cluster.
pub const CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// On a `Cluster`: `Down` takes its workload API server down.
pub const FAULT_API_SERVER: &str = "kubesim.paddock.dev/api-server";
/// On a `Machine`: `"False"` makes its node NotReady.
pub const FAULT_NODE_READY: &str = "kubesim.paddock.dev/node-ready";
/// controller-runtime's field manager, which Cluster API's controllers write with.
const MANAGER: &str = "manager";
const CLUSTER_FINALIZER: &str = "cluster.cluster.x-k8s.io";
const MACHINE_FINALIZER: &str = "machine.cluster.x-k8s.io";
/// How often the provider looks again when nothing changed (boots and
/// health-check timeouts are measured on this tick).
const TICK: Duration = Duration::from_millis(200);

const CRDS: &[&str] = &[
    include_str!("crds/cluster.x-k8s.io_clusters.json"),
    include_str!("crds/cluster.x-k8s.io_machines.json"),
    include_str!("crds/cluster.x-k8s.io_machinedeployments.json"),
    include_str!("crds/cluster.x-k8s.io_machinehealthchecks.json"),
    include_str!("crds/controlplane.cluster.x-k8s.io_kubeadmcontrolplanes.json"),
    include_str!("crds/bootstrap.cluster.x-k8s.io_kubeadmconfigtemplates.json"),
    include_str!("crds/addons.cluster.x-k8s.io_clusterresourcesets.json"),
    include_str!("crds/infrastructure.cluster.x-k8s.io_kubesimclusters.json"),
    include_str!("crds/infrastructure.cluster.x-k8s.io_kubesimmachinetemplates.json"),
    include_str!("crds/infrastructure.cluster.x-k8s.io_kubesimmachines.json"),
];

/// The Cluster API CRDs kubesim serves.
pub fn crds() -> Result<Vec<Value>, String> {
    CRDS.iter().map(|t| serde_json::from_str(t).map_err(|e| format!("embedded Cluster API CRD: {e}"))).collect()
}

/// Runs the provider until `shutdown`.
pub fn spawn(c: Arc<Cluster>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut p = Provider::new(c);
        let mut tick = tokio::time::interval(TICK);
        // Not subscribed to the cluster's events: the tick looks at
        // everything anyway, and a subscriber would wake for every write of
        // every kind (thousands a second under `paddock bench`).
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => p.pass().await,
            }
        }
    })
}

type Key = (String, String);

pub(crate) struct Provider {
    c: Arc<Cluster>,
    workloads: HashMap<Key, workload::Workload>,
    /// Clusters whose workload failed to start, and why.
    failed: HashMap<Key, String>,
    /// When each machine (by uid) was first seen: it boots `machine_boot` later.
    seen: HashMap<String, Instant>,
    /// Since when each machine (by uid) has been unhealthy to a health check.
    unhealthy: HashMap<String, Instant>,
}

pub(crate) fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

pub(crate) fn label<'a>(v: &'a Value, k: &str) -> &'a str {
    v.pointer("/metadata/labels").and_then(|l| l.get(k)).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn annotation<'a>(v: &'a Value, k: &str) -> &'a str {
    v.pointer("/metadata/annotations").and_then(|l| l.get(k)).and_then(Value::as_str).unwrap_or("")
}

/// An owner reference to `owner` (its controller).
pub(crate) fn owner_ref(owner: &Value) -> Value {
    json!({"apiVersion": s(owner, "/apiVersion"), "kind": s(owner, "/kind"), "name": s(owner, "/metadata/name"),
        "uid": s(owner, "/metadata/uid"), "controller": true, "blockOwnerDeletion": true})
}

impl Provider {
    fn new(c: Arc<Cluster>) -> Self {
        Self { c, workloads: HashMap::new(), failed: HashMap::new(), seen: HashMap::new(), unhealthy: HashMap::new() }
    }

    pub(crate) fn list(&self, group: &str, plural: &str, ns: Option<&str>) -> Vec<Value> {
        self.c.list_values(group, plural, ns)
    }

    pub(crate) fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.c.get_value(group, plural, ns, name)
    }

    pub(crate) fn create(&self, group: &str, plural: &str, ns: &str, obj: Value) -> Option<Value> {
        let (id, def) = self.c.resource(group, plural)?;
        crate::sim::log_err(
            &format!("create {plural}"),
            self.c.create(id, def.storage_version(), ns, obj, &WriteOpts::manager(MANAGER)),
        )
        .map(|o| o.value())
    }

    /// Changes an object (`status`: its status subresource) with `f`.
    pub(crate) fn edit(
        &self,
        group: &str,
        plural: &str,
        ns: &str,
        name: &str,
        status: bool,
        f: impl FnMut(&mut Value),
    ) {
        let Some((id, _)) = self.c.resource(group, plural) else { return };
        let sub = status.then_some("status");
        crate::sim::log_err(&format!("update {plural}"), self.c.modify(id, ns, name, sub, MANAGER, f));
    }

    pub(crate) fn delete(&self, group: &str, plural: &str, ns: &str, name: &str) {
        let Some((id, _)) = self.c.resource(group, plural) else { return };
        crate::sim::log_err(&format!("delete {plural}"), self.c.delete(id, ns, name, &DeleteOpts::default()));
    }

    pub(crate) fn workload(&self, ns: &str, cluster: &str) -> Option<&workload::Workload> {
        self.workloads.get(&(ns.to_string(), cluster.to_string()))
    }

    /// One look at every cluster, machine and health check.
    async fn pass(&mut self) {
        let clusters = self.list(CORE, "clusters", None);
        let mut live = BTreeSet::new();
        for cl in &clusters {
            live.insert((s(cl, "/metadata/namespace").to_string(), s(cl, "/metadata/name").to_string()));
            self.cluster(cl).await;
        }
        self.workloads.retain(|k, _| live.contains(k));
        self.failed.retain(|k, _| live.contains(k));
        let machines = self.list(CORE, "machines", None);
        let uids: BTreeSet<&str> = machines.iter().map(|m| s(m, "/metadata/uid")).collect();
        self.seen.retain(|u, _| uids.contains(u.as_str()));
        self.unhealthy.retain(|u, _| uids.contains(u.as_str()));
        for m in &machines {
            self.machine(m);
        }
        for mhc in self.list(CORE, "machinehealthchecks", None) {
            self.health_check(&mhc);
        }
    }

    async fn cluster(&mut self, cl: &Value) {
        let (ns, name) = (s(cl, "/metadata/namespace").to_string(), s(cl, "/metadata/name").to_string());
        if deleting(cl) {
            self.tear_down(cl, &ns, &name);
            return;
        }
        if !cl
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.contains(&json!(CLUSTER_FINALIZER)))
        {
            self.edit(CORE, "clusters", &ns, &name, false, |o| {
                let f = o["metadata"]["finalizers"].as_array().cloned().unwrap_or_default();
                if !f.contains(&json!(CLUSTER_FINALIZER)) {
                    o["metadata"]["finalizers"] = json!([f, vec![json!(CLUSTER_FINALIZER)]].concat());
                }
            });
        }
        let infra = self.infrastructure(cl, &ns, &name).await;
        let kcp_name = s(cl, "/spec/controlPlaneRef/name").to_string();
        let kcp = (s(cl, "/spec/controlPlaneRef/kind") == "KubeadmControlPlane")
            .then(|| self.get(CONTROL_PLANE, "kubeadmcontrolplanes", &ns, &kcp_name))
            .flatten();
        let control_plane = match &kcp {
            Some(kcp) if !deleting(kcp) => Some(self.control_plane(cl, kcp)),
            _ => None,
        };
        for md in self.list(CORE, "machinedeployments", Some(&ns)) {
            if s(&md, "/spec/clusterName") == name && !deleting(&md) {
                self.deployment(cl, &md);
            }
        }
        status::cluster(self, cl, &infra, control_plane.as_ref(), kcp_name.as_str());
    }

    /// Provisions the infrastructure (the workload cluster) of a cluster
    /// whose infrastructure is a `KubesimCluster`: Ok, or why not.
    async fn infrastructure(&mut self, cl: &Value, ns: &str, name: &str) -> Result<(), String> {
        let (kind, infra_name) = (s(cl, "/spec/infrastructureRef/kind"), s(cl, "/spec/infrastructureRef/name"));
        if kind.is_empty() {
            return Err("spec.infrastructureRef is not set".into());
        }
        if kind != "KubesimCluster" {
            return Err(format!("kubesim provisions only KubesimCluster infrastructure, not {kind}"));
        }
        if self.get(INFRA, "kubesimclusters", ns, infra_name).is_none() {
            return Err(format!("KubesimCluster {infra_name} does not exist"));
        }
        let key = (ns.to_string(), name.to_string());
        if !self.workloads.contains_key(&key) {
            let version = self.version_of(cl, ns);
            match workload::Workload::start(name, &version).await {
                Ok(w) => {
                    self.failed.remove(&key);
                    self.workloads.insert(key.clone(), w);
                }
                Err(e) => {
                    self.failed.insert(key.clone(), e.clone());
                    return Err(format!("the workload API server cannot start: {e}"));
                }
            }
        }
        let Some(w) = self.workloads.get(&key) else { return Err("no workload cluster".into()) };
        w.set_down(annotation(cl, FAULT_API_SERVER) == "Down");
        let endpoint = json!({"host": "127.0.0.1", "port": w.port()});
        let kubeconfig = w.kubeconfig.clone();
        self.edit(INFRA, "kubesimclusters", ns, infra_name, false, |o| {
            o["spec"]["controlPlaneEndpoint"] = endpoint.clone()
        });
        self.edit(INFRA, "kubesimclusters", ns, infra_name, true, |o| o["status"]["ready"] = json!(true));
        self.edit(CORE, "clusters", ns, name, false, |o| o["spec"]["controlPlaneEndpoint"] = endpoint.clone());
        self.kubeconfig_secret(cl, ns, name, &kubeconfig);
        Ok(())
    }

    /// The Kubernetes version of a cluster: its control plane's.
    fn version_of(&self, cl: &Value, ns: &str) -> String {
        self.get(CONTROL_PLANE, "kubeadmcontrolplanes", ns, s(cl, "/spec/controlPlaneRef/name"))
            .map(|k| s(&k, "/spec/version").to_string())
            .unwrap_or_default()
    }

    /// Writes `<cluster>-kubeconfig` as Cluster API does (key `value`).
    fn kubeconfig_secret(&self, cl: &Value, ns: &str, name: &str, kubeconfig: &str) {
        use base64::Engine;
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        let secret = format!("{name}-kubeconfig");
        match self.get("", "secrets", ns, &secret) {
            Some(old) if s(&old, "/data/value") == value => {}
            Some(_) => self.edit("", "secrets", ns, &secret, false, |o| o["data"]["value"] = json!(value)),
            None => {
                self.create(
                    "",
                    "secrets",
                    ns,
                    json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": secret, "labels": {CLUSTER_NAME: name}, "ownerReferences": [owner_ref(cl)]},
                        "type": "cluster.x-k8s.io/secret", "data": {"value": value}}),
                );
            }
        }
    }

    /// A deleted cluster: its objects go first, then its workload and finalizer.
    fn tear_down(&mut self, cl: &Value, ns: &str, name: &str) {
        let refs = [s(cl, "/spec/controlPlaneRef/name"), s(cl, "/spec/infrastructureRef/name")];
        let mut left = 0;
        for (group, plural) in [
            (CONTROL_PLANE, "kubeadmcontrolplanes"),
            (CORE, "machinedeployments"),
            (CORE, "machinehealthchecks"),
            (CORE, "machines"),
            (INFRA, "kubesimclusters"),
            (INFRA, "kubesimmachines"),
        ] {
            for o in self.list(group, plural, Some(ns)) {
                let n = s(&o, "/metadata/name");
                let ours = label(&o, CLUSTER_NAME) == name
                    || s(&o, "/spec/clusterName") == name
                    || (matches!(plural, "kubeadmcontrolplanes" | "kubesimclusters") && refs.contains(&n));
                if ours {
                    left += 1;
                    if !deleting(&o) {
                        self.delete(group, plural, ns, n);
                    }
                }
            }
        }
        status::deleting(self, ns, name);
        if left == 0 {
            self.workloads.remove(&(ns.to_string(), name.to_string()));
            self.edit(CORE, "clusters", ns, name, false, |o| {
                if let Some(f) = o.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                    f.retain(|x| x != CLUSTER_FINALIZER);
                }
            });
        }
    }
}
