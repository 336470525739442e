//! The pure build step of the tenant reconciler: Tenant + settings → the
//! objects its namespace must hold. No IO; tested from YAML fixtures.

use crate::config::Settings;
use crate::labels::{MANAGED_BY, MANAGER, ROLE, TENANT};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use resources::tenant::{TenantKind, validate_name};
use resources::{FieldProblem, Tenant};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Private and special-purpose ranges the `internet` allowance never reaches.
pub const NOT_INTERNET: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"];

/// The tenant's ServiceAccount: what its Role `tenant-reader` is bound to, and
/// what tenant kubeconfigs act as.
pub const SERVICE_ACCOUNT: &str = "tenant";
/// The Role (and RoleBinding) that lets the ServiceAccount read the tenant's
/// Instances, pods, pod logs, Services and Events.
pub const READER_ROLE: &str = "tenant-reader";

/// Every tenant-level NetworkPolicy `build` can produce, by name; one not
/// wanted by the current spec is deleted if it exists.
pub const POLICIES: [&str; 4] = ["default-deny", "allow-dns", "allow-internet", "allow-egress-cidrs"];

/// Everything a tenant's namespace holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub namespace: Namespace,
    pub policies: Vec<NetworkPolicy>,
    pub quota: Option<ResourceQuota>,
    pub limits: LimitRange,
    pub service_account: ServiceAccount,
    pub role: Role,
    pub role_binding: RoleBinding,
    pub storage: Option<PersistentVolumeClaim>,
}

pub fn namespace_name(tenant: &str, settings: &Settings) -> String {
    format!("{}{tenant}", settings.namespace_prefix)
}

/// The name of the tenant's volume claim: `shared` for groups, `storage` otherwise.
pub fn storage_claim_name(kind: TenantKind) -> &'static str {
    if kind == TenantKind::Group { "shared" } else { "storage" }
}

fn owner(t: &Tenant) -> Value {
    let r: Option<OwnerReference> = t.controller_owner_ref(&());
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn labels(tenant: &str) -> Value {
    json!({MANAGED_BY: MANAGER, TENANT: tenant, "paddock.dev/component": "tenant"})
}

fn meta(name: &str, ns: Option<&str>, t: &Tenant, tenant: &str) -> Value {
    let mut m = json!({"name": name, "labels": labels(tenant), "ownerReferences": [owner(t)]});
    if let Some(ns) = ns {
        m["namespace"] = json!(ns);
    }
    m
}

fn typed<K: DeserializeOwned>(v: Value) -> Result<K, Vec<FieldProblem>> {
    serde_json::from_value(v)
        .map_err(|e| vec![FieldProblem::new("spec", format!("cannot build the tenant's objects: {e}"))])
}

/// Builds the desired objects, or the problems with the spec.
pub fn build(t: &Tenant, settings: &Settings) -> Result<Desired, Vec<FieldProblem>> {
    let tenant = t.metadata.name.clone().unwrap_or_default();
    let mut problems = t.spec.validate();
    if let Some(p) = validate_name(&tenant, &settings.namespace_prefix) {
        problems.insert(0, p);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let ns = namespace_name(&tenant, settings);
    let spec = &t.spec;
    let kind = match spec.kind {
        TenantKind::Team => "team",
        TenantKind::User => "user",
        TenantKind::Group => "group",
    };
    let mut ns_meta = meta(&ns, None, t, &tenant);
    ns_meta["labels"]["paddock.dev/tenant-kind"] = json!(kind);
    let namespace: Namespace = typed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": ns_meta}))?;

    let mut policies = vec![typed::<NetworkPolicy>(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta("default-deny", Some(&ns), t, &tenant),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    }))?];
    if spec.egress.dns {
        policies.push(typed(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta("allow-dns", Some(&ns), t, &tenant),
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}
        }))?);
    }
    let ports: Vec<Value> = spec.egress.ports.iter().map(|p| json!({"protocol": "TCP", "port": p})).collect();
    let egress_rule = |name: &str, peers: Vec<Value>| -> Result<NetworkPolicy, Vec<FieldProblem>> {
        let mut rule = json!({"to": peers});
        if !ports.is_empty() {
            rule["ports"] = json!(ports);
        }
        typed(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": meta(name, Some(&ns), t, &tenant),
            // Not the VPN server: it reaches only teamnet pods and DNS.
            "spec": {"podSelector": {"matchExpressions": [{"key": ROLE, "operator": "NotIn", "values": ["vpn"]}]},
                "policyTypes": ["Egress"], "egress": [rule]}
        }))
    };
    if spec.egress.internet {
        policies.push(egress_rule(
            "allow-internet",
            vec![json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": NOT_INTERNET}})],
        )?);
    }
    if !spec.egress.cidrs.is_empty() {
        policies.push(egress_rule(
            "allow-egress-cidrs",
            spec.egress.cidrs.iter().map(|c| json!({"ipBlock": {"cidr": c}})).collect(),
        )?);
    }

    let q = &spec.quota;
    let mut hard = BTreeMap::new();
    if let Some(p) = q.pods {
        hard.insert("pods", json!(p.to_string()));
    }
    if let Some(c) = &q.cpu {
        hard.insert("requests.cpu", json!(c));
    }
    if let Some(m) = &q.memory {
        hard.insert("requests.memory", json!(m));
    }
    if let Some(s) = &q.storage {
        hard.insert("requests.storage", json!(s));
    }
    if let Some(i) = q.instances {
        hard.insert("count/instances.paddock.dev", json!(i.to_string()));
    }
    let quota = if hard.is_empty() {
        None
    } else {
        Some(typed(
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("quota", Some(&ns), t, &tenant), "spec": {"hard": hard}}),
        )?)
    };

    let d = &spec.defaults;
    let cpu_request = d.cpu_request.clone().unwrap_or_else(|| settings.default_cpu_request.clone());
    let memory_request = d.memory_request.clone().unwrap_or_else(|| settings.default_memory_request.clone());
    let mut limit = json!({"type": "Container", "defaultRequest": {"cpu": cpu_request, "memory": memory_request}});
    let mut default_limits = serde_json::Map::new();
    if let Some(c) = &d.cpu_limit {
        default_limits.insert("cpu".into(), json!(c));
    }
    if let Some(m) = &d.memory_limit {
        default_limits.insert("memory".into(), json!(m));
    }
    if !default_limits.is_empty() {
        limit["default"] = Value::Object(default_limits);
    }
    let limits = typed(
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("defaults", Some(&ns), t, &tenant), "spec": {"limits": [limit]}}),
    )?;

    let service_account = typed(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(SERVICE_ACCOUNT, Some(&ns), t, &tenant), "automountServiceAccountToken": false}),
    )?;
    let role = typed(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(READER_ROLE, Some(&ns), t, &tenant),
        "rules": [
            {"apiGroups": ["paddock.dev"], "resources": ["instances"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods", "services", "events"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]}
        ]}),
    )?;
    let role_binding = typed(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(READER_ROLE, Some(&ns), t, &tenant),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER_ROLE},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": ns}]}),
    )?;

    let storage = if !spec.storage.enabled {
        None
    } else {
        let mode = if spec.kind == TenantKind::Group { "ReadWriteMany" } else { "ReadWriteOnce" };
        let mut pvc_spec = json!({"accessModes": [mode], "resources": {"requests": {"storage": spec.storage.size}}});
        if let Some(c) = &spec.storage.storage_class_name {
            pvc_spec["storageClassName"] = json!(c);
        }
        let mut m = meta(storage_claim_name(spec.kind), Some(&ns), t, &tenant);
        // The claim belongs to the namespace's fate only: with retainOnDelete its
        // volume is kept (reclaim policy Retain) when the tenant goes.
        if let Some(map) = m.as_object_mut() {
            map.remove("ownerReferences");
        }
        m["labels"]["paddock.dev/retain"] = json!(spec.storage.retain_on_delete.to_string());
        Some(typed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": m, "spec": pvc_spec}))?)
    };

    Ok(Desired { namespace, policies, quota, limits, service_account, role, role_binding, storage })
}
