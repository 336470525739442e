//! The instance reconciler's first step, `dereference`: the objects one
//! instance's reconcile depends on (its template, its tenant, and how many of
//! the tenant's instances of the template come before it), read from the
//! watch caches — the API server only on a miss — and gathered into a
//! [`World`] that the pure steps after it read.

use super::context::{Context, Error};
use crate::labels::TENANT;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use resources::{Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;

/// What an instance's reconcile reads besides the instance.
#[derive(Debug, Clone)]
pub struct World {
    pub template: Arc<Template>,
    pub tenant: Arc<Tenant>,
    /// The tenant's instances of the template that come before this one (see
    /// [`ahead`]); 0 where it cannot matter (an instance admitted once, or
    /// fewer instances in all than the template's limit).
    pub ahead: usize,
}

/// What dereferencing found.
pub enum Found {
    World(World),
    /// The instance's namespace is being deleted: it takes the instance and
    /// everything of it along, and refuses anything new (on a real API
    /// server, every such write is a 403 it still has to serve).
    NamespaceGoing,
    /// The instance's template does not exist.
    TemplateMissing,
    /// No tenant owns the instance's namespace.
    NotATenantNamespace,
    /// Another installation's (its namespace is no tenant's of this
    /// installation's [`crate::config::Settings::scope`]): left alone.
    Foreign,
}

/// Reads the instance's template, namespace and tenant.
pub async fn dereference(ctx: &Context, inst: &Instance) -> Result<Found, Error> {
    let (c, k, settings) = (&ctx.client, ctx.caches()?, &ctx.settings);
    let ns = inst.namespace().unwrap_or_default();
    let namespace: Option<Arc<Namespace>> = cached_or_get(k.namespace(&ns), c, &ns).await?;
    if namespace.as_ref().is_some_and(|n| n.metadata.deletion_timestamp.is_some()) {
        return Ok(Found::NamespaceGoing);
    }
    let tenant = match namespace.and_then(|n| n.labels().get(TENANT).cloned()) {
        Some(t) => cached_or_get(k.tenant(&t), c, &t).await?.filter(|t| settings.in_scope(t.metadata.labels.as_ref())),
        None => None,
    };
    let Some(tenant) = tenant else {
        // With a scope, a namespace no tenant of ours owns is another installation's.
        return Ok(if settings.scope.is_some() { Found::Foreign } else { Found::NotATenantNamespace });
    };
    let tpl = cached_or_get(k.template(&inst.spec.template), c, &inst.spec.template).await?;
    let Some(template) = tpl.filter(|t| settings.in_scope(t.metadata.labels.as_ref())) else {
        return Ok(Found::TemplateMissing);
    };
    let ahead = ahead(ctx, inst, &template)?;
    Ok(Found::World(World { template, tenant, ahead }))
}

/// How many of the tenant's instances of the template come before `inst`:
/// the oldest win, deterministically (by creation time, then name). An
/// instance that got past the limit once (it started, warm or cold) keeps
/// its place (0): newer instances never come before it, and lowering the
/// limit does not stop running instances (as a lowered ResourceQuota does
/// not evict pods). An instance being stopped does not count (its pods are on
/// their way out, and the API does not count it either), so a stop and a new
/// start at once start the new one.
fn ahead(ctx: &Context, inst: &Instance, tpl: &Template) -> Result<usize, Error> {
    // Started once, or failed (validate releases it before any limit): no count needed.
    let failed = |s: &resources::instance::InstanceStatus| s.phase == Some(resources::InstancePhase::Failed);
    if inst.status.as_ref().is_some_and(|s| s.admitted() || failed(s)) {
        return Ok(0);
    }
    fn key(i: &Instance) -> (Option<Timestamp>, Option<&str>) {
        (i.metadata.creation_timestamp.as_ref().map(|t| t.0), i.metadata.name.as_deref())
    }
    let (ns, mine) = (inst.metadata.namespace.as_deref(), key(inst));
    let before = |i: &Instance| {
        i.metadata.namespace.as_deref() == ns
            && i.spec.template == inst.spec.template
            && i.metadata.deletion_timestamp.is_none()
            && key(i) < mine
    };
    let k = ctx.caches()?;
    if k.instances.len() <= tpl.spec.max_per_tenant as usize {
        return Ok(0);
    }
    Ok(k.instances.state_filter(|i| before(i)).len())
}

/// A cluster-scoped object from the cache, or (a miss) from the API server.
async fn cached_or_get<K>(cached: Option<Arc<K>>, client: &Client, name: &str) -> Result<Option<Arc<K>>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope> + Clone + DeserializeOwned + Debug,
{
    match cached {
        Some(o) => Ok(Some(o)),
        None => Ok(Api::<K>::all(client.clone()).get_opt(name).await?.map(Arc::new)),
    }
}
