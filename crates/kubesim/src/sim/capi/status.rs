//! Status as Cluster API's `v1beta1` writes it: phases, ready flags and
//! conditions (`Ready` summarising the others; a False one with a severity).

use super::{CORE, Provider, s};
use serde_json::{Value, json};

/// What a cluster's control plane has: machines wanted and Ready.
pub struct ControlPlane {
    pub desired: usize,
    pub ready: usize,
}

/// A `v1beta1` condition: True, or False with `reason` and `message`; its
/// transition time kept from `old` (the object's status) while unchanged.
pub fn condition(old: &Value, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let since = old
        .get("conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(crate::cluster::now_rfc3339()));
    if ok {
        json!({"type": kind, "status": status, "lastTransitionTime": since})
    } else {
        json!({"type": kind, "status": status, "severity": "Warning", "reason": reason, "message": message,
            "lastTransitionTime": since})
    }
}

/// `Ready` (from `ready`, with the first False condition's reason) followed by `rest`.
pub fn conditions(old: &Value, ready: bool, rest: Vec<Value>) -> Value {
    let first_false = rest.iter().find(|c| c["status"] == "False");
    let (reason, message) = first_false.map_or(("", ""), |c| (s(c, "/reason"), s(c, "/message")));
    let mut all = vec![condition(old, "Ready", ready, reason, message)];
    all.extend(rest);
    json!(all)
}

/// A cluster's status from its infrastructure and control plane.
pub fn cluster(p: &Provider, cl: &Value, infra: &Result<(), String>, cp: Option<&ControlPlane>, kcp: &str) {
    let (ns, name) = (s(cl, "/metadata/namespace"), s(cl, "/metadata/name"));
    let infra_ready = infra.is_ok();
    let cp_ready = cp.is_some_and(|c| c.ready > 0);
    let phase = if infra_ready && cp_ready { "Provisioned" } else { "Provisioning" };
    let infra_msg = infra.as_ref().err().cloned().unwrap_or_default();
    let cp_msg = match cp {
        None if kcp.is_empty() => "spec.controlPlaneRef is not set".to_string(),
        None => format!("KubeadmControlPlane {kcp} does not exist"),
        Some(c) => format!("{} of {} control-plane machines are ready", c.ready, c.desired),
    };
    let generation = cl.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    p.edit(CORE, "clusters", ns, name, true, |o| {
        let old = o["status"].clone();
        let st = &mut o["status"];
        st["phase"] = json!(phase);
        st["infrastructureReady"] = json!(infra_ready);
        st["controlPlaneReady"] = json!(cp_ready);
        st["observedGeneration"] = generation.clone();
        let i = condition(&old, "InfrastructureReady", infra_ready, "WaitingForInfrastructure", &infra_msg);
        let c = condition(&old, "ControlPlaneReady", cp_ready, "WaitingForControlPlane", &cp_msg);
        let init = condition(
            &old,
            "ControlPlaneInitialized",
            cp_ready || old["controlPlaneReady"] == json!(true),
            "WaitingForControlPlaneProviderInitialized",
            &cp_msg,
        );
        st["conditions"] = conditions(&old, infra_ready && cp_ready, vec![c, init, i]);
    });
}

/// A cluster being deleted says so.
pub fn deleting(p: &Provider, ns: &str, name: &str) {
    p.edit(CORE, "clusters", ns, name, true, |o| o["status"]["phase"] = json!("Deleting"));
}
