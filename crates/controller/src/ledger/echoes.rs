//! Watch events that only echo the reconciler's own writes.
//!
//! A reconcile writes an object and gets it back with its new
//! resourceVersion; the watch then delivers that very version. Triggering a
//! reconcile for it only re-checks what the reconcile that wrote it has just
//! made so. An echo still goes into the watch cache; only its trigger is
//! dropped. Any other version (someone else's change, a deletion, a newer
//! write) triggers as before, so drift is repaired as before. (Upstream's
//! ReplicaSet controller keeps "expectations" of its own creates and deletes
//! for the same reason.)
//!
//! Two timings make an echo look like a change:
//! - It can come in before the write's answer: the API server sends the
//!   watch event and the answer at about the same time, and the watch may be
//!   read first. So a write is announced before it is sent
//!   ([`Ledger::writing`]); an event of an object with a write of it in
//!   flight waits in its stream until the write is answered, and is then
//!   dropped if it was the write's echo, or passed on if it was not.
//! - It can come in a whole reconcile late: a new tenant's finalizer and
//!   status writes are both answered before the finalizer's echo arrives.
//!   So every version the writes of an object returned is kept, in order,
//!   until its echo comes.

use super::record::{Key, Ledger, key};
use futures::{Stream, StreamExt};
use kube::Resource;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

/// Versions noted per object at most (writes in a row, say a finalizer and
/// then a status, whose echoes the watch has not delivered yet); a longer
/// run forgets its oldest.
const MAX_VERSIONS: usize = 8;

/// What to do with a watch event.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// The echo of a noted write: drop it.
    Echo,
    /// Someone else's change: trigger.
    Trigger,
    /// A write of the object is in flight: wait for its answer.
    Wait,
}

/// A write announced by [`Ledger::writing`]; answered with [`Writing::wrote`],
/// or dropped when the write failed or was not sent.
pub struct Writing<'a> {
    ledger: &'a Ledger,
    key: Option<Key>,
}

impl Writing<'_> {
    /// The write returned `o`: its watch event is an echo.
    pub fn wrote<K: Resource<DynamicType = ()>>(self, o: &K) {
        self.ledger.wrote(o);
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.ledger.answered(k);
        }
    }
}

impl Ledger {
    /// Announces a write of `o` (by kind, namespace and name) about to be
    /// sent: until the returned guard is answered or dropped, that object's
    /// watch events wait instead of triggering.
    pub fn writing<K: Resource<DynamicType = ()>>(&self, o: &K) -> Writing<'_> {
        let k = key(o);
        self.lock().record(k).in_flight += 1;
        Writing { ledger: self, key: Some(k) }
    }

    /// Notes what a write returned: the watch event of this version is its echo.
    pub fn wrote<K: Resource<DynamicType = ()>>(&self, o: &K) {
        let Some(rv) = o.meta().resource_version.clone() else { return };
        let mut state = self.lock();
        let versions = &mut state.record(key(o)).echoes;
        if versions.len() >= MAX_VERSIONS {
            versions.remove(0);
        }
        versions.push(rv);
    }

    /// A write announced by `writing` was answered (or failed).
    fn answered(&self, k: Key) {
        self.lock().change(k, |r| r.in_flight = r.in_flight.saturating_sub(1));
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
    pub(super) fn verdict<K: Resource<DynamicType = ()>>(&self, o: &K, hold: bool) -> Verdict {
        let k = key(o);
        let mut state = self.lock();
        let Some(r) = state.records.get_mut(&k) else { return Verdict::Trigger };
        let rv = o.meta().resource_version.as_deref();
        if let Some(i) = r.echoes.iter().position(|v| Some(v.as_str()) == rv) {
            // This version's note is spent, and so are older ones: the watch
            // will not deliver them any more.
            r.echoes.drain(..=i);
            state.tidy(k);
            return Verdict::Echo;
        }
        if r.in_flight > 0 {
            if hold {
                self.held.fetch_add(1, Ordering::SeqCst);
            }
            return Verdict::Wait;
        }
        Verdict::Trigger
    }

    /// `events` without the echoes of noted writes; an event of an object
    /// with a write in flight comes after that write's answer, unless it was
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
            ledger: self.clone(),
            events: Box::pin(events),
            answers,
            held: HashMap::new(),
            ready: VecDeque::new(),
            ended: false,
        }
    }
}

/// The stream of [`Ledger::unechoed`].
struct Unechoed<K, S> {
    ledger: Arc<Ledger>,
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
                self.ledger.held.fetch_sub(1, Ordering::SeqCst);
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
            match self.ledger.verdict(&o, false) {
                Verdict::Wait if !all => {
                    self.held.insert(k, (o, after_another));
                    continue;
                }
                Verdict::Echo if !after_another => {}
                _ => self.ready.push_back(o),
            }
            self.ledger.held.fetch_sub(1, Ordering::SeqCst);
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
                Poll::Ready(Some(Ok(o))) => match me.ledger.verdict(&o, true) {
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
        self.ledger.held.fetch_sub(self.held.len(), Ordering::SeqCst);
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
        let e = Ledger::default();
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
        let e = Ledger::default();
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
        let e = Arc::new(Ledger::default());
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
    fn fed() -> (Arc<Ledger>, Feed, Events) {
        let e = Arc::new(Ledger::default());
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
