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
    fn set(&mut self, key: (usize, String), usage: Option<BTreeMap<String, Quantity>>) {
        let old = match usage {
            Some(u) => {
                for (k, q) in &u {
                    let t = self.totals.entry(k.clone()).or_default();
                    *t = *t + *q;
                }
                self.objects.insert(key, u)
            }
            None => self.objects.remove(&key),
        };
        for (k, q) in old.into_iter().flatten() {
            if let Some(t) = self.totals.get_mut(&k) {
                *t = *t - q;
            }
        }
    }
}

impl UsageCache {
    /// An object changed (`obj` gives it) or went (`None`); only namespaces
    /// with a quota are tracked, and the object is read only when its usage
    /// is more than a count.
    pub fn observe<'v>(
        &mut self,
        c: &Cluster,
        res: usize,
        ns: &str,
        name: &str,
        obj: Option<impl FnOnce() -> &'v Value>,
    ) {
        let Some(space) = self.0.get_mut(ns) else {
            return;
        };
        let usage = obj.and_then(|get| {
            let def = c.def(res)?;
            Some(usage(&def, if usage_reads_object(&def) { get() } else { &Value::Null }))
        });
        space.set((res, name.to_string()), usage);
    }

    /// Forgets everything (after the simulated controllers missed events).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

pub fn reconcile_namespace(sim: &Sim, cache: &mut UsageCache, ns: &str) {
    let quotas = sim.c.list_values("", "resourcequotas", Some(ns));
    if quotas.is_empty() {
        cache.0.remove(ns);
        return;
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
        // objects past the limit. Its event marks the namespace again. The
        // listed copy is checked first (most often it is that newer one), and
        // the update checks again what it is about to change.
        let seen = sim.seen_rv;
        if rv_of(q).is_some_and(|rv| rv > seen) {
            continue;
        }
        log_err(
            "quota status",
            sim.c.modify(sim.ids.quotas, ns, name_of(q), Some("status"), "resourcequota-controller", |x| {
                if rv_of(x).is_some_and(|rv| rv <= seen) {
                    x["status"] = want.clone();
                }
            }),
        );
    }
}

/// An object's resourceVersion as a number.
fn rv_of(o: &Value) -> Option<u64> {
    o.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|r| r.parse().ok())
}
