//! HTTPS for a simulator that asks for it (`SimConfig::tls`): a CA and a
//! server certificate for 127.0.0.1 and localhost made at start, and the
//! accept loop that serves the router over TLS. Workload clusters use it:
//! kubectl sends a bearer token only over TLS, as a real API server is.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_util::sync::CancellationToken;

/// A made-up CA and the server's certificate signed by it.
pub struct Identity {
    /// The CA certificate (PEM), for a kubeconfig's `certificate-authority-data`.
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl Identity {
    pub fn new() -> Result<Self, String> {
        let e = |e: rcgen::Error| e.to_string();
        let ca_key = rcgen::KeyPair::generate().map_err(e)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "kubesim-ca");
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).map_err(e)?;
        params.distinguished_name.push(rcgen::DnType::CommonName, "kube-apiserver");
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let cert = params.signed_by(&key, &issuer).map_err(e)?;
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| e.to_string())?;
        Ok(Self { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) })
    }

    /// Serves `app` on `listener` over TLS until `stop`.
    pub async fn serve(&self, listener: tokio::net::TcpListener, app: Router, stop: CancellationToken) {
        loop {
            let (tcp, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, app, stop) = (self.acceptor.clone(), app.clone(), stop.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = TowerToHyperService::new(app);
                let builder = Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                tokio::select! {
                    _ = conn => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    }
}
