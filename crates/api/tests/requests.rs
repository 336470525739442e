//! What a warm claim costs the API server: Paddock's own requests for one
//! warm start of a one-pod template with a port on the VPN-visible network,
//! counted where they are sent (`paddock_kube_requests_total`) and pinned
//! here, so a change that adds a request to the claim fails this test rather
//! than only a benchmark. The refill of the claimed set is pinned too.
//!
//! The counts are Paddock's own (client-side), so they hold on a real
//! cluster as on kubesim.

mod common;

use common::{ADMIN, Env, T};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use resources::Instance;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Requests by "VERB resource" of the given components, WATCH left out (a
/// watch is opened once, not per claim).
fn of(env: &Env, components: &[&str]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((component, verb, resource), n) in env.state.telemetry.requests.snapshot() {
        if components.contains(&component.as_str()) && verb != "WATCH" {
            *out.entry(format!("{verb} {resource}")).or_default() += n;
        }
    }
    out
}

fn minus(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Waits until the counts of `components` have not changed for a second.
async fn quiet(env: &Env, components: &[&str]) -> BTreeMap<String, u64> {
    let mut last = of(env, components);
    let deadline = std::time::Instant::now() + T;
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let now = of(env, components);
        if now == last {
            return now;
        }
        assert!(std::time::Instant::now() < deadline, "requests never settled: {now:?}");
        last = now;
    }
}

fn pinned(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[tokio::test]
async fn a_warm_claim_and_its_refill_make_the_pinned_requests() {
    let env = Env::start().await;
    let tpl = format!("floor-{}", env.id);
    let spec = json!({"spec": {"maxPerTenant": 3, "warmPool": {"size": 1},
        "networks": ["teamnet"],
        "pods": [{"name": "web", "image": "nginx:1.27", "networks": ["teamnet"],
                  "ports": [{"name": "http", "port": 80}]}]}});
    let (code, body) = env.call("PUT", &format!("/v1/templates/{tpl}"), Some(ADMIN), Some(spec)).await;
    assert_eq!(code, 201, "{body}");
    // A pod quota: a claim checks the tenant's usage (from its quota's
    // status in the watch cache, not a list of its pods).
    let tenants: Api<resources::Tenant> = Api::all(env.tc.client.clone());
    let quota = json!({"spec": {"quota": {"instances": 3, "pods": 10}}});
    tenants.patch(&env.alpha, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&quota)).await.unwrap();
    let pool_ns = env.state.settings().pool_namespace.clone();
    let pods: Api<Pod> = Api::namespaced(env.tc.client.clone(), &pool_ns);
    let ready_sets = || async {
        let lp = ListParams::default().labels(&format!("paddock.dev/pool={tpl},!paddock.dev/claim"));
        pods.list(&lp).await.unwrap().items.iter().filter(|p| controller::pool::claim::is_ready(p)).count()
    };
    kubesim::testing::wait_until(T, "the pool to fill", || async { ready_sets().await == 1 }).await;
    const CLAIM: &[&str] = &["api", "instance"];
    const REFILL: &[&str] = &["pool"];
    const OTHERS: &[&str] = &["tenant", "template"];
    let ns = env.state.namespace(&env.alpha);
    let insts: Api<Instance> = Api::namespaced(env.tc.client.clone(), &ns);
    // One warm start: (its requests, the refill's, the other reconcilers').
    let start = async |name: &str| {
        let all = [CLAIM, REFILL, OTHERS].concat();
        quiet(&env, &all).await;
        let before = [of(&env, CLAIM), of(&env, REFILL), of(&env, OTHERS)];
        let (code, body) = env
            .call(
                "POST",
                &format!("/v1/tenants/{}/instances", env.alpha),
                Some(ADMIN),
                Some(json!({"template": tpl, "name": name})),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        kubesim::testing::wait_until(T, "the instance to run warm", || async {
            let s = insts.get(name).await.unwrap().status.unwrap_or_default();
            s.phase == Some(resources::InstancePhase::Running) && s.warm == Some(true)
        })
        .await;
        kubesim::testing::wait_until(T, "the pool to refill", || async { ready_sets().await == 1 }).await;
        quiet(&env, &all).await;
        [
            minus(&of(&env, CLAIM), &before[0]),
            minus(&of(&env, REFILL), &before[1]),
            minus(&of(&env, OTHERS), &before[2]),
        ]
    };
    let [first, refill, others] = start("one").await;
    // The instance's create, the relabel of its pod (the claim), its status,
    // and the tenant's VPN access to its pods of this template, made at its
    // first claim of it; one Event (in the background, not waited for).
    let access = [("APPLY networkpolicies", 1)];
    let claim = [("POST instances", 1), ("PUT pods", 1), ("PATCH instances/status", 1), ("POST events", 1)];
    assert_eq!(first, pinned(&[&claim[..], &access[..]].concat()), "the first warm claim's requests");
    // A new set: its headless Service and network policy first, then its
    // pod; the pool's status (Filling, then Ready again).
    let set = [("POST services", 1), ("POST networkpolicies", 1), ("POST pods", 1), ("PATCH templates/status", 2)];
    assert_eq!(refill, pinned(&set), "a refill's requests");
    assert_eq!(others, pinned(&[]), "the other reconcilers' requests");
    let [second, refill, others] = start("two").await;
    assert_eq!(second, pinned(&claim), "a later warm claim's requests: the access is there");
    assert_eq!(refill, pinned(&set));
    assert_eq!(others, pinned(&[]));
    env.finish().await;
}
