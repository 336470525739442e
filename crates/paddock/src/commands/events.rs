//! `paddock events [--tenant T]`: follow instance status as it changes.

use crate::client::output::{Format, cell};
use crate::client::{Client, ClientArgs};
use anyhow::{Context, Result};
use api::model::{DeletedEvent, InstanceView, SnapshotEvent, StatusEvent};
use clap::Args;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use std::io::Write;

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this tenant's instances (required with a tenant token; admins see all without it).
    #[arg(long, env = "PADDOCK_TENANT")]
    pub tenant: Option<String>,
    /// Resume after this event id.
    #[arg(long)]
    pub after: Option<String>,
}

/// One decoded event.
#[derive(Debug)]
pub enum Update {
    Snapshot(String, Vec<InstanceView>),
    Status(String, Box<InstanceView>),
    Deleted(String, DeletedEvent),
}

/// The tenant's (or, for None, everyone's) stream, decoded.
pub async fn subscribe(
    c: &Client,
    tenant: Option<&str>,
    after: Option<&str>,
) -> Result<impl Stream<Item = Result<Update>> + use<>> {
    let path = match tenant {
        Some(t) => format!("/v1/tenants/{t}/events"),
        None => "/v1/events".to_string(),
    };
    let resp = c.events(&path, after).await?;
    Ok(resp.bytes_stream().eventsource().filter_map(|ev| async move {
        let ev = match ev {
            Ok(e) => e,
            Err(e) => return Some(Err(anyhow::anyhow!("the event stream broke: {e}"))),
        };
        let decoded = match ev.event.as_str() {
            "snapshot" => serde_json::from_str::<SnapshotEvent>(&ev.data).map(|s| Update::Snapshot(ev.id, s.instances)),
            "status" => {
                serde_json::from_str::<StatusEvent>(&ev.data).map(|s| Update::Status(ev.id, Box::new(s.instance)))
            }
            "deleted" => serde_json::from_str::<DeletedEvent>(&ev.data).map(|d| Update::Deleted(ev.id, d)),
            _ => return None,
        };
        Some(decoded.context("an event the CLI cannot read"))
    }))
}

fn line(i: &InstanceView) -> String {
    let progress = [("scheduled", i.progress.scheduled), ("pulled", i.progress.pulled), ("ready", i.progress.ready)]
        .iter()
        .filter_map(|(n, v)| v.map(|s| format!("{n} {s:.1}s")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{}/{}  {}  {}{}",
        i.tenant,
        i.name,
        cell(i.phase.clone()),
        if progress.is_empty() { String::new() } else { format!("({progress})  ") },
        i.message.clone().unwrap_or_default()
    )
}

pub async fn run(args: EventsArgs) -> Result<()> {
    let c = args.client.client()?;
    let tenant = match &args.tenant {
        Some(t) => Some(t.clone()),
        None if args.client.token.as_deref().is_some_and(|t| t.starts_with("pdk.")) => Some(args.client.tenant(&None)?),
        None => None,
    };
    let mut stream = Box::pin(subscribe(&c, tenant.as_deref(), args.after.as_deref()).await?);
    while let Some(u) = stream.next().await {
        let u = u?;
        let mut out = std::io::stdout().lock();
        if args.client.output != Format::Table {
            let v = match &u {
                Update::Snapshot(id, items) => serde_json::json!({"id": id, "type": "snapshot", "instances": items}),
                Update::Status(id, i) => serde_json::json!({"id": id, "type": "status", "instance": i}),
                Update::Deleted(id, d) => {
                    serde_json::json!({"id": id, "type": "deleted", "tenant": d.tenant, "name": d.name})
                }
            };
            writeln!(out, "{v}")?;
            continue;
        }
        match u {
            Update::Snapshot(_, items) => {
                for i in &items {
                    writeln!(out, "{}", line(i))?;
                }
            }
            Update::Status(_, i) => writeln!(out, "{}", line(&i))?,
            Update::Deleted(_, d) => writeln!(out, "{}/{}  deleted", d.tenant, d.name)?,
        }
        out.flush()?;
    }
    Ok(())
}
