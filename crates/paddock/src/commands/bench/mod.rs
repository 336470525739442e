//! `paddock bench`: measurements that print figures (a table, or `--json`).
//! By default everything runs on kubesim, so the figures are Paddock's own
//! overhead; with `--kubeconfig` they run end to end on a real cluster (see
//! `target`). `api`, `claims` and `events` run the reconcilers and the API
//! in this process (`stage`); `tenants` and `instances` run the controller as
//! its own process to report its memory and CPU. The machine's noise is in the figures, so compare
//! runs on the same machine.

pub mod api;
pub mod claims;
pub mod cost;
pub mod events;
pub mod instances;
pub mod process;
pub mod stage;
pub mod stats;
pub mod target;
pub mod tenants;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::Write;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print the figures as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub target: target::TargetArgs,
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// The API: start latency (POST → Running seen on SSE) at several
    /// concurrencies, API overhead (POST → Instance created) and SSE fan-out.
    Api(api::ApiBenchArgs),
    /// Warm-pool claims: warm and cold start latency at a steady rate, refill
    /// rate, and the most pool pods that existed at once.
    Claims(claims::ClaimsBenchArgs),
    /// Tenant provisioning throughput and writes per tenant, beside a raw
    /// write loop and a kubectl apply loop of the same objects.
    Tenants(tenants::TenantsBenchArgs),
    /// Cold starts at a concurrency: latency, throughput, and the
    /// controller's memory and CPU with all of them running.
    Instances(instances::InstancesBenchArgs),
    /// SSE fan-out latency to many clients.
    Events(events::EventsBenchArgs),
}

/// A watch's objects or events with its errors logged and skipped: the
/// watcher resumes (or lists again) after an error, so whoever observes a
/// run keeps watching instead of ending it. (Under load a watch can fall
/// behind and be ended by the API server, as upstream ends slow watchers.)
pub fn resuming<T, S>(watch: &'static str, s: S) -> impl futures::Stream<Item = T>
where
    S: futures::Stream<Item = Result<T, kube::runtime::watcher::Error>>,
{
    use futures::StreamExt;
    s.filter_map(move |r| {
        futures::future::ready(match r {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(watch, error = %e, "the benchmark's watch failed; it resumes");
                None
            }
        })
    })
}

/// Prints a report: as JSON with `--json`, else as the bench's own table.
pub fn emit<R: Serialize>(r: &R, as_json: bool, table: fn(&mut dyn Write, &R) -> Result<()>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        writeln!(out, "{}", serde_json::to_string_pretty(r)?)?;
        return Ok(());
    }
    table(&mut out, r)
}

pub async fn run(args: BenchArgs) -> Result<()> {
    if args.target.installed_controller
        && !matches!(args.command, BenchCommand::Tenants(_) | BenchCommand::Instances(_))
    {
        anyhow::bail!(
            "--installed-controller: only `bench tenants` and `bench instances` can measure an installed \
             controller; api, claims and events run their own reconcilers in this process (do not run them \
             where another Paddock controller works)"
        );
    }
    match args.command {
        BenchCommand::Api(a) => api::run(a, &args.target, args.json).await,
        BenchCommand::Claims(a) => claims::run(a, &args.target, args.json).await,
        BenchCommand::Tenants(a) => tenants::run(a, &args.target, args.json).await,
        BenchCommand::Instances(a) => instances::run(a, &args.target, args.json).await,
        BenchCommand::Events(a) => events::run(a, &args.target, args.json).await,
    }
}
