//! The controller as its own process for benchmarks that report its memory
//! and CPU: `paddock controller` (this binary) against the benchmark's
//! cluster, read from `/proc/<pid>`.

use super::target::{Target, TargetArgs};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Resident memory and CPU time of the controller process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub rss_mib: f64,
    /// Peak resident memory (VmHWM).
    pub peak_rss_mib: f64,
    /// User + system CPU time since it started.
    pub cpu_seconds: f64,
    /// Times its watches failed and restarted since it started
    /// (`paddock_watch_restarts_total`; None when /metrics does not answer):
    /// a watch that fell behind a burst and had to list again shows here.
    pub watch_restarts: Option<u64>,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resident {:.1} MiB (peak {:.1} MiB), CPU {:.1} s",
            self.rss_mib, self.peak_rss_mib, self.cpu_seconds
        )?;
        match self.watch_restarts {
            Some(n) => write!(f, ", {n} watch restarts"),
            None => Ok(()),
        }
    }
}

/// CPU time (user + system, all threads) this process has used so far, to
/// the nanosecond (None where the platform has no process CPU clock).
pub fn own_cpu() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// This whole process at the end of a run: the in-process benchmarks (`api`,
/// `claims`, `events`) run kubesim, the reconcilers, the API and the clients
/// in it, so there is no controller process of their own to read.
#[derive(Serialize)]
pub struct WholeProcess {
    pub rss_mib: Option<f64>,
    /// User + system CPU time since the process started.
    pub cpu_seconds: Option<f64>,
}

impl WholeProcess {
    pub fn now() -> Self {
        Self { rss_mib: rss_mib(), cpu_seconds: own_cpu().map(|d| d.as_secs_f64()) }
    }

    /// Prints it.
    pub fn line(&self, out: &mut dyn Write) -> Result<()> {
        let rss = self.rss_mib.map_or_else(|| "n/a".to_string(), |m| format!("{m:.0} MiB"));
        let cpu = self.cpu_seconds.map_or_else(|| "n/a".to_string(), |c| format!("{c:.1} s"));
        writeln!(
            out,
            "the whole process (reconcilers, API, clients, and kubesim when it is the target): resident {rss}, CPU {cpu}"
        )?;
        Ok(())
    }
}

/// Resident memory of this process, from /proc.
pub fn rss_mib() -> Option<f64> {
    Some(status_kib(&std::fs::read_to_string("/proc/self/status").ok()?, "VmRSS:")? / 1024.0)
}

/// A `kB` figure of a /proc/<pid>/status text, e.g. `VmRSS:`.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    status.lines().find_map(|l| l.strip_prefix(key))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The benchmark's cluster (kubesim with `cfg`, or the one `args` names)
/// with Paddock's CRDs and system namespace installed, and the controller
/// running against it as its own process — none with `--installed-controller`,
/// whose cluster has Paddock already.
pub async fn cluster_with_controller(
    args: &TargetArgs,
    cfg: kubesim::SimConfig,
) -> Result<(Target, Option<ControllerProcess>)> {
    let target = Target::start(args, cfg).await?;
    if args.installed_controller {
        return Ok((target, None));
    }
    let client = &target.client;
    controller::install::crds(client, "paddock-bench", Duration::from_secs(30)).await?;
    let settings = controller::config::Settings::default();
    controller::install::namespace(client, &settings.system_namespace, "paddock-bench").await?;
    let controller = ControllerProcess::start(&target).await?;
    Ok((target, Some(controller)))
}

/// Ends a run of [`cluster_with_controller`]: on a cluster the run's objects
/// are deleted while the controller still runs (its finalizers), then the
/// controller stops and the target with it.
pub async fn finish(target: Target, controller: Option<ControllerProcess>) -> Result<()> {
    let cleaned = target.cleanup().await;
    drop(controller);
    target.finish().await.and(cleaned)
}

pub struct ControllerProcess {
    child: Mutex<Option<Child>>,
    pid: u32,
    /// Where it serves /healthz and /metrics.
    health: String,
}

impl ControllerProcess {
    /// Starts `paddock controller` against the target's cluster (no leader
    /// election; PADDOCK_* settings come from this process's environment),
    /// and waits until it answers on its health address.
    pub async fn start(target: &Target) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let health = format!("127.0.0.1:{port}");
        let exe = std::env::current_exe().context("finding the paddock binary")?;
        let child = Command::new(exe)
            .args(["--log-level", "warn", "controller", "--no-leader-election", "--health-listen", &health])
            .args(target.kube_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting paddock controller")?;
        let pid = child.id();
        let me = Self { child: Mutex::new(Some(child)), pid, health: health.clone() };
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{health}/healthz");
        loop {
            if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(me);
            }
            if Instant::now() > deadline {
                bail!("paddock controller did not answer on {health} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its memory and CPU now (zeros if /proc cannot be read), and its watch restarts.
    pub async fn usage(&self) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = |key: &str| status_kib(&status, key).unwrap_or(0.0);
        // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name,
        // in clock ticks (USER_HZ, 100 on Linux).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        Usage {
            rss_mib: kib("VmRSS:") / 1024.0,
            peak_rss_mib: kib("VmHWM:") / 1024.0,
            cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
            // (A counter's value is a whole number, printed as one.)
            watch_restarts: self.metrics().await.map(|text| sum_of(&text, "paddock_watch_restarts_total", None) as u64),
        }
    }

    /// Reconciles `controller` ran so far, whatever their result, from its
    /// `paddock_reconciles_total` (None when /metrics does not answer).
    pub async fn reconciles(&self, controller: &str) -> Option<f64> {
        Some(sum_of(&self.metrics().await?, "paddock_reconciles_total", Some(controller)))
    }

    /// The requests it sent to the API server so far
    /// (`paddock_kube_requests_total`), as a [`controller::requests::Requests`] snapshot.
    pub async fn requests(&self) -> Option<controller::requests::Snapshot> {
        Some(kube_requests(&self.metrics().await?))
    }

    /// Its /metrics page.
    async fn metrics(&self) -> Option<String> {
        reqwest::get(format!("http://{}/metrics", self.health)).await.ok()?.text().await.ok()
    }

    /// Stops it (SIGKILL; a benchmark does not need a graceful end).
    pub fn stop(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reconciles `name` ran so far in the controller process a run started
/// (None without one, as with `--installed-controller`).
pub async fn reconciles(controller: Option<&ControllerProcess>, name: &str) -> Option<f64> {
    controller?.reconciles(name).await
}

/// Reconciles of `name` per item since `before` (a [`reconciles`] reading), over `items` items.
pub async fn reconciles_per(
    controller: Option<&ControllerProcess>,
    name: &str,
    before: Option<f64>,
    items: usize,
) -> Option<f64> {
    before.zip(reconciles(controller, name).await).map(|(a, b)| (b - a) / items.max(1) as f64)
}

/// `paddock_kube_requests_total` by (component, verb, resource).
fn kube_requests(text: &str) -> controller::requests::Snapshot {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("paddock_kube_requests_total{")) {
        let label = |name: &str| line.split(&format!("{name}=\"")).nth(1).and_then(|r| r.split('"').next());
        let (Some(c), Some(v), Some(r)) = (label("component"), label("verb"), label("resource")) else { continue };
        let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        out.push(((c.to_string(), v.to_string(), r.to_string()), n as u64));
    }
    out
}

/// Sums the series of counter `metric` (of one controller's, or of all).
fn sum_of(text: &str, metric: &str, controller: Option<&str>) -> f64 {
    let label = controller.map(|c| format!("controller=\"{c}\""));
    text.lines()
        .filter(|l| l.strip_prefix(metric).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter(|l| label.as_ref().is_none_or(|label| l.contains(label.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // (A float `sum()` of nothing is -0.)
        .fold(0.0, |a, b| a + b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_counter_is_summed_over_its_series_of_one_controller_or_all() {
        let text = "# TYPE paddock_reconciles_total counter\n\
            paddock_reconciles_total{controller=\"tenant\",result=\"ok\"} 12\n\
            paddock_reconciles_total{controller=\"tenant\",result=\"error\"} 3\n\
            paddock_reconciles_total{controller=\"instance\",result=\"ok\"} 40\n\
            paddock_reconcile_errors_total{controller=\"tenant\",category=\"api\"} 3\n";
        assert_eq!(super::sum_of(text, "paddock_reconciles_total", Some("tenant")), 15.0);
        let none = super::sum_of(text, "paddock_reconciles_total", Some("pool"));
        assert!(none == 0.0 && none.is_sign_positive(), "0, not -0 (which prints as -0)");
        assert_eq!(super::sum_of(text, "paddock_reconciles_total", None), 55.0);
        let text = "paddock_watch_restarts_total{controller=\"tenant\"} 2\n\
            paddock_watch_restarts_total{controller=\"instance\"} 1\n\
            paddock_watch_restarts_total_created{controller=\"tenant\"} 1764500000\n";
        assert_eq!(super::sum_of(text, "paddock_watch_restarts_total", None), 3.0, "not the _created series");
    }

    #[test]
    fn paddocks_requests_are_read_from_its_metrics() {
        let text = "paddock_kube_requests_total{component=\"tenant\",verb=\"APPLY\",resource=\"namespaces\"} 3\n\
            paddock_kube_requests_total{component=\"pool\",verb=\"POST\",resource=\"pods\"} 2\n\
            paddock_reconciles_total{controller=\"tenant\",result=\"ok\"} 12\n";
        let got = super::kube_requests(text);
        let key = |c: &str, v: &str, r: &str| (c.to_string(), v.to_string(), r.to_string());
        assert_eq!(got, vec![(key("tenant", "APPLY", "namespaces"), 3), (key("pool", "POST", "pods"), 2)]);
    }
}
