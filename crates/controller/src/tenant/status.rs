//! Tenant status: phase and conditions with plain-language reasons, computed
//! from what the apply step saw. Transition times are kept while a condition
//! does not change, so an unchanged status is never rewritten.

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, ResourceQuota};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::EventType;
use resources::Tenant;
use resources::tenant::TenantStatus;

#[derive(Debug, Clone, PartialEq)]
enum Storage {
    Unknown,
    Disabled,
    Pending,
    Bound(String),
    /// Bound, and growing: the claim asks more than the volume has yet.
    Resizing {
        requested: String,
        current: String,
        stage: Option<String>,
    },
    Refused {
        reason: &'static str,
        message: String,
    },
}

/// What the reconciler observed, turned into conditions by [`status_patch`].
pub struct Conditions {
    namespace: String,
    generation: Option<i64>,
    namespace_active: bool,
    storage: Storage,
    quota: Option<String>,
    invalid: Option<String>,
    /// A write the API server refused: its reason and message.
    refused: Option<(String, String)>,
    terminating: bool,
    /// The VPN as the reconciler left it (None: no VPN).
    pub vpn: Option<resources::tenant::VpnStatus>,
    /// The file server as the reconciler left it (None: not running).
    pub files: Option<resources::tenant::FilesStatus>,
}

impl Conditions {
    pub fn new(t: &Tenant, namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            generation: t.metadata.generation,
            namespace_active: false,
            storage: Storage::Unknown,
            quota: None,
            invalid: None,
            refused: None,
            terminating: false,
            vpn: t.status.as_ref().and_then(|s| s.vpn.clone()),
            files: t.status.as_ref().and_then(|s| s.files.clone()),
        }
    }

    pub fn namespace(&mut self, ns: &Namespace) {
        self.namespace_active = ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Active")
            && ns.metadata.deletion_timestamp.is_none();
    }

    pub fn storage(&mut self, pvc: Option<&PersistentVolumeClaim>, error: Option<String>) {
        if let Some(message) = error {
            let reason = if message.contains("can not be less than") {
                "StorageShrinkRefused"
            } else if message.contains("must support resize") {
                "StorageNotExpandable"
            } else {
                "StorageUpdateRefused"
            };
            self.storage = Storage::Refused { reason, message };
            return;
        }
        let status = pvc.and_then(|p| p.status.as_ref());
        let current = status.and_then(|s| s.capacity.as_ref()).and_then(|c| c.get("storage")).map(|q| q.0.clone());
        let requested = pvc
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        let size = |q: &Option<String>| q.as_deref().and_then(quantity::Quantity::parse);
        self.storage = match status.and_then(|s| s.phase.as_deref()) {
            Some("Bound") if size(&current).zip(size(&requested)).is_some_and(|(c, r)| c < r) => {
                // The claim's own word for where the resize is, if it says.
                let stage = status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|c| c.iter().find(|c| c.status == "True"))
                    .map(|c| c.type_.clone());
                Storage::Resizing {
                    requested: requested.unwrap_or_default(),
                    current: current.unwrap_or_default(),
                    stage,
                }
            }
            Some("Bound") => Storage::Bound(current.unwrap_or_default()),
            _ => Storage::Pending,
        };
    }

    pub fn storage_disabled(&mut self) {
        self.storage = Storage::Disabled;
    }

    /// Notes a quota set below what the namespace already uses.
    pub fn quota_usage(&mut self, q: &ResourceQuota) {
        let over = over_quota(q);
        if !over.is_empty() {
            self.quota = Some(format!(
                "the quota is below current use, so new pods are refused until usage drops ({})",
                over.join(", ")
            ));
        }
    }

    pub fn invalid(&mut self, message: &str) {
        self.invalid = Some(message.to_string());
    }

    /// Notes that the API server refused one of the tenant's objects
    /// (`reason` as it says, e.g. Forbidden; its message names the object,
    /// the verb and why: RBAC, quota, admission).
    pub fn refused(&mut self, reason: &str, message: &str) {
        let reason = if reason.is_empty() { "Refused" } else { reason };
        self.refused = Some((reason.to_string(), format!("the API server refused a write: {message}")));
    }

    pub fn terminating(&mut self) {
        self.terminating = true;
    }
}

/// The resources a quota is set below what its namespace already uses, as
/// `<resource>: <used> in use, quota <hard>`, in the quota's order.
pub fn over_quota(q: &ResourceQuota) -> Vec<String> {
    let (Some(hard), Some(used)) =
        (q.status.as_ref().and_then(|s| s.hard.as_ref()), q.status.as_ref().and_then(|s| s.used.as_ref()))
    else {
        return Vec::new();
    };
    let spec_hard = q.spec.as_ref().and_then(|s| s.hard.as_ref()).unwrap_or(hard);
    let mut over = Vec::new();
    for (k, h) in spec_hard {
        if let (Some(hq), Some(uq)) =
            (quantity::Quantity::parse(&h.0), used.get(k).and_then(|u| quantity::Quantity::parse(&u.0)))
            && uq > hq
        {
            over.push(format!("{k}: {} in use, quota {}", used[k].0, h.0));
        }
    }
    over
}

fn cond(type_: &str, ok: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(jiff::Timestamp::now()),
    }
}

/// The status to write, and an event to record when the phase changed.
pub fn status_patch(t: &Tenant, c: Conditions) -> (TenantStatus, Option<(EventType, String, String)>) {
    let g = c.generation;
    let mut conds = Vec::new();
    let (phase, ready) = if c.terminating {
        ("Terminating", cond("Ready", false, "Terminating", format!("deleting namespace {}", c.namespace), g))
    } else if let Some(m) = &c.invalid {
        ("Failed", cond("Ready", false, "InvalidSpec", m.clone(), g))
    } else if let Storage::Refused { reason, message } = &c.storage {
        ("Failed", cond("Ready", false, reason, message.clone(), g))
    } else if let Some((reason, message)) = &c.refused {
        ("Degraded", cond("Ready", false, reason, message.clone(), g))
    } else if let Some(f) = c.vpn.as_ref().and_then(|v| v.failure.as_ref()) {
        ("Degraded", cond("Ready", false, &f.reason, format!("the VPN server pod failed: {}", f.message), g))
    } else if !c.namespace_active {
        (
            "Provisioning",
            cond("Ready", false, "Provisioning", format!("waiting for namespace {} to be active", c.namespace), g),
        )
    } else if c.storage == Storage::Pending {
        ("Provisioning", cond("Ready", false, "Provisioning", "waiting for the storage volume to bind".into(), g))
    } else {
        (
            "Ready",
            cond(
                "Ready",
                true,
                "Provisioned",
                format!("namespace {} and everything in it are in place", c.namespace),
                g,
            ),
        )
    };
    conds.push(ready);
    if !c.terminating && c.invalid.is_none() {
        let storage = match &c.storage {
            Storage::Disabled => Some(cond("StorageReady", true, "Disabled", "the tenant has no volume".into(), g)),
            Storage::Pending => {
                Some(cond("StorageReady", false, "Pending", "the volume claim is not bound yet".into(), g))
            }
            Storage::Bound(cap) => Some(cond("StorageReady", true, "Bound", format!("bound, capacity {cap}"), g)),
            Storage::Resizing { requested, current, stage } => {
                let stage = stage.as_ref().map(|s| format!(" ({s})")).unwrap_or_default();
                let message = format!("growing from {current} to {requested}{stage}; the volume is usable meanwhile");
                Some(cond("StorageReady", false, "Resizing", message, g))
            }
            Storage::Refused { reason, message } => Some(cond("StorageReady", false, reason, message.clone(), g)),
            Storage::Unknown => None,
        };
        conds.extend(storage);
        conds.push(match &c.quota {
            Some(m) => cond("QuotaWithinUsage", false, "QuotaBelowUsage", m.clone(), g),
            None => cond("QuotaWithinUsage", true, "WithinUsage", "current use fits the quota".into(), g),
        });
    }
    // Keep transition times of conditions whose status did not change.
    let old = t.status.clone().unwrap_or_default();
    for n in conds.iter_mut() {
        if let Some(o) = old.conditions.iter().find(|o| o.type_ == n.type_)
            && o.status == n.status
            && o.reason == n.reason
        {
            n.last_transition_time = o.last_transition_time.clone();
        }
    }
    let capacity = match &c.storage {
        Storage::Bound(cap) | Storage::Resizing { current: cap, .. } => Some(cap.clone()),
        _ => old.storage_capacity.clone(),
    };
    let status = TenantStatus {
        namespace: Some(c.namespace.clone()),
        phase: Some(phase.into()),
        observed_generation: g,
        conditions: conds,
        storage_capacity: capacity,
        vpn: c.vpn.clone(),
        files: c.files.clone(),
    };
    let event = (old.phase.as_deref() != Some(phase)
        || old.conditions.first().map(|x| &x.reason) != status.conditions.first().map(|x| &x.reason))
    .then(|| {
        let first = &status.conditions[0];
        match phase {
            "Ready" => (EventType::Normal, "Provisioned".to_string(), first.message.clone()),
            "Failed" | "Degraded" => (EventType::Warning, first.reason.clone(), first.message.clone()),
            "Terminating" => (EventType::Normal, "Terminating".to_string(), first.message.clone()),
            _ => (EventType::Normal, "Provisioning".to_string(), first.message.clone()),
        }
    });
    (status, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "t", "generation": 2}, "spec": {"kind": "Team"}}))
        .unwrap()
    }

    #[test]
    fn a_quota_below_usage_is_reported() {
        let q: ResourceQuota = serde_json::from_value(serde_json::json!({"metadata": {"name": "quota"},
            "spec": {"hard": {"pods": "2", "requests.cpu": "1"}},
            "status": {"hard": {"pods": "2", "requests.cpu": "1"}, "used": {"pods": "3", "requests.cpu": "500m"}}}))
        .unwrap();
        let t = tenant();
        let mut c = Conditions::new(&t, "paddock-t");
        c.quota_usage(&q);
        c.storage_disabled();
        let (status, _) = status_patch(&t, c);
        let cond = status.conditions.iter().find(|c| c.type_ == "QuotaWithinUsage").unwrap();
        assert_eq!((cond.status.as_str(), cond.reason.as_str()), ("False", "QuotaBelowUsage"));
        assert!(cond.message.contains("pods: 3 in use, quota 2"), "{}", cond.message);
        assert!(!cond.message.contains("requests.cpu"));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn phases_follow_what_was_seen() {
        let t = tenant();
        let mut c = Conditions::new(&t, "paddock-t");
        c.invalid("spec.quota.cpu: bad");
        let (s, ev) = status_patch(&t, c);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.conditions[0].reason, "InvalidSpec");
        assert!(matches!(ev, Some((EventType::Warning, _, _))));
        let mut c = Conditions::new(&t, "paddock-t");
        c.storage(
            None,
            Some("spec.resources.requests.storage: Forbidden: field can not be less than status.capacity".into()),
        );
        assert_eq!(status_patch(&t, c).0.conditions[0].reason, "StorageShrinkRefused");
        let c = Conditions::new(&t, "paddock-t");
        assert_eq!(status_patch(&t, c).0.phase.as_deref(), Some("Provisioning"));
        // Storage grown but not yet resized: said, with both sizes.
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({"metadata": {"name": "storage"},
            "spec": {"resources": {"requests": {"storage": "20Gi"}}},
            "status": {"phase": "Bound", "capacity": {"storage": "10Gi"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}}))
        .unwrap();
        let mut c = Conditions::new(&t, "paddock-t");
        c.namespace(
            &serde_json::from_value(
                serde_json::json!({"metadata": {"name": "paddock-t"}, "status": {"phase": "Active"}}),
            )
            .unwrap(),
        );
        c.storage(Some(&pvc), None);
        let (s, _) = status_patch(&t, c);
        let storage = s.conditions.iter().find(|c| c.type_ == "StorageReady").unwrap();
        assert_eq!((storage.status.as_str(), storage.reason.as_str()), ("False", "Resizing"));
        assert_eq!(
            storage.message,
            "growing from 10Gi to 20Gi (FileSystemResizePending); the volume is usable meanwhile"
        );
        assert_eq!((s.phase.as_deref(), s.storage_capacity.as_deref()), (Some("Ready"), Some("10Gi")));
        // A refused child shows on the tenant, with the API server's words.
        let mut c = Conditions::new(&t, "paddock-t");
        c.refused("Forbidden", "pods \"vpn\" is forbidden: exceeded quota: quota, requested: pods=1");
        let (s, ev) = status_patch(&t, c);
        assert_eq!((s.phase.as_deref(), s.conditions[0].reason.as_str()), (Some("Degraded"), "Forbidden"));
        assert!(s.conditions[0].message.contains("exceeded quota"), "{}", s.conditions[0].message);
        assert!(matches!(ev, Some((EventType::Warning, _, _))));
    }
}
