//! The platform the in-process benchmarks (`api`, `claims`, `events`)
//! measure: Paddock's reconcilers and API in this process, on the
//! benchmark's cluster (kubesim with two big task nodes, or the cluster
//! `--kubeconfig` names), with the run's tenant (no limits) and template.

use super::target::{BENCH_LABEL, Target, TargetArgs};
use crate::commands::platform::Platform;
use anyhow::{Result, bail};
use futures::FutureExt;
use kube::api::{Api, Patch, PatchParams};
use kubesim::{SimConfig, config};
use serde_json::json;
use std::time::{Duration, Instant};

const NODES: &str = "task-1,cpu=64,memory=256Gi,pods=1000,label=paddock.dev/node-role=task;\
task-2,cpu=64,memory=256Gi,pods=1000,label=paddock.dev/node-role=task";

pub struct Stage {
    pub target: Target,
    pub platform: Platform,
    pub http: reqwest::Client,
    /// The run's tenant (`bench` on kubesim), its namespace, its template
    /// (`<tenant>-web`) and the pool namespace.
    pub tenant: String,
    pub namespace: String,
    pub template: String,
    pub pool_namespace: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl std::ops::Deref for Stage {
    type Target = Platform;
    fn deref(&self) -> &Platform {
        &self.platform
    }
}

impl Stage {
    /// The platform on the target, the run's tenant Ready and its template
    /// (with `spec`) created.
    async fn start(args: &TargetArgs, spec: serde_json::Value) -> Result<Stage> {
        let cfg =
            SimConfig { nodes: config::parse_nodes(NODES).map_err(|e| anyhow::anyhow!(e))?, ..SimConfig::default() };
        let target = Target::start(args, cfg).await?;
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stop_rx.await;
        }
        .boxed()
        .shared();
        let settings = controller::config::Settings::default();
        let local = "127.0.0.1:0".parse()?;
        let platform = Platform::serve(target.client.clone(), settings.clone(), local, None, None, stopped).await?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(2000).build()?;
        let tenant = target.run.clone();
        let s = Stage {
            namespace: resources::vocabulary::tenant_namespace(&settings.namespace_prefix, &tenant),
            template: format!("{tenant}-web"),
            pool_namespace: settings.pool_namespace.clone(),
            tenant,
            target,
            platform,
            http,
            stop,
        };
        s.apply_template(&s.template, spec).await?;
        let pp = PatchParams::apply("paddock-bench").force();
        let t = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": s.tenant, "labels": {BENCH_LABEL: s.tenant}},
            "spec": {"kind": "Team", "storage": {"enabled": false}, "quota": {"instances": 100000, "pods": 100000}}});
        Api::<resources::Tenant>::all(s.client.clone()).patch(&s.tenant, &pp, &Patch::Apply(&t)).await?;
        let path = format!("/v1/tenants/{}", s.tenant);
        s.poll(&path, Duration::from_secs(60), "the bench tenant to be Ready", |t| t["status"]["phase"] == "Ready")
            .await?;
        Ok(s)
    }

    /// Starts a stage with `spec`, runs `measure` on it, and finishes the
    /// stage (with its cleanup on a cluster) whatever `measure` came to.
    pub async fn measure<R>(
        args: &TargetArgs,
        spec: serde_json::Value,
        measure: impl AsyncFnOnce(&Stage) -> Result<R>,
    ) -> Result<R> {
        let stage = Stage::start(args, spec).await?;
        let measured = measure(&stage).await;
        let finished = stage.finish().await;
        let r = measured?;
        finished?;
        Ok(r)
    }

    /// Applies a Template of the run (labelled for the cleanup on a cluster).
    pub async fn apply_template(&self, name: &str, spec: serde_json::Value) -> Result<()> {
        let pp = PatchParams::apply("paddock-bench").force();
        let t = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": name, "labels": {BENCH_LABEL: self.tenant}}, "spec": spec});
        Api::<resources::Template>::all(self.client.clone()).patch(name, &pp, &Patch::Apply(&t)).await?;
        Ok(())
    }

    /// The API's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    /// GETs `path` as admin every 100 ms until `done` holds for the answer, at most `within`.
    pub async fn poll(
        &self,
        path: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let v: serde_json::Value =
                self.http.get(self.url(path)).bearer_auth(&self.admin_token).send().await?.json().await?;
            if done(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("waited {within:?} for {what}; last answer: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it all; on a cluster, first deletes what the run made (with the
    /// reconcilers running, for their finalizers).
    async fn finish(self) -> Result<()> {
        let Stage { target, platform, stop, .. } = self;
        if target.sim().is_none() {
            platform.start_controllers();
        }
        let cleaned = target.cleanup().await;
        let _ = stop.send(());
        platform.finish().await?;
        target.finish().await?;
        cleaned
    }
}
