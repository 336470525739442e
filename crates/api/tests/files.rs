//! The file browser end to end: API → the tenant's file server (a pod the
//! controller starts on demand) → its volume. On kubesim the pod's server is
//! kubesim's simulated one over in-memory volumes, reached at the pod's
//! address like a real one.

mod common;

use axum::http::StatusCode;
use common::{ADMIN, Env, T};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kubesim::testing::wait_until;
use serde_json::{Value, json};
use std::time::Duration;

const MIB: usize = 1 << 20;

async fn tenant(env: &Env, name: &str, spec: Value) -> String {
    let (code, body) = env.call("POST", "/v1/tenants", Some(ADMIN), Some(json!({"name": name, "spec": spec}))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    env.wait_tenant_ready(name).await;
    env.issue(name).await
}

/// A raw request: (status, headers, body bytes).
async fn raw(
    env: &Env,
    method: &str,
    path: &str,
    token: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req =
        axum::http::Request::builder().method(method).uri(path).header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = env.router.clone().oneshot(req.body(axum::body::Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn q(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn put(env: &Env, base: &str, token: &str, path: &str, data: Vec<u8>, replace: bool) -> (StatusCode, Value) {
    let (code, _, body) =
        raw(env, "PUT", &format!("{base}/content?path={}&replace={replace}", q(path)), token, data, &[]).await;
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn names(env: &Env, base: &str, token: &str, path: &str) -> Vec<String> {
    let (code, v) = env.call("GET", &format!("{base}?path={}", q(path)), Some(token), None).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

async fn server_pod(env: &Env, tenant: &str) -> Option<Pod> {
    Api::<Pod>::namespaced(env.tc.client.clone(), &env.state.namespace(tenant)).get_opt("paddock-files").await.unwrap()
}

#[tokio::test]
async fn a_tenant_browses_its_volume_through_a_server_started_on_demand() {
    let env = Env::start_with(|s| {
        s.files_idle = Duration::from_secs(3);
        s.files_max_upload = 4 * MIB as u64;
    })
    .await;
    let Some(_) = env.tc.sim("the test process reaches the file server at its pod's address") else {
        env.finish().await;
        return;
    };
    let name = format!("files-{}", env.id);
    let token = tenant(&env, &name, json!({"kind": "Team", "storage": {"size": "1Mi"}})).await;
    let base = format!("/v1/tenants/{name}/storage/files");
    assert!(server_pod(&env, &name).await.is_none(), "no server before the first request");

    // The first request starts the server; the volume is empty.
    let (code, v) = env.call("GET", &base, Some(&token), None).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        (v["volume"].as_str(), v["path"].as_str(), v["entries"].as_array().map(Vec::len)),
        (Some("home"), Some("/"), Some(0))
    );
    let pod = server_pod(&env, &name).await.expect("the file server's pod");
    let spec = serde_json::to_value(pod.spec.unwrap()).unwrap();
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(spec["containers"][0]["args"][0], "files-server");
    let pol = Api::<NetworkPolicy>::namespaced(env.tc.client.clone(), &env.state.namespace(&name))
        .get("paddock-files")
        .await
        .unwrap();
    let pol = serde_json::to_value(pol.spec.unwrap()).unwrap();
    assert_eq!(pol["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(pol["egress"], json!([]), "the server reaches nothing");

    // Make, write, read (whole and in part), list.
    let (code, v) = env.call("POST", &format!("{base}/mkdir?path=/docs"), Some(&token), None).await;
    assert_eq!((code, v["kind"].as_str()), (StatusCode::CREATED, Some("Directory")), "{v}");
    let (code, v) = put(&env, &base, &token, "/docs/hello.txt", b"hello world".to_vec(), false).await;
    assert_eq!((code, v["size"].as_u64()), (StatusCode::CREATED, Some(11)), "{v}");
    assert_eq!(names(&env, &base, &token, "docs").await, ["hello.txt"]);
    let content = format!("{base}/content?path=/docs/hello.txt");
    let (code, h, body) = raw(&env, "GET", &content, &token, vec![], &[]).await;
    assert_eq!((code, body.as_slice()), (StatusCode::OK, b"hello world".as_slice()));
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"hello.txt\""));
    let (code, h, body) = raw(&env, "GET", &content, &token, vec![], &[("range", "bytes=0-4")]).await;
    assert_eq!(
        (code, body.as_slice(), h["content-range"].to_str().unwrap()),
        (StatusCode::PARTIAL_CONTENT, b"hello".as_slice(), "bytes 0-4/11")
    );
    let (code, h, _) = raw(&env, "GET", &content, &token, vec![], &[("range", "bytes=20-")]).await;
    assert_eq!((code, h["content-range"].to_str().unwrap()), (StatusCode::RANGE_NOT_SATISFIABLE, "bytes */11"));

    // Replacing needs saying so; a full volume and an upload over the limit leave nothing.
    let (code, v) = put(&env, &base, &token, "/docs/hello.txt", b"bye".to_vec(), false).await;
    assert_eq!((code, v["type"].as_str()), (StatusCode::CONFLICT, Some("https://paddock.dev/problems/exists")), "{v}");
    let (code, _) = put(&env, &base, &token, "/docs/hello.txt", b"bye".to_vec(), true).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, v) = put(&env, &base, &token, "/big", vec![7; 2 * MIB], false).await;
    assert_eq!((code.as_u16(), v["type"].as_str()), (507, Some("https://paddock.dev/problems/volume-full")), "{v}");
    let (code, v) = put(&env, &base, &token, "/huge", vec![7; 5 * MIB], false).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(names(&env, &base, &token, "/").await, ["docs"], "nothing of the refused uploads stays");

    // Hostile paths are refused before they reach anything, naming the parameter.
    let long_name = "a".repeat(256);
    let long_path = "a/".repeat(2100);
    for bad in ["..", "docs/../../etc/passwd", "/..", "a\0b", "a\nb", long_name.as_str(), long_path.as_str()] {
        let (code, v) = env.call("GET", &format!("{base}?path={}", q(bad)), Some(&token), None).await;
        assert_eq!((code, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("path")), "{bad:?}: {v}");
        let (code, _) = put(&env, &base, &token, bad, b"x".to_vec(), true).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    // An absolute path is the volume's, never the server's.
    let (code, _, _) = raw(&env, "GET", &format!("{base}/content?path=/etc/passwd"), &token, vec![], &[]).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, v) = env.call("DELETE", &format!("{base}?path=/"), Some(&token), None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the root is not deleted: {v}");

    // Another tenant's token sees nothing; no token is refused; an admin sees it.
    let (code, _) = env.call("GET", &base, Some(&env.beta_token), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = env.call("GET", &base, None, None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(names(&env, &base, ADMIN, "/docs").await, ["hello.txt"]);

    // Deleting: a directory with content only recursively.
    let (code, v) = env.call("DELETE", &format!("{base}?path=/docs"), Some(&token), None).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::CONFLICT, Some("https://paddock.dev/problems/not-empty")),
        "{v}"
    );
    put(&env, &base, &token, "/keep", b"kept".to_vec(), false).await;
    let (code, _) = env.call("DELETE", &format!("{base}?path=/docs&recursive=true"), Some(&token), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(names(&env, &base, &token, "/").await, ["keep"]);

    // Left alone, the server stops; the next request starts it again, and the content is still there.
    let pods: Api<Pod> = Api::namespaced(env.tc.client.clone(), &env.state.namespace(&name));
    kubesim::testing::wait_gone(&pods, "paddock-files", T).await;
    assert_eq!(names(&env, &base, &token, "/").await, ["keep"]);
    assert!(server_pod(&env, &name).await.is_some());

    // Read-only: reading goes on, writing is refused; Disabled: nothing, and the server stops.
    // The body is a merge patch of the spec: a field it does not have is named, not dropped.
    let (code, v) = env
        .call(
            "PATCH",
            &format!("/v1/tenants/{name}"),
            Some(ADMIN),
            Some(json!({"spec": {"storage": {"files": "ReadOnly"}}})),
        )
        .await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("spec.spec")), "{v}");
    let (code, v) = env
        .call("PATCH", &format!("/v1/tenants/{name}"), Some(ADMIN), Some(json!({"storage": {"fiels": "ReadOnly"}})))
        .await;
    assert_eq!((code, v["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("spec.storage.fiels")), "{v}");
    let patch = json!({"storage": {"files": "ReadOnly"}});
    let (code, v) = env.call("PATCH", &format!("/v1/tenants/{name}"), Some(ADMIN), Some(patch)).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    wait_until(T, "the tenant is read-only", || async {
        env.state
            .tenant(&name)
            .await
            .unwrap()
            .is_some_and(|t| t.spec.storage.files == resources::tenant::FilesAccess::ReadOnly)
    })
    .await;
    let (code, v) = put(&env, &base, &token, "/new", b"x".to_vec(), false).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("https://paddock.dev/problems/read-only")),
        "{v}"
    );
    let (code, v) = env.call("GET", &base, Some(&token), None).await;
    assert_eq!((code, v["readOnly"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let patch = json!({"storage": {"files": "Disabled"}});
    env.call("PATCH", &format!("/v1/tenants/{name}"), Some(ADMIN), Some(patch)).await;
    wait_until(T, "the tenant's browser is off", || async {
        env.state
            .tenant(&name)
            .await
            .unwrap()
            .is_some_and(|t| t.spec.storage.files == resources::tenant::FilesAccess::Disabled)
    })
    .await;
    let (code, v) = env.call("GET", &base, Some(&token), None).await;
    assert_eq!(
        (code, v["type"].as_str()),
        (StatusCode::FORBIDDEN, Some("https://paddock.dev/problems/files-disabled")),
        "{v}"
    );
    kubesim::testing::wait_gone(&pods, "paddock-files", T).await;
    env.call("DELETE", &format!("/v1/tenants/{name}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test]
async fn group_members_share_the_group_volume_and_no_one_else_does() {
    let env = Env::start().await;
    let Some(_) = env.tc.sim("the test process reaches the file server at its pod's address") else {
        env.finish().await;
        return;
    };
    let group = format!("grp-{}", env.id);
    let (one, two) = (format!("one-{}", env.id), format!("two-{}", env.id));
    tenant(&env, &group, json!({"kind": "Group", "storage": {"size": "1Mi"}})).await;
    let t1 = tenant(&env, &one, json!({"kind": "User", "storage": {"enabled": false}, "groups": [group]})).await;
    let t2 = tenant(&env, &two, json!({"kind": "User", "storage": {"enabled": false}, "groups": [group]})).await;
    let (code, v) = put(
        &env,
        &format!("/v1/tenants/{one}/storage/groups/{group}/files"),
        &t1,
        "/shared.txt",
        b"from one".to_vec(),
        false,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let base2 = format!("/v1/tenants/{two}/storage/groups/{group}/files");
    assert_eq!(names(&env, &base2, &t2, "/").await, ["shared.txt"]);
    let (_, _, body) = raw(&env, "GET", &format!("{base2}/content?path=shared.txt"), &t2, vec![], &[]).await;
    assert_eq!(body, b"from one");
    // Not a member's group, a tenant's own volume it does not have, another's token.
    let (code, _) = env
        .call("GET", &format!("/v1/tenants/{}/storage/groups/{group}/files", env.alpha), Some(&env.alpha_token), None)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, v) = env.call("GET", &format!("/v1/tenants/{two}/storage/files"), Some(&t2), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, _) = env.call("GET", &base2, Some(&t1), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    for t in [&one, &two, &group] {
        env.call("DELETE", &format!("/v1/tenants/{t}"), Some(ADMIN), None).await;
    }
    env.finish().await;
}

#[tokio::test]
async fn a_file_server_the_quota_has_no_room_for_is_refused_with_the_reason() {
    let env = Env::start().await;
    let name = format!("tight-{}", env.id);
    let token =
        tenant(&env, &name, json!({"kind": "Team", "quota": {"memory": "16Mi"}, "storage": {"size": "1Mi"}})).await;
    let (code, v) = env.call("GET", &format!("/v1/tenants/{name}/storage/files"), Some(&token), None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["type"], "https://paddock.dev/problems/file-server-refused");
    assert!(v["detail"].as_str().unwrap().contains("exceeded quota"), "{v}");
    let (_, t) = env.call("GET", &format!("/v1/tenants/{name}"), Some(ADMIN), None).await;
    assert_eq!(t["status"]["files"]["phase"], "Refused", "{t}");
    env.call("DELETE", &format!("/v1/tenants/{name}"), Some(ADMIN), None).await;
    env.finish().await;
}

#[tokio::test]
async fn refused_requests_start_no_server() {
    let env = Env::start().await;
    let base = format!("/v1/tenants/{}/storage/files", env.alpha);
    // alpha has no volume of its own (storage disabled): 404, naming why.
    let (code, v) = env.call("GET", &base, Some(&env.alpha_token), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("spec.storage.enabled"), "{v}");
    for (path, token) in [
        (format!("{base}?path=.."), Some(env.alpha_token.as_str())),
        (base.clone(), Some(env.beta_token.as_str())),
        (base.clone(), None),
    ] {
        let (code, _) = env.call("GET", &path, token, None).await;
        assert!(code.is_client_error(), "{path}");
    }
    assert!(server_pod(&env, &env.alpha).await.is_none());
    env.finish().await;
}
