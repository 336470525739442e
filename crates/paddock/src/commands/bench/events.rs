//! `paddock bench events`: SSE fan-out alone — status written to the API
//! server → frame read by each of N clients of `/v1/events`.

use super::api::{fan_out, sse_line};
use super::process::WholeProcess;
use super::stage::Stage;
use super::stats::Summary;
use super::target::TargetArgs;
use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct EventsBenchArgs {
    /// SSE clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Status changes sent to them.
    #[arg(long, default_value_t = 50)]
    pub events: usize,
    /// Milliseconds between status changes.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
}

#[derive(Serialize)]
struct Report {
    clients: usize,
    events: usize,
    interval_ms: u64,
    delivery: Summary,
    #[serde(flatten)]
    process: WholeProcess,
}

pub async fn run(args: EventsBenchArgs, target: &TargetArgs, as_json: bool) -> Result<()> {
    if !(1..=20_000).contains(&args.clients) || !(1..=10_000).contains(&args.events) || args.interval_ms > 60_000 {
        bail!("--clients must be 1..=20000, --events 1..=10000 and --interval-ms at most 60000");
    }
    let spec = json!({"pods": [{"name": "web", "image": target.image()?}]});
    let (delivery, process) = Stage::measure(target, spec, async |p| {
        let delivery = fan_out(p, args.clients, args.events, Duration::from_millis(args.interval_ms)).await?;
        Ok((delivery, WholeProcess::now()))
    })
    .await?;
    let report =
        Report { clients: args.clients, events: args.events, interval_ms: args.interval_ms, delivery, process };
    super::emit(&report, as_json, table)
}

fn table(out: &mut dyn Write, r: &Report) -> Result<()> {
    sse_line(out, r.clients, r.events, r.interval_ms, &r.delivery)?;
    r.process.line(out)
}
