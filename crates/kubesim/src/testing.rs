//! Test support shared by every crate's tests: a cluster to test against —
//! kubesim by default, or a real cluster when `PADDOCK_TEST_KUBECONFIG` names a
//! kubeconfig — plus throw-away namespaces (deleted when the test ends,
//! passed or failed) and waiting helpers.
//!
//! Tests that need kubesim-only knobs (a node list, simulated pull times, a
//! small watch history) call [`TestCluster::sim`] and skip with a message when
//! running against a real cluster.

use crate::{KubeSim, SimConfig};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

pub const REAL_CLUSTER_ENV: &str = "PADDOCK_TEST_KUBECONFIG";

pub struct TestCluster {
    pub client: Client,
    /// What `client` was built from (its server, CA and credentials).
    pub config: kube::Config,
    sim: Option<KubeSim>,
    namespaces: Vec<String>,
    /// Cluster-scoped kinds whose objects with a label are the test's
    /// ([`TestCluster::owns_labelled`]).
    labelled: Vec<(kube::discovery::ApiResource, String)>,
    /// Namespace prefixes that are the test's, with the namespaced kinds
    /// whose finalizers go first ([`TestCluster::owns_prefixed`]).
    prefixed: Vec<(String, Vec<kube::discovery::ApiResource>)>,
    /// Whether [`TestCluster::finish`] ran; if not (the test failed), dropping
    /// the cluster still deletes the namespaces it made on a real cluster.
    finished: bool,
}

/// Whether the tests run against a real cluster.
pub fn real_cluster() -> bool {
    std::env::var_os(REAL_CLUSTER_ENV).is_some_and(|v| !v.is_empty())
}

/// The Kubernetes version test clusters emulate (`1.28`...), when set: runs
/// the suites against an older API server's behaviour.
pub const KUBESIM_VERSION_ENV: &str = "PADDOCK_TEST_KUBESIM_VERSION";

impl TestCluster {
    /// kubesim with its default configuration, its node's kubelet allowing
    /// the sysctl a VPN server needs (`net.ipv4.ip_forward`, as Paddock's
    /// install docs ask of VPN nodes), or the real cluster.
    pub async fn start() -> TestCluster {
        let mut config = SimConfig::default();
        for n in &mut config.nodes {
            n.allowed_unsafe_sysctls.push("net.ipv4.ip_forward".into());
        }
        Self::with_config(config).await
    }

    /// kubesim with this configuration, or the real cluster (the config is ignored).
    pub async fn with_config(mut config: SimConfig) -> TestCluster {
        if let Ok(v) = std::env::var(KUBESIM_VERSION_ENV) {
            config.kubernetes_version =
                crate::config::KubeVersion::parse(&v).unwrap_or_else(|e| panic!("{KUBESIM_VERSION_ENV}={v}: {e}"));
        }
        if real_cluster() {
            let path = std::env::var(REAL_CLUSTER_ENV).unwrap_or_default();
            let kc =
                kube::config::Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("{REAL_CLUSTER_ENV}={path}: {e}"));
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap_or_else(|e| panic!("{REAL_CLUSTER_ENV}={path}: {e}"));
            return Self::connect(cfg);
        }
        let sim =
            KubeSim::start(config, "127.0.0.1:0".parse().expect("literal address")).await.expect("kubesim starts");
        let config = sim.config().expect("config for kubesim");
        let client = Client::try_from(config.clone()).expect("client for kubesim");
        TestCluster {
            client,
            config,
            sim: Some(sim),
            namespaces: vec![],
            labelled: vec![],
            prefixed: vec![],
            finished: false,
        }
    }

    /// A cluster that is not this test's own kubesim (a real one, or a
    /// shared simulator): what the test leaves is deleted when it ends,
    /// passed or failed.
    pub fn connect(config: kube::Config) -> TestCluster {
        let client = Client::try_from(config.clone()).expect("client for the cluster");
        TestCluster {
            client,
            config,
            sim: None,
            namespaces: vec![],
            labelled: vec![],
            prefixed: vec![],
            finished: false,
        }
    }

    /// The simulator, or None (with a message) on a real cluster: use as
    /// `let Some(sim) = tc.sim("why") else { return };`.
    pub fn sim(&self, why: &str) -> Option<&KubeSim> {
        if self.sim.is_none() {
            eprintln!("skipped on a real cluster: {why}");
        }
        self.sim.as_ref()
    }

    /// A kubeconfig file for this cluster (written into `dir` for kubesim), for
    /// tests that run the `paddock` binary.
    pub fn kubeconfig_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        match &self.sim {
            Some(sim) => {
                let path = dir.join("kubeconfig");
                std::fs::write(&path, sim.kubeconfig_yaml()).expect("write kubeconfig");
                path
            }
            None => std::env::var(REAL_CLUSTER_ENV).unwrap_or_default().into(),
        }
    }

    /// What an authorizer would have been asked so far (verb, API group,
    /// resource/subresource of every request served), or nothing on a real
    /// cluster, which checks the permissions itself.
    pub fn access(&self) -> Vec<(String, String, String)> {
        self.sim.as_ref().map(|s| s.cluster().requests.access()).unwrap_or_default()
    }

    pub fn is_sim(&self) -> bool {
        self.sim.is_some()
    }

    /// Creates a namespace with a unique name and waits for its default ServiceAccount.
    pub async fn namespace(&mut self, prefix: &str) -> String {
        let ns: Api<Namespace> = Api::all(self.client.clone());
        let mut n = Namespace::default();
        n.metadata.generate_name = Some(format!("{prefix}-"));
        let created = ns.create(&PostParams::default(), &n).await.expect("create test namespace");
        let name = created.metadata.name.expect("generated name");
        self.namespaces.push(name.clone());
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &name);
        wait_until(Duration::from_secs(30), "default service account", || async {
            sas.get_opt("default").await.ok().flatten().is_some()
        })
        .await;
        name
    }

    /// Says that the objects of the cluster-scoped kind `resource` that
    /// carry `selector` (a label unique to the test's run) are the test's:
    /// when it ends, passed or failed, on a cluster that outlives it, they
    /// are deleted, their finalizers removed first (the controllers that
    /// would remove them stop with the test).
    pub fn owns_labelled(&mut self, resource: kube::discovery::ApiResource, selector: &str) {
        self.labelled.push((resource, selector.to_string()));
    }

    /// Says that the namespaces whose names start with `prefix` (one unique
    /// to the test's run) are the test's, whoever made them (its
    /// controllers): when it ends, passed or failed, on a cluster that
    /// outlives it, they are deleted, the finalizers of the objects of
    /// `kinds` in them removed first (the controllers that would remove them
    /// stop with the test, and a namespace waits for its objects).
    pub fn owns_prefixed(&mut self, prefix: &str, kinds: Vec<kube::discovery::ApiResource>) {
        self.prefixed.push((prefix.to_string(), kinds));
    }

    /// Deletes the namespaces this test created and stops kubesim.
    pub async fn finish(mut self) {
        self.finished = true;
        if self.sim.is_none() {
            delete_labelled(&self.client, &self.labelled).await;
            delete_prefixed(&self.client, &self.prefixed).await;
        }
        delete_namespaces(&self.client, &self.namespaces).await;
        if let Some(sim) = self.sim.take() {
            let _ = sim.shutdown().await;
        }
    }
}

/// Deletes the cluster-scoped objects of each kind that carry its label,
/// their finalizers removed first.
async fn delete_labelled(client: &Client, labelled: &[(kube::discovery::ApiResource, String)]) {
    use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
    for (resource, selector) in labelled {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let Ok(list) = api.list(&ListParams::default().labels(selector)).await else { continue };
        for o in list.items {
            let Some(name) = o.metadata.name else { continue };
            let strip = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(&strip)).await;
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
}

/// Deletes the namespaces that start with each prefix, the finalizers of
/// the objects of its kinds in them removed first.
async fn delete_prefixed(client: &Client, prefixed: &[(String, Vec<kube::discovery::ApiResource>)]) {
    use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
    let Ok(all) = Api::<Namespace>::all(client.clone()).list(&ListParams::default()).await else { return };
    for (prefix, kinds) in prefixed {
        let names: Vec<String> = all
            .items
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .filter(|n| n.starts_with(prefix.as_str()))
            .collect();
        for ns in &names {
            for kind in kinds {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, kind);
                let Ok(list) = api.list(&ListParams::default()).await else { continue };
                for o in
                    list.items.into_iter().filter(|o| o.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()))
                {
                    let strip = serde_json::json!({"metadata": {"finalizers": null}});
                    let _ = api
                        .patch(&o.metadata.name.unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&strip))
                        .await;
                }
            }
        }
        delete_namespaces(client, &names).await;
    }
}

async fn delete_namespaces(client: &Client, names: &[String]) {
    let ns: Api<Namespace> = Api::all(client.clone());
    for n in names {
        let _ = ns.delete(n, &DeleteParams::default()).await;
    }
}

impl Drop for TestCluster {
    /// A test that failed (or returned early) before [`TestCluster::finish`]
    /// still deletes its namespaces on a cluster that outlives it. The
    /// deletes run on a thread of their own, with their own runtime and
    /// client: the test's runtime may be unwinding. (The test's own kubesim
    /// goes with the test, so nothing is sent to it.)
    fn drop(&mut self) {
        let owns = !(self.namespaces.is_empty() && self.labelled.is_empty() && self.prefixed.is_empty());
        if self.finished || self.sim.is_some() || !owns {
            return;
        }
        let (config, names) = (self.config.clone(), std::mem::take(&mut self.namespaces));
        let (labelled, prefixed) = (std::mem::take(&mut self.labelled), std::mem::take(&mut self.prefixed));
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(client) = Client::try_from(config) else { return };
                let all = async {
                    delete_labelled(&client, &labelled).await;
                    delete_prefixed(&client, &prefixed).await;
                    delete_namespaces(&client, &names).await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), all).await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Polls `check` until it holds, panicking with `what` after `timeout`.
/// (For tests only: the product itself watches instead of polling.)
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (through a watch) until the named object satisfies `cond`; returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, timeout: Duration, cond: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let fut = kube::runtime::wait::await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond));
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(Some(o))) => o,
        Ok(Ok(None)) => panic!("{name} disappeared while waiting"),
        Ok(Err(e)) => panic!("watch on {name} failed: {e}"),
        Err(_) => {
            let last = api.get_opt(name).await;
            panic!("timed out after {timeout:?} waiting for {name}; last seen: {last:?}")
        }
    }
}

/// Waits until the named object is gone.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let uid = api.get_opt(name).await.ok().flatten().and_then(|o| o.meta().uid.clone());
    let Some(uid) = uid else { return };
    let fut = kube::runtime::wait::await_condition(api.clone(), name, kube::runtime::conditions::is_deleted(&uid));
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watch on {name} failed: {e}"),
        Err(_) => panic!("timed out after {timeout:?} waiting for {name} to be deleted"),
    }
}
