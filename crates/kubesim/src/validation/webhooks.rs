//! The validating admission webhooks of the add-ons kubesim plays (Cluster
//! API's), for the rules Paddock can run into: upstream runs them after the
//! schema, and the API server wraps their refusal as `admission webhook
//! "<name>" denied the request: <message>` with the webhook's code.

use crate::error::FieldError;
use crate::registry::ResourceDef;
use serde_json::Value;

/// Cluster API's KubeadmControlPlane webhook
/// (controlplane/kubeadm/webhooks/admission/kubeadmcontrolplane.go).
const KCP_WEBHOOK: &str = "validation.kubeadmcontrolplane.controlplane.cluster.x-k8s.io";

/// A webhook's refusal of an update: its name and what it found.
pub fn update(def: &ResourceDef, obj: &Value, old: &Value) -> Option<(&'static str, Vec<FieldError>)> {
    match (def.group.as_str(), def.plural.as_str()) {
        ("controlplane.cluster.x-k8s.io", "kubeadmcontrolplanes") => {
            let errs = kcp_version(obj, old);
            (!errs.is_empty()).then_some((KCP_WEBHOOK, errs))
        }
        _ => None,
    }
}

/// Major and minor of a version as semver's `ParseTolerant` reads it
/// (`v1.29.0`, `1.29`).
fn major_minor(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim().trim_start_matches('v').split(['.', '-', '+']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `validateVersion`: an update may go up at most one minor version
/// (skipping one is refused; any patch of the next minor is allowed).
/// Versions that do not parse are the schema's business here.
fn kcp_version(obj: &Value, old: &Value) -> Vec<FieldError> {
    let at = |v: &Value| v.pointer("/spec/version").and_then(Value::as_str).unwrap_or("").to_string();
    let (from, to) = (at(old), at(obj));
    let (Some((fm, fmin)), Some((tm, tmin))) = (major_minor(&from), major_minor(&to)) else { return vec![] };
    if (tm, tmin) >= (fm, fmin.saturating_add(2)) {
        return vec![FieldError::forbidden(
            "spec.version",
            format!("cannot update Kubernetes version from {from} to {to}"),
        )];
    }
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kcp(v: &str) -> Value {
        json!({"spec": {"version": v}})
    }

    #[test]
    fn a_control_plane_goes_up_one_minor_at_a_time() {
        assert!(kcp_version(&kcp("v1.30.5"), &kcp("v1.29.0")).is_empty());
        assert!(kcp_version(&kcp("v1.29.0"), &kcp("v1.30.0")).is_empty(), "down is the webhook's to allow");
        let errs = kcp_version(&kcp("v1.31.0"), &kcp("v1.29.0"));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "spec.version: Forbidden: cannot update Kubernetes version from v1.29.0 to v1.31.0"
        );
        assert_eq!(kcp_version(&kcp("v2.0.0"), &kcp("v1.29.0")).len(), 1);
        assert!(kcp_version(&kcp("latest"), &kcp("v1.29.0")).is_empty());
    }
}
