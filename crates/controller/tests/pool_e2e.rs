//! Warm pools end to end through all reconcilers on kubesim (or a real
//! cluster with PADDOCK_TEST_KUBECONFIG): exclusive claims under
//! concurrency, refill within `size + maxUnready`, failing sets replaced not
//! multiplied, the tenant's quota across namespaces, cleanup with the
//! instance, rolling on template changes, and the claimed pods' networks.

use controller::config::Settings;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kubesim::testing::{TestCluster, wait_for, wait_until};
use kubesim::{SimConfig, config};
use resources::vocabulary::{CLAIM, POOL, POOL_SET};
use resources::{Instance, InstancePhase, Template, Tenant};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
use common::Run;

const T: Duration = Duration::from_secs(60);

fn sim_config() -> SimConfig {
    SimConfig {
        nodes: config::parse_nodes(
            "task-1,cpu=64,memory=256Gi,pods=400,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
             task-2,cpu=64,memory=256Gi,pods=400,label=paddock.dev/node-role=task,taint=paddock.dev/node-role=task:NoSchedule;\
             vpn-1,cpu=2,memory=4Gi,label=paddock.dev/node-role=vpn,taint=paddock.dev/node-role=vpn:NoSchedule,sysctl=net.ipv4.ip_forward",
        )
        .unwrap(),
        ..SimConfig::default()
    }
}

struct Env {
    tc: TestCluster,
    settings: Settings,
    /// Names, namespaces and scope unique to the run.
    run: Run,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    ctl: tokio::task::JoinHandle<()>,
}

impl Env {
    async fn start(tag: &str) -> Env {
        Env::start_with(tag, sim_config()).await
    }

    async fn start_with(tag: &str, cfg: SimConfig) -> Env {
        let mut tc = TestCluster::with_config(cfg).await;
        controller::install::crds(&tc.client, "paddock-test", T).await.unwrap();
        let run = Run::new(tag);
        run.own(&mut tc);
        let settings = Settings { vpn_endpoint: Some("vpn.test".into()), ..run.settings() };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = futures::FutureExt::shared(futures::FutureExt::boxed(async move {
            let _ = rx.await;
        }));
        let ctl = tokio::spawn(controller::install::reconcilers(
            tc.client.clone(),
            settings.clone(),
            Default::default(),
            stop,
        ));
        Env { tc, settings, run, stop: Some(tx), ctl }
    }

    /// A cluster-scoped name (a tenant's, a template's) unique to the run.
    fn name(&self, base: &str) -> String {
        self.run.name(base)
    }

    /// The tenant `base` of the run (named [`Env::name`]), Ready; its instances.
    async fn tenant(&self, base: &str, spec: Value) -> Api<Instance> {
        let name = &self.name(base);
        let tenants: Api<Tenant> = Api::all(self.tc.client.clone());
        let mut s = json!({"kind": "Team", "storage": {"enabled": false}});
        for (k, v) in spec.as_object().unwrap() {
            s[k] = v.clone();
        }
        let t: Tenant = serde_json::from_value(self.run.labelled(
            json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name}, "spec": s}),
        ))
        .unwrap();
        tenants.create(&PostParams::default(), &t).await.unwrap();
        wait_for(&tenants, name, T, |t| t.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Ready")).await;
        Api::namespaced(self.tc.client.clone(), &format!("{}{name}", self.settings.namespace_prefix))
    }

    /// Applies the template `v`, named [`Env::name`] of its `metadata.name`.
    async fn template(&self, mut v: Value) -> Template {
        let api: Api<Template> = Api::all(self.tc.client.clone());
        let name = self.name(v["metadata"]["name"].as_str().unwrap());
        v["metadata"]["name"] = json!(name);
        let v = self.run.labelled(v);
        api.patch(&name, &PatchParams::apply("paddock-test").force(), &Patch::Apply(&v)).await.unwrap()
    }

    async fn pool_ready(&self, base: &str, ready: u32) -> Template {
        let api: Api<Template> = Api::all(self.tc.client.clone());
        wait_for(&api, &self.name(base), T, |t| {
            t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.ready == ready)
        })
        .await
    }

    fn pool_pods(&self) -> Api<Pod> {
        Api::namespaced(self.tc.client.clone(), &self.settings.pool_namespace)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.ctl).await;
        // kubesim checks no permissions: every request of the run must be one
        // Paddock's shipped RBAC allows.
        assert_eq!(controller::rbac::not_allowed(&self.tc.access()), Vec::<String>::new(), "outside Paddock's RBAC");
    }
}

fn template(name: &str, pool: Value, delay: u64) -> Value {
    json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template", "metadata": {"name": name},
        "spec": {"networks": ["teamnet", "backend"], "maxPerTenant": 200, "warmPool": pool,
            "exposure": [{"pod": "web", "port": "pub", "type": "NodePort"}], "pods": [
            {"name": "web", "image": "busybox:1.36", "networks": ["teamnet", "backend"],
             "ports": [{"name": "http", "port": 8080}, {"name": "pub", "port": 9090, "expose": true}],
             "env": [{"name": "MODE", "value": "a"}],
             "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
             "readinessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": delay}}]}})
}

fn instance(name: &str, template: &str) -> Instance {
    serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Instance",
        "metadata": {"name": name}, "spec": {"template": template}}))
    .unwrap()
}

fn warm(i: &Instance) -> Option<bool> {
    i.status.as_ref().and_then(|s| s.warm)
}

fn reason(i: &Instance) -> String {
    i.status.as_ref().and_then(|s| s.conditions.first()).map(|c| c.reason.clone()).unwrap_or_default()
}

/// Counts unclaimed pool pods (terminating ones included) until stopped; returns the most seen.
fn watch_pool_size(pods: Api<Pod>, template: &str) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let max = Arc::new(AtomicUsize::new(0));
    let m = max.clone();
    let lp = ListParams::default().labels(&format!("{POOL}={template},!{CLAIM}"));
    let h = tokio::spawn(async move {
        loop {
            if let Ok(l) = pods.list_metadata(&lp).await {
                m.fetch_max(l.items.len(), Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (max, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_claims_against_a_pool_of_fifty() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let env = Env::start("pw").await;
    let insts = env.tenant("many", json!({})).await;
    env.template(template("one", json!({"size": 50, "maxUnready": 50, "refillPerSecond": 100}), 0)).await;
    env.pool_ready("one", 50).await;
    // A pool quota at what the pool holds: replacements are refused during the
    // burst (so exactly the 50 warm sets are handed out, however slow the
    // machine), and the pool says it is blocked. Lifted afterwards.
    let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
        Api::namespaced(env.tc.client.clone(), &env.settings.pool_namespace);
    let quota = |pods: u32| json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pool"}, "spec": {"hard": {"pods": pods.to_string()}}});
    quotas.patch("pool", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&quota(50))).await.unwrap();
    wait_until(T, "the pool quota is in force", || async {
        quotas
            .get("pool")
            .await
            .unwrap()
            .status
            .and_then(|s| s.used)
            .is_some_and(|u| u.get("pods").is_some_and(|q| q.0 == "50"))
    })
    .await;
    let (max_pool, sampler) = watch_pool_size(env.pool_pods(), &env.name("one"));

    let one = env.name("one");
    let creates: Vec<_> = (0..200)
        .map(|k| {
            let (api, one) = (insts.clone(), one.clone());
            tokio::spawn(async move { api.create(&PostParams::default(), &instance(&format!("i-{k}"), &one)).await })
        })
        .collect();
    for c in creates {
        c.await.unwrap().unwrap();
    }
    wait_until(T, "every instance decided warm or cold and Running", || async {
        let l = insts.list(&ListParams::default()).await.unwrap().items;
        l.len() == 200
            && l.iter()
                .all(|i| warm(i).is_some() && i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running))
    })
    .await;
    let all = insts.list(&ListParams::default()).await.unwrap().items;
    let warm_ones: Vec<&Instance> = all.iter().filter(|i| warm(i) == Some(true)).collect();
    let decided: Vec<jiff::Timestamp> = all
        .iter()
        .filter_map(|i| {
            i.status.as_ref()?.conditions.iter().find(|c| c.type_ == "WarmStart").map(|c| c.last_transition_time.0)
        })
        .collect();
    let created: Vec<jiff::Timestamp> =
        all.iter().filter_map(|i| i.metadata.creation_timestamp.as_ref().map(|t| t.0)).collect();
    let mut d: Vec<i64> = decided.iter().map(|t| t.duration_since(*created.iter().min().unwrap()).as_secs()).collect();
    d.sort();
    eprintln!("decisions (s after the first creation): {:?}", d.iter().step_by(10).collect::<Vec<_>>());
    let mut w: Vec<i64> =
        all.iter().filter_map(|i| i.status.as_ref()?.claim.as_ref()).map(|c| c.latency_ms as i64).collect();
    w.sort();
    eprintln!("claim latencies ms: {:?}", w.iter().step_by(5).collect::<Vec<_>>());
    eprintln!(
        "created over {:?}, decided over {:?} (from the first creation)",
        created.iter().max().unwrap().duration_since(*created.iter().min().unwrap()),
        decided.iter().max().unwrap().duration_since(*created.iter().min().unwrap())
    );
    assert_eq!(warm_ones.len(), 50, "warm starts");
    assert_eq!(all.iter().filter(|i| warm(i) == Some(false)).count(), 150, "cold starts");
    assert!(all.iter().filter(|i| warm(i) == Some(false)).all(|i| {
        i.status.as_ref().unwrap().conditions.iter().any(|c| c.type_ == "WarmStart" && c.reason == "PoolEmpty")
    }));
    // No set claimed twice: 50 distinct sets, each pod labelled for exactly its instance.
    let sets: BTreeSet<String> =
        warm_ones.iter().map(|i| i.status.as_ref().unwrap().claim.as_ref().unwrap().set.clone()).collect();
    assert_eq!(sets.len(), 50);
    let claimed = env.pool_pods().list(&ListParams::default().labels(CLAIM)).await.unwrap().items;
    assert_eq!(claimed.len(), 50);
    let uids: BTreeSet<String> = warm_ones.iter().map(|i| i.uid().unwrap()).collect();
    let pod_uids: BTreeSet<String> = claimed.iter().map(|p| p.labels()[CLAIM].clone()).collect();
    assert_eq!(uids, pod_uids);
    for i in &warm_ones {
        let c = i.status.as_ref().unwrap().claim.as_ref().unwrap();
        assert!(c.latency_ms >= 0.0 && c.latency_ms < 60_000.0, "{c:?}");
        assert!(claimed.iter().any(|p| p.labels()[POOL_SET] == c.set && p.labels()[CLAIM] == i.uid().unwrap()));
    }
    let t = Api::<Template>::all(env.tc.client.clone()).get(&env.name("one")).await.unwrap();
    let pool = t.status.unwrap().pool.unwrap();
    assert_eq!((pool.state.as_str(), pool.claimed), ("Blocked", 50), "{pool:?}");
    assert!(pool.message.contains("exceeded quota"), "{pool:?}");
    // Refilled to 50 once the quota allows, never more than size + maxUnready unclaimed pods.
    quotas.patch("pool", &PatchParams::apply("paddock-test").force(), &Patch::Apply(&quota(200))).await.unwrap();
    env.pool_ready("one", 50).await;
    // And its status says so: no old quota message left behind.
    wait_for(&Api::<Template>::all(env.tc.client.clone()), &env.name("one"), T, |t| {
        t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.state == "Ready" && p.message.is_empty())
    })
    .await;
    sampler.abort();
    let most = max_pool.load(Ordering::Relaxed);
    assert!(most <= 100, "at most size + maxUnready pool pods, saw {most}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sets_quota_cleanup_rolling_and_networks() {
    let env = Env::start("pf").await;
    let c = env.tc.client.clone();
    let templates: Api<Template> = Api::all(c.clone());

    // Pods that never become Ready are replaced with a back-off, never multiplied.
    let mut broken = template("broken", json!({"size": 3, "maxUnready": 2}), 0);
    broken["spec"]["pods"][0]["image"] = json!("registry.example/doesnotexist:1");
    env.template(broken).await;
    let (max_broken, sampler) = watch_pool_size(env.pool_pods(), &env.name("broken"));
    let t = wait_for(&templates, &env.name("broken"), T, |t| {
        t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.state == "Failing" && p.failures >= 2)
    })
    .await;
    let pool = t.status.unwrap().pool.unwrap();
    assert!(pool.message.contains("cannot pull image"), "{pool:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampler.abort();
    let most = max_broken.load(Ordering::Relaxed);
    assert!(most <= 5, "at most size + maxUnready (5) pool pods, terminating included, saw {most}");

    // A template with per-instance values and no personalisation is refused a pool, with the reason.
    let mut refused = template("needs-values", json!({"size": 2}), 0);
    refused["spec"]["pods"][0]["env"] = json!([{"name": "FLAG", "generate": {"flag": {"format": "F{%s}"}}}]);
    env.template(refused).await;
    let t = wait_for(&templates, &env.name("needs-values"), T, |t| {
        t.status.as_ref().and_then(|s| s.pool.as_ref()).is_some_and(|p| p.state == "Refused")
    })
    .await;
    assert!(t.status.unwrap().pool.unwrap().message.contains("personalize: api"));
    assert!(
        env.pool_pods()
            .list(&ListParams::default().labels(&format!("{POOL}={}", env.name("needs-values"))))
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Quota: a claim counts against the tenant's pods quota, across namespaces.
    env.template(template("web", json!({"size": 2, "maxUnready": 2}), 0)).await;
    env.pool_ready("web", 2).await;
    let red = env.tenant("red", json!({"quota": {"pods": 2}, "vpn": {"enabled": true, "clients": 1}})).await;
    wait_for(&Api::<Tenant>::all(c.clone()), &env.name("red"), T, |t| {
        t.status.as_ref().and_then(|s| s.vpn.as_ref()).is_some_and(|v| v.ready)
    })
    .await;
    red.create(&PostParams::default(), &instance("a", &env.name("web"))).await.unwrap();
    let a = wait_for(&red, "a", T, |i| i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)).await;
    assert_eq!(warm(&a), Some(true));
    // The VPN pod counts too: one pod left, taken by `a`; `b` is refused.
    red.create(&PostParams::default(), &instance("b", &env.name("web"))).await.unwrap();
    let b = wait_for(&red, "b", T, |i| reason(i) == "QuotaExceeded").await;
    let msg = &b.status.as_ref().unwrap().conditions[0].message;
    assert!(msg.contains("pods: 2 in use + 1 needed > 2"), "{msg}");
    red.delete("b", &DeleteParams::default()).await.unwrap();

    // The claimed pod reaches the tenant's VPN and only its own networks.
    if env.tc.sim("uses kubesim's reachability endpoint").is_some() {
        let set = a.status.as_ref().unwrap().claim.as_ref().unwrap().set.clone();
        let pool_ns = env.settings.pool_namespace.clone();
        env.tenant("blue", json!({})).await;
        let blue: Api<Instance> =
            Api::namespaced(c.clone(), &format!("{}{}", env.settings.namespace_prefix, env.name("blue")));
        blue.create(&PostParams::default(), &instance("a", &env.name("web"))).await.unwrap();
        let ba =
            wait_for(&blue, "a", T, |i| i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)).await;
        let blue_set = ba.status.as_ref().unwrap().claim.as_ref().unwrap().set.clone();
        let unclaimed = env
            .pool_pods()
            .list(&ListParams::default().labels(&format!("{POOL}={},!{CLAIM}", env.name("web"))))
            .await
            .unwrap()
            .items;
        let reach = |from: String, to: String, port: u16| {
            let client = c.clone();
            let uri = format!("/sim/v1/reachability?from={from}&to={to}&port={port}&protocol=TCP");
            async move {
                let req = http::Request::get(uri).body(Vec::new()).unwrap();
                let v: Value = serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
                v["allowed"].as_bool().unwrap_or_else(|| panic!("{v}"))
            }
        };
        let red_vpn = format!("{}{}/vpn", env.settings.namespace_prefix, env.name("red"));
        let mine = format!("{pool_ns}/{set}-web");
        let theirs = format!("{pool_ns}/{blue_set}-web");
        assert!(reach(red_vpn.clone(), mine.clone(), 8080).await, "red's VPN reaches its claimed pod");
        assert!(!reach(red_vpn.clone(), mine.clone(), 22).await, "only on the template's ports");
        assert!(!reach(red_vpn.clone(), theirs.clone(), 8080).await, "not blue's claimed pod");
        assert!(!reach(mine.clone(), theirs.clone(), 8080).await, "claimed pods of two tenants are apart");
        if let Some(free) = unclaimed.first() {
            let free = format!("{pool_ns}/{}", free.name_any());
            assert!(!reach(red_vpn.clone(), free.clone(), 8080).await, "nor unclaimed pods");
            // The set's exposure policy is made with the set, and opens only once it is claimed.
            let outside = "203.0.113.7".to_string();
            assert!(!reach(outside.clone(), free.clone(), 9090).await, "an unclaimed pod's exposed port is closed");
        }
        let outside = "203.0.113.7".to_string();
        assert!(reach(outside.clone(), mine.clone(), 9090).await, "a claimed pod's exposed port is open to the world");
        assert!(!reach(outside, mine.clone(), 8080).await, "its other ports are not");
    }

    // Deleting the instance deletes its claimed pods (and their Services and policies).
    let uid = a.uid().unwrap();
    red.delete("a", &DeleteParams::default()).await.unwrap();
    wait_until(T, "a's claimed pods gone", || async {
        env.pool_pods().list(&ListParams::default().labels(&format!("{CLAIM}={uid}"))).await.unwrap().items.is_empty()
    })
    .await;

    // A template change rolls the unclaimed sets to the new generation.
    let before: BTreeSet<String> = env
        .pool_pods()
        .list(&ListParams::default().labels(&format!("{POOL}={},!{CLAIM}", env.name("web"))))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let mut changed = template("web", json!({"size": 2, "maxUnready": 2}), 0);
    changed["spec"]["pods"][0]["env"][0]["value"] = json!("b");
    let generation = controller::pool::build::generation(&env.template(changed).await);
    wait_until(T, "the pool rolled", || async {
        let l = env
            .pool_pods()
            .list(&ListParams::default().labels(&format!("{POOL}={},!{CLAIM}", env.name("web"))))
            .await
            .unwrap()
            .items;
        l.len() == 2
            && l.iter().all(|p| {
                p.labels()["paddock.dev/template-generation"] == generation
                    && !before.contains(&p.name_any())
                    && controller::pool::claim::is_ready(p)
            })
    })
    .await;

    // Shrinking to zero drains the pool.
    env.template(template("web", json!({"size": 0}), 0)).await;
    wait_until(T, "the pool drained", || async {
        env.pool_pods()
            .list(&ListParams::default().labels(&format!("{POOL}={},!{CLAIM}", env.name("web"))))
            .await
            .unwrap()
            .items
            .is_empty()
    })
    .await;
    templates.delete(&env.name("broken"), &DeleteParams::default()).await.unwrap();
    env.stop().await;
}

/// `warmPool.prepull`: a DaemonSet pulls the template's images on every task
/// node (not the VPN node), so a cold start of the same image skips the pull
/// (kubesim: 10 s for these images, 5 ms once on the node); switched off,
/// the DaemonSet goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepull_pulls_the_images_on_every_task_node() {
    let mut cfg = sim_config();
    cfg.images.per_image = vec![("slow.example/*".into(), Duration::from_secs(10))];
    let env = Env::start_with("pp", cfg).await;
    let c = env.tc.client.clone();
    let team = env.tenant("pull", json!({})).await;
    let mut pooled = template("pooled", json!({"size": 1, "maxUnready": 1, "prepull": true}), 0);
    pooled["spec"]["pods"][0]["image"] = json!("slow.example/app:1");
    pooled["spec"]["pods"][0]["readinessProbe"] = Value::Null;
    env.template(pooled.clone()).await;
    let ds_name = &format!("prepull-{}", env.name("pooled"));
    let dss: Api<DaemonSet> = Api::namespaced(c.clone(), &env.settings.pool_namespace);
    let ds = wait_for(&dss, ds_name, Duration::from_secs(90), |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.desired_number_scheduled > 0 && s.number_ready == s.desired_number_scheduled)
    })
    .await;
    let spec = ds.spec.unwrap().template.spec.unwrap();
    let inits = spec.init_containers.unwrap_or_default();
    assert_eq!(inits.iter().map(|c| c.image.as_deref().unwrap_or("")).collect::<Vec<_>>(), ["slow.example/app:1"]);
    if env.tc.is_sim() {
        // On the two task nodes only.
        assert_eq!(ds.status.unwrap().desired_number_scheduled, 2);
        let pods = env
            .pool_pods()
            .list(&ListParams::default().labels(&format!("paddock.dev/prepull={}", env.name("pooled"))))
            .await
            .unwrap();
        let nodes: BTreeSet<String> = pods.items.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()).collect();
        assert_eq!(nodes, BTreeSet::from(["task-1".to_string(), "task-2".to_string()]));
    }

    // A template of the same image without a pool starts cold, without the pull.
    let mut cold = pooled.clone();
    cold["metadata"]["name"] = json!("same-image");
    cold["spec"]["warmPool"] = Value::Null;
    env.template(cold).await;
    for k in 0..2 {
        team.create(&PostParams::default(), &instance(&format!("cold-{k}"), &env.name("same-image"))).await.unwrap();
    }
    for k in 0..2 {
        let i = wait_for(&team, &format!("cold-{k}"), Duration::from_secs(90), |i| {
            i.status.as_ref().and_then(|s| s.phase) == Some(InstancePhase::Running)
        })
        .await;
        let s = i.status.unwrap();
        assert_ne!(s.warm, Some(true), "no pool: a cold start");
        if env.tc.is_sim() {
            let pull = s.scheduled.unwrap().0.duration_until(s.pulled.unwrap().0);
            assert!(pull.as_secs_f64() < 5.0, "the image was on the node already: pulled in {pull:?}, not 10 s");
        }
    }

    // Switched off: the DaemonSet goes.
    pooled["spec"]["warmPool"]["prepull"] = json!(false);
    env.template(pooled).await;
    kubesim::testing::wait_gone(&dss, ds_name, T).await;
    env.stop().await;
}
