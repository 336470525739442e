//! `paddock bench api`: start latency at several concurrencies, API overhead
//! and SSE delivery to many clients, on the in-process platform.

use super::process::{WholeProcess, own_cpu};
use super::stage::Stage;
use super::stats::{Summary, summarize};
use super::target::{BENCH_LABEL, TargetArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use resources::Instance;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct ApiBenchArgs {
    /// Concurrent starts per round, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub concurrency: Vec<usize>,
    /// SSE clients for the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    pub sse_clients: usize,
    /// Status changes sent to them.
    #[arg(long, default_value_t = 50)]
    pub sse_events: usize,
    /// Milliseconds between status changes (below the fan-out time, events queue).
    #[arg(long, default_value_t = 100)]
    pub sse_interval_ms: u64,
    /// Starts in an unmeasured first round (default: the highest
    /// --concurrency), which opens the connections a running API keeps
    /// (client → API → API server); 0 measures from cold.
    #[arg(long)]
    pub warm_up: Option<usize>,
}

#[derive(Serialize)]
struct Round {
    concurrency: usize,
    /// POST → Running seen on the tenant's event stream.
    start: Summary,
    /// POST → answer (the Instance is created when the API answers), as the
    /// client sees it: connection, queueing on the shared cores included.
    api_overhead: Summary,
    /// The same requests as the API timed them itself (request received →
    /// Instance created and answered), from its `Server-Timing` header.
    api_server_side: Summary,
    /// The burst: first POST sent → last answer received.
    burst_ms: f64,
    /// CPU time this whole process (clients, API, reconcilers, kubesim) used
    /// in the burst, per start: what the cores had to get through before the
    /// last answer (None where there is no process CPU clock).
    burst_cpu_ms_per_start: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    /// kubesim, or the cluster benchmarked.
    target: String,
    /// The unmeasured first round, on new connections.
    warm_up: Option<Round>,
    rounds: Vec<Round>,
    sse_clients: usize,
    sse_events: usize,
    sse_interval_ms: u64,
    /// Status written to the cluster → event received by a client.
    sse_delivery: Summary,
    #[serde(flatten)]
    process: WholeProcess,
}

pub async fn run(args: ApiBenchArgs, target: &TargetArgs, as_json: bool) -> Result<()> {
    if args.concurrency.iter().any(|c| !(1..=1000).contains(c)) {
        bail!("--concurrency: each value must be between 1 and 1000");
    }
    if args.warm_up.is_some_and(|w| w > 1000) {
        bail!("--warm-up must be between 0 and 1000");
    }
    if !(1..=20_000).contains(&args.sse_clients) || !(1..=10_000).contains(&args.sse_events) {
        bail!("--sse-clients must be 1..=20000 and --sse-events 1..=10000");
    }
    let spec = json!({"maxPerTenant": 100000,
        "pods": [{"name": "web", "image": target.image()?, "ports": [{"name": "http", "port": 80}]}]});
    let report = Stage::measure(target, spec, async |p| measure(&args, p).await).await?;
    super::emit(&report, as_json, table)
}

async fn measure(args: &ApiBenchArgs, p: &Stage) -> Result<Report> {
    let warm = args.warm_up.unwrap_or_else(|| args.concurrency.iter().copied().max().unwrap_or(0));
    let warm_up = if warm > 0 { Some(start_round(&p.http, p, "w", warm).await?) } else { None };
    let mut rounds = Vec::new();
    for (n, &c) in args.concurrency.iter().enumerate() {
        rounds.push(start_round(&p.http, p, &format!("r{n}"), c).await?);
    }
    let sse_delivery =
        fan_out(p, args.sse_clients, args.sse_events, Duration::from_millis(args.sse_interval_ms)).await?;
    Ok(Report {
        target: p.target.describe(),
        warm_up,
        rounds,
        sse_clients: args.sse_clients,
        sse_events: args.sse_events,
        sse_interval_ms: args.sse_interval_ms,
        sse_delivery,
        process: WholeProcess::now(),
    })
}

/// Starts `c` instances (named `<round>-<i>`) at once; follows them on the
/// tenant's stream; stops them.
async fn start_round(http: &reqwest::Client, p: &Stage, round: &str, c: usize) -> Result<Round> {
    let resp = http
        .get(p.url(&format!("/v1/tenants/{}/events", p.tenant)))
        .bearer_auth(&p.admin_token)
        .send()
        .await?
        .error_for_status()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, &'static str, Instant)>();
    let reader = tokio::spawn(async move {
        let mut s = resp.bytes_stream().eventsource();
        while let Some(Ok(e)) = s.next().await {
            let now = Instant::now();
            if e.event == "status" && e.data.contains("\"phase\":\"Running\"") {
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
                let name = v["instance"]["name"].as_str().unwrap_or_default().to_string();
                let _ = tx.send((name, "running", now));
            } else if e.event == "deleted" {
                let v: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
                let _ = tx.send((v["name"].as_str().unwrap_or_default().to_string(), "deleted", now));
            }
        }
    });
    let names: Vec<String> = (0..c).map(|i| format!("{round}-{i}")).collect();
    let (cpu0, t0) = (own_cpu(), Instant::now());
    let mut posts = Vec::new();
    for name in &names {
        let req = http
            .post(p.url(&format!("/v1/tenants/{}/instances", p.tenant)))
            .bearer_auth(&p.admin_token)
            .json(&json!({"template": p.template, "name": name}));
        posts.push(tokio::spawn(async move {
            let sent = Instant::now();
            let r = req.send().await;
            (sent, Instant::now(), r.map(|r| (r.status(), server_timing(r.headers()))))
        }));
    }
    let mut sent_at = HashMap::new();
    let (mut api, mut server) = (Vec::new(), Vec::new());
    for (name, h) in names.iter().zip(posts) {
        let (sent, answered, answer) = h.await?;
        let (status, took) = answer.context("POST failed")?;
        if status != reqwest::StatusCode::CREATED {
            bail!("starting {name}: the API answered {status}");
        }
        api.push(answered - sent);
        server.extend(took);
        sent_at.insert(name.clone(), sent);
    }
    let burst_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let burst_cpu = own_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a).as_secs_f64() * 1000.0 / c as f64);
    let mut starts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while starts.len() < c {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((name, kind, at))) = tokio::time::timeout(left, rx.recv()).await else {
            bail!("only {} of {c} instances were Running within 120s", starts.len());
        };
        if kind == "running"
            && let Some(sent) = sent_at.remove(&name)
        {
            starts.push(at - sent);
        }
    }
    // Stop them and wait until the stream says they are gone.
    for name in &names {
        http.delete(p.url(&format!("/v1/tenants/{}/instances/{name}", p.tenant)))
            .bearer_auth(&p.admin_token)
            .send()
            .await?;
    }
    let mut gone = 0;
    while gone < c {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some((_, "deleted", _))) => gone += 1,
            Ok(Some(_)) => {}
            _ => bail!("instances were not deleted within 60s"),
        }
    }
    reader.abort();
    settle(p).await?;
    Ok(Round {
        concurrency: c,
        start: summarize(&mut starts),
        api_overhead: summarize(&mut api),
        api_server_side: summarize(&mut server),
        burst_ms,
        burst_cpu_ms_per_start: burst_cpu,
    })
}

/// Waits until the round's instances have left nothing behind (their pods,
/// services and policies go after the instance, by their finalizer and the
/// garbage collector), so the next round is not measured against this one's
/// cleanup.
async fn settle(p: &Stage) -> Result<()> {
    let lp = kube::api::ListParams::default().labels(controller::labels::INSTANCE);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(p.target.client.clone(), &p.namespace);
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::namespaced(p.target.client.clone(), &p.namespace);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = pods.list_metadata(&lp).await?.items.len() + services.list_metadata(&lp).await?.items.len();
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{left} pods and services of stopped instances were still there after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API's own time from its `Server-Timing: app;dur=<ms>` header.
fn server_timing(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get("server-timing")?.to_str().ok()?;
    let ms: f64 = v.split(';').find_map(|p| p.trim().strip_prefix("dur="))?.parse().ok()?;
    Duration::try_from_secs_f64(ms / 1000.0).ok()
}

/// Connects `clients` to /v1/events and measures status-write → receipt for `events` changes.
pub async fn fan_out(p: &Stage, clients: usize, events: usize, interval: Duration) -> Result<Summary> {
    // The reconcilers stop here, so each change of the probe is exactly one
    // event (they would answer every change with a status write of their own)
    // and the figure is the path status write → API server → watch → hub →
    // every client.
    p.stop_controllers();
    let ns = format!("{}-sse", p.tenant);
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {BENCH_LABEL: p.tenant}}});
    Api::<Namespace>::all(p.client.clone())
        .patch(&ns, &PatchParams::apply("paddock-bench"), &Patch::Apply(&namespace))
        .await?;
    let insts: Api<Instance> = Api::namespaced(p.client.clone(), &ns);
    let i: Instance = serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": "probe"}, "spec": {"template": p.template, "ttl": "0s"}}))?;
    insts.create(&PostParams::default(), &i).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients);
    // A client that has every event reports it and keeps its connection until
    // all have: closing early would put the teardown of a thousand
    // connections on the cores still delivering the last event.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(clients);
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    // Clients read the raw stream and look only for the marker, so the figures
    // are the server's delivery, not an SSE parser's cost.
    let addr = p.api_url.trim_start_matches("http://").to_string();
    for _ in 0..clients {
        let request = format!(
            "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
            p.admin_token
        );
        let (ready, done, mut close, addr) = (ready_tx.clone(), done_tx.clone(), close_rx.clone(), addr.clone());
        readers.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let Ok(mut conn) = tokio::net::TcpStream::connect(&addr).await else { return Vec::new() };
            if conn.write_all(request.as_bytes()).await.is_err() {
                return Vec::new();
            }
            let mut buf = vec![0u8; 64 * 1024];
            let mut carry: Vec<u8> = Vec::with_capacity(64 * 1024);
            let (mut connected, mut seen) = (false, 0);
            let mut got: Vec<(usize, Instant)> = Vec::with_capacity(events);
            loop {
                let n = match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return got,
                    Ok(n) => n,
                };
                let now = Instant::now();
                carry.extend_from_slice(&buf[..n]);
                // Every complete frame in the buffer; a marker counts once.
                while let Some(end) = carry.windows(2).position(|w| w == b"\n\n") {
                    let frame = std::str::from_utf8(&carry[..end]).unwrap_or("");
                    if !connected && frame.contains("event: snapshot") {
                        connected = true;
                        let _ = ready.send(()).await;
                    } else if let Some(k) = marker(frame).filter(|k| *k > seen) {
                        seen = k;
                        got.push((k, now));
                        if k == events {
                            let _ = done.send(()).await;
                            let _ = close.wait_for(|c| *c).await;
                            return got;
                        }
                    }
                    carry.drain(..end + 2);
                }
            }
        }));
    }
    for _ in 0..clients {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv()).await.context("SSE clients connecting")?;
    }
    let mut written = Vec::with_capacity(events + 1);
    written.push(Instant::now());
    for k in 1..=events {
        let t0 = Instant::now();
        insts.patch("probe", &PatchParams::default(), &Patch::Merge(json!({"spec": {"ttl": format!("{k}s")}}))).await?;
        written.push(t0);
        tokio::time::sleep(interval).await;
    }
    drop(done_tx);
    for _ in 0..clients {
        if !matches!(tokio::time::timeout(Duration::from_secs(60), done_rx.recv()).await, Ok(Some(()))) {
            break;
        }
    }
    let _ = close_tx.send(true);
    let mut received = Vec::with_capacity(clients * events);
    for r in readers {
        if let Ok(Ok(got)) = tokio::time::timeout(Duration::from_secs(60), r).await {
            received.extend(got);
        }
    }
    let mut lat: Vec<Duration> = received
        .iter()
        .filter(|(k, _)| *k >= 1 && *k <= events)
        .map(|(k, at)| at.saturating_duration_since(written[*k]))
        .collect();
    if lat.len() < clients * events {
        tracing::warn!(got = lat.len(), want = clients * events, "some SSE events were not received");
    }
    Ok(summarize(&mut lat))
}

/// The SSE fan-out figures as one line.
pub fn sse_line(out: &mut dyn Write, clients: usize, events: usize, interval_ms: u64, s: &Summary) -> Result<()> {
    writeln!(
        out,
        "SSE delivery, {clients} clients × {events} events {interval_ms} ms apart: n {} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 ≤ 20 ms)",
        s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
    )?;
    Ok(())
}

/// The `k` of a probe event whose ttl reads `"{k}s"`.
fn marker(data: &str) -> Option<usize> {
    let rest = &data[data.find("\"ttl\":\"")? + 7..];
    rest[..rest.find('s')?].parse().ok()
}

fn table(out: &mut dyn Write, r: &Report) -> Result<()> {
    writeln!(out, "paddock bench api (in-process on {})", r.target)?;
    if let Some(w) = &r.warm_up {
        writeln!(
            out,
            "warm-up, not counted: {} starts on new connections, API overhead p99 {:.1} ms at the client, {:.1} ms in the API",
            w.concurrency, w.api_overhead.p99_ms, w.api_server_side.p99_ms
        )?;
    }
    writeln!(
        out,
        "{:<12} {:>6} {:>10} {:>10} {:>10} {:>10}   what",
        "concurrency", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
    )?;
    for round in &r.rounds {
        for (s, what) in [
            (&round.start, "start: POST → Running on SSE"),
            (&round.api_overhead, "API overhead: POST → created, at the client"),
            (&round.api_server_side, "API overhead: request → created, in the API (Server-Timing)"),
        ] {
            writeln!(
                out,
                "{:<12} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>10.1}   {what}",
                round.concurrency, s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            )?;
        }
        if let Some(cpu) = round.burst_cpu_ms_per_start {
            writeln!(
                out,
                "{:<12} burst: the {} POSTs answered within {:.1} ms, using {:.2} ms of CPU per start (this whole process)",
                round.concurrency, round.concurrency, round.burst_ms, cpu
            )?;
        }
    }
    sse_line(out, r.sse_clients, r.sse_events, r.sse_interval_ms, &r.sse_delivery)?;
    let worst = |f: fn(&Round) -> f64| r.rounds.iter().map(f).fold(0.0, f64::max);
    writeln!(
        out,
        "API overhead p99 (worst round) {:.1} ms at the client, {:.1} ms in the API (target ≤ 10 ms)",
        worst(|x| x.api_overhead.p99_ms),
        worst(|x| x.api_server_side.p99_ms)
    )?;
    r.process.line(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers() {
        assert_eq!(super::marker(r#"{"instance":{"name":"probe","ttl":"17s","x":1}}"#), Some(17));
        assert_eq!(super::marker(r#"{"instance":{"name":"probe"}}"#), None);
    }
}
