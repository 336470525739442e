//! What a request would cost a real API server with etcd, for benchmarks
//! (`--cost-model realistic`; off by default, so tests and `paddock dev`
//! stay fast).
//!
//! kubesim answers in microseconds; a real API server spends CPU on every
//! request (decoding, admission, encoding, sending each event to every
//! watch) and etcd commits every write. A benchmark on kubesim alone cannot
//! see what one request more or less costs a user's cluster. The model
//! charges each request:
//!
//! - **latency** that holds nothing (the network, etcd's fsync, which etcd
//!   batches): a request waits it, others go on;
//! - **CPU** on one of `cores` lanes, shared by every request: a request
//!   waits until a lane is free, then holds it for its cost, so past the
//!   lanes' capacity requests queue as they do on a saturated API server;
//! - for a write, one **commit** at a time (etcd's serial apply), and the
//!   CPU of sending its event to every watch open on the resource.
//!
//! The simulated controllers' own writes (the scheduler's bindings, the
//! kubelets' status updates) take CPU on the same lanes without waiting,
//! found as resourceVersions nobody asked for over HTTP; a real cluster's
//! kubelets and scheduler also write Events for every pod, charged as
//! [`CostModel::pod_events`] writes per pod created.
//!
//! A few requests (a share of them) are slower by a fixed extra, as a real
//! server's garbage collection pauses and slow fsyncs make its tail.
//!
//! Time is accounted exactly (each lane is busy until an instant); only
//! the final wait is a timer's, which rounds up to the next millisecond.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Costs of requests; see the module doc.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// CPU lanes the API server's request work shares.
    pub cores: usize,
    /// Latency of a read (GET, LIST, opening a WATCH) and of a write.
    pub read_latency: Duration,
    pub write_latency: Duration,
    /// CPU of a GET, a LIST, opening a WATCH, and a write.
    pub get_cpu: Duration,
    pub list_cpu: Duration,
    pub watch_cpu: Duration,
    pub write_cpu: Duration,
    /// etcd's commit of one write; one at a time.
    pub commit: Duration,
    /// CPU of sending one event to one open watch.
    pub fanout_cpu: Duration,
    /// Event writes a real cluster's scheduler and kubelet make per pod
    /// (Scheduled, Pulling, Pulled, Created, Started).
    pub pod_events: u32,
    /// The odd slow request (a garbage collection pause, an fsync that
    /// waits): this share of requests take this much longer.
    pub slow_share: f64,
    pub slow_extra: Duration,
}

impl CostModel {
    /// Calibrated on a 2-core machine against a real Kubernetes v1.28.7 API
    /// server with etcd (issue 34): it sustained about 750 writes a second
    /// with one core busy (91 tenants/s × 8.5 writes in the raw tenant
    /// loop), so a write's CPU is about 1.25 ms on one lane; a claim that
    /// made six writes one after the other took 46 ms at p50 at 10/s,
    /// about 6 ms a request unloaded, most of it latency that holds no CPU,
    /// and 116 ms at p99: a few requests are much slower.
    pub fn realistic() -> CostModel {
        CostModel {
            cores: 1,
            read_latency: Duration::from_micros(2500),
            write_latency: Duration::from_micros(5000),
            get_cpu: Duration::from_micros(250),
            list_cpu: Duration::from_micros(1000),
            watch_cpu: Duration::from_micros(500),
            write_cpu: Duration::from_micros(1250),
            commit: Duration::from_micros(150),
            fanout_cpu: Duration::from_micros(40),
            pod_events: 5,
            slow_share: 0.03,
            slow_extra: Duration::from_millis(25),
        }
    }

    /// `off` (None) or `realistic`.
    pub fn named(name: &str) -> Result<Option<CostModel>, String> {
        match name {
            "off" => Ok(None),
            "realistic" => Ok(Some(CostModel::realistic())),
            other => Err(format!("{other:?} is not a cost model (off, realistic)")),
        }
    }
}

/// What a request is, for its cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Get,
    List,
    Watch,
    /// A write, and the watches open on its resource (each gets its event).
    Write {
        watchers: usize,
    },
}

/// The model's state: when each CPU lane and the commit lane are free.
#[derive(Debug)]
pub struct Costs {
    pub model: CostModel,
    lanes: Mutex<Vec<Instant>>,
    commit: Mutex<Instant>,
    /// Writes served over HTTP, and resourceVersions seen, to find the
    /// simulated controllers' writes.
    http_writes: AtomicU64,
    seen: Mutex<(u64, u64)>,
}

impl Costs {
    pub fn new(model: CostModel) -> Costs {
        let now = Instant::now();
        let lanes = vec![now; model.cores.max(1)];
        Costs {
            model,
            lanes: Mutex::new(lanes),
            commit: Mutex::new(now),
            http_writes: AtomicU64::new(0),
            seen: Mutex::default(),
        }
    }

    /// Holds CPU for `cpu` on the lane free first, from `from` at the
    /// earliest: when the work is done.
    fn run_cpu(&self, from: Instant, cpu: Duration) -> Instant {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.iter_mut().min() else { return from };
        let start = (*lane).max(from);
        *lane = start + cpu;
        *lane
    }

    /// When a request of `kind` arriving now is answered.
    pub fn answer_at(&self, kind: Kind) -> Instant {
        let m = &self.model;
        let now = Instant::now();
        let (latency, cpu) = match kind {
            Kind::Get => (m.read_latency, m.get_cpu),
            Kind::List => (m.read_latency, m.list_cpu),
            Kind::Watch => (m.read_latency, m.watch_cpu),
            Kind::Write { watchers } => {
                let fanout = m.fanout_cpu.saturating_mul(u32::try_from(watchers).unwrap_or(u32::MAX));
                (m.write_latency, m.write_cpu.saturating_add(fanout))
            }
        };
        let mut done = self.run_cpu(now, cpu);
        if matches!(kind, Kind::Write { .. }) {
            self.http_writes.fetch_add(1, Ordering::Relaxed);
            let mut commit = self.commit.lock();
            let start = (*commit).max(done);
            *commit = start + m.commit;
            done = *commit;
        }
        let latency = if self.model.slow_share > 0.0 && rand::random::<f64>() < self.model.slow_share {
            latency.saturating_add(self.model.slow_extra)
        } else {
            latency
        };
        done.max(now + latency)
    }

    /// Waits until a request of `kind` arriving now is answered.
    pub async fn charge(&self, kind: Kind) {
        tokio::time::sleep_until(self.answer_at(kind).into()).await;
    }

    /// Charges work that nobody waits for: `writes` writes (each with its
    /// fan-out to `watchers` watches).
    pub fn background(&self, writes: u64, watchers: usize) {
        let m = &self.model;
        let fanout = m.fanout_cpu.saturating_mul(u32::try_from(watchers).unwrap_or(u32::MAX));
        let each = m.write_cpu.saturating_add(fanout);
        let cpu = each.saturating_mul(u32::try_from(writes).unwrap_or(u32::MAX));
        if !cpu.is_zero() {
            self.run_cpu(Instant::now(), cpu);
        }
    }

    /// A pod was created: the Events a real cluster's scheduler and kubelet
    /// write for it.
    pub fn pod_created(&self) {
        self.background(u64::from(self.model.pod_events), 0);
    }

    /// The simulated controllers' writes since the last call, found as the
    /// resourceVersions (`rv`, the store's newest) that no HTTP write made,
    /// are charged in the background.
    pub fn catch_up(&self, rv: u64, watchers: usize) {
        let http = self.http_writes.load(Ordering::Relaxed);
        let internal = {
            let mut seen = self.seen.lock();
            let (last_rv, last_http) = *seen;
            *seen = (rv, http);
            if last_rv == 0 {
                return;
            }
            rv.saturating_sub(last_rv).saturating_sub(http.saturating_sub(last_http))
        };
        self.background(internal, watchers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> CostModel {
        CostModel {
            cores: 1,
            read_latency: Duration::from_millis(1),
            write_latency: Duration::from_millis(2),
            get_cpu: Duration::from_millis(1),
            list_cpu: Duration::from_millis(3),
            watch_cpu: Duration::from_millis(1),
            write_cpu: Duration::from_millis(10),
            commit: Duration::from_millis(1),
            fanout_cpu: Duration::from_millis(1),
            pod_events: 2,
            slow_share: 0.0,
            slow_extra: Duration::ZERO,
        }
    }

    #[test]
    fn past_its_cores_the_server_queues_requests() {
        let c = Costs::new(model());
        let t0 = Instant::now();
        // Ten writes at once on one lane: each waits for those before it.
        let done: Vec<Instant> = (0..10).map(|_| c.answer_at(Kind::Write { watchers: 0 })).collect();
        let last = done[9].duration_since(t0);
        assert!(last >= Duration::from_millis(101), "10 × 10 ms of CPU and a 1 ms commit: {last:?}");
        assert!(done.windows(2).all(|w| w[1] >= w[0] + Duration::from_millis(10)));
        // A read behind them waits for the lane too.
        assert!(c.answer_at(Kind::Get) >= done[9]);
    }

    #[test]
    fn an_idle_server_answers_in_its_latency_and_watches_cost_each_event() {
        let c = Costs::new(model());
        let t0 = Instant::now();
        let read = c.answer_at(Kind::Get).duration_since(t0);
        assert!(read >= Duration::from_millis(1) && read < Duration::from_millis(3), "{read:?}");
        let c = Costs::new(model());
        let write = c.answer_at(Kind::Write { watchers: 5 }).duration_since(t0);
        assert!(write >= Duration::from_millis(16), "10 ms CPU + 5 × 1 ms fan-out + 1 ms commit: {write:?}");
    }

    #[test]
    fn the_controllers_writes_take_cpu_nobody_waits_for() {
        let c = Costs::new(model());
        c.catch_up(100, 0);
        // 5 resourceVersions, 2 of them HTTP writes: 3 writes of the controllers.
        c.answer_at(Kind::Write { watchers: 0 });
        c.answer_at(Kind::Write { watchers: 0 });
        c.catch_up(105, 0);
        let t0 = Instant::now();
        let next = c.answer_at(Kind::Get).duration_since(t0);
        assert!(next >= Duration::from_millis(50), "2 writes and 3 more of 10 ms before it: {next:?}");
        assert_eq!(CostModel::named("off"), Ok(None));
        assert!(CostModel::named("cheap").unwrap_err().contains("realistic"));
    }
}
