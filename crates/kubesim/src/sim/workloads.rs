//! Deployments (one ReplicaSet per template, older ones scaled to zero),
//! ReplicaSets (pods to the replica count) and DaemonSets (one pod per eligible
//! node, pinned with node affinity as upstream does). No rollout pacing.

use super::scheduler::{node_matches, taints_of, tolerates};
use super::{Ids, Sim, is_deleting, log_err, name_of, ns_of, uid_of};
use crate::cluster::DeleteOpts;
use crate::registry::ResId;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn template_hash(template: &Value) -> String {
    // FNV-1a over the canonical JSON, rendered with upstream's safe alphabet.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in template.to_string().bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::new();
    for _ in 0..10 {
        s.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
        h /= ALPHABET.len() as u64;
    }
    s
}

fn owner_ref(kind: &str, api_version: &str, owner: &Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name_of(owner), "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true})
}

fn owned(sim: &Sim, res: usize, owner: &Value) -> Vec<Value> {
    let uid = uid_of(owner).to_string();
    let keys = sim.c.read(|st| st.store.dependents_of(&uid));
    keys.into_iter()
        .filter(|(r, _)| *r == res)
        .filter_map(|(r, k)| sim.c.read(|st| st.store.get(r, &k.0, &k.1).map(|o| o.value())))
        .collect()
}

fn is_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("type").and_then(Value::as_str) == Some("Ready")))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        == Some("True")
}

fn active(p: &Value) -> bool {
    !is_deleting(p) && !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
}

fn pod_from_template(template: &Value, prefix: &str, owner: Value, extra_labels: &[(&str, &str)]) -> Value {
    let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
    meta["generateName"] = json!(format!("{prefix}-"));
    meta["ownerReferences"] = json!([owner]);
    if !meta.get("labels").is_some_and(Value::is_object) {
        meta["labels"] = json!({});
    }
    for (k, v) in extra_labels {
        meta["labels"][*k] = json!(v);
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template.get("spec").cloned().unwrap_or(json!({}))})
}

/// The workloads whose controllers run after a batch of events: the ones
/// that changed and the owners of pods and ReplicaSets that changed, as
/// upstream's controllers queue them, all those of a namespace (a new
/// service account there), or all of them (a resync, a node change). A pod
/// owned by anything else (an Instance) wakes none of them.
#[derive(Default)]
pub struct Dirty {
    all: bool,
    some: BTreeSet<(ResId, String, String)>,
    namespaces: BTreeSet<String>,
}

impl Dirty {
    pub fn everything() -> Self {
        Self { all: true, ..Self::default() }
    }

    pub fn all(&mut self) {
        self.all = true;
    }

    pub fn mark(&mut self, res: ResId, ns: &str, name: &str) {
        if !self.all && !self.namespaces.contains(ns) {
            self.some.insert((res, ns.to_string(), name.to_string()));
        }
    }

    /// Marks every workload in `ns` (their pods may have waited for something
    /// created there, such as their service account).
    pub fn namespace(&mut self, ns: &str) {
        if !self.all {
            self.some.retain(|(_, n, _)| n != ns);
            self.namespaces.insert(ns.to_string());
        }
    }

    /// Marks the Deployments, ReplicaSets and DaemonSets that `obj` names as its owners.
    pub fn owners_of(&mut self, ids: &Ids, ns: &str, obj: &Value) {
        let Some(owners) = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array) else {
            return;
        };
        for o in owners {
            if o.get("apiVersion").and_then(Value::as_str) != Some("apps/v1") {
                continue;
            }
            let res = match o.get("kind").and_then(Value::as_str) {
                Some("Deployment") => ids.deployments,
                Some("ReplicaSet") => ids.replicasets,
                Some("DaemonSet") => ids.daemonsets,
                _ => continue,
            };
            if let Some(name) = o.get("name").and_then(Value::as_str) {
                self.mark(res, ns, name);
            }
        }
    }
}

/// Runs the controllers of the `dirty` workloads.
pub fn reconcile(sim: &Sim, dirty: Dirty) {
    if dirty.all {
        return reconcile_all(sim, None);
    }
    for ns in &dirty.namespaces {
        reconcile_all(sim, Some(ns));
    }
    for (res, ns, name) in dirty.some {
        let Some(w) = sim.c.read(|st| st.store.get(res, &ns, &name).map(|o| o.value())) else { continue };
        if is_deleting(&w) {
            continue;
        }
        if res == sim.ids.deployments {
            deployment(sim, &w);
        } else if res == sim.ids.replicasets {
            replicaset(sim, &w);
        } else if res == sim.ids.daemonsets {
            daemonset(sim, &w);
        }
    }
}

/// Runs the controllers of every workload, or of those in `ns`.
fn reconcile_all(sim: &Sim, ns: Option<&str>) {
    for d in sim.c.list_values("apps", "deployments", ns) {
        if !is_deleting(&d) {
            deployment(sim, &d);
        }
    }
    for rs in sim.c.list_values("apps", "replicasets", ns) {
        if !is_deleting(&rs) {
            replicaset(sim, &rs);
        }
    }
    for ds in sim.c.list_values("apps", "daemonsets", ns) {
        if !is_deleting(&ds) {
            daemonset(sim, &ds);
        }
    }
}

fn deployment(sim: &Sim, d: &Value) {
    let ns = ns_of(d).to_string();
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let name = format!("{}-{hash}", name_of(d));
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let sets = owned(sim, sim.ids.replicasets, d);
    if !sets.iter().any(|rs| name_of(rs) == name) {
        let mut tmpl = template.clone();
        tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": labels, "ownerReferences": [owner_ref("Deployment", "apps/v1", d)],
                "annotations": {"deployment.kubernetes.io/desired-replicas": replicas.to_string(), "deployment.kubernetes.io/revision": (sets.len() + 1).to_string()}},
            "spec": {"replicas": replicas, "selector": selector, "template": tmpl}
        });
        log_err("create replicaset", sim.create(sim.ids.replicasets, &ns, rs, "deployment-controller"));
    }
    for rs in &sets {
        let want = if name_of(rs) == name { replicas } else { 0 };
        if rs.pointer("/spec/replicas").and_then(Value::as_i64) != Some(want) {
            log_err(
                "scale replicaset",
                sim.c.modify(sim.ids.replicasets, &ns, name_of(rs), None, "deployment-controller", |r| {
                    r["spec"]["replicas"] = json!(want)
                }),
            );
        }
    }
    let sets = owned(sim, sim.ids.replicasets, d);
    let sum = |p: &str| sets.iter().filter_map(|r| r.pointer(p).and_then(Value::as_i64)).sum::<i64>();
    let current = sets.iter().find(|r| name_of(r) == name);
    let updated = current.and_then(|r| r.pointer("/status/replicas").and_then(Value::as_i64)).unwrap_or(0);
    let available = sum("/status/availableReplicas");
    let now = crate::cluster::now_rfc3339();
    let generation = d.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    let avail_status = if available >= replicas { "True" } else { "False" };
    let prev = d.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    let time_for = |t: &str, s: &str| {
        prev.iter()
            .find(|c| {
                c.get("type").and_then(Value::as_str) == Some(t) && c.get("status").and_then(Value::as_str) == Some(s)
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    };
    let mut status = json!({
        "observedGeneration": generation,
        "replicas": sum("/status/replicas"),
        "updatedReplicas": updated,
        "readyReplicas": sum("/status/readyReplicas"),
        "availableReplicas": available,
        "conditions": [
            {"type": "Available", "status": avail_status, "reason": if avail_status == "True" { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": if avail_status == "True" { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
             "lastUpdateTime": time_for("Available", avail_status), "lastTransitionTime": time_for("Available", avail_status)},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{name}\" has successfully progressed."),
             "lastUpdateTime": time_for("Progressing", "True"), "lastTransitionTime": time_for("Progressing", "True")}
        ]
    });
    if replicas - available > 0 {
        status["unavailableReplicas"] = json!(replicas - available);
    }
    if d.get("status") != Some(&status) {
        log_err(
            "deployment status",
            sim.c.modify(sim.ids.deployments, &ns, name_of(d), Some("status"), "deployment-controller", |x| {
                x["status"] = status.clone()
            }),
        );
    }
}

fn replicaset(sim: &Sim, rs: &Value) {
    let ns = ns_of(rs).to_string();
    let replicas = rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let pods: Vec<Value> = owned(sim, sim.ids.pods, rs).into_iter().filter(active).collect();
    let have = pods.len() as i64;
    if have < replicas {
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in have..replicas {
            let pod = pod_from_template(&template, name_of(rs), owner_ref("ReplicaSet", "apps/v1", rs), &[]);
            if log_err("create pod", sim.create(sim.ids.pods, &ns, pod, "replicaset-controller")).is_none() {
                break;
            }
        }
    } else if have > replicas {
        let mut victims = pods.clone();
        victims.sort_by_key(|p| {
            (
                is_ready(p),
                std::cmp::Reverse(
                    p.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("").to_string(),
                ),
            )
        });
        for p in victims.iter().take((have - replicas) as usize) {
            sim.delete(sim.ids.pods, &ns, name_of(p), DeleteOpts::default());
        }
    }
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let status = json!({
        "replicas": have.min(replicas.max(have)),
        "fullyLabeledReplicas": have,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))
    });
    if rs.get("status") != Some(&status) {
        log_err(
            "replicaset status",
            sim.c.modify(sim.ids.replicasets, &ns, name_of(rs), Some("status"), "replicaset-controller", |x| {
                x["status"] = status.clone()
            }),
        );
    }
}

/// Tolerations every DaemonSet pod gets (upstream's daemon controller adds them).
fn daemon_tolerations() -> Vec<Value> {
    let mut t = Vec::new();
    for key in ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"] {
        t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute"}));
    }
    for key in [
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        t.push(json!({"key": key, "operator": "Exists", "effect": "NoSchedule"}));
    }
    t
}

fn daemonset(sim: &Sim, ds: &Value) {
    let ns = ns_of(ds).to_string();
    let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut tols = template.pointer("/spec/tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    tols.extend(daemon_tolerations());
    let probe = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
    let nodes = sim.c.list_values("", "nodes", None);
    let eligible: Vec<String> = nodes
        .iter()
        .filter(|n| {
            let labels = n.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default();
            node_matches(&probe, name_of(n), &labels)
                && taints_of(n).iter().filter(|t| t.effect != "PreferNoSchedule").all(|t| tolerates(&tols, t))
        })
        .map(|n| name_of(n).to_string())
        .collect();
    let pods: Vec<Value> = owned(sim, sim.ids.pods, ds).into_iter().filter(active).collect();
    let pinned = |p: &Value| -> Option<String> {
        p.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for node in &eligible {
        if pods.iter().any(|p| pinned(p).as_deref() == Some(node)) {
            continue;
        }
        let mut pod = pod_from_template(&template, name_of(ds), owner_ref("DaemonSet", "apps/v1", ds), &[]);
        pod["spec"]["tolerations"] = json!(tols);
        pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]});
        if log_err("create daemon pod", sim.create(sim.ids.pods, &ns, pod, "daemonset-controller")).is_none() {
            break;
        }
    }
    for p in &pods {
        if pinned(p).is_none_or(|n| !eligible.contains(&n)) {
            sim.delete(sim.ids.pods, &ns, name_of(p), DeleteOpts::default());
        }
    }
    let scheduled = pods.iter().filter(|p| p.pointer("/spec/nodeName").is_some()).count();
    let ready = pods.iter().filter(|p| is_ready(p)).count();
    let status = json!({
        "desiredNumberScheduled": eligible.len(),
        "currentNumberScheduled": scheduled,
        "numberMisscheduled": 0,
        "numberReady": ready,
        "numberAvailable": ready,
        "updatedNumberScheduled": pods.len(),
        "observedGeneration": ds.pointer("/metadata/generation").cloned().unwrap_or(json!(1))
    });
    if ds.get("status") != Some(&status) {
        log_err(
            "daemonset status",
            sim.c.modify(sim.ids.daemonsets, &ns, name_of(ds), Some("status"), "daemonset-controller", |x| {
                x["status"] = status.clone()
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{Dirty, Ids};
    use crate::cluster::Cluster;
    use crate::config::SimConfig;
    use serde_json::json;

    fn owned_by(kind: &str, api_version: &str, name: &str) -> serde_json::Value {
        json!({"metadata": {"name": "x", "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": name, "uid": "u"}]}})
    }

    #[test]
    fn only_workload_owners_are_marked() {
        let ids = Ids::resolve(&Cluster::new(SimConfig::default()));
        let mut d = Dirty::default();
        d.owners_of(&ids, "ns", &owned_by("ReplicaSet", "apps/v1", "web-1"));
        d.owners_of(&ids, "ns", &owned_by("Deployment", "apps/v1", "web"));
        d.owners_of(&ids, "ns", &owned_by("DaemonSet", "apps/v1", "agent"));
        d.owners_of(&ids, "ns", &owned_by("Instance", "paddock.dev/v1alpha1", "web-1"));
        d.owners_of(&ids, "ns", &owned_by("ReplicaSet", "example.com/v1", "lookalike"));
        d.owners_of(&ids, "ns", &json!({"metadata": {"name": "orphan"}}));
        let marked: Vec<_> = d.some.iter().map(|(r, ns, n)| (*r, ns.as_str(), n.as_str())).collect();
        let mut want =
            vec![(ids.replicasets, "ns", "web-1"), (ids.deployments, "ns", "web"), (ids.daemonsets, "ns", "agent")];
        want.sort();
        assert_eq!(marked, want);
        assert!(!d.all);
        d.all();
        d.mark(ids.deployments, "ns", "other");
        assert!(d.all && !d.some.iter().any(|(_, _, n)| n == "other"), "once all are dirty, no list is kept");
    }

    #[test]
    fn a_dirty_namespace_covers_its_workloads_and_no_others() {
        let ids = Ids::resolve(&Cluster::new(SimConfig::default()));
        let mut d = Dirty::default();
        d.mark(ids.deployments, "a", "web");
        d.mark(ids.deployments, "b", "web");
        d.namespace("a");
        d.mark(ids.replicasets, "a", "web-1");
        let marked: Vec<_> = d.some.iter().map(|(_, ns, n)| (ns.as_str(), n.as_str())).collect();
        assert_eq!(marked, vec![("b", "web")], "a's workloads all run once, b's marked one still runs");
        assert!(d.namespaces.contains("a") && !d.all);
    }
}
