//! The resource quota controller: `status.hard` and `status.used` recomputed
//! from what exists in the namespace (admission charges usage between runs).

use super::{Sim, log_err, name_of};
use crate::admission::{usage, usage_reads_object};
use crate::cluster::Cluster;
use quantity::{Quantity, is_bytes};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// Usage in the namespaces that have a ResourceQuota: each object's usage
/// and their totals, kept up to date from the watch events (an event costs
/// one object's usage, not a recount of the namespace), seeded by one full
/// count when a namespace's first quota appears. Namespaces without a quota
/// cost nothing.
#[derive(Default)]
pub struct UsageCache(HashMap<String, Space>);

#[derive(Default)]
struct Space {
    objects: HashMap<(usize, String), BTreeMap<String, Quantity>>,
    totals: BTreeMap<String, Quantity>,
}

impl Space {
    /// Sets (or, with `None`, forgets) an object's usage; returns whether it changed.
    fn set(&mut self, key: (usize, String), usage: Option<BTreeMap<String, Quantity>>) -> bool {
        let (old, changed) = match usage {
            Some(u) => {
                for (k, q) in &u {
                    let t = self.totals.entry(k.clone()).or_default();
                    *t = *t + *q;
                }
                let changed = self.objects.get(&key) != Some(&u);
                (self.objects.insert(key, u), changed)
            }
            None => {
                let old = self.objects.remove(&key);
                let changed = old.is_some();
                (old, changed)
            }
        };
        for (k, q) in old.into_iter().flatten() {
            if let Some(t) = self.totals.get_mut(&k) {
                *t = *t - q;
            }
        }
        changed
    }
}

impl UsageCache {
    /// An object changed (`obj` gives it) or went (`None`); only namespaces
    /// with a quota are tracked, and the object is read only when its usage
    /// is more than a count. Returns whether its usage changed.
    pub fn observe<'v>(
        &mut self,
        c: &Cluster,
        res: usize,
        ns: &str,
        name: &str,
        obj: Option<impl FnOnce() -> &'v Value>,
    ) -> bool {
        let Some(space) = self.0.get_mut(ns) else {
            return false;
        };
        let usage = obj.and_then(|get| {
            let def = c.def(res)?;
            Some(usage(&def, if usage_reads_object(&def) { get() } else { &Value::Null }))
        });
        space.set((res, name.to_string()), usage)
    }

    /// Forgets everything (after the simulated controllers missed events).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Which events make the quota controller recompute a namespace's usage, as
/// upstream's: a quota added, deleted or given a new spec (not its status
/// updates: admission's charges and this controller's own writes); an object
/// deleted; an object updated so that its usage changed (a pod finished, a
/// Service changed type, a claim resized). Not a new object: admission
/// charged it already.
pub fn recount_after(ev: &crate::store::Event, is_quota: bool, usage_changed: bool) -> bool {
    use crate::store::EventType;
    match ev.typ {
        EventType::Deleted => true,
        EventType::Added => is_quota,
        EventType::Modified if is_quota => !ev.status_only,
        EventType::Modified => usage_changed,
    }
}

/// Recomputes the status of `ns`'s quotas. Returns true when one was newer
/// than the events handled so far, so the namespace must be tried again
/// after the next batch.
pub fn reconcile_namespace(sim: &Sim, cache: &mut UsageCache, ns: &str) -> bool {
    let quotas = sim.c.list_shared("", "resourcequotas", Some(ns));
    if quotas.is_empty() {
        cache.0.remove(ns);
        return false;
    }
    let space = cache.0.entry(ns.to_string()).or_insert_with(|| {
        let mut space = Space::default();
        sim.c.read(|st| {
            for (id, def) in st.registry.iter().filter(|(_, d)| d.namespaced) {
                // As in `observe`: decoded only when usage is more than a count.
                let reads = usage_reads_object(def);
                for ((_, name), o) in st.store.range(id, Some(ns), None) {
                    let u = if reads { usage(def, &o.value()) } else { usage(def, &Value::Null) };
                    space.set((id, name.to_string()), Some(u));
                }
            }
        });
        space
    });
    let totals = &space.totals;
    let mut retry = false;
    for q in &quotas {
        let hard = q.pointer("/spec/hard").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut used = Map::new();
        for k in hard.keys() {
            used.insert(k.clone(), json!(totals.get(k).copied().unwrap_or_default().render(is_bytes(k))));
        }
        let want = json!({"hard": hard, "used": used});
        if q.get("status") == Some(&want) {
            continue;
        }
        // Admission charges a quota after writing the object it admits, so a
        // quota no newer than the last event handled has every charge counted
        // in `totals`. A newer one holds charges the totals do not have yet:
        // writing them would undo admission's accounting and let the next
        // objects past the limit. The namespace is tried again after the
        // next batch. The listed copy is checked first (most often it is that
        // newer one), and the update checks again what it is about to change.
        let seen = sim.seen_rv;
        if rv_of(q).is_some_and(|rv| rv > seen) {
            retry = true;
            continue;
        }
        let newer = std::cell::Cell::new(false);
        log_err(
            "quota status",
            sim.c.modify(sim.ids.quotas, ns, name_of(q), Some("status"), "resourcequota-controller", |x| {
                if rv_of(x).is_some_and(|rv| rv <= seen) {
                    x["status"] = want.clone();
                } else {
                    newer.set(true);
                }
            }),
        );
        retry |= newer.get();
    }
    retry
}

/// An object's resourceVersion as a number.
fn rv_of(o: &Value) -> Option<u64> {
    o.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok())
}
