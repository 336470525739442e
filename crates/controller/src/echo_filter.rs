//! Watch events that only echo the controller's own writes.
//!
//! A reconcile writes an object and gets it back with its new
//! resourceVersion; the watch then delivers that very version. Triggering a
//! reconcile for it only re-checks what the reconcile that wrote it has just
//! made so, and a new tenant's or instance's every write came back as one
//! more reconcile (the counts are in docs/performance-history.md). An echo still goes into the
//! watch cache; only its trigger is dropped. Any other version (someone
//! else's change, a deletion, a newer write) triggers as before, so drift is
//! repaired as before.
//!
//! (Upstream's ReplicaSet controller keeps "expectations" of its own creates
//! and deletes for the same reason.)
//!
//! Two timings make an echo look like a change:
//! - It can come in before the write's answer: the API server sends the
//!   watch event and the answer at about the same time, and the watch may be
//!   read first. So a write is announced before it is sent
//!   ([`EchoFilter::writing`]); an event of an object with a write of it under
//!   way waits in its stream until the write is answered, and is then
//!   dropped if it was the write's echo, or passed on if it was not.
//! - It can come in a whole reconcile late: a new tenant's finalizer and
//!   status writes are both answered before the finalizer's echo arrives.
//!   So every version the writes of an object returned is kept, in order,
//!   until its echo comes.
//!
//! Before these, a burst of new tenants took 1.3–2.2 reconciles and
//! 12.1–12.8 API-server writes per tenant; now 1.0 and 12.0 (`paddock bench
//! tenants --count 1000`).

use futures::{Stream, StreamExt};
use kube::Resource;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// Entries kept at most; one per object the controller wrote and has not yet
/// seen come back. A full map is emptied, which only costs a few redundant
/// reconciles.
const MAX_ENTRIES: usize = 65_536;

/// Versions noted per object at most (writes in a row, say a finalizer and
/// then a status, whose echoes the watch has not delivered yet); a longer
/// run forgets its oldest.
const MAX_VERSIONS: usize = 8;

/// (kind, namespace, name).
type Key = (Cow<'static, str>, String, String);

/// The versions the controller's own writes returned, until the watch
/// delivers them, and the writes under way.
#[derive(Default)]
pub struct EchoFilter {
    state: Mutex<State>,
    /// Events waiting in all streams for a write to be answered (so that an
    /// answered write wakes the streams only when one of them waits).
    held: AtomicUsize,
    /// One per stream from [`EchoFilter::unechoed`]: told when a write is answered.
    streams: Mutex<Vec<futures::channel::mpsc::UnboundedSender<()>>>,
}

#[derive(Default)]
struct State {
    /// The versions noted writes returned, by object, oldest first. The watch
    /// delivers an object's versions in order, and it can be a whole
    /// reconcile behind: a new tenant's finalizer and status writes are both
    /// answered before the first one's echo comes.
    pending: HashMap<Key, Vec<String>>,
    /// Writes sent and not yet answered, by object.
    writing: HashMap<Key, usize>,
}

/// What to do with a watch event.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// The echo of a noted write: drop it.
    Echo,
    /// Someone else's change: trigger.
    Trigger,
    /// A write of the object is under way: wait for its answer.
    Wait,
}

fn key<K: Resource<DynamicType = ()>>(o: &K) -> Key {
    let m = o.meta();
    (K::kind(&()), m.namespace.clone().unwrap_or_default(), m.name.clone().unwrap_or_default())
}

/// A write announced by [`EchoFilter::writing`]; answered with [`Writing::wrote`],
/// or dropped when the write failed or was not sent.
pub struct Writing<'a> {
    echoes: &'a EchoFilter,
    key: Option<Key>,
}

impl Writing<'_> {
    /// The write returned `o`: its watch event is an echo.
    pub fn wrote<K: Resource<DynamicType = ()>>(self, o: &K) {
        self.echoes.wrote(o);
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.echoes.answered(k);
        }
    }
}

impl EchoFilter {
    /// Announces a write of `o` (by kind, namespace and name) about to be
    /// sent: until the returned guard is answered or dropped, that object's
    /// watch events wait instead of triggering.
    pub fn writing<K: Resource<DynamicType = ()>>(&self, o: &K) -> Writing<'_> {
        let k = key(o);
        *self.lock().writing.entry(k.clone()).or_default() += 1;
        Writing { echoes: self, key: Some(k) }
    }

    /// Notes what a write returned: the watch event of this version is its echo.
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, o: &K) {
        let Some(rv) = o.meta().resource_version.clone() else { return };
        let mut state = self.lock();
        if state.pending.len() >= MAX_ENTRIES {
            state.pending.clear();
        }
        let versions = state.pending.entry(key(o)).or_default();
        if versions.len() >= MAX_VERSIONS {
            versions.remove(0);
        }
        versions.push(rv);
    }

    /// A write announced by `writing` was answered (or failed).
    fn answered(&self, k: Key) {
        {
            let mut state = self.lock();
            if let Some(n) = state.writing.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    state.writing.remove(&k);
                }
            }
        }
        // Streams are told only when one of them holds an event. An event of
        // this object that comes after the lock above is released sees the
        // write finished and is not held; one held before is counted here.
        if self.held.load(Ordering::SeqCst) > 0 {
            self.streams.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| s.unbounded_send(()).is_ok());
        }
    }

    /// Whether a watched object is the echo of a noted write (the note is then spent).
    pub fn is_echo<K: Resource<DynamicType = ()>>(&self, o: &K) -> bool {
        self.verdict(o, false) == Verdict::Echo
    }

    /// What to do with a watched object; a `Wait` is counted as held when `hold`.
    fn verdict<K: Resource<DynamicType = ()>>(&self, o: &K, hold: bool) -> Verdict {
        let mut state = self.lock();
        // Most events are not echoes, and most of the time nothing is pending.
        if state.pending.is_empty() && state.writing.is_empty() {
            return Verdict::Trigger;
        }
        let k = key(o);
        let rv = o.meta().resource_version.as_deref();
        if let Some(versions) = state.pending.get_mut(&k)
            && let Some(i) = versions.iter().position(|v| Some(v.as_str()) == rv)
        {
            // This version's note is spent, and so are older ones: the watch
            // will not deliver them any more.
            versions.drain(..=i);
            if versions.is_empty() {
                state.pending.remove(&k);
                // After a burst the map is empty again: give its table back.
                if state.pending.is_empty() && state.pending.capacity() > 1024 {
                    state.pending.shrink_to(1024);
                }
            }
            return Verdict::Echo;
        }
        if state.writing.contains_key(&k) {
            if hold {
                self.held.fetch_add(1, Ordering::SeqCst);
            }
            return Verdict::Wait;
        }
        Verdict::Trigger
    }

    /// `events` without the echoes of noted writes; an event of an object
    /// with a write under way comes after that write's answer, unless it was
    /// its echo.
    pub fn unechoed<K, E, S>(self: &Arc<Self>, events: S) -> impl Stream<Item = Result<K, E>> + Send + use<K, E, S>
    where
        K: Resource<DynamicType = ()> + Send + 'static,
        E: Send + 'static,
        S: Stream<Item = Result<K, E>> + Send + 'static,
    {
        let (tx, answers) = futures::channel::mpsc::unbounded();
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        Unechoed {
            echoes: self.clone(),
            events: Box::pin(events),
            answers,
            held: HashMap::new(),
            ready: VecDeque::new(),
            ended: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change is a single insert, remove or clear: a poisoned map is consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stream of [`EchoFilter::unechoed`].
struct Unechoed<K, S> {
    echoes: Arc<EchoFilter>,
    events: Pin<Box<S>>,
    /// Told when a write is answered.
    answers: futures::channel::mpsc::UnboundedReceiver<()>,
    /// Events waiting for a write's answer: the newest per object, and
    /// whether an older one came before it (which then triggers whatever
    /// the newest turns out to be: the older may have been someone else's
    /// change, say a new spec while the controller wrote the status).
    held: HashMap<Key, (K, bool)>,
    /// Events that waited and are to trigger.
    ready: VecDeque<K>,
    ended: bool,
}

// Nothing is pinned in place but the boxed stream.
impl<K, S> Unpin for Unechoed<K, S> {}

impl<K: Resource<DynamicType = ()>, S> Unechoed<K, S> {
    fn hold(&mut self, o: K) {
        match self.held.entry(key(&o)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                e.insert((o, true));
                // It replaced an older event of the object, counted already.
                self.echoes.held.fetch_sub(1, Ordering::SeqCst);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((o, false));
            }
        }
    }

    /// Decides on the held events whose writes were answered (all of them when `all`).
    fn settle(&mut self, all: bool) {
        let held = std::mem::take(&mut self.held);
        for (k, (o, after_another)) in held {
            match self.echoes.verdict(&o, false) {
                Verdict::Wait if !all => {
                    self.held.insert(k, (o, after_another));
                    continue;
                }
                Verdict::Echo if !after_another => {}
                _ => self.ready.push_back(o),
            }
            self.echoes.held.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl<K, E, S> Stream for Unechoed<K, S>
where
    K: Resource<DynamicType = ()>,
    S: Stream<Item = Result<K, E>>,
{
    type Item = Result<K, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let me = self.get_mut();
        loop {
            if let Some(o) = me.ready.pop_front() {
                return Poll::Ready(Some(Ok(o)));
            }
            let mut answered = false;
            while let Poll::Ready(Some(())) = me.answers.poll_next_unpin(cx) {
                answered = true;
            }
            if answered && !me.held.is_empty() {
                me.settle(false);
                continue;
            }
            if me.ended {
                return Poll::Ready(None);
            }
            match me.events.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(o))) => match me.echoes.verdict(&o, true) {
                    Verdict::Echo => {}
                    Verdict::Trigger => return Poll::Ready(Some(Ok(o))),
                    Verdict::Wait => me.hold(o),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    me.ended = true;
                    me.settle(true);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<K, S> Drop for Unechoed<K, S> {
    fn drop(&mut self) {
        self.echoes.held.fetch_sub(self.held.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn cm(name: &str, rv: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some("ns".into());
        c.metadata.resource_version = Some(rv.into());
        c
    }

    #[test]
    fn only_the_written_version_of_the_written_object_is_an_echo() {
        let e = EchoFilter::default();
        e.wrote(&cm("a", "5"));
        assert!(!e.is_echo(&cm("a", "4")), "an older version");
        assert!(!e.is_echo(&cm("b", "5")), "another object");
        let mut s = Secret::default();
        s.metadata.name = Some("a".into());
        s.metadata.namespace = Some("ns".into());
        s.metadata.resource_version = Some("5".into());
        assert!(!e.is_echo(&s), "another kind");
        assert!(e.is_echo(&cm("a", "5")));
        assert!(!e.is_echo(&cm("a", "5")), "a note is spent by its echo");
    }

    #[test]
    fn writes_in_a_row_all_have_their_echoes() {
        let e = EchoFilter::default();
        // A finalizer, then a status, both answered before either echo comes.
        e.wrote(&cm("a", "5"));
        e.wrote(&cm("a", "7"));
        assert!(e.is_echo(&cm("a", "5")));
        assert!(!e.is_echo(&cm("a", "6")), "someone else's version in between");
        assert!(e.is_echo(&cm("a", "7")));
        // An echo spends the older notes too: the watch delivers in order.
        e.wrote(&cm("a", "8"));
        e.wrote(&cm("a", "9"));
        assert!(e.is_echo(&cm("a", "9")), "8 was skipped (a relist)");
        assert!(!e.is_echo(&cm("a", "8")));
        for v in 10..30 {
            e.wrote(&cm("a", &v.to_string()));
        }
        assert!(!e.is_echo(&cm("a", "10")), "a long run forgets its oldest");
        assert!(e.is_echo(&cm("a", "29")));
    }

    #[tokio::test]
    async fn streams_lose_only_echoes() {
        let e = Arc::new(EchoFilter::default());
        e.wrote(&cm("a", "2"));
        let events = futures::stream::iter(vec![
            Ok::<_, String>(cm("a", "1")),
            Ok(cm("a", "2")),
            Err("watch error".to_string()),
            Ok(cm("a", "3")),
        ]);
        let out: Vec<_> = e.unechoed(events).collect().await;
        let rvs: Vec<String> = out
            .iter()
            .map(|r| match r {
                Ok(c) => c.metadata.resource_version.clone().unwrap_or_default(),
                Err(e) => e.clone(),
            })
            .collect();
        assert_eq!(rvs, ["1", "watch error", "3"]);
    }

    type Feed = futures::channel::mpsc::UnboundedSender<Result<ConfigMap, String>>;
    type Events = std::pin::Pin<Box<dyn Stream<Item = Result<ConfigMap, String>> + Send>>;

    /// An unechoed stream, fed by hand.
    fn fed() -> (Arc<EchoFilter>, Feed, Events) {
        let e = Arc::new(EchoFilter::default());
        let (tx, rx) = futures::channel::mpsc::unbounded::<Result<ConfigMap, String>>();
        let s: Events = Box::pin(e.unechoed(rx));
        (e, tx, s)
    }

    /// The events of `stream` available now (without waiting), as resourceVersions.
    fn available(stream: &mut (impl Stream<Item = Result<ConfigMap, String>> + Unpin)) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Some(r)) = stream.next().now_or_never() {
            out.push(r.map(|c| c.metadata.resource_version.unwrap_or_default()).unwrap_or_else(|e| e));
        }
        out
    }

    #[test]
    fn an_echo_that_comes_before_the_answer_waits_for_it_and_is_dropped() {
        let (e, tx, mut s) = fed();
        let w = e.writing(&cm("a", "1"));
        tx.unbounded_send(Ok(cm("a", "2"))).unwrap();
        tx.unbounded_send(Ok(cm("b", "9"))).unwrap();
        assert_eq!(available(&mut s), ["9"], "a's event waits for the write of a; b's does not");
        w.wrote(&cm("a", "2"));
        assert_eq!(available(&mut s), Vec::<String>::new(), "it was the write's echo");
        assert_eq!(e.held.load(Ordering::SeqCst), 0);
        // The note is spent: the same version again (a relist) triggers.
        tx.unbounded_send(Ok(cm("a", "2"))).unwrap();
        assert_eq!(available(&mut s), ["2"]);
    }

    #[test]
    fn a_change_that_comes_during_a_write_triggers_after_the_answer() {
        let (e, tx, mut s) = fed();
        // Someone else's version, then the write's own: the first must still trigger.
        let w = e.writing(&cm("a", "1"));
        tx.unbounded_send(Ok(cm("a", "5"))).unwrap();
        tx.unbounded_send(Ok(cm("a", "6"))).unwrap();
        assert!(available(&mut s).is_empty());
        w.wrote(&cm("a", "6"));
        assert_eq!(available(&mut s), ["6"], "the newest event, standing for both");
        // Someone else's version alone.
        let w = e.writing(&cm("a", "6"));
        tx.unbounded_send(Ok(cm("a", "7"))).unwrap();
        assert!(available(&mut s).is_empty());
        w.wrote(&cm("a", "8"));
        assert_eq!(available(&mut s), ["7"], "not the write's version");
        // A write that failed.
        let w = e.writing(&cm("a", "8"));
        tx.unbounded_send(Ok(cm("a", "9"))).unwrap();
        assert!(available(&mut s).is_empty());
        drop(w);
        assert_eq!(available(&mut s), ["9"]);
        assert_eq!(e.held.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_stream_that_ends_lets_its_waiting_events_go() {
        let (e, tx, mut s) = fed();
        let _w = e.writing(&cm("a", "1"));
        tx.unbounded_send(Ok(cm("a", "2"))).unwrap();
        tx.unbounded_send(Err("watch error".into())).unwrap();
        drop(tx);
        assert_eq!(available(&mut s), ["watch error", "2"]);
        assert_eq!(s.next().now_or_never(), Some(None), "then the stream ends");
        assert_eq!(e.held.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_dropped_stream_gives_back_its_count_of_waiting_events() {
        let (e, tx, mut s) = fed();
        let _w = e.writing(&cm("a", "1"));
        tx.unbounded_send(Ok(cm("a", "2"))).unwrap();
        assert!(available(&mut s).is_empty());
        assert_eq!(e.held.load(Ordering::SeqCst), 1);
        drop(s);
        assert_eq!(e.held.load(Ordering::SeqCst), 0);
    }
}
