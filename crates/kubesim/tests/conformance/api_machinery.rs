//! CRUD, errors, optimistic concurrency, generateName, dryRun, selectors,
//! pagination and discovery.

use super::{configmap, raw, status};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kubesim::testing::TestCluster;
use serde_json::json;

/// Writes to one object from many clients at once: every patch and every
/// server-side apply lands (none is lost to another computed from the same
/// old state), and of replaces that all name the same resourceVersion exactly
/// one wins, the others get 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_object_lose_nothing() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("hot").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let cm = configmap(&api, "hot", json!({})).await;
    let patches = (0..40).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let p = json!({"data": {format!("k{i}"): format!("{i}")}});
            api.patch("hot", &PatchParams::default(), &Patch::Merge(&p)).await.map(|_| ())
        })
    });
    for r in futures::future::join_all(patches).await {
        r.expect("task").expect("a merge patch without a resourceVersion always applies");
    }
    let got = api.get("hot").await.expect("get");
    let data = got.data.clone().unwrap_or_default();
    assert_eq!(data.len(), 40, "every patch's key is there: {data:?}");
    let rv = |c: &ConfigMap| c.metadata.resource_version.clone().unwrap_or_default().parse::<u64>().unwrap_or(0);
    assert!(rv(&got) > rv(&cm));

    let replaces = (0..20).map(|i| {
        let (api, mut next) = (api.clone(), got.clone());
        next.data.get_or_insert_default().insert("winner".into(), format!("{i}"));
        tokio::spawn(async move { api.replace("hot", &PostParams::default(), &next).await })
    });
    let (mut won, mut conflicts) = (0, 0);
    for r in futures::future::join_all(replaces).await {
        match r.expect("task") {
            Ok(_) => won += 1,
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict" => conflicts += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 19));

    // Server-side applies by 30 managers, each owning a key of its own, all
    // at once: every key lands (none is merged into a state another apply
    // has already replaced), to an object that did not exist before.
    let applies = (0..30).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"},
                "data": {format!("m{i}"): "x"}});
            api.patch("applied", &PatchParams::apply(&format!("manager-{i}")), &Patch::Apply(&cm)).await.map(|_| ())
        })
    });
    for r in futures::future::join_all(applies).await {
        r.expect("task").expect("applies of disjoint fields do not conflict");
    }
    let applied = api.get("applied").await.expect("get");
    assert_eq!(applied.data.unwrap_or_default().len(), 30);
    assert_eq!(applied.metadata.managed_fields.unwrap_or_default().len(), 30, "one entry per manager");
    tc.finish().await;
}

#[tokio::test]
async fn crud_and_upstream_errors() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("crud").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let cm = configmap(&api, "one", json!({"a": "1"})).await;
    let uid = cm.metadata.uid.clone().expect("uid set");
    assert!(cm.metadata.creation_timestamp.is_some());
    let rv1 = cm.metadata.resource_version.clone().expect("rv set");

    let got = api.get("one").await.expect("get");
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));

    // An object read back carries its resourceVersion: upstream's storage
    // refuses to create it (a 500 without a reason), before the name is found taken.
    let e = status(api.create(&PostParams::default(), &cm).await);
    assert_eq!((e.code, e.reason.as_str()), (500, ""));
    assert_eq!(e.message, "resourceVersion should not be set on objects to be created");
    let mut fresh = cm.clone();
    fresh.metadata.resource_version = None;
    let e = status(api.create(&PostParams::default(), &fresh).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"one\" already exists");
    // A resourceVersion that is no number is ignored (kubernetes/kubernetes#113847).
    let mut odd = fresh.clone();
    odd.metadata.name = Some("odd-rv".into());
    odd.metadata.uid = None;
    odd.metadata.resource_version = Some("-1".into());
    api.create(&PostParams::default(), &odd).await.expect("an unparsable resourceVersion is ignored");

    // Replace with the current rv succeeds and bumps it; the old rv is now stale.
    let mut next = got.clone();
    next.data.as_mut().expect("data").insert("b".into(), "2".into());
    let replaced = api.replace("one", &PostParams::default(), &next).await.expect("replace");
    assert_ne!(replaced.metadata.resource_version.as_deref(), Some(rv1.as_str()));
    let e = status(api.replace("one", &PostParams::default(), &next).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on configmaps \"one\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let e = status(api.get("missing").await);
    assert_eq!((e.code, e.reason.as_str(), e.message.as_str()), (404, "NotFound", "configmaps \"missing\" not found"));

    api.delete("one", &DeleteParams::default()).await.expect("delete");
    assert!(api.get_opt("one").await.expect("get_opt").is_none());
    tc.finish().await;
}

#[tokio::test]
async fn generate_name_dry_run_and_preconditions() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("gen").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "job-"}})).unwrap();
    let made = api.create(&PostParams::default(), &cm).await.unwrap();
    let name = made.metadata.name.unwrap();
    assert!(name.starts_with("job-") && name.len() == 9, "generated name {name}");

    let dry = PostParams { dry_run: true, ..Default::default() };
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "dry"}})).unwrap();
    api.create(&dry, &cm).await.unwrap();
    assert!(api.get_opt("dry").await.unwrap().is_none(), "dry run must not persist");

    let e = status(
        api.delete(
            &name,
            &DeleteParams {
                preconditions: Some(kube::api::Preconditions { uid: Some("nope".into()), resource_version: None }),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(e.code, 409);
    assert!(e.message.contains("Precondition failed: UID in precondition: nope"), "{}", e.message);
    tc.finish().await;
}

#[tokio::test]
async fn validation_is_422_with_field_causes() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("invalid").await;
    let cms: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let bad: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "Not_Valid"}})).unwrap();
    let e = status(cms.create(&PostParams::default(), &bad).await);
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.starts_with("ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\": a lowercase RFC 1123 subdomain"), "{}", e.message);
    let causes = e.details.as_ref().map(|d| d.causes.clone()).unwrap_or_default();
    assert_eq!(causes[0].field, "metadata.name");
    assert_eq!(causes[0].reason, "FieldValueInvalid");

    let pods: Api<Pod> = Api::namespaced(tc.client.clone(), &ns);
    let p: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": ""}, {"name": "a", "image": "x"}]}})).unwrap();
    let e = status(pods.create(&PostParams::default(), &p).await);
    assert_eq!(e.code, 422);
    assert!(e.message.contains("spec.containers[0].image: Required value"), "{}", e.message);
    assert!(e.message.contains("spec.containers[1].name: Duplicate value: \"a\""), "{}", e.message);

    let nss: Api<Namespace> = Api::all(tc.client.clone());
    let n: Namespace = serde_json::from_value(json!({"metadata": {"name": "has.dot"}})).unwrap();
    let e = status(nss.create(&PostParams::default(), &n).await);
    assert_eq!(e.code, 422, "namespace names are DNS labels");
    tc.finish().await;
}

#[tokio::test]
async fn malformed_requests_get_clear_4xx() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("raw").await;
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let (code, body) = raw(&tc.client, "POST", &path, "application/json", b"{not json").await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "BadRequest");

    let (code, body) = raw(
        &tc.client,
        "POST",
        &path,
        "application/json",
        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#,
    )
    .await;
    assert_eq!(code, 400, "kind mismatch: {body}");

    let (code, body) = raw(&tc.client, "GET", "/api/v1/doesnotexist", "application/json", b"").await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["reason"], "NotFound");

    let (code, _) = raw(&tc.client, "PATCH", &format!("{path}/x"), "text/plain", b"{}").await;
    assert!(code == 415 || code == 404, "unsupported patch type or missing object, got {code}");

    let (code, body) = raw(&tc.client, "GET", &format!("{path}?labelSelector=a+in+x"), "application/json", b"").await;
    assert_eq!(code, 400, "bad selector: {body}");
    let (code, body) =
        raw(&tc.client, "GET", &format!("{path}?fieldSelector=spec.nope%3Dx"), "application/json", b"").await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["message"], "field label not supported: spec.nope");
    tc.finish().await;
}

#[tokio::test]
async fn label_and_field_selectors() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("sel").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    for (name, labels) in [
        ("a", json!({"tier": "web", "env": "prod"})),
        ("b", json!({"tier": "db", "env": "prod"})),
        ("c", json!({"tier": "web"})),
    ] {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        let mut v: Vec<String> = l.items.into_iter().filter_map(|c| c.metadata.name).filter(|n| n.len() == 1).collect();
        v.sort();
        v
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(api.list(&q("tier=web")).await.unwrap()), ["a", "c"]);
    assert_eq!(names(api.list(&q("tier==web,env=prod")).await.unwrap()), ["a"]);
    assert_eq!(names(api.list(&q("tier!=web,tier")).await.unwrap()), ["b"]);
    assert_eq!(names(api.list(&q("tier in (db, web),!env")).await.unwrap()), ["c"]);
    assert_eq!(names(api.list(&q("env notin (prod),tier")).await.unwrap()), ["c"]);
    assert_eq!(names(api.list(&q("env")).await.unwrap()), ["a", "b"]);
    assert_eq!(names(api.list(&ListParams::default().fields("metadata.name=b")).await.unwrap()), ["b"]);
    assert_eq!(
        names(api.list(&ListParams::default().fields("metadata.name!=b").labels("tier")).await.unwrap()),
        ["a", "c"]
    );
    tc.finish().await;
}

#[tokio::test]
async fn pagination_with_continue_tokens() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("page").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    for i in 0..25 {
        configmap(&api, &format!("cm-{i:02}"), json!({})).await;
    }
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(10).labels("");
    let first = api.list(&lp).await.unwrap();
    assert!(first.metadata.continue_.is_some());
    assert!(first.metadata.remaining_item_count.is_some_and(|r| r > 0));
    let mut page = first;
    loop {
        seen.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.clone() {
            Some(c) if !c.is_empty() => {
                lp = lp.continue_token(&c);
                page = api.list(&lp).await.unwrap();
            }
            _ => break,
        }
    }
    let ours: Vec<_> = seen.iter().filter(|n| n.starts_with("cm-")).collect();
    assert_eq!(ours.len(), 25);
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(ours, sorted, "lists are in key order");
    tc.finish().await;
}

#[tokio::test]
async fn discovery_serves_builtins_and_runtime_crds() {
    let tc = TestCluster::start().await;
    let d = Discovery::new(tc.client.clone()).run().await.expect("discovery");
    let groups: Vec<String> = d.groups().map(|g| g.name().to_string()).collect();
    for g in [
        "",
        "apps",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "policy",
        "apiextensions.k8s.io",
        "storage.k8s.io",
        "node.k8s.io",
        "events.k8s.io",
        "discovery.k8s.io",
    ] {
        assert!(groups.iter().any(|x| x == g), "group {g:?} missing from {groups:?}");
    }
    let v = tc.client.apiserver_version().await.expect("version");
    assert_eq!(v.major, "1");
    // kube-dns exists for DNS egress policies to select.
    let svcs: Api<Service> = Api::namespaced(tc.client.clone(), "kube-system");
    assert!(svcs.get("kube-dns").await.is_ok());
    let nss: Api<Namespace> = Api::all(tc.client.clone());
    let def = nss.get("default").await.unwrap();
    assert_eq!(def.metadata.labels.unwrap().get("kubernetes.io/metadata.name").map(String::as_str), Some("default"));
    tc.finish().await;
}

/// `apiserver_request_total` on /metrics counts requests by upstream's verbs
/// (what `paddock bench` reads to count API-server work on any cluster).
#[tokio::test]
async fn request_metrics_count_by_verb() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("metrics").await;
    let totals = || async {
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = tc.client.request_text(req).await.expect("GET /metrics");
        let mut by_verb = std::collections::HashMap::<String, f64>::new();
        for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
            let verb = line.split("verb=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("").to_string();
            let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            *by_verb.entry(verb).or_default() += n;
        }
        by_verb
    };
    let before = totals().await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    configmap(&api, "m", json!({"a": "1"})).await;
    api.get("m").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    let pp = kube::api::PatchParams::apply("metrics-test").force();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "2"}});
    api.patch("m", &pp, &kube::api::Patch::Apply(&cm)).await.unwrap();
    api.delete("m", &DeleteParams::default()).await.unwrap();
    let after = totals().await;
    // At least: a real API server counts its other clients too.
    for (verb, n) in [("POST", 1.0), ("GET", 1.0), ("LIST", 1.0), ("APPLY", 1.0), ("DELETE", 1.0)] {
        let got = after.get(verb).copied().unwrap_or(0.0) - before.get(verb).copied().unwrap_or(0.0);
        assert!(got >= n, "{verb}: {got} more, want at least {n}");
    }
    tc.finish().await;
}

/// `events.k8s.io/v1` Events get upstream's strict checks: a note of at
/// most 1024 characters, an action and a reason, a series of at least two,
/// and an Event about a cluster-scoped object lives in `default`.
#[tokio::test]
async fn events_k8s_io_events_are_checked_strictly() {
    use k8s_openapi::api::events::v1::Event;
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("events").await;
    let api: Api<Event> = Api::namespaced(tc.client.clone(), &ns);
    let event = |name: &str, extra: serde_json::Value| -> Event {
        let mut e = json!({"metadata": {"name": name}, "eventTime": "2026-01-01T00:00:00.000000Z",
            "type": "Normal", "reason": "Tested", "action": "Test", "note": "fine",
            "reportingController": "paddock.dev/test", "reportingInstance": "test-1",
            "regarding": {"kind": "ConfigMap", "name": "kube-root-ca.crt", "namespace": ns, "apiVersion": "v1"}});
        json_patch::merge(&mut e, &extra);
        serde_json::from_value(e).unwrap()
    };
    let pp = PostParams::default();
    api.create(&pp, &event("ok", json!({}))).await.unwrap();
    for (name, extra, want) in [
        ("long", json!({"note": "x".repeat(1025)}), "note: Invalid value: \"\": can have at most 1024 characters"),
        ("no-action", json!({"action": null}), "action: Required value"),
        ("no-reason", json!({"reason": null}), "reason: Required value"),
        ("kind", json!({"type": "Info"}), "type: Invalid value: \"\": has invalid value: Info"),
        (
            "one",
            json!({"series": {"count": 1, "lastObservedTime": "2026-01-01T00:00:00.000000Z"}}),
            "series.count: Invalid value: \"\": should be at least 2",
        ),
        (
            "cluster-scoped",
            json!({"regarding": {"kind": "Namespace", "name": ns, "namespace": null}}),
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace",
        ),
    ] {
        let e = status(api.create(&pp, &event(name, extra)).await);
        assert_eq!(e.code, 422, "{name}: {}", e.message);
        assert!(e.message.contains(want), "{name}: wanted {want:?} in {}", e.message);
    }
    // A note of exactly 1024 is fine; a series update is checked again.
    api.create(&pp, &event("edge", json!({"note": "x".repeat(1024)}))).await.unwrap();
    let series = |count: i64| {
        Patch::Merge(json!({"series": {"count": count, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}}))
    };
    api.patch("ok", &PatchParams::default(), &series(2)).await.unwrap();
    let e = status(api.patch("ok", &PatchParams::default(), &series(1)).await);
    assert_eq!(e.code, 422, "{}", e.message);
    tc.finish().await;
}

/// ConfigMap and Secret keys must be config keys, and their values at most
/// 1 MiB in all.
#[tokio::test]
async fn config_map_and_secret_keys_and_sizes() {
    use k8s_openapi::api::core::v1::Secret;
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("data").await;
    let cms: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let pp = PostParams::default();
    let cm = |name: &str, data: serde_json::Value| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap()
    };
    cms.create(&pp, &cm("ok", json!({"app.conf": "a", "KEY_name-1": "b"}))).await.unwrap();
    let e = status(cms.create(&pp, &cm("spaced", json!({"my file": "a"}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(
        e.message.contains(
            "data[my file]: Invalid value: \"my file\": a valid config key must consist of alphanumeric characters"
        ),
        "{}",
        e.message
    );
    let e = status(cms.create(&pp, &cm("dots", json!({"..x": "a"}))).await);
    assert!(e.message.contains("must not start with '..'"), "{}", e.message);
    let big = "x".repeat(512 * 1024 + 1);
    let e = status(cms.create(&pp, &cm("big", json!({"a": big, "b": big}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(e.message.contains("Too long"), "{}", e.message);
    let fits = "x".repeat(512 * 1024);
    cms.create(&pp, &cm("fits", json!({"a": fits, "b": fits}))).await.unwrap();

    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), &ns);
    let s = |name: &str, string_data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": name}, "stringData": string_data})).unwrap()
    };
    secrets.create(&pp, &s("ok", json!({"token": "t"}))).await.unwrap();
    let e = status(secrets.create(&pp, &s("big", json!({"a": "y".repeat(1024 * 1024 + 1)}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(e.message.contains("data: Too long"), "{}", e.message);
    let e = status(secrets.create(&pp, &s("spaced", json!({"a b": "t"}))).await);
    assert!(e.message.contains("data[a b]: Invalid value"), "{}", e.message);
    tc.finish().await;
}

/// A binding's roleRef is fixed at creation: a binding to another role is a
/// new binding.
#[tokio::test]
async fn a_role_binding_keeps_its_role_ref() {
    use k8s_openapi::api::rbac::v1::RoleBinding;
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("rbac").await;
    let api: Api<RoleBinding> = Api::namespaced(tc.client.clone(), &ns);
    let rb: RoleBinding = serde_json::from_value(json!({"metadata": {"name": "rb"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}))
    .unwrap();
    api.create(&PostParams::default(), &rb).await.unwrap();
    // Subjects may change.
    let subjects = json!({"subjects": [{"kind": "ServiceAccount", "name": "other", "namespace": ns}]});
    api.patch("rb", &PatchParams::default(), &Patch::Merge(subjects)).await.unwrap();
    let e =
        status(api.patch("rb", &PatchParams::default(), &Patch::Merge(json!({"roleRef": {"name": "writer"}}))).await);
    assert_eq!(e.code, 422, "{}", e.message);
    assert!(
        e.message.contains(
            "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"writer\"}: cannot change roleRef"
        ),
        "{}",
        e.message
    );
    tc.finish().await;
}

/// A path no API group serves gets the HTTP mux's plain-text 404; a served
/// group and version with an unknown resource gets a Status.
#[tokio::test]
async fn unknown_groups_and_resources_are_not_found() {
    use http_body_util::BodyExt;
    let tc = TestCluster::start().await;
    for (path, status_body) in [
        ("/apis/nope.paddock.dev/v1/widgets", false),
        ("/apis/apps/v9/deployments", false),
        ("/apis/nope.paddock.dev/v1", false),
        ("/apis/apps/v1/nopes", true),
    ] {
        let req = http::Request::builder().uri(path).body(kube::client::Body::empty()).unwrap();
        let resp = tc.client.send(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{path}");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        if status_body {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
            assert_eq!((v["kind"].as_str(), v["reason"].as_str()), (Some("Status"), Some("NotFound")), "{path}: {v}");
        } else {
            assert_eq!(text, "404 page not found\n", "{path}");
        }
    }
    tc.finish().await;
}

/// Core `v1` Events and `events.k8s.io/v1` Events are one store seen through
/// two APIs: an Event written through either is read, patched, listed (with
/// the core field selectors), shown as a table and deleted through the other,
/// with the same uid and resourceVersion.
#[tokio::test]
async fn both_event_apis_serve_the_same_events() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::{DeleteParams, ListParams};
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("event-views").await;
    let new_api: Api<Event> = Api::namespaced(tc.client.clone(), &ns);
    let core_api: Api<CoreEvent> = Api::namespaced(tc.client.clone(), &ns);
    let event: Event = serde_json::from_value(json!({"metadata": {"name": "claimed"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "type": "Normal", "reason": "Claimed", "action": "Reconcile",
        "note": "claimed a warm pod", "reportingController": "paddock.dev/test", "reportingInstance": "test-1",
        "regarding": {"kind": "ConfigMap", "name": "kube-root-ca.crt", "namespace": ns, "apiVersion": "v1"}}))
    .unwrap();
    let created = new_api.create(&PostParams::default(), &event).await.unwrap();
    let core = core_api.get("claimed").await.unwrap();
    assert_eq!(core.metadata.uid, created.metadata.uid);
    assert_eq!(core.metadata.resource_version, created.metadata.resource_version);
    assert_eq!(core.message.as_deref(), Some("claimed a warm pod"));
    assert_eq!(core.involved_object.name.as_deref(), Some("kube-root-ca.crt"));
    assert_eq!(core.reporting_component.as_deref(), Some("paddock.dev/test"));

    // A series patched through the new API is seen through the old one.
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}});
    let patched = new_api.patch("claimed", &PatchParams::default(), &Patch::Merge(series)).await.unwrap();
    let core = core_api.get("claimed").await.unwrap();
    assert_eq!(core.series.as_ref().and_then(|s| s.count), Some(2));
    assert_eq!(core.metadata.resource_version, patched.metadata.resource_version);

    // kubectl describe's query: core Events by the involved object's fields.
    let lp = ListParams::default().fields("involvedObject.kind=ConfigMap,involvedObject.name=kube-root-ca.crt");
    let found = core_api.list(&lp).await.unwrap();
    assert!(found.items.iter().any(|e| e.metadata.name.as_deref() == Some("claimed")), "{found:?}");

    // A core Event is an events.k8s.io Event too.
    let old_style: CoreEvent = serde_json::from_value(json!({"metadata": {"name": "legacy"},
        "involvedObject": {"kind": "ConfigMap", "name": "kube-root-ca.crt", "namespace": ns},
        "reason": "Legacy", "message": "an old-style event", "type": "Warning", "count": 3,
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:05:00Z",
        "source": {"component": "tester"}}))
    .unwrap();
    core_api.create(&PostParams::default(), &old_style).await.unwrap();
    let seen = new_api.get("legacy").await.unwrap();
    assert_eq!(seen.note.as_deref(), Some("an old-style event"));
    assert_eq!(seen.deprecated_count, Some(3));
    assert_eq!(seen.regarding.as_ref().and_then(|r| r.name.as_deref()), Some("kube-root-ca.crt"));

    // kubectl get events: upstream's columns.
    let req = http::Request::builder()
        .uri(format!("/api/v1/namespaces/{ns}/events"))
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: serde_json::Value = tc.client.request(req).await.unwrap();
    let names: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"]
    );
    let row =
        table["rows"].as_array().unwrap().iter().find(|r| r["cells"][9] == "legacy").expect("the legacy event's row");
    assert_eq!(row["cells"][3], "configmap/kube-root-ca.crt");
    assert_eq!((row["cells"][5].as_str(), row["cells"][8].as_i64()), (Some("tester"), Some(3)));

    // Deleted through one API, gone from the other.
    core_api.delete("claimed", &DeleteParams::default()).await.unwrap();
    assert!(new_api.get_opt("claimed").await.unwrap().is_none());
    tc.finish().await;
}
