//! Live instance status for every SSE client from one shared watch.
//!
//! The hub keeps the current view of every instance, a bounded log of the
//! events it emitted (for `Last-Event-ID` resumption) and a broadcast channel
//! the streams listen on. Event ids read `<epoch>-<seq>`: the epoch changes
//! when the process restarts, so a stale cursor is recognised and answered
//! with a snapshot instead of silently missing events.

use crate::model::{DeletedEvent, InstanceView, SnapshotEvent, StatusEvent};
use axum::body::Bytes;
use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::watcher::{self, Event};
use resources::Instance;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// One emitted event, serialised once for all clients.
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// The tenant the event belongs to (None: an instance outside tenant namespaces).
    pub tenant: Option<String>,
    /// `status`, `deleted` or `snapshot`.
    pub kind: &'static str,
    pub data: String,
    /// The whole SSE frame (`id:`, `event:`, `data:`), rendered once and
    /// shared by every client's stream.
    pub frame: Bytes,
}

impl Entry {
    fn new(epoch: &str, seq: u64, tenant: Option<String>, kind: &'static str, data: String) -> Arc<Self> {
        // JSON has no raw newlines, so the data is one `data:` line.
        let frame = Bytes::from(format!("id: {epoch}-{seq}\nevent: {kind}\ndata: {data}\n\n"));
        Arc::new(Self { seq, tenant, kind, data, frame })
    }
}

type Key = (String, String);

struct Inner {
    seq: u64,
    log: VecDeque<Arc<Entry>>,
    current: HashMap<Key, (Option<String>, InstanceView)>,
    /// Warm pod sets claimed by instances: set → instance.
    claims: HashMap<String, Key>,
    /// Idempotency keys of instances started with one: (namespace, key) → name.
    keys: HashMap<Key, String>,
}

/// Counters the metrics endpoint reads.
#[derive(Debug, Default)]
pub struct HubStats {
    pub watch_starts: AtomicU64,
    pub clients: AtomicUsize,
    pub events: AtomicU64,
    pub delivered: AtomicU64,
}

pub struct Hub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Entry>>,
    epoch: String,
    prefix: String,
    capacity: usize,
    ready: AtomicBool,
    /// Set when the API shuts down: every event stream ends at once (its
    /// clients resume elsewhere with Last-Event-ID) instead of holding the
    /// shutdown for its whole grace period.
    closing: tokio::sync::watch::Sender<bool>,
    pub stats: HubStats,
}

/// Where a new stream starts.
pub struct Start {
    /// Events to send before live ones: a replay, or one snapshot.
    pub backlog: Vec<Arc<Entry>>,
    /// Live events; those with `seq <= after` are already covered.
    pub rx: broadcast::Receiver<Arc<Entry>>,
    pub after: u64,
}

impl Hub {
    /// `prefix` maps namespaces to tenants; `capacity` bounds the replay log.
    pub fn new(prefix: &str, capacity: usize) -> Arc<Self> {
        let (tx, _) = broadcast::channel(capacity.clamp(64, 16_384));
        let epoch = format!("{:x}", jiff::Timestamp::now().as_millisecond());
        Arc::new(Self {
            inner: Mutex::new(Inner {
                seq: 0,
                log: VecDeque::new(),
                current: HashMap::new(),
                claims: HashMap::new(),
                keys: HashMap::new(),
            }),
            tx,
            epoch,
            prefix: prefix.to_string(),
            capacity: capacity.max(1),
            ready: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            stats: HubStats::default(),
        })
    }

    /// Ends every event stream, open or to come (the API is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Hub::close`] has been called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closing| *closing).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update is
        // a single insert/push), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the first list of instances has been seen.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.epoch)
    }

    fn tenant_of(&self, ns: &str) -> Option<String> {
        ns.strip_prefix(&self.prefix).filter(|t| !t.is_empty()).map(str::to_string)
    }

    /// Follows the Instances' watch `events` until the task is dropped.
    pub async fn run(self: Arc<Self>, events: impl Stream<Item = Result<Event<Instance>, watcher::Error>>) {
        let mut stream = std::pin::pin!(events);
        let mut relisted: HashSet<Key> = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => {
                    self.stats.watch_starts.fetch_add(1, Ordering::Relaxed);
                    relisted.clear();
                }
                Ok(Event::InitApply(i)) => {
                    relisted.insert((i.namespace().unwrap_or_default(), i.name_any()));
                    self.apply(&i);
                }
                Ok(Event::InitDone) => {
                    let gone: Vec<Key> =
                        self.lock().current.keys().filter(|k| !relisted.contains(*k)).cloned().collect();
                    for (ns, name) in gone {
                        self.remove(&ns, &name);
                    }
                    self.ready.store(true, Ordering::Relaxed);
                }
                Ok(Event::Apply(i)) => self.apply(&i),
                Ok(Event::Delete(i)) => self.remove(&i.namespace().unwrap_or_default(), &i.name_any()),
                Err(e) => controller::error::report_watch_error("instances (events)", &e),
            }
        }
    }

    /// Records an instance as it is now; emits an event when its view changed.
    pub fn apply(&self, i: &Instance) {
        let ns = i.namespace().unwrap_or_default();
        let tenant = self.tenant_of(&ns);
        let view = InstanceView::new(i, tenant.as_deref().unwrap_or(&ns));
        let key = (ns, i.name_any());
        let mut inner = self.lock();
        if let Some(c) = i.status.as_ref().and_then(|s| s.claim.as_ref()) {
            inner.claims.insert(c.set.clone(), key.clone());
        }
        if let Some(k) = i.annotations().get(resources::vocabulary::IDEMPOTENCY_KEY) {
            inner.keys.insert((key.0.clone(), k.clone()), key.1.clone());
        }
        if inner.current.get(&key).is_some_and(|(_, v)| *v == view) {
            return;
        }
        let data = serde_json::to_string(&StatusEvent { instance: view.clone() }).unwrap_or_default();
        inner.current.insert(key, (tenant.clone(), view));
        self.emit(&mut inner, tenant, "status", data);
    }

    /// Records an instance this process just created, unless the watch was
    /// faster: limits checked right after see it without waiting for the watch.
    pub fn created(&self, i: &Instance) {
        let key = (i.namespace().unwrap_or_default(), i.name_any());
        if !self.lock().current.contains_key(&key) {
            self.apply(i);
        }
    }

    fn remove(&self, ns: &str, name: &str) {
        let mut inner = self.lock();
        let key = (ns.to_string(), name.to_string());
        inner.claims.retain(|_, k| *k != key);
        inner.keys.retain(|(n, _), i| !(*n == key.0 && *i == key.1));
        let Some((tenant, view)) = inner.current.remove(&key) else { return };
        let data =
            serde_json::to_string(&DeletedEvent { tenant: view.tenant, name: name.to_string() }).unwrap_or_default();
        self.emit(&mut inner, tenant, "deleted", data);
    }

    fn emit(&self, inner: &mut Inner, tenant: Option<String>, kind: &'static str, data: String) {
        inner.seq += 1;
        let e = Entry::new(&self.epoch, inner.seq, tenant, kind, data);
        if inner.log.len() == self.capacity {
            inner.log.pop_front();
        }
        inner.log.push_back(e.clone());
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        // Sent under the lock, so a subscriber never misses or reorders an event.
        let _ = self.tx.send(e);
    }

    fn snapshot_locked(&self, inner: &Inner, tenant: Option<&str>) -> Arc<Entry> {
        let mut instances: Vec<InstanceView> = inner
            .current
            .values()
            .filter(|(t, _)| tenant.is_none() || t.as_deref() == tenant)
            .map(|(_, v)| v.clone())
            .collect();
        instances.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
        let data = serde_json::to_string(&SnapshotEvent { instances }).unwrap_or_default();
        Entry::new(&self.epoch, inner.seq, tenant.map(str::to_string), "snapshot", data)
    }

    /// A snapshot of what `tenant` (None: everything) can see, as of now.
    pub fn snapshot(&self, tenant: Option<&str>) -> Arc<Entry> {
        let inner = self.lock();
        self.snapshot_locked(&inner, tenant)
    }

    /// Starts a stream for `tenant` (None: admin, everything) resuming after
    /// `last_event_id` when the log still holds what came after it.
    pub fn subscribe(&self, tenant: Option<&str>, last_event_id: Option<&str>) -> Start {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let oldest = inner.log.front().map_or(inner.seq + 1, |e| e.seq);
        let resume = last_event_id
            .and_then(|id| id.rsplit_once('-'))
            .filter(|(epoch, _)| *epoch == self.epoch)
            .and_then(|(_, seq)| seq.parse::<u64>().ok())
            .filter(|seq| *seq + 1 >= oldest && *seq <= inner.seq);
        let backlog = match resume {
            Some(after) => inner.log.iter().filter(|e| e.seq > after && visible(e, tenant)).cloned().collect(),
            None => vec![self.snapshot_locked(&inner, tenant)],
        };
        Start { backlog, rx, after: inner.seq }
    }

    /// Instances of `template` in namespace `ns` that are not being stopped.
    pub fn count(&self, ns: &str, template: &str) -> usize {
        self.lock().current.iter().filter(|((n, _), (_, v))| n == ns && v.template == template && !v.stopping).count()
    }

    /// Instances in namespace `ns`, and how many of them are being stopped
    /// (they still count against the tenant's quota until they are gone).
    pub fn count_in(&self, ns: &str) -> (usize, usize) {
        let inner = self.lock();
        let mine = inner.current.iter().filter(|((n, _), _)| n == ns);
        mine.fold((0, 0), |(all, stopping), (_, (_, v))| (all + 1, stopping + usize::from(v.stopping)))
    }

    /// The instance in namespace `ns` started with Idempotency-Key `key`, if any.
    pub fn keyed(&self, ns: &str, key: &str) -> Option<String> {
        self.lock().keys.get(&(ns.to_string(), key.to_string())).cloned()
    }

    /// The instance (namespace, name) that claimed a warm pod set, if one has,
    /// and a receiver that wakes on every change after this answer.
    pub fn claimant(&self, set: &str) -> (Option<Key>, broadcast::Receiver<Arc<Entry>>) {
        let inner = self.lock();
        (inner.claims.get(set).cloned(), self.tx.subscribe())
    }

    /// The current view of one instance.
    pub fn get(&self, ns: &str, name: &str) -> Option<InstanceView> {
        self.lock().current.get(&(ns.to_string(), name.to_string())).map(|(_, v)| v.clone())
    }
}

/// Whether a stream for `tenant` (None: admin) shows the entry.
pub fn visible(e: &Entry, tenant: Option<&str>) -> bool {
    tenant.is_none() || e.tenant.as_deref() == tenant
}

#[cfg(test)]
mod tests {
    use super::*;
    use resources::{InstancePhase, InstanceSpec, InstanceStatus};

    fn inst(ns: &str, name: &str, phase: InstancePhase) -> Instance {
        let mut i = Instance::new(
            name,
            InstanceSpec { template: "web".into(), ttl: None, env: Default::default(), suspend: false },
        );
        i.metadata.namespace = Some(ns.into());
        i.status = Some(InstanceStatus { phase: Some(phase), ..Default::default() });
        i
    }

    #[test]
    fn events_only_on_change_and_per_tenant() {
        let hub = Hub::new("paddock-", 100);
        hub.apply(&inst("paddock-a", "x", InstancePhase::Pending));
        hub.apply(&inst("paddock-a", "x", InstancePhase::Pending));
        hub.apply(&inst("paddock-b", "y", InstancePhase::Pending));
        hub.apply(&inst("paddock-a", "x", InstancePhase::Running));
        let start = hub.subscribe(Some("a"), Some(&hub.id(0)));
        let seqs: Vec<u64> = start.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 3], "one event per change, tenant b's hidden");
        let admin = hub.subscribe(None, Some(&hub.id(1)));
        assert_eq!(admin.backlog.len(), 2);
        hub.remove("paddock-a", "x");
        let after = hub.subscribe(Some("a"), Some(&hub.id(3)));
        assert_eq!(after.backlog[0].kind, "deleted");
    }

    #[test]
    fn stale_or_foreign_cursor_gets_a_snapshot() {
        let hub = Hub::new("paddock-", 2);
        for n in 0..5 {
            hub.apply(&inst("paddock-a", &format!("i{n}"), InstancePhase::Pending));
        }
        for cursor in [hub.id(1), "other-3".to_string(), "garbage".to_string(), hub.id(99)] {
            let s = hub.subscribe(Some("a"), Some(&cursor));
            assert_eq!(s.backlog.len(), 1, "{cursor}");
            assert_eq!(s.backlog[0].kind, "snapshot");
            let snap: SnapshotEvent = serde_json::from_str(&s.backlog[0].data).unwrap();
            assert_eq!(snap.instances.len(), 5);
            assert_eq!(s.after, 5);
        }
        // The last two are still in the log: a resume from 3 replays 4 and 5.
        let s = hub.subscribe(Some("a"), Some(&hub.id(3)));
        assert_eq!(s.backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    }
}
