//! `paddock bench`: measurements that print figures (a table, or `--json`).
//! Runs the whole platform in-process on kubesim, so the figures are
//! Paddock's own overhead; the machine's noise is in them, so compare runs
//! on the same machine.

pub mod api;
pub mod claims;
pub mod stats;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Print the figures as JSON.
    #[arg(long, global = true)]
    pub json: bool,
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
}

pub async fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Api(a) => api::run(a, args.json).await,
        BenchCommand::Claims(a) => claims::run(a, args.json).await,
    }
}
