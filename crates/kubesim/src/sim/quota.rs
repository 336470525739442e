//! The resource quota controller: `status.hard` and `status.used` recomputed
//! from what exists in the namespace (admission charges usage between runs).

use super::{Sim, log_err, name_of};
use crate::admission::usage;
use quantity::{Quantity, is_bytes};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};

type UsageKey = (usize, String, String);

/// Each object's usage, kept until its resourceVersion changes, so a recount
/// decodes only what changed since the last one.
#[derive(Default)]
pub struct UsageCache(HashMap<UsageKey, (u64, BTreeMap<String, Quantity>)>);

pub fn reconcile_namespace(sim: &Sim, cache: &mut UsageCache, ns: &str) {
    let quotas = sim.c.list_values("", "resourcequotas", Some(ns));
    if quotas.is_empty() {
        return;
    }
    let mut hard_keys: Vec<String> = Vec::new();
    for q in &quotas {
        for k in q.pointer("/spec/hard").and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k.clone()) {
            if !hard_keys.contains(&k) {
                hard_keys.push(k);
            }
        }
    }
    let mut totals: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut seen: HashSet<UsageKey> = HashSet::new();
    sim.c.read(|st| {
        let mut types: Vec<usize> = Vec::new();
        for (id, d) in st.registry.iter().filter(|(_, d)| d.namespaced) {
            let count_key = if d.group.is_empty() {
                format!("count/{}", d.plural)
            } else {
                format!("count/{}.{}", d.plural, d.group)
            };
            let core_tracked = d.group.is_empty()
                && matches!(
                    d.plural.as_str(),
                    "pods" | "services" | "persistentvolumeclaims" | "configmaps" | "secrets" | "resourcequotas"
                );
            if core_tracked || hard_keys.contains(&count_key) {
                types.push(id);
            }
        }
        for id in types {
            let Some(def) = st.registry.get(id) else {
                continue;
            };
            for ((_, name), o) in st.store.range(id, Some(ns), None) {
                let key = (id, ns.to_string(), name.to_string());
                seen.insert(key.clone());
                let fresh = cache.0.get(&key).is_some_and(|(rv, _)| *rv == o.rv);
                if !fresh {
                    cache.0.insert(key.clone(), (o.rv, usage(def, &o.value())));
                }
                for (k, q) in cache.0.get(&key).map(|(_, u)| u).into_iter().flatten() {
                    *totals.entry(k.clone()).or_default() = totals.get(k).copied().unwrap_or_default() + *q;
                }
            }
        }
    });
    cache.0.retain(|k, _| k.1 != ns || seen.contains(k));
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
        log_err(
            "quota status",
            sim.c.modify(sim.ids.quotas, ns, name_of(q), Some("status"), "resourcequota-controller", |x| {
                x["status"] = want;
            }),
        );
    }
}
