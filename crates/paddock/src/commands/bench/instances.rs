//! `paddock bench instances`: cold starts (Instance created → Running, seen
//! on a watch) at a given concurrency, their throughput, and the controller's
//! memory and CPU once all of them run — `--count 10000` is the memory
//! figure at ten thousand instances. The controller runs as its own process
//! against kubesim (or the cluster given with `--kubeconfig`), so its memory
//! is its own.

use super::process::{ControllerProcess, Usage, cluster_with_controller, reconciles, reconciles_per};
use super::stats::{Summary, summarize};
use super::target::{BENCH_LABEL, Target, TargetArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::{SimConfig, config};
use resources::{Instance, InstancePhase};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct InstancesBenchArgs {
    /// Instances started in all (they all stay up to the end).
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
}

#[derive(Serialize)]
struct Report {
    /// kubesim, or the cluster benchmarked.
    target: String,
    count: usize,
    concurrency: usize,
    /// Instance created → phase Running seen on a watch.
    start: Summary,
    /// Instances Running per second, first create to last Running.
    starts_per_second: f64,
    /// API-server requests per instance from the first create to the last
    /// Running (the benchmark's own creates and watch included; absent when a
    /// cluster's API server does not show its metrics).
    writes_per_instance: Option<f64>,
    reads_per_instance: Option<f64>,
    /// Instance reconciles per instance over the same span (none with
    /// `--installed-controller`).
    reconciles_per_instance: Option<f64>,
    /// Paddock's requests per instance and the API server's others over the
    /// same span (none with `--installed-controller`).
    requests_per_instance: Option<super::cost::Cost>,
    /// The controller process once every instance runs (and after a settle);
    /// none with `--installed-controller`.
    controller: Option<Usage>,
}

const NODE: &str = "cpu=512,memory=4Ti,pods=2000,label=paddock.dev/node-role=task";

pub async fn run(args: InstancesBenchArgs, target: &TargetArgs, as_json: bool) -> Result<()> {
    if !(1..=20_000).contains(&args.count) || !(1..=1000).contains(&args.concurrency) {
        bail!("--count must be 1..=20000 and --concurrency 1..=1000");
    }
    let image = target.image()?.to_string();
    let nodes = (1..=args.count.div_ceil(1500).max(2)).map(|i| format!("task-{i},{NODE}")).collect::<Vec<_>>();
    let cfg = SimConfig {
        nodes: config::parse_nodes(&nodes.join(";")).map_err(|e| anyhow::anyhow!(e))?,
        ..SimConfig::default()
    };
    let (target, controller) = cluster_with_controller(target, cfg).await?;
    let measured = measure(&args, &image, &target, controller.as_ref()).await;
    let finished = super::process::finish(target, controller).await;
    let report = measured?;
    finished?;
    super::emit(&report, as_json, table)
}

async fn measure(
    args: &InstancesBenchArgs,
    image: &str,
    target: &Target,
    controller: Option<&ControllerProcess>,
) -> Result<Report> {
    let client = target.client.clone();
    let settings = controller::config::Settings::default();
    let pp = PatchParams::apply("paddock-bench").force();
    let (run, template_name) = (target.run.as_str(), format!("{}-web", target.run));
    let tenant = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": run, "labels": {BENCH_LABEL: run}},
        "spec": {"kind": "Team", "storage": {"enabled": false}, "quota": {"instances": 100000, "pods": 100000}}});
    Api::<resources::Tenant>::all(client.clone()).patch(run, &pp, &Patch::Apply(&tenant)).await?;
    let template = json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template",
        "metadata": {"name": template_name, "labels": {BENCH_LABEL: run}},
        "spec": {"maxPerTenant": 100000,
            "pods": [{"name": "web", "image": image, "ports": [{"name": "http", "port": 80}]}]}});
    Api::<resources::Template>::all(client.clone()).patch(&template_name, &pp, &Patch::Apply(&template)).await?;
    let ns = resources::vocabulary::tenant_namespace(&settings.namespace_prefix, run);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Api::<resources::Tenant>::all(client.clone()).get(run).await?.status.and_then(|s| s.phase).as_deref()
        != Some("Ready")
    {
        if Instant::now() > deadline {
            bail!("the bench tenant {run} was not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Running as the watch sees it.
    let insts: Api<Instance> = Api::namespaced(client.clone(), &ns);
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watch = {
        let (running, insts) = (running.clone(), insts.clone());
        tokio::spawn(async move {
            let mut s = super::resuming(
                "instances",
                watcher(insts, watcher::Config::default()).default_backoff().applied_objects(),
            )
            .boxed();
            while let Some(i) = s.next().await {
                if i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running) {
                    let name = i.metadata.name.unwrap_or_default();
                    let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                    if let std::collections::hash_map::Entry::Vacant(e) = r.entry(name) {
                        e.insert(Instant::now());
                        let _ = tx.send(());
                    }
                }
            }
        })
    };
    let r0 = reconciles(controller, "instance").await;
    let q0 = match controller {
        Some(c) => c.requests().await,
        None => None,
    };
    let (c0, t0) = (target.counts().await, Instant::now());
    let creates = (0..args.count).map(|n| {
        let (insts, template_name) = (insts.clone(), template_name.clone());
        async move {
            let i: Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
                "metadata": {"name": format!("i{n}")}, "spec": {"template": template_name}}))?;
            let sent = Instant::now();
            insts.create(&PostParams::default(), &i).await.context("creating an Instance")?;
            anyhow::Ok((format!("i{n}"), sent))
        }
    });
    let created: Vec<Result<(String, Instant)>> =
        futures::stream::iter(creates).buffer_unordered(args.concurrency).collect().await;
    let created: HashMap<String, Instant> = created.into_iter().collect::<Result<_>>()?;
    let limit = Duration::from_secs(60 + args.count as u64 / 10);
    let mut seen = 0;
    while seen < args.count {
        match tokio::time::timeout(limit, rx.recv()).await {
            Ok(Some(())) => seen += 1,
            _ => bail!("only {seen} of {} instances were Running (waited {limit:?} for the next)", args.count),
        }
    }
    let all_running = t0.elapsed();
    let per = |n: u64| n as f64 / args.count as f64;
    let counts = c0.zip(target.counts().await);
    let writes = counts.as_ref().map(|(a, b)| per(b.writes.saturating_sub(a.writes)));
    let reads = counts.as_ref().map(|(a, b)| per(b.reads.saturating_sub(a.reads)));
    let q1 = match controller {
        Some(c) => c.requests().await,
        None => None,
    };
    let requests_per_instance = super::cost::of_process(args.count, q0, q1, counts.as_ref().map(|(a, b)| (a, b)));
    let per_instance = reconciles_per(controller, "instance", r0, args.count).await;
    watch.abort();
    let mut lat: Vec<Duration> = {
        let r = running.lock().unwrap_or_else(|e| e.into_inner());
        created.iter().filter_map(|(n, sent)| r.get(n).map(|at| at.saturating_duration_since(*sent))).collect()
    };
    // The controller's caches and queues settle before its memory is read.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Report {
        target: target.describe(),
        count: args.count,
        concurrency: args.concurrency,
        start: summarize(&mut lat),
        starts_per_second: args.count as f64 / all_running.as_secs_f64().max(1e-9),
        writes_per_instance: writes,
        reads_per_instance: reads,
        reconciles_per_instance: per_instance,
        requests_per_instance,
        controller: match controller {
            Some(c) => Some(c.usage().await),
            None => None,
        },
    })
}

fn table(out: &mut dyn Write, r: &Report) -> Result<()> {
    let s = &r.start;
    let ctl = if r.controller.is_some() { "the controller as its own process" } else { "the installed controller" };
    writeln!(out, "paddock bench instances ({}; {ctl})", r.target)?;
    writeln!(
        out,
        "{} cold starts, {} in flight: created → Running p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.count, r.concurrency, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
    )?;
    writeln!(out, "throughput: {:.1} instances Running per second", r.starts_per_second)?;
    if let (Some(w), Some(rd)) = (r.writes_per_instance, r.reads_per_instance) {
        writeln!(out, "API-server requests per instance: {w:.1} writes, {rd:.1} reads")?;
    }
    if let Some(x) = r.reconciles_per_instance {
        writeln!(out, "instance reconciles per instance: {x:.1}")?;
    }
    if let Some(c) = &r.requests_per_instance {
        c.line(out, "cold start")?;
    }
    if let Some(c) = &r.controller {
        writeln!(out, "controller process with {} instances: {c}", r.count)?;
    }
    Ok(())
}
