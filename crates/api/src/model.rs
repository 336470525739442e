//! What the API sends and receives. Specs and statuses are the CRDs' own types
//! (their JSON Schema comes from the CRD definitions, see `openapi`); the views
//! add what a client wants without reading Kubernetes metadata.

use kube::ResourceExt;
use resources::tenant::TenantStatus;
use resources::{Instance, InstancePhase, InstanceStatus, Template, TemplateSpec, TemplateStatus, Tenant, TenantSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

/// A reference to a schemars-described type, filled in by [`crate::openapi::finish`].
pub fn schema_ref<T: JsonSchema>() -> impl Into<RefOr<Schema>> {
    Ref::from_schema_name(T::schema_name())
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `continue` to get the next page; absent on the last page.
    #[serde(default, rename = "continue", skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Paging parameters of list routes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Items per page (1–1000; default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `continue` value of the previous page.
    #[serde(rename = "continue")]
    #[param(rename = "continue")]
    pub next: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    pub name: String,
    #[schema(schema_with = schema_ref::<TenantSpec>)]
    pub spec: TenantSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema_ref::<TenantStatus>)]
    pub status: Option<TenantStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Set while the tenant is being deleted.
    #[serde(default)]
    pub deleting: bool,
    /// What its namespace uses of each resource its quota limits, as the
    /// cluster's ResourceQuota reports it (absent until the quota counted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<QuotaUse>,
}

/// One resource's use of its limit: what a tenant's quota limits, as the
/// ResourceQuota in its namespace reports it (used of hard), or what a
/// node's pods request of what it can allocate.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct QuotaUse {
    /// pods, cpu, memory, storage, instances, or the quota's own key.
    pub resource: String,
    pub used: String,
    pub hard: String,
    /// used ÷ hard (1 is full; more than 1 after the quota was lowered).
    pub fraction: f64,
}

/// The uses a tenant namespace's ResourceQuota reports, by resource.
pub fn quota_use(q: &k8s_openapi::api::core::v1::ResourceQuota) -> Vec<QuotaUse> {
    let Some(status) = q.status.as_ref() else { return Vec::new() };
    let (Some(hard), Some(used)) = (status.hard.as_ref(), status.used.as_ref()) else { return Vec::new() };
    hard.iter()
        .map(|(key, h)| {
            let u = used.get(key).map(|u| u.0.clone()).unwrap_or_else(|| "0".into());
            let resource = match key.as_str() {
                "requests.cpu" => "cpu",
                "requests.memory" => "memory",
                "requests.storage" => "storage",
                k if k.starts_with("count/instances.") => "instances",
                k => k,
            };
            QuotaUse::of(resource, u, h.0.clone())
        })
        .collect()
}

impl QuotaUse {
    /// `used` of `hard`, with the fraction (0 when either is not a quantity, or `hard` is 0).
    pub fn of(resource: &str, used: String, hard: String) -> Self {
        let fraction = match (quantity::Quantity::parse(&used), quantity::Quantity::parse(&hard)) {
            (Some(n), Some(d)) if d.0 > 0 => n.0 as f64 / d.0 as f64,
            _ => 0.0,
        };
        QuotaUse { resource: resource.to_string(), used, hard, fraction }
    }
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            name: t.name_any(),
            spec: t.spec.clone(),
            status: t.status.clone(),
            created: t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()),
            deleting: t.metadata.deletion_timestamp.is_some(),
            usage: Vec::new(),
        }
    }
}

/// Body of `POST /v1/tenants`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// A DNS label; the namespace is `<prefix><name>`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    pub name: String,
    #[schema(schema_with = schema_ref::<TenantSpec>)]
    pub spec: TenantSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    pub name: String,
    #[schema(schema_with = schema_ref::<TemplateSpec>)]
    pub spec: TemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema_ref::<TemplateStatus>)]
    pub status: Option<TemplateStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Deleted, and kept until its last instance stops; it starts no new ones.
    #[serde(default)]
    pub deleting: bool,
}

impl From<&Template> for TemplateView {
    fn from(t: &Template) -> Self {
        Self {
            name: t.name_any(),
            spec: t.spec.clone(),
            status: t.status.clone(),
            created: t.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()),
            deleting: t.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Body of `POST /v1/templates` and `PUT /v1/templates/{template}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// Ignored by PUT when absent; must match the path when present.
    #[serde(default)]
    pub name: Option<String>,
    #[schema(schema_with = schema_ref::<TemplateSpec>)]
    pub spec: TemplateSpec,
}

/// How far an instance got, step by step (seconds since it was created).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub name: String,
    pub tenant: String,
    pub template: String,
    /// Pending, Scheduling, Starting, Running, Degraded, Failed, Stopping, Expired or Suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why it is in that phase, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The labels its user gave it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub progress: Progress,
    /// Set while the instance is being stopped.
    #[serde(default)]
    pub stopping: bool,
    /// Set while the instance is (to be) suspended: its pods removed until it is resumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = schema_ref::<InstanceStatus>)]
    pub status: Option<InstanceStatus>,
}

impl InstanceView {
    pub fn new(i: &Instance, tenant: &str) -> Self {
        let created = i.metadata.creation_timestamp.as_ref().map(|c| c.0);
        // Latencies count from when the client asked (microseconds), else from creation (seconds).
        let base = i
            .annotations()
            .get(resources::instance::REQUESTED_AT)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .or(created);
        let since = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>| {
            let (b, t) = (base?, t?.0);
            Some((t.as_microsecond() - b.as_microsecond()).max(0) as f64 / 1e6)
        };
        let st = i.status.as_ref();
        let stopping = i.metadata.deletion_timestamp.is_some();
        let phase = if stopping { Some(InstancePhase::Stopping) } else { st.and_then(|s| s.phase) };
        Self {
            name: i.name_any(),
            tenant: tenant.to_string(),
            template: i.spec.template.clone(),
            labels: resources::labels::of_user(i.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())),
            phase: phase.map(|p| p.as_str().to_string()),
            message: match st.and_then(|s| s.phase) {
                // Until the controller's first write about it, the status still
                // tells of the instance before it was asked to stop.
                p if stopping && p != Some(InstancePhase::Stopping) => {
                    Some("being stopped: its pods, services and policies are removed".to_string())
                }
                _ => st
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.message.clone())
                    .filter(|m| !m.is_empty()),
            },
            ttl: i.spec.ttl.clone(),
            env: i.spec.env.clone(),
            created: created.map(|c| c.to_string()),
            expires: st.and_then(|s| s.expires.as_ref()).map(|e| e.0.to_string()),
            progress: Progress {
                scheduled: since(st.and_then(|s| s.scheduled.as_ref())),
                pulled: since(st.and_then(|s| s.pulled.as_ref())),
                ready: since(st.and_then(|s| s.ready.as_ref())),
            },
            stopping,
            suspend: i.spec.suspend,
            status: i.status.clone(),
        }
    }

    /// The reason of its Ready condition, if it has one.
    pub fn ready_reason(&self) -> Option<&str> {
        let conds = self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        conds.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.as_str())
    }

    /// Whether the phase is one an instance does not leave by itself.
    pub fn settled(&self) -> bool {
        // Suspending settles at Suspended, resuming (or running) at Running.
        match self.phase.as_deref() {
            Some("Failed" | "Expired") => true,
            // Once its pods are gone (not while the reason says Suspending).
            Some("Suspended") => self.suspend && !self.ready_reason().is_some_and(|r| r.ends_with("Suspending")),
            Some("Running" | "Degraded") => !self.suspend,
            _ => false,
        }
    }
}

/// Body of `POST /v1/tenants/{tenant}/instances`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartInstance {
    /// Name of the Template.
    #[schema(min_length = 1)]
    pub template: String,
    /// Instance name (a DNS label); generated from the template when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Lifetime, e.g. "1h" (default: the template's; at most its maxTtl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Values for environment variables the template marks overridable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Labels for the instance, to find it again (`labelSelector` on the
    /// list routes): at most 16, Kubernetes' label syntax, keys under
    /// paddock.dev/, kubernetes.io/ and k8s.io/ reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Filters of the instance list routes.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceFilter {
    /// Only instances whose labels match this Kubernetes label selector
    /// (`job=42`, `env in (ci,dev)`, `!draft`; at most 1024 characters).
    #[serde(rename = "labelSelector")]
    #[param(rename = "labelSelector", max_length = 1024)]
    pub label_selector: Option<String>,
}

/// Body of `POST .../instances/{instance}/renew`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renew {
    /// How long from now (default: the template's ttl); capped at the template's maxTtl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Body of `POST /v1/tenants/{tenant}/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (shown in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How long it works, 1m to 400d (like 90m, 30d); default: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Body of `POST /v1/tenants/{tenant}/kubeconfig`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKubeconfig {
    /// How long its token works, 10m to 24h (like 30m, 8h); default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// A kubeconfig for a tenant's ServiceAccount: shown once, not kept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantKubeconfig {
    pub tenant: String,
    /// The namespace its context selects.
    pub namespace: String,
    /// The ServiceAccount it acts as (bound to the Role `tenant-reader`).
    pub service_account: String,
    /// The Kubernetes API it points at.
    pub server: String,
    /// When its token stops working (RFC 3339).
    pub expires: String,
    /// The kubeconfig file (YAML).
    pub kubeconfig: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    /// task, vpn or shared (absent: no role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub ready: bool,
    pub schedulable: bool,
    #[serde(default)]
    pub taints: Vec<String>,
    #[serde(default)]
    pub allocatable: BTreeMap<String, String>,
    /// What the node's pods that have not ended request of what it can
    /// allocate: cpu, memory (their requests summed) and pods (how many).
    #[serde(default)]
    pub requested: Vec<QuotaUse>,
    /// Pods Paddock runs on the node.
    pub pods: u32,
}

/// One Server-Sent Event's data for `status` events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusEvent {
    pub instance: InstanceView,
}

/// Data of `deleted` events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedEvent {
    pub tenant: String,
    pub name: String,
}

/// Data of `snapshot` events: every instance the stream covers, as they are now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotEvent {
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

#[cfg(test)]
mod quota_use_tests {
    use super::*;

    #[test]
    fn a_quotas_status_reads_as_uses_by_resource() {
        let q: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "quota"},
            "status": {"hard": {"pods": "10", "requests.cpu": "2", "count/instances.paddock.dev": "4"},
                       "used": {"pods": "5", "requests.cpu": "500m"}}}))
        .unwrap();
        let u = quota_use(&q);
        let get = |r: &str| u.iter().find(|x| x.resource == r).unwrap().clone();
        assert_eq!((get("pods").used.as_str(), get("pods").fraction), ("5", 0.5));
        assert_eq!((get("cpu").used.as_str(), get("cpu").hard.as_str(), get("cpu").fraction), ("500m", "2", 0.25));
        assert_eq!((get("instances").used.as_str(), get("instances").fraction), ("0", 0.0), "not counted yet: 0");
        let empty: k8s_openapi::api::core::v1::ResourceQuota =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "quota"}})).unwrap();
        assert!(quota_use(&empty).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceView;
    use resources::Instance;

    #[test]
    fn an_instance_asked_to_stop_says_so_before_the_controller_does() {
        let mut i: Instance = serde_json::from_value(serde_json::json!({
            "apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
            "metadata": {"name": "web", "namespace": "paddock-a", "deletionTimestamp": "2026-11-30T06:00:00Z"},
            "spec": {"template": "ctf-web"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                "message": "all 3 pods are ready", "lastTransitionTime": "2026-11-30T05:00:00Z"}]}}))
        .unwrap();
        let v = InstanceView::new(&i, "a");
        assert_eq!(v.phase.as_deref(), Some("Stopping"));
        assert!(v.message.as_deref().is_some_and(|m| m.starts_with("being stopped")), "{:?}", v.message);
        i.metadata.deletion_timestamp = None;
        assert_eq!(InstanceView::new(&i, "a").message.as_deref(), Some("all 3 pods are ready"));
    }
}

/// Tenant isolation on the cluster (`GET /v1/audit`; `paddock audit -o json`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub tenants: Vec<TenantAudit>,
    /// Pod-to-pod paths that cross tenants, in all (0: isolated).
    pub cross_tenant_paths: usize,
    /// The cross-tenant paths by pair of tenants (only pairs with a path).
    pub matrix: Vec<MatrixCell>,
    /// Templates that relax Paddock's hardened pod, and what each relaxes.
    pub relaxed_templates: Vec<RelaxedTemplate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantAudit {
    pub tenant: String,
    pub namespaces: Vec<String>,
    pub pods: usize,
    /// Paths from this tenant's pods to another tenant's.
    pub cross_tenant_paths: Vec<CrossPath>,
    pub reachable_from_outside: Vec<ExposedPod>,
    /// Pods no NetworkPolicy selects.
    pub without_policy: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CrossPath {
    /// NAMESPACE/POD.
    pub from: String,
    pub to: String,
    pub ports: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExposedPod {
    pub pod: String,
    pub ports: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MatrixCell {
    pub from: String,
    pub to: String,
    pub paths: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RelaxedTemplate {
    pub template: String,
    pub relaxes: Vec<String>,
}

impl AuditView {
    /// The view of an audit `report` and the templates that relax the pod.
    pub fn new(report: &netpol::audit::Report, relaxed: Vec<(String, Vec<String>)>) -> AuditView {
        let tenant_of: BTreeMap<&str, &str> = report
            .tenants
            .iter()
            .flat_map(|(t, x)| x.namespaces.iter().map(move |ns| (ns.as_str(), t.as_str())))
            .collect();
        let mut cells: BTreeMap<(String, String), usize> = BTreeMap::new();
        let tenants = report
            .tenants
            .iter()
            .map(|(t, x)| {
                for (_, to, _) in &x.outbound {
                    let ns = to.split('/').next().unwrap_or_default();
                    if let Some(td) = tenant_of.get(ns) {
                        *cells.entry((t.clone(), td.to_string())).or_default() += 1;
                    }
                }
                TenantAudit {
                    tenant: t.clone(),
                    namespaces: x.namespaces.clone(),
                    pods: x.pods,
                    cross_tenant_paths: x
                        .outbound
                        .iter()
                        .map(|(f, to, p)| CrossPath { from: f.clone(), to: to.clone(), ports: p.clone() })
                        .collect(),
                    reachable_from_outside: x
                        .external
                        .iter()
                        .map(|(pod, ports)| ExposedPod { pod: pod.clone(), ports: ports.clone() })
                        .collect(),
                    without_policy: x.without_policy.clone(),
                }
            })
            .collect();
        AuditView {
            tenants,
            cross_tenant_paths: report.cross_tenant_paths,
            matrix: cells.into_iter().map(|((from, to), paths)| MatrixCell { from, to, paths }).collect(),
            relaxed_templates: relaxed
                .into_iter()
                .map(|(template, relaxes)| RelaxedTemplate { template, relaxes })
                .collect(),
        }
    }
}
