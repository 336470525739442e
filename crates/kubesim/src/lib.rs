//! kubesim: an in-process Kubernetes API server with a simulated scheduler,
//! kubelet, namespace lifecycle, garbage collector, quota and limit-range
//! admission, PVC binding, service IP allocation and workload controllers.
//!
//! It speaks upstream's HTTP API (plain HTTP on loopback), so the real `kube`
//! client and `kubectl` use it as they would a cluster:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = kubesim::KubeSim::start(kubesim::SimConfig::default(), "127.0.0.1:0".parse()?).await?;
//! let client = sim.client().await?;
//! # let _ = client; Ok(()) }
//! ```

pub mod admission;
pub mod allocations;
pub mod cluster;
pub mod config;
pub mod cost;
pub mod defaults;
pub mod error;
pub mod eventview;
pub mod jsonobj;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod rules;
pub mod schema;
pub mod selector;
pub mod server;
pub mod sim;
pub mod snapshot;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
pub mod validation;

pub use cluster::Cluster;
pub use config::{NodeSpec, SimConfig};

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running simulated cluster.
pub struct KubeSim {
    addr: SocketAddr,
    /// The CA of its HTTPS certificate, when it serves HTTPS.
    ca_pem: Option<String>,
    cluster: Arc<Cluster>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// (The error is in the message, not a `source`: shown with its chain it
    /// would read twice.)
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    #[error("cannot load state file {path}: {reason}")]
    State { path: String, reason: String },
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
}

/// Counts every write the store makes, by resource (for benchmarks that
/// tell the simulated controllers' writes from the requests'); a burst the
/// watch channel drops is not counted.
async fn count_stored(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut events = cluster.subscribe();
    loop {
        let ev = tokio::select! {
            _ = shutdown.cancelled() => return,
            ev = events.recv() => ev,
        };
        match ev {
            Ok(ev) => {
                let Some(def) = cluster.def(ev.res) else { continue };
                let resource = if ev.status_only { format!("{}/status", def.plural) } else { def.plural.clone() };
                cluster.requests.note_stored(resource);
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// With a cost model, charges the simulated controllers' writes every few
/// milliseconds (see [`cost`]).
async fn charge_controllers(cluster: Arc<Cluster>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Some(costs) = &cluster.costs {
            costs.catch_up(cluster.current_rv(), cluster.open_watches("pods"));
        }
    }
}

impl KubeSim {
    /// Starts the API server on `listen` (port 0 picks a free port) and, unless
    /// disabled in the config, the simulated controllers.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<KubeSim, StartError> {
        let state_file = config.state_file.clone();
        let controllers = config.controllers;
        let cluster = Cluster::new(config);
        let loaded = match &state_file {
            Some(p) if p.exists() => {
                snapshot::load(&cluster, p)
                    .map_err(|reason| StartError::State { path: p.display().to_string(), reason })?;
                true
            }
            _ => false,
        };
        if !loaded {
            sim::bootstrap::run(&cluster).map_err(StartError::Bootstrap)?;
        }
        let listener =
            tokio::net::TcpListener::bind(listen).await.map_err(|error| StartError::Listen { addr: listen, error })?;
        let addr = listener.local_addr().map_err(|error| StartError::Listen { addr: listen, error })?;
        let shutdown = CancellationToken::new();
        let app = server::router(server::Server { cluster: cluster.clone(), shutdown: shutdown.clone() });
        let stop = shutdown.clone();
        // As the real API server (Go sets TCP_NODELAY on every connection):
        // without it, Nagle's algorithm holds a watch event back while the
        // one before is unacknowledged, and the client's delayed ACK makes
        // that up to 40 ms.
        let identity = match cluster.config.tls {
            true => Some(tls::Identity::new().map_err(|e| StartError::Bootstrap(format!("TLS: {e}")))?),
            false => None,
        };
        let ca_pem = identity.as_ref().map(|i| i.ca_pem.clone());
        let mut tasks = vec![match identity {
            Some(identity) => tokio::spawn(async move { identity.serve(listener, app, stop).await }),
            None => tokio::spawn(async move {
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                });
                let serve = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "kubesim server stopped");
                }
            }),
        }];
        if controllers {
            tasks.push(sim::spawn(cluster.clone(), shutdown.clone()));
            if cluster.config.cluster_api {
                tasks.push(sim::capi::spawn(cluster.clone(), shutdown.clone()));
            }
        }
        tasks.push(tokio::spawn(count_stored(cluster.clone(), shutdown.clone())));
        if cluster.costs.is_some() {
            tasks.push(tokio::spawn(charge_controllers(cluster.clone(), shutdown.clone())));
        }
        tracing::info!(%addr, "kubesim listening");
        Ok(KubeSim { addr, ca_pem, cluster, shutdown, tasks })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) of its HTTPS certificate, when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Watch streams open now on the resource with this plural (e.g. "instances").
    pub fn open_watches(&self, plural: &str) -> usize {
        self.cluster().open_watches(plural)
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A kubeconfig (YAML) pointing at this server, context `kubesim`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user: {{}}\npreferences: {{}}\n",
            self.url()
        )
    }

    /// A `kube::Config` for this server.
    pub fn config(&self) -> Result<kube::Config, kube::Error> {
        let uri: http::Uri = self.url().parse().map_err(|e: http::uri::InvalidUri| kube::Error::Service(e.into()))?;
        Ok(kube::Config::new(uri))
    }

    /// A `kube::Client` for this server.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.config()?)
    }

    /// Stops serving (open watches end), writes the state file if configured.
    pub async fn shutdown(mut self) -> Result<(), String> {
        self.shutdown.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        if let Some(p) = &self.cluster.config.state_file {
            snapshot::save(&self.cluster, p)?;
        }
        Ok(())
    }
}

impl Drop for KubeSim {
    /// A dropped simulator stops serving and its simulated controllers stop.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
