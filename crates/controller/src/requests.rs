//! What Paddock asks of the API server: every request Paddock's own clients
//! send, counted by component (the API, each reconciler), verb and resource,
//! as `paddock_kube_requests_total`.
//!
//! A real API server spends CPU and an etcd commit on each request, which a
//! fast simulator hides; counting them where they are sent makes the cost
//! visible in production (`/metrics`), in `paddock bench` (requests per warm
//! claim, per refilled pool pod, per cold start) and in a test that pins a
//! warm claim's requests. Verbs and resources are named as upstream's
//! `apiserver_request_total` names them (its `RequestInfoFactory`), so the
//! two can be compared and subtracted.

use http::{Method, Request};
use kube::client::Body;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// (component, verb, resource) → requests sent.
type Counts = BTreeMap<(&'static str, &'static str, String), u64>;

/// Requests by ((component, verb, resource), count), as
/// [`Requests::snapshot`] gives them.
pub type Snapshot = Vec<((String, String, String), u64)>;

/// Requests sent by Paddock's clients since start. Clone it to share.
#[derive(Clone, Default, Debug)]
pub struct Requests(Arc<Mutex<Counts>>);

impl Requests {
    /// `client`, counting each request it sends under `component`.
    pub fn client(&self, client: kube::Client, component: &'static str) -> kube::Client {
        let counts = self.clone();
        let default_ns = client.default_namespace().to_string();
        let svc = tower::service_fn(move |req: Request<Body>| {
            let (verb, resource) = classify(&req);
            counts.note(component, verb, resource);
            let inner = client.clone();
            async move { inner.send(req).await }
        });
        kube::Client::new(svc, default_ns)
    }

    fn note(&self, component: &'static str, verb: &'static str, resource: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry((component, verb, resource)).or_default() += 1;
    }

    /// Every count so far, as ((component, verb, resource), requests).
    pub fn snapshot(&self) -> Snapshot {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts.iter().map(|((c, v, r), n)| ((c.to_string(), v.to_string(), r.clone()), *n)).collect()
    }

    /// Registers the counter as `paddock_kube_requests_total` (with the
    /// registry's prefix).
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for Requests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut family = encoder.encode_descriptor(
            "kube_requests",
            "Requests Paddock sent to the Kubernetes API server, by component, verb and resource",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for ((component, verb, resource), n) in counts {
            let labels = [("component", component.to_string()), ("verb", verb.to_string()), ("resource", resource)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A request's verb and resource (`pods`, `instances/status`) as upstream's
/// `apiserver_request_total` labels them; a path that names no resource
/// (`/version`, `/openapi/v2`) is its own resource.
pub fn classify<B>(req: &Request<B>) -> (&'static str, String) {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or_default();
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let Some((resource, named)) = resource_of(path) else {
        return (if *req.method() == Method::GET { "GET" } else { "POST" }, path.to_string());
    };
    let apply = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/apply-patch"));
    let verb = match *req.method() {
        Method::GET if watch => "WATCH",
        Method::GET if named => "GET",
        Method::GET => "LIST",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH if apply => "APPLY",
        Method::PATCH => "PATCH",
        Method::DELETE if named => "DELETE",
        Method::DELETE => "DELETECOLLECTION",
        _ => "OTHER",
    };
    (verb, resource)
}

/// `resource[/subresource]` of an API path, and whether it names an object.
fn resource_of(path: &str) -> Option<(String, bool)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    // As upstream: `namespaces/{ns}/{resource}...` unless the third part is
    // a subresource of the namespace itself (status, finalize).
    let rest = match rest {
        ["namespaces", _ns, third, more @ ..] if !matches!(*third, "status" | "finalize") => {
            let mut r = vec![*third];
            r.extend_from_slice(more);
            r
        }
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [] => None,
        [resource] => Some((resource.to_string(), false)),
        [resource, _name] => Some((resource.to_string(), true)),
        [resource, _name, sub, ..] => Some((format!("{resource}/{sub}"), true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, content_type: Option<&str>) -> (&'static str, String) {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        classify(&b.body(()).unwrap())
    }

    #[test]
    fn verbs_and_resources_are_named_as_upstream_names_them() {
        let cases = [
            (req(Method::GET, "/api/v1/namespaces/a/pods/p", None), ("GET", "pods")),
            (req(Method::GET, "/api/v1/namespaces/a/pods?labelSelector=x", None), ("LIST", "pods")),
            (req(Method::GET, "/api/v1/pods?watch=true&resourceVersion=1", None), ("WATCH", "pods")),
            (req(Method::GET, "/api/v1/namespaces", None), ("LIST", "namespaces")),
            (req(Method::GET, "/api/v1/namespaces/a", None), ("GET", "namespaces")),
            (req(Method::PUT, "/api/v1/namespaces/a/finalize", None), ("PUT", "namespaces/finalize")),
            (req(Method::PUT, "/api/v1/namespaces/a/pods/p", None), ("PUT", "pods")),
            (req(Method::POST, "/apis/paddock.dev/v1alpha1/namespaces/t/instances", None), ("POST", "instances")),
            (
                req(
                    Method::PATCH,
                    "/apis/paddock.dev/v1alpha1/namespaces/t/instances/i/status?fieldManager=x",
                    Some("application/merge-patch+json"),
                ),
                ("PATCH", "instances/status"),
            ),
            (
                req(Method::PATCH, "/api/v1/namespaces/a/services/s", Some("application/apply-patch+yaml")),
                ("APPLY", "services"),
            ),
            (req(Method::DELETE, "/api/v1/namespaces/a/pods/p", None), ("DELETE", "pods")),
            (req(Method::DELETE, "/api/v1/namespaces/a/pods?labelSelector=x", None), ("DELETECOLLECTION", "pods")),
            (req(Method::GET, "/apis/paddock.dev/v1alpha1/templates/t", None), ("GET", "templates")),
            (req(Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events", None), ("POST", "events")),
            (req(Method::GET, "/version", None), ("GET", "/version")),
        ];
        for (got, (verb, resource)) in cases {
            assert_eq!(got, (verb, resource.to_string()));
        }
    }

    #[tokio::test]
    async fn a_counted_client_counts_what_it_sends() {
        let sim = kubesim::testing::TestCluster::start().await;
        let requests = Requests::default();
        let client = requests.client(sim.client.clone(), "test");
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "default");
        pods.list(&Default::default()).await.unwrap();
        assert!(pods.get_opt("nope").await.unwrap().is_none());
        let got = requests.snapshot();
        let want = |verb: &str| (("test".to_string(), verb.to_string(), "pods".to_string()), 1);
        assert_eq!(got, vec![want("GET"), want("LIST")]);
        let mut registry = prometheus_client::registry::Registry::with_prefix("paddock");
        requests.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"paddock_kube_requests_total{component="test",verb="LIST",resource="pods"} 1"#),
            "{text}"
        );
    }
}
