//! Kubernetes Events for the decisions a user should see (`kubectl describe
//! tenant/instance`, `kubectl get events`): created, claimed from a pool,
//! quota exceeded, expired, drift repaired. Recorded through kube-runtime's
//! [`Recorder`] (events.k8s.io/v1, repeated events folded into a series) in
//! the background, so a slow or refused Event never holds up a reconcile.

use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::sync::Arc;

/// The component name Events are reported under.
pub const REPORTER: &str = "paddock";

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    metrics: Arc<Metrics>,
}

impl Events {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let recorder = Recorder::new(client, Reporter { controller: REPORTER.into(), instance: None });
        Self { recorder, metrics }
    }

    /// Records an Event on `object` (a `kind` object) in the background.
    pub fn record(&self, kind: &'static str, object: ObjectReference, warning: bool, reason: &str, note: String) {
        self.metrics.event(kind, warning, reason);
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&ev, &object).await {
                tracing::debug!(error = %e, reason = %ev.reason, "could not record an event");
            }
        });
    }
}
