//! Live status over Server-Sent Events, over real HTTP: phases as they pass,
//! resumption with Last-Event-ID, snapshots for stale cursors, tenant
//! isolation, and 1,000 clients served from one watch.

mod common;

use common::{ADMIN, Env, T};
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

async fn connect(env: &Env, path: &str, token: &str, last: Option<&str>) -> Events {
    let mut req = reqwest::Client::new().get(format!("{}{path}", env.url)).bearer_auth(token);
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Box::pin(resp.bytes_stream().eventsource().map(|e| e.unwrap()))
}

async fn next(s: &mut Events) -> Event {
    tokio::time::timeout(T, s.next()).await.expect("an event in time").expect("the stream is open")
}

fn data(e: &Event) -> Value {
    serde_json::from_str(&e.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phases_stream_and_resume_after_disconnect() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let mut s = connect(&env, &format!("/v1/tenants/{a}/events"), &tok, None).await;
    let first = next(&mut s).await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(data(&first)["instances"], json!([]));
    let mut beta = connect(&env, &format!("/v1/tenants/{}/events", env.beta), &env.beta_token, None).await;
    assert_eq!(next(&mut beta).await.event, "snapshot");

    let (code, v) = env
        .call("POST", &format!("/v1/tenants/{a}/instances"), Some(&tok), Some(json!({"template": env.template})))
        .await;
    assert_eq!(code, 201, "{v}");
    let name = v["name"].as_str().unwrap().to_string();
    let mut phases = Vec::new();
    let mut last_id;
    loop {
        let e = next(&mut s).await;
        assert_eq!(e.event, "status");
        last_id = e.id.clone();
        let i = &data(&e)["instance"];
        assert_eq!(i["name"], name.as_str());
        let p = i["phase"].as_str().unwrap_or("-").to_string();
        if phases.last() != Some(&p) {
            phases.push(p.clone());
        }
        if p == "Running" {
            let prog = &i["progress"];
            assert!(prog["scheduled"].is_number() && prog["pulled"].is_number() && prog["ready"].is_number(), "{i}");
            assert!(i["status"]["pods"][0]["ready"] == true, "{i}");
            break;
        }
    }
    assert!(phases.len() >= 2, "several phases were streamed: {phases:?}");
    drop(s);

    // While disconnected the instance is stopped; the resumed stream replays it.
    let (code, _) = env.call("DELETE", &format!("/v1/tenants/{a}/instances/{name}"), Some(&tok), None).await;
    assert_eq!(code, 202);
    kubesim::testing::wait_until(T, "the instance is gone", || async {
        env.call("GET", &format!("/v1/tenants/{a}/instances/{name}"), Some(&tok), None).await.0 == 404
    })
    .await;
    let mut s = connect(&env, &format!("/v1/tenants/{a}/events"), &tok, Some(&last_id)).await;
    let mut kinds = Vec::new();
    loop {
        let e = next(&mut s).await;
        kinds.push(e.event.clone());
        assert_ne!(e.event, "snapshot", "a fresh cursor is resumed, not snapshotted");
        if e.event == "deleted" {
            assert_eq!(data(&e)["name"], name.as_str());
            break;
        }
    }
    // A cursor from another process (or too old) gets a snapshot first.
    let mut s = connect(&env, &format!("/v1/tenants/{a}/events"), &tok, Some("0-1")).await;
    assert_eq!(next(&mut s).await.event, "snapshot");
    // The header can also be given as a query parameter.
    let mut q = connect(&env, &format!("/v1/tenants/{a}/events?lastEventId={last_id}"), &tok, None).await;
    assert_eq!(next(&mut q).await.event, "status");

    // Beta saw nothing of alpha's instance.
    let quiet = tokio::time::timeout(Duration::from_millis(300), beta.next()).await;
    assert!(quiet.is_err(), "beta's stream stays quiet: {quiet:?}");
    // Admins see every tenant on /v1/events.
    let mut all = connect(&env, "/v1/events", ADMIN, None).await;
    assert_eq!(next(&mut all).await.event, "snapshot");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_share_one_watch() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let watches_before = env.state.hub.stats.watch_starts.load(Ordering::Relaxed);
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut readers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1000);
    for _ in 0..1000 {
        let req = http.get(format!("{}/v1/tenants/{a}/events", env.url)).bearer_auth(&tok);
        let ready = ready_tx.clone();
        readers.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let mut s = resp.bytes_stream().eventsource();
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(first.event, "snapshot");
            ready.send(()).await.unwrap();
            // Wait for the instance to be Running.
            while let Some(e) = s.next().await {
                let e = e.unwrap();
                if e.event == "status" && e.data.contains("\"phase\":\"Running\"") {
                    return std::time::Instant::now();
                }
            }
            panic!("stream ended");
        }));
    }
    for _ in 0..1000 {
        tokio::time::timeout(T, ready_rx.recv()).await.expect("every client connected").unwrap();
    }
    assert_eq!(env.state.hub.stats.clients.load(Ordering::Relaxed), 1000);
    let (code, v) = env
        .call("POST", &format!("/v1/tenants/{a}/instances"), Some(&tok), Some(json!({"template": env.template})))
        .await;
    assert_eq!(code, 201, "{v}");
    let mut times = Vec::new();
    for r in readers {
        times.push(tokio::time::timeout(T, r).await.expect("every client saw Running").unwrap());
    }
    let spread = times.iter().max().unwrap().duration_since(*times.iter().min().unwrap());
    eprintln!("1000 clients saw Running within {spread:?} of each other");
    assert_eq!(
        env.state.hub.stats.watch_starts.load(Ordering::Relaxed),
        watches_before,
        "no watch was started for the clients"
    );
    if let Some(sim) = env.tc.sim("counts the API server's open watches") {
        let watches = sim.open_watches("instances");
        assert!(watches <= 3, "the API holds one instance watch (controllers hold theirs), found {watches}");
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_end_at_once_when_the_api_shuts_down() {
    let mut env = Env::start().await;
    let mut s = connect(&env, "/v1/events", ADMIN, None).await;
    assert_eq!(next(&mut s).await.event, "snapshot");
    env.stop_serving();
    // The stream ends cleanly (its client resumes elsewhere) well before the
    // five seconds requests in flight get.
    let end = tokio::time::timeout(Duration::from_secs(4), async {
        while let Some(e) = s.next().await {
            assert!(e.event.is_empty() || e.event == "message", "an event after shutdown: {e:?}");
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream was still open 4 s after shutdown began");
    env.finish().await;
}
