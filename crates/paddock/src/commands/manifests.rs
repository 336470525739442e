//! `paddock manifests`: the install bundle — CRDs, the system namespace,
//! least-privilege RBAC (no wildcards), hardened Deployments (the controller
//! and the API apart, or `paddock serve` as one), PodDisruptionBudgets,
//! Services, a NetworkPolicy for the system namespace, and optionally the
//! gVisor RuntimeClass.

use anyhow::{Result, bail};
use clap::Args;
use controller::rbac;
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct ManifestArgs {
    /// Container image of Paddock (build and push it yourself; see docs/install.md).
    #[arg(long, env = "PADDOCK_IMAGE", default_value = concat!("paddock:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// Namespace Paddock runs in.
    #[arg(long, env = "PADDOCK_SYSTEM_NAMESPACE", default_value = "paddock-system")]
    pub system_namespace: String,
    /// Also install RuntimeClass `gvisor` (handler runsc).
    #[arg(long)]
    pub with_runtime_class: bool,
    /// Replicas of each Deployment (the controller part is leader-elected).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub replicas: u32,
    /// `split`: the controller and the API as two Deployments; `combined`: one
    /// Deployment running `paddock serve`.
    #[arg(long, value_enum, default_value = "split")]
    pub layout: Layout,
    #[command(flatten)]
    pub version: super::crds::VersionArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Split,
    Combined,
}

const LABELS: &str = "paddock";

/// The bundle's documents, with the CRDs made for Kubernetes `version`.
pub fn documents(a: &ManifestArgs, version: resources::kubernetes::Version) -> Result<Vec<Value>> {
    let ns = &a.system_namespace;
    if ns.is_empty() || !ns.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-') {
        bail!("--system-namespace {ns:?}: must be a DNS label");
    }
    if a.image.trim().is_empty() || a.image.contains(char::is_whitespace) {
        bail!("--image {:?}: not an image reference", a.image);
    }
    let labels = json!({"app.kubernetes.io/name": LABELS, "app.kubernetes.io/managed-by": "paddock"});
    let mut docs: Vec<Value> = resources::kubernetes::crds_for(version)
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    docs.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}));
    docs.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "paddock", "namespace": ns, "labels": labels}}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "paddock", "labels": labels}, "rules": rbac::cluster_role_rules()}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "paddock", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paddock"},
        "subjects": [{"kind": "ServiceAccount", "name": "paddock", "namespace": ns}]}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "paddock-leader-election", "namespace": ns, "labels": labels},
        "rules": rbac::leader_election_rules()}));
    docs.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "paddock-leader-election", "namespace": ns, "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "paddock-leader-election"},
        "subjects": [{"kind": "ServiceAccount", "name": "paddock", "namespace": ns}]}));
    // Personalised warm pods ask the API's Service (named for the component).
    let claim_url = format!("http://paddock-server.{ns}.svc:8080/v1/claim");
    let parts: Vec<(&str, Vec<&str>, &str, u16)> = match a.layout {
        Layout::Split => vec![
            ("controller", vec!["controller", "--health-listen", "0.0.0.0:8081"], "health", 8081),
            ("api", vec!["api", "--listen", "0.0.0.0:8080"], "http", 8080),
        ],
        Layout::Combined => {
            vec![("server", vec!["serve", "--listen", "0.0.0.0:8080", "--claim-url", &claim_url], "http", 8080)]
        }
    };
    for (component, args, port_name, port) in parts {
        docs.extend(workload(a, ns, &labels, component, &args, port_name, port));
    }
    // The system namespace: only DNS and the API server (443/6443) out; probes and API clients in.
    docs.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "paddock-system", "namespace": ns, "labels": labels},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": 8081, "protocol": "TCP"}, {"port": 8080, "protocol": "TCP"}]}],
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

/// A hardened Deployment of `paddock <args>`, its PodDisruptionBudget and Service.
fn workload(
    a: &ManifestArgs,
    ns: &str,
    labels: &Value,
    component: &str,
    args: &[&str],
    port_name: &str,
    port: u16,
) -> Vec<Value> {
    let name = format!("paddock-{component}");
    let pod_labels = json!({"app.kubernetes.io/name": LABELS, "app.kubernetes.io/component": component});
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--log-format", "json"]);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "replicas": a.replicas,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": "paddock",
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": component,
                        "image": a.image,
                        "args": args,
                        "env": [
                            {"name": "PADDOCK_SYSTEM_NAMESPACE", "value": ns},
                            {"name": "PADDOCK_FILES_IMAGE", "value": a.image},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                        ],
                        "ports": [{"name": port_name, "containerPort": port}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port_name}, "periodSeconds": 10},
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port_name}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
                    }]
                }
            }
        }
    });
    let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": pod_labels}}});
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"selector": pod_labels, "ports": [{"name": port_name, "port": port, "targetPort": port_name}]}});
    vec![deployment, pdb, service]
}

pub fn render(a: &ManifestArgs, version: resources::kubernetes::Version) -> Result<String> {
    let mut out = String::new();
    for d in documents(a, version)? {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&d)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use controller::rbac::cluster_role_rules;
    use serde_json::json;

    /// RBAC refuses a Role that grants what its creator does not hold (the
    /// escalation check), so every permission of a tenant's Role must be in
    /// Paddock's ClusterRole. kubesim does not check this; a cluster does.
    #[test]
    fn the_tenant_role_grants_only_what_paddock_holds() {
        let held: Vec<(String, String, String)> = cluster_role_rules()
            .iter()
            .flat_map(|r| {
                let strings = |k: &str| -> Vec<String> {
                    r[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
                };
                let (groups, resources, verbs) = (strings("apiGroups"), strings("resources"), strings("verbs"));
                let mut out = Vec::new();
                for g in &groups {
                    for res in &resources {
                        for v in &verbs {
                            out.push((g.clone(), res.clone(), v.clone()));
                        }
                    }
                }
                out
            })
            .collect();
        let t: resources::Tenant =
            serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "red", "uid": "00000000-0000-0000-0000-000000000001"}, "spec": {"kind": "Team"}}))
            .unwrap();
        let desired = controller::tenant::build::build(&t, &controller::config::Settings::default()).unwrap();
        let rules = desired.role.rules.unwrap_or_default();
        assert!(!rules.is_empty());
        for r in rules {
            for g in r.api_groups.unwrap_or_default() {
                for res in r.resources.clone().unwrap_or_default() {
                    for v in &r.verbs {
                        assert!(
                            held.contains(&(g.clone(), res.clone(), v.clone())),
                            "the tenant Role grants {v} on {g:?}/{res}, which Paddock's ClusterRole does not hold"
                        );
                    }
                }
            }
        }
    }
}
