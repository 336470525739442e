//! One watch per kind per process: the objects every reconciler and the API
//! read (Tenants, Templates, Instances, the pool's pods, the tenants'
//! quotas), each kind watched
//! once into a store that all of them share, and its events fanned out to
//! every reader that reacts to them.
//!
//! A reader subscribes to a kind's [`Feed`] and gets the events its own
//! watch would have given: when it joins a kind already listed (a reconciler
//! that starts on winning the leader election, say), a list of the store as
//! it is comes first; when it falls too far behind, the same again. So a
//! reader never assumes it saw a change it missed, and the API server serves
//! one watch where it served one per reader (Templates were watched four
//! times in `paddock serve`).
//!
//! A feed starts on its first use and runs as long as the index, a feed or
//! a subscription to it is kept.

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use resources::{Instance, Template, Tenant};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// How many events a slow reader may fall behind before it is sent the whole
/// store again (the buffer holds references to objects the store shares).
const BACKLOG: usize = 1024;

/// Called with a kind and a watch error (the watch then restarts with
/// back-off), to count it; the feed logs it itself.
pub type OnError = Arc<dyn Fn(&'static str, &watcher::Error) + Send + Sync>;

/// The shared watches of one process. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    on_error: OnError,
    /// The label selector Tenants and Templates are watched with
    /// ([`crate::config::Settings::scope`]); None: all of them.
    scope: Option<String>,
    templates: OnceLock<Feed<Template>>,
    tenants: OnceLock<Feed<Tenant>>,
    instances: OnceLock<Feed<Instance>>,
    tenant_quotas: OnceLock<Feed<ResourceQuota>>,
    /// Pool pods by pool namespace.
    pool_pods: Mutex<HashMap<String, Feed<Pod>>>,
}

/// A feed's watch, stopped when the last feed or subscription that holds it goes.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Index {
    /// An index whose watches go through `client` (made on first use);
    /// `scope` selects the Tenants and Templates it watches (the
    /// installation's [`crate::config::Settings::scope_selector`]).
    pub fn new(client: Client, on_error: OnError, scope: Option<String>) -> Index {
        Index {
            inner: Arc::new(Inner {
                client,
                on_error,
                scope,
                templates: OnceLock::new(),
                tenants: OnceLock::new(),
                instances: OnceLock::new(),
                tenant_quotas: OnceLock::new(),
                pool_pods: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// An index that only logs its watch errors.
    pub fn logging(client: Client, scope: Option<String>) -> Index {
        Index::new(client, Arc::new(|_, _| {}), scope)
    }

    /// The watch of a cluster-scoped kind the installation's scope selects.
    fn scoped(&self) -> watcher::Config {
        match &self.inner.scope {
            Some(sel) => watcher::Config::default().labels(sel),
            None => watcher::Config::default(),
        }
    }

    pub fn templates(&self) -> &Feed<Template> {
        self.inner
            .templates
            .get_or_init(|| self.start_with("templates", Api::all(self.inner.client.clone()), self.scoped()))
    }

    pub fn tenants(&self) -> &Feed<Tenant> {
        self.inner
            .tenants
            .get_or_init(|| self.start_with("tenants", Api::all(self.inner.client.clone()), self.scoped()))
    }

    pub fn instances(&self) -> &Feed<Instance> {
        self.inner.instances.get_or_init(|| self.start("instances", Api::all(self.inner.client.clone())))
    }

    /// The ResourceQuotas Paddock made in tenants' namespaces (their
    /// `status.used` is what each tenant's namespace uses).
    pub fn tenant_quotas(&self) -> &Feed<ResourceQuota> {
        self.inner.tenant_quotas.get_or_init(|| {
            use resources::vocabulary::{MANAGED_BY, MANAGER, TENANT};
            let wc = watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER},{TENANT}"));
            self.start_with("tenant quotas", Api::all(self.inner.client.clone()), wc)
        })
    }

    /// The warm pools' pods in `pool_ns` (those labelled with their pool).
    pub fn pool_pods(&self, pool_ns: &str) -> Feed<Pod> {
        let mut feeds = self.inner.pool_pods.lock().unwrap_or_else(|e| e.into_inner());
        feeds
            .entry(pool_ns.to_string())
            .or_insert_with(|| {
                let api = Api::namespaced(self.inner.client.clone(), pool_ns);
                self.start_with("pool pods", api, watcher::Config::default().labels(resources::vocabulary::POOL))
            })
            .clone()
    }

    fn start<K>(&self, what: &'static str, api: Api<K>) -> Feed<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        self.start_with(what, api, watcher::Config::default())
    }

    fn start_with<K>(&self, what: &'static str, api: Api<K>, wc: watcher::Config) -> Feed<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let (store, events) = crate::cache::reflect(api, wc, crate::cache::whole);
        Feed::run(what, store, events, self.inner.on_error.clone())
    }
}

/// One kind's shared watch: its store, and its events for whoever subscribes.
pub struct Feed<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    fanout: Arc<Mutex<Fanout<K>>>,
    task: Arc<Task>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Feed<K> {
    fn clone(&self) -> Self {
        Feed { store: self.store.clone(), fanout: self.fanout.clone(), task: self.task.clone() }
    }
}

struct Fanout<K> {
    tx: broadcast::Sender<Event<Arc<K>>>,
    /// Whether the first list went out (a later subscriber starts from the store).
    listed: bool,
}

impl<K> Feed<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// Fans `events` (a reflected watch into `store`) out; the task runs the watch.
    fn run(
        what: &'static str,
        store: Store<K>,
        events: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
        on_error: OnError,
    ) -> Feed<K> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let fanout = Arc::new(Mutex::new(Fanout { tx, listed: false }));
        let kept = fanout.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            // A list goes out whole, at its end: a subscriber that joins
            // meanwhile gets all of it or (joining after) the store.
            let mut list: Option<Vec<Event<Arc<K>>>> = None;
            while let Some(ev) = events.next().await {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(e) => {
                        crate::error::report_watch_error(what, &e);
                        on_error(what, &e);
                        continue;
                    }
                };
                match (shared(ev), list.as_mut()) {
                    (Event::Init, _) => list = Some(vec![Event::Init]),
                    (ev @ Event::InitApply(_), Some(l)) => l.push(ev),
                    (Event::InitDone, _) => {
                        let mut batch = list.take().unwrap_or_default();
                        batch.push(Event::InitDone);
                        let mut f = fanout.lock().unwrap_or_else(|e| e.into_inner());
                        for ev in batch {
                            let _ = f.tx.send(ev);
                        }
                        f.listed = true;
                    }
                    (ev, _) => {
                        let _ = fanout.lock().unwrap_or_else(|e| e.into_inner()).tx.send(ev);
                    }
                }
            }
        });
        Feed { store, fanout: kept, task: Arc::new(Task(task)) }
    }

    /// The kind's objects (shared by every reader).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The kind's watch events from now on, as a watch of one's own would
    /// give them: the store as a list first when it was listed already, and
    /// again whenever this reader falls [`BACKLOG`] events behind. Never
    /// fails (the feed reports its watch's errors).
    pub fn subscribe(&self) -> BoxStream<'static, Result<Event<K>, watcher::Error>> {
        let (rx, listed) = {
            let f = self.fanout.lock().unwrap_or_else(|e| e.into_inner());
            (f.tx.subscribe(), f.listed)
        };
        let (store, task) = (self.store.clone(), self.task.clone());
        let first = if listed { relist(&store) } else { stream::iter(Vec::new()).boxed() };
        let live = stream::unfold((rx, store, task), |(mut rx, store, task)| async move {
            let out = match rx.recv().await {
                Ok(ev) => stream::iter([Ok(owned(ev))]).boxed(),
                Err(broadcast::error::RecvError::Lagged(_)) => relist(&store),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((out, (rx, store, task)))
        })
        .flatten();
        first.chain(live).boxed()
    }
}

/// The store's objects as a list's events, each copied only when the reader
/// takes it (a relist of ten thousand objects is not held twice at once).
fn relist<K>(store: &Store<K>) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let objects = store.state().into_iter().map(|o| Ok(Event::InitApply(K::clone(&o))));
    stream::iter([Ok(Event::Init)]).chain(stream::iter(objects)).chain(stream::iter([Ok(Event::InitDone)])).boxed()
}

fn shared<K>(ev: Event<K>) -> Event<Arc<K>> {
    match ev {
        Event::Apply(o) => Event::Apply(Arc::new(o)),
        Event::Delete(o) => Event::Delete(Arc::new(o)),
        Event::InitApply(o) => Event::InitApply(Arc::new(o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

fn owned<K: Clone>(ev: Event<Arc<K>>) -> Event<K> {
    match ev {
        Event::Apply(o) => Event::Apply(K::clone(&o)),
        Event::Delete(o) => Event::Delete(K::clone(&o)),
        Event::InitApply(o) => Event::InitApply(K::clone(&o)),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::channel::mpsc;
    use kube::runtime::{WatchStreamExt, reflector};

    fn template(name: &str) -> Template {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": {"pods": []}})).unwrap()
    }

    fn names(evs: &[Event<Template>]) -> Vec<String> {
        evs.iter()
            .map(|e| match e {
                Event::Init => "init".to_string(),
                Event::InitApply(t) => format!("list {}", t.metadata.name.clone().unwrap_or_default()),
                Event::InitDone => "done".to_string(),
                Event::Apply(t) => format!("apply {}", t.metadata.name.clone().unwrap_or_default()),
                Event::Delete(t) => format!("delete {}", t.metadata.name.clone().unwrap_or_default()),
            })
            .collect()
    }

    async fn take(
        s: &mut BoxStream<'static, Result<Event<Template>, watcher::Error>>,
        n: usize,
    ) -> Vec<Event<Template>> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(s.next().await.unwrap().unwrap());
        }
        out
    }

    #[tokio::test]
    async fn early_and_late_readers_see_the_same_world() {
        let (store, writer) = reflector::store::<Template>();
        let (tx, rx) = mpsc::unbounded::<Result<Event<Template>, watcher::Error>>();
        let feed = Feed::run("templates", store, rx.reflect(writer), Arc::new(|_, _| {}));
        let mut early = feed.subscribe();
        for ev in [Event::Init, Event::InitApply(template("a")), Event::InitDone, Event::Apply(template("b"))] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        assert_eq!(names(&take(&mut early, 4).await), ["init", "list a", "done", "apply b"]);
        // A reader that joins now gets the store as a list, then what follows.
        let mut late = feed.subscribe();
        tx.unbounded_send(Ok(Event::Delete(template("a")))).unwrap();
        let mut got = names(&take(&mut late, 5).await);
        got[1..3].sort();
        assert_eq!(got, ["init", "list a", "list b", "done", "delete a"]);
        assert_eq!(names(&take(&mut early, 1).await), ["delete a"]);
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_gets_the_store_again() {
        let (store, writer) = reflector::store::<Template>();
        let (tx, rx) = mpsc::unbounded::<Result<Event<Template>, watcher::Error>>();
        let feed = Feed::run("templates", store.clone(), rx.reflect(writer), Arc::new(|_, _| {}));
        let mut slow = feed.subscribe();
        for ev in [Event::Init, Event::InitDone] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        for i in 0..BACKLOG + 10 {
            tx.unbounded_send(Ok(Event::Apply(template(&format!("t{}", i % 3))))).unwrap();
        }
        // Wait until the feed has sent them all.
        while store.state().len() < 3 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let got = names(&take(&mut slow, 5).await);
        assert_eq!(got[0], "init");
        assert_eq!(got[4], "done", "{got:?}");
    }
}
