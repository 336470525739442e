//! `paddock manifests`: the install bundle — CRDs, the system namespace,
//! least-privilege RBAC (no wildcards), a hardened 2-replica Deployment, a
//! PodDisruptionBudget, a Service, a NetworkPolicy for the system namespace,
//! and optionally the gVisor RuntimeClass.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct ManifestArgs {
    /// Container image of Paddock (build and push it yourself; see README).
    #[arg(long, env = "PADDOCK_IMAGE", default_value = concat!("paddock:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Namespace Paddock runs in.
    #[arg(long, env = "PADDOCK_SYSTEM_NAMESPACE", default_value = "paddock-system")]
    pub system_namespace: String,
    /// Also install RuntimeClass `gvisor` (handler runsc).
    #[arg(long)]
    pub with_runtime_class: bool,
    /// Controller replicas (leader-elected).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub replicas: u32,
}

const LABELS: &str = "paddock";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

/// Exactly what the controller uses.
pub fn cluster_role_rules() -> Vec<Value> {
    let rw = ["get", "list", "watch", "create", "patch", "update", "delete"];
    vec![
        rule(&["paddock.dev"], &["tenants"], &["get", "list", "watch", "patch", "update"]),
        rule(&["paddock.dev"], &["tenants/status"], &["get", "patch", "update"]),
        rule(&["paddock.dev"], &["tenants/finalizers"], &["update"]),
        rule(&["paddock.dev"], &["instances"], &["get", "list", "watch", "patch", "update", "delete"]),
        rule(&["paddock.dev"], &["instances/status"], &["get", "patch", "update"]),
        rule(&["paddock.dev"], &["instances/finalizers"], &["update"]),
        rule(&["paddock.dev"], &["templates"], &["get", "list", "watch"]),
        rule(&["paddock.dev"], &["templates/status"], &["get", "patch", "update"]),
        rule(&[""], &["namespaces", "resourcequotas", "limitranges", "serviceaccounts", "persistentvolumeclaims"], &rw),
        rule(
            &[""],
            &["pods", "services", "configmaps", "secrets"],
            &["get", "list", "watch", "create", "patch", "update", "delete", "deletecollection"],
        ),
        rule(&[""], &["persistentvolumes"], &["get", "list", "watch", "patch"]),
        // Granted onward to tenants through their Role (RBAC forbids granting what one lacks).
        rule(&[""], &["pods/log"], &["get"]),
        rule(&[""], &["nodes"], &["get", "list", "watch"]),
        rule(
            &["networking.k8s.io"],
            &["networkpolicies"],
            &["get", "list", "watch", "create", "patch", "update", "delete", "deletecollection"],
        ),
        rule(&["rbac.authorization.k8s.io"], &["roles", "rolebindings"], &rw),
        rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
    ]
}

pub fn documents(a: &ManifestArgs) -> Result<Vec<Value>> {
    let ns = &a.system_namespace;
    if ns.is_empty() || !ns.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        bail!("--system-namespace {ns:?}: must be a DNS label");
    }
    if a.image.trim().is_empty() || a.image.contains(char::is_whitespace) {
        bail!("--image {:?}: not an image reference", a.image);
    }
    let labels = json!({"app.kubernetes.io/name": LABELS, "app.kubernetes.io/managed-by": "paddock"});
    let mut docs: Vec<Value> =
        resources::crds().into_iter().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect();
    docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}));
    docs.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "paddock", "namespace": ns, "labels": labels}}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "paddock", "labels": labels}, "rules": cluster_role_rules()}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "paddock", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paddock"},
        "subjects": [{"kind": "ServiceAccount", "name": "paddock", "namespace": ns}]}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "paddock-leader-election", "namespace": ns, "labels": labels},
        "rules": [rule(&["coordination.k8s.io"], &["leases"], &["get", "create", "update"])]}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "paddock-leader-election", "namespace": ns, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "paddock-leader-election"},
        "subjects": [{"kind": "ServiceAccount", "name": "paddock", "namespace": ns}]}));
    let pod_labels = json!({"app.kubernetes.io/name": LABELS, "app.kubernetes.io/component": "controller"});
    docs.push(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "paddock-controller", "namespace": ns, "labels": labels},
        "spec": {
            "replicas": a.replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": "paddock",
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "controller",
                        "image": a.image,
                        "args": ["controller", "--health-listen", "0.0.0.0:8081", "--log-format", "json"],
                        "env": [
                            {"name": "PADDOCK_SYSTEM_NAMESPACE", "value": ns},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                        ],
                        "ports": [{"name": "health", "containerPort": 8081}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    }));
    docs.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "paddock-controller", "namespace": ns, "labels": labels},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": pod_labels}}}));
    docs.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "paddock-controller", "namespace": ns, "labels": labels},
        "spec": {"selector": pod_labels, "ports": [{"name": "health", "port": 8081, "targetPort": "health"}]}}));
    // The system namespace: only DNS and the API server (443/6443) out; health probes in.
    docs.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "paddock-system", "namespace": ns, "labels": labels},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 8081, "protocol": "TCP"}]}],
            "egress": [
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
            ]}}));
    if a.with_runtime_class {
        docs.push(json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "gvisor", "labels": labels}, "handler": "runsc"}));
    }
    Ok(docs)
}

pub fn render(a: &ManifestArgs) -> Result<String> {
    let mut out = String::new();
    for d in documents(a)? {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&d)?);
    }
    Ok(out)
}
