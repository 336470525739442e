//! `/sim/v1/reachability`: what a packet would experience, from the NetworkPolicy
//! evaluator over the live objects (kubesim stores policies; this says what an
//! enforcing CNI would do with them).
//!
//! - `GET /sim/v1/reachability?from=NS/POD&to=NS/POD&port=P&protocol=TCP` →
//!   `{"allowed": bool, "explanation": "...", "openPorts": "TCP/80,..."}`; either side
//!   may be an IP address outside the cluster instead of a pod.
//! - `GET /sim/v1/reachability/matrix?port=P&protocol=TCP[&namespace=NS]` →
//!   `{"pods": [...], "paths": [["ns/a", "ns/b"], ...]}` (any port when `port` is omitted).

use super::{Query, Server, error_response, json_response};
use crate::error::ApiError;
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol::{Endpoint, Evaluator, Input, Options, Protocol};
use serde::de::DeserializeOwned;
use serde_json::json;

fn typed<T: DeserializeOwned>(server: &Server, group: &str, plural: &str) -> Vec<T> {
    server.cluster.list_values(group, plural, None).into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect()
}

fn evaluator(server: &Server, query: &Query) -> Result<Evaluator, ApiError> {
    let namespaces: Vec<Namespace> = typed(server, "", "namespaces");
    let pods: Vec<Pod> = typed(server, "", "pods");
    let policies: Vec<NetworkPolicy> = typed(server, "networking.k8s.io", "networkpolicies");
    let input = Input::from_k8s(&namespaces, &pods, &policies)
        .map_err(|e| ApiError::new(422, "Invalid", format!("cannot evaluate network policies: {e}")))?;
    Ok(Evaluator::new(input, Options { ipblock_matches_pods: query.flag("ipBlockMatchesPods") }))
}

fn endpoint(ev: &Evaluator, s: &str, what: &str) -> Result<Endpoint, ApiError> {
    if let Ok(ip) = s.parse() {
        return Ok(Endpoint::External(ip));
    }
    let (ns, name) = s
        .split_once('/')
        .ok_or_else(|| ApiError::bad_request(format!("{what}: {s:?} is neither NAMESPACE/POD nor an IP address")))?;
    ev.pod(ns, name).map(Endpoint::Pod).ok_or_else(|| ApiError::not_found("", "pods", &format!("{ns}/{name}")))
}

fn port_and_protocol(query: &Query) -> Result<Option<(Protocol, u16)>, ApiError> {
    let proto_s = query.get("protocol").unwrap_or("TCP");
    let proto = Protocol::parse(proto_s)
        .ok_or_else(|| ApiError::bad_request(format!("protocol: {proto_s:?} is not TCP, UDP or SCTP")))?;
    match query.get("port") {
        None | Some("") => Ok(None),
        Some(p) => {
            let n = p
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::bad_request(format!("port: {p:?} is not a number between 1 and 65535")))?;
            Ok(Some((proto, n)))
        }
    }
}

pub fn serve(server: &Server, rest: &[&str], query: &Query) -> Response {
    match answer(server, rest, query) {
        Ok(v) => json_response(StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default()),
        Err(e) => error_response(&e),
    }
}

fn answer(server: &Server, rest: &[&str], query: &Query) -> Result<serde_json::Value, ApiError> {
    let port = port_and_protocol(query)?;
    let ev = evaluator(server, query)?;
    match rest {
        [] => {
            let from = endpoint(
                &ev,
                query.get("from").ok_or_else(|| ApiError::bad_request("from is required (NAMESPACE/POD or an IP)"))?,
                "from",
            )?;
            let to = endpoint(
                &ev,
                query.get("to").ok_or_else(|| ApiError::bad_request("to is required (NAMESPACE/POD or an IP)"))?,
                "to",
            )?;
            let open = ev.allowed_ports(from, to);
            match port {
                Some((proto, p)) => {
                    let v = ev.check(from, to, p, proto);
                    Ok(json!({"allowed": v.allowed, "explanation": v.explanation, "openPorts": open.to_string()}))
                }
                None => Ok(
                    json!({"allowed": !open.is_empty(), "explanation": format!("open ports: {open}"), "openPorts": open.to_string()}),
                ),
            }
        }
        ["matrix"] => {
            let ns = query.get("namespace");
            let m = ev.matrix(port);
            let keep = |i: usize| ns.is_none_or(|n| ev.input().pods[i].namespace == n);
            let pods: Vec<String> = (0..m.len()).filter(|&i| keep(i)).map(|i| ev.pod_name(i)).collect();
            let mut paths = Vec::new();
            for (s, row) in m.iter().enumerate() {
                for d in row.ones() {
                    if s != d && (keep(s) || keep(d)) {
                        paths.push(json!([ev.pod_name(s), ev.pod_name(d)]));
                    }
                }
            }
            Ok(json!({"pods": pods, "paths": paths}))
        }
        _ => Err(ApiError::unknown_path()),
    }
}
