//! The health audit of a tenant cluster, through its kubeconfig: the API
//! server's `/readyz`, and which of the cluster's machines' nodes are Ready.
//!
//! The kubeconfig comes from Cluster API's Secret in the tenant's namespace,
//! so it is checked before use as if hostile: only inline credentials
//! (token or client certificate data) are accepted, never an `exec` or
//! auth-provider plugin (which would run a command in Paddock's pod) or a
//! file path (which would read Paddock's files). Every request has a
//! deadline, and the node list is bounded.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long one audit request may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// What an audit found.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    pub api_ok: bool,
    pub ready_nodes: u32,
    pub message: Option<String>,
}

/// Why a kubeconfig is not used, if it should not be.
pub fn refuse(kc: &kube::config::Kubeconfig) -> Option<String> {
    for u in &kc.auth_infos {
        let Some(a) = &u.auth_info else { continue };
        if a.exec.is_some() || a.auth_provider.is_some() {
            return Some(format!("user {:?} runs a credential plugin, which Paddock never runs", u.name));
        }
        if a.token_file.is_some() || a.client_certificate.is_some() || a.client_key.is_some() {
            return Some(format!("user {:?} names files, which Paddock never reads", u.name));
        }
    }
    for c in &kc.clusters {
        if c.cluster.as_ref().is_some_and(|c| c.certificate_authority.is_some()) {
            return Some(format!("cluster {:?} names a CA file, which Paddock never reads", c.name));
        }
    }
    None
}

/// A client for the cluster the kubeconfig text is for, with deadlines.
pub async fn client(text: &str) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::from_yaml(text).map_err(|e| format!("the kubeconfig does not parse: {e}"))?;
    if let Some(why) = refuse(&kc) {
        return Err(format!("the kubeconfig is refused: {why}"));
    }
    let mut config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| format!("the kubeconfig is not usable: {e}"))?;
    config.connect_timeout = Some(DEADLINE);
    config.read_timeout = Some(DEADLINE);
    config.write_timeout = Some(DEADLINE);
    kube::Client::try_from(config).map_err(|e| format!("no client for the kubeconfig: {e}"))
}

/// Audits the cluster: `/readyz`, then the Ready nodes among `machines`'
/// nodes (nodes the tenant made itself are not counted).
pub async fn audit(client: &kube::Client, machines: &BTreeSet<String>) -> Audit {
    let readyz = http::Request::get("/readyz").body(Vec::new()).map_err(|e| e.to_string());
    let answer = match readyz {
        Ok(req) => tokio::time::timeout(DEADLINE, client.request_text(req)).await,
        Err(e) => return Audit { api_ok: false, ready_nodes: 0, message: Some(e) },
    };
    match answer {
        Ok(Ok(body)) if body.trim() == "ok" || body.contains("readyz check passed") => {}
        Ok(Ok(body)) => return down(format!("/readyz answered {:?}", body.chars().take(200).collect::<String>())),
        Ok(Err(e)) => return down(format!("/readyz: {}", crate::error::brief(&e))),
        Err(_) => return down(format!("/readyz did not answer within {DEADLINE:?}")),
    }
    // Bounded: the cluster's own machines, and some room for others.
    let limit = (machines.len() as u32).saturating_mul(2).saturating_add(10);
    let nodes =
        tokio::time::timeout(DEADLINE, Api::<Node>::all(client.clone()).list(&ListParams::default().limit(limit)))
            .await;
    let list = match nodes {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return down(format!("listing nodes: {}", crate::error::brief(&e))),
        Err(_) => return down(format!("listing nodes did not answer within {DEADLINE:?}")),
    };
    let ready = list
        .items
        .iter()
        .filter(|n| n.metadata.name.as_ref().is_some_and(|name| machines.contains(name)))
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    Audit { api_ok: true, ready_nodes: ready as u32, message: None }
}

fn down(message: String) -> Audit {
    Audit { api_ok: false, ready_nodes: 0, message: Some(message) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_and_files_are_refused() {
        let exec = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [-c, id]\n";
        assert!(refuse(&kube::config::Kubeconfig::from_yaml(exec).unwrap()).unwrap().contains("plugin"));
        let file = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers:\n- name: u\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n";
        assert!(refuse(&kube::config::Kubeconfig::from_yaml(file).unwrap()).unwrap().contains("files"));
        let ok = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts: []\nusers:\n- name: u\n  user:\n    token: abc\n";
        assert_eq!(refuse(&kube::config::Kubeconfig::from_yaml(ok).unwrap()), None);
    }
}
