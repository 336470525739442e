//! Namespace lifecycle: a terminating namespace has its contents deleted and is
//! removed once empty; active namespaces get their `default` ServiceAccount and
//! `kube-root-ca.crt` ConfigMap, as upstream's controllers create them.

use super::{Sim, is_deleting, log_err, name_of};
use crate::cluster::{DeleteOpts, Propagation};
use serde_json::{Value, json};

const ROOT_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBkubesimFAKEROOTCAnotforTLSkubesimservesplainHTTPonloopback\n-----END CERTIFICATE-----\n";

pub fn reconcile(sim: &Sim, ns: &Value) {
    let name = name_of(ns).to_string();
    if is_deleting(ns) {
        empty(sim, &name);
        return;
    }
    if ns.pointer("/status/phase").and_then(Value::as_str) != Some("Active") {
        return;
    }
    if sim.c.get_value("", "serviceaccounts", &name, "default").is_none() {
        log_err(
            "default service account",
            sim.create(
                sim.ids.serviceaccounts,
                &name,
                json!({"metadata": {"name": "default"}}),
                "service-account-controller",
            ),
        );
    }
    if sim.c.get_value("", "configmaps", &name, "kube-root-ca.crt").is_none() {
        log_err(
            "root CA configmap",
            sim.create(
                sim.ids.configmaps,
                &name,
                json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": ROOT_CA}}),
                "root-ca-cert-publisher",
            ),
        );
    }
}

/// Deletes what is left in a terminating namespace; finalizes it when empty.
fn empty(sim: &Sim, ns: &str) {
    let types: Vec<usize> = sim.c.read(|st| st.registry.iter().filter(|(_, d)| d.namespaced).map(|(i, _)| i).collect());
    let mut remaining = 0;
    for id in types {
        let items: Vec<(String, bool)> = sim.c.read(|st| {
            st.store
                .range(id, Some(ns), None)
                .map(|(k, o)| (k.1.to_string(), o.value().pointer("/metadata/deletionTimestamp").is_some()))
                .collect()
        });
        remaining += items.len();
        for (name, deleting) in items {
            if !deleting {
                sim.delete(
                    id,
                    ns,
                    &name,
                    DeleteOpts { propagation: Some(Propagation::Background), ..Default::default() },
                );
            }
        }
    }
    if remaining == 0 {
        log_err(
            "finalize namespace",
            sim.c.modify(sim.ids.namespaces, "", ns, Some("finalize"), "namespace-controller", |n| {
                n["spec"]["finalizers"] = json!([]);
            }),
        );
    }
}

/// Called when something in `ns` was deleted: a terminating namespace may now be empty.
pub fn content_gone(sim: &Sim, ns: &str) {
    if let Some(n) = sim.c.get_value("", "namespaces", "", ns)
        && is_deleting(&n)
    {
        let left: usize = sim.c.read(|st| {
            st.registry
                .iter()
                .filter(|(_, d)| d.namespaced)
                .map(|(i, _)| st.store.range(i, Some(ns), None).count())
                .sum()
        });
        if left == 0 {
            empty(sim, ns);
        }
    }
}
