//! A Paddock API over kubesim (or a real cluster with PADDOCK_TEST_KUBECONFIG):
//! CRDs, the reconcilers, the API on a random port, an admin token, and two
//! tenants with a token each.
#![allow(dead_code)]

use api::state::AppState;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use controller::config::Settings;
use futures::FutureExt;
use http_body_util::BodyExt;
use kubesim::testing::TestCluster;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tower::ServiceExt;

pub const T: Duration = Duration::from_secs(30);
pub const ADMIN: &str = "test-admin-token-0123456789";
/// The label of a run's Tenants and Templates (its reconcilers' scope).
pub const RUN_LABEL: &str = "paddock.dev/test-run";

static N: AtomicU32 = AtomicU32::new(0);

pub struct Env {
    pub tc: TestCluster,
    pub state: AppState,
    pub router: Router,
    pub url: String,
    /// Unique suffix for cluster-scoped names.
    pub id: String,
    pub alpha: String,
    pub beta: String,
    pub alpha_token: String,
    pub beta_token: String,
    pub template: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _background: api::Background,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    /// [`Env::start`] with settings changed by `change`.
    pub async fn start_with(change: impl FnOnce(&mut Settings)) -> Env {
        Self::start_on(TestCluster::start().await, change).await
    }

    /// [`Env::start_with`] on the cluster `tc` (another installation's, say).
    pub async fn start_on(mut tc: TestCluster, change: impl FnOnce(&mut Settings)) -> Env {
        let id = format!("{}{}", std::process::id() % 10000, N.fetch_add(1, Ordering::Relaxed));
        let mut settings = Settings {
            namespace_prefix: format!("pa{id}-"),
            system_namespace: format!("pa{id}-system"),
            pool_namespace: format!("pa{id}-pool"),
            vpn_endpoint: Some("vpn.test".into()),
            // The claim test's template reads this Secret of the tenant's.
            template_secrets: vec!["api-keys".into()],
            // Its reconcilers take only its own Tenants and Templates, which
            // the API labels (on a cluster shared with other runs).
            scope: Some((RUN_LABEL.to_string(), format!("pa{id}"))),
            ..Default::default()
        };
        change(&mut settings);
        // On a cluster that outlives the test, what it made goes, passed or failed.
        if let Some((k, v)) = &settings.scope {
            use kube::discovery::ApiResource;
            tc.owns_labelled(ApiResource::erase::<resources::Tenant>(&()), &format!("{k}={v}"));
            tc.owns_labelled(ApiResource::erase::<resources::Template>(&()), &format!("{k}={v}"));
            tc.owns_prefixed(&format!("pa{id}-"), vec![ApiResource::erase::<resources::Instance>(&())]);
        }
        controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
        controller::install::namespace(&tc.client, &settings.system_namespace, "paddock-test").await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = rx.await;
        }
        .boxed()
        .shared();
        let (telemetry, metrics) = api::metrics::Telemetry::with_controller();
        // One index for both, as `paddock serve` runs them.
        let index = controller::index::Index::new(tc.client.clone(), metrics.watch_errors(), settings.scope_selector());
        let reconcilers = controller::install::reconcilers_with(
            index.clone(),
            tc.client.clone(),
            settings.clone(),
            metrics,
            stop.clone(),
        );
        tokio::spawn(reconcilers);
        let config = api::Config {
            settings,
            admin_token: Some(ADMIN.into()),
            cluster_access: Some(api::ClusterAccess::from_config(&tc.config)),
            ..Default::default()
        };
        let (state, background) = api::start_with(index, tc.client.clone(), config, telemetry);
        let router = api::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(api::serve(listener, state.clone(), stop));
        let mut env = Env {
            tc,
            state,
            router,
            url,
            alpha: format!("alpha-{id}"),
            beta: format!("beta-{id}"),
            template: format!("web-{id}"),
            id,
            alpha_token: String::new(),
            beta_token: String::new(),
            stop: Some(tx),
            _background: background,
        };
        kubesim::testing::wait_until(T, "the API is ready", || {
            let s = env.state.clone();
            async move { s.waiting_for().is_empty() }
        })
        .await;
        for t in [env.alpha.clone(), env.beta.clone()] {
            let (code, body) = env
                .call(
                    "POST",
                    "/v1/tenants",
                    Some(ADMIN),
                    Some(json!({"name": t, "spec": {"kind": "Team",
                "quota": {"instances": 3}, "storage": {"enabled": false}}})),
                )
                .await;
            assert_eq!(code, StatusCode::CREATED, "{body}");
        }
        let tpl = json!({"spec": {"ttl": "1h", "maxTtl": "2h", "maxPerTenant": 2, "pods": [{"name": "web", "image": "nginx:1.27",
            "ports": [{"name": "http", "port": 80}], "env": [{"name": "MODE", "value": "easy", "overridable": true}]}]}});
        let (code, body) = env.call("PUT", &format!("/v1/templates/{}", env.template), Some(ADMIN), Some(tpl)).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        env.alpha_token = env.issue(&env.alpha.clone()).await;
        env.beta_token = env.issue(&env.beta.clone()).await;
        env.wait_tenant_ready(&env.alpha.clone()).await;
        env.wait_tenant_ready(&env.beta.clone()).await;
        env
    }

    /// `object` (a Tenant or Template made without the API) with the run's
    /// label, so that its reconcilers take it.
    pub fn labelled(&self, mut object: Value) -> Value {
        if let Some((k, v)) = &self.state.settings().scope {
            object["metadata"]["labels"][k.as_str()] = json!(v);
        }
        object
    }

    pub async fn issue(&self, tenant: &str) -> String {
        let (code, body) = self.call("POST", &format!("/v1/tenants/{tenant}/tokens"), Some(ADMIN), None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn wait_tenant_ready(&self, tenant: &str) {
        kubesim::testing::wait_until(T, &format!("tenant {tenant} ready"), || async {
            let (_, b) = self.call("GET", &format!("/v1/tenants/{tenant}"), Some(ADMIN), None).await;
            b["status"]["phase"] == "Ready"
        })
        .await;
    }

    /// One request through the router in-process (`oneshot`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (code, _, v) = self.call_full(method, path, token, body.map(|b| b.to_string()), &[]).await;
        (code, v)
    }

    /// A request whose answer is text (a kubeconfig, a key): status and text.
    #[allow(dead_code)]
    pub async fn call_text(&self, method: &str, path: &str, token: &str) -> (StatusCode, String) {
        let (code, _, v) = self.call_full(method, path, Some(token), None, &[]).await;
        (code, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
    }

    pub async fn call_full(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b)).unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        if parts.headers.get("content-type").is_some_and(|c| c == "text/event-stream") {
            return (parts.status, parts.headers, Value::Null);
        }
        let bytes = body.collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (parts.status, parts.headers, v)
    }

    /// Shuts the API server down (as SIGTERM would), the cluster staying up.
    pub fn stop_serving(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        for t in [&self.alpha, &self.beta] {
            let _ = self.call("DELETE", &format!("/v1/tenants/{t}"), Some(ADMIN), None).await;
        }
        let _ = self.call("DELETE", &format!("/v1/templates/{}", self.template), Some(ADMIN), None).await;
        let ns: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.tc.client.clone());
        let _ = ns.delete(&self.state.settings().system_namespace, &Default::default()).await;
        self.tc.finish().await;
    }
}
