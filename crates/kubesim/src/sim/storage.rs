//! PersistentVolumeClaims: dynamic provisioning into generated PVs for an
//! existing StorageClass, expansion, pvc-protection, and reclaim (Delete or
//! Retain) when the claim goes.

use super::{Sim, is_deleting, log_err, name_of, ns_of, uid_of};
use crate::cluster::DeleteOpts;
use quantity::Quantity;
use serde_json::{Value, json};

pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

fn in_use(sim: &Sim, ns: &str, claim: &str) -> bool {
    sim.c.list_values("", "pods", Some(ns)).iter().any(|p| {
        !matches!(p.pointer("/status/phase").and_then(Value::as_str), Some("Succeeded" | "Failed"))
            && p.pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|v| v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str) == Some(claim))
    })
}

pub fn reconcile_pvc(sim: &Sim, pvc: &Value) {
    let (ns, name) = (ns_of(pvc).to_string(), name_of(pvc).to_string());
    if is_deleting(pvc) {
        let protected = pvc
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|f| f == PVC_PROTECTION));
        if protected && !in_use(sim, &ns, &name) {
            log_err(
                "pvc protection",
                sim.c.modify(sim.ids.pvcs, &ns, &name, None, "pvc-protection-controller", |p| {
                    if let Some(a) = p.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                        a.retain(|f| f != PVC_PROTECTION);
                    }
                }),
            );
        }
        return;
    }
    let pending = matches!(pvc.pointer("/status/phase").and_then(Value::as_str), Some("Pending") | None);
    if pending && let Some(pv_name) = pvc.pointer("/spec/volumeName").and_then(Value::as_str) {
        bind_static(sim, pvc, pv_name);
        return;
    }
    let class = pvc.pointer("/spec/storageClassName").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(sc) = sim.c.get_value("storage.k8s.io", "storageclasses", "", &class) else {
        return;
    };
    let requested = pvc.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("0"));
    match pvc.pointer("/status/phase").and_then(Value::as_str) {
        Some("Pending") | None => {
            let pv_name = format!("pvc-{}", uid_of(pvc));
            let modes = pvc.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"]));
            if sim.c.get_value("", "persistentvolumes", "", &pv_name).is_none() {
                let pv = json!({
                    "metadata": {"name": pv_name, "annotations": {"pv.kubernetes.io/provisioned-by": sc.get("provisioner").cloned().unwrap_or(json!("kubesim.dev/hostpath"))},
                        "finalizers": ["kubernetes.io/pv-protection"]},
                    "spec": {
                        "capacity": {"storage": requested},
                        "accessModes": modes,
                        "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy").cloned().unwrap_or(json!("Delete")),
                        "storageClassName": class,
                        "volumeMode": pvc.pointer("/spec/volumeMode").cloned().unwrap_or(json!("Filesystem")),
                        "hostPath": {"path": format!("/var/lib/kubesim/volumes/{pv_name}"), "type": "DirectoryOrCreate"},
                        "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name, "uid": uid_of(pvc)}
                    }
                });
                if log_err("provision volume", sim.create(sim.ids.pvs, "", pv, "persistentvolume-binder-controller"))
                    .is_none()
                {
                    return;
                }
                log_err(
                    "volume bound",
                    sim.c.modify(
                        sim.ids.pvs,
                        "",
                        &pv_name,
                        Some("status"),
                        "persistentvolume-binder-controller",
                        |v| {
                            v["status"] = json!({"phase": "Bound"});
                        },
                    ),
                );
            }
            log_err(
                "bind claim",
                sim.c.modify(sim.ids.pvcs, &ns, &name, Some("binding"), "persistentvolume-binder-controller", |p| {
                    p["spec"]["volumeName"] = json!(pv_name);
                    let ann =
                        p["metadata"].as_object_mut().map(|m| m.entry("annotations").or_insert_with(|| json!({})));
                    if let Some(a) = ann {
                        a["pv.kubernetes.io/bind-completed"] = json!("yes");
                        a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
                        a["volume.kubernetes.io/storage-provisioner"] =
                            sc.get("provisioner").cloned().unwrap_or(json!("kubesim.dev/hostpath"));
                    }
                    p["status"] = json!({"phase": "Bound", "accessModes": modes, "capacity": {"storage": requested}});
                }),
            );
        }
        Some("Bound") => {
            let want = Quantity::from_value(&requested).unwrap_or_default();
            let have = pvc.pointer("/status/capacity/storage").and_then(Quantity::from_value).unwrap_or_default();
            if want > have {
                let pv = pvc.pointer("/spec/volumeName").and_then(Value::as_str).unwrap_or("").to_string();
                log_err(
                    "expand volume",
                    sim.c.modify(sim.ids.pvs, "", &pv, None, "volume-expand-controller", |v| {
                        v["spec"]["capacity"]["storage"] = requested.clone();
                    }),
                );
                log_err(
                    "expanded claim",
                    sim.c.modify(sim.ids.pvcs, &ns, &name, Some("status"), "volume-expand-controller", |p| {
                        p["status"]["capacity"]["storage"] = requested.clone();
                        p["status"]["allocatedResources"] = json!({"storage": requested});
                    }),
                );
            }
        }
        _ => {}
    }
}

/// A claim naming its volume (`spec.volumeName`) binds to that existing PV when
/// the PV is free or reserved for this claim, large enough and of a matching
/// access mode; otherwise it stays Pending, as upstream's binder leaves it.
fn bind_static(sim: &Sim, pvc: &Value, pv_name: &str) {
    let (ns, name, uid) = (ns_of(pvc).to_string(), name_of(pvc).to_string(), uid_of(pvc).to_string());
    let Some(pv) = sim.c.get_value("", "persistentvolumes", "", pv_name) else { return };
    if let Some(cr) = pv.pointer("/spec/claimRef") {
        let same = cr.get("namespace").and_then(Value::as_str) == Some(ns.as_str())
            && cr.get("name").and_then(Value::as_str) == Some(name.as_str())
            && cr.get("uid").and_then(Value::as_str).is_none_or(|u| u == uid);
        if !same {
            return;
        }
    }
    let want = pvc.pointer("/spec/resources/requests/storage").and_then(Quantity::from_value).unwrap_or_default();
    let cap = pv.pointer("/spec/capacity/storage").cloned().unwrap_or(json!("0"));
    if Quantity::from_value(&cap).unwrap_or_default() < want {
        return;
    }
    let pv_modes: Vec<Value> = pv.pointer("/spec/accessModes").and_then(Value::as_array).cloned().unwrap_or_default();
    let modes_ok =
        pvc.pointer("/spec/accessModes").and_then(Value::as_array).into_iter().flatten().all(|m| pv_modes.contains(m));
    if !modes_ok {
        return;
    }
    log_err(
        "bind volume",
        sim.c.modify(sim.ids.pvs, "", pv_name, Some("binding"), "persistentvolume-binder-controller", |v| {
            v["spec"]["claimRef"] =
                json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": name, "uid": uid});
            v["status"] = json!({"phase": "Bound"});
        }),
    );
    log_err(
        "bind claim",
        sim.c.modify(sim.ids.pvcs, &ns, &name, Some("status"), "persistentvolume-binder-controller", |p| {
            p["status"] = json!({"phase": "Bound", "accessModes": pv_modes, "capacity": {"storage": cap}});
        }),
    );
}

/// A volume changed: a claim waiting for it may now bind; one being deleted
/// that no claim is bound to loses its protection (upstream's
/// pv-protection controller: a volume is in use only while Bound).
pub fn pv_changed(sim: &Sim, pv: &Value) {
    if pv.pointer("/status/phase").and_then(Value::as_str) == Some("Bound") {
        return;
    }
    let protected = pv
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x.as_str() == Some(PV_PROTECTION)));
    if pv.pointer("/metadata/deletionTimestamp").is_some() && protected {
        let name = pv.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
        log_err(
            "pv protection",
            sim.c.modify(sim.ids.pvs, "", name, None, "pv-protection-controller", |v| {
                if let Some(f) = v.pointer_mut("/metadata/finalizers").and_then(Value::as_array_mut) {
                    f.retain(|x| x.as_str() != Some(PV_PROTECTION));
                }
            }),
        );
        return;
    }
    let (Some(ns), Some(name)) = (
        pv.pointer("/spec/claimRef/namespace").and_then(Value::as_str),
        pv.pointer("/spec/claimRef/name").and_then(Value::as_str),
    ) else {
        return;
    };
    if let Some(pvc) = sim.c.get_value("", "persistentvolumeclaims", ns, name) {
        reconcile_pvc(sim, &pvc);
    }
}

/// The finalizer upstream's admission puts on every PersistentVolume.
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// The claim is gone: its volume is deleted or released per reclaim policy.
pub fn pvc_gone(sim: &Sim, pvc: &Value) {
    let Some(pv_name) = pvc.pointer("/spec/volumeName").and_then(Value::as_str) else {
        return;
    };
    let Some(pv) = sim.c.get_value("", "persistentvolumes", "", pv_name) else {
        return;
    };
    if pv.pointer("/spec/persistentVolumeReclaimPolicy").and_then(Value::as_str) == Some("Delete") {
        log_err(
            "pv protection",
            sim.c.modify(sim.ids.pvs, "", pv_name, None, "persistentvolume-binder-controller", |v| {
                if let Some(m) = v["metadata"].as_object_mut() {
                    m.remove("finalizers");
                }
            }),
        );
        sim.delete(sim.ids.pvs, "", pv_name, DeleteOpts::default());
    } else {
        log_err(
            "release volume",
            sim.c.modify(sim.ids.pvs, "", pv_name, Some("status"), "persistentvolume-binder-controller", |v| {
                v["status"]["phase"] = json!("Released");
            }),
        );
    }
}

/// A pod went away: claims it used may now be deletable.
pub fn pod_gone(sim: &Sim, pod: &Value) {
    let ns = ns_of(pod);
    for v in pod.pointer("/spec/volumes").and_then(Value::as_array).into_iter().flatten() {
        if let Some(claim) = v.pointer("/persistentVolumeClaim/claimName").and_then(Value::as_str)
            && let Some(pvc) = sim.c.get_value("", "persistentvolumeclaims", ns, claim)
        {
            reconcile_pvc(sim, &pvc);
        }
    }
}
