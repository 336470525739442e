//! `paddock bench tenants`: tenant provisioning throughput (Tenant created →
//! Ready) and API-server writes per tenant, side by side in one run with the
//! same objects written (a) by `kubectl apply -f` in a loop and (b) by a raw
//! write loop through the kube client at full concurrency — the API server's
//! own limit. The ratios say what Paddock's reconcile costs on top of the
//! writes it has to make anyway.

use super::process::{ControllerProcess, Usage, cluster_with_controller, reconciles, reconciles_per, rss_mib};
use super::target::{BENCH_LABEL, Target, TargetArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::SimConfig;
use resources::Tenant;
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TenantsBenchArgs {
    /// Tenants provisioned by Paddock, and written by the raw loop.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Tenants written by `kubectl apply -f` (one process per tenant, so slow);
    /// 0 skips it. kubectl must be on PATH.
    #[arg(long, default_value_t = 20)]
    pub kubectl_count: usize,
    /// Requests in flight in the raw write loop.
    #[arg(long, default_value_t = 64)]
    pub raw_concurrency: usize,
}

#[derive(Serialize)]
struct Way {
    tenants: usize,
    seconds: f64,
    tenants_per_second: f64,
    /// Requests that changed something on the API server (POST, PUT, PATCH, DELETE), per tenant
    /// (absent when a cluster's API server does not show its metrics).
    writes_per_tenant: Option<f64>,
    /// Those writes per second: how close this way drives the API server to
    /// its write rate (the raw loop's).
    writes_per_second: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    /// kubesim, or the cluster benchmarked.
    target: String,
    paddock: Way,
    raw: Way,
    kubectl: Option<Way>,
    /// Paddock's throughput over the raw loop's (target ≥ 0.8).
    paddock_over_raw: f64,
    /// Paddock's API-server writes per second over the raw loop's: how close
    /// it drives the API server to its write rate. (The tenant ratio is this
    /// times the raw loop's writes per tenant over Paddock's.)
    write_rate_over_raw: Option<f64>,
    /// Tenant reconciles per tenant while they were provisioned (none with
    /// `--installed-controller`).
    reconciles_per_tenant: Option<f64>,
    paddock_over_kubectl: Option<f64>,
    /// What provisioning a tenant cost the API server: Paddock's requests
    /// per tenant (none with `--installed-controller`) and the server's others.
    requests_per_tenant: Option<super::cost::Cost>,
    /// The controller process this run started (none with `--installed-controller`).
    controller: Option<Usage>,
    bench_process_rss_mib: Option<f64>,
}

/// The controller process's requests so far (None without one).
async fn requests_of(controller: Option<&ControllerProcess>) -> Option<controller::requests::Snapshot> {
    controller?.requests().await
}

fn spec() -> serde_json::Value {
    json!({"kind": "Team", "storage": {"enabled": false}, "quota": {"instances": 10, "pods": 20}})
}

/// API-server writes so far (None when the cluster does not show them).
async fn writes(target: &Target) -> Option<u64> {
    target.counts().await.map(|c| c.writes)
}

fn way(tenants: usize, elapsed: Duration, before: Option<u64>, after: Option<u64>) -> Way {
    let seconds = elapsed.as_secs_f64();
    let writes = before.zip(after).map(|(b, a)| a.saturating_sub(b) as f64);
    Way {
        tenants,
        seconds,
        tenants_per_second: tenants as f64 / seconds.max(1e-9),
        writes_per_tenant: writes.map(|w| w / tenants.max(1) as f64),
        writes_per_second: writes.map(|w| w / seconds.max(1e-9)),
    }
}

pub async fn run(args: TenantsBenchArgs, target: &TargetArgs, as_json: bool) -> Result<()> {
    if !(1..=10_000).contains(&args.count) || args.kubectl_count > 1000 || !(1..=1024).contains(&args.raw_concurrency) {
        bail!("--count must be 1..=10000, --kubectl-count 0..=1000 and --raw-concurrency 1..=1024");
    }
    let (target, mut controller) = cluster_with_controller(target, SimConfig::default()).await?;
    let measured = measure(&args, &target, &mut controller).await;
    let finished = super::process::finish(target, controller).await;
    let report = measured?;
    finished?;
    super::emit(&report, as_json, table)
}

async fn measure(
    args: &TenantsBenchArgs,
    target: &Target,
    controller: &mut Option<ControllerProcess>,
) -> Result<Report> {
    let client = target.client.clone();
    let settings = controller::config::Settings::default();
    let run = target.run.clone();

    // (1) Paddock: Tenants created at once, until a watch has seen every one
    // Ready (a watch rather than polling lists, so reading the result costs
    // the API server no more than the raw loop's nothing).
    let tenants: Api<Tenant> = Api::all(client.clone());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watch = {
        let tenants = tenants.clone();
        let wc = watcher::Config::default().labels(&format!("{BENCH_LABEL}={run}"));
        let mut s = super::resuming("tenants", watcher(tenants, wc).default_backoff().applied_objects()).boxed();
        tokio::spawn(async move {
            let mut ready = std::collections::HashSet::new();
            while let Some(t) = s.next().await {
                if t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")
                    && ready.insert(t.metadata.name.unwrap_or_default())
                {
                    let _ = ready_tx.send(());
                }
            }
        })
    };
    let r0 = reconciles(controller.as_ref(), "tenant").await;
    let (q0, c0) = (requests_of(controller.as_ref()).await, target.counts().await);
    let (w0, t0) = (writes(target).await, Instant::now());
    let creates = (0..args.count).map(|i| {
        let (tenants, run) = (tenants.clone(), run.clone());
        async move {
            let t: Tenant = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
                "metadata": {"name": format!("{run}-p{i}"), "labels": {BENCH_LABEL: run}}, "spec": spec()}))?;
            tenants.create(&PostParams::default(), &t).await.context("creating a Tenant")?;
            anyhow::Ok(())
        }
    });
    let results: Vec<Result<()>> =
        futures::stream::iter(creates).buffer_unordered(args.raw_concurrency).collect().await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let mut ready = 0;
    while ready < args.count {
        match tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            _ => bail!("only {ready} of {} tenants were Ready (waited 60 s for the next)", args.count),
        }
    }
    watch.abort();
    let elapsed = t0.elapsed();
    let paddock = way(args.count, elapsed, w0, writes(target).await);
    let reconciles_per_tenant = reconciles_per(controller.as_ref(), "tenant", r0, args.count).await;
    let requests_per_tenant = super::cost::of_process(
        args.count,
        q0,
        requests_of(controller.as_ref()).await,
        c0.as_ref().zip(target.counts().await.as_ref()),
    );
    // Let the controller settle (Events, watch-triggered re-reconciles) before the
    // other two run, so they are not measured against its leftover work.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let usage = match controller.as_ref() {
        Some(c) => Some(c.usage().await),
        None => None,
    };

    // The same objects for other names, without owner references (their Tenant does not exist).
    let objects = |name: &str| -> Result<Vec<serde_json::Value>> {
        let t: Tenant = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "uid": "00000000-0000-0000-0000-000000000000"}, "spec": spec()}))?;
        let d = controller::tenant::build::build(&t, &settings)
            .map_err(|p| anyhow::anyhow!("cannot build the tenant's objects: {p:?}"))?;
        let mut ns = serde_json::to_value(&d.namespace)?;
        // On a cluster the run's cleanup finds the namespace (and all in it) by this label.
        ns["metadata"]["labels"][BENCH_LABEL] = json!(run);
        let mut all = vec![ns];
        for p in &d.policies {
            all.push(serde_json::to_value(p)?);
        }
        all.extend(d.quota.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?);
        all.push(serde_json::to_value(&d.limits)?);
        all.push(serde_json::to_value(&d.service_account)?);
        all.push(serde_json::to_value(&d.role)?);
        all.push(serde_json::to_value(&d.role_binding)?);
        for o in &mut all {
            if let Some(m) = o["metadata"].as_object_mut() {
                m.remove("ownerReferences");
            }
        }
        Ok(all)
    };

    // (2) The raw loop: namespace first, then the rest, tenants concurrently
    // (the controller stopped, so that it does not share the machine).
    if let Some(c) = controller.as_ref() {
        c.stop();
    }
    let (w0, t0) = (writes(target).await, Instant::now());
    let writes_of = (0..args.count).map(|i| {
        let (client, objs) = (client.clone(), objects(&format!("{run}-r{i}")));
        async move { apply_all(&client, objs?).await }
    });
    let results: Vec<Result<()>> =
        futures::stream::iter(writes_of).buffer_unordered(args.raw_concurrency).collect().await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    let elapsed = t0.elapsed();
    let raw = way(args.count, elapsed, w0, writes(target).await);

    // (3) kubectl apply -f, one tenant's file at a time.
    let kubectl = if args.kubectl_count > 0 { kubectl_loop(target, args.kubectl_count, &objects).await? } else { None };
    // A cluster's cleanup needs the controller (its finalizers).
    if target.sim().is_none() && controller.is_some() {
        *controller = Some(ControllerProcess::start(target).await?);
    }

    Ok(Report {
        target: target.describe(),
        paddock_over_raw: paddock.tenants_per_second / raw.tenants_per_second.max(1e-9),
        write_rate_over_raw: paddock.writes_per_second.zip(raw.writes_per_second).map(|(p, r)| p / r.max(1e-9)),
        reconciles_per_tenant,
        requests_per_tenant,
        paddock_over_kubectl: kubectl.as_ref().map(|k| paddock.tenants_per_second / k.tenants_per_second.max(1e-9)),
        paddock,
        raw,
        kubectl,
        controller: usage,
        bench_process_rss_mib: rss_mib(),
    })
}

/// Server-side applies one tenant's objects: the namespace, then the rest at once.
async fn apply_all(client: &kube::Client, objs: Vec<serde_json::Value>) -> Result<()> {
    let pp = PatchParams::apply("paddock-bench-raw").force();
    let mut it = objs.into_iter();
    let Some(ns) = it.next() else { return Ok(()) };
    apply(client, &pp, ns).await?;
    let rest: Vec<_> = it.map(|o| apply(client, &pp, o)).collect();
    futures::future::try_join_all(rest).await?;
    Ok(())
}

async fn apply(client: &kube::Client, pp: &PatchParams, obj: serde_json::Value) -> Result<()> {
    let (api_version, kind) = (obj["apiVersion"].as_str().unwrap_or(""), obj["kind"].as_str().unwrap_or(""));
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Namespace" => "namespaces",
        "NetworkPolicy" => "networkpolicies",
        "ResourceQuota" => "resourcequotas",
        "LimitRange" => "limitranges",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => bail!("the raw loop does not know the kind {other}"),
    };
    let ar = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(&name, pp, &Patch::Apply(&obj)).await.with_context(|| format!("applying {kind} {name}"))?;
    Ok(())
}

async fn kubectl_loop(
    target: &Target,
    count: usize,
    objects: &dyn Fn(&str) -> Result<Vec<serde_json::Value>>,
) -> Result<Option<Way>> {
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        tracing::warn!("kubectl is not on PATH: the kubectl comparison is skipped");
        return Ok(None);
    }
    let mut files = Vec::new();
    for i in 0..count {
        let docs: Vec<String> =
            objects(&format!("{}-k{i}", target.run))?.iter().map(serde_yaml_ng::to_string).collect::<Result<_, _>>()?;
        let f = target.dir.join(format!("k{i}.yaml"));
        std::fs::write(&f, docs.join("---\n"))?;
        files.push(f);
    }
    let (w0, t0) = (writes(target).await, Instant::now());
    for f in &files {
        let out = tokio::process::Command::new("kubectl")
            .args(target.kube_args())
            .args(["apply", "--server-side", "--field-manager", "paddock-bench-kubectl", "-f"])
            .arg(f)
            .output()
            .await?;
        if !out.status.success() {
            bail!("kubectl apply -f {}: {}", f.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    let elapsed = t0.elapsed();
    Ok(Some(way(count, elapsed, w0, writes(target).await)))
}

fn table(out: &mut dyn Write, r: &Report) -> Result<()> {
    let ctl = if r.controller.is_some() { "the controller as its own process" } else { "the installed controller" };
    writeln!(out, "paddock bench tenants ({}; {ctl})", r.target)?;
    writeln!(
        out,
        "{:<34} {:>8} {:>10} {:>12} {:>14} {:>10}",
        "way", "tenants", "seconds", "tenants/s", "writes/tenant", "writes/s"
    )?;
    let mut row = |what: &str, w: &Way| {
        let writes = w.writes_per_tenant.map_or_else(|| "n/a".to_string(), |x| format!("{x:.1}"));
        let rate = w.writes_per_second.map_or_else(|| "n/a".to_string(), |x| format!("{x:.0}"));
        writeln!(
            out,
            "{what:<34} {:>8} {:>10.2} {:>12.1} {writes:>14} {rate:>10}",
            w.tenants, w.seconds, w.tenants_per_second
        )
    };
    row("paddock: Tenant created → Ready", &r.paddock)?;
    row("raw write loop (kube client)", &r.raw)?;
    if let Some(k) = &r.kubectl {
        row("kubectl apply -f, one per tenant", k)?;
    }
    writeln!(out, "paddock / raw loop: {:.2} (target ≥ 0.8)", r.paddock_over_raw)?;
    if let (Some(rate), Some(pw), Some(rw)) =
        (r.write_rate_over_raw, r.paddock.writes_per_tenant, r.raw.writes_per_tenant)
    {
        writeln!(
            out,
            "API-server writes per second, paddock / raw loop: {rate:.2}; at equal rates the tenant ratio would be \
             {rw:.1} / {pw:.1} writes per tenant = {:.2}",
            rw / pw.max(1e-9)
        )?;
    }
    if let Some(x) = r.reconciles_per_tenant {
        writeln!(out, "tenant reconciles per tenant: {x:.1}")?;
    }
    if let Some(c) = &r.requests_per_tenant {
        c.line(out, "tenant")?;
    }
    if let Some(x) = r.paddock_over_kubectl {
        writeln!(out, "paddock / kubectl loop: {x:.1}")?;
    }
    if let Some(c) = &r.controller {
        writeln!(out, "controller process: {c}")?;
    }
    Ok(())
}
