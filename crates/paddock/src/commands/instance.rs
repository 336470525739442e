//! `paddock instance start|list|get|stop|renew` through the API; `--wait`
//! follows the tenant's event stream and shows the phases as they pass.

use crate::client::output::{Format, cell, print};
use crate::client::{Client, ClientArgs, Refused};
use crate::commands::events::{Follow, Update};
use anyhow::{Result, bail};
use api::model::{InstanceView, Renew, StartInstance};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write;
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
        /// Retrying with the same key never starts a second instance.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Wait until it runs (or fails), showing each phase.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long, e.g. 5m.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// List the tenant's instances.
    List,
    /// Show one instance: its phase, pods, endpoints and expiry.
    Get {
        /// The instance's name.
        name: String,
    },
    /// Stop (delete) an instance.
    Stop {
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    resources::template::parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration (like 90s, 15m, 2h)"))
}

const HEADER: &[&str] = &["NAME", "TEMPLATE", "PHASE", "READY IN", "EXPIRES", "MESSAGE"];

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

/// Follows the stream until the instance settles; returns its last view.
async fn wait(c: &Client, tenant: &str, started: InstanceView, timeout: Duration, show: bool) -> Result<InstanceView> {
    let mut stream = Follow::new(c, Some(tenant), None);
    let bar = if show { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {wide_msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(started.name.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    // Without a terminal (CI logs, pipes) the spinner draws nothing: each phase
    // then gets a plain line on stderr instead.
    let plain = show && bar.is_hidden();
    let mut last = started;
    let mut shown: Option<String> = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    loop {
        let mine = |i: &InstanceView| i.name == last.name;
        let update = tokio::select! {
            u = stream.next() => u,
            _ = &mut deadline => {
                bar.finish_and_clear();
                let why = last.message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
                return Err(Refused(format!("{} is still {} after {}s{why}; it keeps starting in the background",
                    last.name, cell(last.phase.clone()), timeout.as_secs())).into());
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
        let phase = cell(last.phase.clone());
        if shown.as_deref() != Some(phase.as_str()) {
            if plain && last.phase.is_some() {
                let message = last.message.as_deref().map(|m| format!("  {m}")).unwrap_or_default();
                let _ = writeln!(std::io::stderr().lock(), "{}: {phase}{message}", last.name);
            } else if let Some(prev) = &shown {
                bar.println(format!("  {} → {phase}", prev));
            }
            shown = Some(phase.clone());
        }
        bar.set_message(format!("{phase}  {}", last.message.clone().unwrap_or_default()));
        if last.settled() {
            bar.finish_and_clear();
            return Ok(last);
        }
        if held_by_quota(&last) {
            bar.finish_and_clear();
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

/// Whether the tenant's quota is what holds the instance back (the controller
/// keeps it Pending, without pods, and tries again).
fn held_by_quota(i: &InstanceView) -> bool {
    i.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.reason == "QuotaExceeded"))
}

pub async fn run(args: InstanceArgs) -> Result<()> {
    let c = args.client.client()?;
    let out = args.client.output;
    let tenant = args.client.tenant(&args.tenant)?;
    match args.command {
        InstanceCommand::Start { template, name, ttl, env, idempotency_key, wait: w, timeout } => {
            let body = StartInstance { template, name, ttl, env: env.into_iter().collect::<BTreeMap<_, _>>() };
            let mut req = c.request(Method::POST, &path(&tenant, "")).json(&body);
            if let Some(k) = &idempotency_key {
                req = req.header("idempotency-key", k);
            }
            let started: InstanceView = c.send(req).await?;
            let view = if w { wait(&c, &tenant, started, timeout, out == Format::Table).await? } else { started };
            print(out, &view, HEADER, |i| vec![row(i)])?;
            match view.phase.as_deref() {
                Some("Failed" | "Expired" | "Degraded") if w => Err(Refused(format!(
                    "{} is {}: {}",
                    view.name,
                    cell(view.phase.clone()),
                    view.message.clone().unwrap_or_else(|| "no reason given".into())
                ))
                .into()),
                _ => Ok(()),
            }
        }
        InstanceCommand::List => {
            let items: Vec<InstanceView> = c.list_all(&path(&tenant, "")).await?;
            print(out, &items, HEADER, |v| v.iter().map(row).collect())
        }
        InstanceCommand::Get { name } => {
            let i: InstanceView = c.get(&path(&tenant, &format!("/{name}"))).await?;
            print(out, &i, HEADER, |i| vec![row(i)])
        }
        InstanceCommand::Stop { name } => {
            let i: InstanceView = c.delete(&path(&tenant, &format!("/{name}"))).await?;
            print(out, &i, HEADER, |i| vec![row(i)])
        }
        InstanceCommand::Renew { name, ttl } => {
            let i: InstanceView = c.post(&path(&tenant, &format!("/{name}/renew")), &Renew { ttl }).await?;
            print(out, &i, HEADER, |i| vec![row(i)])
        }
    }
}
