//! Server-side applies of an instance's objects: skipped when the cache
//! shows an object exactly as the last apply of the same desired object left
//! it, and drift an apply repaired reported as an Event.

use super::cache::{Caches, Meta, ServiceBrief};
use super::context::Context;
use crate::ledger::{Applied, Shown};
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use resources::Instance;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Where an apply's object is cached: its metadata, by namespace and name.
type Cached = fn(&Caches, &str, &str) -> Option<Meta>;

/// Applies `objs`; returns what the applies returned (None where skipped).
pub(super) async fn apply_all<K>(
    ctx: &Context,
    inst: &Instance,
    api: &Api<K>,
    cached: Cached,
    objs: &[K],
) -> Result<Vec<Option<K>>, super::context::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let (owner, caches) = (inst.metadata.uid.as_deref().unwrap_or_default(), ctx.caches()?);
    let mut out = Vec::with_capacity(objs.len());
    for o in objs {
        let (ns, name) =
            (o.meta().namespace.as_deref().unwrap_or_default(), o.meta().name.as_deref().unwrap_or_default());
        let meta = cached(caches, ns, name);
        let shown = meta.as_ref().map_or(Shown::Nothing, |m| Shown::Meta {
            uid: &m.uid,
            version: &m.resource_version,
            deleting: m.deleting,
        });
        match ctx.ledger.apply(owner, shown, o, || crate::cache::patch(api, o)).await? {
            Applied::Skipped => out.push(None),
            Applied::Sent(applied, repair) => {
                if let Some(r) = repair {
                    tracing::info!(instance = %inst.name_any(), repair = %r, "repaired drift");
                    ctx.events.record("Instance", inst.object_ref(&()), false, "DriftRepaired", r.to_string());
                }
                out.push(Some(applied));
            }
        }
    }
    Ok(out)
}

/// The Services as they are: what an apply returned, else the cache's.
pub(super) fn service_briefs(caches: &Caches, desired: &[Service], applied: Vec<Option<Service>>) -> Vec<ServiceBrief> {
    desired
        .iter()
        .zip(applied)
        .filter_map(|(d, a)| match a {
            Some(a) => Some(ServiceBrief::of(&a)),
            None => {
                caches.services.get(d.meta().namespace.as_deref()?, d.meta().name.as_deref()?).map(|b| (*b).clone())
            }
        })
        .collect()
}
