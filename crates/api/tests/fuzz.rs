//! Hostile bodies on every route that takes one: valid bodies with values
//! replaced by what an attacker would try (huge and negative numbers,
//! twenty-digit durations, `$(VAR)`, NUL bytes, unknown fields such as
//! `privileged`), sent by the tokens that may call the route. The API never
//! panics and never answers 5xx; every 422 is problem+json naming a field.
//! The case count is bounded (`PADDOCK_FUZZ_CASES`, default 240) and printed.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};
use resources::hostile::mutated;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_problems_never_panics() {
    let env = Env::start().await;
    let (a, tok) = (env.alpha.clone(), env.alpha_token.clone());
    let (code, inst) = env
        .call("POST", &format!("/v1/tenants/{a}/instances"), Some(&tok), Some(json!({"template": env.template})))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{inst}");
    let inst = inst["name"].as_str().unwrap().to_string();
    let fz = format!("fz{}", env.id);
    let routes: Vec<(&str, String, &str, Value)> = vec![
        (
            "POST",
            "/v1/templates".into(),
            ADMIN,
            json!({"name": fz, "spec": {"ttl": "1h", "maxTtl": "2h",
            "networks": ["teamnet"], "exposure": [{"pod": "web", "port": "http", "type": "NodePort"}],
            "pods": [{"name": "web", "image": "nginx:1.27", "networks": ["teamnet"], "scratchSize": "1Gi",
                "ports": [{"name": "http", "port": 80, "expose": true}],
                "env": [{"name": "MODE", "value": "easy", "overridable": true},
                        {"name": "FLAG", "generate": {"flag": {"format": "FLAG{%s}"}}}],
                "resources": {"requests": {"cpu": "100m"}}, "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                "mounts": {"config": {"path": "/config", "files": {"a.conf": "x"}}},
                "security": {"capabilities": []}}]}}),
        ),
        (
            "POST",
            "/v1/tenants".into(),
            ADMIN,
            json!({"name": fz, "spec": {"kind": "Team",
            "quota": {"pods": 4, "cpu": "2", "memory": "2Gi", "instances": 2},
            "storage": {"enabled": false, "size": "1Gi"}, "vpn": {"enabled": false, "clients": 1},
            "egress": {"dns": true}}}),
        ),
        ("PATCH", format!("/v1/tenants/{a}"), ADMIN, json!({"displayName": "A", "quota": {"instances": 3}})),
        (
            "POST",
            format!("/v1/tenants/{a}/instances"),
            &tok,
            json!({"template": env.template, "ttl": "30m",
            "env": {"MODE": "hard"}, "name": "fz-one"}),
        ),
        ("POST", format!("/v1/tenants/{a}/instances/{inst}/renew"), &tok, json!({"ttl": "10m"})),
        ("POST", format!("/v1/tenants/{a}/tokens"), ADMIN, json!({"description": "fz", "ttl": "1h"})),
        ("POST", format!("/v1/tenants/{a}/kubeconfig"), &tok, json!({"ttl": "10m"})),
    ];
    let cases: usize = std::env::var("PADDOCK_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(240);
    let mut runner =
        TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(Config::default().rng_algorithm));
    let (mut sent, mut refused) = (0usize, 0usize);
    for i in 0..cases {
        let (method, path, token, seed) = &routes[i % routes.len()];
        let body = mutated(seed.clone()).new_tree(&mut runner).unwrap().current();
        let (code, answer) = env.call(method, path, Some(token), Some(body.clone())).await;
        sent += 1;
        assert!(code.as_u16() < 500, "{method} {path} {body}: {code} {answer}");
        if code == StatusCode::UNPROCESSABLE_ENTITY {
            refused += 1;
            let field = answer["field"].as_str().unwrap_or("");
            assert!(!field.is_empty(), "{method} {path} {body}: a 422 names its field: {answer}");
        }
        if code.is_client_error() {
            assert!(answer["type"].is_string() && answer["detail"].is_string(), "problem+json: {answer}");
        }
        // Whatever was created is removed again, so cases do not pile up.
        if code == StatusCode::CREATED {
            let name = answer["name"].as_str().unwrap_or_default().to_string();
            let gone = match path.as_str() {
                "/v1/templates" => Some(format!("/v1/templates/{name}")),
                "/v1/tenants" => Some(format!("/v1/tenants/{name}")),
                p if p.ends_with("/instances") => Some(format!("{p}/{name}")),
                _ => None,
            };
            if let Some(g) = gone.filter(|_| !name.is_empty()) {
                let _ = env.call("DELETE", &g, Some(ADMIN), None).await;
            }
        }
    }
    eprintln!("fuzz: {sent} hostile bodies sent, {refused} refused with 422 naming a field, 0 answers >= 500");
    let (code, _) = env.call("GET", "/healthz", None, None).await;
    assert_eq!(code, StatusCode::OK);
    env.finish().await;
}
