//! The pure build step of the tenant reconciler: Tenant + settings → the
//! objects its namespace must hold. No IO; tested from YAML fixtures.

use crate::config::Settings;
use crate::labels::{MANAGED_BY, MANAGER, ROLE, TENANT};
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    ResourceQuota, ResourceQuotaSpec, ServiceAccount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use resources::tenant::{TenantKind, validate_name};
use resources::vocabulary::{TENANT_QUOTA, TENANT_SERVICE_ACCOUNT, storage_claim};
use resources::{FieldProblem, Tenant};
use std::collections::BTreeMap;

/// Private and special-purpose ranges the `internet` allowance never reaches.
pub const NOT_INTERNET: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"];

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

/// The namespace of tenant `tenant` under the installation's prefix.
pub fn namespace_name(tenant: &str, settings: &Settings) -> String {
    resources::vocabulary::tenant_namespace(&settings.namespace_prefix, tenant)
}

/// Why `tenant` may not have the namespace its name gives, if it may not:
/// Paddock's own namespaces (the settings name them) are never a tenant's,
/// and neither is a namespace that exists (`existing`) without being this
/// tenant's (another tenant's, `kube-system`, a user's own). A tenant that
/// owned one would delete it with itself, and its kubeconfig would read it.
pub fn namespace_refused(tenant: &str, settings: &Settings, existing: Option<&Namespace>) -> Option<FieldProblem> {
    let ns = namespace_name(tenant, settings);
    let why = if ns == settings.system_namespace {
        format!("its namespace would be {ns:?}, Paddock's own (--system-namespace)")
    } else if ns == settings.pool_namespace {
        format!("its namespace would be {ns:?}, the warm pools' (--pool-namespace)")
    } else {
        if owned_by(existing?, tenant) {
            return None;
        }
        format!("its namespace would be {ns:?}, which already exists and is not this tenant's")
    };
    Some(FieldProblem::new("metadata.name", format!("{tenant:?} cannot be a tenant: {why}; choose another name")))
}

/// Whether `ns` is `tenant`'s own namespace (labelled as its): the only one
/// the tenant may use, and the only one deleting it may delete.
pub fn owned_by(ns: &Namespace, tenant: &str) -> bool {
    ns.metadata.labels.as_ref().and_then(|l| l.get(TENANT)).map(String::as_str) == Some(tenant)
}

/// The metadata of one of the tenant's objects: its name, namespace, labels
/// and the Tenant as its controlling owner.
fn meta(name: &str, ns: Option<&str>, t: &Tenant, tenant: &str) -> ObjectMeta {
    let labels = [(MANAGED_BY, MANAGER), (TENANT, tenant), (resources::vocabulary::COMPONENT, "tenant")];
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: ns.map(str::to_string),
        labels: Some(labels.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        owner_references: Some(t.controller_owner_ref(&()).into_iter().collect()),
        ..ObjectMeta::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..LabelSelector::default()
    }
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort { protocol: Some(protocol.to_string()), port: Some(IntOrString::Int(port)), end_port: None }
}

fn policy(meta: ObjectMeta, spec: NetworkPolicySpec) -> NetworkPolicy {
    NetworkPolicy { metadata: meta, spec: Some(spec) }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

/// Builds the desired objects, or the problems with the spec.
pub fn build(t: &Tenant, settings: &Settings) -> Result<Desired, Vec<FieldProblem>> {
    let tenant = t.metadata.name.clone().unwrap_or_default();
    let mut problems = t.spec.validate();
    if let Some(p) =
        validate_name(&tenant, &settings.namespace_prefix).or_else(|| namespace_refused(&tenant, settings, None))
    {
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
    ns_meta.labels.get_or_insert_default().insert(resources::vocabulary::TENANT_KIND.into(), kind.into());
    let namespace = Namespace { metadata: ns_meta, ..Namespace::default() };
    let in_ns = |name: &str| meta(name, Some(&ns), t, &tenant);

    let mut policies = vec![policy(
        in_ns("default-deny"),
        NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(strings(&["Ingress", "Egress"])),
            ..NetworkPolicySpec::default()
        },
    )];
    if spec.egress.dns {
        let kube_dns = NetworkPolicyPeer {
            namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", "kube-system")])),
            pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
            ..NetworkPolicyPeer::default()
        };
        policies.push(policy(
            in_ns("allow-dns"),
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(strings(&["Egress"])),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![kube_dns]),
                    ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
                }]),
                ..NetworkPolicySpec::default()
            },
        ));
    }
    let ports: Vec<NetworkPolicyPort> = spec.egress.ports.iter().map(|p| port("TCP", i32::from(*p))).collect();
    let egress_rule = |name: &str, blocks: Vec<IPBlock>| {
        let to = blocks.into_iter().map(|b| NetworkPolicyPeer { ip_block: Some(b), ..NetworkPolicyPeer::default() });
        policy(
            in_ns(name),
            NetworkPolicySpec {
                // Not the VPN server: it reaches only teamnet pods and DNS.
                pod_selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: ROLE.to_string(),
                        operator: "NotIn".to_string(),
                        values: Some(strings(&["vpn"])),
                    }]),
                    ..LabelSelector::default()
                }),
                policy_types: Some(strings(&["Egress"])),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(to.collect()),
                    ports: (!ports.is_empty()).then(|| ports.clone()),
                }]),
                ..NetworkPolicySpec::default()
            },
        )
    };
    if spec.egress.internet {
        let block = IPBlock { cidr: "0.0.0.0/0".to_string(), except: Some(strings(NOT_INTERNET)) };
        policies.push(egress_rule("allow-internet", vec![block]));
    }
    if !spec.egress.cidrs.is_empty() {
        let blocks = spec.egress.cidrs.iter().map(|c| IPBlock { cidr: c.clone(), except: None }).collect();
        policies.push(egress_rule("allow-egress-cidrs", blocks));
    }

    let q = &spec.quota;
    let hard: BTreeMap<String, Quantity> = [
        ("pods", q.pods.map(|p| p.to_string())),
        ("requests.cpu", q.cpu.clone()),
        ("requests.memory", q.memory.clone()),
        ("requests.storage", q.storage.clone()),
        ("count/instances.paddock.dev", q.instances.map(|i| i.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), Quantity(v?))))
    .collect();
    let quota = (!hard.is_empty()).then(|| ResourceQuota {
        metadata: in_ns(TENANT_QUOTA),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..ResourceQuotaSpec::default() }),
        ..ResourceQuota::default()
    });

    let d = &spec.defaults;
    let cpu_request = d.cpu_request.clone().unwrap_or_else(|| settings.default_cpu_request.clone());
    let memory_request = d.memory_request.clone().unwrap_or_else(|| settings.default_memory_request.clone());
    let default_limits: BTreeMap<String, Quantity> = [("cpu", &d.cpu_limit), ("memory", &d.memory_limit)]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), Quantity(v.clone()?))))
        .collect();
    let limits = LimitRange {
        metadata: in_ns("defaults"),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_string(),
                default_request: Some(
                    [("cpu".to_string(), Quantity(cpu_request)), ("memory".to_string(), Quantity(memory_request))]
                        .into(),
                ),
                default: (!default_limits.is_empty()).then_some(default_limits),
                ..LimitRangeItem::default()
            }],
        }),
    };

    let service_account = ServiceAccount {
        metadata: in_ns(TENANT_SERVICE_ACCOUNT),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let role = Role {
        metadata: in_ns(READER_ROLE),
        rules: Some(vec![
            rule(&["paddock.dev"], &["instances"], &["get", "list", "watch"]),
            rule(&[""], &["pods", "services", "events"], &["get", "list", "watch"]),
            rule(&[""], &["pods/log"], &["get"]),
            rule(&["events.k8s.io"], &["events"], &["get", "list", "watch"]),
        ]),
    };
    let role_binding = RoleBinding {
        metadata: in_ns(READER_ROLE),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: READER_ROLE.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: TENANT_SERVICE_ACCOUNT.to_string(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };

    let storage = spec.storage.enabled.then(|| {
        let mode = if spec.kind == TenantKind::Group { "ReadWriteMany" } else { "ReadWriteOnce" };
        let mut m = in_ns(storage_claim(spec.kind));
        // The claim belongs to the namespace's fate only: with retainOnDelete its
        // volume is kept (reclaim policy Retain) when the tenant goes.
        m.owner_references = None;
        m.labels
            .get_or_insert_default()
            .insert(resources::vocabulary::RETAIN.into(), spec.storage.retain_on_delete.to_string());
        PersistentVolumeClaim {
            metadata: m,
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(strings(&[mode])),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity(spec.storage.size.clone()))].into()),
                    ..VolumeResourceRequirements::default()
                }),
                storage_class_name: spec.storage.storage_class_name.clone(),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }
    });

    Ok(Desired { namespace, policies, quota, limits, service_account, role, role_binding, storage })
}
