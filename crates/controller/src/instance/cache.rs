//! The instance controller's watch caches: what a reconcile reads (the
//! Template, the Tenant and its namespace, the instance's objects, the warm
//! pools' pods, whether nodes carry roles) comes from watches, so a reconcile
//! with nothing to do sends nothing to the API server.
//!
//! Without them every pod status change (scheduled, pulled, ready) re-ran
//! the whole reconcile: three GETs for the Template, namespace and Tenant, a
//! GET of the Secret, a node list, a server-side apply per object, a GET per
//! pod and lists of pods, Services and claimed pods — about fifteen requests
//! each time, so starts slowed down as instances grew (see `paddock bench
//! instances`). A miss falls back to the API server; see [`crate::cache`]
//! for why a lagging cache is safe.
//!
//! Memory: the instance's own pods are kept with only the fields their
//! status is made from (no container specs); everything without
//! managedFields. The warm pools' pods are kept whole, as a claim rewrites
//! them.

use crate::cache::{lookup, ready, reflected, whole};
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER, NODE_ROLE, TENANT};
use crate::pool::labels::{CLAIM, INSTANCE_NAMESPACE, POOL, SET};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, PodSpec, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use resources::{Instance, Template, Tenant};
use std::sync::Arc;

/// One store per kind the instance controller reads.
#[derive(Clone)]
pub struct Caches {
    pub instances: Store<Instance>,
    pub templates: Store<Template>,
    pub tenants: Store<Tenant>,
    /// Tenant namespaces (labelled with their tenant).
    pub namespaces: Store<Namespace>,
    /// Nodes with a `paddock.dev/node-role` label, metadata only.
    pub node_roles: Store<PartialObjectMeta<Node>>,
    /// Pods, Services, NetworkPolicies, ConfigMaps and Secrets of instances.
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub policies: Store<NetworkPolicy>,
    pub config_maps: Store<ConfigMap>,
    pub secrets: Store<Secret>,
    /// The warm pools' pods, claimed or not, whole.
    pub pool_pods: Store<Pod>,
}

/// Starts the caches' watches and wires them into the instance controller:
/// the instance's own objects trigger their owner's reconcile (by owner
/// reference), claimed warm pods theirs (by label, as owner references
/// cannot cross namespaces). Templates, Tenants, namespaces and nodes are
/// only read; their watches run in the returned future, which must be polled
/// as long as the controller runs.
pub fn wire(
    controller: Controller<Instance>,
    client: &Client,
    pool_ns: &str,
) -> (Controller<Instance>, Caches, BoxFuture<'static, ()>) {
    let c = client.clone();
    let ours = || watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{INSTANCE}"));
    let (pods, pods_s) = reflected(Api::<Pod>::all(c.clone()), ours(), trim_pod);
    let (services, services_s) = reflected(Api::<Service>::all(c.clone()), ours(), whole);
    let (policies, policies_s) = reflected(Api::<NetworkPolicy>::all(c.clone()), ours(), whole);
    let (config_maps, config_maps_s) = reflected(Api::<ConfigMap>::all(c.clone()), ours(), whole);
    let (secrets, secrets_s) = reflected(Api::<Secret>::all(c.clone()), ours(), whole);
    let (pool_pods, pool_s) =
        reflected(Api::<Pod>::namespaced(c.clone(), pool_ns), watcher::Config::default().labels(POOL), whole);
    let (templates, templates_s) = reflected(Api::<Template>::all(c.clone()), watcher::Config::default(), whole);
    let (tenants, tenants_s) = reflected(Api::<Tenant>::all(c.clone()), watcher::Config::default(), whole);
    let (namespaces, namespaces_s) = reflected(
        Api::<Namespace>::all(c.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{TENANT}")),
        whole,
    );
    let (node_roles, nodes_s) =
        reflected(Api::<PartialObjectMeta<Node>>::all(c), watcher::Config::default().labels(NODE_ROLE), whole);
    let background = futures::future::join4(
        templates_s.for_each(|_| async {}),
        tenants_s.for_each(|_| async {}),
        namespaces_s.for_each(|_| async {}),
        nodes_s.for_each(|_| async {}),
    )
    .map(|_| ())
    .boxed();
    let caches = Caches {
        instances: controller.store(),
        templates,
        tenants,
        namespaces,
        node_roles,
        pods,
        services,
        policies,
        config_maps,
        secrets,
        pool_pods,
    };
    let controller = controller
        .owns_stream(pods_s)
        .owns_stream(services_s)
        .owns_stream(policies_s)
        .owns_stream(config_maps_s)
        .owns_stream(secrets_s)
        .watches_stream(pool_s, |p: Pod| {
            let l = p.labels();
            l.get(CLAIM)?;
            Some(ObjectRef::<Instance>::new(l.get(INSTANCE)?).within(l.get(INSTANCE_NAMESPACE)?))
        });
    (controller, caches, background)
}

/// A pod as the status needs it: metadata, the node, the status.
fn trim_pod(p: &mut Pod) {
    let node_name = p.spec.as_mut().and_then(|s| s.node_name.take());
    p.spec = Some(PodSpec { node_name, ..Default::default() });
}

impl Caches {
    pub fn template(&self, name: &str) -> Option<Arc<Template>> {
        lookup(&self.templates, None, name)
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<Tenant>> {
        lookup(&self.tenants, None, name)
    }

    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        lookup(&self.namespaces, None, name)
    }

    /// Whether a node carries a role, once the node watch has listed them.
    pub fn any_node_has_role(&self) -> Option<bool> {
        ready(&self.node_roles).then(|| !self.node_roles.is_empty())
    }

    /// The pods claimed for the instance with `uid` from set `set` (by their
    /// names, `<set>-<pod>`), in template order; only those the cache shows
    /// claimed by it.
    pub fn claimed(&self, pool_ns: &str, tpl: &Template, set: &str, uid: &str) -> Vec<Pod> {
        tpl.spec
            .pods
            .iter()
            .filter_map(|p| lookup(&self.pool_pods, Some(pool_ns), &format!("{set}-{}", p.name)))
            .filter(|p| p.labels().get(CLAIM).map(String::as_str) == Some(uid))
            .filter(|p| p.labels().get(SET).map(String::as_str) == Some(set))
            .map(|p| (*p).clone())
            .collect()
    }
}
