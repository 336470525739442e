//! The tenant controller's watch caches of the objects it owns, and what they
//! save: an apply whose every field the cached object already has is not
//! sent, and a delete of an object the cache does not hold is not sent.
//!
//! Without this, every watch event on any of a tenant's objects (a namespace
//! turning Active, a quota's usage, its own status write) re-ran the whole
//! reconcile: a dozen server-side applies that changed nothing and five
//! DELETEs of VPN objects that were never there — about a hundred API-server
//! writes per tenant where eight are needed (see `paddock bench tenants`).
//!
//! A cache can lag the cluster by a watch event. That is safe: the event
//! that would make a skipped write necessary triggers another reconcile,
//! which then sees it.

use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;
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
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub secrets: Store<Secret>,
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
        let r = ObjectRef::<K>::new(name);
        K::store(self).get(&match ns {
            Some(ns) => r.within(ns),
            None => r,
        })
    }
}

/// Whether `actual` already has every field `desired` sets, with the same
/// value (objects recursively; arrays element by element, same length).
pub fn covers(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => d.iter().all(|(k, dv)| a.get(k).is_some_and(|av| covers(av, dv))),
        (Value::Array(a), Value::Array(d)) => a.len() == d.len() && a.iter().zip(d).all(|(av, dv)| covers(av, dv)),
        (a, d) => a == d,
    }
}

#[cfg(test)]
mod tests {
    use super::covers;
    use serde_json::json;

    #[test]
    fn covered_when_every_desired_field_is_there() {
        let actual = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "uid": "u"},
            "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}, "status": {"phase": "Active"}});
        assert!(covers(&actual, &json!({"metadata": {"name": "a", "labels": {"x": "1"}}})));
        assert!(covers(&actual, &json!({"spec": {"ports": [{"port": 53}]}})));
        assert!(!covers(&actual, &json!({"metadata": {"labels": {"x": "2"}}})), "a changed value");
        assert!(!covers(&actual, &json!({"metadata": {"annotations": {"a": "b"}}})), "a missing field");
        assert!(!covers(&actual, &json!({"spec": {"ports": []}})), "an array of another length");
    }
}
