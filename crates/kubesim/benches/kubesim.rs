//! `cargo bench -p kubesim`: creates/s over HTTP through the kube client, list
//! latency at 10k and 100k pods, watch event latency with 100 watchers, and
//! memory per stored object. Prints figures; asserts nothing about time.
//!
//! The simulated controllers are off, so the figures are the API server's own.
//! `KUBESIM_BENCH_SCALE=0.1` shrinks every count (for a quick look).

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kubesim::{KubeSim, SimConfig};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("KUBESIM_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    ((n as f64 * s) as usize).max(10)
}

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "paddock", "paddock.dev/tenant": "team-a", "paddock.dev/instance": name}},
        "spec": {"containers": [{"name": "web", "image": "ghcr.io/example/challenge:1.0",
            "ports": [{"name": "http", "containerPort": 8080}],
            "env": [{"name": "MODE", "value": "ctf"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}}]}
    })
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn creates_per_second(sim: &KubeSim) {
    let n = scale(20_000);
    let workers = 32;
    let clients: Vec<kube::Client> =
        futures::future::join_all((0..4).map(|_| sim.client())).await.into_iter().map(|c| c.expect("client")).collect();
    let start = Instant::now();
    let per = n / workers;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let api: Api<Pod> = Api::namespaced(clients[w % clients.len()].clone(), "default");
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let p: Pod = serde_json::from_value(pod(&format!("create-{w}-{i}"))).expect("pod");
                api.create(&PostParams::default(), &p).await.expect("create");
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "creates over HTTP (kube client, {workers} concurrent, pods): {} in {secs:.2}s = {:.0} creates/s   (target >= 5,000)",
        per * workers,
        (per * workers) as f64 / secs
    );
}

async fn fill(sim: &KubeSim, ns: &str, from: usize, to: usize) -> u64 {
    let c = sim.cluster();
    let (id, _) = c.resource("", "pods").expect("pods");
    let mut json_bytes = 0u64;
    for i in from..to {
        let v = c
            .create(id, "v1", ns, pod(&format!("p-{i:06}")), &kubesim::cluster::WriteOpts::manager("bench"))
            .expect("create");
        json_bytes += v.raw.len() as u64;
        if i % 5000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    json_bytes
}

async fn list_latency(sim: &KubeSim, ns: &str, count: usize, runs: usize) {
    let client = sim.client().await.expect("client");
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/pods")).body(Vec::new()).expect("request");
        let t = Instant::now();
        let body = client.request_text(req).await.expect("list");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    println!(
        "list {count} pods over HTTP (full response received): p50 {:.1} ms, max {:.1} ms ({:.1} MiB)",
        pct(&times, 0.5),
        times[times.len() - 1],
        bytes as f64 / 1048576.0
    );
}

async fn watch_latency(sim: &KubeSim) {
    let watchers = 100;
    let events = scale(500);
    let client = sim.client().await.expect("client");
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    let rv = api.list_metadata(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
    let base = Arc::new(Instant::now());
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let rv = rv.clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = api.watch(&WatchParams::default().labels("bench=watch"), &rv).await.expect("watch").boxed();
            let mut lat = Vec::with_capacity(events);
            while lat.len() < events {
                match s.next().await {
                    Some(Ok(WatchEvent::Added(cm))) => {
                        let sent: u128 = cm
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get("sent"))
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        let now = base.elapsed().as_nanos();
                        lat.push((now.saturating_sub(sent)) as f64 / 1e6);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => panic!("watch error {e}"),
                    None => panic!("watch ended early"),
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..events {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("w-{i}"), "labels": {"bench": "watch"},
            "annotations": {"sent": base.elapsed().as_nanos().to_string()}}}))
            .expect("cm");
        api.create(&PostParams::default(), &cm).await.expect("create");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("watcher"));
    }
    all.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    println!(
        "watch event latency, {watchers} watchers x {events} events (write sent -> event decoded by the kube client): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms   (target p99 <= 5 ms)",
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let cfg = SimConfig { controllers: false, ..SimConfig::default() };
        let sim = KubeSim::start(cfg, "127.0.0.1:0".parse().expect("addr")).await.expect("kubesim");
        println!("kubesim benchmark ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        creates_per_second(&sim).await;
        watch_latency(&sim).await;

        // A namespace of its own for the list and memory figures.
        let c = sim.cluster();
        let (nsid, _) = c.resource("", "namespaces").expect("namespaces");
        c.create(nsid, "v1", "", json!({"metadata": {"name": "bench"}}), &Default::default()).expect("namespace");
        let (said, _) = c.resource("", "serviceaccounts").expect("serviceaccounts");
        c.create(said, "v1", "bench", json!({"metadata": {"name": "default"}}), &Default::default()).expect("sa");
        let ten = scale(10_000);
        let hundred = scale(100_000);
        // Memory first, with nothing else allocating in between.
        let rss0 = rss_bytes();
        let json_bytes = fill(&sim, "bench", 0, hundred).await;
        let rss1 = rss_bytes();
        let delta = rss1.saturating_sub(rss0) as f64;
        let overhead = (delta - json_bytes as f64) / hundred as f64;
        println!(
            "memory at {hundred} pods: RSS grew {:.1} MiB for {:.1} MiB of stored JSON ({:.0} B/object) = {:.0} B overhead per object, watch history included   (target <= 1024 B)",
            delta / 1048576.0,
            json_bytes as f64 / 1048576.0,
            json_bytes as f64 / hundred as f64,
            overhead
        );
        c.create(nsid, "v1", "", json!({"metadata": {"name": "small"}}), &Default::default()).expect("namespace");
        c.create(said, "v1", "small", json!({"metadata": {"name": "default"}}), &Default::default()).expect("sa");
        fill(&sim, "small", 0, ten).await;
        list_latency(&sim, "small", ten, 5).await;
        list_latency(&sim, "bench", hundred, 3).await;
        let _ = sim.shutdown().await;
    });
}
