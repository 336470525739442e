//! Protobuf request bodies: what client-go (and so kubectl's generator
//! commands) sends for built-in kinds. The bodies here are encoded with k8s-pb,
//! types generated independently of kubesim's decoder; the kubectl test sends
//! client-go's own encoding.

use super::raw;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, Service};
use k8s_pb::api::core::v1 as pb;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams};
use kubesim::testing::TestCluster;
use prost::Message;
use std::collections::BTreeMap;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Upstream's envelope: `k8s\0` and a runtime.Unknown with the type and the object.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(object.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    [b"k8s\0".as_slice(), &unknown.encode_to_vec()].concat()
}

fn meta(name: &str) -> Option<ObjectMeta> {
    Some(ObjectMeta {
        name: Some(name.into()),
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        ..Default::default()
    })
}

#[tokio::test]
async fn protobuf_bodies_create_built_in_objects() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("protobuf").await;
    let c = tc.client.clone();

    // A Secret: bytes come out as base64, the type as sent.
    let secret = pb::Secret {
        metadata: meta("creds"),
        r#type: Some("Opaque".into()),
        data: BTreeMap::from([("password".to_string(), b"s3cr3t\0\xff".to_vec())]),
        ..Default::default()
    };
    let (code, body) =
        raw(&c, "POST", &format!("/api/v1/namespaces/{ns}/secrets"), PROTOBUF, &envelope("v1", "Secret", &secret))
            .await;
    assert_eq!(code, 201, "{body}");
    let got = Api::<Secret>::namespaced(c.clone(), &ns).get("creds").await.unwrap();
    assert_eq!(got.data.unwrap()["password"].0, b"s3cr3t\0\xff");
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    assert_eq!(got.metadata.labels.unwrap()["app"], "web");

    // A Service: an int-or-string target port by name, a NodePort type.
    let service = pb::Service {
        metadata: meta("web"),
        spec: Some(pb::ServiceSpec {
            r#type: Some("NodePort".into()),
            selector: BTreeMap::from([("app".to_string(), "web".to_string())]),
            ports: vec![pb::ServicePort {
                name: Some("http".into()),
                port: Some(80),
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString { r#type: Some(1), int_val: None, str_val: Some("http".into()) }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let (code, body) =
        raw(&c, "POST", &format!("/api/v1/namespaces/{ns}/services"), PROTOBUF, &envelope("v1", "Service", &service))
            .await;
    assert_eq!(code, 201, "{body}");
    let got = Api::<Service>::namespaced(c.clone(), &ns).get("web").await.unwrap();
    let port = &got.spec.unwrap().ports.unwrap()[0];
    assert_eq!(serde_json::to_value(&port.target_port).unwrap(), "http");
    assert!(port.node_port.is_some_and(|p| (30000..=32767).contains(&p)), "{port:?}");

    // A Pod: quantities as strings, an explicit zero (runAsUser: 0) kept.
    let pod = pb::Pod {
        metadata: meta("runner"),
        spec: Some(pb::PodSpec {
            containers: vec![pb::Container {
                name: Some("main".into()),
                image: Some("busybox:1.36".into()),
                resources: Some(pb::ResourceRequirements {
                    requests: BTreeMap::from([("cpu".to_string(), Quantity { string: Some("250m".into()) })]),
                    ..Default::default()
                }),
                security_context: Some(pb::SecurityContext { run_as_user: Some(0), ..Default::default() }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let (code, body) =
        raw(&c, "POST", &format!("/api/v1/namespaces/{ns}/pods"), PROTOBUF, &envelope("v1", "Pod", &pod)).await;
    assert_eq!(code, 201, "{body}");
    let got = Api::<Pod>::namespaced(c.clone(), &ns).get("runner").await.unwrap();
    let container = &got.spec.unwrap().containers[0];
    assert_eq!(container.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0, "250m");
    assert_eq!(container.security_context.as_ref().unwrap().run_as_user, Some(0));

    // A Deployment of zero replicas stays at zero (not defaulted to one).
    let deployment = k8s_pb::api::apps::v1::Deployment {
        metadata: meta("zero"),
        spec: Some(k8s_pb::api::apps::v1::DeploymentSpec {
            replicas: Some(0),
            selector: Some(k8s_pb::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                ..Default::default()
            }),
            template: Some(pb::PodTemplateSpec { metadata: meta("ignored"), spec: pod.spec.clone() }),
            ..Default::default()
        }),
        status: None,
    };
    let (code, body) = raw(
        &c,
        "POST",
        &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        PROTOBUF,
        &envelope("apps/v1", "Deployment", &deployment),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let got = Api::<Deployment>::namespaced(c.clone(), &ns).get("zero").await.unwrap();
    assert_eq!(got.spec.unwrap().replicas, Some(0));

    // An update (PUT) in protobuf.
    let cms = Api::<ConfigMap>::namespaced(c.clone(), &ns);
    let cm = pb::ConfigMap {
        metadata: meta("settings"),
        data: BTreeMap::from([("a".to_string(), "1".to_string())]),
        ..Default::default()
    };
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    let (code, body) = raw(&c, "POST", &path, PROTOBUF, &envelope("v1", "ConfigMap", &cm)).await;
    assert_eq!(code, 201, "{body}");
    let rv = cms.get("settings").await.unwrap().metadata.resource_version;
    let mut changed = cm.clone();
    changed.metadata.as_mut().unwrap().resource_version = rv;
    changed.data.insert("a".into(), "2".into());
    let (code, body) =
        raw(&c, "PUT", &format!("{path}/settings"), PROTOBUF, &envelope("v1", "ConfigMap", &changed)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(cms.get("settings").await.unwrap().data.unwrap()["a"], "2");
    tc.finish().await;
}

#[tokio::test]
async fn protobuf_bodies_that_are_not_objects_are_refused() {
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("protobuf-bad").await;
    let c = tc.client.clone();
    let path = format!("/api/v1/namespaces/{ns}/configmaps");

    // Without the envelope's magic: 400, naming the expected prefix.
    let (code, body) = raw(&c, "POST", &path, PROTOBUF, b"{\"metadata\":{}}").await;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("does not appear to be a protobuf message"), "{body}");

    // Bytes that are not a message of the kind: 400, nothing stored.
    let mut bad = envelope("v1", "ConfigMap", &pb::ConfigMap::default());
    bad.extend_from_slice(&[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let (code, body) = raw(&c, "POST", &path, PROTOBUF, &bad).await;
    assert_eq!(code, 400, "{body}");
    let stored = Api::<ConfigMap>::namespaced(c.clone(), &ns).list(&Default::default()).await.unwrap().items;
    assert!(stored.iter().all(|cm| cm.metadata.name.as_deref() == Some("kube-root-ca.crt")), "{stored:?}");
    tc.finish().await;
}

/// kubectl's generator commands send client-go's protobuf; on kubesim they
/// used to get a 415.
#[tokio::test]
async fn kubectl_generator_commands_work() {
    if std::process::Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let mut tc = TestCluster::start().await;
    let ns = tc.namespace("kubectl-create").await;
    let dir = std::env::temp_dir().join(format!("kubesim-kubectl-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = tc.kubeconfig_file(&dir);
    // Run off the test's runtime thread, which also serves kubesim.
    let kubectl = async |args: &[&str]| {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let extra_ns = format!("{ns}-extra");
    kubectl(&["create", "namespace", &extra_ns]).await;
    // Go's zero values (empty strings, a zero creation time) are not stored.
    let namespaces = Api::<Namespace>::all(tc.client.clone());
    let created = namespaces.get(&extra_ns).await;
    let _ = namespaces.delete(&extra_ns, &DeleteParams::default()).await;
    let created = created.unwrap();
    assert!(created.metadata.generate_name.is_none(), "{:?}", created.metadata);
    kubectl(&["-n", &ns, "create", "secret", "generic", "creds", "--from-literal=password=s3cr3t"]).await;
    kubectl(&["-n", &ns, "create", "configmap", "settings", "--from-literal=a=1"]).await;
    kubectl(&["-n", &ns, "create", "serviceaccount", "robot"]).await;
    kubectl(&["-n", &ns, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=0"]).await;
    kubectl(&["-n", &ns, "run", "one", "--image=busybox:1.36", "--restart=Never"]).await;
    let token = kubectl(&["-n", &ns, "create", "token", "robot", "--duration=10m"]).await;
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");

    let secret = Api::<Secret>::namespaced(tc.client.clone(), &ns).get("creds").await.unwrap();
    assert_eq!(secret.data.unwrap()["password"].0, b"s3cr3t");
    let cm = Api::<ConfigMap>::namespaced(tc.client.clone(), &ns).get("settings").await.unwrap();
    assert_eq!(cm.data.unwrap()["a"], "1");
    let web = Api::<Deployment>::namespaced(tc.client.clone(), &ns).get("web").await.unwrap();
    assert_eq!(web.spec.unwrap().replicas, Some(0));
    let pod = Api::<Pod>::namespaced(tc.client.clone(), &ns).get("one").await.unwrap();
    assert_eq!(pod.spec.unwrap().restart_policy.as_deref(), Some("Never"));
    let _ = std::fs::remove_dir_all(&dir);
    tc.finish().await;
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    )
}
