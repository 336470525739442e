//! The Cluster API objects a tenant cluster is made of (pure, from the
//! Paddock `Cluster`, its profile and its SSH key), in upstream's
//! `v1beta1` field names:
//!
//! - the infrastructure cluster (the profile's kind and spec, with the
//!   security-group rules rendered in where the provider has a field for
//!   them) and two machine templates (`<name>-control-plane`, `<name>-md-0`);
//! - `KubeadmControlPlane` `<name>-control-plane`, `KubeadmConfigTemplate`
//!   and `MachineDeployment` `<name>-md-0`, and a `MachineHealthCheck` for
//!   the workers; the SSH key is the `paddock` user's on every machine;
//! - with a CNI ConfigMap in the profile: a copy of it and a
//!   `ClusterResourceSet` `<name>-cni` applying it;
//! - the `Cluster` itself, last.

use resources::cluster::{Cluster, ClusterProfileSpec, SecurityGroupRule};
use serde_json::{Value, json};

pub const CAPI: &str = "cluster.x-k8s.io/v1beta1";
pub const CONTROL_PLANE_API: &str = "controlplane.cluster.x-k8s.io/v1beta1";
pub const BOOTSTRAP_API: &str = "bootstrap.cluster.x-k8s.io/v1beta1";
pub const ADDONS_API: &str = "addons.cluster.x-k8s.io/v1beta1";
pub const CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
pub const DEPLOYMENT_NAME: &str = "cluster.x-k8s.io/deployment-name";
/// The label that selects a Paddock cluster's objects.
pub const PADDOCK_CLUSTER: &str = "paddock.dev/cluster";
/// The user every machine gets, with the cluster's SSH key.
pub const SSH_USER: &str = "paddock";
/// Infrastructure cluster kinds whose spec takes the security-group rules
/// (Cluster API Provider OpenStack's field; kubesim's provider has the same).
const RULES_FIELD: &[&str] = &["OpenStackCluster", "KubesimCluster"];

/// One object to apply: its API version, kind (and plural, for the dynamic
/// client) and body.
#[derive(Debug, Clone)]
pub struct Desired {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub name: String,
    pub body: Value,
}

pub fn control_plane_name(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

pub fn workers_name(cluster: &str) -> String {
    format!("{cluster}-md-0")
}

/// A kind's resource name, as Cluster API's kinds and providers' name them.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with('s') { format!("{lower}es") } else { format!("{lower}s") }
}

fn object(api_version: &str, kind: &str, name: &str, c: &Cluster, spec: Value) -> Desired {
    let cluster = c.metadata.name.clone().unwrap_or_default();
    let mut body = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "labels": {CLUSTER_NAME: cluster, PADDOCK_CLUSTER: cluster,
            crate::labels::MANAGED_BY: crate::labels::MANAGER}},
    });
    if !spec.is_null() {
        body["spec"] = spec;
    }
    if let Some(uid) = &c.metadata.uid {
        body["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "paddock.dev/v1alpha1", "kind": "Cluster", "name": cluster, "uid": uid}]);
    }
    Desired { api_version: api_version.into(), kind: kind.into(), plural: plural(kind), name: name.into(), body }
}

/// The rules in the shape of Cluster API Provider OpenStack's
/// `managedSecurityGroups.allNodesSecurityGroupRules`: the API server and
/// NodePorts open to all, the rest between the cluster's nodes.
fn rendered_rules(rules: &[SecurityGroupRule]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            let mut v = json!({"name": r.name, "description": format!("paddock: {}", r.name), "direction": "ingress",
                "etherType": "IPv4", "protocol": r.protocol.to_ascii_lowercase(),
                "portRangeMin": r.port_min, "portRangeMax": r.port_max});
            if r.port_min == 6443 || r.port_min >= 30000 {
                v["remoteIPPrefix"] = json!("0.0.0.0/0");
            } else {
                v["remoteManagedGroups"] = json!(["controlplane", "worker"]);
            }
            v
        })
        .collect()
}

/// The infrastructure cluster's spec, and where the rules went (or why not).
pub fn infrastructure_spec(p: &ClusterProfileSpec) -> (Value, String) {
    let mut spec =
        if p.infrastructure.cluster.spec.is_object() { p.infrastructure.cluster.spec.clone() } else { json!({}) };
    let kind = p.infrastructure.cluster.kind.as_str();
    if !RULES_FIELD.contains(&kind) {
        return (
            spec,
            format!(
                "not rendered: Paddock knows no security-group field in a {kind}'s spec; open these ports in the provider"
            ),
        );
    }
    let mut rules = spec
        .pointer("/managedSecurityGroups/allNodesSecurityGroupRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    rules.extend(rendered_rules(&p.security_group_rules));
    spec["managedSecurityGroups"]["allNodesSecurityGroupRules"] = json!(rules);
    (spec, format!("{kind} spec.managedSecurityGroups.allNodesSecurityGroupRules"))
}

/// Every object of cluster `c` on profile `p`, in apply order, with the
/// cluster's SSH public key; `cni`: the CNI ConfigMap's data, when the
/// profile names one.
pub fn build(c: &Cluster, p: &ClusterProfileSpec, ssh_public_key: &str, cni: Option<&Value>) -> Vec<Desired> {
    let name = c.metadata.name.clone().unwrap_or_default();
    let (cp, md) = (control_plane_name(&name), workers_name(&name));
    let version = c.spec.version_on(p).to_string();
    let infra = &p.infrastructure;
    let worker_machine = infra.worker_machine.as_ref().unwrap_or(&infra.machine);
    let users = json!([{"name": SSH_USER, "sshAuthorizedKeys": [ssh_public_key], "sudo": "ALL=(ALL) NOPASSWD:ALL"}]);
    let template = |m: &resources::cluster::ProviderObject, n: &str| {
        let spec = if m.spec.is_object() { m.spec.clone() } else { json!({}) };
        object(&m.api_version, &m.kind, n, c, json!({"template": {"spec": spec}}))
    };
    let mut out = vec![
        object(&infra.cluster.api_version, &infra.cluster.kind, &name, c, infrastructure_spec(p).0),
        template(&infra.machine, &cp),
        template(worker_machine, &md),
    ];
    out.push(kubeadm_control_plane(c, p, &users, &version));
    out.extend(workers(c, p, &users, &version));
    if let Some(data) = cni {
        let cm_name = format!("{name}-cni");
        let mut cm = object("v1", "ConfigMap", &cm_name, c, Value::Null);
        cm.body["data"] = data.clone();
        out.push(cm);
        out.push(object(
            ADDONS_API,
            "ClusterResourceSet",
            &cm_name,
            c,
            json!({"clusterSelector": {"matchLabels": {PADDOCK_CLUSTER: name}},
                "resources": [{"kind": "ConfigMap", "name": cm_name}], "strategy": "ApplyOnce"}),
        ));
    }
    let net = &p.network;
    out.push(object(
        CAPI,
        "Cluster",
        &name,
        c,
        json!({
            "clusterNetwork": {"pods": {"cidrBlocks": [net.pods]}, "services": {"cidrBlocks": [net.services]}},
            "controlPlaneRef": {"apiVersion": CONTROL_PLANE_API, "kind": "KubeadmControlPlane", "name": cp},
            "infrastructureRef": {"apiVersion": infra.cluster.api_version, "kind": infra.cluster.kind, "name": name},
        }),
    ));
    out
}

/// The control plane: replicas, version, networking, the `paddock` user.
fn kubeadm_control_plane(c: &Cluster, p: &ClusterProfileSpec, users: &Value, version: &str) -> Desired {
    let name = c.metadata.name.clone().unwrap_or_default();
    let cp = control_plane_name(&name);
    let infra = &p.infrastructure;
    let net = &p.network;
    object(
        CONTROL_PLANE_API,
        "KubeadmControlPlane",
        &cp,
        c,
        json!({
            "replicas": c.spec.control_plane,
            "version": version,
            "machineTemplate": {"infrastructureRef": {"apiVersion": infra.machine.api_version, "kind": infra.machine.kind, "name": cp}},
            "kubeadmConfigSpec": {
                "clusterConfiguration": {
                    "networking": {"podSubnet": net.pods, "serviceSubnet": net.services},
                    "apiServer": {"extraArgs": {"service-node-port-range": net.node_ports}},
                },
                "users": users,
            },
        }),
    )
}

/// The workers: kubeadm config template, MachineDeployment, health check.
fn workers(c: &Cluster, p: &ClusterProfileSpec, users: &Value, version: &str) -> Vec<Desired> {
    let name = c.metadata.name.clone().unwrap_or_default();
    let md = workers_name(&name);
    let infra = &p.infrastructure;
    let worker_machine = infra.worker_machine.as_ref().unwrap_or(&infra.machine);
    let mut out = Vec::new();
    out.push(object(BOOTSTRAP_API, "KubeadmConfigTemplate", &md, c, json!({"template": {"spec": {"users": users}}})));
    out.push(object(
        CAPI,
        "MachineDeployment",
        &md,
        c,
        json!({
            "clusterName": name,
            "replicas": c.spec.workers,
            "selector": {"matchLabels": {CLUSTER_NAME: name, DEPLOYMENT_NAME: md}},
            "template": {
                "metadata": {"labels": {CLUSTER_NAME: name, DEPLOYMENT_NAME: md}},
                "spec": {
                    "clusterName": name,
                    "version": version,
                    "bootstrap": {"configRef": {"apiVersion": BOOTSTRAP_API, "kind": "KubeadmConfigTemplate", "name": md}},
                    "infrastructureRef": {"apiVersion": worker_machine.api_version, "kind": worker_machine.kind, "name": md},
                },
            },
        }),
    ));
    let timeout = p.node_unhealthy_timeout.clone();
    out.push(object(
        CAPI,
        "MachineHealthCheck",
        &md,
        c,
        json!({
            "clusterName": name,
            "selector": {"matchLabels": {DEPLOYMENT_NAME: md}},
            "unhealthyConditions": [{"type": "Ready", "status": "False", "timeout": timeout},
                {"type": "Ready", "status": "Unknown", "timeout": timeout}],
            "maxUnhealthy": "100%",
        }),
    ));
    out
}

/// Whether `actual` has everything `desired` says (what the server added is ignored).
pub fn contains(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (Value::Object(a), Value::Object(d)) => d.iter().all(|(k, v)| a.get(k).is_some_and(|x| contains(x, v))),
        (Value::Array(a), Value::Array(d)) => a.len() == d.len() && a.iter().zip(d).all(|(x, y)| contains(x, y)),
        (Value::Number(a), Value::Number(d)) => a.as_f64() == d.as_f64(),
        (a, d) => a == d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> ClusterProfileSpec {
        serde_json::from_value(json!({"infrastructure": {
            "cluster": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimCluster"},
            "machine": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimMachineTemplate",
                "spec": {"flavor": "small"}}}}))
        .unwrap()
    }

    #[test]
    fn objects_in_order_with_the_key_and_the_rules() {
        let c: Cluster = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "demo", "namespace": "tenant-a", "uid": "u1"}, "spec": {"workers": 3}}))
        .unwrap();
        let objs = build(&c, &profile(), "ssh-ed25519 AAAA", None);
        let kinds: Vec<&str> = objs.iter().map(|o| o.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "KubesimCluster",
                "KubesimMachineTemplate",
                "KubesimMachineTemplate",
                "KubeadmControlPlane",
                "KubeadmConfigTemplate",
                "MachineDeployment",
                "MachineHealthCheck",
                "Cluster"
            ]
        );
        let md = &objs[5].body;
        assert_eq!(md["spec"]["replicas"], 3);
        assert_eq!(md["spec"]["template"]["spec"]["version"], "v1.29.0");
        assert_eq!(objs[3].body["spec"]["kubeadmConfigSpec"]["users"][0]["sshAuthorizedKeys"][0], "ssh-ed25519 AAAA");
        assert_eq!(objs[1].body["spec"]["template"]["spec"]["flavor"], "small");
        let rules = &objs[0].body["spec"]["managedSecurityGroups"]["allNodesSecurityGroupRules"];
        assert_eq!(rules.as_array().unwrap().len(), 6);
        assert_eq!(rules[1]["protocol"], "udp");
        assert_eq!(objs[7].body["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(plural("KubeadmControlPlane"), "kubeadmcontrolplanes");
        assert_eq!(plural("OpenStackCluster"), "openstackclusters");
        let mut other = profile();
        other.infrastructure.cluster.kind = "AWSCluster".into();
        assert!(infrastructure_spec(&other).1.starts_with("not rendered"));
        let with_cni = build(&c, &profile(), "k", Some(&json!({"calico.yaml": "kind: List"})));
        assert_eq!(with_cni[8].kind, "ClusterResourceSet");
    }

    #[test]
    fn contains_ignores_what_the_server_adds() {
        assert!(contains(&json!({"a": 1, "b": {"c": 2, "d": 3}}), &json!({"b": {"c": 2}})));
        assert!(!contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!contains(&json!({"a": [1, 2]}), &json!({"a": [1]})));
        assert!(contains(&json!({"a": 1.0}), &json!({"a": 1})));
    }
}
