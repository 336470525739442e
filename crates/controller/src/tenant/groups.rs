//! Group storage for members: a pod can only mount claims of its own
//! namespace, so each member of a Group gets, in its namespace, a claim
//! `group-<group>` statically bound to its own PersistentVolume that points at
//! the group's volume (same volume source, reclaim policy Retain: removing a
//! member never touches the group's data).

use super::build::namespace_name;
use super::cache::Caches;
use crate::config::Settings;
use crate::error::Error;
use crate::labels::{FIELD_MANAGER, MANAGED_BY, MANAGER, TENANT};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use resources::Tenant;
use resources::vocabulary::group_claim;
use serde_json::json;

pub const GROUP_LABEL: &str = resources::vocabulary::GROUP;

/// The PersistentVolume through which `member` mounts `group`'s volume:
/// cluster-scoped, so named with the installation's namespace prefix
/// (`paddock-<member>-group-<group>` by default), as its namespaces are.
pub fn volume_name(prefix: &str, member: &str, group: &str) -> String {
    format!("{prefix}{member}-group-{group}")
}

/// Makes the member's claims and volumes match `spec.groups`.
pub async fn reconcile(client: &Client, settings: &Settings, member: &Tenant, caches: &Caches) -> Result<(), Error> {
    let name = member.name_any();
    let ns = namespace_name(&name, settings);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let owner = serde_json::to_value(member.controller_owner_ref(&())).unwrap_or_default();
    for g in &member.spec.groups {
        let group_ns = namespace_name(g, settings);
        let shared = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &group_ns).get_opt("shared").await?;
        let Some(source_pv) = shared.and_then(|c| c.spec).and_then(|s| s.volume_name) else {
            return Err(Error::Waiting(format!("group {g}'s shared volume is not bound yet")));
        };
        let Some(source) = pvs.get_opt(&source_pv).await? else {
            return Err(Error::Waiting(format!("group {g}'s volume {source_pv} is not there yet")));
        };
        let mut spec = serde_json::to_value(source.spec.unwrap_or_default()).unwrap_or_default();
        if let Some(m) = spec.as_object_mut() {
            for k in ["claimRef", "storageClassName", "nodeAffinity"] {
                m.remove(k);
            }
        }
        spec["accessModes"] = json!(["ReadWriteMany"]);
        spec["persistentVolumeReclaimPolicy"] = json!("Retain");
        spec["claimRef"] =
            json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns, "name": group_claim(g)});
        let capacity = spec.pointer("/capacity/storage").cloned().unwrap_or(json!("1Gi"));
        let labels =
            json!({MANAGED_BY: MANAGER, TENANT: name, GROUP_LABEL: g, resources::vocabulary::COMPONENT: "tenant"});
        let pv_name = volume_name(&settings.namespace_prefix, &name, g);
        let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "labels": labels, "ownerReferences": [owner]}, "spec": spec});
        if pvs.get_opt(&pv_name).await?.is_none() {
            pvs.patch(&pv_name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&pv)).await?;
        }
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": group_claim(g), "namespace": ns, "labels": labels},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": pv_name,
                "resources": {"requests": {"storage": capacity}}}});
        if pvcs.get_opt(&group_claim(g)).await?.is_none() {
            pvcs.patch(&group_claim(g), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&pvc)).await?;
        }
    }
    // Groups the member left.
    let left = |labels: &std::collections::BTreeMap<String, String>| {
        labels.get(TENANT) == Some(&name) && labels.get(GROUP_LABEL).is_some_and(|g| !member.spec.groups.contains(g))
    };
    let claims: Vec<String> =
        caches.group_claims.state().iter().filter(|o| left(o.labels())).map(|o| o.name_any()).collect();
    let volumes: Vec<String> =
        caches.group_volumes.state().iter().filter(|o| left(o.labels())).map(|o| o.name_any()).collect();
    for c in claims {
        pvcs.delete(&c, &DeleteParams::default()).await?;
    }
    for v in volumes {
        pvs.delete(&v, &DeleteParams::default()).await?;
    }
    Ok(())
}
