//! Watch caches shared by the reconcilers: reflected watches whose objects
//! are kept trimmed (never with managedFields), and server-side applies
//! through the reconciler's ledger (`crate::ledger`), which skips them when
//! the cached object is already as the apply would leave it.
//!
//! A cache can lag the cluster by a watch event. That is safe: the event that
//! would make a skipped write necessary triggers another reconcile, which
//! then sees it.

use futures::{FutureExt, Stream, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::core::{PartialObjectMeta, PartialObjectMetaExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::labels::FIELD_MANAGER;
use crate::ledger::{Applied, Ledger, Repair, Shown};

/// A watch whose objects go into a store, trimmed by `trim` (after
/// managedFields are dropped), and whose events go on to trigger reconciles.
pub fn reflected<K>(
    api: Api<K>,
    wc: watcher::Config,
    trim: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, events) = reflect(api, wc, trim);
    (store, events.touched_objects())
}

/// Like [`reflected`], but an update of an object triggers a reconcile only
/// when `view` of it changed (deletions always do). For objects the cluster
/// rewrites often in ways the reconciler does not read, such as a quota's
/// usage, which admission updates on every create in its namespace.
pub fn reflected_by<K>(
    api: Api<K>,
    wc: watcher::Config,
    view: fn(&K) -> u64,
) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, events) = reflect(api, wc, whole);
    (store, relevant_by(events, view))
}

/// The objects of `events` whose update changed `view` of them (deletions
/// and relists always pass): the trigger half of [`reflected_by`], for a
/// watch another reader shares (`crate::index`).
pub fn relevant_by<K, S>(events: S, view: fn(&K) -> u64) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Clone + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut changes = Changes::default();
    events.try_filter_map(move |ev| std::future::ready(Ok(changes.relevant(ev, view))))
}

/// A watch's events with the objects of a (re)list held back until the list
/// is complete and in `store`. A reflector swaps a relist into its store only
/// at its end, and kube-runtime drops a reconcile whose object is not in the
/// store as that of a deleted object (`ObjectNotFound`, not retried). Without
/// this, an object created while a watch was down (one that fell behind and
/// was ended by the API server, say, then found its resourceVersion expired)
/// would be reconciled only on its next change, and a changed one on its old
/// copy. Only references are held; the objects are read from the store when
/// the list is done.
fn held_until_listed<K, E>(
    store: Store<K>,
    events: impl Stream<Item = Result<watcher::Event<K>, E>>,
) -> impl Stream<Item = Result<watcher::Event<K>, E>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    use futures::StreamExt;
    use futures::future::Either;
    use futures::stream::iter;
    let mut listed: Vec<ObjectRef<K>> = Vec::new();
    events.flat_map(move |ev| match ev {
        Ok(watcher::Event::Init) => {
            listed.clear();
            Either::Left(iter(Some(Ok(watcher::Event::Init))))
        }
        Ok(watcher::Event::InitApply(o)) => {
            listed.push(ObjectRef::from_obj(&o));
            Either::Left(iter(None))
        }
        Ok(watcher::Event::InitDone) => {
            let store = store.clone();
            let all = std::mem::take(&mut listed)
                .into_iter()
                .filter_map(move |r| store.get(&r))
                .map(|o| Ok(watcher::Event::InitApply(K::clone(&o))));
            Either::Right(iter(all.chain(std::iter::once(Ok(watcher::Event::InitDone)))))
        }
        other => Either::Left(iter(Some(other))),
    })
}

/// The watch both of the above reflect into their store, as watcher events
/// (a relist's held until it is in the store).
pub fn reflect<K>(
    api: Api<K>,
    wc: watcher::Config,
    trim: fn(&mut K),
) -> (Store<K>, impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = kube::runtime::reflector::store();
    let events = watcher(api, wc)
        .default_backoff()
        .modify(move |o: &mut K| {
            o.managed_fields_mut().clear();
            trim(o);
        })
        .reflect(writer);
    (store.clone(), held_until_listed(store, events))
}

/// The last `view` of each watched object, to tell the changes that matter.
struct Changes<K: Resource<DynamicType = ()>> {
    seen: HashMap<ObjectRef<K>, u64>,
    /// Views of a (re)list in progress, swapped in when it is done (which
    /// forgets the objects deleted while the watch was down).
    relist: Option<HashMap<ObjectRef<K>, u64>>,
}

impl<K: Resource<DynamicType = ()>> Default for Changes<K> {
    fn default() -> Self {
        Self { seen: HashMap::new(), relist: None }
    }
}

impl<K: Resource<DynamicType = ()>> Changes<K> {
    /// The object of `ev` if it should trigger a reconcile.
    fn relevant(&mut self, ev: watcher::Event<K>, view: fn(&K) -> u64) -> Option<K> {
        match ev {
            watcher::Event::Init => {
                self.relist = Some(HashMap::new());
                None
            }
            watcher::Event::InitApply(o) => {
                let (key, v) = (ObjectRef::from_obj(&o), view(&o));
                let same = self.seen.get(&key) == Some(&v);
                self.relist.get_or_insert_default().insert(key, v);
                (!same).then_some(o)
            }
            watcher::Event::InitDone => {
                if let Some(m) = self.relist.take() {
                    self.seen = m;
                }
                None
            }
            watcher::Event::Apply(o) => {
                let v = view(&o);
                (self.seen.insert(ObjectRef::from_obj(&o), v) != Some(v)).then_some(o)
            }
            watcher::Event::Delete(o) => {
                self.seen.remove(&ObjectRef::from_obj(&o));
                Some(o)
            }
        }
    }
}

/// Polls a watch that only fills a store (no reconcile reads its events),
/// reporting its failures; ends when the stream does.
pub async fn drain<K>(watch: &'static str, events: impl Stream<Item = Result<K, watcher::Error>>) {
    use futures::StreamExt;
    events
        .for_each(|r| {
            if let Err(e) = r {
                crate::error::report_watch_error(watch, &e);
            }
            std::future::ready(())
        })
        .await
}

/// Keeps an object as it is (besides managedFields).
pub fn whole<K>(_: &mut K) {}

/// The cached object `ns`/`name`, if the store has it.
pub fn lookup<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, ns: Option<&str>, name: &str) -> Option<Arc<K>> {
    let r = ObjectRef::<K>::new(name);
    store.get(&match ns {
        Some(ns) => r.within(ns),
        None => r,
    })
}

/// Whether the store has seen its first full list (a miss in a store that is
/// not ready yet says nothing).
pub fn ready<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> bool {
    store.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())
}

/// Waits at most `timeout` until the store has seen its first full list;
/// whether it has. (Not `Store::wait_until_ready`: kube-runtime 5 wakes only
/// the last of several tasks that wait on one store, and [`ready`] is such a
/// wait, so with shared stores an awaiting task may never be woken.)
pub async fn listed_within<K: Resource<DynamicType = ()> + Clone + 'static>(
    store: &Store<K>,
    timeout: std::time::Duration,
) -> bool {
    // A deadline past the clock's range is no deadline.
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        if ready(store) {
            return true;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// Server-side applies `obj` (field manager `paddock`, forced) for `owner`
/// through `ledger`, which skips it when the store shows the object already
/// as the apply would leave it. Returns the object and the drift repaired.
pub async fn apply<K>(
    ledger: &Ledger,
    owner: &str,
    store: &Store<K>,
    api: &Api<K>,
    obj: &K,
) -> Result<(K, Option<Repair>), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let current = shown(store, obj);
    let shown = current.as_deref().map_or(Shown::Nothing, Shown::Whole);
    Ok(match ledger.apply(owner, shown, obj, || patch(api, obj)).await? {
        Applied::Sent(o, repair) => (o, repair),
        Applied::Skipped => (current.as_deref().cloned().unwrap_or_else(|| obj.clone()), None),
    })
}

/// [`apply`] for a caller that reads only the answer's metadata: its name,
/// namespace, uid, resourceVersion, generation, labels and deletion
/// timestamp. The rest of the answer (spec, status and managedFields, most
/// of its bytes) is skipped while it is parsed, not decoded into values.
/// Returns the drift repaired.
pub async fn apply_meta<K>(
    ledger: &Ledger,
    owner: &str,
    store: &Store<K>,
    api: &Api<K>,
    obj: &K,
) -> Result<Option<Repair>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let current = shown(store, obj);
    let shown = current.as_deref().map_or(Shown::Nothing, Shown::Whole);
    Ok(match ledger.apply(owner, shown, obj, || patch_meta(api, obj)).await? {
        Applied::Sent(_, repair) => repair,
        Applied::Skipped => None,
    })
}

/// Server-side applies `obj` (field manager `paddock`, forced).
pub async fn patch<K>(api: &Api<K>, obj: &K) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.meta().name.as_deref().unwrap_or_default();
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj)).await
}

/// Server-side applies `obj` (field manager `paddock`, forced), reading the
/// answer as [`apply_meta`] does.
pub async fn patch_meta<K>(api: &Api<K>, obj: &K) -> Result<PartialObjectMeta<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = obj.meta().name.as_deref().unwrap_or_default();
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut req = kube::core::Request::new(api.resource_url())
        .patch(name, &pp, &Patch::Apply(obj))
        .map_err(kube::Error::BuildRequest)?;
    req.extensions_mut().insert("patch");
    let client: kube::Client = api.clone().into();
    let answer: Answer = client.request(req).await?;
    Ok(answer.metadata.into())
}

/// The cached copy of `obj`, if the store has one.
fn shown<K: Resource<DynamicType = ()> + Clone>(store: &Store<K>, obj: &K) -> Option<Arc<K>> {
    let name = obj.meta().name.as_deref().unwrap_or_default();
    lookup(store, obj.meta().namespace.as_deref(), name)
}

/// An API server's answer with an object, as far as [`apply_meta`] reads it
/// (serde skips every other field without building values for it).
#[derive(serde::Deserialize)]
struct Answer {
    metadata: AnswerMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

impl<K> From<AnswerMeta> for PartialObjectMeta<K> {
    fn from(m: AnswerMeta) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            labels: m.labels,
            deletion_timestamp: m.deletion_timestamp,
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }
}

/// A watch cache that keeps only a projection of each object (what a
/// reconciler reads of it, often a twentieth of the object), by namespace
/// and name. Cheap to clone; a miss before the first list is not an answer
/// (see [`Projection::ready`]).
pub struct Projection<V> {
    inner: Arc<ProjectionInner<V>>,
}

impl<V> Clone for Projection<V> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

type ByName<V> = HashMap<String, HashMap<String, Arc<V>>>;

struct ProjectionInner<V> {
    map: RwLock<ByName<V>>,
    /// The objects a (re)list in progress has listed: when it is done, the
    /// others are dropped (they went while the watch was down). Listed
    /// objects go into the map at once, so a reconcile their events trigger
    /// reads them as listed.
    relist: Mutex<Option<HashSet<(String, String)>>>,
    ready: AtomicBool,
}

impl<V> Projection<V> {
    fn new() -> Self {
        Self {
            inner: Arc::new(ProjectionInner {
                map: RwLock::new(HashMap::new()),
                relist: Mutex::new(None),
                ready: AtomicBool::new(false),
            }),
        }
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<V>> {
        self.inner.map.read().unwrap_or_else(|e| e.into_inner()).get(ns).and_then(|m| m.get(name)).cloned()
    }

    /// Every object of namespace `ns`.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<V>> {
        let map = self.inner.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(ns).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Whether the first list is in.
    pub fn ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    fn apply<K: Resource>(&self, ev: &watcher::Event<K>, project: fn(&K) -> V) {
        let key = |o: &K| (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default());
        let insert = |m: &mut ByName<V>, o: &K| {
            let (ns, name) = key(o);
            m.entry(ns).or_default().insert(name, Arc::new(project(o)));
        };
        match ev {
            watcher::Event::Init => {
                *self.inner.relist.lock().unwrap_or_else(|e| e.into_inner()) = Some(HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                insert(&mut self.inner.map.write().unwrap_or_else(|e| e.into_inner()), o);
                if let Some(listed) = self.inner.relist.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    listed.insert(key(o));
                }
            }
            watcher::Event::InitDone => {
                if let Some(listed) = self.inner.relist.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let mut m = self.inner.map.write().unwrap_or_else(|e| e.into_inner());
                    for (ns, names) in m.iter_mut() {
                        names.retain(|name, _| listed.contains(&(ns.clone(), name.clone())));
                    }
                    m.retain(|_, names| !names.is_empty());
                }
                self.inner.ready.store(true, Ordering::Release);
            }
            watcher::Event::Apply(o) => insert(&mut self.inner.map.write().unwrap_or_else(|e| e.into_inner()), o),
            watcher::Event::Delete(o) => {
                let (ns, name) = key(o);
                let mut m = self.inner.map.write().unwrap_or_else(|e| e.into_inner());
                if let Some(inner) = m.get_mut(&ns) {
                    inner.remove(&name);
                    if inner.is_empty() {
                        m.remove(&ns);
                    }
                }
            }
        }
    }
}

/// A watch kept as a [`Projection`] by `project`; its objects go on (whole,
/// and then dropped) to trigger reconciles.
pub fn projected<K, V>(
    api: Api<K>,
    wc: watcher::Config,
    project: fn(&K) -> V,
) -> (Projection<V>, impl Stream<Item = Result<K, watcher::Error>> + Send)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let p = Projection::new();
    let keep = p.clone();
    let s = watcher(api, wc).default_backoff().map_ok(move |ev| {
        keep.apply(&ev, project);
        ev
    });
    (p, s.touched_objects())
}

#[cfg(test)]
mod tests {
    use super::Changes;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;
    use serde_json::json;

    #[test]
    fn an_apply_answer_is_read_as_its_metadata() {
        let answer = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                "labels": {"a": "b"}, "deletionTimestamp": "2026-11-30T10:00:00Z",
                "managedFields": [{"manager": "paddock", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {"f:k": {}}}}]},
            "data": {"k": "v"}});
        let a: super::Answer = serde_json::from_value(answer).unwrap();
        let m: kube::core::PartialObjectMeta<ConfigMap> = a.metadata.into();
        let m = m.metadata;
        assert_eq!((m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref()), (Some("c"), Some("ns"), Some("u-1")));
        assert_eq!((m.resource_version.as_deref(), m.generation), (Some("42"), Some(3)));
        assert_eq!(m.labels.unwrap()["a"], "b");
        assert!(m.deletion_timestamp.is_some());
        assert!(m.managed_fields.is_none(), "managedFields are skipped, not decoded");
    }

    #[test]
    fn a_relist_triggers_only_once_it_is_complete() {
        use futures::{FutureExt, StreamExt};
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Event<ConfigMap>, kube::runtime::watcher::Error>>();
        let (store, writer) = kube::runtime::reflector::store();
        let mut s = Box::pin(super::held_until_listed(store.clone(), kube::runtime::reflector(writer, rx)));
        let mut next = || {
            s.next().now_or_never().flatten().map(|e| match e.unwrap() {
                Event::Init => "init".to_string(),
                Event::InitApply(o) => format!("listed {}", o.metadata.name.unwrap()),
                Event::InitDone => "done".to_string(),
                Event::Apply(o) => format!("applied {}", o.metadata.name.unwrap()),
                Event::Delete(o) => format!("deleted {}", o.metadata.name.unwrap()),
            })
        };
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(cm("a", "1", "1")))).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(cm("b", "1", "2")))).unwrap();
        assert_eq!(next().as_deref(), Some("init"));
        assert_eq!(next(), None, "nothing of the list before it is complete (the store has none of it yet)");
        assert!(store.is_empty());
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        assert_eq!(next().as_deref(), Some("listed a"));
        assert_eq!(store.state().len(), 2, "the store has the list when its objects come");
        assert_eq!(next().as_deref(), Some("listed b"));
        assert_eq!(next().as_deref(), Some("done"));
        tx.unbounded_send(Ok(Event::Apply(cm("c", "1", "3")))).unwrap();
        tx.unbounded_send(Ok(Event::Delete(cm("a", "1", "4")))).unwrap();
        assert_eq!(next().as_deref(), Some("applied c"), "watch events pass at once");
        assert_eq!(next().as_deref(), Some("deleted a"));
        // A relist that starts over drops what the one before it had listed.
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(cm("x", "1", "5")))).unwrap();
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        tx.unbounded_send(Ok(Event::InitApply(cm("y", "1", "6")))).unwrap();
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
        let rest: Vec<_> = std::iter::from_fn(&mut next).collect();
        assert_eq!(rest, ["init", "init", "listed y", "done"]);
    }

    #[test]
    fn a_projection_shows_relisted_objects_at_once_and_drops_the_gone_at_the_end() {
        let p = super::Projection::<String>::new();
        let data = |c: &ConfigMap| c.data.as_ref().map(|d| d["k"].clone()).unwrap_or_default();
        let get = |name: &str| p.get("ns", name).map(|v| v.as_ref().clone());
        p.apply(&Event::Init, data);
        p.apply(&Event::InitApply(cm("a", "1", "1")), data);
        p.apply(&Event::InitApply(cm("b", "1", "2")), data);
        p.apply(&Event::InitDone, data);
        assert!(p.ready());
        // The watch was down: "a" changed and "b" went meanwhile.
        p.apply(&Event::Init, data);
        p.apply(&Event::InitApply(cm("a", "2", "5")), data);
        assert_eq!(get("a").as_deref(), Some("2"), "a relisted object reads as listed before the list is done");
        assert_eq!(get("b").as_deref(), Some("1"), "not yet known to be gone");
        p.apply(&Event::InitDone, data);
        assert_eq!(get("a").as_deref(), Some("2"));
        assert_eq!(get("b"), None, "gone with the end of the list");
    }

    fn cm(name: &str, data: &str, rv: &str) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
            "data": {"k": data}}))
        .unwrap()
    }

    fn data_view(c: &ConfigMap) -> u64 {
        c.data.as_ref().and_then(|d| d.get("k")).map_or(0, |v| v.len() as u64)
    }

    #[test]
    fn only_changes_of_the_view_and_deletions_trigger() {
        let mut c = Changes::default();
        let names = |c: &mut Changes<ConfigMap>, evs: Vec<Event<ConfigMap>>| -> Vec<String> {
            evs.into_iter().filter_map(|e| c.relevant(e, data_view)).map(|o| o.metadata.name.unwrap()).collect()
        };
        let listed = names(&mut c, vec![Event::Init, Event::InitApply(cm("a", "x", "1")), Event::InitDone]);
        assert_eq!(listed, ["a"], "a first sight triggers");
        assert!(names(&mut c, vec![Event::Apply(cm("a", "y", "2"))]).is_empty(), "same view, new version");
        assert_eq!(names(&mut c, vec![Event::Apply(cm("a", "yy", "3"))]), ["a"], "the view changed");
        assert_eq!(names(&mut c, vec![Event::Apply(cm("b", "y", "4"))]), ["b"], "another object");
        assert_eq!(names(&mut c, vec![Event::Delete(cm("b", "y", "5"))]), ["b"], "a deletion always triggers");
        assert_eq!(names(&mut c, vec![Event::Apply(cm("b", "y", "6"))]), ["b"], "and a re-creation after it");
        // A relist: unchanged objects stay quiet, and one deleted while the
        // watch was down is forgotten, so its re-creation triggers.
        let relisted = names(&mut c, vec![Event::Init, Event::InitApply(cm("a", "zz", "7")), Event::InitDone]);
        assert!(relisted.is_empty(), "{relisted:?}");
        assert_eq!(names(&mut c, vec![Event::Apply(cm("b", "y", "8"))]), ["b"]);
    }
}
