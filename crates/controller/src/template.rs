//! The template controller: validates each Template and reports it in
//! `status` (Accepted condition, pod count). Instances of a template that is
//! not accepted are refused by the instance reconciler with the same reasons.

use crate::metrics::Metrics;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use resources::Template;
use resources::template::TemplateStatus;
use std::sync::Arc;
use std::time::Duration;

/// The status a template should have.
pub fn status_for(t: &Template) -> TemplateStatus {
    let problems = t.spec.validate();
    let (ok, reason, message) = if problems.is_empty() {
        (true, "Valid", "the template can be started".to_string())
    } else {
        (false, "Invalid", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))
    };
    let status = if ok { "True" } else { "False" };
    let old = t.status.clone().unwrap_or_default();
    let since = old
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted" && c.status == status && c.reason == reason)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(Timestamp::now()));
    TemplateStatus {
        pods: Some(t.spec.pods.len() as u32),
        observed_generation: t.metadata.generation,
        conditions: vec![Condition {
            type_: "Accepted".into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: t.metadata.generation,
            last_transition_time: since,
        }],
        // The pool reconciler owns this part.
        pool: old.pool,
    }
}

struct Context {
    client: Client,
    metrics: Arc<Metrics>,
}

async fn reconcile(t: Arc<Template>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    ctx.metrics
        .reconcile("template", async {
            let want = status_for(&t);
            if t.status.as_ref() != Some(&want) {
                let api: Api<Template> = Api::all(ctx.client.clone());
                let pp = PatchParams::default();
                api.patch_status(&t.name_any(), &pp, &Patch::Merge(serde_json::json!({"status": want}))).await?;
            }
            Ok(Action::await_change())
        })
        .await
}

fn error_policy(t: Arc<Template>, e: &kube::Error, _: Arc<Context>) -> Action {
    tracing::warn!(template = %t.name_any(), error = %e, "template status update failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the template controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ctx = Arc::new(Context { client: client.clone(), metrics });
    Controller::new(Api::<Template>::all(client), watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|r| {
            ctx.metrics.run_result("template", &r);
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_or_not_with_the_reasons() {
        let good: Template =
            serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "t", "generation": 3}, "spec": {"pods": [{"name": "a", "image": "busybox"}]}}))
            .unwrap();
        let s = status_for(&good);
        assert_eq!((s.conditions[0].status.as_str(), s.pods, s.observed_generation), ("True", Some(1), Some(3)));
        let bad: Template =
            serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "t"}, "spec": {"pods": []}}))
            .unwrap();
        let s = status_for(&bad);
        assert_eq!(s.conditions[0].reason, "Invalid");
        assert_eq!(s.conditions[0].message, "spec.pods: a template needs at least one pod");
    }
}
