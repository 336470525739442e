//! Where tenant kubeconfigs send `kubectl`: the cluster's address and CA as
//! Paddock's own connection reaches it, or as the installation configures it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Where tenant kubeconfigs send `kubectl`: the Kubernetes API as the
/// tenants' people reach it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterAccess {
    /// The API server's URL.
    pub server: String,
    /// PEM of the CA that signed the API server's certificate (None: the
    /// system's roots).
    pub ca_pem: Option<String>,
    /// Skip TLS verification (only when Paddock itself is configured so).
    pub insecure_skip_tls_verify: bool,
}

impl ClusterAccess {
    /// The cluster as `config` (Paddock's own connection) reaches it.
    pub fn from_config(config: &kube::Config) -> ClusterAccess {
        ClusterAccess {
            server: config.cluster_url.to_string().trim_end_matches('/').to_string(),
            ca_pem: config.root_cert.as_ref().filter(|c| !c.is_empty()).map(|certs| pem(certs)),
            insecure_skip_tls_verify: config.accept_invalid_certs,
        }
    }
}

/// DER certificates as one PEM bundle.
fn pem(certs: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}
