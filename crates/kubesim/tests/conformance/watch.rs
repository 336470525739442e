//! Watch semantics: ordered events, resume from a resourceVersion, 410 Gone for a
//! too-old version (and kube's watcher recovering from it), selector transitions,
//! bookmarks, timeouts.

use super::configmap;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kubesim::SimConfig;
use kubesim::testing::TestCluster;
use serde_json::json;
use std::time::Duration;

async fn next_event(
    s: &mut (impl futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin),
) -> WatchEvent<ConfigMap> {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event ok");
        if !matches!(ev, WatchEvent::Bookmark(_)) {
            return ev;
        }
    }
}

fn name(ev: &WatchEvent<ConfigMap>) -> (&'static str, String) {
    match ev {
        WatchEvent::Added(c) => ("ADDED", c.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(c) => ("MODIFIED", c.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Deleted(c) => ("DELETED", c.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Bookmark(_) => ("BOOKMARK", String::new()),
        WatchEvent::Error(e) => panic!("watch error {e:?}"),
    }
}

#[tokio::test]
async fn events_arrive_in_order_and_resume_from_a_version() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("watch").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let start = api.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut s = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    configmap(&api, "w", json!({"a": "1"})).await;
    api.patch("w", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "2"}}))).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let ev = next_event(&mut s).await;
        let (t, n) = name(&ev);
        if n == "w" {
            got.push(t);
        }
    }
    assert_eq!(got, ["ADDED", "MODIFIED", "DELETED"]);

    // Resuming from `start` replays the same history.
    let mut again = api.watch(&WatchParams::default(), &start).await.unwrap().boxed();
    let mut replay = Vec::new();
    while replay.len() < 3 {
        let ev = next_event(&mut again).await;
        let (t, n) = name(&ev);
        if n == "w" {
            replay.push(t);
        }
    }
    assert_eq!(replay, got);
    tc.finish().await;
}

#[tokio::test]
async fn objects_leaving_a_selector_are_deleted_events() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("selwatch").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let start = api.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut s = api.watch(&WatchParams::default().labels("team=a"), &start).await.unwrap().boxed();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x", "labels": {"team": "b"}}})).unwrap();
    api.create(&Default::default(), &cm).await.unwrap();
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})))
        .await
        .unwrap();
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "c"}}})))
        .await
        .unwrap();
    assert_eq!(name(&next_event(&mut s).await), ("ADDED", "x".to_string()));
    assert_eq!(name(&next_event(&mut s).await), ("DELETED", "x".to_string()));
    tc.finish().await;
}

#[tokio::test]
async fn too_old_resource_version_is_410_and_the_watcher_relists() {
    let mut cfg = SimConfig::default();
    cfg.history = 16;
    let mut tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("needs a small watch history to force compaction") else {
        return;
    };
    let ns = tc.namespace("gone").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let old = api.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    for i in 0..40 {
        configmap(&api, &format!("c{i}"), json!({})).await;
    }
    let mut s = api.watch(&WatchParams::default(), &old).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), s.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(e))) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(e.message.starts_with(&format!("too old resource version: {old} (")), "{}", e.message);
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // kube's watcher recovers by relisting and sees every object.
    let stream = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects();
    let mut stream = stream.boxed();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 40 {
        let cm = tokio::time::timeout(Duration::from_secs(10), stream.try_next()).await.unwrap().unwrap().unwrap();
        if cm.metadata.name.as_deref().is_some_and(|n| n.starts_with('c')) {
            seen.insert(cm.metadata.name.unwrap());
        }
    }
    tc.finish().await;
}

#[tokio::test]
async fn bookmarks_and_timeouts() {
    let mut cfg = SimConfig::default();
    cfg.bookmark_interval = Duration::from_millis(200);
    let mut tc = TestCluster::with_config(cfg).await;
    let Some(_) = tc.sim("bookmark interval is a kubesim knob (upstream sends one about every minute)") else {
        return;
    };
    let ns = tc.namespace("bm").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let rv = api.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut s =
        api.watch(&WatchParams { bookmarks: true, ..WatchParams::default() }.timeout(2), &rv).await.unwrap().boxed();
    let mut bookmark = false;
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        while let Some(ev) = s.next().await {
            if let Ok(WatchEvent::Bookmark(b)) = ev {
                assert!(!b.metadata.resource_version.is_empty());
                bookmark = true;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "timeoutSeconds=2 must end the stream");
    assert!(bookmark, "allowWatchBookmarks=true must produce BOOKMARK events");
    tc.finish().await;
}

#[tokio::test]
async fn many_watchers_all_see_every_write() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("fan").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    let rv = api.list_metadata(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut streams = Vec::new();
    for _ in 0..50 {
        streams.push(api.watch(&WatchParams::default(), &rv).await.unwrap().boxed());
    }
    for i in 0..5 {
        configmap(&api, &format!("f{i}"), json!({})).await;
    }
    for mut s in streams {
        let mut n = 0;
        while n < 5 {
            if let (t, name) = name(&next_event(&mut s).await)
                && t == "ADDED"
                && name.starts_with('f')
            {
                n += 1;
            }
        }
    }
    tc.finish().await;
}

/// `Accept: ...;as=PartialObjectMetadata(List)` (kube's `Api<PartialObjectMeta<K>>`):
/// lists, gets and watches answer with metadata only, as upstream does.
#[tokio::test]
async fn metadata_only_reads_answer_partial_object_metadata() {
    use kube::core::PartialObjectMeta;
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("meta").await;
    let api: Api<ConfigMap> = Api::namespaced(tc.client.clone(), &ns);
    configmap(&api, "m", json!({"secret-ish": "not in metadata"})).await;
    let meta: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(tc.client.clone(), &ns);

    let list = meta.list(&Default::default()).await.unwrap();
    let kind = |t: &Option<kube::core::TypeMeta>| t.as_ref().map(|t| (t.api_version.clone(), t.kind.clone()));
    assert_eq!(
        (list.types.api_version.as_str(), list.types.kind.as_str()),
        ("meta.k8s.io/v1", "PartialObjectMetadataList")
    );
    // (kube-root-ca.crt is there too, as in every namespace.)
    let m = list.items.iter().find(|o| o.metadata.name.as_deref() == Some("m")).expect("m listed");
    assert_eq!(kind(&m.types), Some(("meta.k8s.io/v1".into(), "PartialObjectMetadata".into())));
    let got = meta.get("m").await.unwrap();
    assert_eq!(kind(&got.types), Some(("meta.k8s.io/v1".into(), "PartialObjectMetadata".into())));

    // The raw answer carries no data, only metadata.
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .uri(format!("/api/v1/namespaces/{ns}/configmaps"))
        .header("accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json")
        .body(kube::client::Body::from(Vec::new()))
        .unwrap();
    let body = tc.client.send(req).await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = v["items"].as_array().expect("items");
    assert!(items.iter().any(|i| i["metadata"]["name"] == "m"), "{v}");
    assert!(items.iter().all(|i| i.get("data").is_none() && i["kind"] == "PartialObjectMetadata"), "{v}");

    // Watches: added, modified and deleted objects as metadata.
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut s = meta.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    api.patch("m", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}}))).await.unwrap();
    api.delete("m", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), s.next()).await.unwrap().unwrap().unwrap();
        match ev {
            WatchEvent::Modified(o) => seen.push(("MODIFIED", kind(&o.types), o.metadata.labels.clone())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", kind(&o.types), None)),
            _ => {}
        }
    }
    let pom = Some(("meta.k8s.io/v1".to_string(), "PartialObjectMetadata".to_string()));
    assert_eq!(seen[0].0, "MODIFIED");
    assert_eq!(seen[0].1, pom);
    assert_eq!(seen[0].2.as_ref().and_then(|l| l.get("x")).map(String::as_str), Some("1"));
    assert_eq!((seen[1].0, seen[1].1.clone()), ("DELETED", pom));
    tc.finish().await;
}
