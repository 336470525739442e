//! Property tests over every Template, Tenant and Instance field the
//! controller's pure steps read: whatever a tenant or a careless admin
//! writes (huge numbers, negative ones, `$(VAR)`, NUL bytes, paths with
//! `..`, durations of twenty digits), validation and the build never panic,
//! and every problem names a field. Bounded case counts keep `cargo test`
//! quick; `PROPTEST_CASES` raises them.

use controller::config::Settings;
use controller::instance::build::{Input, build};
use proptest::prelude::*;
use resources::admission::{instance_problems, template_problems};
use resources::hostile::mutated;
use resources::{Instance, Template, Tenant};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn template_seed() -> Value {
    json!({"networks": ["teamnet", "backend"], "ttl": "2h", "maxTtl": "6h", "maxPerTenant": 2,
    "runtimeClassName": "gvisor", "nodeRole": "task",
    "exposure": [{"pod": "web", "port": "http", "type": "NodePort"}],
    "pods": [
        {"name": "web", "image": "nginx:1.27", "command": ["/bin/sh"], "args": ["-c", "run"],
         "networks": ["teamnet", "backend"], "scratchSize": "1Gi",
         "ports": [{"name": "http", "port": 80, "expose": true}],
         "env": [{"name": "FLAG", "generate": {"flag": {"format": "FLAG{%s}"}}},
                 {"name": "MODE", "value": "easy", "overridable": true},
                 {"name": "PW", "generate": {"random": {"length": 24}}},
                 {"name": "TOKEN", "secret": {"name": "ci-token", "key": "t"}}],
         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
         "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 2},
         "mounts": {"tenantStorage": "/data", "config": {"path": "/config", "files": {"app.conf": "x=1"}}},
         "security": {"capabilities": ["NET_BIND_SERVICE"], "runAsRoot": false}},
        {"name": "db", "image": "postgres:16", "networks": ["backend"],
         "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}
    ]})
}

fn tenant_seed() -> Value {
    json!({"kind": "Team", "displayName": "Red", "groups": ["ctf-shared"],
        "quota": {"pods": 10, "cpu": "4", "memory": "8Gi", "storage": "20Gi", "instances": 3},
        "defaults": {"cpuRequest": "100m", "memoryRequest": "64Mi"},
        "storage": {"enabled": true, "size": "10Gi", "storageClass": "fast", "allowExpansion": true},
        "vpn": {"enabled": true, "clients": 2}, "egress": {"dns": true, "internet": false}})
}

fn instance_seed() -> Value {
    json!({"template": "web", "ttl": "1h", "env": {"MODE": "$(FLAG)"}})
}

fn object<T: serde::de::DeserializeOwned>(kind: &str, name: &str, ns: Option<&str>, spec: Value) -> Option<T> {
    serde_json::from_value(json!({"apiVersion": "paddock.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec}))
    .ok()
}

fn settings() -> Settings {
    Settings {
        runtime_class: Some("gvisor".into()),
        template_secrets: vec!["ci-token".into()],
        template_capabilities: vec!["NET_BIND_SERVICE".into()],
        ..Default::default()
    }
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cases(1500))]

    /// A template, valid or not: validation and (when it passes) the build
    /// of an instance from it never panic, and every problem names a field.
    #[test]
    fn any_template_validates_and_builds_without_panic(spec in mutated(template_seed()), inst in mutated(instance_seed())) {
        let settings = settings();
        let Some(tpl) = object::<Template>("Template", "web", None, spec) else { return Ok(()) };
        let Some(tenant) = object::<Tenant>("Tenant", "red", None, tenant_seed()) else { return Ok(()) };
        let Some(inst) = object::<Instance>("Instance", "web-1", Some("paddock-red"), inst) else { return Ok(()) };
        let mut problems = template_problems(&tpl, &settings.template_policy());
        problems.extend(instance_problems(&tpl, &inst, settings.max_instance_ttl));
        for p in &problems {
            prop_assert!(!p.field.is_empty() && !p.reason.is_empty(), "{p:?}");
        }
        let generated: BTreeMap<String, String> = controller::instance::build::generated_keys(&tpl)
            .into_iter()
            .map(|(k, g)| (k, controller::instance::build::generate_value(&g, |n| n / 2)))
            .collect();
        let built = build(&Input { template: &tpl, tenant: &tenant, instance: &inst, settings: &settings,
            any_node_has_role: true, generated: &generated });
        prop_assert_eq!(built.is_ok(), problems.is_empty());
        let _ = resources::admission::deadline(&tpl, inst.spec.ttl.as_deref());
        let _ = resources::admission::longest_ttl(&tpl, settings.max_instance_ttl);
        let _ = tpl.spec.relaxations(Some("gvisor"));
    }

    /// A tenant, valid or not: validation and the build never panic, and
    /// every problem names a field.
    #[test]
    fn any_tenant_validates_and_builds_without_panic(spec in mutated(tenant_seed()), name in "[a-z0-9-]{0,70}") {
        let Some(t) = object::<Tenant>("Tenant", &name, None, spec) else { return Ok(()) };
        for p in t.spec.validate() {
            prop_assert!(!p.field.is_empty() && !p.reason.is_empty(), "{p:?}");
        }
        let _ = controller::tenant::build::build(&t, &settings());
        let _ = controller::tenant::build::namespace_refused(&name, &settings(), None);
    }

    /// Any text as a duration: bounded, never a panic or an overflow.
    #[test]
    fn any_duration_reads_bounded(s in ".{0,40}|[0-9]{1,40}[smhd]([0-9]{1,30}[smhd])?") {
        if let Some(d) = resources::duration::parse(&s) {
            prop_assert!(d <= resources::duration::LONGEST);
            // Ten years from now is a timestamp: adding never overflows.
            prop_assert!(jiff::Timestamp::now().checked_add(jiff::SignedDuration::try_from(d).unwrap()).is_ok());
        }
    }
}
