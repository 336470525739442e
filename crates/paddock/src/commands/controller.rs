//! `paddock controller`: the reconcilers, leader-elected, with health endpoints.

use crate::kubeconfig::ClusterArgs;
use crate::settings::SettingsArgs;
use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use clap::Args;
use controller::leader::{Election, Leadership, lead};
use controller::metrics::Metrics;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Address for /healthz and /readyz.
    #[arg(long, env = "PADDOCK_HEALTH_LISTEN", default_value = "127.0.0.1:8081")]
    pub health_listen: SocketAddr,
    #[command(flatten)]
    pub election: ElectionArgs,
    /// Threads of the async runtime. 1 (the default) runs everything on one
    /// thread: the reconcilers mostly wait on the API server, and one thread
    /// spends about a quarter less CPU than handing work between threads
    /// (`paddock bench instances`, docs/performance.md); it also matches the
    /// Deployment's one-CPU limit. N > 1 runs N worker threads; 0 one per
    /// CPU the process may use.
    #[arg(long, env = "PADDOCK_WORKER_THREADS", default_value_t = 1,
        value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub worker_threads: u16,
}

#[derive(Args, Debug, Clone)]
pub struct ElectionArgs {
    /// Run without leader election (only for a single replica).
    #[arg(long, env = "PADDOCK_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,
    /// This replica's identity in the lease (default: POD_NAME, then the host name).
    #[arg(long, env = "PADDOCK_IDENTITY")]
    pub identity: Option<String>,
}

fn identity(args: &ElectionArgs) -> String {
    args.identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("paddock-{}", std::process::id()))
}

/// Serves /healthz, /readyz and /metrics on the health address.
async fn health(
    listen: SocketAddr,
    leadership: Leadership,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) -> Result<tokio::task::JoinHandle<()>> {
    let app = Router::new()
        .route(
            "/healthz",
            get(move || {
                let m = metrics.clone();
                async move {
                    match m.unhealthy() {
                        None => (axum::http::StatusCode::OK, "ok".to_string()),
                        Some(why) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("unhealthy: {why}")),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let l = leadership.clone();
                async move { if l.is_leader() { "ok (leader)" } else { "ok (standby)" } }
            }),
        )
        .route("/metrics", get(move || async move { api::metrics::exposition(&registry) }));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("--health-listen {listen}: cannot listen"))?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    }))
}

pub async fn run(args: ControllerArgs) -> Result<()> {
    let settings = args.settings.settings()?;
    let client = args.cluster.client().await?;
    controller::install::check_version(&client).await.map_err(anyhow::Error::msg)?;
    controller::install::report_missing(&client, &settings.system_namespace).await;
    let leadership = Leadership::default();
    let mut registry = Registry::with_prefix("paddock");
    let metrics = controller::metrics::Metrics::register(&mut registry);
    let health = health(args.health_listen, leadership.clone(), Arc::new(registry), metrics.clone()).await?;
    let stop = crate::commands::sim::shutdown_signal();
    reconcilers(client, None, settings, &args.election, leadership, metrics.clone(), stop).await;
    health.abort();
    if let Some(why) = metrics.unhealthy() {
        anyhow::bail!("{why}; the lease was released, and a restart starts the reconcilers again");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs the tenant, instance and template reconcilers until `shutdown`,
/// leader-elected unless the election args say otherwise, on the process's
/// shared watches `index` (made here when not given; they outlive a term of
/// leadership, so a new term does not list everything again).
pub async fn reconcilers(
    client: kube::Client,
    index: Option<controller::index::Index>,
    settings: controller::config::Settings,
    election: &ElectionArgs,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let index = index.unwrap_or_else(|| {
        controller::index::Index::new(
            metrics.requests.client(client.clone(), "index"),
            metrics.watch_errors(),
            settings.scope_selector(),
        )
    });
    if election.no_leader_election {
        tracing::info!("running without leader election");
        let stop = futures::FutureExt::shared(futures::FutureExt::boxed(shutdown));
        controller::install::reconcilers_with(index, client, settings, metrics, stop).await;
        return;
    }
    metrics.watch_leadership(leadership.clone());
    let election = Election::new(&settings.system_namespace, "paddock-controller", &identity(election));
    tracing::info!(identity = %election.identity, namespace = %election.namespace, "campaigning for leadership");
    let work_client = client.clone();
    lead(client, election, leadership, shutdown, move |mut stop| {
        let (client, settings, metrics, index) =
            (work_client.clone(), settings.clone(), metrics.clone(), index.clone());
        async move {
            let stopped = async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        return;
                    }
                }
            };
            let stopped = futures::FutureExt::shared(futures::FutureExt::boxed(stopped));
            controller::install::reconcilers_with(index, client, settings, metrics, stopped).await;
        }
    })
    .await;
}
