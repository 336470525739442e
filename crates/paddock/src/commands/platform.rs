//! The whole platform in one process on kubesim: the embedded cluster, the
//! CRDs, the system namespace, the reconcilers and the API. `paddock dev`
//! runs it for people; `paddock bench` measures it.

use anyhow::{Context, Result};
use controller::config::Settings;
use futures::future::{BoxFuture, Shared};
use kubesim::{KubeSim, SimConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

pub type Stop = Shared<BoxFuture<'static, ()>>;

pub struct Platform {
    pub sim: KubeSim,
    pub client: kube::Client,
    pub api_url: String,
    pub admin_token: String,
    controllers: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
    _background: api::Background,
}

impl Platform {
    /// Starts everything; it all stops when `stop` resolves (then call `finish`).
    pub async fn start(
        cfg: SimConfig,
        sim_listen: SocketAddr,
        api_listen: SocketAddr,
        admin_token: Option<String>,
        stop: Stop,
    ) -> Result<Platform> {
        let listener = tokio::net::TcpListener::bind(api_listen)
            .await
            .with_context(|| format!("--api-listen {api_listen}: cannot listen"))?;
        let api_url = format!("http://{}", listener.local_addr()?);
        let sim = KubeSim::start(cfg, sim_listen).await?;
        let client = sim.client().await?;
        // VPN client files point at this machine (NodePorts of the embedded cluster are not real).
        let settings = Settings { vpn_endpoint: Some("127.0.0.1".into()), ..Settings::default() };
        controller::install::crds(&client, "paddock-dev", Duration::from_secs(30))
            .await
            .context("installing the CRDs")?;
        controller::install::namespace(&client, &settings.system_namespace, "paddock-dev")
            .await
            .context("creating the system namespace")?;
        let (telemetry, metrics) = api::metrics::Telemetry::with_controller();
        let controllers =
            tokio::spawn(controller::install::reconcilers(client.clone(), settings.clone(), metrics, stop.clone()));
        let admin_token = admin_token.filter(|t| !t.is_empty()).unwrap_or_else(api::auth::mint_admin);
        let config = api::Config { settings, admin_token: Some(admin_token.clone()), ..api::Config::default() };
        let (state, background) = api::start(client.clone(), config, telemetry);
        let server = tokio::spawn(api::serve(listener, api::router(state), stop));
        Ok(Platform { sim, client, api_url, admin_token, controllers, server, _background: background })
    }

    /// Stops the reconcilers (a benchmark that needs the API server and the
    /// API to itself); the rest keeps running.
    pub fn stop_controllers(&self) {
        self.controllers.abort();
    }

    /// Waits (at most ten seconds each) for the controllers and the API to stop, then stops kubesim.
    pub async fn finish(self) -> Result<()> {
        let Platform { sim, controllers, server, _background, .. } = self;
        let _ = tokio::time::timeout(Duration::from_secs(10), controllers).await;
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(10), server).await {
            tracing::warn!(error = %e, "the API server stopped with an error");
        }
        // The API's watches end before the cluster they watch.
        drop(_background);
        sim.shutdown().await.map_err(|e| anyhow::anyhow!(e))
    }
}
