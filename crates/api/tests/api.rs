//! The API against kubesim (or a real cluster): every route is in the OpenAPI
//! document, the authorization matrix, problem+json for bad input, idempotent
//! start, renew, quota and limits, token revocation.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// No token needed.
    Public,
    /// Any valid token.
    Any,
    /// Admins only; no tenant in the path.
    Admin,
    /// Admins and the tenant in the path.
    Tenant,
    /// Admins only, but the tenant in the path sees 403 and others 404.
    TenantAdmin,
    /// Warm pods' pool tokens only: every other token is refused.
    Pool,
}
use Access::*;

/// The routes the API promises (method, path, access, a valid body).
fn routes(env: &Env) -> Vec<(&'static str, &'static str, Access, Option<Value>)> {
    vec![
        ("get", "/healthz", Public, None),
        ("get", "/readyz", Public, None),
        ("get", "/v1/tenants", Any, None),
        ("post", "/v1/tenants", Admin, Some(json!({"name": format!("new-{}", env.id), "spec": {"kind": "User"}}))),
        ("get", "/v1/tenants/{tenant}", Tenant, None),
        ("patch", "/v1/tenants/{tenant}", TenantAdmin, Some(json!({"displayName": "Alpha"}))),
        ("delete", "/v1/tenants/{tenant}", TenantAdmin, None),
        ("post", "/v1/tenants/{tenant}/kubeconfig", Tenant, Some(json!({"ttl": "10m"}))),
        ("get", "/v1/templates", Any, None),
        ("post", "/v1/templates", Admin, Some(json!({"name": "x", "spec": {"pods": []}}))),
        ("get", "/v1/templates/{template}", Any, None),
        ("put", "/v1/templates/{template}", Admin, Some(json!({"spec": {"pods": []}}))),
        ("delete", "/v1/templates/{template}", Admin, None),
        ("get", "/v1/instances", Admin, None),
        ("get", "/v1/tenants/{tenant}/instances", Tenant, None),
        ("post", "/v1/tenants/{tenant}/instances", Tenant, Some(json!({"template": "no-such-template"}))),
        ("get", "/v1/tenants/{tenant}/instances/{instance}", Tenant, None),
        ("get", "/v1/tenants/{tenant}/instances/{instance}/logs", Tenant, None),
        ("delete", "/v1/tenants/{tenant}/instances/{instance}", Tenant, None),
        ("post", "/v1/tenants/{tenant}/instances/{instance}/renew", Tenant, Some(json!({"ttl": "1m"}))),
        ("post", "/v1/tenants/{tenant}/instances/{instance}/heartbeat", Tenant, None),
        ("post", "/v1/tenants/{tenant}/instances/{instance}/suspend", Tenant, None),
        ("post", "/v1/tenants/{tenant}/instances/{instance}/resume", Tenant, None),
        ("get", "/v1/tenants/{tenant}/tokens", TenantAdmin, None),
        ("post", "/v1/tenants/{tenant}/tokens", TenantAdmin, Some(json!({}))),
        ("delete", "/v1/tenants/{tenant}/tokens/{id}", TenantAdmin, None),
        ("get", "/v1/nodes", Admin, None),
        ("get", "/v1/nodes/{node}", Admin, None),
        ("get", "/v1/audit", Admin, None),
        ("get", "/v1/audit/explain", Admin, None),
        ("get", "/v1/events", Admin, None),
        ("get", "/v1/tenants/{tenant}/events", Tenant, None),
        ("get", "/v1/tenants/{tenant}/vpn/clients", Tenant, None),
        ("get", "/v1/tenants/{tenant}/vpn/clients/{client}/config", Tenant, None),
        ("post", "/v1/tenants/{tenant}/vpn/clients/{client}/rotate", Tenant, None),
        ("post", "/v1/tenants/{tenant}/vpn/rotate", Tenant, None),
        ("get", "/v1/claim", Pool, None),
        // In this order: what the GETs read is there, and the DELETE finds what the PUT wrote.
        ("get", "/v1/tenants/{tenant}/storage/files", Tenant, None),
        ("get", "/v1/tenants/{tenant}/storage/files/content", Tenant, None),
        ("put", "/v1/tenants/{tenant}/storage/files/content", Tenant, None),
        ("post", "/v1/tenants/{tenant}/storage/files/mkdir", Tenant, None),
        ("delete", "/v1/tenants/{tenant}/storage/files", Tenant, None),
        ("get", "/v1/tenants/{tenant}/storage/groups/{group}/files", Tenant, None),
        ("get", "/v1/tenants/{tenant}/storage/groups/{group}/files/content", Tenant, None),
        ("put", "/v1/tenants/{tenant}/storage/groups/{group}/files/content", Tenant, None),
        ("post", "/v1/tenants/{tenant}/storage/groups/{group}/files/mkdir", Tenant, None),
        ("delete", "/v1/tenants/{tenant}/storage/groups/{group}/files", Tenant, None),
        // Clusters (kubesim plays Cluster API): the POST meets the quota of one.
        ("get", "/v1/tenants/{tenant}/clusters", Tenant, None),
        ("post", "/v1/tenants/{tenant}/clusters", Tenant, Some(json!({"name": "another"}))),
        ("get", "/v1/tenants/{tenant}/clusters/{cluster}", Tenant, None),
        ("get", "/v1/tenants/{tenant}/clusters/{cluster}/kubeconfig", Tenant, None),
        ("patch", "/v1/tenants/{tenant}/clusters/{cluster}", Tenant, Some(json!({"workers": 1}))),
        ("post", "/v1/tenants/{tenant}/clusters/{cluster}/ssh-key", Tenant, None),
        ("delete", "/v1/tenants/{tenant}/clusters/{cluster}", Tenant, None),
    ]
}

async fn start(env: &Env, tenant: &str, token: &str, body: Value) -> (StatusCode, Value) {
    env.call("POST", &format!("/v1/tenants/{tenant}/instances"), Some(token), Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_guarded() {
    let env = Env::start().await;
    // The document lists exactly the promised routes.
    let (code, doc) = env.call("GET", "/openapi.json", None, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let promised: BTreeSet<(String, String)> =
        routes(&env).iter().map(|(m, p, _, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, promised, "the OpenAPI document and the routes differ");

    // Every answer says how long the API took (W3C Server-Timing).
    let req = axum::http::Request::get("/healthz").body(axum::body::Body::empty()).unwrap();
    let resp = tower::ServiceExt::oneshot(env.router.clone(), req).await.unwrap();
    let timing = resp.headers()["server-timing"].to_str().unwrap().to_string();
    let ms: f64 = timing.strip_prefix("app;dur=").expect("app;dur=<ms>").parse().unwrap();
    assert!(ms >= 0.0, "{timing}");

    // Real objects for the path parameters, for alpha and beta.
    let mut inst = std::collections::BTreeMap::new();
    for (t, tok) in [(&env.alpha, &env.alpha_token), (&env.beta, &env.beta_token)] {
        let (code, body) = start(&env, t, tok, json!({"template": env.template})).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        inst.insert(t.clone(), body["name"].as_str().unwrap().to_string());
    }
    // Running, so that their logs can be read.
    for (t, name) in &inst {
        let path = format!("/v1/tenants/{t}/instances/{name}");
        kubesim::testing::wait_until(T, "the instance runs", || async {
            env.call("GET", &path, Some(ADMIN), None).await.1["phase"] == "Running"
        })
        .await;
    }
    // An admin sees every tenant's instances in one list.
    let (code, all) = env.call("GET", "/v1/instances?limit=1000", Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::OK, "{all}");
    for (t, name) in &inst {
        let mine =
            all["items"].as_array().unwrap().iter().any(|i| i["tenant"] == t.as_str() && i["name"] == name.as_str());
        assert!(mine, "{t}/{name} missing from {all}");
    }
    let (_, toks) = env.call("GET", &format!("/v1/tenants/{}/tokens", env.beta), Some(ADMIN), None).await;
    let beta_token_id = toks[0]["id"].as_str().unwrap().to_string();
    let (_, alpha_toks) = env.call("GET", &format!("/v1/tenants/{}/tokens", env.alpha), Some(ADMIN), None).await;
    let alpha_token_id = alpha_toks[0]["id"].as_str().unwrap().to_string();
    let (_, nodes) = env.call("GET", "/v1/nodes", Some(ADMIN), None).await;
    let node = nodes[0]["name"].as_str().unwrap().to_string();
    // Each node says what its pods request of what it can allocate; the
    // pods it counts include Paddock's (one list, so the two agree).
    for n in nodes.as_array().unwrap() {
        let requested: Vec<&str> =
            n["requested"].as_array().unwrap().iter().filter_map(|u| u["resource"].as_str()).collect();
        assert_eq!(requested, ["cpu", "memory", "pods"], "{n}");
        let pods: u64 = n["requested"][2]["used"].as_str().unwrap().parse().unwrap();
        assert!(pods >= n["pods"].as_u64().unwrap(), "{n}");
    }
    // Storage for the file browser's routes: alpha and beta get volumes and a
    // group; each volume holds /hello.
    let group = format!("grp-{}", env.id);
    if env.tc.is_sim() {
        let body = json!({"name": group, "spec": {"kind": "Group", "storage": {"size": "1Mi"}}});
        assert_eq!(env.call("POST", "/v1/tenants", Some(ADMIN), Some(body)).await.0, StatusCode::CREATED);
        env.wait_tenant_ready(&group).await;
        for t in [&env.alpha, &env.beta] {
            let patch = json!({"storage": {"enabled": true}, "groups": [group]});
            let (code, v) = env.call("PATCH", &format!("/v1/tenants/{t}"), Some(ADMIN), Some(patch)).await;
            assert_eq!(code, StatusCode::OK, "{v}");
        }
        let (alpha, beta) = (env.alpha.clone(), env.beta.clone());
        let bases = [
            format!("/v1/tenants/{alpha}/storage/files"),
            format!("/v1/tenants/{beta}/storage/files"),
            format!("/v1/tenants/{beta}/storage/groups/{group}/files"),
        ];
        for base in bases {
            kubesim::testing::wait_until(T, "beta's volumes are there", || async {
                let path = format!("{base}/content?path=/hello");
                env.call_full("PUT", &path, Some(ADMIN), Some("hi".into()), &[]).await.0 == StatusCode::CREATED
            })
            .await;
        }
    }
    // A cluster each for alpha and beta, Running (so its kubeconfig is there).
    if env.tc.is_sim() {
        let profile: resources::cluster::ClusterProfile = serde_json::from_value(json!({
            "apiVersion": "paddock.dev/v1alpha1", "kind": "ClusterProfile", "metadata": {"name": "default"},
            "spec": {"infrastructure": {
                "cluster": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimCluster"},
                "machine": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "KubesimMachineTemplate"}}}}))
        .unwrap();
        let profiles: kube::Api<resources::cluster::ClusterProfile> = kube::Api::all(env.tc.client.clone());
        let pp = kube::api::PatchParams::apply("test").force();
        profiles.patch("default", &pp, &kube::api::Patch::Apply(&profile)).await.unwrap();
        for t in [&env.alpha, &env.beta] {
            let body = json!({"name": "c1", "workers": 1});
            let (code, v) = env.call("POST", &format!("/v1/tenants/{t}/clusters"), Some(ADMIN), Some(body)).await;
            assert_eq!(code, StatusCode::CREATED, "{v}");
        }
        for t in [&env.alpha, &env.beta] {
            let path = format!("/v1/tenants/{t}/clusters/c1");
            kubesim::testing::wait_until(T, "the cluster runs", || async {
                env.call("GET", &path, Some(ADMIN), None).await.1["phase"] == "Running"
            })
            .await;
        }
    }
    let fill = |method: &str, path: &str, tenant: &str| {
        let id = if tenant == env.alpha { &alpha_token_id } else { &beta_token_id };
        let query = match (method, path.rsplit('/').next()) {
            ("get", Some("content")) => "?path=/hello",
            ("put", Some("content")) => "?path=/hello&replace=true",
            ("post", Some("mkdir")) => "?path=/made",
            ("delete", Some("files")) => "?path=/hello",
            _ => "",
        };
        let path = format!("{path}{query}");
        path.replace("{tenant}", tenant)
            .replace("{group}", &group)
            .replace("{instance}", &inst[tenant])
            .replace("{template}", &env.template)
            .replace("{id}", id)
            .replace("{node}", &node)
            .replace("{client}", "1")
            .replace("{cluster}", "c1")
            .replace("/v1/audit/explain", "/v1/audit/explain?from=192.0.2.1&to=10.0.0.1&port=80")
    };

    let mut failures = Vec::new();
    for (method, path, access, body) in routes(&env) {
        if (path.contains("/storage/") || path.contains("/clusters")) && !env.tc.is_sim() {
            // The test process cannot reach a file server's pod address on a
            // real cluster (see tests/files.rs for what runs there).
            continue;
        }
        let fill = |path: &str, tenant: &str| fill(method, path, tenant);
        let m = method.to_uppercase();
        let body = body.map(|b| b.to_string());
        let mut check = |who: &str, got: StatusCode, ok: bool, detail: &Value| {
            if !ok {
                failures.push(format!("{m} {path} as {who}: {got} {detail}"));
            }
        };
        // No token, and a token nobody issued.
        for (who, tok) in [("no token", None), ("a bad token", Some("pdk.alpha.0000.bogus"))] {
            let (got, h, v) = env.call_full(&m, &fill(path, &env.alpha), tok, body.clone(), &[]).await;
            if access == Public {
                check(who, got, got == StatusCode::OK, &v);
            } else {
                let problem = h.get("content-type").is_some_and(|c| c == "application/problem+json");
                check(who, got, got == StatusCode::UNAUTHORIZED && problem, &v);
            }
        }
        if access == Public {
            continue;
        }
        if access == Pool {
            for (who, tok) in [("a tenant token", env.alpha_token.as_str()), ("admin", ADMIN)] {
                let (got, _, v) = env.call_full(&m, path, Some(tok), None, &[]).await;
                check(who, got, got == StatusCode::UNAUTHORIZED, &v);
            }
            continue;
        }
        // A tenant token on its own tenant and on another.
        let (own, _, v) = env.call_full(&m, &fill(path, &env.alpha), Some(&env.alpha_token), body.clone(), &[]).await;
        match access {
            Any | Tenant => check("own tenant", own, !matches!(own.as_u16(), 401 | 403 | 404 | 500..), &v),
            Admin | TenantAdmin => check("own tenant", own, own == StatusCode::FORBIDDEN, &v),
            Public | Pool => {}
        }
        if path.contains("{tenant}") {
            let (other, _, v) =
                env.call_full(&m, &fill(path, &env.beta), Some(&env.alpha_token), body.clone(), &[]).await;
            check("other tenant", other, other == StatusCode::NOT_FOUND, &v);
            // Not even an absent tenant is told apart from a hidden one.
            let (absent, _, v2) = env
                .call_full(
                    &m,
                    &fill(path, &env.beta).replace(&env.beta, "nobody-here"),
                    Some(&env.alpha_token),
                    body.clone(),
                    &[],
                )
                .await;
            check(
                "absent tenant",
                absent,
                absent == StatusCode::NOT_FOUND
                    && v2["detail"] == v["detail"].as_str().unwrap().replace(&env.beta, "nobody-here"),
                &v2,
            );
        }
        // Admins may read everything (mutations are exercised by the other tests; the
        // tenants here have no VPN, so its routes answer 409).
        if m == "GET" && !path.contains("/vpn/") {
            let (adm, _, v) = env.call_full(&m, &fill(path, &env.beta), Some(ADMIN), None, &[]).await;
            check("admin", adm, adm == StatusCode::OK, &v);
        }
    }
    assert!(failures.is_empty(), "authorization matrix:\n{}", failures.join("\n"));
    env.call("DELETE", &format!("/v1/tenants/{group}"), Some(ADMIN), None).await;
    env.finish().await;
}

/// Method, path, token, body, expected status, expected `field`.
type Case<'a> = (&'a str, String, Option<&'a str>, Option<String>, u16, Option<&'a str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_problems_naming_the_field() {
    let env = Env::start().await;
    let a = env.alpha.clone();
    let inst = format!("/v1/tenants/{a}/instances");
    let cases: Vec<Case> = vec![
        // The template has a port: its instances' Services are named after them.
        (
            "POST",
            inst.clone(),
            Some(ADMIN),
            Some(r#"{"template": "TPL", "name": "1st"}"#.replace("TPL", &env.template)),
            422,
            Some("name"),
        ),
        ("POST", "/v1/tenants".into(), Some(ADMIN), Some("{not json".into()), 400, None),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(r#"{"name": "x", "spec": {"kind": "Robot"}}"#.into()),
            422,
            Some("spec.kind"),
        ),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(r#"{"name": "Bad_Name", "spec": {"kind": "Team"}}"#.into()),
            422,
            Some("name"),
        ),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(r#"{"name": "ok", "spec": {"kind": "Team", "quota": {"cpu": "lots"}}}"#.into()),
            422,
            Some("spec.quota.cpu"),
        ),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(r#"{"name": "ok", "spec": {"kind": "Team"}, "extra": 1}"#.into()),
            422,
            None,
        ),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(format!(r#"{{"name": "{a}", "spec": {{"kind": "Team"}}}}"#)),
            409,
            None,
        ),
        (
            "PATCH",
            format!("/v1/tenants/{a}"),
            Some(ADMIN),
            Some(r#"{"quota": {"memory": "much"}}"#.into()),
            422,
            Some("spec.quota.memory"),
        ),
        ("PATCH", format!("/v1/tenants/{a}"), Some(ADMIN), Some("[1]".into()), 422, Some("spec")),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(r#"{"name": "member", "spec": {"kind": "User", "groups": [""]}}"#.into()),
            422,
            Some("spec.groups[0]"),
        ),
        // A group that exists but is a Team is refused at once (the controller would fail it).
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(format!(r#"{{"name": "member", "spec": {{"kind": "User", "groups": ["{a}"]}}}}"#)),
            422,
            Some("spec.groups[0]"),
        ),
        (
            "PATCH",
            format!("/v1/tenants/{}", env.beta),
            Some(ADMIN),
            Some(format!(r#"{{"groups": ["{a}"]}}"#)),
            422,
            Some("spec.groups[0]"),
        ),
        (
            "PATCH",
            format!("/v1/tenants/{a}"),
            Some(ADMIN),
            Some(r#"{"storage": {"size": "1Mi"}}"#.into()),
            422,
            Some("spec.storage.size"),
        ),
        (
            "POST",
            "/v1/templates".into(),
            Some(ADMIN),
            Some(r#"{"name": "t1", "spec": {"pods": []}}"#.into()),
            422,
            Some("spec.pods"),
        ),
        (
            "PUT",
            format!("/v1/templates/{}", env.template),
            Some(ADMIN),
            Some(r#"{"name": "other", "spec": {"pods": []}}"#.into()),
            422,
            Some("name"),
        ),
        ("POST", inst.clone(), Some(&env.alpha_token), Some(r#"{"template": 5}"#.into()), 422, Some("template")),
        ("POST", inst.clone(), Some(&env.alpha_token), Some(r#"{"template": "nope"}"#.into()), 422, Some("template")),
        (
            "POST",
            inst.clone(),
            Some(&env.alpha_token),
            Some(format!(r#"{{"template": "{}", "ttl": "forever"}}"#, env.template)),
            422,
            Some("ttl"),
        ),
        (
            "POST",
            inst.clone(),
            Some(&env.alpha_token),
            Some(format!(r#"{{"template": "{}", "ttl": "5h"}}"#, env.template)),
            422,
            Some("ttl"),
        ),
        (
            "POST",
            inst.clone(),
            Some(&env.alpha_token),
            Some(format!(r#"{{"template": "{}", "env": {{"SECRET": "x"}}}}"#, env.template)),
            422,
            Some("env.SECRET"),
        ),
        (
            "POST",
            inst.clone(),
            Some(&env.alpha_token),
            Some(format!(r#"{{"template": "{}", "name": "Not OK"}}"#, env.template)),
            422,
            Some("name"),
        ),
        ("POST", inst.clone(), Some(&env.alpha_token), None, 400, None),
        ("GET", format!("{inst}?limit=0"), Some(&env.alpha_token), None, 400, Some("limit")),
        ("GET", format!("{inst}?limit=abc"), Some(&env.alpha_token), None, 400, None),
        ("GET", format!("{inst}/missing"), Some(&env.alpha_token), None, 404, None),
        ("POST", format!("{inst}/missing/renew"), Some(&env.alpha_token), None, 404, None),
        (
            "POST",
            format!("/v1/tenants/{a}/tokens"),
            Some(ADMIN),
            Some(format!(r#"{{"description": "{}"}}"#, "x".repeat(300))),
            422,
            Some("description"),
        ),
        ("POST", format!("/v1/tenants/{a}/tokens"), Some(ADMIN), Some(r#"{"ttl": "10s"}"#.into()), 422, Some("ttl")),
        ("POST", format!("/v1/tenants/{a}/tokens"), Some(ADMIN), Some(r#"{"ttl": "soon"}"#.into()), 422, Some("ttl")),
        ("DELETE", format!("/v1/tenants/{a}/tokens/ffffffff"), Some(ADMIN), None, 404, None),
        ("GET", "/v1/nodes/no-such-node".into(), Some(ADMIN), None, 404, None),
        ("GET", "/v2/whatever".into(), Some(ADMIN), None, 404, None),
        ("PUT", "/v1/tenants".into(), Some(ADMIN), Some("{}".into()), 405, None),
        (
            "POST",
            "/v1/tenants".into(),
            Some(ADMIN),
            Some(format!(r#"{{"name": "{}"}}"#, "x".repeat(300 * 1024))),
            413,
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (m, path, tok, body, want, field) in cases {
        let (got, h, v) = env.call_full(m, &path, tok, body, &[]).await;
        let problem = h.get("content-type").is_some_and(|c| c == "application/problem+json");
        let field_ok = field.is_none_or(|f| v["field"] == f);
        let typed = v["type"].as_str().is_some_and(|t| t.starts_with("https://paddock.dev/problems/"));
        let detail = v["detail"].as_str().is_some_and(|d| !d.is_empty());
        if got.as_u16() != want || !problem || !field_ok || !typed || !detail {
            failures.push(format!("{m} {path}: want {want} field {field:?}, got {got} {v}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing half-done: none of the refused creates left an object behind.
    let (_, list) = env.call("GET", &inst, Some(&env.alpha_token), None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_idempotent_renew_extends_and_limits_answer_429() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let path = format!("/v1/tenants/{a}/instances");
    let body = json!({"template": env.template, "env": {"MODE": "hard"}}).to_string();
    // Ten concurrent retries with one key: one instance.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (router, path, body, tok) = (env.router.clone(), path.clone(), body.clone(), tok.clone());
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post(&path)
                .header("authorization", format!("Bearer {tok}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "order-42")
                .body(axum::body::Body::from(body))
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let code = resp.status();
            let replayed = resp.headers().contains_key("idempotent-replayed");
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            (code, replayed, v["name"].as_str().unwrap_or_default().to_string())
        }));
    }
    let mut names = BTreeSet::new();
    let mut created = 0;
    for t in tasks {
        let (code, replayed, name) = t.await.unwrap();
        assert!(code == StatusCode::CREATED || (code == StatusCode::OK && replayed), "{code}");
        created += usize::from(code == StatusCode::CREATED);
        names.insert(name);
    }
    assert_eq!((created, names.len()), (1, 1), "exactly one instance for one key");
    let name = names.into_iter().next().unwrap();
    // The same key with another body is refused.
    let other = json!({"template": env.template, "env": {"MODE": "easy"}}).to_string();
    let (code, _, v) = env.call_full("POST", &path, Some(&tok), Some(other), &[("idempotency-key", "order-42")]).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")), "{v}");
    // So is the same key for another instance name (or template): not a second instance.
    let renamed = json!({"template": env.template, "name": "other-name", "env": {"MODE": "hard"}}).to_string();
    let (code, _, v) =
        env.call_full("POST", &path, Some(&tok), Some(renamed), &[("idempotency-key", "order-42")]).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains(&name), "names the instance the key started: {v}");

    // maxPerTenant is 2: the second starts, the third is a 429 with Retry-After.
    let (code, v) = start(&env, &a, &tok, json!({"template": env.template})).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, h, v) =
        env.call_full("POST", &path, Some(&tok), Some(json!({"template": env.template}).to_string()), &[]).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["type"], "https://paddock.dev/problems/instance-limit");
    assert!(h.get("retry-after").is_some());

    // The tenant's instance quota (3) is enforced by the cluster and reported as 429 too.
    let (code, h, v) = env
        .call_full(
            "PATCH",
            &format!("/v1/tenants/{a}"),
            Some(ADMIN),
            Some(json!({"quota": {"instances": 2}}).to_string()),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let _ = h;
    let second = json!({"spec": {"maxPerTenant": 5, "ttl": "1h", "maxTtl": "2h", "pods": [{"name": "web", "image": "nginx:1.27"}]}});
    let tpl2 = format!("{}-b", env.template);
    let (code, v) = env.call("PUT", &format!("/v1/templates/{tpl2}"), Some(ADMIN), Some(second)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    kubesim::testing::wait_until(T, "the quota shows 2 instances", || async {
        let (code, _) = start(&env, &a, &tok, json!({"template": tpl2})).await;
        code == StatusCode::TOO_MANY_REQUESTS
    })
    .await;
    let (code, h, v) = env.call_full("POST", &path, Some(&tok), Some(json!({"template": tpl2}).to_string()), &[]).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["type"], "https://paddock.dev/problems/quota-exceeded", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("its quota (spec.quota.instances) allows 2"), "{v}");
    assert_eq!(h.get("retry-after").unwrap(), "30");

    // A template that needs more than the tenant's whole quota could never
    // start: 422 naming the need and the quota, and nothing is created.
    let (code, v) = env
        .call("PATCH", &format!("/v1/tenants/{a}"), Some(ADMIN), Some(json!({"quota": {"instances": 2, "cpu": "2"}})))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let huge = json!({"spec": {"pods": [{"name": "web", "image": "nginx:1.27",
        "resources": {"requests": {"cpu": "3", "memory": "64Mi"}}}]}});
    let tpl3 = format!("{}-huge", env.template);
    let (code, v) = env.call("PUT", &format!("/v1/templates/{tpl3}"), Some(ADMIN), Some(huge)).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = start(&env, &a, &tok, json!({"template": tpl3, "name": "too-big"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "template", "{v}");
    let want = format!("\"{tpl3}\" needs cpu 3, more than tenant \"{a}\"'s whole quota (spec.quota.cpu 2)");
    assert!(v["detail"].as_str().unwrap().contains(&want), "{v}");
    assert_eq!(env.call("GET", &format!("{path}/too-big"), Some(&tok), None).await.0, StatusCode::NOT_FOUND);
    let _ = env.call("DELETE", &format!("/v1/templates/{tpl3}"), Some(ADMIN), None).await;

    // Renew: the lifetime grows, capped at maxTtl (2h); past that, 409.
    let ipath = format!("{path}/{name}");
    let (code, v) = env.call("POST", &format!("{ipath}/renew"), Some(&tok), Some(json!({"ttl": "90m"}))).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let ttl = resources::template::parse_duration(v["ttl"].as_str().unwrap()).unwrap().as_secs();
    assert!((5400..5460).contains(&ttl), "{v}");
    // The answer has the new expiry (the status catches up later): creation + ttl.
    let at = |k: &str| v[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert_eq!((at("expires") - at("created")).get_seconds(), ttl as i64, "{v}");
    // A renewal never shortens: 30 minutes from now is sooner than the 90 just set.
    let (code, v2) = env.call("POST", &format!("{ipath}/renew"), Some(&tok), Some(json!({"ttl": "30m"}))).await;
    assert_eq!((code, &v2["ttl"], &v2["expires"]), (StatusCode::OK, &v["ttl"], &v["expires"]), "{v2}");
    let (_, now) = env.call("GET", &ipath, Some(&tok), None).await;
    assert_eq!(now["ttl"], v["ttl"], "nothing was written: {now}");
    let (code, bad) = env.call("POST", &format!("{ipath}/renew"), Some(&tok), Some(json!({"ttl": "soon"}))).await;
    assert_eq!((code, bad["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("ttl")), "{bad}");
    let (code, v) = env.call("POST", &format!("{ipath}/renew"), Some(&tok), Some(json!({"ttl": "5h"}))).await;
    assert_eq!((code, v["ttl"].as_str()), (StatusCode::OK, Some("7200s")), "{v}");
    let (code, v) = env.call("POST", &format!("{ipath}/renew"), Some(&tok), None).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::CONFLICT, Some("https://paddock.dev/problems/renewal-limit")),
        "{v}"
    );

    // Stop: 202, then gone.
    let (code, v) = env.call("DELETE", &ipath, Some(&tok), None).await;
    assert_eq!((code, v["phase"].as_str()), (StatusCode::ACCEPTED, Some("Stopping")), "{v}");
    // It says what is happening, not what was true before the stop.
    assert_eq!(v["message"], "being stopped: its pods, services and policies are removed", "{v}");
    assert_eq!(v["stopping"], true, "{v}");
    kubesim::testing::wait_until(T, "the instance is gone", || async {
        env.call("GET", &ipath, Some(&tok), None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    let _ = env.call("DELETE", &format!("/v1/templates/{tpl2}"), Some(ADMIN), None).await;

    // A template in use stays when deleted, refusing new instances and
    // changes, until its last instance is gone.
    let tpl4 = format!("{}-kept", env.template);
    let kept = json!({"spec": {"pods": [{"name": "web", "image": "nginx:1.27"}]}});
    let (code, v) = env.call("PUT", &format!("/v1/templates/{tpl4}"), Some(ADMIN), Some(kept.clone())).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let tpath = format!("/v1/templates/{tpl4}");
    kubesim::testing::wait_until(T, "the template's finalizer", || async {
        let (_, v) = env.call("GET", &tpath, Some(ADMIN), None).await;
        v["status"]["conditions"][0]["status"] == "True"
    })
    .await;
    let (code, v) = start(&env, &a, &tok, json!({"template": tpl4, "name": "keeper"})).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = env.call("DELETE", &tpath, Some(ADMIN), None).await;
    assert_eq!((code, &v["deleting"]), (StatusCode::ACCEPTED, &json!(true)), "{v}");
    let (code, v) = env.call("GET", &tpath, Some(ADMIN), None).await;
    assert_eq!((code, &v["deleting"]), (StatusCode::OK, &json!(true)), "{v}");
    let (code, v) = start(&env, &a, &tok, json!({"template": tpl4})).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::CONFLICT, Some("https://paddock.dev/problems/template-deleting"))
    );
    let (code, v) = env.call("PUT", &tpath, Some(ADMIN), Some(kept)).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::CONFLICT, Some("https://paddock.dev/problems/template-deleting"))
    );
    assert_eq!(env.call("DELETE", &format!("{path}/keeper"), Some(&tok), None).await.0, StatusCode::ACCEPTED);
    kubesim::testing::wait_until(T, "the template goes with its last instance", || async {
        env.call("GET", &tpath, Some(ADMIN), None).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_hashed_listed_and_revocable() {
    let env = Env::start().await;
    let a = env.alpha.clone();
    let (code, issued) =
        env.call("POST", &format!("/v1/tenants/{a}/tokens"), Some(ADMIN), Some(json!({"description": "ci"}))).await;
    assert_eq!(code, StatusCode::CREATED);
    let token = issued["token"].as_str().unwrap().to_string();
    assert_eq!(env.call("GET", &format!("/v1/tenants/{a}"), Some(&token), None).await.0, StatusCode::OK);
    // Only a salted hash is stored.
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(env.tc.client.clone(), &env.state.settings().system_namespace);
    let stored = secrets.get(&api::auth::token_secret(&a)).await.unwrap();
    let raw = serde_json::to_string(&stored.data).unwrap();
    let secret_part = token.rsplit('.').next().unwrap();
    assert!(!raw.contains(secret_part));
    let (_, list) = env.call("GET", &format!("/v1/tenants/{a}/tokens"), Some(ADMIN), None).await;
    assert!(list.as_array().unwrap().iter().any(|t| t["description"] == "ci" && t.get("token").is_none()), "{list}");
    // Revoked: the next request fails.
    let id = issued["id"].as_str().unwrap();
    let (code, _) = env.call("DELETE", &format!("/v1/tenants/{a}/tokens/{id}"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(env.call("GET", &format!("/v1/tenants/{a}"), Some(&token), None).await.0, StatusCode::UNAUTHORIZED);
    // A token with a ttl: it says when it expires; past that it stops working,
    // and the next issue removes it from the Secret.
    let tokens = format!("/v1/tenants/{a}/tokens");
    let (code, short) = env.call("POST", &tokens, Some(ADMIN), Some(json!({"ttl": "2h"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{short}");
    let expires: jiff::Timestamp = short["expires"].as_str().unwrap().parse().unwrap();
    let left = jiff::Timestamp::now().duration_until(expires).as_secs();
    assert!((7190..=7201).contains(&left), "{short}");
    let (sid, stoken) = (short["id"].as_str().unwrap(), short["token"].as_str().unwrap());
    assert_eq!(env.call("GET", &format!("/v1/tenants/{a}"), Some(stoken), None).await.0, StatusCode::OK);
    // Two hours later, as far as the token is concerned:
    let data = secrets.get(&api::auth::token_secret(&a)).await.unwrap().data.unwrap();
    let mut st: api::auth::StoredToken = serde_json::from_slice(&data[sid].0).unwrap();
    st.expires = Some("2020-01-01T00:00:00Z".into());
    let patch = json!({"data": {sid: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, serde_json::to_vec(&st).unwrap())}});
    secrets.patch(&api::auth::token_secret(&a), &Default::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    kubesim::testing::wait_until(T, "the expired token stops working", || async {
        env.call("GET", &format!("/v1/tenants/{a}"), Some(stoken), None).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    let (_, list) = env.call("GET", &tokens, Some(ADMIN), None).await;
    assert!(
        list.as_array().unwrap().iter().any(|t| t["id"] == sid && t["expires"] == "2020-01-01T00:00:00Z"),
        "{list}"
    );
    assert_eq!(env.call("POST", &tokens, Some(ADMIN), None).await.0, StatusCode::CREATED);
    let data = secrets.get(&api::auth::token_secret(&a)).await.unwrap().data.unwrap();
    assert!(!data.contains_key(sid), "the expired token was pruned");
    // The tenant's other token still works; deleting the tenant revokes it.
    assert_eq!(env.call("GET", &format!("/v1/tenants/{a}"), Some(&env.alpha_token), None).await.0, StatusCode::OK);
    let (code, _) = env.call("DELETE", &format!("/v1/tenants/{a}"), Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    kubesim::testing::wait_until(T, "the tenant's tokens stop working", || async {
        env.call("GET", "/v1/templates", Some(&env.alpha_token), None).await.0 == StatusCode::UNAUTHORIZED
    })
    .await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpn_client_files_and_rotation() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let (code, v) = env.call("GET", &format!("/v1/tenants/{a}/vpn/clients"), Some(&tok), None).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::CONFLICT, Some("https://paddock.dev/problems/vpn-disabled")),
        "{v}"
    );
    let (code, v) = env
        .call("PATCH", &format!("/v1/tenants/{a}"), Some(ADMIN), Some(json!({"vpn": {"enabled": true, "clients": 2}})))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    kubesim::testing::wait_until(T, "the VPN is provisioned", || async {
        let (code, v) = env.call("GET", &format!("/v1/tenants/{a}/vpn/clients"), Some(&tok), None).await;
        code == StatusCode::OK && v["endpoint"].is_string()
    })
    .await;
    let (_, view) = env.call("GET", &format!("/v1/tenants/{a}/vpn/clients"), Some(&tok), None).await;
    assert_eq!(view["clients"].as_array().unwrap().len(), 2, "{view}");
    assert_eq!(
        view["clients"][0]["address"].as_str().unwrap(),
        vpn::client_address(view["addressPool"].as_str().unwrap().parse().unwrap(), 1).to_string()
    );
    // The client file: its private key belongs to the listed public key.
    let (code, _, file) =
        env.call_full("GET", &format!("/v1/tenants/{a}/vpn/clients/1/config"), Some(&tok), None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    let text = file.as_str().unwrap().to_string();
    let line = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k} = "))).unwrap().to_string();
    let private = vpn::Key::from_base64(&line("PrivateKey")).unwrap();
    assert_eq!(private.public().to_base64(), view["clients"][0]["publicKey"].as_str().unwrap());
    assert_eq!(line("PublicKey"), view["serverPublicKey"].as_str().unwrap());
    assert!(line("Endpoint").starts_with("vpn.test:"), "{text}");
    assert_eq!(line("AllowedIPs"), "10.244.0.0/16, 10.96.0.0/12");
    // The same file as a QR code for the mobile apps; an unknown format is refused.
    let (code, _, qr) =
        env.call_full("GET", &format!("/v1/tenants/{a}/vpn/clients/1/config?format=qr"), Some(&tok), None, &[]).await;
    assert_eq!(code, StatusCode::OK);
    let svg = qr.as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{}", &svg[..svg.len().min(200)]);
    let (code, v) =
        env.call("GET", &format!("/v1/tenants/{a}/vpn/clients/1/config?format=png"), Some(&tok), None).await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("format")), "{v}");
    // Another tenant cannot fetch it; a slot that does not exist is 404.
    let (code, _) =
        env.call("GET", &format!("/v1/tenants/{a}/vpn/clients/1/config"), Some(&env.beta_token), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, v) = env.call("GET", &format!("/v1/tenants/{a}/vpn/clients/3/config"), Some(&tok), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["detail"], "VPN client \"3\" does not exist; the VPN has clients 1 to 2", "{v}");
    // Rotation: one client, then everything.
    let (code, v) = env.call("POST", &format!("/v1/tenants/{a}/vpn/clients/1/rotate"), Some(&tok), None).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_ne!(v["clients"][0]["publicKey"], view["clients"][0]["publicKey"]);
    assert_eq!(v["clients"][1]["publicKey"], view["clients"][1]["publicKey"]);
    assert_eq!(v["serverPublicKey"], view["serverPublicKey"]);
    let (code, v2) = env.call("POST", &format!("/v1/tenants/{a}/vpn/rotate"), Some(&tok), None).await;
    assert_eq!(code, StatusCode::OK, "{v2}");
    assert_ne!(v2["serverPublicKey"], view["serverPublicKey"]);
    assert_ne!(v2["clients"][1]["publicKey"], view["clients"][1]["publicKey"]);
    // The server follows: the tenant's status shows the new key.
    kubesim::testing::wait_until(T, "the server runs with the new key", || async {
        let (_, t) = env.call("GET", &format!("/v1/tenants/{a}"), Some(&tok), None).await;
        t["status"]["vpn"]["publicKey"] == v2["serverPublicKey"]
    })
    .await;
    env.finish().await;
}

/// Users label their instances and list by label; reserved, malformed and too
/// many labels, and selectors that do not parse, are refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_carry_their_users_labels() {
    let env = Env::start().await;
    let (a, token) = (env.alpha.clone(), env.alpha_token.clone());
    let tpl = env.template.clone();
    let (code, body) =
        start(&env, &a, &token, json!({"template": tpl, "labels": {"job": "42", "ci.example.com/run": "r-1"}})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["labels"], json!({"job": "42", "ci.example.com/run": "r-1"}));
    let (code, body) = start(&env, &a, &token, json!({"template": tpl, "labels": {"job": "43"}})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");

    let list = |sel: &'static str| {
        let path = format!("/v1/tenants/{a}/instances?labelSelector={sel}");
        let token = token.clone();
        let env = &env;
        async move { env.call("GET", &path, Some(&token), None).await }
    };
    let (code, body) = list("job%3D42").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["items"][0]["labels"]["job"], "42");
    let (_, body) = list("job%20in%20(42%2C43)").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = list("!job").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{body}");
    let (code, body) = list("job%3D(").await;
    assert_eq!((code, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("labelSelector")), "{body}");
    let (code, body) = env.call("GET", "/v1/instances?labelSelector=job%3D43", Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");

    let many: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (labels, field) in [
        (json!({"paddock.dev/instance": "other"}), "labels[paddock.dev/instance]"),
        (json!({"app.kubernetes.io/name": "x"}), "labels[app.kubernetes.io/name]"),
        (json!({"job": "no spaces"}), "labels[job]"),
        (json!({"-job": "1"}), "labels[-job]"),
        (Value::Object(many), "labels"),
    ] {
        let (code, body) = start(&env, &a, &token, json!({"template": tpl, "labels": labels})).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{labels}: {body}");
        let fields = body.to_string();
        assert!(fields.contains(field), "{labels}: wanted {field} in {body}");
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_reports_isolation_and_explains_a_path() {
    let env = Env::start().await;
    let (code, a) = env.call("GET", "/v1/audit", Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::OK, "{a}");
    // Paddock's tenants (on a real cluster, others' may be there too) are isolated from each other.
    for t in [&env.alpha, &env.beta] {
        let mine =
            a["tenants"].as_array().unwrap().iter().find(|x| x["tenant"] == t.as_str()).expect("the tenant is audited");
        assert_eq!(mine["crossTenantPaths"].as_array().unwrap().len(), 0, "{mine}");
    }
    let crossing = a["matrix"].as_array().unwrap().iter().any(|c| {
        [&env.alpha, &env.beta].iter().any(|t| c["from"] == t.as_str())
            && [&env.alpha, &env.beta].iter().any(|t| c["to"] == t.as_str())
    });
    assert!(!crossing, "{a}");
    // A path from outside to an address with no pod: explained, whatever the verdict.
    let (code, v) = env.call("GET", "/v1/audit/explain?from=192.0.2.1&to=10.0.0.1&port=80", Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert!(v["allowed"].is_boolean() && !v["explanation"].as_str().unwrap().is_empty(), "{v}");
    // Bad input names its field; a missing pod is a 404.
    for (q, field) in [
        ("to=10.0.0.1&port=80", "from"),
        ("from=a&to=10.0.0.1&port=80", "from"),
        ("from=192.0.2.1&to=10.0.0.1", "port"),
        ("from=192.0.2.1&to=10.0.0.1&port=80&protocol=ICMP", "protocol"),
    ] {
        let (code, v) = env.call("GET", &format!("/v1/audit/explain?{q}"), Some(ADMIN), None).await;
        assert_eq!((code, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{q}: {v}");
    }
    let (code, _) =
        env.call("GET", "/v1/audit/explain?from=nowhere/nopod&to=10.0.0.1&port=80", Some(ADMIN), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_shows_what_it_uses_of_its_quota() {
    let env = Env::start().await;
    let (code, body) = start(&env, &env.alpha, &env.alpha_token, json!({"template": env.template})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    // The quota's usage comes from the shared watch of the tenants' ResourceQuotas.
    let path = format!("/v1/tenants/{}", env.alpha);
    kubesim::testing::wait_until(T, "the instance counted in the usage", || async {
        let (_, t) = env.call("GET", &path, Some(&env.alpha_token), None).await;
        t["usage"].as_array().is_some_and(|u| u.iter().any(|x| x["resource"] == "instances" && x["used"] == "1"))
    })
    .await;
    let (_, t) = env.call("GET", &path, Some(ADMIN), None).await;
    let inst = t["usage"].as_array().unwrap().iter().find(|x| x["resource"] == "instances").unwrap().clone();
    assert_eq!((inst["hard"].as_str(), inst["fraction"].as_f64()), (Some("3"), Some(1.0 / 3.0)), "{t}");
    // And in the list, for the admin.
    let (_, all) = env.call("GET", "/v1/tenants?limit=1000", Some(ADMIN), None).await;
    let listed = all["items"].as_array().unwrap().iter().find(|x| x["name"] == env.alpha.as_str()).unwrap().clone();
    assert_eq!(listed["usage"], t["usage"]);
    env.finish().await;
}
