//! The team VPN of a tenant: keys in the Secret `vpn`, a WireGuard pod on
//! vpn/shared nodes with only NET_ADMIN, a UDP Service, and policies that
//! let it in from anywhere on its port and out only to the tenant's `teamnet`
//! pods (in its namespace and, claimed from a warm pool, in the pool
//! namespace) and DNS. Keys never leave the Secret (the API renders client
//! files from it); rotating a key changes the server config, whose hash on
//! the pod makes the reconciler replace the pod.

use crate::config::Settings;
use crate::error::Error;
use crate::labels::{FIELD_MANAGER, MANAGED_BY, MANAGER, ROLE, TENANT};
use crate::noderoles::placement_on;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use resources::Tenant;
use resources::tenant::{Vpn, VpnServiceType, VpnStatus};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use vpn::{Key, Peer};

/// Name of the pod, Service and Secret.
pub const NAME: &str = "vpn";
/// The annotation carrying the hash of the server's configuration.
const HASH: &str = resources::vocabulary::CONFIG_HASH;

/// The keys as stored in the Secret (base64 text, as `wg` prints them).
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    pub server: Key,
    /// Client n (1-based) → (private, preshared).
    pub clients: BTreeMap<u32, (Key, Key)>,
}

impl Keys {
    pub fn from_secret(s: &Secret) -> Option<Keys> {
        let data = s.data.as_ref()?;
        let get =
            |k: &str| data.get(k).and_then(|v| std::str::from_utf8(&v.0).ok()).and_then(|v| Key::from_base64(v).ok());
        let server = get("server.key")?;
        let mut clients = BTreeMap::new();
        for n in 1..=vpn::MAX_CLIENTS {
            if let (Some(k), Some(p)) = (get(&format!("client-{n}.key")), get(&format!("client-{n}.psk"))) {
                clients.insert(n, (k, p));
            }
        }
        Some(Keys { server, clients })
    }

    /// Exactly `count` clients: existing keys kept, missing ones made, extra ones dropped.
    pub fn resize(mut self, count: u32) -> Keys {
        self.clients.retain(|n, _| *n <= count);
        for n in 1..=count {
            self.clients.entry(n).or_insert_with(|| (Key::generate(), Key::preshared()));
        }
        self
    }

    pub fn new(count: u32) -> Keys {
        Keys { server: Key::generate(), clients: BTreeMap::new() }.resize(count)
    }

    /// The Secret's data: keys, and the server's `wg0.conf`.
    pub fn data(&self, pool: Ipv4Net, port: u16) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        d.insert("server.key".to_string(), self.server.to_base64());
        for (n, (k, p)) in &self.clients {
            d.insert(format!("client-{n}.key"), k.to_base64());
            d.insert(format!("client-{n}.psk"), p.to_base64());
        }
        let peers: Vec<Peer> = self
            .clients
            .iter()
            .map(|(n, (k, p))| Peer { number: *n, public: k.public(), preshared: p.clone() })
            .collect();
        d.insert("wg0.conf".to_string(), vpn::server_config(pool, port, &self.server, &peers));
        d
    }
}

fn labels(tenant: &str) -> Value {
    json!({MANAGED_BY: MANAGER, TENANT: tenant, resources::vocabulary::COMPONENT: "vpn", ROLE: "vpn"})
}

fn meta(name: &str, ns: &str, t: &Tenant) -> Value {
    let owner = serde_json::to_value(t.controller_owner_ref(&())).unwrap_or(Value::Null);
    json!({"name": name, "namespace": ns, "labels": labels(&t.name_any()), "ownerReferences": [owner]})
}

fn typed<K: serde::de::DeserializeOwned>(v: Value) -> Result<K, Error> {
    serde_json::from_value(v).map_err(|e| Error::Waiting(format!("building the VPN objects: {e}")))
}

/// The server pod: WireGuard with NET_ADMIN only, its config from the Secret.
pub fn pod(t: &Tenant, ns: &str, v: &Vpn, settings: &Settings, any_role: bool, hash: &str) -> Result<Pod, Error> {
    let place = placement_on(&["vpn", "shared"], any_role, settings.strict_node_roles);
    let mut m = meta(NAME, ns, t);
    m["annotations"] = json!({HASH: hash});
    let mut spec = json!({
        "automountServiceAccountToken": false,
        "enableServiceLinks": false,
        "tolerations": serde_json::to_value(&place.tolerations).unwrap_or(json!([])),
        // Routing clients into the cluster: the kubelet must allow this sysctl
        // (--allowed-unsafe-sysctls=net.ipv4.ip_forward on vpn/shared nodes).
        "securityContext": {"sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}], "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "wireguard",
            "image": settings.vpn_image,
            "command": ["sh", "-c", "wg-quick up /etc/wireguard/wg0.conf && exec sleep infinity"],
            "ports": [{"name": "wireguard", "containerPort": v.port, "protocol": "UDP"}],
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}},
            "resources": {"requests": {"cpu": resources::usage::VPN_CPU_REQUEST, "memory": resources::usage::VPN_MEMORY_REQUEST}, "limits": {"memory": "128Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/wireguard", "readOnly": true}]
        }],
        "volumes": [{"name": "config", "secret": {"secretName": NAME, "defaultMode": 0o400, "items": [{"key": "wg0.conf", "path": "wg0.conf"}]}}]
    });
    if let Some(a) = &place.affinity {
        spec["affinity"] = serde_json::to_value(a).unwrap_or(Value::Null);
    }
    typed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec}))
}

pub fn service(t: &Tenant, ns: &str, v: &Vpn) -> Result<Service, Error> {
    let kind = match v.service_type {
        VpnServiceType::NodePort => "NodePort",
        VpnServiceType::LoadBalancer => "LoadBalancer",
    };
    typed(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(NAME, ns, t), "spec": {
        "type": kind, "selector": {TENANT: t.name_any(), ROLE: "vpn"},
        "ports": [{"name": "wireguard", "protocol": "UDP", "port": v.port, "targetPort": "wireguard"}]}}))
}

/// In: UDP on the port from anywhere. Out: the tenant's teamnet pods, DNS.
pub fn policies(t: &Tenant, ns: &str, v: &Vpn, settings: &Settings) -> Result<Vec<NetworkPolicy>, Error> {
    let tenant = t.name_any();
    let me = json!({"matchLabels": {ROLE: "vpn", TENANT: tenant}});
    let teamnet = resources::vocabulary::network_label(resources::template::TEAMNET);
    Ok(vec![
        typed(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("vpn-ingress", ns, t),
            "spec": {"podSelector": me, "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "UDP", "port": v.port}]}]}}),
        )?,
        typed(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta("vpn-egress", ns, t),
            "spec": {"podSelector": me, "policyTypes": ["Egress"], "egress": [
                {"to": [{"podSelector": {"matchLabels": {teamnet.clone(): "true"}}}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.pool_namespace}},
                         "podSelector": {"matchLabels": {teamnet: "true", TENANT: tenant}}}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
            ]}}),
        )?,
    ])
}

pub(super) fn hash(conf: &str) -> String {
    Sha256::digest(conf.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The tenant's pool: the one in its status, else a free /24 of the range.
/// Callers hold the allocation lock until the pool is in the status.
pub async fn allocate(client: &Client, t: &Tenant, settings: &Settings) -> Result<Ipv4Net, Error> {
    if let Some(p) = t.status.as_ref().and_then(|s| s.vpn.as_ref()).and_then(|v| v.address_pool.as_ref())
        && let Ok(p) = p.parse()
    {
        return Ok(p);
    }
    let range: Ipv4Net = settings
        .vpn_range
        .parse()
        .map_err(|_| Error::Waiting(format!("the VPN address range {:?} is not an IPv4 CIDR", settings.vpn_range)))?;
    let used: BTreeSet<Ipv4Net> = Api::<Tenant>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter_map(|o| o.status.as_ref()?.vpn.as_ref()?.address_pool.as_ref()?.parse().ok())
        .collect();
    let pool = vpn::allocate(range, &used, &t.name_any())
        .ok_or_else(|| Error::Waiting(format!("the VPN address range {range} has no free /24 left")))?;
    let patch = json!({"status": {"vpn": {"addressPool": pool.to_string()}}});
    Api::<Tenant>::all(client.clone())
        .patch_status(&t.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(pool)
}

/// Makes the VPN what the spec says; returns its status (None: disabled).
pub async fn reconcile(
    client: &Client,
    t: &Tenant,
    ns: &str,
    settings: &Settings,
    lock: &tokio::sync::Mutex<()>,
    caches: &super::cache::Caches,
) -> Result<Option<VpnStatus>, Error> {
    let Some(v) = t.spec.vpn.clone().filter(|v| v.enabled) else {
        remove(client, ns, caches).await?;
        return Ok(None);
    };
    let pool = {
        let _held = lock.lock().await;
        allocate(client, t, settings).await?
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let existing = secrets.get_opt(NAME).await?;
    let keys = existing.as_ref().and_then(Keys::from_secret).unwrap_or_else(|| Keys::new(v.clients)).resize(v.clients);
    let data = keys.data(pool, v.port);
    let conf_hash = hash(data.get("wg0.conf").map(String::as_str).unwrap_or_default());
    let stored: Option<BTreeMap<String, String>> = existing
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .map(|d| d.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())).collect());
    if stored.as_ref() != Some(&data) {
        let secret: Secret = typed(json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(NAME, ns, t),
            "type": "Opaque", "stringData": data}))?;
        match existing {
            // Replace, so keys of removed clients go too.
            Some(mut s) => {
                s.data = None;
                s.string_data = secret.string_data;
                secrets.replace(NAME, &PostParams::default(), &s).await?;
            }
            None => {
                secrets.create(&PostParams::default(), &secret).await?;
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let current = pods.get_opt(NAME).await?;
    let stale = current
        .as_ref()
        .is_some_and(|p| p.annotations().get(HASH) != Some(&conf_hash) || p.metadata.deletion_timestamp.is_some());
    if stale {
        // New keys or peers: the server restarts with them (old keys stop working).
        if current.as_ref().is_some_and(|p| p.metadata.deletion_timestamp.is_none()) {
            pods.delete(NAME, &DeleteParams::default()).await?;
        }
        return Err(Error::Waiting("replacing the VPN pod with its new configuration".into()));
    }
    if current.is_none() {
        let any_role = crate::noderoles::any_node_has_role(client).await?;
        let p = pod(t, ns, &v, settings, any_role, &conf_hash)?;
        pods.patch(NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&p)).await?;
    }
    let svc = service(t, ns, &v)?;
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .patch(NAME, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&svc))
        .await?;
    let pols: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    for p in policies(t, ns, &v, settings)? {
        pols.patch(&p.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&p)).await?;
    }
    // A pod created just now is not ready yet; its readiness brings the next reconcile.
    let failure = current.as_ref().and_then(failed);
    if failure.is_some() && current.as_ref().is_some_and(|p| age(p) >= RETRY_FAILED) {
        // Tried again now and then (its node may have been fixed); the
        // deletion brings the next reconcile, which makes it anew.
        pods.delete(NAME, &DeleteParams::default()).await?;
    }
    let ready = current.is_some_and(|p| {
        p.status.and_then(|s| s.conditions).unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True")
    });
    Ok(Some(VpnStatus {
        address_pool: Some(pool.to_string()),
        endpoint: endpoint(&v, settings, &svc),
        public_key: Some(keys.server.public().to_base64()),
        clients: v.clients,
        ready,
        failure,
    }))
}

/// How long a failed VPN pod stays (saying why) before it is made anew.
pub const RETRY_FAILED: std::time::Duration = std::time::Duration::from_secs(300);

/// Why the VPN pod failed, if it did: refused by its node's kubelet (e.g.
/// `SysctlForbidden` when the node does not allow `net.ipv4.ip_forward`) or
/// ended.
fn failed(p: &Pod) -> Option<resources::tenant::VpnFailure> {
    let s = p.status.as_ref().filter(|s| s.phase.as_deref() == Some("Failed"))?;
    let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let mut message = s.message.clone().unwrap_or_else(|| "the VPN server pod failed".into());
    if s.reason.as_deref() == Some("SysctlForbidden") {
        message = format!(
            "{message} (node {node}): the kubelet of the nodes the VPN runs on must allow it \
             (--allowed-unsafe-sysctls=net.ipv4.ip_forward); tried again every {} minutes",
            RETRY_FAILED.as_secs() / 60
        );
    }
    Some(resources::tenant::VpnFailure { reason: s.reason.clone().unwrap_or_else(|| "Failed".into()), message })
}

/// How long ago a pod was made.
fn age(p: &Pod) -> std::time::Duration {
    p.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.duration_until(jiff::Timestamp::now()).unsigned_abs())
        .unwrap_or_default()
}

/// `host:port` for clients: the configured host with the NodePort, or the
/// load balancer's address with the port.
pub fn endpoint(v: &Vpn, settings: &Settings, svc: &Service) -> Option<String> {
    let port = svc.spec.as_ref()?.ports.as_ref()?.first()?;
    match v.service_type {
        VpnServiceType::NodePort => {
            let host = v.endpoint.clone().or(settings.vpn_endpoint.clone())?;
            Some(format!("{host}:{}", port.node_port?))
        }
        VpnServiceType::LoadBalancer => {
            let lb = svc.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
            let host = v.endpoint.clone().or(lb.hostname.clone()).or(lb.ip.clone())?;
            Some(format!("{host}:{}", port.port))
        }
    }
}

/// Disabled: pod, Service, policies and Secret go.
/// Removes the VPN's objects that the watch caches show.
async fn remove(client: &Client, ns: &str, caches: &super::cache::Caches) -> Result<(), Error> {
    async fn delete<K>(client: &Client, caches: &super::cache::Caches, ns: &str, name: &str) -> Result<(), kube::Error>
    where
        K: super::cache::Cached<Scope = k8s_openapi::NamespaceResourceScope>
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        if caches.get::<K>(Some(ns), name).is_none() {
            return Ok(());
        }
        match Api::<K>::namespaced(client.clone(), ns).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(a)) if a.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
    delete::<Pod>(client, caches, ns, NAME).await?;
    delete::<Service>(client, caches, ns, NAME).await?;
    delete::<Secret>(client, caches, ns, NAME).await?;
    for p in ["vpn-ingress", "vpn-egress"] {
        delete::<NetworkPolicy>(client, caches, ns, p).await?;
    }
    Ok(())
}
