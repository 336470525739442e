//! Workload clusters: for each Cluster API cluster kubesim provisions, another
//! kubesim in the same process, on a loopback port, with a bearer token of
//! its own. Its nodes are the cluster's machines that have joined.

use crate::config::KubeVersion;
use crate::{Cluster, KubeSim, SimConfig};
use base64::Engine;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Watch history of a workload cluster: small, as it serves one tenant.
const HISTORY: usize = 5_000;

pub struct Workload {
    sim: KubeSim,
    /// The kubeconfig Cluster API writes into `<cluster>-kubeconfig`.
    pub kubeconfig: String,
}

/// The emulated version for a machine version like `v1.29.0`: its major
/// and minor, within what kubesim emulates (the nearest end otherwise).
pub fn emulated(version: &str) -> KubeVersion {
    let mut parts = version.trim().trim_start_matches('v').split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let asked = KubeVersion::new(parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    asked.clamp(KubeVersion::OLDEST, KubeVersion::NEWEST)
}

impl Workload {
    /// Starts the API server of cluster `name` (Kubernetes `version`).
    pub async fn start(name: &str, version: &str) -> Result<Workload, String> {
        let token: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let config = SimConfig {
            nodes: vec![],
            history: HISTORY,
            bearer_token: Some(token.clone()),
            cluster_api: false,
            kubernetes_version: emulated(version),
            tls: true,
            ..SimConfig::default()
        };
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let sim = KubeSim::start(config, listen).await.map_err(|e| e.to_string())?;
        let user = format!("{name}-admin");
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\n\
             contexts:\n- name: {user}@{name}\n  context:\n    cluster: {name}\n    user: {user}\n\
             current-context: {user}@{name}\nusers:\n- name: {user}\n  user:\n    token: {token}\npreferences: {{}}\n",
            url = sim.url(),
            ca = base64::engine::general_purpose::STANDARD.encode(sim.ca_pem().unwrap_or_default()),
        );
        Ok(Workload { sim, kubeconfig })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        self.sim.cluster()
    }

    pub fn port(&self) -> u16 {
        self.sim.addr().port()
    }

    /// Takes the API server down (every request answers 503) or back up.
    pub fn set_down(&self, down: bool) {
        self.cluster().outage.store(down, Ordering::Relaxed);
    }

    pub fn is_down(&self) -> bool {
        self.cluster().outage.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_what_kubesim_emulates() {
        assert_eq!(emulated("v1.29.0"), KubeVersion::new(1, 29));
        assert_eq!(emulated("1.31.2"), KubeVersion::new(1, 31));
        assert_eq!(emulated("v1.20.0"), KubeVersion::OLDEST);
        assert_eq!(emulated("v1.99.0"), KubeVersion::NEWEST);
        assert_eq!(emulated("v1.100.0"), KubeVersion::NEWEST);
    }
}
