//! Kubernetes Events for the decisions a user should see (`kubectl describe
//! tenant/instance`, `kubectl get events`): created, claimed from a pool,
//! quota exceeded, expired, drift repaired. events.k8s.io/v1, with a repeat
//! of the same event on the same object within six minutes folded into the
//! first one's `series` (as client-go and kube-runtime's `Recorder` do).
//!
//! Recorded in the background by a few workers fed through a bounded queue,
//! so a slow or refused Event never holds up a reconcile; when the queue is
//! full the Event is dropped and counted (as client-go's broadcaster drops
//! them). What remembers events for their series is bounded too: at most
//! [`REMEMBERED`] of them, the least recently seen forgotten first. Both
//! bounds keep a burst of thousands of instances from costing memory for
//! each of their Events (kube-runtime's `Recorder` keeps every Event of the
//! last six minutes, and one task per Event in flight).

use crate::metrics::Metrics;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The component name Events are reported under.
pub const REPORTER: &str = "paddock";
/// Events waiting to be sent; more are dropped.
const QUEUE: usize = 4096;
/// Workers sending Events.
const WORKERS: usize = 4;
/// Events remembered for their series.
pub const REMEMBERED: usize = 4096;
/// A repeat within this long joins the first Event's series.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

#[derive(Clone)]
pub struct Events {
    queue: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
}

struct Pending {
    /// When it happened (not when a worker got to send it).
    at: Timestamp,
    object: ObjectReference,
    warning: bool,
    reason: String,
    note: String,
}

/// One event as remembered: where it is and how often it happened.
struct Seen {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

/// What makes two events the same: the object, the type and the reason.
type Key = (String, String, String, String, bool, String);

fn key(p: &Pending) -> Key {
    let o = &p.object;
    let s = |x: &Option<String>| x.clone().unwrap_or_default();
    (s(&o.kind), s(&o.namespace), s(&o.name), s(&o.uid), p.warning, p.reason.clone())
}

#[derive(Default)]
struct Memory(HashMap<Key, Seen>);

impl Memory {
    /// The series to continue, if this event happened recently: its place and next count.
    fn repeat(&mut self, k: &Key, now: Timestamp) -> Option<(String, String, i32)> {
        let seen = self.0.get_mut(k).filter(|s| now.duration_since(s.last) < SERIES_WINDOW)?;
        seen.count += 1;
        seen.last = now;
        Some((seen.namespace.clone(), seen.name.clone(), seen.count))
    }

    fn remember(&mut self, k: Key, seen: Seen) {
        if self.0.len() >= REMEMBERED {
            // Forget the least recently seen half (rarely: once per REMEMBERED/2 new events).
            let mut lasts: Vec<Timestamp> = self.0.values().map(|s| s.last).collect();
            lasts.sort_unstable();
            let cut = lasts[lasts.len() / 2];
            self.0.retain(|_, s| s.last > cut);
        }
        self.0.insert(k, seen);
    }
}

/// The longest note the API server takes (upstream's `NoteLengthLimit`, in bytes).
const NOTE_MAX: usize = 1024;

/// `note` cut to [`NOTE_MAX`] bytes on a character boundary, ending with
/// `…` when cut; a longer one would be refused and the Event lost.
fn fit(note: String) -> String {
    if note.len() <= NOTE_MAX {
        return note;
    }
    let mut end = NOTE_MAX - '…'.len_utf8();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

impl Events {
    /// Starts the workers (on the current tokio runtime).
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel::<Pending>(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let memory = Arc::new(Mutex::new(Memory::default()));
        for _ in 0..WORKERS {
            let (rx, memory, client) = (rx.clone(), memory.clone(), client.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(p) = next else { return };
                    if let Err(e) = send(&client, &memory, &p).await {
                        tracing::debug!(error = %e, reason = %p.reason, "could not record an event");
                    }
                }
            });
        }
        Self { queue: tx, metrics }
    }

    /// Records an Event on `object` (a `kind` object) in the background.
    pub fn record(&self, kind: &'static str, object: ObjectReference, warning: bool, reason: &str, note: String) {
        self.metrics.event(kind, warning, reason);
        let p = Pending { at: Timestamp::now(), object, warning, reason: reason.into(), note: fit(note) };
        if let Err(mpsc::error::TrySendError::Full(p)) = self.queue.try_send(p) {
            self.metrics.event_dropped(kind);
            tracing::debug!(reason = %p.reason, "event queue full; dropped an event");
        }
    }
}

async fn send(client: &Client, memory: &Mutex<Memory>, p: &Pending) -> Result<(), kube::Error> {
    let now = p.at;
    let k = key(p);
    let repeat = memory.lock().unwrap_or_else(|e| e.into_inner()).repeat(&k, now);
    if let Some((ns, name, count)) = repeat {
        let series = EventSeries { count, last_observed_time: MicroTime(now) };
        let patch = serde_json::json!({"series": series});
        Api::<Event>::namespaced(client.clone(), &ns)
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        return Ok(());
    }
    let namespace = p.object.namespace.clone().unwrap_or_else(|| "default".into());
    let name = format!("{}.{:x}", p.object.name.as_deref().unwrap_or(REPORTER), now.as_nanosecond());
    let event = Event {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace.clone()), ..Default::default() },
        action: Some("Reconcile".into()),
        reason: Some(p.reason.clone()),
        note: Some(p.note.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(p.object.clone()),
        reporting_controller: Some(REPORTER.into()),
        reporting_instance: Some(REPORTER.into()),
        type_: Some(if p.warning { "Warning" } else { "Normal" }.into()),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &namespace).create(&PostParams::default(), &event).await?;
    memory.lock().unwrap_or_else(|e| e.into_inner()).remember(k, Seen { namespace, name, count: 1, last: now });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(last: Timestamp) -> Seen {
        Seen { namespace: "ns".into(), name: "e".into(), count: 1, last }
    }

    fn k(n: usize) -> Key {
        ("Instance".into(), "ns".into(), format!("i{n}"), "uid".into(), false, "Created".into())
    }

    #[test]
    fn notes_fit_the_api_server_s_limit() {
        assert_eq!(fit("short".into()), "short");
        let exact = "x".repeat(NOTE_MAX);
        assert_eq!(fit(exact.clone()), exact);
        // Multi-byte characters are not split.
        let long = "é".repeat(NOTE_MAX);
        let cut = fit(long);
        assert!(cut.len() <= NOTE_MAX && cut.ends_with('…'), "{} bytes", cut.len());
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn repeats_join_a_series_within_the_window() {
        let mut m = Memory::default();
        let t0 = Timestamp::UNIX_EPOCH;
        m.remember(k(1), seen(t0));
        assert_eq!(m.repeat(&k(1), t0 + SignedDuration::from_secs(10)), Some(("ns".into(), "e".into(), 2)));
        assert_eq!(m.repeat(&k(1), t0 + SignedDuration::from_secs(20)).map(|r| r.2), Some(3));
        assert_eq!(m.repeat(&k(2), t0), None, "another object");
        assert_eq!(m.repeat(&k(1), t0 + SignedDuration::from_mins(30)), None, "too long after");
    }

    #[test]
    fn memory_is_bounded_and_forgets_the_oldest() {
        let mut m = Memory::default();
        let t0 = Timestamp::UNIX_EPOCH;
        for n in 0..REMEMBERED * 3 {
            m.remember(k(n), seen(t0 + SignedDuration::from_secs(n as i64)));
            assert!(m.0.len() <= REMEMBERED);
        }
        let newest = REMEMBERED * 3 - 1;
        assert!(m.repeat(&k(newest), t0 + SignedDuration::from_secs(newest as i64)).is_some());
        assert!(m.repeat(&k(0), t0 + SignedDuration::from_secs(1)).is_none(), "the oldest was forgotten");
    }
}
