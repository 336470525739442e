//! `paddock api` (the HTTP API alone) and `paddock serve` (controller and API
//! in one process, for small installs).

use crate::commands::controller::{ElectionArgs, reconcilers};
use crate::commands::sim::shutdown_signal;
use crate::kubeconfig::ClusterArgs;
use crate::settings::SettingsArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use controller::config::Settings;
use controller::leader::Leadership;
use futures::FutureExt;
use std::net::SocketAddr;
use std::time::Duration;

/// How the API server listens and authenticates.
#[derive(Args, Debug, Clone)]
pub struct ApiServerArgs {
    /// Address the API listens on.
    #[arg(long = "listen", env = "PADDOCK_API_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// An admin token, besides Secrets labelled paddock.dev/credentials=admin in the system namespace.
    #[arg(long = "admin-token", env = "PADDOCK_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds between SSE heartbeats.
    #[arg(long, env = "PADDOCK_SSE_HEARTBEAT", default_value_t = 15)]
    pub sse_heartbeat: u64,
    /// Events kept in memory for clients resuming with Last-Event-ID.
    #[arg(long, env = "PADDOCK_SSE_REPLAY", default_value_t = 10_000)]
    pub sse_replay: usize,
    /// The Kubernetes API URL tenant kubeconfigs point at, as the tenants' people reach it (default: the
    /// address Paddock itself uses, which from inside a cluster is an in-cluster one)
    #[arg(long, env = "PADDOCK_KUBECONFIG_SERVER")]
    pub kubeconfig_server: Option<String>,
    /// PEM file of the CA that signed that API server's certificate (default: the CA Paddock itself trusts)
    #[arg(long, env = "PADDOCK_KUBECONFIG_CA_FILE")]
    pub kubeconfig_ca_file: Option<std::path::PathBuf>,
}

impl ApiServerArgs {
    /// The API's configuration, every flag checked (before Paddock connects
    /// to the cluster, so a bad flag is reported first).
    pub fn config(&self, settings: Settings) -> Result<ApiConfig> {
        if !(1..=300).contains(&self.sse_heartbeat) {
            bail!("--sse-heartbeat {}: must be between 1 and 300 seconds", self.sse_heartbeat);
        }
        if !(100..=1_000_000).contains(&self.sse_replay) {
            bail!("--sse-replay {}: must be between 100 and 1000000 events", self.sse_replay);
        }
        if let Some(t) = &self.admin_token
            && t.len() < 16
        {
            bail!("--admin-token / PADDOCK_ADMIN_TOKEN: must be at least 16 characters");
        }
        if let Some(server) = &self.kubeconfig_server {
            let url = reqwest::Url::parse(server)
                .map_err(|e| anyhow::anyhow!("--kubeconfig-server {server:?}: not a URL ({e})"))?;
            if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                bail!("--kubeconfig-server {server:?}: must be an https:// (or http://) URL with a host");
            }
        }
        let ca_pem = match &self.kubeconfig_ca_file {
            None => None,
            Some(path) => {
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("--kubeconfig-ca-file {}: cannot read it ({e})", path.display()))?;
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    bail!("--kubeconfig-ca-file {}: not a PEM certificate (no BEGIN CERTIFICATE line)", path.display());
                }
                Some(pem)
            }
        };
        let config = api::Config {
            settings,
            admin_token: self.admin_token.clone(),
            heartbeat: Duration::from_secs(self.sse_heartbeat),
            replay_log: self.sse_replay,
            ..api::Config::default()
        };
        Ok(ApiConfig { config, server: self.kubeconfig_server.clone(), ca_pem })
    }
}

/// The API's configuration before Paddock has connected to the cluster.
pub struct ApiConfig {
    config: api::Config,
    /// `--kubeconfig-server`, `--kubeconfig-ca-file` (checked).
    server: Option<String>,
    ca_pem: Option<String>,
}

impl ApiConfig {
    /// The whole configuration: tenant kubeconfigs point where the flags say,
    /// else where `own` (Paddock's own connection) does.
    pub fn connected(self, own: &kube::Config) -> api::Config {
        let mut access = api::ClusterAccess::from_config(own);
        if let Some(server) = self.server {
            access.server = server.trim_end_matches('/').to_string();
        }
        if let Some(pem) = self.ca_pem {
            access.ca_pem = Some(pem);
        }
        api::Config { cluster_access: Some(access), ..self.config }
    }
}

#[derive(Args, Debug)]
pub struct ApiArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub server: ApiServerArgs,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub election: ElectionArgs,
}

/// Binds the API and serves it (and `telemetry` on /metrics) until `shutdown`.
pub async fn serve_api(
    client: kube::Client,
    index: Option<controller::index::Index>,
    config: api::Config,
    listen: SocketAddr,
    telemetry: api::metrics::Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("--listen {listen}: cannot listen"))?;
    let (state, _background) = match index {
        Some(index) => api::start_with(index, client, config, telemetry),
        None => api::start(client, config, telemetry),
    };
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "API listening");
    api::serve(listener, state, shutdown).await.context("the API server failed")
}

pub async fn run_api(args: ApiArgs) -> Result<()> {
    let config = args.server.config(args.settings.settings()?)?;
    let (client, own) = args.cluster.connect().await?;
    let config = config.connected(&own);
    controller::install::check_version(&client).await.map_err(anyhow::Error::msg)?;
    controller::install::report_missing(&client, &config.settings.system_namespace).await;
    let telemetry = api::metrics::Telemetry::api_only();
    serve_api(client, None, config, args.server.listen, telemetry, shutdown_signal()).await
}

pub async fn run_serve(args: ServeArgs) -> Result<()> {
    let settings = args.api.settings.settings()?;
    let config = args.api.server.config(settings.clone())?;
    let (client, own) = args.api.cluster.connect().await?;
    let config = config.connected(&own);
    controller::install::check_version(&client).await.map_err(anyhow::Error::msg)?;
    controller::install::report_missing(&client, &settings.system_namespace).await;
    let stop = shutdown_signal().boxed().shared();
    // One registry: the API's /metrics shows the controller's metrics too.
    let (telemetry, metrics) = api::metrics::Telemetry::with_controller();
    // One watch per kind for both: the API and the reconcilers read the same stores.
    let index = controller::index::Index::new(
        metrics.requests.client(client.clone(), "index"),
        metrics.watch_errors(),
        settings.scope_selector(),
    );
    let controllers = reconcilers(
        client.clone(),
        Some(index.clone()),
        settings,
        &args.election,
        Leadership::default(),
        metrics,
        stop.clone(),
    );
    let listen = args.api.server.listen;
    let (api, ()) = tokio::join!(serve_api(client, Some(index), config, listen, telemetry, stop), controllers);
    tracing::info!("stopped");
    api
}
