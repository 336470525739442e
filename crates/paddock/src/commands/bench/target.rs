//! Where a benchmark runs: the embedded kubesim (the default: Paddock's own
//! overhead) or the cluster a kubeconfig names (`--kubeconfig`: end to end,
//! real API server, real nodes). On a cluster everything the benchmark
//! creates carries the label `paddock.dev/bench=<run>` and is deleted at the
//! end, and API-server requests are read from the API server's own
//! `apiserver_request_total` metric.

use crate::kubeconfig::ClusterArgs;
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use kube::api::{Api, DeleteParams, ListParams};
use kubesim::{KubeSim, SimConfig};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The label on everything a benchmark creates on a cluster.
pub const BENCH_LABEL: &str = resources::vocabulary::BENCH;

#[derive(Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Benchmark the cluster this kubeconfig names, end to end, instead of
    /// the embedded kubesim. Needs cluster-admin; what the run creates is
    /// labelled paddock.dev/bench=<run> and deleted at the end.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in --kubeconfig (default: its current context).
    #[arg(long, global = true, requires = "kubeconfig")]
    pub context: Option<String>,
    /// With --kubeconfig: measure the Paddock controller already running in
    /// the cluster instead of starting one from this binary (its memory and
    /// CPU are then not reported).
    #[arg(long, global = true, requires = "kubeconfig")]
    pub installed_controller: bool,
    /// The image of the benchmark templates' pods (on a cluster, one its
    /// nodes can pull and run under Paddock's hardened pod spec).
    #[arg(long, global = true, default_value = "nginx:1.27")]
    pub image: String,
    /// On kubesim: what each request costs, `off` (kubesim's microseconds:
    /// Paddock's own overhead) or `realistic` (what a real API server with
    /// etcd spends, so the figures predict a real cluster's and show what a
    /// request more or less costs).
    #[arg(long, global = true, value_enum, default_value_t = crate::commands::sim::CostModelArg::Off, conflicts_with = "kubeconfig")]
    pub cost_model: crate::commands::sim::CostModelArg,
}

impl TargetArgs {
    /// `--image`, checked.
    pub fn image(&self) -> Result<&str> {
        if self.image.trim().is_empty() || self.image.chars().any(char::is_whitespace) {
            bail!("--image {:?}: must be an image reference without spaces", self.image);
        }
        Ok(&self.image)
    }
}

/// On kubesim, how [`Counts::by`] names the writes of the simulated
/// controllers (scheduler, kubelets, endpoints, garbage collector, ...):
/// `WRITE* pods/status`.
pub const SIMULATED: &str = "WRITE*";

/// API-server requests served so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// POST, PUT, PATCH (apply included) and DELETE.
    pub writes: u64,
    /// GET, LIST and WATCH.
    pub reads: u64,
    /// Every request that named a resource, by `VERB resource[/subresource]`.
    pub by: BTreeMap<String, u64>,
}

enum Kind {
    Sim(KubeSim),
    Cluster { kubeconfig: PathBuf, context: Option<String>, url: String, before: Before },
}

/// What of Paddock's own a cluster had before the run (its CRDs and
/// namespaces): the cleanup removes what the run installed, and only that.
#[derive(Debug, Default)]
struct Before {
    crds: Vec<String>,
    namespaces: Vec<String>,
}

impl Before {
    async fn read(client: &kube::Client) -> Result<Before> {
        use k8s_openapi::api::core::v1::Namespace;
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let mut b = Before::default();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in resources::crds() {
            let name = crd.metadata.name.unwrap_or_default();
            if crds.get_metadata_opt(&name).await?.is_some() {
                b.crds.push(name);
            }
        }
        let settings = controller::config::Settings::default();
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for ns in [settings.system_namespace, settings.pool_namespace] {
            if namespaces.get_metadata_opt(&ns).await?.is_some() {
                b.namespaces.push(ns);
            }
        }
        Ok(b)
    }
}

pub struct Target {
    kind: Kind,
    pub client: kube::Client,
    /// This run's name: `bench` on kubesim, `bench-<hex>` on a cluster, so
    /// that a run never meets another's objects.
    pub run: String,
    /// Files the benchmark hands to processes (a kubeconfig for kubesim).
    pub dir: PathBuf,
}

impl Target {
    /// kubesim with `cfg`, or the cluster `args` names (checked with one request).
    pub async fn start(args: &TargetArgs, cfg: SimConfig) -> Result<Target> {
        let dir = std::env::temp_dir().join(format!("paddock-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let Some(path) = &args.kubeconfig else {
            let cfg = SimConfig { cost: args.cost_model.model(), ..cfg };
            let sim = KubeSim::start(cfg, "127.0.0.1:0".parse()?).await?;
            let client = sim.client().await?;
            std::fs::write(dir.join("kubeconfig"), sim.kubeconfig_yaml())?;
            return Ok(Target { kind: Kind::Sim(sim), client, run: "bench".into(), dir });
        };
        let cluster = ClusterArgs { kubeconfig: Some(path.clone()), context: args.context.clone() };
        let (client, url) = cluster.client_and_url().await?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let run = format!("bench-{:06x}", (nanos ^ u128::from(std::process::id())) & 0xff_ffff);
        let before = Before::read(&client).await.context("reading what of Paddock's the cluster has")?;
        let kind = Kind::Cluster { kubeconfig: path.clone(), context: args.context.clone(), url, before };
        Ok(Target { kind, client, run, dir })
    }

    pub fn sim(&self) -> Option<&KubeSim> {
        match &self.kind {
            Kind::Sim(s) => Some(s),
            Kind::Cluster { .. } => None,
        }
    }

    /// "kubesim" or the cluster's address, for the report.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Sim(s) if s.cluster().costs.is_some() => "kubesim (realistic cost model)".into(),
            Kind::Sim(_) => "kubesim".into(),
            Kind::Cluster { url, context, .. } => match context {
                Some(c) => format!("cluster {url} (context {c})"),
                None => format!("cluster {url}"),
            },
        }
    }

    /// `--kubeconfig F [--context C]` for a process that talks to the same cluster.
    pub fn kube_args(&self) -> Vec<OsString> {
        match &self.kind {
            Kind::Sim(_) => vec!["--kubeconfig".into(), self.dir.join("kubeconfig").into()],
            Kind::Cluster { kubeconfig, context, .. } => {
                let mut a: Vec<OsString> = vec!["--kubeconfig".into(), kubeconfig.into()];
                if let Some(c) = context {
                    a.extend(["--context".into(), c.into()]);
                }
                a
            }
        }
    }

    /// Requests the API server has served: kubesim's own counters, or a
    /// cluster's `apiserver_request_total` (None when /metrics is not
    /// readable; with several API servers it is the one that answered).
    pub async fn counts(&self) -> Option<Counts> {
        match &self.kind {
            Kind::Sim(s) => {
                let cluster = s.cluster();
                let mut c = request_totals(&cluster.requests.exposition());
                // The simulated controllers write to the store directly, not
                // over HTTP: their writes are the stored writes no HTTP write
                // made, by resource.
                let http = cluster.requests.http_writes();
                for (resource, n) in cluster.requests.stored() {
                    let internal = n.saturating_sub(http.get(&resource).copied().unwrap_or(0));
                    c.by.insert(format!("{SIMULATED} {resource}"), internal);
                }
                Some(c)
            }
            Kind::Cluster { .. } => {
                let req = http::Request::get("/metrics").body(Vec::new()).ok()?;
                match self.client.request_text(req).await {
                    Ok(text) => Some(request_totals(&text)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the API server's /metrics: request counts are not reported");
                        None
                    }
                }
            }
        }
    }

    /// On a cluster, deletes the run's Tenants, Templates and namespaces and
    /// waits for them to go (a controller must still run, for the
    /// finalizers), then what the run installed that the cluster did not
    /// have: Paddock's namespaces and CRDs. On kubesim, nothing (it all goes
    /// with it).
    pub async fn cleanup(&self) -> Result<()> {
        match &self.kind {
            Kind::Sim(_) => Ok(()),
            Kind::Cluster { before, .. } => {
                cleanup(&self.client, &self.run).await?;
                uninstall(&self.client, before).await
            }
        }
    }

    /// Ends the run: kubesim stops.
    pub async fn finish(self) -> Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        match self.kind {
            Kind::Sim(sim) => sim.shutdown().await.map_err(|e| anyhow!(e)),
            Kind::Cluster { .. } => Ok(()),
        }
    }
}

/// Deletes what run `run` labelled, Tenants first, and waits (five minutes
/// at most) until they are gone.
async fn cleanup(client: &kube::Client, run: &str) -> Result<()> {
    let lp = ListParams::default().labels(&format!("{BENCH_LABEL}={run}"));
    let dp = DeleteParams::background();
    let tenants: Api<resources::Tenant> = Api::all(client.clone());
    let templates: Api<resources::Template> = Api::all(client.clone());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for t in tenants.list_metadata(&lp).await?.items {
        let name = t.metadata.name.unwrap_or_default();
        tenants.delete(&name, &dp).await.with_context(|| format!("deleting the bench's tenant {name}"))?;
    }
    for ns in namespaces.list_metadata(&lp).await?.items {
        let name = ns.metadata.name.unwrap_or_default();
        namespaces.delete(&name, &dp).await.with_context(|| format!("deleting the bench's namespace {name}"))?;
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    all_gone(&tenants, &lp, "tenants", deadline).await?;
    // Templates last: the instances of the run's tenants are gone with them,
    // and a template in use stays until its last instance is.
    for t in templates.list_metadata(&lp).await?.items {
        let name = t.metadata.name.unwrap_or_default();
        templates.delete(&name, &dp).await.with_context(|| format!("deleting the bench's template {name}"))?;
    }
    all_gone(&templates, &lp, "templates", deadline).await
}

/// Deletes Paddock's namespaces and CRDs the cluster did not have before
/// the run, and waits (five minutes at most) for the namespaces to go.
async fn uninstall(client: &kube::Client, before: &Before) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let dp = DeleteParams::background();
    let settings = controller::config::Settings::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ours: Vec<String> = [settings.system_namespace, settings.pool_namespace]
        .into_iter()
        .filter(|ns| !before.namespaces.contains(ns))
        .collect();
    for ns in &ours {
        match namespaces.delete(ns, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting the namespace {ns} the bench installed")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for ns in &ours {
        while namespaces.get_metadata_opt(ns).await?.is_some() {
            if Instant::now() > deadline {
                bail!("the namespace {ns} the bench installed was not gone within 5 minutes");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in resources::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        if before.crds.contains(&name) {
            continue;
        }
        match crds.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting the CRD {name} the bench installed")),
        }
    }
    Ok(())
}

/// Waits until nothing `lp` selects is left (their finalizers done).
async fn all_gone<K>(api: &Api<K>, lp: &ListParams, what: &str, deadline: Instant) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    loop {
        let left = api.list_metadata(lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let selector = lp.label_selector.clone().unwrap_or_default();
            bail!("{left} of the bench's {what} ({selector}) were not gone within 5 minutes");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Sums `apiserver_request_total` by verb, and by verb and resource, from
/// the Prometheus text format.
fn request_totals(text: &str) -> Counts {
    let mut c = Counts::default();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let label = |name: &str| line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next());
        let Some(verb) = label("verb") else { continue };
        let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let n = n as u64;
        match verb {
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION" => c.writes += n,
            "GET" | "LIST" | "WATCH" => c.reads += n,
            _ => continue,
        }
        if let Some(resource) = label("resource").filter(|r| !r.is_empty()) {
            let key = match label("subresource").filter(|s| !s.is_empty()) {
                Some(sub) => format!("{verb} {resource}/{sub}"),
                None => format!("{verb} {resource}"),
            };
            *c.by.entry(key).or_default() += n;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_totals_by_verb() {
        let text = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 12
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="POST",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="namespace",subresource="",verb="APPLY",version="v1"} 2e+00
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="pods",scope="cluster",subresource="",verb="WATCH",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="nodes",scope="cluster",subresource="",verb="CONNECT",version="v1"} 9
apiserver_request_duration_seconds_count{verb="POST"} 100
"#;
        let c = super::request_totals(text);
        assert_eq!((c.writes, c.reads), (7, 15));
        let by: Vec<(&str, u64)> = c.by.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(by, [("APPLY deployments", 2), ("LIST pods", 12), ("POST pods", 5), ("WATCH pods", 3)]);
    }
}
