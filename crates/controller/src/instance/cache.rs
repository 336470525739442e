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
//! Memory: the instance's own objects are kept as projections of what a
//! reconcile reads of them — a pod as its [`PodBrief`], a Service as its
//! ports and load-balancer address, NetworkPolicies and ConfigMaps as their
//! uid and resourceVersion (metadata-only watches), Secrets as their values —
//! a few hundred bytes each instead of several kilobytes. An apply is skipped
//! when the object's uid and resourceVersion are what the last apply of the
//! same desired object left (`crate::ledger::applied`). The warm
//! pools' pods are kept whole, as a claim rewrites them.

use super::phase::PodBrief;
use crate::cache::{Projection, lookup, projected, ready, reflected, whole};
use crate::labels::{INSTANCE, MANAGED_BY, MANAGER, NODE_ROLE};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use resources::vocabulary::{CLAIM, INSTANCE_NAMESPACE, POOL_SET};
use resources::{Instance, Template, Tenant};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One store per kind the instance controller reads.
#[derive(Clone)]
pub struct Caches {
    pub instances: Store<Instance>,
    pub templates: Store<Template>,
    pub tenants: Store<Tenant>,
    /// Tenant namespaces (labelled with their tenant).
    pub namespaces: Store<Namespace>,
    /// The tenants' ResourceQuotas (what their namespaces use).
    pub quotas: Store<k8s_openapi::api::core::v1::ResourceQuota>,
    /// Nodes with a `paddock.dev/node-role` label, metadata only.
    pub node_roles: Store<PartialObjectMeta<Node>>,
    /// Pods, Services, NetworkPolicies, ConfigMaps and Secrets of instances.
    pub pods: Projection<PodBrief>,
    pub services: Projection<ServiceBrief>,
    pub policies: Projection<Meta>,
    pub config_maps: Projection<Meta>,
    pub secrets: Projection<SecretBrief>,
    /// The warm pools' pods, claimed or not, whole.
    pub pool_pods: Store<Pod>,
}

/// What an apply needs to know of an object: which one it is and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub uid: String,
    pub resource_version: String,
    pub deleting: bool,
    /// The instance it was made for (its label), unless it belongs to a
    /// claimed warm set (those are the pool reconciler's to sweep).
    pub instance: Option<String>,
}

impl Meta {
    pub fn of(m: &ObjectMeta) -> Self {
        let labels = m.labels.as_ref();
        let claimed = labels.is_some_and(|l| l.contains_key(CLAIM));
        Self {
            uid: m.uid.clone().unwrap_or_default(),
            resource_version: m.resource_version.clone().unwrap_or_default(),
            deleting: m.deletion_timestamp.is_some(),
            instance: labels.and_then(|l| l.get(INSTANCE)).filter(|_| !claimed).cloned(),
        }
    }
}

/// A Service as endpoints are made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBrief {
    pub meta: Meta,
    /// The template pod it selects (its `paddock.dev/pod` selector).
    pub pod: Option<String>,
    /// (name, nodePort, port) of each port.
    pub ports: Vec<(Option<String>, Option<i32>, i32)>,
    /// The first load-balancer ingress IP.
    pub load_balancer: Option<String>,
}

impl ServiceBrief {
    pub fn of(s: &Service) -> Self {
        let spec = s.spec.as_ref();
        Self {
            meta: Meta::of(&s.metadata),
            pod: spec.and_then(|x| x.selector.as_ref()).and_then(|m| m.get(resources::vocabulary::POD)).cloned(),
            ports: spec
                .and_then(|x| x.ports.as_ref())
                .into_iter()
                .flatten()
                .map(|p| (p.name.clone(), p.node_port, p.port))
                .collect(),
            load_balancer: s
                .status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .and_then(|i| i.first())
                .and_then(|i| i.ip.clone()),
        }
    }
}

/// A Secret as generated values are kept from it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretBrief {
    pub meta: Meta,
    pub values: BTreeMap<String, String>,
}

impl SecretBrief {
    pub fn of(s: &Secret) -> Self {
        let values = s
            .data
            .iter()
            .flatten()
            .filter_map(|(k, v)| String::from_utf8(v.0.clone()).ok().map(|v| (k.clone(), v)))
            .collect();
        Self { meta: Meta::of(&s.metadata), values }
    }
}

fn meta_of<K: kube::Resource>(o: &K) -> Meta {
    Meta::of(o.meta())
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
    index: &crate::index::Index,
    pool_ns: &str,
    ledger: &Arc<crate::ledger::Ledger>,
    tenant_stores: Option<crate::tenant::Stores>,
) -> (Controller<Instance>, Caches, BoxFuture<'static, ()>) {
    let c = client.clone();
    let ours = || watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{INSTANCE}"));
    let (pods, pods_s) = projected(Api::<Pod>::all(c.clone()), ours(), PodBrief::of_labelled);
    let (services, services_s) = projected(Api::<Service>::all(c.clone()), ours(), ServiceBrief::of);
    let (policies, policies_s) =
        projected(Api::<PartialObjectMeta<NetworkPolicy>>::all(c.clone()), ours(), meta_of::<PartialObjectMeta<_>>);
    let (config_maps, config_maps_s) =
        projected(Api::<PartialObjectMeta<ConfigMap>>::all(c.clone()), ours(), meta_of::<PartialObjectMeta<_>>);
    let (secrets, secrets_s) = projected(Api::<Secret>::all(c.clone()), ours(), SecretBrief::of);
    let pool_feed = index.pool_pods(pool_ns);
    let (pool_pods, pool_s) = (pool_feed.store(), pool_feed.subscribe().touched_objects());
    let templates = index.templates().store();
    let (node_roles, nodes_s) =
        reflected(Api::<PartialObjectMeta<Node>>::all(c.clone()), watcher::Config::default().labels(NODE_ROLE), whole);
    let mut background = vec![crate::cache::drain("nodes", nodes_s).boxed()];
    let crate::tenant::Stores { tenants, namespaces, quotas } = match tenant_stores {
        Some(shared) => shared,
        None => {
            let own = crate::tenant::Watches::new(&c, index);
            let stores = own.stores();
            background.push(own.fill());
            stores
        }
    };
    let background = futures::future::join_all(background).map(|_| ()).boxed();
    let caches = Caches {
        instances: controller.store(),
        templates,
        tenants,
        namespaces,
        quotas,
        node_roles,
        pods,
        services,
        policies,
        config_maps,
        secrets,
        pool_pods,
    };
    let controller = controller
        .owns_stream(ledger.unechoed(pods_s))
        .owns_stream(ledger.unechoed(services_s))
        .owns_stream(ledger.unechoed(policies_s))
        .owns_stream(ledger.unechoed(config_maps_s))
        .owns_stream(ledger.unechoed(secrets_s))
        .watches_stream(pool_s, |p: Pod| {
            let l = p.labels();
            l.get(CLAIM)?;
            Some(ObjectRef::<Instance>::new(l.get(INSTANCE)?).within(l.get(INSTANCE_NAMESPACE)?))
        });
    (controller, caches, background)
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

    /// What the pods of namespace `ns` use, from its ResourceQuota's
    /// `status.used` (admission adds each create to it before the pod
    /// exists; a deletion leaves it until the quota controller catches up,
    /// so it never counts less than is used). None when the watch has not
    /// listed the quotas or the namespace's quota counts no pods.
    pub fn namespace_usage(&self, ns: &str) -> Option<resources::usage::Usage> {
        if !ready(&self.quotas) {
            return None;
        }
        let q = lookup(&self.quotas, Some(ns), resources::vocabulary::TENANT_QUOTA)?;
        resources::usage::Usage::of_quota(&q)
    }

    /// Whether the instances' watch and those of their objects have listed.
    pub fn listed(&self) -> bool {
        ready(&self.instances)
            && self.policies.ready()
            && self.config_maps.ready()
            && self.services.ready()
            && self.secrets.ready()
    }

    /// The instances that objects of namespace `ns` are labelled for but that
    /// the instance watch does not show: what they left behind (only an
    /// answer once [`Caches::listed`]). Their NetworkPolicies, ConfigMaps,
    /// Services and Secrets tell; a leftover pod alone does not (the pod
    /// projection keeps no label), and goes with its owner reference.
    pub fn orphans_in(&self, ns: &str) -> BTreeSet<String> {
        let metas = (self.policies.in_namespace(ns).into_iter())
            .chain(self.config_maps.in_namespace(ns))
            .filter_map(|m| m.instance.clone());
        let services = self.services.in_namespace(ns).into_iter().filter_map(|s| s.meta.instance.clone());
        let secrets = self.secrets.in_namespace(ns).into_iter().filter_map(|s| s.meta.instance.clone());
        let mut named: BTreeSet<String> = metas.chain(services).chain(secrets).collect();
        named.retain(|i| self.instances.get(&ObjectRef::new(i).within(ns)).is_none());
        named
    }

    /// Whether a node carries a role, once the node watch has listed them.
    pub fn any_node_has_role(&self) -> Option<bool> {
        ready(&self.node_roles).then(|| !self.node_roles.is_empty())
    }

    /// Whether the pool watch has listed its pods and shows none claimed for
    /// the instance `uid`.
    pub fn none_claimed_for(&self, uid: &str) -> bool {
        ready(&self.pool_pods)
            && !self.pool_pods.state().iter().any(|p| p.labels().get(CLAIM).map(String::as_str) == Some(uid))
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
            .filter(|p| p.labels().get(POOL_SET).map(String::as_str) == Some(set))
            .map(|p| (*p).clone())
            .collect()
    }
}
