//! `GET pods/NAME/log`: containers do not run in kubesim, so a log is empty,
//! but the request is checked as the API server and kubelet check it (which
//! container, and whether it has started).

use super::Query;
use crate::error::ApiError;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

fn names<'a>(pod: &'a Value, list: &str) -> Vec<&'a str> {
    pod.pointer(&format!("/spec/{list}"))
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

/// The (empty) log of a container of `pod`, or upstream's refusal.
pub(crate) fn pod_log(pod: &Value, name: &str, query: &Query) -> Result<Response, ApiError> {
    let (containers, inits) = (names(pod, "containers"), names(pod, "initContainers"));
    let ephemeral = names(pod, "ephemeralContainers");
    // The API server's pod strategy (LogLocation), word for word.
    let container = match query.get("container").filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) || inits.contains(&c) || ephemeral.contains(&c) => c,
        Some(c) => return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if containers.len() == 1 => containers[0],
        None if containers.is_empty() => {
            return Err(ApiError::bad_request(format!("a container name must be specified for pod {name}")));
        }
        None => {
            let mut msg =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !inits.is_empty() {
                msg += &format!(" or one of the init containers: [{}]", inits.join(" "));
            }
            return Err(ApiError::bad_request(msg));
        }
    };
    // A pod not on a node yet has no log to stream: an empty answer.
    if pod.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
        let statuses = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .filter_map(|k| pod.pointer(&format!("/status/{k}")).and_then(Value::as_array))
            .flatten();
        let waiting = statuses
            .filter(|s| s["name"].as_str() == Some(container))
            .find_map(|s| s.pointer("/state/waiting/reason").and_then(Value::as_str));
        // The kubelet's validateContainerLogStatus, passed on as a 400.
        if let Some(reason) = waiting {
            return Err(ApiError::bad_request(format!(
                "container {container:?} in pod {name:?} is waiting to start: {reason}"
            )));
        }
        // Containers never restart here, so none has a previous run.
        if query.flag("previous") {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )));
        }
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "").into_response())
}
