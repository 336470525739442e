//! Instance: "tenant T runs template X", in the tenant's namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "Instance",
    plural = "instances",
    shortname = "inst",
    namespaced,
    status = "InstanceStatus",
    printcolumn = r#"{"name": "Template", "type": "string", "jsonPath": ".spec.template"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Expires", "type": "string", "jsonPath": ".status.expires"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// Name of the Template.
    pub template: String,
    /// Lifetime (default: the template's); patch it to renew, up to the template's maxTtl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Values for environment variables the template marks overridable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Whether the instance is suspended: its pods are removed (its Secret,
    /// Services, storage and lifetime stay), and setting it back to false
    /// starts them again, from the warm pool when the template has one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
}

/// Annotation with the time (microseconds) a client asked for the instance;
/// start latencies count from it (creationTimestamp has whole seconds only).
/// A pod set claimed from a warm pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    /// The pool namespace the pods run in.
    pub namespace: String,
    /// The pod set's name (its pods are `<set>-<pod>`).
    pub set: String,
    /// When the set was claimed.
    pub claimed: MicroTime,
    /// From the request (or the instance's creation) to the claim, in milliseconds.
    pub latency_ms: f64,
}

pub const REQUESTED_AT: &str = crate::vocabulary::REQUESTED_AT;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum InstancePhase {
    Pending,
    Scheduling,
    Starting,
    Running,
    Degraded,
    Failed,
    Stopping,
    Expired,
    /// Its pods were removed on request or for idleness; it can be resumed.
    Suspended,
}

impl InstancePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Scheduling => "Scheduling",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Degraded => "Degraded",
            Self::Failed => "Failed",
            Self::Stopping => "Stopping",
            Self::Expired => "Expired",
            Self::Suspended => "Suspended",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default)]
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    #[serde(default)]
    pub restarts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub pod: String,
    pub port: String,
    /// `<service>.<namespace>.svc` name inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<InstancePhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointStatus>,
    /// When every pod had a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<MicroTime>,
    /// When every pod's images were pulled and its containers started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulled: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// Whether the pods came from a warm pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<bool>,
    /// The pod set claimed from the warm pool, when warm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    /// The last sign of use (a heartbeat, a resume) the idle clock counts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<MicroTime>,
    /// When it was suspended, while it is (or is resuming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl InstanceStatus {
    /// Whether the instance got past its admission once (it started, warm
    /// or cold, or was suspended after it did): it keeps its place.
    pub fn admitted(&self) -> bool {
        self.warm.is_some() || self.suspended.is_some()
    }
}

/// Annotation saying why `spec.suspend` was set: `Idle` when the idle
/// reaper set it; anything else reads as a request.
pub const SUSPEND_REASON: &str = crate::vocabulary::SUSPEND_REASON;
