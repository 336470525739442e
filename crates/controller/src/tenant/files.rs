//! The tenant's file server, for the file browser: a pod running
//! `paddock files-server` over the tenant's claims (its own and its groups'),
//! started when the API asks for it and stopped after an idle period.
//!
//! The API marks use by writing the time into the Tenant's
//! [`FILES_ACTIVE`] annotation (at most every tenth of the idle period);
//! the reconcile keeps the server up until that time plus
//! [`Settings::files_idle`] and requeues itself for then. While it runs it
//! costs no request: the pod is read from a watch.
//!
//! The pod is hardened like an instance's (non-root, read-only root, no
//! service account token, all capabilities dropped, the installation's
//! runtime class); its NetworkPolicy admits only Paddock's own pods, on the
//! file server's port, and lets nothing out. Its token (a Secret the pod
//! mounts and the API reads) is what the API proves itself with.

use super::cache::Caches;
use crate::config::Settings;
use crate::error::Error;
use crate::labels::{MANAGED_BY, MANAGER, TENANT};
use files::protocol::{HOME, PORT, group_volume};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;
use resources::Tenant;
use resources::tenant::{FilesAccess, FilesStatus};
use resources::vocabulary::{
    COMPONENT, CONFIG_HASH, FILES_ACTIVE, FILES_SERVER, FILES_TOKEN_KEY, group_claim, storage_claim,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Where the token Secret is mounted in the pod.
const TOKEN_DIR: &str = "/var/run/paddock/files";

/// What the reconcile found: the status to show, when to look again, and
/// a refusal to tell in an Event.
pub struct Outcome {
    pub status: Option<FilesStatus>,
    pub requeue: Option<Duration>,
    pub refused: Option<String>,
}

/// The volumes the file server serves: (volume name, claim).
pub fn volumes(t: &Tenant) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if t.spec.storage.enabled {
        out.push((HOME.to_string(), storage_claim(t.spec.kind).to_string()));
    }
    out.extend(t.spec.groups.iter().map(|g| (group_volume(g), group_claim(g))));
    out
}

/// When the file server may stop: the last use plus the idle period (None:
/// never asked for, or a mark that is not a time).
pub fn until(t: &Tenant, idle: Duration) -> Option<jiff::Timestamp> {
    let mark: jiff::Timestamp = t.annotations().get(FILES_ACTIVE)?.parse().ok()?;
    let idle = jiff::SignedDuration::try_from(idle).ok()?;
    mark.checked_add(idle).ok()
}

/// The file server's pod for tenant `t` in `ns`, with a hash of itself in
/// [`CONFIG_HASH`] so that a change (volumes, access) replaces it.
pub fn pod(t: &Tenant, ns: &str, s: &Settings) -> Value {
    let read_only = t.spec.storage.files == FilesAccess::ReadOnly;
    let uid = resources::template::DEFAULT_UID;
    let mut args: Vec<String> = ["files-server", "--listen", &format!("0.0.0.0:{PORT}")].map(String::from).to_vec();
    let (mut volumes, mut mounts) = (Vec::new(), Vec::new());
    for (i, (name, claim)) in self::volumes(t).into_iter().enumerate() {
        let dir = format!("/volumes/{name}");
        args.extend(["--volume".to_string(), format!("{name}={dir}")]);
        volumes.push(
            json!({"name": format!("v{i}"), "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}),
        );
        mounts.push(json!({"name": format!("v{i}"), "mountPath": dir, "readOnly": read_only}));
    }
    args.extend(["--token-file".to_string(), format!("{TOKEN_DIR}/{FILES_TOKEN_KEY}")]);
    if read_only {
        args.push("--read-only".into());
    }
    volumes.push(json!({"name": "token", "secret": {"secretName": FILES_SERVER, "defaultMode": 0o440}}));
    mounts.push(json!({"name": "token", "mountPath": TOKEN_DIR, "readOnly": true}));
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "serviceAccountName": resources::vocabulary::TENANT_SERVICE_ACCOUNT,
        "securityContext": {"runAsNonRoot": true, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "files", "image": s.files_image, "args": args,
            "ports": [{"name": "files", "containerPort": PORT, "protocol": "TCP"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    if let Some(rc) = &s.runtime_class {
        spec["runtimeClassName"] = json!(rc);
    }
    if let Some(secret) = &s.image_pull_secret {
        spec["imagePullSecrets"] = json!([{"name": secret}]);
    }
    let hash = super::vpn::hash(&spec.to_string());
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": FILES_SERVER, "namespace": ns, "labels": labels(t), "annotations": {CONFIG_HASH: hash}},
        "spec": spec})
}

fn labels(t: &Tenant) -> Value {
    json!({MANAGED_BY: MANAGER, TENANT: t.name_any(), COMPONENT: "files"})
}

/// Only Paddock's pods (in the system namespace) reach the file server, on its port; it reaches nothing.
fn policy(t: &Tenant, ns: &str, s: &Settings) -> NetworkPolicy {
    let from = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": s.system_namespace}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "paddock"}}}]);
    serde_json::from_value(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": FILES_SERVER, "namespace": ns, "labels": labels(t)},
        "spec": {"podSelector": {"matchLabels": {COMPONENT: "files"}}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": from, "ports": [{"port": PORT, "protocol": "TCP"}]}], "egress": []}}))
    .unwrap_or_default()
}

fn status(phase: &str, message: Option<String>, until: Option<jiff::Timestamp>) -> Option<FilesStatus> {
    Some(FilesStatus { phase: phase.into(), message, until: until.map(|u| u.to_string()) })
}

/// Why the pod cannot run, from its status (a container that waits for a
/// reason other than being created, or a failed pod).
fn stuck(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    if st.phase.as_deref() == Some("Failed") {
        return Some(st.message.clone().or(st.reason.clone()).unwrap_or_else(|| "the pod failed".into()));
    }
    st.container_statuses.iter().flatten().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref().unwrap_or("");
        (reason != "ContainerCreating" && reason != "PodInitializing")
            .then(|| format!("{reason}: {}", w.message.as_deref().unwrap_or("")))
    })
}

/// Starts, keeps or stops the tenant's file server.
pub async fn reconcile(
    client: &Client,
    settings: &Settings,
    caches: &Caches,
    t: &Tenant,
    ns: &str,
) -> Result<Outcome, Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let have = caches.get::<Pod>(Some(ns), FILES_SERVER);
    let now = jiff::Timestamp::now();
    let until = until(t, settings.files_idle).filter(|u| *u > now);
    let wanted = t.spec.storage.files != FilesAccess::Disabled && !volumes(t).is_empty();
    let Some(until) = until.filter(|_| wanted) else {
        if let Some(p) = have.filter(|p| p.metadata.deletion_timestamp.is_none()) {
            pods.delete(FILES_SERVER, &DeleteParams::default().preconditions(uid_of(&p)))
                .await
                .map(|_| ())
                .or_else(gone)?;
        }
        return Ok(Outcome { status: None, requeue: None, refused: None });
    };
    let requeue = Some(Duration::from_millis(now.duration_until(until).as_millis().max(0) as u64 + 100));
    let desired = pod(t, ns, settings);
    let mut refused = None;
    let status = match have {
        Some(p) if p.metadata.deletion_timestamp.is_some() => {
            status("Starting", Some("the previous server is stopping".into()), Some(until))
        }
        Some(p)
            if p.annotations().get(CONFIG_HASH).map(String::as_str)
                != desired["metadata"]["annotations"][CONFIG_HASH].as_str() =>
        {
            // Volumes or access changed: a new pod (made once this one is gone).
            pods.delete(FILES_SERVER, &DeleteParams::default().preconditions(uid_of(&p)))
                .await
                .map(|_| ())
                .or_else(gone)?;
            status("Starting", Some("restarting with new settings".into()), Some(until))
        }
        Some(p) => match stuck(&p) {
            Some(why) => status("Refused", Some(why), Some(until)),
            None if crate::pool::claim::is_ready(&p) => status("Running", None, Some(until)),
            None => status("Starting", None, Some(until)),
        },
        None => {
            let (status, why) = start(client, settings, t, ns, desired, until).await?;
            refused = why;
            status
        }
    };
    Ok(Outcome { status, requeue, refused })
}

fn uid_of(p: &Pod) -> kube::api::Preconditions {
    kube::api::Preconditions { uid: p.metadata.uid.clone(), resource_version: None }
}

/// A 404 of a delete: already gone.
fn gone(e: kube::Error) -> Result<(), Error> {
    match e {
        kube::Error::Api(s) if s.code == 404 || s.code == 409 => Ok(()),
        e => Err(e.into()),
    }
}

/// Makes the token Secret (once), the policy and the pod. A pod the API
/// server refuses (the tenant's quota full) is told on the status and
/// (by the caller) in an Event, and tried again on the next reconcile.
async fn start(
    client: &Client,
    settings: &Settings,
    t: &Tenant,
    ns: &str,
    desired: Value,
    until: jiff::Timestamp,
) -> Result<(Option<FilesStatus>, Option<String>), Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    if secrets.get_metadata_opt(FILES_SERVER).await?.is_none() {
        let token: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(43).map(char::from).collect();
        let secret: Secret = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": FILES_SERVER, "namespace": ns, "labels": labels(t)}, "stringData": {FILES_TOKEN_KEY: token}}))
        .unwrap_or_default();
        match secrets.create(&PostParams::default(), &secret).await {
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            r => {
                r?;
            }
        }
    }
    let pols: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    pols.patch(
        FILES_SERVER,
        &PatchParams::apply(crate::labels::FIELD_MANAGER).force(),
        &Patch::Apply(&policy(t, ns, settings)),
    )
    .await?;
    let pod: Pod = serde_json::from_value(desired).map_err(|e| Error::Waiting(format!("file server pod: {e}")))?;
    match Api::<Pod>::namespaced(client.clone(), ns).create(&PostParams::default(), &pod).await {
        Ok(_) => Ok((status("Starting", None, Some(until)), None)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok((status("Starting", None, Some(until)), None)),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
            let why = format!("the file server's pod was refused: {}", s.message);
            Ok((status("Refused", Some(why.clone()), Some(until)), Some(why)))
        }
        Err(e) => Err(e.into()),
    }
}
