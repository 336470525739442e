//! The tenant controller's watch caches of the objects it owns, and what they
//! save: an apply whose every field the cached object already has is not
//! sent, and a delete of an object the cache does not hold is not sent.
//!
//! Why: every watch event on any of a tenant's objects (a namespace turning
//! Active, a quota's usage, its own status write) re-runs the whole
//! reconcile, and each run would otherwise send every apply again and
//! delete VPN objects that were never there: many times the writes a tenant
//! needs (`paddock bench tenants` counts them).
//!
//! Even with nothing to send, a reconcile costs CPU (each desired object
//! serialized and compared), and admission rewrites the quota's usage on
//! every create in the namespace: a burst of instance starts re-ran the
//! tenant's reconcile once per start. So the quota's events trigger only when
//! [`quota_view`] changes: anything but the usage, and whether the usage is
//! over the quota (which the tenant's status shows).
//!
//! The caching itself (trimmed reflected watches, applies skipped when the
//! cache already shows them) is [`crate::cache`].

use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::runtime::reflector::Store;
use std::sync::Arc;

/// One store per kind the tenant controller watches.
#[derive(Clone)]
pub struct Caches {
    pub namespaces: Store<Namespace>,
    pub policies: Store<NetworkPolicy>,
    pub quotas: Store<ResourceQuota>,
    pub limits: Store<LimitRange>,
    pub accounts: Store<ServiceAccount>,
    pub roles: Store<Role>,
    pub bindings: Store<RoleBinding>,
    pub claims: Store<PersistentVolumeClaim>,
    /// The VPN's pods and the file servers (`paddock.dev/component` vpn or files).
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub secrets: Store<Secret>,
    /// Group claims and volumes of members (label `paddock.dev/group`): few,
    /// so the sweep for groups a member left scans them instead of listing.
    pub group_claims: Store<PersistentVolumeClaim>,
    pub group_volumes: Store<PersistentVolume>,
}

/// A kind with a store in [`Caches`].
pub trait Cached: Resource<DynamicType = ()> + Clone + 'static {
    fn store(c: &Caches) -> &Store<Self>;
}

macro_rules! cached {
    ($($k:ty => $f:ident),* $(,)?) => {
        $(impl Cached for $k {
            fn store(c: &Caches) -> &Store<Self> {
                &c.$f
            }
        })*
    };
}

cached!(Namespace => namespaces, NetworkPolicy => policies, ResourceQuota => quotas, LimitRange => limits,
    ServiceAccount => accounts, Role => roles, RoleBinding => bindings, PersistentVolumeClaim => claims,
    Pod => pods, Service => services, Secret => secrets);

impl Caches {
    /// The cached object, if the cache has one.
    pub fn get<K: Cached>(&self, ns: Option<&str>, name: &str) -> Option<Arc<K>> {
        crate::cache::lookup(K::store(self), ns, name)
    }
}

/// What a tenant's reconcile reads of its ResourceQuota: its metadata and
/// spec, and of its status only what is over the quota. (The quota controller
/// copying the spec into `status.hard` after a create changes nothing the
/// tenant shows, so it triggers no reconcile.)
pub fn quota_view(q: &ResourceQuota) -> u64 {
    use std::hash::{Hash, Hasher};
    let m = &q.metadata;
    let read = (&m.labels, &m.annotations, &m.owner_references, &m.finalizers, &m.deletion_timestamp, &q.spec);
    let mut h = std::hash::DefaultHasher::new();
    serde_json::to_vec(&read).unwrap_or_default().hash(&mut h);
    super::status::over_quota(q).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::quota_view;
    use k8s_openapi::api::core::v1::ResourceQuota;

    fn quota(hard: &str, used: &str) -> ResourceQuota {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "quota", "namespace": "paddock-t"},
            "spec": {"hard": {"pods": hard}}, "status": {"hard": {"pods": hard}, "used": {"pods": used}}}))
        .unwrap()
    }

    #[test]
    fn a_quotas_view_changes_with_its_spec_and_with_going_over_not_with_usage() {
        let base = quota_view(&quota("10", "1"));
        assert_eq!(quota_view(&quota("10", "7")), base, "more usage, still within the quota");
        assert_ne!(quota_view(&quota("10", "11")), base, "usage over the quota");
        assert_ne!(quota_view(&quota("20", "1")), base, "another limit");
        let mut unsynced = quota("10", "1");
        unsynced.status = None;
        assert_eq!(quota_view(&unsynced), base, "the quota controller's first status (hard and used, within)");
        let mut labelled = quota("10", "1");
        labelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        assert_ne!(quota_view(&labelled), base, "a label changed (drift to repair)");
    }
}
