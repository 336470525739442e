//! What a fresh cluster has: the system namespaces, nodes, the `standard`
//! default StorageClass, the `kubernetes` Service, and cluster DNS (a `kube-dns`
//! Service in kube-system backed by `k8s-app=kube-dns` pods from a Deployment).

use crate::cluster::{Cluster, WriteOpts};
use crate::config::NodeSpec;
use serde_json::{Value, json};

fn create(c: &Cluster, group: &str, plural: &str, ns: &str, obj: Value) -> Result<(), String> {
    let (id, def) = c.resource(group, plural).ok_or_else(|| format!("no type {plural}"))?;
    c.create(id, def.storage_version(), ns, obj, &WriteOpts::manager("kubesim")).map(|_| ()).map_err(|e| e.to_string())
}

pub fn node_object(n: &NodeSpec, index: usize) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    });
    for (k, v) in &n.labels {
        labels[k] = json!(v);
    }
    let taints: Vec<Value> = n
        .taints
        .iter()
        .map(|t| {
            let mut x = json!({"key": t.key, "effect": t.effect});
            if !t.value.is_empty() {
                x["value"] = json!(t.value);
            }
            x
        })
        .collect();
    let mut spec = json!({"podCIDR": format!("10.244.{index}.0/24"), "podCIDRs": [format!("10.244.{index}.0/24")]});
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    let cap = json!({"cpu": n.cpu, "memory": n.memory, "pods": n.pods.to_string(), "ephemeral-storage": "100Gi"});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": n.name, "labels": labels},
        "spec": spec,
        "status": node_status(cap, index),
    })
}

/// The status a healthy simulated kubelet reports.
pub fn node_status(capacity: Value, index: usize) -> Value {
    let now = crate::cluster::now_rfc3339();
    let cond = |t: &str, s: &str, reason: &str, msg: &str| json!({"type": t, "status": s, "reason": reason, "message": msg, "lastHeartbeatTime": now, "lastTransitionTime": now});
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ],
        "addresses": [{"type": "InternalIP", "address": format!("172.18.0.{}", 2 + index)}],
        "nodeInfo": {
            "kubeletVersion": "v1.33.0-kubesim",
            "kubeProxyVersion": "v1.33.0-kubesim",
            "containerRuntimeVersion": "kubesim://1.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "osImage": "kubesim",
            "kernelVersion": "6.1.0",
            "machineID": "",
            "systemUUID": "",
            "bootID": ""
        },
        "images": [],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
    })
}

pub fn run(c: &Cluster) -> Result<(), String> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(c, "", "namespaces", "", json!({"metadata": {"name": ns}}))?;
    }
    // The service account controller runs later; these must exist for the DNS pods.
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(c, "", "serviceaccounts", ns, json!({"metadata": {"name": "default"}}))?;
    }
    for (i, n) in c.config.nodes.clone().iter().enumerate() {
        create(c, "", "nodes", "", node_object(n, i + 1))?;
    }
    create(
        c,
        "storage.k8s.io",
        "storageclasses",
        "",
        json!({
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubesim.dev/hostpath",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": true
        }),
    )?;
    let first = c.config.service_cidr.nth(1).to_string();
    let dns = c.config.service_cidr.nth(10).to_string();
    create(
        c,
        "",
        "services",
        "default",
        json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "targetPort": 6443, "protocol": "TCP"}]}
        }),
    )?;
    create(
        c,
        "",
        "services",
        "kube-system",
        json!({
            "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
            "spec": {
                "clusterIP": dns,
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                    {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}
                ]
            }
        }),
    )?;
    create(
        c,
        "apps",
        "deployments",
        "kube-system",
        json!({
            "metadata": {"name": "coredns", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "priorityClassName": "system-cluster-critical",
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [{
                            "name": "coredns",
                            "image": "registry.k8s.io/coredns/coredns:v1.12.0",
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}
                            ],
                            "resources": {"requests": {"cpu": "100m", "memory": "70Mi"}, "limits": {"memory": "170Mi"}}
                        }]
                    }
                }
            }
        }),
    )?;
    if c.config.controllers && c.config.cluster_api {
        for crd in super::capi::crds()? {
            create(c, "apiextensions.k8s.io", "customresourcedefinitions", "", crd)?;
        }
    }
    Ok(())
}
