//! `paddock instance start|list|get|stop|renew` through the API; `--wait`
//! follows the tenant's event stream and shows the phases as they pass.

use crate::client::output::{Format, cell, fields, print, section, show};
use crate::client::wait::{Progress, Step, WaitArgs, humantime, poll};
use crate::client::{Client, ClientArgs, Refused};
use crate::commands::events::{Follow, Update};
use anyhow::{Result, bail};
use api::model::{InstanceView, Renew, StartInstance};
use clap::{Args, Subcommand};
use reqwest::Method;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct InstanceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The tenant (default: the one a tenant token belongs to).
    #[arg(long, global = true, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    #[command(subcommand)]
    pub command: InstanceCommand,
}

#[derive(Subcommand, Debug)]
pub enum InstanceCommand {
    /// Start an instance of a template.
    Start {
        /// The template to start (`paddock template list` shows them).
        template: String,
        /// Instance name (default: generated from the template).
        #[arg(long)]
        name: Option<String>,
        /// Lifetime, e.g. 1h (default: the template's).
        #[arg(long)]
        ttl: Option<String>,
        /// KEY=VALUE for an environment variable the template lets instances set (repeatable).
        #[arg(long = "env", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// KEY=VALUE label for the instance, to find it with `list -l` (repeatable; at most 16).
        #[arg(long = "label", value_parser = parse_env)]
        labels: Vec<(String, String)>,
        /// Retrying with the same key never starts a second instance.
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List the tenant's instances (or, -A with an admin token, every tenant's).
    List {
        /// Every tenant's instances, with a TENANT column (admin token; --tenant is then ignored).
        #[arg(short = 'A', long)]
        all_tenants: bool,
        /// Only instances in this phase (Pending, Running, Failed, ...; any case).
        #[arg(long)]
        phase: Option<String>,
        /// Only instances of this template.
        #[arg(long)]
        template: Option<String>,
        /// Only instances whose labels match this selector (`job=42`, `env in (ci,dev)`, `!draft`).
        #[arg(short = 'l', long, value_parser = parse_selector)]
        selector: Option<Selector>,
        /// After the list, a line for every change (as `kubectl get -w`), until Ctrl-C.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show one instance: its phase, pods, endpoints and expiry.
    Get {
        /// The instance's name.
        name: String,
    },
    /// Stop (delete) an instance.
    Stop {
        /// The instance's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print the log of one of an instance's pods.
    Logs {
        /// The instance's name.
        name: String,
        /// The template's pod (needed when the instance has more than one).
        #[arg(long)]
        pod: Option<String>,
        /// Only the last N lines.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..=api::routes::logs::MAX_TAIL))]
        tail: Option<i64>,
        /// Keep printing new lines until the container stops (Ctrl-C to stop).
        #[arg(short = 'f', long)]
        follow: bool,
        /// The log of the container's previous run (after a restart).
        #[arg(long)]
        previous: bool,
    },
    /// Suspend an instance: its pods go (and the quota they held), the rest stays.
    Suspend {
        /// The instance's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Resume a suspended instance: its pods start again, with the same generated values.
    Resume {
        /// The instance's name.
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Say an instance is in use: its idle clock starts again.
    Heartbeat {
        /// The instance's name.
        name: String,
    },
    /// Extend an instance's lifetime (up to the template's maxTtl).
    Renew {
        /// The instance's name.
        name: String,
        /// How long from now (default: the template's ttl).
        #[arg(long)]
        ttl: Option<String>,
    },
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// A label selector: its text (sent to the API) and its parsed form (to
/// filter what `--watch` reports).
#[derive(Debug, Clone)]
pub struct Selector {
    text: String,
    parsed: kubesim::selector::Selector,
}

fn parse_selector(s: &str) -> Result<Selector, String> {
    let parsed = kubesim::selector::Selector::parse_labels(s).map_err(|e| e.message)?;
    Ok(Selector { text: s.to_string(), parsed })
}

/// What `instance list` shows: by phase, template and labels.
struct Filter {
    phase: Option<String>,
    template: Option<String>,
    selector: Option<Selector>,
}

impl Filter {
    fn keeps(&self, i: &InstanceView) -> bool {
        let labels: serde_json::Map<String, serde_json::Value> =
            i.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        self.phase.as_ref().is_none_or(|p| i.phase.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(p)))
            && self.template.as_ref().is_none_or(|t| &i.template == t)
            && self.selector.as_ref().is_none_or(|s| s.parsed.matches_map(Some(&labels)))
    }

    /// The query that asks the API for the labels (the rest is filtered here).
    fn query(&self) -> Vec<(&'static str, String)> {
        self.selector.iter().map(|s| ("labelSelector", s.text.clone())).collect()
    }
}

const HEADER: &[&str] = &["NAME", "TEMPLATE", "PHASE", "READY IN", "EXPIRES", "MESSAGE"];

/// A note when a renewal did not end where asked: the API caps the lifetime
/// at the template's maxTtl since creation, and never shortens it (an
/// instance that already lives longer, or does not expire, stays as it is).
fn renewal_note(i: &InstanceView, asked: Option<Duration>, now: jiff::Timestamp) -> Option<String> {
    let Some(expires) = i.expires.as_deref() else {
        return Some(format!("note: {} does not expire; nothing to renew", i.name));
    };
    let expires: jiff::Timestamp = expires.parse().ok()?;
    let wanted = now.checked_add(jiff::SignedDuration::try_from(asked?).ok()?).ok()?;
    // A few seconds of slack for the round trip.
    if expires.as_second() + 5 < wanted.as_second() {
        Some(format!("note: capped at the template's maxTtl: {} expires at {expires}, not {wanted:.0}", i.name))
    } else if expires.as_second() > wanted.as_second() + 5 {
        Some(format!(
            "note: unchanged: {} already expires at {expires}, after {wanted:.0} (a renewal never shortens)",
            i.name
        ))
    } else {
        None
    }
}

/// One instance for a person: what it is, how far it got, its pods and how
/// to reach it.
fn detail(i: &InstanceView) -> String {
    let mut lines = vec![
        ("Name", i.name.clone()),
        ("Tenant", i.tenant.clone()),
        ("Template", i.template.clone()),
        ("Phase", cell(i.phase.clone())),
        ("Message", cell(i.message.clone())),
        (
            "Labels",
            if i.labels.is_empty() {
                "<none>".into()
            } else {
                i.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            },
        ),
        ("Created", cell(i.created.clone())),
        ("Expires", cell(i.expires.clone())),
    ];
    let secs = |s: Option<f64>| cell(s.map(|s| format!("{s:.1} s")));
    let p = &i.progress;
    lines.push(("Scheduled after", secs(p.scheduled)));
    lines.push(("Images pulled after", secs(p.pulled)));
    lines.push(("Ready after", secs(p.ready)));
    let status = i.status.as_ref();
    if let Some(warm) = status.and_then(|s| s.warm) {
        lines.push(("Warm start", if warm { "yes (claimed from a warm pool)" } else { "no" }.into()));
    }
    if !i.env.is_empty() {
        lines.push(("Env", i.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")));
    }
    if i.stopping {
        lines.push(("Stopping", "yes".into()));
    }
    let pods: Vec<Vec<String>> = status
        .map(|s| s.pods.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let why = p.reason.iter().chain(&p.message).cloned().collect::<Vec<_>>().join(": ");
            vec![
                p.name.clone(),
                cell(p.phase.clone()),
                (if p.ready { "yes" } else { "no" }).into(),
                cell(p.node.clone()),
                cell(p.pod_ip.clone()),
                p.restarts.to_string(),
                why,
            ]
        })
        .collect();
    let endpoints: Vec<Vec<String>> = status
        .map(|s| s.endpoints.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            vec![
                format!("{}/{}", e.pod, e.port),
                cell(e.cluster_dns.clone()),
                cell(e.node_port),
                cell(e.external_address.clone()),
            ]
        })
        .collect();
    fields(&lines)
        + &section("Pods", &["NAME", "PHASE", "READY", "NODE", "IP", "RESTARTS", "REASON"], &pods)
        + &section("Endpoints", &["POD/PORT", "IN THE CLUSTER", "NODE PORT", "EXTERNAL"], &endpoints)
}

fn row(i: &InstanceView) -> Vec<String> {
    vec![
        i.name.clone(),
        i.template.clone(),
        cell(i.phase.clone()),
        cell(i.progress.ready.map(|s| format!("{s:.1}s"))),
        cell(i.expires.clone()),
        i.message.clone().unwrap_or_default(),
    ]
}

fn path(tenant: &str, rest: &str) -> String {
    format!("/v1/tenants/{tenant}/instances{rest}")
}

/// `instance suspend|resume` (`verb`): asks, and with `--wait` follows the
/// instance until it is Suspended, or Running again.
async fn switch(c: &Client, tenant: &str, name: &str, verb: &str, w: WaitArgs, out: Format) -> Result<()> {
    let asked: InstanceView = c.post(&path(tenant, &format!("/{name}/{verb}")), &serde_json::json!({})).await?;
    let view = if w.wait { wait(c, tenant, asked, w, out == Format::Table).await? } else { asked };
    print(out, &view, HEADER, |i| vec![row(i)])
}

/// Follows the stream until the instance settles; returns its last view.
async fn wait(c: &Client, tenant: &str, started: InstanceView, w: WaitArgs, show: bool) -> Result<InstanceView> {
    let mut stream = Follow::new(c, Some(tenant), None);
    let mut progress = Progress::new(&started.name, show);
    let mut last = started;
    let deadline = tokio::time::sleep(w.timeout);
    tokio::pin!(deadline);
    // Since when the instance cannot be scheduled (no event may come while it
    // stays so: a timer gives up after --give-up-after).
    let mut unschedulable_since: Option<tokio::time::Instant> = None;
    loop {
        let mine = |i: &InstanceView| i.name == last.name;
        let give_up = unschedulable_since.map(|t| t + w.give_up_after);
        let update = tokio::select! {
            u = stream.next() => u,
            _ = &mut deadline => {
                progress.finish();
                let why = last.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
                return Err(Refused(format!("{} is still {} after {}{why}; it keeps starting in the background",
                    last.name, cell(last.phase.clone()), humantime(w.timeout))).into());
            }
            _ = tokio::time::sleep_until(give_up.unwrap_or_else(|| tokio::time::Instant::now() + w.timeout)),
                if give_up.is_some() => {
                progress.finish();
                return Err(Refused(format!(
                    "{} cannot be scheduled: {}; it stays Scheduling and starts when room appears                      (`paddock instance stop {}` gives up)",
                    last.name, last.message.as_deref().unwrap_or("no node fits it"), last.name)).into());
            }
            _ = tokio::signal::ctrl_c() => {
                progress.finish();
                return Err(Refused(format!(
                    "stopped waiting; {} keeps starting in the background (`paddock instance stop {}` stops it)",
                    last.name, last.name)).into());
            }
        };
        match update? {
            Update::Snapshot(_, items) => {
                if let Some(i) = items.into_iter().find(|i| mine(i)) {
                    last = i;
                }
            }
            Update::Status(_, i) if mine(&i) => last = *i,
            Update::Deleted(_, d) if d.name == last.name => bail!("{} was deleted while starting", d.name),
            _ => continue,
        }
        if last.phase.is_some() {
            progress.update(&cell(last.phase.clone()), last.message.as_deref());
        }
        unschedulable_since = match (last.ready_reason() == Some("Unschedulable"), unschedulable_since) {
            (true, None) => Some(tokio::time::Instant::now()),
            (true, since) => since,
            (false, _) => None,
        };
        if last.settled() {
            progress.finish();
            return Ok(last);
        }
        if held_by_quota(&last) {
            progress.finish();
            return Err(Refused(format!(
                "{} cannot start now: {}; it stays Pending and tries again every {} s \
                 (`paddock instance stop {}` gives up)",
                last.name,
                last.message.as_deref().unwrap_or("the tenant's quota does not allow it"),
                controller::quota::Refusals::RETRY.as_secs(),
                last.name
            ))
            .into());
        }
    }
}

/// `instance list --watch`: after the list, one line per change of an
/// instance the filters keep (a row, or `-o json|yaml` documents), from the
/// event stream, until Ctrl-C. The stream's first snapshot repeats the list
/// and is skipped.
async fn watch_list(c: &Client, tenant: Option<&str>, filter: &Filter, out: Format) -> Result<()> {
    let mut stream = Follow::new(c, tenant, None);
    loop {
        let update = tokio::select! {
            u = stream.next() => u?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match update {
            Update::Status(_, i) => {
                for i in [*i].into_iter().filter(|i| filter.keeps(i)) {
                    match out {
                        Format::Table => println!("{}", row(&i).join("   ")),
                        _ => print(out, &i, HEADER, |i| vec![row(i)])?,
                    }
                }
            }
            Update::Deleted(_, d) if out == Format::Table => println!("{}   deleted", d.name),
            _ => {}
        }
    }
}

/// The instances `--phase` and `--template` keep.
fn wanted(items: Vec<InstanceView>, filter: &Filter) -> Vec<InstanceView> {
    items.into_iter().filter(|i| filter.keeps(i)).collect()
}

/// The reason of the instance's Ready condition.
/// Whether the tenant's quota is what holds the instance back (the controller
/// keeps it Pending, without pods, and tries again).
fn held_by_quota(i: &InstanceView) -> bool {
    i.ready_reason() == Some("QuotaExceeded")
}

/// How long a start waits for a tenant that is still being set up.
const SETUP_PATIENCE: Duration = Duration::from_secs(30);

/// POSTs a start; a tenant still being set up (just created) is waited for,
/// saying so, up to [`SETUP_PATIENCE`].
async fn start(c: &Client, tenant: &str, body: &StartInstance, key: Option<&str>) -> Result<InstanceView> {
    let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
    let mut said = false;
    loop {
        let mut req = c.request(Method::POST, &path(tenant, "")).json(body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        match c.send::<InstanceView>(req).await {
            Err(e) => match e.downcast::<crate::client::NotYet>() {
                Ok(crate::client::NotYet(why, secs)) if tokio::time::Instant::now() < deadline => {
                    if !said {
                        eprintln!("{why}; waiting");
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_secs(secs.clamp(1, 5))).await;
                }
                Ok(crate::client::NotYet(why, _)) => return Err(Refused(why).into()),
                Err(e) => return Err(e),
            },
            ok => return ok,
        }
    }
}

pub async fn run(args: InstanceArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    if let InstanceCommand::List { all_tenants: true, phase, template, selector, watch } = &args.command {
        let filter = Filter { phase: phase.clone(), template: template.clone(), selector: selector.clone() };
        let items = wanted(c.list_all_with("/v1/instances", &filter.query()).await?, &filter);
        let header: Vec<&str> = ["TENANT"].iter().chain(HEADER).copied().collect();
        print(out, &items, &header, |v| {
            v.iter().map(|i| std::iter::once(i.tenant.clone()).chain(row(i)).collect()).collect()
        })?;
        return if *watch { watch_list(&c, None, &filter, out).await } else { Ok(()) };
    }
    let tenant = args.client.tenant(&args.tenant)?;
    match args.command {
        InstanceCommand::Start { template, name, ttl, env, labels, idempotency_key, wait: w } => {
            let (env, labels) = (env.into_iter().collect(), labels.into_iter().collect::<BTreeMap<_, _>>());
            let body = StartInstance { template, name, ttl, env, labels };
            let started = start(&c, &tenant, &body, idempotency_key.as_deref()).await?;
            let view = if w.wait { wait(&c, &tenant, started, w, out == Format::Table).await? } else { started };
            print(out, &view, HEADER, |i| vec![row(i)])?;
            match view.phase.as_deref() {
                Some("Failed" | "Expired" | "Degraded") if w.wait => Err(Refused(format!(
                    "{} is {}: {}",
                    view.name,
                    cell(view.phase.clone()),
                    view.message.clone().unwrap_or_else(|| "no reason given".into())
                ))
                .into()),
                _ => Ok(()),
            }
        }
        InstanceCommand::List { phase, template, selector, watch, .. } => {
            let filter = Filter { phase, template, selector };
            let items = wanted(c.list_all_with(&path(&tenant, ""), &filter.query()).await?, &filter);
            print(out, &items, HEADER, |v| v.iter().map(row).collect())?;
            if watch { watch_list(&c, Some(&tenant), &filter, out).await } else { Ok(()) }
        }
        InstanceCommand::Get { name } => {
            let i: InstanceView = c.get(&path(&tenant, &format!("/{name}"))).await?;
            show(out, &i, detail)
        }
        InstanceCommand::Stop { name, wait } => {
            let at = path(&tenant, &format!("/{name}"));
            let i: InstanceView = c.delete(&at).await?;
            if !wait.wait {
                return print(out, &i, HEADER, |i| vec![row(i)]);
            }
            poll(&c, &at, &name, wait.timeout, out == Format::Table, |now: Option<&InstanceView>| match now {
                None => Step::Done,
                Some(i) => Step::Wait(cell(i.phase.clone()), i.message.clone()),
            })
            .await?;
            match out {
                Format::Table => {
                    println!("instance {name} stopped: its pods are gone, its objects deleted");
                    Ok(())
                }
                _ => print(out, &i, HEADER, |i| vec![row(i)]),
            }
        }
        InstanceCommand::Logs { name, pod, tail, follow, previous } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(p) = pod {
                query.push(("pod", p));
            }
            if let Some(t) = tail {
                query.push(("tail", t.to_string()));
            }
            for (k, on) in [("follow", follow), ("previous", previous)] {
                if on {
                    query.push((k, "true".into()));
                }
            }
            let req = c.request(Method::GET, &path(&tenant, &format!("/{name}/logs"))).query(&query);
            c.copy_to(req, &mut tokio::io::stdout()).await
        }
        InstanceCommand::Suspend { name, wait: w } => switch(&c, &tenant, &name, "suspend", w, out).await,
        InstanceCommand::Resume { name, wait: w } => switch(&c, &tenant, &name, "resume", w, out).await,
        InstanceCommand::Heartbeat { name } => {
            let answer: serde_json::Value =
                c.post(&path(&tenant, &format!("/{name}/heartbeat")), &serde_json::json!({})).await?;
            match out {
                Format::Table => {
                    let note = answer.get("note").and_then(|n| n.as_str()).unwrap_or_default();
                    match answer.get("idleAt").and_then(|n| n.as_str()) {
                        Some(at) => println!("{name}: {note}; idle at {at} unless used again"),
                        None => println!("{name}: {note}"),
                    }
                    Ok(())
                }
                _ => print(out, &answer, &[], |_| Vec::new()),
            }
        }
        InstanceCommand::Renew { name, ttl } => {
            let asked = ttl.as_deref().and_then(resources::template::parse_duration);
            let i: InstanceView = c.post(&path(&tenant, &format!("/{name}/renew")), &Renew { ttl }).await?;
            if let Some(note) = renewal_note(&i, asked, jiff::Timestamp::now()) {
                eprintln!("{note}");
            }
            print(out, &i, HEADER, |i| vec![row(i)])
        }
    }
}

#[cfg(test)]
mod tests {
    use api::model::InstanceView;

    #[test]
    fn a_renewal_that_did_not_end_where_asked_says_why() {
        let mut v: InstanceView = serde_json::from_value(serde_json::json!({"name": "web", "tenant": "a",
            "template": "t", "expires": "2026-11-30T09:00:00Z", "progress": {}, "stopping": false}))
        .unwrap();
        let now: jiff::Timestamp = "2026-11-30T08:00:00Z".parse().unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(super::renewal_note(&v, Some(hour), now), None, "renewed as asked");
        assert_eq!(super::renewal_note(&v, None, now), None, "the template's ttl: nothing to compare with");
        let note = super::renewal_note(&v, Some(100 * hour), now).expect("a note");
        assert!(note.contains("maxTtl") && note.contains("2026-11-30T09:00:00Z"), "{note}");
        let note = super::renewal_note(&v, Some(hour / 4), now).expect("a note");
        assert!(note.contains("unchanged") && note.contains("never shortens"), "{note}");
        v.expires = None;
        let note = super::renewal_note(&v, None, now).expect("a note");
        assert!(note.contains("does not expire"), "{note}");
    }

    #[test]
    fn get_shows_pods_and_how_to_reach_them() {
        let v: InstanceView = serde_json::from_value(serde_json::json!({
            "name": "web", "tenant": "team-a", "template": "ctf-web", "phase": "Degraded",
            "message": "1 of 2 pods ready", "progress": {"scheduled": 0.01, "ready": 1.5}, "stopping": false,
            "status": {"warm": true,
                "pods": [{"name": "web", "phase": "Running", "ready": true, "node": "task-1", "podIp": "10.0.0.2", "restarts": 0},
                         {"name": "db", "phase": "Pending", "ready": false, "restarts": 3, "reason": "CrashLoopBackOff", "message": "exit 1"}],
                "endpoints": [{"pod": "web", "port": "http", "clusterDns": "web.web.ns.svc:80", "nodePort": 30080}]}}))
        .unwrap();
        let text = super::detail(&v);
        assert!(text.contains("Phase:               Degraded"), "{text}");
        assert!(text.contains("Warm start:          yes"), "{text}");
        assert!(text.contains("CrashLoopBackOff: exit 1"), "{text}");
        let ep = text.lines().find(|l| l.starts_with("web/http")).expect("an endpoint row");
        assert!(ep.contains("web.web.ns.svc:80") && ep.contains("30080"), "{ep}");
    }
}
