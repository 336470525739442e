//! What every handler shares, and the background tasks that keep it current.

use crate::auth::{CREDENTIALS_LABEL, Credentials, Principal, bearer};
use crate::hub::Hub;
use crate::problem::Problem;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use controller::config::Settings;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How the API is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// An admin token besides those in Secrets (`PADDOCK_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Interval of SSE heartbeats.
    pub heartbeat: Duration,
    /// Events kept for `Last-Event-ID` resumption.
    pub replay_log: usize,
    /// Timeout of ordinary (non-streaming) requests.
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            admin_token: None,
            heartbeat: Duration::from_secs(15),
            replay_log: 10_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct Shared {
    pub client: Client,
    pub config: Config,
    pub creds: Credentials,
    pub hub: Arc<Hub>,
    creds_ready: Arc<AtomicBool>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    pub fn settings(&self) -> &Settings {
        &self.config.settings
    }

    /// The namespace of a tenant.
    pub fn namespace(&self, tenant: &str) -> String {
        format!("{}{tenant}", self.config.settings.namespace_prefix)
    }

    /// What is still missing before the API can answer correctly.
    pub fn waiting_for(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.creds_ready.load(Ordering::Relaxed) {
            out.push("the credentials watch".to_string());
        }
        if !self.hub.ready() {
            out.push("the instance watch".to_string());
        }
        out
    }
}

/// Background tasks of the API; aborted when dropped.
pub struct Background(Vec<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts the watches the API reads from and returns the shared state.
pub fn start(client: Client, config: Config) -> (AppState, Background) {
    let ns = config.settings.system_namespace.clone();
    let (store, writer) = reflector::store::<Secret>();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let wc = watcher::Config::default().labels(CREDENTIALS_LABEL);
    let feed = tokio::spawn(async move {
        let mut s = reflector::reflector(writer, watcher::watcher(secrets, wc)).default_backoff().boxed();
        while let Some(r) = s.next().await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "credentials watch failed; retrying");
            }
        }
    });
    let creds_ready = Arc::new(AtomicBool::new(false));
    let (flag, ready_store) = (creds_ready.clone(), store.clone());
    let ready = tokio::spawn(async move {
        if ready_store.wait_until_ready().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
        }
    });
    let hub = Hub::new(&config.settings.namespace_prefix, config.replay_log);
    let watch = tokio::spawn(hub.clone().run(Api::all(client.clone())));
    let creds = Credentials::new(config.admin_token.clone(), ns, store);
    let state = Arc::new(Shared { client, config, creds, hub, creds_ready });
    (state, Background(vec![feed, ready, watch]))
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).map(|h| h.to_str().unwrap_or(""));
        let token = bearer(header)?;
        let p = state
            .creds
            .verify(token)
            .ok_or_else(|| Problem::unauthorized("the token is not valid (revoked, or never issued)"))?;
        tracing::Span::current().record("principal", p.label());
        Ok(p)
    }
}
