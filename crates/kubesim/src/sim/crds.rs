//! CustomResourceDefinitions: establishing (the type is served once the CRD is
//! Established) and cleanup (custom resources are deleted before the CRD goes).

use super::{Sim, is_deleting, log_err, name_of};
use crate::cluster::DeleteOpts;
use serde_json::{Value, json};

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub fn reconcile(sim: &Sim, crd: &Value) {
    let name = name_of(crd).to_string();
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("").to_string();
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("").to_string();
    if is_deleting(crd) {
        let Some((id, def)) = sim.c.resource(&group, &plural) else {
            remove_finalizer(sim, &name);
            return;
        };
        if def.crd.is_none() {
            return;
        }
        let items: Vec<(String, String)> =
            sim.c.read(|st| st.store.range(id, None, None).map(|(k, _)| (k.0.to_string(), k.1.to_string())).collect());
        for (ns, n) in &items {
            sim.delete(id, ns, n, DeleteOpts::default());
        }
        if sim.c.count(id) == 0 {
            sim.c.unregister(id);
            remove_finalizer(sim, &name);
        }
        return;
    }
    if let Err(e) = sim.c.register_crd(crd) {
        tracing::warn!(crd = %name, error = %e, "cannot serve custom resource");
        return;
    }
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    log_err(
        "establish CRD",
        sim.c.modify(sim.ids.crds, "", &name, Some("status"), "apiextensions-apiserver", |c| {
            let st = &mut c["status"];
            let mut accepted = names.clone();
            if accepted.get("singular").is_none() {
                accepted["singular"] = json!(accepted.get("kind").and_then(Value::as_str).unwrap_or("").to_lowercase());
            }
            if accepted.get("listKind").is_none() {
                accepted["listKind"] = json!(format!("{}List", accepted.get("kind").and_then(Value::as_str).unwrap_or("")));
            }
            st["acceptedNames"] = accepted;
            let mut stored = st.get("storedVersions").and_then(Value::as_array).cloned().unwrap_or_default();
            for v in &storage {
                if !stored.contains(v) {
                    stored.push(v.clone());
                }
            }
            st["storedVersions"] = json!(stored);
            let existing = st.get("conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            let keep_time = |t: &str| {
                existing
                    .iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
                    .and_then(|c| c.get("lastTransitionTime").cloned())
                    .unwrap_or_else(|| json!(crate::cluster::now_rfc3339()))
            };
            st["conditions"] = json!([
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}
            ]);
        }),
    );
}

fn remove_finalizer(sim: &Sim, name: &str) {
    log_err(
        "CRD cleanup finalizer",
        sim.c.modify(sim.ids.crds, "", name, None, "apiextensions-apiserver", |c| {
            if let Some(a) = c.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                a.retain(|f| f.as_str() != Some(CLEANUP_FINALIZER));
            }
        }),
    );
}
