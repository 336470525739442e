//! The whole platform in one process on a cluster: the CRDs, the system
//! namespace, the reconcilers and the API. `paddock dev` runs it on kubesim
//! for people; `paddock bench` measures it on kubesim or a real cluster.

use anyhow::{Context, Result};
use controller::config::Settings;
use futures::future::{BoxFuture, Shared};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub type Stop = Shared<BoxFuture<'static, ()>>;

pub struct Platform {
    pub client: kube::Client,
    pub api_url: String,
    pub admin_token: String,
    settings: Settings,
    metrics: Arc<controller::metrics::Metrics>,
    /// The shared watches of the API and the reconcilers.
    index: controller::index::Index,
    stop: Stop,
    /// The reconcilers, while they run.
    controllers: Mutex<Option<JoinHandle<()>>>,
    server: JoinHandle<std::io::Result<()>>,
    _background: api::Background,
}

impl Platform {
    /// Installs the CRDs and the system namespace on `client`'s cluster and
    /// starts the reconcilers and the API on `api_listen`; it all stops when
    /// `stop` resolves (then call `finish`).
    pub async fn serve(
        client: kube::Client,
        settings: Settings,
        api_listen: SocketAddr,
        admin_token: Option<String>,
        cluster_access: Option<api::ClusterAccess>,
        stop: Stop,
    ) -> Result<Platform> {
        let listener = tokio::net::TcpListener::bind(api_listen)
            .await
            .with_context(|| format!("--api-listen {api_listen}: cannot listen"))?;
        let api_url = format!("http://{}", listener.local_addr()?);
        controller::install::crds(&client, "paddock-dev", Duration::from_secs(30))
            .await
            .context("installing the CRDs")?;
        controller::install::namespace(&client, &settings.system_namespace, "paddock-dev")
            .await
            .context("creating the system namespace")?;
        let (telemetry, metrics) = api::metrics::Telemetry::with_controller();
        // One watch per kind for the API and the reconcilers.
        let index = controller::index::Index::new(
            metrics.requests.client(client.clone(), "index"),
            metrics.watch_errors(),
            settings.scope_selector(),
        );
        let controllers = tokio::spawn(controller::install::reconcilers_with(
            index.clone(),
            client.clone(),
            settings.clone(),
            metrics.clone(),
            stop.clone(),
        ));
        let admin_token = admin_token.filter(|t| !t.is_empty()).unwrap_or_else(api::auth::mint_admin);
        let config = api::Config {
            settings: settings.clone(),
            admin_token: Some(admin_token.clone()),
            cluster_access,
            ..api::Config::default()
        };
        let (state, background) = api::start_with(index.clone(), client.clone(), config, telemetry);
        let server = tokio::spawn(api::serve(listener, state, stop.clone()));
        Ok(Platform {
            client,
            api_url,
            admin_token,
            settings,
            metrics,
            index,
            stop,
            controllers: Mutex::new(Some(controllers)),
            server,
            _background: background,
        })
    }

    /// The requests this process's Paddock sent to the API server so far
    /// (`paddock_kube_requests_total`).
    pub fn requests(&self) -> &controller::requests::Requests {
        &self.metrics.requests
    }

    /// Stops the reconcilers (a benchmark that needs the API server and the
    /// API to itself); the rest keeps running.
    pub fn stop_controllers(&self) {
        if let Some(c) = self.controllers.lock().unwrap_or_else(|e| e.into_inner()).take() {
            c.abort();
        }
    }

    /// Runs the reconcilers again if they were stopped (a benchmark's cleanup
    /// on a real cluster needs their finalizers).
    pub fn start_controllers(&self) {
        let mut c = self.controllers.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(tokio::spawn(controller::install::reconcilers_with(
                self.index.clone(),
                self.client.clone(),
                self.settings.clone(),
                self.metrics.clone(),
                self.stop.clone(),
            )));
        }
    }

    /// Waits (at most ten seconds each) for the controllers and the API to stop.
    pub async fn finish(self) -> Result<()> {
        let Platform { controllers, server, _background, .. } = self;
        if let Some(c) = controllers.into_inner().unwrap_or_else(|e| e.into_inner()) {
            let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
        }
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(10), server).await {
            tracing::warn!(error = %e, "the API server stopped with an error");
        }
        // The API's watches end before the cluster they watch.
        drop(_background);
        Ok(())
    }
}
