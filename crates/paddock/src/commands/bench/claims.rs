//! `paddock bench claims`: warm-pool claims on the in-process platform —
//! claim latency (POST → Running seen on the SSE stream) for warm and cold
//! starts at a steady rate, the refill rate, and the most pool pods that
//! ever existed against `size + maxUnready`.

use super::cost::{ALL, ByRequest, Cost, minus, paddock_of};
use super::process::WholeProcess;
use super::stage::Stage;
use super::stats::{Summary, summarize};
use super::target::TargetArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use resources::{Instance, InstancePhase};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ClaimsBenchArgs {
    /// Instances started per second.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Instances started in all.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// The pool's size.
    #[arg(long, default_value_t = 100)]
    pub pool_size: u32,
    /// The pool's maxUnready.
    #[arg(long, default_value_t = 50)]
    pub max_unready: u32,
}

/// The most pool pods at once, the pod names seen, and when new ones appeared.
/// What the pool pod watch saw.
#[derive(Default)]
struct Seen {
    /// The most unclaimed pool pods at once.
    most: usize,
    /// Every unclaimed pool pod's name, and when each new one appeared.
    names: HashSet<String>,
    new_at: Vec<Instant>,
    /// Unclaimed pool pods after each change.
    counts: Vec<(Instant, usize)>,
}

/// Width of a step of `pool_pods_over_time`.
const STEP: Duration = Duration::from_millis(100);

/// The fewest and the most unclaimed pool pods in each STEP from `from`, as
/// (seconds, fewest, most).
fn over_time(counts: &[(Instant, usize)], from: Instant, until: Instant) -> Vec<(f64, usize, usize)> {
    let steps = (until.saturating_duration_since(from).as_millis() / STEP.as_millis()) as usize + 1;
    let mut out = Vec::with_capacity(steps);
    // What held at the start of each step (none before the first count).
    let mut last = counts.iter().take_while(|(at, _)| *at < from).last().map(|(_, n)| *n);
    for k in 0..steps {
        let (lo, hi) = (from + STEP * k as u32, from + STEP * (k as u32 + 1));
        let mut range = last.map(|n| (n, n));
        for (_, n) in counts.iter().filter(|(at, _)| *at >= lo && *at < hi) {
            range = Some(range.map_or((*n, *n), |(a, b)| (a.min(*n), b.max(*n))));
            last = Some(*n);
        }
        if let Some((fewest, most)) = range {
            out.push(((STEP * k as u32).as_secs_f64(), fewest, most));
        }
    }
    out
}

#[derive(Serialize)]
struct Report {
    /// kubesim, or the cluster benchmarked.
    target: String,
    rate: u32,
    count: usize,
    pool_size: u32,
    max_unready: u32,
    warm: Summary,
    cold: Summary,
    /// Pool pods created per second while claims arrive at `rate` (first to
    /// last new pod seen): at most about the claim rate, since a refill
    /// replaces what was claimed.
    refill_pods_per_second: f64,
    /// Refill capacity: after `pool_size` claims at once emptied the pool,
    /// the replacements created per second (burst → the last replacement seen).
    burst_refill_pods_per_second: f64,
    /// Burst → the pool reported full (`status.pool.ready == size`) again.
    burst_refill_seconds: f64,
    /// Burst claims that took a warm set (the others found the pool not yet
    /// full again and started cold).
    burst_warm_claims: usize,
    /// The most pool pods (unclaimed, terminating included) seen at once.
    max_pool_pods: usize,
    /// Unclaimed pool pods over time, from the first claim to the refill
    /// after the burst: (seconds, the fewest and the most in each 100 ms).
    pool_pods_over_time: Vec<(f64, usize, usize)>,
    /// Image pull of cold starts (pod scheduled → images pulled) of an image
    /// new to the nodes, and of one a prepull DaemonSet pulled beforehand.
    /// (kubesim only: on a cluster the nodes' images are not known).
    pull_without_prepull: Option<Summary>,
    pull_with_prepull: Option<Summary>,
    /// What the starts at `rate` cost the API server, per start (the
    /// cluster's other requests in the same time included: the refill's
    /// scheduling and kubelet updates are among them).
    requests_per_warm_claim: Cost,
    /// Paddock's requests per pool pod created while claims arrived.
    requests_per_refill_pod: Cost,
    /// Paddock's requests per cold start of the same pod (no pool), started
    /// [`COLD`] at once.
    requests_per_cold_start: Cost,
    /// The same starts with no Paddock in the path, on the same API server
    /// at the same rate: the writes a claim needs and nothing else.
    raw_floor: RawFloor,
    #[serde(flatten)]
    process: WholeProcess,
}

/// The raw loops' latency, and Paddock's warm starts over it.
#[derive(Serialize)]
struct RawFloor {
    /// Per start: create a ConfigMap (the request), relabel a Ready
    /// pre-created pod (the claim), update the ConfigMap (the status), one
    /// after the other, with the kube client.
    latency: Summary,
    /// Paddock's warm p50 and p99 over the raw loop's (goal: p99 ≤ 1.5).
    paddock_p50_over_raw: f64,
    paddock_p99_over_raw: f64,
    /// The same loop that also creates a replacement pod per start, as any
    /// warm pool must to stay full (not waited for): the API server then
    /// also serves what a new pod costs the cluster (its scheduling, its
    /// kubelet's status updates and Events).
    with_refill: Summary,
    paddock_p50_over_raw_with_refill: f64,
    paddock_p99_over_raw_with_refill: f64,
}

/// Cold starts measured for their requests.
const COLD: usize = 20;
/// The components whose requests a start makes: the API's create and the
/// instance reconciler's claim or pods, status and Events.
const START: &[&str] = &["api", "instance"];

pub async fn run(args: ClaimsBenchArgs, target: &TargetArgs, as_json: bool) -> Result<()> {
    if !(1..=10_000).contains(&args.rate) || !(1..=10_000).contains(&args.count) {
        bail!("--rate must be 1..=10000 and --count 1..=10000");
    }
    if !(1..=1000).contains(&args.pool_size) || !(1..=1000).contains(&args.max_unready) {
        bail!("--pool-size and --max-unready must be 1..=1000");
    }
    let spec = json!({"maxPerTenant": 100000,
        "warmPool": {"size": args.pool_size, "maxUnready": args.max_unready, "refillPerSecond": 1000},
        "pods": [{"name": "web", "image": target.image()?, "ports": [{"name": "http", "port": 80}]}]});
    let image = target.image()?.to_string();
    let report = Stage::measure(target, spec, async |p| measure(&args, &image, p).await).await?;
    super::emit(&report, as_json, table)
}

async fn measure(args: &ClaimsBenchArgs, image: &str, p: &Stage) -> Result<Report> {
    let http = &p.http;
    let template_path = format!("/v1/templates/{}", p.template);
    // The pool fills first.
    let full = Some(u64::from(args.pool_size));
    p.poll(&template_path, Duration::from_secs(120), "the pool to fill", |t| {
        t["status"]["pool"]["ready"].as_u64() == full
    })
    .await?;
    // Pool pods over time: the most unclaimed at once, and when new ones
    // appear. Seen on a metadata watch (not by polling lists, which would put
    // the benchmark's own reads on the API server it measures).
    let pods: Api<Pod> = Api::namespaced(p.client.clone(), &p.pool_namespace);
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let lp = ListParams::default().labels(&format!("paddock.dev/pool={},!paddock.dev/claim", p.template));
    let first: HashSet<String> =
        pods.list_metadata(&lp).await?.items.into_iter().filter_map(|m| m.metadata.name).collect();
    seen.lock().unwrap_or_else(|e| e.into_inner()).names = first;
    let sampler = {
        let seen = seen.clone();
        let wc = watcher::Config::default().labels(&format!("paddock.dev/pool={}", p.template));
        let metas: Api<PartialObjectMeta<Pod>> = Api::namespaced(p.client.clone(), &p.pool_namespace);
        let mut events = super::resuming("pool pods", watcher::watcher(metas, wc).default_backoff()).boxed();
        tokio::spawn(async move {
            // Pod name → claimed.
            let mut pool: HashMap<String, bool> = HashMap::new();
            // Counts are kept once the watch has listed every pod (not while a list arrives).
            let mut listed = false;
            while let Some(ev) = events.next().await {
                let now = Instant::now();
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    watcher::Event::Apply(m) | watcher::Event::InitApply(m) => {
                        let claimed =
                            m.metadata.labels.as_ref().is_some_and(|l| l.contains_key(resources::vocabulary::CLAIM));
                        let name = m.metadata.name.unwrap_or_default();
                        if !claimed && s.names.insert(name.clone()) {
                            s.new_at.push(now);
                        }
                        pool.insert(name, claimed);
                    }
                    watcher::Event::Delete(m) => {
                        pool.remove(&m.metadata.name.unwrap_or_default());
                    }
                    watcher::Event::Init => {
                        pool.clear();
                        listed = false;
                    }
                    watcher::Event::InitDone => listed = true,
                }
                let unclaimed = pool.values().filter(|c| !**c).count();
                s.most = s.most.max(unclaimed);
                if listed {
                    s.counts.push((now, unclaimed));
                }
            }
        })
    };
    let resp = http
        .get(p.url(&format!("/v1/tenants/{}/events", p.tenant)))
        .bearer_auth(&p.admin_token)
        .send()
        .await?
        .error_for_status()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool, Instant)>();
    let reader = tokio::spawn(async move {
        let mut s = resp.bytes_stream().eventsource();
        while let Some(Ok(e)) = s.next().await {
            let now = Instant::now();
            if e.event == "status" && e.data.contains("\"phase\":\"Running\"") {
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
                let name = v["instance"]["name"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((name, v["instance"]["status"]["warm"] == json!(true), now));
            }
        }
    });
    let (snap0, server0) = (p.requests().snapshot(), p.target.counts().await);
    let pods0 = seen.lock().unwrap_or_else(|e| e.into_inner()).new_at.len();
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let started = Instant::now();
    let mut posts = Vec::new();
    for k in 0..args.count {
        tokio::time::sleep_until((started + every * k as u32).into()).await;
        let req = http
            .post(p.url(&format!("/v1/tenants/{}/instances", p.tenant)))
            .bearer_auth(&p.admin_token)
            .json(&json!({"template": p.template, "name": format!("c-{k}")}));
        posts.push(tokio::spawn(async move {
            let sent = Instant::now();
            (sent, req.send().await.map(|r| r.status()))
        }));
    }
    let mut sent_at = HashMap::new();
    for (k, h) in posts.into_iter().enumerate() {
        let (sent, status) = h.await?;
        let status = status.context("POST failed")?;
        if status != reqwest::StatusCode::CREATED {
            bail!("starting c-{k}: the API answered {status}");
        }
        sent_at.insert(format!("c-{k}"), sent);
    }
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(300);
    while !sent_at.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((name, is_warm, at))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("{} instances were not Running within 300s", sent_at.len());
        };
        if let Some(sent) = sent_at.remove(&name) {
            if is_warm { warm.push(at - sent) } else { cold.push(at - sent) }
        }
    }
    // Let the refill finish, then read the sampler.
    p.poll(&template_path, Duration::from_secs(120), "the pool to refill", |t| {
        t["status"]["pool"]["ready"].as_u64() == full
    })
    .await?;
    let (snap1, server1) = (p.requests().snapshot(), p.target.counts().await);
    let times = seen.lock().unwrap_or_else(|e| e.into_inner()).new_at.clone();
    let all = minus(&paddock_of(&snap1, ALL), &paddock_of(&snap0, ALL));
    let servers = server0.as_ref().zip(server1.as_ref());
    let starts = minus(&paddock_of(&snap1, START), &paddock_of(&snap0, START));
    let requests_per_warm_claim = Cost::of(args.count, &starts, &all, servers);
    let refills = minus(&paddock_of(&snap1, &["pool"]), &paddock_of(&snap0, &["pool"]));
    let requests_per_refill_pod = Cost::of(times.len().saturating_sub(pods0), &refills, &all, None);
    let refill = match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 && b > a => times.len() as f64 / (*b - *a).as_secs_f64(),
        _ => 0.0,
    };

    // Refill capacity: the whole pool claimed at once, then replaced.
    let burst = Instant::now();
    let before = seen.lock().unwrap_or_else(|e| e.into_inner()).new_at.len();
    let posts: Vec<_> = (0..args.pool_size)
        .map(|k| {
            http.post(p.url(&format!("/v1/tenants/{}/instances", p.tenant)))
                .bearer_auth(&p.admin_token)
                .json(&json!({"template": p.template, "name": format!("b-{k}")}))
                .send()
        })
        .collect();
    for r in futures::future::join_all(posts).await {
        let status = r.context("POST failed")?.status();
        if status != reqwest::StatusCode::CREATED {
            bail!("starting a burst claim: the API answered {status}");
        }
    }
    // Which burst claims took a warm set, from the stream (a claim finding the
    // pool not yet full again starts cold, and gets no replacement).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut burst_running = HashSet::new();
    let mut burst_warm = 0;
    while burst_running.len() < args.pool_size as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((name, is_warm, _))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("{} of {} burst claims were Running within 120 s", burst_running.len(), args.pool_size);
        };
        if name.starts_with("b-") && burst_running.insert(name) && is_warm {
            burst_warm += 1;
        }
    }
    // Every replacement seen on the pod watch (the template's status may lag), then the pool Ready.
    while seen.lock().unwrap_or_else(|e| e.into_inner()).new_at.len() < before + burst_warm {
        if Instant::now() > deadline {
            bail!("the pool did not create {burst_warm} replacements within 120 s of the burst");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    p.poll(&template_path, Duration::from_secs(120), "the pool to refill after a burst", |t| {
        t["status"]["pool"]["ready"].as_u64() == full
    })
    .await?;
    let burst_refill_seconds = burst.elapsed().as_secs_f64();
    sampler.abort();
    let requests_per_cold_start = cold_cost(p, image, &mut rx).await?;
    reader.abort();
    let warm_summary = summarize(&mut warm);
    let (raw, with_refill) = raw_floor(p, args, image).await?;
    let raw_floor = RawFloor {
        paddock_p50_over_raw: warm_summary.p50_ms / raw.p50_ms.max(1e-9),
        paddock_p99_over_raw: warm_summary.p99_ms / raw.p99_ms.max(1e-9),
        latency: raw,
        paddock_p50_over_raw_with_refill: warm_summary.p50_ms / with_refill.p50_ms.max(1e-9),
        paddock_p99_over_raw_with_refill: warm_summary.p99_ms / with_refill.p99_ms.max(1e-9),
        with_refill,
    };
    let (max_pool_pods, times, pool_pods_over_time) = {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        (s.most, s.new_at.clone(), over_time(&s.counts, started, Instant::now()))
    };
    let replaced = &times[before.min(times.len())..];
    let burst_refill = match replaced.last() {
        Some(last) if *last > burst => replaced.len() as f64 / (*last - burst).as_secs_f64(),
        _ => 0.0,
    };
    // Only kubesim knows no node has these images yet.
    let (pull_without_prepull, pull_with_prepull) = match p.target.sim() {
        Some(_) => {
            let (a, b) = prepull_benefit(p, 10).await?;
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    Ok(Report {
        target: p.target.describe(),
        rate: args.rate,
        count: args.count,
        pool_size: args.pool_size,
        max_unready: args.max_unready,
        warm: warm_summary,
        cold: summarize(&mut cold),
        refill_pods_per_second: refill,
        burst_refill_pods_per_second: burst_refill,
        burst_refill_seconds,
        burst_warm_claims: burst_warm,
        max_pool_pods,
        pool_pods_over_time,
        pull_without_prepull,
        pull_with_prepull,
        requests_per_warm_claim,
        requests_per_refill_pod,
        requests_per_cold_start,
        raw_floor,
        process: WholeProcess::now(),
    })
}

/// Paddock's requests of `components` once they have not changed for half
/// a second (at most ten seconds): what a start set going has all been sent.
async fn settled(p: &Stage, components: &[&str]) -> ByRequest {
    let mut last = paddock_of(&p.requests().snapshot(), components);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = paddock_of(&p.requests().snapshot(), components);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// [`COLD`] cold starts of the bench's pod (a template without a pool) at
/// once, until Running on the event stream: what each cost.
async fn cold_cost(
    p: &Stage,
    image: &str,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, bool, Instant)>,
) -> Result<Cost> {
    let tpl = format!("{}-cold", p.tenant);
    p.apply_template(
        &tpl,
        json!({"maxPerTenant": 100000,
        "pods": [{"name": "web", "image": image, "ports": [{"name": "http", "port": 80}]}]}),
    )
    .await?;
    p.poll(&format!("/v1/templates/{tpl}"), Duration::from_secs(60), "the cold template to be Accepted", |t| {
        t["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Accepted" && c["status"] == "True"))
    })
    .await?;
    settled(p, ALL).await;
    let (snap0, server0) = (p.requests().snapshot(), p.target.counts().await);
    for k in 0..COLD {
        let r = p
            .http
            .post(p.url(&format!("/v1/tenants/{}/instances", p.tenant)))
            .bearer_auth(&p.admin_token)
            .json(&json!({"template": tpl, "name": format!("cold-{k}")}))
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::CREATED {
            bail!("starting cold-{k}: the API answered {}", r.status());
        }
    }
    let mut running = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.len() < COLD {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((name, _, _))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("{} of {COLD} cold starts were Running within 120 s", running.len());
        };
        if name.starts_with("cold-") {
            running.insert(name);
        }
    }
    settled(p, START).await;
    let (snap1, server1) = (p.requests().snapshot(), p.target.counts().await);
    let starts = minus(&paddock_of(&snap1, START), &paddock_of(&snap0, START));
    let all = minus(&paddock_of(&snap1, ALL), &paddock_of(&snap0, ALL));
    Ok(Cost::of(COLD, &starts, &all, server0.as_ref().zip(server1.as_ref())))
}

/// The floor under a warm claim on this API server: `args.count` starts at
/// `args.rate` made of only the writes a claim needs, one after the other,
/// with no Paddock in the path: create a ConfigMap (standing for the
/// Instance), relabel a Ready pre-created pod (the claim), update the
/// ConfigMap (the status). Then the same with a replacement pod created per
/// start. In a namespace of the run's own.
async fn raw_floor(p: &Stage, args: &ClaimsBenchArgs, image: &str) -> Result<(Summary, Summary)> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams, PostParams};
    let ns = format!("{}-raw", p.target.run);
    let label = json!({super::target::BENCH_LABEL: p.target.run});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": label}});
    Api::<Namespace>::all(p.client.clone())
        .patch(&ns, &PatchParams::apply("paddock-bench").force(), &Patch::Apply(&namespace))
        .await?;
    let pods: Api<Pod> = Api::namespaced(p.client.clone(), &ns);
    let pod = |name: String| -> Result<Pod> {
        Ok(serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": label},
            "spec": {"automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "web", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                        "capabilities": {"drop": ["ALL"]}}}]}}))?)
    };
    // Two loops' worth of Ready pods to claim.
    let creates: Vec<Pod> = (0..2 * args.count).map(|k| pod(format!("raw-{k}"))).collect::<Result<_>>()?;
    let pp = PostParams::default();
    let made: Vec<Result<Pod, kube::Error>> =
        futures::stream::iter(creates.iter().map(|pod| pods.create(&pp, pod))).buffer_unordered(16).collect().await;
    if let Some(Err(e)) = made.into_iter().find(Result::is_err) {
        bail!("the raw loop's pods: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let listed = pods.list(&ListParams::default()).await?.items;
        let ready = listed.iter().filter(|p| controller::pool::claim::is_ready(p)).count();
        if ready == 2 * args.count {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {ready} of the raw loop's {} pods were Ready within 300 s", 2 * args.count);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let plain = raw_loop(p, &ns, args, 0, None).await?;
    let refill = pod(String::new())?;
    let with_refill = raw_loop(p, &ns, args, args.count, Some(refill)).await?;
    Ok((plain, with_refill))
}

/// One raw loop over the pods `raw-<from>…`; with `refill`, a pod like it
/// is created per start too (not waited for).
async fn raw_loop(p: &Stage, ns: &str, args: &ClaimsBenchArgs, from: usize, refill: Option<Pod>) -> Result<Summary> {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Patch, PatchParams, PostParams};
    let pods: Api<Pod> = Api::namespaced(p.client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(p.client.clone(), ns);
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let started = Instant::now();
    let mut runs = Vec::new();
    for k in from..from + args.count {
        tokio::time::sleep_until((started + every * (k - from) as u32).into()).await;
        let (pods, cms, refill) = (pods.clone(), cms.clone(), refill.clone());
        runs.push(tokio::spawn(async move {
            let sent = Instant::now();
            let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("claim-{k}")}}))?;
            cms.create(&PostParams::default(), &cm).await?;
            let relabel = json!({"metadata": {"labels": {resources::vocabulary::CLAIM: format!("claim-{k}")}}});
            pods.patch(&format!("raw-{k}"), &PatchParams::default(), &Patch::Merge(&relabel)).await?;
            let status = json!({"data": {"phase": "Running"}});
            cms.patch(&format!("claim-{k}"), &PatchParams::default(), &Patch::Merge(&status)).await?;
            let took = sent.elapsed();
            if let Some(mut new) = refill {
                new.metadata.name = Some(format!("new-{k}"));
                pods.create(&PostParams::default(), &new).await?;
            }
            anyhow::Ok(took)
        }));
    }
    let mut took = Vec::with_capacity(runs.len());
    for r in runs {
        took.push(r.await??);
    }
    Ok(summarize(&mut took))
}

/// `n` cold starts of an image no node has, then `n` of one that a pool's
/// prepull DaemonSet pulled on every task node: their image pull times.
async fn prepull_benefit(p: &Stage, n: usize) -> Result<(Summary, Summary)> {
    let spec = |image: &str, pool: serde_json::Value| json!({"maxPerTenant": 100000, "warmPool": pool, "pods": [{"name": "web", "image": image}]});
    // Without: an image new to the nodes.
    let nopull = format!("{}-nopull", p.tenant);
    p.apply_template(&nopull, spec("bench.example/fresh:1", json!(null))).await?;
    let without = cold_pulls(p, &nopull, "np", n).await?;
    // With: a pool of the other image with prepull on, and cold starts of that image.
    let pooled = format!("{}-prepull", p.tenant);
    p.apply_template(&pooled, spec("bench.example/prepulled:1", json!({"size": 1, "maxUnready": 1, "prepull": true})))
        .await?;
    let dss: Api<DaemonSet> = Api::namespaced(p.client.clone(), &p.pool_namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ds = controller::pool::build::prepull_name(&pooled);
    loop {
        let ready = dss
            .get_opt(&ds)
            .await?
            .and_then(|d| d.status)
            .is_some_and(|s| s.desired_number_scheduled > 0 && s.number_ready == s.desired_number_scheduled);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the prepull DaemonSet {ds} was not Ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let prepulled = format!("{}-prepulled", p.tenant);
    p.apply_template(&prepulled, spec("bench.example/prepulled:1", json!(null))).await?;
    let with = cold_pulls(p, &prepulled, "pp", n).await?;
    Ok((without, with))
}

/// Starts `n` instances of `template` at once and returns their pods' image pull times.
async fn cold_pulls(p: &Stage, template: &str, prefix: &str, n: usize) -> Result<Summary> {
    for k in 0..n {
        let r = p
            .http
            .post(p.url(&format!("/v1/tenants/{}/instances", p.tenant)))
            .bearer_auth(&p.admin_token)
            .json(&json!({"template": template, "name": format!("{prefix}-{k}")}))
            .send()
            .await?;
        if r.status() != reqwest::StatusCode::CREATED {
            bail!("starting {prefix}-{k}: the API answered {}", r.status());
        }
    }
    let insts: Api<Instance> = Api::namespaced(p.client.clone(), &p.namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut pulls = Vec::new();
        for i in insts.list(&ListParams::default()).await?.items {
            if !i.metadata.name.as_deref().is_some_and(|nm| nm.starts_with(&format!("{prefix}-"))) {
                continue;
            }
            if let Some(s) = i.status.filter(|s| s.phase == Some(InstancePhase::Running))
                && let (Some(a), Some(b)) = (s.scheduled, s.pulled)
            {
                pulls.push(Duration::try_from(a.0.duration_until(b.0)).unwrap_or_default());
            }
        }
        if pulls.len() == n {
            return Ok(summarize(&mut pulls));
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} {template} instances were Running within 60 s", pulls.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn table(out: &mut dyn Write, r: &Report) -> Result<()> {
    writeln!(
        out,
        "paddock bench claims (in-process on {}): {} starts at {}/s, pool size {} maxUnready {}",
        r.target, r.count, r.rate, r.pool_size, r.max_unready
    )?;
    writeln!(out, "{:<6} {:>6} {:>10} {:>10} {:>10} {:>10}", "start", "n", "p50 ms", "p90 ms", "p99 ms", "max ms")?;
    for (what, s) in [("warm", &r.warm), ("cold", &r.cold)] {
        writeln!(
            out,
            "{what:<6} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        )?;
    }
    writeln!(out, "warm p99 {:.1} ms (target ≤ 50 ms at 100 claims/s)", r.warm.p99_ms)?;
    writeln!(
        out,
        "refill while claiming at {}/s: {:.0} pods/s (bounded by the claims)",
        r.rate, r.refill_pods_per_second
    )?;
    writeln!(
        out,
        "refill after {} claims at once ({} warm): {:.0} pods/s created (target ≥ 100), pool full again after {:.2} s",
        r.pool_size, r.burst_warm_claims, r.burst_refill_pods_per_second, r.burst_refill_seconds
    )?;
    writeln!(
        out,
        "most unclaimed pool pods at once {} (never more than size + maxUnready = {})",
        r.max_pool_pods,
        r.pool_size + r.max_unready
    )?;
    let steps: Vec<String> = r
        .pool_pods_over_time
        .chunks(5)
        .map(|c| {
            let fewest = c.iter().map(|x| x.1).min().unwrap_or(0);
            let most = c.iter().map(|x| x.2).max().unwrap_or(0);
            format!("{fewest}–{most}")
        })
        .collect();
    writeln!(out, "unclaimed pool pods per 0.5 s from the first claim (fewest–most): {}", steps.join(" "))?;
    if let (Some(without), Some(with)) = (&r.pull_without_prepull, &r.pull_with_prepull) {
        writeln!(
            out,
            "image pull of {} cold starts, p50 / max: {:.0} / {:.0} ms for an image new to the nodes, {:.0} / {:.0} ms after the prepull DaemonSet",
            with.count, without.p50_ms, without.max_ms, with.p50_ms, with.max_ms
        )?;
    }
    r.requests_per_warm_claim.line(out, &format!("start at {}/s", r.rate))?;
    r.requests_per_refill_pod.line(out, "refilled pool pod")?;
    r.requests_per_cold_start.line(out, "cold start")?;
    let f = &r.raw_floor;
    writeln!(
        out,
        "raw floor (create, relabel, update; no Paddock) at {}/s, p50 / p99: {:.1} / {:.1} ms; Paddock's warm over it: {:.2} / {:.2} (goal p99 ≤ 1.5)",
        r.rate, f.latency.p50_ms, f.latency.p99_ms, f.paddock_p50_over_raw, f.paddock_p99_over_raw
    )?;
    writeln!(
        out,
        "raw floor with a replacement pod per start: p50 / p99: {:.1} / {:.1} ms; Paddock's warm over it: {:.2} / {:.2}",
        f.with_refill.p50_ms,
        f.with_refill.p99_ms,
        f.paddock_p50_over_raw_with_refill,
        f.paddock_p99_over_raw_with_refill
    )?;
    r.process.line(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_pods_over_time_keeps_each_steps_most() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let counts = [(t0, 10), (at(20), 8), (at(50), 12), (at(150), 11), (at(390), 3)];
        let series = over_time(&counts, at(0), at(420));
        let pods: Vec<(usize, usize)> = series.iter().map(|(_, a, b)| (*a, *b)).collect();
        // 0–100 ms: 10, 8, 12; 100–200: 12 at its start, then 11;
        // 200–300: 11; 300–400: 11, then 3 at 390; 400–420: 3.
        assert_eq!(pods, [(8, 12), (11, 12), (11, 11), (3, 11), (3, 3)]);
        assert_eq!(series[4].0, 0.4);
        let pods: Vec<(usize, usize)> = over_time(&counts, at(160), at(400)).iter().map(|(_, a, b)| (*a, *b)).collect();
        assert_eq!(pods, [(11, 11), (11, 11), (3, 11)]);
        assert!(over_time(&[], t0, at(300)).is_empty(), "no count, no step");
    }
}
