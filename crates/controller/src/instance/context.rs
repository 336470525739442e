//! What the instance reconciler's steps share: the client, the settings,
//! the watch caches, and this process's bookkeeping of its own writes, warm
//! claims, quota refusals and back-offs.

use super::cache::Caches;
use crate::config::Settings;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::pool::Pools;
use crate::quota;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub const FINALIZER: &str = resources::vocabulary::INSTANCE_FINALIZER;
/// How long an expired instance stays visible before it is deleted.
pub const RETENTION: Duration = Duration::from_secs(60);

pub use crate::error::Error;

pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub pools: Arc<Pools>,
    pub metrics: Arc<Metrics>,
    pub(super) events: Events,
    /// The watch caches reconciles read from (set by `run` before the
    /// controller starts: no reconcile runs without them).
    pub(super) caches: std::sync::OnceLock<Caches>,
    /// This controller's own writes: their watch events trigger nothing,
    /// instances are taken as its last write left them, applies are skipped
    /// and drift is told from them, cleanups are not sent twice (see
    /// `crate::ledger`).
    pub(super) ledger: Arc<crate::ledger::Ledger>,
    /// The tenant controller's Tenant and namespace stores, when it runs in
    /// this process (otherwise this controller watches them itself).
    pub(super) tenant_stores: std::sync::OnceLock<crate::tenant::Stores>,
    /// The process's shared watches (its own, on first use, unless given).
    pub(super) index: std::sync::OnceLock<crate::index::Index>,
    /// Instances the quota refused, until they may try again.
    pub(super) refusals: quota::Refusals,
    /// Failed reconciles per instance, for the retry back-off.
    pub(super) failures: crate::backoff::Failures,
    /// Tenants' VPN access to their claimed warm pods, as last applied.
    pub(super) vpn_access: crate::sent::Sent,
}

impl Context {
    /// The instances (namespace/name) of `template` in the watch cache, or
    /// `None` while the cache is not there or not yet filled.
    pub fn instances_of(&self, template: &str) -> Option<Vec<String>> {
        let k = self.caches.get().filter(|k| crate::cache::ready(&k.instances))?;
        let users = k.instances.state_filter(|i| i.spec.template == template);
        Some(users.iter().map(|i| format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any())).collect())
    }

    /// The uid of the instance `ns/name` in the watch cache, if it shows one.
    pub fn instance_uid(&self, ns: &str, name: &str) -> Option<String> {
        let k = self.caches.get().filter(|k| crate::cache::ready(&k.instances))?;
        let i = k.instances.get(&kube::runtime::reflector::ObjectRef::new(name).within(ns))?;
        i.metadata.uid.clone()
    }

    /// Whether any node carries a role, from the node watch (None while the
    /// controller does not run or the watch has not listed the nodes).
    pub fn any_node_has_role(&self) -> Option<bool> {
        self.caches.get().and_then(Caches::any_node_has_role)
    }

    /// The watch caches a reconcile reads (a cache that has not listed yet
    /// still falls back to the API server where a reconcile reads it).
    pub(super) fn caches(&self) -> Result<&Caches, Error> {
        self.caches.get().ok_or_else(|| Error::Waiting("the instance watch caches are not running yet".into()))
    }

    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_pools(client, settings, Arc::default(), metrics)
    }

    /// A context sharing warm-pool state with the pool reconciler.
    pub fn with_pools(client: Client, settings: Settings, pools: Arc<Pools>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            events: Events::new(client.clone(), metrics.clone()),
            client,
            settings,
            pools,
            metrics,
            caches: std::sync::OnceLock::new(),
            ledger: Arc::default(),
            tenant_stores: std::sync::OnceLock::new(),
            index: std::sync::OnceLock::new(),
            refusals: quota::Refusals::default(),
            failures: crate::backoff::Failures::default(),
            vpn_access: crate::sent::Sent::default(),
        })
    }

    /// Reads Tenants and their namespaces from the tenant controller's
    /// watches (`tenant::Watches::stores`) instead of watching them again.
    /// Takes effect when called before [`run`].
    pub fn read_tenants_from(&self, stores: crate::tenant::Stores) {
        let _ = self.tenant_stores.set(stores);
    }

    /// Reads Instances, Templates and pool pods from the process's shared
    /// watches. Takes effect when called before [`run`](super::reconcile::run).
    pub fn read_from(&self, index: crate::index::Index) {
        let _ = self.index.set(index);
    }

    /// The shared watches: those given, or this controller's own.
    pub(super) fn index(&self) -> &crate::index::Index {
        self.index.get_or_init(|| crate::index::Index::logging(self.client.clone(), self.settings.scope_selector()))
    }
}
