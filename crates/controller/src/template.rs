//! The template controller: validates each Template and reports it in
//! `status` (Accepted condition, pod count). Instances of a template that is
//! not accepted are refused by the instance reconciler with the same reasons.
//!
//! A template in use is protected, as a PersistentVolumeClaim in use is: its
//! finalizer keeps a deleted template until its last instance is gone, so
//! those instances keep being repaired (a deleted pod re-created), while new
//! ones are refused and its warm pool drains.

use crate::events::Events;
use crate::finalizers::{add_finalizer, remove_finalizer};
use crate::metrics::Metrics;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::{Client, Resource, ResourceExt};
use resources::template::TemplateStatus;
use resources::{Instance, Template};
use std::sync::Arc;
use std::time::Duration;

/// Keeps a deleted template while instances of it remain.
pub const FINALIZER: &str = resources::vocabulary::TEMPLATE_FINALIZER;

/// How often a deleted template still in use looks at its instances again.
const RECHECK: Duration = Duration::from_secs(2);

/// The status a template should have; `users`: the instances that hold a
/// deleted template back.
pub fn status_for(t: &Template, users: &[String], settings: &crate::config::Settings) -> TemplateStatus {
    let problems = t.spec.validate_for(&settings.template_policy());
    let (ok, reason, message) = if t.metadata.deletion_timestamp.is_some() {
        let some: Vec<&str> = users.iter().take(5).map(String::as_str).collect();
        let more =
            if users.len() > some.len() { format!(" and {} more", users.len() - some.len()) } else { String::new() };
        let message =
            format!("being deleted; waiting for {} instance(s) to stop: {}{more}", users.len(), some.join(", "));
        (false, "Deleting", message)
    } else if problems.is_empty() {
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
    settings: crate::config::Settings,
    metrics: Arc<Metrics>,
    events: Events,
    /// The instance controller, whose watch cache says which instances use a
    /// template (without it, they are listed from the API server).
    instances: Option<Arc<crate::instance::context::Context>>,
}

impl Context {
    /// The instances (namespace/name) of template `name`.
    async fn users(&self, name: &str) -> Result<Vec<String>, kube::Error> {
        if let Some(users) = self.instances.as_ref().and_then(|i| i.instances_of(name)) {
            return Ok(users);
        }
        let all = Api::<Instance>::all(self.client.clone()).list(&ListParams::default()).await?;
        Ok(all
            .items
            .iter()
            .filter(|i| i.spec.template == name)
            .map(|i| format!("{}/{}", i.namespace().unwrap_or_default(), i.name_any()))
            .collect())
    }
}

async fn reconcile(t: Arc<Template>, ctx: Arc<Context>) -> Result<Action, crate::error::Error> {
    ctx.metrics
        .reconcile("template", async {
            let api: Api<Template> = Api::all(ctx.client.clone());
            let name = t.name_any();
            let deleting = t.metadata.deletion_timestamp.is_some();
            let users = if deleting { ctx.users(&name).await? } else { Vec::new() };
            if deleting && users.is_empty() {
                remove_finalizer(&api, t.as_ref(), FINALIZER).await?;
                return Ok(Action::await_change());
            }
            if !deleting && !t.finalizers().iter().any(|f| f == FINALIZER) {
                add_finalizer(&api, t.as_ref(), FINALIZER).await?;
            }
            let want = status_for(&t, &users, &ctx.settings);
            if let Some((warning, reason, note)) = transition(&t, &want) {
                ctx.events.record("Template", t.object_ref(&()), warning, reason, note);
            }
            if t.status.as_ref() != Some(&want) {
                let pp = PatchParams::default();
                api.patch_status(&name, &pp, &Patch::Merge(serde_json::json!({"status": want}))).await?;
            }
            Ok(if deleting { Action::requeue(RECHECK) } else { Action::await_change() })
        })
        .await
}

/// The Event for a change of the Accepted condition (warning?, reason, note):
/// accepted, invalid, or being deleted and what it waits for.
fn transition(t: &Template, want: &TemplateStatus) -> Option<(bool, &'static str, String)> {
    let new = want.conditions.first()?;
    let old = t.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Accepted"));
    if old.is_some_and(|o| o.status == new.status && o.reason == new.reason) {
        return None;
    }
    Some(match new.reason.as_str() {
        "Invalid" => (true, "Invalid", new.message.clone()),
        "Deleting" => (false, "Deleting", new.message.clone()),
        _ => (false, "Accepted", new.message.clone()),
    })
}

fn error_policy(t: Arc<Template>, e: &crate::error::Error, _: Arc<Context>) -> Action {
    tracing::warn!(template = %t.name_any(), error = %e, "template status update failed");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the template controller until `shutdown` resolves; `instances`:
/// the instance controller, whose cache tells which instances use a
/// template (`None`: they are listed when a template is deleted); `index`:
/// the process's shared watches (`None`: its own).
pub async fn run(
    client: Client,
    settings: crate::config::Settings,
    metrics: Arc<Metrics>,
    instances: Option<Arc<crate::instance::context::Context>>,
    index: Option<crate::index::Index>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let events = Events::new(client.clone(), metrics.clone());
    let ctx = Arc::new(Context { client: client.clone(), settings, metrics, events, instances });
    // Triggers of a relist held until it is in the store (see `cache::reflect`).
    let index = index.unwrap_or_else(|| crate::index::Index::logging(client, ctx.settings.scope_selector()));
    let (templates, triggers) = (index.templates().store(), index.templates().subscribe());
    Controller::for_stream(triggers.applied_objects(), templates)
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
        let s = status_for(&good, &[], &crate::config::Settings::default());
        assert_eq!((s.conditions[0].status.as_str(), s.pods, s.observed_generation), ("True", Some(1), Some(3)));
        let bad: Template =
            serde_json::from_value(serde_json::json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "Template",
            "metadata": {"name": "t"}, "spec": {"pods": []}}))
            .unwrap();
        let s = status_for(&bad, &[], &crate::config::Settings::default());
        assert_eq!(s.conditions[0].reason, "Invalid");
        assert_eq!(s.conditions[0].message, "spec.pods: a template needs at least one pod");
        let mut deleted = good.clone();
        deleted.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let users: Vec<String> = (0..7).map(|i| format!("team-a/web-{i}")).collect();
        let s = status_for(&deleted, &users, &crate::config::Settings::default());
        let mut accepted = good.clone();
        accepted.status = Some(status_for(&good, &[], &crate::config::Settings::default()));
        assert_eq!(transition(&accepted, &s).map(|(w, r, _)| (w, r)), Some((false, "Deleting")));
        assert_eq!(
            transition(&accepted, &status_for(&good, &[], &crate::config::Settings::default())),
            None,
            "no change, no Event"
        );
        assert_eq!(
            transition(&accepted, &status_for(&bad, &[], &crate::config::Settings::default())).map(|(w, r, _)| (w, r)),
            Some((true, "Invalid"))
        );
        assert_eq!((s.conditions[0].status.as_str(), s.conditions[0].reason.as_str()), ("False", "Deleting"));
        assert_eq!(
            s.conditions[0].message,
            "being deleted; waiting for 7 instance(s) to stop: team-a/web-0, team-a/web-1, team-a/web-2, \
             team-a/web-3, team-a/web-4 and 2 more"
        );
    }
}
